//! PostgreSQL binary wire format <-> Arrow.
//!
//! Reading: rows come back from `query_raw` in the binary result format; one
//! [`ColumnDecoder`] per column turns the raw field bytes into an Arrow array
//! of the column's configured [`ColumnType`].
//!
//! Writing: [`BatchEncoder`] turns a `RecordBatch` into `COPY ... FROM STDIN
//! (FORMAT binary)` tuples, going by the *actual* destination column types so
//! that an existing table with wider columns than the config still loads.
//!
//! Both directions are written by hand instead of going through
//! `postgres-types`' `ToSql`/`FromSql`: those work one boxed value at a time,
//! while here a value costs one `match` and a few byte copies, with no
//! allocation outside the Arrow buffers themselves.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder,
    Date32Array, Date32Builder, Decimal128Array, Decimal128Builder, FixedSizeBinaryArray,
    FixedSizeBinaryBuilder, Float32Array, Float32Builder, Float64Array, Float64Builder, Int16Array,
    Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder, StringArray, StringBuilder,
    Time64MicrosecondArray, Time64MicrosecondBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::{BufMut, BytesMut};
use planner::types::ColumnType;
use tokio_postgres::types::{Kind, Type};

use crate::error::{ConnectorError, Result};

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * MICROS_PER_DAY;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// PostgreSQL stores `infinity`/`-infinity` as the extreme values of the
/// underlying integer (see `DT_NOBEGIN`/`DT_NOEND`, `DATEVAL_NOBEGIN`/`NOEND`).
const TS_INFINITY: i64 = i64::MAX;
const TS_NEG_INFINITY: i64 = i64::MIN;
const DATE_INFINITY: i32 = i32::MAX;
const DATE_NEG_INFINITY: i32 = i32::MIN;

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// Base of a numeric digit group.
const NBASE: i128 = 10_000;

/// 10^0 ..= 10^38, the range a `Decimal128` precision can take.
const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Binary COPY signature: "PGCOPY\n\377\r\n\0".
const COPY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Longest text shown in an error message; a multi-megabyte value would bury
/// the message itself.
const DISPLAY_MAX_CHARS: usize = 100;

// ---------------------------------------------------------------------------
// PostgreSQL type classification
// ---------------------------------------------------------------------------

/// The PostgreSQL types this codec knows, by their binary representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pg {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name, enum labels: UTF-8 bytes as they are.
    Text,
    /// json travels as plain text in the binary format.
    Json,
    /// jsonb: a version byte (1), then text.
    Jsonb,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
}

/// Maps a type to its wire representation. Domains send and receive exactly
/// like their base type, and enums as their label text, so both are
/// unwrapped here instead of being rejected.
fn classify(ty: &Type) -> Option<Pg> {
    match ty.kind() {
        Kind::Domain(base) => return classify(base),
        Kind::Enum(_) => return Some(Pg::Text),
        _ => {}
    }
    Some(match *ty {
        Type::BOOL => Pg::Bool,
        Type::INT2 => Pg::Int2,
        Type::INT4 => Pg::Int4,
        Type::INT8 => Pg::Int8,
        Type::FLOAT4 => Pg::Float4,
        Type::FLOAT8 => Pg::Float8,
        Type::NUMERIC => Pg::Numeric,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Pg::Text,
        Type::JSON => Pg::Json,
        Type::JSONB => Pg::Jsonb,
        Type::BYTEA => Pg::Bytea,
        Type::DATE => Pg::Date,
        Type::TIME => Pg::Time,
        Type::TIMESTAMP => Pg::Timestamp,
        Type::TIMESTAMPTZ => Pg::TimestampTz,
        Type::UUID => Pg::Uuid,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// DDL and compatibility
// ---------------------------------------------------------------------------

/// The column type to use in `CREATE TABLE` for a configured type.
pub fn pg_type_ddl(t: &ColumnType) -> String {
    match t {
        ColumnType::Int16 => "smallint".into(),
        ColumnType::Int32 => "integer".into(),
        ColumnType::Int64 => "bigint".into(),
        ColumnType::Float32 => "real".into(),
        ColumnType::Float64 => "double precision".into(),
        ColumnType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        ColumnType::Bool => "boolean".into(),
        ColumnType::String { max_len: Some(n) } => format!("varchar({n})"),
        ColumnType::String { max_len: None } | ColumnType::Text => "text".into(),
        ColumnType::Binary => "bytea".into(),
        ColumnType::Date => "date".into(),
        ColumnType::Time => "time".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::TimestampTz => "timestamptz".into(),
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Json => "jsonb".into(),
    }
}

/// Whether an existing destination column of type `existing` can hold every
/// value of the configured type without loss.
///
/// The type modifier (varchar length, numeric precision) is not part of
/// `Type`, so it is not checked here; the server enforces it on write.
pub fn pg_type_compatible(config: &ColumnType, existing: &Type) -> bool {
    let Some(pg) = classify(existing) else {
        return false;
    };
    // An enum column holds only its labels, so arbitrary strings do not fit.
    if matches!(existing.kind(), Kind::Enum(_)) {
        return false;
    }
    match config {
        ColumnType::Int16 => matches!(pg, Pg::Int2 | Pg::Int4 | Pg::Int8 | Pg::Numeric),
        ColumnType::Int32 => matches!(pg, Pg::Int4 | Pg::Int8 | Pg::Numeric),
        ColumnType::Int64 => matches!(pg, Pg::Int8 | Pg::Numeric),
        ColumnType::Float32 => matches!(pg, Pg::Float4 | Pg::Float8),
        ColumnType::Float64 => pg == Pg::Float8,
        ColumnType::Decimal { .. } => pg == Pg::Numeric,
        ColumnType::Bool => pg == Pg::Bool,
        ColumnType::String { .. } | ColumnType::Text => {
            // `name` is classified as text for reading, but truncates at 63 bytes.
            pg == Pg::Text && *existing != Type::NAME
        }
        ColumnType::Json => matches!(pg, Pg::Json | Pg::Jsonb),
        ColumnType::Binary => pg == Pg::Bytea,
        ColumnType::Date => pg == Pg::Date,
        ColumnType::Time => pg == Pg::Time,
        ColumnType::Timestamp => pg == Pg::Timestamp,
        ColumnType::TimestampTz => pg == Pg::TimestampTz,
        ColumnType::Uuid => pg == Pg::Uuid,
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Width of a PostgreSQL integer source.
#[derive(Debug, Clone, Copy)]
enum IntWidth {
    W2,
    W4,
    W8,
}

impl IntWidth {
    fn of(pg: Pg) -> Option<IntWidth> {
        match pg {
            Pg::Int2 => Some(IntWidth::W2),
            Pg::Int4 => Some(IntWidth::W4),
            Pg::Int8 => Some(IntWidth::W8),
            _ => None,
        }
    }

    #[inline]
    fn read(self, raw: &[u8]) -> Result<i64> {
        Ok(match self {
            IntWidth::W2 => i16::from_be_bytes(fixed(raw, "int2")?) as i64,
            IntWidth::W4 => i32::from_be_bytes(fixed(raw, "int4")?) as i64,
            IntWidth::W8 => i64::from_be_bytes(fixed(raw, "int8")?),
        })
    }
}

/// One decoding plan per (source, target) pair, each with the builder it
/// appends to, so `push` is a single `match`.
enum Decode {
    Bool(BooleanBuilder),
    Int16(IntWidth, Int16Builder),
    Int32(IntWidth, Int32Builder),
    Int64(IntWidth, Int64Builder),
    Float32(Float32Builder),
    /// `true` when the source is float4.
    Float64(bool, Float64Builder),
    DecimalFromNumeric(Decimal128Builder),
    DecimalFromInt(IntWidth, Decimal128Builder),
    Text {
        /// How the source frames its text.
        framing: TextFraming,
        /// varchar(n) limit of the target, in characters.
        max_len: Option<u32>,
        b: StringBuilder,
    },
    Binary(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    /// `true` when the source is a date (read as midnight).
    Timestamp(bool, TimestampMicrosecondBuilder),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextFraming {
    Plain,
    Jsonb,
}

/// Decodes one column of binary-format values into an Arrow array of the
/// column's configured type.
pub struct ColumnDecoder {
    target: ColumnType,
    /// PostgreSQL type name of the source, for messages.
    source_name: String,
    decode: Decode,
    /// Rows and text bytes of the last batch: the next batch is most likely
    /// the same size, so its buffers start out that large.
    last_rows: usize,
    last_bytes: usize,
}

impl ColumnDecoder {
    /// Plans the decoding of source column `name` of PostgreSQL type
    /// `source_type` into `target`.
    pub fn new(name: &str, source_type: &Type, target: &ColumnType) -> Result<ColumnDecoder> {
        let unsupported = || {
            ConnectorError::Unsupported(format!(
                "source column \"{name}\" has PostgreSQL type {}, which SyncHub cannot read as \
                 {target}; map it with a data_type that can hold it (text holds every type), \
                 or read it through a view that converts it",
                source_type.name()
            ))
        };
        let pg = classify(source_type).ok_or_else(unsupported)?;
        let int = IntWidth::of(pg);
        let ok = match (target, pg) {
            (ColumnType::Bool, Pg::Bool) => true,
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, _) => int.is_some(),
            (ColumnType::Float32, Pg::Float4) => true,
            (ColumnType::Float64, Pg::Float4 | Pg::Float8) => true,
            (ColumnType::Decimal { .. }, Pg::Numeric) => true,
            (ColumnType::Decimal { .. }, _) => int.is_some(),
            // json is text too; reading it as a string loses nothing.
            (ColumnType::String { .. } | ColumnType::Text, Pg::Text | Pg::Json | Pg::Jsonb) => true,
            (ColumnType::Json, Pg::Json | Pg::Jsonb) => true,
            (ColumnType::Binary, Pg::Bytea) => true,
            (ColumnType::Uuid, Pg::Uuid) => true,
            (ColumnType::Date, Pg::Date) => true,
            (ColumnType::Time, Pg::Time) => true,
            (
                ColumnType::Timestamp | ColumnType::TimestampTz,
                Pg::Timestamp | Pg::TimestampTz | Pg::Date,
            ) => true,
            _ => false,
        };
        if !ok {
            return Err(unsupported());
        }
        if let ColumnType::Decimal { precision, scale } = *target {
            // Validate once here so that rebuilding the builder cannot fail later.
            Decimal128Builder::new().with_precision_and_scale(precision, scale)?;
        }
        let mut decoder = ColumnDecoder {
            target: *target,
            source_name: source_type.name().to_string(),
            // Placeholder, replaced right below by the real plan.
            decode: Decode::Bool(BooleanBuilder::new()),
            last_rows: 0,
            last_bytes: 0,
        };
        decoder.decode = decoder.fresh(pg, 0, 0);
        Ok(decoder)
    }

    /// Builds an empty plan with buffers of the given capacity.
    fn fresh(&self, pg: Pg, rows: usize, bytes: usize) -> Decode {
        let int = IntWidth::of(pg);
        match self.target {
            ColumnType::Bool => Decode::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::Int16 => Decode::Int16(int.unwrap(), Int16Builder::with_capacity(rows)),
            ColumnType::Int32 => Decode::Int32(int.unwrap(), Int32Builder::with_capacity(rows)),
            ColumnType::Int64 => Decode::Int64(int.unwrap(), Int64Builder::with_capacity(rows)),
            ColumnType::Float32 => Decode::Float32(Float32Builder::with_capacity(rows)),
            ColumnType::Float64 => {
                Decode::Float64(pg == Pg::Float4, Float64Builder::with_capacity(rows))
            }
            ColumnType::Decimal { precision, scale } => {
                let b = Decimal128Builder::with_capacity(rows)
                    .with_data_type(DataType::Decimal128(precision, scale));
                match int {
                    Some(w) => Decode::DecimalFromInt(w, b),
                    None => Decode::DecimalFromNumeric(b),
                }
            }
            ColumnType::String { .. } | ColumnType::Text | ColumnType::Json => Decode::Text {
                framing: if pg == Pg::Jsonb {
                    TextFraming::Jsonb
                } else {
                    TextFraming::Plain
                },
                max_len: match self.target {
                    ColumnType::String { max_len } => max_len,
                    _ => None,
                },
                b: StringBuilder::with_capacity(rows, bytes),
            },
            ColumnType::Binary => Decode::Binary(BinaryBuilder::with_capacity(rows, bytes)),
            ColumnType::Uuid => Decode::Uuid(FixedSizeBinaryBuilder::with_capacity(rows, 16)),
            ColumnType::Date => Decode::Date(Date32Builder::with_capacity(rows)),
            ColumnType::Time => Decode::Time(Time64MicrosecondBuilder::with_capacity(rows)),
            ColumnType::Timestamp | ColumnType::TimestampTz => {
                let tz = match self.target.arrow_type() {
                    DataType::Timestamp(_, tz) => tz,
                    _ => None,
                };
                Decode::Timestamp(
                    pg == Pg::Date,
                    TimestampMicrosecondBuilder::with_capacity(rows).with_timezone_opt(tz),
                )
            }
        }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        match &self.decode {
            Decode::Bool(b) => b.len(),
            Decode::Int16(_, b) => b.len(),
            Decode::Int32(_, b) => b.len(),
            Decode::Int64(_, b) => b.len(),
            Decode::Float32(b) => b.len(),
            Decode::Float64(_, b) => b.len(),
            Decode::DecimalFromNumeric(b) | Decode::DecimalFromInt(_, b) => b.len(),
            Decode::Text { b, .. } => b.len(),
            Decode::Binary(b) => b.len(),
            Decode::Uuid(b) => b.len(),
            Decode::Date(b) => b.len(),
            Decode::Time(b) => b.len(),
            Decode::Timestamp(_, b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one binary-format value; `None` is SQL NULL.
    ///
    /// On error nothing is appended, so the caller may report and stop, or
    /// append a null instead and go on.
    #[inline]
    pub fn push(&mut self, raw: Option<&[u8]>) -> Result<()> {
        let Some(raw) = raw else {
            self.push_null();
            return Ok(());
        };
        match &mut self.decode {
            Decode::Bool(b) => {
                let [v] = fixed::<1>(raw, "bool")?;
                b.append_value(v != 0);
            }
            Decode::Int16(w, b) => {
                let v = w.read(raw)?;
                let v = i16::try_from(v).map_err(|_| does_not_fit(v, &self.target))?;
                b.append_value(v);
            }
            Decode::Int32(w, b) => {
                let v = w.read(raw)?;
                let v = i32::try_from(v).map_err(|_| does_not_fit(v, &self.target))?;
                b.append_value(v);
            }
            Decode::Int64(w, b) => b.append_value(w.read(raw)?),
            Decode::Float32(b) => b.append_value(f32::from_be_bytes(fixed(raw, "float4")?)),
            Decode::Float64(from_f4, b) => {
                let v = if *from_f4 {
                    f32::from_be_bytes(fixed(raw, "float4")?) as f64
                } else {
                    f64::from_be_bytes(fixed(raw, "float8")?)
                };
                b.append_value(v);
            }
            Decode::DecimalFromNumeric(b) => {
                let ColumnType::Decimal { precision, scale } = self.target else {
                    unreachable!("decimal plan for a non-decimal target")
                };
                let v = numeric_to_decimal(raw, precision, scale).map_err(|e| match e {
                    NumericError::Malformed => malformed("numeric"),
                    NumericError::Special(s) => ConnectorError::Value(format!(
                        "value {s} cannot be stored in {}",
                        self.target
                    )),
                    NumericError::DoesNotFit => {
                        does_not_fit(numeric_to_string(raw).unwrap_or_default(), &self.target)
                    }
                })?;
                b.append_value(v);
            }
            Decode::DecimalFromInt(w, b) => {
                let ColumnType::Decimal { precision, scale } = self.target else {
                    unreachable!("decimal plan for a non-decimal target")
                };
                let v = w.read(raw)?;
                let d = int_to_decimal(v, precision, scale)
                    .ok_or_else(|| does_not_fit(v, &self.target))?;
                b.append_value(d);
            }
            Decode::Text {
                framing,
                max_len,
                b,
            } => {
                let bytes = match framing {
                    TextFraming::Plain => raw,
                    TextFraming::Jsonb => jsonb_text(raw)?,
                };
                let s = std::str::from_utf8(bytes).map_err(|_| {
                    ConnectorError::Value(format!("{} value is not valid UTF-8", self.source_name))
                })?;
                if let Some(n) = *max_len {
                    // A string never has more characters than bytes, so the
                    // count is only needed for the rare long value.
                    if s.len() > n as usize && s.chars().count() > n as usize {
                        return Err(does_not_fit(display_text(s), &self.target));
                    }
                }
                b.append_value(s);
            }
            Decode::Binary(b) => b.append_value(raw),
            Decode::Uuid(b) => {
                let v: [u8; 16] = fixed(raw, "uuid")?;
                b.append_value(v)?;
            }
            Decode::Date(b) => {
                let d = i32::from_be_bytes(fixed(raw, "date")?);
                b.append_value(pg_date_to_arrow(d, &self.target)?);
            }
            Decode::Time(b) => b.append_value(i64::from_be_bytes(fixed(raw, "time")?)),
            Decode::Timestamp(from_date, b) => {
                let micros = if *from_date {
                    let d = i32::from_be_bytes(fixed(raw, "date")?);
                    let days = pg_date_to_arrow(d, &self.target)?;
                    (days as i64)
                        .checked_mul(MICROS_PER_DAY)
                        .ok_or_else(|| does_not_fit(display_date(d), &self.target))?
                } else {
                    // timestamp <-> timestamptz keeps the stored micros: both
                    // count from the same UTC-based epoch on the wire.
                    let t = i64::from_be_bytes(fixed(raw, "timestamp")?);
                    pg_timestamp_to_arrow(t, &self.target)?
                };
                b.append_value(micros);
            }
        }
        Ok(())
    }

    fn push_null(&mut self) {
        match &mut self.decode {
            Decode::Bool(b) => b.append_null(),
            Decode::Int16(_, b) => b.append_null(),
            Decode::Int32(_, b) => b.append_null(),
            Decode::Int64(_, b) => b.append_null(),
            Decode::Float32(b) => b.append_null(),
            Decode::Float64(_, b) => b.append_null(),
            Decode::DecimalFromNumeric(b) | Decode::DecimalFromInt(_, b) => b.append_null(),
            Decode::Text { b, .. } => b.append_null(),
            Decode::Binary(b) => b.append_null(),
            Decode::Uuid(b) => b.append_null(),
            Decode::Date(b) => b.append_null(),
            Decode::Time(b) => b.append_null(),
            Decode::Timestamp(_, b) => b.append_null(),
        }
    }

    /// Returns the values pushed since the last call and starts a new batch.
    pub fn finish(&mut self) -> ArrayRef {
        let rows = self.len();
        let bytes = match &self.decode {
            Decode::Text { b, .. } => b.values_slice().len(),
            Decode::Binary(b) => b.values_slice().len(),
            _ => 0,
        };
        let array: ArrayRef = match &mut self.decode {
            Decode::Bool(b) => Arc::new(b.finish()),
            Decode::Int16(_, b) => Arc::new(b.finish()),
            Decode::Int32(_, b) => Arc::new(b.finish()),
            Decode::Int64(_, b) => Arc::new(b.finish()),
            Decode::Float32(b) => Arc::new(b.finish()),
            Decode::Float64(_, b) => Arc::new(b.finish()),
            Decode::DecimalFromNumeric(b) | Decode::DecimalFromInt(_, b) => Arc::new(b.finish()),
            Decode::Text { b, .. } => Arc::new(b.finish()),
            Decode::Binary(b) => Arc::new(b.finish()),
            Decode::Uuid(b) => Arc::new(b.finish()),
            Decode::Date(b) => Arc::new(b.finish()),
            Decode::Time(b) => Arc::new(b.finish()),
            Decode::Timestamp(_, b) => Arc::new(b.finish()),
        };
        // The finished builders are left with empty buffers that would grow by
        // doubling; pre-size them from this batch instead. An empty batch
        // keeps the previous hint so a trailing empty flush does not undo it.
        if rows > 0 {
            self.last_rows = rows;
            self.last_bytes = bytes;
        }
        let pg = self.source_pg();
        self.decode = self.fresh(pg, self.last_rows, self.last_bytes);
        array
    }

    /// The source representation the current plan reads, recovered from the
    /// plan so it does not have to be stored twice.
    fn source_pg(&self) -> Pg {
        match &self.decode {
            Decode::Bool(_) => Pg::Bool,
            Decode::Int16(w, _)
            | Decode::Int32(w, _)
            | Decode::Int64(w, _)
            | Decode::DecimalFromInt(w, _) => match w {
                IntWidth::W2 => Pg::Int2,
                IntWidth::W4 => Pg::Int4,
                IntWidth::W8 => Pg::Int8,
            },
            Decode::Float32(_) | Decode::Float64(true, _) => Pg::Float4,
            Decode::Float64(false, _) => Pg::Float8,
            Decode::DecimalFromNumeric(_) => Pg::Numeric,
            Decode::Text {
                framing: TextFraming::Jsonb,
                ..
            } => Pg::Jsonb,
            Decode::Text { .. } => Pg::Text,
            Decode::Binary(_) => Pg::Bytea,
            Decode::Uuid(_) => Pg::Uuid,
            Decode::Date(_) | Decode::Timestamp(true, _) => Pg::Date,
            Decode::Time(_) => Pg::Time,
            Decode::Timestamp(false, _) => Pg::Timestamp,
        }
    }
}

/// A fixed-size value as an array, or a protocol error: a wrong length means
/// the server and we disagree on the type, not that the data is bad.
#[inline]
fn fixed<const N: usize>(raw: &[u8], ty: &str) -> Result<[u8; N]> {
    raw.try_into().map_err(|_| malformed(ty))
}

#[cold]
fn malformed(ty: &str) -> ConnectorError {
    ConnectorError::Other(format!("malformed binary {ty} value from PostgreSQL"))
}

#[cold]
fn does_not_fit(value: impl std::fmt::Display, target: &ColumnType) -> ConnectorError {
    ConnectorError::Value(format!("value {value} does not fit {target}"))
}

#[cold]
fn infinity(negative: bool, target: &ColumnType) -> ConnectorError {
    let sign = if negative { "-" } else { "" };
    ConnectorError::Value(format!("value {sign}infinity cannot be stored in {target}"))
}

fn jsonb_text(raw: &[u8]) -> Result<&[u8]> {
    match raw.split_first() {
        Some((1, text)) => Ok(text),
        Some((v, _)) => Err(ConnectorError::Unsupported(format!(
            "jsonb binary format version {v} is not supported"
        ))),
        None => Err(malformed("jsonb")),
    }
}

#[inline]
fn pg_date_to_arrow(d: i32, target: &ColumnType) -> Result<i32> {
    match d {
        DATE_INFINITY => Err(infinity(false, target)),
        DATE_NEG_INFINITY => Err(infinity(true, target)),
        // PostgreSQL's date range ends well inside i32 even after the shift,
        // so this only fails on a corrupt value.
        _ => d
            .checked_add(PG_EPOCH_DAYS)
            .ok_or_else(|| does_not_fit(display_date(d), target)),
    }
}

#[inline]
fn pg_timestamp_to_arrow(t: i64, target: &ColumnType) -> Result<i64> {
    match t {
        TS_INFINITY => Err(infinity(false, target)),
        TS_NEG_INFINITY => Err(infinity(true, target)),
        // PostgreSQL allows timestamps up to 294276 AD, which counted from
        // 1970 instead of 2000 can pass i64::MAX.
        _ => t
            .checked_add(PG_EPOCH_MICROS)
            .ok_or_else(|| does_not_fit(display_timestamp(t, false), target)),
    }
}

/// An integer as a decimal(p,s) unscaled value, if it fits.
fn int_to_decimal(v: i64, precision: u8, scale: i8) -> Option<i128> {
    let v = v as i128;
    let d = if scale >= 0 {
        v.checked_mul(*POW10.get(scale as usize)?)?
    } else {
        // A negative scale rounds to tens, hundreds...; only exact multiples fit.
        let div = *POW10.get(scale.unsigned_abs() as usize)?;
        if v % div != 0 {
            return None;
        }
        v / div
    };
    (d.unsigned_abs() < POW10[precision as usize] as u128).then_some(d)
}

enum NumericError {
    Malformed,
    /// NaN, Infinity or -Infinity.
    Special(&'static str),
    DoesNotFit,
}

/// The header of a binary numeric: (ndigits, weight, sign, dscale, digits).
fn numeric_parts(raw: &[u8]) -> Option<(usize, i32, u16, u16, &[u8])> {
    if raw.len() < 8 {
        return None;
    }
    let ndigits = i16::from_be_bytes([raw[0], raw[1]]);
    let weight = i16::from_be_bytes([raw[2], raw[3]]) as i32;
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    let dscale = u16::from_be_bytes([raw[6], raw[7]]);
    let digits = &raw[8..];
    if ndigits < 0 || digits.len() != ndigits as usize * 2 {
        return None;
    }
    Some((ndigits as usize, weight, sign, dscale, digits))
}

/// Converts a binary numeric to the unscaled value of decimal(precision,
/// scale), exactly: digits dropped by the rescale must be zero.
///
/// Digit group `i` is worth `digit * 10000^(weight - i)`, i.e. its units sit
/// at decimal position `4 * (weight - i)`. Groups are folded in Horner style
/// while they lie above position `-scale`; the group straddling it keeps only
/// its high digits, and everything below must be zero.
fn numeric_to_decimal(raw: &[u8], precision: u8, scale: i8) -> Result<i128, NumericError> {
    let (ndigits, weight, sign, _dscale, digits) =
        numeric_parts(raw).ok_or(NumericError::Malformed)?;
    let negative = match sign {
        NUMERIC_POS => false,
        NUMERIC_NEG => true,
        NUMERIC_NAN => return Err(NumericError::Special("NaN")),
        NUMERIC_PINF => return Err(NumericError::Special("Infinity")),
        NUMERIC_NINF => return Err(NumericError::Special("-Infinity")),
        _ => return Err(NumericError::Malformed),
    };
    let limit = -(scale as i32); // lowest decimal position kept
    let mut acc: i128 = 0;
    // Position of the units of the last group folded into `acc`.
    let mut acc_pos = 4 * (weight + 1);
    for i in 0..ndigits {
        let d = i16::from_be_bytes([digits[2 * i], digits[2 * i + 1]]);
        if !(0..10_000).contains(&d) {
            return Err(NumericError::Malformed);
        }
        let d = d as i128;
        let pos = 4 * (weight - i as i32);
        if pos >= limit {
            acc = acc
                .checked_mul(NBASE)
                .and_then(|a| a.checked_add(d))
                .ok_or(NumericError::DoesNotFit)?;
            acc_pos = pos;
        } else {
            let drop = (limit - pos) as usize;
            if drop >= 4 {
                if d != 0 {
                    return Err(NumericError::DoesNotFit);
                }
            } else {
                let div = POW10[drop];
                if d % div != 0 {
                    return Err(NumericError::DoesNotFit);
                }
                acc = acc
                    .checked_mul(POW10[4 - drop])
                    .and_then(|a| a.checked_add(d / div))
                    .ok_or(NumericError::DoesNotFit)?;
                acc_pos = limit;
            }
        }
    }
    // Trailing zero groups are not sent (weight can exceed ndigits), so the
    // value may still need shifting up to the target scale.
    if acc != 0 && acc_pos > limit {
        let shift = 10i128
            .checked_pow((acc_pos - limit) as u32)
            .ok_or(NumericError::DoesNotFit)?;
        acc = acc.checked_mul(shift).ok_or(NumericError::DoesNotFit)?;
    }
    if acc >= POW10[precision.min(38) as usize] {
        return Err(NumericError::DoesNotFit);
    }
    Ok(if negative { -acc } else { acc })
}

/// Renders a binary numeric the way PostgreSQL prints it (dscale digits
/// after the point). Only used for messages.
fn numeric_to_string(raw: &[u8]) -> Option<String> {
    let (ndigits, weight, sign, dscale, digits) = numeric_parts(raw)?;
    match sign {
        NUMERIC_NAN => return Some("NaN".into()),
        NUMERIC_PINF => return Some("Infinity".into()),
        NUMERIC_NINF => return Some("-Infinity".into()),
        _ => {}
    }
    let digit = |i: i32| -> i16 {
        if i >= 0 && (i as usize) < ndigits {
            let i = i as usize;
            i16::from_be_bytes([digits[2 * i], digits[2 * i + 1]])
        } else {
            0
        }
    };
    let mut s = String::new();
    if sign == NUMERIC_NEG {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(s, "{}", digit(i));
            } else {
                let _ = write!(s, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale as usize {
            let _ = write!(frac, "{:04}", digit(i));
            i += 1;
        }
        frac.truncate(dscale as usize);
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

/// Renders a value as text for error messages; never fails.
pub fn display_value(source_type: &Type, raw: Option<&[u8]>) -> String {
    let Some(raw) = raw else {
        return "NULL".into();
    };
    let invalid = || format!("<invalid {} value>", source_type.name());
    let Some(pg) = classify(source_type) else {
        return format!("<{} value>", source_type.name());
    };
    match pg {
        Pg::Bool => match raw {
            [0] => "false".into(),
            [_] => "true".into(),
            _ => invalid(),
        },
        Pg::Int2 | Pg::Int4 | Pg::Int8 => IntWidth::of(pg)
            .and_then(|w| w.read(raw).ok())
            .map_or_else(invalid, |v| v.to_string()),
        Pg::Float4 => {
            fixed::<4>(raw, "").map_or_else(|_| invalid(), |b| f32::from_be_bytes(b).to_string())
        }
        Pg::Float8 => {
            fixed::<8>(raw, "").map_or_else(|_| invalid(), |b| f64::from_be_bytes(b).to_string())
        }
        Pg::Numeric => numeric_to_string(raw).unwrap_or_else(invalid),
        Pg::Text | Pg::Json => display_text(&String::from_utf8_lossy(raw)),
        Pg::Jsonb => match jsonb_text(raw) {
            Ok(t) => display_text(&String::from_utf8_lossy(t)),
            Err(_) => invalid(),
        },
        Pg::Bytea => {
            let mut s = String::from("\\x");
            for b in raw.iter().take(DISPLAY_MAX_CHARS / 2) {
                let _ = write!(s, "{b:02x}");
            }
            if raw.len() > DISPLAY_MAX_CHARS / 2 {
                s.push('…');
            }
            s
        }
        Pg::Uuid => fixed::<16>(raw, "").map_or_else(|_| invalid(), |u| display_uuid(&u)),
        Pg::Date => {
            fixed::<4>(raw, "").map_or_else(|_| invalid(), |b| display_date(i32::from_be_bytes(b)))
        }
        Pg::Time => {
            fixed::<8>(raw, "").map_or_else(|_| invalid(), |b| display_time(i64::from_be_bytes(b)))
        }
        Pg::Timestamp | Pg::TimestampTz => fixed::<8>(raw, "").map_or_else(
            |_| invalid(),
            |b| display_timestamp(i64::from_be_bytes(b), pg == Pg::TimestampTz),
        ),
    }
}

fn display_text(s: &str) -> String {
    match s.char_indices().nth(DISPLAY_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

fn display_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// (year, month, day) of a day count from 1970-01-01, proleptic Gregorian,
/// year 0 = 1 BC. Howard Hinnant's `civil_from_days`; done by hand because
/// chrono's range is narrower than PostgreSQL's.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats a date like PostgreSQL's ISO output, with " BC" for year <= 0.
fn format_ymd(days_since_1970: i64) -> (String, bool) {
    let (y, m, d) = civil_from_days(days_since_1970);
    let bc = y <= 0;
    let year = if bc { 1 - y } else { y };
    (format!("{year:04}-{m:02}-{d:02}"), bc)
}

fn display_date(pg_days: i32) -> String {
    match pg_days {
        DATE_INFINITY => "infinity".into(),
        DATE_NEG_INFINITY => "-infinity".into(),
        _ => {
            let (s, bc) = format_ymd(pg_days as i64 + PG_EPOCH_DAYS as i64);
            if bc {
                format!("{s} BC")
            } else {
                s
            }
        }
    }
}

fn display_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

fn display_timestamp(pg_micros: i64, tz: bool) -> String {
    match pg_micros {
        TS_INFINITY => return "infinity".into(),
        TS_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    // i128 so that the shift to 1970 cannot overflow at the range's ends.
    let micros = pg_micros as i128 + PG_EPOCH_MICROS as i128;
    let days = micros.div_euclid(MICROS_PER_DAY as i128) as i64;
    let tod = micros.rem_euclid(MICROS_PER_DAY as i128) as i64;
    let (date, bc) = format_ymd(days);
    let mut s = format!("{date} {}", display_time(tod));
    if tz {
        s.push_str("+00");
    }
    if bc {
        s.push_str(" BC");
    }
    s
}

// ---------------------------------------------------------------------------
// Encoding (COPY binary)
// ---------------------------------------------------------------------------

/// Appends the binary COPY header: signature, flags, header extension length.
pub fn write_copy_header(buf: &mut BytesMut) {
    buf.put_slice(COPY_SIGNATURE);
    buf.put_i32(0);
    buf.put_i32(0);
}

/// Appends the binary COPY trailer (a tuple with field count -1).
pub fn write_copy_trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// How an Arrow integer is written.
#[derive(Debug, Clone, Copy)]
enum IntOut {
    Int2,
    Int4,
    Int8,
    Numeric,
}

impl IntOut {
    fn of(pg: Pg) -> Option<IntOut> {
        match pg {
            Pg::Int2 => Some(IntOut::Int2),
            Pg::Int4 => Some(IntOut::Int4),
            Pg::Int8 => Some(IntOut::Int8),
            Pg::Numeric => Some(IntOut::Numeric),
            _ => None,
        }
    }

    /// The planner only lets a value into a type at least as wide, so the
    /// narrowing casts below never truncate.
    #[inline]
    fn put(self, buf: &mut BytesMut, v: i64) {
        match self {
            IntOut::Int2 => {
                buf.put_i32(2);
                buf.put_i16(v as i16);
            }
            IntOut::Int4 => {
                buf.put_i32(4);
                buf.put_i32(v as i32);
            }
            IntOut::Int8 => {
                buf.put_i32(8);
                buf.put_i64(v);
            }
            IntOut::Numeric => put_numeric(buf, v as i128, 0),
        }
    }
}

/// How one column is written, fixed when the encoder is built.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Bool,
    Int16(IntOut),
    Int32(IntOut),
    Int64(IntOut),
    Float32,
    Float32To64,
    Float64,
    Decimal(i8),
    Text,
    Jsonb,
    Bytea,
    Uuid,
    Date,
    Time,
    Timestamp,
}

fn plan_for(arrow: &DataType, pg: Pg) -> Option<Plan> {
    use DataType as A;
    Some(match (arrow, pg) {
        (A::Boolean, Pg::Bool) => Plan::Bool,
        (A::Int16, Pg::Int2 | Pg::Int4 | Pg::Int8 | Pg::Numeric) => Plan::Int16(IntOut::of(pg)?),
        (A::Int32, Pg::Int4 | Pg::Int8 | Pg::Numeric) => Plan::Int32(IntOut::of(pg)?),
        (A::Int64, Pg::Int8 | Pg::Numeric) => Plan::Int64(IntOut::of(pg)?),
        (A::Float32, Pg::Float4) => Plan::Float32,
        (A::Float32, Pg::Float8) => Plan::Float32To64,
        (A::Float64, Pg::Float8) => Plan::Float64,
        (A::Decimal128(_, s), Pg::Numeric) => Plan::Decimal(*s),
        (A::Utf8, Pg::Text | Pg::Json) => Plan::Text,
        (A::Utf8, Pg::Jsonb) => Plan::Jsonb,
        (A::Binary, Pg::Bytea) => Plan::Bytea,
        (A::FixedSizeBinary(16), Pg::Uuid) => Plan::Uuid,
        (A::Date32, Pg::Date) => Plan::Date,
        (A::Time64(TimeUnit::Microsecond), Pg::Time) => Plan::Time,
        (A::Timestamp(TimeUnit::Microsecond, _), Pg::Timestamp | Pg::TimestampTz) => {
            Plan::Timestamp
        }
        _ => return None,
    })
}

/// A batch column downcast once per batch, so the per-value work is a
/// `match` on this enum rather than a dynamic downcast.
enum Col<'a> {
    Bool(&'a BooleanArray),
    Int16(&'a Int16Array, IntOut),
    Int32(&'a Int32Array, IntOut),
    Int64(&'a Int64Array, IntOut),
    Float32(&'a Float32Array),
    Float32To64(&'a Float32Array),
    Float64(&'a Float64Array),
    Decimal(&'a Decimal128Array, i8),
    Text(&'a StringArray),
    Jsonb(&'a StringArray),
    Bytea(&'a BinaryArray),
    Uuid(&'a FixedSizeBinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Timestamp(&'a TimestampMicrosecondArray),
}

impl<'a> Col<'a> {
    fn new(array: &'a ArrayRef, plan: Plan) -> Option<Col<'a>> {
        fn dc<T: 'static>(a: &ArrayRef) -> Option<&T> {
            a.as_any().downcast_ref::<T>()
        }
        Some(match plan {
            Plan::Bool => Col::Bool(dc(array)?),
            Plan::Int16(o) => Col::Int16(dc(array)?, o),
            Plan::Int32(o) => Col::Int32(dc(array)?, o),
            Plan::Int64(o) => Col::Int64(dc(array)?, o),
            Plan::Float32 => Col::Float32(dc(array)?),
            Plan::Float32To64 => Col::Float32To64(dc(array)?),
            Plan::Float64 => Col::Float64(dc(array)?),
            Plan::Decimal(s) => Col::Decimal(dc(array)?, s),
            Plan::Text => Col::Text(dc(array)?),
            Plan::Jsonb => Col::Jsonb(dc(array)?),
            Plan::Bytea => Col::Bytea(dc(array)?),
            Plan::Uuid => Col::Uuid(dc(array)?),
            Plan::Date => Col::Date(dc(array)?),
            Plan::Time => Col::Time(dc(array)?),
            Plan::Timestamp => Col::Timestamp(dc(array)?),
        })
    }

    fn array(&self) -> &dyn Array {
        match self {
            Col::Bool(a) => *a,
            Col::Int16(a, _) => *a,
            Col::Int32(a, _) => *a,
            Col::Int64(a, _) => *a,
            Col::Float32(a) | Col::Float32To64(a) => *a,
            Col::Float64(a) => *a,
            Col::Decimal(a, _) => *a,
            Col::Text(a) | Col::Jsonb(a) => *a,
            Col::Bytea(a) => *a,
            Col::Uuid(a) => *a,
            Col::Date(a) => *a,
            Col::Time(a) => *a,
            Col::Timestamp(a) => *a,
        }
    }

    /// Bytes this column adds to the COPY stream beyond the length words,
    /// roughly, to reserve the buffer once per batch.
    fn payload_estimate(&self) -> usize {
        let rows = self.array().len();
        match self {
            Col::Bool(_) => rows,
            Col::Int16(_, o) | Col::Int32(_, o) | Col::Int64(_, o) => match o {
                IntOut::Int2 => rows * 2,
                IntOut::Int4 => rows * 4,
                IntOut::Int8 => rows * 8,
                IntOut::Numeric => rows * 16,
            },
            Col::Float32(_) => rows * 4,
            Col::Float32To64(_) | Col::Float64(_) | Col::Time(_) | Col::Timestamp(_) => rows * 8,
            Col::Decimal(..) => rows * 24,
            Col::Text(a) | Col::Jsonb(a) => a.value_data().len() + rows,
            Col::Bytea(a) => a.value_data().len(),
            Col::Uuid(_) => rows * 16,
            Col::Date(_) => rows * 4,
        }
    }

    /// Appends the field for `row`. `nulls` is the column's validity,
    /// fetched once per batch: asking the `dyn Array` per value would be a
    /// virtual call on the hot path.
    #[inline]
    fn put(&self, row: usize, nulls: Option<&NullBuffer>, buf: &mut BytesMut) -> Result<()> {
        if nulls.is_some_and(|n| n.is_null(row)) {
            buf.put_i32(-1);
            return Ok(());
        }
        match self {
            Col::Bool(a) => {
                buf.put_i32(1);
                buf.put_u8(a.value(row) as u8);
            }
            Col::Int16(a, o) => o.put(buf, a.value(row) as i64),
            Col::Int32(a, o) => o.put(buf, a.value(row) as i64),
            Col::Int64(a, o) => o.put(buf, a.value(row)),
            Col::Float32(a) => {
                buf.put_i32(4);
                buf.put_f32(a.value(row));
            }
            Col::Float32To64(a) => {
                buf.put_i32(8);
                buf.put_f64(a.value(row) as f64);
            }
            Col::Float64(a) => {
                buf.put_i32(8);
                buf.put_f64(a.value(row));
            }
            Col::Decimal(a, s) => put_numeric(buf, a.value(row), *s),
            Col::Text(a) => {
                let v = a.value(row).as_bytes();
                check_no_nul(v)?;
                buf.put_i32(v.len() as i32);
                buf.put_slice(v);
            }
            Col::Jsonb(a) => {
                let v = a.value(row).as_bytes();
                check_no_nul(v)?;
                buf.put_i32(v.len() as i32 + 1);
                buf.put_u8(1);
                buf.put_slice(v);
            }
            Col::Bytea(a) => {
                let v = a.value(row);
                buf.put_i32(v.len() as i32);
                buf.put_slice(v);
            }
            Col::Uuid(a) => {
                buf.put_i32(16);
                buf.put_slice(a.value(row));
            }
            Col::Date(a) => {
                let d = a.value(row).checked_sub(PG_EPOCH_DAYS).ok_or_else(|| {
                    ConnectorError::Value(format!(
                        "date {} days before 1970 is out of range",
                        a.value(row)
                    ))
                })?;
                buf.put_i32(4);
                buf.put_i32(d);
            }
            Col::Time(a) => {
                buf.put_i32(8);
                buf.put_i64(a.value(row));
            }
            Col::Timestamp(a) => {
                let t = a.value(row).checked_sub(PG_EPOCH_MICROS).ok_or_else(|| {
                    ConnectorError::Value(format!(
                        "timestamp {} µs since 1970 is out of range",
                        a.value(row)
                    ))
                })?;
                buf.put_i32(8);
                buf.put_i64(t);
            }
        }
        Ok(())
    }
}

/// PostgreSQL text cannot contain U+0000 (the server rejects it with an
/// error that aborts the whole COPY), so catch it with a precise message.
#[inline]
fn check_no_nul(v: &[u8]) -> Result<()> {
    // `contains` on a byte slice is memchr-backed.
    if v.contains(&0) {
        return Err(ConnectorError::Value(
            "contains a NUL character, which PostgreSQL text cannot store".into(),
        ));
    }
    Ok(())
}

/// Appends a length-prefixed binary numeric for the unscaled value `v` of a
/// decimal with scale `scale`.
///
/// The value's lowest decimal digit sits at position `-scale`; base-10000
/// groups must line up with position 0, so the lowest group takes only the
/// `4 - pad` low digits (shifted up by `pad`). Splitting instead of
/// multiplying by 10^pad keeps 38-digit values from overflowing.
fn put_numeric(buf: &mut BytesMut, v: i128, scale: i8) {
    let dscale = scale.max(0) as i16;
    let negative = v < 0;
    let mut mag = v.unsigned_abs();
    if mag == 0 {
        buf.put_i32(8);
        buf.put_i16(0);
        buf.put_i16(0);
        buf.put_u16(NUMERIC_POS);
        buf.put_i16(dscale);
        return;
    }
    let low_pos = -(scale as i32);
    let low_group = low_pos.div_euclid(4);
    let pad = low_pos.rem_euclid(4) as usize;
    // |i128| has at most 39 digits, +3 of padding: 11 groups at most.
    let mut groups = [0i16; 11];
    let mut n = 0;
    if pad != 0 {
        let m = POW10[4 - pad] as u128;
        groups[0] = ((mag % m) as i16) * POW10[pad] as i16;
        mag /= m;
        n = 1;
    }
    // u128 division is far slower than u64; most values fit u64 after a
    // couple of groups (or from the start).
    while mag > u64::MAX as u128 {
        groups[n] = (mag % 10_000) as i16;
        mag /= 10_000;
        n += 1;
    }
    let mut small = mag as u64;
    while small != 0 {
        groups[n] = (small % 10_000) as i16;
        small /= 10_000;
        n += 1;
    }
    let weight = low_group + n as i32 - 1;
    // PostgreSQL's own values carry no trailing zero groups; match that.
    let lo = groups[..n].iter().position(|&g| g != 0).unwrap_or(0);
    let ndigits = n - lo;
    buf.put_i32(8 + 2 * ndigits as i32);
    buf.put_i16(ndigits as i16);
    buf.put_i16(weight as i16);
    buf.put_u16(if negative { NUMERIC_NEG } else { NUMERIC_POS });
    buf.put_i16(dscale);
    for g in groups[lo..n].iter().rev() {
        buf.put_i16(*g);
    }
}

/// A failed encode with the value's position, so the caller can name the
/// column and the row's key.
#[derive(Debug)]
pub struct EncodeError {
    /// Row index within the batch.
    pub row: usize,
    /// Column index within the batch (and the encoder's targets).
    pub column: usize,
    pub error: ConnectorError,
}

/// Encodes record batches as binary COPY tuples for a fixed destination
/// column list.
pub struct BatchEncoder {
    plans: Vec<Plan>,
    arrow_types: Vec<DataType>,
}

impl BatchEncoder {
    /// `targets` are the destination columns in COPY order with their actual
    /// PostgreSQL types; `arrow_types` the types of the batch columns that
    /// feed them, in the same order.
    pub fn new(targets: &[(String, Type)], arrow_types: &[DataType]) -> Result<BatchEncoder> {
        if targets.len() != arrow_types.len() {
            return Err(ConnectorError::Schema(format!(
                "{} destination columns but {} batch columns",
                targets.len(),
                arrow_types.len()
            )));
        }
        // The tuple's field count is an i16.
        if targets.len() > i16::MAX as usize {
            return Err(ConnectorError::Schema(format!(
                "{} columns are more than PostgreSQL COPY supports",
                targets.len()
            )));
        }
        let plans = targets
            .iter()
            .zip(arrow_types)
            .map(|((name, ty), arrow)| {
                classify(ty)
                    .and_then(|pg| plan_for(arrow, pg))
                    .ok_or_else(|| {
                        ConnectorError::Schema(format!(
                            "destination column \"{name}\" has PostgreSQL type {}, which cannot \
                             take {arrow} values",
                            ty.name()
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BatchEncoder {
            plans,
            arrow_types: arrow_types.to_vec(),
        })
    }

    /// Appends one tuple per row of `batch` to `buf`. On error `buf` is left
    /// as it was, and the error does not say which value failed; use
    /// [`BatchEncoder::encode_located`] to learn that.
    pub fn encode(&self, batch: &RecordBatch, buf: &mut BytesMut) -> Result<()> {
        self.encode_located(batch, buf).map_err(|e| e.error)
    }

    /// Like [`BatchEncoder::encode`], with the failing row and column. Schema
    /// errors (batch not matching the encoder) report row 0.
    pub fn encode_located(
        &self,
        batch: &RecordBatch,
        buf: &mut BytesMut,
    ) -> std::result::Result<(), EncodeError> {
        let schema_error = |column: usize, msg: String| EncodeError {
            row: 0,
            column,
            error: ConnectorError::Schema(msg),
        };
        if batch.num_columns() != self.plans.len() {
            return Err(schema_error(
                0,
                format!(
                    "batch has {} columns, the encoder {}",
                    batch.num_columns(),
                    self.plans.len()
                ),
            ));
        }
        let mut cols = Vec::with_capacity(self.plans.len());
        for (i, (array, plan)) in batch.columns().iter().zip(&self.plans).enumerate() {
            // The downcast alone does not tell Decimal128(10,2) from (10,4).
            let col = (array.data_type() == &self.arrow_types[i])
                .then(|| Col::new(array, *plan))
                .flatten()
                .ok_or_else(|| {
                    schema_error(
                        i,
                        format!(
                            "batch column {i} is {}, expected {}",
                            array.data_type(),
                            self.arrow_types[i]
                        ),
                    )
                })?;
            cols.push((array.nulls(), col));
        }

        let rows = batch.num_rows();
        let start = buf.len();
        let fixed = rows * (2 + 4 * cols.len());
        buf.reserve(
            fixed
                + cols
                    .iter()
                    .map(|(_, c)| c.payload_estimate())
                    .sum::<usize>(),
        );
        let nfields = cols.len() as i16;
        for row in 0..rows {
            buf.put_i16(nfields);
            for (column, (nulls, col)) in cols.iter().enumerate() {
                if let Err(error) = col.put(row, *nulls, buf) {
                    // A half-written tuple would corrupt the COPY stream.
                    buf.truncate(start);
                    return Err(EncodeError { row, column, error });
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(v: i128, scale: i8) -> Vec<u8> {
        let mut buf = BytesMut::new();
        put_numeric(&mut buf, v, scale);
        let len = i32::from_be_bytes(buf[..4].try_into().unwrap());
        assert_eq!(len as usize, buf.len() - 4);
        buf[4..].to_vec()
    }

    fn decode_one(ty: &Type, target: ColumnType, raw: Option<&[u8]>) -> Result<ArrayRef> {
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

    #[test]
    fn int_conversions() {
        let e = decode_one(
            &Type::INT8,
            ColumnType::Int32,
            Some(&3_000_000_000i64.to_be_bytes()),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "value 3000000000 does not fit int");
        let a = decode_one(&Type::INT2, ColumnType::Int64, Some(&(-5i16).to_be_bytes())).unwrap();
        assert_eq!(
            a.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
            -5
        );
        let a = decode_one(
            &Type::INT4,
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            Some(&(-1234i32).to_be_bytes()),
        )
        .unwrap();
        assert_eq!(
            a.as_any()
                .downcast_ref::<Decimal128Array>()
                .unwrap()
                .value(0),
            -123_400
        );
        let e = decode_one(
            &Type::INT4,
            ColumnType::Decimal {
                precision: 4,
                scale: 2,
            },
            Some(&100i32.to_be_bytes()),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "value 100 does not fit decimal(4,2)");
    }

    #[test]
    fn unsupported_pairs() {
        let e = ColumnDecoder::new("x", &Type::INT8, &ColumnType::Uuid)
            .err()
            .unwrap();
        assert!(matches!(e, ConnectorError::Unsupported(_)));
        assert_eq!(
            e.to_string(),
            "source column \"x\" has PostgreSQL type int8, which SyncHub cannot read as uuid; \
             map it with a data_type that can hold it (text holds every type), or read it \
             through a view that converts it"
        );
        assert!(ColumnDecoder::new("x", &Type::INET, &ColumnType::Text).is_err());
        assert!(ColumnDecoder::new("x", &Type::FLOAT8, &ColumnType::Float32).is_err());
    }

    #[test]
    fn temporal_values() {
        let ts = |raw: i64, target: ColumnType| {
            decode_one(&Type::TIMESTAMP, target, Some(&raw.to_be_bytes()))
        };
        let e = ts(i64::MAX, ColumnType::Timestamp).unwrap_err();
        assert!(e.to_string().contains("infinity cannot be stored"), "{e}");
        let e = ts(i64::MIN, ColumnType::TimestampTz).unwrap_err();
        assert_eq!(
            e.to_string(),
            "value -infinity cannot be stored in timestamptz"
        );
        let a = ts(0, ColumnType::TimestampTz).unwrap();
        assert_eq!(a.data_type(), &ColumnType::TimestampTz.arrow_type());
        let a = a
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(a.value(0), 946_684_800_000_000);

        let a = decode_one(
            &Type::DATE,
            ColumnType::Timestamp,
            Some(&(-1i32).to_be_bytes()),
        )
        .unwrap();
        let a = a
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(a.value(0), (10_956) * MICROS_PER_DAY);
        let e =
            decode_one(&Type::DATE, ColumnType::Date, Some(&i32::MAX.to_be_bytes())).unwrap_err();
        assert_eq!(e.to_string(), "value infinity cannot be stored in date");
    }

    #[test]
    fn display_values() {
        assert_eq!(display_value(&Type::INT4, None), "NULL");
        assert_eq!(
            display_value(&Type::INT8, Some(&(-42i64).to_be_bytes())),
            "-42"
        );
        assert_eq!(
            display_value(&Type::TEXT, Some("héllo".as_bytes())),
            "héllo"
        );
        assert_eq!(
            display_value(&Type::JSONB, Some(b"\x01{\"a\": 1}")),
            "{\"a\": 1}"
        );
        let u: [u8; 16] = [
            0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44,
            0x00, 0x00,
        ];
        assert_eq!(
            display_value(&Type::UUID, Some(&u)),
            "550e8400-e29b-41d4-a716-446655440000"
        );
        assert_eq!(
            display_value(&Type::DATE, Some(&0i32.to_be_bytes())),
            "2000-01-01"
        );
        assert_eq!(
            display_value(&Type::DATE, Some(&(-730_485i32).to_be_bytes())),
            "0001-01-01 BC"
        );
        assert_eq!(
            display_value(&Type::DATE, Some(&(-730_120i32).to_be_bytes())),
            "0001-12-31 BC"
        );
        assert_eq!(
            display_value(&Type::TIMESTAMP, Some(&(-1i64).to_be_bytes())),
            "1999-12-31 23:59:59.999999"
        );
        assert_eq!(
            display_value(&Type::TIMESTAMPTZ, Some(&1_500_000i64.to_be_bytes())),
            "2000-01-01 00:00:01.5+00"
        );
        assert_eq!(
            display_value(&Type::TIME, Some(&3_723_000_000i64.to_be_bytes())),
            "01:02:03"
        );
        assert_eq!(
            display_value(&Type::INT4, Some(&[1, 2])),
            "<invalid int4 value>"
        );
        let long = "x".repeat(500);
        assert_eq!(
            display_value(&Type::TEXT, Some(long.as_bytes()))
                .chars()
                .count(),
            101
        );
    }

    #[test]
    fn varchar_limit_and_reuse() {
        let mut d =
            ColumnDecoder::new("c", &Type::TEXT, &ColumnType::String { max_len: Some(3) }).unwrap();
        d.push(Some("äöü".as_bytes())).unwrap(); // 6 bytes, 3 chars
        d.push(None).unwrap();
        let e = d.push(Some(b"abcd")).unwrap_err();
        assert_eq!(e.to_string(), "value abcd does not fit varchar(3)");
        let a = d.finish();
        assert_eq!(a.len(), 2);
        assert_eq!(a.null_count(), 1);
        assert!(d.is_empty());
        d.push(Some(b"x")).unwrap();
        let a = d.finish();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(a.value(0), "x");
    }

    #[test]
    fn encoder_errors() {
        use arrow::datatypes::{Field, Schema};
        let targets = vec![("a".to_string(), Type::INT4), ("b".to_string(), Type::TEXT)];
        let e = BatchEncoder::new(&targets, &[DataType::Int64, DataType::Utf8])
            .err()
            .unwrap();
        assert!(matches!(e, ConnectorError::Schema(_)), "{e}");

        let enc = BatchEncoder::new(&targets, &[DataType::Int16, DataType::Utf8]).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int16, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int16Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("ok"), Some("bad\0")])),
            ],
        )
        .unwrap();
        let mut buf = BytesMut::new();
        write_copy_header(&mut buf);
        let before = buf.len();
        let e = enc.encode_located(&batch, &mut buf).unwrap_err();
        assert_eq!((e.row, e.column), (1, 1));
        assert_eq!(
            e.error.to_string(),
            "contains a NUL character, which PostgreSQL text cannot store"
        );
        assert_eq!(buf.len(), before);
    }

    #[test]
    fn ddl_and_compat() {
        assert_eq!(pg_type_ddl(&ColumnType::String { max_len: None }), "text");
        assert_eq!(
            pg_type_ddl(&ColumnType::String { max_len: Some(7) }),
            "varchar(7)"
        );
        assert_eq!(
            pg_type_ddl(&ColumnType::Decimal {
                precision: 12,
                scale: 2
            }),
            "numeric(12,2)"
        );
        assert_eq!(pg_type_ddl(&ColumnType::Float64), "double precision");
        assert_eq!(pg_type_ddl(&ColumnType::Json), "jsonb");
        assert!(pg_type_compatible(&ColumnType::Int32, &Type::INT8));
        assert!(pg_type_compatible(&ColumnType::Int32, &Type::NUMERIC));
        assert!(!pg_type_compatible(&ColumnType::Int64, &Type::INT4));
        assert!(pg_type_compatible(
            &ColumnType::String { max_len: None },
            &Type::BPCHAR
        ));
        assert!(pg_type_compatible(&ColumnType::Json, &Type::JSON));
        assert!(!pg_type_compatible(
            &ColumnType::Timestamp,
            &Type::TIMESTAMPTZ
        ));
        assert!(!pg_type_compatible(&ColumnType::Float64, &Type::FLOAT4));
        // Every config type is compatible with the type its own DDL creates,
        // and the encoder can write its Arrow type there.
        let all = [
            ColumnType::Int16,
            ColumnType::Int32,
            ColumnType::Int64,
            ColumnType::Float32,
            ColumnType::Float64,
            ColumnType::Decimal {
                precision: 38,
                scale: 10,
            },
            ColumnType::Bool,
            ColumnType::String { max_len: Some(3) },
            ColumnType::Text,
            ColumnType::Binary,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp,
            ColumnType::TimestampTz,
            ColumnType::Uuid,
            ColumnType::Json,
        ];
        for t in all {
            let pg = match t {
                ColumnType::Int16 => Type::INT2,
                ColumnType::Int32 => Type::INT4,
                ColumnType::Int64 => Type::INT8,
                ColumnType::Float32 => Type::FLOAT4,
                ColumnType::Float64 => Type::FLOAT8,
                ColumnType::Decimal { .. } => Type::NUMERIC,
                ColumnType::Bool => Type::BOOL,
                ColumnType::String { .. } => Type::VARCHAR,
                ColumnType::Text => Type::TEXT,
                ColumnType::Binary => Type::BYTEA,
                ColumnType::Date => Type::DATE,
                ColumnType::Time => Type::TIME,
                ColumnType::Timestamp => Type::TIMESTAMP,
                ColumnType::TimestampTz => Type::TIMESTAMPTZ,
                ColumnType::Uuid => Type::UUID,
                ColumnType::Json => Type::JSONB,
            };
            assert!(pg_type_compatible(&t, &pg), "{t}");
            assert!(
                BatchEncoder::new(&[("c".into(), pg.clone())], &[t.arrow_type()]).is_ok(),
                "{t}"
            );
            assert!(ColumnDecoder::new("c", &pg, &t).is_ok(), "{t}");
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
            let (client, conn) = tokio_postgres::connect(
                "host=127.0.0.1 port=5432 user=postgres dbname=test",
                NoTls,
            )
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
}
