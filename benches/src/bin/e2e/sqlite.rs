//! The runner's side of SQLite: the generated table in a file of its own,
//! the raw copy and the bare checksum scans synchub is measured against.
//!
//! The raw copy is what one would type to copy one SQLite table into
//! another: `ATTACH` the source and `INSERT INTO items SELECT * FROM
//! src.items` into an empty table of the same definition, which SQLite
//! runs as a copy of the stored records without decoding them.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use planner::types::ColumnType;
use rusqlite::{Connection, OpenFlags};

use crate::DeltaChange;

/// The table's definition, shared by the source and the raw copy's
/// destination (and the one synchub creates for this column map, so that
/// all three store the same bytes).
pub const DDL: &str = "(\"id\" INTEGER NOT NULL, \"qty\" INTEGER, \"category\" INTEGER, \
    \"price\" TEXT, \"title\" TEXT, \"created_at\" TEXT, \"updated_at\" TEXT, \"note\" TEXT, \
    \"active\" INTEGER, PRIMARY KEY (\"id\"))";

/// The columns and the types the pipeline maps them to (see
/// `pg::COLUMN_MAP`), for the bare checksums.
fn checksum_columns() -> Vec<(&'static str, ColumnType)> {
    vec![
        ("id", ColumnType::Int64),
        ("qty", ColumnType::Int32),
        ("category", ColumnType::Int32),
        (
            "price",
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
        ),
        ("title", ColumnType::Text),
        ("created_at", ColumnType::TimestampTz),
        ("updated_at", ColumnType::TimestampTz),
        ("note", ColumnType::Text),
        ("active", ColumnType::Bool),
    ]
}

/// The three database files, in a folder of the runner's.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
    /// The pipeline's ids per partition, for the partitioned copy.
    pub partition_step: i64,
}

impl Files {
    pub fn source(&self) -> PathBuf {
        self.dir.join("source.db")
    }
    /// synchub's destination.
    pub fn destination(&self) -> PathBuf {
        self.dir.join("destination.db")
    }
    /// The raw copy's destination.
    pub fn raw(&self) -> PathBuf {
        self.dir.join("raw.db")
    }

    pub fn datastores_yaml(&self) -> String {
        format!(
            "datastores:\n  src: {{type: sqlite, connection: {{path: \"{}\"}}}}\n  dst: {{type: sqlite, connection: {{path: \"{}\"}}}}\n",
            self.source().display(),
            self.destination().display()
        )
    }

    /// (Re)creates the source with `rows` rows, the same values as the
    /// PostgreSQL source in the forms synchub stores them in SQLite
    /// (decimals and timestamps as canonical text), with an index on the
    /// delta cursor `updated_at`.
    pub fn create_source(&self, rows: i64) -> Result<()> {
        remove_database(&self.source())?;
        let c = open(&self.source())?;
        // The timestamps: 2024-01-01 00:00:00 UTC + g × 1.5 s.
        c.execute_batch(&format!(
            "CREATE TABLE items {DDL};
             BEGIN;
             WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {rows})
             INSERT INTO items
             SELECT g, g % 1000, g % 37, printf('%.2f', ((g * 7919) % 10000000) / 100.0),
                    substr(printf('%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x',
                           g * 7919, g * 104729, g * 1299709, g * 15485863, g * 7919 + 1,
                           g * 104729 + 1, g * 1299709 + 1, g * 15485863 + 1, g * 7919 + 2,
                           g * 104729 + 2, g * 1299709 + 2, g * 15485863 + 2),
                           1, 8 + (g * 7919) % 90),
                    t, t,
                    CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END,
                    g % 2 = 0
             FROM (SELECT g, strftime('%Y-%m-%d %H:%M:%S', 1704067200 + g + g / 2, 'unixepoch')
                             || CASE WHEN g % 2 = 1 THEN '.500000' ELSE '.000000' END
                             || '+00:00' AS t
                   FROM s);
             CREATE INDEX items_updated_at ON items (updated_at);
             COMMIT;
             ANALYZE;"
        ))
        .context("generating the SQLite source")?;
        checkpoint(&c)
    }

    /// The physical limit of a full sync: the raw copy into a fresh file.
    /// Returns the rows copied.
    pub fn raw_copy(&self) -> Result<u64> {
        remove_database(&self.raw())?;
        let c = open(&self.raw())?;
        c.execute_batch(&format!("CREATE TABLE items {DDL}"))?;
        attach_source(&c, &self.source())?;
        let copied = c
            .execute("INSERT INTO main.items SELECT * FROM src.items", [])
            .context("raw copy")?;
        Ok(copied as u64)
    }

    /// SQLite's own copy a partition at a time, as a resumable copy must
    /// write it: `INSERT INTO … SELECT * … WHERE id >= ? AND id < ?` over
    /// the pipeline's id ranges, each in its own transaction. The `WHERE`
    /// turns off the record transfer of `raw_copy`: SQLite reads each value
    /// and builds the record again. Into the raw copy's file; returns the
    /// rows copied.
    pub fn partitioned_copy(&self) -> Result<u64> {
        remove_database(&self.raw())?;
        let mut c = open(&self.raw())?;
        c.execute_batch(&format!("CREATE TABLE items {DDL}"))?;
        attach_source(&c, &self.source())?;
        let (low, high): (i64, i64) =
            c.query_row("SELECT min(id), max(id) FROM src.items", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let step = self.partition_step;
        let mut copied = 0;
        // Aligned as synchub's partitions are: [k × step, (k + 1) × step).
        let mut start = low.div_euclid(step) * step;
        while start <= high {
            let tx = c.transaction()?;
            copied += tx
                .execute(
                    "INSERT INTO main.items SELECT * FROM src.items WHERE id >= ?1 AND id < ?2",
                    [start, start + step],
                )
                .context("partitioned copy")?;
            tx.commit()?;
            start += step;
        }
        Ok(copied as u64)
    }

    /// The least SQL that applies a delta to the raw copy: rows with
    /// `updated_at >= since` inserted from the attached source with one
    /// `INSERT … ON CONFLICT (id) DO UPDATE` of every column. Returns the
    /// rows applied.
    pub fn bare_delta(&self, since: &str) -> Result<u64> {
        let c = open(&self.raw())?;
        attach_source(&c, &self.source())?;
        let set = [
            "qty",
            "category",
            "price",
            "title",
            "created_at",
            "updated_at",
            "note",
            "active",
        ]
        .iter()
        .map(|col| format!("\"{col}\" = excluded.\"{col}\""))
        .collect::<Vec<_>>()
        .join(", ");
        let applied = c
            .execute(
                &format!(
                    "INSERT INTO main.items SELECT * FROM src.items WHERE updated_at >= ?1 \
                     ON CONFLICT (\"id\") DO UPDATE SET {set}"
                ),
                [since],
            )
            .context("bare SQL delta")?;
        Ok(applied as u64)
    }

    /// The floor of a checksum comparison: the count and hash sum synchub's
    /// checksums compute, over the whole of each side's table, both at once.
    pub fn bare_checksums(&self) -> Result<[(u64, u64); 2]> {
        let (src, dst) = (self.source(), self.destination());
        std::thread::scope(|s| {
            let a = s.spawn(|| table_checksum(&src));
            let b = table_checksum(&dst);
            let a = a.join().expect("checksum thread panicked");
            Ok([a?, b?])
        })
    }

    /// The newest `updated_at` of the source.
    pub fn newest_cursor(&self) -> Result<String> {
        let c = open(&self.source())?;
        Ok(c.query_row("SELECT max(updated_at) FROM items", [], |r| r.get(0))?)
    }

    /// Moves 1% of the rows forward, as `pg::change_for_delta` does:
    /// `qty` changes and `updated_at` moves a minute past every value so
    /// far, each row to its own value. Returns the rows changed.
    pub fn change_for_delta(&self, round: u32, which: DeltaChange) -> Result<u64> {
        let rows = match which {
            DeltaChange::Spread => format!("id % 100 = {}", round % 100),
            DeltaChange::Newest => "id > (SELECT max(id) - count(*) / 100 FROM items)".into(),
        };
        let c = open(&self.source())?;
        let n = c.execute(
            &format!(
                "UPDATE items SET qty = qty + 1,
                   updated_at = strftime('%Y-%m-%d %H:%M:%S', m.t + id / 1000000, 'unixepoch')
                                || printf('.%06d', id % 1000000) || '+00:00'
                 FROM (SELECT CAST(strftime('%s', max(updated_at)) AS INTEGER) + 60 AS t FROM items) m
                 WHERE {rows}"
            ),
            [],
        )?;
        checkpoint(&c)?;
        Ok(n as u64)
    }

    /// Changes 0.1% of the rows without touching the delta cursor, as
    /// `pg::change_for_hash` does. Returns the keys changed, sorted.
    pub fn change_for_hash(&self, round: u32) -> Result<Vec<i64>> {
        let c = open(&self.source())?;
        let mut ids = c
            .prepare("UPDATE items SET title = title || '~' WHERE id % 1000 = ?1 RETURNING id")?
            .query_map([500 + round % 500], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ids.sort_unstable();
        checkpoint(&c)?;
        Ok(ids)
    }

    /// Rows in synchub's destination.
    pub fn destination_rows(&self) -> Result<i64> {
        let c = open(&self.destination())?;
        Ok(c.query_row("SELECT count(*) FROM items", [], |r| r.get(0))?)
    }

    /// Writes every file's WAL back into it, so no case pays for an
    /// earlier one's.
    pub fn checkpoint_all(&self) -> Result<()> {
        for f in [self.source(), self.destination(), self.raw()] {
            if f.exists() {
                checkpoint(&open(&f)?)?;
            }
        }
        Ok(())
    }

    /// An empty destination: no file.
    pub fn reset_destination(&self) -> Result<()> {
        remove_database(&self.destination())
    }
}

/// Opens a file as synchub's sink does: WAL, synchronous=NORMAL.
fn open(path: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(c)
}

fn attach_source(c: &Connection, source: &Path) -> Result<()> {
    let path = source
        .to_str()
        .context("the bench folder's path is not UTF-8")?;
    c.execute("ATTACH DATABASE ?1 AS src", [path])?;
    Ok(())
}

fn checkpoint(c: &Connection) -> Result<()> {
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

fn table_checksum(path: &Path) -> Result<(u64, u64)> {
    let c = open(path)?;
    let sum = connectors::rowhash::sqlite_table_checksum(&c, "items", &checksum_columns())
        .with_context(|| format!("checksum of {}", path.display()))?;
    Ok((sum.rows, sum.sum))
}

fn remove_database(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut f = path.as_os_str().to_owned();
        f.push(suffix);
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {f:?}")),
        }
    }
    ensure!(!path.exists(), "{} is still there", path.display());
    Ok(())
}
