//! Decoding: binary-format values into Arrow arrays ([`ColumnDecoder`]), with
//! the numeric and date/time conversions it needs.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::DataType;
use planner::types::ColumnType;
use tokio_postgres::types::Type;

use super::display::{display_date, display_text, display_timestamp};
use super::types::{classify, Pg};
use super::{
    DATE_INFINITY, DATE_NEG_INFINITY, MICROS_PER_DAY, NBASE, NUMERIC_NAN, NUMERIC_NEG,
    NUMERIC_NINF, NUMERIC_PINF, NUMERIC_POS, PG_EPOCH_DAYS, PG_EPOCH_MICROS, POW10, TS_INFINITY,
    TS_NEG_INFINITY,
};
use crate::error::{ConnectorError, Result};

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Width of a PostgreSQL integer source.
#[derive(Debug, Clone, Copy)]
pub(super) enum IntWidth {
    W2,
    W4,
    W8,
}

impl IntWidth {
    pub(super) fn of(pg: Pg) -> Option<IntWidth> {
        match pg {
            Pg::Int2 => Some(IntWidth::W2),
            Pg::Int4 => Some(IntWidth::W4),
            Pg::Int8 => Some(IntWidth::W8),
            _ => None,
        }
    }

    #[inline]
    pub(super) fn read(self, raw: &[u8]) -> Result<i64> {
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
pub(super) fn fixed<const N: usize>(raw: &[u8], ty: &str) -> Result<[u8; N]> {
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

pub(super) fn jsonb_text(raw: &[u8]) -> Result<&[u8]> {
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
pub(super) fn numeric_to_string(raw: &[u8]) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::codec::tests::decode_one;
    use arrow::array::{
        Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

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
}
