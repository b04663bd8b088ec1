//! `synchub state …` and `synchub history`: what the state store holds, shown or reset.

use std::process::ExitCode;

use engine::{EngineError, SqliteStateStore, StateReports};
use planner::config::PipelineFile;

use crate::{fail, output, HistoryArgs, OutputFormat, StateCommand};

/// `synchub history` (and `scheduler history`).
pub(crate) async fn history(args: HistoryArgs) -> ExitCode {
    let HistoryArgs {
        pipeline,
        limit,
        strategy,
        state_dir,
        output,
    } = args;
    let json = output == OutputFormat::Json;
    let (pipeline, store) = match state_for(&pipeline, &state_dir, json).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let runs = match store {
        None => Vec::new(),
        Some(store) => match store.history(&pipeline, strategy.as_deref(), limit).await {
            Ok(runs) => runs,
            Err(e) => return fail(&e),
        },
    };
    if json {
        println!("{}", output::history_json(&pipeline, &runs));
    } else {
        print!(
            "{}",
            output::history_text(&pipeline, strategy.as_deref(), &runs)
        );
    }
    ExitCode::SUCCESS
}

/// The pipeline a state command is about: a name as given, or the `name:`
/// of a pipeline file. Exits 2 for anything else.
fn pipeline_name(arg: &str) -> Result<String, ExitCode> {
    if engine::records::is_safe_name(arg) {
        return Ok(arg.to_string());
    }
    let path = std::path::Path::new(arg);
    if path.is_file() {
        return match PipelineFile::read(path) {
            Ok(p) => Ok(p.name),
            Err(e) => Err(fail(&EngineError::Planner(e))),
        };
    }
    eprintln!(
        "error: \"{arg}\" is neither a pipeline name (letters, digits, '_' and '-') nor a pipeline file"
    );
    Err(ExitCode::from(2))
}

/// Logging, the pipeline's name from its argument, and the state store if
/// there is one (state commands never create it).
async fn state_for(
    pipeline: &str,
    state_dir: &std::path::Path,
    json: bool,
) -> Result<(String, Option<SqliteStateStore>), ExitCode> {
    output::init_logging(json);
    let name = pipeline_name(pipeline)?;
    let store = SqliteStateStore::open_existing(state_dir)
        .await
        .map_err(|e| fail(&e))?;
    Ok((name, store))
}

pub(crate) async fn state(command: StateCommand) -> ExitCode {
    match command {
        StateCommand::Show {
            pipeline,
            strategy,
            state_dir,
            output,
        } => {
            let json = output == OutputFormat::Json;
            let (pipeline, store) = match state_for(&pipeline, &state_dir, json).await {
                Ok(found) => found,
                Err(code) => return code,
            };
            let (strategies, known) = match &store {
                None => (Vec::new(), Vec::new()),
                Some(store) => match async {
                    let strategies = store.pipeline_state(&pipeline, strategy.as_deref()).await?;
                    Ok::<_, EngineError>((strategies, store.pipelines().await?))
                }
                .await
                {
                    Ok(r) => r,
                    Err(e) => return fail(&e),
                },
            };
            let view = output::StateView {
                pipeline: &pipeline,
                strategy: strategy.as_deref(),
                state_dir: &state_dir,
                strategies: &strategies,
                known_pipelines: &known,
            };
            if json {
                println!("{}", output::state_show_json(&view));
            } else {
                print!("{}", output::state_show_text(&view));
            }
            ExitCode::SUCCESS
        }
        StateCommand::Reset {
            pipeline,
            strategy,
            state_dir,
            output,
        } => {
            let json = output == OutputFormat::Json;
            let (pipeline, store) = match state_for(&pipeline, &state_dir, json).await {
                Ok(found) => found,
                Err(code) => return code,
            };
            // Held while resetting: a running run would fail after
            // committing data, and a starting one must not resume what is
            // being forgotten.
            let _lock = match engine::lock::hold_unless_running(&state_dir, &pipeline).await {
                Ok(lock) => lock,
                Err(e) => {
                    eprintln!("error: {e}; try again once it has finished");
                    return ExitCode::from(1);
                }
            };
            let report = match store {
                None => engine::state::ResetReport {
                    pipeline: pipeline.clone(),
                    strategy: strategy.clone(),
                    ..Default::default()
                },
                Some(store) => match store.reset(&pipeline, strategy.as_deref()).await {
                    Ok(r) => r,
                    Err(e) => return fail(&e),
                },
            };
            if json {
                println!("{}", output::reset_json(&report));
            } else {
                print!("{}", output::reset_text(&report, &state_dir));
            }
            ExitCode::SUCCESS
        }
        StateCommand::Cleanup {
            days,
            state_dir,
            output,
        } => {
            let json = output == OutputFormat::Json;
            output::init_logging(json);
            match engine::state::cleanup(&state_dir, days).await {
                Ok(report) => {
                    for w in &report.warnings {
                        eprintln!("warning: cannot remove {w}");
                    }
                    if json {
                        println!("{}", output::cleanup_json(&report));
                    } else {
                        print!("{}", output::cleanup_text(&report));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
    }
}
