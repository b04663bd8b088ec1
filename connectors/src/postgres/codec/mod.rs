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
//!
//! [`ColumnType`]: planner::types::ColumnType

mod decode;
mod display;
mod encode;
#[cfg(test)]
mod tests;
mod types;

pub use decode::ColumnDecoder;
pub use display::display_value;
pub use encode::{write_copy_header, write_copy_trailer, BatchEncoder, EncodeError};
pub use types::pg_type_compatible;

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

/// Longest text shown in an error message; a multi-megabyte value would bury
/// the message itself.
const DISPLAY_MAX_CHARS: usize = 100;
