//! Row hashes computed by SQLite: `synchub_row_hash` and its companions,
//! registered on each connection, and the SQL that calls them.

use super::*;
use crate::sql::{Dialect, SqliteDialect};

/// The compact type code passed to `synchub_row_hash` for a column.
pub(super) fn sqlite_type_code(t: &ColumnType) -> String {
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

pub(super) fn parse_sqlite_type_code(code: &str) -> Option<ColumnType> {
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

/// `synchub_row_hash('<type codes>', <hashed source columns>...)`.
/// A `StoredHash::Read` column is used as stored (NULL as 0) instead.
pub(crate) fn sqlite_row_hash_sql(columns: &[MappedColumn]) -> String {
    if let Some(c) = columns.iter().find(|c| c.stored_hash == StoredHash::Read) {
        return if c.spec.data_type == ColumnType::Int64 {
            format!("coalesce({}, 0)", SqliteDialect.mapped_column(c))
        } else {
            format!(
                "{SQLITE_HASH_FROM_HEX_FN}({})",
                SqliteDialect.mapped_column(c)
            )
        };
    }
    let hashed: Vec<&MappedColumn> = columns.iter().filter(|c| c.hash_column).collect();
    let codes = hashed
        .iter()
        .map(|c| sqlite_type_code(&c.spec.data_type))
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec![format!("'{codes}'")];
    args.extend(hashed.iter().map(|c| SqliteDialect.mapped_column(c)));
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
        .map(|(name, _)| SqliteDialect.quote_ident(name))
        .collect::<Vec<_>>()
        .join(", ");
    let q = format!(
        "SELECT count(*), {SQLITE_HASH_SUM_FN}({SQLITE_ROW_HASH_FN}('{codes}', {values})) FROM {}",
        SqliteDialect.quote_ident(table)
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

pub(super) struct WrappingSum;

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

pub(super) fn user_error(msg: String) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(ConnectorError::Value(msg)))
}

/// Per-connection state of `synchub_row_hash`: parsed type codes and
/// decoders, kept from row to row.
#[derive(Default)]
pub(super) struct SqliteHasher {
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
pub(super) fn push_sqlite_fast(out: &mut Canon, v: ValueRef<'_>, ty: &ColumnType) -> bool {
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
