//! The type matrix: one column of every configured type, written in the
//! connector's own Arrow types and in others, read back equal.

use super::*;
/// One column of every configured type (and the key).
fn every_type() -> Vec<MappedColumn> {
    use ColumnType::*;
    [
        ("i16", Int16),
        ("i32", Int32),
        ("f32", Float32),
        ("f64", Float64),
        (
            "dec",
            Decimal {
                precision: 20,
                scale: 4,
            },
        ),
        ("flag", Bool),
        ("short", String { max_len: Some(12) }),
        ("body", Text),
        ("doc", Json),
        ("bytes", Binary),
        ("day", Date),
        ("clock", Time),
        ("at", Timestamp),
        ("at_tz", TimestampTz),
        ("uid", Uuid),
    ]
    .into_iter()
    .fold(
        vec![column("id", Int64, true, true)],
        |mut all, (name, ty)| {
            all.push(column(name, ty, false, true));
            all
        },
    )
}

/// Four rows of every type: small, negative and large values, text that
/// needs care (quotes, non-ASCII), and a row of NULLs.
fn every_type_rows() -> RecordBatch {
    use arrow::array::{
        BinaryArray, Date32Array, FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array,
        Int32Array, Time64MicrosecondArray,
    };
    let specs: Vec<ColumnSpec> = every_type().into_iter().map(|c| c.spec).collect();
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
        Arc::new(Int16Array::from(vec![
            Some(0),
            Some(-32768),
            Some(32767),
            None,
        ])),
        Arc::new(Int32Array::from(vec![
            Some(7),
            Some(i32::MIN),
            Some(i32::MAX),
            None,
        ])),
        Arc::new(Float32Array::from(vec![
            Some(1.5),
            Some(-0.25),
            Some(3.0e38),
            None,
        ])),
        Arc::new(Float64Array::from(vec![
            Some(0.1),
            Some(-1e300),
            Some(123456.789),
            None,
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(12_3456),
                Some(-1),
                Some(99_999_999_999_999_999_999),
                None,
            ])
            .with_precision_and_scale(20, 4)
            .unwrap(),
        ),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            Some(true),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("short"),
            Some(""),
            Some("twelve chars"),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("it's \"quoted\""),
            Some("ünïcödé ✓"),
            Some("line\nbreak"),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some(r#"{"a": 1}"#),
            Some("[1, 2, 3]"),
            Some(r#"{"k": "v", "n": null}"#),
            None,
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\x01\xff"[..]),
            Some(&b""[..]),
            Some(&b"bytes"[..]),
            None,
        ])),
        Arc::new(Date32Array::from(vec![
            Some(0),
            Some(-719_162),
            Some(2_932_896),
            None,
        ])),
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(0),
            Some(1),
            Some(86_399_999_999),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(0),
            Some(-62_135_596_800_000_000),
            Some(1_700_000_000_123_456),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                Some(1),
                Some(-1_000_000),
                Some(253_402_300_799_999_999),
                None,
            ])
            .with_timezone("UTC"),
        ),
        Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![
                    Some([0u8; 16]),
                    Some([255u8; 16]),
                    Some(*b"0123456789abcdef"),
                    None,
                ]
                .into_iter(),
                16,
            )
            .unwrap(),
        ),
    ];
    RecordBatch::try_new(arrow_schema(&specs), arrays).unwrap()
}

/// The rows of [`every_type_rows`] in other Arrow types that conform to
/// the configured ones without loss (narrower integers, a smaller float,
/// large strings, milliseconds, another time zone): a writer takes them
/// through the one conformance layer and stores the same values.
fn every_type_rows_in_other_arrow_types() -> RecordBatch {
    use arrow::array::{Float32Array, Int16Array, LargeStringArray};
    use arrow::compute::cast;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let canonical = every_type_rows();
    let mut arrays = canonical.columns().to_vec();
    let mut fields: Vec<Field> = canonical
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut replace = |i: usize, array: ArrayRef| {
        fields[i] = Field::new(fields[i].name(), array.data_type().clone(), true);
        arrays[i] = array;
    };
    // id (bigint) and i32 (int) from Int16, f64 (double) from Float32.
    replace(0, Arc::new(Int16Array::from(vec![1, 2, 3, 4])));
    replace(
        2,
        Arc::new(Int16Array::from(vec![Some(7), None, None, None])),
    );
    replace(
        4,
        Arc::new(Float32Array::from(vec![Some(0.5), None, None, None])),
    );
    replace(
        8,
        Arc::new(LargeStringArray::from(vec![
            Some("it's \"quoted\""),
            Some("ünïcödé ✓"),
            Some("line\nbreak"),
            None,
        ])),
    );
    let ms = cast(
        canonical.column(13),
        &DataType::Timestamp(TimeUnit::Millisecond, None),
    )
    .unwrap();
    replace(13, ms);
    let berlin = Arc::new(
        canonical
            .column(14)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .clone()
            .with_timezone("+01:00"),
    );
    replace(14, berlin);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// Every configured type is written and read back unchanged, and a batch in
/// other Arrow types conforming to them is stored as its conformed values.
pub(super) async fn every_type_round_trips(h: &dyn Harness) {
    let (ds, _guard) = h.datastore("types").await;
    let held: Vec<usize> = (0..every_type().len())
        .filter(|i| h.holds(&every_type()[*i].spec.data_type))
        .collect();
    let columns: Vec<MappedColumn> = held.iter().map(|i| every_type()[*i].clone()).collect();
    let specs: Vec<ColumnSpec> = columns.iter().map(|c| c.spec.clone()).collect();
    let read_back = |t: TableRef| {
        let columns = columns.clone();
        async move {
            let mut source = open_source(&t, &columns).await.unwrap();
            source.check().await.unwrap();
            let batches: Vec<RecordBatch> = source
                .read(&Partition::whole(), 3)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            sorted(concat_batches(&arrow_schema(&specs_of(&columns)), &batches).unwrap())
        }
    };
    let written = every_type_rows().project(&held).unwrap();
    let t = table(&ds, "types");
    let mut sink = open_sink(&t, &specs).await.unwrap();
    sink.prepare().await.unwrap();
    write(sink.as_mut(), &Partition::whole(), Some(&written), None).await;
    assert_eq!(read_back(t.clone()).await, written);

    let other = every_type_rows_in_other_arrow_types()
        .project(&held)
        .unwrap();
    let conformed = connectors::conform::conform_batch(&other, &specs)
        .unwrap()
        .into_owned();
    let t = table(&ds, "types_conformed");
    let mut sink = open_sink(&t, &specs).await.unwrap();
    sink.prepare().await.unwrap();
    write(sink.as_mut(), &Partition::whole(), Some(&other), None).await;
    assert_eq!(read_back(t).await, conformed);
    // The conformed values are the same values: the row hash agrees.
    assert_eq!(
        rowhash::try_hash_rows(&other, &columns).unwrap(),
        rowhash::try_hash_rows(&conformed, &columns).unwrap()
    );
}
