//! Table locks: DDL never runs beside a write. A run writing a table holds
//! its write lock, shared with the other runs writing it; DDL on a table
//! (its creation or change when a run prepares its destination) takes the
//! table's DDL lock, which no one holds while anyone else writes, and which
//! keeps new writers out while held. Both live in Redis beside the pipeline
//! locks, with the same owner tokens, renewal and loss handling (see
//! [`super::RedisLock`]); a writer's entry expires on its own, so a dead
//! writer frees the table after the TTL.
//!
//! A table is named by its datastore and its name in the pipeline
//! (`dst_db/analytics.users`): two datastores naming one database are two
//! names for its tables.

use async_trait::async_trait;
use serde::Serialize;

use super::redis_lock::{holder_in, Flavor, LIVE_WRITERS};
use super::{Lock, LockGuard, LockHolder, RedisLock, RedisLockGuard, TryLock, Wait, POLL};
use crate::error::EngineError;

/// Which side of a table's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableLockMode {
    /// Writes rows: shared with other writers, never beside DDL.
    Write,
    /// Creates or changes the table: alone.
    Ddl,
}

/// A table lock, one side of it, on a queue's Redis.
#[derive(Clone, Debug)]
pub struct RedisTableLock {
    lock: RedisLock,
    mode: TableLockMode,
}

/// The locks held on one table now.
#[derive(Debug, Clone, Serialize)]
pub struct TableLocks {
    pub table: String,
    /// Who holds its DDL lock.
    pub ddl: Option<LockHolder>,
    /// Who writes it.
    pub writers: Vec<LockHolder>,
}

impl RedisTableLock {
    /// `mode` locks of the tables on `locks`' server and queue, with its
    /// TTL and its loss handling.
    pub fn new(locks: &RedisLock, mode: TableLockMode) -> RedisTableLock {
        let flavor = match mode {
            TableLockMode::Write => Flavor::TableWrite,
            TableLockMode::Ddl => Flavor::TableDdl { beside: None },
        };
        RedisTableLock {
            lock: locks.with("table-ddl", flavor),
            mode,
        }
    }

    /// The DDL lock, which `writer` (this run's own write lock on the
    /// table) does not keep out.
    pub fn ddl_beside(locks: &RedisLock, writer: &RedisLockGuard) -> RedisTableLock {
        RedisTableLock {
            lock: locks.with(
                "table-ddl",
                Flavor::TableDdl {
                    beside: Some(writer.token().to_string()),
                },
            ),
            mode: TableLockMode::Ddl,
        }
    }

    /// Takes `table`'s lock, waiting as `wait` says; a table that stays
    /// locked is `EngineError::TableLocked`, naming the holder.
    pub async fn lock(&self, table: &str, wait: Wait) -> Result<RedisLockGuard, EngineError> {
        let deadline = wait.start();
        let mut waited = false;
        loop {
            match self.lock.try_lock(table).await? {
                Ok(guard) => return Ok(guard),
                Err(holder) => {
                    if !std::mem::replace(&mut waited, true) {
                        crate::telemetry::lock_waited(table);
                    }
                    if !deadline.keep_waiting() {
                        return Err(EngineError::TableLocked {
                            table: table.to_string(),
                            wanted: self.mode,
                            holder: holder.describe(),
                        });
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// Every table locked now, by name, with its DDL holder and writers.
    pub async fn held(&self) -> Result<Vec<TableLocks>, EngineError> {
        let queue = self.lock.queue();
        let mut conn = queue.connection().await?;
        let mut tables = std::collections::BTreeSet::new();
        for kind in ["table-ddl", "table-writes"] {
            let prefix = queue.key(&format!("lock:{kind}:"));
            for key in queue.keys(&mut conn, &format!("lock:{kind}:*")).await? {
                if let Some(table) = key.strip_prefix(&prefix) {
                    tables.insert(table.to_string());
                }
            }
        }
        let mut held = Vec::new();
        for table in tables {
            let ddl = self.lock.stored(&self.lock.key(&table)).await?;
            let writers_key = self.lock.writers_key(&table);
            let writers: Vec<String> = redis::Script::new(LIVE_WRITERS)
                .key(&writers_key)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| queue.error(e))?;
            let writers: Vec<LockHolder> =
                writers.iter().map(|w| holder_in(&writers_key, w)).collect();
            // Released or expired since the scan: not held.
            if ddl.is_some() || !writers.is_empty() {
                held.push(TableLocks {
                    table,
                    ddl,
                    writers,
                });
            }
        }
        Ok(held)
    }
}

#[async_trait]
impl Lock for RedisTableLock {
    async fn try_acquire(&self, table: &str) -> Result<TryLock, EngineError> {
        Ok(match self.lock.try_lock(table).await? {
            Ok(guard) => TryLock::Acquired(Box::new(guard)),
            Err(holder) => TryLock::Held(holder),
        })
    }

    /// Who keeps this side out: the DDL holder, else (for DDL) a writer.
    async fn holder(&self, table: &str) -> Result<Option<LockHolder>, EngineError> {
        let held = self.held_on(table).await?;
        Ok(held.ddl.or(match self.mode {
            TableLockMode::Ddl => held.writers.into_iter().next(),
            TableLockMode::Write => None,
        }))
    }

    async fn acquire(&self, table: &str, wait: Wait) -> Result<Box<dyn LockGuard>, EngineError> {
        Ok(Box::new(self.lock(table, wait).await?))
    }
}

impl RedisTableLock {
    async fn held_on(&self, table: &str) -> Result<TableLocks, EngineError> {
        let queue = self.lock.queue();
        let mut conn = queue.connection().await?;
        let writers_key = self.lock.writers_key(table);
        let writers: Vec<String> = redis::Script::new(LIVE_WRITERS)
            .key(&writers_key)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| queue.error(e))?;
        Ok(TableLocks {
            table: table.to_string(),
            ddl: self.lock.stored(&self.lock.key(table)).await?,
            writers: writers.iter().map(|w| holder_in(&writers_key, w)).collect(),
        })
    }
}

/// The name a pipeline's destination is locked under.
pub fn table_name(table: &planner::model::TableRef) -> String {
    match &table.schema {
        Some(schema) => format!("{}/{schema}.{}", table.datastore.name, table.table),
        None => format!("{}/{}", table.datastore.name, table.table),
    }
}
