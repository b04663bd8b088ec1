//! Whole runs over the in-memory connector: the engine end to end with no
//! database, the connector registered and opened as a real one is.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use connectors::memory::{put_table, table_rows};
use engine::{run_pipeline, RunOptions};

const ROWS: i64 = 5000;

fn items(ids: &[i64], names: impl Fn(i64) -> Option<String>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(
                ids.iter().map(|i| names(*i)).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// The destination's (id, name) rows, in key order.
fn destination(store: &str) -> Vec<(i64, Option<String>)> {
    let rows = table_rows(store, "items_copy").expect("destination table");
    let ids = rows.column(0).as_primitive::<Int64Type>();
    let names = rows.column(1).as_string::<i32>();
    (0..rows.num_rows())
        .map(|i| {
            (
                ids.value(i),
                (!names.is_null(i)).then(|| names.value(i).to_string()),
            )
        })
        .collect()
}

/// A folder holding a datastores file (`mem`: memory store `store`;
/// `appends`: the same store as a destination that is not transactional)
/// and `items.yaml`, copying `items` of `mem` into `items_copy` of
/// `destination` with these strategies.
fn pipeline_files(store: &str, destination: &str, strategies: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        format!(
            "datastores:\n  mem: {{type: memory, connection: {{store: {store}}}}}\n  \
             appends: {{type: memory, connection: {{store: {store}, transactional: false}}}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("items.yaml"),
        format!(
            "name: memory_items
source_provider: {{data_backend: {{type: memory, datastore_name: mem, table: items}}}}
destination_provider: {{data_backend: {{type: memory, datastore_name: {destination}, table: items_copy}}}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: name, dest: name, data_type: text}}
strategies:
{strategies}"
        ),
    )
    .unwrap();
    dir
}

fn options(dir: &std::path::Path, strategy: &str) -> RunOptions {
    RunOptions {
        pipeline_file: dir.join("items.yaml"),
        strategy: Some(strategy.into()),
        state_dir: dir.join("state"),
        ..RunOptions::default()
    }
}

async fn run(dir: &std::path::Path, strategy: &str) -> engine::RunSummary {
    let opts = options(dir, strategy);
    let outcome = run_pipeline(&opts, Arc::default()).await.unwrap();
    if let Some(e) = outcome.error {
        panic!("{strategy} run failed: {e}");
    }
    outcome.summary
}

/// Why a run of `strategy` was refused before it started.
async fn refused(dir: &std::path::Path, strategy: &str) -> String {
    run_pipeline(&options(dir, strategy), Arc::default())
        .await
        .err()
        .expect("refused before the run starts")
        .to_string()
}

#[tokio::test]
async fn full_then_hash_runs_without_a_database() {
    let store = format!("memory_sync_{}", std::process::id());
    let dir = pipeline_files(
        &store,
        "mem",
        "  - name: full
    type: full
    primary_partitions: [{column: id, step: 1000, data_type: integer}]
  - name: hash
    type: hash
    primary_partitions: [{column: id, step: 1000, data_type: integer}]
",
    );
    let name = |i: i64| (i % 11 != 0).then(|| format!("item {i}"));
    let ids: Vec<i64> = (1..=ROWS).collect();
    put_table(&store, "items", items(&ids, name));

    let full = run(dir.path(), "full").await;
    // Ranges aligned to 0: [0, 1000) … [5000, 6000).
    assert_eq!((full.rows_inserted, full.partitions_done), (ROWS as u64, 6));
    let expected: Vec<(i64, Option<String>)> = ids.iter().map(|i| (*i, name(*i))).collect();
    assert_eq!(destination(&store), expected);

    // Nothing changed: the generic read-and-hash path finds it all equal.
    let same = run(dir.path(), "hash").await;
    assert_eq!(
        (same.rows_read, same.rows_updated, same.rows_inserted),
        (0, 0, 0),
        "{:?}",
        same.operators
    );

    // Three rows change and one disappears: exactly those are written.
    let changed = |i: i64| match i {
        7 | 2500 => Some("changed".to_string()),
        4445 => None,
        _ => name(i),
    };
    let kept: Vec<i64> = ids.iter().copied().filter(|i| *i != 3000).collect();
    put_table(&store, "items", items(&kept, changed));
    let hash = run(dir.path(), "hash").await;
    assert_eq!(
        (hash.rows_updated, hash.rows_deleted, hash.rows_inserted),
        (3, 1, 0),
        "{:?}",
        hash.operators
    );
    let expected: Vec<(i64, Option<String>)> = kept.iter().map(|i| (*i, changed(*i))).collect();
    assert_eq!(destination(&store), expected);
}

/// A hash run deletes rows; a destination that cannot is refused before the
/// run writes anything.
#[tokio::test]
async fn a_hash_run_into_a_destination_that_cannot_delete_is_refused() {
    let store = format!("memory_no_delete_{}", std::process::id());
    let dir = pipeline_files(
        &store,
        "appends",
        "  - name: hash
    type: hash
    primary_partitions: [{column: id, step: 1000, data_type: integer}]
",
    );
    put_table(
        &store,
        "items",
        items(&[1, 2, 3], |i| Some(format!("item {i}"))),
    );
    assert_eq!(
        refused(dir.path(), "hash").await,
        "strategy \"hash\" is a hash sync, which deletes the rows gone from the source, and \
         destination datastore \"appends\" cannot delete rows; use a full or delta strategy"
    );
    assert!(table_rows(&store, "items_copy").is_none());

    // The same for a full strategy asked to delete.
    let dir = pipeline_files(
        &store,
        "appends",
        "  - {name: mirror, type: full, delete_missing: true}\n",
    );
    assert_eq!(
        refused(dir.path(), "mirror").await,
        "strategy \"mirror\" has delete_missing: true, and destination datastore \"appends\" \
         cannot delete rows; remove delete_missing to keep the rows gone from the source"
    );
    assert!(table_rows(&store, "items_copy").is_none());
}

/// A destination that cannot commit rows and checkpoint in one transaction
/// (the memory connector with `transactional: false`: appends only, under
/// each partition's commit token). The checkpoint of the third partition is
/// lost after its rows are committed, as in a crash between the two; the
/// resumed run writes that partition again under the same token, and the
/// destination writes nothing twice: every row once, none lost.
#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn a_lost_checkpoint_on_a_non_transactional_destination_duplicates_nothing() {
    let store = format!("memory_token_{}", std::process::id());
    let dir = pipeline_files(
        &store,
        "appends",
        "  - name: delta
    type: delta
    column: id
    primary_partitions: [{column: id, step: 1000, data_type: integer}]
",
    );
    let name = |i: i64| (i % 11 != 0).then(|| format!("item {i}"));
    let ids: Vec<i64> = (1..=ROWS).collect();
    put_table(&store, "items", items(&ids, name));
    // Ranges aligned to 0: the third is [2000, 3000).
    connectors::memory::lose_next_checkpoint(&store, "items_copy", "id_2000_3000");

    let opts = options(dir.path(), "delta");
    let crashed = run_pipeline(&opts, Arc::default()).await.unwrap();
    let error = crashed.error.expect("the lost checkpoint fails the run");
    assert!(
        error
            .to_string()
            .contains("the checkpoint of partition id_2000_3000 is lost"),
        "{error}"
    );
    // Rows of [0, 3000) are in; only two partitions are checkpointed.
    assert_eq!(table_rows(&store, "items_copy").unwrap().num_rows(), 2999);

    let resumed = run_pipeline(&opts, Arc::default()).await.unwrap();
    if let Some(e) = resumed.error {
        panic!("resumed run failed: {e}");
    }
    let summary = resumed.summary;
    assert_eq!(summary.run_id, crashed.summary.run_id, "the run resumes");
    assert_eq!(summary.partitions_skipped, 2);
    // The third partition's rows were recognised by their token: only the
    // last three partitions' rows are new.
    assert_eq!(summary.rows_inserted, ROWS as u64 - 2999);
    let mut copied = destination(&store);
    copied.sort();
    let expected: Vec<(i64, Option<String>)> = ids.iter().map(|i| (*i, name(*i))).collect();
    assert_eq!(copied, expected, "every row once, none lost");
}

/// `full` with `delete_missing: true` leaves the destination equal to the
/// source: into an empty table it only inserts; later it removes exactly
/// the rows the source lost, also from a range only the destination still
/// has rows in, and nothing else. Without it a full run keeps them.
#[tokio::test]
async fn a_full_run_deleting_missing_rows_leaves_the_destination_equal_to_the_source() {
    let store = format!("memory_mirror_{}", std::process::id());
    let dir = pipeline_files(
        &store,
        "mem",
        "  - name: full
    type: full
    primary_partitions: [{column: id, step: 1000, data_type: integer}]
  - name: mirror
    type: full
    delete_missing: true
    primary_partitions: [{column: id, step: 1000, data_type: integer}]
",
    );
    let name = |i: i64| Some(format!("item {i}"));
    let ids: Vec<i64> = (1..=ROWS).collect();
    put_table(&store, "items", items(&ids, name));
    let first = run(dir.path(), "mirror").await;
    assert_eq!((first.rows_inserted, first.rows_deleted), (ROWS as u64, 0));

    // Three rows gone from [0, 1000), every row of [4000, 5000) and
    // [5000, 6000) gone, one renamed.
    let kept: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|i| ![5, 6, 7].contains(i) && *i < 4000)
        .collect();
    let renamed = |i: i64| {
        Some(if i == 2500 {
            "changed".into()
        } else {
            format!("item {i}")
        })
    };
    put_table(&store, "items", items(&kept, renamed));
    let keeping = run(dir.path(), "full").await;
    assert_eq!(
        (keeping.rows_updated, keeping.rows_deleted),
        (1, 0),
        "delete_missing is off by default"
    );
    assert_eq!(destination(&store).len(), ROWS as usize);

    let mirror = run(dir.path(), "mirror").await;
    assert_eq!(
        (
            mirror.rows_inserted,
            mirror.rows_updated,
            mirror.rows_deleted
        ),
        (0, 0, ROWS as u64 - kept.len() as u64)
    );
    let expected: Vec<(i64, Option<String>)> = kept.iter().map(|i| (*i, renamed(*i))).collect();
    assert_eq!(destination(&store), expected);

    let again = run(dir.path(), "mirror").await;
    assert_eq!(
        (again.rows_read, again.rows_deleted, again.rows_unchanged),
        (0, 0, kept.len() as u64)
    );
}
