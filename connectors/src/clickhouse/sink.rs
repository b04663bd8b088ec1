//! Writing a ClickHouse table.
//!
//! The table is a `ReplacingMergeTree(_synchub_version)` ordered by the
//! unique columns: of the rows sharing a key, the one with the highest
//! version is the row, and reads take it with `FINAL`. A partition's commit
//! reads the table's current rows for its keys (`FINAL`), writes only the
//! new and changed ones in one INSERT (one block, so one part: all of it or
//! none) under a version above every version it read, then deletes with an
//! `ALTER TABLE … DELETE` mutation it waits for, and finally
//! `record_checkpoint` writes the checkpoint into `_synchub_checkpoints`.
//!
//! ClickHouse has no transaction around the two, and 18.16 has no
//! `insert_deduplication_token` (22.x) and dedups inserts only on
//! Replicated tables, which need ZooKeeper. The crash window between the
//! rows and the checkpoint is closed by the commit itself: a partition
//! written again under the same [`CommitToken`] (a resumed run keeps its
//! run id) first looks for that token's checkpoint and writes nothing when
//! it is there; when it is not (the crash fell between the INSERT and the
//! checkpoint), the comparison finds the rows it inserted equal to what it
//! would write, so it writes nothing again, and its deletes find nothing
//! left to delete. Nothing is doubled, even for a reader without `FINAL`.

use std::collections::HashMap;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use planner::model::TableRef;
use planner::partition::Partition;
use planner::types::ColumnSpec;

use super::client::{ident, table_name, Client};
use super::codec::{self, Cursor};
use crate::{
    Checkpoint, CommitToken, ConnectorError, Result, RunIdentity, Sink, SinkCapabilities,
    WriteMode, WriteStats,
};

/// The checkpoints of every table of a database, beside them.
pub const CHECKPOINT_TABLE: &str = "_synchub_checkpoints";

/// The ReplacingMergeTree's version column.
pub const VERSION_COLUMN: &str = "_synchub_version";

/// Keys per `IN (…)` list of a query.
const KEYS_PER_QUERY: usize = 5_000;

/// How long a delete's mutation may take before the commit fails.
const MUTATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

pub struct ClickHouseSink {
    client: Client,
    database: String,
    table: String,
    /// `database`.`table`, quoted.
    name: String,
    specs: Vec<ColumnSpec>,
    staged: Vec<RecordBatch>,
    deletes: Vec<RecordBatch>,
    empty_at_start: bool,
    /// A commit of this writer failed part way: its rows may be in the
    /// table, so later commits compare even into a table that began empty.
    interrupted: bool,
    identity: String,
    /// The partition the last commit wrote and its rows, for
    /// `record_checkpoint`.
    committed: Option<(String, u64)>,
}

impl ClickHouseSink {
    pub fn open(table: &TableRef, columns: &[ColumnSpec]) -> Result<ClickHouseSink> {
        let client = Client::new(&table.datastore)?;
        let database = table
            .schema
            .clone()
            .unwrap_or_else(|| client.database.clone());
        // Every column must have a type here before anything is created.
        for c in columns {
            codec::column_type(c)?;
            if c.unique && !codec::key_type_supported(&c.data_type) {
                return Err(ConnectorError::Unsupported(format!(
                    "unique column \"{}\" is {}: a ClickHouse destination keys by integer, text, date, timestamp or uuid columns",
                    c.name, c.data_type
                )));
            }
        }
        if !columns.iter().any(|c| c.unique) {
            return Err(ConnectorError::Config(format!(
                "{}.{}: a ClickHouse destination needs a unique column (roles: [unique_column]) to order and replace rows by",
                database, table.table
            )));
        }
        if columns.iter().any(|c| c.name == VERSION_COLUMN) {
            return Err(ConnectorError::Config(format!(
                "column \"{VERSION_COLUMN}\" is SyncHub's own in a ClickHouse destination; map it under another name"
            )));
        }
        Ok(ClickHouseSink {
            name: table_name(&database, &table.table),
            client,
            database,
            table: table.table.clone(),
            specs: columns.to_vec(),
            staged: Vec::new(),
            deletes: Vec::new(),
            empty_at_start: false,
            interrupted: false,
            identity: String::new(),
            committed: None,
        })
    }

    fn keys(&self) -> Vec<&ColumnSpec> {
        self.specs.iter().filter(|c| c.unique).collect()
    }

    fn column_list(&self) -> String {
        self.specs
            .iter()
            .map(|c| ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn checkpoints_name(&self) -> String {
        table_name(&self.database, CHECKPOINT_TABLE)
    }

    async fn table_exists(&self) -> Result<Option<String>> {
        let text = self
            .client
            .text(&format!(
                "SELECT toString(metadata_modification_time) FROM system.tables WHERE database = {} AND name = {} FORMAT TabSeparated",
                codec_lit(&self.database),
                codec_lit(&self.table)
            ))
            .await?;
        Ok(text.lines().next().map(str::to_string))
    }

    async fn check_columns(&self) -> Result<()> {
        let text = self
            .client
            .text(&format!(
                "SELECT name, type FROM system.columns WHERE database = {} AND table = {} FORMAT TabSeparated",
                codec_lit(&self.database),
                codec_lit(&self.table)
            ))
            .await?;
        let have: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, t)| (unescape_tsv(n), t.to_string()))
            .collect();
        let mut problems = Vec::new();
        for c in &self.specs {
            let want = codec::column_type(c)?;
            match have.get(&c.name) {
                None => problems.push(format!("column \"{}\" is missing", c.name)),
                Some(t) if *t != want => problems.push(format!(
                    "column \"{}\" is {t}, the pipeline writes {} (stored as {want})",
                    c.name, c.data_type
                )),
                Some(_) => {}
            }
        }
        match have.get(VERSION_COLUMN) {
            Some(t) if t == "UInt64" => {}
            _ => problems.push(format!(
                "column \"{VERSION_COLUMN}\" (UInt64, the ReplacingMergeTree's version) is missing"
            )),
        }
        for name in have.keys() {
            if name != VERSION_COLUMN && !self.specs.iter().any(|c| &c.name == name) {
                problems.push(format!(
                    "column \"{name}\" is not in the pipeline's column_map"
                ));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConnectorError::Schema(format!(
            "{} does not have the pipeline's columns: {}",
            self.name,
            problems.join("; ")
        )))
    }

    /// The table's current rows (RowBinary of the mapped columns) and
    /// versions for the keys of `staged`, by their key bytes.
    async fn current_rows(
        &self,
        staged: &[RecordBatch],
    ) -> Result<HashMap<Vec<u8>, (Vec<u8>, u64)>> {
        let key_specs = self.keys();
        let key_exprs: Vec<String> = key_specs.iter().map(|c| ident(&c.name)).collect();
        let key_index: Vec<usize> = self
            .specs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.unique)
            .map(|(i, _)| i)
            .collect();
        let mut out = HashMap::new();
        for batch in staged {
            let keys = batch.project(&key_index)?;
            for cond in codec::keys_in(&key_exprs, &keys, &key_specs, KEYS_PER_QUERY)? {
                let bytes = self
                    .client
                    .query(&format!(
                        "SELECT {}, {} FROM {} FINAL WHERE {cond} FORMAT RowBinary",
                        self.column_list(),
                        ident(VERSION_COLUMN),
                        self.name
                    ))
                    .await?;
                let mut cur = Cursor::new(&bytes);
                while !cur.at_end() {
                    let start = cur.pos;
                    let mut key = Vec::new();
                    for s in &self.specs {
                        let v_start = cur.pos;
                        cur.value(&s.data_type, !s.unique)?;
                        if s.unique {
                            key.extend_from_slice(&bytes[v_start..cur.pos]);
                        }
                    }
                    let row = bytes[start..cur.pos].to_vec();
                    let version = cur.u64()?;
                    out.insert(key, (row, version));
                }
            }
        }
        Ok(out)
    }

    /// Deletes the rows of `keys` inside `partition`, waiting for the
    /// mutation; returns how many there were.
    async fn delete_keys(&self, partition: &Partition, deletes: &[RecordBatch]) -> Result<u64> {
        let key_specs = self.keys();
        let key_exprs: Vec<String> = key_specs.iter().map(|c| ident(&c.name)).collect();
        let range = codec::range_conditions(partition, |dim| {
            let c = self
                .specs
                .iter()
                .find(|c| c.name == dim.name)
                .ok_or_else(|| {
                    ConnectorError::Schema(format!(
                        "partition column \"{}\" is not a column of {}",
                        dim.name, self.name
                    ))
                })?;
            Ok((ident(&c.name), c.data_type))
        })?;
        let mut deleted = 0;
        for keys in deletes {
            for cond in codec::keys_in(&key_exprs, keys, &key_specs, KEYS_PER_QUERY)? {
                let mut conds = vec![cond];
                conds.extend(range.iter().cloned());
                let cond = conds.join(" AND ");
                let count = self
                    .client
                    .text(&format!(
                        "SELECT count() FROM {} FINAL WHERE {cond} FORMAT TabSeparated",
                        self.name
                    ))
                    .await?;
                let n: u64 = count.trim().parse().unwrap_or(0);
                if n == 0 {
                    continue;
                }
                self.client
                    .query(&format!("ALTER TABLE {} DELETE WHERE {cond}", self.name))
                    .await?;
                self.wait_for_mutations().await?;
                deleted += n;
            }
        }
        Ok(deleted)
    }

    /// Waits until the table has no mutation left to do (18.16 has no
    /// `mutations_sync`).
    async fn wait_for_mutations(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            let left = self
                .client
                .text(&format!(
                    "SELECT count() FROM system.mutations WHERE database = {} AND table = {} AND is_done = 0 FORMAT TabSeparated",
                    codec_lit(&self.database),
                    codec_lit(&self.table)
                ))
                .await?;
            if left.trim() == "0" {
                return Ok(());
            }
            if started.elapsed() > MUTATION_TIMEOUT {
                return Err(ConnectorError::Database {
                    connector: "ClickHouse",
                    kind: crate::ErrorKind::Transient,
                    message: format!(
                        "the delete on {} is still running after {}s (see system.mutations)",
                        self.name,
                        MUTATION_TIMEOUT.as_secs()
                    ),
                    source: None,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(200));
        }
    }

    async fn token_committed(&self, run: &RunIdentity, partition: &Partition) -> Result<bool> {
        let count = self
            .client
            .text(&format!(
                "SELECT count() FROM {} FINAL WHERE table_name = {} AND pipeline = {} AND strategy = {} AND run_id = {} AND partition_id = {} AND table_identity = {} FORMAT TabSeparated",
                self.checkpoints_name(),
                codec_lit(&self.table),
                codec_lit(&run.pipeline),
                codec_lit(&run.strategy),
                codec_lit(&run.run_id),
                codec_lit(&partition.id),
                codec_lit(&self.identity),
            ))
            .await?;
        Ok(count.trim() != "0")
    }
}

/// A string as a ClickHouse literal (every byte escaped).
fn codec_lit(s: &str) -> String {
    super::client::bytes_literal(s.as_bytes())
}

/// A TabSeparated field's text (backslash escapes undone).
fn unescape_tsv(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(s.as_bytes());
}

/// Microseconds since 1970 now: versions rise with time across runs and
/// machines, and above every version a commit read.
fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[async_trait]
impl Sink for ClickHouseSink {
    async fn prepare(&mut self) -> Result<()> {
        self.client
            .query(&format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                ident(&self.database)
            ))
            .await?;
        self.client
            .query(&format!(
                "CREATE TABLE IF NOT EXISTS {} (table_name String, pipeline String, strategy String, run_id String, partition_id String, rows UInt64, fingerprint String, table_identity String, written DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY (table_name, pipeline, strategy, run_id, partition_id, table_identity)",
                self.checkpoints_name()
            ))
            .await?;
        if self.table_exists().await?.is_none() {
            let columns: Vec<String> = self
                .specs
                .iter()
                .map(|c| Ok(format!("{} {}", ident(&c.name), codec::column_type(c)?)))
                .collect::<Result<_>>()?;
            let keys: Vec<String> = self.keys().iter().map(|c| ident(&c.name)).collect();
            self.client
                .query(&format!(
                    "CREATE TABLE IF NOT EXISTS {} ({}, {} UInt64) ENGINE = ReplacingMergeTree({}) ORDER BY ({})",
                    self.name,
                    columns.join(", "),
                    ident(VERSION_COLUMN),
                    ident(VERSION_COLUMN),
                    keys.join(", ")
                ))
                .await?;
        }
        self.check_columns().await?;
        // The table's metadata time changes when it is created again (an
        // ALTER … DELETE leaves it); 18.16 has no table UUID.
        self.identity = self.table_exists().await?.unwrap_or_default();
        let any = self
            .client
            .text(&format!(
                "SELECT count() FROM (SELECT 1 FROM {} LIMIT 1) FORMAT TabSeparated",
                self.name
            ))
            .await?;
        self.empty_at_start = any.trim() == "0";
        Ok(())
    }

    fn started_empty(&self) -> bool {
        self.empty_at_start
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            transactional: false,
            upsert: true,
            delete: true,
            // Each commit reads the rows it may replace before writing;
            // two lanes on one table would race on versions.
            single_writer: true,
        }
    }

    /// When the table was created (its metadata's time): a table dropped
    /// and created again has another. 18.16 cannot tell a truncation.
    fn table_identity(&self) -> String {
        self.identity.clone()
    }

    async fn checkpoints(&mut self, run: &RunIdentity) -> Result<Vec<Checkpoint>> {
        let bytes = self
            .client
            .query(&format!(
                "SELECT partition_id, rows, fingerprint, table_identity FROM {} FINAL WHERE table_name = {} AND pipeline = {} AND strategy = {} AND run_id = {} FORMAT RowBinary",
                self.checkpoints_name(),
                codec_lit(&self.table),
                codec_lit(&run.pipeline),
                codec_lit(&run.strategy),
                codec_lit(&run.run_id),
            ))
            .await?;
        let mut cur = Cursor::new(&bytes);
        let mut out = Vec::new();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        while !cur.at_end() {
            let partition_id = text(cur.string()?);
            let rows = cur.u64()?;
            let fingerprint = text(cur.string()?);
            let table_identity = text(cur.string()?);
            out.push(Checkpoint {
                partition_id,
                rows,
                fingerprint: Some(fingerprint),
                table_identity: Some(table_identity),
            });
        }
        Ok(out)
    }

    async fn begin_partition(&mut self, _partition: &Partition, _mode: WriteMode) -> Result<()> {
        self.staged.clear();
        self.deletes.clear();
        Ok(())
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = crate::conform::conform_batch(batch, &self.specs)?;
        self.staged.push(batch.into_owned());
        Ok(())
    }

    async fn abort_partition(&mut self) -> Result<()> {
        self.staged.clear();
        self.deletes.clear();
        Ok(())
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<()> {
        self.deletes.push(keys.clone());
        Ok(())
    }

    async fn commit_partition(
        &mut self,
        run: &RunIdentity,
        partition: &Partition,
    ) -> Result<WriteStats> {
        let staged = std::mem::take(&mut self.staged);
        let deletes = std::mem::take(&mut self.deletes);
        let rows: u64 = staged.iter().map(|b| b.num_rows() as u64).sum();
        self.committed = Some((partition.id.clone(), rows));
        if rows == 0 && deletes.iter().all(|d| d.num_rows() == 0) {
            return Ok(WriteStats::default());
        }
        if self.token_committed(run, partition).await? {
            tracing::info!(
                partition = %partition.id,
                token = %CommitToken::of(run, partition).as_label(),
                "partition already committed under its token; nothing written"
            );
            return Ok(WriteStats::default());
        }
        let mut stats = WriteStats::default();
        // Into a table that was empty when this writer began, a key can
        // only be there from this run's own partitions: nothing to compare.
        let compare = !self.empty_at_start || self.interrupted;
        self.interrupted = true;
        let current = if !compare {
            HashMap::new()
        } else {
            self.current_rows(&staged).await?
        };
        let mut version = now_micros();
        for (_, v) in current.values() {
            version = version.max(v + 1);
        }
        let version = version.to_le_bytes();
        let mut body = Vec::new();
        let mut seen: HashMap<Vec<u8>, ()> = HashMap::new();
        for batch in &staged {
            for (key, row) in codec::encode_rows(batch, &self.specs)? {
                if seen.insert(key.clone(), ()).is_some() {
                    return Err(ConnectorError::Value(format!(
                        "{}: partition {} holds the same key twice; the unique columns must identify one row",
                        self.name, partition.id
                    )));
                }
                match current.get(&key) {
                    Some((have, _)) if *have == row => {
                        stats.unchanged += 1;
                        continue;
                    }
                    Some(_) => stats.updated += 1,
                    None => stats.inserted += 1,
                }
                body.extend_from_slice(&row);
                body.extend_from_slice(&version);
            }
        }
        if !body.is_empty() {
            self.client
                .insert(
                    &format!(
                        "INSERT INTO {} ({}, {}) FORMAT RowBinary",
                        self.name,
                        self.column_list(),
                        ident(VERSION_COLUMN)
                    ),
                    body,
                )
                .await?;
        }
        if !deletes.is_empty() {
            stats.deleted = self.delete_keys(partition, &deletes).await?;
        }
        self.interrupted = false;
        Ok(stats)
    }

    async fn record_checkpoint(&mut self, run: &RunIdentity, partition: &Partition) -> Result<()> {
        let rows = match self.committed.take() {
            Some((id, rows)) if id == partition.id => rows,
            _ => {
                return Err(ConnectorError::Other(format!(
                    "checkpoint of partition {} recorded before its rows were committed",
                    partition.id
                )))
            }
        };
        let mut body = Vec::new();
        for s in [
            self.table.as_str(),
            run.pipeline.as_str(),
            run.strategy.as_str(),
            run.run_id.as_str(),
            partition.id.as_str(),
        ] {
            put_string(&mut body, s);
        }
        body.extend_from_slice(&rows.to_le_bytes());
        put_string(&mut body, &run.fingerprint);
        put_string(&mut body, &self.identity);
        self.client
            .insert(
                &format!(
                    "INSERT INTO {} (table_name, pipeline, strategy, run_id, partition_id, rows, fingerprint, table_identity) FORMAT RowBinary",
                    self.checkpoints_name()
                ),
                body,
            )
            .await
    }
}
