//! A delta aggregate with `track_moves`: the groups rows moved out of.
//!
//! A delta sees a changed row where it is now. When an update moved it to
//! another group (another user, another day), the group it left still
//! counts it, and no row of the window touches that group. So each source
//! row's group is remembered (`MovesMemory`, by the row's key); for every
//! row of a window, the groups remembered for it other than its group now
//! are re-computed with the window's (`Fetch` reads them in the same select,
//! `GroupDeletes` deletes those no row makes any more).
//!
//! What is remembered must always include the group the destination counts
//! a row in, whatever fails when: the row's group now is remembered before
//! the partition is written (added, nothing removed), and the groups it
//! left are forgotten only once the partition that re-computed them has
//! committed. A crash in between leaves a group remembered too many, which
//! costs one needless re-computation later, never a wrong group.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use connectors::Source;
use futures_util::StreamExt;
use planner::model::{quote_ident, AggregateColumn, MappedColumn};
use planner::partition::Partition;
use planner::sql_expr::{SqlDialect, SqlExpr};

use crate::message::{ChangeSet, Message};
use crate::operator::{Operator, OperatorError, Output, Result};
use crate::regroup::cast_to_column;

/// A source row's key and a group it is counted in, each as one text (a
/// JSON array of the values as text).
pub type RowGroup = (String, String);

/// Where the groups of a pipeline's source rows are remembered.
#[async_trait]
pub trait MovesMemory: Send + Sync {
    /// Every group remembered for each of `rows`.
    async fn groups_of(&self, rows: Vec<String>) -> Result<Vec<RowGroup>>;
    /// Remembers these pairs too (those remembered already stay as they are).
    async fn remember(&self, pairs: Vec<RowGroup>) -> Result<()>;
    /// Forgets these pairs once `partition` has committed (the engine calls
    /// [`MovesMemory::committed`] then).
    fn forget_after_commit(&self, partition: &str, pairs: Vec<RowGroup>);
    /// `partition` committed: forgets what it was to forget.
    async fn committed(&self, partition: &str) -> Result<()>;
}

/// How a source row's key and group are read from its columns.
#[derive(Clone)]
pub struct RowGroupReader {
    /// The row key's columns, then the group keys, as DataFusion computes
    /// them from a row.
    projection: Vec<AggregateColumn>,
    row_key_len: usize,
    /// The destination's key columns (its unique columns, in its order),
    /// and where each is among the group keys.
    keys: Vec<(MappedColumn, usize)>,
    key_schema: SchemaRef,
}

impl RowGroupReader {
    /// `row_key`: the source's key columns; `group_keys`: the group-by's
    /// keys; `destination`: the destination's columns.
    pub fn new(
        row_key: &[MappedColumn],
        group_keys: &[AggregateColumn],
        destination: &[MappedColumn],
    ) -> Result<RowGroupReader> {
        let mut projection = Vec::with_capacity(row_key.len() + group_keys.len());
        for (i, c) in row_key.iter().enumerate() {
            projection.push(AggregateColumn {
                dest: format!("synchub_row_{i}"),
                expr: SqlExpr::parse(&quote_ident(&c.dest), SqlDialect::Postgres)
                    .map_err(OperatorError::Other)?,
                reads: vec![c.dest.clone()],
            });
        }
        projection.extend(group_keys.iter().cloned());
        let keys = destination
            .iter()
            .filter(|c| c.unique)
            .map(|c| {
                let at = group_keys
                    .iter()
                    .position(|k| k.dest == c.dest)
                    .ok_or_else(|| {
                        OperatorError::Other(format!(
                        "destination key column \"{}\" is not a group_by key (the planner's bug)",
                        c.dest
                    ))
                    })?;
                Ok((c.clone(), at))
            })
            .collect::<Result<Vec<_>>>()?;
        let specs: Vec<_> = keys.iter().map(|(c, _)| c.spec.clone()).collect();
        Ok(RowGroupReader {
            projection,
            row_key_len: row_key.len(),
            keys,
            key_schema: planner::types::arrow_schema(&specs),
        })
    }

    /// The destination's key columns, as the groups' key batches hold them.
    pub fn key_schema(&self) -> SchemaRef {
        self.key_schema.clone()
    }

    /// Each row of `rows` (source rows) as (its key, its group): rows
    /// whose group has a NULL key are left out (such a group stops the
    /// run where it is written, with the column named).
    pub async fn pairs(&self, rows: RecordBatch) -> Result<Vec<RowGroup>> {
        let mut out = Vec::with_capacity(rows.num_rows());
        for projected in compute::project(&self.projection, rows).await? {
            let row_texts: Vec<ArrayRef> = (0..self.row_key_len)
                .map(|i| text_of(projected.column(i)))
                .collect::<Result<_>>()?;
            let group_texts: Vec<ArrayRef> = self
                .keys
                .iter()
                .map(|(c, at)| {
                    let typed = cast_to_column(
                        projected.column(self.row_key_len + at),
                        &c.spec.data_type.arrow_type(),
                        c,
                        "group key",
                    )?;
                    text_of(&typed)
                })
                .collect::<Result<_>>()?;
            for row in 0..projected.num_rows() {
                let (Some(key), Some(group)) = (joined(&row_texts, row), joined(&group_texts, row))
                else {
                    continue;
                };
                out.push((key, group));
            }
        }
        Ok(out)
    }

    /// Groups by their text as `pairs` gives it, as a batch of the
    /// destination's key columns.
    pub fn groups_batch<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a String>,
    ) -> Result<RecordBatch> {
        let parsed: Vec<Vec<String>> = groups
            .into_iter()
            .map(|g| {
                serde_json::from_str::<Vec<String>>(g).map_err(|e| {
                    OperatorError::Other(format!("a remembered group {g} does not read back: {e}"))
                })
            })
            .collect::<Result<_>>()?;
        let columns = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, (c, _))| {
                let texts: StringArray = parsed
                    .iter()
                    .map(|g| g.get(i).map(String::as_str))
                    .collect();
                cast_to_column(
                    &(Arc::new(texts) as ArrayRef),
                    &c.spec.data_type.arrow_type(),
                    c,
                    "group key",
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.key_schema.clone(), columns)?)
    }
}

/// `values` as the destination's column `c` holds them; a value that does
/// not fit is an error naming the column.
fn text_of(values: &ArrayRef) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(values, &DataType::Utf8)?)
}

/// Row `row` of the text columns as one JSON array; `None` when one is NULL.
fn joined(texts: &[ArrayRef], row: usize) -> Option<String> {
    let mut values = Vec::with_capacity(texts.len());
    for t in texts {
        let t = t.as_string::<i32>();
        if t.is_null(row) {
            return None;
        }
        values.push(serde_json::Value::from(t.value(row)));
    }
    Some(serde_json::Value::Array(values).to_string())
}

/// For each window, the groups its rows left: sent to `Fetch` (re-computed
/// with the window's) and `GroupDeletes` (deleted when no row makes them).
pub struct TrackMoves {
    rows: Box<dyn Source>,
    reader: RowGroupReader,
    memory: Arc<dyn MovesMemory>,
    page_rows: usize,
}

impl TrackMoves {
    /// `rows` reads the source's rows (its key and the columns the group
    /// keys read) of each partition.
    pub fn new(
        rows: Box<dyn Source>,
        reader: RowGroupReader,
        memory: Arc<dyn MovesMemory>,
        page_rows: usize,
    ) -> TrackMoves {
        TrackMoves {
            rows,
            reader,
            memory,
            page_rows,
        }
    }
}

/// What `remember_window` found in one window.
pub struct Moves {
    /// Groups rows of the window left, by their text.
    pub left: BTreeSet<String>,
    /// Rows read.
    pub rows: u64,
}

/// Reads every row of `partition` through `rows`, remembers each row's
/// group now, and gives the groups its rows left, with the pairs to forget
/// once they are re-computed.
pub async fn remember_window(
    rows: &mut dyn Source,
    reader: &RowGroupReader,
    memory: &dyn MovesMemory,
    partition: &Partition,
    page_rows: usize,
) -> Result<(Moves, Vec<RowGroup>)> {
    let mut left = BTreeSet::new();
    let mut forget = Vec::new();
    let mut read = 0u64;
    let mut batches = rows.read(partition, page_rows).await?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        read += batch.num_rows() as u64;
        let now: HashMap<String, String> = reader.pairs(batch).await?.into_iter().collect();
        let remembered = memory.groups_of(now.keys().cloned().collect()).await?;
        let known: HashSet<&RowGroup> = remembered.iter().collect();
        let new_pairs: Vec<RowGroup> = now
            .iter()
            .map(|(row, group)| (row.clone(), group.clone()))
            .filter(|pair| !known.contains(pair))
            .collect();
        drop(known);
        for (row, group) in remembered {
            if now.get(&row) != Some(&group) {
                left.insert(group.clone());
                forget.push((row, group));
            }
        }
        memory.remember(new_pairs).await?;
    }
    Ok((Moves { left, rows: read }, forget))
}

#[async_trait]
impl Operator for TrackMoves {
    fn name(&self) -> &'static str {
        "track_moves"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        out.send(Message::PartitionStart(p.clone())).await?;
        let (moves, forget) = remember_window(
            self.rows.as_mut(),
            &self.reader,
            self.memory.as_ref(),
            &p,
            self.page_rows,
        )
        .await?;
        self.memory.forget_after_commit(&p.id, forget);
        let left = self.reader.groups_batch(&moves.left)?;
        let empty = RecordBatch::new_empty(self.reader.key_schema());
        out.changes(Arc::new(ChangeSet {
            all_rows: false,
            unchanged: 0,
            upserts: empty.clone(),
            deletes: empty,
            destination_groups: Some(left),
        }))
        .await
    }
}
