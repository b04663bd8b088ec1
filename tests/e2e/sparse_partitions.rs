//! Sparse spans: only the ranges holding rows are planned (`synchub plan`
//! says how many of how many), with the same ids a dense plan gives them,
//! and the runs still leave the destination equal to the source.

use crate::common::{connect, difference, scalar, synchub, Schemas, Workspace};
use anyhow::Result;

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
    let out = synchub(&[
        "plan",
        ws.pipeline.to_str().unwrap(),
        "--strategy",
        strategy,
        "--state-dir",
        ws.state.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("partitions: "))
        .unwrap_or_default()
        .to_string()
}

/// The case, smaller: rows in three bursts from 2024-01 to 2026-12
/// in 2-hour windows (some 12,800 of them), and a few NULL cursors. A first
/// delta plans the windows holding rows and the NULL partition alone; the
/// next one, the windows holding its changes.
#[tokio::test]
async fn a_sparse_time_span_delta_plans_only_windows_holding_rows() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "sparse_delta").await?;
    let src = format!("{}.events", s.src);
    let dst = format!("{}.events", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, label text, updated_at timestamptz);
             INSERT INTO {src}
             SELECT g, 'burst a ' || g, timestamptz '2024-01-03 00:00:00+00' + g * interval '10 seconds'
               FROM generate_series(1, 1000) g
             UNION ALL
             SELECT 1000 + g, 'burst b ' || g, timestamptz '2025-06-10 07:00:00+00' + g * interval '59 milliseconds'
               FROM generate_series(1, 1000) g
             UNION ALL
             SELECT 2000 + g, 'burst c ' || g, timestamptz '2026-12-20 00:00:00+00' + g * interval '36 seconds'
               FROM generate_series(1, 1000) g
             UNION ALL
             SELECT 3000 + g, 'no cursor', NULL FROM generate_series(1, 5) g;"
        ))
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
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("partitions_total"), occupied);
    assert_eq!(first.n("rows_inserted"), 3005);
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
    assert_eq!(second.code, 0, "{}", second.stderr);
    // The watermark's window (10:00-12:00: the last burst's row at 10:00
    // and the ten moved), the new rows' (04:00-06:00 and 06:00-08:00) and
    // the NULL cursors, of the 2-hour windows between.
    assert_eq!(second.n("partitions_total"), 1 + 2 + 1);
    assert_eq!(second.n("rows_inserted"), 100);
    assert_eq!(second.n("rows_updated"), 10);
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
    let s = Schemas::create(&client, "sparse_hash").await?;
    let src = format!("{}.events", s.src);
    let dst = format!("{}.events", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, label text, updated_at timestamptz);
             INSERT INTO {src} SELECT id, 'row ' || id, timestamptz '2024-01-01 00:00:00+00'
             FROM (SELECT g AS id FROM generate_series(1, 500) g
                   UNION ALL SELECT 1000000000 + g FROM generate_series(0, 499) g
                   UNION ALL SELECT 1000000000000 + g FROM generate_series(0, 99) g) ids;"
        ))
        .await?;
    let ws = Workspace::new(
        &s,
        &pipeline(
            "sparse_hash",
            "partition_column: id\npartition_step: 1000",
            "  - {name: full, type: full}\n  - {name: hash, type: hash}\n",
        ),
    )?;
    assert_eq!(
        planned(&ws, "full"),
        "partitions: 3 holding rows, of 1000000001 ranges"
    );
    let full = ws.run("full");
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("partitions_total"), 3);
    assert_eq!(full.n("rows_inserted"), 1100);
    assert_eq!(difference(&client, &src, &dst).await?, 0);

    // The middle cluster leaves the source; a new one arrives; a row of the
    // first changes.
    client
        .batch_execute(&format!(
            "DELETE FROM {src} WHERE id BETWEEN 1000000000 AND 1000000999;
             INSERT INTO {src} SELECT 500000000000 + g, 'new', now() FROM generate_series(1, 7) g;
             UPDATE {src} SET label = 'changed' WHERE id = 17;"
        ))
        .await?;
    assert_eq!(
        planned(&ws, "hash"),
        "partitions: 4 holding rows, of 1000000001 ranges"
    );
    let hash = ws.run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("partitions_total"), 4);
    assert_eq!(hash.n("rows_deleted"), 500);
    assert_eq!(hash.n("rows_inserted"), 7);
    assert_eq!(hash.n("rows_updated"), 1);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    Ok(())
}
