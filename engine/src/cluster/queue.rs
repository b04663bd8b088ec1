//! The work queue shared by a run's coordinator and workers on any host: a
//! Redis stream of partition tasks read through one consumer group.
//!
//! Keys, all under the queue's name `Q`:
//! - `Q:tasks`: the stream; an entry is one task (`task`, its JSON) of one
//!   attempt at a run (`attempt`). Group `workers` hands each entry to one
//!   worker and keeps it pending until that worker acknowledges it.
//! - `Q:attempt:<run id>`: the attempt now coordinating the run. A worker
//!   drops a task of any other attempt (a coordinator that stopped, a run
//!   that failed): a resumed run enqueues its tasks afresh, and a stale
//!   task must not write beside them.
//! - `Q:done:<attempt>`: a list of what became of each task, read by the
//!   coordinator.
//!
//! A worker keeps each task it holds fresh (a heartbeat that re-claims it
//! for itself); a task idle longer than the reclaim time has lost its
//! worker, and the next worker to look takes it over (`XAUTOCLAIM`). The
//! partition's checkpoint, committed with its rows, makes the redo exact.
//! Redis holds nothing the state store and the destination's checkpoints
//! cannot rebuild: a lost queue is a run to resume.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::task::{PartitionReport, PartitionTask};

/// The queue name (key prefix) when none is given.
pub const DEFAULT_QUEUE: &str = "synchub";

/// The Redis URL when none is given.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

const GROUP: &str = "workers";

/// How long a worker's sign of life is kept.
const WORKER_KEPT: Duration = Duration::from_secs(60);

/// How long task outcomes wait for their coordinator.
const DONE_KEPT: Duration = Duration::from_secs(24 * 3600);

/// How long one blocking read waits, so that a drain, a cancel or a lost
/// connection is noticed within it.
pub const BLOCK: Duration = Duration::from_millis(1000);

/// A queue on one Redis server.
#[derive(Clone)]
pub struct RedisQueue {
    client: redis::Client,
    /// The URL with its password masked, for messages.
    at: String,
    name: String,
}

/// One coordinator's attempt at a run: its tasks are the run's until the
/// attempt ends.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub run_id: String,
    pub token: String,
}

/// A task a worker holds.
#[derive(Debug)]
pub struct Claimed {
    pub entry: String,
    pub attempt: String,
    /// Taken over from a worker that stopped heartbeating.
    pub reclaimed: bool,
    /// The task, or why it cannot be read.
    pub task: Result<PartitionTask, String>,
}

/// What became of one task, as a worker tells its coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDone {
    pub worker: String,
    pub run_id: String,
    /// The task's partition.
    pub partition: String,
    /// `committed` or `failed`.
    pub status: String,
    /// The partition was committed already (by a worker that stopped
    /// before saying so): nothing was written this time.
    #[serde(default)]
    pub already_committed: bool,
    pub rows_read: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    pub rows_unchanged: u64,
    /// Each partition committed or failed: the task's, or the finer ones
    /// a hash comparison commits inside it.
    pub reports: Vec<PartitionReport>,
    pub duration_seconds: f64,
    pub error: Option<String>,
    /// How many times the worker ran it (retries of transient errors).
    #[serde(default = "one")]
    pub attempts: u32,
    /// Its error is of a kind a retry may get past.
    #[serde(default)]
    pub retryable: bool,
}

fn one() -> u32 {
    1
}

impl TaskDone {
    /// A task that failed before it wrote anything.
    pub fn failed(
        worker: &str,
        run_id: &str,
        partition: &str,
        error: &crate::EngineError,
    ) -> TaskDone {
        TaskDone::failed_with(
            worker,
            run_id,
            partition,
            error.message(),
            error.retryable(),
        )
    }

    /// [`TaskDone::failed`] with the error as text.
    pub fn failed_with(
        worker: &str,
        run_id: &str,
        partition: &str,
        error: String,
        retryable: bool,
    ) -> TaskDone {
        TaskDone {
            worker: worker.to_string(),
            run_id: run_id.to_string(),
            partition: partition.to_string(),
            status: "failed".to_string(),
            already_committed: false,
            rows_read: 0,
            rows_inserted: 0,
            rows_updated: 0,
            rows_deleted: 0,
            rows_unchanged: 0,
            reports: Vec::new(),
            duration_seconds: 0.0,
            error: Some(error),
            attempts: 1,
            retryable,
        }
    }
}

/// `synchub queue status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStatus {
    pub queue: String,
    /// Tasks in the stream: waiting or held by a worker.
    pub tasks: u64,
    /// Tasks held by a worker, not yet acknowledged.
    pub in_flight: u64,
    /// Tasks not yet handed to any worker.
    pub waiting: u64,
    /// Runs being coordinated.
    pub runs: u64,
    /// How long the oldest task in the stream has been there (its entry id
    /// is the time it was queued); `None` when there is none.
    pub oldest_task_age_seconds: Option<f64>,
    pub workers: Vec<WorkerStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub holding: u64,
    /// Milliseconds since it was last heard from (it reads the queue every
    /// second while idle, heartbeats its tasks while busy).
    pub idle_ms: u64,
}

impl RedisQueue {
    /// Connects to `url` and makes sure the stream and its group exist.
    /// `name` is the key prefix: letters, digits, `_`, `-`, `.`, `:`.
    pub async fn connect(url: &str, name: &str) -> Result<RedisQueue, EngineError> {
        let at = planner::datastores::redact_url_password(url).into_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        {
            return Err(EngineError::Redis {
                at,
                message: format!(
                    "queue name {name:?} is not letters, digits, '_', '-', '.' and ':'"
                ),
            });
        }
        let client = redis::Client::open(url).map_err(|e| EngineError::Redis {
            at: at.clone(),
            message: format!("not a Redis URL: {e}"),
        })?;
        let queue = RedisQueue {
            client,
            at,
            name: name.to_string(),
        };
        let mut conn = queue.connection().await?;
        queue.ensure_group(&mut conn).await?;
        Ok(queue)
    }

    /// Creates the stream and its group where they do not exist (a new
    /// queue, or a Redis server that restarted without its data).
    async fn ensure_group(&self, conn: &mut MultiplexedConnection) -> Result<(), EngineError> {
        let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.tasks_key())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A connection of its own: a blocking read holds up everything sent
    /// after it on the same connection.
    pub async fn connection(&self) -> Result<MultiplexedConnection, EngineError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error(e))
    }

    pub(crate) fn error(&self, e: redis::RedisError) -> EngineError {
        EngineError::Redis {
            at: self.at.clone(),
            message: planner::datastores::redact_url_password(&e.to_string()).into_owned(),
        }
    }

    pub(crate) fn key(&self, what: &str) -> String {
        format!("{}:{what}", self.name)
    }

    fn tasks_key(&self) -> String {
        self.key("tasks")
    }

    fn attempt_key(&self, run_id: &str) -> String {
        self.key(&format!("attempt:{run_id}"))
    }

    fn done_key(&self, attempt: &str) -> String {
        self.key(&format!("done:{attempt}"))
    }

    // --- the coordinator's side -------------------------------------------

    /// Starts an attempt at `run_id`: from now on only its tasks are the
    /// run's.
    pub async fn open_attempt(
        &self,
        conn: &mut MultiplexedConnection,
        run_id: &str,
    ) -> Result<Attempt, EngineError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        redis::cmd("SET")
            .arg(self.attempt_key(run_id))
            .arg(&token)
            .query_async::<()>(conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Attempt {
            run_id: run_id.to_string(),
            token,
        })
    }

    /// Adds a task (its JSON) of `attempt`; returns its entry id.
    pub async fn enqueue(
        &self,
        conn: &mut MultiplexedConnection,
        attempt: &Attempt,
        task_json: &str,
    ) -> Result<String, EngineError> {
        redis::cmd("XADD")
            .arg(self.tasks_key())
            .arg("*")
            .arg("attempt")
            .arg(&attempt.token)
            .arg("task")
            .arg(task_json)
            .query_async(conn)
            .await
            .map_err(|e| self.error(e))
    }

    /// The next task outcome of `attempt`, waiting up to [`BLOCK`].
    pub async fn next_done(
        &self,
        conn: &mut MultiplexedConnection,
        attempt: &Attempt,
    ) -> Result<Option<TaskDone>, EngineError> {
        let popped: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(self.done_key(&attempt.token))
            .arg(BLOCK.as_secs_f64())
            .query_async(conn)
            .await
            .map_err(|e| self.error(e))?;
        let Some((_, text)) = popped else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| EngineError::Redis {
                at: self.at.clone(),
                message: format!("a task outcome that cannot be read ({e}): {text}"),
            })
    }

    /// Ends `attempt`: workers drop its tasks still queued or reclaimed,
    /// `entries` (its tasks) leave the stream, and its outcomes are gone.
    pub async fn close_attempt(
        &self,
        conn: &mut MultiplexedConnection,
        attempt: &Attempt,
        entries: &[String],
    ) -> Result<(), EngineError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        // Only this attempt's own key: a newer attempt may have taken over.
        pipe.cmd("EVAL")
            .arg(DELETE_IF_EQUAL)
            .arg(1)
            .arg(self.attempt_key(&attempt.run_id))
            .arg(&attempt.token)
            .ignore();
        pipe.cmd("DEL").arg(self.done_key(&attempt.token)).ignore();
        for chunk in entries.chunks(500) {
            pipe.cmd("XDEL").arg(self.tasks_key()).arg(chunk).ignore();
        }
        self.exec(&pipe, conn).await
    }

    // --- the worker's side -------------------------------------------------

    /// The next task for `consumer`: one idle longer than `reclaim_after`
    /// (its worker stopped), else a new one, waiting up to [`BLOCK`].
    pub async fn claim(
        &self,
        conn: &mut MultiplexedConnection,
        consumer: &str,
        reclaim_after: Duration,
    ) -> Result<Option<Claimed>, EngineError> {
        let reply: Value = match redis::cmd("XAUTOCLAIM")
            .arg(self.tasks_key())
            .arg(GROUP)
            .arg(consumer)
            .arg(reclaim_after.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await
        {
            Ok(reply) => reply,
            // The server restarted without its data (or the queue was
            // cleared): the group comes back empty, and the runs whose
            // tasks were lost fail and are resumed by their next run.
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group(conn).await?;
                return Ok(None);
            }
            Err(e) => return Err(self.error(e)),
        };
        if let Value::Array(parts) = reply {
            if let Some(entry) = parts.get(1).and_then(|v| entries(v).into_iter().next()) {
                return Ok(Some(claimed(entry, true)));
            }
        }
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(self.tasks_key())
            .arg(">")
            .query_async(conn)
            .await
            .map_err(|e| self.error(e))?;
        // [[stream, [entry, ...]]], or nil once the wait is over.
        let entry = match reply {
            Value::Array(streams) => streams.into_iter().find_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => {
                    entries(&pair.remove(1)).into_iter().next()
                }
                _ => None,
            }),
            _ => None,
        };
        Ok(entry.map(|e| claimed(e, false)))
    }

    /// Whether `claimed` belongs to the attempt now coordinating its run.
    pub async fn is_current(
        &self,
        conn: &mut MultiplexedConnection,
        run_id: &str,
        claimed: &Claimed,
    ) -> Result<bool, EngineError> {
        let current: Option<String> = redis::cmd("GET")
            .arg(self.attempt_key(run_id))
            .query_async(conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(current.as_deref() == Some(claimed.attempt.as_str()))
    }

    /// Keeps `claimed` held by `consumer`: resets its idle time, so no
    /// other worker reclaims it. `false` when another worker has taken it
    /// over already: this one must stop writing it.
    pub async fn heartbeat(
        &self,
        conn: &mut MultiplexedConnection,
        consumer: &str,
        claimed: &Claimed,
    ) -> Result<bool, EngineError> {
        let held: i64 = redis::Script::new(HEARTBEAT)
            .key(self.tasks_key())
            .arg(GROUP)
            .arg(consumer)
            .arg(&claimed.entry)
            .invoke_async(conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(held == 1)
    }

    /// Tells the coordinator what became of `claimed` and takes it off the
    /// queue, at once.
    pub async fn complete(
        &self,
        conn: &mut MultiplexedConnection,
        claimed: &Claimed,
        done: &TaskDone,
    ) -> Result<(), EngineError> {
        let text = serde_json::to_string(done).map_err(|e| EngineError::Task(e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("RPUSH")
            .arg(self.done_key(&claimed.attempt))
            .arg(text)
            .ignore();
        // An outcome its coordinator never reads (the run ended meanwhile)
        // does not stay.
        pipe.cmd("EXPIRE")
            .arg(self.done_key(&claimed.attempt))
            .arg(DONE_KEPT.as_secs())
            .ignore();
        self.remove_in(&mut pipe, claimed);
        self.exec(&pipe, conn).await
    }

    /// Takes `claimed` off the queue without an outcome: a task of an
    /// attempt that has ended.
    pub async fn discard(
        &self,
        conn: &mut MultiplexedConnection,
        claimed: &Claimed,
    ) -> Result<(), EngineError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.remove_in(&mut pipe, claimed);
        self.exec(&pipe, conn).await
    }

    /// Takes `consumer` out of the group, unless it still holds a task
    /// (which another worker then reclaims): a worker that stops leaves no
    /// name behind in `queue status`.
    pub async fn leave(
        &self,
        conn: &mut MultiplexedConnection,
        consumer: &str,
    ) -> Result<(), EngineError> {
        redis::Script::new(LEAVE)
            .key(self.tasks_key())
            .arg(GROUP)
            .arg(consumer)
            .invoke_async::<i64>(conn)
            .await
            .map_err(|e| self.error(e))?;
        redis::cmd("DEL")
            .arg(self.worker_key(consumer))
            .query_async::<()>(conn)
            .await
            .map_err(|e| self.error(e))
    }

    /// Records that `consumer` is alive now (`worker health`): the group
    /// knows a worker only once it has taken a task, and keeps one that
    /// died. The key goes a minute after the last sign of life.
    pub async fn seen(
        &self,
        conn: &mut MultiplexedConnection,
        consumer: &str,
    ) -> Result<(), EngineError> {
        redis::cmd("SET")
            .arg(self.worker_key(consumer))
            .arg(operators::progress::epoch_micros() / 1000)
            .arg("PX")
            .arg(WORKER_KEPT.as_millis() as u64)
            .query_async::<()>(conn)
            .await
            .map_err(|e| self.error(e))
    }

    fn worker_key(&self, consumer: &str) -> String {
        self.key(&format!("worker:{consumer}"))
    }

    async fn exec(
        &self,
        pipe: &redis::Pipeline,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), EngineError> {
        pipe.query_async::<()>(conn)
            .await
            .map_err(|e| self.error(e))
    }

    fn remove_in(&self, pipe: &mut redis::Pipeline, claimed: &Claimed) {
        pipe.cmd("XACK")
            .arg(self.tasks_key())
            .arg(GROUP)
            .arg(&claimed.entry)
            .ignore();
        pipe.cmd("XDEL")
            .arg(self.tasks_key())
            .arg(&claimed.entry)
            .ignore();
    }

    // --- operators' commands ------------------------------------------------

    /// What the queue holds and who works on it.
    pub async fn status(&self) -> Result<QueueStatus, EngineError> {
        let mut conn = self.connection().await?;
        let tasks: u64 = redis::cmd("XLEN")
            .arg(self.tasks_key())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let consumers: Value = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(self.tasks_key())
            .arg(GROUP)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let mut workers: BTreeMap<String, WorkerStatus> = match consumers {
            Value::Array(list) => list
                .iter()
                .filter_map(worker_status)
                .map(|w| (w.name.clone(), w))
                .collect(),
            _ => BTreeMap::new(),
        };
        // The ones alive lately, by their own word: also those that have
        // taken no task yet.
        let prefix = self.key("worker:");
        let now_ms = operators::progress::epoch_micros() / 1000;
        for key in self.keys(&mut conn, "worker:*").await? {
            let last: Option<u64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            let (Some(name), Some(last)) = (key.strip_prefix(&prefix), last) else {
                continue;
            };
            let idle_ms = now_ms.saturating_sub(last);
            workers
                .entry(name.to_string())
                .and_modify(|w| w.idle_ms = w.idle_ms.min(idle_ms))
                .or_insert(WorkerStatus {
                    name: name.to_string(),
                    holding: 0,
                    idle_ms,
                });
        }
        let workers: Vec<WorkerStatus> = workers.into_values().collect();
        let in_flight = workers.iter().map(|w| w.holding).sum::<u64>();
        let runs = self.keys(&mut conn, "attempt:*").await?.len() as u64;
        let oldest: Vec<(String, Value)> = redis::cmd("XRANGE")
            .arg(self.tasks_key())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let oldest_task_age_seconds = oldest.first().and_then(|(id, _)| {
            let queued_ms: u64 = id.split('-').next()?.parse().ok()?;
            Some(now_ms.saturating_sub(queued_ms) as f64 / 1000.0)
        });
        Ok(QueueStatus {
            queue: self.name.clone(),
            tasks,
            in_flight,
            waiting: tasks.saturating_sub(in_flight),
            runs,
            oldest_task_age_seconds,
            workers,
        })
    }

    /// Removes every task and outcome of the queue; returns how many tasks
    /// there were. Coordinators waiting on them wait on: their runs resume
    /// when started again.
    pub async fn clear(&self) -> Result<u64, EngineError> {
        let mut conn = self.connection().await?;
        let tasks: u64 = redis::cmd("XLEN")
            .arg(self.tasks_key())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let mut doomed = self.keys(&mut conn, "done:*").await?;
        doomed.extend(self.keys(&mut conn, "attempt:*").await?);
        doomed.push(self.tasks_key());
        redis::cmd("DEL")
            .arg(&doomed)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(tasks)
    }

    pub(crate) async fn keys(
        &self,
        conn: &mut MultiplexedConnection,
        pattern: &str,
    ) -> Result<Vec<String>, EngineError> {
        let mut found = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.key(pattern))
                .arg("COUNT")
                .arg(500)
                .query_async(conn)
                .await
                .map_err(|e| self.error(e))?;
            found.extend(keys);
            if next == 0 {
                return Ok(found);
            }
            cursor = next;
        }
    }
}

/// Re-claims an entry for its holder (resetting its idle time) only while
/// the holder still has it.
const HEARTBEAT: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 1 and p[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0
";

/// Deletes a consumer that holds no entry.
const LEAVE: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
";

/// Deletes KEYS[1] only while it holds ARGV[1].
pub(crate) const DELETE_IF_EQUAL: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A stream entry: its id and fields.
struct Entry {
    id: String,
    fields: Vec<(String, String)>,
}

/// The entries of a reply's list; deleted ones (nil fields) are skipped.
fn entries(list: &Value) -> Vec<Entry> {
    let Value::Array(items) = list else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = text(pair.first()?)?;
            let Value::Array(flat) = pair.get(1)? else {
                return None;
            };
            let fields = flat
                .chunks(2)
                .filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?)?)))
                .collect();
            Some(Entry { id, fields })
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn claimed(entry: Entry, reclaimed: bool) -> Claimed {
    let field = |name: &str| {
        entry
            .fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let task = match field("task") {
        Some(json) => PartitionTask::from_json(&json).map_err(|e| e.message()),
        None => Err(format!("queue entry {} has no task", entry.id)),
    };
    Claimed {
        attempt: field("attempt").unwrap_or_default(),
        entry: entry.id,
        reclaimed,
        task,
    }
}

/// One consumer of `XINFO CONSUMERS`: a map (RESP3) or a flat list.
fn worker_status(v: &Value) -> Option<WorkerStatus> {
    let pairs: Vec<(String, &Value)> = match v {
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|kv| Some((text(kv.first()?)?, kv.get(1)?)))
            .collect(),
        Value::Map(map) => map
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        _ => return None,
    };
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let int = |name: &str| match get(name) {
        Some(Value::Int(i)) => *i as u64,
        _ => 0,
    };
    Some(WorkerStatus {
        name: get("name").and_then(text)?,
        holding: int("pending"),
        idle_ms: int("idle"),
    })
}
