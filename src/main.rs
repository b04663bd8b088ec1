//! `synchub`: the command line. Parses arguments, calls the library crates,
//! prints results. Exit codes: 0 success, 1 failed run (or the pipeline is
//! already running), 2 invalid input, 130 cancelled by SIGINT (Ctrl-C), 143
//! cancelled by SIGTERM.

mod config_commands;
mod http_api;
mod output;
mod scheduler;
mod state_commands;
mod worker;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use engine::{EngineError, RunOptions};
use operators::RunProgress;

use config_commands::config;
use state_commands::{history, state};

#[derive(Parser)]
#[command(
    name = "synchub",
    version,
    about = "Keep a destination table in step with a source: full, delta and hash syncs, partitioned and resumable."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one pipeline once.
    Run {
        /// The pipeline YAML file.
        pipeline: PathBuf,
        /// Strategy name from the pipeline (default: its first enabled one).
        #[arg(long)]
        strategy: Option<String>,
        /// datastores.yaml (default: beside the pipeline, else its parent folder).
        #[arg(long)]
        datastores: Option<PathBuf>,
        /// Where run state, checkpoints and history live.
        #[arg(long, default_value = "./data")]
        state_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// When the pipeline is already running, wait for it (at most
        /// SECONDS when given) instead of exiting 1 at once.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<Option<u64>>,
        /// Run a pipeline or strategy that its config disables.
        #[arg(long)]
        force: bool,
        /// Plan and start the run, but write each partition still to do as
        /// a task file in DIR for workers (`synchub worker run-task`)
        /// instead of running it; a later `synchub run` finishes the run.
        #[arg(long, value_name = "DIR", hide = true)]
        emit_tasks: Option<PathBuf>,
        /// Where the partitions run: in this process (`local`), or as tasks
        /// on a Redis queue that `synchub worker start` processes execute
        /// (`redis`); this process plans the run, records it and waits.
        #[arg(long, value_enum, default_value_t = QueueKind::Local)]
        queue: QueueKind,
        #[command(flatten)]
        redis: RedisArgs,
    },
    /// Execute partition tasks of runs planned elsewhere.
    Worker {
        #[command(subcommand)]
        command: WorkerCommand,
    },
    /// Run the pipelines' cron schedules, with their runs' partitions
    /// executed by the workers.
    Scheduler {
        #[command(subcommand)]
        command: SchedulerCommand,
    },
    /// The HTTP API alone (`scheduler start --http-port` serves it too).
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
    /// Look at or empty the Redis work queue (`redis` is the spec's name).
    #[command(alias = "redis")]
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Show the operator DAG and the partitions a run would do.
    Plan {
        pipeline: PathBuf,
        #[arg(long)]
        strategy: Option<String>,
        #[arg(long)]
        datastores: Option<PathBuf>,
        /// Where run state lives: a delta plans from its stored watermark.
        #[arg(long, default_value = "./data")]
        state_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Check, show and list pipeline configs.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create a SQLite shop data set, sync it with the demo pipelines and
    /// verify source and destination match. Needs no server.
    Demo {
        /// Orders to generate (users are a tenth of that).
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Folder for the demo's databases, pipelines and state.
        #[arg(long, default_value = "./data/demo")]
        dir: PathBuf,
    },
    /// Show, reset and clean up the run state of pipelines.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// List a pipeline's runs, newest first.
    History(HistoryArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QueueKind {
    Local,
    Redis,
}

/// Where the Redis work queue is.
#[derive(clap::Args, Clone)]
struct RedisArgs {
    /// The Redis server (default: $REDIS_URL, else the global config's
    /// redis.url, else redis://127.0.0.1:6379).
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// The queue's name: the prefix of its keys, so several queues (or
    /// tests) can share one server.
    #[arg(long, default_value = engine::cluster::DEFAULT_QUEUE)]
    queue_name: String,
}

impl RedisArgs {
    /// `--redis-url`, else `$REDIS_URL`, else the global config's
    /// `redis.url`, else the local default.
    fn url(&self, global: Option<&planner::global::GlobalConfig>) -> String {
        self.redis_url
            .clone()
            .or_else(|| std::env::var("REDIS_URL").ok())
            .or_else(|| global.and_then(|g| g.redis_url()))
            .unwrap_or_else(|| engine::cluster::DEFAULT_REDIS_URL.to_string())
    }

    async fn connect(&self) -> Result<engine::cluster::RedisQueue, EngineError> {
        self.connect_with(None).await
    }

    async fn connect_with(
        &self,
        global: Option<&planner::global::GlobalConfig>,
    ) -> Result<engine::cluster::RedisQueue, EngineError> {
        engine::cluster::RedisQueue::connect(&self.url(global), &self.queue_name).await
    }
}

#[derive(Subcommand)]
enum ApiCommand {
    /// Serves run state, history, logs, locks and Prometheus metrics over
    /// HTTP (default port 8001) until SIGTERM or SIGINT.
    Serve(http_api::ServeArgs),
}

#[derive(Subcommand)]
enum SchedulerCommand {
    /// Runs each enabled strategy that has a `cron` when it is due, until
    /// SIGTERM or SIGINT. Only one scheduler of a queue leads; others stand
    /// by to take over. Prints one JSON line per event.
    Start(scheduler::StartArgs),
    /// Which scheduler leads, and the queue's tasks and workers.
    Status {
        #[command(flatten)]
        redis: RedisArgs,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// A pipeline's runs, newest first (as `synchub history`).
    History(HistoryArgs),
    /// The schedules of the pipelines in a folder: cron, slot, next due
    /// time (UTC). Exits 2 when a pipeline cannot be scheduled.
    ListJobs {
        #[arg(long)]
        config_dir: PathBuf,
        /// The global config (default: `global_config.yaml` in the config
        /// folder, when there is one): the slots pipelines may name.
        #[arg(long)]
        global_config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Tasks waiting and in flight, runs being coordinated, and workers.
    #[command(alias = "queue-status")]
    Status {
        #[command(flatten)]
        redis: RedisArgs,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Remove every task of the queue. Runs waiting on them resume when
    /// started again.
    #[command(alias = "clear-queue")]
    Clear {
        #[command(flatten)]
        redis: RedisArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(clap::Args)]
struct HistoryArgs {
    /// The pipeline's name (its `name:`), or its YAML file.
    pipeline: String,
    /// How many runs to list.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Only runs of this strategy.
    #[arg(long)]
    strategy: Option<String>,
    #[arg(long, default_value = "./data")]
    state_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Subcommand)]
enum WorkerCommand {
    /// The workers of the queue and how long since each was last heard
    /// from. Exits 1 when none has been heard from within --stale-after.
    Health {
        #[command(flatten)]
        redis: RedisArgs,
        /// A worker silent this long counts as gone (a live one reads the
        /// queue every second, or heartbeats its tasks).
        #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
        stale_after: f64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Execute tasks from the Redis queue until stopped; SIGTERM or SIGINT
    /// lets the tasks held finish, then exits. Prints one JSON line per
    /// event (task claimed, done, dropped, lost).
    Start {
        #[command(flatten)]
        redis: RedisArgs,
        /// Tasks executed at once (default: the global config's
        /// worker.max_jobs, else 4).
        #[arg(long)]
        max_jobs: Option<usize>,
        /// A global config to read redis.url and worker.max_jobs from.
        #[arg(long)]
        global_config: Option<PathBuf>,
        /// A task whose worker has not heartbeated for this long is taken
        /// over by another worker.
        #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
        reclaim_after: f64,
        /// This worker's name in the queue (default: host-pid).
        #[arg(long)]
        name: Option<String>,
        /// How many times a task whose error may pass (a lost connection, a
        /// deadlock, a server restarting) is run again before it fails its
        /// run; config, schema and value errors fail at once.
        #[arg(long, default_value_t = 3)]
        retries: u32,
        /// The first retry's delay; each next one doubles (at most a
        /// minute), each with a random ±50%.
        #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
        retry_backoff: f64,
    },
    /// Execute one partition task (JSON, as `run --emit-tasks` writes it)
    /// and print its outcome as JSON. Datastores are resolved from this
    /// process's environment; no state directory is used: the task's
    /// checkpoint is committed in the destination.
    RunTask {
        /// The task file, or `-` for standard input.
        task: PathBuf,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Each strategy's last run, its progress, and the delta watermark.
    Show {
        /// The pipeline's name (its `name:`), or its YAML file.
        pipeline: String,
        #[arg(long)]
        strategy: Option<String>,
        #[arg(long, default_value = "./data")]
        state_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Forget a pipeline's (or one strategy's) runs, committed partitions and
    /// watermark: the next run starts fresh and syncs every partition again.
    Reset {
        /// The pipeline's name (its `name:`), or its YAML file.
        pipeline: String,
        #[arg(long)]
        strategy: Option<String>,
        #[arg(long, default_value = "./data")]
        state_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Remove completed and failed runs older than N days with their metrics
    /// and logs; the latest run of each pipeline and strategy is kept.
    Cleanup {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value = "./data")]
        state_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Parse and validate pipeline files; every problem is reported.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        datastores: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Print a pipeline with its datastores resolved (secrets as ***).
    Show {
        file: PathBuf,
        #[arg(long)]
        datastores: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// List the pipelines in a folder.
    List {
        #[arg(long)]
        config_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(cli))
}

/// Prints an error and picks the exit code: 2 for bad input, 1 otherwise.
fn fail(e: &EngineError) -> ExitCode {
    eprintln!("error: {}", e.message());
    ExitCode::from(if e.is_invalid_input() { 2 } else { 1 })
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run {
            pipeline,
            strategy,
            datastores,
            state_dir,
            output,
            wait,
            force,
            emit_tasks,
            queue,
            redis,
        } => {
            let json = output == OutputFormat::Json;
            output::init_logging(json);
            let mut opts = RunOptions {
                pipeline_file: pipeline,
                strategy,
                datastores,
                state_dir,
                wait: match wait {
                    None => engine::Wait::No,
                    Some(None) => engine::Wait::Forever,
                    Some(Some(s)) => engine::Wait::Up(std::time::Duration::from_secs(s)),
                },
                force,
                ..RunOptions::default()
            };
            if let Some(dir) = emit_tasks {
                return worker::emit_tasks(&opts, &dir).await;
            }
            let queue = match queue {
                QueueKind::Local => None,
                QueueKind::Redis => match redis.connect().await {
                    Ok(q) => Some(q),
                    Err(e) => return fail(&e),
                },
            };
            // Coordinators on other hosts share the queue, not the state
            // directory: the pipeline lock is in Redis too. Losing it
            // cancels the run.
            opts.cluster_lock = queue.as_ref().map(|q| {
                engine::lock::RedisLock::new(q, engine::lock::DEFAULT_LOCK_TTL)
                    .on_lost(opts.cancel.clone())
            });
            cancel_on_signals(&opts.cancel, "cancelling the run");
            run_one(&opts, json, queue.as_ref()).await
        }
        Command::Plan {
            pipeline,
            strategy,
            datastores,
            state_dir,
            output,
        } => {
            output::init_logging(output == OutputFormat::Json);
            let opts = RunOptions {
                pipeline_file: pipeline,
                strategy,
                datastores,
                state_dir,
                ..RunOptions::default()
            };
            match engine::plan_pipeline(&opts).await {
                Ok((plan, parts)) => {
                    if output == OutputFormat::Json {
                        println!("{}", output::plan_json(&plan, &parts));
                    } else {
                        print!(
                            "{}",
                            plan.describe(Some((
                                &parts.partitions,
                                parts.ranges_holding_rows,
                                parts.ranges_total
                            )))
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) if output == OutputFormat::Json => {
                    println!("{}", output::error_json(&opts, &e));
                    fail(&e)
                }
                Err(e) => fail(&e),
            }
        }
        Command::Worker {
            command: WorkerCommand::RunTask { task },
        } => {
            output::init_logging(true);
            worker::run_task(&task).await
        }
        Command::Worker {
            command:
                WorkerCommand::Start {
                    redis,
                    max_jobs,
                    global_config,
                    reclaim_after,
                    name,
                    retries,
                    retry_backoff,
                },
        } => {
            output::init_logging(true);
            let global = match global_config
                .map(|f| planner::global::GlobalConfig::load(&f))
                .transpose()
            {
                Ok(g) => g,
                Err(e) => return fail(&EngineError::Planner(e)),
            };
            let max_jobs = max_jobs
                .or_else(|| {
                    global
                        .as_ref()
                        .and_then(|g| g.worker.as_ref()?.max_jobs.map(|n| n as usize))
                })
                .unwrap_or(4);
            let queue = match redis.connect_with(global.as_ref()).await {
                Ok(q) => q,
                Err(e) => return fail(&e),
            };
            worker::start(
                queue,
                worker::StartOptions {
                    max_jobs,
                    reclaim_after,
                    name,
                    retries,
                    retry_backoff,
                },
            )
            .await
        }
        Command::Scheduler {
            command: SchedulerCommand::History(args),
        } => history(args).await,
        Command::Api {
            command: ApiCommand::Serve(args),
        } => {
            output::init_logging(true);
            http_api::serve(args).await
        }
        Command::Scheduler {
            command: SchedulerCommand::Status { redis, output },
        } => {
            output::init_logging(false);
            scheduler::status(&redis, output == OutputFormat::Json).await
        }
        Command::Scheduler {
            command: SchedulerCommand::Start(args),
        } => {
            output::init_logging(true);
            scheduler::start(args).await
        }
        Command::Scheduler {
            command:
                SchedulerCommand::ListJobs {
                    config_dir,
                    global_config,
                    output,
                },
        } => scheduler::list_jobs(
            &config_dir,
            global_config.as_deref(),
            output == OutputFormat::Json,
        ),
        Command::Worker {
            command:
                WorkerCommand::Health {
                    redis,
                    stale_after,
                    output,
                },
        } => {
            output::init_logging(false);
            worker::health(&redis, stale_after, output == OutputFormat::Json).await
        }
        Command::Queue { command } => {
            output::init_logging(false);
            worker::queue(command).await
        }
        Command::Config { command } => config(command).await,
        Command::Demo { rows, dir } => {
            output::init_logging(true);
            demo(rows, &dir).await
        }
        Command::State { command } => state(command).await,
        Command::History(args) => history(args).await,
    }
}

/// SIGINT (Ctrl-C) and SIGTERM cancel the run: its open partitions roll
/// back, it is recorded as cancelled, and its summary is printed. A second
/// signal while it winds down is ignored; SIGKILL is always there.
fn cancel_on_signals(cancel: &engine::Cancel, what: &'static str) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        for (kind, name) in [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
        ] {
            let Ok(mut stream) = signal(kind) else {
                continue;
            };
            let cancel = cancel.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tracing::warn!("{name} received: {what}");
                    cancel.cancel(name);
                }
            });
        }
    }
    #[cfg(not(unix))]
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel("SIGINT");
            }
        });
    }
}

/// Runs a pipeline: here, or by the workers of `queue`.
async fn run_one(
    opts: &RunOptions,
    json: bool,
    queue: Option<&engine::cluster::RedisQueue>,
) -> ExitCode {
    let progress = Arc::new(RunProgress::default());
    let bar = (!json && std::io::stderr().is_terminal())
        .then(|| output::ProgressBar::start(progress.clone()));
    let result = match queue {
        None => engine::run_pipeline(opts, progress).await,
        Some(queue) => engine::cluster::run_on_queue(opts, progress, queue).await,
    };
    if let Some(bar) = bar {
        bar.finish();
    }
    match result {
        Ok(outcome) => {
            if json {
                println!(
                    "{}",
                    output::summary_json(&outcome.summary, outcome.error.as_ref())
                );
            } else {
                print!("{}", output::summary_text(&outcome.summary));
            }
            match outcome.error {
                None => ExitCode::SUCCESS,
                Some(e @ EngineError::Cancelled(_)) => cancelled(opts, &e),
                Some(e) => {
                    eprintln!("error: {}", e.message());
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            if json {
                println!("{}", output::error_json(opts, &e));
            }
            match e {
                // Cancelled before it started (waiting for a lock).
                EngineError::Cancelled(_) => cancelled(opts, &e),
                e => fail(&e),
            }
        }
    }
}

/// A cancelled run's exit: as a shell reports a process the signal killed.
fn cancelled(opts: &RunOptions, e: &EngineError) -> ExitCode {
    eprintln!("error: {e}");
    // Cancelled for another reason than a signal (its lock in Redis lost):
    // the run failed.
    ExitCode::from(match opts.cancel.reason().as_deref() {
        Some("SIGTERM") => 143,
        Some("SIGINT") => 130,
        _ => 1,
    })
}

async fn demo(rows: u64, dir: &std::path::Path) -> ExitCode {
    println!(
        "Creating a shop data set with {rows} orders in {} ...",
        dir.display()
    );
    let started = std::time::Instant::now();
    let layout = match tokio::task::block_in_place(|| engine::demo::prepare(dir, rows)) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    println!(
        "  source: {} ({:.1}s)\n  warehouse: {}",
        layout.source_db.display(),
        started.elapsed().as_secs_f64(),
        layout.warehouse_db.display()
    );
    let mut all_match = true;
    for pipeline in &layout.pipelines {
        let opts = RunOptions {
            pipeline_file: pipeline.clone(),
            state_dir: layout.state_dir.clone(),
            ..RunOptions::default()
        };
        println!("\nsynchub run {}", pipeline.display());
        let code = run_one(&opts, false, None).await;
        if code != ExitCode::SUCCESS {
            return code;
        }
        let loaded = match engine::run::load(&opts).await {
            Ok((p, _)) => p,
            Err(e) => return fail(&e),
        };
        match engine::verify::compare(&loaded).await {
            Ok(c) => {
                let verdict = if c.identical() {
                    "identical"
                } else {
                    "DIFFERENT"
                };
                println!(
                    "verify: source {} rows, destination {} rows: {verdict}",
                    c.source.rows, c.destination.rows
                );
                all_match &= c.identical();
            }
            Err(e) => return fail(&e),
        }
    }
    if all_match {
        println!(
            "\nDemo done in {:.1}s: every destination table matches its source row for row.\n\
             Try: synchub run {} --state-dir {}   (a second run rewrites nothing)",
            started.elapsed().as_secs_f64(),
            layout.pipelines[0].display(),
            layout.state_dir.display()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("error: a destination does not match its source");
        ExitCode::from(1)
    }
}
