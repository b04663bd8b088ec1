//! Encoding: an Arrow column's values as SQLite parameters ([`ColumnEncoder`]).

use std::fmt;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use chrono::NaiveDate;
use planner::types::ColumnType;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use super::decode::check_max_len;
use super::messages::{does_not_fit, Plain};
use super::text::{write_date, write_decimal, write_time, write_uuid, TextBuf};
use super::MICROS_PER_DAY;
use crate::error::{ConnectorError, Result};

// ---------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------

enum Values {
    Int16(Int16Array),
    Int32(Int32Array),
    Int64(Int64Array),
    Float32(Float32Array),
    Float64(Float64Array),
    /// The values, 10^precision (the least that does not fit), the scale.
    Decimal(Decimal128Array, Option<u128>, i8),
    Bool(BooleanArray),
    Utf8(StringArray, Option<u32>),
    Binary(BinaryArray),
    Date(Date32Array),
    Time(Time64MicrosecondArray),
    Timestamp(TimestampMicrosecondArray, bool),
    Uuid(FixedSizeBinaryArray),
}

/// Turns the values of one Arrow column into SQLite parameters.
pub struct ColumnEncoder {
    target: ColumnType,
    nulls: Option<NullBuffer>,
    values: Values,
}

impl fmt::Debug for ColumnEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColumnEncoder")
            .field("target", &self.target)
            .finish()
    }
}

impl ColumnEncoder {
    /// `array` is read as `target` through the one conformance layer
    /// ([`crate::conform::conform_array`]): its own Arrow type as it is,
    /// lossless variants converted once here, anything else a `Schema`
    /// error.
    pub fn new(array: &ArrayRef, target: &ColumnType) -> Result<Self> {
        let array = crate::conform::conform_array(array, target)?;
        let values = match *target {
            ColumnType::Int16 => Values::Int16(array.as_primitive::<Int16Type>().clone()),
            ColumnType::Int32 => Values::Int32(array.as_primitive::<Int32Type>().clone()),
            ColumnType::Int64 => Values::Int64(array.as_primitive::<Int64Type>().clone()),
            ColumnType::Float32 => Values::Float32(array.as_primitive::<Float32Type>().clone()),
            ColumnType::Float64 => Values::Float64(array.as_primitive::<Float64Type>().clone()),
            ColumnType::Decimal { precision, scale } => Values::Decimal(
                array.as_primitive::<Decimal128Type>().clone(),
                10u128.checked_pow(u32::from(precision)),
                scale,
            ),
            ColumnType::Bool => Values::Bool(array.as_boolean().clone()),
            ColumnType::String { max_len } => {
                Values::Utf8(array.as_string::<i32>().clone(), max_len)
            }
            ColumnType::Text | ColumnType::Json => {
                Values::Utf8(array.as_string::<i32>().clone(), None)
            }
            ColumnType::Binary => Values::Binary(array.as_binary::<i32>().clone()),
            ColumnType::Date => Values::Date(array.as_primitive::<Date32Type>().clone()),
            ColumnType::Time => Values::Time(array.as_primitive::<Time64MicrosecondType>().clone()),
            ColumnType::Timestamp => Values::Timestamp(
                array.as_primitive::<TimestampMicrosecondType>().clone(),
                false,
            ),
            ColumnType::TimestampTz => Values::Timestamp(
                array.as_primitive::<TimestampMicrosecondType>().clone(),
                true,
            ),
            ColumnType::Uuid => Values::Uuid(array.as_fixed_size_binary().clone()),
        };
        Ok(ColumnEncoder {
            target: *target,
            nulls: array.logical_nulls(),
            values,
        })
    }

    /// The parameter for `row`, borrowing text and blobs from the array;
    /// formatted values (decimals, dates, times, timestamps, UUIDs) are owned
    /// Strings. Panics if `row` is out of bounds.
    pub fn value(&self, row: usize) -> Result<ToSqlOutput<'_>> {
        let mut buf = TextBuf::new();
        Ok(match self.cell(row, &mut buf)? {
            Cell::Null => ToSqlOutput::Owned(Value::Null),
            Cell::Integer(i) => ToSqlOutput::Owned(Value::Integer(i)),
            Cell::Real(r) => ToSqlOutput::Owned(Value::Real(r)),
            Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Cell::Formatted(s) => ToSqlOutput::Owned(Value::Text(s.to_owned())),
        })
    }

    /// Binds `row`'s value as parameter `index` (1-based) of `stmt`. Unlike
    /// [`value`](Self::value) it never allocates: a formatted value is
    /// written into `scratch`, and SQLite copies it from there while binding.
    pub fn bind(
        &self,
        stmt: &mut rusqlite::Statement<'_>,
        index: usize,
        row: usize,
        scratch: &mut TextBuf,
    ) -> Result<()> {
        let value = match self.cell(row, scratch)? {
            Cell::Null => ValueRef::Null,
            Cell::Integer(i) => ValueRef::Integer(i),
            Cell::Real(r) => ValueRef::Real(r),
            Cell::Text(s) | Cell::Formatted(s) => ValueRef::Text(s.as_bytes()),
            Cell::Blob(b) => ValueRef::Blob(b),
        };
        stmt.raw_bind_parameter(index, ToSqlOutput::Borrowed(value))?;
        Ok(())
    }

    /// `row`'s value; a value that must be formatted is written into `buf`
    /// (cleared first) and borrowed from there.
    fn cell<'s, 'b>(&'s self, row: usize, buf: &'b mut TextBuf) -> Result<Cell<'s, 'b>> {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            return Ok(Cell::Null);
        }
        buf.len = 0;
        Ok(match &self.values {
            Values::Int16(a) => Cell::Integer(a.value(row).into()),
            Values::Int32(a) => Cell::Integer(a.value(row).into()),
            Values::Int64(a) => Cell::Integer(a.value(row)),
            Values::Float32(a) => float_cell(a.value(row).into()),
            Values::Float64(a) => float_cell(a.value(row)),
            Values::Decimal(a, limit, scale) => {
                let v = a.value(row);
                write_decimal(buf, v, *scale);
                if limit.is_some_and(|limit| v.unsigned_abs() >= limit) {
                    return Err(does_not_fit(Plain(buf.as_str()), &self.target));
                }
                Cell::Formatted(buf.as_str())
            }
            Values::Bool(a) => Cell::Integer(a.value(row).into()),
            Values::Utf8(a, max_len) => {
                let s = a.value(row);
                check_max_len(s, *max_len, &self.target)?;
                Cell::Text(s)
            }
            Values::Binary(a) => Cell::Blob(a.value(row)),
            Values::Date(a) => {
                let days = a.value(row);
                if !write_date(buf, i64::from(days)) {
                    return Err(out_of_text_range(
                        "date",
                        NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163))
                            .map(|d| d.to_string()),
                        days,
                    ));
                }
                Cell::Formatted(buf.as_str())
            }
            Values::Time(a) => {
                let micros = a.value(row);
                if !(0..MICROS_PER_DAY).contains(&micros) {
                    return Err(ConnectorError::Value(format!(
                        "time value of {micros} microseconds is not within a day"
                    )));
                }
                write_time(buf, micros);
                Cell::Formatted(buf.as_str())
            }
            Values::Timestamp(a, tz) => {
                let micros = a.value(row);
                if !write_date(buf, micros.div_euclid(MICROS_PER_DAY)) {
                    return Err(out_of_text_range(
                        "timestamp",
                        chrono::DateTime::from_timestamp_micros(micros)
                            .map(|d| d.naive_utc().to_string()),
                        micros,
                    ));
                }
                buf.push(b' ');
                write_time(buf, micros.rem_euclid(MICROS_PER_DAY));
                if *tz {
                    buf.push_slice(b"+00:00");
                }
                Cell::Formatted(buf.as_str())
            }
            Values::Uuid(a) => {
                write_uuid(buf, a.value(row));
                Cell::Formatted(buf.as_str())
            }
        })
    }
}

/// One encoded value before it becomes a parameter.
enum Cell<'s, 'b> {
    Null,
    Integer(i64),
    Real(f64),
    /// Borrowed from the column.
    Text(&'s str),
    Blob(&'s [u8]),
    /// Written into the caller's buffer.
    Formatted(&'b str),
}

fn float_cell(f: f64) -> Cell<'static, 'static> {
    if f.is_nan() {
        Cell::Text("NaN")
    } else {
        Cell::Real(f)
    }
}

fn out_of_text_range(what: &str, shown: Option<String>, raw: impl fmt::Display) -> ConnectorError {
    let shown = shown.unwrap_or_else(|| raw.to_string());
    ConnectorError::Value(format!(
        "{what} {shown} is outside the years 0000-9999 that SQLite date text can hold in order"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::codec::tests::{micros, DEC10};
    use crate::sqlite::codec::MIN_TEXT_DAY;
    use arrow::array::{StringViewArray, TimestampSecondArray};
    use std::sync::Arc;

    #[test]
    fn encoder_errors_and_casts() {
        let too_precise: ArrayRef = Arc::new(
            Decimal128Array::from(vec![12_345_678_901i128])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let e = ColumnEncoder::new(&too_precise, &DEC10).unwrap();
        assert_eq!(
            e.value(0).unwrap_err().to_string(),
            "value 123456789.01 does not fit decimal(10,2)"
        );

        let far: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
            micros("9999-12-31 23:59:59.999999") + 1,
        ]));
        let e = ColumnEncoder::new(&far, &ColumnType::Timestamp).unwrap();
        assert_eq!(
            e.value(0).unwrap_err().to_string(),
            "timestamp +10000-01-01 00:00:00 is outside the years 0000-9999 that SQLite date text can hold in order"
        );
        let date: ArrayRef = Arc::new(Date32Array::from(vec![MIN_TEXT_DAY as i32 - 1]));
        assert!(ColumnEncoder::new(&date, &ColumnType::Date)
            .unwrap()
            .value(0)
            .is_err());

        let long: ArrayRef = Arc::new(StringArray::from(vec!["123456"]));
        let e = ColumnEncoder::new(&long, &ColumnType::String { max_len: Some(5) }).unwrap();
        assert_eq!(
            e.value(0).unwrap_err().to_string(),
            r#"value "123456" (6 characters) does not fit varchar(5)"#
        );

        // Wider integers are read when every value fits (the one
        // conformance layer, `crate::conform`), refused when one does not;
        // text is never read as a number.
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let e = ColumnEncoder::new(&ints, &ColumnType::Int32).unwrap();
        assert!(matches!(
            e.value(0).unwrap(),
            ToSqlOutput::Owned(Value::Integer(1))
        ));
        let too_big: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX]));
        match ColumnEncoder::new(&too_big, &ColumnType::Int32) {
            Err(ConnectorError::Value(msg)) => {
                assert!(
                    msg.starts_with("cannot read Int64 values as int: "),
                    "{msg}"
                )
            }
            other => panic!("{other:?}"),
        }
        let text: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
        match ColumnEncoder::new(&text, &ColumnType::Int32) {
            Err(ConnectorError::Schema(msg)) => assert_eq!(
                msg,
                "expected Arrow Int32 values for a int column, found Utf8"
            ),
            other => panic!("{other:?}"),
        }
        let naive: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![1]).with_timezone("UTC"));
        assert!(ColumnEncoder::new(&naive, &ColumnType::Timestamp).is_err());
        let berlin: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("+01:00"));
        let e = ColumnEncoder::new(&berlin, &ColumnType::TimestampTz).unwrap();
        assert!(
            matches!(e.value(0).unwrap(), ToSqlOutput::Owned(Value::Text(t)) if t == "1970-01-01 00:00:00.000000+00:00")
        );

        let view: ArrayRef = Arc::new(StringViewArray::from(vec![Some("a view"), None]));
        let e = ColumnEncoder::new(&view, &ColumnType::Text).unwrap();
        assert!(matches!(
            e.value(0).unwrap(),
            ToSqlOutput::Borrowed(ValueRef::Text(b"a view"))
        ));
        assert!(matches!(
            e.value(1).unwrap(),
            ToSqlOutput::Owned(Value::Null)
        ));
        let narrow: ArrayRef = Arc::new(Int32Array::from(vec![7]));
        let e = ColumnEncoder::new(&narrow, &ColumnType::Int64).unwrap();
        assert!(matches!(
            e.value(0).unwrap(),
            ToSqlOutput::Owned(Value::Integer(7))
        ));
        let secs: ArrayRef = Arc::new(TimestampSecondArray::from(vec![1_705_312_800]));
        let e = ColumnEncoder::new(&secs, &ColumnType::Timestamp).unwrap();
        assert!(
            matches!(e.value(0).unwrap(), ToSqlOutput::Owned(Value::Text(t)) if t == "2024-01-15 10:00:00.000000")
        );
    }
}
