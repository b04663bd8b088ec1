//! The canonical text of a row (see the module doc): each hashed column's
//! values written from their Arrow arrays.

use super::*;

pub(super) fn column_of<'a>(
    batch: &'a RecordBatch,
    i: usize,
    c: &MappedColumn,
) -> Result<&'a ArrayRef> {
    if i >= batch.num_columns() {
        return Err(ConnectorError::Schema(format!(
            "cannot hash rows: the batch has {} columns, column \"{}\" is number {}",
            batch.num_columns(),
            c.dest,
            i + 1
        )));
    }
    Ok(batch.column(i))
}

pub(super) fn hashed_columns(batch: &RecordBatch, columns: &[MappedColumn]) -> Result<Vec<Col>> {
    columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.hash_column)
        .map(|(i, c)| {
            Col::new(column_of(batch, i, c)?, &c.spec.data_type).map_err(|e| match e {
                ConnectorError::Schema(msg) => {
                    ConnectorError::Schema(format!("column \"{}\": {msg}", c.dest))
                }
                other => other,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Canonical text
// ---------------------------------------------------------------------------

/// Builds the canonical text of one row.
#[derive(Default)]
pub(super) struct Canon {
    buf: Vec<u8>,
    /// Formatted value before it is framed with its length.
    scratch: Vec<u8>,
}

pub(super) const HEX: &[u8; 16] = b"0123456789abcdef";

impl Canon {
    pub(super) fn clear(&mut self) {
        self.buf.clear();
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(super) fn null(&mut self) {
        self.buf.push(b'N');
    }

    pub(super) fn frame(&mut self, text: &[u8], chars: usize) {
        let _ = write!(self.buf, "{chars}:");
        self.buf.extend_from_slice(text);
    }

    /// Text whose length is counted in characters.
    pub(super) fn text(&mut self, s: &str) {
        // Characters are the bytes that do not continue a UTF-8 sequence.
        let chars = s.bytes().filter(|b| (b & 0xC0) != 0x80).count();
        self.frame(s.as_bytes(), chars);
    }

    /// Frames the ASCII written to `scratch` by `f`.
    pub(super) fn ascii(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        f(&mut scratch);
        self.frame(&scratch, scratch.len());
        self.scratch = scratch;
    }

    pub(super) fn int(&mut self, v: i64) {
        self.ascii(|s| {
            let _ = write!(s, "{v}");
        });
    }

    /// A timestamp as PostgreSQL's binary send form in hex: 16 digits of
    /// the two's-complement microseconds since 2000-01-01. Fixed width and
    /// hex (never `N`), so it needs no length prefix; PostgreSQL produces it
    /// with `encode(timestamp[tz]_send(x), 'hex')`, far cheaper than exact
    /// epoch arithmetic in numeric.
    pub(super) fn pg_timestamp(&mut self, micros_since_1970: i64) {
        const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
        let v = micros_since_1970.wrapping_sub(PG_EPOCH_OFFSET_MICROS) as u64;
        for shift in (0..16).rev() {
            self.buf.push(HEX[((v >> (shift * 4)) & 0xf) as usize]);
        }
    }

    pub(super) fn boolean(&mut self, v: bool) {
        self.buf.extend_from_slice(if v { b"1:t" } else { b"1:f" });
    }

    pub(super) fn f64(&mut self, v: f64) {
        let bits = if v == 0.0 {
            0
        } else if v.is_nan() {
            CANONICAL_NAN64
        } else {
            v.to_bits()
        };
        self.ascii(|s| {
            let _ = write!(s, "{bits:016x}");
        });
    }

    pub(super) fn f32(&mut self, v: f32) {
        let bits = if v == 0.0 {
            0
        } else if v.is_nan() {
            CANONICAL_NAN32
        } else {
            v.to_bits()
        };
        self.ascii(|s| {
            let _ = write!(s, "{bits:08x}");
        });
    }

    pub(super) fn hex(&mut self, bytes: &[u8]) {
        self.ascii(|s| {
            s.reserve(bytes.len() * 2);
            for b in bytes {
                s.push(HEX[(b >> 4) as usize]);
                s.push(HEX[(b & 15) as usize]);
            }
        });
    }

    pub(super) fn uuid(&mut self, bytes: &[u8]) {
        self.ascii(|s| {
            for (i, b) in bytes.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push(b'-');
                }
                s.push(HEX[(b >> 4) as usize]);
                s.push(HEX[(b & 15) as usize]);
            }
        });
    }

    pub(super) fn decimal(&mut self, v: i128, scale: i8) {
        self.ascii(|s| write_decimal(s, v, scale));
    }
}

/// `v × 10^-scale` with exactly `scale` fraction digits (none for scale ≤ 0,
/// where the value is written out with its trailing zeros). Zero has no sign.
pub(super) fn write_decimal(s: &mut Vec<u8>, v: i128, scale: i8) {
    let digits = v.unsigned_abs().to_string();
    let digits = digits.as_bytes();
    if v < 0 {
        s.push(b'-');
    }
    if scale <= 0 {
        s.extend_from_slice(digits);
        if v != 0 {
            s.extend(std::iter::repeat_n(b'0', scale.unsigned_abs() as usize));
        }
        return;
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        s.extend_from_slice(b"0.");
        s.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        s.extend_from_slice(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        s.extend_from_slice(int);
        s.push(b'.');
        s.extend_from_slice(frac);
    }
}

/// One hashed column of a batch, typed once per batch.
pub(super) enum Col {
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
    Decimal(Decimal128Array, i8),
    Bool(BooleanArray),
    Str(StringArray),
    Binary(BinaryArray),
    Date(Date32Array),
    Time(Time64MicrosecondArray),
    Timestamp(TimestampMicrosecondArray),
    Uuid(FixedSizeBinaryArray),
}

impl Col {
    /// Reads `array` as the configured type `ty` through the one
    /// conformance layer ([`crate::conform::conform_array`]).
    pub(super) fn new(array: &ArrayRef, ty: &ColumnType) -> Result<Col> {
        let array = crate::conform::conform_array(array, ty)?;
        Ok(match ty {
            ColumnType::Int16 => Col::I16(array.as_primitive::<Int16Type>().clone()),
            ColumnType::Int32 => Col::I32(array.as_primitive::<Int32Type>().clone()),
            ColumnType::Int64 => Col::I64(array.as_primitive::<Int64Type>().clone()),
            ColumnType::Float32 => Col::F32(array.as_primitive::<Float32Type>().clone()),
            ColumnType::Float64 => Col::F64(array.as_primitive::<Float64Type>().clone()),
            ColumnType::Decimal { scale, .. } => {
                Col::Decimal(array.as_primitive::<Decimal128Type>().clone(), *scale)
            }
            ColumnType::Bool => Col::Bool(array.as_boolean().clone()),
            ColumnType::String { .. } | ColumnType::Text | ColumnType::Json => {
                Col::Str(array.as_string::<i32>().clone())
            }
            ColumnType::Binary => Col::Binary(array.as_binary::<i32>().clone()),
            ColumnType::Date => Col::Date(array.as_primitive::<Date32Type>().clone()),
            ColumnType::Time => Col::Time(array.as_primitive::<Time64MicrosecondType>().clone()),
            ColumnType::Timestamp | ColumnType::TimestampTz => {
                Col::Timestamp(array.as_primitive::<TimestampMicrosecondType>().clone())
            }
            ColumnType::Uuid => Col::Uuid(array.as_fixed_size_binary().clone()),
        })
    }

    pub(super) fn array(&self) -> &dyn Array {
        match self {
            Col::I16(a) => a,
            Col::I32(a) => a,
            Col::I64(a) => a,
            Col::F32(a) => a,
            Col::F64(a) => a,
            Col::Decimal(a, _) => a,
            Col::Bool(a) => a,
            Col::Str(a) => a,
            Col::Binary(a) => a,
            Col::Date(a) => a,
            Col::Time(a) => a,
            Col::Timestamp(a) => a,
            Col::Uuid(a) => a,
        }
    }

    pub(super) fn push(&self, out: &mut Canon, row: usize) {
        if self.array().is_null(row) {
            out.null();
            return;
        }
        match self {
            Col::I16(a) => out.int(a.value(row).into()),
            Col::I32(a) => out.int(a.value(row).into()),
            Col::I64(a) => out.int(a.value(row)),
            Col::F32(a) => out.f32(a.value(row)),
            Col::F64(a) => out.f64(a.value(row)),
            Col::Decimal(a, scale) => out.decimal(a.value(row), *scale),
            Col::Bool(a) => out.boolean(a.value(row)),
            Col::Str(a) => out.text(a.value(row)),
            Col::Binary(a) => out.hex(a.value(row)),
            Col::Date(a) => out.int(a.value(row).into()),
            Col::Time(a) => out.int(a.value(row)),
            Col::Timestamp(a) => out.pg_timestamp(a.value(row)),
            Col::Uuid(a) => out.uuid(a.value(row)),
        }
    }
}
