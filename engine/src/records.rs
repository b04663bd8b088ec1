//! Per-run records under the state directory, in the spec's layout:
//!
//! - `logs/<pipeline>/<run_id>.log`: JSON lines written while the run goes
//!   (`timestamp`, `level`, `message`, `run_id`, then fields such as
//!   `partition` and `rows`); a resumed run appends to its run's file.
//! - `metrics/<pipeline>/<run_id>.json`: written when the run ends, completed
//!   or failed; a resumed run rewrites it, counting the attempt.
//!
//! Recording never fails a run: a file that cannot be written is reported
//! once as a warning and the run goes on without it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::run::RunSummary;
use crate::runtime::OperatorStats;
use crate::state::RunStatus;

/// True for a name that can be one path component under the state directory:
/// letters, digits, `_` and `-` (what pipeline names and run ids are made of).
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `<state-dir>/metrics/<pipeline>/<run_id>.json`; `None` when either name
/// could leave that folder.
pub fn metrics_path(state_dir: &Path, pipeline: &str, run_id: &str) -> Option<PathBuf> {
    record_path(state_dir, "metrics", pipeline, run_id, "json")
}

/// `<state-dir>/logs/<pipeline>/<run_id>.log`; `None` when either name could
/// leave that folder.
pub fn log_path(state_dir: &Path, pipeline: &str, run_id: &str) -> Option<PathBuf> {
    record_path(state_dir, "logs", pipeline, run_id, "log")
}

fn record_path(
    state_dir: &Path,
    kind: &str,
    pipeline: &str,
    run_id: &str,
    ext: &str,
) -> Option<PathBuf> {
    (is_safe_name(pipeline) && is_safe_name(run_id)).then(|| {
        state_dir
            .join(kind)
            .join(pipeline)
            .join(format!("{run_id}.{ext}"))
    })
}

/// What removing a run's files did.
#[derive(Debug, Default)]
pub struct RemovedFiles {
    pub removed: Vec<PathBuf>,
    /// `<path>: <reason>` for each file that exists but could not be removed.
    pub failed: Vec<String>,
}

/// Removes a run's metrics and log files (those that exist), and its
/// pipeline's folders once empty.
pub fn remove_run_files(state_dir: &Path, pipeline: &str, run_id: &str) -> RemovedFiles {
    let mut out = RemovedFiles::default();
    for path in [
        metrics_path(state_dir, pipeline, run_id),
        log_path(state_dir, pipeline, run_id),
    ]
    .into_iter()
    .flatten()
    {
        match std::fs::remove_file(&path) {
            Ok(()) => out.removed.push(path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out.failed.push(format!("{}: {e}", path.display())),
        }
        if let Some(dir) = path.parent() {
            // Fails (and is left) while other runs' files are there.
            let _ = std::fs::remove_dir(dir);
        }
    }
    out
}

/// `(pipeline, run_id)` of every metrics and log file under the state
/// directory, in no particular order; names that are not safe are skipped.
pub fn recorded_runs(state_dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (kind, ext) in [("metrics", "json"), ("logs", "log")] {
        let Ok(pipelines) = std::fs::read_dir(state_dir.join(kind)) else {
            continue;
        };
        for p in pipelines.flatten() {
            let Some(pipeline) = p.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_safe_name(&pipeline) || !p.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(p.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let Some(run_id) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(ext))
                    .and_then(|n| n.strip_suffix('.'))
                else {
                    continue;
                };
                if is_safe_name(run_id) {
                    out.push((pipeline.clone(), run_id.to_string()));
                }
            }
        }
    }
    out
}

/// The metrics file of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunMetrics {
    pub run_id: String,
    pub pipeline: String,
    pub strategy: String,
    pub status: RunStatus,
    /// When this attempt started and ended (RFC 3339, UTC); they are
    /// `duration_seconds` apart.
    pub started_at: String,
    pub completed_at: String,
    pub duration_seconds: f64,
    /// Rows read from the source.
    pub rows_processed: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    pub rows_unchanged: u64,
    pub partitions_total: u64,
    /// Partitions committed by this attempt.
    pub partitions_processed: u64,
    /// Partitions already committed by an earlier attempt of the run.
    pub partitions_skipped: u64,
    pub errors: u64,
    pub error: Option<String>,
    /// 1 for a run's first attempt, 2 once resumed, and so on.
    pub attempt: u64,
    pub operators: Vec<OperatorStats>,
}

/// Writes one run's log and metrics files. Cheap to clone: clones share the
/// log file.
#[derive(Clone)]
pub struct RunRecorder {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    run_id: String,
    pipeline: String,
    metrics_path: PathBuf,
    log_path: PathBuf,
    started_at: chrono::DateTime<chrono::Utc>,
    /// The open log; `None` once writing it failed.
    log: Mutex<Option<File>>,
    finished: std::sync::atomic::AtomicBool,
}

impl RunRecorder {
    /// Opens (appending) the run's log file and logs the start.
    pub fn start(state_dir: &Path, pipeline: &str, run_id: &str) -> RunRecorder {
        let (Some(metrics_path), Some(log_path)) = (
            metrics_path(state_dir, pipeline, run_id),
            log_path(state_dir, pipeline, run_id),
        ) else {
            tracing::warn!(
                pipeline,
                run_id,
                "not recording logs and metrics: the pipeline name or run id is not a safe file name"
            );
            return RunRecorder::disabled();
        };
        let file = log_path
            .parent()
            .map_or(Ok(()), crate::files::create_private_dir)
            .and_then(|()| {
                crate::files::private_options()
                    .create(true)
                    .append(true)
                    .open(&log_path)
            });
        let file = match file {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("cannot write the run log {}: {e}", log_path.display());
                None
            }
        };
        let recorder = RunRecorder {
            inner: Some(Arc::new(Inner {
                run_id: run_id.to_string(),
                pipeline: pipeline.to_string(),
                metrics_path,
                log_path,
                started_at: chrono::Utc::now(),
                log: Mutex::new(file),
                finished: std::sync::atomic::AtomicBool::new(false),
            })),
        };
        recorder.log(
            "INFO",
            &format!("starting run {run_id} of {pipeline}"),
            serde_json::json!({ "pipeline": pipeline }),
        );
        recorder
    }

    /// A recorder that writes nothing.
    pub fn disabled() -> RunRecorder {
        RunRecorder { inner: None }
    }

    /// Appends one JSON line: `timestamp`, `level` (upper case), `message`,
    /// `run_id`, then the members of `fields` (an object; other values are
    /// kept under `data`). Fields never replace the four above.
    pub fn log(&self, level: &str, message: &str, fields: Value) {
        if let Some(inner) = &self.inner {
            inner.log(level, message, fields);
        }
    }

    /// Logs what the run covers, once its partitions are planned.
    pub fn planned(&self, strategy: &str, partitions: u64, skipped: u64) {
        self.log(
            "INFO",
            &format!("strategy {strategy}: {partitions} partitions, {skipped} already committed"),
            serde_json::json!({
                "strategy": strategy,
                "partitions": partitions,
                "skipped": skipped,
            }),
        );
    }

    /// Logs a partition the destination committed.
    /// A partition committed by `lane` (0 when partitions are written one
    /// at a time).
    pub fn partition_committed(
        &self,
        lane: usize,
        partition_id: &str,
        stats: &connectors::WriteStats,
    ) {
        let rows = stats.inserted + stats.updated + stats.unchanged;
        self.log(
            "INFO",
            &format!(
                "partition {partition_id} committed: {rows} rows ({} inserted, {} updated, {} unchanged), {} deleted",
                stats.inserted, stats.updated, stats.unchanged, stats.deleted
            ),
            serde_json::json!({
                "partition": partition_id,
                "lane": lane,
                "rows": rows,
                "inserted": stats.inserted,
                "updated": stats.updated,
                "unchanged": stats.unchanged,
                "deleted": stats.deleted,
            }),
        );
    }

    /// Logs a partition that failed for good (`failed_partition` names it:
    /// the API's failed partitions are these lines).
    pub fn partition_failed(&self, partition_id: &str, worker: &str, attempts: u32, error: &str) {
        self.log(
            "ERROR",
            &format!(
                "partition {partition_id} failed on {worker} after {attempts} attempts: {error}"
            ),
            serde_json::json!({
                "failed_partition": partition_id,
                "worker": worker,
                "attempts": attempts,
                "error": error,
            }),
        );
    }

    /// Logs the end of the run and writes its metrics file.
    pub fn finish(&self, summary: &RunSummary, error: Option<&EngineError>) {
        let Some(inner) = &self.inner else {
            return;
        };
        inner
            .finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let error = error.map(EngineError::message);
        let fields = serde_json::json!({
            "status": summary.status,
            "rows": summary.rows_read,
            "partitions": summary.partitions_done,
            "duration_seconds": summary.duration_seconds,
        });
        match &error {
            None => inner.log(
                "INFO",
                &format!(
                    "run {}: {} rows read, {} partitions committed, {} skipped",
                    summary.status,
                    summary.rows_read,
                    summary.partitions_done,
                    summary.partitions_skipped
                ),
                fields,
            ),
            Some(e) => inner.log("ERROR", &format!("run {}: {e}", summary.status), fields),
        }
        inner.write_metrics(summary, error);
    }
}

impl Inner {
    fn log(&self, level: &str, message: &str, fields: Value) {
        let Ok(mut guard) = self.log.lock() else {
            return;
        };
        let Some(file) = guard.as_mut() else {
            return;
        };
        let line = log_line(level, message, &self.run_id, fields);
        // One write per line, in append mode: lines never interleave.
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(
                "cannot write the run log {}: {e}; the rest of this run is not logged there",
                self.log_path.display()
            );
            *guard = None;
        }
    }

    fn write_metrics(&self, summary: &RunSummary, error: Option<String>) {
        let previous_attempt = std::fs::read(&self.metrics_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("attempt").and_then(Value::as_u64))
            .unwrap_or(0);
        // The run's clock started before this recorder (loading, connecting):
        // `started_at` is set from its duration so the three agree.
        let completed_at = chrono::Utc::now();
        let started_at = chrono::Duration::from_std(std::time::Duration::from_secs_f64(
            summary.duration_seconds.max(0.0),
        ))
        .ok()
        .and_then(|d| completed_at.checked_sub_signed(d))
        .map_or(self.started_at, |t| t.min(self.started_at));
        let metrics = RunMetrics {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.clone(),
            strategy: summary.strategy.clone(),
            status: summary.status,
            started_at: rfc3339(started_at),
            completed_at: rfc3339(completed_at),
            duration_seconds: summary.duration_seconds,
            rows_processed: summary.rows_read,
            rows_inserted: summary.rows_inserted,
            rows_updated: summary.rows_updated,
            rows_deleted: summary.rows_deleted,
            rows_unchanged: summary.rows_unchanged,
            partitions_total: summary.partitions_total,
            partitions_processed: summary.partitions_done,
            partitions_skipped: summary.partitions_skipped,
            errors: u64::from(error.is_some()),
            error,
            attempt: previous_attempt + 1,
            operators: summary.operators.clone(),
        };
        // Written beside and renamed over: readers never see half a file.
        let tmp = self.metrics_path.with_extension("json.tmp");
        let written = self
            .metrics_path
            .parent()
            .map_or(Ok(()), crate::files::create_private_dir)
            .and_then(|()| {
                let mut text =
                    serde_json::to_string_pretty(&metrics).map_err(std::io::Error::other)?;
                text.push('\n');
                let mut file = crate::files::private_options()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?;
                std::io::Write::write_all(&mut file, text.as_bytes())
            })
            .and_then(|()| std::fs::rename(&tmp, &self.metrics_path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(
                "cannot write the run metrics {}: {e}",
                self.metrics_path.display()
            );
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.finished.load(std::sync::atomic::Ordering::Relaxed) {
            self.log(
                "ERROR",
                "run stopped before it finished; the next run resumes it",
                Value::Null,
            );
        }
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One JSON line with the fixed members first, in the spec's order.
fn log_line(level: &str, message: &str, run_id: &str, fields: Value) -> String {
    let mut members: Vec<(String, Value)> = vec![
        ("timestamp".into(), Value::from(rfc3339(chrono::Utc::now()))),
        ("level".into(), Value::from(level.to_ascii_uppercase())),
        ("message".into(), Value::from(message)),
        ("run_id".into(), Value::from(run_id)),
    ];
    match fields {
        Value::Object(map) => {
            for (k, v) in map {
                if !members.iter().any(|(m, _)| *m == k) {
                    members.push((k, v));
                }
            }
        }
        Value::Null => {}
        other => members.push(("data".into(), other)),
    }
    let mut line = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&Value::from(k.as_str()).to_string());
        line.push(':');
        line.push_str(&v.to_string());
    }
    line.push_str("}\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let dir = Path::new("/state");
        for bad in ["", "..", ".", "a/b", "../x", "a\\b", "a.b", "é"] {
            assert_eq!(metrics_path(dir, bad, "r1"), None, "{bad:?}");
            assert_eq!(log_path(dir, "p", bad), None, "{bad:?}");
        }
        assert_eq!(
            metrics_path(dir, "users_sync", "20240101_120000_abc123"),
            Some(PathBuf::from(
                "/state/metrics/users_sync/20240101_120000_abc123.json"
            ))
        );
        let tmp = tempfile::tempdir().unwrap();
        let r = RunRecorder::start(tmp.path(), "../escape", "r1");
        r.log("INFO", "x", Value::Null);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn logs_lines_and_writes_metrics() {
        let tmp = tempfile::tempdir().unwrap();
        let r = RunRecorder::start(tmp.path(), "p", "20240101_120000_abc123");
        r.partition_committed(
            0,
            "id_0_100",
            &connectors::WriteStats {
                inserted: 5,
                updated: 2,
                unchanged: 1,
                deleted: 4,
            },
        );
        r.log(
            "warn",
            "custom",
            serde_json::json!({"level": "spoofed", "rows": 3}),
        );
        let summary = RunSummary {
            pipeline: "p".into(),
            strategy: "full".into(),
            run_id: "20240101_120000_abc123".into(),
            status: RunStatus::Completed,
            rows_read: 8,
            rows_inserted: 5,
            rows_updated: 2,
            rows_unchanged: 1,
            partitions_total: 1,
            partitions_done: 1,
            ..RunSummary::default()
        };
        r.finish(&summary, None);
        drop(r);

        let log = tmp.path().join("logs/p/20240101_120000_abc123.log");
        let l = lines(&log);
        assert_eq!(l.len(), 4, "{l:?}");
        for line in &l {
            assert_eq!(line["run_id"], "20240101_120000_abc123");
            let ts = line["timestamp"].as_str().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
            assert!(ts.ends_with('Z'));
        }
        assert_eq!(l[1]["partition"], "id_0_100");
        assert_eq!(l[1]["rows"], 8);
        assert_eq!(l[1]["deleted"], 4);
        assert_eq!(l[2]["level"], "WARN");
        assert_eq!(l[2]["rows"], 3);
        assert_eq!(l[3]["status"], "completed");
        // The fixed members come first, in the spec's order.
        let raw = std::fs::read_to_string(&log).unwrap();
        assert!(raw.starts_with("{\"timestamp\":"), "{raw}");

        let m: Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join("metrics/p/20240101_120000_abc123.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(m["status"], "completed");
        assert_eq!(m["rows_processed"], 8);
        assert_eq!(m["errors"], 0);
        assert_eq!(m["error"], Value::Null);
        assert_eq!(m["attempt"], 1);

        // A resumed attempt appends to the log and counts in the metrics.
        let r = RunRecorder::start(tmp.path(), "p", "20240101_120000_abc123");
        r.finish(&summary, Some(&EngineError::Cancelled("SIGTERM".into())));
        drop(r);
        assert_eq!(lines(&log).len(), 6);
        let m: Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join("metrics/p/20240101_120000_abc123.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(m["attempt"], 2);
        assert_eq!(m["errors"], 1);
        assert!(m["error"].as_str().unwrap().starts_with("cancelled"));

        let mut runs = recorded_runs(tmp.path());
        runs.sort();
        runs.dedup();
        assert_eq!(
            runs,
            [("p".to_string(), "20240101_120000_abc123".to_string())]
        );
        let removed = remove_run_files(tmp.path(), "p", "20240101_120000_abc123");
        assert_eq!(removed.removed.len(), 2);
        assert!(!tmp.path().join("logs/p").exists());
        assert!(!tmp.path().join("metrics/p").exists());
    }

    /// A failed run's error goes into the log and the metrics file; a URL's
    /// password in it must not.
    #[test]
    fn a_password_in_the_error_is_masked_in_log_and_metrics() {
        let tmp = tempfile::tempdir().unwrap();
        let r = RunRecorder::start(tmp.path(), "p", "r1");
        let e = EngineError::Connector(connectors::ConnectorError::postgres(
            "relation \"postgresql://u:hunter2@h/db.items\" does not exist",
        ));
        r.finish(&RunSummary::default(), Some(&e));
        drop(r);
        let log = std::fs::read_to_string(tmp.path().join("logs/p/r1.log")).unwrap();
        let metrics = std::fs::read_to_string(tmp.path().join("metrics/p/r1.json")).unwrap();
        for text in [&log, &metrics] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        let m: Value = serde_json::from_str(&metrics).unwrap();
        assert_eq!(
            m["error"],
            "PostgreSQL error: relation \"postgresql://u:***@h/db.items\" does not exist"
        );
    }

    #[test]
    fn a_run_dropped_unfinished_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let r = RunRecorder::start(tmp.path(), "p", "r1");
        let hook = r.clone();
        drop(r);
        hook.log("INFO", "still going", Value::Null);
        drop(hook);
        let l = lines(&tmp.path().join("logs/p/r1.log"));
        assert_eq!(l.len(), 3);
        assert_eq!(l[2]["level"], "ERROR");
        assert!(!tmp.path().join("metrics/p/r1.json").exists());
    }
}
