//! Encoding: record batches as binary COPY tuples ([`BatchEncoder`]), with
//! the COPY header and trailer.

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::{BufMut, BytesMut};
use tokio_postgres::types::Type;

use super::types::{classify, Pg};
use super::{NUMERIC_NEG, NUMERIC_POS, PG_EPOCH_DAYS, PG_EPOCH_MICROS, POW10};
use crate::error::{ConnectorError, Result};

/// Binary COPY signature: "PGCOPY\n\377\r\n\0".
const COPY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

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
pub(super) fn put_numeric(buf: &mut BytesMut, v: i128, scale: i8) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
}
