//! `synchub plan` prints exactly the chain a run builds: full into an empty
//! and into a populated destination, delta before and after a watermark,
//! and hash.

use std::path::Path;

use crate::common::{run, synchub};

/// The DAG `plan` prints for `strategy`, as JSON strings.
fn planned(pipeline: &Path, strategy: &str, state: &Path) -> Vec<String> {
    let out = synchub(&[
        "plan",
        pipeline.to_str().unwrap(),
        "--strategy",
        strategy,
        "--state-dir",
        state.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    strings(&plan["dag"])
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Plans, then runs `strategy`: the run's DAG is the plan's, and the
/// operators it ran are that DAG's, one for one.
fn plan_then_run(pipeline: &Path, strategy: &str, state: &Path) -> Vec<String> {
    let dag = planned(pipeline, strategy, state);
    let ran = run(pipeline, strategy, state);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(strings(&ran.json["dag"]), dag, "{strategy}");
    let operators: Vec<String> = ran.json["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["operator"].as_str().unwrap().to_string())
        .collect();
    let names: Vec<String> = dag
        .iter()
        .map(|d| d.split('(').next().unwrap().to_string())
        .collect();
    assert_eq!(operators, names, "{strategy}");
    dag
}

#[test]
fn plan_shows_the_dag_each_run_builds() {
    let dir = tempfile::tempdir().unwrap();
    let src = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000)
         INSERT INTO items SELECT i, 'item ' || i, datetime('2024-01-01', '+' || i || ' minutes') FROM g;",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )
    .unwrap();
    let p = dir.path().join("items.yaml");
    std::fs::write(
        &p,
        "name: plan_is_run
source_provider: {data_backend: {type: sqlite, datastore_name: src, table: items}}
destination_provider: {data_backend: {type: sqlite, datastore_name: dst, table: items}}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: name, dest: name, data_type: text}
  - {source: updated_at, dest: updated_at, data_type: timestamp}
strategies:
  - {name: full, type: full, page_size: 500, primary_partitions: [{column: id, step: 1000, data_type: integer}]}
  - {name: delta, type: delta, column: updated_at, page_size: 500}
  - {name: hash, type: hash, page_size: 500, primary_partitions: [{column: id, step: 1000, data_type: integer}]}
  - {name: mirror, type: full, delete_missing: true, page_size: 500, primary_partitions: [{column: id, step: 1000, data_type: integer}]}
",
    )
    .unwrap();
    let state = dir.path().join("state");
    let plain = [
        "partition_source",
        "fetch(page=500)",
        "batcher(rows=50000)",
        "populate",
    ];
    assert_eq!(plan_then_run(&p, "full", &state), plain);
    // Into the now populated table: whole partitions compared first, only
    // those that differ fetched.
    assert_eq!(
        plan_then_run(&p, "full", &state),
        [
            "partition_source",
            "change_detection(whole partitions, every column)",
            "fetch(page=500, changed rows only)",
            "batcher(rows=50000)",
            "populate",
        ]
    );
    // The first delta has no watermark: its rows may equal the destination's.
    assert_eq!(plan_then_run(&p, "delta", &state), plain);
    // Past the watermark the rows read are changes.
    assert_eq!(
        plan_then_run(&p, "delta", &state),
        [
            "partition_source",
            "fetch(page=500)",
            "batcher(rows=50000)",
            "populate(changed rows)",
        ]
    );
    assert_eq!(
        plan_then_run(&p, "hash", &state),
        [
            "partition_source",
            "change_detection(bisect to 100000 rows, deletes applied)",
            "fetch(page=500, changed rows only)",
            "batcher(rows=50000)",
            "populate(changed rows)",
        ]
    );
    // A full run that deletes: differing partitions compared range by range.
    assert_eq!(
        plan_then_run(&p, "mirror", &state),
        [
            "partition_source",
            "change_detection(whole partitions, every column; differing ranges rewritten, deletes applied)",
            "fetch(page=500, changed rows only)",
            "batcher(rows=50000)",
            "populate",
        ]
    );
}
