//! Whether a run asks which ranges hold rows follows the source's own row
//! estimate: a table PostgreSQL counts as holding 1,000 rows or more per
//! range is planned range by range without the question (a scan of every
//! row); one it counts as sparse is asked.

use crate::common::{connect, synchub, Schemas, Workspace};
use anyhow::Result;

/// `synchub plan`'s line counting the partitions.
fn planned(ws: &Workspace) -> String {
    let out = synchub(&[
        "plan",
        ws.pipeline.to_str().unwrap(),
        "--strategy",
        "full",
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
