//! Against the local Redis (127.0.0.1:6379), each test under a queue name
//! of its own.

use std::time::Duration;

use super::*;
use crate::lock::Wait;

async fn locks(test: &str, ttl: Duration) -> RedisLock {
    let name = format!("test-lock-{test}-{}", std::process::id());
    let queue = RedisQueue::connect(crate::cluster::DEFAULT_REDIS_URL, &name)
        .await
        .expect("local Redis at 127.0.0.1:6379");
    RedisLock::new(&queue, ttl)
}

async fn raw(lock: &RedisLock) -> redis::aio::MultiplexedConnection {
    lock.queue.connection().await.unwrap()
}

#[tokio::test]
async fn a_held_lock_names_its_holder_and_is_free_once_dropped() {
    let lock = locks("held", DEFAULT_LOCK_TTL).await;
    let mut guard = lock.acquire("p", Wait::No).await.unwrap();
    guard.set_run_id("run-1").await.unwrap();
    let TryLock::Held(holder) = lock.try_acquire("p").await.unwrap() else {
        panic!("a held lock was taken twice");
    };
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(holder.run_id.as_deref(), Some("run-1"));
    let err = lock.acquire("p", Wait::No).await.unwrap_err().to_string();
    assert!(
        err.starts_with("pipeline p is already running (run id run-1, host "),
        "{err}"
    );
    // Another pipeline's lock is its own.
    let other = lock.acquire("q", Wait::No).await.unwrap();
    drop(guard);
    assert_eq!(lock.holder("p").await.unwrap(), None);
    assert!(lock.holder("q").await.unwrap().is_some());
    drop(other);
    let again = lock.acquire("p", Wait::No).await.unwrap();
    assert_eq!(again.holder().run_id, None);
}

#[tokio::test]
async fn a_dead_holders_lock_expires_and_a_waiter_gets_it() {
    let lock = locks("expiry", Duration::from_millis(600)).await;
    // A holder that died: its key stays until its TTL, no one renews it.
    let mut conn = raw(&lock).await;
    let stored =
        r#"{"token":"dead","pid":1,"host":"gone","run_id":"r0","since":"2026-12-07 00:00:00"}"#;
    redis::cmd("SET")
        .arg(lock.key("p"))
        .arg(stored)
        .arg("PX")
        .arg(600)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let err = lock.acquire("p", Wait::No).await.unwrap_err().to_string();
    assert!(err.contains("run id r0, host gone, pid 1"), "{err}");
    let started = std::time::Instant::now();
    let _guard = lock
        .acquire("p", Wait::Up(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_live_holder_renews_past_its_ttl() {
    let lock = locks("renew", Duration::from_millis(600)).await;
    let _guard = lock.acquire("p", Wait::No).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(
        lock.try_acquire("p").await.unwrap(),
        TryLock::Held(_)
    ));
}

#[tokio::test]
async fn only_the_owner_releases_and_a_lost_lock_cancels_its_run() {
    let cancel = Cancel::default();
    let lock = locks("owner", Duration::from_millis(600))
        .await
        .on_lost(cancel.clone());
    let guard = lock.acquire("p", Wait::No).await.unwrap();
    // Another process has the key now (as after an expiry and a takeover).
    let mut conn = raw(&lock).await;
    let theirs =
        r#"{"token":"theirs","pid":2,"host":"other","run_id":null,"since":"2026-12-07 00:00:00"}"#;
    redis::cmd("SET")
        .arg(lock.key("p"))
        .arg(theirs)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(3), cancel.cancelled())
        .await
        .expect("the holder notices within a renewal");
    assert!(
        cancel.reason().unwrap().starts_with(
            "lost the pipeline lock of p in Redis: it expired or another process took it"
        ),
        "{:?}",
        cancel.reason()
    );
    drop(guard);
    let value: Option<String> = redis::cmd("GET")
        .arg(lock.key("p"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        value.as_deref(),
        Some(theirs),
        "the old holder deleted another's lock"
    );
    redis::cmd("DEL")
        .arg(lock.key("p"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

/// While a holder's lease has time left, no one else gets the lock, even
/// when the holder stopped renewing (a starved process); once the lease
/// ran out, another soon does.
#[tokio::test]
async fn no_one_else_holds_the_lock_while_the_holders_lease_lasts() {
    let lock = locks("lease", Duration::from_millis(900)).await;
    let guard = lock.try_lock("p").await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Renewed every 300 ms: well inside its TTL still.
    assert!(guard.lease_left() > Duration::from_millis(300));
    guard.renewal.abort();
    let started = std::time::Instant::now();
    while !guard.lease_left().is_zero() {
        // The lease may run out while the attempt is on its way; a take is
        // wrong only if the holder's lease is still running once it returned.
        if lock.try_lock("p").await.unwrap().is_ok() {
            let left = guard.lease_left();
            assert!(
                left.is_zero(),
                "taken while the holder's lease had {left:?} left"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended = guard.lease_end();
    assert!(ended <= SystemTime::now());
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let other = loop {
        if let Ok(other) = lock.try_lock("p").await.unwrap() {
            break other;
        }
        assert!(std::time::Instant::now() < deadline, "never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(other.lease_left() > Duration::from_millis(600));
}

/// Writers share a table; its DDL waits for every other writer, keeps new
/// writers out while it runs, and may run beside its own run's write.
#[tokio::test]
async fn a_tables_ddl_never_runs_beside_another_runs_write() {
    use crate::lock::{RedisTableLock, TableLockMode};
    let locks = locks("table", DEFAULT_LOCK_TTL).await;
    let writes = RedisTableLock::new(&locks, TableLockMode::Write);
    let ddl = RedisTableLock::new(&locks, TableLockMode::Ddl);

    let mut first = writes.lock("dst/t", Wait::No).await.unwrap();
    first.set_run_id("run-1").await.unwrap();
    let second = writes.lock("dst/t", Wait::No).await.unwrap();
    let err = ddl.lock("dst/t", Wait::No).await.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "table dst/t is locked: its DDL waits for the runs writing it to end, held by run id "
        ),
        "{err}"
    );
    // Another table is another lock.
    drop(ddl.lock("dst/u", Wait::No).await.unwrap());
    // Beside its own write only: the second writer still keeps it out.
    assert!(RedisTableLock::ddl_beside(&locks, &first)
        .lock("dst/t", Wait::No)
        .await
        .is_err());
    drop(second);
    let own = RedisTableLock::ddl_beside(&locks, &first)
        .lock("dst/t", Wait::No)
        .await
        .unwrap();
    let held = writes.held().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].table, "dst/t");
    assert_eq!(held[0].ddl.as_ref().unwrap().pid, std::process::id());
    assert_eq!(held[0].writers.len(), 1);
    assert_eq!(held[0].writers[0].run_id.as_deref(), Some("run-1"));
    let err = writes
        .lock("dst/t", Wait::No)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("its DDL is running, and writes wait for it"),
        "{err}"
    );
    drop(own);
    drop(first);
    assert!(writes.held().await.unwrap().is_empty());
    let _again = writes.lock("dst/t", Wait::No).await.unwrap();
}

/// A writer that died (stopped renewing) stops keeping the DDL out once
/// its TTL has passed; a live one renews past its TTL.
#[tokio::test]
async fn a_dead_writer_frees_the_table_after_its_ttl() {
    use crate::lock::{RedisTableLock, TableLockMode};
    let locks = locks("table-ttl", Duration::from_millis(600)).await;
    let writes = RedisTableLock::new(&locks, TableLockMode::Write);
    let ddl = RedisTableLock::new(&locks, TableLockMode::Ddl);
    let live = writes.lock("t", Wait::No).await.unwrap();
    let dead = writes.lock("t", Wait::No).await.unwrap();
    dead.renewal.abort();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let held = writes.held().await.unwrap();
    assert_eq!(held[0].writers.len(), 1, "the live writer renewed");
    drop(live);
    let started = std::time::Instant::now();
    let _ddl = ddl
        .lock("t", Wait::Up(Duration::from_secs(3)))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(dead);
}
