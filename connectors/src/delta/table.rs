//! What the Delta source and sink share: opening a table, its schema as
//! SyncHub writes it, values Delta has no type for, partition ranges as
//! DataFusion filters, and errors.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeBinaryBuilder, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::prelude::{lit, Expr};
use deltalake::kernel::{DataType as DeltaType, PrimitiveType, StructField};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use planner::model::TableRef;
use planner::partition::{DimRange, Partition, PartitionDimensionRef, PartitionValue};
use planner::types::{ColumnSpec, ColumnType};

use super::config::DeltaConnection;
use crate::{ConnectorError, ErrorKind, Result};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A table's place: its URL and what to open it with.
#[derive(Clone)]
pub struct TableLocation {
    pub url: url::Url,
    pub options: std::collections::HashMap<String, String>,
    /// For messages: the datastore and the table's folder.
    pub name: String,
}

impl TableLocation {
    pub fn of(table: &TableRef) -> Result<TableLocation> {
        super::s3::register();
        let connection = connection_of(&table.datastore)?;
        let url = connection
            .table_url(table.schema.as_deref(), &table.table)
            .map_err(|e| {
                ConnectorError::Config(format!("datastore \"{}\": {e}", table.datastore.name()))
            })?;
        Ok(TableLocation {
            name: format!(
                "Delta table {} of datastore \"{}\"",
                table.display_name(),
                table.datastore.name()
            ),
            url,
            options: connection.options(),
        })
    }

    /// Whether the table is in a local folder that does not exist (deltalake
    /// refuses to open one, even to create a table in it).
    pub fn missing_locally(&self) -> bool {
        self.url.scheme() == "file" && self.url.to_file_path().is_ok_and(|p| !p.exists())
    }

    /// Creates the table's local folder, for a first write.
    pub fn create_locally(&self) -> Result<()> {
        if let Ok(path) = self.url.to_file_path() {
            std::fs::create_dir_all(&path).map_err(|e| {
                ConnectorError::Config(format!(
                    "{}: cannot create folder {}: {e}",
                    self.name,
                    path.display()
                ))
            })?;
        }
        Ok(())
    }

    /// The table as its log says now; `version()` is `None` when there is
    /// no table at the location yet.
    pub async fn open(&self) -> Result<DeltaTable> {
        let mut table = DeltaTableBuilder::from_url(self.url.clone())
            .and_then(|b| b.with_storage_options(self.options.clone()).build())
            .map_err(|e| self.error(e))?;
        // A local folder without a log is no table yet: loading it would
        // have the kernel log an error for what is a first load.
        if self.url.scheme() == "file"
            && self
                .url
                .to_file_path()
                .is_ok_and(|p| !p.join("_delta_log").exists())
        {
            return Ok(table);
        }
        match table.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(table),
            Err(e) => Err(self.error(e)),
        }
    }

    /// A deltalake error, naming the table (the storage options, which may
    /// hold keys, are never part of it).
    pub fn error(&self, e: DeltaTableError) -> ConnectorError {
        let kind = match &e {
            DeltaTableError::Transaction { .. } | DeltaTableError::VersionAlreadyExists(_) => {
                ErrorKind::Transient
            }
            DeltaTableError::InvalidTableLocation(_) | DeltaTableError::NotATable(_) => {
                ErrorKind::User
            }
            _ => ErrorKind::System,
        };
        if let Some(refused) = refused_credentials(&e) {
            return ConnectorError::Database {
                connector: "Delta Lake",
                kind: ErrorKind::User,
                message: format!("{} ({}): {refused}", self.name, self.url),
                source: Some(Box::new(e)),
            };
        }
        ConnectorError::Database {
            connector: "Delta Lake",
            kind,
            message: format!("{} ({}): {e}", self.name, self.url),
            source: Some(Box::new(e)),
        }
    }

    pub fn datafusion_error(
        &self,
        e: deltalake::datafusion::error::DataFusionError,
    ) -> ConnectorError {
        ConnectorError::Database {
            connector: "Delta Lake",
            kind: ErrorKind::System,
            message: format!("{} ({}): {e}", self.name, self.url),
            source: Some(Box::new(e)),
        }
    }
}

/// What to tell a user whose store refused the request's credentials (401
/// or 403 from the endpoint), with the store's own error code when its
/// answer names one: the raw error is a page of XML about signatures.
/// The Delta kernel hands object_store's errors on as text, so besides the
/// typed error its two messages are recognised.
fn refused_credentials(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use deltalake::ObjectStoreError;
    const REFUSED: [&str; 2] = [
        "The operation lacked the necessary privileges",
        "The operation lacked valid authentication credentials",
    ];
    let mut next = Some(e);
    while let Some(err) = next {
        let typed = matches!(
            err.downcast_ref::<ObjectStoreError>(),
            Some(
                ObjectStoreError::PermissionDenied { .. }
                    | ObjectStoreError::Unauthenticated { .. }
            )
        );
        let text = err.to_string();
        if typed || REFUSED.iter().any(|r| text.contains(r)) {
            let code = text
                .split_once("<Code>")
                .and_then(|(_, rest)| rest.split_once("</Code>"))
                .map(|(code, _)| format!(" ({code})"))
                .unwrap_or_default();
            return Some(format!(
                "the S3 endpoint refused the credentials{code}: check storage_options \
                 access_key_id and secret_access_key"
            ));
        }
        next = err.source();
    }
    None
}

fn connection_of(datastore: &planner::Datastore) -> Result<&DeltaConnection> {
    datastore
        .connection
        .as_any()
        .downcast_ref::<DeltaConnection>()
        .ok_or_else(|| {
            ConnectorError::Config(format!(
                "datastore \"{}\" is not a delta datastore",
                datastore.name()
            ))
        })
}

/// The Delta type a column is written as. Delta has no uuid type: a uuid
/// is its 36-character text; it has no time-of-day type at all, so such a
/// column is refused by name rather than changed.
fn delta_type(c: &ColumnSpec) -> Result<DeltaType> {
    Ok(match &c.data_type {
        ColumnType::Int16 => DeltaType::Primitive(PrimitiveType::Short),
        ColumnType::Int32 => DeltaType::Primitive(PrimitiveType::Integer),
        ColumnType::Int64 => DeltaType::Primitive(PrimitiveType::Long),
        ColumnType::Float32 => DeltaType::Primitive(PrimitiveType::Float),
        ColumnType::Float64 => DeltaType::Primitive(PrimitiveType::Double),
        ColumnType::Decimal { precision, scale } => {
            let scale = u8::try_from(*scale).map_err(|_| {
                ConnectorError::Unsupported(format!(
                    "column \"{}\": Delta Lake has no decimal of negative scale {scale}",
                    c.name
                ))
            })?;
            DeltaType::decimal(*precision, scale).map_err(|e| {
                ConnectorError::Unsupported(format!(
                    "column \"{}\": decimal({precision},{scale}) is not a Delta Lake decimal: {e}",
                    c.name
                ))
            })?
        }
        ColumnType::Bool => DeltaType::Primitive(PrimitiveType::Boolean),
        ColumnType::String { .. } | ColumnType::Text | ColumnType::Json | ColumnType::Uuid => {
            DeltaType::Primitive(PrimitiveType::String)
        }
        ColumnType::Binary => DeltaType::Primitive(PrimitiveType::Binary),
        ColumnType::Date => DeltaType::Primitive(PrimitiveType::Date),
        ColumnType::Timestamp => DeltaType::Primitive(PrimitiveType::TimestampNtz),
        ColumnType::TimestampTz => DeltaType::Primitive(PrimitiveType::Timestamp),
        ColumnType::Time => {
            return Err(ConnectorError::Unsupported(format!(
                "column \"{}\" is of type time, which Delta Lake cannot hold; map it to a \
                 string or a timestamp",
                c.name
            )))
        }
    })
}

/// The Arrow type of a column's values in the table.
fn stored_arrow_type(c: &ColumnSpec) -> DataType {
    match c.data_type {
        ColumnType::Uuid => DataType::Utf8,
        _ => c.data_type.arrow_type(),
    }
}

/// The table's columns, as SyncHub creates them.
pub fn delta_fields(specs: &[ColumnSpec]) -> Result<Vec<StructField>> {
    specs
        .iter()
        .map(|c| Ok(StructField::new(c.name.clone(), delta_type(c)?, c.nullable)))
        .collect()
}

/// The Arrow schema of batches written to the table.
pub fn stored_schema(specs: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        specs
            .iter()
            .map(|c| Field::new(&c.name, stored_arrow_type(c), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

/// `batch` (of the destination's types) as the table stores it: uuids as
/// text.
pub fn to_stored(
    batch: &RecordBatch,
    specs: &[ColumnSpec],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(specs)
        .map(|(array, c)| match c.data_type {
            ColumnType::Uuid => uuid_text(array),
            _ => Ok(array.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn uuid_text(array: &ArrayRef) -> Result<ArrayRef> {
    let bytes = array.as_fixed_size_binary_opt().ok_or_else(|| {
        ConnectorError::Schema(format!("a uuid column arrived as {}", array.data_type()))
    })?;
    let text: StringArray = bytes
        .iter()
        .map(|v| {
            v.and_then(|b| uuid::Uuid::from_slice(b).ok())
                .map(|u| u.hyphenated().to_string())
        })
        .collect();
    Ok(Arc::new(text))
}

/// Text read from a table as uuids; a value that is not one is an error
/// naming the column and the value.
pub fn uuid_values(array: &ArrayRef, column: &str) -> Result<ArrayRef> {
    let text = arrow::compute::cast(array, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let mut out = FixedSizeBinaryBuilder::with_capacity(text.len(), 16);
    for v in text.iter() {
        match v {
            None => out.append_null(),
            Some(s) => {
                let u = uuid::Uuid::parse_str(s).map_err(|_| {
                    ConnectorError::Value(format!(
                        "column \"{column}\" holds \"{s}\", which is not a uuid"
                    ))
                })?;
                out.append_value(u.as_bytes())?;
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `partition`'s ranges as one filter over the table's columns, each
/// dimension's column named by `column_of`, qualified by `qualifier`;
/// `None` when every range is `All`. Bounds are literals of the column's
/// own type, so Delta can skip files by their statistics.
pub fn range_filter(
    partition: &Partition,
    schema: &Schema,
    qualifier: Option<&str>,
    column_of: impl Fn(&PartitionDimensionRef) -> String,
) -> Result<Option<Expr>> {
    let mut conds = Vec::new();
    for (dim, range) in &partition.ranges {
        let name = column_of(dim);
        let data_type = schema
            .field_with_name(&name)
            .map_err(|_| {
                ConnectorError::Schema(format!("the table has no partition column \"{name}\""))
            })?
            .data_type()
            .clone();
        let column = Expr::Column(Column::new(qualifier, &name));
        match range {
            DimRange::All => {}
            DimRange::Null => conds.push(column.is_null()),
            DimRange::Range { start, end } => {
                conds.push(column.clone().gt_eq(lit(bound(*start, &data_type))));
                conds.push(column.lt(lit(bound(*end, &data_type))));
            }
        }
    }
    Ok(conds.into_iter().reduce(Expr::and))
}

/// A range bound as a literal of the column's type. A date column holds
/// days: `day >= start` is `day >= ceil(start)`, and the same for `<`.
fn bound(value: PartitionValue, column: &DataType) -> ScalarValue {
    match (value, column) {
        (PartitionValue::Micros(v), DataType::Date32) => {
            let days = v.div_euclid(MICROS_PER_DAY) + i64::from(v.rem_euclid(MICROS_PER_DAY) != 0);
            ScalarValue::Date32(i32::try_from(days).ok())
        }
        (PartitionValue::Micros(v), DataType::Timestamp(_, tz)) => {
            ScalarValue::TimestampMicrosecond(Some(v), tz.clone())
        }
        (PartitionValue::Micros(v), _) => ScalarValue::TimestampMicrosecond(Some(v), None),
        (PartitionValue::Int(v), t) => ScalarValue::Int64(Some(v))
            .cast_to(t)
            .unwrap_or(ScalarValue::Int64(Some(v))),
    }
}

/// Whether `have` (a table's column) is what SyncHub writes for `c`.
pub fn stored_type_matches(have: &DataType, c: &ColumnSpec) -> bool {
    let want = stored_arrow_type(c);
    match (have, &want) {
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, DataType::Utf8) => true,
        (DataType::Binary | DataType::LargeBinary | DataType::BinaryView, DataType::Binary) => true,
        (DataType::Timestamp(u1, Some(_)), DataType::Timestamp(u2, Some(_))) => u1 == u2,
        _ => *have == want,
    }
}

/// Arrays of a batch as `array`'s length, for messages.
pub fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

pub fn is_not_a_table(table: &DeltaTable) -> bool {
    table.version().is_none()
}

/// `array` is only ever read here, so a null array stands for a column a
/// delete carries no value for.
pub fn nulls(data_type: &DataType, len: usize) -> ArrayRef {
    arrow::array::new_null_array(data_type, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_bounds_round_up_to_whole_days() {
        assert_eq!(
            bound(PartitionValue::Micros(MICROS_PER_DAY), &DataType::Date32),
            ScalarValue::Date32(Some(1))
        );
        assert_eq!(
            bound(
                PartitionValue::Micros(MICROS_PER_DAY + 1),
                &DataType::Date32
            ),
            ScalarValue::Date32(Some(2))
        );
        assert_eq!(
            bound(PartitionValue::Micros(-1), &DataType::Date32),
            ScalarValue::Date32(Some(0))
        );
    }

    #[test]
    fn integer_bounds_take_the_column_type() {
        assert_eq!(
            bound(PartitionValue::Int(7), &DataType::Int32),
            ScalarValue::Int32(Some(7))
        );
        // Past the column's range (an exclusive end): kept wide.
        assert_eq!(
            bound(PartitionValue::Int(40_000), &DataType::Int16),
            ScalarValue::Int64(Some(40_000))
        );
    }

    #[test]
    fn refused_credentials_are_said_plainly() {
        let refused = deltalake::ObjectStoreError::PermissionDenied {
            path: "lake/items/_delta_log".into(),
            source: "403 Forbidden: <Error><Code>InvalidAccessKeyId</Code></Error>".into(),
        };
        let e = DeltaTableError::ObjectStore { source: refused };
        assert_eq!(
            refused_credentials(&e).as_deref(),
            Some(
                "the S3 endpoint refused the credentials (InvalidAccessKeyId): check \
                 storage_options access_key_id and secret_access_key"
            )
        );
        let missing = DeltaTableError::NotATable("no log".into());
        assert_eq!(refused_credentials(&missing), None);
    }

    #[test]
    fn time_columns_are_refused_by_name() {
        let c = ColumnSpec {
            name: "opens_at".into(),
            data_type: ColumnType::Time,
            unique: false,
            nullable: true,
        };
        assert_eq!(
            delta_fields(&[c]).unwrap_err().to_string(),
            "column \"opens_at\" is of type time, which Delta Lake cannot hold; map it to a string or a timestamp"
        );
    }

    #[test]
    fn uuids_are_stored_as_text_and_read_back() {
        let u = uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        let mut b = FixedSizeBinaryBuilder::new(16);
        b.append_value(u.as_bytes()).unwrap();
        b.append_null();
        let bytes: ArrayRef = Arc::new(b.finish());
        let text = uuid_text(&bytes).unwrap();
        assert_eq!(
            text.as_string::<i32>().value(0),
            "67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
        assert!(text.is_null(1));
        assert_eq!(uuid_values(&text, "id").unwrap().as_ref(), bytes.as_ref());
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["nope"]));
        assert_eq!(
            uuid_values(&bad, "id").unwrap_err().to_string(),
            "column \"id\" holds \"nope\", which is not a uuid"
        );
    }
}
