//! Whole-row fingerprints: every column hashed as it reads, for comparing
//! whole partitions (a full run into a populated table) and verifying a
//! destination against its source. The same row hash as the hash strategy
//! (stable across processes, Rust versions and engines, unlike std's
//! `DefaultHasher`, whose algorithm is unspecified and may change with any
//! Rust release), plus a second, differently seeded one for verification,
//! where a 128-bit sum makes an accidental match of different tables
//! vanishingly unlikely.

use arrow::array::RecordBatch;
use planner::model::{MappedColumn, StoredHash};

use super::canonical::{hashed_columns, Canon};
use crate::traits::Checksum;
use crate::Result;

/// Seed of the second row hash of a [`WideChecksum`] (the first is 0, the
/// hash strategy's).
const SECOND_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// `columns` with every one hashed and none taken as a stored row hash:
/// a fingerprint of the values as they are.
pub fn whole_rows(columns: &[MappedColumn]) -> Vec<MappedColumn> {
    columns
        .iter()
        .map(|c| MappedColumn {
            hash_column: true,
            stored_hash: StoredHash::No,
            ..c.clone()
        })
        .collect()
}

/// Row count and two wrapping sums of row hashes (seeds 0 and
/// [`SECOND_SEED`]) of the same canonical texts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WideChecksum {
    pub rows: u64,
    /// The hash strategy's checksum sum of the same rows and columns.
    pub sum: u64,
    pub second_sum: u64,
}

impl WideChecksum {
    /// Adds the rows of `batch` (column `i` holds `columns[i]`), hashing the
    /// columns with `hash_column: true` (see [`whole_rows`]).
    pub fn add_batch(&mut self, batch: &RecordBatch, columns: &[MappedColumn]) -> Result<()> {
        let cols = hashed_columns(batch, columns)?;
        let mut canon = Canon::default();
        for row in 0..batch.num_rows() {
            canon.clear();
            for c in &cols {
                c.push(&mut canon, row);
            }
            let bytes = canon.bytes();
            self.rows += 1;
            self.sum = self
                .sum
                .wrapping_add(crate::pghash::hash_bytes_extended(bytes, 0));
            self.second_sum = self
                .second_sum
                .wrapping_add(crate::pghash::hash_bytes_extended(bytes, SECOND_SEED));
        }
        Ok(())
    }

    /// The hash strategy's checksum of the same rows.
    pub fn narrow(&self) -> Checksum {
        Checksum {
            rows: self.rows,
            sum: self.sum,
        }
    }
}
