//! Delta watermarks as the state store keeps them: what each was set
//! against, and how they read.

use serde::Serialize;

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
