//! Unit tests of the row hash across Arrow, PostgreSQL and SQLite.

use super::*;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

fn mapped(name: &str, ty: ColumnType, unique: bool, hash: bool) -> MappedColumn {
    MappedColumn::same_name(name, ty, unique, hash)
}

fn batch(columns: &[MappedColumn], arrays: Vec<ArrayRef>) -> RecordBatch {
    let specs: Vec<ColumnSpec> = columns.iter().map(|c| c.spec.clone()).collect();
    RecordBatch::try_new(arrow_schema(&specs), arrays).unwrap()
}

fn texts(columns: &[MappedColumn], arrays: Vec<ArrayRef>) -> Vec<String> {
    let b = batch(columns, arrays);
    (0..b.num_rows())
        .map(|r| canonical_text(&b, columns, r).unwrap())
        .collect()
}

#[test]
fn hash_matches_postgres_formula() {
    // SELECT hashtextextended('' COLLATE "C", 0), hashtextextended('1:5', 0)
    assert_eq!(row_hash(b""), -6_939_563_903_564_495_251);
    assert_eq!(row_hash(b"1:5"), 6_932_707_825_182_652_108);
}

#[test]
fn canonical_text_per_type() {
    use ColumnType::*;
    let dec = Decimal {
        precision: 10,
        scale: 2,
    };
    let cols = vec![
        mapped("i", Int32, true, true),
        mapped("d", dec, false, true),
        mapped("f8", Float64, false, true),
        mapped("f4", Float32, false, true),
        mapped("b", Bool, false, true),
        mapped("s", Text, false, true),
        mapped("y", Binary, false, true),
        mapped("dt", Date, false, true),
        mapped("tm", Time, false, true),
        mapped("ts", Timestamp, false, true),
        mapped("tz", TimestampTz, false, true),
        mapped("u", Uuid, false, true),
        mapped("skip", Int64, false, false),
    ];
    let uuid = [
        0x67, 0xe5, 0x50, 0x44, 0x10, 0xb1, 0x42, 0x6f, 0x92, 0x47, 0xbb, 0x68, 0x0e, 0x5f, 0xe0,
        0xc8,
    ];
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![-42, 7, 0])),
        Arc::new(
            Decimal128Array::from(vec![Some(-1250), Some(5), None])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(Float64Array::from(vec![-0.0, f64::NAN, 1.5])),
        Arc::new(Float32Array::from(vec![Some(-0.0), Some(-f32::NAN), None])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(StringArray::from(vec![Some("héllo"), Some(""), None])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0xde, 0xad][..]),
            Some(&[][..]),
            None,
        ])),
        Arc::new(Date32Array::from(vec![Some(-1), Some(19737), None])),
        Arc::new(Time64MicrosecondArray::from(vec![Some(1), Some(0), None])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(-1),
            Some(0),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(-1_000_001), Some(5), None])
                .with_timezone("UTC"),
        ),
        Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some(uuid), None, None].into_iter(),
                16,
            )
            .unwrap(),
        ),
        Arc::new(Int64Array::from(vec![1, 2, 3])),
    ];
    let t = texts(&cols, arrays);
    assert_eq!(
        t[0],
        "3:-426:-12.5016:00000000000000008:000000001:t5:héllo4:dead2:-11:1fffca2fec4c81ffffffca2fec4b8ddbf36:67e55044-10b1-426f-9247-bb680e5fe0c8"
    );
    assert_eq!(
        t[1],
        "1:74:0.0516:7ff80000000000008:7fc000001:f0:0:5:197371:0fffca2fec4c82000fffca2fec4c82005N"
    );
    assert_eq!(t[2], "1:0N16:3ff8000000000000NNNNNNNNN");
}

#[test]
fn separators_and_nulls_distinguish_rows() {
    let cols = vec![
        mapped("a", ColumnType::Text, false, true),
        mapped("b", ColumnType::Text, false, true),
    ];
    let b = batch(
        &cols,
        vec![
            Arc::new(StringArray::from(vec![
                Some("ab"),
                Some("a"),
                Some(""),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some("c"),
                Some("bc"),
                None,
                Some(""),
            ])),
        ],
    );
    let h = hash_rows(&b, &cols);
    let distinct: std::collections::HashSet<i64> = h.values().iter().copied().collect();
    assert_eq!(distinct.len(), 4);
}

#[test]
fn row_hashes_batch_has_keys_then_hash() {
    let cols = vec![
        mapped("v", ColumnType::Text, false, true),
        mapped("id", ColumnType::Int32, true, true),
        mapped("x", ColumnType::Int64, false, false),
    ];
    let b = batch(
        &cols,
        vec![
            Arc::new(StringArray::from(vec![Some("a"), None])),
            Arc::new(Int32Array::from(vec![1, 2])),
            Arc::new(Int64Array::from(vec![5, 6])),
        ],
    );
    let out = row_hashes_batch(&b, &cols).unwrap();
    assert_eq!(out.schema(), row_hash_schema(&cols));
    let names: Vec<&str> = out
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", ROW_HASH_COLUMN]);
    assert_eq!(out.column(0).as_ref(), b.column(1).as_ref());
    assert_eq!(
        out.column(1).as_primitive::<Int64Type>(),
        &hash_rows(&b, &cols)
    );
    assert_eq!(canonical_text(&b, &cols, 0).unwrap(), "1:a1:1");
    assert_eq!(canonical_text(&b, &cols, 1).unwrap(), "N1:2");
    assert_eq!(
        checksum_batch(&b, &cols),
        checksum_hashes(&hash_rows(&b, &cols))
    );
}

#[test]
fn decimals() {
    let fmt = |v: i128, scale: i8| {
        let mut s = Vec::new();
        write_decimal(&mut s, v, scale);
        String::from_utf8(s).unwrap()
    };
    assert_eq!(fmt(-1250, 2), "-12.50");
    assert_eq!(fmt(5, 3), "0.005");
    assert_eq!(fmt(-5, 3), "-0.005");
    assert_eq!(fmt(0, 2), "0.00");
    assert_eq!(fmt(0, 0), "0");
    assert_eq!(fmt(13, -2), "1300");
    assert_eq!(fmt(0, -2), "0");
    assert_eq!(
        fmt(i128::MIN, 38),
        "-1.70141183460469231731687303715884105728"
    );
}

#[test]
fn lenient_arrow_inputs() {
    let cols = vec![
        mapped("s", ColumnType::Text, true, true),
        mapped("tz", ColumnType::TimestampTz, false, true),
        mapped("i", ColumnType::Int64, false, true),
    ];
    let strict = batch(
        &cols,
        vec![
            Arc::new(StringArray::from(vec!["x"])),
            Arc::new(TimestampMicrosecondArray::from(vec![7]).with_timezone("UTC")),
            Arc::new(Int64Array::from(vec![3])),
        ],
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8View, false),
        Field::new(
            "tz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+01:00".into())),
            true,
        ),
        Field::new("i", DataType::Int32, true),
    ]));
    let loose = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow::array::StringViewArray::from(vec!["x"])),
            Arc::new(TimestampMicrosecondArray::from(vec![7]).with_timezone("+01:00")),
            Arc::new(Int32Array::from(vec![3])),
        ],
    )
    .unwrap();
    assert_eq!(hash_rows(&strict, &cols), hash_rows(&loose, &cols));

    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("s", DataType::Int32, false)])),
        vec![Arc::new(Int32Array::from(vec![1]))],
    )
    .unwrap();
    let e = try_hash_rows(&wrong, &cols[..1]).unwrap_err().to_string();
    assert_eq!(
        e,
        "column \"s\": expected Arrow Utf8 values for a text column, found Int32"
    );
}

#[test]
fn checksums_wrap() {
    let h = Int64Array::from(vec![i64::MAX, i64::MAX, 2]);
    let c = checksum_hashes(&h);
    assert_eq!(c.rows, 3);
    assert_eq!(c.sum, 0);
    let both = checksum_combine(c, checksum_hashes(&Int64Array::from(vec![-1])));
    assert_eq!(
        both,
        Checksum {
            rows: 4,
            sum: u64::MAX
        }
    );

    assert_eq!(wrap_decimal_sum("18446744073709551614"), Some(u64::MAX - 1));
    assert_eq!(wrap_decimal_sum("18446744073709551616"), Some(0));
    assert_eq!(wrap_decimal_sum("-1"), Some(u64::MAX));
    assert_eq!(wrap_decimal_sum("-18446744073709551617"), Some(u64::MAX));
    assert_eq!(wrap_decimal_sum("0"), Some(0));
    assert_eq!(wrap_decimal_sum("1.5"), None);
    assert_eq!(wrap_decimal_sum(""), None);
}

#[test]
fn type_codes_round_trip() {
    use ColumnType::*;
    for t in [
        Int16,
        Int32,
        Int64,
        Float32,
        Float64,
        Decimal {
            precision: 38,
            scale: 10,
        },
        Decimal {
            precision: 5,
            scale: -2,
        },
        Bool,
        String { max_len: None },
        String { max_len: Some(12) },
        Text,
        Json,
        Binary,
        Date,
        Time,
        Timestamp,
        TimestampTz,
        Uuid,
    ] {
        assert_eq!(parse_sqlite_type_code(&sqlite_type_code(&t)), Some(t));
    }
}

/// The SQLite function agrees with `hash_rows` over what the SQLite
/// decoder reads, also for values stored in other tools' forms.
#[test]
fn sqlite_function_reads_like_the_decoder() {
    use ColumnType::*;
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    register_sqlite_functions(&conn).unwrap();
    let dec = Decimal {
        precision: 10,
        scale: 2,
    };
    let cases: Vec<(ColumnType, &str)> = vec![
        (Int64, "42"),
        (Int32, "'42'"),
        (Int16, "3.0"),
        (Float64, "'NaN'"),
        (Float64, "-0.0"),
        (Float64, "7"),
        (Float32, "0.1"),
        (dec, "'-12.5'"),
        (dec, "0.1"),
        (dec, "'-0.00'"),
        (Bool, "'true'"),
        (Bool, "0"),
        (Text, "'日本語'"),
        (Text, "12"),
        (String { max_len: Some(3) }, "'日本語'"),
        (Json, "' {\"a\" : 1} '"),
        (Binary, "x'00ff'"),
        (Binary, "'ab'"),
        (Date, "'1969-12-31'"),
        (Time, "'00:00:01.25'"),
        (Timestamp, "'1969-12-31 23:59:59.999999'"),
        (TimestampTz, "'2024-01-15T12:00:00+02:00'"),
        (TimestampTz, "1705312800"),
        (Uuid, "'67E55044-10B1-426F-9247-BB680E5FE0C8'"),
        (Uuid, "NULL"),
    ];
    for (ty, literal) in cases {
        let col = mapped("v", ty, false, true);
        let sql = format!(
            "SELECT {}, v FROM (SELECT {literal} AS v)",
            sqlite_row_hash_sql(std::slice::from_ref(&col))
        );
        let (got, decoded) = conn
            .query_row(&sql, [], |r| {
                let mut d = crate::sqlite::codec::ColumnDecoder::new(&ty);
                d.push(r.get_ref(1)?).unwrap();
                Ok((r.get::<_, i64>(0)?, d.finish()))
            })
            .unwrap();
        let b = batch(std::slice::from_ref(&col), vec![decoded]);
        assert_eq!(
            got,
            hash_rows(&b, std::slice::from_ref(&col)).value(0),
            "{ty} {literal}"
        );
    }
    // A value `read` rejects fails the query, naming the value.
    let col = mapped("v", Int16, false, true);
    let e = conn
        .query_row(
            &format!(
                "SELECT {} FROM (SELECT 70000 AS v)",
                sqlite_row_hash_sql(std::slice::from_ref(&col))
            ),
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("value 70000 does not fit smallint"), "{e}");
    // The wrapping sum.
    let sum: i64 = conn
        .query_row(
            &format!(
                "SELECT {SQLITE_HASH_SUM_FN}(h) FROM (SELECT 9223372036854775807 AS h UNION ALL SELECT 2)"
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sum, i64::MIN + 1);
    let empty: i64 = conn
        .query_row(
            &format!("SELECT {SQLITE_HASH_SUM_FN}(1) WHERE false"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(empty, 0);
}

#[test]
fn pg_sql_shape() {
    let cols = vec![
        mapped("id", ColumnType::Int64, true, true),
        mapped("v", ColumnType::Float64, false, true),
        mapped("c", ColumnType::Text, false, true),
        mapped("x", ColumnType::Text, false, false),
    ];
    let q = PgHashQuery::new(&cols, &[Type::INT8, Type::FLOAT4, Type::BPCHAR, Type::TEXT]);
    assert_eq!(
        q.rows_sql("FROM \"t\""),
        "SELECT \"id\", hashtextextended((\
         coalesce(octet_length((\"id\")::text) || ':' || (\"id\")::text, 'N') || \
         coalesce('16:' || CASE WHEN (\"v\")::float8 = 0 THEN '0000000000000000' \
         WHEN (\"v\")::float8 = 'NaN' THEN '7ff8000000000000' \
         ELSE encode(float8send((\"v\")::float8), 'hex') END, 'N') || \
         coalesce(length(CASE WHEN (\"c\") IS NOT NULL THEN concat(\"c\") END) || ':' || \
         CASE WHEN (\"c\") IS NOT NULL THEN concat(\"c\") END, 'N')\
         ) COLLATE \"C\", 0) FROM \"t\""
    );
    let none = PgHashQuery::new(&cols[3..], &[Type::TEXT]);
    assert_eq!(
        none.checksum_sql("FROM \"t\""),
        "SELECT count(*), sum(hashtextextended(('') COLLATE \"C\", 0))::text FROM \"t\""
    );
}

/// The whole-row fingerprint hashes every column, even one configured with
/// `hash_column: false` or holding a stored hash; its first sum is the hash
/// strategy's checksum of the same columns; both sums are pinned, so they
/// stay equal across processes and Rust versions (std's `DefaultHasher`
/// promises neither).
#[test]
fn whole_row_fingerprints_are_stable() {
    let mut columns = vec![
        mapped("id", ColumnType::Int64, true, true),
        mapped("name", ColumnType::Text, false, false),
    ];
    columns[1].stored_hash = StoredHash::Read;
    let b = batch(
        &columns,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("a"), None])),
        ],
    );
    let whole = whole_rows(&columns);
    assert!(whole
        .iter()
        .all(|c| c.hash_column && c.stored_hash == StoredHash::No));
    let mut wide = WideChecksum::default();
    wide.add_batch(&b, &whole).unwrap();
    assert_eq!(wide.narrow(), checksum_batch(&b, &whole));
    // "1:1" "1:a" and "1:2" "N": PostgreSQL's
    // hashtextextended('1:11:a', 0) + hashtextextended('1:2N', 0).
    let expected = (row_hash(b"1:11:a") as u64).wrapping_add(row_hash(b"1:2N") as u64);
    assert_eq!(wide.sum, expected);
    // The same sum with the second seed, as PostgreSQL computes it:
    // hashtextextended(t COLLATE "C", x'9e3779b97f4a7c15'::bigint), summed
    // modulo 2^64.
    assert_eq!(
        (wide.rows, wide.sum, wide.second_sum),
        (2, expected, 3_134_667_756_164_026_940)
    );
}
