//! Bad data and hostile surroundings at run time: NULL keys, a column read
//! as a type it cannot be, and what the state directory lets others read.
//! Each case checks the exit code, the exact message and that the
//! destination holds nothing half-written.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{self, connect, run, scalar, Schemas, Workspace};
use anyhow::Result;
use rusqlite::Connection;

const NULL_KEY_ADVICE: &str = "unique column \"id\" is NULL; a key identifies its row and cannot be NULL: leave such rows out with a filter on the source (IS NOT NULL) or map a column that is never NULL as unique_column";

fn pipeline(name: &str, backend: &str) -> String {
    format!(
        "name: {name}
{providers}column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: name, dest: name, data_type: text}}
strategies:
  - {{name: full, type: full}}
  - {{name: hash, type: hash}}
",
        providers = common::items_providers(backend)
    )
}

fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

#[tokio::test]
async fn postgres_null_key_names_column_row_and_partition() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "hostile_null").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint, name text);
             INSERT INTO {src}.items VALUES (1, 'a'), (2, 'b'), (NULL, 'no key'), (4, 'd');",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(&s, &pipeline("hostile_null", "postgres"))?;
    let full = ws.run("full");
    assert_eq!(full.code, 1, "{}", full.stderr);
    assert_eq!(
        last_line(&full.stderr),
        format!("error: fetch: partition all, row 3 read: {NULL_KEY_ADVICE}")
    );
    assert_eq!(full.json["status"], "failed");
    // The partition rolled back: nothing half-written.
    let dst = format!("{}.items", s.dst);
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        0
    );
    let hash = ws.run("hash");
    assert_eq!(hash.code, 1, "{}", hash.stderr);
    assert_eq!(
        last_line(&hash.stderr),
        format!("error: change_detection: partition id_null: {NULL_KEY_ADVICE}")
    );
    // Hash compares the rows with a NULL key as a partition of their own:
    // the partition of the others is whole in the destination.
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        3
    );
    Ok(())
}

#[test]
fn sqlite_null_key_names_column_row_and_partition() {
    let dir = tempfile::tempdir().unwrap();
    Connection::open(dir.path().join("source.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE items (id INTEGER, name TEXT);
             INSERT INTO items VALUES (1, 'a'), (NULL, 'no key'), (3, 'c');",
        )
        .unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )
    .unwrap();
    let p = dir.path().join("items.yaml");
    std::fs::write(&p, pipeline("hostile_null_sqlite", "sqlite")).unwrap();
    let full = run(&p, "full", &dir.path().join("state"));
    assert_eq!(full.code, 1, "{}", full.stderr);
    assert_eq!(
        last_line(&full.stderr),
        format!("error: fetch: partition all, row 2 read: {NULL_KEY_ADVICE}")
    );
    let rows: i64 = Connection::open(dir.path().join("warehouse.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_column_that_cannot_be_read_as_its_type_gives_advice_that_works() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "hostile_type").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id text, name text); INSERT INTO {src}.items VALUES ('x', 'a');",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(&s, &pipeline("hostile_type", "postgres"))?;
    let r = ws.run("full");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        last_line(&r.stderr),
        "error: source column \"id\" has PostgreSQL type text, which SyncHub cannot read as bigint; map it with a data_type that can hold it (text holds every type), or read it through a view that converts it"
    );
    // The advice works: mapped as text, the row syncs.
    std::fs::write(
        &ws.pipeline,
        pipeline("hostile_type", "postgres").replace(
            "{source: id, dest: id, roles: [unique_column], data_type: bigint}",
            "{source: id, dest: id, roles: [unique_column], data_type: text}",
        ),
    )?;
    let r = ws.run("full");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT count(*) FROM {}.items WHERE id = 'x'", s.dst)
        )
        .await?,
        1
    );
    Ok(())
}

/// Every file a run leaves under the state directory is 0600 and every
/// folder 0700, whatever the umask: they hold row values from errors.
#[tokio::test]
async fn the_state_directory_is_private() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "hostile_modes").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint, name text); INSERT INTO {src}.items VALUES (1, 'a'), (NULL, 'secret row');",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(&s, &pipeline("hostile_modes", "postgres"))?;
    assert_eq!(ws.run("full").code, 1);
    client
        .batch_execute(&format!("DELETE FROM {}.items WHERE id IS NULL", s.src))
        .await?;
    assert_eq!(ws.run("full").code, 0);
    let mut seen = Vec::new();
    let mut stack = vec![ws.state.clone()];
    while let Some(dir) = stack.pop() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                let name = path.strip_prefix(&ws.state)?.to_string_lossy().into_owned();
                seen.push(if name.ends_with(".log") || name.ends_with(".json") {
                    name.rsplit_once('/').map_or(name.clone(), |(d, f)| {
                        format!("{d}/*.{}", f.rsplit('.').next().unwrap_or_default())
                    })
                } else {
                    name
                });
            }
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            "locks/hostile_modes.lock",
            "logs/hostile_modes/*.log",
            "metrics/hostile_modes/*.json",
            // The state store's write-ahead log and its index stay between
            // runs (private as the file they belong to).
            "state.db",
            "state.db-shm",
            "state.db-wal"
        ],
    );
    Ok(())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}
