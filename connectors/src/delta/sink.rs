//! Writing a Delta table. Delta has no transaction spanning a table and a
//! checkpoint elsewhere, so a partition commits its rows as one Delta
//! commit carrying a `txn` action (the partition's commit token as its
//! application id): a partition replayed after a crash between that commit
//! and its checkpoint finds its txn in the log and writes nothing. The
//! checkpoint follows, as a small file under the table's `_synchub/`
//! folder, which Delta readers and VACUUM leave alone.
//!
//! A first load into an empty table appends; any other run merges by key
//! (Delta MERGE), the hash strategy's deletes inside the same MERGE, so a
//! partition is one commit whatever it does.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use std::ops::Not;

use deltalake::datafusion::common::Column;
use deltalake::datafusion::logical_expr::{binary_expr, Operator};
use deltalake::datafusion::prelude::{Expr, SessionContext};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, ObjectStore, Path as StorePath};
use futures_util::TryStreamExt;
use planner::model::TableRef;
use planner::partition::Partition;
use planner::types::ColumnSpec;
use serde::{Deserialize, Serialize};

use super::table::{self, TableLocation};
use crate::{
    Checkpoint, CommitToken, ConnectorError, Result, RunIdentity, Sink, SinkCapabilities,
    WriteMode, WriteStats,
};

/// The version every partition's txn is committed under: each partition of
/// each run has an application id of its own (see [`app_id`]), so the one
/// version says "committed".
const TXN_VERSION: i64 = 1;

/// The column a MERGE's source rows carry to tell deletes from upserts.
const DELETE_FLAG: &str = "__synchub_delete";

pub struct DeltaSink {
    location: TableLocation,
    specs: Vec<ColumnSpec>,
    /// The batches' schema as the table stores them.
    schema: SchemaRef,
    table: Option<DeltaTable>,
    staged: Vec<RecordBatch>,
    deletes: Vec<RecordBatch>,
    empty_at_start: bool,
    identity: String,
    /// The partition the last commit wrote, and its rows, for
    /// `record_checkpoint`.
    committed: Option<(String, u64)>,
}

/// A checkpoint as its file holds it.
#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    partition_id: String,
    rows: u64,
    fingerprint: String,
    table_identity: String,
}

/// The txn application id of a partition's commit: pipeline, strategy and
/// the commit token (run and partition), so a resumed run (same run id)
/// meets its own and no other run's.
pub fn app_id(run: &RunIdentity, partition: &Partition) -> String {
    format!(
        "{}:{}:{}",
        run.pipeline,
        run.strategy,
        CommitToken::of(run, partition).as_label()
    )
}

impl DeltaSink {
    pub fn open(table: &TableRef, columns: &[ColumnSpec]) -> Result<DeltaSink> {
        // Refuses a column Delta cannot hold before anything is created.
        table::delta_fields(columns)?;
        Ok(DeltaSink {
            location: TableLocation::of(table)?,
            specs: columns.to_vec(),
            schema: table::stored_schema(columns),
            table: None,
            staged: Vec::new(),
            deletes: Vec::new(),
            empty_at_start: false,
            identity: String::new(),
            committed: None,
        })
    }

    fn table(&self) -> Result<&DeltaTable> {
        self.table
            .as_ref()
            .ok_or_else(|| ConnectorError::Other("Delta sink used before prepare".into()))
    }

    /// The table at its latest version.
    async fn latest(&mut self) -> Result<DeltaTable> {
        let mut table = self.table()?.clone();
        table
            .update_state()
            .await
            .map_err(|e| self.location.error(e))?;
        Ok(table)
    }

    fn check_columns(&self, have: &Schema) -> Result<()> {
        let mut problems = Vec::new();
        for c in &self.specs {
            match have.field_with_name(&c.name) {
                Err(_) => problems.push(format!("column \"{}\" is missing", c.name)),
                Ok(f) if !table::stored_type_matches(f.data_type(), c) => problems.push(format!(
                    "column \"{}\" is {}, the pipeline writes {}",
                    c.name,
                    f.data_type(),
                    c.data_type
                )),
                Ok(_) => {}
            }
        }
        for f in have.fields() {
            if !self.specs.iter().any(|c| &c.name == f.name()) {
                problems.push(format!(
                    "column \"{}\" is not in the pipeline's column_map",
                    f.name()
                ));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConnectorError::Schema(format!(
            "{} does not have the pipeline's columns: {}",
            self.location.name,
            problems.join("; ")
        )))
    }

    /// The folder of `run`'s checkpoints, from the root of the table's
    /// object store (which for a local table is the file system's root).
    fn checkpoint_dir(&self, run: &RunIdentity) -> Result<StorePath> {
        let table = StorePath::from_url_path(self.location.url.path())
            .map_err(|e| ConnectorError::Config(format!("{}: {e}", self.location.name)))?;
        Ok([
            "_synchub",
            "checkpoints",
            run.pipeline.as_str(),
            run.strategy.as_str(),
            run.run_id.as_str(),
        ]
        .into_iter()
        .fold(table, |dir, part| dir.join(part)))
    }

    fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        Ok(self.table()?.log_store().root_object_store(None))
    }

    fn key_columns(&self) -> Vec<&ColumnSpec> {
        self.specs.iter().filter(|c| c.unique).collect()
    }

    /// Upserts and deletes as one MERGE source: the staged rows, then each
    /// deleted key with NULL in every other column, flagged.
    fn merge_source(
        &self,
        staged: Vec<RecordBatch>,
        deletes: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        fields.push(Field::new(DELETE_FLAG, DataType::Boolean, false));
        let schema = Arc::new(Schema::new(fields));
        let mut out = Vec::with_capacity(staged.len() + deletes.len());
        for batch in staged {
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(BooleanArray::from(vec![false; batch.num_rows()])));
            out.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        let key_specs: Vec<ColumnSpec> = self.key_columns().into_iter().cloned().collect();
        let key_schema = table::stored_schema(&key_specs);
        for keys in deletes {
            let keys = table::to_stored(&keys, &key_specs, &key_schema)?;
            let n = keys.num_rows();
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.specs.len() + 1);
            let mut next_key = 0;
            for (c, f) in self.specs.iter().zip(self.schema.fields()) {
                if c.unique {
                    columns.push(keys.column(next_key).clone());
                    next_key += 1;
                } else {
                    columns.push(table::nulls(f.data_type(), n));
                }
            }
            columns.push(Arc::new(BooleanArray::from(vec![true; n])));
            out.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        Ok(out)
    }

    async fn merge(
        &mut self,
        table: DeltaTable,
        partition: &Partition,
        staged: Vec<RecordBatch>,
        deletes: Vec<RecordBatch>,
        props: CommitProperties,
    ) -> Result<(DeltaTable, WriteStats)> {
        let staged_rows = table::rows(&staged);
        let source = self.merge_source(staged, deletes)?;
        let ctx = SessionContext::new();
        let source = ctx
            .read_batches(source)
            .map_err(|e| self.location.datafusion_error(e))?;
        let target = |name: &str| Expr::Column(Column::new(Some("target"), name));
        let src = |name: &str| Expr::Column(Column::new(Some("source"), name));
        let keys_equal = self
            .key_columns()
            .into_iter()
            .map(|c| target(&c.name).eq(src(&c.name)))
            .reduce(Expr::and)
            .ok_or_else(|| {
                ConnectorError::Config(format!(
                    "{}: a merge needs a unique column (roles: [unique_column])",
                    self.location.name
                ))
            })?;
        // A range of a key column bounds the target rows a source row can
        // match, so it joins the predicate and Delta skips the files
        // outside it; a range of another column does not (a row can leave
        // it between runs).
        let mut key_ranges = partition.clone();
        key_ranges
            .ranges
            .retain(|(dim, _)| self.specs.iter().any(|c| c.unique && c.name == dim.name));
        let predicate = match table::range_filter(&key_ranges, &self.schema, Some("target"), |d| {
            d.name.clone()
        })? {
            Some(range) => keys_equal.and(range),
            None => keys_equal,
        };
        // A delete takes only a row inside the partition: a row that moved
        // to another partition was written there.
        let flag = src(DELETE_FLAG);
        let delete_when =
            match table::range_filter(partition, &self.schema, Some("target"), |d| d.name.clone())?
            {
                Some(range) => flag.clone().and(range),
                None => flag.clone(),
            };
        let changed = self
            .specs
            .iter()
            .filter(|c| !c.unique)
            .map(|c| binary_expr(target(&c.name), Operator::IsDistinctFrom, src(&c.name)))
            .reduce(Expr::or);
        let specs = self.specs.clone();
        let mut builder = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_commit_properties(props)
            .when_matched_delete(|d| d.predicate(delete_when))
            .map_err(|e| self.location.error(e))?;
        if let Some(changed) = changed {
            let specs = specs.clone();
            builder = builder
                .when_matched_update(|mut u| {
                    u = u.predicate(flag.clone().not().and(changed));
                    for c in specs.iter().filter(|c| !c.unique) {
                        u = u.update(Column::new_unqualified(&c.name), src(&c.name));
                    }
                    u
                })
                .map_err(|e| self.location.error(e))?;
        }
        builder = builder
            .when_not_matched_insert(|mut i| {
                i = i.predicate(flag.clone().not());
                for c in &specs {
                    i = i.set(Column::new_unqualified(&c.name), src(&c.name));
                }
                i
            })
            .map_err(|e| self.location.error(e))?;
        let (table, metrics) = builder.await.map_err(|e| self.location.error(e))?;
        let inserted = metrics.num_target_rows_inserted as u64;
        let updated = metrics.num_target_rows_updated as u64;
        Ok((
            table,
            WriteStats {
                inserted,
                updated,
                unchanged: staged_rows.saturating_sub(inserted + updated),
                deleted: metrics.num_target_rows_deleted as u64,
            },
        ))
    }
}

#[async_trait]
impl Sink for DeltaSink {
    async fn prepare(&mut self) -> Result<()> {
        if self.location.missing_locally() {
            self.location.create_locally()?;
        }
        let table = self.location.open().await?;
        let table = if table::is_not_a_table(&table) {
            table
                .create()
                .with_columns(table::delta_fields(&self.specs)?)
                .with_save_mode(SaveMode::Ignore)
                .await
                .map_err(|e| self.location.error(e))?
        } else {
            table
        };
        let snapshot = table.snapshot().map_err(|e| self.location.error(e))?;
        self.check_columns(&snapshot.snapshot().arrow_schema())?;
        self.empty_at_start = snapshot.log_data().num_files() == 0;
        self.identity = snapshot.metadata().id().to_string();
        self.table = Some(table);
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
            // Delta commits one writer's version at a time; a second lane
            // would only retry conflicts.
            single_writer: true,
        }
    }

    /// The Delta table's id (its metadata action): a table deleted and
    /// created again has another.
    fn table_identity(&self) -> String {
        self.identity.clone()
    }

    async fn checkpoints(&mut self, run: &RunIdentity) -> Result<Vec<Checkpoint>> {
        let store = self.store()?;
        let files: Vec<_> = store
            .list(Some(&self.checkpoint_dir(run)?))
            .try_collect()
            .await
            .map_err(|e| self.location.error(e.into()))?;
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let bytes = store
                .get(&f.location)
                .await
                .map_err(|e| self.location.error(e.into()))?
                .bytes()
                .await
                .map_err(|e| self.location.error(e.into()))?;
            let c: CheckpointFile = serde_json::from_slice(&bytes).map_err(|e| {
                ConnectorError::Other(format!(
                    "{}: checkpoint file {} cannot be read: {e}",
                    self.location.name, f.location
                ))
            })?;
            out.push(Checkpoint {
                partition_id: c.partition_id,
                rows: c.rows,
                fingerprint: Some(c.fingerprint),
                table_identity: Some(c.table_identity),
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
        self.staged
            .push(table::to_stored(&batch, &self.specs, &self.schema)?);
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
        let rows = table::rows(&staged);
        self.committed = Some((partition.id.clone(), rows));
        if rows == 0 && table::rows(&deletes) == 0 {
            return Ok(WriteStats::default());
        }
        let table = self.latest().await?;
        let app_id = app_id(run, partition);
        let done = table
            .snapshot()
            .map_err(|e| self.location.error(e))?
            .transaction_version(table.log_store().as_ref(), &app_id)
            .await
            .map_err(|e| self.location.error(e))?;
        if let Some(version) = done {
            tracing::info!(
                partition = %partition.id,
                txn = %app_id,
                txn_version = version,
                "partition already committed in the Delta log under its txn; nothing written"
            );
            self.table = Some(table);
            return Ok(WriteStats::default());
        }
        let props = CommitProperties::default()
            .with_application_transaction(Transaction::new(&app_id, TXN_VERSION));
        let (table, stats) = if self.empty_at_start && deletes.is_empty() {
            let table = table
                .write(staged)
                .with_save_mode(SaveMode::Append)
                .with_commit_properties(props)
                .await
                .map_err(|e| self.location.error(e))?;
            (
                table,
                WriteStats {
                    inserted: rows,
                    ..WriteStats::default()
                },
            )
        } else {
            self.merge(table, partition, staged, deletes, props).await?
        };
        self.table = Some(table);
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
        let file = CheckpointFile {
            partition_id: partition.id.clone(),
            rows,
            fingerprint: run.fingerprint.clone(),
            table_identity: self.identity.clone(),
        };
        let body = serde_json::to_vec(&file)
            .map_err(|e| ConnectorError::Other(format!("checkpoint: {e}")))?;
        // The partition id's digest names the file: ids are long and hold
        // any character.
        let name = format!("{}.json", digest(&partition.id));
        let path = self.checkpoint_dir(run)?.join(name.as_str());
        self.store()?
            .put(&path, body.into())
            .await
            .map_err(|e| self.location.error(e.into()))?;
        Ok(())
    }
}

fn digest(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}
