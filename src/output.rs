//! How the CLI shows things: progress, summaries, resolved configs, logs.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::state::{CleanupReport, ResetReport, RunInfo, StrategyState};
use engine::{EngineError, RunOptions, RunStatus, RunSummary};
use operators::RunProgress;
use planner::Pipeline;
use serde_json::json;

/// Logs go to stderr: structured JSON when stdout carries JSON, plain lines
/// otherwise; quieter on a terminal where the progress bar speaks.
pub fn init_logging(json: bool) {
    let default = if json || std::io::stderr().is_terminal() {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SYNCHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // https://no-color.org: any non-empty NO_COLOR turns colours off.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BarAwareStderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The progress bar on screen, if any: log lines are written with it
/// cleared and drawn again after, instead of through it.
static ACTIVE_BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Standard error, written around the progress bar.
struct BarAwareStderr;

impl std::io::Write for BarAwareStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE_BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A terminal progress bar fed from the run's live counters.
pub struct ProgressBar {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ProgressBar {
    pub fn start(progress: Arc<RunProgress>) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(mut active) = ACTIVE_BAR.lock() {
            *active = Some(bar.clone());
        }
        let task = tokio::spawn(async move {
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} partitions  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let started = std::time::Instant::now();
            loop {
                let g = |c: &std::sync::atomic::AtomicU64| RunProgress::get(c);
                let total = g(&progress.partitions_total);
                let skipped = g(&progress.partitions_skipped);
                bar.set_length(total);
                bar.set_position(g(&progress.partitions_done) + skipped);
                let rows = g(&progress.rows_read);
                let rate = rows as f64 / started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!("{rows} rows read, {:.0} rows/s", rate));
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            bar.finish_and_clear();
        });
        ProgressBar { stop, task }
    }

    pub fn finish(self) {
        if let Ok(mut active) = ACTIVE_BAR.lock() {
            *active = None;
        }
        let _ = self.stop.send(());
        // The bar task ends right after the signal; no need to wait on it.
        drop(self.task);
    }
}

pub fn summary_text(s: &RunSummary) -> String {
    let rate = s.rows_read as f64 / s.duration_seconds.max(0.001);
    let operators: String = s
        .operators
        .iter()
        .map(|o| {
            format!(
                "  {:<17} rows in {:>10}  out {:>10}  busy {:>7.2}s  waiting for input {:>7.2}s  for room in output {:>7.2}s\n",
                o.operator,
                o.rows_in,
                o.rows_out,
                o.busy_seconds,
                o.waiting_on_input_seconds,
                o.blocked_on_output_seconds
            )
        })
        .collect();
    operators
        + &format!(
        "{} [{}] {}: {} rows read ({:.0} rows/s), {} inserted, {} updated, {} deleted, {} unchanged; \
         {}partitions {}/{} done{}, {} skipped (already committed); {:.2}s, run {}\n",
        s.pipeline,
        s.strategy,
        s.status,
        s.rows_read,
        rate,
        s.rows_inserted,
        s.rows_updated,
        s.rows_deleted,
        s.rows_unchanged,
        match (s.groups_recomputed, s.groups_deleted) {
            (Some(r), Some(d)) => format!("groups {r} re-computed, {d} deleted; "),
            _ => String::new(),
        },
        s.partitions_done,
        s.partitions_total,
        if s.lanes > 1 {
            format!(" ({} at a time)", s.lanes)
        } else {
            String::new()
        },
        s.partitions_skipped,
        s.duration_seconds,
        s.run_id
    )
}

pub fn summary_json(s: &RunSummary, error: Option<&EngineError>) -> serde_json::Value {
    let mut v = json!({
        "pipeline": s.pipeline,
        "strategy": s.strategy,
        "status": s.status,
        "rows_read": s.rows_read,
        "rows_inserted": s.rows_inserted,
        "rows_updated": s.rows_updated,
        "rows_deleted": s.rows_deleted,
        "rows_unchanged": s.rows_unchanged,
        "partitions_total": s.partitions_total,
        "partitions_done": s.partitions_done,
        "partitions_skipped": s.partitions_skipped,
        "lanes": s.lanes,
        "duration_seconds": s.duration_seconds,
        "setup_seconds": s.setup_seconds,
        "wrapup_seconds": s.wrapup_seconds,
        "run_id": s.run_id,
        "dag": s.dag,
        "operators": s.operators,
    });
    if let (Some(recomputed), Some(deleted)) = (s.groups_recomputed, s.groups_deleted) {
        v["groups_recomputed"] = json!(recomputed);
        v["groups_deleted"] = json!(deleted);
    }
    if let Some(e) = error {
        v["error"] = json!(e.message());
    }
    v
}

/// The JSON object for a run that failed before it started.
pub fn error_json(opts: &RunOptions, e: &EngineError) -> serde_json::Value {
    json!({
        "pipeline": opts.pipeline_file.display().to_string(),
        "strategy": opts.strategy,
        // Refused before it started: "invalid" is no run's status.
        "status": if e.is_invalid_input() { json!("invalid") } else { json!(RunStatus::Failed) },
        "error": e.message(),
    })
}

/// The pipeline as the planner understood it, datastores resolved, secrets
/// masked by their type.
pub fn show_pipeline(p: &Pipeline) -> String {
    let value = pipeline_json(p);
    // YAML reads best for people; the same serializers mask every Secret.
    serde_norway::to_string(&value).unwrap_or_else(|_| value.to_string())
}

/// `synchub plan --output json`: the DAG as `plan` prints it, and the
/// partitions a run would do.
pub fn plan_json(
    plan: &planner::Plan,
    parts: &engine::partitions::RunPartitions,
) -> serde_json::Value {
    let partitions = &parts.partitions;
    json!({
        "pipeline": plan.pipeline,
        "strategy": plan.strategy,
        "kind": plan.kind,
        "dag": plan.operators.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
        "lanes": plan.lanes,
        "partitions_total": partitions.len(),
        // Ranges of the span: more than the partitions when only those
        // holding rows are planned.
        "ranges_total": u64::try_from(parts.ranges_total).unwrap_or(u64::MAX),
        // Ranges holding rows: more than the partitions when neighbours
        // holding few rows were merged.
        "ranges_holding_rows": u64::try_from(parts.ranges_holding_rows).unwrap_or(u64::MAX),
        "partitions": partitions.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
    })
}

/// The pipeline as `config show` prints it, as JSON.
pub fn pipeline_json(p: &Pipeline) -> serde_json::Value {
    json!({
        "name": p.name,
        "description": p.description,
        "enabled": p.enabled,
        "source": p.source,
        "destination": p.destination,
        "columns": p.columns,
        "strategies": p.strategies,
        "max_concurrent_partitions": p.max_concurrent_partitions,
        "batch_rows": p.batch_rows,
    })
}

/// What `synchub state show` reports on.
pub struct StateView<'a> {
    pub pipeline: &'a str,
    pub strategy: Option<&'a str>,
    pub state_dir: &'a Path,
    pub strategies: &'a [StrategyState],
    /// Every pipeline the store knows, for a hint when `pipeline` is not one.
    pub known_pipelines: &'a [String],
}

fn store_path(state_dir: &Path) -> String {
    engine::state::json::store_path(state_dir)
}

/// `synchub state show --output json`: one object, a member per strategy.
pub fn state_show_json(v: &StateView) -> serde_json::Value {
    engine::state::json::pipeline_state_json(v.pipeline, v.state_dir, v.strategies)
}

fn partitions_text(r: &RunInfo) -> String {
    match r.partitions_total {
        Some(total) => format!("{}/{}", r.partitions_done, total),
        None => format!("{}/?", r.partitions_done),
    }
}

/// `synchub state show`: a block per strategy.
pub fn state_show_text(v: &StateView) -> String {
    let which = match v.strategy {
        Some(s) => format!("{} [{s}]", v.pipeline),
        None => v.pipeline.to_string(),
    };
    if v.strategies.is_empty() {
        let mut out = format!(
            "{which}: no state recorded in {}\n",
            store_path(v.state_dir)
        );
        let others: Vec<&str> = v
            .known_pipelines
            .iter()
            .map(String::as_str)
            .filter(|p| *p != v.pipeline)
            .collect();
        if !others.is_empty() && !v.known_pipelines.iter().any(|p| p == v.pipeline) {
            out += &format!("pipelines with state there: {}\n", others.join(", "));
        }
        return out;
    }
    let mut out = format!("{} (state store {})\n", v.pipeline, store_path(v.state_dir));
    for s in v.strategies {
        out += &format!("  strategy {}\n", s.strategy);
        match &s.last_run {
            Some(r) => {
                if r.run.status == RunStatus::Running {
                    out += &format!(
                        "    last run    {} (running, or its process stopped: the next run resumes it)\n",
                        r.run.run_id
                    );
                } else {
                    out += &format!("    last run    {} ({})\n", r.run.run_id, r.run.status);
                }
                out += &format!("    started     {}\n", r.run.started_at);
                if let Some(f) = &r.run.finished_at {
                    match r.duration_seconds {
                        Some(d) => out += &format!("    finished    {f} ({d:.2}s)\n"),
                        None => out += &format!("    finished    {f}\n"),
                    }
                }
                out += &format!(
                    "    rows        {} committed ({} inserted, {} updated, {} unchanged), {} deleted\n",
                    r.rows, r.rows_inserted, r.rows_updated, r.rows_unchanged, r.rows_deleted
                );
                out += &format!("    progress    {} partitions\n", partitions_text(r));
                if let Some(e) = &r.run.error {
                    out += &format!("    error       {e}\n");
                }
            }
            None => out += "    last run    none\n",
        }
        match &s.watermark {
            Some(w) => {
                out += &format!(
                    "    watermark   {} ({} {}, updated {})\n",
                    w.display, w.kind, w.value, w.updated_at
                )
            }
            None => out += "    watermark   none\n",
        }
        out += &format!("    runs        {} recorded\n", s.runs);
    }
    out
}

/// `synchub history --output json`.
pub fn history_json(pipeline: &str, runs: &[RunInfo]) -> serde_json::Value {
    engine::state::json::history_json(pipeline, runs)
}

/// `synchub history`: a table, newest run first.
pub fn history_text(pipeline: &str, strategy: Option<&str>, runs: &[RunInfo]) -> String {
    if runs.is_empty() {
        return match strategy {
            Some(s) => format!("no runs of {pipeline} [{s}] recorded\n"),
            None => format!("no runs of {pipeline} recorded\n"),
        };
    }
    let header = [
        "RUN ID",
        "STRATEGY",
        "STATUS",
        "STARTED",
        "FINISHED",
        "ROWS",
        "PARTITIONS",
        "ERROR",
    ];
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|r| {
            [
                r.run.run_id.clone(),
                r.run.strategy.clone(),
                r.run.status.to_string(),
                r.run.started_at.clone(),
                r.run.finished_at.clone().unwrap_or_else(|| "-".into()),
                r.rows.to_string(),
                partitions_text(r),
                r.run.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s += c;
            } else if i == 5 || i == 6 {
                // Counts right-aligned.
                s += &format!("{:>w$}  ", c, w = widths[i]);
            } else {
                s += &format!("{:<w$}  ", c, w = widths[i]);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in &rows {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}

/// `synchub state reset --output json`.
pub fn reset_json(r: &ResetReport) -> serde_json::Value {
    json!({
        "pipeline": r.pipeline,
        "strategy": r.strategy,
        "runs_removed": r.runs.iter().map(|x| json!({
            "run_id": x.run_id,
            "strategy": x.strategy,
            "status": x.status,
        })).collect::<Vec<_>>(),
        "partitions_removed": r.partitions,
        "watermarks_removed": r.watermarks,
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `synchub state reset`: what was removed.
pub fn reset_text(r: &ResetReport, state_dir: &Path) -> String {
    let which = match &r.strategy {
        Some(s) => format!("{} [{s}]", r.pipeline),
        None => r.pipeline.clone(),
    };
    if r.is_empty() {
        return format!(
            "{which}: nothing to reset (no runs or watermark in {})\n",
            store_path(state_dir)
        );
    }
    let mut out = format!(
        "reset {which}: removed {}, {} and {}\n",
        plural(r.runs.len(), "run", "runs"),
        plural(
            r.partitions as usize,
            "committed partition",
            "committed partitions"
        ),
        plural(r.watermarks.len(), "watermark", "watermarks"),
    );
    for run in &r.runs {
        out += &format!(
            "  run {} ({}, {}, started {})\n",
            run.run_id, run.strategy, run.status, run.started_at
        );
    }
    for w in &r.watermarks {
        out += &format!("  watermark of {w}\n");
    }
    out += "The next run starts a new run id and syncs every partition again.\n";
    if let Some(running) = r.runs.iter().find(|x| x.status == RunStatus::Running) {
        out += &format!(
            "note: run {} was marked running; if its process is still going, stop it: what it commits now is not recorded\n",
            running.run_id
        );
    }
    if !r.runs.is_empty() {
        out += &format!(
            "Their metrics and logs stay under {} until `synchub state cleanup`.\n",
            state_dir.display()
        );
    }
    out
}

/// `synchub state cleanup --output json`.
pub fn cleanup_json(r: &CleanupReport) -> serde_json::Value {
    json!({
        "days": r.days,
        "cutoff": r.cutoff,
        "runs_removed": r.runs.iter().map(|x| json!({
            "pipeline": x.pipeline,
            "strategy": x.strategy,
            "run_id": x.run_id,
            "status": x.status,
            "finished_at": x.finished_at,
        })).collect::<Vec<_>>(),
        "partitions_removed": r.partitions,
        "files_removed": r.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "warnings": r.warnings,
    })
}

/// `synchub state cleanup`: what was removed.
pub fn cleanup_text(r: &CleanupReport) -> String {
    let mut out = format!(
        "removed {} that finished before {} ({} days), {} and {}; kept the latest run of each pipeline and strategy, and runs still running\n",
        plural(r.runs.len(), "run", "runs"),
        r.cutoff,
        r.days,
        plural(
            r.partitions as usize,
            "committed partition",
            "committed partitions"
        ),
        plural(r.files.len(), "metrics/log file", "metrics/log files"),
    );
    for x in &r.runs {
        out += &format!(
            "  {} [{}] run {} ({})\n",
            x.pipeline, x.strategy, x.run_id, x.status
        );
    }
    out
}
