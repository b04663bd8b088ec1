//! Row hashes computed by PostgreSQL: the canonical text in SQL, and the
//! checksum, bucket and row-hash queries.

use super::*;
use crate::sql::{Dialect, PostgresDialect};

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
pub(super) fn pg_piece_sql(e: &str, source: &Type, ty: &ColumnType) -> String {
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
pub(super) fn float_sql(e: &str, send: &str, width: usize, nan: u64) -> String {
    format!(
        "coalesce('{width}:' || CASE WHEN {e} = 0 THEN '{zero:0width$x}' \
         WHEN {e} = 'NaN' THEN '{nan:0width$x}' ELSE encode({send}({e}), 'hex') END, 'N')",
        zero = 0
    )
}

/// Domains travel as their base type.
pub(super) fn pg_base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => pg_base_type(base),
        _ => ty,
    }
}

/// Queries computing row hashes in PostgreSQL.
pub(crate) struct PgHashQuery {
    /// The unique key columns as selected, in mapping order.
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
            .map(|c| PostgresDialect.mapped_column(c))
            .collect();
        if let Some(c) = columns.iter().find(|c| c.stored_hash == StoredHash::Read) {
            let stored = &PostgresDialect.mapped_column(c);
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
            .map(|(c, ty)| pg_piece_sql(&PostgresDialect.mapped_column(c), ty, &c.spec.data_type))
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

    /// The row hash as a bigint expression.
    pub(crate) fn hash_sql(&self) -> &str {
        &self.hash
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
