//! Whether a run asks which ranges hold rows follows the source's own row
//! estimate: a table PostgreSQL counts as holding 1,000 rows or more per
//! range is planned range by range without the question (a scan of every
//! row); one it counts as sparse is asked.

use crate::common::{connect, plan_line, Schemas, Workspace};
use anyhow::Result;

fn planned(ws: &Workspace) -> String {
    plan_line(&ws.pipeline, &ws.state, "full")
}

#[tokio::test]
async fn the_question_of_which_ranges_hold_rows_follows_the_row_estimate() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "dense_estimate").await?;
    // 150 ranges of 1,000 ids, every one full; autovacuum kept away so
    // the statistics say only what the test made them say.
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint PRIMARY KEY, label text NOT NULL)
               WITH (autovacuum_enabled = false);
             INSERT INTO {src}.items SELECT g, 'item ' || g FROM generate_series(0, 149999) g;
             ANALYZE {src}.items;",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(
        &s,
        "name: dense_estimate
partition_column: id
partition_step: 1000
source_provider:
  data_backend: {type: postgres, datastore_name: src, table: items}
destination_provider:
  data_backend: {type: postgres, datastore_name: dst, table: items}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: label, dest: label, data_type: text}
strategies:
  - {name: full, type: full}
",
    )?;
    assert_eq!(planned(&ws), "partitions: 150");

    // Three rows left, but the statistics still say 150,000: every range is
    // planned, unasked (each then reads nothing).
    client
        .batch_execute(&format!(
            "DELETE FROM {src}.items WHERE id NOT IN (0, 75500, 149999)",
            src = s.src
        ))
        .await?;
    assert_eq!(planned(&ws), "partitions: 150");
    let run = ws.run("full");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("rows_inserted"), 3);
    assert_eq!(run.n("partitions_total"), 150);

    // Counted again, the table is sparse: the run asks, and plans the three.
    client
        .batch_execute(&format!("ANALYZE {src}.items", src = s.src))
        .await?;
    assert_eq!(planned(&ws), "partitions: 3 holding rows, of 150 ranges");
    Ok(())
}

#[tokio::test]
async fn a_delta_past_its_watermark_asks_about_its_window_whatever_the_table_holds() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "dense_window").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint PRIMARY KEY, label text NOT NULL,
               updated_at timestamptz NOT NULL);
             INSERT INTO {src}.items SELECT g, 'item ' || g,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
             FROM generate_series(0, 149999) g;
             CREATE INDEX ON {src}.items (updated_at);
             ANALYZE {src}.items;",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(
        &s,
        "name: dense_window
partition_column: id
partition_step: 1000
source_provider:
  data_backend: {type: postgres, datastore_name: src, table: items}
destination_provider:
  data_backend: {type: postgres, datastore_name: dst, table: items}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: label, dest: label, data_type: text}
  - {source: updated_at, dest: updated_at, data_type: timestamptz}
strategies:
  - {name: delta, type: delta, column: updated_at}
",
    )?;
    // The first run's window is the whole table, dense: every range, unasked.
    let first = ws.run("delta");
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("partitions_total"), 150);
    assert_eq!(first.n("rows_inserted"), 150_000);

    // Five rows changed in one range: the window (those and the row on the
    // watermark) holds rows in two ranges of 150, and the run plans those,
    // merged into one partition: a window's few rows in one transaction.
    client
        .batch_execute(&format!(
            "UPDATE {src}.items SET label = 'changed', updated_at = now() WHERE id BETWEEN 2000 AND 2004",
            src = s.src
        ))
        .await?;
    let planned = plan_line(&ws.pipeline, &ws.state, "delta");
    assert_eq!(
        planned,
        "partitions: 1 (2 ranges holding rows merged), of 150 ranges"
    );
    let next = ws.run("delta");
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert_eq!(next.n("partitions_total"), 1);
    assert_eq!(next.n("rows_read"), 6);
    assert_eq!(next.n("rows_updated"), 5);
    Ok(())
}
