//! The pipeline lock in Redis, shared by coordinators on every host: a key
//! per pipeline holding the holder's token and who it is, set only where
//! absent and with a time to live that the holder renews. Only the holder
//! renews, rewrites or deletes it (Lua scripts comparing the token), so a
//! holder whose lock expired and was taken by another cannot release the
//! new holder's lock. A holder that finds its lock gone cancels its run
//! (`RedisLock::on_lost`): the open partitions roll back.
//!
//! A holder that dies stops renewing: its lock expires after the TTL.
//!
//! The holder also keeps its lease locally: until the send time of its last
//! renewal Redis answered, plus the TTL. Redis cannot expire the key before
//! then, so no one else can hold it; a holder starved of CPU past that time
//! may already have been replaced, whatever its renewal task has yet to
//! notice, and asks [`RedisLockGuard::lease_left`] before acting as holder.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Lock, LockGuard, LockHolder, TryLock};
use crate::cluster::RedisQueue;
use crate::error::EngineError;
use crate::run_context::Cancel;

/// The TTL of a pipeline lock when none is given: a dead holder's lock is
/// free this long after its last renewal.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(30);

/// Locks under a queue's name: pipeline locks, or the schedulers' leader
/// lock.
#[derive(Clone)]
pub struct RedisLock {
    queue: RedisQueue,
    /// What is locked: `pipeline` (one key per pipeline), `scheduler`, or
    /// a table's `table-ddl` (see [`super::table`]).
    kind: &'static str,
    ttl: Duration,
    on_lost: Option<Cancel>,
    flavor: Flavor,
}

/// How a lock is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// By one holder: a key set where absent.
    Exclusive,
    /// A table's writes: by any number of writers at once, each an entry of
    /// the table's writers hash, none while its DDL key is held.
    TableWrite,
    /// A table's DDL: by one holder, while no one writes the table, but the
    /// writer holding the token given (the run doing the DDL itself).
    TableDdl { beside: Option<String> },
}

impl std::fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLock")
            .field("queue", &self.queue.name())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Who holds a lock, from what its key holds.
pub(crate) fn holder_in(key: &str, value: &str) -> LockHolder {
    match serde_json::from_str::<Stored>(value) {
        Ok(stored) => stored.holder,
        // Not ours to read: say so rather than fail the caller.
        Err(_) => LockHolder {
            host: format!("unknown (the lock key {key} holds {value:?})"),
            ..LockHolder::default()
        },
    }
}

/// What the key holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    token: String,
    #[serde(flatten)]
    holder: LockHolder,
}

impl RedisLock {
    /// Locks on `queue`'s server, under its name, expiring `ttl` after the
    /// holder's last renewal (renewed every third of it).
    pub fn new(queue: &RedisQueue, ttl: Duration) -> RedisLock {
        RedisLock {
            queue: queue.clone(),
            kind: "pipeline",
            ttl,
            on_lost: None,
            flavor: Flavor::Exclusive,
        }
    }

    /// The same server, queue, TTL and loss handling, locking another
    /// kind of thing.
    pub(crate) fn with(&self, kind: &'static str, flavor: Flavor) -> RedisLock {
        RedisLock {
            kind,
            flavor,
            ..self.clone()
        }
    }

    pub(crate) fn queue(&self) -> &RedisQueue {
        &self.queue
    }

    /// The lock only the leading scheduler holds (acquired under any name,
    /// e.g. `leader`).
    pub fn scheduler(queue: &RedisQueue, ttl: Duration) -> RedisLock {
        RedisLock {
            kind: "scheduler",
            ..RedisLock::new(queue, ttl)
        }
    }

    /// Cancels `cancel` when a lock held is found gone or taken.
    pub fn on_lost(mut self, cancel: Cancel) -> RedisLock {
        self.on_lost = Some(cancel);
        self
    }

    pub(crate) fn key(&self, pipeline: &str) -> String {
        self.queue.key(&format!("lock:{}:{pipeline}", self.kind))
    }

    /// A table's writers hash, beside its DDL key.
    pub(crate) fn writers_key(&self, table: &str) -> String {
        self.queue.key(&format!("lock:table-writes:{table}"))
    }

    /// Every lock of this kind held now, by name (pipeline), sorted.
    pub async fn held(&self) -> Result<Vec<(String, LockHolder)>, EngineError> {
        let mut conn = self.queue.connection().await?;
        let prefix = self.key("");
        let mut held = Vec::new();
        for key in self
            .queue
            .keys(&mut conn, &format!("lock:{}:*", self.kind))
            .await?
        {
            let Some(name) = key.strip_prefix(&prefix) else {
                continue;
            };
            // Released or expired since the scan: not held.
            if let Some(holder) = self.stored(&key).await? {
                held.push((name.to_string(), holder));
            }
        }
        held.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(held)
    }

    fn scripts(&self) -> &'static Scripts {
        match self.flavor {
            Flavor::TableWrite => &WRITER,
            _ => &HOLDER,
        }
    }

    fn ttl_ms(&self) -> u64 {
        (self.ttl.as_millis() as u64).max(1)
    }

    pub(crate) async fn stored(&self, key: &str) -> Result<Option<LockHolder>, EngineError> {
        let mut conn = self.queue.connection().await?;
        let value: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.queue.error(e))?;
        Ok(value.map(|v| holder_in(key, &v)))
    }
}

#[async_trait]
impl Lock for RedisLock {
    async fn try_acquire(&self, pipeline: &str) -> Result<TryLock, EngineError> {
        Ok(match self.try_lock(pipeline).await? {
            Ok(guard) => TryLock::Acquired(Box::new(guard)),
            Err(holder) => TryLock::Held(holder),
        })
    }

    async fn holder(&self, pipeline: &str) -> Result<Option<LockHolder>, EngineError> {
        self.stored(&self.key(pipeline)).await
    }
}

impl RedisLock {
    /// One attempt at `name`'s lock: the guard, or who holds it.
    pub async fn try_lock(
        &self,
        pipeline: &str,
    ) -> Result<Result<RedisLockGuard, LockHolder>, EngineError> {
        let key = self.key(pipeline);
        let holder = LockHolder::me();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let value = serde_json::to_string(&Stored {
            token: token.clone(),
            holder: holder.clone(),
        })
        .map_err(|e| EngineError::Task(e.to_string()))?;
        let mut conn = self.queue.connection().await?;
        let sent = Instant::now();
        let taken = match &self.flavor {
            Flavor::Exclusive => {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("NX")
                    .arg("PX")
                    .arg(self.ttl_ms())
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.queue.error(e))?;
                match set {
                    Some(_) => None,
                    None => Some(self.stored(&key).await?),
                }
            }
            flavor => {
                let script = match flavor {
                    Flavor::TableWrite => ACQUIRE_WRITE,
                    _ => ACQUIRE_DDL,
                };
                let beside = match flavor {
                    Flavor::TableDdl { beside: Some(t) } => t.as_str(),
                    _ => "",
                };
                let (ok, held): (i64, String) = redis::Script::new(script)
                    .key(self.key(pipeline))
                    .key(self.writers_key(pipeline))
                    .arg(&token)
                    .arg(self.ttl_ms())
                    .arg(&value)
                    .arg(beside)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| self.queue.error(e))?;
                (ok != 1).then(|| Some(holder_in(&key, &held)))
            }
        };
        if let Some(holder) = taken {
            let holder = holder.unwrap_or_else(|| LockHolder {
                host: "a holder that has just let go".to_string(),
                ..LockHolder::default()
            });
            return Ok(Err(holder));
        }
        // A writer renews and releases its entry of the writers hash.
        let key = match self.flavor {
            Flavor::TableWrite => self.writers_key(pipeline),
            _ => key,
        };
        let lease = Arc::new(Mutex::new(sent + self.ttl));
        let renewal = tokio::spawn(renew(
            self.clone(),
            conn.clone(),
            key.clone(),
            token.clone(),
            pipeline.to_string(),
            lease.clone(),
        ));
        Ok(Ok(RedisLockGuard {
            lock: self.clone(),
            conn,
            key,
            token,
            pipeline: pipeline.to_string(),
            holder,
            renewal,
            lease,
        }))
    }
}

/// Renews the lock every third of its TTL until the guard drops it, or
/// until it is found gone or taken (or unrenewable for a whole TTL).
async fn renew(
    lock: RedisLock,
    mut conn: redis::aio::MultiplexedConnection,
    key: String,
    token: String,
    pipeline: String,
    lease: Arc<Mutex<Instant>>,
) {
    let every = lock.ttl / 3;
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let sent = Instant::now();
        let renewed: Result<i64, _> = redis::Script::new(lock.scripts().renew)
            .key(&key)
            .arg(&token)
            .arg(lock.ttl_ms())
            .invoke_async(&mut conn)
            .await;
        let why = match renewed {
            Ok(1) => {
                last_renewed = tokio::time::Instant::now();
                if let Ok(mut until) = lease.lock() {
                    *until = sent + lock.ttl;
                }
                continue;
            }
            Ok(_) => "it expired or another process took it".to_string(),
            Err(e) if last_renewed.elapsed() >= lock.ttl => {
                format!("it could not be renewed for its whole TTL: {e}")
            }
            Err(e) => {
                tracing::warn!(%pipeline, error = %e, "cannot renew the pipeline lock; trying again");
                continue;
            }
        };
        let message = format!("lost the {} lock of {pipeline} in Redis: {why}", lock.kind);
        tracing::error!("{message}");
        if let Some(cancel) = &lock.on_lost {
            cancel.cancel(&message);
        }
        return;
    }
}

/// A pipeline lock held in Redis; released (by its owner only) when dropped.
pub struct RedisLockGuard {
    lock: RedisLock,
    conn: redis::aio::MultiplexedConnection,
    key: String,
    token: String,
    pipeline: String,
    holder: LockHolder,
    renewal: tokio::task::JoinHandle<()>,
    /// Until when no one else can hold the lock (see the module's doc).
    lease: Arc<Mutex<Instant>>,
}

impl RedisLockGuard {
    /// The holder's token: a table's writer may take the table's DDL lock
    /// beside its own write ([`super::RedisTableLock::ddl_beside`]).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// How long this holder is sure to hold the lock still; zero once it
    /// may have been taken by another.
    pub fn lease_left(&self) -> Duration {
        self.lease
            .lock()
            .map(|until| until.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// When the lease ends (or ended), by the wall clock.
    pub fn lease_end(&self) -> SystemTime {
        let now = Instant::now();
        let until = self.lease.lock().map(|u| *u).unwrap_or(now);
        match until.checked_duration_since(now) {
            Some(ahead) => SystemTime::now() + ahead,
            None => SystemTime::now()
                .checked_sub(now.duration_since(until))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

impl std::fmt::Debug for RedisLockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLockGuard")
            .field("key", &self.key)
            .field("holder", &self.holder)
            .finish()
    }
}

#[async_trait]
impl LockGuard for RedisLockGuard {
    fn pipeline(&self) -> &str {
        &self.pipeline
    }

    fn holder(&self) -> &LockHolder {
        &self.holder
    }

    async fn set_run_id(&mut self, run_id: &str) -> Result<(), EngineError> {
        let mut holder = self.holder.clone();
        holder.run_id = Some(run_id.to_string());
        let value = serde_json::to_string(&Stored {
            token: self.token.clone(),
            holder: holder.clone(),
        })
        .map_err(|e| EngineError::Task(e.to_string()))?;
        let replaced: i64 = redis::Script::new(self.lock.scripts().replace)
            .key(&self.key)
            .arg(&self.token)
            .arg(value)
            .invoke_async(&mut self.conn)
            .await
            .map_err(|e| self.lock.queue.error(e))?;
        if replaced != 1 {
            return Err(EngineError::AlreadyRunning {
                pipeline: self.pipeline.clone(),
                holder: "this process lost its pipeline lock in Redis before the run started"
                    .to_string(),
            });
        }
        self.holder = holder;
        Ok(())
    }
}

impl Drop for RedisLockGuard {
    fn drop(&mut self) {
        self.renewal.abort();
        // Released at once, not after the TTL: the next run should not
        // wait for it. A short blocking call (the guard drops as its run
        // ends); if Redis cannot be reached, the TTL frees it.
        let released = self
            .lock
            .queue
            .client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .and_then(|mut conn| {
                redis::Script::new(self.lock.scripts().release)
                    .key(&self.key)
                    .arg(&self.token)
                    .invoke::<i64>(&mut conn)
            });
        if let Err(e) = released {
            tracing::warn!(pipeline = %self.pipeline, error = %e, "cannot release the pipeline lock; it expires on its own");
        }
    }
}

/// Whether KEYS[1] holds ARGV[1]'s token.
macro_rules! owned_by_token {
    ($then:literal) => {
        concat!(
            "local v = redis.call('GET', KEYS[1])\n",
            "if v then\n",
            "  local ok, stored = pcall(cjson.decode, v)\n",
            "  if ok and type(stored) == 'table' and stored.token == ARGV[1] then\n",
            $then,
            "\n  end\n",
            "end\n",
            "return 0\n"
        )
    };
}

const RENEW: &str = owned_by_token!("    return redis.call('PEXPIRE', KEYS[1], ARGV[2])");
const REPLACE: &str =
    owned_by_token!("    redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')\n    return 1");
const RELEASE: &str = owned_by_token!("    return redis.call('DEL', KEYS[1])");

/// A holder's renewal (KEYS[1], ARGV[1] its token, ARGV[2] the TTL in
/// ms), its holder's rewrite (ARGV[2] the new value) and its release; each
/// answers 1 when the holder still held it.
pub(crate) struct Scripts {
    renew: &'static str,
    replace: &'static str,
    release: &'static str,
}

const HOLDER: Scripts = Scripts {
    renew: RENEW,
    replace: REPLACE,
    release: RELEASE,
};

/// The Lua helpers of a table's writers hash: each entry is
/// `<expiry, ms on the server's clock>|<holder JSON>`, so each writer
/// expires on its own; expired entries are dropped when looked at.
macro_rules! with_writers {
    ($body:literal) => {
        concat!(
            "local function now_ms()\n",
            "  local t = redis.call('TIME')\n",
            "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n",
            "end\n",
            "local function live_writers(key, now)\n",
            "  local all = redis.call('HGETALL', key)\n",
            "  local live = {}\n",
            "  for i = 1, #all, 2 do\n",
            "    local exp, value = string.match(all[i + 1], '^(%d+)|(.*)$')\n",
            "    if exp and tonumber(exp) > now then\n",
            "      live[#live + 1] = {all[i], value}\n",
            "    else\n",
            "      redis.call('HDEL', key, all[i])\n",
            "    end\n",
            "  end\n",
            "  return live\n",
            "end\n",
            "local function keep(key, ttl)\n",
            "  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end\n",
            "end\n",
            $body
        )
    };
}

/// KEYS: the DDL key, the writers hash; ARGV: token, TTL, holder JSON. A
/// writer joins unless the DDL key is held; `{1, ''}`, or `{0, holder}`.
pub(crate) const ACQUIRE_WRITE: &str = with_writers!(
    "local ddl = redis.call('GET', KEYS[1])
if ddl then return {0, ddl} end
local now = now_ms()
live_writers(KEYS[2], now)
redis.call('HSET', KEYS[2], ARGV[1], (now + tonumber(ARGV[2])) .. '|' .. ARGV[3])
keep(KEYS[2], tonumber(ARGV[2]))
return {1, ''}
"
);

/// KEYS as above; ARGV: token, TTL, holder JSON, the token of a writer
/// that may stay (or ''). The DDL key is taken unless held or another
/// writer is live.
pub(crate) const ACQUIRE_DDL: &str = with_writers!(
    "local ddl = redis.call('GET', KEYS[1])
if ddl then return {0, ddl} end
for _, w in ipairs(live_writers(KEYS[2], now_ms())) do
  if w[1] ~= ARGV[4] then return {0, w[2]} end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
return {1, ''}
"
);

/// A writer's entry, renewed: gone or expired (the DDL may have run since)
/// is lost.
const RENEW_WRITE: &str = with_writers!(
    "local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local exp, value = string.match(v, '^(%d+)|(.*)$')
local now = now_ms()
if not exp or tonumber(exp) <= now then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[2])) .. '|' .. value)
keep(KEYS[1], tonumber(ARGV[2]))
return 1
"
);

const REPLACE_WRITE: &str = "local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local exp = string.match(v, '^(%d+)|')
if not exp then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], exp .. '|' .. ARGV[2])
return 1
";

const RELEASE_WRITE: &str = "return redis.call('HDEL', KEYS[1], ARGV[1])";

/// KEYS[1]: a writers hash; its live writers' holder JSON.
pub(crate) const LIVE_WRITERS: &str = with_writers!(
    "local out = {}
for _, w in ipairs(live_writers(KEYS[1], now_ms())) do out[#out + 1] = w[2] end
return out
"
);

const WRITER: Scripts = Scripts {
    renew: RENEW_WRITE,
    replace: REPLACE_WRITE,
    release: RELEASE_WRITE,
};

#[cfg(test)]
mod tests;
