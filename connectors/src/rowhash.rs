//! Row hashes and partition checksums of the hash strategy.
//!
//! A row's hash must be the same whichever engine computes it: PostgreSQL in
//! SQL, SQLite through the `synchub_row_hash` function registered here, or
//! Rust over Arrow arrays ([`hash_rows`], the reference implementation). So
//! a PostgreSQL source can be compared with a SQLite destination and back.
//!
//! **Canonical text** of a row: for each column with `hash_column: true`, in
//! mapping order, `N` for NULL, else `<len>:<text>`, where `<len>` is the
//! length of `<text>` in characters (so NULL ≠ '' and ('ab','c') ≠
//! ('a','bc')). `<text>` follows the column's *configured* type:
//!
//! | type                        | text                                                   |
//! |-----------------------------|--------------------------------------------------------|
//! | `smallint`, `int`, `bigint` | decimal: `-42`                                         |
//! | `bool`                      | `t` / `f`                                              |
//! | `decimal(p,s)`              | exactly `s` fraction digits, `-` if negative, never `-0`: `-12.50` |
//! | `real`                      | IEEE bits as 8 lowercase hex digits (`float4send`)     |
//! | `double`                    | IEEE bits as 16 lowercase hex digits (`float8send`)    |
//! | `string`, `text`, `json`    | the text as it is                                      |
//! | `binary`                    | lowercase hex of the bytes                             |
//! | `date`                      | days since 1970-01-01: `-1`                            |
//! | `time`                      | microseconds since midnight                            |
//! | `timestamp`, `timestamptz`  | 16 hex digits, no prefix: PostgreSQL's binary form (µs since 2000-01-01, two's complement) |
//! | `uuid`                      | lowercase hyphenated                                   |
//!
//! Floats: `-0.0` is written as `0.0` and every NaN as the quiet NaN
//! (`7ff8000000000000` / `7fc00000`). SQLite stores `-0.0` in a REAL column
//! as the integer 0, and PostgreSQL arithmetic can yield NaNs with other sign
//! or payload bits; without this a PostgreSQL row holding `-0.0` could never
//! match its SQLite copy and its partition would be re-synced on every run.
//!
//! **Row hash**: PostgreSQL's 64-bit `hash_bytes_extended` of the canonical
//! text (seed 0) as an `i64`; in PostgreSQL
//! `hashtextextended((<text>) COLLATE "C", 0)` (the collation keeps it a hash
//! of the bytes), in Rust and SQLite [`crate::pghash`]. It replaced the first
//! 8 bytes of md5, which PostgreSQL computes 2.6 times slower.
//!
//! **Checksum** of a set of rows: the row count and the sum of the row hashes
//! wrapping at 2^64 ([`Checksum`]); order-independent, so partitions can be
//! compared without sorting.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    Int64Builder, RecordBatch, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use planner::model::{MappedColumn, StoredHash};
use planner::types::{arrow_schema, ColumnSpec, ColumnType};
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::ValueRef;
use tokio_postgres::types::{Kind, Type};

use futures_util::StreamExt;
use planner::partition::Partition;

use crate::traits::{BatchStream, Checksum, Source};
use crate::{ConnectorError, Result};

/// Name of the Int64 column that carries the row hash in `row_hashes` batches.
pub const ROW_HASH_COLUMN: &str = "_synchub_row_hash";

/// Name of the SQLite scalar function computing a row hash.
pub const SQLITE_ROW_HASH_FN: &str = "synchub_row_hash";

/// Name of the SQLite scalar function reading a text `hash_key` column's
/// row hash ([`hash_from_hex`]).
const SQLITE_HASH_FROM_HEX_FN: &str = "synchub_hash_from_hex";

/// Name of the SQLite aggregate summing row hashes with wrap-around.
pub const SQLITE_HASH_SUM_FN: &str = "synchub_hash_sum";

const CANONICAL_NAN64: u64 = 0x7ff8_0000_0000_0000;
const CANONICAL_NAN32: u32 = 0x7fc0_0000;

// ---------------------------------------------------------------------------
// Hash and checksum
// ---------------------------------------------------------------------------

/// The row hash of a canonical text (see the module's notes).
pub fn row_hash(canonical: &[u8]) -> i64 {
    crate::pghash::hash_bytes_extended(canonical, 0) as i64
}

/// Adds one row hash to a checksum.
pub fn checksum_add(c: &mut Checksum, hash: i64) {
    c.rows += 1;
    c.sum = c.sum.wrapping_add(hash as u64);
}

/// The checksum of two disjoint sets of rows together.
pub fn checksum_combine(a: Checksum, b: Checksum) -> Checksum {
    Checksum {
        rows: a.rows + b.rows,
        sum: a.sum.wrapping_add(b.sum),
    }
}

/// The checksum of a column of row hashes (NULLs are not rows' hashes and
/// are skipped).
pub fn checksum_hashes(hashes: &Int64Array) -> Checksum {
    let mut c = Checksum::default();
    for h in hashes.iter().flatten() {
        checksum_add(&mut c, h);
    }
    c
}

/// Row hashes of a batch in the destination schema (column `i` holds
/// `columns[i]`), one per row, never NULL. Hashes only the columns with
/// `hash_column: true`.
///
/// # Panics
/// When the batch is not in the destination schema (see [`try_hash_rows`]);
/// batches from a `Source::read` always are.
pub fn hash_rows(batch: &RecordBatch, columns: &[MappedColumn]) -> Int64Array {
    try_hash_rows(batch, columns).unwrap_or_else(|e| panic!("hash_rows: {e}"))
}

/// [`hash_rows`], failing with a `Schema` error when a hashed column is
/// missing or has an Arrow type its configured type cannot be read from.
///
/// A `StoredHash::Read` column (the destination read back) holds the row
/// hashes already: its values are returned as they are, NULL as 0.
pub fn try_hash_rows(batch: &RecordBatch, columns: &[MappedColumn]) -> Result<Int64Array> {
    if let Some(i) = columns
        .iter()
        .position(|c| c.stored_hash == StoredHash::Read)
    {
        let stored = column_of(batch, i, &columns[i])?;
        if let Some(text) = stored.as_string_opt::<i32>() {
            return Ok(text
                .iter()
                .map(|h| Some(h.and_then(hash_from_hex).unwrap_or(0)))
                .collect());
        }
        let stored = stored.as_primitive_opt::<Int64Type>().ok_or_else(|| {
            ConnectorError::Schema(format!(
                "column \"{}\" holds the row hash but is {}, not Int64 or Utf8",
                columns[i].dest,
                stored.data_type()
            ))
        })?;
        return Ok(stored.iter().map(|h| Some(h.unwrap_or(0))).collect());
    }
    let cols = hashed_columns(batch, columns)?;
    let mut canon = Canon::default();
    let mut out = Int64Builder::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        canon.clear();
        for c in &cols {
            c.push(&mut canon, row);
        }
        out.append_value(row_hash(canon.bytes()));
    }
    Ok(out.finish())
}

/// Fills the `StoredHash::Compute` columns of a batch read from a source
/// (selected as [`planner::model::COMPUTED_HASH_SQL`], so NULL) with the
/// row hashes of its rows: the value written to the destination is the hash
/// `checksum` and `row_hashes` compute for the same row. Other batches pass
/// unchanged.
pub fn fill_computed_hash(batch: RecordBatch, columns: &[MappedColumn]) -> Result<RecordBatch> {
    if !columns.iter().any(|c| c.stored_hash == StoredHash::Compute) {
        return Ok(batch);
    }
    let hashes = try_hash_rows(&batch, columns)?;
    let mut arrays = batch.columns().to_vec();
    for (i, c) in columns.iter().enumerate() {
        if c.stored_hash == StoredHash::Compute {
            column_of(&batch, i, c)?;
            arrays[i] = if c.spec.data_type == ColumnType::Int64 {
                Arc::new(hashes.clone())
            } else {
                let text: StringArray =
                    hashes.values().iter().map(|h| Some(hash_hex(*h))).collect();
                Arc::new(text) as ArrayRef
            };
        }
    }
    Ok(RecordBatch::try_new(batch.schema(), arrays)?)
}

/// Rows per page when a source's rows are read to be hashed here.
const HASH_PAGE_ROWS: usize = 8192;

/// `partition`'s checksum from its rows as `source` reads them, hashed here:
/// the path of every source that cannot hash where its data lives. A
/// pushdown's checksum equals this one (the conformance suite holds them
/// equal).
pub async fn checksum_by_reading<S: Source + ?Sized>(
    source: &mut S,
    partition: &Partition,
) -> Result<Checksum> {
    let columns = source.columns().to_vec();
    let mut batches = source.read(partition, HASH_PAGE_ROWS).await?;
    let mut total = Checksum::default();
    while let Some(batch) = batches.next().await {
        total = checksum_combine(total, try_checksum_batch(&batch?, &columns)?);
    }
    Ok(total)
}

/// The keys and row hashes of `partition` ([`row_hashes_batch`]) from its
/// rows as `source` reads them.
pub async fn row_hashes_by_reading<'a, S: Source + ?Sized>(
    source: &'a mut S,
    partition: &Partition,
    page_rows: usize,
) -> Result<BatchStream<'a>> {
    let columns = source.columns().to_vec();
    let batches = source.read(partition, page_rows).await?;
    Ok(Box::pin(batches.map(move |batch| {
        batch.and_then(|b| row_hashes_batch(&b, &columns))
    })))
}

/// A row hash as a text `hash_key` column stores it: the 64 bits as 16
/// lowercase hex digits (two's complement, so `-1` is `ffffffffffffffff`).
pub fn hash_hex(hash: i64) -> String {
    format!("{:016x}", hash as u64)
}

/// The row hash a text `hash_key` column holds, or `None` unless it is
/// exactly 16 lowercase hex digits ([`hash_hex`]'s form): such a value is
/// read as 0, a hash no row has in practice, so the row is rewritten.
pub fn hash_from_hex(text: &str) -> Option<i64> {
    let hex = text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hex.then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
        .map(|h| h as i64)
}

/// Row count and wrapping sum of the row hashes of a batch in the
/// destination schema. Panics like [`hash_rows`].
pub fn checksum_batch(batch: &RecordBatch, columns: &[MappedColumn]) -> Checksum {
    checksum_hashes(&hash_rows(batch, columns))
}

/// [`checksum_batch`], failing like [`try_hash_rows`].
pub fn try_checksum_batch(batch: &RecordBatch, columns: &[MappedColumn]) -> Result<Checksum> {
    Ok(checksum_hashes(&try_hash_rows(batch, columns)?))
}

/// The canonical text of one row, for tests and for explaining a mismatch.
pub fn canonical_text(batch: &RecordBatch, columns: &[MappedColumn], row: usize) -> Result<String> {
    let cols = hashed_columns(batch, columns)?;
    let mut canon = Canon::default();
    for c in &cols {
        c.push(&mut canon, row);
    }
    Ok(String::from_utf8_lossy(canon.bytes()).into_owned())
}

/// The columns of a `row_hashes` batch: the unique key columns in mapping
/// order, then the non-null Int64 [`ROW_HASH_COLUMN`].
pub fn row_hash_specs(columns: &[MappedColumn]) -> Vec<ColumnSpec> {
    let mut specs: Vec<ColumnSpec> = columns
        .iter()
        .filter(|c| c.spec.unique)
        .map(|c| c.spec.clone())
        .collect();
    specs.push(ColumnSpec {
        name: ROW_HASH_COLUMN.to_string(),
        data_type: ColumnType::Int64,
        unique: false,
        nullable: false,
    });
    specs
}

/// The Arrow schema of `row_hashes` batches.
pub fn row_hash_schema(columns: &[MappedColumn]) -> arrow::datatypes::SchemaRef {
    arrow_schema(&row_hash_specs(columns))
}

/// A `row_hashes` batch (keys + hash) from a batch in the destination schema:
/// what `Source::row_hashes` streams, for sources that cannot hash themselves.
pub fn row_hashes_batch(batch: &RecordBatch, columns: &[MappedColumn]) -> Result<RecordBatch> {
    let hashes = try_hash_rows(batch, columns)?;
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if c.spec.unique {
            arrays.push(column_of(batch, i, c)?.clone());
        }
    }
    arrays.push(Arc::new(hashes));
    Ok(RecordBatch::try_new(row_hash_schema(columns), arrays)?)
}

fn column_of<'a>(batch: &'a RecordBatch, i: usize, c: &MappedColumn) -> Result<&'a ArrayRef> {
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

fn hashed_columns(batch: &RecordBatch, columns: &[MappedColumn]) -> Result<Vec<Col>> {
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
struct Canon {
    buf: Vec<u8>,
    /// Formatted value before it is framed with its length.
    scratch: Vec<u8>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Canon {
    fn clear(&mut self) {
        self.buf.clear();
    }

    fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn null(&mut self) {
        self.buf.push(b'N');
    }

    fn frame(&mut self, text: &[u8], chars: usize) {
        let _ = write!(self.buf, "{chars}:");
        self.buf.extend_from_slice(text);
    }

    /// Text whose length is counted in characters.
    fn text(&mut self, s: &str) {
        // Characters are the bytes that do not continue a UTF-8 sequence.
        let chars = s.bytes().filter(|b| (b & 0xC0) != 0x80).count();
        self.frame(s.as_bytes(), chars);
    }

    /// Frames the ASCII written to `scratch` by `f`.
    fn ascii(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        f(&mut scratch);
        self.frame(&scratch, scratch.len());
        self.scratch = scratch;
    }

    fn int(&mut self, v: i64) {
        self.ascii(|s| {
            let _ = write!(s, "{v}");
        });
    }

    /// A timestamp as PostgreSQL's binary send form in hex: 16 digits of
    /// the two's-complement microseconds since 2000-01-01. Fixed width and
    /// hex (never `N`), so it needs no length prefix; PostgreSQL produces it
    /// with `encode(timestamp[tz]_send(x), 'hex')`, far cheaper than exact
    /// epoch arithmetic in numeric.
    fn pg_timestamp(&mut self, micros_since_1970: i64) {
        const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
        let v = micros_since_1970.wrapping_sub(PG_EPOCH_OFFSET_MICROS) as u64;
        for shift in (0..16).rev() {
            self.buf.push(HEX[((v >> (shift * 4)) & 0xf) as usize]);
        }
    }

    fn boolean(&mut self, v: bool) {
        self.buf.extend_from_slice(if v { b"1:t" } else { b"1:f" });
    }

    fn f64(&mut self, v: f64) {
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

    fn f32(&mut self, v: f32) {
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

    fn hex(&mut self, bytes: &[u8]) {
        self.ascii(|s| {
            s.reserve(bytes.len() * 2);
            for b in bytes {
                s.push(HEX[(b >> 4) as usize]);
                s.push(HEX[(b & 15) as usize]);
            }
        });
    }

    fn uuid(&mut self, bytes: &[u8]) {
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

    fn decimal(&mut self, v: i128, scale: i8) {
        self.ascii(|s| write_decimal(s, v, scale));
    }
}

/// `v × 10^-scale` with exactly `scale` fraction digits (none for scale ≤ 0,
/// where the value is written out with its trailing zeros). Zero has no sign.
fn write_decimal(s: &mut Vec<u8>, v: i128, scale: i8) {
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
enum Col {
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
    /// Reads `array` as the configured type `ty`: the type's own Arrow type,
    /// or a variant that converts without loss (wider integers, other string
    /// and binary layouts, any time zone for `timestamptz`, any precision of
    /// a decimal of the same scale).
    fn new(array: &ArrayRef, ty: &ColumnType) -> Result<Col> {
        let want = ty.arrow_type();
        let have = array.data_type();
        let direct = have == &want
            || match (ty, have) {
                (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, t) => {
                    matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64)
                }
                (ColumnType::TimestampTz, DataType::Timestamp(TimeUnit::Microsecond, Some(_))) => {
                    true
                }
                (ColumnType::Decimal { scale, .. }, DataType::Decimal128(_, s)) => s == scale,
                _ => false,
            };
        let array = if direct {
            array.clone()
        } else if lossless(have, &want) {
            let options = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(array, &want, &options).map_err(|e| {
                ConnectorError::Value(format!("cannot read {have} values as {ty}: {e}"))
            })?
        } else {
            return Err(ConnectorError::Schema(format!(
                "expected Arrow {want} values for a {ty} column, found {have}"
            )));
        };
        Ok(match (ty, array.data_type()) {
            (_, DataType::Int16) => Col::I16(array.as_primitive::<Int16Type>().clone()),
            (_, DataType::Int32) => Col::I32(array.as_primitive::<Int32Type>().clone()),
            (_, DataType::Int64) => Col::I64(array.as_primitive::<Int64Type>().clone()),
            (ColumnType::Float32, _) => Col::F32(array.as_primitive::<Float32Type>().clone()),
            (ColumnType::Float64, _) => Col::F64(array.as_primitive::<Float64Type>().clone()),
            (ColumnType::Decimal { scale, .. }, _) => {
                Col::Decimal(array.as_primitive::<Decimal128Type>().clone(), *scale)
            }
            (ColumnType::Bool, _) => Col::Bool(array.as_boolean().clone()),
            (ColumnType::String { .. } | ColumnType::Text | ColumnType::Json, _) => {
                Col::Str(array.as_string::<i32>().clone())
            }
            (ColumnType::Binary, _) => Col::Binary(array.as_binary::<i32>().clone()),
            (ColumnType::Date, _) => Col::Date(array.as_primitive::<Date32Type>().clone()),
            (ColumnType::Time, _) => {
                Col::Time(array.as_primitive::<Time64MicrosecondType>().clone())
            }
            (ColumnType::Timestamp | ColumnType::TimestampTz, _) => {
                Col::Timestamp(array.as_primitive::<TimestampMicrosecondType>().clone())
            }
            (ColumnType::Uuid, _) => Col::Uuid(array.as_fixed_size_binary().clone()),
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, other) => {
                return Err(ConnectorError::Schema(format!(
                    "expected Arrow integers for a {ty} column, found {other}"
                )))
            }
        })
    }

    fn array(&self) -> &dyn Array {
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

    fn push(&self, out: &mut Canon, row: usize) {
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

/// Conversions to a column's Arrow type that keep every value.
fn lossless(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (Utf8View | LargeUtf8, Utf8) | (BinaryView | LargeBinary, Binary) => true,
        (Dictionary(_, values), Utf8) => matches!(**values, Utf8 | LargeUtf8 | Utf8View),
        (Int8 | UInt8 | UInt16 | UInt32 | UInt64, Int16 | Int32 | Int64) => true,
        (Float16 | Float32, Float64) | (Float16, Float32) => true,
        (Time32(_), Time64(TimeUnit::Microsecond)) => true,
        (
            Timestamp(TimeUnit::Second | TimeUnit::Millisecond, a),
            Timestamp(TimeUnit::Microsecond, b),
        ) => a.is_some() == b.is_some(),
        _ => false,
    }
}

/// `sum(hash)` as PostgreSQL prints it (an exact numeric, possibly far
/// outside 64 bits) reduced mod 2^64.
pub(crate) fn wrap_decimal_sum(text: &str) -> Option<u64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut acc: u64 = 0;
    for b in digits.bytes() {
        acc = acc.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
    }
    Some(if negative { acc.wrapping_neg() } else { acc })
}

// ---------------------------------------------------------------------------
// PostgreSQL: the same hash in SQL
// ---------------------------------------------------------------------------

/// The framed canonical text of one hashed column (`N` for NULL, else
/// `<len>:<text>`), from the source expression `e` of PostgreSQL type
/// `source` read as `ty`. Follows the decoder's conversions: a float4 read
/// as double is widened, a date read as a timestamp is midnight, an int read
/// as decimal is scaled, and timestamps keep their stored microseconds
/// whatever the time zone.
///
/// The expressions are written inline even where that computes a text twice
/// (for its length and for itself): measured on PostgreSQL 15, that is about
/// a third faster than computing each text once in an `OFFSET 0` subquery,
/// whose extra projection costs more than the repeated expressions.
fn pg_piece_sql(e: &str, source: &Type, ty: &ColumnType) -> String {
    // Texts that are ASCII by construction: their length is their size.
    let ascii = |t: String| format!("coalesce(octet_length({t}) || ':' || {t}, 'N')");
    let base = pg_base_type(source);
    match ty {
        ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => ascii(format!("({e})::text")),
        ColumnType::Bool => {
            format!("CASE ({e}) WHEN true THEN '1:t' WHEN false THEN '1:f' ELSE 'N' END")
        }
        ColumnType::Decimal { scale, .. } => ascii(format!("round(({e})::numeric, {scale})::text")),
        ColumnType::Float32 => {
            float_sql(&format!("({e})"), "float4send", 8, CANONICAL_NAN32.into())
        }
        ColumnType::Float64 => {
            let e = if *base == Type::FLOAT4 {
                format!("({e})::float8")
            } else {
                format!("({e})")
            };
            float_sql(&e, "float8send", 16, CANONICAL_NAN64)
        }
        ColumnType::String { .. } | ColumnType::Text | ColumnType::Json => {
            let t = if *base == Type::BPCHAR {
                // A cast to text drops char(n)'s padding, which the binary
                // format (and so `read`) keeps; concat() keeps it too.
                format!("CASE WHEN ({e}) IS NOT NULL THEN concat({e}) END")
            } else {
                format!("({e})::text")
            };
            format!("coalesce(length({t}) || ':' || {t}, 'N')")
        }
        ColumnType::Binary => ascii(format!("encode({e}, 'hex')")),
        ColumnType::Date => ascii(format!("(({e}) - DATE '1970-01-01')::text")),
        ColumnType::Time => ascii(format!(
            "(extract(epoch FROM ({e})) * 1000000)::bigint::text"
        )),
        ColumnType::Timestamp | ColumnType::TimestampTz => {
            // The send function of the column's own type: its microseconds
            // are what `read` keeps (timestamp and timestamptz alike).
            let sent = match *base {
                Type::TIMESTAMPTZ => format!("timestamptz_send({e})"),
                Type::DATE => format!("timestamp_send(({e})::timestamp)"),
                _ => format!("timestamp_send({e})"),
            };
            format!("coalesce(encode({sent}, 'hex'), 'N')")
        }
        ColumnType::Uuid => format!("coalesce('36:' || ({e})::text, 'N')"),
    }
}

/// `<width>:<hex bits>`, with one zero and one NaN; `N` for NULL.
/// (PostgreSQL's float `=` holds -0 equal to 0 and every NaN equal to NaN.)
fn float_sql(e: &str, send: &str, width: usize, nan: u64) -> String {
    format!(
        "coalesce('{width}:' || CASE WHEN {e} = 0 THEN '{zero:0width$x}' \
         WHEN {e} = 'NaN' THEN '{nan:0width$x}' ELSE encode({send}({e}), 'hex') END, 'N')",
        zero = 0
    )
}

/// Domains travel as their base type.
fn pg_base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => pg_base_type(base),
        _ => ty,
    }
}

/// Queries computing row hashes in PostgreSQL.
pub(crate) struct PgHashQuery {
    /// Source SQL of the unique key columns, in mapping order.
    keys: Vec<String>,
    /// The row hash as a bigint expression.
    hash: String,
}

impl PgHashQuery {
    /// `source_types[i]` is the PostgreSQL type of `columns[i]`'s source.
    /// A `StoredHash::Read` column is summed as stored (NULL as 0) instead
    /// of hashing the row.
    pub(crate) fn new(columns: &[MappedColumn], source_types: &[Type]) -> Self {
        let keys = columns
            .iter()
            .filter(|c| c.spec.unique)
            .map(|c| c.source_sql.clone())
            .collect();
        if let Some(c) = columns.iter().find(|c| c.stored_hash == StoredHash::Read) {
            let stored = &c.source_sql;
            // A text column holds 16 hex digits ([`hash_hex`]); anything
            // else counts as 0, as [`hash_from_hex`] reads it.
            let hash = if c.spec.data_type == ColumnType::Int64 {
                format!("coalesce(({stored})::bigint, 0)")
            } else {
                format!(
                    "CASE WHEN ({stored}) ~ '^[0-9a-f]{{16}}$' THEN ('x' || ({stored}))::bit(64)::bigint ELSE 0 END"
                )
            };
            return PgHashQuery { keys, hash };
        }
        let parts: Vec<String> = columns
            .iter()
            .zip(source_types)
            .filter(|(c, _)| c.hash_column)
            .map(|(c, ty)| pg_piece_sql(&c.source_sql, ty, &c.spec.data_type))
            .collect();
        let text = if parts.is_empty() {
            "''".to_string()
        } else {
            parts.join(" || ")
        };
        PgHashQuery {
            keys,
            hash: format!("hashtextextended(({text}) COLLATE \"C\", 0)"),
        }
    }

    /// `SELECT <keys>, <hash> <from_where>`.
    pub(crate) fn rows_sql(&self, from_where: &str) -> String {
        let mut cols = self.keys.clone();
        cols.push(self.hash.clone());
        format!("SELECT {} {from_where}", cols.join(", "))
    }

    /// `SELECT <bucket>, count(*), sum(<hash>)::text <from_where> GROUP BY
    /// 1`: a row per non-empty bucket, sums as in `checksum_sql`.
    pub(crate) fn bucket_checksums_sql(&self, from_where: &str, bucket: &str) -> String {
        format!(
            "SELECT {bucket}, count(*), sum({})::text {from_where} GROUP BY 1",
            self.hash
        )
    }

    /// `SELECT count(*), sum(<hash>)::text <from_where>`: one row, the sum
    /// exact (numeric), for the caller to wrap to 64 bits.
    pub(crate) fn checksum_sql(&self, from_where: &str) -> String {
        format!("SELECT count(*), sum({})::text {from_where}", self.hash)
    }
}

// ---------------------------------------------------------------------------
// SQLite: the same hash in a registered function
// ---------------------------------------------------------------------------

/// The compact type code passed to `synchub_row_hash` for a column.
fn sqlite_type_code(t: &ColumnType) -> String {
    match t {
        ColumnType::Int16 => "i2".into(),
        ColumnType::Int32 => "i4".into(),
        ColumnType::Int64 => "i8".into(),
        ColumnType::Float32 => "f4".into(),
        ColumnType::Float64 => "f8".into(),
        ColumnType::Decimal { precision, scale } => format!("d{precision}.{scale}"),
        ColumnType::Bool => "b".into(),
        ColumnType::String { max_len: Some(n) } => format!("s{n}"),
        ColumnType::String { max_len: None } => "s".into(),
        ColumnType::Text => "t".into(),
        ColumnType::Json => "j".into(),
        ColumnType::Binary => "y".into(),
        ColumnType::Date => "D".into(),
        ColumnType::Time => "T".into(),
        ColumnType::Timestamp => "ts".into(),
        ColumnType::TimestampTz => "tz".into(),
        ColumnType::Uuid => "u".into(),
    }
}

fn parse_sqlite_type_code(code: &str) -> Option<ColumnType> {
    Some(match code {
        "i2" => ColumnType::Int16,
        "i4" => ColumnType::Int32,
        "i8" => ColumnType::Int64,
        "f4" => ColumnType::Float32,
        "f8" => ColumnType::Float64,
        "b" => ColumnType::Bool,
        "s" => ColumnType::String { max_len: None },
        "t" => ColumnType::Text,
        "j" => ColumnType::Json,
        "y" => ColumnType::Binary,
        "D" => ColumnType::Date,
        "T" => ColumnType::Time,
        "ts" => ColumnType::Timestamp,
        "tz" => ColumnType::TimestampTz,
        "u" => ColumnType::Uuid,
        _ => {
            if let Some(rest) = code.strip_prefix('d') {
                let (p, s) = rest.split_once('.')?;
                ColumnType::Decimal {
                    precision: p.parse().ok()?,
                    scale: s.parse().ok()?,
                }
            } else if let Some(n) = code.strip_prefix('s') {
                ColumnType::String {
                    max_len: Some(n.parse().ok()?),
                }
            } else {
                return None;
            }
        }
    })
}

/// `synchub_row_hash('<type codes>', <hashed columns' source SQL>...)`.
/// A `StoredHash::Read` column is used as stored (NULL as 0) instead.
pub(crate) fn sqlite_row_hash_sql(columns: &[MappedColumn]) -> String {
    if let Some(c) = columns.iter().find(|c| c.stored_hash == StoredHash::Read) {
        return if c.spec.data_type == ColumnType::Int64 {
            format!("coalesce({}, 0)", c.source_sql)
        } else {
            format!("{SQLITE_HASH_FROM_HEX_FN}({})", c.source_sql)
        };
    }
    let hashed: Vec<&MappedColumn> = columns.iter().filter(|c| c.hash_column).collect();
    let codes = hashed
        .iter()
        .map(|c| sqlite_type_code(&c.spec.data_type))
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec![format!("'{codes}'")];
    args.extend(hashed.iter().map(|c| c.source_sql.clone()));
    format!("{SQLITE_ROW_HASH_FN}({})", args.join(", "))
}

/// Row count and hash sum of a whole SQLite table over `columns` (name and
/// type), computed as SyncHub's checksums compute them. The benchmarks'
/// floor of a SQLite hash comparison: the same scan without partitions.
pub fn sqlite_table_checksum(
    conn: &rusqlite::Connection,
    table: &str,
    columns: &[(&str, ColumnType)],
) -> Result<Checksum> {
    register_sqlite_functions(conn)?;
    let codes = columns
        .iter()
        .map(|(_, t)| sqlite_type_code(t))
        .collect::<Vec<_>>()
        .join(",");
    let values = columns
        .iter()
        .map(|(name, _)| planner::model::quote_ident(name))
        .collect::<Vec<_>>()
        .join(", ");
    let q = format!(
        "SELECT count(*), {SQLITE_HASH_SUM_FN}({SQLITE_ROW_HASH_FN}('{codes}', {values})) FROM {}",
        planner::model::quote_ident(table)
    );
    let (rows, sum): (i64, i64) = conn.query_row(&q, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Checksum {
        rows: rows as u64,
        sum: sum as u64,
    })
}

/// Registers `synchub_row_hash`, `synchub_hash_from_hex` and `synchub_hash_sum` on a connection
/// (replacing earlier registrations, so calling it again is harmless).
///
/// `synchub_row_hash(codes, v1, ..., vn)` reads each value the way
/// `SqliteSource::read` decodes it (the same lenient parsing, through the
/// codec's `ColumnDecoder`), then hashes the canonical text as
/// [`hash_rows`] does; a value `read` would reject fails the query.
/// `synchub_hash_sum(h)` sums with wrap-around (SQLite's `sum()` fails on
/// integer overflow) and is 0 over no rows.
pub(crate) fn register_sqlite_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let state = RefCell::new(SqliteHasher::default());
    conn.create_scalar_function(
        SQLITE_ROW_HASH_FN,
        -1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| match state.try_borrow_mut() {
            Ok(mut st) => st.hash(ctx),
            // Not re-entered in practice; a fresh state keeps it correct anyway.
            Err(_) => SqliteHasher::default().hash(ctx),
        },
    )?;
    conn.create_scalar_function(
        SQLITE_HASH_FROM_HEX_FN,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                ValueRef::Text(t) => std::str::from_utf8(t)
                    .ok()
                    .and_then(hash_from_hex)
                    .unwrap_or(0),
                _ => 0,
            })
        },
    )?;
    conn.create_aggregate_function(
        SQLITE_HASH_SUM_FN,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        WrappingSum,
    )
}

struct WrappingSum;

impl Aggregate<i64, i64> for WrappingSum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<i64> {
        Ok(0)
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut i64) -> rusqlite::Result<()> {
        match ctx.get_raw(0) {
            ValueRef::Integer(h) => *acc = acc.wrapping_add(h),
            ValueRef::Null => {}
            other => {
                return Err(user_error(format!(
                    "{SQLITE_HASH_SUM_FN} sums integers, found {:?}",
                    other.data_type()
                )))
            }
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<i64>) -> rusqlite::Result<i64> {
        Ok(acc.unwrap_or(0))
    }
}

fn user_error(msg: String) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(ConnectorError::Value(msg)))
}

/// Per-connection state of `synchub_row_hash`: parsed type codes and
/// decoders, kept from row to row.
#[derive(Default)]
struct SqliteHasher {
    codes: String,
    types: Vec<ColumnType>,
    decoders: Vec<Option<crate::sqlite::codec::ColumnDecoder>>,
    canon: Canon,
}

impl SqliteHasher {
    fn hash(&mut self, ctx: &Context<'_>) -> rusqlite::Result<i64> {
        if ctx.is_empty() {
            return Err(user_error(format!(
                "{SQLITE_ROW_HASH_FN} needs the column type codes as first argument"
            )));
        }
        let codes = match ctx.get_raw(0) {
            ValueRef::Text(t) => t,
            _ => {
                return Err(user_error(format!(
                    "{SQLITE_ROW_HASH_FN}: the first argument must be the type codes text"
                )))
            }
        };
        if codes != self.codes.as_bytes() {
            let codes = std::str::from_utf8(codes).unwrap_or_default();
            let types = if codes.is_empty() {
                Vec::new()
            } else {
                codes
                    .split(',')
                    .map(|c| {
                        parse_sqlite_type_code(c).ok_or_else(|| {
                            user_error(format!("{SQLITE_ROW_HASH_FN}: unknown type code {c:?}"))
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            self.decoders = types.iter().map(|_| None).collect();
            self.types = types;
            self.codes = codes.to_string();
        }
        if ctx.len() - 1 != self.types.len() {
            return Err(user_error(format!(
                "{SQLITE_ROW_HASH_FN}: {} type codes for {} values",
                self.types.len(),
                ctx.len() - 1
            )));
        }
        self.canon.clear();
        for i in 0..self.types.len() {
            let v = ctx.get_raw(i + 1);
            let ty = self.types[i];
            if !push_sqlite_fast(&mut self.canon, v, &ty) {
                let dec = self.decoders[i]
                    .get_or_insert_with(|| crate::sqlite::codec::ColumnDecoder::new(&ty));
                dec.push(v)
                    .map_err(|e| user_error(format!("cannot hash value {} ({ty}): {e}", i + 1)))?;
                let array = dec.finish();
                let col = Col::new(&array, &ty)
                    .map_err(|e| user_error(format!("cannot hash value {}: {e}", i + 1)))?;
                col.push(&mut self.canon, 0);
            }
        }
        Ok(row_hash(self.canon.bytes()))
    }
}

/// Appends the canonical text of the stored forms whose decoding is
/// trivial, exactly as `sqlite::codec::ColumnDecoder` would read them; false
/// for every other value, which then goes through the decoder itself.
fn push_sqlite_fast(out: &mut Canon, v: ValueRef<'_>, ty: &ColumnType) -> bool {
    match (ty, v) {
        (_, ValueRef::Null) => out.null(),
        (ColumnType::Int64, ValueRef::Integer(i)) => out.int(i),
        (ColumnType::Int32, ValueRef::Integer(i)) if i32::try_from(i).is_ok() => out.int(i),
        (ColumnType::Int16, ValueRef::Integer(i)) if i16::try_from(i).is_ok() => out.int(i),
        (ColumnType::Float64, ValueRef::Real(r)) => out.f64(r),
        (ColumnType::Float64, ValueRef::Integer(i)) => out.f64(i as f64),
        (ColumnType::Float32, ValueRef::Real(r))
            if !(r.is_finite() && (r as f32).is_infinite()) =>
        {
            out.f32(r as f32)
        }
        (ColumnType::Bool, ValueRef::Integer(i @ (0 | 1))) => out.boolean(i == 1),
        (ColumnType::String { max_len }, ValueRef::Text(t)) => match std::str::from_utf8(t) {
            // Within the limit by bytes, so by characters too.
            Ok(s) if max_len.is_none_or(|n| s.len() <= n as usize) => out.text(s),
            _ => return false,
        },
        (ColumnType::Text, ValueRef::Text(t)) => match std::str::from_utf8(t) {
            Ok(s) => out.text(s),
            Err(_) => return false,
        },
        (ColumnType::Binary, ValueRef::Blob(b)) => out.hex(b),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn mapped(name: &str, ty: ColumnType, unique: bool, hash: bool) -> MappedColumn {
        MappedColumn {
            spec: ColumnSpec {
                name: name.into(),
                data_type: ty,
                unique,
                nullable: !unique,
            },
            dest: name.into(),
            source: name.into(),
            source_sql: planner::model::quote_ident(name),
            data_type: ty.to_string(),
            unique,
            hash_column: hash,
            stored_hash: StoredHash::No,
            data_type_from: None,
        }
    }

    fn batch(columns: &[MappedColumn], arrays: Vec<ArrayRef>) -> RecordBatch {
        let specs: Vec<ColumnSpec> = columns.iter().map(|c| c.spec.clone()).collect();
        RecordBatch::try_new(arrow_schema(&specs), arrays).unwrap()
    }

    fn texts(columns: &[MappedColumn], arrays: Vec<ArrayRef>) -> Vec<String> {
        let b = batch(columns, arrays);
        (0..b.num_rows())
            .map(|r| canonical_text(&b, columns, r).unwrap())
            .collect()
    }

    #[test]
    fn hash_matches_postgres_formula() {
        // SELECT hashtextextended('' COLLATE "C", 0), hashtextextended('1:5', 0)
        assert_eq!(row_hash(b""), -6_939_563_903_564_495_251);
        assert_eq!(row_hash(b"1:5"), 6_932_707_825_182_652_108);
    }

    #[test]
    fn canonical_text_per_type() {
        use ColumnType::*;
        let dec = Decimal {
            precision: 10,
            scale: 2,
        };
        let cols = vec![
            mapped("i", Int32, true, true),
            mapped("d", dec, false, true),
            mapped("f8", Float64, false, true),
            mapped("f4", Float32, false, true),
            mapped("b", Bool, false, true),
            mapped("s", Text, false, true),
            mapped("y", Binary, false, true),
            mapped("dt", Date, false, true),
            mapped("tm", Time, false, true),
            mapped("ts", Timestamp, false, true),
            mapped("tz", TimestampTz, false, true),
            mapped("u", Uuid, false, true),
            mapped("skip", Int64, false, false),
        ];
        let uuid = [
            0x67, 0xe5, 0x50, 0x44, 0x10, 0xb1, 0x42, 0x6f, 0x92, 0x47, 0xbb, 0x68, 0x0e, 0x5f,
            0xe0, 0xc8,
        ];
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![-42, 7, 0])),
            Arc::new(
                Decimal128Array::from(vec![Some(-1250), Some(5), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(Float64Array::from(vec![-0.0, f64::NAN, 1.5])),
            Arc::new(Float32Array::from(vec![Some(-0.0), Some(-f32::NAN), None])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(StringArray::from(vec![Some("héllo"), Some(""), None])),
            Arc::new(BinaryArray::from(vec![
                Some(&[0xde, 0xad][..]),
                Some(&[][..]),
                None,
            ])),
            Arc::new(Date32Array::from(vec![Some(-1), Some(19737), None])),
            Arc::new(Time64MicrosecondArray::from(vec![Some(1), Some(0), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(-1),
                Some(0),
                None,
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(-1_000_001), Some(5), None])
                    .with_timezone("UTC"),
            ),
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some(uuid), None, None].into_iter(),
                    16,
                )
                .unwrap(),
            ),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
        ];
        let t = texts(&cols, arrays);
        assert_eq!(
            t[0],
            "3:-426:-12.5016:00000000000000008:000000001:t5:héllo4:dead2:-11:1fffca2fec4c81ffffffca2fec4b8ddbf36:67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
        assert_eq!(
            t[1],
            "1:74:0.0516:7ff80000000000008:7fc000001:f0:0:5:197371:0fffca2fec4c82000fffca2fec4c82005N"
        );
        assert_eq!(t[2], "1:0N16:3ff8000000000000NNNNNNNNN");
    }

    #[test]
    fn separators_and_nulls_distinguish_rows() {
        let cols = vec![
            mapped("a", ColumnType::Text, false, true),
            mapped("b", ColumnType::Text, false, true),
        ];
        let b = batch(
            &cols,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("ab"),
                    Some("a"),
                    Some(""),
                    None,
                ])),
                Arc::new(StringArray::from(vec![
                    Some("c"),
                    Some("bc"),
                    None,
                    Some(""),
                ])),
            ],
        );
        let h = hash_rows(&b, &cols);
        let distinct: std::collections::HashSet<i64> = h.values().iter().copied().collect();
        assert_eq!(distinct.len(), 4);
    }

    #[test]
    fn row_hashes_batch_has_keys_then_hash() {
        let cols = vec![
            mapped("v", ColumnType::Text, false, true),
            mapped("id", ColumnType::Int32, true, true),
            mapped("x", ColumnType::Int64, false, false),
        ];
        let b = batch(
            &cols,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(Int64Array::from(vec![5, 6])),
            ],
        );
        let out = row_hashes_batch(&b, &cols).unwrap();
        assert_eq!(out.schema(), row_hash_schema(&cols));
        let names: Vec<&str> = out
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", ROW_HASH_COLUMN]);
        assert_eq!(out.column(0).as_ref(), b.column(1).as_ref());
        assert_eq!(
            out.column(1).as_primitive::<Int64Type>(),
            &hash_rows(&b, &cols)
        );
        assert_eq!(canonical_text(&b, &cols, 0).unwrap(), "1:a1:1");
        assert_eq!(canonical_text(&b, &cols, 1).unwrap(), "N1:2");
        assert_eq!(
            checksum_batch(&b, &cols),
            checksum_hashes(&hash_rows(&b, &cols))
        );
    }

    #[test]
    fn decimals() {
        let fmt = |v: i128, scale: i8| {
            let mut s = Vec::new();
            write_decimal(&mut s, v, scale);
            String::from_utf8(s).unwrap()
        };
        assert_eq!(fmt(-1250, 2), "-12.50");
        assert_eq!(fmt(5, 3), "0.005");
        assert_eq!(fmt(-5, 3), "-0.005");
        assert_eq!(fmt(0, 2), "0.00");
        assert_eq!(fmt(0, 0), "0");
        assert_eq!(fmt(13, -2), "1300");
        assert_eq!(fmt(0, -2), "0");
        assert_eq!(
            fmt(i128::MIN, 38),
            "-1.70141183460469231731687303715884105728"
        );
    }

    #[test]
    fn lenient_arrow_inputs() {
        let cols = vec![
            mapped("s", ColumnType::Text, true, true),
            mapped("tz", ColumnType::TimestampTz, false, true),
            mapped("i", ColumnType::Int64, false, true),
        ];
        let strict = batch(
            &cols,
            vec![
                Arc::new(StringArray::from(vec!["x"])),
                Arc::new(TimestampMicrosecondArray::from(vec![7]).with_timezone("UTC")),
                Arc::new(Int64Array::from(vec![3])),
            ],
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, false),
            Field::new(
                "tz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+01:00".into())),
                true,
            ),
            Field::new("i", DataType::Int32, true),
        ]));
        let loose = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::StringViewArray::from(vec!["x"])),
                Arc::new(TimestampMicrosecondArray::from(vec![7]).with_timezone("+01:00")),
                Arc::new(Int32Array::from(vec![3])),
            ],
        )
        .unwrap();
        assert_eq!(hash_rows(&strict, &cols), hash_rows(&loose, &cols));

        let wrong = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("s", DataType::Int32, false)])),
            vec![Arc::new(Int32Array::from(vec![1]))],
        )
        .unwrap();
        let e = try_hash_rows(&wrong, &cols[..1]).unwrap_err().to_string();
        assert_eq!(
            e,
            "column \"s\": expected Arrow Utf8 values for a text column, found Int32"
        );
    }

    #[test]
    fn checksums_wrap() {
        let h = Int64Array::from(vec![i64::MAX, i64::MAX, 2]);
        let c = checksum_hashes(&h);
        assert_eq!(c.rows, 3);
        assert_eq!(c.sum, 0);
        let both = checksum_combine(c, checksum_hashes(&Int64Array::from(vec![-1])));
        assert_eq!(
            both,
            Checksum {
                rows: 4,
                sum: u64::MAX
            }
        );

        assert_eq!(wrap_decimal_sum("18446744073709551614"), Some(u64::MAX - 1));
        assert_eq!(wrap_decimal_sum("18446744073709551616"), Some(0));
        assert_eq!(wrap_decimal_sum("-1"), Some(u64::MAX));
        assert_eq!(wrap_decimal_sum("-18446744073709551617"), Some(u64::MAX));
        assert_eq!(wrap_decimal_sum("0"), Some(0));
        assert_eq!(wrap_decimal_sum("1.5"), None);
        assert_eq!(wrap_decimal_sum(""), None);
    }

    #[test]
    fn type_codes_round_trip() {
        use ColumnType::*;
        for t in [
            Int16,
            Int32,
            Int64,
            Float32,
            Float64,
            Decimal {
                precision: 38,
                scale: 10,
            },
            Decimal {
                precision: 5,
                scale: -2,
            },
            Bool,
            String { max_len: None },
            String { max_len: Some(12) },
            Text,
            Json,
            Binary,
            Date,
            Time,
            Timestamp,
            TimestampTz,
            Uuid,
        ] {
            assert_eq!(parse_sqlite_type_code(&sqlite_type_code(&t)), Some(t));
        }
    }

    /// The SQLite function agrees with `hash_rows` over what the SQLite
    /// decoder reads, also for values stored in other tools' forms.
    #[test]
    fn sqlite_function_reads_like_the_decoder() {
        use ColumnType::*;
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        register_sqlite_functions(&conn).unwrap();
        let dec = Decimal {
            precision: 10,
            scale: 2,
        };
        let cases: Vec<(ColumnType, &str)> = vec![
            (Int64, "42"),
            (Int32, "'42'"),
            (Int16, "3.0"),
            (Float64, "'NaN'"),
            (Float64, "-0.0"),
            (Float64, "7"),
            (Float32, "0.1"),
            (dec, "'-12.5'"),
            (dec, "0.1"),
            (dec, "'-0.00'"),
            (Bool, "'true'"),
            (Bool, "0"),
            (Text, "'日本語'"),
            (Text, "12"),
            (String { max_len: Some(3) }, "'日本語'"),
            (Json, "' {\"a\" : 1} '"),
            (Binary, "x'00ff'"),
            (Binary, "'ab'"),
            (Date, "'1969-12-31'"),
            (Time, "'00:00:01.25'"),
            (Timestamp, "'1969-12-31 23:59:59.999999'"),
            (TimestampTz, "'2024-01-15T12:00:00+02:00'"),
            (TimestampTz, "1705312800"),
            (Uuid, "'67E55044-10B1-426F-9247-BB680E5FE0C8'"),
            (Uuid, "NULL"),
        ];
        for (ty, literal) in cases {
            let col = mapped("v", ty, false, true);
            let sql = format!(
                "SELECT {}, v FROM (SELECT {literal} AS v)",
                sqlite_row_hash_sql(std::slice::from_ref(&col))
            );
            let (got, decoded) = conn
                .query_row(&sql, [], |r| {
                    let mut d = crate::sqlite::codec::ColumnDecoder::new(&ty);
                    d.push(r.get_ref(1)?).unwrap();
                    Ok((r.get::<_, i64>(0)?, d.finish()))
                })
                .unwrap();
            let b = batch(std::slice::from_ref(&col), vec![decoded]);
            assert_eq!(
                got,
                hash_rows(&b, std::slice::from_ref(&col)).value(0),
                "{ty} {literal}"
            );
        }
        // A value `read` rejects fails the query, naming the value.
        let col = mapped("v", Int16, false, true);
        let e = conn
            .query_row(
                &format!(
                    "SELECT {} FROM (SELECT 70000 AS v)",
                    sqlite_row_hash_sql(std::slice::from_ref(&col))
                ),
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("value 70000 does not fit smallint"), "{e}");
        // The wrapping sum.
        let sum: i64 = conn
            .query_row(
                &format!(
                    "SELECT {SQLITE_HASH_SUM_FN}(h) FROM (SELECT 9223372036854775807 AS h UNION ALL SELECT 2)"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sum, i64::MIN + 1);
        let empty: i64 = conn
            .query_row(
                &format!("SELECT {SQLITE_HASH_SUM_FN}(1) WHERE false"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(empty, 0);
    }

    #[test]
    fn pg_sql_shape() {
        let cols = vec![
            mapped("id", ColumnType::Int64, true, true),
            mapped("v", ColumnType::Float64, false, true),
            mapped("c", ColumnType::Text, false, true),
            mapped("x", ColumnType::Text, false, false),
        ];
        let q = PgHashQuery::new(&cols, &[Type::INT8, Type::FLOAT4, Type::BPCHAR, Type::TEXT]);
        assert_eq!(
            q.rows_sql("FROM \"t\""),
            "SELECT \"id\", hashtextextended((\
             coalesce(octet_length((\"id\")::text) || ':' || (\"id\")::text, 'N') || \
             coalesce('16:' || CASE WHEN (\"v\")::float8 = 0 THEN '0000000000000000' \
             WHEN (\"v\")::float8 = 'NaN' THEN '7ff8000000000000' \
             ELSE encode(float8send((\"v\")::float8), 'hex') END, 'N') || \
             coalesce(length(CASE WHEN (\"c\") IS NOT NULL THEN concat(\"c\") END) || ':' || \
             CASE WHEN (\"c\") IS NOT NULL THEN concat(\"c\") END, 'N')\
             ) COLLATE \"C\", 0) FROM \"t\""
        );
        let none = PgHashQuery::new(&cols[3..], &[Type::TEXT]);
        assert_eq!(
            none.checksum_sql("FROM \"t\""),
            "SELECT count(*), sum(hashtextextended(('') COLLATE \"C\", 0))::text FROM \"t\""
        );
    }
}
