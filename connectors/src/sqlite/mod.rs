//! SQLite source and sink: the embedded default that needs no server.
//!
//! rusqlite is blocking, so each connection lives on a thread of its own
//! (`thread.rs`) and every call is sent there.

pub mod codec;
mod thread;

use std::path::{Path, PathBuf};

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use async_trait::async_trait;
use futures_util::StreamExt;
use planner::datastores::Datastore;
use planner::model::{quote_ident, MappedColumn, TableRef};
use planner::partition::{
    format_micros, ColumnBounds, Partition, PartitionDimension, PartitionValue,
};
use planner::types::{arrow_schema, ColumnSpec, ColumnType, PartitionKind};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::conform::{check_fits, value_error};
use crate::sql;
use crate::traits::{
    BatchStream, BucketChecksum, Buckets, Checkpoint, Checksum, RunIdentity, Sink, Source,
    WriteStats,
};
use crate::{ConnectorError, Result};
use codec::{ColumnDecoder, ColumnEncoder};
use thread::ConnectionThread;

pub const CHECKPOINT_TABLE: &str = "_synchub_checkpoints";
const STAGE_TABLE: &str = "_synchub_stage";

fn datastore_path(ds: &Datastore) -> Result<PathBuf> {
    match ds {
        Datastore::Sqlite { path, .. } => Ok(path.clone()),
        other => Err(ConnectorError::Other(format!(
            "datastore \"{}\" is not sqlite",
            other.name()
        ))),
    }
}

/// Opens a SQLite file. Sources must exist; sinks may create it.
pub fn open_connection(path: &Path, create: bool) -> Result<Connection> {
    if create {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                ConnectorError::Unreachable(format!(
                    "cannot create folder {} for SQLite database: {e}",
                    dir.display()
                ))
            })?;
        }
    } else if !path.exists() {
        return Err(ConnectorError::Unreachable(format!(
            "SQLite database {} does not exist",
            path.display()
        )));
    }
    let flags = if create {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        ConnectorError::Unreachable(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // By default SQLite reads a double-quoted name that matches no column as
    // a string literal: a misspelt source column would copy its own name into
    // every row. Quoted identifiers must be identifiers.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    if create {
        // WAL lets readers (and `synchub` checks) run beside a writer.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    Ok(conn)
}

/// A partition bound as SQLite compares it: integers as such, datetimes as
/// the canonical text SyncHub stores (so text order is time order).
fn bound_value(v: PartitionValue, date_only: bool) -> Value {
    match v {
        PartitionValue::Int(i) => Value::Integer(i),
        PartitionValue::Micros(m) => {
            let text = format_micros(m);
            if date_only {
                // Whole days, rounded up: for dates `d >= ceil(b)` equals `d >= b`.
                let day = 86_400_000_000i64;
                let up = m.div_euclid(day) * day + if m.rem_euclid(day) != 0 { day } else { 0 };
                Value::Text(format_micros(up)[..10].to_string())
            } else {
                // format_micros gives 2024-01-15T12:00:00[.ffffff]; stored form uses a space and 6 digits.
                let (date, time) = text.split_once('T').unwrap_or((&text, "00:00:00"));
                let time = if time.len() == 8 {
                    format!("{time}.000000")
                } else {
                    time.to_string()
                };
                Value::Text(format!("{date} {time}"))
            }
        }
    }
}

fn bound_params(partition: &Partition, params: &[PartitionValue]) -> Vec<Value> {
    // where_sql pushes two values per Range dimension, in dimension order.
    let mut out = Vec::with_capacity(params.len());
    let mut it = params.iter();
    for (dim, range) in &partition.ranges {
        if matches!(range, planner::partition::DimRange::Range { .. }) {
            for _ in 0..2 {
                if let Some(v) = it.next() {
                    out.push(bound_value(*v, dim.date_only));
                }
            }
        }
    }
    out
}

pub struct SqliteSource {
    conn: ConnectionThread,
    table: TableRef,
    columns: Vec<MappedColumn>,
    specs: Vec<ColumnSpec>,
}

impl SqliteSource {
    pub async fn open(table: &TableRef, columns: &[MappedColumn]) -> Result<SqliteSource> {
        let path = datastore_path(&table.datastore)?;
        let conn = ConnectionThread::open(&path, false).await?;
        let specs: Vec<ColumnSpec> = columns.iter().map(|c| c.spec.clone()).collect();
        Ok(SqliteSource {
            conn,
            table: table.clone(),
            columns: columns.to_vec(),
            specs,
        })
    }
}

#[async_trait]
impl Source for SqliteSource {
    async fn check(&mut self) -> Result<()> {
        let probe = sql::probe_sql(&self.table, &self.columns);
        let table = self.table.display_name();
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

    async fn bounds(&mut self, dims: &[PartitionDimension]) -> Result<Vec<ColumnBounds>> {
        if dims.is_empty() {
            return Ok(Vec::new());
        }
        let q = sql::bounds_sql(&self.table, dims, sql::sqlite_placeholder);
        let dims = dims.to_vec();
        self.conn
            .run(move |conn| {
                let mut stmt = conn.prepare(&q)?;
                let mut rows = stmt.query([])?;
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

    async fn read<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        let (q, params) = sql::select_partition_sql(
            &self.table,
            &self.columns,
            partition,
            sql::sqlite_placeholder,
        );
        let params = bound_params(partition, &params);
        Ok(self.stream(q, params, page_rows))
    }

    async fn read_keys<'a>(
        &'a mut self,
        partition: &Partition,
        keys: &RecordBatch,
        page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        // One integer key: `key IN` the keys bound as one JSON array.
        let Some(sql::KeySelect {
            sql: q,
            params,
            keys: values,
        }) = sql::select_by_integer_key(
            &self.table,
            &self.columns,
            partition,
            sql::sqlite_placeholder,
            keys,
            |key, n| format!("{key} IN (SELECT value FROM json_each(?{n}))"),
        )?
        else {
            return Ok(None);
        };
        let mut params = bound_params(partition, &params);
        params.push(Value::Text(
            serde_json::to_string(&values).map_err(|e| ConnectorError::Other(e.to_string()))?,
        ));
        Ok(Some(self.stream(q, params, page_rows)))
    }

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
            .map(|c| c.source_sql.clone())
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
    let bucket = sql::bucket_expr(
        &format!("CAST({column} AS INTEGER)"),
        &sql::sqlite_placeholder(n + 1),
        &sql::sqlite_placeholder(n + 2),
    );
    params.push(Value::Integer(buckets.origin));
    params.push(Value::Integer(buckets.width));
    let from_where = match which {
        // The partition's ranges make a WHERE clause (`bucket_column`).
        Some(which) => {
            let list = serde_json::to_string(which).unwrap_or_else(|_| "[]".into());
            params.push(Value::Text(list));
            format!(
                "{from_where} AND {bucket} IN (SELECT value FROM json_each({}))",
                sql::sqlite_placeholder(n + 3)
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
    conn: ConnectionThread,
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
        sql::from_sql(table),
        sql::where_sql(table, Some(partition), sql::sqlite_placeholder, &mut params)
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

fn bound_from_sqlite(dim: &PartitionDimension, v: ValueRef<'_>) -> Result<Option<PartitionValue>> {
    if v == ValueRef::Null {
        return Ok(None);
    }
    match dim.kind {
        PartitionKind::Integer => match v {
            ValueRef::Integer(i) => Ok(Some(PartitionValue::Int(i))),
            other => Err(ConnectorError::Schema(format!(
                "partition column {} holds {:?}, not an integer",
                dim.source_expr,
                other.data_type()
            ))),
        },
        PartitionKind::Datetime => {
            let ty = if dim.date_only {
                ColumnType::Date
            } else {
                ColumnType::Timestamp
            };
            let mut dec = ColumnDecoder::new(&ty);
            dec.push(v).map_err(|e| {
                ConnectorError::Schema(format!("partition column {}: {e}", dim.source_expr))
            })?;
            let array = dec.finish();
            let micros = if dim.date_only {
                array
                    .as_primitive::<arrow::datatypes::Date32Type>()
                    .value(0) as i64
                    * 86_400_000_000
            } else {
                array.as_primitive::<TimestampMicrosecondType>().value(0)
            };
            Ok(Some(PartitionValue::Micros(micros)))
        }
    }
}

pub struct SqliteSink {
    conn: ConnectionThread,
    table: String,
    specs: Vec<ColumnSpec>,
    /// Rows deleted in the open partition.
    deleted: u64,
    /// The open partition: deletes take only rows still inside it.
    open_partition: Option<Partition>,
    /// The table held no rows when `prepare` ran, so partitions are written
    /// straight into it: a partition not yet committed holds no rows there.
    empty_at_start: bool,
    /// Rows written into the open partition.
    written: u64,
    /// `Sink::table_identity`, read by `prepare`.
    identity: String,
}

impl SqliteSink {
    pub async fn open(table: &TableRef, columns: &[ColumnSpec]) -> Result<SqliteSink> {
        let path = datastore_path(&table.datastore)?;
        let conn = ConnectionThread::open(&path, true).await?;
        Ok(SqliteSink {
            conn,
            table: table.table.clone(),
            specs: columns.to_vec(),
            deleted: 0,
            open_partition: None,
            empty_at_start: false,
            written: 0,
            identity: String::new(),
        })
    }
}

/// A failed insert of `row`: a key that is already there (in the table
/// loaded from empty, or in the partition's stage) means two source rows
/// share it.
fn insert_error(
    e: rusqlite::Error,
    batch: &RecordBatch,
    specs: &[ColumnSpec],
    row: usize,
) -> ConnectorError {
    let on_key = match &e {
        // "UNIQUE constraint failed: items.id, items.day"
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let mut failed: Vec<&str> = msg
                .split_once(": ")
                .map(|(_, cols)| {
                    cols.split(", ")
                        .map(|c| c.rsplit('.').next().unwrap_or(c))
                        .collect()
                })
                .unwrap_or_default();
            let mut keys: Vec<&str> = specs
                .iter()
                .filter(|c| c.unique)
                .map(|c| c.name.as_str())
                .collect();
            failed.sort_unstable();
            keys.sort_unstable();
            failed == keys
        }
        _ => false,
    };
    if on_key {
        crate::conform::duplicate_key(&format!(
            "two source rows have the key {}",
            crate::conform::row_key(batch, specs, row)
        ))
    } else {
        e.into()
    }
}

fn key_list(specs: &[ColumnSpec]) -> String {
    specs
        .iter()
        .filter(|c| c.unique)
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn prepare_table(conn: &Connection, table: &str, specs: &[ColumnSpec]) -> Result<()> {
    let qt = quote_ident(table);
    let existing: Vec<(String, String, i64)> = conn
        .prepare(&format!("PRAGMA table_info({qt})"))?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if existing.is_empty() {
        let cols = specs
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    quote_ident(&c.name),
                    codec::sqlite_type_ddl(&c.data_type),
                    if c.unique { " NOT NULL" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {qt} ({cols}, PRIMARY KEY ({}))",
            key_list(specs)
        ))?;
    } else {
        let mut problems = Vec::new();
        for c in specs {
            match existing.iter().find(|(n, _, _)| *n == c.name) {
                None => problems.push(format!(
                    "has no column \"{}\"; add it (ALTER TABLE {qt} ADD COLUMN {} {}) or drop the table so SyncHub creates it",
                    c.name,
                    quote_ident(&c.name),
                    codec::sqlite_type_ddl(&c.data_type)
                )),
                Some((_, declared, _)) if !codec::sqlite_type_compatible(&c.data_type, declared) => problems.push(format!(
                    "column \"{}\" is {declared}, but the pipeline maps it as {}; alter the column or change data_type",
                    c.name, c.data_type
                )),
                _ => {}
            }
        }
        if !problems.is_empty() {
            return Err(ConnectorError::Schema(format!(
                "destination table {qt} {}",
                problems.join("; ")
            )));
        }
        let mut keys: Vec<&str> = specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| c.name.as_str())
            .collect();
        keys.sort();
        let mut pk: Vec<&str> = existing
            .iter()
            .filter(|(_, _, p)| *p > 0)
            .map(|(n, _, _)| n.as_str())
            .collect();
        pk.sort();
        let mut covered = pk == keys;
        if !covered {
            let indexes: Vec<(String, bool)> = conn
                .prepare(&format!("PRAGMA index_list({qt})"))?
                .query_map([], |r| {
                    Ok((r.get::<_, String>(1)?, r.get::<_, i64>(2)? == 1))
                })?
                .collect::<rusqlite::Result<_>>()?;
            for (name, unique) in indexes.into_iter().filter(|(_, u)| *u) {
                let _ = unique;
                let mut cols: Vec<String> = conn
                    .prepare(&format!("PRAGMA index_info({})", quote_ident(&name)))?
                    .query_map([], |r| r.get::<_, String>(2))?
                    .collect::<rusqlite::Result<_>>()?;
                cols.sort();
                if cols == keys {
                    covered = true;
                }
            }
        }
        if !covered {
            return Err(ConnectorError::Schema(format!(
                "destination table {qt} has no unique index on ({}); upserts need one: CREATE UNIQUE INDEX \"{table}_key\" ON {qt} ({})",
                key_list(specs),
                key_list(specs)
            )));
        }
    }
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (pipeline TEXT NOT NULL, strategy TEXT NOT NULL, \
         run_id TEXT NOT NULL, partition_id TEXT NOT NULL, rows INTEGER NOT NULL, committed_at TEXT NOT NULL, \
         fingerprint TEXT, table_identity TEXT, \
         PRIMARY KEY (pipeline, strategy, run_id, partition_id))"
    ))?;
    // Checkpoint tables of SyncHub before 0.2 lack the two columns; their
    // rows then match no run, which starts over.
    let present: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM pragma_table_info('{CHECKPOINT_TABLE}') \
             WHERE name IN ('fingerprint', 'table_identity')"
        ),
        [],
        |r| r.get(0),
    )?;
    if present < 2 {
        conn.execute_batch(&format!(
            "ALTER TABLE {CHECKPOINT_TABLE} ADD COLUMN fingerprint TEXT; \
             ALTER TABLE {CHECKPOINT_TABLE} ADD COLUMN table_identity TEXT;"
        ))?;
    }
    Ok(())
}

/// The table's root page and a digest of its `CREATE` statement: a table
/// dropped and created again (by hand, or with another definition) mostly
/// gets another of either. SQLite has no TRUNCATE to detect; an emptied
/// table is caught by the caller seeing it empty.
fn table_identity(conn: &Connection, table: &str) -> Result<String> {
    let (root, sql): (i64, String) = conn.query_row(
        "SELECT rootpage, coalesce(sql, '') FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(format!(
        "sqlite:{root}:{:016x}",
        crate::rowhash::row_hash(sql.as_bytes())
    ))
}

#[async_trait]
impl Sink for SqliteSink {
    async fn prepare(&mut self) -> Result<()> {
        let table = self.table.clone();
        let specs = self.specs.clone();
        (self.empty_at_start, self.identity) = self
            .conn
            .run(move |conn| {
                prepare_table(conn, &table, &specs)?;
                let any: bool = conn.query_row(
                    &format!("SELECT EXISTS (SELECT 1 FROM {})", quote_ident(&table)),
                    [],
                    |r| r.get(0),
                )?;
                Ok((!any, table_identity(conn, &table)?))
            })
            .await?;
        Ok(())
    }

    fn started_empty(&self) -> bool {
        self.empty_at_start
    }

    fn table_identity(&self) -> String {
        self.identity.clone()
    }

    async fn checkpoints(&mut self, run: &RunIdentity) -> Result<Vec<Checkpoint>> {
        let run = run.clone();
        self.conn
            .run(move |conn| {
                let mut stmt = conn.prepare(&format!(
                "SELECT partition_id, rows, fingerprint, table_identity FROM {CHECKPOINT_TABLE} \
                 WHERE pipeline = ?1 AND strategy = ?2 AND run_id = ?3"
            ))?;
                let checkpoints = stmt
                    .query_map([&run.pipeline, &run.strategy, &run.run_id], |r| {
                        Ok(Checkpoint {
                            partition_id: r.get(0)?,
                            rows: r.get::<_, i64>(1)?.max(0) as u64,
                            fingerprint: r.get(2)?,
                            table_identity: r.get(3)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(checkpoints)
            })
            .await
    }

    async fn begin_partition(&mut self, partition: &Partition) -> Result<()> {
        self.open_partition = Some(partition.clone());
        self.written = 0;
        if self.empty_at_start {
            return self
                .conn
                .run(|conn| Ok(conn.execute_batch("BEGIN IMMEDIATE")?))
                .await;
        }
        let specs = self.specs.clone();
        self.conn.run(move |conn| {
            let cols = specs
                .iter()
                .map(|c| format!("{} {}", quote_ident(&c.name), codec::sqlite_type_ddl(&c.data_type)))
                .collect::<Vec<_>>()
                .join(", ");
            // Unique on the key: two source rows with one key fail here (and
            // are reported by key) instead of one silently replacing the
            // other in the merge. UNIQUE, not PRIMARY KEY: an INTEGER
            // primary key would be the rowid and turn a NULL key into a new
            // number.
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} ({cols}, UNIQUE ({})); DELETE FROM temp.{STAGE_TABLE};",
                key_list(&specs)
            ))?;
            Ok(())
        })
        .await
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let specs = self.specs.clone();
        let batch = batch.clone();
        self.written += batch.num_rows() as u64;
        let target = if self.empty_at_start {
            let cols = specs
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{} ({cols})", quote_ident(&self.table))
        } else {
            format!("temp.{STAGE_TABLE}")
        };
        self.conn
            .run(move |conn| {
                let placeholders = (1..=specs.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut stmt =
                    conn.prepare_cached(&format!("INSERT INTO {target} VALUES ({placeholders})"))?;
                let encoders = specs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ColumnEncoder::new(batch.column(i), &c.data_type))
                    .collect::<Result<Vec<_>>>()?;
                // Bound in place: formatted values (decimals, dates, timestamps)
                // are written into one scratch buffer that SQLite copies from.
                // (Rows in groups of 64 a statement measured 3.5% fewer
                // instructions, and need a statement journal; not worth it.)
                let mut scratch = codec::TextBuf::new();
                for row in 0..batch.num_rows() {
                    for (i, enc) in encoders.iter().enumerate() {
                        if let Err(e) = enc.bind(&mut stmt, i + 1, row, &mut scratch) {
                            return Err(value_error(
                                &batch,
                                &specs,
                                row,
                                &specs[i].name,
                                &e.to_string(),
                            ));
                        }
                    }
                    if let Err(e) = stmt.raw_execute() {
                        return Err(insert_error(e, &batch, &specs, row));
                    }
                }
                Ok(())
            })
            .await
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<()> {
        let table = quote_ident(&self.table);
        let key_specs: Vec<ColumnSpec> = self.specs.iter().filter(|c| c.unique).cloned().collect();
        let keys = keys.clone();
        // Only rows still inside the open partition (see the PostgreSQL sink).
        let mut bounds = Vec::new();
        let scope = match &self.open_partition {
            Some(p) => {
                let nkeys = key_specs.len();
                let conds = sql::destination_range_conditions(
                    p,
                    &table,
                    |n| sql::sqlite_placeholder(n + nkeys),
                    &mut bounds,
                );
                let bounds = bound_params(p, &bounds);
                (conds, bounds)
            }
            None => (Vec::new(), Vec::new()),
        };
        let deleted = self
            .conn
            .run(move |conn| {
                let (scope, bounds) = scope;
                let cond = key_specs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} = ?{}", quote_ident(&c.name), i + 1))
                    .chain(scope)
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let mut stmt = conn.prepare_cached(&format!("DELETE FROM {table} WHERE {cond}"))?;
                let encoders = key_specs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ColumnEncoder::new(keys.column(i), &c.data_type))
                    .collect::<Result<Vec<_>>>()?;
                let mut deleted = 0u64;
                for row in 0..keys.num_rows() {
                    let mut values = encoders
                        .iter()
                        .map(|e| e.value(row))
                        .collect::<Result<Vec<_>>>()?;
                    values.extend(bounds.iter().cloned().map(ToSqlOutput::Owned));
                    deleted += stmt.execute(rusqlite::params_from_iter(values.iter()))? as u64;
                }
                Ok(deleted)
            })
            .await?;
        self.deleted += deleted;
        Ok(())
    }

    async fn abort_partition(&mut self) -> Result<()> {
        self.deleted = 0;
        self.written = 0;
        self.conn
            .run(|conn| {
                if !conn.is_autocommit() {
                    conn.execute_batch("ROLLBACK")?;
                }
                Ok(())
            })
            .await
    }

    async fn commit_partition(
        &mut self,
        run: &RunIdentity,
        partition: &Partition,
    ) -> Result<WriteStats> {
        let specs = self.specs.clone();
        let table = quote_ident(&self.table);
        let run = run.clone();
        let identity = self.identity.clone();
        let partition_id = partition.id.clone();
        let deleted = std::mem::take(&mut self.deleted);
        let direct = self
            .empty_at_start
            .then_some(std::mem::take(&mut self.written) as i64);
        let mut stats = self.conn.run(move |conn| {
            let record_checkpoint = |conn: &Connection, rows: i64| {
                conn.execute(
                    &format!(
                        "INSERT INTO {CHECKPOINT_TABLE} (pipeline, strategy, run_id, partition_id, rows, committed_at, fingerprint, table_identity) \
                         VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?6, ?7) \
                         ON CONFLICT (pipeline, strategy, run_id, partition_id) DO UPDATE SET rows = excluded.rows, \
                         fingerprint = excluded.fingerprint, table_identity = excluded.table_identity"
                    ),
                    rusqlite::params![run.pipeline, run.strategy, run.run_id, partition_id, rows, run.fingerprint, identity],
                )
            };
            if let Some(written) = direct {
                record_checkpoint(conn, written)?;
                conn.execute_batch("COMMIT")?;
                return Ok(WriteStats {
                    inserted: written as u64,
                    ..WriteStats::default()
                });
            }
            let keys: Vec<String> = specs.iter().filter(|c| c.unique).map(|c| quote_ident(&c.name)).collect();
            let cols: Vec<String> = specs.iter().map(|c| quote_ident(&c.name)).collect();
            let col_list = cols.join(", ");
            let staged: i64 = conn.query_row(&format!("SELECT count(*) FROM temp.{STAGE_TABLE}"), [], |r| r.get(0))?;
            let key_match = keys.iter().map(|k| format!("t.{k} = s.{k}")).collect::<Vec<_>>().join(" AND ");
            let inserted: i64 = conn.query_row(
                &format!("SELECT count(*) FROM temp.{STAGE_TABLE} s WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {key_match})"),
                [],
                |r| r.get(0),
            )?;
            let non_keys: Vec<&String> = specs.iter().zip(&cols).filter(|(c, _)| !c.unique).map(|(_, q)| q).collect();
            let conflict = if non_keys.is_empty() {
                "DO NOTHING".to_string()
            } else {
                let set = non_keys.iter().map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", ");
                let old = non_keys.iter().map(|c| format!("{table}.{c}")).collect::<Vec<_>>().join(", ");
                let new = non_keys.iter().map(|c| format!("excluded.{c}")).collect::<Vec<_>>().join(", ");
                format!("DO UPDATE SET {set} WHERE ({old}) IS NOT ({new})")
            };
            // `WHERE true` resolves SQLite's parse ambiguity between a join's ON and ON CONFLICT.
            let changed = conn.execute(
                &format!(
                    "INSERT INTO {table} ({col_list}) SELECT {col_list} FROM temp.{STAGE_TABLE} WHERE true ON CONFLICT ({}) {conflict}",
                    keys.join(", ")
                ),
                [],
            )? as i64;
            record_checkpoint(conn, staged)?;
            conn.execute_batch(&format!("DELETE FROM temp.{STAGE_TABLE}; COMMIT"))?;
            let updated = (changed - inserted).max(0);
            Ok(WriteStats {
                inserted: inserted as u64,
                updated: updated as u64,
                unchanged: (staged - inserted - updated).max(0) as u64,
                deleted: 0,
            })
        })
        .await?;
        stats.deleted = deleted;
        Ok(stats)
    }
}

/// Whether the connection has an open transaction (for tests of failure paths).
pub fn in_transaction(conn: &Connection) -> bool {
    !conn.is_autocommit()
}
