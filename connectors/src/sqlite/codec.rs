//! SQLite <-> Arrow value codec.
//!
//! SQLite has five storage classes and per-column *affinities* rather than
//! types, so SyncHub fixes one storage convention per [`ColumnType`]:
//!
//! | column type                 | storage | stored form                                   |
//! |-----------------------------|---------|-----------------------------------------------|
//! | `smallint`, `int`, `bigint` | INTEGER | the integer                                   |
//! | `real`, `double`            | REAL    | the float (NaN: TEXT `NaN`, see below)        |
//! | `decimal(p,s)`              | TEXT    | canonical decimal, exactly `s` fraction digits: `-12.50` |
//! | `bool`                      | INTEGER | `0` / `1`                                     |
//! | `string`, `text`, `json`    | TEXT    | the UTF-8 text                                |
//! | `binary`                    | BLOB    | the bytes                                     |
//! | `date`                      | TEXT    | `YYYY-MM-DD`                                  |
//! | `time`                      | TEXT    | `HH:MM:SS.ffffff`                             |
//! | `timestamp`                 | TEXT    | `YYYY-MM-DD HH:MM:SS.ffffff`                  |
//! | `timestamptz`               | TEXT    | `YYYY-MM-DD HH:MM:SS.ffffff+00:00`, in UTC    |
//! | `uuid`                      | TEXT    | lowercase hyphenated                          |
//!
//! Why these choices:
//! - Decimals are TEXT because REAL would round them, and a NUMERIC-affinity
//!   column would silently convert the text back into REAL. The fixed number of
//!   fraction digits makes equal values byte-equal, so upsert keys match.
//! - Temporal values are fixed-width text with exactly six fraction digits (and
//!   four-digit years), so text order is time order and range filters and
//!   partition bounds written as text work. It is also the format SQLite's own
//!   date functions read. Years outside 0000-9999 cannot keep that property and
//!   are rejected on write.
//! - SQLite turns a bound NaN into NULL; NaN is stored as the TEXT `NaN`
//!   instead, which survives every affinity and which the decoder reads back.
//!   (SQLite does drop the sign of `-0.0`; that one is not worth a text form.)
//!
//! Decoding is lenient, since tables may have been written by other tools:
//! integers also from integral REAL and from integer text; floats from INTEGER
//! and numeric text; decimals from TEXT, INTEGER or REAL (the REAL's shortest
//! round-trip digits), parsed exactly; booleans from 0/1 and
//! `true`/`false`/`t`/`f`/`1`/`0`; strings from numbers and UTF-8 BLOBs; binary
//! from TEXT bytes; UUIDs from hyphenated or 32-digit hex text and 16-byte
//! BLOBs; timestamps from `YYYY-MM-DD[( |T)HH:MM[:SS[.f{1,9}]]][Z|±HH[:MM]]`
//! and from INTEGER unix seconds. Decoding never rounds a decimal: a value
//! needing more digits than the column has is an error. Sub-microsecond
//! timestamp digits are rounded to the microsecond, as PostgreSQL does.
//!
//! Text without an offset is UTC. A text with an offset is converted to UTC for
//! both `timestamptz` and `timestamp`: that is how SQLite's own `datetime()`
//! reads it, and rejecting it would fail a sync over data SQLite considers
//! valid.
//!
//! Errors describe only the value (`value 1.234 does not fit decimal(10,2)`);
//! callers prefix the column name and row key.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray,
    BooleanBuilder, Date32Array, Date32Builder, Decimal128Array, Decimal128Builder,
    FixedSizeBinaryArray, FixedSizeBinaryBuilder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    StringArray, StringBuilder, Time64MicrosecondArray, Time64MicrosecondBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use chrono::{Datelike, NaiveDate};
use planner::types::ColumnType;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use crate::error::{ConnectorError, Result};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
/// Days from 1970-01-01 to 0000-01-01 and to 9999-12-31: the dates that fit
/// the four-digit-year text form.
const MIN_TEXT_DAY: i64 = -719_528;
const MAX_TEXT_DAY: i64 = 2_932_896;

// ---------------------------------------------------------------------------
// DDL and affinity
// ---------------------------------------------------------------------------

/// The declared type SyncHub gives a column it creates.
pub fn sqlite_type_ddl(t: &ColumnType) -> &'static str {
    match t {
        ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 | ColumnType::Bool => "INTEGER",
        ColumnType::Float32 | ColumnType::Float64 => "REAL",
        ColumnType::Binary => "BLOB",
        ColumnType::Decimal { .. }
        | ColumnType::String { .. }
        | ColumnType::Text
        | ColumnType::Json
        | ColumnType::Date
        | ColumnType::Time
        | ColumnType::Timestamp
        | ColumnType::TimestampTz
        | ColumnType::Uuid => "TEXT",
    }
}

/// A column's type affinity, which decides how SQLite converts stored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    /// Also "none": values are stored as given.
    Blob,
    Real,
    Numeric,
}

/// The affinity SQLite derives from a declared column type (rules of
/// <https://sqlite.org/datatype3.html#determination_of_column_affinity>, in
/// their order, so `POINT` is INTEGER and `DATETIME` is NUMERIC).
pub fn sqlite_affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// Whether values written by [`ColumnEncoder`] into an existing column with
/// this declared type are stored unchanged, and so read back equal.
///
/// Affinity only ever converts TEXT that looks like a number, numbers, or
/// (REAL affinity) integers; BLOBs are never converted. Hence:
/// - decimals and strings need TEXT or BLOB affinity: NUMERIC, INTEGER or REAL
///   would turn `"12.50"` or `"007"` into a number;
/// - date/time/timestamp/UUID text never looks like a number, so NUMERIC
///   affinity (the affinity of the common `DATETIME`, `DATE`, `UUID`
///   declarations) keeps it too; INTEGER/REAL are refused because such columns
///   usually hold epoch numbers, and mixing them with text breaks ordering;
/// - integers and booleans need INTEGER, NUMERIC or BLOB affinity;
/// - floats also accept INTEGER and NUMERIC affinity, which store integral
///   floats as integers that read back as the same floats;
/// - binary fits any affinity.
pub fn sqlite_type_compatible(config: &ColumnType, declared: &str) -> bool {
    use Affinity::*;
    let affinity = sqlite_affinity(declared);
    match config {
        ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 | ColumnType::Bool => {
            matches!(affinity, Integer | Numeric | Blob)
        }
        ColumnType::Float32 | ColumnType::Float64 => {
            matches!(affinity, Real | Integer | Numeric | Blob)
        }
        ColumnType::Decimal { .. }
        | ColumnType::String { .. }
        | ColumnType::Text
        | ColumnType::Json => {
            matches!(affinity, Text | Blob)
        }
        ColumnType::Date
        | ColumnType::Time
        | ColumnType::Timestamp
        | ColumnType::TimestampTz
        | ColumnType::Uuid => matches!(affinity, Text | Numeric | Blob),
        ColumnType::Binary => true,
    }
}

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

fn check_max_len(s: &str, max_len: Option<u32>, target: &ColumnType) -> Result<()> {
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
    /// `array` must be of `target.arrow_type()`; timestamptz also takes any
    /// time zone (the values are UTC either way), and lossless variants
    /// (Utf8View/LargeUtf8/dictionary strings, narrower integers, seconds or
    /// milliseconds, narrower decimals of the same scale) are cast once here.
    /// Anything else is a `Schema` error.
    pub fn new(array: &ArrayRef, target: &ColumnType) -> Result<Self> {
        let want = target.arrow_type();
        let have = array.data_type();
        let array = if have == &want
            || matches!(
                (target, have),
                (
                    ColumnType::TimestampTz,
                    DataType::Timestamp(TimeUnit::Microsecond, Some(_))
                )
            ) {
            array.clone()
        } else if lossless_cast(have, &want) {
            let options = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(array, &want, &options).map_err(|e| {
                ConnectorError::Value(format!("cannot convert {have} to {target}: {e}"))
            })?
        } else {
            return Err(ConnectorError::Schema(format!(
                "expected Arrow {want} values for a {target} column, found {have}"
            )));
        };
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

fn lossless_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (Utf8View | LargeUtf8, Utf8) | (BinaryView | LargeBinary, Binary) => true,
        (Dictionary(_, values), Utf8) => matches!(**values, Utf8 | LargeUtf8 | Utf8View),
        (Int8 | UInt8, Int16 | Int32 | Int64)
        | (Int16 | UInt16, Int32 | Int64)
        | (UInt32, Int64) => true,
        (Int32, Int64) | (Float16 | Float32, Float64) | (Float16, Float32) => true,
        (Time32(_), Time64(TimeUnit::Microsecond)) => true,
        (
            Timestamp(TimeUnit::Second | TimeUnit::Millisecond, a),
            Timestamp(TimeUnit::Microsecond, b),
        ) => a.is_some() == b.is_some(),
        (Decimal128(p1, s1), Decimal128(p2, s2)) => s1 == s2 && p1 <= p2,
        _ => false,
    }
}

fn out_of_text_range(what: &str, shown: Option<String>, raw: impl fmt::Display) -> ConnectorError {
    let shown = shown.unwrap_or_else(|| raw.to_string());
    ConnectorError::Value(format!(
        "{what} {shown} is outside the years 0000-9999 that SQLite date text can hold in order"
    ))
}

// ---------------------------------------------------------------------------
// Error helpers
// ---------------------------------------------------------------------------

fn does_not_fit(value: impl fmt::Display, target: &ColumnType) -> ConnectorError {
    ConnectorError::Value(format!("value {value} does not fit {target}"))
}

fn mismatch(expected: &str, found: ValueRef<'_>) -> ConnectorError {
    ConnectorError::Value(format!("expected {expected}, found {}", Found(found)))
}

/// Longest prefix of a value quoted in an error message.
const PREVIEW_CHARS: usize = 60;

fn preview(s: &str) -> (&str, bool) {
    match s.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => (&s[..end], true),
        None => (s, false),
    }
}

/// A value shown as-is, shortened.
struct Plain<'a>(&'a str);

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match preview(self.0) {
            (p, false) => f.write_str(p),
            (p, true) => write!(f, "{p}…"),
        }
    }
}

/// A text shown quoted and escaped, shortened.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match preview(self.0) {
            (p, false) => write!(f, "{p:?}"),
            (p, true) => write!(f, "{p:?}… ({} characters)", self.0.chars().count()),
        }
    }
}

/// What a stored value is, for "found ..." messages.
struct Found<'a>(ValueRef<'a>);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ValueRef::Null => f.write_str("NULL"),
            ValueRef::Integer(i) => write!(f, "integer {i}"),
            ValueRef::Real(r) => write!(f, "real {r:?}"),
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => write!(f, "text {}", Quoted(s)),
                Err(_) => write!(f, "text that is not valid UTF-8 ({} bytes)", t.len()),
            },
            ValueRef::Blob(b) => write!(f, "a blob of {} bytes", b.len()),
        }
    }
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

/// Room for the longest formatted value: a decimal of 38 digits with scale
/// -128 is 167 bytes with its sign.
const TEXT_BUF_LEN: usize = 176;

/// A stack buffer for formatted values, so encoding and decoding need no heap.
pub struct TextBuf {
    len: usize,
    bytes: [u8; TEXT_BUF_LEN],
}

impl Default for TextBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl TextBuf {
    pub fn new() -> Self {
        TextBuf {
            len: 0,
            bytes: [0; TEXT_BUF_LEN],
        }
    }

    fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    fn push_slice(&mut self, s: &[u8]) {
        self.bytes[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    /// `n` zero-padded to `width` digits.
    fn push_padded(&mut self, mut n: u32, width: usize) {
        for i in (0..width).rev() {
            self.bytes[self.len + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len += width;
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Only ASCII is ever written, so this cannot fail.
    fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }

    fn from_fmt(args: fmt::Arguments<'_>) -> Self {
        let mut buf = TextBuf::new();
        // Every caller formats a number, which is far shorter than the buffer.
        let _ = fmt::Write::write_fmt(&mut buf, args);
        buf
    }
}

impl fmt::Write for TextBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > TEXT_BUF_LEN {
            return Err(fmt::Error);
        }
        self.push_slice(s.as_bytes());
        Ok(())
    }
}

fn write_decimal(buf: &mut TextBuf, v: i128, scale: i8) {
    let mut digits = [0u8; 40];
    let mut n = 0;
    let mut u = v.unsigned_abs();
    // 128-bit division is a library call: only while the value needs it.
    while u > u128::from(u64::MAX) {
        digits[digits.len() - 1 - n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
    }
    let mut u = u as u64;
    loop {
        digits[digits.len() - 1 - n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    let digits = &digits[digits.len() - n..];
    if v < 0 {
        buf.push(b'-');
    }
    if scale <= 0 {
        buf.push_slice(digits);
        if v != 0 {
            for _ in 0..scale.unsigned_abs() {
                buf.push(b'0');
            }
        }
    } else {
        let scale = scale as usize;
        if n <= scale {
            buf.push_slice(b"0.");
            for _ in n..scale {
                buf.push(b'0');
            }
            buf.push_slice(digits);
        } else {
            buf.push_slice(&digits[..n - scale]);
            buf.push(b'.');
            buf.push_slice(&digits[n - scale..]);
        }
    }
}

/// Writes `YYYY-MM-DD`; false if the year is outside 0000-9999.
fn write_date(buf: &mut TextBuf, days: i64) -> bool {
    if !(MIN_TEXT_DAY..=MAX_TEXT_DAY).contains(&days) {
        return false;
    }
    let Some(date) = NaiveDate::from_num_days_from_ce_opt((days + UNIX_EPOCH_DAYS_FROM_CE) as i32)
    else {
        return false;
    };
    buf.push_padded(date.year() as u32, 4);
    buf.push(b'-');
    buf.push_padded(date.month(), 2);
    buf.push(b'-');
    buf.push_padded(date.day(), 2);
    true
}

/// Writes `HH:MM:SS.ffffff` for microseconds within a day.
fn write_time(buf: &mut TextBuf, micros: i64) {
    let secs = (micros / MICROS_PER_SECOND) as u32;
    buf.push_padded(secs / 3600, 2);
    buf.push(b':');
    buf.push_padded(secs / 60 % 60, 2);
    buf.push(b':');
    buf.push_padded(secs % 60, 2);
    buf.push(b'.');
    buf.push_padded((micros % MICROS_PER_SECOND) as u32, 6);
}

fn write_uuid(buf: &mut TextBuf, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            buf.push(b'-');
        }
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 0xf)]);
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum DecimalError {
    Invalid,
    /// Non-zero digits beyond the scale, or more integer digits than
    /// precision - scale.
    OutOfRange,
}

fn pow10(n: i64) -> Option<i128> {
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= 38)
        .map(|n| 10i128.pow(n))
}

/// Parses `[+-]digits[.digits][e[+-]digits]` exactly into an integer at `scale`.
fn parse_decimal(text: &[u8], precision: u8, scale: i8) -> Result<i128, DecimalError> {
    use DecimalError::*;
    let s = text.trim_ascii();
    let (negative, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match s.iter().position(|&c| c == b'e' || c == b'E') {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&c| c == b'.') {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, &[][..]),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.iter().all(u8::is_ascii_digit)
        || !frac_part.iter().all(u8::is_ascii_digit)
    {
        return Err(Invalid);
    }
    let exponent = match exponent {
        None => 0,
        Some(e) => {
            let (sign, digits) = match e.first() {
                Some(b'-') => (-1, &e[1..]),
                Some(b'+') => (1, &e[1..]),
                _ => (1, e),
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(Invalid);
            }
            // Saturating: any exponent this large is out of range anyway.
            sign * digits
                .iter()
                .fold(0i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(100_000))
        }
    };

    let value = if exponent == 0
        && int_part.len() + frac_part.len() <= 18
        && frac_part.len() as i64 <= i64::from(scale)
    {
        short_decimal(int_part, frac_part, precision, scale)?
    } else {
        long_decimal(int_part, frac_part, exponent, precision, scale)?
    };
    Ok(if negative { -value } else { value })
}

/// Digits (at most 18, no more fraction digits than `scale`) at `scale`:
/// every value SyncHub writes, and most others. u64 arithmetic, where
/// `long_decimal` does a 128-bit power and multiply per digit.
fn short_decimal(
    int_part: &[u8],
    frac_part: &[u8],
    precision: u8,
    scale: i8,
) -> Result<i128, DecimalError> {
    let digits = int_part
        .iter()
        .chain(frac_part)
        .fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0'));
    if digits == 0 {
        return Ok(0);
    }
    let value = pow10(i64::from(scale) - frac_part.len() as i64)
        .and_then(|p| i128::from(digits).checked_mul(p))
        .ok_or(DecimalError::OutOfRange)?;
    if value >= 10i128.pow(u32::from(precision.min(38))) {
        return Err(DecimalError::OutOfRange);
    }
    Ok(value)
}

/// Digits times 10^`exponent` at `scale`, any length.
fn long_decimal(
    int_part: &[u8],
    frac_part: &[u8],
    exponent: i64,
    precision: u8,
    scale: i8,
) -> Result<i128, DecimalError> {
    use DecimalError::*;
    // Zeros are held back until a non-zero digit follows, so leading and
    // trailing zeros (say "1.5000...0" from another tool) cannot overflow.
    let mut digits: i128 = 0;
    let mut pending_zeros: i64 = 0;
    for &c in int_part.iter().chain(frac_part) {
        let d = i128::from(c - b'0');
        if d == 0 {
            pending_zeros += 1;
            continue;
        }
        digits = if digits == 0 {
            d
        } else {
            pow10(pending_zeros + 1)
                .and_then(|p| digits.checked_mul(p))
                .and_then(|m| m.checked_add(d))
                .ok_or(OutOfRange)?
        };
        pending_zeros = 0;
    }
    if digits == 0 {
        return Ok(0);
    }
    // `digits` has no trailing zeros, so a negative shift means non-zero
    // digits beyond the scale.
    let shift = pending_zeros + exponent + i64::from(scale) - frac_part.len() as i64;
    let value = pow10(shift)
        .and_then(|p| digits.checked_mul(p))
        .ok_or(OutOfRange)?;
    if value >= 10i128.pow(u32::from(precision.min(38))) {
        return Err(OutOfRange);
    }
    Ok(value)
}

fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

struct DateTimeText {
    /// Days since 1970-01-01.
    days: i64,
    /// Microseconds since midnight; a day's worth after rounding 23:59:59.9999995.
    time_micros: i64,
    /// East of UTC.
    offset_secs: i64,
}

/// `YYYY-MM-DD[( |T)HH:MM[:SS[.f{1,9}]][ ][Z|±HH[[:]MM]]]`.
fn parse_datetime(text: &[u8]) -> Option<DateTimeText> {
    let s = text.trim_ascii();
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        number(&s[..4])? as i32,
        number(&s[5..7])?,
        number(&s[8..10])?,
    )?;
    let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
    let rest = &s[10..];
    let Some((&sep, rest)) = rest.split_first() else {
        return Some(DateTimeText {
            days,
            time_micros: 0,
            offset_secs: 0,
        });
    };
    if !matches!(sep, b' ' | b'T' | b't') {
        return None;
    }
    let (time_micros, rest) = parse_time_prefix(rest)?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let offset_secs = match rest {
        [] => 0,
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), body @ ..] => {
            let (h, m) = match body {
                [_, _] => (number(body)?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (number(&[*h1, *h2])?, number(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    Some(DateTimeText {
        days,
        time_micros,
        offset_secs,
    })
}

/// `HH:MM[:SS[.f{1,9}]]` at the start of `s`: microseconds since midnight
/// (rounded half up) and the rest of `s`.
fn parse_time_prefix(s: &[u8]) -> Option<(i64, &[u8])> {
    if s.len() < 5 || s[2] != b':' {
        return None;
    }
    let hours = number(&s[..2])?;
    let minutes = number(&s[3..5])?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let mut rest = &s[5..];
    let mut seconds = 0;
    let mut micros = 0i64;
    if let Some(after) = rest.strip_prefix(b":") {
        seconds = number(after.get(..2)?)?;
        if seconds > 59 {
            return None;
        }
        rest = &after[2..];
        if let Some(after) = rest.strip_prefix(b".") {
            let n = after.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            for i in 0..6 {
                micros = micros * 10
                    + after
                        .get(i)
                        .filter(|_| i < n)
                        .map_or(0, |d| i64::from(d - b'0'));
            }
            if n > 6 && after[6] >= b'5' {
                micros += 1;
            }
            rest = &after[n..];
        }
    }
    let secs = i64::from((hours * 60 + minutes) * 60 + seconds);
    Some((secs * MICROS_PER_SECOND + micros, rest))
}

/// Hyphenated (8-4-4-4-12) or 32 hex digits, either case.
fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    let hyphenated = match s.len() {
        36 => true,
        32 => false,
        _ => return None,
    };
    if hyphenated && (s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-') {
        return None;
    }
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    let mut digits = s
        .iter()
        .enumerate()
        .filter(|&(i, _)| !(hyphenated && matches!(i, 8 | 13 | 18 | 23)));
    for byte in &mut out {
        let (_, &hi) = digits.next()?;
        let (_, &lo) = digits.next()?;
        *byte = hex(hi)? << 4 | hex(lo)?;
    }
    Some(out)
}

/// RFC 8259 JSON validation without building a value. Iterative, so deep
/// nesting cannot overflow the stack; `stack` holds the open brackets' closers.
fn is_json(s: &[u8], stack: &mut Vec<u8>) -> bool {
    stack.clear();
    let mut i = json_ws(s, 0);
    loop {
        // A value starts at `i`.
        match s.get(i) {
            Some(b'{') => {
                i = json_ws(s, i + 1);
                if s.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    stack.push(b'}');
                    match json_key(s, i) {
                        Some(next) => i = next,
                        None => return false,
                    }
                    continue;
                }
            }
            Some(b'[') => {
                i = json_ws(s, i + 1);
                if s.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    stack.push(b']');
                    continue;
                }
            }
            Some(b'"') => match json_string(s, i) {
                Some(next) => i = next,
                None => return false,
            },
            Some(b't') if s[i..].starts_with(b"true") => i += 4,
            Some(b'f') if s[i..].starts_with(b"false") => i += 5,
            Some(b'n') if s[i..].starts_with(b"null") => i += 4,
            Some(b'-' | b'0'..=b'9') => match json_number(s, i) {
                Some(next) => i = next,
                None => return false,
            },
            _ => return false,
        }
        // After a value: close containers until the next element starts.
        loop {
            i = json_ws(s, i);
            let Some(&close) = stack.last() else {
                return i == s.len();
            };
            match s.get(i) {
                Some(b',') => {
                    i = json_ws(s, i + 1);
                    if close == b'}' {
                        match json_key(s, i) {
                            Some(next) => i = next,
                            None => return false,
                        }
                    }
                    break;
                }
                Some(&c) if c == close => {
                    stack.pop();
                    i += 1;
                }
                _ => return false,
            }
        }
    }
}

fn json_ws(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `"key" :` and the whitespace after it; returns where the value starts.
fn json_key(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let i = json_ws(s, json_string(s, i)?);
    if s.get(i) != Some(&b':') {
        return None;
    }
    Some(json_ws(s, i + 1))
}

fn json_string(s: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *s.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' if s.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                _ => return None,
            },
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
}

fn json_number(s: &[u8], mut i: usize) -> Option<usize> {
    let digits = |s: &[u8], mut i: usize| {
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match s.get(i) {
        Some(b'0') => i + 1,
        Some(b'1'..=b'9') => digits(s, i)?,
        _ => return None,
    };
    if s.get(i) == Some(&b'.') {
        i = digits(s, i + 1)?;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(s, i)?;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, StringViewArray, TimestampSecondArray};
    use rusqlite::Connection;

    const DEC38: ColumnType = ColumnType::Decimal {
        precision: 38,
        scale: 10,
    };
    const DEC10: ColumnType = ColumnType::Decimal {
        precision: 10,
        scale: 2,
    };
    const VARCHAR20: ColumnType = ColumnType::String { max_len: Some(20) };
    const UUID_TEXT: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

    fn uuid_bytes(s: &str) -> [u8; 16] {
        parse_uuid(s.as_bytes()).unwrap()
    }

    fn micros(text: &str) -> i64 {
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
    fn round_trip(
        conn: &Connection,
        table: &str,
        cols: &[(ColumnType, &str, ArrayRef)],
        use_bind: bool,
    ) -> Vec<ArrayRef> {
        let ddl: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, (_, decl, _))| format!("c{i} {decl}"))
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
                .map(|t| (t, sqlite_type_ddl(&t), sample(&t)))
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
            .map(|t| (t, sqlite_type_ddl(&t), sample(&t)))
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
    fn affinity_rules() {
        use Affinity::*;
        for (decl, want) in [
            ("INTEGER", Integer),
            ("unsigned big int", Integer),
            ("POINT", Integer),
            ("VARCHAR(255)", Text),
            ("nchar(5)", Text),
            ("CLOB", Text),
            ("BLOB", Blob),
            ("", Blob),
            ("  ", Blob),
            ("REAL", Real),
            ("double precision", Real),
            ("FLOAT", Real),
            ("NUMERIC", Numeric),
            ("DECIMAL(10,5)", Numeric),
            ("DATETIME", Numeric),
            ("BOOLEAN", Numeric),
            // INT wins over CHAR, as in SQLite.
            ("CHARINT", Integer),
        ] {
            assert_eq!(sqlite_affinity(decl), want, "{decl}");
        }
        assert!(sqlite_type_compatible(&ColumnType::Timestamp, "DATETIME"));
        assert!(sqlite_type_compatible(&ColumnType::Binary, "INTEGER"));
        assert!(sqlite_type_compatible(&DEC38, "TEXT"));
        assert!(sqlite_type_compatible(&DEC38, ""));
    }

    #[test]
    fn nan_is_stored_as_text_and_read_back() {
        let conn = Connection::open_in_memory().unwrap();
        let original: ArrayRef =
            Arc::new(Float64Array::from(vec![f64::NAN, f64::NEG_INFINITY, -0.0]));
        let back = round_trip(&conn, "f", &[(ColumnType::Float64, "REAL", original)], true);
        let back = back[0].as_primitive::<Float64Type>();
        assert!(back.value(0).is_nan());
        assert_eq!(back.value(1), f64::NEG_INFINITY);
        // SQLite keeps no sign on a zero.
        assert_eq!(back.value(2).to_bits(), 0.0f64.to_bits());
        assert_eq!(back.null_count(), 0);
    }

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

    #[test]
    fn json_validator() {
        let mut stack = Vec::new();
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for ok in [
            "null",
            "true",
            "false",
            "0",
            "-0.5e+10",
            "1E3",
            "\"\"",
            "\"\\u00e9\\n\"",
            "[]",
            "{}",
            " [1, [2, {\"a\": {}}]] ",
            "{\"a\":1,\"b\":[true,false,null]}",
            deep.as_str(),
        ] {
            assert!(is_json(ok.as_bytes(), &mut stack), "{ok}");
        }
        for bad in [
            "",
            " ",
            "nul",
            "tru",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":}",
            "{a:1}",
            "{\"a\":1,}",
            "[",
            "]",
            "[}",
            "\"abc",
            "\"\\x\"",
            "\"\\u00g0\"",
            "\"tab\there\"",
            "{} {}",
            "NaN",
            "'a'",
        ] {
            assert!(!is_json(bad.as_bytes(), &mut stack), "{bad}");
        }
    }

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

        let ints: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        match ColumnEncoder::new(&ints, &ColumnType::Int32) {
            Err(ConnectorError::Schema(msg)) => assert_eq!(
                msg,
                "expected Arrow Int32 values for a int column, found Int64"
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

    #[test]
    fn short_and_long_decimals_agree() {
        // Every digit string of up to 18 digits built from these pieces, at
        // every split into integer and fraction, at several scales and
        // precisions: the fast way gives what the general way gives.
        let pieces = ["0", "1", "9", "10", "05", "999999999", "123456789012345678"];
        for a in pieces {
            for b in pieces {
                let digits = format!("{a}{b}");
                if digits.len() > 18 {
                    continue;
                }
                for split in 0..=digits.len() {
                    let (int_part, frac_part) = digits.as_bytes().split_at(split);
                    for scale in [0i8, 2, 4, 10, 18, 38] {
                        if frac_part.len() as i64 > i64::from(scale) {
                            continue;
                        }
                        for precision in [1u8, 5, 12, 18, 38] {
                            assert_eq!(
                                short_decimal(int_part, frac_part, precision, scale),
                                long_decimal(int_part, frac_part, 0, precision, scale),
                                "{digits} split at {split}, decimal({precision},{scale})"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn decimal_formatting() {
        let fmt = |v: i128, scale: i8| {
            let mut buf = TextBuf::new();
            write_decimal(&mut buf, v, scale);
            buf.as_str().to_owned()
        };
        assert_eq!(fmt(-1250, 2), "-12.50");
        assert_eq!(fmt(5, 2), "0.05");
        assert_eq!(fmt(-5, 3), "-0.005");
        assert_eq!(fmt(0, 2), "0.00");
        assert_eq!(fmt(0, 0), "0");
        assert_eq!(fmt(12, 0), "12");
        assert_eq!(fmt(12, -2), "1200");
        assert_eq!(fmt(0, -2), "0");
        assert_eq!(
            fmt(i128::MIN, 38),
            "-1.70141183460469231731687303715884105728"
        );
        assert_eq!(fmt(-(10i128.pow(38) - 1), -128).len(), 1 + 38 + 128);
        // Either side of the switch from 128- to 64-bit digits.
        let max = i128::from(u64::MAX);
        assert_eq!(fmt(max, 0), "18446744073709551615");
        assert_eq!(fmt(-(max + 1), 2), "-184467440737095516.16");
        assert_eq!(fmt(10i128.pow(20), 1), "10000000000000000000.0");
    }

    #[test]
    fn text_day_bounds() {
        let days = |y, m, d| {
            i64::from(NaiveDate::from_ymd_opt(y, m, d).unwrap().num_days_from_ce())
                - UNIX_EPOCH_DAYS_FROM_CE
        };
        assert_eq!(days(0, 1, 1), MIN_TEXT_DAY);
        assert_eq!(days(9999, 12, 31), MAX_TEXT_DAY);
        assert_eq!(days(1970, 1, 1), 0);
    }
}
