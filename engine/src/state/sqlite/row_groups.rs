//! The groups of an aggregate's source rows (`track_moves`), by pipeline.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now, write, Failure};

/// Row keys per statement: SQLite binds at most 32,766 values.
const CHUNK: usize = 10_000;

pub(super) fn groups_of(
    c: &Connection,
    pipeline: &str,
    rows: &[String],
) -> Result<Vec<(String, String)>, Failure> {
    let mut st = c.prepare_cached(
        "SELECT row_key, group_key FROM row_groups \
         WHERE pipeline = ?1 AND row_key IN (SELECT value FROM json_each(?2))",
    )?;
    let mut out = Vec::new();
    for chunk in rows.chunks(CHUNK) {
        let keys = serde_json::to_string(chunk).map_err(|e| Failure::new(e.to_string()))?;
        let found = st.query_map(params![pipeline, keys], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for pair in found {
            out.push(pair?);
        }
    }
    Ok(out)
}

pub(super) fn remember(
    c: &Connection,
    pipeline: &str,
    pairs: &[(String, String)],
) -> Result<(), Failure> {
    each_pair(
        c,
        "INSERT INTO row_groups (pipeline, row_key, group_key) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO NOTHING",
        pipeline,
        pairs,
    )
}

pub(super) fn forget(
    c: &Connection,
    pipeline: &str,
    pairs: &[(String, String)],
) -> Result<(), Failure> {
    each_pair(
        c,
        "DELETE FROM row_groups WHERE pipeline = ?1 AND row_key = ?2 AND group_key = ?3",
        pipeline,
        pairs,
    )
}

/// `sql` run for every (row key, group key) pair, in one transaction.
fn each_pair(
    c: &Connection,
    sql: &str,
    pipeline: &str,
    pairs: &[(String, String)],
) -> Result<(), Failure> {
    write(c, |c| {
        let mut st = c.prepare_cached(sql)?;
        for (row, group) in pairs {
            st.execute(params![pipeline, row, group])?;
        }
        Ok(())
    })
}

/// Forgets every group of `pipeline`'s rows; until `set_learned`, they are
/// not known.
pub(super) fn clear(c: &Connection, pipeline: &str) -> Result<(), Failure> {
    write(c, |c| {
        c.execute(
            "DELETE FROM row_groups_learned WHERE pipeline = ?1",
            params![pipeline],
        )?;
        c.execute(
            "DELETE FROM row_groups WHERE pipeline = ?1",
            params![pipeline],
        )?;
        Ok(())
    })
}

pub(super) fn set_learned(c: &Connection, pipeline: &str) -> Result<(), Failure> {
    c.execute(
        "INSERT INTO row_groups_learned (pipeline, learned_at) VALUES (?1, ?2) \
         ON CONFLICT (pipeline) DO UPDATE SET learned_at = ?2",
        params![pipeline, now()],
    )?;
    Ok(())
}

pub(super) fn learned(c: &Connection, pipeline: &str) -> Result<bool, Failure> {
    Ok(c.query_row(
        "SELECT 1 FROM row_groups_learned WHERE pipeline = ?1",
        params![pipeline],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}
