//! The routes: each reads what the matching CLI command reads and answers
//! with the same JSON (`engine::state::json`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use engine::lock::{
    FileLock, Lock, LockHolder, RedisLock, RedisTableLock, TableLockMode, DEFAULT_LOCK_TTL,
};
use engine::state::json::{history_json, pipeline_state_json, run_json};
use engine::{EngineError, SqliteStateStore, StateReports};
use planner::config::PipelineFile;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::ApiConfig;

type Config = web::Data<ApiConfig>;

/// The API's OpenAPI document, built from the routes' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "SyncHub API", description = "Run state, history, logs, locks and metrics of a SyncHub scheduler."),
    paths(
        health, scheduler_status, pipeline_states, pipeline_state, pipeline_strategies,
        pipeline_history, strategy_history, run_logs, failed_partitions, strategies_all,
        strategy_state, locks_pipelines, locks_tables, deploy_status, deploy_pending,
        deploy_config, deploy_all, prometheus_metrics, openapi_json
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(health)
        .service(scheduler_status)
        .service(pipeline_states)
        .service(pipeline_state)
        .service(pipeline_strategies)
        .service(pipeline_history)
        .service(strategy_history)
        .service(run_logs)
        .service(failed_partitions)
        .service(strategies_all)
        .service(strategy_state)
        .service(locks_pipelines)
        .service(locks_tables)
        .service(deploy_status)
        .service(deploy_pending)
        .service(deploy_config)
        .service(deploy_all)
        .service(prometheus_metrics)
        .service(openapi_json);
}

/// A request answered with an error: its status and `{"error": message}`.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl From<Refusal> for HttpResponse {
    fn from(Refusal(status, message): Refusal) -> HttpResponse {
        HttpResponse::build(status).json(json!({ "error": message }))
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal(status, message.into())
}

fn failure(e: &EngineError) -> Refusal {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.message())
}

fn not_supported(what: &str) -> HttpResponse {
    error(
        StatusCode::NOT_IMPLEMENTED,
        format!("not supported yet: {what}"),
    )
    .into()
}

/// A pipeline named in a path: an identifier, never a path of its own.
fn checked(pipeline: &str) -> Result<(), Refusal> {
    if engine::records::is_safe_name(pipeline) {
        Ok(())
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            format!("\"{pipeline}\" is not a pipeline name (letters, digits, '_' and '-')"),
        ))
    }
}

async fn store(config: &ApiConfig) -> Result<Option<SqliteStateStore>, Refusal> {
    SqliteStateStore::open_existing(&config.state_dir)
        .await
        .map_err(|e| failure(&e))
}

/// The pipeline files of the config folder, by pipeline name.
fn pipeline_files(config: &ApiConfig) -> BTreeMap<String, (PathBuf, PipelineFile)> {
    let Some(dir) = &config.config_dir else {
        return BTreeMap::new();
    };
    engine::cluster::scheduler::pipeline_files(dir)
        .0
        .into_iter()
        .map(|(path, p)| (p.name.clone(), (path, p)))
        .collect()
}

/// The state of `pipeline` (one strategy, or all), 404 when neither the
/// store nor the config folder knows it.
async fn state_of(
    config: &ApiConfig,
    pipeline: &str,
    strategy: Option<&str>,
) -> Result<Value, Refusal> {
    checked(pipeline)?;
    let strategies = match store(config).await? {
        Some(store) => store
            .pipeline_state(pipeline, strategy)
            .await
            .map_err(|e| failure(&e))?,
        None => Vec::new(),
    };
    let configured = pipeline_files(config)
        .get(pipeline)
        .is_some_and(|(_, p)| strategy.is_none_or(|s| p.strategies.iter().any(|c| c.name == s)));
    if strategies.is_empty() && !configured {
        let what = match strategy {
            Some(s) => format!("strategy {s} of pipeline {pipeline}"),
            None => format!("pipeline {pipeline}"),
        };
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no {what}: neither the state store nor the pipeline folder knows it"),
        ));
    }
    Ok(pipeline_state_json(
        pipeline,
        &config.state_dir,
        &strategies,
    ))
}

fn respond(result: Result<Value, Refusal>) -> HttpResponse {
    match result {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(r) => r.into(),
    }
}

/// Liveness: answers without a token.
#[utoipa::path(get, path = "/health", security(()), responses((status = 200, description = "The API is up", body = Object)))]
#[get("/health")]
async fn health(config: Config) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "name": config.name,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Which scheduler leads, the queue's tasks and its workers (as
/// `synchub scheduler status --output json`).
#[utoipa::path(get, path = "/api/scheduler/status", responses(
    (status = 200, description = "Leader and queue", body = Object),
    (status = 401, description = "No or wrong bearer token"),
    (status = 503, description = "No Redis queue configured")))]
#[get("/api/scheduler/status")]
async fn scheduler_status(config: Config) -> HttpResponse {
    let Some(queue) = &config.queue else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this API has no Redis queue to report on",
        )
        .into();
    };
    match engine::cluster::scheduler::status(queue).await {
        Ok(s) => HttpResponse::Ok().json(s),
        Err(e) => failure(&e).into(),
    }
}

/// Every pipeline's state: those with runs in the store and those in the
/// pipeline folder, sorted by name.
#[utoipa::path(get, path = "/api/pipelines/states", responses(
    (status = 200, description = "One state per pipeline", body = [Object]),
    (status = 401, description = "No or wrong bearer token")))]
#[get("/api/pipelines/states")]
async fn pipeline_states(config: Config) -> HttpResponse {
    respond(
        async {
            let store = store(&config).await?;
            let mut names: BTreeSet<String> = pipeline_files(&config).into_keys().collect();
            if let Some(store) = &store {
                names.extend(store.pipelines().await.map_err(|e| failure(&e))?);
            }
            let mut states = Vec::new();
            for name in names {
                let strategies = match &store {
                    Some(s) => s
                        .pipeline_state(&name, None)
                        .await
                        .map_err(|e| failure(&e))?,
                    None => Vec::new(),
                };
                states.push(pipeline_state_json(&name, &config.state_dir, &strategies));
            }
            Ok(Value::Array(states))
        }
        .await,
    )
}

/// One pipeline's state (as `synchub state show --output json`).
#[utoipa::path(get, path = "/api/pipelines/{pipeline_id}/state",
    params(("pipeline_id" = String, Path, description = "The pipeline's name")),
    responses(
        (status = 200, description = "A member per strategy", body = Object),
        (status = 401, description = "No or wrong bearer token"),
        (status = 404, description = "No such pipeline")))]
#[get("/api/pipelines/{pipeline_id}/state")]
async fn pipeline_state(config: Config, path: web::Path<String>) -> HttpResponse {
    respond(state_of(&config, &path, None).await)
}

/// A pipeline's strategies: as configured (type, cron, enabled) and as
/// recorded (each one's state).
#[utoipa::path(get, path = "/api/pipelines/{pipeline_id}/strategies",
    params(("pipeline_id" = String, Path, description = "The pipeline's name")),
    responses(
        (status = 200, description = "Its strategies", body = Object),
        (status = 401, description = "No or wrong bearer token"),
        (status = 404, description = "No such pipeline")))]
#[get("/api/pipelines/{pipeline_id}/strategies")]
async fn pipeline_strategies(config: Config, path: web::Path<String>) -> HttpResponse {
    respond(
        async {
            let state = state_of(&config, &path, None).await?;
            let mut recorded: BTreeMap<String, Value> = state["strategies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    (
                        s["strategy"].as_str().unwrap_or_default().to_string(),
                        s.clone(),
                    )
                })
                .collect();
            let mut strategies = Vec::new();
            if let Some((file, p)) = pipeline_files(&config).remove(path.as_str()) {
                for s in &p.strategies {
                    let kind = serde_json::to_value(s)
                        .ok()
                        .and_then(|v| v.get("type").cloned())
                        .unwrap_or(Value::Null);
                    strategies.push(json!({
                        "name": s.name,
                        "type": kind,
                        "enabled": s.enabled,
                        "cron": s.cron,
                        "file": file.display().to_string(),
                        "state": recorded.remove(&s.name),
                    }));
                }
            }
            // Recorded, no longer configured.
            for (name, state) in recorded {
                strategies.push(json!({
                    "name": name, "type": null, "enabled": null, "cron": null, "file": null,
                    "state": state,
                }));
            }
            Ok(json!({ "pipeline": path.as_str(), "strategies": strategies }))
        }
        .await,
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Runs to return, newest first (default 50).
    limit: Option<usize>,
    /// Only this strategy's runs.
    strategy: Option<String>,
}

async fn history_of(
    config: &ApiConfig,
    pipeline: &str,
    strategy: Option<&str>,
    limit: Option<usize>,
) -> Result<Value, Refusal> {
    checked(pipeline)?;
    let runs = match store(config).await? {
        Some(store) => store
            .history(pipeline, strategy, limit.unwrap_or(50))
            .await
            .map_err(|e| failure(&e))?,
        None => Vec::new(),
    };
    Ok(history_json(pipeline, &runs))
}

/// A pipeline's runs, newest first (as `synchub history --output json`).
#[utoipa::path(get, path = "/api/pipelines/{pipeline_id}/history",
    params(("pipeline_id" = String, Path, description = "The pipeline's name"), HistoryQuery),
    responses(
        (status = 200, description = "Its runs", body = Object),
        (status = 401, description = "No or wrong bearer token")))]
#[get("/api/pipelines/{pipeline_id}/history")]
async fn pipeline_history(
    config: Config,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> HttpResponse {
    respond(history_of(&config, &path, query.strategy.as_deref(), query.limit).await)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    /// Runs to return, newest first (default 50).
    limit: Option<usize>,
}

/// One strategy's runs, newest first.
#[utoipa::path(get, path = "/api/pipelines/{pipeline_id}/strategies/{strategy_name}/history",
    params(
        ("pipeline_id" = String, Path, description = "The pipeline's name"),
        ("strategy_name" = String, Path, description = "The strategy's name"),
        LimitQuery),
    responses(
        (status = 200, description = "Its runs", body = Object),
        (status = 401, description = "No or wrong bearer token")))]
#[get("/api/pipelines/{pipeline_id}/strategies/{strategy_name}/history")]
async fn strategy_history(
    config: Config,
    path: web::Path<(String, String)>,
    query: web::Query<LimitQuery>,
) -> HttpResponse {
    let (pipeline, strategy) = path.into_inner();
    respond(history_of(&config, &pipeline, Some(&strategy), query.limit).await)
}

/// The lines of a run's log (`<state-dir>/logs/<pipeline>/<run_id>.log`).
fn log_lines(config: &ApiConfig, pipeline: &str, run_id: &str) -> Result<Vec<Value>, Refusal> {
    checked(pipeline)?;
    let Some(path) = engine::records::log_path(&config.state_dir, pipeline, run_id) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("\"{run_id}\" is not a run id"),
        ));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            // A line cut short by a crash is kept as text, not dropped.
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| json!({ "raw": l })))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(error(
            StatusCode::NOT_FOUND,
            format!("no log of run {run_id} of {pipeline}"),
        )),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// A run's log lines, oldest first.
#[utoipa::path(get, path = "/api/pipelines/{pipeline_id}/runs/{run_id}/logs",
    params(
        ("pipeline_id" = String, Path, description = "The pipeline's name"),
        ("run_id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Its log lines", body = Object),
        (status = 401, description = "No or wrong bearer token"),
        (status = 404, description = "No such run log")))]
#[get("/api/pipelines/{pipeline_id}/runs/{run_id}/logs")]
async fn run_logs(config: Config, path: web::Path<(String, String)>) -> HttpResponse {
    let (pipeline, run_id) = path.into_inner();
    respond(
        log_lines(&config, &pipeline, &run_id)
            .map(|lines| json!({ "pipeline": pipeline, "run_id": run_id, "lines": lines })),
    )
}

/// Partitions that failed in each strategy's last run, when that run did
/// not complete (a run that completes after a resume has none left).
#[utoipa::path(get, path = "/api/pipelines/{pipeline_id}/failed-partitions",
    params(("pipeline_id" = String, Path, description = "The pipeline's name")),
    responses(
        (status = 200, description = "The failed partitions", body = Object),
        (status = 401, description = "No or wrong bearer token")))]
#[get("/api/pipelines/{pipeline_id}/failed-partitions")]
async fn failed_partitions(config: Config, path: web::Path<String>) -> HttpResponse {
    respond(
        async {
            checked(&path)?;
            let states = match store(&config).await? {
                Some(store) => store
                    .pipeline_state(&path, None)
                    .await
                    .map_err(|e| failure(&e))?,
                None => Vec::new(),
            };
            let mut failed = Vec::new();
            for run in states.iter().filter_map(|s| s.last_run.as_ref()) {
                if run.run.status == engine::RunStatus::Completed {
                    continue;
                }
                let lines = match log_lines(&config, &path, &run.run.run_id) {
                    Ok(lines) => lines,
                    Err(_) => continue,
                };
                for line in lines.iter().filter(|l| l.get("failed_partition").is_some()) {
                    failed.push(json!({
                        "run_id": run.run.run_id,
                        "strategy": run.run.strategy,
                        "partition": line["failed_partition"],
                        "worker": line["worker"],
                        "attempts": line["attempts"],
                        "error": line["error"],
                        "at": line["timestamp"],
                    }));
                }
            }
            Ok(json!({ "pipeline": path.as_str(), "failed_partitions": failed }))
        }
        .await,
    )
}

/// Every strategy of every pipeline in the folder: its schedule and its
/// last run.
#[utoipa::path(get, path = "/api/strategies/all", responses(
    (status = 200, description = "One entry per strategy", body = [Object]),
    (status = 401, description = "No or wrong bearer token")))]
#[get("/api/strategies/all")]
async fn strategies_all(config: Config) -> HttpResponse {
    respond(
        async {
            let store = store(&config).await?;
            let mut all = Vec::new();
            for (name, (file, p)) in pipeline_files(&config) {
                let states = match &store {
                    Some(s) => s
                        .pipeline_state(&name, None)
                        .await
                        .map_err(|e| failure(&e))?,
                    None => Vec::new(),
                };
                for s in &p.strategies {
                    let last = states
                        .iter()
                        .find(|st| st.strategy == s.name)
                        .and_then(|st| st.last_run.as_ref());
                    all.push(json!({
                        "pipeline": name,
                        "strategy": s.name,
                        "type": serde_json::to_value(s).ok().and_then(|v| v.get("type").cloned()),
                        "enabled": p.enabled && s.enabled,
                        "cron": s.cron,
                        "slot": p.slot.as_deref().unwrap_or(engine::cluster::scheduler::DEFAULT_SLOT),
                        "file": file.display().to_string(),
                        "last_run": last.map(run_json),
                    }));
                }
            }
            Ok(Value::Array(all))
        }
        .await,
    )
}

/// One strategy's state.
#[utoipa::path(get, path = "/api/strategies/{pipeline_id}/{strategy_name}",
    params(
        ("pipeline_id" = String, Path, description = "The pipeline's name"),
        ("strategy_name" = String, Path, description = "The strategy's name")),
    responses(
        (status = 200, description = "Its state", body = Object),
        (status = 401, description = "No or wrong bearer token"),
        (status = 404, description = "No such strategy")))]
#[get("/api/strategies/{pipeline_id}/{strategy_name}")]
async fn strategy_state(config: Config, path: web::Path<(String, String)>) -> HttpResponse {
    let (pipeline, strategy) = path.into_inner();
    respond(state_of(&config, &pipeline, Some(&strategy)).await)
}

fn holder_json(pipeline: &str, holder: &LockHolder, held_in: &str) -> Value {
    json!({
        "pipeline": pipeline,
        "held_in": held_in,
        "run_id": holder.run_id,
        "host": holder.host,
        "pid": holder.pid,
        "since": holder.since,
    })
}

/// Pipeline locks held now: in Redis (runs coordinated on the queue) and
/// in the state directory (runs of this machine).
#[utoipa::path(get, path = "/api/locks/pipelines", responses(
    (status = 200, description = "The locks held", body = Object),
    (status = 401, description = "No or wrong bearer token")))]
#[get("/api/locks/pipelines")]
async fn locks_pipelines(config: Config) -> HttpResponse {
    respond(
        async {
            let mut locks = Vec::new();
            if let Some(queue) = &config.queue {
                let held = RedisLock::new(queue, DEFAULT_LOCK_TTL)
                    .held()
                    .await
                    .map_err(|e| failure(&e))?;
                for (pipeline, holder) in held {
                    locks.push(holder_json(&pipeline, &holder, "redis"));
                }
            }
            if let (Some(files), Some(store)) =
                (FileLock::existing(&config.state_dir), store(&config).await?)
            {
                for pipeline in store.pipelines().await.map_err(|e| failure(&e))? {
                    if let Some(holder) = files.holder(&pipeline).await.map_err(|e| failure(&e))? {
                        locks.push(holder_json(&pipeline, &holder, "state_dir"));
                    }
                }
            }
            Ok(json!({ "locks": locks }))
        }
        .await,
    )
}

/// Table locks held now in Redis: per destination table, who holds its
/// DDL lock and which runs write it. Without a queue, none.
#[utoipa::path(get, path = "/api/locks/tables", responses(
    (status = 200, description = "The table locks held", body = Object),
    (status = 401, description = "No or wrong bearer token")))]
#[get("/api/locks/tables")]
async fn locks_tables(config: Config) -> HttpResponse {
    respond(
        async {
            let mut tables = Vec::new();
            if let Some(queue) = &config.queue {
                let locks = RedisLock::new(queue, DEFAULT_LOCK_TTL);
                let held = RedisTableLock::new(&locks, TableLockMode::Write)
                    .held()
                    .await
                    .map_err(|e| failure(&e))?;
                for t in held {
                    let holder = |h: &LockHolder| {
                        json!({
                            "run_id": h.run_id,
                            "host": h.host,
                            "pid": h.pid,
                            "since": h.since,
                        })
                    };
                    tables.push(json!({
                        "table": t.table,
                        "ddl": t.ddl.as_ref().map(holder),
                        "writers": t.writers.iter().map(holder).collect::<Vec<_>>(),
                    }));
                }
            }
            Ok(json!({ "tables": tables }))
        }
        .await,
    )
}

/// Deployment status: no deploy workflow yet.
#[utoipa::path(get, path = "/api/deploy/status", responses(
    (status = 401, description = "No or wrong bearer token"),
    (status = 501, description = "not supported yet: deploy", body = Object)))]
#[get("/api/deploy/status")]
async fn deploy_status() -> HttpResponse {
    not_supported("deploy")
}

/// Configs pending deployment: no deploy workflow yet.
#[utoipa::path(get, path = "/api/deploy/pending", responses(
    (status = 401, description = "No or wrong bearer token"),
    (status = 501, description = "not supported yet: deploy", body = Object)))]
#[get("/api/deploy/pending")]
async fn deploy_pending() -> HttpResponse {
    not_supported("deploy")
}

/// Deploys one config: no deploy workflow yet. The body (at most 64 KiB)
/// is read and not acted on.
#[utoipa::path(post, path = "/api/deploy/config/{config_name}",
    params(("config_name" = String, Path, description = "The config's name")),
    request_body(content = Object, description = "{\"apply_ddl\": bool, \"if_not_exists\": bool}"),
    responses(
        (status = 401, description = "No or wrong bearer token"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 501, description = "not supported yet: deploy", body = Object)))]
#[post("/api/deploy/config/{config_name}")]
async fn deploy_config(_path: web::Path<String>, _body: web::Bytes) -> HttpResponse {
    not_supported("deploy")
}

/// Deploys every pending config: no deploy workflow yet.
#[utoipa::path(post, path = "/api/deploy/all",
    request_body(content = Object, description = "{\"ddl_only\": bool}"),
    responses(
        (status = 401, description = "No or wrong bearer token"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 501, description = "not supported yet: deploy", body = Object)))]
#[post("/api/deploy/all")]
async fn deploy_all(_body: web::Bytes) -> HttpResponse {
    not_supported("deploy")
}

/// Prometheus metrics (text format 0.0.4); answers without a token.
#[utoipa::path(get, path = "/metrics", security(()), responses(
    (status = 200, description = "Prometheus text", content_type = "text/plain")))]
#[get("/metrics")]
async fn prometheus_metrics(config: Config) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::render(config.queue.as_ref()).await)
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses(
    (status = 200, description = "The OpenAPI 3 document", body = Object),
    (status = 401, description = "No or wrong bearer token")))]
#[get("/openapi.json")]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
