//! Tests across the codec: sample columns of every type written with the
//! encoder and read back with the decoder, and the values SQLite stores.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Float64Type;
use planner::types::ColumnType;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;

use crate::sql::{Dialect, SqliteDialect};

use super::text::{parse_datetime, parse_uuid};
use super::*;

pub(super) const DEC38: ColumnType = ColumnType::Decimal {
    precision: 38,
    scale: 10,
};
pub(super) const DEC10: ColumnType = ColumnType::Decimal {
    precision: 10,
    scale: 2,
};
pub(super) const VARCHAR20: ColumnType = ColumnType::String { max_len: Some(20) };
pub(super) const UUID_TEXT: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

pub(super) fn uuid_bytes(s: &str) -> [u8; 16] {
    parse_uuid(s.as_bytes()).unwrap()
}

pub(super) fn micros(text: &str) -> i64 {
    let dt = parse_datetime(text.as_bytes()).unwrap();
    dt.days * MICROS_PER_DAY + dt.time_micros - dt.offset_secs * MICROS_PER_SECOND
}

/// Five rows per type with a NULL in row 1 and the edge values of the type.
fn sample(t: &ColumnType) -> ArrayRef {
    let max38 = 10i128.pow(38) - 1;
    match t {
        ColumnType::Int16 => Arc::new(Int16Array::from(vec![
            Some(i16::MIN),
            None,
            Some(0),
            Some(i16::MAX),
            Some(-1),
        ])),
        ColumnType::Int32 => Arc::new(Int32Array::from(vec![
            Some(i32::MIN),
            None,
            Some(0),
            Some(i32::MAX),
            Some(-1),
        ])),
        ColumnType::Int64 => Arc::new(Int64Array::from(vec![
            Some(i64::MIN),
            None,
            Some(0),
            Some(i64::MAX),
            Some(-1),
        ])),
        ColumnType::Float32 => Arc::new(Float32Array::from(vec![
            Some(1.5),
            None,
            Some(f32::MAX),
            Some(-0.1),
            Some(f32::MIN_POSITIVE),
        ])),
        ColumnType::Float64 => Arc::new(Float64Array::from(vec![
            Some(0.1),
            None,
            Some(f64::MAX),
            Some(-1e-300),
            Some(f64::INFINITY),
        ])),
        ColumnType::Decimal { precision, scale } => {
            let values = if *precision == 38 {
                vec![
                    Some(max38),
                    None,
                    Some(-max38),
                    Some(-125_000_000_000),
                    Some(1),
                ]
            } else {
                vec![
                    Some(-1250),
                    None,
                    Some(9_999_999_999),
                    Some(-9_999_999_999),
                    Some(5),
                ]
            };
            Arc::new(
                Decimal128Array::from(values)
                    .with_precision_and_scale(*precision, *scale)
                    .unwrap(),
            )
        }
        ColumnType::Bool => Arc::new(BooleanArray::from(vec![
            Some(true),
            None,
            Some(false),
            Some(true),
            Some(false),
        ])),
        ColumnType::String { .. } => Arc::new(StringArray::from(vec![
            Some("héllo wörld 🎉"),
            None,
            Some(""),
            Some("quote ' \" \\ 007"),
            Some("日本語のテキスト二十文字以内"),
        ])),
        ColumnType::Text => Arc::new(StringArray::from(vec![
            Some("a\nmulti-line\ttext with a NUL \0 inside"),
            None,
            Some("12.50"),
            Some("007"),
            Some("ÿ"),
        ])),
        ColumnType::Json => Arc::new(StringArray::from(vec![
            Some(r#"{"a": [1, 2.5, null, true], "b": {"c": "\u00e9"}}"#),
            None,
            Some("[]"),
            Some(r#""just a string""#),
            Some("12345678901234567890"),
        ])),
        ColumnType::Binary => Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\x01\xff"[..]),
            None,
            Some(&b""[..]),
            Some(&b"12"[..]),
            Some(&[0u8; 300][..]),
        ])),
        ColumnType::Date => Arc::new(Date32Array::from(vec![
            Some(0),
            None,
            Some(MIN_TEXT_DAY as i32),
            Some(MAX_TEXT_DAY as i32),
            Some(-1),
        ])),
        ColumnType::Time => Arc::new(Time64MicrosecondArray::from(vec![
            Some(0),
            None,
            Some(MICROS_PER_DAY - 1),
            Some(12_345_678),
            Some(36_000_000_000),
        ])),
        ColumnType::Timestamp | ColumnType::TimestampTz => {
            let array = TimestampMicrosecondArray::from(vec![
                Some(-1),
                None,
                Some(micros("1969-07-20 20:17:40.123456")),
                Some(micros("0000-01-01 00:00:00")),
                Some(micros("9999-12-31 23:59:59.999999")),
            ]);
            if *t == ColumnType::TimestampTz {
                Arc::new(array.with_timezone("UTC"))
            } else {
                Arc::new(array)
            }
        }
        ColumnType::Uuid => Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![
                    Some(uuid_bytes(UUID_TEXT)),
                    None,
                    Some([0; 16]),
                    Some([0xff; 16]),
                    Some(*b"0123456789abcdef"),
                ]
                .into_iter(),
                16,
            )
            .unwrap(),
        ),
    }
}

fn all_types() -> Vec<ColumnType> {
    vec![
        ColumnType::Int16,
        ColumnType::Int32,
        ColumnType::Int64,
        ColumnType::Float32,
        ColumnType::Float64,
        DEC38,
        DEC10,
        ColumnType::Bool,
        VARCHAR20,
        ColumnType::Text,
        ColumnType::Json,
        ColumnType::Binary,
        ColumnType::Date,
        ColumnType::Time,
        ColumnType::Timestamp,
        ColumnType::TimestampTz,
        ColumnType::Uuid,
    ]
}

/// Writes the arrays into a fresh table with the given declared types,
/// through `value()` or `bind()`, and reads them back with the decoder.
fn round_trip<D: AsRef<str>>(
    conn: &Connection,
    table: &str,
    cols: &[(ColumnType, D, ArrayRef)],
    use_bind: bool,
) -> Vec<ArrayRef> {
    let ddl: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, decl, _))| format!("c{i} {}", decl.as_ref()))
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, {})",
        ddl.join(", ")
    ))
    .unwrap();
    let encoders: Vec<ColumnEncoder> = cols
        .iter()
        .map(|(t, _, a)| ColumnEncoder::new(a, t).unwrap())
        .collect();
    let placeholders = vec!["?"; cols.len() + 1].join(", ");
    let mut insert = conn
        .prepare(&format!("INSERT INTO {table} VALUES ({placeholders})"))
        .unwrap();
    let rows = cols[0].2.len();
    for row in 0..rows {
        if use_bind {
            insert.raw_bind_parameter(1, row as i64).unwrap();
            for (i, e) in encoders.iter().enumerate() {
                e.bind(&mut insert, i + 2, row, &mut TextBuf::new())
                    .unwrap();
            }
            insert.raw_execute().unwrap();
        } else {
            let mut params = vec![ToSqlOutput::Owned(Value::Integer(row as i64))];
            params.extend(encoders.iter().map(|e| e.value(row).unwrap()));
            insert.execute(rusqlite::params_from_iter(params)).unwrap();
        }
    }
    let names: Vec<String> = (0..cols.len()).map(|i| format!("c{i}")).collect();
    let mut select = conn
        .prepare(&format!(
            "SELECT {} FROM {table} ORDER BY id",
            names.join(", ")
        ))
        .unwrap();
    let mut decoders: Vec<ColumnDecoder> =
        cols.iter().map(|(t, ..)| ColumnDecoder::new(t)).collect();
    let mut result = select.query([]).unwrap();
    while let Some(row) = result.next().unwrap() {
        for (i, d) in decoders.iter_mut().enumerate() {
            d.push(row.get_ref(i).unwrap()).unwrap();
        }
    }
    assert_eq!(decoders[0].len(), rows);
    let arrays = decoders.iter_mut().map(ColumnDecoder::finish).collect();
    assert!(decoders[0].is_empty(), "finish resets");
    arrays
}

fn stored(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(match r.get_ref(0)? {
                ValueRef::Null => "NULL".to_owned(),
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Real(f) => f.to_string(),
                ValueRef::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
                ValueRef::Blob(b) => format!("{b:?}"),
            })
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

#[test]
fn every_type_round_trips_through_its_own_ddl() {
    let conn = Connection::open_in_memory().unwrap();
    for use_bind in [false, true] {
        let cols: Vec<_> = all_types()
            .into_iter()
            .map(|t| (t, SqliteDialect.type_ddl(&t), sample(&t)))
            .collect();
        let table = if use_bind { "bound" } else { "valued" };
        let back = round_trip(&conn, table, &cols, use_bind);
        for ((t, _, original), decoded) in cols.iter().zip(&back) {
            assert_eq!(decoded.data_type(), &t.arrow_type(), "{t}");
            assert_eq!(decoded, original, "{t} (bind: {use_bind})");
        }
    }
}

#[test]
fn stored_text_follows_the_conventions() {
    let conn = Connection::open_in_memory().unwrap();
    let cols: Vec<_> = all_types()
        .into_iter()
        .map(|t| (t, SqliteDialect.type_ddl(&t), sample(&t)))
        .collect();
    round_trip(&conn, "t", &cols, false);
    let col = |t: ColumnType| all_types().iter().position(|c| *c == t).unwrap();
    let text = |t: ColumnType| {
        stored(
            &conn,
            &format!(
                "SELECT c{} || ':' || typeof(c{0}) FROM t ORDER BY id",
                col(t)
            ),
        )
    };
    assert_eq!(
        text(DEC38),
        [
            "9999999999999999999999999999.9999999999:text",
            "NULL",
            "-9999999999999999999999999999.9999999999:text",
            "-12.5000000000:text",
            "0.0000000001:text"
        ]
    );
    assert_eq!(
        text(DEC10),
        [
            "-12.50:text",
            "NULL",
            "99999999.99:text",
            "-99999999.99:text",
            "0.05:text"
        ]
    );
    assert_eq!(
        text(ColumnType::Bool),
        ["1:integer", "NULL", "0:integer", "1:integer", "0:integer"]
    );
    assert_eq!(
        text(ColumnType::Timestamp),
        [
            "1969-12-31 23:59:59.999999:text",
            "NULL",
            "1969-07-20 20:17:40.123456:text",
            "0000-01-01 00:00:00.000000:text",
            "9999-12-31 23:59:59.999999:text"
        ]
    );
    assert_eq!(
        text(ColumnType::TimestampTz)[0],
        "1969-12-31 23:59:59.999999+00:00:text"
    );
    assert_eq!(
        text(ColumnType::Date),
        [
            "1970-01-01:text",
            "NULL",
            "0000-01-01:text",
            "9999-12-31:text",
            "1969-12-31:text"
        ]
    );
    assert_eq!(
        text(ColumnType::Time)[2..],
        [
            "23:59:59.999999:text",
            "00:00:12.345678:text",
            "10:00:00.000000:text"
        ]
    );
    assert_eq!(text(ColumnType::Uuid)[0], format!("{UUID_TEXT}:text"));
    assert_eq!(
        stored(
            &conn,
            &format!(
                "SELECT hex(c{0}) || ':' || typeof(c{0}) FROM t WHERE id = 0",
                col(ColumnType::Binary)
            )
        ),
        ["0001FF:blob"]
    );
    // Text order is time order, so range filters on the text work.
    let ts = col(ColumnType::Timestamp);
    assert_eq!(
        stored(
            &conn,
            &format!("SELECT id FROM t WHERE c{ts} >= '1969-12-31' ORDER BY c{ts}")
        ),
        ["0", "4"]
    );
    assert_eq!(
        stored(
            &conn,
            &format!("SELECT id FROM t WHERE c{ts} IS NOT NULL ORDER BY c{ts}")
        ),
        ["3", "2", "0", "4"]
    );
    // SQLite's own date functions read the format.
    assert_eq!(
        stored(
            &conn,
            &format!(
                "SELECT datetime(c{}) FROM t WHERE id = 2",
                col(ColumnType::TimestampTz)
            )
        ),
        ["1969-07-20 20:17:40"]
    );
}

#[test]
fn compatible_declared_types_keep_values() {
    let declared = [
        "INTEGER",
        "BIGINT",
        "REAL",
        "DOUBLE PRECISION",
        "TEXT",
        "VARCHAR(20)",
        "BLOB",
        "",
        "NUMERIC",
        "DECIMAL(10,2)",
        "DATETIME",
        "DATE",
        "BOOLEAN",
        "UUID",
        "JSON",
    ];
    let conn = Connection::open_in_memory().unwrap();
    let mut n = 0;
    for t in all_types() {
        for decl in declared {
            if !sqlite_type_compatible(&t, decl) {
                continue;
            }
            n += 1;
            let back = round_trip(
                &conn,
                &format!("t{n}"),
                &[(t, decl, sample(&t))],
                n % 2 == 0,
            );
            assert_eq!(&back[0], &sample(&t), "{t} in a {decl:?} column");
        }
    }
    // The refusals that matter: these would change values.
    for (t, decl) in [
        (DEC10, "DECIMAL(10,2)"),
        (DEC10, "NUMERIC"),
        (ColumnType::Text, "NUMERIC"),
        (ColumnType::Json, "JSON"),
        (ColumnType::Int64, "TEXT"),
        (ColumnType::Int64, "REAL"),
        (ColumnType::Float64, "TEXT"),
        (ColumnType::Timestamp, "INTEGER"),
    ] {
        assert!(!sqlite_type_compatible(&t, decl), "{t} in {decl}");
    }
    // Short decimals survive NUMERIC's trip through REAL (the decoder reads
    // REAL leniently); 38 digits do not.
    conn.execute_batch("CREATE TABLE lossy (c DECIMAL(38,10))")
        .unwrap();
    let enc = ColumnEncoder::new(&sample(&DEC38), &DEC38).unwrap();
    conn.execute("INSERT INTO lossy VALUES (?1)", [enc.value(0).unwrap()])
        .unwrap();
    assert_eq!(
        stored(&conn, "SELECT typeof(c) || ':' || c FROM lossy"),
        ["real:1.0e+28"]
    );
}

#[test]
fn nan_is_stored_as_text_and_read_back() {
    let conn = Connection::open_in_memory().unwrap();
    let original: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN, f64::NEG_INFINITY, -0.0]));
    let back = round_trip(&conn, "f", &[(ColumnType::Float64, "REAL", original)], true);
    let back = back[0].as_primitive::<Float64Type>();
    assert!(back.value(0).is_nan());
    assert_eq!(back.value(1), f64::NEG_INFINITY);
    // SQLite keeps no sign on a zero.
    assert_eq!(back.value(2).to_bits(), 0.0f64.to_bits());
    assert_eq!(back.null_count(), 0);
}
