//! Runs killed on purpose, then run again: the destination must end equal to
//! the source, with no row lost or duplicated, whatever the kill point.
//!
//! One test kills the child with a real SIGKILL mid-run; another walks 24
//! randomized kill points (crash before or after a partition's commit,
//! at a random partition, under full, delta and hash runs, with source
//! changes in between). The seed is printed; `SYNCHUB_TEST_SEED` replays one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{connect, difference, run, scalar, Lcg, Schemas, Workspace};
use anyhow::Result;

const ROWS: i64 = 40_000;
const STEP: i64 = 2_000; // 20 partitions

fn pipeline_yaml(name: &str, lanes: u64) -> String {
    format!(
        "name: {name}
partition_column: id
partition_step: {STEP}
max_concurrent_partitions: {lanes}
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: price, dest: price, data_type: decimal, precision: 12, scale: 2}}
  - {{source: title, dest: title, data_type: text}}
  - {{source: updated_at, dest: updated_at, data_type: timestamptz}}
strategies:
  - {{name: full, type: full, page_size: 500}}
  - {{name: hash, type: hash, page_size: 500}}
  - name: delta
    type: delta
    column: updated_at
    page_size: 500
    primary_partitions:
      - {{column: updated_at, step: 1, step_unit: hour, data_type: datetime}}
  - {{name: delta_by_id, type: delta, column: updated_at, page_size: 500}}
"
    )
}

async fn setup(prefix: &str) -> Result<(tokio_postgres::Client, Schemas, Workspace)> {
    let client = connect().await?;
    let s = Schemas::create(&client, prefix).await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint PRIMARY KEY, qty int, price numeric(12,2), title text,
               updated_at timestamptz NOT NULL);
             INSERT INTO {src}.items SELECT g, g % 13, g * 0.25, 'item ' || g,
               timestamptz '2024-06-01 00:00:00+00' + g * interval '1 second'
             FROM generate_series(1, {ROWS}) g;",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(&s, &pipeline_yaml(prefix, 1))?;
    Ok((client, s, ws))
}

async fn assert_in_sync(client: &tokio_postgres::Client, s: &Schemas, context: &str) -> Result<()> {
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    assert_eq!(
        difference(client, &src, &dst).await?,
        0,
        "{context}: tables differ"
    );
    assert_eq!(
        scalar(
            client,
            &format!("SELECT count(*) - count(DISTINCT id) FROM {dst}")
        )
        .await?,
        0,
        "{context}: duplicated rows"
    );
    Ok(())
}

#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn a_real_sigkill_mid_run_resumes_without_loss_or_duplicates() -> Result<()> {
    let (client, s, ws) = setup("crash_kill").await?;
    let (pipeline, state) = (&ws.pipeline, &ws.state);
    // Killed once a few partitions are committed, in the middle of the run.
    let committed = kill_mid_run(&client, &s, &ws, "full", 4).await?;

    let resumed = run(pipeline, "full", state);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.n("partitions_skipped"), committed);
    assert_eq!(resumed.n("partitions_total"), ROWS / STEP + 1);
    assert_in_sync(&client, &s, "after SIGKILL").await
}

/// `synchub run --strategy S` of `pipeline` as a child that commits slowly,
/// killed with SIGKILL once `at_least` partitions are committed; the number
/// committed then.
async fn kill_mid_run(
    client: &tokio_postgres::Client,
    s: &Schemas,
    ws: &Workspace,
    strategy: &str,
    at_least: i64,
) -> Result<i64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(&ws.pipeline)
        .args(["--strategy", strategy, "--state-dir"])
        .arg(&ws.state)
        .env("SYNCHUB_LOG", "off")
        .env("SYNCHUB_TEST_SLOW_COMMIT_MS", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let checkpoints = format!("SELECT count(*) FROM {}._synchub_checkpoints", s.dst);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = scalar(client, &checkpoints).await.unwrap_or(0);
        if done >= at_least {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never committed {at_least} partitions"
        );
        assert!(
            child.try_wait()?.is_none(),
            "the run ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill()?; // SIGKILL
    let status = child.wait()?;
    assert!(!status.success(), "the child should have been killed");
    let committed = scalar(client, &checkpoints).await?;
    assert!(
        committed < ROWS / STEP + 1,
        "killed too late: {committed} committed"
    );
    Ok(committed)
}

/// A first delta cut by `partition_column` (2,000 ids a partition) in two
/// lanes, killed with SIGKILL mid-run: the next run skips exactly what was
/// committed and reads the rest, and since the killed run set no
/// watermark, it is still a first run over every id range; only the run
/// after it reads from the watermark.
#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn a_partitioned_delta_killed_mid_run_resumes_without_loss_or_duplicates() -> Result<()> {
    let (client, s, ws) = setup("crash_delta").await?;
    std::fs::write(&ws.pipeline, pipeline_yaml("crash_delta", 2))?;
    let committed = kill_mid_run(&client, &s, &ws, "delta_by_id", 4).await?;
    let dst = format!("{}.items", s.dst);
    let written = scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?;

    let resumed = run(&ws.pipeline, "delta_by_id", &ws.state);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.n("partitions_total"), ROWS / STEP + 1);
    assert_eq!(resumed.n("partitions_skipped"), committed);
    assert_eq!(resumed.n("lanes"), 2);
    assert_eq!(resumed.n("rows_read"), ROWS - written);
    assert_eq!(resumed.n("rows_inserted"), ROWS - written);
    assert_in_sync(&client, &s, "after SIGKILL").await?;

    // Fifty rows move past the watermark: the next delta reads them and
    // the row on the watermark, in the two id ranges holding them, merged
    // into one partition (51 rows, one transaction).
    client
        .batch_execute(&format!(
            "UPDATE {src}.items SET qty = -qty, updated_at = updated_at + interval '1 day' WHERE id BETWEEN 101 AND 150",
            src = s.src
        ))
        .await?;
    let next = run(&ws.pipeline, "delta_by_id", &ws.state);
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert_eq!(next.n("partitions_total"), 1);
    assert_eq!(next.n("rows_read"), 51);
    assert_eq!(next.n("rows_updated"), 50);
    assert_in_sync(&client, &s, "after the next delta").await
}

#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn randomized_kill_points_never_lose_or_duplicate_rows() -> Result<()> {
    let (client, s, ws) = setup("crash_rand").await?;
    let (pipeline, state) = (&ws.pipeline, &ws.state);
    let mut rng = Lcg::seeded("crash test");
    let seed = rng.0;
    let src = format!("{}.items", s.src);

    let mut crashes = 0;
    for round in 0..24 {
        let strategy = ["full", "delta", "hash"][round % 3];
        if round > 0 {
            // Changes for the next run, as an application makes them: the
            // cursor moves forward (like `updated_at = now()`), new rows
            // arrive, and a few rows land exactly on the newest timestamp.
            // Deletes only before hash rounds: delta cannot see them.
            let first = 1 + rng.below(ROWS as u64) as i64;
            let tie = 1 + rng.below(ROWS as u64) as i64;
            client
                .batch_execute(&format!(
                    "UPDATE {src} SET qty = qty + 1, updated_at = (SELECT max(updated_at) FROM {src}) + interval '1 minute' * (1 + id % 300)
                       WHERE id BETWEEN {first} AND {first} + 400;
                     UPDATE {src} SET title = 'tied in round {round}', updated_at = (SELECT max(updated_at) FROM {src})
                       WHERE id BETWEEN {tie} AND {tie} + 2;
                     INSERT INTO {src} SELECT max(id) + 1, {round}, {round}.5, 'new in round {round}',
                       max(updated_at) + interval '1 second' FROM {src};"
                ))
                .await?;
            if strategy == "hash" {
                let gone = 1 + rng.below(ROWS as u64) as i64;
                client
                    .batch_execute(&format!(
                        "DELETE FROM {src} WHERE id BETWEEN {gone} AND {gone} + 30"
                    ))
                    .await?;
            }
        }
        let point = if rng.below(2) == 0 {
            "before_commit"
        } else {
            "after_commit"
        };
        // One to three lanes writing at once. A kill point counts the
        // partitions of one lane; a delta run has 4 or more partitions in
        // all, so with several lanes it is killed at a lane's first.
        let lanes = 1 + rng.below(3);
        std::fs::write(pipeline, pipeline_yaml("crash_rand", lanes))?;
        let n = if lanes > 1 && strategy == "delta" {
            1
        } else {
            1 + rng.below(4)
        };
        let crash = Command::new(env!("CARGO_BIN_EXE_synchub"))
            .arg("run")
            .arg(pipeline)
            .args(["--strategy", strategy, "--state-dir"])
            .arg(state)
            .args(["--output", "json"])
            .env("SYNCHUB_LOG", "off")
            .env("SYNCHUB_TEST_CRASH", format!("{point}:{n}"))
            .output()?;
        let context =
            format!("seed {seed}, round {round}: {strategy} in {lanes} lanes killed {point} of a lane's partition {n}");
        if !crash.status.success() {
            crashes += 1;
        }
        let resumed = run(pipeline, strategy, state);
        assert_eq!(
            resumed.code, 0,
            "{context}: resume failed: {}",
            resumed.stderr
        );
        assert_in_sync(&client, &s, &context).await?;
    }
    // Every run has at least 4 partitions (changes spread over 5 hours of
    // hourly windows), so every kill point is reached.
    assert_eq!(crashes, 24, "some runs ended before their kill point");
    Ok(())
}
