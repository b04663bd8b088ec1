//! The scheduler's HTTP API (the spec's "HTTP API"): run state, history,
//! logs and failed partitions from the state store, the scheduler, queue
//! and locks from Redis, as the CLI's `--output json` shows them; Prometheus
//! metrics at `/metrics`; its OpenAPI document at `/openapi.json`.
//!
//! Every route but `/health` and `/metrics` wants `Authorization: Bearer
//! <token>`; a server without a token starts only when told it is insecure.

mod auth;
mod handlers;
mod prometheus;

use std::net::SocketAddr;
use std::path::PathBuf;

use actix_web::{web, App, HttpServer};
use engine::cluster::RedisQueue;
use engine::Cancel;

pub use handlers::ApiDoc;
pub use prometheus::{install_recorder, render};

/// Request bodies larger than this are refused (413) before a handler runs.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Errors of the API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the HTTP API has no token: set SYNCHUB_API_TOKEN (or the global config's scheduler.api_token: ${{VAR}}), or pass --insecure-no-auth to serve without one"
    )]
    NoToken,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP API stopped: {0}")]
    Serve(std::io::Error),
}

/// Who may call the API.
#[derive(Clone)]
pub enum Access {
    /// Callers present this bearer token.
    Token(String),
    /// Anyone (`--insecure-no-auth`).
    Open,
}

impl Access {
    /// A token given (the environment's first, then the config's), else
    /// `Open` only when `insecure`.
    pub fn resolve(
        env_token: Option<String>,
        config_token: Option<String>,
        insecure: bool,
    ) -> Result<Access, ApiError> {
        match env_token.filter(|t| !t.is_empty()).or(config_token) {
            Some(t) => Ok(Access::Token(t)),
            None if insecure => Ok(Access::Open),
            None => Err(ApiError::NoToken),
        }
    }
}

/// What the API reads.
#[derive(Clone)]
pub struct ApiConfig {
    pub state_dir: PathBuf,
    /// The pipeline folder (strategies, schedules); `None`: state only.
    pub config_dir: Option<PathBuf>,
    /// The queue whose scheduler, workers and locks are reported.
    pub queue: Option<RedisQueue>,
    pub access: Access,
    /// This server's name in `/health`.
    pub name: String,
}

/// The API's routes, for a server or a test's `actix_web::test` app.
pub fn configure(config: ApiConfig) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let access = config.access.clone();
        cfg.app_data(web::Data::new(config))
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .app_data(web::JsonConfig::default().limit(BODY_LIMIT))
            .service(
                web::scope("")
                    .wrap(actix_web::middleware::from_fn(
                        move |req: actix_web::dev::ServiceRequest,
                              next: actix_web::middleware::Next<_>| {
                            let access = access.clone();
                            async move { auth::check(&access, req, next).await }
                        },
                    ))
                    .configure(handlers::routes),
            );
    }
}

/// Serves the API on `addr` until `stop` is cancelled.
pub async fn serve(config: ApiConfig, addr: SocketAddr, stop: Cancel) -> Result<(), ApiError> {
    install_recorder();
    let server = HttpServer::new(move || App::new().configure(configure(config.clone())))
        .workers(1)
        .disable_signals()
        .bind(addr)
        .map_err(|source| ApiError::Bind { addr, source })?
        .run();
    let handle = server.handle();
    tracing::info!(%addr, "HTTP API listening");
    tokio::select! {
        ended = server => ended.map_err(ApiError::Serve),
        _ = stop.cancelled() => {
            handle.stop(true).await;
            Ok(())
        }
    }
}
