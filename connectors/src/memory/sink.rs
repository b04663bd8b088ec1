//! Writing a memory table: a partition's rows and deletes are staged, then
//! applied with its checkpoint under one lock, so a reader sees both or
//! neither. A datastore with `transactional: false` acts instead as a
//! destination without transactions (ClickHouse, Delta): rows are appended
//! under the partition's commit token, and a second commit under the same
//! token writes nothing; the checkpoint is recorded in a second step.

use std::collections::BTreeMap;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};
use async_trait::async_trait;
use planner::model::TableRef;
use planner::partition::Partition;
use planner::types::{arrow_schema, ColumnSpec};

use super::store::{
    checkpoint_lost, concat, connection_of, new_identity, table_key, tables, MemTable,
};
use crate::{
    Checkpoint, CommitToken, ConnectorError, Result, RunIdentity, Sink, SinkCapabilities,
    WriteMode, WriteStats,
};

pub struct MemorySink {
    key: (String, String),
    table: String,
    schema: SchemaRef,
    specs: Vec<ColumnSpec>,
    /// Indexes of the unique (key) columns.
    keys: Vec<usize>,
    staged: Vec<RecordBatch>,
    deletes: Vec<RecordBatch>,
    identity: String,
    empty_at_start: bool,
    transactional: bool,
    /// The partition the last non-transactional commit wrote, and its rows,
    /// for `record_checkpoint`.
    committed: Option<(String, u64)>,
}

impl MemorySink {
    pub fn open(table: &TableRef, columns: &[ColumnSpec]) -> Result<MemorySink> {
        Ok(MemorySink {
            key: table_key(table)?,
            table: table.display_name(),
            schema: arrow_schema(columns),
            specs: columns.to_vec(),
            keys: (0..columns.len()).filter(|i| columns[*i].unique).collect(),
            staged: Vec::new(),
            deletes: Vec::new(),
            identity: String::new(),
            empty_at_start: false,
            transactional: connection_of(&table.datastore)?.transactional,
            committed: None,
        })
    }

    fn converter(&self, columns: &[usize]) -> Result<RowConverter> {
        let fields = columns
            .iter()
            .map(|i| SortField::new(self.schema.field(*i).data_type().clone()))
            .collect();
        Ok(RowConverter::new(fields)?)
    }

    /// Each row of `batch` as comparable rows of `columns`.
    fn rows_of(&self, batch: &RecordBatch, columns: &[usize]) -> Result<Vec<OwnedRow>> {
        let converter = self.converter(columns)?;
        let arrays: Vec<_> = columns.iter().map(|i| batch.column(*i).clone()).collect();
        let rows = converter.convert_columns(&arrays)?;
        Ok(rows.iter().map(|r| r.owned()).collect())
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn prepare(&mut self) -> Result<()> {
        let mut tables = tables();
        match tables.get(&self.key) {
            Some(t) => {
                if t.rows.schema().fields() != self.schema.fields() {
                    return Err(ConnectorError::Schema(format!(
                        "table {} has columns {:?}, the pipeline writes {:?}",
                        self.table,
                        t.rows.schema().fields(),
                        self.schema.fields()
                    )));
                }
                self.empty_at_start = t.rows.num_rows() == 0;
                self.identity = t.identity.clone();
            }
            None => {
                let identity = new_identity();
                tables.insert(
                    self.key.clone(),
                    MemTable {
                        rows: RecordBatch::new_empty(self.schema.clone()),
                        checkpoints: Vec::new(),
                        identity: identity.clone(),
                        tokens: Default::default(),
                    },
                );
                self.empty_at_start = true;
                self.identity = identity;
            }
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
        let tables = tables();
        let want = (
            run.pipeline.clone(),
            run.strategy.clone(),
            run.run_id.clone(),
        );
        Ok(tables
            .get(&self.key)
            .map(|t| {
                t.checkpoints
                    .iter()
                    .filter(|(of, _)| *of == want)
                    .map(|(_, c)| c.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            transactional: self.transactional,
            upsert: self.transactional,
            delete: self.transactional,
            single_writer: true,
        }
    }

    async fn begin_partition(&mut self, _partition: &Partition, _mode: WriteMode) -> Result<()> {
        self.staged.clear();
        self.deletes.clear();
        Ok(())
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = crate::conform::conform_batch(batch, &self.specs)?.into_owned();
        self.staged.push(batch);
        Ok(())
    }

    async fn abort_partition(&mut self) -> Result<()> {
        self.staged.clear();
        self.deletes.clear();
        Ok(())
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<()> {
        if !self.transactional {
            return Err(ConnectorError::Unsupported(format!(
                "table {} takes appends only (transactional: false): rows cannot be deleted",
                self.table
            )));
        }
        self.deletes.push(keys.clone());
        Ok(())
    }

    async fn commit_partition(
        &mut self,
        run: &RunIdentity,
        partition: &Partition,
    ) -> Result<WriteStats> {
        if !self.transactional {
            return self.append_under_token(CommitToken::of(run, partition));
        }
        let staged = concat(&self.schema, &std::mem::take(&mut self.staged))?;
        let deletes = std::mem::take(&mut self.deletes);
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let mut tables = tables();
        let table = tables.get_mut(&self.key).ok_or_else(|| self.dropped())?;
        // The table's rows by key: (row of the batch they are in, which batch).
        let current = table.rows.clone();
        let mut by_key: BTreeMap<OwnedRow, (usize, usize)> = self
            .rows_of(&current, &self.keys)?
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, (0, i)))
            .collect();
        let mut stats = WriteStats::default();
        for keys in &deletes {
            let key_columns: Vec<usize> = (0..keys.num_columns()).collect();
            let converter = {
                let fields = keys
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect();
                RowConverter::new(fields)?
            };
            let arrays: Vec<_> = key_columns
                .iter()
                .map(|i| keys.column(*i).clone())
                .collect();
            for k in converter.convert_columns(&arrays)?.iter() {
                if by_key.remove(&k.owned()).is_some() {
                    stats.deleted += 1;
                }
            }
        }
        let current_rows = self.rows_of(&current, &all)?;
        let staged_rows = self.rows_of(&staged, &all)?;
        for (i, k) in self.rows_of(&staged, &self.keys)?.into_iter().enumerate() {
            match by_key.insert(k, (1, i)) {
                None => stats.inserted += 1,
                Some((0, old)) if current_rows[old] == staged_rows[i] => stats.unchanged += 1,
                Some(_) => stats.updated += 1,
            }
        }
        // Rebuilt in key order, as a keyed table reads back.
        let both = concat(&self.schema, &[current.clone(), staged.clone()])?;
        let offset = current.num_rows();
        let picks: UInt32Array = by_key
            .values()
            .map(|(from, i)| (if *from == 0 { *i } else { offset + i }) as u32)
            .collect();
        table.rows = take_record_batch(&both, &picks)?;
        put_checkpoint(
            table,
            run,
            &partition.id,
            staged.num_rows() as u64,
            &self.identity,
        );
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
        if checkpoint_lost(&self.key, &partition.id) {
            return Err(ConnectorError::Other(format!(
                "fault injected: the checkpoint of partition {} is lost",
                partition.id
            )));
        }
        let mut tables = tables();
        let table = tables.get_mut(&self.key).ok_or_else(|| self.dropped())?;
        put_checkpoint(table, run, &partition.id, rows, &self.identity);
        Ok(())
    }
}

impl MemorySink {
    /// The non-transactional commit: the staged rows appended, unless
    /// `token` was committed before, in which case nothing is written.
    fn append_under_token(&mut self, token: CommitToken) -> Result<WriteStats> {
        let staged = concat(&self.schema, &std::mem::take(&mut self.staged))?;
        let rows = staged.num_rows() as u64;
        self.committed = Some((token.partition_id.clone(), rows));
        let mut tables = tables();
        let table = tables.get_mut(&self.key).ok_or_else(|| self.dropped())?;
        if table.tokens.contains(&token) {
            tracing::info!(
                token = %token.as_label(),
                "partition already committed under its token; nothing written"
            );
            return Ok(WriteStats::default());
        }
        table.rows = concat(&self.schema, &[table.rows.clone(), staged])?;
        table.tokens.insert(token);
        Ok(WriteStats {
            inserted: rows,
            ..WriteStats::default()
        })
    }

    fn dropped(&self) -> ConnectorError {
        ConnectorError::Schema(format!("table {} was dropped during the run", self.table))
    }
}

/// Records (replacing any earlier one of the pipeline's strategy) that
/// `partition_id` of `run` is committed with `rows` rows.
fn put_checkpoint(
    table: &mut MemTable,
    run: &RunIdentity,
    partition_id: &str,
    rows: u64,
    identity: &str,
) {
    table.checkpoints.retain(|((p, s, _), c)| {
        !(p == &run.pipeline && s == &run.strategy && c.partition_id == partition_id)
    });
    table.checkpoints.push((
        (
            run.pipeline.clone(),
            run.strategy.clone(),
            run.run_id.clone(),
        ),
        Checkpoint {
            partition_id: partition_id.to_string(),
            rows,
            fingerprint: Some(run.fingerprint.clone()),
            table_identity: Some(identity.to_string()),
        },
    ));
}
