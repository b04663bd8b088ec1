//! The HTTP API's flags, shared by `scheduler start --http-port` and
//! `synchub api serve`, and the latter command.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use engine::EngineError;
use planner::global::GlobalConfig;

use crate::{cancel_on_signals, fail, RedisArgs};

/// The environment variable holding the API's bearer token.
pub const TOKEN_VAR: &str = "SYNCHUB_API_TOKEN";

#[derive(clap::Args, Clone)]
pub struct HttpArgs {
    /// Serve the HTTP API on this port (default: the global config's
    /// scheduler.http_port; none: no API).
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// The address the API listens on.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub http_host: IpAddr,
    /// Serve the API without a bearer token (else $SYNCHUB_API_TOKEN or
    /// the global config's scheduler.api_token is required).
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// The API to serve, when a port is given: its address and config. Exits
/// 2 when there is no token and no `--insecure-no-auth`.
pub fn api_config(
    http: &HttpArgs,
    global: Option<&GlobalConfig>,
    state_dir: PathBuf,
    config_dir: Option<PathBuf>,
    queue: Option<engine::cluster::RedisQueue>,
    name: String,
) -> Result<Option<(SocketAddr, api::ApiConfig)>, ExitCode> {
    let scheduler = global.and_then(|g| g.scheduler.as_ref());
    let Some(port) = http.http_port.or(scheduler.and_then(|s| s.http_port)) else {
        return Ok(None);
    };
    let access = api::Access::resolve(
        std::env::var(TOKEN_VAR).ok(),
        scheduler.and_then(|s| s.api_token()),
        http.insecure_no_auth,
    )
    .map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    Ok(Some((
        SocketAddr::new(http.http_host, port),
        api::ApiConfig {
            state_dir,
            config_dir,
            queue,
            access,
            name,
        },
    )))
}

/// Serves the API until `stop`; an API that cannot start or stops with
/// an error cancels `stop` too, and says why.
pub fn spawn(
    addr: SocketAddr,
    config: api::ApiConfig,
    stop: engine::Cancel,
) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        match api::serve(config, addr, stop.clone()).await {
            Ok(()) => true,
            Err(e) => {
                eprintln!("error: {e}");
                stop.cancel(&e.to_string());
                false
            }
        }
    })
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where run state and history live.
    #[arg(long, default_value = "./data")]
    pub state_dir: PathBuf,
    /// The pipeline folder, for strategies and schedules.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    #[arg(long)]
    pub global_config: Option<PathBuf>,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `synchub api serve`: the API alone, beside schedulers running elsewhere.
pub async fn serve(mut args: ServeArgs) -> ExitCode {
    let global = match GlobalConfig::find(args.global_config.as_deref(), args.config_dir.as_deref())
    {
        Ok(g) => g,
        Err(e) => return fail(&EngineError::Planner(e)),
    };
    if args.http.http_port.is_none()
        && global
            .as_ref()
            .and_then(|g| g.scheduler.as_ref())
            .and_then(|s| s.http_port)
            .is_none()
    {
        args.http.http_port = Some(8001);
    }
    let queue = match args.redis.connect_with(global.as_ref()).await {
        Ok(q) => q,
        Err(e) => return fail(&e),
    };
    let (addr, config) = match api_config(
        &args.http,
        global.as_ref(),
        args.state_dir,
        args.config_dir,
        Some(queue),
        engine::cluster::WorkerOptions::default_name(),
    ) {
        Ok(Some(found)) => found,
        Ok(None) => {
            eprintln!("error: give the API's port with --http-port");
            return ExitCode::from(2);
        }
        Err(code) => return code,
    };
    let stop = engine::Cancel::default();
    cancel_on_signals(&stop, "stopping the HTTP API");
    match spawn(addr, config, stop).await {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
