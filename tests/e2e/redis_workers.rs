//! Runs executed by worker processes through the Redis queue: `synchub run
//! --queue redis` plans the run and waits, `synchub worker start`
//! processes execute its partition tasks. A worker killed mid-task has its
//! task taken over by another; the destination ends equal to the source.
//!
//! Each test has a queue of its own (`--queue-name`), so tests share the
//! local Redis (127.0.0.1:6379) without seeing each other's tasks.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::common::{connect, difference, scalar, Lcg, Schemas, Workspace};

const SYNCHUB: &str = env!("CARGO_BIN_EXE_synchub");

pub(crate) fn pipeline_yaml(name: &str, step: i64) -> String {
    format!(
        "name: {name}
partition_column: id
partition_step: {step}
{providers}column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: title, dest: title, data_type: text}}
strategies:
  - {{name: full, type: full}}
",
        providers = crate::common::items_providers("postgres")
    )
}

pub(crate) async fn source_rows(
    client: &tokio_postgres::Client,
    s: &Schemas,
    rows: i64,
) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint PRIMARY KEY, qty int, title text);
             INSERT INTO {src}.items SELECT g, g % 7, 'item ' || g FROM generate_series(1, {rows}) g;",
            src = s.src
        ))
        .await?;
    Ok(())
}

/// A `synchub worker start` (or `scheduler start`) process and the lines
/// it printed so far.
pub(crate) struct Worker {
    pub(crate) child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    /// One job at a time.
    fn start(queue: &str, name: &str, reclaim_after: &str) -> Result<Worker> {
        Worker::spawn(
            &[
                "worker",
                "start",
                "--queue-name",
                queue,
                "--max-jobs",
                "1",
                "--reclaim-after",
                reclaim_after,
                "--name",
                name,
            ],
            &[],
        )
    }

    /// `synchub ARGS` with `vars` set, its standard output collected.
    pub(crate) fn spawn(args: &[&str], vars: &[(&str, &str)]) -> Result<Worker> {
        let mut child = Command::new(SYNCHUB)
            .args(args)
            .env("SYNCHUB_LOG", "warn")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        Ok(Worker { child, lines })
    }

    pub(crate) fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Partitions it announced with `event`.
    fn partitions(&self, event: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == event)
            .map(|e| e["partition"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// SIGTERM, then waits for it to drain; its exit code.
    pub(crate) fn stop(&mut self) -> Option<i32> {
        signal(&self.child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process killed and reaped if the test ends before it does.
pub(crate) struct Reaped(pub(crate) Option<Child>);

impl Reaped {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("not taken yet")
    }

    pub(crate) fn take(mut self) -> Child {
        self.0.take().expect("not taken yet")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status();
}

pub(crate) fn synchub(args: &[&str]) -> std::process::Output {
    Command::new(SYNCHUB)
        .args(args)
        .env("SYNCHUB_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run synchub")
}

pub(crate) fn clear_queue(queue: &str) {
    let out = synchub(&["queue", "clear", "--queue-name", queue, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `synchub run` of the workspace's pipeline on `queue`, started in the
/// background.
fn coordinator(ws: &Workspace, queue: &str) -> Result<Child> {
    coordinator_with(ws, queue, &ws.state, &[])
}

/// [`coordinator`] on state directory `state`, with environment variables.
pub(crate) fn coordinator_with(
    ws: &Workspace,
    queue: &str,
    state: &std::path::Path,
    vars: &[(&str, &str)],
) -> Result<Child> {
    Ok(Command::new(SYNCHUB)
        .args([
            "run",
            ws.pipeline.to_str().unwrap(),
            "--strategy",
            "full",
            "--state-dir",
            state.to_str().unwrap(),
            "--output",
            "json",
            "--queue",
            "redis",
            "--queue-name",
            queue,
        ])
        .env("SYNCHUB_LOG", "warn")
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

/// Waits for `child` at most `limit`; its exit code, JSON summary and
/// standard error.
pub(crate) async fn finished(
    child: Child,
    limit: Duration,
) -> Result<(Option<i32>, Value, String)> {
    let out = tokio::time::timeout(
        limit,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await???;
    Ok((
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A test's tables (`rows` source rows), its workspace with the pipeline
/// in partitions of `step` ids, and its queue, empty.
pub(crate) async fn setup(
    prefix: &str,
    rows: i64,
    step: i64,
) -> Result<(tokio_postgres::Client, Schemas, Workspace, String)> {
    let client = connect().await?;
    let s = Schemas::create(&client, prefix).await?;
    source_rows(&client, &s, rows).await?;
    let ws = Workspace::new(&s, &pipeline_yaml(prefix, step))?;
    let queue = format!("test-{prefix}-{}", std::process::id());
    clear_queue(&queue);
    Ok((client, s, ws, queue))
}

/// The destination's `items` equals the source's, row for row.
pub(crate) async fn assert_in_sync(client: &tokio_postgres::Client, s: &Schemas) -> Result<()> {
    let (src, dst) = (format!("{}.items", s.src), format!("{}.items", s.dst));
    assert_eq!(difference(client, &src, &dst).await?, 0);
    Ok(())
}

/// `synchub queue status` as JSON.
fn queue_status(queue: &str) -> Value {
    let out = synchub(&["queue", "status", "--queue-name", queue, "--output", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until `queue` holds `tasks` tasks; its status then.
async fn tasks_queued(queue: &str, tasks: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = queue_status(queue);
        if st["tasks"] == tasks {
            return st;
        }
        assert!(Instant::now() < deadline, "{st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn checkpoints(client: &tokio_postgres::Client, s: &Schemas) -> i64 {
    scalar(
        client,
        &format!("SELECT count(*) FROM {}._synchub_checkpoints", s.dst),
    )
    .await
    .unwrap_or(0)
}

const ROWS: i64 = 500_000;

/// The acceptance run of issue 18: 500,000 rows in 26 partition tasks,
/// three workers, one SIGKILLed at a random point mid-run. The run
/// completes on the other two, the killed worker's task is taken over, and
/// the destination equals the source. `SYNCHUB_TEST_KILL_REPEATS` (default
/// 1) repeats it with fresh tables and new random kill points.
#[tokio::test]
async fn a_run_on_three_workers_completes_with_one_killed_mid_run() -> Result<()> {
    let repeats: u64 = std::env::var("SYNCHUB_TEST_KILL_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let client = connect().await?;
    let s = Schemas::create(&client, "rwork").await?;
    source_rows(&client, &s, ROWS).await?;
    let mut rng = Lcg::seeded("redis_workers");
    for round in 0..repeats {
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", s.dst))
            .await?;
        let ws = Workspace::new(&s, &pipeline_yaml("rwork", 20_000))?;
        let queue = format!("test-rwork-{}-{round}", std::process::id());
        clear_queue(&queue);
        let mut workers: Vec<Worker> = (0..3)
            .map(|i| Worker::start(&queue, &format!("w{i}"), "4"))
            .collect::<Result<_>>()?;
        let run = coordinator(&ws, &queue)?;

        // Killed once a few partitions are in, a moment after.
        let wait_for = 1 + rng.below(8) as i64;
        let pause = Duration::from_millis(rng.below(400));
        let victim = rng.below(3) as usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        while checkpoints(&client, &s).await < wait_for {
            if Instant::now() > deadline {
                bail!("round {round}: no {wait_for} partitions committed within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(pause).await;
        workers[victim].child.kill()?; // SIGKILL
        workers[victim].child.wait()?;
        let committed_at_kill = checkpoints(&client, &s).await;

        let (code, summary, stderr) = finished(run, Duration::from_secs(300)).await?;
        assert_eq!(code, Some(0), "round {round}: {stderr}\n{summary}");
        assert_eq!(summary["status"], "completed", "{summary}");
        let total = summary["partitions_total"].as_i64().unwrap();
        assert!(total >= 20, "{summary}");
        assert_eq!(summary["partitions_done"], total, "{summary}");
        assert!(
            committed_at_kill < total,
            "round {round}: killed after the last commit ({committed_at_kill} of {total})"
        );
        assert_eq!(summary["rows_read"], ROWS, "{summary}");
        // Less when the killed worker committed its task and died before
        // saying so: what that write inserted went with it.
        assert!(
            summary["rows_inserted"].as_i64().unwrap() <= ROWS,
            "{summary}"
        );

        // Nothing lost, nothing twice.
        let dst = format!("{}.items", s.dst);
        assert_eq!(
            scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
            ROWS
        );
        assert_eq!(
            scalar(&client, &format!("SELECT count(DISTINCT id) FROM {dst}")).await?,
            ROWS
        );
        assert_eq!(
            difference(&client, &format!("{}.items", s.src), &dst).await?,
            0
        );

        // The task the killed worker held was taken over and done by another.
        let held: Vec<String> = {
            let victim = &workers[victim];
            let done = victim.partitions("done");
            victim
                .partitions("claimed")
                .into_iter()
                .filter(|p| !done.contains(p))
                .collect()
        };
        let mut survivors_done = Vec::new();
        for (i, w) in workers.iter_mut().enumerate() {
            if i != victim {
                assert_eq!(w.stop(), Some(0), "a worker drains and exits 0 on SIGTERM");
                survivors_done.extend(w.events().into_iter().filter(|e| e["event"] == "done"));
            }
        }
        for partition in &held {
            assert!(
                survivors_done
                    .iter()
                    .any(|e| e["partition"] == partition.as_str()),
                "round {round}: {partition}, held by the killed worker, was done by no other"
            );
        }
        let reclaimed: Vec<Value> = workers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .flat_map(|(_, w)| w.events())
            .filter(|e| e["event"] == "claimed" && e["reclaimed"] == true)
            .collect();
        // (One claimed in the instant before it could say so is reclaimed
        // too, unannounced.)
        for partition in &held {
            assert!(
                reclaimed
                    .iter()
                    .any(|e| e["partition"] == partition.as_str()),
                "round {round}: held {held:?}, reclaimed {reclaimed:?}"
            );
        }
        eprintln!(
            "round {round}: killed w{victim} after {committed_at_kill} commits holding {held:?}; {} tasks",
            total
        );
        clear_queue(&queue);
    }
    Ok(())
}

/// A run waits for workers with its tasks on the queue; `queue status`
/// shows them, `queue clear` asks first. Cancelled (SIGTERM), the run
/// takes its tasks off the queue; run again with a worker, it resumes and
/// completes.
#[tokio::test]
async fn a_run_waits_for_workers_and_a_cancelled_one_leaves_nothing_queued() -> Result<()> {
    let (client, s, ws, queue) = setup("rwait", 10_000, 1_000).await?;
    let status = || queue_status(&queue);
    let run = coordinator(&ws, &queue)?;
    tasks_queued(&queue, 11).await;
    let st = status();
    assert_eq!(
        (
            st["waiting"].as_i64(),
            st["in_flight"].as_i64(),
            st["runs"].as_i64()
        ),
        (Some(11), Some(0), Some(1)),
        "{st}"
    );

    // Without --yes and without a terminal to ask on, nothing is removed.
    let out = synchub(&["queue", "clear", "--queue-name", &queue]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("error: queue clear removes every task of queue {queue}; confirm with --yes\n")
    );
    assert_eq!(status()["tasks"], 11);

    signal(&run, "TERM");
    let (code, summary, stderr) = finished(run, Duration::from_secs(60)).await?;
    assert_eq!(code, Some(143), "{stderr}");
    assert_eq!(summary["status"], "cancelled", "{summary}");
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    let st = status();
    assert_eq!(
        (st["tasks"].as_i64(), st["runs"].as_i64()),
        (Some(0), Some(0)),
        "{st}"
    );
    // The spec's spelling works too.
    let out = synchub(&[
        "redis",
        "queue-status",
        "--queue-name",
        &queue,
        "--output",
        "json",
    ]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout)?, st);

    // No worker yet: `worker health` says so and exits 1.
    let out = synchub(&["worker", "health", "--queue-name", &queue]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("0 of 0 workers healthy on queue {queue}\n")
    );
    let mut worker = Worker::start(&queue, "solo", "30")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let out = synchub(&[
            "worker",
            "health",
            "--queue-name",
            &queue,
            "--output",
            "json",
        ]);
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout)?;
        }
        assert!(Instant::now() < deadline, "the worker never showed up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["healthy"], 1, "{health}");
    assert_eq!(health["workers"][0]["name"], "solo-0", "{health}");
    let run = coordinator(&ws, &queue)?;
    let (code, summary, stderr) = finished(run, Duration::from_secs(120)).await?;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        summary["run_id"],
        run_id.as_str(),
        "the cancelled run is resumed"
    );
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["partitions_done"], 11);
    assert_eq!(summary["rows_inserted"], 10_000);
    assert_in_sync(&client, &s).await?;
    assert_eq!(worker.stop(), Some(0));
    assert_eq!(worker.partitions("done").len(), 11);
    let out = synchub(&["queue", "clear", "--queue-name", &queue, "--yes"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("queue {queue}: 0 tasks removed\n")
    );
    Ok(())
}

/// A task that fails on its worker fails the run at once, naming the
/// partition, the worker and the error; the run's other tasks leave the
/// queue.
#[tokio::test]
async fn a_task_failing_on_a_worker_fails_the_run_with_its_error() -> Result<()> {
    let (client, s, ws, queue) = setup("rfail", 5_000, 1_000).await?;
    // The destination's password comes from a variable the coordinator has
    // and the worker has not.
    std::fs::write(
        ws.dir.path().join("datastores.yaml"),
        s.datastores_yaml().replace(
            &format!("dbname: test, schema: {}", s.dst),
            &format!("dbname: test, password: '${{RFAIL_PW}}', schema: {}", s.dst),
        ),
    )?;
    let mut worker = Worker::start(&queue, "nopw", "30")?;
    let run = coordinator_with(&ws, &queue, &ws.state, &[("RFAIL_PW", "trusted-anyway")])?;
    let (code, summary, stderr) = finished(run, Duration::from_secs(120)).await?;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(summary["status"], "failed", "{summary}");
    assert!(
        stderr.contains("failed on worker nopw-0 (attempt 1): ")
            && stderr.contains(
                "environment variable RFAIL_PW is not set (the task names it; set it where the task runs)"
            ),
        "{stderr}"
    );
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {}.items", s.dst)).await?,
        0
    );
    assert_eq!(worker.stop(), Some(0));
    // A config error is not retried.
    assert!(
        worker.events().iter().all(|e| e["event"] != "retrying"),
        "{:?}",
        worker.events()
    );
    let st = queue_status(&queue);
    assert_eq!(
        (st["tasks"].as_i64(), st["runs"].as_i64()),
        (Some(0), Some(0)),
        "{st}"
    );
    Ok(())
}

/// Two coordinators of one pipeline started together, as on two hosts
/// (each its own state directory, one queue): one runs, the other exits 1
/// naming it, refused by the pipeline lock in Redis (before the
/// destination's own lock is asked). Cancelled, the first releases it.
#[tokio::test]
async fn two_coordinators_of_one_pipeline_never_run_at_once() -> Result<()> {
    let (client, s, ws, queue) = setup("rlock", 5_000, 1_000).await?;
    let host2 = ws.dir.path().join("state-host2");
    let mut runs = vec![
        Reaped(Some(coordinator(&ws, &queue)?)),
        Reaped(Some(coordinator_with(&ws, &queue, &host2, &[])?)),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let loser = loop {
        if let Some(i) = runs
            .iter_mut()
            .position(|c| matches!(c.child().try_wait(), Ok(Some(_))))
        {
            break i;
        }
        assert!(Instant::now() < deadline, "neither run was refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut winner = runs.remove(1 - loser);
    let (code, _, stderr) = finished(runs.remove(0).take(), Duration::from_secs(10)).await?;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: pipeline rlock is already running (run id ")
            && stderr.contains(&format!(", pid {}, since ", winner.child().id()))
            && !stderr.contains("destination's lock"),
        "{stderr}"
    );
    // The winner queues its run's tasks, alone.
    let st = tasks_queued(&queue, 6).await;
    assert_eq!(st["runs"], 1, "{st}");

    signal(winner.child(), "TERM");
    let (code, _, stderr) = finished(winner.take(), Duration::from_secs(60)).await?;
    assert_eq!(code, Some(143), "{stderr}");
    // Released: the other host's run now goes, and completes.
    let mut worker = Worker::start(&queue, "lockw", "30")?;
    let (code, summary, stderr) = finished(
        coordinator_with(&ws, &queue, &host2, &[])?,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary["status"], "completed");
    assert_in_sync(&client, &s).await?;
    assert_eq!(worker.stop(), Some(0));
    Ok(())
}

/// A worker whose first two attempts fail with a transient error (a
/// connection reset, injected) retries the task after a backoff and the
/// run completes; with fewer retries than failures, the run fails naming
/// the last attempt.
#[tokio::test]
async fn a_transient_failure_is_retried_and_the_run_completes() -> Result<()> {
    let (client, s, ws, queue) = setup("rretry", 5_000, 1_000).await?;
    let worker = |retries: &str| {
        Worker::spawn(
            &[
                "worker",
                "start",
                "--queue-name",
                &queue,
                "--max-jobs",
                "1",
                "--retries",
                retries,
                "--retry-backoff",
                "0.1",
                "--name",
                "flaky",
            ],
            &[("SYNCHUB_TEST_TRANSIENT_FAILURES", "2")],
        )
    };
    let mut flaky = worker("3")?;
    let (code, summary, stderr) =
        finished(coordinator(&ws, &queue)?, Duration::from_secs(120)).await?;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary["partitions_done"], 6, "{summary}");
    assert_in_sync(&client, &s).await?;
    assert_eq!(flaky.stop(), Some(0));
    let events = flaky.events();
    let retrying: Vec<&Value> = events.iter().filter(|e| e["event"] == "retrying").collect();
    assert_eq!(retrying.len(), 2, "{events:?}");
    assert_eq!(
        (
            retrying[0]["attempt"].as_u64(),
            retrying[1]["attempt"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert!(retrying[0]["error"]
        .as_str()
        .unwrap()
        .ends_with("connection reset by peer (injected by SYNCHUB_TEST_TRANSIENT_FAILURES)"));
    // The second delay is the first's doubled, each within ±50%.
    let delay = |e: &Value| e["delay_seconds"].as_f64().unwrap();
    assert!((0.05..0.15).contains(&delay(retrying[0])), "{events:?}");
    assert!((0.1..0.3).contains(&delay(retrying[1])), "{events:?}");
    let attempts: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "done")
        .map(|e| e["attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(
        attempts.iter().filter(|&&a| a == 3).count(),
        1,
        "{attempts:?}"
    );
    assert_eq!(attempts.len(), 6);

    // Two failures, one retry: the run fails at the second attempt.
    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", s.dst))
        .await?;
    let ws = Workspace::new(&s, &pipeline_yaml("rretry", 1_000))?;
    let mut flaky = worker("1")?;
    let (code, summary, stderr) =
        finished(coordinator(&ws, &queue)?, Duration::from_secs(120)).await?;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(summary["status"], "failed");
    assert!(
        stderr.contains("failed on worker flaky-0 (attempt 2): PostgreSQL error: connection reset by peer (injected by SYNCHUB_TEST_TRANSIENT_FAILURES)"),
        "{stderr}"
    );
    assert_eq!(flaky.stop(), Some(0));
    Ok(())
}

/// `worker start --global-config` takes `redis.url`/`db` and
/// `worker.max_jobs` from the file; a flag overrides the file.
#[tokio::test]
async fn a_worker_reads_redis_and_max_jobs_from_the_global_config() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let global = dir.path().join("global_config.yaml");
    std::fs::write(
        &global,
        "redis:\n  url: redis://127.0.0.1:6379\n  db: 0\nworker:\n  max_jobs: 2\n",
    )?;
    let queue = format!("test-rglobal-{}", std::process::id());
    clear_queue(&queue);
    let names = |extra: &[&str]| -> Result<Vec<String>> {
        let mut args = vec![
            "worker",
            "start",
            "--queue-name",
            &queue,
            "--global-config",
            global.to_str().unwrap(),
            "--name",
            "g",
        ];
        args.extend_from_slice(extra);
        let mut worker = Worker::spawn(&args, &[])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let workers = || -> Vec<String> {
            queue_status(&queue)["workers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["name"].as_str().unwrap().to_string())
                .collect()
        };
        while workers().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Every job loop says it is alive before its first read.
        std::thread::sleep(Duration::from_millis(1500));
        let mut seen = workers();
        seen.sort();
        assert_eq!(worker.stop(), Some(0));
        Ok(seen)
    };
    assert_eq!(names(&[])?, ["g-0", "g-1"]);
    // Stopped workers leave the group; a flag beats the file.
    assert_eq!(names(&["--max-jobs", "3"])?, ["g-0", "g-1", "g-2"]);
    assert!(queue_status(&queue)["workers"]
        .as_array()
        .unwrap()
        .is_empty());

    std::fs::write(&global, "worker:\n  max_jobs: 0\n")?;
    let out = synchub(&[
        "worker",
        "start",
        "--global-config",
        global.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("worker.max_jobs: 0 tasks at once; give at least 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
