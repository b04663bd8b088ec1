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
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use planner::model::{MappedColumn, StoredHash};
use planner::types::{arrow_schema, ColumnSpec, ColumnType};
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::ValueRef;
use tokio_postgres::types::{Kind, Type};

use crate::traits::Checksum;
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

mod canonical;
mod postgres;
mod source_hashes;
mod sqlite;
#[cfg(test)]
mod tests;
mod wide;

use canonical::*;
pub(crate) use postgres::*;
pub use source_hashes::{
    bucket_checksums, bucket_row_hashes, checksum, checksum_by_reading, checksum_of_columns,
    row_hashes, row_hashes_by_reading,
};
pub use sqlite::sqlite_table_checksum;
pub(crate) use sqlite::*;
pub use wide::{add_row_encoding, row_converter, row_encoding_checksum, whole_rows, WideChecksum};
