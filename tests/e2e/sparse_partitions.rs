//! Sparse spans: only the ranges holding rows are planned (`synchub plan`
//! says how many of how many), with the same ids a dense plan gives them,
//! neighbours holding few rows merged past 100 of them, and the runs still
//! leave the destination equal to the source.

use crate::common::{
    connect, difference, plan_line, run, scalar, sqlite_checkpoints_like, sqlite_difference,
    write_sqlite_datastores, RunResult, Schemas, Workspace,
};
use anyhow::Result;
use rusqlite::Connection;
use tokio_postgres::Client;

fn pipeline(name: &str, partitioning: &str, strategies: &str) -> String {
    format!(
        "name: {name}
{partitioning}
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: events}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: events}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: label, dest: label, data_type: text}}
  - {{source: updated_at, dest: updated_at, data_type: timestamptz}}
strategies:
{strategies}"
    )
}

/// `synchub plan`'s line counting the partitions.
fn planned(ws: &Workspace, strategy: &str) -> String {
    plan_line(&ws.pipeline, &ws.state, strategy)
}

/// The test's schemas with an `events` table in the source holding `rows`
/// (a query of id, label, updated_at), and the source and destination
/// tables' names.
async fn events(client: &Client, prefix: &str, rows: &str) -> Result<(Schemas, String, String)> {
    let s = Schemas::create(client, prefix).await?;
    let src = format!("{}.events", s.src);
    let dst = format!("{}.events", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, label text, updated_at timestamptz);
             INSERT INTO {src} {rows}"
        ))
        .await?;
    Ok((s, src, dst))
}

const FULL_AND_HASH: &str = "  - {name: full, type: full}\n  - {name: hash, type: hash}\n";

/// `synchub plan` of `strategy` says `plan`; its run then does what
/// `expected` says (as [`done`] counts) and leaves the destination table
/// (`dst`) equal to the source's (`src`).
async fn plan_and_run(
    ws: &Workspace,
    (client, src, dst): (&Client, &str, &str),
    strategy: &str,
    plan: &str,
    expected: [i64; 4],
) -> Result<()> {
    assert_eq!(planned(ws, strategy), plan);
    assert_eq!(done(&ws.run(strategy)), expected, "{strategy}");
    assert_eq!(difference(client, src, dst).await?, 0, "{strategy}");
    Ok(())
}

/// A run's partitions, rows inserted, updated and deleted, once it
/// succeeded.
fn done(run: &RunResult) -> [i64; 4] {
    assert_eq!(run.code, 0, "{}", run.stderr);
    [
        "partitions_total",
        "rows_inserted",
        "rows_updated",
        "rows_deleted",
    ]
    .map(|k| run.n(k))
}

/// The case, smaller: rows in three bursts from 2024-01 to 2026-12
/// in 2-hour windows (some 12,800 of them), and a few NULL cursors. A first
/// delta plans the windows holding rows and the NULL partition alone; the
/// next one, the windows holding its changes.
#[tokio::test]
async fn a_sparse_time_span_delta_plans_only_windows_holding_rows() -> Result<()> {
    let client = connect().await?;
    let (s, src, dst) = events(
        &client,
        "sparse_delta",
        "SELECT g, 'burst a ' || g, timestamptz '2024-01-03 00:00:00+00' + g * interval '10 seconds'
               FROM generate_series(1, 1000) g
             UNION ALL
             SELECT 1000 + g, 'burst b ' || g, timestamptz '2025-06-10 07:00:00+00' + g * interval '59 milliseconds'
               FROM generate_series(1, 1000) g
             UNION ALL
             SELECT 2000 + g, 'burst c ' || g, timestamptz '2026-12-20 00:00:00+00' + g * interval '36 seconds'
               FROM generate_series(1, 1000) g
             UNION ALL
             SELECT 3000 + g, 'no cursor', NULL FROM generate_series(1, 5) g;",
    )
    .await?;
    let ws = Workspace::new(
        &s,
        &pipeline(
            "sparse_delta",
            "",
            "  - name: delta
    type: delta
    column: updated_at
    primary_partitions:
      - {column: updated_at, step: 2, step_unit: hour, data_type: datetime}
",
        ),
    )?;
    let window = "floor(extract(epoch from updated_at) / 7200)";
    // Windows holding rows, plus the NULL partition; every 2-hour window
    // from the first row's to the last row's, plus the NULL partition.
    let occupied = scalar(
        &client,
        &format!("SELECT count(DISTINCT {window}) + 1 FROM {src}"),
    )
    .await?;
    let ranges = scalar(
        &client,
        &format!("SELECT (max({window}) - min({window}) + 2)::bigint FROM {src}"),
    )
    .await?;
    assert_eq!((occupied, ranges), (2 + 1 + 6 + 1, 12_991));
    assert_eq!(
        planned(&ws, "delta"),
        format!("partitions: {occupied} holding rows, of {ranges} ranges")
    );
    let first = ws.run("delta");
    assert_eq!(done(&first), [occupied, 3005, 0, 0]);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    // Each window's checkpoint is the one a dense plan names it by.
    assert_eq!(
        scalar(
            &client,
            &format!(
                "SELECT count(*) FROM {}._synchub_checkpoints
                 WHERE partition_id IN ('updated_at_2024-01-03T00:00:00_2024-01-03T02:00:00',
                   'updated_at_2026-12-20T10:00:00_2026-12-20T12:00:00', 'updated_at_null')",
                s.dst
            )
        )
        .await?,
        3
    );

    // Changes: ten rows of the first burst move past the watermark, and new
    // rows arrive months later.
    client
        .batch_execute(&format!(
            "UPDATE {src} SET label = 'moved', updated_at = timestamptz '2026-12-20 11:30:00+00' WHERE id BETWEEN 1 AND 10;
             INSERT INTO {src} SELECT 4000 + g, 'later', timestamptz '2027-03-01 05:00:00+00' + g * interval '1 minute'
               FROM generate_series(1, 100) g;"
        ))
        .await?;
    let second = ws.run("delta");
    // The watermark's window (10:00-12:00: the last burst's row at 10:00
    // and the ten moved), the new rows' (04:00-06:00 and 06:00-08:00) and
    // the NULL cursors, of the 2-hour windows between.
    assert_eq!(done(&second), [1 + 2 + 1, 100, 10, 0]);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    Ok(())
}

/// Keys in far-apart clusters, 1,000 ids a range: more than 10^9 ranges,
/// which would be refused planned one by one. A full run plans the three
/// holding rows; a hash run also the one whose rows are gone from the
/// source but still in the destination, and deletes them.
#[tokio::test]
async fn a_sparse_key_full_and_hash_plan_only_ranges_holding_rows_on_either_side() -> Result<()> {
    let client = connect().await?;
    let (s, src, dst) = events(
        &client,
        "sparse_hash",
        "SELECT id, 'row ' || id, timestamptz '2024-01-01 00:00:00+00'
             FROM (SELECT g AS id FROM generate_series(1, 500) g
                   UNION ALL SELECT 1000000000 + g FROM generate_series(0, 499) g
                   UNION ALL SELECT 1000000000000 + g FROM generate_series(0, 99) g) ids;",
    )
    .await?;
    let ws = Workspace::new(
        &s,
        &pipeline(
            "sparse_hash",
            "partition_column: id\npartition_step: 1000",
            FULL_AND_HASH,
        ),
    )?;
    plan_and_run(
        &ws,
        (&client, &src, &dst),
        "full",
        "partitions: 3 holding rows, of 1000000001 ranges",
        [3, 1100, 0, 0],
    )
    .await?;

    // The middle cluster leaves the source; a new one arrives; a row of the
    // first changes.
    client
        .batch_execute(&format!(
            "DELETE FROM {src} WHERE id BETWEEN 1000000000 AND 1000000999;
             INSERT INTO {src} SELECT 500000000000 + g, 'new', now() FROM generate_series(1, 7) g;
             UPDATE {src} SET label = 'changed' WHERE id = 17;"
        ))
        .await?;
    plan_and_run(
        &ws,
        (&client, &src, &dst),
        "hash",
        "partitions: 4 holding rows, of 1000000001 ranges",
        [4, 7, 1, 500],
    )
    .await?;
    Ok(())
}

/// Seconds from 2024-01-01 to 2026-12-31, and a prime that scatters ids
/// over them (`id * SCATTER % SPAN`; the first row lands at 00:52:40).
const SPAN: i64 = 94_608_000;
const SCATTER: i64 = 48_271;

const TWO_HOUR_DELTA: &str = "  - name: delta
    type: delta
    column: updated_at
    primary_partitions:
      - {column: updated_at, step: 2, step_unit: hour, data_type: datetime}
";

/// Issue 13's case: 25,000 rows spread over 2024-01 to 2026-12 (scattered
/// by a multiplicative hash of the id), so some 12,000 of the 13,139 2-hour
/// windows hold a row. A first delta merges them into one partition (25,000 rows, under
/// the 50,000 a merged partition holds) beside the NULL cursors', named by
/// the first window's start and the last one's end; the next delta plans
/// the watermark's window and the new rows' alone and reads only those.
#[tokio::test]
async fn an_evenly_spread_delta_merges_its_windows_into_few_partitions() -> Result<()> {
    let client = connect().await?;
    let (s, src, dst) = events(
        &client,
        "spread_delta",
        &format!(
            "SELECT g, 'row ' || g,
                    timestamptz '2024-01-01 00:00:00+00' + (g::bigint * {SCATTER} % {SPAN}) * interval '1 second'
               FROM generate_series(1, 25000) g
             UNION ALL
             SELECT 25000 + g, 'no cursor', NULL FROM generate_series(1, 5) g;"
        ),
    )
    .await?;
    let ws = Workspace::new(&s, &pipeline("spread_delta", "", TWO_HOUR_DELTA))?;
    let window = "floor(extract(epoch from updated_at) / 7200)";
    let occupied = scalar(
        &client,
        &format!("SELECT count(DISTINCT {window}) + 1 FROM {src}"),
    )
    .await?;
    let ranges = scalar(
        &client,
        &format!("SELECT (max({window}) - min({window}) + 2)::bigint FROM {src}"),
    )
    .await?;
    assert!(
        occupied > 12_000 && occupied < ranges,
        "{occupied} of {ranges} windows hold rows"
    );
    assert_eq!(
        planned(&ws, "delta"),
        format!("partitions: 2 ({occupied} ranges holding rows merged), of {ranges} ranges")
    );
    let first = ws.run("delta");
    assert_eq!(done(&first), [2, 25_005, 0, 0]);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    // The merged window runs from the first row's window to the last one's
    // end, aligned to the 2-hour step.
    assert_eq!(
        scalar(
            &client,
            &format!(
                "SELECT count(*) FROM {}._synchub_checkpoints
                 WHERE partition_id IN ('updated_at_null', (SELECT 'updated_at_2024-01-01T00:00:00_'
                   || to_char(to_timestamp((max({window}) + 1) * 7200) AT TIME ZONE 'UTC',
                              'YYYY-MM-DD\"T\"HH24:MI:SS') FROM {src}))",
                s.dst
            )
        )
        .await?,
        2
    );

    // 300 new rows two months later, one a minute from 00:01 to 05:00.
    client
        .batch_execute(&format!(
            "INSERT INTO {src} SELECT 30000 + g, 'later', timestamptz '2027-03-01 00:00:00+00' + g * interval '1 minute'
               FROM generate_series(1, 300) g;"
        ))
        .await?;
    // Read again: the watermark's window, the new rows, the NULL cursors.
    let watermark_window = format!(
        "to_timestamp(floor(extract(epoch from (SELECT max(updated_at) FROM {src} WHERE id <= 25000)) / 7200) * 7200)"
    );
    let read = scalar(
        &client,
        &format!("SELECT count(*) FROM {src} WHERE updated_at >= {watermark_window} OR updated_at IS NULL"),
    )
    .await?;
    let second = ws.run("delta");
    // The watermark's window, 00:00-02:00, 02:00-04:00, 04:00-06:00 and the
    // NULL cursors: too few to merge.
    assert_eq!(done(&second), [1 + 3 + 1, 300, 0, 0]);
    assert_eq!(second.n("rows_read"), read);
    assert!(read < 310, "{read} rows read again");
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    Ok(())
}

/// The same spread on SQLite (a `timestamp` cursor kept as text).
#[test]
fn an_evenly_spread_sqlite_delta_merges_its_windows_into_few_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let at = |offset: &str| format!("strftime('%Y-%m-%d %H:%M:%f', {offset}) || '000'");
    let src = Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch(&format!(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, label TEXT, updated_at TEXT);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 25000)
         INSERT INTO events SELECT i, 'row ' || i, {} FROM g;
         INSERT INTO events SELECT 25000 + i, 'no cursor', NULL
           FROM (SELECT 1 AS i UNION ALL SELECT 2 UNION ALL SELECT 3);",
        at(&format!(
            "'2024-01-01', '+' || (i * {SCATTER} % {SPAN}) || ' seconds'"
        ))
    ))
    .unwrap();
    write_sqlite_datastores(dir.path());
    let p = dir.path().join("events.yaml");
    std::fs::write(
        &p,
        format!(
            "name: spread_sqlite
source_provider:
  data_backend: {{type: sqlite, datastore_name: src, table: events}}
destination_provider:
  data_backend: {{type: sqlite, datastore_name: dst, table: events}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: label, dest: label, data_type: text}}
  - {{source: updated_at, dest: updated_at, data_type: timestamp}}
strategies:
{TWO_HOUR_DELTA}"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let count = |sql: &str| -> i64 { src.query_row(sql, [], |r| r.get(0)).unwrap() };
    let window = "CAST(strftime('%s', updated_at) AS INTEGER) / 7200";
    let occupied = count(&format!("SELECT count(DISTINCT {window}) + 1 FROM events"));
    let ranges = count(&format!(
        "SELECT max({window}) - min({window}) + 2 FROM events"
    ));
    assert!(
        occupied > 12_000 && occupied < ranges,
        "{occupied} of {ranges} windows hold rows"
    );
    assert_eq!(
        plan_line(&p, &state, "delta"),
        format!("partitions: 2 ({occupied} ranges holding rows merged), of {ranges} ranges")
    );
    let all = "id, label, updated_at";
    let first = run(&p, "delta", &state);
    assert_eq!(done(&first), [2, 25_003, 0, 0]);
    assert_eq!(sqlite_difference(dir.path(), "events", all), 0);
    let last_end = count(&format!("SELECT (max({window}) + 1) * 7200 FROM events"));
    let last_end: String = src
        .query_row(
            "SELECT strftime('%Y-%m-%dT%H:%M:%S', ?1, 'unixepoch')",
            [last_end],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        sqlite_checkpoints_like(
            dir.path(),
            &format!("updated_at_2024-01-01T00:00:00_{last_end}")
        ),
        1
    );
    assert_eq!(sqlite_checkpoints_like(dir.path(), "updated_at_null"), 1);

    src.execute_batch(&format!(
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 300)
         INSERT INTO events SELECT 30000 + i, 'later', {} FROM g;",
        at("'2027-03-01', '+' || i || ' minutes'")
    ))
    .unwrap();
    let read = count(&format!(
        "SELECT count(*) FROM events WHERE {window} >= (SELECT max({window}) FROM events WHERE id <= 25000)
           OR updated_at IS NULL"
    ));
    let second = run(&p, "delta", &state);
    assert_eq!(done(&second), [1 + 3 + 1, 300, 0, 0]);
    assert_eq!(second.n("rows_read"), read);
    assert!(read < 310, "{read} rows read again");
    assert_eq!(sqlite_difference(dir.path(), "events", all), 0);
}

/// A sparse key whose ranges merge: ids 1,000 apart in steps of 100, 3,000
/// ranges holding rows of some 30,000, one partition. A hash run over it
/// (ranges holding rows on either side) deletes exactly the rows gone from
/// the source, the last ones included, and adds those in ranges new to it.
#[tokio::test]
async fn a_hash_over_a_merged_sparse_key_deletes_exactly() -> Result<()> {
    let client = connect().await?;
    let (s, src, dst) = events(
        &client,
        "merged_hash",
        "SELECT g * 1000, 'row ' || g, timestamptz '2024-01-01 00:00:00+00'
               FROM generate_series(1, 3000) g;",
    )
    .await?;
    let ws = Workspace::new(
        &s,
        &pipeline(
            "merged_hash",
            "partition_column: id\npartition_step: 100",
            FULL_AND_HASH,
        ),
    )?;
    // Ranges 10 (ids 1,000-1,099) to 30,000.
    plan_and_run(
        &ws,
        (&client, &src, &dst),
        "full",
        "partitions: 1 (3000 ranges holding rows merged), of 29991 ranges",
        [1, 3000, 0, 0],
    )
    .await?;

    // Every tenth row and the last 50 leave the source, 20 rows arrive in
    // ranges that held none, 5 change.
    client
        .batch_execute(&format!(
            "DELETE FROM {src} WHERE id % 10000 = 0 OR id > 2950000;
             INSERT INTO {src} SELECT g * 1000 + 500, 'new', now() FROM generate_series(1, 20) g;
             UPDATE {src} SET label = 'changed' WHERE id IN (1000, 2000, 3000, 4000, 5000);"
        ))
        .await?;
    let deleted = 300 + 50 - 5;
    plan_and_run(
        &ws,
        (&client, &src, &dst),
        "hash",
        "partitions: 1 (3020 ranges holding rows merged), of 29991 ranges",
        [1, 20, 5, deleted],
    )
    .await?;
    Ok(())
}
