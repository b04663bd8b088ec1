//! `track_moves`: the state store as the memory of each source row's
//! group, and learning every row's group after a run that re-computed
//! every group (full) or every differing one (hash).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use connectors::{open_source, Source};
use operators::track_moves::{remember_window, MovesMemory, RowGroup, RowGroupReader};
use operators::OperatorError;
use planner::model::TableRef;
use planner::partition::Partition;
use planner::{Pipeline, StrategyKind};

use crate::error::EngineError;
use crate::state::StateBackend;

/// The groups of one pipeline's source rows, in its state store.
pub struct StateMovesMemory {
    state: Arc<dyn StateBackend>,
    pipeline: String,
    /// What each partition forgets once committed.
    pending: Mutex<HashMap<String, Vec<RowGroup>>>,
}

impl StateMovesMemory {
    pub fn new(state: Arc<dyn StateBackend>, pipeline: &str) -> StateMovesMemory {
        StateMovesMemory {
            state,
            pipeline: pipeline.to_string(),
            pending: Mutex::new(HashMap::new()),
        }
    }
}

fn operator_error(e: EngineError) -> OperatorError {
    OperatorError::Other(format!("track_moves: {}", e.message()))
}

#[async_trait]
impl MovesMemory for StateMovesMemory {
    async fn groups_of(&self, rows: Vec<String>) -> operators::operator::Result<Vec<RowGroup>> {
        self.state
            .row_groups_of(&self.pipeline, rows)
            .await
            .map_err(operator_error)
    }

    async fn remember(&self, pairs: Vec<RowGroup>) -> operators::operator::Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.state
            .remember_row_groups(&self.pipeline, pairs)
            .await
            .map_err(operator_error)
    }

    fn forget_after_commit(&self, partition: &str, pairs: Vec<RowGroup>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending
                .entry(partition.to_string())
                .or_default()
                .extend(pairs);
        }
    }

    async fn committed(&self, partition: &str) -> operators::operator::Result<()> {
        let pairs = match self.pending.lock() {
            Ok(mut pending) => pending.remove(partition).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if pairs.is_empty() {
            return Ok(());
        }
        self.state
            .forget_row_groups(&self.pipeline, pairs)
            .await
            .map_err(operator_error)
    }
}

/// Whether `pipeline`'s delta strategies remember rows' groups.
pub fn tracks_moves(pipeline: &Pipeline) -> bool {
    pipeline.aggregate.is_some()
        && pipeline
            .strategies
            .iter()
            .any(|s| s.delta.as_ref().is_some_and(|d| d.track_moves))
}

/// The source's rows as `track_moves` reads them (their key and the
/// columns the group keys read), and how their groups are computed.
pub fn row_group_source(
    pipeline: &Pipeline,
) -> Result<(TableRef, Vec<planner::model::MappedColumn>, RowGroupReader), EngineError> {
    let aggregate = pipeline.aggregate.as_ref().ok_or_else(|| {
        EngineError::Unsupported("track_moves is for aggregate syncs".to_string())
    })?;
    let columns = aggregate.moves_columns().ok_or_else(|| {
        EngineError::Unsupported(
            "track_moves needs the source's row key and typed key columns (the planner's bug)"
                .to_string(),
        )
    })?;
    let row_key = aggregate.row_key.clone().unwrap_or_default();
    let reader =
        RowGroupReader::new(&row_key, &aggregate.keys, &pipeline.columns).map_err(|source| {
            EngineError::Operator {
                operator: "track_moves".into(),
                source,
            }
        })?;
    let mut rows = pipeline.source.clone();
    rows.grouped = None;
    Ok((rows, columns, reader))
}

/// Opens the source as `track_moves` reads it.
pub async fn open_row_group_source(
    pipeline: &Pipeline,
) -> Result<(Box<dyn Source>, RowGroupReader), EngineError> {
    let (table, columns, reader) = row_group_source(pipeline)?;
    let mut source = open_source(&table, &columns).await?;
    source.check().await?;
    Ok((source, reader))
}

/// After a complete run of `kind` over a pipeline that tracks moves: a
/// full or hash run left every group as the source makes it, so what is
/// remembered is learned again from every source row (and is then known,
/// which a delta past a watermark needs).
pub async fn learn_after_run(
    pipeline: &Pipeline,
    kind: StrategyKind,
    state: &Arc<dyn StateBackend>,
) -> Result<(), EngineError> {
    if kind == StrategyKind::Delta || !tracks_moves(pipeline) {
        return Ok(());
    }
    let (mut source, reader) = open_row_group_source(pipeline).await?;
    state.clear_row_groups(&pipeline.name).await?;
    let memory = ClearedMemory(StateMovesMemory::new(state.clone(), &pipeline.name));
    let page_rows = planner::model::DEFAULT_PAGE_SIZE;
    remember_window(
        source.as_mut(),
        &reader,
        &memory,
        &Partition::whole(),
        page_rows,
    )
    .await
    .map_err(|source| EngineError::Operator {
        operator: "track_moves".into(),
        source,
    })?;
    state.set_row_groups_learned(&pipeline.name).await
}

/// The memory just cleared: nothing to look up, every pair is new.
struct ClearedMemory(StateMovesMemory);

#[async_trait]
impl MovesMemory for ClearedMemory {
    async fn groups_of(&self, _rows: Vec<String>) -> operators::operator::Result<Vec<RowGroup>> {
        Ok(Vec::new())
    }

    async fn remember(&self, pairs: Vec<RowGroup>) -> operators::operator::Result<()> {
        self.0.remember(pairs).await
    }

    fn forget_after_commit(&self, partition: &str, pairs: Vec<RowGroup>) {
        self.0.forget_after_commit(partition, pairs)
    }

    async fn committed(&self, partition: &str) -> operators::operator::Result<()> {
        self.0.committed(partition).await
    }
}
