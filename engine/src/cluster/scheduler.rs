//! `synchub scheduler start`: runs each pipeline strategy that has a `cron`
//! when it is due, as a run whose partitions the workers execute
//! ([`run_on_queue`]).
//!
//! - Only one scheduler of a queue schedules: the one holding the leader
//!   lock in Redis (renewed; a standby takes over once it expires). A
//!   leader that loses it stops starting runs and cancels those it started.
//!   It starts a run only while its lease (last renewal + TTL, see
//!   `RedisLockGuard::lease_left`) has more than a third of the TTL to go,
//!   and stops leading once the lease ran out, even if it was starved of
//!   CPU and its renewal has not noticed yet: a standby cannot lead before
//!   then, so two schedulers never start runs at once.
//! - Slots: a pipeline's `slot:` names one of `scheduler.slot_definitions`
//!   (a pipeline without one is in slot `default`); at most that many runs
//!   of the slot's pipelines go at once, the others wait, oldest due first.
//! - A strategy due again while it still runs, or due several times while
//!   no scheduler ran, runs once (the misfire policy): on taking the lead,
//!   a strategy whose last run started before its latest due time runs at
//!   once.
//! - The pipeline folder is read again every `check_interval`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use operators::RunProgress;
use planner::config::PipelineFile;
use serde::Serialize;

use super::queue::RedisQueue;
use super::run::run_on_queue;
use crate::lock::{Lock, RedisLock, RedisLockGuard, Wait, DEFAULT_LOCK_TTL};
use crate::run::RunOptions;
use crate::run_context::Cancel;
use crate::state::{SqliteStateStore, StateReports};

/// The slot of a pipeline that names none.
pub const DEFAULT_SLOT: &str = "default";

/// How often a leader looks for due strategies.
const TICK: Duration = Duration::from_millis(200);

/// How a scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub config_dir: PathBuf,
    pub datastores: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// Runs at once per slot; a slot not listed has no cap.
    pub slots: BTreeMap<String, usize>,
    /// How often the pipeline folder is read again.
    pub check_interval: Duration,
    /// Its name in events and in the leader lock's holder.
    pub name: String,
    /// The leader lock's TTL: a standby takes over this long after the
    /// leader stopped renewing it.
    pub leader_ttl: Duration,
}

/// What a scheduler did; `synchub scheduler start` prints one JSON line
/// each.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SchedulerEvent {
    /// It holds the leader lock and schedules, since `at` (UTC, RFC 3339).
    Leader { scheduler: String, at: String },
    /// It stopped leading (stopped, or lost the leader lock): another may
    /// lead from `at` on.
    StoppedLeading {
        scheduler: String,
        at: String,
        why: String,
    },
    /// Another scheduler leads; this one waits to take over.
    Standby { scheduler: String, leader: String },
    /// A pipeline file it cannot schedule, and why.
    Refused { file: String, error: String },
    Started {
        pipeline: String,
        strategy: String,
        slot: String,
        /// Due while no scheduler ran: run once on taking the lead.
        missed: bool,
        at: String,
    },
    /// Due together with `by`, a strategy of the same pipeline whose run
    /// leaves the destination as this one's would (a full or hash run
    /// covers a delta): only `by` runs.
    Covered {
        pipeline: String,
        strategy: String,
        by: String,
        at: String,
    },
    Finished {
        pipeline: String,
        strategy: String,
        run_id: Option<String>,
        /// The run's status, or `not_started` (an error before it started).
        status: String,
        error: Option<String>,
    },
}

pub type SchedulerEvents = Arc<dyn Fn(&SchedulerEvent) + Send + Sync>;

/// One cron schedule: a strategy of a pipeline.
#[derive(Debug, Clone, PartialEq)]
struct Job {
    file: PathBuf,
    pipeline: String,
    strategy: String,
    cron: Cron,
    slot: String,
    /// The pipeline's other strategies a run of this one covers.
    covers: Vec<String>,
}

type JobKey = (String, String);

struct Scheduled {
    job: Job,
    /// Due and not started yet: since when.
    due: Option<DateTime<Utc>>,
    missed: bool,
    next: Option<DateTime<Utc>>,
    running: Option<Cancel>,
}

/// The strategies of `p` (other than `by`) that a run of `by` covers: after
/// it, the destination is what a run of theirs would leave. A delta writes
/// the rows changed since its watermark: any full run covers it, and a hash
/// run too when every column is hashed (a change in a column left out of
/// the hash is one the hash run cannot see); a hash run deletes what the
/// source lost (unless `delete_missing: false`), which a full run does only
/// with `delete_missing: true`. An aggregate's full run replaces every
/// group, so it covers the others; its hash run, nothing (a delta may
/// re-compute groups whose checksum columns did not change). The delta's
/// watermark stays where it was: its next run re-reads the rows changed
/// since, and finds them equal.
fn covered_strategies(p: &PipelineFile, by: &planner::config::StrategyConfig) -> Vec<String> {
    use planner::config::StrategyType;
    let aggregate = p.sync_type.as_deref() == Some("aggregate");
    // The stage form's columns are not all in `column_map`: only the
    // simple form tells here that every column is hashed.
    let every_column_hashed = p.backends.is_empty()
        && !p.column_map.is_empty()
        && p.column_map.iter().all(|c| c.hash_column != Some(false));
    let hash_deletes = |h: &planner::config::HashConfig| h.delete_missing != Some(false);
    p.strategies
        .iter()
        .filter(|other| other.enabled && other.name != by.name)
        .filter(|other| match (&by.kind, &other.kind) {
            (StrategyType::Full(_), _) if aggregate => true,
            (StrategyType::Full(_), StrategyType::Delta(_)) => true,
            (StrategyType::Full(f), StrategyType::Hash(h)) => {
                f.delete_missing == Some(true) || !hash_deletes(h)
            }
            (StrategyType::Hash(_), StrategyType::Delta(_)) => !aggregate && every_column_hashed,
            _ => false,
        })
        .map(|other| other.name.clone())
        .collect()
}

/// Schedules until `stop` is cancelled: leads when it can, else stands by.
pub async fn run_scheduler(
    queue: RedisQueue,
    opts: SchedulerOptions,
    stop: Cancel,
    events: SchedulerEvents,
) {
    let mut standing_by = false;
    while !stop.is_cancelled() {
        let lost = Cancel::default();
        let leader = RedisLock::scheduler(&queue, opts.leader_ttl).on_lost(lost.clone());
        match leader.try_lock("leader").await {
            Ok(Ok(guard)) => {
                standing_by = false;
                events(&SchedulerEvent::Leader {
                    scheduler: opts.name.clone(),
                    at: timestamp(Utc::now()),
                });
                Leader {
                    queue: &queue,
                    opts: &opts,
                    events: &events,
                    jobs: BTreeMap::new(),
                    slots_used: HashMap::new(),
                    lease: &guard,
                }
                .lead(&stop, &lost)
                .await;
                let now = Utc::now();
                let (at, why) = match lost.reason() {
                    // Another may have led from the lease's end on.
                    Some(why) => (now.min(DateTime::<Utc>::from(guard.lease_end())), why),
                    None => (now, "stopped".to_string()),
                };
                events(&SchedulerEvent::StoppedLeading {
                    scheduler: opts.name.clone(),
                    at: timestamp(at),
                    why,
                });
                // Released here, after the event: no one leads before `at`.
                drop(guard);
            }
            Ok(Err(holder)) => {
                if !standing_by {
                    events(&SchedulerEvent::Standby {
                        scheduler: opts.name.clone(),
                        leader: holder.describe(),
                    });
                    standing_by = true;
                }
                wait(&stop, Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e.message(), "cannot reach the leader lock; trying again");
                wait(&stop, Duration::from_secs(1)).await;
            }
        }
    }
}

/// UTC, RFC 3339 to the millisecond.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn wait(stop: &Cancel, d: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

struct Leader<'a> {
    queue: &'a RedisQueue,
    opts: &'a SchedulerOptions,
    events: &'a SchedulerEvents,
    jobs: BTreeMap<JobKey, Scheduled>,
    slots_used: HashMap<String, usize>,
    lease: &'a RedisLockGuard,
}

/// How a run the scheduler started ended.
type Ended = (JobKey, SchedulerEvent);

impl Leader<'_> {
    async fn lead(mut self, stop: &Cancel, lost: &Cancel) {
        let mut runs: tokio::task::JoinSet<Ended> = tokio::task::JoinSet::new();
        self.read_jobs(true).await;
        let mut last_read = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = lost.cancelled() => break,
                Some(Ok((key, event))) = runs.join_next(), if !runs.is_empty() => {
                    self.ended(&key, &event);
                    continue;
                }
                _ = tokio::time::sleep(TICK) => {}
            }
            if self.lease.lease_left().is_zero() {
                lost.cancel("its lease ran out before a renewal reached Redis");
                break;
            }
            if last_read.elapsed() >= self.opts.check_interval {
                self.read_jobs(false).await;
                last_read = tokio::time::Instant::now();
            }
            self.start_due(&mut runs);
        }
        // Not leading any more: the runs it started are cancelled (their
        // committed partitions stay; the next leader's runs resume them).
        for s in self.jobs.values() {
            if let Some(cancel) = &s.running {
                cancel.cancel("the scheduler stopped leading");
            }
        }
        while let Some(joined) = runs.join_next().await {
            if let Ok((key, event)) = joined {
                self.ended(&key, &event);
            }
        }
    }

    fn ended(&mut self, key: &JobKey, event: &SchedulerEvent) {
        if let Some(s) = self.jobs.get_mut(key) {
            s.running = None;
            if let Some(used) = self.slots_used.get_mut(&s.job.slot) {
                *used = used.saturating_sub(1);
            }
        }
        (self.events)(event);
    }

    /// Reads the pipeline folder: new jobs are added, removed ones dropped
    /// (a running one ends on its own), changed ones rescheduled. `taking
    /// the lead`: a strategy whose latest due time passed since its last
    /// run is due now.
    async fn read_jobs(&mut self, taking_lead: bool) {
        let (jobs, refused) = read_jobs(&self.opts.config_dir, &self.opts.slots);
        for r in refused {
            (self.events)(&r);
        }
        let now = Utc::now();
        let mut kept = BTreeMap::new();
        for job in jobs {
            let key = (job.pipeline.clone(), job.strategy.clone());
            let scheduled = match self.jobs.remove(&key) {
                Some(mut s) if s.job.cron == job.cron => {
                    s.job = job;
                    s
                }
                previous => {
                    let missed = taking_lead && self.missed(&job, now).await;
                    Scheduled {
                        next: job.cron.find_next_occurrence(&now, false).ok(),
                        due: missed.then_some(now),
                        missed,
                        running: previous.and_then(|p| p.running),
                        job,
                    }
                }
            };
            kept.insert(key, scheduled);
        }
        // Jobs gone from the folder: a run still going is left to end.
        for (key, s) in std::mem::take(&mut self.jobs) {
            if s.running.is_some() {
                kept.insert(
                    key,
                    Scheduled {
                        due: None,
                        next: None,
                        ..s
                    },
                );
            }
        }
        self.jobs = kept;
    }

    /// Whether `job` was due since its last run started.
    async fn missed(&self, job: &Job, now: DateTime<Utc>) -> bool {
        let Ok(latest_due) = job.cron.find_previous_occurrence(&now, true) else {
            return false;
        };
        let last = match SqliteStateStore::open_existing(&self.opts.state_dir).await {
            Ok(Some(store)) => store
                .history(&job.pipeline, Some(&job.strategy), 1)
                .await
                .ok()
                .and_then(|runs| runs.into_iter().next())
                .and_then(|r| DateTime::parse_from_rfc3339(&r.run.started_at).ok()),
            _ => None,
        };
        // Never run: nothing was missed; it runs when next due.
        last.is_some_and(|last| last < latest_due)
    }

    /// Of the due strategies (oldest due first), one per pipeline: one that
    /// covers all of the pipeline's others due (they are then done, each
    /// with a `Covered` event), else the oldest due (the others wait).
    fn one_per_pipeline(
        &mut self,
        due: Vec<(DateTime<Utc>, JobKey)>,
        now: DateTime<Utc>,
    ) -> Vec<JobKey> {
        let mut pipelines: Vec<(String, Vec<String>)> = Vec::new();
        for (_, (pipeline, strategy)) in due {
            match pipelines.iter_mut().find(|(p, _)| *p == pipeline) {
                Some((_, strategies)) => strategies.push(strategy),
                None => pipelines.push((pipeline, vec![strategy])),
            }
        }
        let mut chosen = Vec::new();
        for (pipeline, strategies) in pipelines {
            let covers = |s: &String| {
                self.jobs
                    .get(&(pipeline.clone(), s.clone()))
                    .map(|j| j.job.covers.clone())
                    .unwrap_or_default()
            };
            let covering = strategies.iter().find(|s| {
                let covered = covers(s);
                strategies
                    .iter()
                    .all(|other| other == *s || covered.contains(other))
            });
            let Some(run) = covering.or(strategies.first()).cloned() else {
                continue;
            };
            if covering.is_some() {
                for other in strategies.iter().filter(|o| **o != run) {
                    if let Some(s) = self.jobs.get_mut(&(pipeline.clone(), other.clone())) {
                        s.due = None;
                        s.missed = false;
                    }
                    (self.events)(&SchedulerEvent::Covered {
                        pipeline: pipeline.clone(),
                        strategy: other.clone(),
                        by: run.clone(),
                        at: timestamp(now),
                    });
                }
            }
            chosen.push((pipeline, run));
        }
        chosen
    }

    fn start_due(&mut self, runs: &mut tokio::task::JoinSet<Ended>) {
        // Too close to the lease's end: the renewal is late (a starved
        // process); start nothing until it is renewed.
        let starts = self.lease.lease_left() > self.opts.leader_ttl / 3;
        let now = Utc::now();
        for s in self.jobs.values_mut() {
            while let Some(next) = s.next.filter(|n| *n <= now) {
                // Due several times over (or again while running): once.
                s.due.get_or_insert(next);
                s.next = s.job.cron.find_next_occurrence(&now, false).ok();
            }
        }
        // One run of a pipeline at a time: its strategies due while one of
        // them runs wait for it.
        let busy: Vec<String> = self
            .jobs
            .values()
            .filter(|s| s.running.is_some())
            .map(|s| s.job.pipeline.clone())
            .collect();
        let mut due: Vec<(DateTime<Utc>, JobKey)> = self
            .jobs
            .iter()
            .filter(|(k, _)| !busy.contains(&k.0))
            .filter_map(|(k, s)| s.due.map(|d| (d, k.clone())))
            .collect();
        due.sort();
        if !starts {
            due.clear();
        }
        let due = self.one_per_pipeline(due, now);
        for key in due {
            let Some(s) = self.jobs.get_mut(&key) else {
                continue;
            };
            let used = self.slots_used.entry(s.job.slot.clone()).or_insert(0);
            if self
                .opts
                .slots
                .get(&s.job.slot)
                .is_some_and(|cap| *used >= *cap)
            {
                continue;
            }
            *used += 1;
            let cancel = Cancel::default();
            s.running = Some(cancel.clone());
            s.due = None;
            (self.events)(&SchedulerEvent::Started {
                pipeline: s.job.pipeline.clone(),
                strategy: s.job.strategy.clone(),
                slot: s.job.slot.clone(),
                missed: std::mem::take(&mut s.missed),
                at: timestamp(Utc::now()),
            });
            let run = RunOptions {
                pipeline_file: s.job.file.clone(),
                strategy: Some(s.job.strategy.clone()),
                datastores: self.opts.datastores.clone(),
                state_dir: self.opts.state_dir.clone(),
                wait: Wait::No,
                cancel: cancel.clone(),
                force: false,
                cluster_lock: Some(
                    RedisLock::new(self.queue, DEFAULT_LOCK_TTL).on_lost(cancel.clone()),
                ),
            };
            let queue = self.queue.clone();
            runs.spawn(async move {
                let outcome = run_on_queue(&run, Arc::new(RunProgress::default()), &queue).await;
                let (pipeline, strategy) = key.clone();
                let event = match outcome {
                    Ok(o) => SchedulerEvent::Finished {
                        pipeline,
                        strategy,
                        run_id: Some(o.summary.run_id.clone()),
                        status: o.summary.status.to_string(),
                        error: o.error.map(|e| e.message()),
                    },
                    Err(e) => SchedulerEvent::Finished {
                        pipeline,
                        strategy,
                        run_id: None,
                        status: "not_started".to_string(),
                        error: Some(e.message()),
                    },
                };
                (key, event)
            });
        }
    }
}

/// Which scheduler leads a queue, and the queue: `synchub scheduler
/// status` and the API's `/api/scheduler/status`.
#[derive(Debug, Clone, Serialize)]
pub struct SchedulerStatus {
    pub leader: Option<crate::lock::LockHolder>,
    pub queue: super::queue::QueueStatus,
}

/// Who leads `queue`'s schedulers, and its tasks and workers.
pub async fn status(queue: &RedisQueue) -> Result<SchedulerStatus, crate::EngineError> {
    let lock = RedisLock::scheduler(queue, DEFAULT_LOCK_TTL);
    let (leader, queue) = tokio::try_join!(lock.holder("leader"), queue.status())?;
    Ok(SchedulerStatus { leader, queue })
}

/// A schedule as `synchub scheduler list-jobs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    pub pipeline: String,
    pub strategy: String,
    pub cron: String,
    pub slot: String,
    /// UTC, RFC 3339; `None` when the expression never matches again.
    pub next_due: Option<String>,
    pub file: String,
    /// The pipeline's strategies this one runs instead of when they are
    /// due together (see `covered_strategies`).
    pub covers: Vec<String>,
}

/// The schedules of the pipelines in `dir`, with when each is next due,
/// and the files refused (as `Refused` events).
pub fn list_jobs(
    dir: &Path,
    slots: &BTreeMap<String, usize>,
) -> (Vec<JobInfo>, Vec<SchedulerEvent>) {
    let (jobs, refused) = read_jobs(dir, slots);
    let now = Utc::now();
    let jobs = jobs
        .into_iter()
        .map(|j| JobInfo {
            next_due: j
                .cron
                .find_next_occurrence(&now, false)
                .ok()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            cron: j.cron.pattern.to_string(),
            pipeline: j.pipeline,
            strategy: j.strategy,
            slot: j.slot,
            file: j.file.display().to_string(),
            covers: j.covers,
        })
        .collect();
    (jobs, refused)
}

/// The pipeline files in `dir` that parse, sorted by file name, and the
/// files refused (as `Refused` events).
pub fn pipeline_files(dir: &Path) -> (Vec<(PathBuf, PipelineFile)>, Vec<SchedulerEvent>) {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    let mut refuse = |file: &Path, error: String| {
        refused.push(SchedulerEvent::Refused {
            file: file.display().to_string(),
            error,
        })
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                    && planner::global::ConfigFileKind::of(p)
                        == planner::global::ConfigFileKind::Pipeline
            })
            .collect(),
        Err(e) => {
            refuse(dir, format!("cannot read the folder: {e}"));
            return (found, refused);
        }
    };
    files.sort();
    for file in files {
        match PipelineFile::read(&file) {
            Ok(p) => found.push((file, p)),
            Err(e) => refuse(&file, e.to_string()),
        }
    }
    (found, refused)
}

/// The cron schedules of the pipelines in `dir`, and the files refused.
fn read_jobs(dir: &Path, slots: &BTreeMap<String, usize>) -> (Vec<Job>, Vec<SchedulerEvent>) {
    let mut jobs = Vec::new();
    let (files, mut refused) = pipeline_files(dir);
    let mut refuse = |file: &Path, error: String| {
        refused.push(SchedulerEvent::Refused {
            file: file.display().to_string(),
            error,
        })
    };
    for (file, p) in files {
        if !p.enabled {
            continue;
        }
        let slot = p.slot.clone().unwrap_or_else(|| DEFAULT_SLOT.to_string());
        if slot != DEFAULT_SLOT && !slots.contains_key(&slot) {
            let known: Vec<&str> = slots.keys().map(String::as_str).collect();
            refuse(
                &file,
                format!(
                    "slot: {slot} is not in the global config's scheduler.slot_definitions ({})",
                    if known.is_empty() {
                        "none defined".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            continue;
        }
        for s in p.strategies.iter().filter(|s| s.enabled) {
            let Some(text) = &s.cron else {
                continue;
            };
            match text.parse::<Cron>() {
                Ok(cron) => jobs.push(Job {
                    file: file.clone(),
                    pipeline: p.name.clone(),
                    strategy: s.name.clone(),
                    cron,
                    slot: slot.clone(),
                    covers: covered_strategies(&p, s),
                }),
                Err(e) => refuse(&file, format!("strategies.{}.cron: {e}", s.name)),
            }
        }
    }
    (jobs, refused)
}
