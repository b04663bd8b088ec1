//! `synchub scheduler start`: reads the global config, connects to the
//! queue and runs the scheduler until SIGTERM or SIGINT, printing its
//! events as JSON lines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use engine::cluster::scheduler::{run_scheduler, SchedulerEvents, SchedulerOptions};
use engine::EngineError;
use planner::global::GlobalConfig;

use crate::worker::seconds;
use crate::{cancel_on_signals, fail, RedisArgs};

#[derive(clap::Args)]
pub struct StartArgs {
    /// The folder of pipeline files (and, by default, of
    /// `datastores.yaml` and `global_config.yaml`).
    #[arg(long)]
    pub config_dir: PathBuf,
    /// The global config (default: `global_config.yaml` in the config
    /// folder, when there is one).
    #[arg(long)]
    pub global_config: Option<PathBuf>,
    #[arg(long)]
    pub datastores: Option<PathBuf>,
    /// Where run state and history live.
    #[arg(long, default_value = "./data")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// How often the pipeline folder is read again (default: the global
    /// config's scheduler.check_interval, else 60).
    #[arg(long, value_name = "SECONDS")]
    pub check_interval: Option<f64>,
    /// A standby takes the lead this long after the leader stopped.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub leader_ttl: f64,
    /// This scheduler's name in its events (default: host-pid).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub http: crate::http_api::HttpArgs,
}

/// The global config's slot capacities.
fn slots(global: Option<&GlobalConfig>) -> std::collections::BTreeMap<String, usize> {
    global
        .and_then(|g| g.scheduler.as_ref())
        .map(|s| {
            s.slot_definitions
                .iter()
                .map(|(slot, n)| (slot.clone(), *n as usize))
                .collect()
        })
        .unwrap_or_default()
}

/// `synchub scheduler list-jobs`.
pub fn list_jobs(config_dir: &Path, global_config: Option<&Path>, json: bool) -> ExitCode {
    let global = match GlobalConfig::find(global_config, Some(config_dir)) {
        Ok(g) => g,
        Err(e) => return fail(&EngineError::Planner(e)),
    };
    let (jobs, refused) =
        engine::cluster::scheduler::list_jobs(config_dir, &slots(global.as_ref()));
    let refused: Vec<serde_json::Value> = refused
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .collect();
    if json {
        println!(
            "{}",
            serde_json::json!({ "jobs": jobs, "refused": refused })
        );
    } else {
        for j in &jobs {
            let covers = if j.covers.is_empty() {
                String::new()
            } else {
                format!("\tcovers {}", j.covers.join(", "))
            };
            println!(
                "{}\t{}\t{}\tslot {}\tnext {}{covers}",
                j.pipeline,
                j.strategy,
                j.cron,
                j.slot,
                j.next_due.as_deref().unwrap_or("never")
            );
        }
        for r in &refused {
            eprintln!(
                "error: {}: {}",
                r["file"].as_str().unwrap_or_default(),
                r["error"].as_str().unwrap_or_default()
            );
        }
    }
    if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

pub async fn start(args: StartArgs) -> ExitCode {
    let global = match GlobalConfig::find(args.global_config.as_deref(), Some(&args.config_dir)) {
        Ok(g) => g,
        Err(e) => return fail(&EngineError::Planner(e)),
    };
    let scheduler = global.as_ref().and_then(|g| g.scheduler.clone());
    if scheduler.as_ref().and_then(|s| s.enabled) == Some(false) {
        eprintln!("error: the global config says scheduler.enabled: false; not starting");
        return ExitCode::from(2);
    }
    let check_interval = match args.check_interval {
        Some(s) => seconds("--check-interval", s),
        None => Ok(Duration::from_secs(
            scheduler
                .as_ref()
                .and_then(|s| s.check_interval)
                .unwrap_or(60),
        )),
    };
    let (check_interval, leader_ttl) =
        match (check_interval, seconds("--leader-ttl", args.leader_ttl)) {
            (Ok(c), Ok(l)) => (c, l),
            (Err(code), _) | (_, Err(code)) => return code,
        };
    let queue = match args.redis.connect_with(global.as_ref()).await {
        Ok(q) => q,
        Err(e) => return fail(&e),
    };
    let name = args
        .name
        .unwrap_or_else(engine::cluster::WorkerOptions::default_name);
    let http = match crate::http_api::api_config(
        &args.http,
        global.as_ref(),
        args.state_dir.clone(),
        Some(args.config_dir.clone()),
        Some(queue.clone()),
        name.clone(),
    ) {
        Ok(http) => http,
        Err(code) => return code,
    };
    // Counted from the first run on, whether or not /metrics is served yet.
    if http.is_some() {
        api::install_recorder();
    }
    let opts = SchedulerOptions {
        config_dir: args.config_dir,
        datastores: args.datastores,
        state_dir: args.state_dir,
        slots: slots(global.as_ref()),
        check_interval,
        name,
        leader_ttl,
    };
    let stop = engine::Cancel::default();
    cancel_on_signals(&stop, "stopping the scheduler; its runs are cancelled");
    let api = http.map(|(addr, config)| crate::http_api::spawn(addr, config, stop.clone()));
    let events: SchedulerEvents = Arc::new(|event| {
        println!("{}", serde_json::to_string(event).unwrap_or_default());
    });
    run_scheduler(queue, opts, stop, events).await;
    match api {
        Some(api) => match api.await {
            Ok(true) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        },
        None => ExitCode::SUCCESS,
    }
}

/// `synchub scheduler status`: who leads, and the queue.
pub async fn status(redis: &RedisArgs, json: bool) -> ExitCode {
    let queue = match redis.connect().await {
        Ok(q) => q,
        Err(e) => return fail(&e),
    };
    let status = match engine::cluster::scheduler::status(&queue).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if json {
        println!("{}", serde_json::to_value(&status).unwrap_or_default());
    } else {
        let queued = &status.queue;
        match &status.leader {
            Some(h) => println!("leader: pid {} on {}, since {} UTC", h.pid, h.host, h.since),
            None => println!("no scheduler leads queue {}", queued.queue),
        }
        println!(
            "queue {}: {} tasks ({} waiting, {} held by workers), {} runs coordinated, {} workers",
            queued.queue,
            queued.tasks,
            queued.waiting,
            queued.in_flight,
            queued.runs,
            queued.workers.len()
        );
    }
    ExitCode::SUCCESS
}
