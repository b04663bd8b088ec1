//! The store's layout: its versions, the migrations between them, and the
//! checks that a file is a store this build may read and upgrade.

use rusqlite::Connection;

use super::Failure;

/// Bumped when the layout changes; a newer file is refused, not rewritten.
pub const STATE_VERSION: i64 = 4;

/// `MIGRATIONS[v]` takes a store from version `v` to `v + 1`; they run in one
/// transaction, so a store is always at exactly one version.
const MIGRATIONS: [&str; STATE_VERSION as usize] = [
    // 0 → 1: runs and their committed partitions.
    "CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        strategy TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        error TEXT,
        summary TEXT
     );
     CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, strategy, started_at);
     CREATE TABLE IF NOT EXISTS partitions (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        partition_id TEXT NOT NULL,
        committed_at TEXT NOT NULL,
        rows_inserted INTEGER NOT NULL,
        rows_updated INTEGER NOT NULL,
        rows_unchanged INTEGER NOT NULL,
        PRIMARY KEY (run_id, partition_id)
     );",
    // 1 → 2: delta watermarks, a run's partition count known before it ends,
    // and rows deleted per partition (hash strategy).
    "CREATE TABLE IF NOT EXISTS watermarks (
        pipeline TEXT NOT NULL,
        strategy TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('int', 'micros')),
        value INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (pipeline, strategy)
     );
     ALTER TABLE runs ADD COLUMN partitions_total INTEGER;
     ALTER TABLE partitions ADD COLUMN rows_deleted INTEGER NOT NULL DEFAULT 0;",
    // 2 → 3: what a watermark was set against (see `WatermarkBinding`).
    "ALTER TABLE watermarks ADD COLUMN rows_fingerprint TEXT;
     ALTER TABLE watermarks ADD COLUMN dest_identity TEXT;
     ALTER TABLE watermarks ADD COLUMN dest_nonempty INTEGER;
     ALTER TABLE watermarks ADD COLUMN run_id TEXT;",
    // 3 → 4: the groups of an aggregate's source rows (`track_moves`), and
    // when each pipeline's were last learned whole.
    "CREATE TABLE IF NOT EXISTS row_groups (
        pipeline TEXT NOT NULL,
        row_key TEXT NOT NULL,
        group_key TEXT NOT NULL,
        PRIMARY KEY (pipeline, row_key, group_key)
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS row_groups_learned (
        pipeline TEXT PRIMARY KEY,
        learned_at TEXT NOT NULL
     );",
];

/// Tables a store of any version may hold; a version-0 file with any other
/// table is somebody else's database.
const OWN_TABLES: [&str; 5] = [
    "runs",
    "partitions",
    "watermarks",
    "row_groups",
    "row_groups_learned",
];

fn version(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
}

pub(super) fn migrate(c: &Connection) -> Result<(), Failure> {
    // Reading the header is the first thing that touches the file: a file
    // that is not SQLite fails here, before anything is written.
    let version = version(c).map_err(Failure::not_a_store)?;
    check_version(version)?;
    if version == STATE_VERSION {
        return Ok(());
    }
    // Under a write lock, and re-read: two processes opening an old store
    // at once migrate it once. Any failure rolls the whole upgrade back.
    c.execute_batch("BEGIN IMMEDIATE")?;
    let result = upgrade(c);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    match (result, c.execute_batch(end)) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e.into())
        }
    }
}

/// Brings the store to `STATE_VERSION`, inside the caller's transaction.
fn upgrade(c: &Connection) -> Result<(), Failure> {
    let version = version(c)?;
    check_version(version)?;
    if version == 0 {
        check_no_foreign_tables(c)?;
    }
    for step in &MIGRATIONS[version as usize..] {
        c.execute_batch(step)?;
    }
    Ok(c.execute_batch(&format!("PRAGMA user_version = {STATE_VERSION}"))?)
}

fn check_version(version: i64) -> Result<(), Failure> {
    if version > STATE_VERSION {
        return Err(Failure::new(format!(
            "written by a newer SyncHub (state version {version}, this build reads {STATE_VERSION}); upgrade synchub or use another --state-dir"
        )));
    }
    if version < 0 {
        return Err(Failure::not_a_store(format!("state version {version}")));
    }
    Ok(())
}

fn check_no_foreign_tables(c: &Connection) -> Result<(), Failure> {
    let mut stmt =
        c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    match names.iter().find(|n| !OWN_TABLES.contains(&n.as_str())) {
        Some(name) => Err(Failure::not_a_store(format!(
            "it is an SQLite database with a table \"{name}\" and no SyncHub version"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{SqliteStateStore, StateBackend, StateReports};
    use std::path::Path;

    async fn version_of(s: &SqliteStateStore) -> i64 {
        s.call(|c| Ok(version(c)?)).await.unwrap()
    }

    #[tokio::test]
    async fn refuses_a_newer_state_store() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = SqliteStateStore::open(dir.path()).await.err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "state store {}: written by a newer SyncHub (state version 99, this build reads 4); upgrade synchub or use another --state-dir",
                dir.path().join("state.db").display()
            )
        );
    }

    /// The layout version 1 wrote, with one finished run.
    fn version_1_store(dir: &Path) {
        let conn = Connection::open(dir.join("state.db")).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (run_id, pipeline, strategy, status, started_at, finished_at, summary) \
             VALUES ('20240101_120000_aaaaaa', 'p', 'full', 'completed', '2024-01-01T12:00:00.000000Z', \
                     '2024-01-01T12:00:05.000000Z', '{\"partitions_total\": 2, \"partitions_done\": 2, \"partitions_skipped\": 0}');
             INSERT INTO partitions VALUES ('20240101_120000_aaaaaa', 'id_0_10', '2024-01-01T12:00:01.000000Z', 9, 0, 0);
             INSERT INTO partitions VALUES ('20240101_120000_aaaaaa', 'id_10_20', '2024-01-01T12:00:02.000000Z', 10, 0, 0);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }

    #[tokio::test]
    async fn migrates_version_1_keeping_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        version_1_store(dir.path());
        let s = SqliteStateStore::open(dir.path()).await.unwrap();
        assert_eq!(version_of(&s).await, STATE_VERSION);
        let runs = s.history("p", None, 10).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].run.status, crate::state::RunStatus::Completed);
        assert_eq!(runs[0].rows, 19);
        assert_eq!(runs[0].partitions_done, 2);
        assert_eq!(runs[0].partitions_total, Some(2));
        assert_eq!(s.watermark("p", "full").await.unwrap(), None);
        s.set_watermark("p", "full", "int", 42, None).await.unwrap();
        assert_eq!(
            s.watermark("p", "full").await.unwrap(),
            Some(("int".to_string(), 42))
        );
        s.record_partition(
            "20240101_120000_aaaaaa",
            "id_20_30",
            &connectors::WriteStats {
                deleted: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let runs = s.history("p", None, 10).await.unwrap();
        assert_eq!((runs[0].rows, runs[0].rows_deleted), (19, 3));
        drop(s);
        // Opening again finds version 2 and changes nothing.
        let s = SqliteStateStore::open(dir.path()).await.unwrap();
        assert_eq!(
            s.watermark("p", "full").await.unwrap(),
            Some(("int".to_string(), 42))
        );
    }

    #[tokio::test]
    async fn migrates_version_1_with_a_watermarks_table_already_there() {
        // Builds between the delta strategy and version 2 created the table
        // on first use without bumping the version.
        let dir = tempfile::tempdir().unwrap();
        version_1_store(dir.path());
        Connection::open(dir.path().join("state.db"))
            .unwrap()
            .execute_batch(
                "CREATE TABLE watermarks (pipeline TEXT NOT NULL, strategy TEXT NOT NULL, kind TEXT NOT NULL,
                    value INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (pipeline, strategy));
                 INSERT INTO watermarks VALUES ('p', 'delta', 'int', 5, '2024-01-01T12:00:00.000000Z');",
            )
            .unwrap();
        let s = SqliteStateStore::open(dir.path()).await.unwrap();
        assert_eq!(version_of(&s).await, STATE_VERSION);
        assert_eq!(
            s.watermark("p", "delta").await.unwrap(),
            Some(("int".to_string(), 5))
        );
    }

    #[tokio::test]
    async fn refuses_a_file_that_is_not_sqlite_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        for content in [
            b"this is not a database\n".to_vec(),
            (0..4096u32).map(|i| (i * 31 % 251) as u8).collect(),
        ] {
            std::fs::write(&path, &content).unwrap();
            for result in [
                SqliteStateStore::open(dir.path()).await.err(),
                SqliteStateStore::open_existing(dir.path()).await.err(),
            ] {
                let err = result.expect("a corrupt store is refused");
                assert_eq!(
                    err.to_string(),
                    format!(
                        "state store {}: not a SyncHub state store (file is not a database); move it away or pass another --state-dir",
                        path.display()
                    )
                );
            }
            assert_eq!(std::fs::read(&path).unwrap(), content);
            let mut names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            assert_eq!(names, ["state.db"]);
        }
    }

    #[tokio::test]
    async fn refuses_another_programs_database() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch("CREATE TABLE customers (id INTEGER)")
            .unwrap();
        drop(conn);
        let err = SqliteStateStore::open(dir.path()).await.err().unwrap();
        assert!(
            err.to_string().ends_with(
                "not a SyncHub state store (it is an SQLite database with a table \"customers\" and no SyncHub version); move it away or pass another --state-dir"
            ),
            "{err}"
        );
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
    }
}
