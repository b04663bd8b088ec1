//! Delta syncs through the real binary, on PostgreSQL and on SQLite: rows
//! past the watermark are applied, rows sharing the watermark value are
//! neither lost nor duplicated, and the watermark only moves after a
//! complete run.

use crate::common::{self, connect, difference, run, scalar, Schemas, Workspace};
use anyhow::Result;

const ROWS: i64 = 300_000;

fn delta_pipeline(name: &str, extra: &str) -> String {
    format!(
        "name: {name}
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: events}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: events}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: account, dest: account, data_type: int}}
  - {{source: amount, dest: amount, data_type: decimal, precision: 12, scale: 2}}
  - {{source: label, dest: label, data_type: text}}
  - {{source: updated_at, dest: updated_at, data_type: timestamptz}}
strategies:
  - name: delta
    type: delta
    column: updated_at
{extra}"
    )
}

#[tokio::test]
async fn delta_applies_changes_past_the_watermark_exactly() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "delta_pg").await?;
    let src = format!("{}.events", s.src);
    let dst = format!("{}.events", s.dst);
    // Distinct microsecond timestamps, except a tie of three rows at the max.
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, account int NOT NULL, amount numeric(12,2), \
               label text, updated_at timestamptz NOT NULL);
             INSERT INTO {src} SELECT g, g % 97, g * 0.01, 'row ' || g,
               timestamptz '2024-03-01 00:00:00+00' + g * interval '1.000007 second'
             FROM generate_series(1, {ROWS}) g;
             UPDATE {src} SET updated_at = (SELECT max(updated_at) FROM {src}) WHERE id IN (1, 2);"
        ))
        .await?;
    let ws = Workspace::new(&s, &delta_pipeline("delta_pg", "    lookback: 0\n"))?;
    let (pipeline, state) = (&ws.pipeline, &ws.state);

    // First run: no watermark, every row.
    let first = run(pipeline, "delta", state);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("rows_read"), ROWS);
    assert_eq!(first.n("rows_inserted"), ROWS);
    assert_eq!(difference(&client, &src, &dst).await?, 0);

    // Changes after the first run.
    let watermark = format!("(SELECT max(updated_at) FROM {dst})");
    client
        .batch_execute(&format!(
            "UPDATE {src} SET amount = amount + 1, updated_at = {watermark} + interval '5 minutes' \
               WHERE id BETWEEN 1000 AND 1999;
             INSERT INTO {src} SELECT g, 1, 1.5, 'new ' || g, {watermark} + interval '6 minutes'
               FROM generate_series({ROWS} + 1, {ROWS} + 500) g;
             UPDATE {src} SET label = 'late, at the watermark', updated_at = {watermark}
               WHERE id BETWEEN 5000 AND 5006;
             DELETE FROM {src} WHERE id BETWEEN 9000 AND 9099;"
        ))
        .await?;

    let second = run(pipeline, "delta", state);
    assert_eq!(second.code, 0, "{}", second.stderr);
    // Read: the 1,000 updated, 500 new, 7 moved to the watermark and the
    // 3 rows that already sat on it.
    assert_eq!(second.n("rows_read"), 1000 + 500 + 7 + 3);
    assert_eq!(second.n("rows_inserted"), 500);
    assert_eq!(second.n("rows_updated"), 1000 + 7);
    assert_eq!(second.n("rows_unchanged"), 3);
    // Delta cannot see deletes: the destination is the source plus them.
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        ROWS + 500
    );
    assert_eq!(
        difference(
            &client,
            &src,
            &format!("(SELECT * FROM {dst} WHERE id NOT BETWEEN 9000 AND 9099) d")
        )
        .await?,
        0
    );

    // Nothing changed: only the rows on the watermark are read again.
    let third = run(pipeline, "delta", state);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.n("rows_read"), 500);
    assert_eq!(third.n("rows_inserted") + third.n("rows_updated"), 0);
    assert_eq!(third.n("rows_unchanged"), 500);

    // Without a watermark the delta reads every row again, all equal: they
    // are not even locked (a lock sets xmax and writes WAL for every page it
    // touches; rows updated before keep the xmax of their own lock).
    let locked = format!("SELECT count(*) FROM {dst} WHERE xmax::text <> '0'");
    let locked_before = scalar(&client, &locked).await?;
    let reset = common::synchub(&[
        "state",
        "reset",
        "delta_pg",
        "--strategy",
        "delta",
        "--state-dir",
        state.to_str().unwrap_or_default(),
    ]);
    assert!(reset.status.success(), "{reset:?}");
    let again = run(pipeline, "delta", state);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.n("rows_unchanged"), ROWS + 500 - 100);
    assert_eq!(scalar(&client, &locked).await?, locked_before);
    Ok(())
}

#[tokio::test]
async fn lookback_rereads_late_commits_and_stepped_windows_resume() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "delta_lb").await?;
    let src = format!("{}.events", s.src);
    let dst = format!("{}.events", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, account int NOT NULL, amount numeric(12,2), \
               label text, updated_at timestamptz);
             INSERT INTO {src} SELECT g, g % 7, g, 'r' || g,
               CASE WHEN g % 1000 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' END
             FROM generate_series(1, 20000) g;"
        ))
        .await?;
    // 2-hour windows, 10 minutes of lookback; NULL cursors included by default.
    let ws = Workspace::new(&s, &delta_pipeline(
            "delta_lb",
            "    lookback: 10\n    lookback_unit: minute\n    primary_partitions:\n      - {column: updated_at, step: 2, step_unit: hour, data_type: datetime}\n",
        ))?;
    let (pipeline, state) = (&ws.pipeline, &ws.state);
    let first = run(pipeline, "delta", state);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("rows_read"), 20000);
    // 19,980 non-NULL minutes in 167 2-hour windows, merged into one
    // partition (they hold fewer than 50,000 rows together), plus the NULL
    // partition.
    assert_eq!(first.n("partitions_total"), 1 + 1);
    assert_eq!(difference(&client, &src, &dst).await?, 0);

    // A row committed late, 5 minutes behind the watermark, is inside the
    // lookback and caught.
    client
        .batch_execute(&format!(
            "INSERT INTO {src} VALUES (30001, 1, 1, 'late', (SELECT max(updated_at) FROM {src}) - interval '5 minutes')"
        ))
        .await?;
    let second = run(pipeline, "delta", state);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.n("rows_inserted"), 1);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    Ok(())
}

#[test]
fn delta_on_a_text_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: postgres, connection: {dbname: test}}\n  dst: {type: postgres, connection: {dbname: test}}\n",
    )
    .unwrap();
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        delta_pipeline("bad_delta", "").replace("column: updated_at", "column: label"),
    )
    .unwrap();
    let out = common::synchub(&["plan", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: {}: strategies[0].column: delta column \"label\" is text; a delta cursor must be a date/time column or a monotonically increasing integer\n",
            pipeline.display()
        )
    );
}
