//! The SQLite sink: rows inserted into a staging table (or straight into a
//! table that started empty), merged and checkpointed in one transaction.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use planner::model::TableRef;
use planner::partition::Partition;
use planner::types::ColumnSpec;
use rusqlite::types::ToSqlOutput;
use rusqlite::Connection;

use super::codec::{self, ColumnEncoder};
use super::connect::datastore_path;
use super::log_folder::LogFolder;
use super::params::bound_params;
use super::thread::ConnectionThread;
use crate::conform::value_error;
use crate::sql::{self, Dialect, SqliteDialect};
use crate::traits::{Checkpoint, RunIdentity, Sink, SinkCapabilities, WriteMode, WriteStats};
use crate::{ConnectorError, Result};

pub const CHECKPOINT_TABLE: &str = "_synchub_checkpoints";
const STAGE_TABLE: &str = "_synchub_stage";

pub struct SqliteSink {
    conn: ConnectionThread<ConnectorError>,
    table: String,
    specs: Vec<ColumnSpec>,
    /// Rows deleted in the open partition.
    deleted: u64,
    /// The open partition replaces the table's rows (`WriteMode::Replace`).
    replace: bool,
    /// The open partition: deletes take only rows still inside it.
    open_partition: Option<Partition>,
    /// The table held no rows when `prepare` ran, so partitions are written
    /// straight into it: a partition not yet committed holds no rows there.
    empty_at_start: bool,
    /// Rows written into the open partition.
    written: u64,
    /// `Sink::table_identity`, read by `prepare`.
    identity: String,
    path: PathBuf,
    /// Checkpoints beside the writer, once `prepare` found a write-ahead log.
    log_folder: Option<LogFolder>,
}

impl SqliteSink {
    pub async fn open(table: &TableRef, columns: &[ColumnSpec]) -> Result<SqliteSink> {
        let path = datastore_path(&table.datastore)?;
        let conn = super::connect::open_on_thread(&path, true).await?;
        Ok(SqliteSink {
            conn,
            table: table.table.clone(),
            specs: columns.to_vec(),
            deleted: 0,
            replace: false,
            open_partition: None,
            empty_at_start: false,
            written: 0,
            identity: String::new(),
            path,
            log_folder: None,
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
    SqliteDialect.key_list(specs)
}

fn prepare_table(conn: &Connection, table: &str, specs: &[ColumnSpec]) -> Result<()> {
    let qt = SqliteDialect.quote_ident(table);
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
                    SqliteDialect.quote_ident(&c.name),
                    SqliteDialect.type_ddl(&c.data_type),
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
                    SqliteDialect.quote_ident(&c.name),
                    SqliteDialect.type_ddl(&c.data_type)
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
                    .prepare(&format!(
                        "PRAGMA index_info({})",
                        SqliteDialect.quote_ident(&name)
                    ))?
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
        let write_ahead;
        (self.empty_at_start, self.identity, write_ahead) = self
            .conn
            .run(move |conn| {
                prepare_table(conn, &table, &specs)?;
                let any: bool = conn.query_row(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {})",
                        SqliteDialect.quote_ident(&table)
                    ),
                    [],
                    |r| r.get(0),
                )?;
                let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let write_ahead = mode.eq_ignore_ascii_case("wal");
                if write_ahead {
                    // The log folder checkpoints instead (see log_folder.rs).
                    conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
                }
                Ok((!any, table_identity(conn, &table)?, write_ahead))
            })
            .await?;
        if write_ahead {
            self.log_folder = Some(LogFolder::open(&self.path).await?);
        }
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

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            transactional: true,
            upsert: true,
            delete: true,
            single_writer: true,
        }
    }

    /// Equal rows are found by the merge itself either way.
    fn can_replace(&self) -> bool {
        true
    }

    async fn begin_partition(&mut self, partition: &Partition, mode: WriteMode) -> Result<()> {
        self.replace = mode == WriteMode::Replace;
        if let Some(folder) = self.log_folder.as_mut() {
            folder.before_begin().await?;
        }
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
                .map(|c| format!("{} {}", SqliteDialect.quote_ident(&c.name), SqliteDialect.type_ddl(&c.data_type)))
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
        if let Some(folder) = self.log_folder.as_mut() {
            folder.wrote(batch.get_array_memory_size());
        }
        let batch = batch.clone();
        self.written += batch.num_rows() as u64;
        let target = if self.empty_at_start {
            let cols = SqliteDialect.column_list(&specs);
            format!("{} ({cols})", SqliteDialect.quote_ident(&self.table))
        } else {
            format!("temp.{STAGE_TABLE}")
        };
        self.conn
            .run(move |conn| {
                let placeholders = (1..=specs.len())
                    .map(|i| SqliteDialect.placeholder(i))
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
        let table = SqliteDialect.quote_ident(&self.table);
        let key_specs: Vec<ColumnSpec> = self.specs.iter().filter(|c| c.unique).cloned().collect();
        let keys = keys.clone();
        // Only rows still inside the open partition (see the PostgreSQL sink).
        let mut bounds = Vec::new();
        let scope = match &self.open_partition {
            Some(p) => {
                // The ranges are on the destination's own columns, so their
                // own types say how a bound compares: a `date` column holds
                // '2024-03-01', which text order puts before the bound
                // '2024-03-01 00:00:00' that a timestamp source column's range
                // starts with (an aggregate's day key).
                let mut p = sql::destination_scope(p, &self.specs);
                for (dim, _) in &mut p.ranges {
                    dim.date_only = self.specs.iter().any(|c| {
                        c.name == dim.name && c.data_type == planner::types::ColumnType::Date
                    });
                }
                let p = &p;
                let nkeys = key_specs.len();
                let conds = sql::destination_range_conditions(
                    &SqliteDialect,
                    p,
                    &table,
                    nkeys,
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
                    .map(|(i, c)| {
                        format!(
                            "{} = {}",
                            SqliteDialect.quote_ident(&c.name),
                            SqliteDialect.placeholder(i + 1)
                        )
                    })
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
        let table = SqliteDialect.quote_ident(&self.table);
        let run = run.clone();
        let identity = self.identity.clone();
        let partition_id = partition.id.clone();
        let deleted = std::mem::take(&mut self.deleted);
        let replace = std::mem::take(&mut self.replace);
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
            let keys: Vec<String> = specs.iter().filter(|c| c.unique).map(|c| SqliteDialect.quote_ident(&c.name)).collect();
            let cols: Vec<String> = specs.iter().map(|c| SqliteDialect.quote_ident(&c.name)).collect();
            let col_list = cols.join(", ");
            let staged: i64 = conn.query_row(&format!("SELECT count(*) FROM temp.{STAGE_TABLE}"), [], |r| r.get(0))?;
            let key_match = SqliteDialect.keys_equal("t", "s", &specs);
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
            // Replacing: the rows the stage lacks are no longer the table's.
            let replaced = if replace {
                conn.execute(
                    &format!("DELETE FROM {table} AS t WHERE NOT EXISTS (SELECT 1 FROM temp.{STAGE_TABLE} s WHERE {key_match})"),
                    [],
                )? as u64
            } else {
                0
            };
            record_checkpoint(conn, staged)?;
            conn.execute_batch(&format!("DELETE FROM temp.{STAGE_TABLE}; COMMIT"))?;
            let updated = (changed - inserted).max(0);
            Ok(WriteStats {
                inserted: inserted as u64,
                updated: updated as u64,
                unchanged: (staged - inserted - updated).max(0) as u64,
                deleted: replaced,
            })
        })
        .await?;
        stats.deleted += deleted;
        if let Some(folder) = self.log_folder.as_mut() {
            folder.after_commit()?;
        }
        Ok(stats)
    }

    /// The last pages of the load folded into the file before the run ends.
    async fn finish(&mut self) -> Result<()> {
        match self.log_folder.as_mut() {
            Some(folder) => folder.fold_all_and_empty().await,
            None => Ok(()),
        }
    }
}
