//! Runs on the Redis queue whose services go away mid-run (issue 18's
//! acceptance): Redis restarted without its data, and PostgreSQL sessions
//! cut. Nothing is lost or written twice; the run or the next one ends with
//! the destination equal to the source.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::common::{connect, difference, scalar, Schemas, Workspace};
use crate::redis_workers::{
    checkpoints, coordinator_with, finished, pipeline_yaml, source_rows, Reaped, Worker,
};

/// A redis-server of the test's own on a free loopback port, without
/// persistence (`--save ''`, no append-only file), so a restart loses
/// everything, as a server without persistence does. The shared server on
/// 6379 is never touched; this one is killed when the test ends, however
/// it ends.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Result<OwnRedis> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut redis = OwnRedis {
            port,
            dir: tempfile::tempdir()?,
            child: None,
        };
        redis.spawn()?;
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server (scripts/test.sh installs it)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]).as_deref() != Some("PONG") {
            if Instant::now() > deadline {
                bail!("redis-server on port {} did not answer in 10 s", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `SHUTDOWN NOSAVE`, then the same server again on the same port,
    /// empty.
    fn restart(&mut self) -> Result<()> {
        self.cli(&["SHUTDOWN", "NOSAVE"]);
        let mut child = self.child.take().expect("running");
        child.wait()?;
        self.spawn()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `worker start` on `redis`'s queue `queue`, one job, each commit
/// followed by a pause of `slow_ms` (so a run lasts long enough to be
/// interrupted).
fn worker(redis_url: &str, queue: &str, name: &str, slow_ms: &str) -> Result<Worker> {
    Worker::spawn(
        &[
            "worker",
            "start",
            "--queue-name",
            queue,
            "--max-jobs",
            "1",
            "--reclaim-after",
            "3",
            "--retry-backoff",
            "0.2",
            "--name",
            name,
        ],
        &[
            ("REDIS_URL", redis_url),
            ("SYNCHUB_TEST_SLOW_COMMIT_MS", slow_ms),
        ],
    )
}

/// Nothing lost, nothing twice: as many rows as the source, each id once,
/// every row equal.
async fn exactly_the_source(client: &tokio_postgres::Client, s: &Schemas, rows: i64) -> Result<()> {
    let dst = format!("{}.items", s.dst);
    assert_eq!(
        scalar(client, &format!("SELECT count(*) FROM {dst}")).await?,
        rows
    );
    assert_eq!(
        scalar(client, &format!("SELECT count(DISTINCT id) FROM {dst}")).await?,
        rows
    );
    assert_eq!(
        difference(client, &format!("{}.items", s.src), &dst).await?,
        0
    );
    Ok(())
}

/// Redis restarted mid-run, losing the queue, its tasks and the run's
/// Redis lock: the coordinator fails cleanly (exit 1, the run recorded as
/// failed) or, had it been past its last task, completes. The workers
/// reconnect and get their group back; the next run skips the partitions
/// committed before the restart and does the rest. The destination then
/// equals the source with nothing doubled.
///
/// The test restarts a redis-server of its own on a free port, so the
/// tests sharing the local server on 6379 are not disturbed.
#[tokio::test]
async fn redis_restarted_mid_run_the_next_run_finishes_it() -> Result<()> {
    const ROWS: i64 = 200_000;
    let mut redis = OwnRedis::start()?;
    let url = redis.url();
    let client = connect().await?;
    let s = Schemas::create(&client, "rredisrs").await?;
    source_rows(&client, &s, ROWS).await?;
    let ws = Workspace::new(&s, &pipeline_yaml("rredisrs", 10_000))?;
    let queue = "test-rredisrs";
    let vars = [("REDIS_URL", url.as_str())];
    let mut workers = vec![
        worker(&url, queue, "w0", "300")?,
        worker(&url, queue, "w1", "300")?,
    ];
    let run = Reaped(Some(coordinator_with(&ws, queue, &ws.state, &vars)?));

    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoints(&client, &s).await < 3 {
        if Instant::now() > deadline {
            bail!("no 3 partitions committed within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.restart()?;
    let committed_at_restart = checkpoints(&client, &s).await;

    let (code, first, stderr) = finished(run.take(), Duration::from_secs(120)).await?;
    match code {
        Some(0) => assert_eq!(first["status"], "completed", "{first}"),
        Some(1) => {
            assert!(
                stderr.contains("error: ") && stderr.contains("Redis"),
                "a failure that names Redis: {stderr}"
            );
        }
        other => panic!("exit {other:?}, neither completed nor failed cleanly: {stderr}\n{first}"),
    }
    let committed_before = checkpoints(&client, &s).await;
    assert!(committed_before >= committed_at_restart);

    let again = coordinator_with(&ws, queue, &ws.state, &vars)?;
    let (code, second, stderr) = finished(again, Duration::from_secs(300)).await?;
    assert_eq!(code, Some(0), "{stderr}\n{second}");
    assert_eq!(second["status"], "completed", "{second}");
    let total = second["partitions_total"].as_i64().unwrap();
    // Ids 1..=200,000 in ranges of 10,000 from 0: the last holds 200,000 alone.
    assert_eq!(total, 21, "{second}");
    assert_eq!(
        second["partitions_done"].as_i64().unwrap()
            + second["partitions_skipped"].as_i64().unwrap(),
        total,
        "{second}"
    );
    if first["status"] != "completed" {
        // What was committed before the restart was not done again.
        assert!(
            second["partitions_skipped"].as_i64().unwrap() >= committed_at_restart,
            "{second}"
        );
    }
    exactly_the_source(&client, &s, ROWS).await?;
    for w in &mut workers {
        assert_eq!(w.stop(), Some(0), "a worker outlives the restart");
    }
    Ok(())
}

/// PostgreSQL sessions cut mid-run, as a restarting server cuts them: the
/// partition task that loses its connection fails with a transient error,
/// the worker retries it, and the run completes with the destination equal
/// to the source.
///
/// The test terminates the workers' sessions (`pg_terminate_backend`, the
/// same 57P01 "terminating connection due to administrator command" a
/// restart sends) instead of restarting the server, which every test
/// running beside it shares. They are found by the test's own schema names
/// in their statements; the coordinator's session, which holds the
/// destination's lock under another application name, is left alone.
#[tokio::test]
async fn postgres_sessions_cut_mid_run_the_task_is_retried_and_the_run_succeeds() -> Result<()> {
    const ROWS: i64 = 300_000;
    let client = connect().await?;
    let s = Schemas::create(&client, "rpgcut").await?;
    source_rows(&client, &s, ROWS).await?;
    let ws = Workspace::new(&s, &pipeline_yaml("rpgcut", 50_000))?;
    let queue = format!("test-rpgcut-{}", std::process::id());
    crate::redis_workers::clear_queue(&queue);
    let mut w = worker("redis://127.0.0.1:6379", &queue, "w0", "50")?;
    let run = Reaped(Some(coordinator_with(&ws, &queue, &ws.state, &[])?));

    // Once the worker holds a task: the coordinator's own sessions, which
    // plan the run, are idle from then on and never cut.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !w.events().iter().any(|e| e["event"] == "claimed") {
        if Instant::now() > deadline {
            bail!("no task claimed in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut cut = 0;
    while !w.events().iter().any(|e| e["event"] == "retrying") {
        if Instant::now() > deadline {
            bail!(
                "no task retried in 120 s ({cut} sessions cut): {:?}",
                w.events()
            );
        }
        if w.events().iter().filter(|e| e["event"] == "done").count() >= 7 {
            bail!("the run ended before a session could be cut ({cut} cut)");
        }
        cut += scalar(
            &client,
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = 'synchub' AND state = 'active' \
                 AND pid <> pg_backend_pid() \
                 AND (query LIKE '%{src}.%' OR query LIKE '%{dst}.%' \
                      OR query LIKE '%\"{src}\".%' OR query LIKE '%\"{dst}\".%')",
                src = s.src,
                dst = s.dst
            ),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (code, summary, stderr) = finished(run.take(), Duration::from_secs(300)).await?;
    assert_eq!(code, Some(0), "{stderr}\n{summary}");
    assert_eq!(summary["status"], "completed", "{summary}");
    // Ids 1..=300,000 in ranges of 50,000 from 0: the last holds 300,000 alone.
    assert_eq!(summary["partitions_done"], 7, "{summary}");
    assert_eq!(summary["rows_read"], ROWS, "{summary}");
    let events = w.events();
    let retried: Vec<_> = events.iter().filter(|e| e["event"] == "retrying").collect();
    assert!(
        retried.iter().all(|e| {
            let error = e["error"].as_str().unwrap_or_default();
            error.contains("terminating connection due to administrator command")
                || error.contains("connection closed")
        }),
        "{retried:?}"
    );
    // The retried task was committed, on a later attempt.
    for r in &retried {
        assert!(
            events.iter().any(|e| e["event"] == "done"
                && e["partition"] == r["partition"]
                && e["status"] == "committed"
                && e["attempts"].as_u64() > r["attempt"].as_u64()),
            "{events:?}"
        );
    }
    exactly_the_source(&client, &s, ROWS).await?;
    assert_eq!(w.stop(), Some(0));
    crate::redis_workers::clear_queue(&queue);
    Ok(())
}
