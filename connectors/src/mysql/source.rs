//! The MySQL source: reads of a partition or of keys, streamed page by page
//! from the server (never a whole table in memory). No hash pushdown yet:
//! the hash strategy reads the rows and hashes them in Rust.

use std::collections::HashMap;

use async_trait::async_trait;
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};
use planner::model::{MappedColumn, TableRef};
use planner::partition::{
    BucketGrid, ColumnBounds, OccupiedBucket, OccupiedBuckets, Partition, PartitionDimension,
    PartitionValue,
};
use planner::types::ColumnSpec;
use rusqlite::types::ToSqlOutput;

use super::codec::{as_sqlite, from_sqlite, RowDecoder};
use super::connect::{connect, mysql_error, server_code};
use crate::sql::{self, MySqlDialect};
use crate::sqlite::params::{bound_from_sqlite, bound_params};
use crate::traits::BatchStream;
use crate::{ConnectorError, Result};

pub struct MySqlSource {
    conn: Conn,
    table: TableRef,
    columns: Vec<MappedColumn>,
    specs: Vec<ColumnSpec>,
}

impl MySqlSource {
    pub async fn open(table: &TableRef, columns: &[MappedColumn]) -> Result<MySqlSource> {
        Ok(MySqlSource {
            conn: connect(&table.datastore).await?,
            table: table.clone(),
            columns: columns.to_vec(),
            specs: columns.iter().map(|c| c.spec.clone()).collect(),
        })
    }
}

/// `values` bound to the dialect's placeholders `:p1`, `:p2`, ...
pub(super) fn named(values: Vec<Value>) -> Params {
    if values.is_empty() {
        return Params::Empty;
    }
    let map: HashMap<Vec<u8>, Value> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("p{}", i + 1).into_bytes(), v))
        .collect();
    Params::Named(map)
}

/// 0001-01-01 00:00:00 and 9999-12-31 23:59:59.999999, in microseconds
/// since the epoch: what a DATETIME holds.
const DATETIME_MICROS: std::ops::RangeInclusive<i64> =
    -62_135_596_800_000_000..=253_402_300_799_999_999;

/// A partition's range values as MySQL compares them with its columns: the
/// text SyncHub's DATETIME(6) and DATE columns read as (the same text the
/// SQLite connector compares with). An open end (a range up to the largest
/// instant) is clamped into DATETIME's years, as a text beyond them
/// compares with no row.
pub(super) fn partition_values(partition: &Partition, values: &[PartitionValue]) -> Vec<Value> {
    let clamped: Vec<PartitionValue> = values
        .iter()
        .map(|v| match v {
            PartitionValue::Micros(m) => {
                PartitionValue::Micros((*m).clamp(*DATETIME_MICROS.start(), *DATETIME_MICROS.end()))
            }
            other => *other,
        })
        .collect();
    bound_params(partition, &clamped)
        .into_iter()
        .map(|v| from_sqlite(ToSqlOutput::Owned(v)))
        .collect()
}

#[async_trait]
impl sql::SqlSource for MySqlSource {
    fn select_from(&self) -> sql::SelectFrom<'_> {
        sql::SelectFrom {
            dialect: &MySqlDialect,
            table: &self.table,
            columns: &self.columns,
        }
    }

    async fn run_select<'a>(
        &'a mut self,
        partition: &Partition,
        select: sql::Select,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        let mut values = partition_values(partition, &select.params);
        if !select.keys.is_empty() {
            values.push(Value::Bytes(
                sql::keys_json(&select.keys).to_string().into_bytes(),
            ));
        }
        let mut decoder = RowDecoder::new(&self.specs);
        let columns = self.columns.clone();
        let rows = self
            .conn
            .exec_stream::<Row, _, _>(select.sql, named(values))
            .await
            .map_err(mysql_error)?;
        let batches = rows.chunks(page_rows.max(1)).map(move |page| -> Result<_> {
            for row in page {
                decoder.push(&row.map_err(mysql_error)?)?;
            }
            // A stored row hash column is computed from the decoded row.
            crate::rowhash::fill_computed_hash(decoder.finish()?, &columns)
        });
        Ok(Box::pin(batches))
    }

    async fn check_readable(&mut self) -> Result<()> {
        let probe = sql::probe_sql(&MySqlDialect, &self.table, &self.columns);
        let table = self.table.display_name();
        match self.conn.query_drop(probe).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // "Unknown column 'nickname' in 'SELECT'"
                if server_code(&e) == Some(1054) {
                    let msg = e.to_string();
                    let missing = msg.split('\'').nth(1).unwrap_or_default();
                    let missing = missing.rsplit('.').next().unwrap_or(missing);
                    if let Some(c) = self
                        .columns
                        .iter()
                        .find(|c| c.is_source_reported_as(missing))
                    {
                        return Err(ConnectorError::Schema(format!(
                            "source column {} (mapped to dest \"{}\") does not exist in {table}: fix the column name in the pipeline or add the column to the source",
                            c.source_for_message(),
                            c.dest
                        )));
                    }
                }
                let e = mysql_error(e);
                // A dropped connection or a server going away: retried.
                if e.retryable() {
                    return Err(e);
                }
                Err(ConnectorError::Schema(format!(
                    "cannot read source {table}: {e}"
                )))
            }
        }
    }

    async fn column_bounds(
        &mut self,
        within: &Partition,
        dims: &[PartitionDimension],
    ) -> Result<Vec<ColumnBounds>> {
        if dims.is_empty() {
            return Ok(Vec::new());
        }
        let (q, params) = sql::bounds_sql(&MySqlDialect, &self.table, Some(within), dims);
        let row: Row = self
            .conn
            .exec_first(q, named(partition_values(within, &params)))
            .await
            .map_err(mysql_error)?
            .ok_or_else(|| ConnectorError::Other("bounds query returned no row".into()))?;
        let mut scratch = String::new();
        let mut out = Vec::with_capacity(dims.len());
        for (i, d) in dims.iter().enumerate() {
            let value = |j: usize, scratch: &mut String| -> Result<Option<PartitionValue>> {
                let v = row.as_ref(j).unwrap_or(&Value::NULL);
                bound_from_sqlite(d, as_sqlite(v, scratch))
            };
            let min = value(3 * i, &mut scratch)?;
            let max = value(3 * i + 1, &mut scratch)?;
            let has_nulls = matches!(row.as_ref(3 * i + 2), Some(Value::Int(1) | Value::UInt(1)))
                || matches!(row.as_ref(3 * i + 2), Some(Value::Bytes(b)) if b.as_slice() == b"1");
            out.push(ColumnBounds {
                min_max: min.zip(max),
                has_nulls,
            });
        }
        Ok(out)
    }

    async fn occupied(
        &mut self,
        scope: &Partition,
        dims: &[PartitionDimension],
        grids: &[BucketGrid],
        limit: usize,
    ) -> Result<Option<OccupiedBuckets>> {
        let mut values = Vec::new();
        let (q, grid_params) = sql::buckets_sql(
            &MySqlDialect,
            &self.table,
            scope,
            dims,
            grids,
            &mut values,
            false,
        );
        let mut params = partition_values(scope, &values);
        params.extend(grid_params.into_iter().map(Value::Int));
        let width = dims.len();
        let mut rows = self
            .conn
            .exec_stream::<Row, _, _>(q, named(params))
            .await
            .map_err(mysql_error)?;
        let mut seen: std::collections::HashMap<Vec<Option<i64>>, u64> =
            std::collections::HashMap::new();
        while let Some(row) = rows.next().await {
            let row = row.map_err(mysql_error)?;
            let key = (0..width)
                .map(|i| match row.as_ref(i) {
                    Some(Value::NULL) | None => Ok(None),
                    Some(Value::Int(n)) => Ok(Some(*n)),
                    Some(Value::UInt(n)) => i64::try_from(*n).map(Some).map_err(|_| n.to_string()),
                    Some(Value::Bytes(b)) => {
                        let text = String::from_utf8_lossy(b);
                        text.parse::<i64>().map(Some).map_err(|_| text.into_owned())
                    }
                    Some(other) => Err(format!("{other:?}")),
                })
                .collect::<std::result::Result<Vec<_>, String>>()
                .map_err(|v| {
                    ConnectorError::Other(format!("bucket query returned {v}, not an integer"))
                })?;
            *seen.entry(key).or_default() += 1;
            if seen.len() > limit {
                break;
            }
        }
        Ok(Some(
            seen.into_iter()
                .map(|(buckets, rows)| OccupiedBucket { buckets, rows })
                .collect(),
        ))
    }
}
