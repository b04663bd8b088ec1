//! Delta watermarks in SQL: their values and what each was set against.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now, Failure};
use crate::state::watermarks::{display_watermark, WatermarkBinding, WatermarkInfo};

pub(super) fn watermark(
    c: &Connection,
    pipeline: &str,
    strategy: &str,
) -> Result<Option<(String, i64)>, Failure> {
    Ok(c.query_row(
        "SELECT kind, value FROM watermarks WHERE pipeline = ?1 AND strategy = ?2",
        params![pipeline, strategy],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

pub(super) fn set_watermark(
    c: &Connection,
    pipeline: &str,
    strategy: &str,
    kind: &str,
    value: i64,
    binding: Option<&WatermarkBinding>,
) -> Result<(), Failure> {
    if kind != "int" && kind != "micros" {
        return Err(Failure::new(format!(
            "watermark kind \"{kind}\" is not int or micros"
        )));
    }
    c.execute(
        "INSERT INTO watermarks (pipeline, strategy, kind, value, updated_at, rows_fingerprint, dest_identity, dest_nonempty, run_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (pipeline, strategy) DO UPDATE SET kind = ?3, value = ?4, updated_at = ?5, \
         rows_fingerprint = ?6, dest_identity = ?7, dest_nonempty = ?8, run_id = ?9",
        params![
            pipeline,
            strategy,
            kind,
            value,
            now(),
            binding.map(|b| &b.rows_fingerprint),
            binding.map(|b| &b.dest_identity),
            binding.map(|b| b.dest_nonempty),
            binding.map(|b| &b.run_id)
        ],
    )?;
    Ok(())
}

pub(super) fn watermark_binding(
    c: &Connection,
    pipeline: &str,
    strategy: &str,
) -> Result<Option<WatermarkBinding>, Failure> {
    Ok(c.query_row(
        "SELECT rows_fingerprint, dest_identity, dest_nonempty, run_id FROM watermarks \
         WHERE pipeline = ?1 AND strategy = ?2 AND rows_fingerprint IS NOT NULL",
        params![pipeline, strategy],
        |r| {
            Ok(WatermarkBinding {
                rows_fingerprint: r.get(0)?,
                dest_identity: r.get(1)?,
                dest_nonempty: r.get(2)?,
                run_id: r.get(3)?,
            })
        },
    )
    .optional()?)
}

pub(super) fn rebind_watermarks(
    c: &Connection,
    pipeline: &str,
    binding: &WatermarkBinding,
) -> Result<(), Failure> {
    c.execute(
        "UPDATE watermarks SET rows_fingerprint = ?2, dest_identity = ?3, dest_nonempty = ?4, run_id = ?5 \
         WHERE pipeline = ?1",
        params![
            pipeline,
            binding.rows_fingerprint,
            binding.dest_identity,
            binding.dest_nonempty,
            binding.run_id
        ],
    )?;
    Ok(())
}

/// The watermark as `state show` reports it.
pub(super) fn watermark_info(
    c: &Connection,
    pipeline: &str,
    strategy: &str,
) -> Result<Option<WatermarkInfo>, Failure> {
    Ok(c.query_row(
        "SELECT kind, value, updated_at FROM watermarks WHERE pipeline = ?1 AND strategy = ?2",
        params![pipeline, strategy],
        |r| {
            let kind: String = r.get(0)?;
            let value: i64 = r.get(1)?;
            Ok(WatermarkInfo {
                display: display_watermark(&kind, value),
                kind,
                value,
                updated_at: r.get(2)?,
            })
        },
    )
    .optional()?)
}

#[cfg(test)]
mod tests {
    use crate::state::{SqliteStateStore, StateBackend, StateReports};

    #[tokio::test]
    async fn watermark_kind_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStateStore::open(dir.path()).await.unwrap();
        s.set_watermark("p", "delta", "micros", 1_705_320_000_000_000, None)
            .await
            .unwrap();
        assert!(s
            .set_watermark("p", "delta", "float", 1, None)
            .await
            .is_err());
        let state = s.pipeline_state("p", None).await.unwrap();
        assert_eq!(state.len(), 1);
        assert_eq!(state[0].strategy, "delta");
        assert_eq!(state[0].last_run, None);
        let w = state[0].watermark.as_ref().unwrap();
        assert_eq!(w.display, "2024-01-15 12:00:00.000000 UTC");
    }
}
