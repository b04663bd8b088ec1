//! One run of a pipeline at a time: a second run started at the same moment
//! exits 1 saying who runs it, or waits with `--wait`; `state reset` and
//! `state cleanup` refuse a running pipeline; two state directories sharing
//! a PostgreSQL destination exclude each other through it. The data ends
//! exact every time.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, connect, difference, Schemas, Workspace};
use anyhow::Result;
use rusqlite::Connection;

const ROWS: i64 = 5_000;

fn pipeline_yaml(name: &str, backend: &str) -> String {
    format!(
        "name: {name}
partition_column: id
partition_step: 500
source_provider:
  data_backend: {{type: {backend}, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: {backend}, datastore_name: dst, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: title, dest: title, data_type: text}}
  - {{source: version, dest: version, data_type: bigint}}
strategies:
  - {{name: full, type: full}}
  - {{name: delta, type: delta, column: version}}
  - {{name: hash, type: hash}}
"
    )
}

/// `synchub run` started in the background, slowed down so that runs meet.
fn start(pipeline: &Path, strategy: &str, state: &Path, extra: &[&str]) -> Child {
    start_slowed(pipeline, strategy, state, extra, 40)
}

/// [`start`] with each commit slowed by `commit_ms`.
fn start_slowed(
    pipeline: &Path,
    strategy: &str,
    state: &Path,
    extra: &[&str],
    commit_ms: u64,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(pipeline)
        .args(["--strategy", strategy, "--state-dir"])
        .arg(state)
        .args(extra)
        .env("SYNCHUB_LOG", "off")
        .env("SYNCHUB_TEST_SLOW_COMMIT_MS", commit_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start synchub")
}

/// The run id of the run holding pipeline `name`'s lock in `state`, once
/// one does.
fn lock_holder(state: &Path, name: &str) -> String {
    let lock_file = state.join("locks").join(format!("{name}.lock"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let holder = std::fs::read_to_string(&lock_file).unwrap_or_default();
        if let Some(id) = serde_json::from_str::<serde_json::Value>(&holder)
            .ok()
            .and_then(|v| v["run_id"].as_str().map(str::to_string))
        {
            return id;
        }
        assert!(Instant::now() < deadline, "the run never took its lock");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn synchub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_LOG", "off")
        .output()
        .expect("run synchub")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Two runs started together: one completes, the other exits 1 at once
/// with the holder's run id, host, pid and start time.
fn race(pipeline: &Path, name: &str, strategy: &str, state: &Path) {
    let a = start(pipeline, strategy, state, &[]);
    let b = start(pipeline, strategy, state, &[]);
    let (pid_a, pid_b) = (a.id(), b.id());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (winner, loser, winner_pid) = match (a.status.code(), b.status.code()) {
        (Some(0), Some(1)) => (&a, &b, pid_a),
        (Some(1), Some(0)) => (&b, &a, pid_b),
        other => panic!(
            "{strategy}: want one run to complete and one to exit 1, got {other:?}\nA: {}\nB: {}",
            text(&a.stderr),
            text(&b.stderr)
        ),
    };
    let _ = winner;
    let stderr = text(&loser.stderr);
    let prefix = format!("error: pipeline {name} is already running (run id ");
    let holder = format!(", host {}, pid {winner_pid}, since ", host());
    assert!(
        stderr.starts_with(&prefix) && stderr.contains(&holder) && stderr.ends_with(" UTC)\n"),
        "{strategy}: {stderr}"
    );
}

/// Both with `--wait`: both complete, one after the other.
fn wait_in_turn(pipeline: &Path, name: &str, strategy: &str, state: &Path) {
    let a = start(pipeline, strategy, state, &["--wait", "120"]);
    let b = start(pipeline, strategy, state, &["--wait"]);
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let history = synchub(&[
        "history",
        name,
        "--strategy",
        strategy,
        "--limit",
        "2",
        "--state-dir",
        state.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let runs: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let runs = runs["runs"].as_array().expect("runs").clone();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for r in &runs {
        assert_eq!(r["status"], "completed", "{r}");
    }
    // Newest first: the later one started after the earlier one finished.
    let (later, earlier) = (&runs[0], &runs[1]);
    assert!(
        later["started_at"].as_str() >= earlier["finished_at"].as_str(),
        "runs overlapped: {runs:?}"
    );
}

/// `state reset` and `state cleanup` while a run goes are refused; the run
/// then completes.
fn reset_refused_while_running(pipeline: &Path, name: &str, state: &Path) {
    let running = start(pipeline, "full", state, &[]);
    let run_id = lock_holder(state, name);
    let state_arg = state.to_str().unwrap();
    let reset = synchub(&["state", "reset", name, "--state-dir", state_arg]);
    assert_eq!(reset.status.code(), Some(1), "{}", text(&reset.stderr));
    let expected = format!(
        "error: pipeline {name} is already running (run id {run_id}, host {}, pid {}, since ",
        host(),
        running.id()
    );
    let stderr = text(&reset.stderr);
    assert!(
        stderr.starts_with(&expected)
            && stderr.ends_with(" UTC); try again once it has finished\n"),
        "{stderr}"
    );
    let cleanup = synchub(&["state", "cleanup", "--days", "0", "--state-dir", state_arg]);
    assert_eq!(cleanup.status.code(), Some(1), "{}", text(&cleanup.stderr));
    assert!(
        text(&cleanup.stderr).starts_with(&expected),
        "{}",
        text(&cleanup.stderr)
    );
    let out = running.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Once it has finished, reset works.
    let reset = synchub(&["state", "reset", name, "--state-dir", state_arg]);
    assert_eq!(reset.status.code(), Some(0), "{}", text(&reset.stderr));
}

struct Pg {
    client: tokio_postgres::Client,
    schemas: Schemas,
    ws: Workspace,
}

impl Pg {
    async fn new(prefix: &str) -> Result<Pg> {
        let client = connect().await?;
        let schemas = Schemas::create(&client, prefix).await?;
        client
            .batch_execute(&format!(
                "CREATE TABLE {src}.items (id bigint PRIMARY KEY, title text, version bigint NOT NULL);
                 INSERT INTO {src}.items SELECT g, 'item ' || g, g FROM generate_series(1, {ROWS}) g;",
                src = schemas.src
            ))
            .await?;
        let ws = Workspace::new(&schemas, &pipeline_yaml(prefix, "postgres"))?;
        Ok(Pg {
            client,
            schemas,
            ws,
        })
    }

    async fn change(&self, round: i64) -> Result<()> {
        let src = format!("{}.items", self.schemas.src);
        self.client
            .batch_execute(&format!(
                "UPDATE {src} SET title = title || '+', version = (SELECT max(version) FROM {src}) + id WHERE id % 10 = {round};
                 DELETE FROM {src} WHERE id = (SELECT min(id) FROM {src}) AND {round} = 2;
                 INSERT INTO {src} SELECT max(id) + 1, 'new', max(version) + 1 FROM {src};"
            ))
            .await?;
        Ok(())
    }

    async fn assert_exact(&self, context: &str) -> Result<()> {
        let (src, dst) = (
            format!("{}.items", self.schemas.src),
            format!("{}.items", self.schemas.dst),
        );
        assert_eq!(difference(&self.client, &src, &dst).await?, 0, "{context}");
        Ok(())
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn postgres_runs_of_one_pipeline_never_overlap() -> Result<()> {
    let name = "conc_pg";
    let pg = Pg::new(name).await?;
    let state = pg.ws.dir.path().join("state");
    for (round, strategy) in ["full", "delta", "hash"].into_iter().enumerate() {
        pg.change(round as i64).await?;
        race(&pg.ws.pipeline, name, strategy, &state);
        pg.assert_exact(&format!("{strategy} race")).await?;
        pg.change(round as i64 + 3).await?;
        wait_in_turn(&pg.ws.pipeline, name, strategy, &state);
        pg.assert_exact(&format!("{strategy} in turn")).await?;
    }
    reset_refused_while_running(&pg.ws.pipeline, name, &state);
    pg.assert_exact("after reset refused").await
}

/// Two state directories (two machines) and one PostgreSQL destination: the
/// destination's advisory lock keeps the second out.
#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn postgres_destination_lock_spans_state_directories() -> Result<()> {
    let name = "conc_pg_two";
    let pg = Pg::new(name).await?;
    let (one, two) = (pg.ws.dir.path().join("one"), pg.ws.dir.path().join("two"));
    let first = start(&pg.ws.pipeline, "full", &one, &[]);
    // Wait until the first holds the destination's lock (its own session:
    // other tests' runs have sessions of the same name but another pid).
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::scalar(
        &pg.client,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'synchub pid {} on %'",
            first.id()
        ),
    )
    .await
    .unwrap()
        == 0
    {
        assert!(Instant::now() < deadline, "the first run never locked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = synchub(&[
        "run",
        pg.ws.pipeline.to_str().unwrap(),
        "--strategy",
        "full",
        "--state-dir",
        two.to_str().unwrap(),
    ]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    let expected = format!(
        "error: pipeline {name} is already running (synchub pid {} on {}, connected from 127.0.0.1 since ",
        first.id(),
        host()
    );
    let stderr = text(&second.stderr);
    assert!(
        stderr.starts_with(&expected)
            && stderr.ends_with(" UTC; it holds the destination's lock)\n"),
        "{stderr}"
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // With --wait each runs once the other is done.
    let third = start(&pg.ws.pipeline, "full", &one, &["--wait", "120"]);
    let waited = start(&pg.ws.pipeline, "hash", &two, &["--wait", "120"]);
    for out in [
        third.wait_with_output().unwrap(),
        waited.wait_with_output().unwrap(),
    ] {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    pg.assert_exact("two state directories").await
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
fn sqlite_runs_of_one_pipeline_never_overlap() {
    let name = "conc_sqlite";
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    Connection::open(&source)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT, version INTEGER NOT NULL);
             WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {ROWS})
             INSERT INTO items SELECT i, 'item ' || i, i FROM g;"
        ))
        .unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )
    .unwrap();
    let pipeline = dir.path().join("items.yaml");
    std::fs::write(&pipeline, pipeline_yaml(name, "sqlite")).unwrap();
    let state = dir.path().join("state");
    let change = |round: i64| {
        Connection::open(&source)
            .unwrap()
            .execute_batch(&format!(
                "UPDATE items SET title = title || '+', version = (SELECT max(version) FROM items) + id WHERE id % 10 = {round};
                 DELETE FROM items WHERE id = (SELECT min(id) FROM items) AND {round} = 2;
                 INSERT INTO items SELECT max(id) + 1, 'new', max(version) + 1 FROM items;"
            ))
            .unwrap();
    };
    let assert_exact = |context: &str| {
        let conn = Connection::open(dir.path().join("warehouse.db")).unwrap();
        conn.execute("ATTACH DATABASE ?1 AS src", [source.to_str().unwrap()])
            .unwrap();
        let differ: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM (SELECT id, title, version FROM src.items EXCEPT SELECT id, title, version FROM main.items))
                      + (SELECT count(*) FROM (SELECT id, title, version FROM main.items EXCEPT SELECT id, title, version FROM src.items))",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(differ, 0, "{context}");
    };
    for (round, strategy) in ["full", "delta", "hash"].into_iter().enumerate() {
        change(round as i64);
        race(&pipeline, name, strategy, &state);
        assert_exact(&format!("{strategy} race"));
        change(round as i64 + 3);
        wait_in_turn(&pipeline, name, strategy, &state);
        assert_exact(&format!("{strategy} in turn"));
    }
    reset_refused_while_running(&pipeline, name, &state);
    assert_exact("after reset refused");
}

/// SIGTERM and SIGINT cancel a run: its open partition rolls back, it is
/// recorded as `cancelled`, its summary is printed, and it exits 143 or
/// 130. The next run resumes from its checkpoints.
#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn sigterm_and_sigint_cancel_a_run_that_the_next_resumes() -> Result<()> {
    let name = "conc_signal";
    let pg = Pg::new(name).await?;
    let state = pg.ws.dir.path().join("state");
    let checkpoints = format!(
        "SELECT count(*) FROM {}._synchub_checkpoints",
        pg.schemas.dst
    );
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        pg.client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}.items", pg.schemas.dst))
            .await?;
        let before = common::scalar(&pg.client, &checkpoints).await.unwrap_or(0);
        let child = start(&pg.ws.pipeline, "full", &state, &["--output", "json"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while common::scalar(&pg.client, &checkpoints).await.unwrap_or(0) < before + 2 {
            assert!(Instant::now() < deadline, "the run never committed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(summary["status"], "cancelled", "{summary}");
        assert_eq!(
            summary["error"],
            format!(
                "cancelled (SIG{signal}); committed partitions are kept and the next run resumes"
            ),
            "{summary}"
        );
        let done = summary["partitions_done"].as_i64().unwrap();
        assert!((2..11).contains(&done), "{summary}");
        // Nothing but whole partitions reached the destination.
        let committed = common::scalar(&pg.client, &checkpoints).await? - before;
        assert_eq!(committed, done, "{summary}");
        let rows = common::scalar(
            &pg.client,
            &format!("SELECT count(*) FROM {}.items", pg.schemas.dst),
        )
        .await?;
        let expected_rows = common::scalar(
            &pg.client,
            &format!(
                "SELECT sum(rows)::bigint FROM {}._synchub_checkpoints WHERE run_id = '{}'",
                pg.schemas.dst,
                summary["run_id"].as_str().unwrap()
            ),
        )
        .await?;
        assert_eq!(rows, expected_rows, "{summary}");
        let resumed = common::run(&pg.ws.pipeline, "full", &state);
        assert_eq!(resumed.code, 0, "{}", resumed.stderr);
        assert_eq!(resumed.json["run_id"], summary["run_id"]);
        assert_eq!(resumed.n("partitions_skipped"), done);
        pg.assert_exact(&format!("after SIG{signal}")).await?;
    }
    Ok(())
}

/// A run waiting for the pipeline's lock (`--wait`) stops on SIGTERM at
/// once, exits 143 and leaves the running one alone.
#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn a_run_waiting_for_the_lock_stops_on_sigterm() -> Result<()> {
    let name = "conc_wait_term";
    let pg = Pg::new(name).await?;
    let state = pg.ws.dir.path().join("state");
    // Ten partitions of a second each: it holds the lock throughout.
    let running = start_slowed(&pg.ws.pipeline, "full", &state, &[], 1000);
    lock_holder(&state, name);
    let waiting = start(&pg.ws.pipeline, "full", &state, &["--wait"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &waiting.id().to_string()])
        .status();
    let out = waiting.wait_with_output().unwrap();
    assert!(killed.unwrap().success());
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "error: cancelled (SIGTERM); committed partitions are kept and the next run resumes\n"
    );
    // The running one goes on to the end.
    let out = running.wait_with_output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    pg.assert_exact("after the waiting run was stopped").await?;
    Ok(())
}
