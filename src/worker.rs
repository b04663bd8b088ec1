//! `synchub worker`: the worker's side of a run planned elsewhere (hidden
//! until distributed runs ship). `run-task` executes one partition task
//! and prints what became of it as JSON.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use engine::PartitionTask;

use crate::{cancel_on_signals, fail};

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
    cancel_on_signals(&cancel);
    let outcome =
        match engine::worker::run_task(task, &connectors::registry::types(), &cancel).await {
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
