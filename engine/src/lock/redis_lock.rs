//! The pipeline lock in Redis, shared by coordinators on every host: a key
//! per pipeline holding the holder's token and who it is, set only where
//! absent and with a time to live that the holder renews. Only the holder
//! renews, rewrites or deletes it (Lua scripts comparing the token), so a
//! holder whose lock expired and was taken by another cannot release the
//! new holder's lock. A holder that finds its lock gone cancels its run
//! (`RedisLock::on_lost`): the open partitions roll back.
//!
//! A holder that dies stops renewing: its lock expires after the TTL.

use std::time::Duration;

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
    /// What is locked: `pipeline` (one key per pipeline) or `scheduler`.
    kind: &'static str,
    ttl: Duration,
    on_lost: Option<Cancel>,
}

impl std::fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLock")
            .field("queue", &self.queue.name())
            .field("ttl", &self.ttl)
            .finish()
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
        }
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

    fn key(&self, pipeline: &str) -> String {
        self.queue.key(&format!("lock:{}:{pipeline}", self.kind))
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

    fn ttl_ms(&self) -> u64 {
        (self.ttl.as_millis() as u64).max(1)
    }

    async fn stored(&self, key: &str) -> Result<Option<LockHolder>, EngineError> {
        let mut conn = self.queue.connection().await?;
        let value: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.queue.error(e))?;
        Ok(value.map(|v| match serde_json::from_str::<Stored>(&v) {
            Ok(stored) => stored.holder,
            // Not ours to read: say so rather than fail the caller.
            Err(_) => LockHolder {
                host: format!("unknown (the lock key {key} holds {v:?})"),
                ..LockHolder::default()
            },
        }))
    }
}

#[async_trait]
impl Lock for RedisLock {
    async fn try_acquire(&self, pipeline: &str) -> Result<TryLock, EngineError> {
        let key = self.key(pipeline);
        let holder = LockHolder::me();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let value = serde_json::to_string(&Stored {
            token: token.clone(),
            holder: holder.clone(),
        })
        .map_err(|e| EngineError::Task(e.to_string()))?;
        let mut conn = self.queue.connection().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.queue.error(e))?;
        if set.is_none() {
            let holder = self.stored(&key).await?.unwrap_or_else(|| LockHolder {
                host: "a holder that has just let go".to_string(),
                ..LockHolder::default()
            });
            return Ok(TryLock::Held(holder));
        }
        let renewal = tokio::spawn(renew(
            self.clone(),
            conn.clone(),
            key.clone(),
            token.clone(),
            pipeline.to_string(),
        ));
        Ok(TryLock::Acquired(Box::new(RedisLockGuard {
            lock: self.clone(),
            conn,
            key,
            token,
            pipeline: pipeline.to_string(),
            holder,
            renewal,
        })))
    }

    async fn holder(&self, pipeline: &str) -> Result<Option<LockHolder>, EngineError> {
        self.stored(&self.key(pipeline)).await
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
) {
    let every = lock.ttl / 3;
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let renewed: Result<i64, _> = redis::Script::new(RENEW)
            .key(&key)
            .arg(&token)
            .arg(lock.ttl_ms())
            .invoke_async(&mut conn)
            .await;
        let why = match renewed {
            Ok(1) => {
                last_renewed = tokio::time::Instant::now();
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
        let replaced: i64 = redis::Script::new(REPLACE)
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
                redis::Script::new(RELEASE)
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

#[cfg(test)]
mod tests;
