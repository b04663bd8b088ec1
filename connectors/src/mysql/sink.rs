//! The MySQL sink: rows inserted into a temporary staging table with
//! multi-row inserts, merged with `INSERT … ON DUPLICATE KEY UPDATE` and
//! checkpointed in one transaction.

use arrow::array::RecordBatch;
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};
use planner::model::TableRef;
use planner::partition::Partition;
use planner::types::{ColumnSpec, ColumnType};

use super::codec::{encoders, from_sqlite};
use super::connect::{connect, mysql_error, run_all, server_code};
use super::source::{named, partition_values};
use crate::conform::value_error;
use crate::sql::{self, Dialect, MySqlDialect, MYSQL_COLLATION};
use crate::traits::{Checkpoint, RunIdentity, Sink, SinkCapabilities, WriteMode, WriteStats};
use crate::{ConnectorError, Result};

pub const CHECKPOINT_TABLE: &str = "_synchub_checkpoints";
const STAGE_TABLE: &str = "_synchub_stage";
/// Rows per staging insert, at most: MySQL binds at most 65,535 values a
/// statement.
const INSERT_ROWS: usize = 1000;
const MAX_PARAMS: usize = 65_535;
/// Tables SyncHub creates compare text bytewise (see `MYSQL_COLLATION`).
const TABLE_OPTIONS: &str = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

pub struct MySqlSink {
    conn: Conn,
    /// The database the table is in.
    database: String,
    table: String,
    specs: Vec<ColumnSpec>,
    /// Rows deleted in the open partition.
    deleted: u64,
    /// The open partition: deletes take only rows still inside it.
    open_partition: Option<Partition>,
    empty_at_start: bool,
    identity: String,
}

impl MySqlSink {
    pub async fn open(table: &TableRef, columns: &[ColumnSpec]) -> Result<MySqlSink> {
        let database = table
            .schema
            .clone()
            .or_else(|| table.datastore.default_schema().map(str::to_string))
            .unwrap_or_default();
        Ok(MySqlSink {
            conn: connect(&table.datastore).await?,
            database,
            table: table.table.clone(),
            specs: columns.to_vec(),
            deleted: 0,
            open_partition: None,
            empty_at_start: false,
            identity: String::new(),
        })
    }

    fn qualified(&self, table: &str) -> String {
        MySqlDialect.table(Some(&self.database), table)
    }
}

/// A column's definition in the tables SyncHub creates. A key column of
/// unbounded text or bytes is limited to 255 characters (bytes), as an
/// index takes at most 3072 bytes; a longer key fails to insert (strict
/// mode), never cut.
fn column_ddl(c: &ColumnSpec) -> String {
    let ty = match c.data_type {
        ColumnType::Text | ColumnType::String { max_len: None } | ColumnType::Json if c.unique => {
            "VARCHAR(255)".to_string()
        }
        ColumnType::Binary if c.unique => "VARBINARY(255)".to_string(),
        ref t => MySqlDialect.type_ddl(t),
    };
    let collate = match c.data_type {
        ColumnType::Text | ColumnType::String { .. } | ColumnType::Json | ColumnType::Uuid => {
            format!(" COLLATE {MYSQL_COLLATION}")
        }
        _ => String::new(),
    };
    format!(
        "{} {ty}{collate}{}",
        MySqlDialect.quote_ident(&c.name),
        if c.unique { " NOT NULL" } else { "" }
    )
}

impl MySqlSink {
    async fn prepare_table(&mut self) -> Result<()> {
        let qt = self.qualified(&self.table);
        let specs = self.specs.clone();
        let existing: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&self.database, &self.table),
            )
            .await
            .map_err(mysql_error)?;
        if existing.is_empty() {
            let cols: Vec<String> = specs.iter().map(column_ddl).collect();
            self.conn
                .query_drop(format!(
                    "CREATE TABLE IF NOT EXISTS {qt} ({}, PRIMARY KEY ({})) {TABLE_OPTIONS}",
                    cols.join(", "),
                    MySqlDialect.key_list(&specs)
                ))
                .await
                .map_err(mysql_error)?;
        } else {
            let missing: Vec<String> = specs
                .iter()
                .filter(|c| !existing.iter().any(|(n, _)| n.eq_ignore_ascii_case(&c.name)))
                .map(|c| {
                    format!(
                        "has no column \"{}\"; add it (ALTER TABLE {qt} ADD COLUMN {}) or drop the table so SyncHub creates it",
                        c.name,
                        column_ddl(c)
                    )
                })
                .collect();
            if !missing.is_empty() {
                return Err(ConnectorError::Schema(format!(
                    "destination table {qt} {}",
                    missing.join("; ")
                )));
            }
            self.check_unique_index(&qt).await?;
        }
        let checkpoints = self.qualified(CHECKPOINT_TABLE);
        // Keyed by a digest of the four names: their full lengths would not
        // fit one index.
        self.conn
            .query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {checkpoints} (id CHAR(64) NOT NULL PRIMARY KEY, \
                 pipeline VARCHAR(1024) NOT NULL, strategy VARCHAR(64) NOT NULL, \
                 run_id VARCHAR(1024) NOT NULL, partition_id TEXT NOT NULL, `rows` BIGINT NOT NULL, \
                 committed_at DATETIME(6) NOT NULL, fingerprint TEXT, table_identity TEXT) \
                 {TABLE_OPTIONS} COLLATE {MYSQL_COLLATION}"
            ))
            .await
            .map_err(mysql_error)
    }

    /// Upserts need a unique index on exactly the key columns.
    async fn check_unique_index(&mut self, qt: &str) -> Result<()> {
        let rows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0",
                (&self.database, &self.table),
            )
            .await
            .map_err(mysql_error)?;
        let mut keys: Vec<String> = self
            .specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| c.name.to_lowercase())
            .collect();
        keys.sort();
        let mut indexes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (index, column) in rows {
            indexes
                .entry(index)
                .or_default()
                .push(column.to_lowercase());
        }
        let covered = indexes.into_values().any(|mut cols| {
            cols.sort();
            cols == keys
        });
        if covered {
            return Ok(());
        }
        let key_list = MySqlDialect.key_list(&self.specs);
        Err(ConnectorError::Schema(format!(
            "destination table {qt} has no unique index on ({key_list}); upserts need one: \
             ALTER TABLE {qt} ADD UNIQUE KEY ({key_list})"
        )))
    }

    async fn exists_any(&mut self) -> Result<bool> {
        let q = format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            self.qualified(&self.table)
        );
        let any: Option<i64> = self.conn.query_first(q).await.map_err(mysql_error)?;
        Ok(any == Some(1))
    }

    async fn read_identity(&mut self) -> Result<String> {
        // TRUNCATE recreates an InnoDB table, and so does a drop and create:
        // either gives it another creation time.
        let created: Option<Option<String>> = self
            .conn
            .exec_first(
                "SELECT CAST(CREATE_TIME AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&self.database, &self.table),
            )
            .await
            .map_err(mysql_error)?;
        Ok(format!("mysql:{}", created.flatten().unwrap_or_default()))
    }
}

/// A failed staging insert: a key already staged means two source rows
/// share it ("Duplicate entry '7' for key ...").
fn insert_error(e: mysql_async::Error) -> ConnectorError {
    if server_code(&e) == Some(1062) {
        let entry = match &e {
            mysql_async::Error::Server(s) => s.message.split('\'').nth(1).unwrap_or("").to_string(),
            _ => String::new(),
        };
        crate::conform::duplicate_key(&format!("two source rows have the key {entry}"))
    } else {
        mysql_error(e)
    }
}

#[async_trait]
impl Sink for MySqlSink {
    async fn prepare(&mut self) -> Result<()> {
        self.prepare_table().await?;
        self.empty_at_start = !self.exists_any().await?;
        self.identity = self.read_identity().await?;
        Ok(())
    }

    fn started_empty(&self) -> bool {
        self.empty_at_start
    }

    fn table_identity(&self) -> String {
        self.identity.clone()
    }

    async fn checkpoints(&mut self, run: &RunIdentity) -> Result<Vec<Checkpoint>> {
        type CheckpointRow = (String, i64, Option<String>, Option<String>);
        let rows: Vec<CheckpointRow> = self
            .conn
            .exec(
                format!(
                    "SELECT partition_id, `rows`, fingerprint, table_identity FROM {} \
                     WHERE pipeline = ? AND strategy = ? AND run_id = ?",
                    self.qualified(CHECKPOINT_TABLE)
                ),
                (&run.pipeline, &run.strategy, &run.run_id),
            )
            .await
            .map_err(mysql_error)?;
        Ok(rows
            .into_iter()
            .map(
                |(partition_id, rows, fingerprint, table_identity)| Checkpoint {
                    partition_id,
                    rows: rows.max(0) as u64,
                    fingerprint,
                    table_identity,
                },
            )
            .collect())
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            transactional: true,
            upsert: true,
            delete: true,
            single_writer: true,
        }
    }

    /// Equal rows are left alone by the merge itself either way.
    async fn begin_partition(&mut self, partition: &Partition, _mode: WriteMode) -> Result<()> {
        self.open_partition = Some(partition.clone());
        self.deleted = 0;
        let stage = self.qualified(STAGE_TABLE);
        let cols: Vec<String> = self.specs.iter().map(column_ddl).collect();
        // Unique on the key: two source rows with one key fail here (and are
        // reported by key) instead of one silently replacing the other. A
        // temporary table is this connection's own, and creating or
        // emptying it commits nothing.
        run_all(
            &mut self.conn,
            &[
                format!(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ({}, UNIQUE KEY ({})) {TABLE_OPTIONS}",
                    cols.join(", "),
                    MySqlDialect.key_list(&self.specs)
                ),
                format!("DELETE FROM {stage}"),
                "START TRANSACTION".to_string(),
            ],
        )
        .await
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let encoders = encoders(batch, &self.specs)?;
        let width = self.specs.len().max(1);
        let per_insert = INSERT_ROWS.min(MAX_PARAMS / width).max(1);
        let stage = self.qualified(STAGE_TABLE);
        let row_marks = format!("({})", vec!["?"; self.specs.len()].join(", "));
        let mut start = 0;
        while start < batch.num_rows() {
            let end = (start + per_insert).min(batch.num_rows());
            let mut values = Vec::with_capacity((end - start) * width);
            for row in start..end {
                for (i, enc) in encoders.iter().enumerate() {
                    let v = enc.value(row).map_err(|e| {
                        value_error(batch, &self.specs, row, &self.specs[i].name, &e.to_string())
                    })?;
                    values.push(from_sqlite(v));
                }
            }
            let q = format!(
                "INSERT INTO {stage} VALUES {}",
                vec![row_marks.as_str(); end - start].join(", ")
            );
            self.conn
                .exec_drop(q, Params::Positional(values))
                .await
                .map_err(insert_error)?;
            start = end;
        }
        Ok(())
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<()> {
        let table = self.qualified(&self.table);
        let key_specs: Vec<ColumnSpec> = self.specs.iter().filter(|c| c.unique).cloned().collect();
        // Only rows still inside the open partition (see the PostgreSQL sink).
        let mut bounds = Vec::new();
        let (scope, bound_values) = match &self.open_partition {
            Some(p) => {
                let p = &sql::destination_scope(p, &self.specs);
                let conds = sql::destination_range_conditions(
                    &MySqlDialect,
                    p,
                    &table,
                    key_specs.len(),
                    &mut bounds,
                );
                (conds, partition_values(p, &bounds))
            }
            None => (Vec::new(), Vec::new()),
        };
        let cond = key_specs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "{table}.{} = {}",
                    MySqlDialect.quote_ident(&c.name),
                    MySqlDialect.placeholder(i + 1)
                )
            })
            .chain(scope)
            .collect::<Vec<_>>()
            .join(" AND ");
        let q = format!("DELETE FROM {table} WHERE {cond}");
        let encoders = encoders(keys, &key_specs)?;
        for row in 0..keys.num_rows() {
            let mut values = encoders
                .iter()
                .map(|e| e.value(row).map(from_sqlite))
                .collect::<Result<Vec<Value>>>()?;
            values.extend(bound_values.iter().cloned());
            self.conn
                .exec_drop(q.as_str(), named(values))
                .await
                .map_err(mysql_error)?;
            self.deleted += self.conn.affected_rows();
        }
        Ok(())
    }

    async fn abort_partition(&mut self) -> Result<()> {
        self.deleted = 0;
        self.open_partition = None;
        self.conn.query_drop("ROLLBACK").await.map_err(mysql_error)
    }

    async fn commit_partition(
        &mut self,
        run: &RunIdentity,
        partition: &Partition,
    ) -> Result<WriteStats> {
        let table = self.qualified(&self.table);
        let stage = self.qualified(STAGE_TABLE);
        let cols = MySqlDialect.column_list(&self.specs);
        let staged: Option<i64> = self
            .conn
            .query_first(format!("SELECT COUNT(*) FROM {stage}"))
            .await
            .map_err(mysql_error)?;
        let staged = staged.unwrap_or(0);
        let key_match = MySqlDialect.keys_equal("t", "s", &self.specs);
        let inserted: Option<i64> = self
            .conn
            .query_first(format!(
                "SELECT COUNT(*) FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {key_match})"
            ))
            .await
            .map_err(mysql_error)?;
        let inserted = inserted.unwrap_or(0);
        // Every column set to the staged value: InnoDB writes nothing for a
        // row whose values are all equal, and counts it as unaffected (0);
        // an inserted row counts 1, an updated one 2.
        let set = self
            .specs
            .iter()
            .filter(|c| !c.unique)
            .map(|c| {
                let q = MySqlDialect.quote_ident(&c.name);
                format!("{q} = VALUES({q})")
            })
            .collect::<Vec<_>>();
        let set = if set.is_empty() {
            let k = self
                .specs
                .iter()
                .find(|c| c.unique)
                .map(|c| MySqlDialect.quote_ident(&c.name))
                .unwrap_or_default();
            format!("{k} = {k}")
        } else {
            set.join(", ")
        };
        self.conn
            .query_drop(format!(
                "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON DUPLICATE KEY UPDATE {set}"
            ))
            .await
            .map_err(mysql_error)?;
        let affected = self.conn.affected_rows() as i64;
        let updated = ((affected - inserted) / 2).max(0);
        self.conn
            .exec_drop(
                format!(
                    "INSERT INTO {} (id, pipeline, strategy, run_id, partition_id, `rows`, committed_at, fingerprint, table_identity) \
                     VALUES (SHA2(CONCAT_WS(CHAR(31), :pipeline, :strategy, :run_id, :partition_id), 256), \
                     :pipeline, :strategy, :run_id, :partition_id, :rows, UTC_TIMESTAMP(6), :fingerprint, :identity) \
                     ON DUPLICATE KEY UPDATE `rows` = VALUES(`rows`), fingerprint = VALUES(fingerprint), \
                     table_identity = VALUES(table_identity), committed_at = VALUES(committed_at)",
                    self.qualified(CHECKPOINT_TABLE)
                ),
                Params::Named(
                    [
                        ("pipeline", Value::from(&run.pipeline)),
                        ("strategy", Value::from(&run.strategy)),
                        ("run_id", Value::from(&run.run_id)),
                        ("partition_id", Value::from(&partition.id)),
                        ("rows", Value::from(staged)),
                        ("fingerprint", Value::from(&run.fingerprint)),
                        ("identity", Value::from(&self.identity)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v))
                    .collect(),
                ),
            )
            .await
            .map_err(mysql_error)?;
        run_all(
            &mut self.conn,
            &["COMMIT".to_string(), format!("DELETE FROM {stage}")],
        )
        .await?;
        self.open_partition = None;
        Ok(WriteStats {
            inserted: inserted as u64,
            updated: updated as u64,
            unchanged: (staged - inserted - updated).max(0) as u64,
            deleted: std::mem::take(&mut self.deleted),
        })
    }
}
