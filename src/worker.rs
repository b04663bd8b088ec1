//! `synchub worker`: the worker's side of a run planned elsewhere. `start`
//! executes tasks from the Redis queue until stopped; `run-task` executes
//! one partition task and prints what became of it as JSON. And `synchub
//! queue`: what the Redis queue holds.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use engine::PartitionTask;

use crate::{cancel_on_signals, fail, OutputFormat, QueueCommand};

/// Reads a task from `file` (`-`: standard input) and executes it here,
/// datastores resolved from this process's environment. Exit 0 once it is
/// committed, 1 when it fails, 2 for a task that cannot be read or
/// resolved, 130/143 when cancelled.
pub async fn run_task(file: &Path) -> ExitCode {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map(|_| text)
            .map_err(|e| format!("cannot read the task from standard input: {e}"))
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read task file {}: {e}", file.display()))
    };
    let text = match text {
        Ok(text) => text,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    };
    let task = match PartitionTask::from_json(&text) {
        Ok(task) => task,
        Err(e) => {
            eprintln!("error: {}: {}", file.display(), e.message());
            return ExitCode::from(2);
        }
    };
    let cancel = engine::Cancel::default();
    cancel_on_signals(&cancel, "cancelling the task");
    let outcome = match engine::worker::run_task(
        task,
        &connectors::registry::types(),
        &cancel,
        false,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(e) => return fail(&e),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&outcome).unwrap_or_default()
    );
    match outcome.status {
        "committed" => ExitCode::SUCCESS,
        "cancelled" => {
            eprintln!("error: {}", outcome.error.as_deref().unwrap_or("cancelled"));
            ExitCode::from(match cancel.reason().as_deref() {
                Some("SIGTERM") => 143,
                _ => 130,
            })
        }
        _ => {
            eprintln!(
                "error: partition {} of run {} failed: {}",
                outcome.partition,
                outcome.run_id,
                outcome.error.as_deref().unwrap_or("unknown error")
            );
            ExitCode::from(1)
        }
    }
}

/// `synchub run --emit-tasks DIR`: plans and starts the run, writes its
/// tasks, and prints where (JSON).
pub async fn emit_tasks(opts: &engine::RunOptions, dir: &Path) -> ExitCode {
    match engine::emit_tasks(opts, dir).await {
        Ok(emitted) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&emitted).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `synchub worker start`'s settings.
pub struct StartOptions {
    pub max_jobs: usize,
    pub reclaim_after: f64,
    pub name: Option<String>,
    pub retries: u32,
    pub retry_backoff: f64,
}

/// Seconds given on the command line, above 0.
pub fn seconds(flag: &str, value: f64) -> Result<std::time::Duration, ExitCode> {
    if value.is_finite() && value > 0.0 {
        Ok(std::time::Duration::from_secs_f64(value))
    } else {
        eprintln!("error: {flag} must be a number of seconds above 0");
        Err(ExitCode::from(2))
    }
}

/// `synchub worker start`: runs until SIGTERM or SIGINT, then lets the
/// tasks it holds finish. Exit 0 once drained.
pub async fn start(queue: engine::cluster::RedisQueue, start: StartOptions) -> ExitCode {
    let (reclaim_after, retry_backoff) = match (
        seconds("--reclaim-after", start.reclaim_after),
        seconds("--retry-backoff", start.retry_backoff),
    ) {
        (Ok(r), Ok(b)) => (r, b),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    if start.max_jobs == 0 {
        eprintln!("error: --max-jobs must be at least 1");
        return ExitCode::from(2);
    }
    let max_jobs = start.max_jobs;
    let opts = engine::cluster::WorkerOptions {
        name: start
            .name
            .unwrap_or_else(engine::cluster::WorkerOptions::default_name),
        max_jobs,
        reclaim_after,
        retries: engine::cluster::worker::Retries {
            count: start.retries,
            base: retry_backoff,
        },
    };
    tracing::info!(worker = %opts.name, queue = queue.name(), max_jobs, "worker started");
    let drain = engine::Cancel::default();
    cancel_on_signals(&drain, "finishing the tasks held, taking no more");
    let events: engine::cluster::worker::EventSink = std::sync::Arc::new(|event| {
        println!("{}", serde_json::to_string(event).unwrap_or_default());
    });
    let finished = engine::cluster::serve(
        queue,
        opts,
        std::sync::Arc::new(connectors::registry::types()),
        drain,
        events,
    )
    .await;
    tracing::info!(tasks = finished, "worker stopped");
    ExitCode::SUCCESS
}

/// `synchub queue status|clear`.
pub async fn queue(command: QueueCommand) -> ExitCode {
    match command {
        QueueCommand::Status { redis, output } => {
            let status = match redis.connect().await {
                Ok(queue) => queue.status().await,
                Err(e) => Err(e),
            };
            match status {
                Ok(s) if output == OutputFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(s) => {
                    println!(
                        "queue {}: {} tasks ({} waiting, {} held by workers), {} runs coordinated",
                        s.queue, s.tasks, s.waiting, s.in_flight, s.runs
                    );
                    for w in &s.workers {
                        println!(
                            "  worker {}: holds {}, idle {:.1}s",
                            w.name,
                            w.holding,
                            w.idle_ms as f64 / 1000.0
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        QueueCommand::Clear { redis, yes } => {
            if !yes {
                use std::io::{BufRead, IsTerminal, Write};
                if !std::io::stdin().is_terminal() {
                    eprintln!(
                        "error: queue clear removes every task of queue {}; confirm with --yes",
                        redis.queue_name
                    );
                    return ExitCode::from(2);
                }
                eprint!("Remove every task of queue {}? [y/N] ", redis.queue_name);
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                let _ = std::io::stdin().lock().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("nothing removed");
                    return ExitCode::from(1);
                }
            }
            match redis.connect().await {
                Ok(queue) => match queue.clear().await {
                    Ok(n) => {
                        println!("queue {}: {n} tasks removed", queue.name());
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e),
                },
                Err(e) => fail(&e),
            }
        }
    }
}

/// `synchub worker health`.
pub async fn health(redis: &crate::RedisArgs, stale_after: f64, json: bool) -> ExitCode {
    let stale_after = match seconds("--stale-after", stale_after) {
        Ok(d) => d.as_millis() as u64,
        Err(code) => return code,
    };
    let status = match redis.connect().await {
        Ok(queue) => queue.status().await,
        Err(e) => Err(e),
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let workers: Vec<serde_json::Value> = status
        .workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "name": w.name,
                "healthy": w.idle_ms < stale_after,
                "idle_seconds": w.idle_ms as f64 / 1000.0,
                "holding": w.holding,
            })
        })
        .collect();
    let healthy = workers.iter().filter(|w| w["healthy"] == true).count();
    if json {
        println!(
            "{}",
            serde_json::json!({"queue": status.queue, "healthy": healthy, "workers": workers})
        );
    } else {
        for w in &workers {
            println!(
                "{}\t{}\tlast heard {:.1}s ago\tholds {}",
                w["name"].as_str().unwrap_or_default(),
                if w["healthy"] == true {
                    "healthy"
                } else {
                    "silent"
                },
                w["idle_seconds"].as_f64().unwrap_or_default(),
                w["holding"]
            );
        }
        println!(
            "{healthy} of {} workers healthy on queue {}",
            workers.len(),
            status.queue
        );
    }
    if healthy > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
