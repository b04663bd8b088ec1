//! The destination's own pipeline lock (PostgreSQL: an advisory lock),
//! which also excludes runs on other machines.

use std::time::Instant;

use connectors::LockAttempt;
use planner::Pipeline;

use crate::error::EngineError;
use crate::lock::{LockGuard, Wait};

/// Takes the destination's own pipeline lock (PostgreSQL: an advisory lock,
/// which also excludes runs on other machines), waiting as `wait` says.
pub(crate) async fn lock_destination(
    sink: &mut dyn connectors::Sink,
    pipeline: &Pipeline,
    lock: &dyn LockGuard,
    wait: Wait,
) -> Result<(), EngineError> {
    let key = format!(
        "synchub:{}:{}",
        pipeline.name,
        pipeline.destination.display_name()
    );
    let me = lock.holder();
    let holder = format!("synchub pid {} on {}", me.pid, me.host);
    let deadline = wait.start();
    // A run killed mid-query leaves its session to the server until the
    // server next reads from it: its lock goes a moment later. Such a
    // holder (a process of this machine that no longer exists) is waited
    // for, a while, even without --wait.
    let grace = Instant::now() + DEAD_HOLDER_GRACE;
    loop {
        match sink.try_lock(&key, &holder).await? {
            LockAttempt::Acquired => return Ok(()),
            LockAttempt::Held { holder } => {
                let dead = is_dead_local_holder(&holder, &me.host);
                if !(deadline.keep_waiting() || dead && Instant::now() < grace) {
                    return Err(EngineError::AlreadyRunning {
                        pipeline: pipeline.name.clone(),
                        holder: format!("{holder}; it holds the destination's lock"),
                    });
                }
                tokio::time::sleep(crate::lock::POLL).await;
            }
        }
    }
}

/// How long a destination lock held by a dead process of this machine is
/// waited for: the server releases it once it notices the connection gone.
const DEAD_HOLDER_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a destination lock's holder (`synchub pid P on HOST, …`) is a
/// process of `host` that no longer runs. Only Linux can tell (`/proc`);
/// elsewhere every holder counts as alive.
fn is_dead_local_holder(holder: &str, host: &str) -> bool {
    let Some((pid, rest)) = holder
        .strip_prefix("synchub pid ")
        .and_then(|r| r.split_once(" on "))
    else {
        return false;
    };
    let same_host = rest.split(',').next() == Some(host);
    cfg!(target_os = "linux")
        && same_host
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

#[cfg(test)]
mod dead_holder_tests {
    use super::is_dead_local_holder;

    #[test]
    fn a_holder_is_dead_only_when_its_process_of_this_host_is_gone() {
        let me = std::process::id();
        let alive =
            format!("synchub pid {me} on box, connected from 127.0.0.1 since 2026-12-07 UTC");
        assert!(!is_dead_local_holder(&alive, "box"));
        // No process has pid 4,000,000,000 (above Linux's pid_max).
        let gone = "synchub pid 4000000000 on box, connected from 127.0.0.1 since 2026-12-07 UTC";
        assert_eq!(is_dead_local_holder(gone, "box"), cfg!(target_os = "linux"));
        assert!(!is_dead_local_holder(gone, "other-box"));
        assert!(!is_dead_local_holder(
            "a session that has just let go",
            "box"
        ));
    }
}
