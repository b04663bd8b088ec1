//! `max_concurrent_partitions`: partitions written by several lanes at once
//! (each with its own source and destination connections) give exactly the
//! result of one lane, under full, hash and full-over-a-populated-table
//! runs; a destination that takes one writer at a time (SQLite) runs one lane.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{connect, difference, run, scalar, Schemas, Workspace};
use anyhow::Result;
use serde_json::Value;

const ROWS: i64 = 60_000;
const STEP: i64 = 5_000; // 13 partitions: ids 0..65,000

fn pipeline_yaml(name: &str, destination: &str, lanes: u32) -> String {
    format!(
        "name: {name}
partition_column: id
partition_step: {STEP}
max_concurrent_partitions: {lanes}
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: {destination}, datastore_name: dst, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: title, dest: title, data_type: text}}
strategies:
  - {{name: full, type: full, page_size: 1000}}
  - {{name: hash, type: hash, page_size: 1000}}
"
    )
}

async fn create_items(client: &tokio_postgres::Client, src: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, qty int, title text);
             INSERT INTO {src} SELECT g, g % 7, 'item ' || g FROM generate_series(1, {ROWS}) g;"
        ))
        .await?;
    Ok(())
}

/// The lanes that committed partitions, from the run's log.
fn lanes_in_log(state: &Path, pipeline: &str, run_id: &str) -> BTreeSet<u64> {
    let log = state
        .join("logs")
        .join(pipeline)
        .join(format!("{run_id}.log"));
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("lane").and_then(Value::as_u64))
        .collect()
}

#[tokio::test]
async fn three_lanes_sync_exactly_what_one_would() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "lanes_pg").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    create_items(&client, &src).await?;
    let ws = Workspace::new(&s, &pipeline_yaml("lanes_pg", "postgres", 3))?;
    let (pipeline, state) = (&ws.pipeline, &ws.state);

    let full = run(pipeline, "full", state);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("lanes"), 3);
    assert_eq!(full.n("partitions_done"), 13);
    assert_eq!(full.n("rows_inserted"), ROWS);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    let run_id = full.json["run_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        lanes_in_log(state, "lanes_pg", &run_id),
        BTreeSet::from([0, 1, 2]),
        "every lane commits partitions"
    );

    // Changes in every partition: hash finds them in three lanes.
    client
        .batch_execute(&format!(
            "UPDATE {src} SET qty = qty + 100 WHERE id % 1000 = 3;
             DELETE FROM {src} WHERE id % 2500 = 7;
             INSERT INTO {src} SELECT g, 1, 'new ' || g FROM generate_series({ROWS} + 1, {ROWS} + 40) g;"
        ))
        .await?;
    let hash = run(pipeline, "hash", state);
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("lanes"), 3);
    assert_eq!(hash.n("rows_updated"), 60);
    assert_eq!(hash.n("rows_deleted"), 24);
    assert_eq!(hash.n("rows_inserted"), 40);
    assert_eq!(difference(&client, &src, &dst).await?, 0);

    // Full over the populated table compares checksums per partition in
    // each lane and rewrites the two partitions that differ.
    client
        .batch_execute(&format!(
            "UPDATE {src} SET title = 'changed' WHERE id IN (12, 31234)"
        ))
        .await?;
    let again = run(pipeline, "full", state);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.n("rows_updated"), 2);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT count(*) - count(DISTINCT id) FROM {dst}")
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn a_single_writer_destination_runs_one_lane() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "lanes_lite").await?;
    let src = format!("{}.items", s.src);
    create_items(&client, &src).await?;
    let dir = tempfile::tempdir()?;
    let lite = dir.path().join("dst.db");
    std::fs::write(
        dir.path().join("datastores.yaml"),
        format!(
            "datastores:\n  src: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {}}}}}\n  dst: {{type: sqlite, connection: {{path: {}}}}}\n",
            s.src,
            lite.display()
        ),
    )?;
    let pipeline = dir.path().join("items.yaml");
    std::fs::write(&pipeline, pipeline_yaml("lanes_lite", "sqlite", 4))?;
    let state = dir.path().join("state");
    let full = run(&pipeline, "full", &state);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("lanes"), 1);
    assert_eq!(full.n("rows_inserted"), ROWS);
    let conn = rusqlite::Connection::open(&lite)?;
    let (count, sum): (i64, i64) =
        conn.query_row("SELECT count(*), sum(id * qty) FROM items", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let expected: i64 = (1..=ROWS).map(|g| g * (g % 7)).sum();
    assert_eq!((count, sum), (ROWS, expected));
    Ok(())
}

/// A row that cannot be written fails its lane; the other lanes commit the
/// partitions they hold and take no more. Every committed partition is
/// whole, the failing one is not there, and the next run resumes.
#[tokio::test]
async fn a_failing_lane_leaves_whole_partitions_and_resumes() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "lanes_fail").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    create_items(&client, &src).await?;
    // Too long for the destination's varchar(12): fails in partition 30000.
    client
        .batch_execute(&format!(
            "UPDATE {src} SET title = 'far longer than twelve' WHERE id = 31234"
        ))
        .await?;
    let ws = Workspace::new(
        &s,
        &pipeline_yaml("lanes_fail", "postgres", 3)
            .replace("data_type: text}", "data_type: varchar, length: 12}"),
    )?;
    let (pipeline, state) = (&ws.pipeline, &ws.state);

    let failed = run(pipeline, "full", state);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert_eq!(failed.json["status"], "failed");
    let error = failed.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("id=31234"), "{error}");
    // Committed partitions hold every row of their range; nothing else is
    // in the destination.
    let ranges: Vec<i64> = client
        .query(
            &format!("SELECT partition_id FROM {}._synchub_checkpoints", s.dst),
            &[],
        )
        .await?
        .iter()
        .filter_map(|r| {
            let id: String = r.get(0);
            id.split('_').nth(1).and_then(|n| n.parse().ok())
        })
        .collect();
    assert!(!ranges.contains(&30_000), "the failing partition committed");
    let expected: i64 = ranges
        .iter()
        .map(|start| (start + STEP).min(ROWS + 1) - start.max(&1))
        .sum();
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        expected,
        "committed partitions {ranges:?}"
    );

    client
        .batch_execute(&format!(
            "UPDATE {src} SET title = 'fixed' WHERE id = 31234"
        ))
        .await?;
    let resumed = run(pipeline, "full", state);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.n("partitions_skipped"), ranges.len() as i64);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    Ok(())
}
