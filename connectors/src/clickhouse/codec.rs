//! SyncHub's types as ClickHouse 18.16 stores them, and their RowBinary
//! encoding both ways.
//!
//! 18.16's `Date` and `DateTime` hold 1970–2105 only and `DateTime` whole
//! seconds (`DateTime64` came in 20.1, `Date32` in 21.9), and it has no
//! time-of-day type. To hold every value of the universal types without
//! loss, dates are stored as `Int32` days since 1970-01-01, times of day as
//! `Int64` microseconds since midnight and timestamps as `Int64`
//! microseconds since 1970-01-01 UTC: the same numbers as their Arrow
//! arrays. A source reading a table made elsewhere reads `Date` and
//! `DateTime` columns as well ([`read_expr`]).

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use planner::partition::{DimRange, Partition, PartitionValue};
use planner::types::{arrow_schema, ColumnSpec, ColumnType};

use super::client::bytes_literal;
use crate::{ConnectorError, Result};

const DAY_MICROS: i64 = 86_400_000_000;

/// The widest decimal ClickHouse holds.
const MAX_DECIMAL_PRECISION: u8 = 38;

/// The ClickHouse type storing `ty` (without `Nullable`).
pub fn stored_type(ty: &ColumnType) -> Result<String> {
    Ok(match ty {
        ColumnType::Int16 => "Int16".into(),
        ColumnType::Int32 | ColumnType::Date => "Int32".into(),
        ColumnType::Int64 | ColumnType::Time | ColumnType::Timestamp | ColumnType::TimestampTz => {
            "Int64".into()
        }
        ColumnType::Float32 => "Float32".into(),
        ColumnType::Float64 => "Float64".into(),
        ColumnType::Decimal { precision, scale } => {
            if *precision > MAX_DECIMAL_PRECISION {
                return Err(ConnectorError::Unsupported(format!(
                    "decimal({precision},{scale}) is wider than ClickHouse's Decimal(38, S)"
                )));
            }
            format!("Decimal({precision}, {scale})")
        }
        ColumnType::Bool => "UInt8".into(),
        ColumnType::String { .. } | ColumnType::Text | ColumnType::Json | ColumnType::Binary => {
            "String".into()
        }
        ColumnType::Uuid => "UUID".into(),
    })
}

/// The column's declared ClickHouse type: key columns are never NULL (they
/// make the sorting key), the others `Nullable`.
pub fn column_type(spec: &ColumnSpec) -> Result<String> {
    let base = stored_type(&spec.data_type)
        .map_err(|e| ConnectorError::Unsupported(format!("column \"{}\": {e}", spec.name)))?;
    Ok(if spec.unique {
        base
    } else {
        format!("Nullable({base})")
    })
}

/// Whether a key column of this type can be named in a query
/// ([`key_literal`]).
pub fn key_type_supported(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::Int16
            | ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::Bool
            | ColumnType::String { .. }
            | ColumnType::Text
            | ColumnType::Date
            | ColumnType::Timestamp
            | ColumnType::TimestampTz
            | ColumnType::Uuid
    )
}

/// Bytes per value of a fixed-width decimal.
fn decimal_width(precision: u8) -> usize {
    match precision {
        0..=9 => 4,
        10..=18 => 8,
        _ => 16,
    }
}

fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// ClickHouse's UUID: two little-endian 64-bit halves.
fn uuid_swap(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for i in 0..8 {
        out[i] = bytes[7 - i];
        out[8 + i] = bytes[15 - i];
    }
    out
}

/// Appends the RowBinary of `array[row]` (conformed to `spec`) to `out`,
/// with `Nullable`'s flag byte when the column is not a key.
pub fn encode_value(
    array: &dyn Array,
    spec: &ColumnSpec,
    row: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    if array.is_null(row) {
        if spec.unique {
            return Err(ConnectorError::Value(format!(
                "unique column \"{}\" is NULL, which a ClickHouse sorting key cannot hold",
                spec.name
            )));
        }
        out.push(1);
        return Ok(());
    }
    if !spec.unique {
        out.push(0);
    }
    match &spec.data_type {
        ColumnType::Int16 => out.extend(array.as_primitive::<Int16Type>().value(row).to_le_bytes()),
        ColumnType::Int32 => out.extend(array.as_primitive::<Int32Type>().value(row).to_le_bytes()),
        ColumnType::Int64 => out.extend(array.as_primitive::<Int64Type>().value(row).to_le_bytes()),
        ColumnType::Float32 => {
            out.extend(array.as_primitive::<Float32Type>().value(row).to_le_bytes())
        }
        ColumnType::Float64 => {
            out.extend(array.as_primitive::<Float64Type>().value(row).to_le_bytes())
        }
        ColumnType::Decimal { precision, .. } => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            let bytes = v.to_le_bytes();
            out.extend(&bytes[..decimal_width(*precision)]);
        }
        ColumnType::Bool => out.push(u8::from(array.as_boolean().value(row))),
        ColumnType::String { .. } | ColumnType::Text | ColumnType::Json => {
            let v = array.as_string::<i32>().value(row).as_bytes();
            write_varint(out, v.len() as u64);
            out.extend(v);
        }
        ColumnType::Binary => {
            let v = array.as_binary::<i32>().value(row);
            write_varint(out, v.len() as u64);
            out.extend(v);
        }
        ColumnType::Date => out.extend(array.as_primitive::<Date32Type>().value(row).to_le_bytes()),
        ColumnType::Time => out.extend(
            array
                .as_primitive::<Time64MicrosecondType>()
                .value(row)
                .to_le_bytes(),
        ),
        ColumnType::Timestamp | ColumnType::TimestampTz => out.extend(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .value(row)
                .to_le_bytes(),
        ),
        ColumnType::Uuid => out.extend(uuid_swap(array.as_fixed_size_binary().value(row))),
    }
    Ok(())
}

/// A cursor over a RowBinary answer.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(ConnectorError::Other(format!(
                "ClickHouse's RowBinary answer ends inside a value (at byte {} of {})",
                self.pos,
                self.bytes.len()
            )));
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(ConnectorError::Other(
            "ClickHouse's RowBinary answer holds a malformed length".into(),
        ))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }

    pub fn string(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()? as usize;
        self.take(n)
    }

    /// The bytes of one value (its null flag included when `nullable`):
    /// `None` when it is NULL.
    pub fn value(&mut self, ty: &ColumnType, nullable: bool) -> Result<Option<&'a [u8]>> {
        if nullable && self.take(1)?[0] == 1 {
            return Ok(None);
        }
        Ok(Some(match ty {
            ColumnType::Int16 => self.take(2)?,
            ColumnType::Int32 | ColumnType::Date | ColumnType::Float32 => self.take(4)?,
            ColumnType::Int64
            | ColumnType::Time
            | ColumnType::Timestamp
            | ColumnType::TimestampTz
            | ColumnType::Float64 => self.take(8)?,
            ColumnType::Decimal { precision, .. } => self.take(decimal_width(*precision))?,
            ColumnType::Bool => self.take(1)?,
            ColumnType::String { .. }
            | ColumnType::Text
            | ColumnType::Json
            | ColumnType::Binary => self.string()?,
            ColumnType::Uuid => self.take(16)?,
        }))
    }
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

/// Builds Arrow columns from RowBinary values.
pub struct BatchBuilder {
    specs: Vec<ColumnSpec>,
    builders: Vec<Box<dyn arrow::array::ArrayBuilder>>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(specs: &[ColumnSpec]) -> BatchBuilder {
        let builders = specs
            .iter()
            .map(|s| -> Box<dyn arrow::array::ArrayBuilder> {
                match &s.data_type {
                    ColumnType::Int16 => Box::new(Int16Builder::new()),
                    ColumnType::Int32 => Box::new(Int32Builder::new()),
                    ColumnType::Int64 => Box::new(Int64Builder::new()),
                    ColumnType::Float32 => Box::new(Float32Builder::new()),
                    ColumnType::Float64 => Box::new(Float64Builder::new()),
                    ColumnType::Decimal { precision, scale } => Box::new(
                        Decimal128Builder::new()
                            .with_precision_and_scale(*precision, *scale)
                            .unwrap_or_default(),
                    ),
                    ColumnType::Bool => Box::new(BooleanBuilder::new()),
                    ColumnType::String { .. } | ColumnType::Text | ColumnType::Json => {
                        Box::new(StringBuilder::new())
                    }
                    ColumnType::Binary => Box::new(BinaryBuilder::new()),
                    ColumnType::Date => Box::new(Date32Builder::new()),
                    ColumnType::Time => Box::new(Time64MicrosecondBuilder::new()),
                    ColumnType::Timestamp => Box::new(TimestampMicrosecondBuilder::new()),
                    ColumnType::TimestampTz => {
                        Box::new(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                    }
                    ColumnType::Uuid => Box::new(FixedSizeBinaryBuilder::new(16)),
                }
            })
            .collect();
        BatchBuilder {
            specs: specs.to_vec(),
            builders,
            rows: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Reads one row, every value `Nullable`, from `cur`.
    pub fn push_row(&mut self, cur: &mut Cursor<'_>) -> Result<()> {
        for (i, spec) in self.specs.iter().enumerate() {
            let v = cur.value(&spec.data_type, true)?;
            let b = self.builders[i].as_any_mut();
            macro_rules! put {
                ($builder:ty, $conv:expr) => {{
                    let b = b.downcast_mut::<$builder>().ok_or_else(|| {
                        ConnectorError::Other(format!("builder of column \"{}\"", spec.name))
                    })?;
                    match v {
                        None => b.append_null(),
                        Some(bytes) => b.append_value($conv(bytes)),
                    }
                }};
            }
            match &spec.data_type {
                ColumnType::Int16 => put!(Int16Builder, |b| i16::from_le_bytes(fixed(b))),
                ColumnType::Int32 => put!(Int32Builder, |b| i32::from_le_bytes(fixed(b))),
                ColumnType::Int64 => put!(Int64Builder, |b| i64::from_le_bytes(fixed(b))),
                ColumnType::Float32 => put!(Float32Builder, |b| f32::from_le_bytes(fixed(b))),
                ColumnType::Float64 => put!(Float64Builder, |b| f64::from_le_bytes(fixed(b))),
                ColumnType::Decimal { .. } => put!(Decimal128Builder, |b: &[u8]| match b.len() {
                    4 => i128::from(i32::from_le_bytes(fixed(b))),
                    8 => i128::from(i64::from_le_bytes(fixed(b))),
                    _ => i128::from_le_bytes(fixed(b)),
                }),
                ColumnType::Bool => put!(BooleanBuilder, |b: &[u8]| b[0] != 0),
                ColumnType::String { .. } | ColumnType::Text | ColumnType::Json => {
                    let b = b.downcast_mut::<StringBuilder>().ok_or_else(|| {
                        ConnectorError::Other(format!("builder of column \"{}\"", spec.name))
                    })?;
                    match v {
                        None => b.append_null(),
                        Some(bytes) => b.append_value(std::str::from_utf8(bytes).map_err(|_| {
                            ConnectorError::Value(format!(
                                "column \"{}\" holds a value that is not UTF-8 text; map it as binary",
                                spec.name
                            ))
                        })?),
                    }
                }
                ColumnType::Binary => put!(BinaryBuilder, |b: &[u8]| b.to_vec()),
                ColumnType::Date => put!(Date32Builder, |b| i32::from_le_bytes(fixed(b))),
                ColumnType::Time => {
                    put!(Time64MicrosecondBuilder, |b| i64::from_le_bytes(fixed(b)))
                }
                ColumnType::Timestamp | ColumnType::TimestampTz => {
                    put!(TimestampMicrosecondBuilder, |b| i64::from_le_bytes(fixed(
                        b
                    )))
                }
                ColumnType::Uuid => {
                    let b = b.downcast_mut::<FixedSizeBinaryBuilder>().ok_or_else(|| {
                        ConnectorError::Other(format!("builder of column \"{}\"", spec.name))
                    })?;
                    match v {
                        None => b.append_null(),
                        Some(bytes) => b.append_value(uuid_swap(bytes))?,
                    }
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows pushed so far as a batch; the builder starts empty again.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        self.rows = 0;
        let schema = arrow_schema(&self.specs);
        // A key read from a Nullable column stays NULL-free in the schema
        // only when it is: the schema's nullability is the pipeline's.
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// Splits a RowBinary answer into batches of at most `page_rows` rows.
pub fn decode(bytes: &[u8], specs: &[ColumnSpec], page_rows: usize) -> Result<Vec<RecordBatch>> {
    let mut cur = Cursor::new(bytes);
    let mut builder = BatchBuilder::new(specs);
    let mut out = Vec::new();
    while !cur.at_end() {
        builder.push_row(&mut cur)?;
        if builder.rows() >= page_rows.max(1) {
            out.push(builder.finish()?);
        }
    }
    if builder.rows() > 0 {
        out.push(builder.finish()?);
    }
    Ok(out)
}

/// A key value as a ClickHouse literal of its stored type, or `None` for a
/// NULL (no key holds one).
pub fn key_literal(array: &dyn Array, ty: &ColumnType, row: usize) -> Result<Option<String>> {
    if array.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match ty {
        ColumnType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        ColumnType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        ColumnType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        ColumnType::Bool => u8::from(array.as_boolean().value(row)).to_string(),
        ColumnType::String { .. } | ColumnType::Text => {
            bytes_literal(array.as_string::<i32>().value(row).as_bytes())
        }
        ColumnType::Date => array.as_primitive::<Date32Type>().value(row).to_string(),
        ColumnType::Timestamp | ColumnType::TimestampTz => array
            .as_primitive::<TimestampMicrosecondType>()
            .value(row)
            .to_string(),
        ColumnType::Uuid => {
            let b = array.as_fixed_size_binary().value(row);
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!(
                "'{}-{}-{}-{}-{}'",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
        }
        other => {
            return Err(ConnectorError::Unsupported(format!(
                "a {other} key cannot be named in a ClickHouse query yet"
            )))
        }
    }))
}

/// `(k1, k2) IN ((…), (…))` for the keys of `keys` (columns `specs`, in
/// order), each chunk of at most `chunk` keys; `exprs` are the key
/// columns as the query names them. NULL keys are left out (none exists).
pub fn keys_in(
    exprs: &[String],
    keys: &RecordBatch,
    specs: &[&ColumnSpec],
    chunk: usize,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut tuples: Vec<String> = Vec::new();
    let lhs = format!("({})", exprs.join(", "));
    let flush = |tuples: &mut Vec<String>, out: &mut Vec<String>| {
        if !tuples.is_empty() {
            out.push(format!("{lhs} IN ({})", tuples.join(", ")));
            tuples.clear();
        }
    };
    'rows: for row in 0..keys.num_rows() {
        let mut values = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            match key_literal(keys.column(i).as_ref(), &s.data_type, row)? {
                Some(v) => values.push(v),
                None => continue 'rows,
            }
        }
        // A one-element tuple is written `tuple(x)`; the IN of a single
        // column takes plain values.
        tuples.push(if values.len() == 1 {
            values.pop().unwrap_or_default()
        } else {
            format!("({})", values.join(", "))
        });
        if tuples.len() >= chunk {
            flush(&mut tuples, &mut out);
        }
    }
    flush(&mut tuples, &mut out);
    if exprs.len() == 1 {
        out = out
            .into_iter()
            .map(|c| c.replacen(&lhs, &exprs[0], 1))
            .collect();
    }
    Ok(out)
}

/// The ranges of `partition` as conditions on stored values: `expr(i)`
/// names the column of the range's dimension and `ty` its type.
pub fn range_conditions<'a>(
    partition: &'a Partition,
    mut column: impl FnMut(
        &'a planner::partition::PartitionDimensionRef,
    ) -> Result<(String, ColumnType)>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (dim, range) in &partition.ranges {
        match range {
            DimRange::All => {}
            DimRange::Null => out.push(format!("isNull({})", column(dim)?.0)),
            DimRange::Range { start, end } => {
                let (e, ty) = column(dim)?;
                let bound = |v: &PartitionValue| match (v, &ty) {
                    // Day d is micros d × DAY: d ≥ ⌈start/DAY⌉, d < ⌈end/DAY⌉.
                    (PartitionValue::Micros(m), ColumnType::Date) => {
                        m.div_euclid(DAY_MICROS) + i64::from(m.rem_euclid(DAY_MICROS) != 0)
                    }
                    (v, _) => v.as_i64(),
                };
                out.push(format!("{e} >= {} AND {e} < {}", bound(start), bound(end)));
            }
        }
    }
    Ok(out)
}

/// The stored value of a Date column (days) as a partition value (micros).
pub fn partition_value(ty: &ColumnType, v: i64) -> PartitionValue {
    match ty {
        ColumnType::Date => PartitionValue::Micros(v * DAY_MICROS),
        ColumnType::Timestamp | ColumnType::TimestampTz => PartitionValue::Micros(v),
        _ => PartitionValue::Int(v),
    }
}

/// How a source reads a column declared `declared` as `ty`'s stored
/// values: ClickHouse's own `Date`/`DateTime` converted to days and
/// microseconds, narrower numbers widened. Always `Nullable`, so one
/// decoder reads every column.
pub fn read_expr(column: &str, declared: &str, ty: &ColumnType) -> Result<String> {
    let inner = declared
        .strip_prefix("Nullable(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(declared);
    let stored = stored_type(ty)?;
    let e = match ty {
        ColumnType::Date if inner == "Date" => format!("toInt32({column})"),
        ColumnType::Timestamp | ColumnType::TimestampTz if inner.starts_with("DateTime") => {
            format!("toInt64({column}) * 1000000")
        }
        _ if inner == stored => column.to_string(),
        ColumnType::String { .. } | ColumnType::Text | ColumnType::Json | ColumnType::Binary => {
            format!("toString({column})")
        }
        _ => format!("CAST({column} AS {stored})"),
    };
    Ok(format!("toNullable({e})"))
}

/// One row of a batch in RowBinary, and its key columns alone: what the
/// sink compares with the table's rows.
pub fn encode_rows(batch: &RecordBatch, specs: &[ColumnSpec]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut data = Vec::with_capacity(64);
        let mut key = Vec::with_capacity(16);
        for (i, s) in specs.iter().enumerate() {
            let array = batch.column(i);
            encode_value(array.as_ref(), s, row, &mut data)?;
            if s.unique {
                encode_value(array.as_ref(), s, row, &mut key)?;
            }
        }
        out.push((key, data));
    }
    Ok(out)
}
