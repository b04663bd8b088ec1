//! Hash syncs through the real binary on PostgreSQL: checksums and bucket
//! checksums find the ranges that differ, row hashes name the rows;
//! inserts, updates and deletes are applied and nothing else is touched.

use crate::common::{
    connect, difference, move_rows_sql, moved_rows_pipeline, scalar, Schemas, Workspace,
};
use anyhow::Result;

fn pipeline(name: &str, partitioning: &str) -> String {
    format!(
        "name: {name}
{partitioning}
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: name, dest: name, data_type: text}}
  - {{source: amount, dest: amount, data_type: decimal, precision: 12, scale: 2}}
  - {{source: updated_at, dest: updated_at, data_type: timestamptz}}
  - {{source: views, dest: views, data_type: int, hash_column: false}}
strategies:
  - {{name: full, type: full}}
  - {{name: hash, type: hash}}
"
    )
}

async fn source_table(client: &tokio_postgres::Client, s: &Schemas, rows: i64) -> Result<String> {
    let src = format!("{}.items", s.src);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2),
               updated_at timestamptz, views int);
             INSERT INTO {src} SELECT g, CASE WHEN g % 11 = 0 THEN NULL ELSE 'name ' || g END,
               g * 0.01, timestamptz '2024-01-01 00:00:00+00' + g * interval '1.5 second', 0
             FROM generate_series(1, {rows}) g;"
        ))
        .await?;
    Ok(src)
}

#[tokio::test]
async fn hash_applies_inserts_updates_and_deletes_and_ignores_non_hash_columns() -> Result<()> {
    const ROWS: i64 = 300_000;
    let client = connect().await?;
    let s = Schemas::create(&client, "hash_pg").await?;
    let src = source_table(&client, &s, ROWS).await?;
    let dst = format!("{}.items", s.dst);
    let ws = Workspace::new(
        &s,
        &pipeline("hash_pg", "partition_column: id\npartition_step: 50000"),
    )?;

    // Into an empty destination: every row is new.
    let first = ws.run("hash");
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("rows_inserted"), ROWS);
    assert_eq!(difference(&client, &src, &dst).await?, 0);

    // Unchanged: only checksums, no row read or written.
    let same = ws.run("hash");
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert_eq!(same.n("rows_read"), 0);
    assert_eq!(same.n("rows_unchanged"), ROWS);
    assert_eq!(
        same.n("rows_inserted") + same.n("rows_updated") + same.n("rows_deleted"),
        0
    );

    client
        .batch_execute(&format!(
            "UPDATE {src} SET amount = amount + 1 WHERE id BETWEEN 20000 AND 20999;
             UPDATE {src} SET name = NULL WHERE id = 123456;
             UPDATE {src} SET name = '' WHERE id = 77;
             UPDATE {src} SET views = 42 WHERE id = 250000;
             INSERT INTO {src} SELECT g, 'new', 1, now(), 0 FROM generate_series({ROWS} + 1, {ROWS} + 500) g;
             DELETE FROM {src} WHERE id BETWEEN 150000 AND 150099;"
        ))
        .await?;
    let changed = ws.run("hash");
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(changed.n("rows_inserted"), 500);
    // 1,000 amounts, one name set to NULL, one NULL name set to '' (77 is a
    // multiple of 11): NULL and '' hash differently.
    assert_eq!(changed.n("rows_updated"), 1002);
    assert_eq!(changed.n("rows_deleted"), 100);
    // The `views` change alone is not written: that column is not hashed.
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT views::bigint FROM {dst} WHERE id = 250000")
        )
        .await?,
        0
    );
    assert_eq!(
        difference(
            &client,
            &format!("(SELECT id, name, amount, updated_at FROM {src}) s"),
            &format!("(SELECT id, name, amount, updated_at FROM {dst}) d")
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn hash_over_an_unchanged_million_rows_reads_only_checksums() -> Result<()> {
    const ROWS: i64 = 1_000_000;
    let client = connect().await?;
    let s = Schemas::create(&client, "hash_1m").await?;
    let src = source_table(&client, &s, ROWS).await?;
    // No partitioning: the hash strategy makes one range over the integer key.
    let ws = Workspace::new(&s, &pipeline("hash_1m", ""))?;
    let full = ws.run("full");
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(
        difference(&client, &src, &format!("{}.items", s.dst)).await?,
        0
    );

    let hash = ws.run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(
        hash.n("rows_read"),
        0,
        "an unchanged table must not be fetched"
    );
    assert_eq!(hash.n("rows_unchanged"), ROWS);
    assert_eq!(
        hash.n("rows_inserted") + hash.n("rows_updated") + hash.n("rows_deleted"),
        0
    );
    Ok(())
}

#[tokio::test]
async fn secondary_partitions_cut_differing_primaries_finer() -> Result<()> {
    const ROWS: i64 = 300_000;
    let client = connect().await?;
    let s = Schemas::create(&client, "hash_sec").await?;
    let src = source_table(&client, &s, ROWS).await?;
    let dst = format!("{}.items", s.dst);
    let ws = Workspace::new(
        &s,
        &pipeline("hash_sec", "").replace(
            "  - {name: hash, type: hash}",
            "  - name: hash
    type: hash
    delete_missing: false
    primary_partitions: [{column: id, step: 150000, data_type: integer}]
    secondary_partitions: [{column: id, step: 40000, data_type: integer}]",
        ),
    )?;
    assert_eq!(ws.run("full").code, 0);
    client
        .batch_execute(&format!(
            "UPDATE {src} SET amount = -amount WHERE id IN (10, 119999, 150000, 299999);
             DELETE FROM {src} WHERE id = 170000;"
        ))
        .await?;
    let hash = ws.run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_updated"), 4);
    // The changed row 119999 was found in the secondary piece [80000, 120000).
    assert_eq!(
        scalar(
            &client,
            &format!(
                "SELECT count(*) FROM {}._synchub_checkpoints WHERE partition_id = 'id_80000_120000'",
                s.dst
            )
        )
        .await?,
        1
    );
    // delete_missing: false keeps the row the source lost.
    assert_eq!(hash.n("rows_deleted"), 0);
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT count(*) FROM {dst} WHERE id = 170000")
        )
        .await?,
        1
    );
    assert_eq!(
        difference(
            &client,
            &src,
            &format!("(SELECT * FROM {dst} WHERE id <> 170000) d")
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn changes_spread_over_every_partition_are_narrowed_bucket_by_bucket() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "hash_buckets").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    // Partitions of 300,000 ids: [0, 300000) and [300000, 600000) hold 128
    // sparse rows each, [600000, 900000) 250,000 dense rows, [900000,
    // 1200000) 128 sparse rows again.
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2),
               updated_at timestamptz, views int);
             INSERT INTO {src}
             SELECT id, 'name ' || id, id * 0.01, timestamptz '2024-01-01 00:00:00+00', 0
             FROM (SELECT g * 2000 AS id FROM generate_series(1, 128) g
                   UNION ALL SELECT 300000 + g * 2000 FROM generate_series(1, 128) g
                   UNION ALL SELECT g FROM generate_series(600001, 850000) g
                   UNION ALL SELECT 900000 + g * 2000 FROM generate_series(1, 128) g) ids;"
        ))
        .await?;
    let ws = Workspace::new(
        &s,
        &pipeline(
            "hash_buckets",
            "partition_column: id\npartition_step: 300000",
        ),
    )?;
    let full = ws.run("full");
    assert_eq!(full.code, 0, "{}", full.stderr);

    client
        .batch_execute(&format!(
            "UPDATE {src} SET amount = amount + 1 WHERE id IN (2000, 150000, 256000);
             DELETE FROM {src} WHERE id = 4000;
             INSERT INTO {src} VALUES (1001, 'new', 1, now(), 0);
             UPDATE {src} SET name = 'changed' WHERE id IN (302000, 556000);
             UPDATE {src} SET amount = -amount WHERE id BETWEEN 600001 AND 850000 AND id % 1000 = 7;
             DELETE FROM {src} WHERE id BETWEEN 700010 AND 700019;
             INSERT INTO {src} SELECT g, 'new', 2, now(), 0 FROM generate_series(850001, 850020) g;
             UPDATE {src} SET name = NULL WHERE id = 1100000;"
        ))
        .await?;
    let hash = ws.run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_inserted"), 21);
    // 3 + 2 + 250 (600007, 601007, …, 849007) + 1.
    assert_eq!(hash.n("rows_updated"), 256);
    assert_eq!(hash.n("rows_deleted"), 11);
    assert_eq!(hash.n("rows_unchanged"), 250_384 - 256 - 11);
    assert_eq!(hash.n("rows_read"), 21 + 256);
    assert_eq!(
        difference(
            &client,
            &format!("(SELECT id, name, amount, updated_at FROM {src}) s"),
            &format!("(SELECT id, name, amount, updated_at FROM {dst}) d")
        )
        .await?,
        0
    );
    // The first two partitions differ (checksum, then buckets), so the
    // third is compared by buckets straight away, sized for the 128 rows a
    // partition held so far: two buckets of 150,000 ids, each too full to
    // compare by key in memory, so each is compared again in buckets of
    // its own and is one leaf. (Bisection would have halved twice, into
    // leaves of 75,000 ids.)
    let leaves = |id: &'static str| {
        let client = &client;
        let dst_schema = s.dst.clone();
        async move {
            scalar(
                client,
                &format!(
                    "SELECT count(*) FROM {dst_schema}._synchub_checkpoints WHERE partition_id = '{id}'"
                ),
            )
            .await
        }
    };
    assert_eq!(leaves("id_600000_750000").await?, 1);
    assert_eq!(leaves("id_750000_900000").await?, 1);
    assert_eq!(leaves("id_600000_675000").await?, 0);

    // Nothing left to do.
    let again = ws.run("hash");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.n("rows_read"), 0);
    assert_eq!(again.n("rows_unchanged"), 250_384 - 11 + 21);
    Ok(())
}

#[tokio::test]
async fn a_row_moved_to_another_bucket_range_is_kept_whichever_range_is_written_first() -> Result<()>
{
    let client = connect().await?;
    let s = Schemas::create(&client, "hash_moved").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, grp int NOT NULL, name text);
             INSERT INTO {src} SELECT g, g, 'name ' || g FROM generate_series(1, 250000) g;"
        ))
        .await?;
    let ws = Workspace::new(&s, &moved_rows_pipeline("hash_moved", "postgres"))?;
    let full = ws.run("full");
    assert_eq!(full.code, 0, "{}", full.stderr);
    client.batch_execute(&move_rows_sql(&src)).await?;
    let hash = ws.run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT grp::bigint FROM {dst} WHERE id = 240000")
        )
        .await?,
        5
    );
    // 5,000 names (240000 among them); row 10 deleted and inserted again.
    assert_eq!(hash.n("rows_updated"), 5000);
    assert_eq!(hash.n("rows_deleted"), 1);
    assert_eq!(hash.n("rows_inserted"), 1);
    Ok(())
}
