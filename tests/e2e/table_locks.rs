//! The table lock of runs on the Redis queue: two pipelines writing one
//! destination table never have one's DDL beside the other's writes.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::common::{connect, Schemas, Workspace};
use crate::redis_workers::{
    assert_in_sync, clear_queue, coordinator_with, finished, pipeline_yaml, source_rows, synchub,
    Reaped, Worker,
};

/// Pipeline A runs on the queue with no worker yet, so it holds its
/// table's write lock and waits. Pipeline B, into the same table, cannot
/// prepare it (its DDL would run beside A's writes): it exits 1 naming A's
/// run, having written nothing. With a worker, A completes, and B then
/// runs.
#[tokio::test]
async fn a_second_pipeline_into_a_written_table_does_not_prepare_it() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "rtlock").await?;
    source_rows(&client, &s, 4_000).await?;
    let a = Workspace::new(&s, &pipeline_yaml("rtlock_a", 1_000))?;
    let b_file = a.dir.path().join("b.yaml");
    std::fs::write(&b_file, pipeline_yaml("rtlock_b", 2_000))?;
    let queue = format!("test-rtlock-{}", std::process::id());
    clear_queue(&queue);

    // Killed if the test fails before it ends.
    let run_a = Reaped(Some(coordinator_with(&a, &queue, &a.state, &[])?));
    // A's run id, once its lock names it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        let out = synchub(&[
            "queue",
            "status",
            "--queue-name",
            &queue,
            "--output",
            "json",
        ]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        // Ids 1..=4,000 in ranges of 1,000 from 0: 5 tasks.
        if status["tasks"] == 5 {
            let held = synchub(&[
                "state",
                "show",
                "rtlock_a",
                "--state-dir",
                a.state.to_str().unwrap(),
                "--output",
                "json",
            ]);
            let state: serde_json::Value = serde_json::from_slice(&held.stdout)?;
            break state["strategies"][0]["last_run"]["run_id"]
                .as_str()
                .expect("a run id")
                .to_string();
        }
        if Instant::now() > deadline {
            bail!("A's tasks were not queued: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let b = synchub(&[
        "run",
        b_file.to_str().unwrap(),
        "--state-dir",
        a.dir.path().join("state_b").to_str().unwrap(),
        "--queue",
        "redis",
        "--queue-name",
        &queue,
    ]);
    let stderr = String::from_utf8_lossy(&b.stderr);
    assert_eq!(b.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: table dst/{}.items is locked: its DDL waits for the runs writing it to end, held by run id {run_id}, host ",
            s.dst
        )),
        "{stderr}"
    );

    let mut worker = Worker::spawn(
        &["worker", "start", "--queue-name", &queue, "--max-jobs", "2"],
        &[],
    )?;
    let (code, summary, stderr) = finished(run_a.take(), Duration::from_secs(120)).await?;
    assert_eq!(code, Some(0), "{stderr}\n{summary}");
    assert_in_sync(&client, &s).await?;
    // The table is free: B prepares it and runs (writing nothing new).
    let b = synchub(&[
        "run",
        b_file.to_str().unwrap(),
        "--state-dir",
        a.dir.path().join("state_b").to_str().unwrap(),
        "--queue",
        "redis",
        "--queue-name",
        &queue,
        "--output",
        "json",
    ]);
    assert_eq!(
        b.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&b.stdout)?;
    assert_eq!(summary["rows_inserted"], 0, "{summary}");
    assert_eq!(worker.stop(), Some(0));
    clear_queue(&queue);
    Ok(())
}
