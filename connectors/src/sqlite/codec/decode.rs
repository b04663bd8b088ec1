//! Decoding: SQLite values into an Arrow column ([`ColumnDecoder`]), leniently.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use planner::types::ColumnType;
use rusqlite::types::ValueRef;

use super::json::is_json;
use super::messages::{does_not_fit, mismatch, Plain, Quoted};
use super::text::{
    parse_datetime, parse_decimal, parse_time_prefix, parse_uuid, DecimalError, TextBuf,
};
use super::{MICROS_PER_DAY, MICROS_PER_SECOND};
use crate::error::{ConnectorError, Result};

// ---------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------

enum Builder {
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Bool(BooleanBuilder),
    Utf8(StringBuilder, Option<u32>),
    Json(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Uuid(FixedSizeBinaryBuilder),
}

impl Builder {
    /// An empty builder for `target` with room for `rows` values and, for
    /// text and binary, `bytes` bytes of them.
    fn with_capacity(target: &ColumnType, rows: usize, bytes: usize) -> Builder {
        match *target {
            ColumnType::Int16 => Builder::Int16(Int16Builder::with_capacity(rows)),
            ColumnType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            ColumnType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Float32 => Builder::Float32(Float32Builder::with_capacity(rows)),
            ColumnType::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            // Not `with_precision_and_scale`: an out-of-range precision is the
            // planner's to reject, and decoding only needs the label.
            ColumnType::Decimal { precision, scale } => Builder::Decimal(
                Decimal128Builder::with_capacity(rows).with_data_type(target.arrow_type()),
                precision,
                scale,
            ),
            ColumnType::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::String { max_len } => {
                Builder::Utf8(StringBuilder::with_capacity(rows, bytes), max_len)
            }
            ColumnType::Text => Builder::Utf8(StringBuilder::with_capacity(rows, bytes), None),
            ColumnType::Json => Builder::Json(StringBuilder::with_capacity(rows, bytes)),
            ColumnType::Binary => Builder::Binary(BinaryBuilder::with_capacity(rows, bytes)),
            ColumnType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            ColumnType::Time => Builder::Time(Time64MicrosecondBuilder::with_capacity(rows)),
            ColumnType::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows))
            }
            ColumnType::TimestampTz => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
            ColumnType::Uuid => Builder::Uuid(FixedSizeBinaryBuilder::with_capacity(rows, 16)),
        }
    }

    /// Bytes of text or binary values held so far (0 for other types).
    fn value_bytes(&self) -> usize {
        match self {
            Builder::Utf8(b, _) | Builder::Json(b) => b.values_slice().len(),
            Builder::Binary(b) => b.values_slice().len(),
            _ => 0,
        }
    }
}

/// Builds one Arrow column from SQLite values of a result column.
pub struct ColumnDecoder {
    target: ColumnType,
    builder: Builder,
    /// Reused by the JSON validator so checking a value does not allocate.
    json_stack: Vec<u8>,
    /// Rows and text bytes the builder of the next page is made for.
    next_capacity: (usize, usize),
}

impl fmt::Debug for ColumnDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColumnDecoder")
            .field("target", &self.target)
            .finish()
    }
}

impl ColumnDecoder {
    pub fn new(target: &ColumnType) -> Self {
        ColumnDecoder {
            target: *target,
            builder: Builder::with_capacity(target, 0, 0),
            json_stack: Vec::new(),
            next_capacity: (0, 0),
        }
    }

    /// Appends one value. On error nothing is appended.
    pub fn push(&mut self, v: ValueRef<'_>) -> Result<()> {
        if let ValueRef::Null = v {
            self.push_null();
            return Ok(());
        }
        let target = self.target;
        match &mut self.builder {
            Builder::Int16(b) => b.append_value(narrow_int(v, &target)?),
            Builder::Int32(b) => b.append_value(narrow_int(v, &target)?),
            Builder::Int64(b) => b.append_value(decode_int(v, &target)?),
            Builder::Float32(b) => {
                let f = decode_float(v)?;
                let narrow = f as f32;
                if f.is_finite() && narrow.is_infinite() {
                    return Err(does_not_fit(format_args!("{f:?}"), &target));
                }
                b.append_value(narrow)
            }
            Builder::Float64(b) => b.append_value(decode_float(v)?),
            Builder::Decimal(b, precision, scale) => {
                b.append_value(decode_decimal(v, *precision, *scale, &target)?)
            }
            Builder::Bool(b) => b.append_value(decode_bool(v)?),
            Builder::Utf8(b, max_len) => {
                // Only numbers are formatted; text skips zeroing a buffer.
                let buf;
                let s = match v {
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        std::str::from_utf8(t).map_err(|_| mismatch("text", v))?
                    }
                    ValueRef::Integer(i) => {
                        buf = TextBuf::from_fmt(format_args!("{i}"));
                        buf.as_str()
                    }
                    ValueRef::Real(r) => {
                        buf = TextBuf::from_fmt(format_args!("{r:?}"));
                        buf.as_str()
                    }
                    ValueRef::Null => unreachable!("NULL is handled above"),
                };
                check_max_len(s, *max_len, &target)?;
                b.append_value(s)
            }
            Builder::Json(b) => {
                let buf;
                let s = match v {
                    ValueRef::Text(t) => std::str::from_utf8(t).ok(),
                    // SQLite's JSON functions may have stored a scalar as a number.
                    ValueRef::Integer(i) => Some({
                        buf = TextBuf::from_fmt(format_args!("{i}"));
                        buf.as_str()
                    }),
                    ValueRef::Real(r) if r.is_finite() => Some({
                        buf = TextBuf::from_fmt(format_args!("{r:?}"));
                        buf.as_str()
                    }),
                    _ => None,
                };
                match s {
                    Some(s) if is_json(s.as_bytes(), &mut self.json_stack) => b.append_value(s),
                    _ => return Err(mismatch("JSON text", v)),
                }
            }
            Builder::Binary(b) => match v {
                ValueRef::Blob(bytes) | ValueRef::Text(bytes) => b.append_value(bytes),
                _ => return Err(mismatch("a blob", v)),
            },
            Builder::Date(b) => b.append_value(decode_date(v)?),
            Builder::Time(b) => b.append_value(decode_time(v)?),
            Builder::Timestamp(b) => b.append_value(decode_timestamp(v, &target)?),
            Builder::Uuid(b) => b.append_value(decode_uuid(v)?)?,
        }
        Ok(())
    }

    fn push_null(&mut self) {
        match &mut self.builder {
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal(b, ..) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Utf8(b, _) | Builder::Json(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Uuid(b) => b.append_null(),
        }
    }

    /// Number of values pushed since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        match &self.builder {
            Builder::Int16(b) => b.len(),
            Builder::Int32(b) => b.len(),
            Builder::Int64(b) => b.len(),
            Builder::Float32(b) => b.len(),
            Builder::Float64(b) => b.len(),
            Builder::Decimal(b, ..) => b.len(),
            Builder::Bool(b) => b.len(),
            Builder::Utf8(b, _) | Builder::Json(b) => b.len(),
            Builder::Binary(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Time(b) => b.len(),
            Builder::Timestamp(b) => b.len(),
            Builder::Uuid(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The array of the values pushed so far, of type `target.arrow_type()`;
    /// the decoder starts over empty.
    pub fn finish(&mut self) -> ArrayRef {
        // The next page is sized like this one (an eighth more room for
        // text), so its buffers are allocated once instead of doubling from
        // empty: allocations of one size, again and again, keep glibc's
        // allocator from fragmenting, and the RSS flat over a long run. An
        // empty page keeps the previous size.
        if !self.is_empty() {
            let bytes = self.builder.value_bytes();
            self.next_capacity = (self.len(), bytes + bytes / 8);
        }
        let (rows, bytes) = self.next_capacity;
        let mut full = std::mem::replace(
            &mut self.builder,
            Builder::with_capacity(&self.target, rows, bytes),
        );
        match &mut full {
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Decimal(b, ..) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Utf8(b, _) | Builder::Json(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Uuid(b) => Arc::new(b.finish()),
        }
    }
}

fn decode_int(v: ValueRef<'_>, target: &ColumnType) -> Result<i64> {
    match v {
        ValueRef::Integer(i) => Ok(i),
        // 2^63 is exact in f64; the range is half-open because i64::MAX is not.
        ValueRef::Real(r) if r.fract() == 0.0 => {
            if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&r) {
                Ok(r as i64)
            } else {
                Err(does_not_fit(format_args!("{r}"), target))
            }
        }
        ValueRef::Text(t) => {
            let s = std::str::from_utf8(t)
                .map_err(|_| mismatch("an integer", v))?
                .trim();
            match s.parse::<i64>() {
                Ok(i) => Ok(i),
                Err(e) => match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        Err(does_not_fit(Plain(s), target))
                    }
                    _ => Err(mismatch("an integer", v)),
                },
            }
        }
        _ => Err(mismatch("an integer", v)),
    }
}

fn narrow_int<T: TryFrom<i64>>(v: ValueRef<'_>, target: &ColumnType) -> Result<T> {
    let i = decode_int(v, target)?;
    T::try_from(i).map_err(|_| does_not_fit(i, target))
}

fn decode_float(v: ValueRef<'_>) -> Result<f64> {
    match v {
        ValueRef::Real(r) => Ok(r),
        ValueRef::Integer(i) => Ok(i as f64),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| mismatch("a number", v)),
        _ => Err(mismatch("a number", v)),
    }
}

fn decode_decimal(v: ValueRef<'_>, precision: u8, scale: i8, target: &ColumnType) -> Result<i128> {
    let buf;
    let text: &[u8] = match v {
        ValueRef::Text(t) => t,
        ValueRef::Integer(i) => {
            buf = TextBuf::from_fmt(format_args!("{i}"));
            buf.bytes()
        }
        // `{:e}` gives the shortest digits that round-trip, i.e. the decimal
        // the writer most likely meant (0.1, not 0.1000000000000000055...).
        ValueRef::Real(r) => {
            buf = TextBuf::from_fmt(format_args!("{r:e}"));
            buf.bytes()
        }
        _ => return Err(mismatch("a decimal number like -12.50", v)),
    };
    match parse_decimal(text, precision, scale) {
        Ok(d) => Ok(d),
        Err(DecimalError::Invalid) => Err(mismatch("a decimal number like -12.50", v)),
        Err(DecimalError::OutOfRange) => {
            let shown = match v {
                ValueRef::Real(r) => format!("{r:?}"),
                _ => String::from_utf8_lossy(text.trim_ascii()).into_owned(),
            };
            Err(does_not_fit(Plain(&shown), target))
        }
    }
}

fn decode_bool(v: ValueRef<'_>) -> Result<bool> {
    const EXPECTED: &str = "a boolean (0/1 or true/false)";
    match v {
        ValueRef::Integer(0) => Ok(false),
        ValueRef::Integer(1) => Ok(true),
        ValueRef::Real(0.0) => Ok(false),
        ValueRef::Real(1.0) => Ok(true),
        ValueRef::Text(t) => {
            let t = t.trim_ascii();
            let is = |word: &str| t.eq_ignore_ascii_case(word.as_bytes());
            if is("true") || is("t") || is("1") {
                Ok(true)
            } else if is("false") || is("f") || is("0") {
                Ok(false)
            } else {
                Err(mismatch(EXPECTED, v))
            }
        }
        _ => Err(mismatch(EXPECTED, v)),
    }
}

fn decode_date(v: ValueRef<'_>) -> Result<i32> {
    const EXPECTED: &str = "a date like 2024-01-15";
    let ValueRef::Text(t) = v else {
        return Err(mismatch(EXPECTED, v));
    };
    match parse_datetime(t) {
        // A timestamp at midnight is a date written by a tool with no date type.
        Some(dt) if dt.time_micros == 0 && dt.offset_secs == 0 => Ok(dt.days as i32),
        _ => Err(mismatch(EXPECTED, v)),
    }
}

fn decode_time(v: ValueRef<'_>) -> Result<i64> {
    const EXPECTED: &str = "a time like 10:00:00";
    let ValueRef::Text(t) = v else {
        return Err(mismatch(EXPECTED, v));
    };
    match parse_time_prefix(t.trim_ascii()) {
        Some((micros, rest)) if rest.is_empty() && micros < MICROS_PER_DAY => Ok(micros),
        _ => Err(mismatch(EXPECTED, v)),
    }
}

fn decode_timestamp(v: ValueRef<'_>, target: &ColumnType) -> Result<i64> {
    const EXPECTED: &str = "a timestamp like 2024-01-15 10:00:00";
    match v {
        ValueRef::Text(t) => match parse_datetime(t) {
            Some(dt) => {
                Ok(dt.days * MICROS_PER_DAY + dt.time_micros - dt.offset_secs * MICROS_PER_SECOND)
            }
            None => Err(mismatch(EXPECTED, v)),
        },
        // Unix seconds: what SQLite's unixepoch() and strftime('%s') produce.
        ValueRef::Integer(secs) => secs
            .checked_mul(MICROS_PER_SECOND)
            .ok_or_else(|| does_not_fit(secs, target)),
        _ => Err(mismatch(EXPECTED, v)),
    }
}

fn decode_uuid(v: ValueRef<'_>) -> Result<[u8; 16]> {
    const EXPECTED: &str = "a UUID like 67e55044-10b1-426f-9247-bb680e5fe0c8";
    match v {
        ValueRef::Blob(b) => b.try_into().map_err(|_| mismatch(EXPECTED, v)),
        ValueRef::Text(t) => parse_uuid(t.trim_ascii()).ok_or_else(|| mismatch(EXPECTED, v)),
        _ => Err(mismatch(EXPECTED, v)),
    }
}

pub(super) fn check_max_len(s: &str, max_len: Option<u32>, target: &ColumnType) -> Result<()> {
    if let Some(max) = max_len {
        // Byte length bounds the character count, so most values skip counting.
        if s.len() > max as usize {
            let chars = s.chars().count();
            if chars > max as usize {
                return Err(ConnectorError::Value(format!(
                    "value {} ({chars} characters) does not fit {target}",
                    Quoted(s)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
