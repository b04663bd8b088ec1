//! Delta watermarks: their values, what each was set against, and how they
//! read.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now, StateStore};
use crate::error::EngineError;

/// What a delta watermark was set against. Rows at or below it are in the
/// destination only while the destination is that same table, not emptied
/// since, and filled under the same config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkBinding {
    /// `SyncFingerprint::rows` of the run that set it.
    pub rows_fingerprint: String,
    /// `Sink::table_identity` then.
    pub dest_identity: String,
    /// Whether the destination held rows then.
    pub dest_nonempty: bool,
    /// The run that set it (or last confirmed it).
    pub run_id: String,
}

/// A stored delta watermark.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WatermarkInfo {
    /// `int` or `micros` (microseconds since the Unix epoch, UTC).
    pub kind: String,
    pub value: i64,
    /// The value as people read it: the integer, or the timestamp.
    pub display: String,
    pub updated_at: String,
}

impl StateStore {
    /// The delta watermark of `pipeline`/`strategy`: its kind (`int` or
    /// `micros`) and value.
    pub fn watermark(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<(String, i64)>, EngineError> {
        self.conn
            .query_row(
                "SELECT kind, value FROM watermarks WHERE pipeline = ?1 AND strategy = ?2",
                params![pipeline, strategy],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores (replacing) the delta watermark of `pipeline`/`strategy`;
    /// `kind` is `int` or `micros`.
    pub fn set_watermark(
        &self,
        pipeline: &str,
        strategy: &str,
        kind: &str,
        value: i64,
        binding: Option<&WatermarkBinding>,
    ) -> Result<(), EngineError> {
        if kind != "int" && kind != "micros" {
            return Err(self.err(format!("watermark kind \"{kind}\" is not int or micros")));
        }
        self.conn
            .execute(
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
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What the watermark of `pipeline`/`strategy` was set against; `None`
    /// when there is no watermark or an older SyncHub set it.
    pub fn watermark_binding(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<WatermarkBinding>, EngineError> {
        self.conn
            .query_row(
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
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Binds every watermark of `pipeline` to the destination as a complete
    /// full run left it: it then holds every row the config selects, so rows
    /// past each watermark are all a delta needs to read.
    pub fn rebind_watermarks(
        &self,
        pipeline: &str,
        binding: &WatermarkBinding,
    ) -> Result<(), EngineError> {
        self.conn
            .execute(
                "UPDATE watermarks SET rows_fingerprint = ?2, dest_identity = ?3, dest_nonempty = ?4, run_id = ?5 \
                 WHERE pipeline = ?1",
                params![
                    pipeline,
                    binding.rows_fingerprint,
                    binding.dest_identity,
                    binding.dest_nonempty,
                    binding.run_id
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub(super) fn watermark_info(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<WatermarkInfo>, EngineError> {
        self.conn
            .query_row(
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
            .optional()
            .map_err(|e| self.err(e))
    }
}

/// A watermark as people read it: an integer as is, microseconds since the
/// epoch as a UTC timestamp.
pub fn display_watermark(kind: &str, value: i64) -> String {
    match kind {
        "micros" => chrono::DateTime::from_timestamp_micros(value)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string())
            .unwrap_or_else(|| format!("{value} µs")),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_kind_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.set_watermark("p", "delta", "micros", 1_705_320_000_000_000, None)
            .unwrap();
        assert!(s.set_watermark("p", "delta", "float", 1, None).is_err());
        let state = s.pipeline_state("p", None).unwrap();
        assert_eq!(state.len(), 1);
        assert_eq!(state[0].strategy, "delta");
        assert_eq!(state[0].last_run, None);
        let w = state[0].watermark.as_ref().unwrap();
        assert_eq!(w.display, "2024-01-15 12:00:00.000000 UTC");
    }
}
