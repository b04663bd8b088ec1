//! The universal column type set and its Arrow mapping.
//!
//! Every connector reads into and writes from these Arrow types, so a value's
//! precision survives from any source to any destination.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

/// Scale and precision used for a `decimal` declared without them: wide enough
/// for money and ratios, and still an exact fixed-point type.
pub const DEFAULT_DECIMAL_PRECISION: u8 = 38;
pub const DEFAULT_DECIMAL_SCALE: i8 = 10;

/// A column's declared type, as written in a pipeline's `data_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Bool,
    /// `string`/`varchar`, with an optional maximum length in characters.
    String {
        max_len: Option<u32>,
    },
    #[default]
    Text,
    Binary,
    Date,
    Time,
    /// Timestamp without time zone, microsecond precision.
    Timestamp,
    /// Timestamp with time zone, stored as UTC microseconds.
    TimestampTz,
    Uuid,
    Json,
}

/// The names accepted for `data_type`, for error hints.
pub const DATA_TYPE_NAMES: &[&str] = &[
    "int",
    "integer",
    "bigint",
    "smallint",
    "float",
    "double",
    "real",
    "decimal",
    "numeric",
    "string",
    "varchar",
    "text",
    "bool",
    "boolean",
    "date",
    "time",
    "datetime",
    "timestamp",
    "timestamptz",
    "uuid",
    "json",
    "binary",
];

impl ColumnType {
    /// Parses a `data_type` name with its optional `precision`, `scale` and `length`.
    /// Returns `None` for an unknown name.
    pub fn parse(
        name: &str,
        precision: Option<u8>,
        scale: Option<i8>,
        length: Option<u32>,
    ) -> Option<ColumnType> {
        let ty = match name.trim().to_ascii_lowercase().as_str() {
            "int" | "integer" | "int4" => ColumnType::Int32,
            "bigint" | "int8" | "long" => ColumnType::Int64,
            "smallint" | "int2" => ColumnType::Int16,
            "real" | "float4" => ColumnType::Float32,
            "float" | "double" | "float8" => ColumnType::Float64,
            "decimal" | "numeric" => ColumnType::Decimal {
                precision: precision.unwrap_or(DEFAULT_DECIMAL_PRECISION),
                scale: scale.unwrap_or(if precision.is_some() {
                    0
                } else {
                    DEFAULT_DECIMAL_SCALE
                }),
            },
            "bool" | "boolean" => ColumnType::Bool,
            "string" | "varchar" => ColumnType::String { max_len: length },
            "text" => ColumnType::Text,
            "binary" | "bytea" | "blob" => ColumnType::Binary,
            "date" => ColumnType::Date,
            "time" => ColumnType::Time,
            "datetime" | "timestamp" => ColumnType::Timestamp,
            "timestamptz" => ColumnType::TimestampTz,
            "uuid" => ColumnType::Uuid,
            "json" | "jsonb" => ColumnType::Json,
            _ => return None,
        };
        Some(ty)
    }

    /// The Arrow type values of this column travel as between operators.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::Int16 => DataType::Int16,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::Bool => DataType::Boolean,
            ColumnType::String { .. } | ColumnType::Text | ColumnType::Json => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            ColumnType::Uuid => DataType::FixedSizeBinary(16),
        }
    }

    /// True for types a partition range can be computed over.
    pub fn partitionable(&self) -> Option<PartitionKind> {
        match self {
            ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => {
                Some(PartitionKind::Integer)
            }
            ColumnType::Date | ColumnType::Timestamp | ColumnType::TimestampTz => {
                Some(PartitionKind::Datetime)
            }
            _ => None,
        }
    }
}

/// What a partition range is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartitionKind {
    Integer,
    Datetime,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Int16 => write!(f, "smallint"),
            ColumnType::Int32 => write!(f, "int"),
            ColumnType::Int64 => write!(f, "bigint"),
            ColumnType::Float32 => write!(f, "real"),
            ColumnType::Float64 => write!(f, "double"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Bool => write!(f, "bool"),
            ColumnType::String { max_len: Some(n) } => write!(f, "varchar({n})"),
            ColumnType::String { max_len: None } => write!(f, "string"),
            ColumnType::Text => write!(f, "text"),
            ColumnType::Binary => write!(f, "binary"),
            ColumnType::Date => write!(f, "date"),
            ColumnType::Time => write!(f, "time"),
            ColumnType::Timestamp => write!(f, "timestamp"),
            ColumnType::TimestampTz => write!(f, "timestamptz"),
            ColumnType::Uuid => write!(f, "uuid"),
            ColumnType::Json => write!(f, "json"),
        }
    }
}

/// One destination column as the sync moves it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Destination column name.
    pub name: String,
    pub data_type: ColumnType,
    /// Part of the upsert key.
    pub unique: bool,
    pub nullable: bool,
}

/// The Arrow schema of batches headed for the destination.
pub fn arrow_schema(columns: &[ColumnSpec]) -> Arc<Schema> {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.arrow_type(), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_defaults() {
        assert_eq!(
            ColumnType::parse("decimal", None, None, None),
            Some(ColumnType::Decimal {
                precision: 38,
                scale: 10
            })
        );
        assert_eq!(
            ColumnType::parse("decimal", Some(10), Some(2), None),
            Some(ColumnType::Decimal {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(ColumnType::parse("nope", None, None, None), None);
    }
}
