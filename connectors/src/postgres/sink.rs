//! The PostgreSQL sink: binary COPY into a staging table (or straight into a
//! table that started empty), merged and checkpointed in one transaction.

mod merge_sql;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use bytes::BytesMut;
use futures_util::SinkExt;
use planner::model::TableRef;
use planner::partition::Partition;
use planner::types::ColumnSpec;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, CopyInSink};

use super::codec::{self, BatchEncoder};
use super::connect;
use super::params::BoundParam;
use crate::conform::value_error;
use crate::sql::{self, Dialect, PostgresDialect};
use crate::traits::{
    Checkpoint, LockAttempt, RunIdentity, Sink, SinkCapabilities, WriteMode, WriteStats,
};
use crate::{ConnectorError, Result};

/// A write that failed on the key means two source rows share it: COPY
/// into a table loaded from empty reports the key ("Key (id)=(2) already
/// exists."), the merge only that a row was hit twice. Other failures pass.
fn key_error(
    e: tokio_postgres::Error,
    specs: &[ColumnSpec],
    partition: Option<&str>,
) -> ConnectorError {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        return e.into();
    };
    let mut keys: Vec<&str> = specs
        .iter()
        .filter(|c| c.unique)
        .map(|c| c.name.as_str())
        .collect();
    keys.sort_unstable();
    if *db.code() == SqlState::UNIQUE_VIOLATION {
        let key = db.detail().and_then(|d| {
            let rest = d.strip_prefix("Key (")?;
            let (cols, rest) = rest.split_once(")=(")?;
            let (values, _) = rest.rsplit_once(") already exists")?;
            let mut named: Vec<&str> = cols.split(", ").map(|c| c.trim_matches('"')).collect();
            named.sort_unstable();
            (named == keys).then(|| match cols.split(", ").count() {
                1 => format!("{}={values}", cols.trim_matches('"')),
                _ => format!("({cols})=({values})"),
            })
        });
        if let Some(key) = key {
            return crate::conform::duplicate_key(&format!("two source rows have the key {key}"));
        }
    }
    if *db.code() == SqlState::CARDINALITY_VIOLATION {
        if let Some(partition) = partition {
            return crate::conform::duplicate_key(&format!(
                "two source rows of partition {partition} have the same key"
            ));
        }
    }
    e.into()
}

/// Runs `CREATE … IF NOT EXISTS`. Two sessions creating the same object at
/// once can still collide in the catalog (a unique violation on
/// `pg_type_typname_nsp_index` or `pg_namespace_nspname_index`); the loser
/// finds it there on a second try.
async fn create_if_missing(client: &Client, ddl: &str) -> Result<()> {
    match client.batch_execute(ddl).await {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            client.batch_execute(ddl).await?;
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Name of the table holding committed partitions, beside the destination.
pub const CHECKPOINT_TABLE: &str = "_synchub_checkpoints";
const STAGE_TABLE: &str = "_synchub_stage";

pub struct PostgresSink {
    client: Client,
    table: TableRef,
    specs: Vec<ColumnSpec>,
    /// Actual destination types, in `specs` order; known after `prepare`.
    dest_types: Vec<Type>,
    encoder: Option<BatchEncoder>,
    copy: Option<std::pin::Pin<Box<CopyInSink<bytes::Bytes>>>>,
    /// A partition's transaction is open (its COPY opens at the first row).
    in_partition: bool,
    buf: BytesMut,
    merge_sql: String,
    /// The same without the test for equal rows, for rows known to be
    /// changes.
    merge_changes_sql: String,
    rows_are_changes: bool,
    /// The open partition replaces the table's rows (`WriteMode::Replace`).
    replace: bool,
    /// The table was empty when the run began: partitions COPY straight into
    /// it instead of staging and merging (half the writes for a first load).
    /// Partitions hold disjoint rows, so this stays safe for the whole run;
    /// a duplicate key fails loudly instead of being merged away.
    direct: bool,
    /// Keys to delete in the open partition. The connection is busy with
    /// the COPY until commit, so they are applied then.
    pending_deletes: Vec<RecordBatch>,
    /// Rows this writer committed straight into the table.
    loaded: u64,
    /// `Sink::table_identity`, read by `prepare`.
    identity: String,
}

impl PostgresSink {
    pub async fn open(table: &TableRef, columns: &[ColumnSpec]) -> Result<PostgresSink> {
        let client = connect(&table.datastore).await?;
        // The upsert's per-row probes price it over jit_above_cost, and
        // compiling it costs more than it saves (0.3 s of a 0.8 s delta).
        // current_setting(…, true) is NULL where the server has no JIT.
        client
            .batch_execute(
                "SELECT set_config('jit', 'off', false) WHERE current_setting('jit', true) IS NOT NULL",
            )
            .await?;
        Ok(PostgresSink {
            client,
            table: table.clone(),
            specs: columns.to_vec(),
            dest_types: Vec::new(),
            encoder: None,
            copy: None,
            in_partition: false,
            buf: BytesMut::with_capacity(1 << 20),
            merge_sql: String::new(),
            merge_changes_sql: String::new(),
            rows_are_changes: false,
            replace: false,
            direct: false,
            pending_deletes: Vec::new(),
            loaded: 0,
            identity: String::new(),
        })
    }

    fn qualified(&self) -> String {
        PostgresDialect.table(self.table.schema.as_deref(), &self.table.table)
    }

    /// The COPY encoder for the destination's actual column types.
    fn new_encoder(&self) -> Result<BatchEncoder> {
        let targets: Vec<(String, Type)> = self
            .specs
            .iter()
            .zip(&self.dest_types)
            .map(|(c, t)| (c.name.clone(), t.clone()))
            .collect();
        let arrow_types: Vec<_> = self
            .specs
            .iter()
            .map(|c| c.data_type.arrow_type())
            .collect();
        BatchEncoder::new(&targets, &arrow_types)
    }

    fn checkpoint_table(&self) -> String {
        PostgresDialect.table(self.table.schema.as_deref(), CHECKPOINT_TABLE)
    }

    /// Existing columns of the destination (name, type), empty when the table is missing.
    async fn existing_columns(&self) -> Result<Vec<(String, Type)>> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, a.atttypid FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&self.qualified()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let oid: u32 = r.get(1);
                (
                    r.get::<_, String>(0),
                    Type::from_oid(oid).unwrap_or(Type::UNKNOWN),
                )
            })
            .collect())
    }

    async fn create_table(&self) -> Result<()> {
        let cols = self
            .specs
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    PostgresDialect.quote_ident(&c.name),
                    PostgresDialect.type_ddl(&c.data_type),
                    if c.unique { " NOT NULL" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let keys = self.key_list();
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} ({cols}, PRIMARY KEY ({keys}))",
            self.qualified()
        );
        tracing::info!(table = %self.qualified(), "creating destination table");
        create_if_missing(&self.client, &ddl).await
    }

    fn key_list(&self) -> String {
        PostgresDialect.key_list(&self.specs)
    }

    /// Whether some unique index covers exactly the key columns.
    async fn has_unique_index_on_keys(&self) -> Result<bool> {
        let keys: Vec<String> = self
            .specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| c.name.clone())
            .collect();
        let rows = self
            .client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL \
                 GROUP BY i.indexrelid",
                &[&self.qualified()],
            )
            .await?;
        let mut want = keys;
        want.sort();
        Ok(rows.iter().any(|r| r.get::<_, Vec<String>>(0) == want))
    }

    /// How many of the two columns added in SyncHub 0.2 the checkpoint
    /// table has; `None` when there is no checkpoint table yet.
    async fn checkpoint_columns(&self) -> Result<Option<i64>> {
        let row = self
            .client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL, (SELECT count(*) FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attname IN ('fingerprint', 'table_identity') \
                 AND NOT attisdropped)",
                &[&self.checkpoint_table()],
            )
            .await?;
        Ok(row.get::<_, bool>(0).then(|| row.get(1)))
    }

    /// Whether the destination's schema exists (true when none is named).
    async fn schema_exists(&self) -> Result<bool> {
        let Some(schema) = &self.table.schema else {
            return Ok(true);
        };
        Ok(self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[schema],
            )
            .await?
            .get(0))
    }

    /// The table's identity for `Sink::table_identity`. The OID changes
    /// when the table is dropped and created again, the file node when it
    /// is truncated (or rewritten by VACUUM FULL, CLUSTER or a type change:
    /// then a resume starts over, which is safe).
    async fn read_identity(&self) -> Result<String> {
        let row = self
            .client
            .query_one(
                "SELECT c.oid::bigint, pg_relation_filenode(c.oid)::bigint FROM pg_class c \
                 WHERE c.oid = to_regclass($1)",
                &[&self.qualified()],
            )
            .await?;
        Ok(format!(
            "postgres:{}:{}",
            row.get::<_, i64>(0),
            row.get::<_, Option<i64>>(1).unwrap_or(0)
        ))
    }

    /// Opens the partition's COPY: into the table itself when writing
    /// straight, else into a fresh staging table dropped at commit.
    async fn open_copy(&mut self) -> Result<()> {
        let target = if self.direct {
            self.qualified()
        } else {
            self.client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE {STAGE_TABLE} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
                    self.qualified()
                ))
                .await?;
            STAGE_TABLE.to_string()
        };
        let cols = PostgresDialect.column_list(&self.specs);
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY {target} ({cols}) FROM STDIN (FORMAT binary)"
            ))
            .await?;
        let mut sink = Box::pin(sink);
        self.buf.clear();
        codec::write_copy_header(&mut self.buf);
        sink.send(self.buf.split().freeze()).await?;
        self.copy = Some(sink);
        Ok(())
    }

    /// Deletes the buffered keys inside the open transaction: the keys are
    /// COPYed into a temporary table and removed with one join. Only rows
    /// still inside `partition` go: a row whose partition column changed
    /// was compared as missing here and as new in its other partition, and
    /// that other partition may have written it already.
    async fn apply_deletes(&mut self, partition: &Partition) -> Result<u64> {
        if self.pending_deletes.iter().all(|b| b.num_rows() == 0) {
            self.pending_deletes.clear();
            return Ok(0);
        }
        let keys: Vec<(String, Type)> = self
            .specs
            .iter()
            .zip(&self.dest_types)
            .filter(|(c, _)| c.unique)
            .map(|(c, t)| (c.name.clone(), t.clone()))
            .collect();
        let key_list = self.key_list();
        self.client
            .batch_execute(&format!(
                "CREATE TEMP TABLE _synchub_deletes ON COMMIT DROP AS SELECT {key_list} FROM {} WITH NO DATA",
                self.qualified()
            ))
            .await?;
        let arrow_types: Vec<_> = self
            .specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| c.data_type.arrow_type())
            .collect();
        let encoder = BatchEncoder::new(&keys, &arrow_types)?;
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY _synchub_deletes ({key_list}) FROM STDIN (FORMAT binary)"
            ))
            .await?;
        let mut sink = Box::pin(sink);
        let mut buf = BytesMut::new();
        codec::write_copy_header(&mut buf);
        for batch in std::mem::take(&mut self.pending_deletes) {
            encoder.encode(&batch, &mut buf)?;
            sink.send(buf.split().freeze()).await?;
        }
        codec::write_copy_trailer(&mut buf);
        sink.send(buf.split().freeze()).await?;
        sink.as_mut().finish().await?;
        let mut conds = vec![PostgresDialect.keys_equal("t", "d", &self.specs)];
        let mut bounds = Vec::new();
        conds.extend(sql::destination_range_conditions(
            &PostgresDialect,
            &sql::destination_scope(partition, &self.specs),
            "t",
            0,
            &mut bounds,
        ));
        let bounds: Vec<BoundParam> = bounds
            .into_iter()
            .map(|value| BoundParam { value })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            bounds.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let deleted = self
            .client
            .execute(
                &format!(
                    "DELETE FROM {} t USING _synchub_deletes d WHERE {}",
                    self.qualified(),
                    conds.join(" AND ")
                ),
                &params,
            )
            .await?;
        self.client
            .batch_execute("DROP TABLE _synchub_deletes")
            .await?;
        Ok(deleted)
    }
}

#[async_trait]
impl Sink for PostgresSink {
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            transactional: true,
            upsert: true,
            delete: true,
            single_writer: false,
        }
    }

    async fn another_writer(&mut self) -> Result<Option<Box<dyn Sink>>> {
        let mut writer = PostgresSink::open(&self.table, &self.specs).await?;
        writer.dest_types = self.dest_types.clone();
        writer.encoder = Some(writer.new_encoder()?);
        writer.merge_sql = self.merge_sql.clone();
        writer.merge_changes_sql = self.merge_changes_sql.clone();
        writer.direct = self.direct;
        writer.identity = self.identity.clone();
        Ok(Some(Box::new(writer)))
    }

    async fn prepare(&mut self) -> Result<()> {
        // The catalog reads do not depend on each other: sent together they
        // wait for one round trip, not one each (a short delta run's fixed
        // cost is mostly such waits).
        let (mut existing, has_unique_index, checkpoint_columns, schema_exists) = tokio::try_join!(
            self.existing_columns(),
            self.has_unique_index_on_keys(),
            self.checkpoint_columns(),
            self.schema_exists(),
        )?;
        if let (Some(schema), false) = (&self.table.schema, schema_exists) {
            create_if_missing(
                &self.client,
                &format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    PostgresDialect.quote_ident(schema)
                ),
            )
            .await?;
        }
        if existing.is_empty() {
            self.create_table().await?;
            existing = self.existing_columns().await?;
        } else {
            let mut problems = Vec::new();
            for c in &self.specs {
                match existing.iter().find(|(n, _)| *n == c.name) {
                    None => problems.push(format!(
                        "has no column \"{}\"; add it (ALTER TABLE {} ADD COLUMN {} {}) or drop the table so SyncHub creates it",
                        c.name,
                        self.qualified(),
                        PostgresDialect.quote_ident(&c.name),
                        PostgresDialect.type_ddl(&c.data_type)
                    )),
                    Some((_, t)) if !codec::pg_type_compatible(&c.data_type, t) => problems.push(format!(
                        "column \"{}\" is {}, but the pipeline maps it as {}; alter the column or change data_type",
                        c.name, t, c.data_type
                    )),
                    _ => {}
                }
            }
            if !problems.is_empty() {
                return Err(ConnectorError::Schema(format!(
                    "destination table {} {}",
                    self.qualified(),
                    problems.join("; ")
                )));
            }
            if !has_unique_index {
                return Err(ConnectorError::Schema(format!(
                    "destination table {} has no unique index on ({}); upserts need one: CREATE UNIQUE INDEX ON {} ({})",
                    self.qualified(),
                    self.key_list(),
                    self.qualified(),
                    self.key_list()
                )));
            }
        }
        self.dest_types = self
            .specs
            .iter()
            .map(|c| {
                existing
                    .iter()
                    .find(|(n, _)| *n == c.name)
                    .map(|(_, t)| t.clone())
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect();
        self.encoder = Some(self.new_encoder()?);
        self.merge_sql = self.build_merge_sql(true);
        self.merge_changes_sql = self.build_merge_sql(false);
        let checkpoint_table = async {
            match checkpoint_columns {
                None => {
                    create_if_missing(
                        &self.client,
                        &format!(
                            "CREATE TABLE IF NOT EXISTS {} (pipeline text NOT NULL, strategy text NOT NULL, \
                             run_id text NOT NULL, partition_id text NOT NULL, rows bigint NOT NULL, \
                             committed_at timestamptz NOT NULL DEFAULT now(), \
                             fingerprint text, table_identity text, \
                             PRIMARY KEY (pipeline, strategy, run_id, partition_id))",
                            self.checkpoint_table()
                        ),
                    )
                    .await
                }
                // Checkpoint tables of SyncHub before 0.2 lack the two
                // columns; their rows then match no run, which starts over.
                Some(columns) if columns < 2 => Ok(self
                    .client
                    .batch_execute(&format!(
                        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS fingerprint text, \
                         ADD COLUMN IF NOT EXISTS table_identity text",
                        self.checkpoint_table()
                    ))
                    .await?),
                Some(_) => Ok(()),
            }
        };
        let (has_rows, identity, ()) = tokio::try_join!(
            async {
                Ok::<bool, ConnectorError>(
                    self.client
                        .query_one(
                            &format!("SELECT EXISTS (SELECT 1 FROM {})", self.qualified()),
                            &[],
                        )
                        .await?
                        .get(0),
                )
            },
            self.read_identity(),
            checkpoint_table,
        )?;
        self.direct = !has_rows;
        self.identity = identity;
        Ok(())
    }

    fn started_empty(&self) -> bool {
        self.direct
    }

    fn set_started_empty(&mut self, empty: bool) {
        self.direct = empty;
    }

    fn table_identity(&self) -> String {
        self.identity.clone()
    }

    async fn checkpoints(&mut self, run: &RunIdentity) -> Result<Vec<Checkpoint>> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT partition_id, rows, fingerprint, table_identity FROM {} \
                     WHERE pipeline = $1 AND strategy = $2 AND run_id = $3",
                    self.checkpoint_table()
                ),
                &[&run.pipeline, &run.strategy, &run.run_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Checkpoint {
                partition_id: r.get(0),
                rows: r.get::<_, i64>(1).max(0) as u64,
                fingerprint: r.get(2),
                table_identity: r.get(3),
            })
            .collect())
    }

    async fn try_lock(&mut self, key: &str, holder: &str) -> Result<LockAttempt> {
        // A session-level advisory lock: held while this connection lives,
        // released by the server when the process dies, whatever machine
        // it ran on.
        // The holder's name goes with the lock, in the same statement, for
        // whoever finds it taken (CASE runs set_config only when taken).
        let taken: bool = self
            .client
            .query_one(
                "SELECT CASE WHEN pg_try_advisory_lock(hashtextextended($1, 0)) \
                 THEN set_config('application_name', $2, false) IS NOT NULL ELSE false END",
                &[&key, &holder],
            )
            .await?
            .get(0);
        if taken {
            return Ok(LockAttempt::Acquired);
        }
        let row = self
            .client
            .query_opt(
                "SELECT a.application_name, coalesce(host(a.client_addr), 'local socket'), \
                 to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0) LIMIT 1",
                &[&key],
            )
            .await?;
        Ok(LockAttempt::Held {
            holder: match row {
                Some(r) => format!(
                    "{}, connected from {} since {} UTC",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                ),
                None => "a session that has just let go".to_string(),
            },
        })
    }

    fn can_replace(&self) -> bool {
        true
    }

    async fn begin_partition(&mut self, _partition: &Partition, mode: WriteMode) -> Result<()> {
        self.rows_are_changes = mode == WriteMode::Changes;
        self.replace = mode == WriteMode::Replace;
        // The stage and its COPY wait for the first row: a partition with
        // nothing to write (most of a hash run) commits its checkpoint alone,
        // without creating and dropping a temporary table.
        self.client.batch_execute("BEGIN").await?;
        self.in_partition = true;
        Ok(())
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if !self.in_partition {
            return Err(ConnectorError::Other("no partition open".into()));
        }
        if self.copy.is_none() {
            self.open_copy().await?;
        }
        let encoder = self
            .encoder
            .as_ref()
            .ok_or_else(|| ConnectorError::Other("sink not prepared".into()))?;
        let batch = crate::conform::conform_batch(batch, &self.specs)?;
        let batch = batch.as_ref();
        if let Err(e) = encoder.encode_located(batch, &mut self.buf) {
            return Err(match e.error {
                ConnectorError::Value(msg) => {
                    value_error(batch, &self.specs, e.row, &self.specs[e.column].name, &msg)
                }
                other => other,
            });
        }
        let copy = self
            .copy
            .as_mut()
            .ok_or_else(|| ConnectorError::Other("no partition open".into()))?;
        copy.send(self.buf.split().freeze())
            .await
            .map_err(|e| key_error(e, &self.specs, None))?;
        Ok(())
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<()> {
        self.pending_deletes.push(keys.clone());
        Ok(())
    }

    async fn abort_partition(&mut self) -> Result<()> {
        // Dropping an unfinished COPY sink aborts the COPY; the transaction
        // is then failed and ROLLBACK ends it.
        self.copy = None;
        self.in_partition = false;
        self.pending_deletes.clear();
        self.buf.clear();
        self.client.batch_execute("ROLLBACK").await?;
        Ok(())
    }

    async fn commit_partition(
        &mut self,
        run: &RunIdentity,
        partition: &Partition,
    ) -> Result<WriteStats> {
        if !self.in_partition {
            return Err(ConnectorError::Other("no partition open".into()));
        }
        self.in_partition = false;
        let staged = match self.copy.take() {
            Some(mut copy) => {
                codec::write_copy_trailer(&mut self.buf);
                copy.send(self.buf.split().freeze()).await?;
                Some(
                    copy.as_mut()
                        .finish()
                        .await
                        .map_err(|e| key_error(e, &self.specs, Some(&partition.id)))?,
                )
            }
            None => None,
        };
        let (staged, inserted, updated) = match staged {
            None => (0, 0, 0),
            Some(staged) if self.direct => {
                self.loaded += staged;
                (staged, staged, 0)
            }
            Some(staged) => {
                let merge = if self.rows_are_changes {
                    &self.merge_changes_sql
                } else {
                    &self.merge_sql
                };
                let row = self
                    .client
                    .query_one(merge, &[])
                    .await
                    .map_err(|e| key_error(e, &self.specs, Some(&partition.id)))?;
                (
                    staged,
                    row.get::<_, i64>(0) as u64,
                    row.get::<_, i64>(1) as u64,
                )
            }
        };
        let mut deleted = self.apply_deletes(partition).await?;
        if std::mem::take(&mut self.replace) && !self.direct {
            // Replacing: the rows the stage lacks (all of them, when nothing
            // was staged) are no longer the table's.
            let delete = match staged {
                0 => format!("DELETE FROM {}", self.qualified()),
                _ => format!(
                    "DELETE FROM {} t WHERE NOT EXISTS (SELECT 1 FROM {STAGE_TABLE} s WHERE {})",
                    self.qualified(),
                    PostgresDialect.keys_equal("t", "s", &self.specs)
                ),
            };
            deleted += self.client.execute(&delete, &[]).await?;
        }
        self.client
            .execute(
                &format!(
                    "INSERT INTO {} (pipeline, strategy, run_id, partition_id, rows, fingerprint, table_identity) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (pipeline, strategy, run_id, partition_id) DO UPDATE SET rows = EXCLUDED.rows, \
                     committed_at = now(), fingerprint = EXCLUDED.fingerprint, table_identity = EXCLUDED.table_identity",
                    self.checkpoint_table()
                ),
                &[
                    &run.pipeline,
                    &run.strategy,
                    &run.run_id,
                    &partition.id,
                    &(staged as i64),
                    &run.fingerprint,
                    &self.identity,
                ],
            )
            .await?;
        self.client.batch_execute("COMMIT").await?;
        Ok(WriteStats {
            inserted,
            updated,
            unchanged: staged.saturating_sub(inserted + updated),
            deleted,
        })
    }

    /// A table loaded from empty has no statistics until autovacuum gets to
    /// it, and the planner then takes a range of a partition for 0.5% of
    /// the table: the next hash run's grouped checksums of the destination
    /// ran without parallel workers, 1.6 times as long as the source's.
    /// (With lanes each writer analyzes; the last one sees every row.)
    /// A sample of 3,000 rows (statistics target 10, for this ANALYZE
    /// only; a column's own target still wins) is enough for row counts
    /// and range estimates, and took 30–110 ms where the default 30,000
    /// took 400 ms on 2M rows: a tenth of a 1M-row load's time. The next
    /// ANALYZE, by autovacuum or by hand, brings the full statistics.
    async fn finish(&mut self) -> Result<()> {
        if self.direct && self.loaded > 0 {
            self.client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL default_statistics_target = 10; ANALYZE {}; COMMIT",
                    self.qualified()
                ))
                .await?;
        }
        Ok(())
    }
}
