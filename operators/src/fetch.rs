use std::sync::Arc;

use arrow::compute::filter_record_batch;
use async_trait::async_trait;
use connectors::Source;
use futures_util::StreamExt;
use planner::model::MappedColumn;
use planner::partition::Partition;

use crate::keys::KeySet;
use crate::message::{ChangeSet, Message};
use crate::operator::{name_null_key, Operator, OperatorError, Output, Result};
use crate::progress::RunProgress;

/// What starts a read.
pub enum FetchMode {
    /// Every row of each partition, read when the partition starts.
    Partitions,
    /// Only the rows a hash comparison found changed, read when the
    /// partition's `Changes` arrive; `key_columns` index the unique columns.
    Changes { key_columns: Vec<usize> },
    /// An aggregate's groups each partition's rows touch, and those its
    /// `Changes` list (groups rows moved out of, `track_moves`), in one
    /// read once the `Changes` arrive. `keys`: the group-by's keys (the
    /// destination's columns), in the order the source lists them.
    WithListedGroups { keys: Vec<MappedColumn> },
}

/// Reads from the source, already in the destination's schema with every
/// value checked to fit.
pub struct Fetch {
    source: Box<dyn Source>,
    page_rows: usize,
    progress: Arc<RunProgress>,
    mode: FetchMode,
    current: Option<Arc<Partition>>,
}

impl Fetch {
    pub fn new(
        source: Box<dyn Source>,
        page_rows: usize,
        progress: Arc<RunProgress>,
        mode: FetchMode,
    ) -> Self {
        Fetch {
            source,
            page_rows,
            progress,
            mode,
            current: None,
        }
    }

    async fn read(
        &mut self,
        p: &Partition,
        keys: Option<(&KeySet, &[usize])>,
        out: &mut Output,
    ) -> Result<()> {
        let mut batches = self.source.read(p, self.page_rows).await?;
        let mut rows_before = 0;
        while let Some(batch) = batches.next().await {
            let mut batch = batch.map_err(|e| name_null_key(e.into(), &p.id, Some(rows_before)))?;
            rows_before += batch.num_rows();
            RunProgress::add(&self.progress.rows_read, batch.num_rows() as u64);
            if let Some((set, key_columns)) = keys {
                let columns: Vec<_> = key_columns
                    .iter()
                    .map(|&i| batch.column(i).clone())
                    .collect();
                batch = filter_record_batch(&batch, &set.mask(&columns)?)?;
                if batch.num_rows() == 0 {
                    continue;
                }
            }
            out.batch(batch).await?;
        }
        Ok(())
    }
}

impl Fetch {
    /// The partition's touched groups and the listed ones, in one read.
    async fn read_with_listed(
        &mut self,
        keys: &[MappedColumn],
        changes: Arc<ChangeSet>,
        out: &mut Output,
    ) -> Result<()> {
        let Some(p) = self.current.clone() else {
            return Ok(());
        };
        let Some(groups) = changes.destination_groups.clone() else {
            return self.read(&p, None, out).await;
        };
        // For `GroupDeletes`: those no group read replaces are deleted.
        out.changes(changes).await?;
        let columns = keys
            .iter()
            .map(|k| {
                groups.column_by_name(&k.dest).cloned().ok_or_else(|| {
                    OperatorError::Other(format!(
                        "listed groups lack key \"{}\" (an operator's bug)",
                        k.dest
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fields: Vec<_> = keys
            .iter()
            .zip(&columns)
            .map(|(k, c)| arrow::datatypes::Field::new(&k.dest, c.data_type().clone(), true))
            .collect();
        let ordered = arrow::array::RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(fields)),
            columns,
        )?;
        let types: Vec<_> = keys.iter().map(|k| k.spec.data_type).collect();
        let listed = connectors::sql::ListedGroups::of(&ordered, &types)?;
        let mut batches = match self.source.read_groups(&p, &listed, self.page_rows).await? {
            Some(batches) => batches,
            None => {
                return Err(OperatorError::Other(
                    "this source cannot re-compute listed groups, which track_moves needs".into(),
                ))
            }
        };
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| name_null_key(e.into(), &p.id, None))?;
            RunProgress::add(&self.progress.rows_read, batch.num_rows() as u64);
            out.batch(batch).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Operator for Fetch {
    fn name(&self) -> &'static str {
        "fetch"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        out.send(Message::PartitionStart(p.clone())).await?;
        match self.mode {
            FetchMode::Partitions => self.read(&p, None, out).await,
            FetchMode::Changes { .. } | FetchMode::WithListedGroups { .. } => {
                self.current = Some(p);
                Ok(())
            }
        }
    }

    async fn on_changes(&mut self, changes: Arc<ChangeSet>, out: &mut Output) -> Result<()> {
        if let FetchMode::WithListedGroups { keys } = &self.mode {
            let keys = keys.clone();
            return self.read_with_listed(&keys, changes, out).await;
        }
        let FetchMode::Changes { key_columns } = &self.mode else {
            return Ok(());
        };
        let key_columns = key_columns.clone();
        let Some(p) = self.current.clone() else {
            return Ok(());
        };
        if changes.unchanged > 0 {
            out.unchanged(changes.unchanged).await?;
        }
        if changes.destination_groups.is_some() {
            // For `GroupDeletes`, ahead of the groups re-computed here.
            out.changes(changes.clone()).await?;
        }
        if changes.all_rows {
            self.read(&p, None, out).await?;
        } else if changes.upserts.num_rows() > 0 {
            // Select the changed rows by key where the source can; else read
            // the partition and keep them.
            let keyed = match self
                .source
                .read_keys(&p, &changes.upserts, self.page_rows)
                .await?
            {
                Some(mut batches) => {
                    while let Some(batch) = batches.next().await {
                        let batch = batch?;
                        RunProgress::add(&self.progress.rows_read, batch.num_rows() as u64);
                        out.batch(batch).await?;
                    }
                    true
                }
                None => false,
            };
            if !keyed {
                let set = KeySet::new(changes.upserts.columns())?;
                self.read(&p, Some((&set, &key_columns)), out).await?;
            }
        }
        if changes.deletes.num_rows() > 0 {
            out.delete(changes.deletes.clone()).await?;
        }
        Ok(())
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        self.current = None;
        out.send(Message::PartitionEnd(p)).await
    }
}
