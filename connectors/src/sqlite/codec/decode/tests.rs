//! Tests of the decoder: error messages, page reuse and lenient reading.

use arrow::array::{Array, AsArray, Int32Array};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};

use super::*;
use crate::sqlite::codec::tests::{uuid_bytes, DEC10, DEC38, UUID_TEXT, VARCHAR20};
use crate::sqlite::codec::text::{parse_decimal, DecimalError};

fn decode(t: &ColumnType, v: ValueRef<'_>) -> Result<ArrayRef> {
    let mut d = ColumnDecoder::new(t);
    d.push(v)?;
    Ok(d.finish())
}

fn decode_err(t: &ColumnType, v: ValueRef<'_>) -> String {
    match decode(t, v) {
        Err(e @ ConnectorError::Value(_)) => e.to_string(),
        other => panic!("expected a Value error for {t}, got {other:?}"),
    }
}

fn text(s: &str) -> ValueRef<'_> {
    ValueRef::Text(s.as_bytes())
}

#[test]
fn decoder_error_messages() {
    use ColumnType::*;
    assert_eq!(
        decode_err(&Int32, ValueRef::Integer(3_000_000_000)),
        "value 3000000000 does not fit int"
    );
    assert_eq!(
        decode_err(&Int32, text("3000000000")),
        "value 3000000000 does not fit int"
    );
    assert_eq!(
        decode_err(&Int16, ValueRef::Integer(-40_000)),
        "value -40000 does not fit smallint"
    );
    assert_eq!(
        decode_err(&Int64, text("99999999999999999999")),
        "value 99999999999999999999 does not fit bigint"
    );
    assert_eq!(
        decode_err(&Int64, ValueRef::Real(1.5)),
        "expected an integer, found real 1.5"
    );
    assert_eq!(
        decode_err(&Int64, text("12abc")),
        r#"expected an integer, found text "12abc""#
    );
    assert_eq!(
        decode_err(&DEC10, text("1.234")),
        "value 1.234 does not fit decimal(10,2)"
    );
    assert_eq!(
        decode_err(&DEC10, text("123456789")),
        "value 123456789 does not fit decimal(10,2)"
    );
    assert_eq!(
        decode_err(&DEC10, ValueRef::Real(0.125)),
        "value 0.125 does not fit decimal(10,2)"
    );
    assert_eq!(
        decode_err(&DEC10, text("12,5")),
        r#"expected a decimal number like -12.50, found text "12,5""#
    );
    assert_eq!(
        decode_err(&Timestamp, text("yesterday")),
        r#"expected a timestamp like 2024-01-15 10:00:00, found text "yesterday""#
    );
    assert_eq!(
        decode_err(&TimestampTz, text("2024-02-30 10:00:00")),
        r#"expected a timestamp like 2024-01-15 10:00:00, found text "2024-02-30 10:00:00""#
    );
    assert_eq!(
        decode_err(&Timestamp, ValueRef::Real(1.5)),
        "expected a timestamp like 2024-01-15 10:00:00, found real 1.5"
    );
    assert_eq!(
        decode_err(&Date, text("15/01/2024")),
        r#"expected a date like 2024-01-15, found text "15/01/2024""#
    );
    assert_eq!(
        decode_err(&Date, text("2024-01-15 10:00:00")),
        r#"expected a date like 2024-01-15, found text "2024-01-15 10:00:00""#
    );
    assert_eq!(
        decode_err(&Time, text("25:00")),
        r#"expected a time like 10:00:00, found text "25:00""#
    );
    assert_eq!(
        decode_err(&Bool, ValueRef::Integer(2)),
        "expected a boolean (0/1 or true/false), found integer 2"
    );
    assert_eq!(
        decode_err(&Uuid, ValueRef::Blob(&[1, 2, 3])),
        "expected a UUID like 67e55044-10b1-426f-9247-bb680e5fe0c8, found a blob of 3 bytes"
    );
    assert_eq!(
        decode_err(&Json, text("{\"a\": }")),
        r#"expected JSON text, found text "{\"a\": }""#
    );
    assert_eq!(
        decode_err(&Binary, ValueRef::Integer(7)),
        "expected a blob, found integer 7"
    );
    assert_eq!(
        decode_err(&Text, ValueRef::Text(b"\xff\xfe")),
        "expected text, found text that is not valid UTF-8 (2 bytes)"
    );
    assert_eq!(
        decode_err(&String { max_len: Some(3) }, text("héllo")),
        r#"value "héllo" (5 characters) does not fit varchar(3)"#
    );
    assert_eq!(
        decode_err(&Float32, ValueRef::Real(1e300)),
        "value 1e300 does not fit real"
    );
    let long = "x".repeat(100);
    assert_eq!(
        decode_err(&Int64, text(&long)),
        format!(
            "expected an integer, found text \"{}\"… (100 characters)",
            "x".repeat(60)
        )
    );
}

#[test]
fn pages_after_the_first_keep_their_type_and_grow_past_the_last_size() {
    use ColumnType::*;
    for t in [
        Int32,
        DEC10,
        Text,
        VARCHAR20,
        TimestampTz,
        Timestamp,
        Binary,
        Uuid,
        Bool,
    ] {
        let mut d = ColumnDecoder::new(&t);
        let value = |i: usize| -> Vec<u8> {
            match t {
                Int32 | Bool => (i % 2).to_string().into_bytes(),
                DEC10 => format!("{i}.25").into_bytes(),
                Timestamp | TimestampTz => {
                    format!("2024-01-{:02} 10:00:00", i % 28 + 1).into_bytes()
                }
                Uuid => UUID_TEXT.as_bytes().to_vec(),
                _ => "x".repeat(i % 20).into_bytes(),
            }
        };
        // Rows `from..to` and a NULL into `d`.
        let fill = |d: &mut ColumnDecoder, from: usize, to: usize| {
            for i in from..to {
                let v = value(i);
                match t {
                    Binary => d.push(ValueRef::Blob(&v)),
                    _ => d.push(ValueRef::Text(&v)),
                }
                .unwrap();
            }
            d.push_null();
        };
        // Pages of 3, 10 (more rows and bytes than the first), 0 and 2 rows.
        let mut pushed = 0;
        for rows in [3, 10, 0, 2] {
            fill(&mut d, pushed, pushed + rows);
            let page = d.finish();
            assert_eq!(page.data_type(), &t.arrow_type(), "{t:?}");
            assert_eq!(page.len(), rows + 1, "{t:?}");
            assert_eq!(page.null_count(), 1, "{t:?}");
            let mut again = ColumnDecoder::new(&t);
            fill(&mut again, pushed, pushed + rows);
            assert_eq!(page.as_ref(), again.finish().as_ref(), "{t:?}");
            pushed += rows;
        }
    }
}

#[test]
fn failed_push_appends_nothing() {
    let mut d = ColumnDecoder::new(&ColumnType::Int32);
    d.push(ValueRef::Integer(1)).unwrap();
    assert!(d.push(text("nope")).is_err());
    d.push(ValueRef::Null).unwrap();
    assert_eq!(
        d.finish().as_ref(),
        &Int32Array::from(vec![Some(1), None]) as &dyn Array
    );
}

fn one<T: arrow::datatypes::ArrowPrimitiveType>(t: &ColumnType, v: ValueRef<'_>) -> T::Native {
    decode(t, v).unwrap().as_primitive::<T>().value(0)
}

#[test]
fn lenient_numbers() {
    use ColumnType::*;
    assert_eq!(one::<Int32Type>(&Int32, text(" 42 ")), 42);
    assert_eq!(one::<Int32Type>(&Int32, text("+7")), 7);
    assert_eq!(one::<Int64Type>(&Int64, ValueRef::Real(3.0)), 3);
    assert_eq!(
        one::<Int64Type>(&Int64, text("-9223372036854775808")),
        i64::MIN
    );
    assert_eq!(one::<Float64Type>(&Float64, ValueRef::Integer(5)), 5.0);
    assert_eq!(one::<Float64Type>(&Float64, text("1.5e3")), 1500.0);
    assert!(one::<Float64Type>(&Float64, text("NaN")).is_nan());
    assert_eq!(one::<Float32Type>(&Float32, ValueRef::Real(0.1)), 0.1f32);

    let dec = |v| one::<Decimal128Type>(&DEC10, v);
    assert_eq!(dec(text("-12.5")), -1250);
    assert_eq!(dec(text("-0.50")), -50);
    assert_eq!(
        dec(text("1.2300000000000000000000000000000000000000000")),
        123
    );
    assert_eq!(
        dec(text("0.000000000000000000000000000000000000000000000")),
        0
    );
    assert_eq!(dec(text("1.5e2")), 15000);
    assert_eq!(dec(text("12E-2")), 12);
    assert_eq!(dec(text(".5")), 50);
    assert_eq!(dec(text("5.")), 500);
    assert_eq!(dec(text("+99999999.99")), 9_999_999_999);
    assert_eq!(dec(ValueRef::Integer(5)), 500);
    assert_eq!(dec(ValueRef::Real(0.1)), 10);
    assert_eq!(dec(ValueRef::Real(-12.5)), -1250);
    let full = "-1234567890123456789012345678.0123456789";
    assert_eq!(
        one::<Decimal128Type>(&DEC38, text(full)),
        -12_345_678_901_234_567_890_123_456_780_123_456_789
    );
    let negative_scale = Decimal {
        precision: 5,
        scale: -2,
    };
    assert_eq!(one::<Decimal128Type>(&negative_scale, text("1200")), 12);
    assert!(decode(&negative_scale, text("1250")).is_err());
    assert_eq!(
        parse_decimal(b"1e99999999999", 38, 0),
        Err(DecimalError::OutOfRange)
    );
    assert_eq!(parse_decimal(b"0e99999999999", 38, 0), Ok(0));
    for bad in ["", ".", "-", "1e", "1.2.3", "inf", "NaN", "1 2", "0x10"] {
        assert_eq!(
            parse_decimal(bad.as_bytes(), 38, 2),
            Err(DecimalError::Invalid),
            "{bad:?}"
        );
    }

    let b = |v| decode(&Bool, v).unwrap().as_boolean().value(0);
    for (v, want) in [
        (ValueRef::Integer(1), true),
        (ValueRef::Integer(0), false),
        (text("true"), true),
        (text("F"), false),
        (text(" t "), true),
        (text("0"), false),
        (text("TRUE"), true),
    ] {
        assert_eq!(b(v), want, "{v:?}");
    }
}

#[test]
fn lenient_temporal() {
    use ColumnType::*;
    let ts = |s: &str| one::<TimestampMicrosecondType>(&Timestamp, text(s));
    let base = ts("2024-01-15 10:00:00");
    assert_eq!(base, 1_705_312_800_000_000);
    assert_eq!(ts("2024-01-15T10:00:00"), base);
    assert_eq!(ts("2024-01-15t10:00:00z"), base);
    assert_eq!(ts("2024-01-15 10:00"), base);
    assert_eq!(ts(" 2024-01-15 10:00:00Z "), base);
    assert_eq!(ts("2024-01-15T12:00:00+02:00"), base);
    assert_eq!(ts("2024-01-15 05:30:00-0430"), base);
    assert_eq!(ts("2024-01-15 12:00:00 +02"), base);
    assert_eq!(ts("2024-01-15 00:00:00"), ts("2024-01-15"));
    assert_eq!(ts("2024-01-15 10:00:00.5"), base + 500_000);
    assert_eq!(ts("2024-01-15 10:00:00.123456789"), base + 123_457);
    assert_eq!(ts("2024-01-15 10:00:00.123456489"), base + 123_456);
    assert_eq!(ts("2024-01-15 23:59:59.9999996"), ts("2024-01-16"));
    assert_eq!(ts("1969-12-31 23:59:59.999999"), -1);
    assert_eq!(
        one::<TimestampMicrosecondType>(&Timestamp, ValueRef::Integer(1_705_312_800)),
        base
    );
    let tz = decode(&TimestampTz, text("2024-01-15 11:00:00+01:00")).unwrap();
    assert_eq!(tz.data_type(), &TimestampTz.arrow_type());
    assert_eq!(tz.as_primitive::<TimestampMicrosecondType>().value(0), base);
    for bad in [
        "2024-01-15 10:00:00.",
        "2024-01-15 10:00:00.1234567890",
        "2024-01-15 10:00:60",
        "2024-01-15 10:00:00+2",
        "2024-01-15 10:00:00 UTC",
        "2024-1-15",
        "2024-01-15X10:00",
        "20240115",
    ] {
        assert!(decode(&Timestamp, text(bad)).is_err(), "{bad}");
    }
    assert!(decode(&Timestamp, ValueRef::Integer(i64::MAX)).is_err());

    assert_eq!(one::<Date32Type>(&Date, text("2024-01-15")), 19737);
    assert_eq!(one::<Date32Type>(&Date, text("2024-01-15 00:00:00")), 19737);
    assert_eq!(one::<Date32Type>(&Date, text("1969-12-31")), -1);
    assert_eq!(
        one::<Time64MicrosecondType>(&Time, text("10:00")),
        36_000_000_000
    );
    assert_eq!(
        one::<Time64MicrosecondType>(&Time, text("00:00:01.25")),
        1_250_000
    );
}

#[test]
fn lenient_text_uuid_json_binary() {
    use ColumnType::*;
    let uuid = |v| {
        decode(&Uuid, v)
            .unwrap()
            .as_fixed_size_binary()
            .value(0)
            .to_vec()
    };
    let want = uuid_bytes(UUID_TEXT).to_vec();
    assert_eq!(uuid(text("67E55044-10B1-426F-9247-BB680E5FE0C8")), want);
    assert_eq!(uuid(text("67e5504410b1426f9247bb680e5fe0c8")), want);
    assert_eq!(uuid(ValueRef::Blob(&want)), want);
    for bad in [
        "67e55044-10b1-426f-9247-bb680e5fe0c",
        "67e55044x10b1-426f-9247-bb680e5fe0c8",
        "g7e5504410b1426f9247bb680e5fe0c8",
    ] {
        assert!(decode(&Uuid, text(bad)).is_err(), "{bad}");
    }

    let s = |t: &ColumnType, v| decode(t, v).unwrap().as_string::<i32>().value(0).to_owned();
    assert_eq!(s(&Text, ValueRef::Integer(-5)), "-5");
    assert_eq!(s(&Text, ValueRef::Real(2.5)), "2.5");
    assert_eq!(s(&Text, ValueRef::Blob("é".as_bytes())), "é");
    assert_eq!(s(&String { max_len: Some(3) }, text("日本語")), "日本語");
    assert_eq!(s(&Json, ValueRef::Integer(5)), "5");
    assert_eq!(s(&Json, text(" {\"a\" : [ ] } ")), " {\"a\" : [ ] } ");
    assert!(decode(&Json, ValueRef::Real(f64::NAN)).is_err());

    assert_eq!(
        decode(&Binary, text("ab"))
            .unwrap()
            .as_binary::<i32>()
            .value(0),
        b"ab"
    );
}
