use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use connectors::postgres::PostgresConnection;
use planner::config::PipelineFile;
use planner::{Datastores, Plan, SyncFingerprint};

use super::*;

const DATASTORES: &str = "datastores:
  src:
    type: postgres
    connection: {host: db.internal, user: app, password: '${TASK_PW}', dbname: shop, schema: sales}
  dst:
    type: postgres
    connection: {url: 'postgresql://app:${TASK_PW}@db.internal/shop', schema: copy}
";

const PIPELINE: &str = "name: orders
source_provider:
  data_backend:
    type: postgres
    datastore_name: src
    table: orders
    alias: o
    filters: [\"o.status <> 'void'\"]
    join: [{table: customers, alias: c, on: o.customer_id = c.id, type: left}]
destination_provider:
  data_backend: {type: postgres, datastore_name: dst, table: orders}
column_map:
  - {source: o.id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: c.name, dest: customer, data_type: varchar, length: 80}
  - {source: o.total, dest: total, data_type: decimal, precision: 12, scale: 2}
strategies:
  - name: hash
    type: hash
    primary_partitions: [{column: id, step: 10000, data_type: integer}]
    secondary_partitions: [{column: id, step: 1000, data_type: integer}]
";

fn lookup(var: &str) -> Option<String> {
    (var == "TASK_PW").then(|| "s3cret-value".to_string())
}

/// The pipeline of `datastores` and `pipeline` texts, planned for `strategy`.
fn loaded(datastores: &str, pipeline: &str, strategy: &str) -> (Pipeline, Plan) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.yaml");
    std::fs::write(&file, pipeline).unwrap();
    let stores = Datastores::parse(
        &dir.path().join("datastores.yaml"),
        datastores,
        &connectors::registry::types(),
        lookup,
    )
    .unwrap();
    let pipeline = Pipeline::from_file(&file, PipelineFile::read(&file).unwrap(), &stores).unwrap();
    let plan = Plan::compile(&pipeline, Some(strategy)).unwrap();
    (pipeline, plan)
}

fn identity(pipeline: &Pipeline, plan: &Plan) -> RunIdentity {
    RunIdentity {
        pipeline: pipeline.name.clone(),
        strategy: plan.strategy.clone(),
        run_id: "run-1".to_string(),
        fingerprint: SyncFingerprint::of(pipeline, plan).run,
    }
}

/// The partition of `plan` holding ids `start` to `end - 1`.
fn partition(plan: &Plan, start: i64, end: i64) -> Partition {
    use planner::partition::{plan_partitions, ColumnBounds, PartitionValue};
    plan_partitions(
        &plan.dimensions,
        &[ColumnBounds {
            min_max: Some((PartitionValue::Int(start), PartitionValue::Int(end - 1))),
            has_nulls: false,
        }],
    )
    .remove(0)
}

#[test]
fn a_task_round_trips_with_its_datastores_as_written() {
    let (pipeline, plan) = loaded(DATASTORES, PIPELINE, "hash");
    let work = RunWork::of(&pipeline, &plan, identity(&pipeline, &plan));
    let task = PartitionTask {
        run: Arc::new(work.to_task_run()),
        partition: partition(&plan, 10_000, 20_000),
    };
    let json = task.to_json().unwrap();
    assert!(!json.contains("s3cret"), "{json}");
    assert!(json.contains("\"password\": \"${TASK_PW}\""), "{json}");
    assert!(json.contains("postgresql://app:${TASK_PW}@db.internal/shop"));

    let read = PartitionTask::from_json(&json).unwrap();
    assert_eq!(read.partition, task.partition);
    let resolved = read
        .run
        .resolve(&connectors::registry::types(), lookup)
        .unwrap();
    let (p, q) = (&resolved.pipeline, &pipeline);
    assert_eq!(p.source.datastore, q.source.datastore);
    assert_eq!(p.destination.datastore, q.destination.datastore);
    for table in [&p.source, &p.destination] {
        let pg = table
            .datastore
            .connection_as::<PostgresConnection>()
            .unwrap();
        assert_eq!(pg.password.as_ref().unwrap().expose(), "s3cret-value");
    }
    let sql = |t: &TableRef| {
        (
            t.filters.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            t.joins.iter().map(|j| j.on.to_string()).collect::<Vec<_>>(),
            t.display_name(),
            t.alias.clone(),
        )
    };
    assert_eq!(sql(&p.source), sql(&q.source));
    assert_eq!(sql(&p.destination), sql(&q.destination));
    assert_eq!(p.dest_columns(), q.dest_columns());
    assert_eq!(
        serde_json::to_value(&p.columns).unwrap(),
        serde_json::to_value(&q.columns).unwrap()
    );
    // The change detection keeps its secondary partitions.
    assert_eq!(resolved.operators, work.operators);
    assert!(resolved.operators.iter().any(|op| matches!(
        op,
        OperatorSpec::ChangeDetection { secondary, .. } if secondary.len() == 1
    )));
    assert_eq!(resolved.write_mode, WriteMode::Changes);
    assert_eq!(resolved.identity, work.identity);
    // The fingerprint of what a worker resolves is the coordinator's.
    assert_eq!(
        SyncFingerprint::of(p, &plan).rows,
        SyncFingerprint::of(q, &plan).rows
    );
}

#[test]
fn a_secret_written_in_clear_is_never_serialized() {
    let clear = DATASTORES.replace("'${TASK_PW}'", "hunter2");
    let (pipeline, plan) = loaded(&clear, PIPELINE, "hash");
    let work = RunWork::of(&pipeline, &plan, identity(&pipeline, &plan));
    let task = PartitionTask {
        run: Arc::new(work.to_task_run()),
        partition: partition(&plan, 0, 10_000),
    };
    let err = task.to_json().unwrap_err().to_string();
    assert_eq!(
        err,
        "partition task: connection.password of a postgres datastore is a secret written in clear; \
         a task carries datastores as written, so write it as a ${VAR} reference (set on every worker) \
         to run it elsewhere"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn a_worker_without_the_variable_is_told_which() {
    let (pipeline, plan) = loaded(DATASTORES, PIPELINE, "hash");
    let run = RunWork::of(&pipeline, &plan, identity(&pipeline, &plan)).to_task_run();
    let err = run
        .resolve(&connectors::registry::types(), |_| None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "partition task: datastores.dst.connection: environment variable TASK_PW is not set \
         (the task names it; set it where the task runs)"
    );
}

fn items(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("item {i}")).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// A memory-store pipeline of 3,000 items in partitions of 1,000 ids, and
/// the task of its second partition, read back from JSON.
async fn memory_task(store: &str, dir: &std::path::Path) -> (Pipeline, RunWork, PartitionTask) {
    std::fs::write(
        dir.join("datastores.yaml"),
        format!("datastores:\n  mem: {{type: memory, connection: {{store: {store}}}}}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("items.yaml"),
        "name: memory_items
source_provider: {data_backend: {type: memory, datastore_name: mem, table: items}}
destination_provider: {data_backend: {type: memory, datastore_name: mem, table: items_copy}}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: name, dest: name, data_type: text}
strategies:
  - {name: full, type: full, primary_partitions: [{column: id, step: 1000, data_type: integer}]}
",
    )
    .unwrap();
    let ids: Vec<i64> = (1..=3000).collect();
    connectors::memory::put_table(store, "items", items(&ids));
    let opts = crate::RunOptions {
        pipeline_file: dir.join("items.yaml"),
        state_dir: dir.join("state"),
        ..Default::default()
    };
    let (pipeline, plan) = crate::run::load(&opts).await.unwrap();
    let (planned, parts) = crate::plan_pipeline(&opts).await.unwrap();
    let partitions = parts.partitions;
    let work = RunWork::of(&pipeline, &planned, identity(&pipeline, &plan));
    let task = PartitionTask {
        run: Arc::new(work.to_task_run()),
        partition: partitions[1].clone(),
    };
    let task = PartitionTask::from_json(&task.to_json().unwrap()).unwrap();
    (pipeline, work, task)
}

/// A task read back from JSON runs in this process, over the in-memory
/// connector: exactly its partition is written, with its checkpoint.
#[tokio::test]
async fn a_task_read_back_from_json_commits_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("task_tests_{}", std::process::id());
    let (pipeline, work, task) = memory_task(&store, dir.path()).await;
    let partition_id = task.partition.id.clone();
    let again = task.clone();
    let outcome = crate::worker::run_task(
        task,
        &connectors::registry::types(),
        &crate::Cancel::default(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(outcome.status, "committed", "{:?}", outcome.error);
    assert_eq!(outcome.rows_inserted, 1000);
    assert_eq!(
        outcome.reports,
        vec![PartitionReport {
            run_id: "run-1".into(),
            partition_id: partition_id.clone(),
            outcome: PartitionOutcome::Committed(connectors::WriteStats {
                inserted: 1000,
                ..Default::default()
            }),
        }]
    );
    let rows = connectors::memory::table_rows(&store, "items_copy").unwrap();
    let written: Vec<i64> = rows
        .column(0)
        .as_primitive::<Int64Type>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(written, (1000..2000).collect::<Vec<_>>());
    assert_eq!(rows.column(1).null_count(), 0);

    // The checkpoint is the destination's: a sink opened afresh finds it.
    let mut sink = connectors::open_sink(&pipeline.destination, &pipeline.dest_columns())
        .await
        .unwrap();
    sink.prepare().await.unwrap();
    let checkpoints = sink.checkpoints(&work.identity).await.unwrap();
    assert_eq!(
        checkpoints
            .iter()
            .map(|c| c.partition_id.as_str())
            .collect::<Vec<_>>(),
        [partition_id.as_str()]
    );

    // Taken over by another worker, the task finds its checkpoint and
    // writes nothing again.
    let redo = crate::worker::run_task(
        again,
        &connectors::registry::types(),
        &crate::Cancel::default(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            redo.status,
            redo.already_committed,
            redo.rows_read,
            redo.rows_inserted
        ),
        ("committed", true, 1000, 0)
    );
    assert!(redo.reports.is_empty());
    assert_eq!(
        connectors::memory::table_rows(&store, "items_copy")
            .unwrap()
            .num_rows(),
        1000
    );
}

/// The run context's cancellation stops an executor: nothing is committed.
#[tokio::test]
async fn a_cancelled_task_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("task_tests_cancel_{}", std::process::id());
    let (_, _, task) = memory_task(&store, dir.path()).await;
    let cancel = crate::Cancel::default();
    cancel.cancel("SIGTERM");
    let outcome = crate::worker::run_task(task, &connectors::registry::types(), &cancel, false)
        .await
        .unwrap();
    assert_eq!(outcome.status, "cancelled");
    assert_eq!(
        outcome.error.as_deref(),
        Some("cancelled (SIGTERM); committed partitions are kept and the next run resumes")
    );
    assert!(outcome
        .reports
        .iter()
        .all(|r| matches!(r.outcome, PartitionOutcome::Failed { .. })));
    let rows = connectors::memory::table_rows(&store, "items_copy").unwrap();
    assert_eq!(rows.num_rows(), 0);
}
