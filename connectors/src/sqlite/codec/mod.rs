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
//!
//! [`ColumnType`]: planner::types::ColumnType

mod decode;
mod encode;
mod json;
mod messages;
#[cfg(test)]
mod tests;
mod text;
mod types;

pub use decode::ColumnDecoder;
pub use encode::ColumnEncoder;
pub use text::TextBuf;
pub use types::{sqlite_affinity, sqlite_type_compatible, Affinity};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
/// Days from 1970-01-01 to 0000-01-01 and to 9999-12-31: the dates that fit
/// the four-digit-year text form.
const MIN_TEXT_DAY: i64 = -719_528;
const MAX_TEXT_DAY: i64 = 2_932_896;
