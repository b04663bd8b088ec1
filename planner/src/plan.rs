//! A pipeline plus a strategy compiled into a DAG of operator specs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{PlannerError, Result};
use crate::model::{AggregateEngine, Pipeline, Strategy, StrategyKind};
use crate::partition::{Partition, PartitionDimension, Step};

/// What each operator of the DAG is told to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OperatorSpec {
    /// Emits the partitions still to do, in order.
    PartitionSource,
    /// Compares checksums per partition, bisects those that differ and
    /// emits the keys to upsert and delete (hash strategy).
    ChangeDetection {
        leaf_rows: u64,
        delete_missing: bool,
        #[serde(skip)]
        secondary: Vec<PartitionDimension>,
        /// Compares whole partitions only (equal ones are skipped, the
        /// others rewritten whole) over every column: a full run into a
        /// populated destination.
        whole_partitions: bool,
    },
    /// An aggregate's hash strategy: compares each partition's source rows
    /// (the sum of their row hashes) with its groups' stored checksums, and
    /// sends on to be re-computed only the partitions (or, with
    /// `secondary`, the finer ranges) that differ, each with the keys of
    /// its destination groups, so the groups no source row makes any more
    /// are deleted.
    GroupChecksums {
        /// A differing partition holding more source rows than this is cut
        /// by `secondary` first.
        leaf_rows: u64,
        #[serde(skip)]
        secondary: Vec<PartitionDimension>,
    },
    /// Deletes the destination groups of a re-computed range that no
    /// group re-computed from the source replaced.
    GroupDeletes,
    /// A delta aggregate with `track_moves`: reads each window's rows'
    /// keys and groups, remembers them, and sends on the groups rows left
    /// (re-computed with the window's, or deleted when no row makes them).
    TrackMoves,
    /// Reads each partition from the source as Arrow batches of `page_rows`;
    /// with `only_changes`, only the rows change detection named.
    Fetch {
        page_rows: usize,
        only_changes: bool,
    },
    /// An aggregate sync's `datafusion` engine: groups the rows of each
    /// partition's touched groups in DataFusion, emitting the groups in the
    /// destination's columns once the partition's rows are in.
    Regroup,
    /// Re-cuts batches to `target_rows` so the sink writes in efficient sizes.
    Batcher { target_rows: usize },
    /// Upserts into the destination and commits each partition with its
    /// checkpoint. `rows_are_changes`: the rows given are known to differ
    /// from the destination's or to be new, so the writer need not test
    /// which are equal first (an equal row is never counted as updated).
    Populate { rows_are_changes: bool },
}

/// What a probe of the destination found before a run, which decides the
/// nodes that depend on it (see [`Plan::for_destination`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationProbe {
    /// The destination table holds no rows (or does not exist yet).
    pub empty: bool,
    /// A delta run starts from a stored watermark.
    pub from_watermark: bool,
}

impl OperatorSpec {
    pub fn name(&self) -> &'static str {
        match self {
            OperatorSpec::PartitionSource => "partition_source",
            OperatorSpec::ChangeDetection { .. } => "change_detection",
            OperatorSpec::Fetch { .. } => "fetch",
            OperatorSpec::Regroup => "regroup",
            OperatorSpec::GroupChecksums { .. } => "group_checksums",
            OperatorSpec::GroupDeletes => "group_deletes",
            OperatorSpec::TrackMoves => "track_moves",
            OperatorSpec::Batcher { .. } => "batcher",
            OperatorSpec::Populate { .. } => "populate",
        }
    }
}

/// Rows a channel between two operators may hold. With the batch size this
/// bounds a run's memory whatever the table size.
pub const DEFAULT_CHANNEL_ROWS: usize = 100_000;

/// Bisection stops at ranges of at most this many rows; their row hashes
/// are then compared by key in memory.
pub const HASH_LEAF_ROWS: u64 = 100_000;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub pipeline: String,
    pub strategy: String,
    pub kind: StrategyKind,
    /// A linear chain today; fan-out (enrich, dedup) will make it a DAG.
    pub operators: Vec<OperatorSpec>,
    #[serde(skip)]
    pub dimensions: Vec<PartitionDimension>,
    /// For a delta strategy: the cursor that cuts the window.
    #[serde(skip)]
    pub delta: Option<crate::model::DeltaSpec>,
    pub channel_rows: usize,
    /// Copies of the chain writing partitions at once
    /// (`max_concurrent_partitions`; fewer when there are fewer partitions
    /// or the destination takes one writer).
    pub lanes: usize,
    /// The strategy deletes destination rows missing from the source
    /// (hash, and full with `delete_missing: true`): [`Plan::deletes_missing`].
    #[serde(skip)]
    delete_missing: bool,
    /// An aggregate sync: how its groups are re-computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregatePlan>,
}

/// How an aggregate run re-computes the groups a partition's rows touch.
#[derive(Debug, Clone, Serialize)]
pub struct AggregatePlan {
    pub engine: AggregateEngine,
    /// Why that engine (`auto`'s choice, or the config's word).
    pub why: &'static str,
    /// The group-by, in the pipeline's spelling (the source renders its
    /// own dialect's from the same trees).
    pub sql: String,
    /// How the rows of the groups a partition touches are found.
    pub groups_found: &'static str,
}

/// How an aggregate run of `kind` over a source of connector type `source`
/// finds the rows of the groups a partition touches (the connectors do as
/// this says: `connectors::sql::reader`, the Delta source).
fn groups_found(kind: StrategyKind, source: &str) -> &'static str {
    match (kind, source) {
        (StrategyKind::Full, _) => "every group, from every row",
        (StrategyKind::Hash, _) => {
            "a differing range's rows: its ranges are of the group keys, so they hold whole groups"
        }
        (_, "postgres") => {
            "each window's distinct keys are read first and bound; their groups are looked up in an index that starts with the key columns when a sample says their rows are at most 1/40 of the table, else matched by hashing the table's keys"
        }
        (_, "sqlite" | "mysql") => "a semi-join from each window's distinct keys to the table",
        _ => "DataFusion semi-joins the table to each window's distinct keys",
    }
}

impl Plan {
    /// Compiles `pipeline` for `strategy` (by name, or the default).
    pub fn compile(pipeline: &Pipeline, strategy: Option<&str>) -> Result<Plan> {
        let st = select_strategy(pipeline, strategy)?;
        if let Some(path) = st.unsupported.first() {
            return Err(PlannerError::NotSupported {
                file: pipeline.file.clone(),
                path: path.clone(),
            });
        }
        let page_rows = st.page_size;
        // A strategy's own batch size wins over the pipeline's batcher.
        let target_rows = st.batch_rows.unwrap_or(pipeline.batch_rows);
        if let Some(a) = &pipeline.aggregate {
            let (engine, why) = a.resolved_engine(pipeline.source.datastore.connection.kind());
            let hash = st.kind == StrategyKind::Hash;
            let track_moves = st.delta.as_ref().is_some_and(|d| d.track_moves);
            let mut operators = vec![OperatorSpec::PartitionSource];
            if track_moves {
                operators.push(OperatorSpec::TrackMoves);
            }
            if hash {
                operators.push(OperatorSpec::GroupChecksums {
                    leaf_rows: HASH_LEAF_ROWS,
                    secondary: st.secondary.clone(),
                });
            }
            operators.push(OperatorSpec::Fetch {
                page_rows,
                only_changes: hash,
            });
            if engine == AggregateEngine::Datafusion {
                operators.push(OperatorSpec::Regroup);
            }
            if hash || track_moves {
                operators.push(OperatorSpec::GroupDeletes);
            }
            operators.extend([
                OperatorSpec::Batcher { target_rows },
                OperatorSpec::Populate {
                    rows_are_changes: false,
                },
            ]);
            return Ok(Plan {
                pipeline: pipeline.name.clone(),
                strategy: st.name.clone(),
                kind: st.kind,
                operators,
                dimensions: st.primary.clone(),
                delta: st.delta.clone(),
                channel_rows: DEFAULT_CHANNEL_ROWS.max(target_rows).max(page_rows),
                // One lane: two windows may touch the same groups, and two
                // transactions upserting them in different orders would
                // deadlock each other.
                lanes: 1,
                // A hash run plans the ranges only the destination has
                // groups in too: their groups are deleted.
                delete_missing: hash,
                aggregate: Some(AggregatePlan {
                    engine,
                    why,
                    sql: a.select_sql(&pipeline.source.display_name()),
                    groups_found: groups_found(
                        st.kind,
                        pipeline.source.datastore.connection.kind(),
                    ),
                }),
            });
        }
        Ok(Plan {
            pipeline: pipeline.name.clone(),
            strategy: st.name.clone(),
            kind: st.kind,
            operators: if st.kind == StrategyKind::Hash {
                vec![
                    OperatorSpec::PartitionSource,
                    OperatorSpec::ChangeDetection {
                        leaf_rows: HASH_LEAF_ROWS,
                        delete_missing: st.delete_missing,
                        secondary: st.secondary.clone(),
                        whole_partitions: false,
                    },
                    OperatorSpec::Fetch {
                        page_rows,
                        only_changes: true,
                    },
                    OperatorSpec::Batcher { target_rows },
                    OperatorSpec::Populate {
                        rows_are_changes: true,
                    },
                ]
            } else {
                vec![
                    OperatorSpec::PartitionSource,
                    OperatorSpec::Fetch {
                        page_rows,
                        only_changes: false,
                    },
                    OperatorSpec::Batcher { target_rows },
                    OperatorSpec::Populate {
                        rows_are_changes: false,
                    },
                ]
            },
            dimensions: st.primary.clone(),
            delta: st.delta.clone(),
            channel_rows: DEFAULT_CHANNEL_ROWS.max(target_rows).max(page_rows),
            lanes: pipeline.max_concurrent_partitions.max(1),
            delete_missing: st.delete_missing,
            aggregate: None,
        })
    }

    /// The plan as it runs against a destination in the state `probe`
    /// found: every node there, nothing added or rewired at run time.
    ///
    /// A full run into a populated destination compares partition checksums
    /// over every column first and fetches only the partitions that differ
    /// (not with a stored row hash, which covers the hash columns only, so
    /// whole-row checksums could never match it). With `delete_missing`, it
    /// always compares (with a stored row hash every partition differs):
    /// a differing partition is then compared range by range, and each
    /// differing range is rewritten whole with the destination rows the
    /// source lacks there deleted. A delta past a stored
    /// watermark without lookback reads rows changed since (and the few on
    /// the watermark), and a hash run fetches only differing rows: their
    /// writer need not test rows for equality first.
    pub fn for_destination(mut self, pipeline: &Pipeline, probe: DestinationProbe) -> Plan {
        // An aggregate re-computes groups: they are merged (equal groups
        // left as they are), never compared row by row first.
        if self.aggregate.is_some() {
            return self;
        }
        let compare_first = self.kind == StrategyKind::Full
            && !probe.empty
            && (self.delete_missing
                || pipeline
                    .columns
                    .iter()
                    .all(|c| c.stored_hash == crate::model::StoredHash::No));
        let rows_are_changes = match self.kind {
            StrategyKind::Hash => true,
            StrategyKind::Delta => {
                probe.from_watermark && self.delta.as_ref().is_some_and(|d| d.lookback == 0)
            }
            StrategyKind::Full => false,
        };
        for op in &mut self.operators {
            match op {
                OperatorSpec::Populate {
                    rows_are_changes: r,
                } => *r = rows_are_changes,
                OperatorSpec::Fetch { only_changes, .. } if compare_first => *only_changes = true,
                _ => {}
            }
        }
        if compare_first {
            self.operators.insert(
                1,
                OperatorSpec::ChangeDetection {
                    leaf_rows: HASH_LEAF_ROWS,
                    delete_missing: self.delete_missing,
                    secondary: Vec::new(),
                    whole_partitions: true,
                },
            );
        }
        self
    }

    /// Whether a run's rows are every row the destination is to hold, so
    /// the others are deleted as it commits: a full aggregate run without
    /// partitions writes every group, and a group whose source rows are all
    /// gone is no group any more.
    pub fn replaces_destination(&self) -> bool {
        self.aggregate.is_some() && self.kind == StrategyKind::Full && self.dimensions.is_empty()
    }

    /// Whether a run deletes destination rows missing from the source.
    pub fn deletes_missing(&self) -> bool {
        // Not read from the chain: a full run gets its comparison only from
        // `for_destination`, and partitions are planned before it.
        self.delete_missing
    }

    /// The DAG and the partitions it would run, for `synchub plan`: with
    /// them, how many ranges hold rows (more than the partitions when
    /// neighbours were merged) and how many they were chosen from (more
    /// when only the ranges holding rows are planned).
    pub fn describe(&self, partitions: Option<(&[Partition], u128, u128)>) -> String {
        let mut s = format!(
            "pipeline: {}\nstrategy: {} ({})\ndag: {}\n",
            self.pipeline,
            self.strategy,
            self.kind.as_str(),
            self.operators
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(" -> ")
        );
        if self.lanes > 1 {
            s.push_str(&format!(
                "lanes: up to {} (partitions written at once, each lane with its own connections)\n",
                self.lanes
            ));
        }
        if let Some(d) = &self.delta {
            s.push_str(&format!(
                "delta cursor: {} ({}) step {}, lookback {}, NULL cursors {}\n",
                d.cursor.name,
                d.cursor.column,
                step_text(d.cursor.step),
                match d.cursor.kind {
                    crate::types::PartitionKind::Datetime => step_text(Step::Micros(d.lookback)),
                    crate::types::PartitionKind::Integer => d.lookback.to_string(),
                },
                if d.include_nulls {
                    "included"
                } else {
                    "skipped"
                }
            ));
        }
        if let Some(a) = &self.aggregate {
            s.push_str(&format!(
                "aggregate: re-computed by {} ({}), only the groups each partition's rows touch\ngroup-by: {}\ngroups found: {}\n",
                match a.engine {
                    AggregateEngine::Datafusion => "DataFusion over the rows of those groups",
                    _ => "the source's SQL",
                },
                a.why,
                a.sql,
                a.groups_found
            ));
            if self.replaces_destination() {
                s.push_str("full: every group re-computed and merged; groups with no source row left are deleted\n");
            }
            if self.operators.contains(&OperatorSpec::TrackMoves) {
                s.push_str("track_moves: each source row's group is remembered in the state store; the groups a window's rows moved out of are re-computed with the window's, and deleted when no row is left in them\n");
            }
        }
        if self.dimensions.is_empty() && self.delta.is_none() {
            s.push_str("partitioning: none (one partition)\n");
        } else {
            for d in &self.dimensions {
                s.push_str(&format!(
                    "partitioning: {} ({}) step {}\n",
                    d.name,
                    d.column,
                    step_text(d.step)
                ));
            }
        }
        if let Some((parts, holding_rows, ranges)) = partitions {
            if parts.len() as u128 == ranges {
                s.push_str(&format!("partitions: {}\n", parts.len()));
            } else if parts.len() as u128 != holding_rows {
                s.push_str(&format!(
                    "partitions: {} ({holding_rows} ranges holding rows merged), of {ranges} ranges\n",
                    parts.len()
                ));
            } else {
                s.push_str(&format!(
                    "partitions: {} holding rows, of {ranges} ranges\n",
                    parts.len()
                ));
            }
            for p in parts {
                s.push_str(&format!("  {}\n", p.id));
            }
        }
        s
    }
}

pub(crate) fn step_text(step: Step) -> String {
    match step {
        Step::Int(n) => n.to_string(),
        Step::Micros(0) => "0s".to_string(),
        Step::Micros(m) if m % 3_600_000_000 == 0 => format!("{}h", m / 3_600_000_000),
        Step::Micros(m) => format!("{}s", m as f64 / 1e6),
        Step::Months(n) => format!("{n} month(s)"),
        Step::Single => "one range".to_string(),
    }
}

impl fmt::Display for OperatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorSpec::Fetch {
                page_rows,
                only_changes,
            } => write!(
                f,
                "fetch(page={page_rows}{})",
                if *only_changes {
                    ", changed rows only"
                } else {
                    ""
                }
            ),
            OperatorSpec::ChangeDetection {
                whole_partitions: true,
                delete_missing,
                ..
            } => write!(
                f,
                "change_detection(whole partitions, every column{})",
                if *delete_missing {
                    "; differing ranges rewritten, deletes applied"
                } else {
                    ""
                }
            ),
            OperatorSpec::ChangeDetection {
                leaf_rows,
                delete_missing,
                ..
            } => write!(
                f,
                "change_detection(bisect to {leaf_rows} rows, deletes {})",
                if *delete_missing {
                    "applied"
                } else {
                    "ignored"
                }
            ),
            OperatorSpec::Batcher { target_rows } => write!(f, "batcher(rows={target_rows})"),
            OperatorSpec::Populate {
                rows_are_changes: true,
            } => f.write_str("populate(changed rows)"),
            other => f.write_str(other.name()),
        }
    }
}

/// The named strategy, else the first enabled one, else an implicit full sync.
pub fn select_strategy<'a>(
    pipeline: &'a Pipeline,
    name: Option<&str>,
) -> Result<std::borrow::Cow<'a, Strategy>> {
    use std::borrow::Cow;
    match name {
        Some(n) => pipeline
            .strategies
            .iter()
            .find(|s| s.name == n)
            .map(Cow::Borrowed)
            .or_else(|| {
                // `--strategy full` works on a pipeline that lists no full strategy.
                (n == "full").then(|| Cow::Owned(implicit_full(pipeline)))
            })
            .ok_or_else(|| {
                let names: Vec<&str> = pipeline
                    .strategies
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                PlannerError::invalid(
                    &pipeline.file,
                    "strategies",
                    format!(
                        "no strategy named \"{n}\"; defined: {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                )
            }),
        None => Ok(pipeline
            .strategies
            .iter()
            .find(|s| s.enabled)
            .map(Cow::Borrowed)
            .unwrap_or_else(|| Cow::Owned(implicit_full(pipeline)))),
    }
}

/// A full strategy using the pipeline's own partitioning, for pipelines that
/// list none.
fn implicit_full(pipeline: &Pipeline) -> Strategy {
    let primary = pipeline.default_partitioning.clone();
    Strategy {
        name: "full".to_string(),
        kind: StrategyKind::Full,
        delta: None,
        enabled: true,
        cron: None,
        page_size: crate::model::DEFAULT_PAGE_SIZE,
        primary,
        secondary: Vec::new(),
        index: pipeline.strategies.len(),
        delete_missing: false,
        batch_rows: None,
        unsupported: Vec::new(),
    }
}
