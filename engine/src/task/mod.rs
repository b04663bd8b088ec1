//! A partition task: everything an executor needs to sync one partition,
//! in a form that travels (JSON). A coordinator makes one per partition to
//! do; the in-memory queue hands them to executors of the same process, a
//! queue shared by processes (Redis) to workers elsewhere, which need no
//! pipeline file, no datastores file and no state directory.
//!
//! Datastores travel as written (`${VAR}` references unexpanded): a worker
//! resolves them from its own environment, and a task never holds a
//! secret's value (one written in clear in the datastores file is refused
//! when the task is serialized).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use connectors::{RunIdentity, WriteMode};
use planner::datastores::WrittenConnection;
use planner::model::{Join, MappedColumn, TableRef};
use planner::partition::{Partition, PartitionDimension};
use planner::types::ColumnSpec;
use planner::{ConnectorTypes, Datastore, OperatorSpec, Pipeline, Plan, SqlDialect, SqlExpr};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::EngineError;

/// The layout of [`TaskRun`]; a worker refuses a task of another.
pub const TASK_FORMAT: u32 = 1;

/// One partition of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionTask {
    /// What every task of the run shares (one copy in memory).
    pub run: Arc<TaskRun>,
    pub partition: Partition,
}

impl PartitionTask {
    pub fn to_json(&self) -> Result<String, EngineError> {
        serde_json::to_string_pretty(self).map_err(|e| EngineError::Task(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<PartitionTask, EngineError> {
        let task: PartitionTask =
            serde_json::from_str(text).map_err(|e| EngineError::Task(e.to_string()))?;
        if task.run.format != TASK_FORMAT {
            return Err(EngineError::Task(format!(
                "the task is of format {}, this synchub reads format {TASK_FORMAT}",
                task.run.format
            )));
        }
        Ok(task)
    }
}

/// The run a task belongs to: the pipeline as loaded (columns with their
/// resolved types), the operators the plan runs against this destination,
/// and the identity its checkpoints are written under.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRun {
    pub format: u32,
    pub identity: RunIdentity,
    pub pipeline: ResolvedPipeline,
    /// The plan's operators, in order, as decided by the coordinator's
    /// probe of the destination.
    pub operators: Vec<OperatorSpec>,
    /// The finer partitions a hash comparison cuts into (the plan's
    /// `change_detection` node, which does not serialize them itself).
    pub secondary: Vec<PartitionDimension>,
    pub channel_rows: usize,
    pub write_mode: WriteMode,
    /// The destination was empty when the run started: every task writes
    /// as into an empty table (PostgreSQL: `COPY` straight in), as the
    /// coordinator's own lanes would.
    #[serde(default)]
    pub destination_started_empty: bool,
}

/// A pipeline after loading: what a worker would otherwise read from the
/// pipeline file, the datastores file and the source's catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedPipeline {
    pub name: String,
    /// The pipeline file it came from, for messages only.
    pub file: PathBuf,
    pub source: TaskTable,
    pub destination: TaskTable,
    pub columns: Vec<TaskColumn>,
    pub batch_rows: usize,
    /// Every datastore the tables name, as written.
    pub datastores: BTreeMap<String, TaskDatastore>,
}

/// A table reference; its datastore by name, its conditions as SQL text
/// parsed again in the datastore's dialect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTable {
    pub datastore: String,
    pub schema: Option<String>,
    pub table: String,
    pub alias: Option<String>,
    pub joins: Vec<TaskJoin>,
    pub filters: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskJoin {
    pub schema: Option<String>,
    pub table: String,
    pub alias: Option<String>,
    pub on: String,
    pub kind: String,
}

/// A mapped column with its destination type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskColumn {
    pub spec: ColumnSpec,
    #[serde(flatten)]
    pub column: MappedColumn,
}

/// A datastore as written; `None` for one not read from a datastores file
/// (made by a test), which can run in this process but not travel.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct TaskDatastore(pub Option<WrittenConnection>);

impl Serialize for TaskDatastore {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let Some(written) = &self.0 else {
            return Err(S::Error::custom(
                "a datastore not read from a datastores file cannot be put in a task",
            ));
        };
        if let Some(at) = written.secret_in_clear() {
            return Err(S::Error::custom(format!(
                "{at} of a {} datastore is a secret written in clear; a task carries datastores as written, \
                 so write it as a ${{VAR}} reference (set on every worker) to run it elsewhere",
                written.kind
            )));
        }
        written.serialize(s)
    }
}

/// What an executor runs: a [`TaskRun`] with its datastores resolved.
#[derive(Debug, Clone)]
pub struct RunWork {
    pub identity: RunIdentity,
    pub pipeline: Pipeline,
    pub operators: Vec<OperatorSpec>,
    pub channel_rows: usize,
    pub write_mode: WriteMode,
    /// See [`TaskRun::destination_started_empty`]; set by the coordinator.
    pub destination_started_empty: bool,
}

impl RunWork {
    /// The work of a run this process plans: `plan` as it runs against the
    /// destination (`Plan::for_destination`).
    pub fn of(pipeline: &Pipeline, plan: &Plan, identity: RunIdentity) -> RunWork {
        let write_mode = plan
            .operators
            .iter()
            .find_map(|op| match op {
                OperatorSpec::Populate {
                    rows_are_changes: true,
                } => Some(WriteMode::Changes),
                _ => None,
            })
            .unwrap_or(if plan.replaces_destination() {
                WriteMode::Replace
            } else {
                WriteMode::Merge
            });
        RunWork {
            identity,
            pipeline: pipeline.clone(),
            operators: plan.operators.clone(),
            channel_rows: plan.channel_rows,
            write_mode,
            destination_started_empty: false,
        }
    }

    /// The form that travels.
    pub fn to_task_run(&self) -> TaskRun {
        let p = &self.pipeline;
        let mut datastores = BTreeMap::new();
        for table in [&p.source, &p.destination] {
            datastores.insert(
                table.datastore.name.clone(),
                TaskDatastore(table.datastore.written().cloned()),
            );
        }
        TaskRun {
            format: TASK_FORMAT,
            identity: self.identity.clone(),
            pipeline: ResolvedPipeline {
                name: p.name.clone(),
                file: p.file.clone(),
                source: TaskTable::of(&p.source),
                destination: TaskTable::of(&p.destination),
                columns: p
                    .columns
                    .iter()
                    .map(|c| TaskColumn {
                        spec: c.spec.clone(),
                        column: c.clone(),
                    })
                    .collect(),
                batch_rows: p.batch_rows,
                datastores,
            },
            operators: self.operators.clone(),
            secondary: self
                .operators
                .iter()
                .find_map(|op| match op {
                    OperatorSpec::ChangeDetection { secondary, .. } => Some(secondary.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
            channel_rows: self.channel_rows,
            write_mode: self.write_mode,
            destination_started_empty: self.destination_started_empty,
        }
    }
}

impl TaskRun {
    /// The run's work, its datastores resolved by `types` with `${VAR}`s
    /// from `lookup` (a worker: its own environment).
    pub fn resolve(
        &self,
        types: &ConnectorTypes,
        lookup: impl Fn(&str) -> Option<String> + Clone + 'static,
    ) -> Result<RunWork, EngineError> {
        let p = &self.pipeline;
        let mut stores: BTreeMap<&str, Datastore> = BTreeMap::new();
        for (name, written) in &p.datastores {
            let Some(written) = &written.0 else {
                return Err(EngineError::Task(format!(
                    "datastore {name} is not in the task"
                )));
            };
            stores.insert(name, written.resolve(name, types, lookup.clone())?);
        }
        let table = |t: &TaskTable| -> Result<TableRef, EngineError> {
            let datastore = stores.get(t.datastore.as_str()).ok_or_else(|| {
                EngineError::Task(format!("datastore {} is not in the task", t.datastore))
            })?;
            t.to_table_ref(datastore.clone())
        };
        let mut operators = self.operators.clone();
        for op in &mut operators {
            if let OperatorSpec::ChangeDetection { secondary, .. } = op {
                secondary.clone_from(&self.secondary);
            }
        }
        Ok(RunWork {
            identity: self.identity.clone(),
            pipeline: Pipeline {
                file: p.file.clone(),
                name: p.name.clone(),
                description: None,
                enabled: true,
                source: table(&p.source)?,
                destination: table(&p.destination)?,
                columns: p
                    .columns
                    .iter()
                    .map(|c| MappedColumn {
                        spec: c.spec.clone(),
                        ..c.column.clone()
                    })
                    .collect(),
                strategies: Vec::new(),
                max_concurrent_partitions: 1,
                batch_rows: p.batch_rows,
                default_partitioning: Vec::new(),
                aggregate: None,
            },
            operators,
            channel_rows: self.channel_rows,
            write_mode: self.write_mode,
            destination_started_empty: self.destination_started_empty,
        })
    }
}

impl TaskTable {
    fn of(t: &TableRef) -> TaskTable {
        TaskTable {
            datastore: t.datastore.name.clone(),
            schema: t.schema.clone(),
            table: t.table.clone(),
            alias: t.alias.clone(),
            joins: t
                .joins
                .iter()
                .map(|j| TaskJoin {
                    schema: j.schema.clone(),
                    table: j.table.clone(),
                    alias: j.alias.clone(),
                    on: j.on.to_string(),
                    kind: j.kind.clone(),
                })
                .collect(),
            filters: t.filters.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn to_table_ref(&self, datastore: Datastore) -> Result<TableRef, EngineError> {
        let dialect = SqlDialect::of(&datastore);
        let parse = |text: &str| {
            SqlExpr::parse(text, dialect)
                .map_err(|e| EngineError::Task(format!("condition {text:?}: {e}")))
        };
        Ok(TableRef {
            schema: self.schema.clone(),
            table: self.table.clone(),
            alias: self.alias.clone(),
            joins: self
                .joins
                .iter()
                .map(|j| {
                    Ok(Join {
                        schema: j.schema.clone(),
                        table: j.table.clone(),
                        alias: j.alias.clone(),
                        on: parse(&j.on)?,
                        kind: j.kind.clone(),
                    })
                })
                .collect::<Result<_, EngineError>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| parse(f))
                .collect::<Result<_, _>>()?,
            datastore,
            grouped: None,
        })
    }
}

/// What became of one partition, as an executor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReport {
    pub run_id: String,
    pub partition_id: String,
    #[serde(flatten)]
    pub outcome: PartitionOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PartitionOutcome {
    /// Its rows and its checkpoint are in the destination.
    Committed(connectors::WriteStats),
    /// Not committed; a later run does it again.
    Failed { error: String },
}

#[cfg(test)]
mod tests;
