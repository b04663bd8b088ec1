//! Issue 13's table shapes, in the PostgreSQL suite: a first delta over a
//! sparse time span against the same rows on a dense one, the benchmark
//! table's first delta in two lanes against one, and a hash run over a
//! composite key without partition columns. Each has its own tables in the
//! schemas `bench_shape_src` / `bench_shape_dst` and its own state, made
//! afresh every round.

use super::*;

/// The shapes' schemas, dropped at the end with the others.
pub const SRC: &str = "bench_shape_src";
pub const DST: &str = "bench_shape_dst";

/// Rows of the sparse and the dense span (issue 13's example): spread
/// evenly from 2024-01-01 over 1,065 days (to 2026-12-01), about one an
/// hour, so most of the span's 12,780 two-hour windows hold a row or two;
/// on the dense span one second apart, 4 windows.
const SPAN_ROWS: i64 = 25_000;
const SPARSE_SPAN_SECONDS: i64 = 1_065 * 86_400;

/// Rows of the composite-key table: `a` in 1..=1200 × `b` in 1..=100.
const PAIRS_A: i64 = 1_200;
const PAIRS_B: i64 = 100;
/// Changed by each kind (update, delete, insert): 0.1% of the rows in all.
const PAIRS_EACH: i64 = 40;

fn datastores(pg: &pg::PgTarget) -> String {
    format!(
        "datastores:\n{}{}",
        pg.datastore_yaml("src", SRC),
        pg.datastore_yaml("dst", DST)
    )
}

fn span_pipeline(name: &str, table: &str) -> String {
    format!(
        "name: {name}
source_provider: {{data_backend: {{type: postgres, datastore_name: src, table: {table}}}}}
destination_provider: {{data_backend: {{type: postgres, datastore_name: dst, table: {table}}}}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: v, dest: v, data_type: int}}
  - {{source: updated_at, dest: updated_at, data_type: timestamptz}}
strategies:
  - name: delta
    type: delta
    column: updated_at
    primary_partitions:
      - {{column: updated_at, step: 2, step_unit: hour, data_type: datetime}}
"
    )
}

const PAIRS_PIPELINE: &str = "name: bench_pairs
source_provider: {data_backend: {type: postgres, datastore_name: src, table: pairs}}
destination_provider: {data_backend: {type: postgres, datastore_name: dst, table: pairs}}
column_map:
  - {source: a, dest: a, roles: [unique_column], data_type: int}
  - {source: b, dest: b, roles: [unique_column], data_type: int}
  - {source: label, dest: label, data_type: text}
  - {source: amount, dest: amount, data_type: decimal, precision: 12, scale: 2}
strategies:
  - {name: full, type: full}
  - {name: hash, type: hash}
";

/// Drops both schemas.
pub async fn drop_all(c: &Client) -> Result<()> {
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {SRC} CASCADE; DROP SCHEMA IF EXISTS {DST} CASCADE"
    ))
    .await?;
    Ok(())
}

/// The source tables of the shapes, the destination schema empty.
async fn create_sources(c: &Client) -> Result<()> {
    drop_all(c).await?;
    let span = |table: &str, gap_seconds: i64| {
        format!(
            "CREATE TABLE {SRC}.{table} (id bigint PRIMARY KEY, v int NOT NULL, updated_at timestamptz NOT NULL);
             INSERT INTO {SRC}.{table}
             SELECT i + 1, i % 1000,
                    timestamptz '2024-01-01 00:00:00+00' + i * {gap_seconds} * interval '1 second'
             FROM generate_series(0, {SPAN_ROWS} - 1) i;
             CREATE INDEX ON {SRC}.{table} (updated_at);"
        )
    };
    c.batch_execute(&format!(
        "CREATE SCHEMA {SRC}; CREATE SCHEMA {DST};
         {sparse}
         {dense}
         CREATE TABLE {SRC}.pairs (a int, b int, label text NOT NULL, amount numeric(12,2) NOT NULL, PRIMARY KEY (a, b));
         INSERT INTO {SRC}.pairs SELECT a, b, 'pair ' || a || '/' || b, (a * 7 + b) / 4.0
         FROM generate_series(1, {PAIRS_A}) a, generate_series(1, {PAIRS_B}) b;",
        sparse = span("events_sparse", SPARSE_SPAN_SECONDS / SPAN_ROWS),
        dense = span("events_dense", 1),
    ))
    .await
    .context("generating the shapes' tables")?;
    c.batch_execute(&format!(
        "VACUUM ANALYZE {SRC}.events_sparse, {SRC}.events_dense, {SRC}.pairs"
    ))
    .await?;
    Ok(())
}

/// Updates, deletes and inserts `PAIRS_EACH` rows each, spread over the
/// key space; returns how many of each.
async fn change_pairs(c: &Client, round: u32) -> Result<u64> {
    let every = PAIRS_A / PAIRS_EACH;
    let b = i64::from(round % 50) + 1;
    c.batch_execute(&format!(
        "UPDATE {SRC}.pairs SET amount = amount + 1 WHERE a % {every} = 0 AND b = {b};
         DELETE FROM {SRC}.pairs WHERE a % {every} = 1 AND b = {b};
         INSERT INTO {SRC}.pairs SELECT a, {PAIRS_B} + {b}, 'new ' || a, a
           FROM generate_series(1, {PAIRS_A}) a WHERE a % {every} = 2
           ON CONFLICT DO NOTHING;"
    ))
    .await?;
    Ok(PAIRS_EACH as u64)
}

/// Every shape once (a round of the PostgreSQL suite). `first_delta` is
/// the round's first delta run of the benchmark pipeline (one lane), which
/// the two-lane run is measured against.
pub(super) async fn shapes(
    b: &mut Bench,
    first_delta: &Measurement,
    notes: &mut Vec<String>,
) -> Result<Vec<Measurement>> {
    let round = b.round;
    let dir = b.work.path().join("shapes");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("datastores.yaml"), datastores(&b.pg))?;
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let sparse = write(
        "sparse.yaml",
        &span_pipeline("bench_sparse", "events_sparse"),
    )?;
    let dense = write("dense.yaml", &span_pipeline("bench_dense", "events_dense"))?;
    let pairs = write("pairs.yaml", PAIRS_PIPELINE)?;
    let state = dir.join(format!("state-{round}"));
    create_sources(&b.admin).await?;
    let mut ms = Vec::new();

    // Sparse against dense: the same rows, over 3 years and over 7 hours.
    let dense_run = b
        .synchub_run(&dense, &state, report::DENSE_SPAN, "delta", None)
        .await?;
    let mut sparse_run = b
        .synchub_run(
            &sparse,
            &state,
            report::SPARSE_SPAN,
            "delta",
            Some(&dense_run),
        )
        .await?;
    sparse_run.rows = SPAN_ROWS;
    let rows = (SPAN_ROWS) as u64;
    for m in [&dense_run, &sparse_run] {
        expect(notes, m, m.case, "rows_inserted", rows);
    }
    ms.push(Measurement {
        rows: SPAN_ROWS,
        ..dense_run
    });
    ms.push(sparse_run);

    // The benchmark table's first delta in two lanes, against one.
    let two_lanes = b.work.path().join("bench_items_2_lanes.yaml");
    std::fs::write(
        &two_lanes,
        std::fs::read_to_string(&b.pipeline)?
            .replace("name: bench_items", "name: bench_items_2_lanes")
            .replace(
                "max_concurrent_partitions: 1\n",
                "max_concurrent_partitions: 2\n",
            ),
    )?;
    let mut lanes = b
        .synchub_run(
            &two_lanes,
            &state,
            report::DELTA_LANES,
            "delta",
            Some(first_delta),
        )
        .await?;
    lanes.rows = b.rows;
    // Ids 1..=rows in ranges aligned to the step.
    let step = b.partition_step;
    let partitions = (b.rows / step - 1 / step + 1) as u64;
    expect(
        notes,
        first_delta,
        "first delta, one lane",
        "partitions_total",
        partitions,
    );
    expect(
        notes,
        &lanes,
        "first delta, two lanes",
        "partitions_total",
        partitions,
    );
    expect(notes, &lanes, "first delta, two lanes", "lanes", 2);
    ms.push(lanes);

    // Composite key, no partition columns: a full run, then 0.1% changed.
    b.synchub_run(&pairs, &state, report::SHAPE_SETUP, "full", None)
        .await?;
    let each = change_pairs(&b.admin, round).await?;
    let mut hash = b
        .synchub_run(&pairs, &state, report::COMPOSITE_HASH, "hash", None)
        .await?;
    hash.rows = PAIRS_A * PAIRS_B;
    hash.changed_rows = Some(3 * each);
    for counter in ["rows_inserted", "rows_updated", "rows_deleted"] {
        expect(notes, &hash, "composite-key hash", counter, each);
    }
    let same: i64 = b
        .admin
        .query_one(
            &format!(
                "SELECT count(*) FROM ((TABLE {SRC}.pairs EXCEPT ALL TABLE {DST}.pairs) \
                 UNION ALL (TABLE {DST}.pairs EXCEPT ALL TABLE {SRC}.pairs)) d"
            ),
            &[],
        )
        .await?
        .get(0);
    if same != 0 {
        notes.push(format!(
            "round {round}: after the composite-key hash run {same} rows differ"
        ));
    }
    ms.push(hash);
    Ok(ms)
}
