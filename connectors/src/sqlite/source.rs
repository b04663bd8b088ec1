//! The SQLite source: reads of a partition or of keys, checksums and row
//! hashes (whole or per bucket), streamed from the connection's thread.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures_util::StreamExt;
use planner::model::{MappedColumn, TableRef};
use planner::partition::{
    BucketGrid, ColumnBounds, OccupiedBucket, OccupiedBuckets, Partition, PartitionDimension,
};
use planner::types::{arrow_schema, ColumnSpec};
use rusqlite::types::{Value, ValueRef};

use super::codec::ColumnDecoder;
use super::connect::datastore_path;
use super::params::{bound_from_sqlite, bound_params};
use super::thread::ConnectionThread;
use crate::conform::check_fits;
use crate::sql::{self, Dialect, SqliteDialect};
use crate::traits::{BatchStream, BucketChecksum, Buckets, Checksum, HashPushdown};
use crate::{ConnectorError, Result};

pub struct SqliteSource {
    conn: ConnectionThread<ConnectorError>,
    table: TableRef,
    columns: Vec<MappedColumn>,
    specs: Vec<ColumnSpec>,
}

impl SqliteSource {
    pub async fn open(table: &TableRef, columns: &[MappedColumn]) -> Result<SqliteSource> {
        let path = datastore_path(&table.datastore)?;
        let conn = super::connect::open_on_thread(&path, false).await?;
        let specs: Vec<ColumnSpec> = columns.iter().map(|c| c.spec.clone()).collect();
        let mut table = table.clone();
        if let Some(grouped) = table.grouped.as_mut() {
            // The registered row hash function takes the configured types.
            grouped.row_hash_sql = grouped
                .aggregate
                .row_hash_columns()
                .map(|rows| crate::rowhash::sqlite_row_hash_sql(&rows));
            if grouped.row_hash_sql.is_some() {
                conn.run(|conn| {
                    crate::rowhash::register_sqlite_functions(conn).map_err(ConnectorError::from)
                })
                .await?;
            }
        }
        Ok(SqliteSource {
            conn,
            table,
            columns: columns.to_vec(),
            specs,
        })
    }
}

#[async_trait]
impl sql::SqlSource for SqliteSource {
    fn select_from(&self) -> sql::SelectFrom<'_> {
        sql::SelectFrom {
            dialect: &SqliteDialect,
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
        let mut params = bound_params(partition, &select.params);
        if !select.keys.is_empty() {
            // One parameter for the whole list, read back with json_each.
            let keys = serde_json::to_string(&sql::keys_json(&select.keys))
                .map_err(|e| ConnectorError::Other(e.to_string()))?;
            params.push(Value::Text(keys));
        }
        Ok(self.stream(select.sql, params, page_rows))
    }

    async fn check_readable(&mut self) -> Result<()> {
        let probe = sql::probe_sql(&SqliteDialect, &self.table, &self.columns);
        let table = self.table.display_name();
        let grouped_table = self.table.clone();
        let columns = self.columns.clone();
        self.conn.run(move |conn| match conn.prepare(&probe) {
            Ok(_) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                if let Some(missing) = msg.strip_prefix("no such column: ") {
                    // rusqlite appends " in <SQL> at offset N".
                    let missing = missing.split(" in ").next().unwrap_or(missing);
                    // With double-quoted strings off, SQLite quotes the name and adds a hint.
                    let missing = missing.split(" - ").next().unwrap_or(missing).trim_matches('"');
                    if let Some(e) = sql::aggregate_missing_column(&grouped_table, missing) {
                        return Err(e);
                    }
                    if let Some(c) = columns.iter().find(|c| c.is_source_reported_as(missing)) {
                        return Err(ConnectorError::Schema(format!(
                            "source column {} (mapped to dest \"{}\") does not exist in {table}: fix the column name in the pipeline or add the column to the source",
                            c.source_for_message(), c.dest
                        )));
                    }
                }
                Err(ConnectorError::Schema(format!("cannot read source {table}: {msg}")))
            }
        })
        .await
    }

    async fn column_bounds(
        &mut self,
        within: &Partition,
        dims: &[PartitionDimension],
    ) -> Result<Vec<ColumnBounds>> {
        if dims.is_empty() {
            return Ok(Vec::new());
        }
        let (q, params) = sql::bounds_sql(&SqliteDialect, &self.table, Some(within), dims);
        let params = bound_params(within, &params);
        let dims = dims.to_vec();
        self.conn
            .run(move |conn| {
                let mut stmt = conn.prepare(&q)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                let row = rows
                    .next()?
                    .ok_or_else(|| ConnectorError::Other("bounds query returned no row".into()))?;
                let mut out = Vec::with_capacity(dims.len());
                for (i, d) in dims.iter().enumerate() {
                    let min = bound_from_sqlite(d, row.get_ref(3 * i)?)?;
                    let max = bound_from_sqlite(d, row.get_ref(3 * i + 1)?)?;
                    let has_nulls: bool = row.get(3 * i + 2)?;
                    out.push(ColumnBounds {
                        min_max: min.zip(max),
                        has_nulls,
                    });
                }
                Ok(out)
            })
            .await
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
            &SqliteDialect,
            &self.table,
            scope,
            dims,
            grids,
            &mut values,
            false,
        );
        let mut params = bound_params(scope, &values);
        params.extend(grid_params.into_iter().map(Value::Integer));
        let width = dims.len();
        // Distinct here rather than with GROUP BY, as bucket checksums are
        // summed: SQLite would sort every row into a temporary B-tree first.
        self.conn
            .run(move |conn| {
                let mut stmt = conn.prepare(&q)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut seen: std::collections::HashMap<Vec<Option<i64>>, u64> =
                    std::collections::HashMap::new();
                // Rows mostly come in the key's order: count a run of one
                // key before hashing it.
                let mut last: Option<(Vec<Option<i64>>, u64)> = None;
                while let Some(row) = rows.next()? {
                    let key = (0..width)
                        .map(|i| row.get::<_, Option<i64>>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    if let Some((k, n)) = last.as_mut() {
                        if *k == key {
                            *n += 1;
                            continue;
                        }
                    }
                    if let Some((k, n)) = last.replace((key, 1)) {
                        *seen.entry(k).or_default() += n;
                        if seen.len() > limit {
                            last = None;
                            break;
                        }
                    }
                }
                if let Some((k, n)) = last {
                    *seen.entry(k).or_default() += n;
                }
                Ok(Some(
                    seen.into_iter()
                        .map(|(buckets, rows)| OccupiedBucket { buckets, rows })
                        .collect(),
                ))
            })
            .await
    }

    fn pushdown(&mut self) -> Option<&mut dyn HashPushdown> {
        Some(self)
    }
}

#[async_trait]
impl HashPushdown for SqliteSource {
    async fn checksum(&mut self, partition: &Partition) -> Result<crate::traits::Checksum> {
        let (from_where, params) = partition_from_where(&self.table, partition);
        let q = format!(
            "SELECT count(*), {}({}) {from_where}",
            crate::rowhash::SQLITE_HASH_SUM_FN,
            crate::rowhash::sqlite_row_hash_sql(&self.columns)
        );
        let table = self.table.display_name();
        self.conn
            .run(move |conn| {
                crate::rowhash::register_sqlite_functions(conn)?;
                let (rows, sum): (i64, i64) = conn
                    .query_row(&q, rusqlite::params_from_iter(params.iter()), |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(|e| hash_error(&table, e))?;
                Ok(crate::traits::Checksum {
                    rows: rows as u64,
                    sum: sum as u64,
                })
            })
            .await
    }

    async fn row_hashes<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        let (from_where, params) = partition_from_where(&self.table, partition);
        Ok(self.row_hash_stream(&from_where, params, page_rows))
    }

    async fn bucket_checksums(
        &mut self,
        partition: &Partition,
        buckets: Buckets,
    ) -> Result<Option<Vec<BucketChecksum>>> {
        let Some((from_where, bucket, params)) =
            bucket_from_where(&self.table, partition, buckets, None)
        else {
            return Ok(None);
        };
        // Summed here rather than with GROUP BY: SQLite cannot tell that the
        // bucket follows the key's order and sorts every row into a temporary
        // B-tree first (+0.7 s a side on 2M rows), while a partition has only
        // a few thousand buckets to keep in a map.
        let q = format!(
            "SELECT {bucket}, {} {from_where}",
            crate::rowhash::sqlite_row_hash_sql(&self.columns)
        );
        let table = self.table.display_name();
        let out = self
            .conn
            .run(move |conn| {
                crate::rowhash::register_sqlite_functions(conn)?;
                let mut stmt = conn.prepare(&q)?;
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(params.iter()))
                    .map_err(|e| hash_error(&table, e))?;
                let mut sums: std::collections::HashMap<i64, Checksum> = Default::default();
                while let Some(row) = rows.next().map_err(|e| hash_error(&table, e))? {
                    let bucket: i64 = row.get(0)?;
                    let hash: i64 = row.get(1)?;
                    let sum = sums.entry(bucket).or_default();
                    sum.rows += 1;
                    sum.sum = sum.sum.wrapping_add(hash as u64);
                }
                let mut out: Vec<(i64, Checksum)> = sums.into_iter().collect();
                out.sort_unstable_by_key(|(bucket, _)| *bucket);
                Ok(out)
            })
            .await?;
        Ok(Some(out))
    }

    async fn bucket_row_hashes<'a>(
        &'a mut self,
        partition: &Partition,
        buckets: Buckets,
        which: &[i64],
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        let (from_where, _, params) =
            bucket_from_where(&self.table, partition, buckets, Some(which))
                .ok_or_else(|| sql::not_bucketed(partition))?;
        Ok(self.row_hash_stream(&from_where, params, page_rows))
    }
}

impl SqliteSource {
    /// The mapped columns of the rows `q` selects, decoded.
    fn stream<'a>(&self, q: String, params: Vec<Value>, page_rows: usize) -> BatchStream<'a> {
        let rx = stream_rows(
            self.conn.clone(),
            q,
            params,
            self.specs.clone(),
            page_rows,
            None,
        );
        // A stored row hash column is computed from the decoded row.
        let columns = self.columns.clone();
        Box::pin(
            async_stream_from(rx).map(move |batch| {
                batch.and_then(|b| crate::rowhash::fill_computed_hash(b, &columns))
            }),
        )
    }

    /// The unique key columns and the row hash of the rows `from_where` selects.
    fn row_hash_stream<'a>(
        &'a self,
        from_where: &str,
        params: Vec<Value>,
        page_rows: usize,
    ) -> BatchStream<'a> {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .filter(|c| c.spec.unique)
            .map(|c| SqliteDialect.mapped_column(c))
            .collect();
        cols.push(crate::rowhash::sqlite_row_hash_sql(&self.columns));
        let q = format!("SELECT {} {from_where}", cols.join(", "));
        let specs = crate::rowhash::row_hash_specs(&self.columns);
        let table = self.table.display_name();
        let rx = stream_rows(self.conn.clone(), q, params, specs, page_rows, Some(table));
        Box::pin(async_stream_from(rx))
    }
}

/// `partition_from_where`, the bucket expression of `buckets` and the bound
/// values; with `which`, only the rows of those buckets (a JSON array bound
/// as one value). `None` when `buckets` does not cut an integer range.
fn bucket_from_where(
    table: &TableRef,
    partition: &Partition,
    buckets: Buckets,
    which: Option<&[i64]>,
) -> Option<(String, String, Vec<Value>)> {
    let column = sql::bucket_column(partition, buckets)?;
    let (from_where, mut params) = partition_from_where(table, partition);
    let n = params.len();
    let bucket = sql::bucket_expr(&SqliteDialect, column, n + 1);
    params.push(Value::Integer(buckets.origin));
    params.push(Value::Integer(buckets.width));
    let from_where = match which {
        // The partition's ranges make a WHERE clause (`bucket_column`).
        Some(which) => {
            let list = serde_json::to_string(which).unwrap_or_else(|_| "[]".into());
            params.push(Value::Text(list));
            format!(
                "{from_where} AND {bucket} IN (SELECT value FROM json_each({}))",
                SqliteDialect.placeholder(n + 3)
            )
        }
        None => from_where,
    };
    Some((from_where, bucket, params))
}

/// Runs a query on the connection's thread and sends its rows, decoded into
/// `specs`, as batches of `page_rows` (two in flight: the reader stays one
/// page ahead). With `row_hash_table`, the row-hash functions are registered
/// first and their errors are reported against that table.
fn stream_rows(
    conn: ConnectionThread<ConnectorError>,
    q: String,
    params: Vec<Value>,
    specs: Vec<ColumnSpec>,
    page_rows: usize,
    row_hash_table: Option<String>,
) -> tokio::sync::mpsc::Receiver<Result<RecordBatch>> {
    let schema = arrow_schema(&specs);
    let page_rows = page_rows.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    let failed = tx.clone();
    let queued = conn.spawn(move |conn| {
        let result = (|| -> Result<()> {
            if row_hash_table.is_some() {
                crate::rowhash::register_sqlite_functions(conn)?;
            }
            let mut stmt = conn.prepare(&q)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
            let mut decoders: Vec<ColumnDecoder> = specs
                .iter()
                .map(|c| ColumnDecoder::new(&c.data_type))
                .collect();
            let mut n = 0usize;
            loop {
                let row = match (rows.next(), &row_hash_table) {
                    (Ok(Some(row)), _) => row,
                    (Ok(None), _) => break,
                    (Err(e), Some(table)) => return Err(hash_error(table, e)),
                    (Err(e), None) => return Err(e.into()),
                };
                for (i, dec) in decoders.iter_mut().enumerate() {
                    if let Err(e) = dec.push(row.get_ref(i)?) {
                        return Err(ConnectorError::Value(format!(
                            "row {}, column \"{}\": {e}",
                            sqlite_row_key(row, &specs),
                            specs[i].name
                        )));
                    }
                }
                n += 1;
                if n == page_rows {
                    let batch = finish_batch(&schema, &specs, &mut decoders)?;
                    if tx.blocking_send(Ok(batch)).is_err() {
                        return Ok(()); // consumer gone: the run was cancelled
                    }
                    n = 0;
                }
            }
            if n > 0 {
                let batch = finish_batch(&schema, &specs, &mut decoders)?;
                let _ = tx.blocking_send(Ok(batch));
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    if let Err(e) = queued {
        let _ = failed.try_send(Err(e));
    }
    rx
}

/// `FROM ... WHERE ...` of a partition and its bound values: the filter
/// `read` applies (the same builders, the same parameter binding).
fn partition_from_where(table: &TableRef, partition: &Partition) -> (String, Vec<Value>) {
    let mut params = Vec::new();
    let sql = format!(
        "{}{}",
        sql::from_sql(&SqliteDialect, table),
        sql::where_sql(&SqliteDialect, table, Some(partition), &mut params)
    );
    (sql, bound_params(partition, &params))
}

/// A value the row hash function cannot read is the data's problem, like a
/// value `read` cannot decode; anything else stays a SQLite error.
fn hash_error(table: &str, e: rusqlite::Error) -> ConnectorError {
    let msg = e.to_string();
    if msg.contains("cannot hash value") {
        ConnectorError::Value(format!("hashing rows of {table}: {msg}"))
    } else {
        ConnectorError::from(e)
    }
}

fn async_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<RecordBatch>>,
) -> impl futures_util::Stream<Item = Result<RecordBatch>> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

fn finish_batch(
    schema: &SchemaRef,
    specs: &[ColumnSpec],
    decoders: &mut [ColumnDecoder],
) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = decoders.iter_mut().map(|d| d.finish()).collect();
    let batch = crate::conform::keyed_batch(schema.clone(), arrays, specs)?;
    check_fits(&batch, specs)?;
    Ok(batch)
}

fn sqlite_row_key(row: &rusqlite::Row<'_>, specs: &[ColumnSpec]) -> String {
    specs
        .iter()
        .enumerate()
        .filter(|(_, c)| c.unique)
        .map(|(i, c)| {
            let v = match row.get_ref(i) {
                Ok(ValueRef::Null) => "NULL".to_string(),
                Ok(ValueRef::Integer(n)) => n.to_string(),
                Ok(ValueRef::Real(f)) => f.to_string(),
                Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                Ok(ValueRef::Blob(b)) => format!("<{} bytes>", b.len()),
                Err(_) => "?".to_string(),
            };
            format!("{}={v}", c.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
