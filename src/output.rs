//! How the CLI shows things: progress, summaries, resolved configs, logs.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use engine::{EngineError, RunOptions, RunSummary};
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A terminal progress bar fed from the run's live counters.
pub struct ProgressBar {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ProgressBar {
    pub fn start(progress: Arc<RunProgress>) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let bar = indicatif::ProgressBar::new(0);
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
         partitions {}/{} done, {} skipped (already committed); {:.2}s, run {}\n",
        s.pipeline,
        s.strategy,
        s.status,
        s.rows_read,
        rate,
        s.rows_inserted,
        s.rows_updated,
        s.rows_deleted,
        s.rows_unchanged,
        s.partitions_done,
        s.partitions_total,
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
        "duration_seconds": s.duration_seconds,
        "run_id": s.run_id,
        "operators": s.operators,
    });
    if let Some(e) = error {
        v["error"] = json!(e.to_string());
    }
    v
}

/// The JSON object for a run that failed before it started.
pub fn error_json(opts: &RunOptions, e: &EngineError) -> serde_json::Value {
    json!({
        "pipeline": opts.pipeline_file.display().to_string(),
        "strategy": opts.strategy,
        "status": if e.is_invalid_input() { "invalid" } else { "failed" },
        "error": e.to_string(),
    })
}

/// The pipeline as the planner understood it, datastores resolved, secrets
/// masked by their type.
pub fn show_pipeline(p: &Pipeline) -> String {
    let value = json!({
        "name": p.name,
        "description": p.description,
        "enabled": p.enabled,
        "source": p.source,
        "destination": p.destination,
        "columns": p.columns,
        "strategies": p.strategies,
        "max_concurrent_partitions": p.max_concurrent_partitions,
        "batch_rows": p.batch_rows,
    });
    // YAML reads best for people; the same serializers mask every Secret.
    serde_norway::to_string(&value).unwrap_or_else(|_| value.to_string())
}
