//! PostgreSQL type classification, the DDL of a configured type and the
//! compatibility of an existing column with it.

use planner::types::ColumnType;
use tokio_postgres::types::{Kind, Type};

// ---------------------------------------------------------------------------
// PostgreSQL type classification
// ---------------------------------------------------------------------------

/// The PostgreSQL types this codec knows, by their binary representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pg {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name, enum labels: UTF-8 bytes as they are.
    Text,
    /// json travels as plain text in the binary format.
    Json,
    /// jsonb: a version byte (1), then text.
    Jsonb,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
}

/// Maps a type to its wire representation. Domains send and receive exactly
/// like their base type, and enums as their label text, so both are
/// unwrapped here instead of being rejected.
pub(super) fn classify(ty: &Type) -> Option<Pg> {
    match ty.kind() {
        Kind::Domain(base) => return classify(base),
        Kind::Enum(_) => return Some(Pg::Text),
        _ => {}
    }
    Some(match *ty {
        Type::BOOL => Pg::Bool,
        Type::INT2 => Pg::Int2,
        Type::INT4 => Pg::Int4,
        Type::INT8 => Pg::Int8,
        Type::FLOAT4 => Pg::Float4,
        Type::FLOAT8 => Pg::Float8,
        Type::NUMERIC => Pg::Numeric,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Pg::Text,
        Type::JSON => Pg::Json,
        Type::JSONB => Pg::Jsonb,
        Type::BYTEA => Pg::Bytea,
        Type::DATE => Pg::Date,
        Type::TIME => Pg::Time,
        Type::TIMESTAMP => Pg::Timestamp,
        Type::TIMESTAMPTZ => Pg::TimestampTz,
        Type::UUID => Pg::Uuid,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Compatibility (the type SyncHub declares is the dialect's,
// `sql::PostgresDialect::type_ddl`)
// ---------------------------------------------------------------------------

/// Whether an existing destination column of type `existing` can hold every
/// value of the configured type without loss.
///
/// The type modifier (varchar length, numeric precision) is not part of
/// `Type`, so it is not checked here; the server enforces it on write.
pub fn pg_type_compatible(config: &ColumnType, existing: &Type) -> bool {
    let Some(pg) = classify(existing) else {
        return false;
    };
    // An enum column holds only its labels, so arbitrary strings do not fit.
    if matches!(existing.kind(), Kind::Enum(_)) {
        return false;
    }
    match config {
        ColumnType::Int16 => matches!(pg, Pg::Int2 | Pg::Int4 | Pg::Int8 | Pg::Numeric),
        ColumnType::Int32 => matches!(pg, Pg::Int4 | Pg::Int8 | Pg::Numeric),
        ColumnType::Int64 => matches!(pg, Pg::Int8 | Pg::Numeric),
        ColumnType::Float32 => matches!(pg, Pg::Float4 | Pg::Float8),
        ColumnType::Float64 => pg == Pg::Float8,
        ColumnType::Decimal { .. } => pg == Pg::Numeric,
        ColumnType::Bool => pg == Pg::Bool,
        ColumnType::String { .. } | ColumnType::Text => {
            // `name` is classified as text for reading, but truncates at 63 bytes.
            pg == Pg::Text && *existing != Type::NAME
        }
        ColumnType::Json => matches!(pg, Pg::Json | Pg::Jsonb),
        ColumnType::Binary => pg == Pg::Bytea,
        ColumnType::Date => pg == Pg::Date,
        ColumnType::Time => pg == Pg::Time,
        ColumnType::Timestamp => pg == Pg::Timestamp,
        ColumnType::TimestampTz => pg == Pg::TimestampTz,
        ColumnType::Uuid => pg == Pg::Uuid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::codec::{BatchEncoder, ColumnDecoder};

    #[test]
    fn ddl_and_compat() {
        assert!(pg_type_compatible(&ColumnType::Int32, &Type::INT8));
        assert!(pg_type_compatible(&ColumnType::Int32, &Type::NUMERIC));
        assert!(!pg_type_compatible(&ColumnType::Int64, &Type::INT4));
        assert!(pg_type_compatible(
            &ColumnType::String { max_len: None },
            &Type::BPCHAR
        ));
        assert!(pg_type_compatible(&ColumnType::Json, &Type::JSON));
        assert!(!pg_type_compatible(
            &ColumnType::Timestamp,
            &Type::TIMESTAMPTZ
        ));
        assert!(!pg_type_compatible(&ColumnType::Float64, &Type::FLOAT4));
        // Every config type is compatible with the type its own DDL creates,
        // and the encoder can write its Arrow type there.
        let all = [
            ColumnType::Int16,
            ColumnType::Int32,
            ColumnType::Int64,
            ColumnType::Float32,
            ColumnType::Float64,
            ColumnType::Decimal {
                precision: 38,
                scale: 10,
            },
            ColumnType::Bool,
            ColumnType::String { max_len: Some(3) },
            ColumnType::Text,
            ColumnType::Binary,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp,
            ColumnType::TimestampTz,
            ColumnType::Uuid,
            ColumnType::Json,
        ];
        for t in all {
            let pg = match t {
                ColumnType::Int16 => Type::INT2,
                ColumnType::Int32 => Type::INT4,
                ColumnType::Int64 => Type::INT8,
                ColumnType::Float32 => Type::FLOAT4,
                ColumnType::Float64 => Type::FLOAT8,
                ColumnType::Decimal { .. } => Type::NUMERIC,
                ColumnType::Bool => Type::BOOL,
                ColumnType::String { .. } => Type::VARCHAR,
                ColumnType::Text => Type::TEXT,
                ColumnType::Binary => Type::BYTEA,
                ColumnType::Date => Type::DATE,
                ColumnType::Time => Type::TIME,
                ColumnType::Timestamp => Type::TIMESTAMP,
                ColumnType::TimestampTz => Type::TIMESTAMPTZ,
                ColumnType::Uuid => Type::UUID,
                ColumnType::Json => Type::JSONB,
            };
            assert!(pg_type_compatible(&t, &pg), "{t}");
            assert!(
                BatchEncoder::new(&[("c".into(), pg.clone())], &[t.arrow_type()]).is_ok(),
                "{t}"
            );
            assert!(ColumnDecoder::new("c", &pg, &t).is_ok(), "{t}");
        }
    }
}
