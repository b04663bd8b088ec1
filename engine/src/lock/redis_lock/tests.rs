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
