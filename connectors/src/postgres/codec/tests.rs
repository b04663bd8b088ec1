//! Tests across the codec: numeric values through the encoder, the decoder
//! and the display, and a round trip through a real server.

use arrow::array::{
    Array, ArrayRef, Date32Array, Decimal128Array, StringArray, Time64MicrosecondArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use bytes::BytesMut;
use planner::types::ColumnType;
use tokio_postgres::types::Type;

use super::decode::numeric_to_string;
use super::encode::put_numeric;
use super::*;
use crate::error::{ConnectorError, Result};

fn numeric_bytes(v: i128, scale: i8) -> Vec<u8> {
    let mut buf = BytesMut::new();
    put_numeric(&mut buf, v, scale);
    let len = i32::from_be_bytes(buf[..4].try_into().unwrap());
    assert_eq!(len as usize, buf.len() - 4);
    buf[4..].to_vec()
}

pub(super) fn decode_one(ty: &Type, target: ColumnType, raw: Option<&[u8]>) -> Result<ArrayRef> {
    let mut d = ColumnDecoder::new("c", ty, &target)?;
    d.push(raw)?;
    Ok(d.finish())
}

fn decimal(p: u8, s: i8, raw: &[u8]) -> Result<i128> {
    let a = decode_one(
        &Type::NUMERIC,
        ColumnType::Decimal {
            precision: p,
            scale: s,
        },
        Some(raw),
    )?;
    let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(a.precision(), p);
    assert_eq!(a.scale(), s);
    Ok(a.value(0))
}

const NINES_38: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999;

fn numeric_cases() -> Vec<(i128, i8)> {
    let mut cases = vec![
        (0, 0),
        (0, 2),
        (0, 10),
        (-1, 0),
        (1, 2),             // 0.01
        (-1, 2),            // -0.01
        (9_999_999_999, 2), // 99999999.99
        (-9_999_999_999, 2),
        (10_000, 0),
        (10_000, 4), // 1.0000
        (123_456_789, 10),
        (-123_456_789_012_345, 10),
        (1, 10),
        (100_000_000_000_000_000_000, 0), // 1e20
        (12_345, 1),
        (123, 3),
        (NINES_38, 0),
        (-NINES_38, 0),
        (NINES_38, 10),
        (-NINES_38, 10),
        (NINES_38, 38),
        (NINES_38, 37),
        (10i128.pow(37), 38),
        (i128::from(i64::MAX), 0),
        (i128::from(i64::MIN), 0),
        (i128::from(i64::MIN), 7),
        (u64::MAX as i128 + 1, 5),
    ];
    for s in 0..=12 {
        cases.push((7_000_000_000_123_000_001, s));
        cases.push((-10i128.pow(s as u32), s));
    }
    cases
}

#[test]
fn numeric_round_trip() {
    for (v, s) in numeric_cases() {
        let raw = numeric_bytes(v, s);
        // Same scale: exact.
        assert_eq!(decimal(38, s, &raw).unwrap(), v, "{v} scale {s}");
        // A wider scale multiplies, when it still fits.
        if let Some(w) = v
            .checked_mul(1000)
            .filter(|w| w.unsigned_abs() < POW10[38] as u128)
        {
            if s + 3 <= 38 {
                assert_eq!(decimal(38, s + 3, &raw).unwrap(), w, "{v} scale {s}+3");
            }
        }
        // Display agrees with a straightforward rendering.
        let mag = v.unsigned_abs().to_string();
        let expected = if s == 0 {
            mag
        } else {
            let padded = format!("{mag:0>width$}", width = s as usize + 1);
            let (i, f) = padded.split_at(padded.len() - s as usize);
            format!("{i}.{f}")
        };
        let expected = if v < 0 {
            format!("-{expected}")
        } else {
            expected
        };
        assert_eq!(numeric_to_string(&raw).unwrap(), expected);
    }
}

#[test]
fn numeric_negative_scale() {
    // 12300 stored as decimal(5,-2) unscaled 123.
    let raw = numeric_bytes(123, -2);
    assert_eq!(numeric_to_string(&raw).unwrap(), "12300");
    assert_eq!(decimal(10, 0, &raw).unwrap(), 12300);
    assert_eq!(decimal(10, -2, &raw).unwrap(), 123);
    assert_eq!(decimal(10, -1, &raw).unwrap(), 1230);
    assert!(decimal(10, -3, &raw).is_err());
}

#[test]
fn numeric_rescale_errors() {
    let err = |v: i128, s: i8, p: u8, ts: i8| {
        decimal(p, ts, &numeric_bytes(v, s))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(1234, 3, 10, 2),
        "value 1.234 does not fit decimal(10,2)"
    );
    assert_eq!(
        err(123_456_789_012, 0, 10, 2),
        "value 123456789012 does not fit decimal(10,2)"
    );
    assert_eq!(
        err(-1, 4, 10, 2),
        "value -0.0001 does not fit decimal(10,2)"
    );
    assert_eq!(
        err(100_000_000, 0, 10, 2),
        "value 100000000 does not fit decimal(10,2)"
    );
    // Trailing zeros past the scale are fine.
    assert_eq!(decimal(10, 2, &numeric_bytes(1230, 3)).unwrap(), 123);
    assert_eq!(
        decimal(10, 2, &numeric_bytes(99_999_999_990, 3)).unwrap(),
        9_999_999_999
    );
    // Overflowing i128 during the fold is a plain "does not fit".
    assert_eq!(
        err(NINES_38, 0, 38, 10),
        format!("value {NINES_38} does not fit decimal(38,10)")
    );

    for (sign, text) in [
        (NUMERIC_NAN, "NaN"),
        (NUMERIC_PINF, "Infinity"),
        (NUMERIC_NINF, "-Infinity"),
    ] {
        let mut raw = vec![0, 0, 0, 0];
        raw.extend_from_slice(&sign.to_be_bytes());
        raw.extend_from_slice(&[0, 0]);
        let e = decimal(10, 2, &raw).unwrap_err();
        assert!(matches!(e, ConnectorError::Value(_)));
        assert_eq!(
            e.to_string(),
            format!("value {text} cannot be stored in decimal(10,2)")
        );
    }
}

// ---- against a real server ----

mod live {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_postgres::types::{FromSql, ToSql};
    use tokio_postgres::{Client, NoTls};

    /// A field's raw binary bytes, whatever its type.
    struct Raw<'a>(Option<&'a [u8]>);

    impl<'a> FromSql<'a> for Raw<'a> {
        fn from_sql(
            _: &Type,
            raw: &'a [u8],
        ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Raw(Some(raw)))
        }

        fn from_sql_null(
            _: &Type,
        ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Raw(None))
        }

        fn accepts(_: &Type) -> bool {
            true
        }
    }

    async fn connect() -> Client {
        let (client, conn) =
            tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=test", NoTls)
                .await
                .expect("local PostgreSQL at 127.0.0.1:5432 (user postgres, db test)");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// Runs `sql` and decodes all rows with one decoder per column.
    async fn read(
        client: &Client,
        sql: &str,
        targets: &[ColumnType],
    ) -> Result<(Vec<Type>, Vec<ArrayRef>)> {
        let stmt = client.prepare(sql).await?;
        let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        let mut decoders = stmt
            .columns()
            .iter()
            .zip(targets)
            .map(|(c, t)| ColumnDecoder::new(c.name(), c.type_(), t))
            .collect::<Result<Vec<_>>>()?;
        let rows = client
            .query_raw(&stmt, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.next().await {
            let row = row?;
            for (i, d) in decoders.iter_mut().enumerate() {
                let Raw(raw) = row.get(i);
                d.push(raw)?;
            }
        }
        Ok((
            types,
            decoders.iter_mut().map(ColumnDecoder::finish).collect(),
        ))
    }

    async fn scalar_i64(client: &Client, sql: &str) -> i64 {
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    const COLUMNS: &[(&str, &str)] = &[
        ("c_int2", "smallint"),
        ("c_int4", "integer"),
        ("c_int8", "bigint"),
        ("c_f4", "real"),
        ("c_f8", "double precision"),
        ("c_num38", "numeric(38,10)"),
        ("c_num12", "numeric(12,2)"),
        ("c_bool", "boolean"),
        ("c_vc", "varchar(20)"),
        ("c_text", "text"),
        ("c_bytea", "bytea"),
        ("c_date", "date"),
        ("c_time", "time"),
        ("c_ts", "timestamp"),
        ("c_tstz", "timestamptz"),
        ("c_uuid", "uuid"),
        ("c_jsonb", "jsonb"),
    ];

    fn targets() -> Vec<ColumnType> {
        vec![
            ColumnType::Int16,
            ColumnType::Int32,
            ColumnType::Int64,
            ColumnType::Float32,
            ColumnType::Float64,
            ColumnType::Decimal {
                precision: 38,
                scale: 10,
            },
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            ColumnType::Bool,
            ColumnType::String { max_len: Some(20) },
            ColumnType::Text,
            ColumnType::Binary,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp,
            ColumnType::TimestampTz,
            ColumnType::Uuid,
            ColumnType::Json,
        ]
    }

    const ROWS: &str = r#"
            (0, 0, 0, 0, 0, 0, 0, false, '', '', '\x', '2000-01-01', '00:00:00',
             '2000-01-01 00:00:00', '2000-01-01 00:00:00+00',
             '00000000-0000-0000-0000-000000000000', '{}'),
            (-32768, -2147483648, -9223372036854775808, -3.4028235e38, -1.7976931348623157e308,
             '-9999999999999999999999999999.9999999999', '-9999999999.99', true,
             'héllo wörld ✓ 🎉', 'multi
line	tab "quotes" \ backslash', '\x00ff10', '0044-03-15 BC', '23:59:59.999999',
             '0044-03-15 10:20:30.123456 BC', '1969-12-31 23:59:59.999999+00',
             'ffffffff-ffff-ffff-ffff-ffffffffffff',
             '{"a": [1, 2.5, null, true], "ü": "\u00e9", "n": {"x": "y"}}'),
            (32767, 2147483647, 9223372036854775807, 1.17549435e-38, 'NaN',
             '9999999999999999999999999999.9999999999', '9999999999.99', true,
             '🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉', repeat('long text ', 1000),
             decode(repeat('ab', 5000), 'hex'), '9999-12-31', '12:34:56.000001',
             '1900-02-28 13:14:15.000001', '2262-04-11 23:47:16.854775+00',
             '550e8400-e29b-41d4-a716-446655440000', '[1, "two", {"three": 3}]'),
            (1, 1, 1, 'Infinity', '-Infinity', '0.0000000001', '0.01', false,
             'x', 'y', '\x01', '1970-01-01', '00:00:00.5', '1970-01-01 00:00:00.000001',
             '1970-01-01 00:00:00-05', '123e4567-e89b-12d3-a456-426614174000', '"scalar"'),
            (-1, -1, -1, '-0', 1e-300, '-0.0000000001', '-0.01', null,
             null, null, null, '1999-12-31', '24:00:00', '1999-12-31 23:59:59.999999',
             '0001-01-01 00:00:00+00 BC', null, 'null'),
            (null, null, null, null, null, null, null, null, null, null, null, null, null,
             null, null, null, null)
        "#;

    #[tokio::test]
    async fn round_trip_through_copy() {
        let client = connect().await;
        let schema = format!(
            "codec_test_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path = {schema}"
            ))
            .await
            .unwrap();
        // Run the checks in their own task so that a failed assertion
        // still lets the schema be dropped.
        let client = std::sync::Arc::new(client);
        let checks = tokio::spawn({
            let client = client.clone();
            async move { run_round_trip(&client).await }
        })
        .await;
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
        match checks {
            Ok(outcome) => outcome.unwrap(),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    async fn copy_in(client: &Client, table: &str, data: BytesMut) -> Result<()> {
        let sink = client
            .copy_in::<_, bytes::Bytes>(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
            .await?;
        let mut sink = std::pin::pin!(sink);
        sink.send(data.freeze()).await?;
        sink.finish().await?;
        Ok(())
    }

    async fn run_round_trip(client: &Client) -> Result<()> {
        let cols: Vec<String> = COLUMNS.iter().map(|(n, t)| format!("{n} {t}")).collect();
        let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        client
            .batch_execute(&format!(
                "CREATE TABLE t1 ({cols}); CREATE TABLE t2 (LIKE t1);
                     INSERT INTO t1 VALUES {ROWS};",
                cols = cols.join(", ")
            ))
            .await?;

        let targets = targets();
        let (types, arrays) = read(
            client,
            &format!("SELECT {} FROM t1", names.join(", ")),
            &targets,
        )
        .await?;
        for (a, t) in arrays.iter().zip(&targets) {
            assert_eq!(a.data_type(), &t.arrow_type());
            assert_eq!(a.len(), 6);
        }
        let schema = planner::types::arrow_schema(
            &names
                .iter()
                .zip(&targets)
                .map(|(n, t)| planner::types::ColumnSpec {
                    name: n.to_string(),
                    data_type: *t,
                    unique: false,
                    nullable: true,
                })
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(schema, arrays)?;

        // Split the rows over two batches to exercise decoder reuse on
        // the encoder side too.
        let dest: Vec<(String, Type)> = names
            .iter()
            .map(|n| n.to_string())
            .zip(types.iter().cloned())
            .collect();
        let arrow_types: Vec<DataType> = targets.iter().map(|t| t.arrow_type()).collect();
        let enc = BatchEncoder::new(&dest, &arrow_types)?;
        let mut buf = BytesMut::new();
        write_copy_header(&mut buf);
        enc.encode(&batch.slice(0, 2), &mut buf)?;
        enc.encode(&batch.slice(2, 4), &mut buf)?;
        write_copy_trailer(&mut buf);
        copy_in(client, "t2", buf).await?;

        assert_eq!(scalar_i64(client, "SELECT count(*) FROM t2").await, 6);
        let diff = "SELECT count(*) FROM (SELECT * FROM t1 EXCEPT ALL SELECT * FROM t2) d";
        assert_eq!(scalar_i64(client, diff).await, 0, "t1 rows missing from t2");
        let diff = "SELECT count(*) FROM (SELECT * FROM t2 EXCEPT ALL SELECT * FROM t1) d";
        assert_eq!(scalar_i64(client, diff).await, 0, "t2 rows not in t1");
        // EXCEPT treats NaN = NaN and -0 = 0; check the float bits exactly.
        let bits = "SELECT count(*) FROM t1 JOIN t2 USING (c_int8)
                        WHERE c_int8 IS NOT NULL
                          AND (float4send(t1.c_f4) IS DISTINCT FROM float4send(t2.c_f4)
                           OR float8send(t1.c_f8) IS DISTINCT FROM float8send(t2.c_f8))";
        assert_eq!(scalar_i64(client, bits).await, 0, "float bits differ");

        // Widening into an existing table whose types are wider than the
        // config: ints to bigint/numeric, real to double precision.
        client
            .batch_execute(
                "CREATE TABLE t3 (c_int2 integer, c_int4 numeric, c_int8 numeric(30,0),
                                      c_f4 double precision, c_ts timestamptz, c_text varchar)",
            )
            .await?;
        let pick = [0usize, 1, 2, 3, 13, 9];
        let dest3: Vec<(String, Type)> = vec![
            ("c_int2".into(), Type::INT4),
            ("c_int4".into(), Type::NUMERIC),
            ("c_int8".into(), Type::NUMERIC),
            ("c_f4".into(), Type::FLOAT8),
            ("c_ts".into(), Type::TIMESTAMPTZ),
            ("c_text".into(), Type::VARCHAR),
        ];
        let sub = batch.project(&pick)?;
        let sub_types: Vec<DataType> = sub
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let enc3 = BatchEncoder::new(&dest3, &sub_types)?;
        let mut buf = BytesMut::new();
        write_copy_header(&mut buf);
        enc3.encode(&sub, &mut buf)?;
        write_copy_trailer(&mut buf);
        copy_in(client, "t3", buf).await?;
        let diff = "SELECT count(*) FROM (
                    SELECT c_int2, c_int4, c_int8, c_f4::float8, c_ts, c_text FROM t1
                    EXCEPT ALL
                    SELECT c_int2, c_int4, c_int8, c_f4, c_ts AT TIME ZONE 'UTC', c_text FROM t3) d";
        assert_eq!(scalar_i64(client, diff).await, 0, "widened copy differs");

        check_display_matches_server(client).await?;
        check_known_values(client).await?;
        check_numeric_bytes_match_server(client).await?;
        check_value_errors(client).await?;
        Ok(())
    }

    /// `display_value` should print what PostgreSQL itself prints (in a
    /// UTC session), except for floats and truncated long values.
    async fn check_display_matches_server(client: &Client) -> Result<()> {
        client.batch_execute("SET TimeZone = 'UTC'").await?;
        let shown = [
            "c_int2", "c_int4", "c_int8", "c_num38", "c_num12", "c_bool", "c_vc", "c_text",
            "c_bytea", "c_date", "c_time", "c_ts", "c_tstz", "c_uuid", "c_jsonb",
        ];
        let sql = format!(
            "SELECT {}, {} FROM t1",
            shown.join(", "),
            shown
                .iter()
                .map(|c| format!("{c}::text"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let stmt = client.prepare(&sql).await?;
        let rows = client
            .query_raw(&stmt, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await?;
        let mut rows = std::pin::pin!(rows);
        let mut checked = 0;
        while let Some(row) = rows.next().await {
            let row = row?;
            for (i, col) in shown.iter().enumerate() {
                let Raw(raw) = row.get(i);
                let text: Option<String> = row.get(shown.len() + i);
                let ours = display_value(stmt.columns()[i].type_(), raw);
                let expected = match text {
                    None => "NULL".to_string(),
                    Some(t) if t.chars().count() > DISPLAY_MAX_CHARS => continue,
                    Some(t) => t,
                };
                assert_eq!(ours, expected, "{col}");
                checked += 1;
            }
        }
        assert!(checked > 60, "{checked}");
        Ok(())
    }

    /// Round trips cannot catch a conversion that is wrong both ways
    /// (an epoch off by a day, say), so pin some absolute values.
    async fn check_known_values(client: &Client) -> Result<()> {
        let (_, a) = read(
            client,
            "SELECT '1970-01-02'::date, '1970-01-01 00:00:01.5'::timestamp,
                        '1970-01-01 00:00:00.000001+00'::timestamptz, '01:00:00'::time,
                        '1969-12-31'::date::date, '-12.5'::numeric, '1e20'::numeric,
                        '0.00012'::numeric, 'abc'::name, '{\"k\": 1}'::json,
                        '1970-01-02'::date, 5::smallint",
            &[
                ColumnType::Date,
                ColumnType::Timestamp,
                ColumnType::TimestampTz,
                ColumnType::Time,
                ColumnType::Date,
                ColumnType::Decimal {
                    precision: 10,
                    scale: 3,
                },
                ColumnType::Decimal {
                    precision: 38,
                    scale: 0,
                },
                ColumnType::Decimal {
                    precision: 10,
                    scale: 5,
                },
                ColumnType::Text,
                ColumnType::Json,
                ColumnType::TimestampTz,
                ColumnType::Decimal {
                    precision: 5,
                    scale: 0,
                },
            ],
        )
        .await?;
        let date = |i: usize| {
            a[i].as_any()
                .downcast_ref::<Date32Array>()
                .unwrap()
                .value(0)
        };
        let ts = |i: usize| {
            a[i].as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap()
                .value(0)
        };
        let dec = |i: usize| {
            a[i].as_any()
                .downcast_ref::<Decimal128Array>()
                .unwrap()
                .value(0)
        };
        let text = |i: usize| {
            a[i].as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0)
                .to_string()
        };
        assert_eq!(date(0), 1);
        assert_eq!(ts(1), 1_500_000);
        assert_eq!(ts(2), 1);
        assert_eq!(
            a[3].as_any()
                .downcast_ref::<Time64MicrosecondArray>()
                .unwrap()
                .value(0),
            3_600_000_000
        );
        assert_eq!(date(4), -1);
        assert_eq!(dec(5), -12_500);
        assert_eq!(dec(6), 10i128.pow(20));
        assert_eq!(dec(7), 12);
        assert_eq!(text(8), "abc");
        assert_eq!(text(9), "{\"k\": 1}");
        assert_eq!(ts(10), MICROS_PER_DAY);
        assert_eq!(dec(11), 5);
        Ok(())
    }

    /// Our numeric encoding should be byte-for-byte what the server
    /// itself sends for the same value.
    async fn check_numeric_bytes_match_server(client: &Client) -> Result<()> {
        for (v, s) in numeric_cases() {
            let text = numeric_to_string(&numeric_bytes(v, s)).unwrap();
            let stmt = client.prepare("SELECT $1::text::numeric").await?;
            let rows = client
                .query_raw(&stmt, [&text as &(dyn ToSql + Sync)])
                .await?;
            let mut rows = std::pin::pin!(rows);
            let row = rows.next().await.unwrap()?;
            let Raw(raw) = row.get(0);
            assert_eq!(raw.unwrap(), &numeric_bytes(v, s)[..], "{text}");
        }
        Ok(())
    }

    async fn check_value_errors(client: &Client) -> Result<()> {
        let err = |sql: &'static str, t: ColumnType| async move {
            read(client, sql, &[t]).await.unwrap_err()
        };
        let e = err(
            "SELECT 1.234::numeric",
            ColumnType::Decimal {
                precision: 10,
                scale: 2,
            },
        )
        .await;
        assert_eq!(e.to_string(), "value 1.234 does not fit decimal(10,2)");
        let e = err(
            "SELECT 123456789012::numeric",
            ColumnType::Decimal {
                precision: 10,
                scale: 2,
            },
        )
        .await;
        assert_eq!(
            e.to_string(),
            "value 123456789012 does not fit decimal(10,2)"
        );
        let e = err(
            "SELECT 'NaN'::numeric",
            ColumnType::Decimal {
                precision: 10,
                scale: 2,
            },
        )
        .await;
        assert!(matches!(e, ConnectorError::Value(_)), "{e}");
        let e = err("SELECT 'infinity'::timestamptz", ColumnType::TimestampTz).await;
        assert!(e.to_string().contains("infinity cannot be stored"), "{e}");
        let e = err("SELECT 3000000000::int8", ColumnType::Int32).await;
        assert_eq!(e.to_string(), "value 3000000000 does not fit int");
        let e = err("SELECT '127.0.0.1'::inet", ColumnType::Text).await;
        assert!(matches!(e, ConnectorError::Unsupported(_)), "{e}");
        Ok(())
    }
}
