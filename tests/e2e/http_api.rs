//! The scheduler's HTTP API (`scheduler start` with the global config's
//! `scheduler.http_port`, `synchub api serve`), over real HTTP, on a real
//! scheduled run: every route with the token, 401 without it and with a
//! wrong one; the JSON equals what the CLI prints; `/metrics` parses as
//! Prometheus text and its counters equal the run's own totals;
//! `/openapi.json` parses as OpenAPI 3 and lists every route.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chrono::{Timelike, Utc};
use serde_json::Value;

use crate::common::{connect, Schemas};
use crate::redis_workers::{clear_queue, source_rows, synchub, Worker};

/// Every route of the spec's HTTP API, as the OpenAPI document lists it.
const ROUTES: &[&str] = &[
    "/health",
    "/metrics",
    "/openapi.json",
    "/api/scheduler/status",
    "/api/pipelines/states",
    "/api/pipelines/{pipeline_id}/state",
    "/api/pipelines/{pipeline_id}/strategies",
    "/api/pipelines/{pipeline_id}/history",
    "/api/pipelines/{pipeline_id}/strategies/{strategy_name}/history",
    "/api/pipelines/{pipeline_id}/runs/{run_id}/logs",
    "/api/pipelines/{pipeline_id}/failed-partitions",
    "/api/strategies/all",
    "/api/strategies/{pipeline_id}/{strategy_name}",
    "/api/locks/pipelines",
    "/api/locks/tables",
    "/api/deploy/status",
    "/api/deploy/pending",
    "/api/deploy/config/{config_name}",
    "/api/deploy/all",
];

/// Pipeline `name` from `src.items` into `dst.<name>`, partitions of 1,000
/// ids; its full strategy on `cron` when given.
fn pipeline(name: &str, cron: Option<&str>) -> String {
    format!(
        "name: {name}
partition_column: id
partition_step: 1000
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: {name}}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: title, dest: title, data_type: text}}
strategies:
  - {{name: full, type: full{cron}}}
",
        cron = cron.map(|c| format!(", cron: \"{c}\"")).unwrap_or_default()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A client of the API on `port`.
struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(port: u16) -> Api {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Api {
            base: format!("http://127.0.0.1:{port}"),
            agent: config.into(),
        }
    }

    /// `GET path` with `token` (none: no Authorization header): status
    /// and body.
    fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, String)> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call()?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
    }

    fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Result<(u16, String)> {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.send(body)?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
    }

    /// `GET path` with the token: 200 and its JSON. Before that, the same
    /// without a token and with a wrong one: 401 both.
    fn json(&self, path: &str, token: &str) -> Result<Value> {
        for wrong in [None, Some("not-the-token"), Some(&token[..token.len() - 1])] {
            let (status, body) = self.get(path, wrong)?;
            assert_eq!(status, 401, "{path} with {wrong:?}: {body}");
            assert!(body.contains("bearer token"), "{body}");
        }
        let (status, body) = self.get(path, Some(token))?;
        if status != 200 {
            bail!("{path}: {status} {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Waits until the API answers `/health`.
    async fn until_up(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/health", None).map(|(s, _)| s).ok() != Some(200) {
            if Instant::now() > deadline {
                bail!("the API did not come up on {}", self.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// What the CLI prints as JSON for `args`.
fn cli_json(args: &[&str]) -> Value {
    let out = synchub(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The Prometheus samples of `text` named `metric` whose labels include
/// `labels`: their values summed.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
        .sum()
}

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics parses as Prometheus text")
}

/// Waits for the scheduler's `finished` event of `pipeline`.
async fn finished(scheduler: &Worker, pipeline: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(e) = scheduler
            .events()
            .into_iter()
            .find(|e| e["event"] == "finished" && e["pipeline"] == pipeline)
        {
            return Ok(e);
        }
        if Instant::now() > deadline {
            bail!("{pipeline} did not finish: {:?}", scheduler.events());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn metrics_file(state: &Path, pipeline: &str, run_id: &str) -> Value {
    let path = state
        .join("metrics")
        .join(pipeline)
        .join(format!("{run_id}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A scheduler serving the API (port and token variable from its global
/// config) runs a pipeline once through a worker whose first attempt fails
/// and is retried; then every route is asked, with and without the token.
#[tokio::test]
async fn every_route_answers_with_the_token_and_refuses_without() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "rapi").await?;
    source_rows(&client, &s, 5_000).await?;
    let port = free_port();
    let token = format!("t0k3n-{}", uuid::Uuid::new_v4().simple());
    let var = format!("SYNCHUB_TEST_API_TOKEN_{}", std::process::id());
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    std::fs::write(dir.path().join("datastores.yaml"), s.datastores_yaml())?;
    std::fs::write(
        dir.path().join("global_config.yaml"),
        format!("scheduler:\n  http_port: {port}\n  api_token: ${{{var}}}\n"),
    )?;
    // Due once, a few seconds from now (six fields: seconds first).
    let at = Utc::now() + chrono::Duration::seconds(4);
    let cron = format!(
        "{} {} {} {} {} *",
        at.second(),
        at.minute(),
        at.hour(),
        chrono::Datelike::day(&at),
        chrono::Datelike::month(&at)
    );
    std::fs::write(
        dir.path().join("rapi1.yaml"),
        pipeline("rapi1", Some(&cron)),
    )?;
    std::fs::write(dir.path().join("rapi2.yaml"), pipeline("rapi2", None))?;
    std::fs::write(dir.path().join("rapi3.yaml"), pipeline("rapi3", None))?;
    let queue = format!("test-rapi-{}", std::process::id());
    clear_queue(&queue);
    let worker_args = |retries: &'static str, name: &'static str| {
        vec![
            "worker".to_string(),
            "start".into(),
            "--queue-name".into(),
            queue.clone(),
            "--max-jobs".into(),
            "1".into(),
            "--retries".into(),
            retries.into(),
            "--retry-backoff".into(),
            "0.1".into(),
            "--name".into(),
            name.into(),
        ]
    };
    let args = worker_args("3", "flaky");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut worker = Worker::spawn(&args, &[("SYNCHUB_TEST_TRANSIENT_FAILURES", "1")])?;
    let mut sched = Worker::spawn(
        &[
            "scheduler",
            "start",
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--queue-name",
            &queue,
            "--name",
            "apisched",
        ],
        &[(var.as_str(), token.as_str())],
    )?;
    let api = Api::new(port);
    api.until_up().await?;
    let event = finished(&sched, "rapi1").await?;
    assert_eq!(event["status"], "completed", "{event}");
    let run_id = event["run_id"].as_str().unwrap().to_string();
    assert_eq!(worker.stop(), Some(0));
    let state_dir = state.to_str().unwrap();

    // Open routes.
    let (status, body) = api.get("/health", None)?;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["name"], "apisched");

    // /metrics: the counters are the run's own totals (its metrics file).
    let (status, text) = api.get("/metrics", None)?;
    assert_eq!(status, 200, "{text}");
    let m = scrape(&text);
    let totals = metrics_file(&state, "rapi1", &run_id);
    let labels = [("pipeline", "rapi1"), ("strategy", "full")];
    for (metric, key) in [
        ("synchub_rows_read_total", "rows_processed"),
        ("synchub_rows_inserted_total", "rows_inserted"),
        ("synchub_rows_updated_total", "rows_updated"),
        ("synchub_rows_deleted_total", "rows_deleted"),
        ("synchub_rows_unchanged_total", "rows_unchanged"),
        ("synchub_partitions_done_total", "partitions_processed"),
    ] {
        assert_eq!(
            sample(&m, metric, &labels),
            totals[key].as_f64().unwrap(),
            "{metric} vs {key}: {text}"
        );
    }
    assert_eq!(totals["rows_processed"], 5_000);
    assert_eq!(totals["partitions_processed"], 6); // ids 1..=5000: [0, 1000) … [5000, 6000)
                                                   // The injected failure: one attempt retried, none failed for good.
    assert_eq!(
        sample(&m, "synchub_partitions_retried_total", &labels),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&m, "synchub_partitions_failed_total", &labels),
        0.0,
        "{text}"
    );
    let completed = [
        ("pipeline", "rapi1"),
        ("strategy", "full"),
        ("status", "completed"),
    ];
    assert_eq!(sample(&m, "synchub_runs_total", &completed), 1.0, "{text}");
    assert_eq!(
        sample(&m, "synchub_run_duration_seconds_count", &labels),
        1.0,
        "{text}"
    );
    let sum = sample(&m, "synchub_run_duration_seconds_sum", &labels);
    assert!(
        (sum - totals["duration_seconds"].as_f64().unwrap()).abs() < 1e-6,
        "{sum} vs {totals}"
    );
    assert!(
        text.contains(&format!("synchub_queue_tasks{{queue=\"{queue}\"}} 0")),
        "{text}"
    );

    // Every route of the state store answers what the CLI prints.
    let show = cli_json(&[
        "state",
        "show",
        "rapi1",
        "--state-dir",
        state_dir,
        "--output",
        "json",
    ]);
    assert_eq!(api.json("/api/pipelines/rapi1/state", &token)?, show);
    let show_full = cli_json(&[
        "state",
        "show",
        "rapi1",
        "--strategy",
        "full",
        "--state-dir",
        state_dir,
        "--output",
        "json",
    ]);
    assert_eq!(api.json("/api/strategies/rapi1/full", &token)?, show_full);
    let history = cli_json(&[
        "history",
        "rapi1",
        "--state-dir",
        state_dir,
        "--output",
        "json",
    ]);
    assert_eq!(
        api.json("/api/pipelines/rapi1/history?limit=50", &token)?,
        history
    );
    assert_eq!(
        api.json("/api/pipelines/rapi1/strategies/full/history", &token)?,
        history
    );
    let one = api.json("/api/pipelines/rapi1/history?limit=1&strategy=full", &token)?;
    assert_eq!(one["runs"].as_array().unwrap().len(), 1);
    assert_eq!(one["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(one["runs"][0]["status"], "completed");

    let states = api.json("/api/pipelines/states", &token)?;
    let names: Vec<&str> = states
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pipeline"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rapi1", "rapi2", "rapi3"]);
    assert_eq!(states[0], show);

    let strategies = api.json("/api/pipelines/rapi1/strategies", &token)?;
    let full = &strategies["strategies"][0];
    assert_eq!(full["name"], "full");
    assert_eq!(full["type"], "full");
    assert_eq!(full["cron"], cron.as_str());
    assert_eq!(full["state"], show["strategies"][0]);

    let all = api.json("/api/strategies/all", &token)?;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["pipeline"], "rapi1");
    assert_eq!(all[0]["last_run"]["run_id"], run_id.as_str());
    assert_eq!(all[1]["last_run"], Value::Null);

    let logs = api.json(&format!("/api/pipelines/rapi1/runs/{run_id}/logs"), &token)?;
    let lines = logs["lines"].as_array().unwrap();
    let committed = lines
        .iter()
        .filter(|l| l.get("partition").is_some())
        .count();
    assert_eq!(committed, 6, "{logs}");
    assert!(lines.iter().all(|l| l["run_id"] == run_id.as_str()));

    let failed = api.json("/api/pipelines/rapi1/failed-partitions", &token)?;
    assert_eq!(failed["failed_partitions"], serde_json::json!([]));

    // Not found, and names that are no pipeline's.
    assert_eq!(api.get("/api/pipelines/nope/state", Some(&token))?.0, 404);
    assert_eq!(api.get("/api/strategies/rapi1/nope", Some(&token))?.0, 404);
    assert_eq!(
        api.get(
            "/api/pipelines/rapi1/runs/20990101_000000_abcdef/logs",
            Some(&token)
        )?
        .0,
        404
    );
    assert_eq!(api.get("/api/pipelines/a.b/state", Some(&token))?.0, 400);

    // No run on the queue: no table locked.
    assert_eq!(
        api.json("/api/locks/tables", &token)?,
        serde_json::json!({"tables": []})
    );

    // Deploy: not supported yet.
    for path in ["/api/deploy/status", "/api/deploy/pending"] {
        assert_eq!(api.get(path, None)?.0, 401);
        let (status, body) = api.get(path, Some(&token))?;
        assert_eq!(status, 501, "{path}");
        assert!(body.contains("not supported yet"), "{body}");
    }
    for path in ["/api/deploy/config/rapi1", "/api/deploy/all"] {
        assert_eq!(api.post(path, None, b"{}")?.0, 401);
        assert_eq!(api.post(path, Some("wrong"), b"{}")?.0, 401);
        let (status, body) = api.post(path, Some(&token), br#"{"apply_ddl": true}"#)?;
        assert_eq!(status, 501, "{path}");
        assert_eq!(body, r#"{"error":"not supported yet: deploy"}"#);
        // Bodies are size-limited.
        let big = vec![b' '; 65 * 1024];
        assert_eq!(api.post(path, Some(&token), &big)?.0, 413, "{path}");
    }

    // The OpenAPI document: OpenAPI 3, every route listed.
    let doc = api.json("/openapi.json", &token)?;
    let spec = oas3::from_json(doc.to_string())?;
    assert!(spec.openapi.starts_with("3."), "{}", spec.openapi);
    let mut paths: Vec<&str> = spec
        .paths
        .as_ref()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    let mut want = ROUTES.to_vec();
    want.sort_unstable();
    assert_eq!(paths, want);

    // A partition that fails for good (no retries left) is listed.
    let args = worker_args("0", "failing");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut failing = Worker::spawn(&args, &[("SYNCHUB_TEST_TRANSIENT_FAILURES", "1")])?;
    let rapi2 = dir.path().join("rapi2.yaml");
    let out = synchub(&[
        "run",
        rapi2.to_str().unwrap(),
        "--queue",
        "redis",
        "--queue-name",
        &queue,
        "--state-dir",
        state_dir,
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(failing.stop(), Some(0));
    let failed = api.json("/api/pipelines/rapi2/failed-partitions", &token)?;
    let failed = failed["failed_partitions"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["worker"], "failing-0");
    assert_eq!(failed[0]["attempts"], 1);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .ends_with("(injected by SYNCHUB_TEST_TRANSIENT_FAILURES)"),
        "{failed:?}"
    );

    // A run waiting for workers holds its pipeline's lock in Redis and its
    // tasks wait on the queue.
    let rapi3 = dir.path().join("rapi3.yaml");
    let mut waiting = Worker::spawn(
        &[
            "run",
            rapi3.to_str().unwrap(),
            "--queue",
            "redis",
            "--queue-name",
            &queue,
            "--state-dir",
            state_dir,
        ],
        &[],
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = api.json("/api/scheduler/status", &token)?;
        if status["queue"]["tasks"].as_u64() == Some(6) {
            break status;
        }
        if Instant::now() > deadline {
            bail!("the run's tasks were not queued: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["queue"]["queue"], queue.as_str());
    assert_eq!(status["queue"]["waiting"], 6);
    assert_eq!(status["leader"]["pid"], sched.child.id());
    assert!(status["queue"]["oldest_task_age_seconds"].as_f64().unwrap() >= 0.0);
    let locks = api.json("/api/locks/pipelines", &token)?;
    let redis_locks: Vec<&Value> = locks["locks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["held_in"] == "redis")
        .collect();
    assert_eq!(redis_locks.len(), 1, "{locks}");
    assert_eq!(redis_locks[0]["pipeline"], "rapi3");
    assert_eq!(redis_locks[0]["pid"], waiting.child.id());
    assert!(redis_locks[0]["run_id"].is_string(), "{locks}");
    // The run writes its destination table: its write lock, no DDL.
    let tables = api.json("/api/locks/tables", &token)?;
    assert_eq!(
        tables["tables"],
        serde_json::json!([{
            "table": format!("dst/{}.rapi3", s.dst),
            "ddl": null,
            "writers": [{
                "run_id": redis_locks[0]["run_id"],
                "host": redis_locks[0]["host"],
                "pid": waiting.child.id(),
                "since": tables["tables"][0]["writers"][0]["since"],
            }],
        }]),
        "{tables}"
    );
    let m = scrape(&api.get("/metrics", None)?.1);
    assert_eq!(sample(&m, "synchub_queue_tasks", &[("queue", &queue)]), 6.0);
    assert_eq!(
        sample(&m, "synchub_queue_tasks_waiting", &[("queue", &queue)]),
        6.0
    );
    assert!(
        sample(
            &m,
            "synchub_queue_oldest_task_age_seconds",
            &[("queue", &queue)]
        ) >= 0.0
    );
    waiting.stop();

    assert_eq!(sched.stop(), Some(0));
    clear_queue(&queue);
    Ok(())
}

/// Without a token the API does not start (exit 2, naming the ways to give
/// one); `--insecure-no-auth` serves every route without one.
#[tokio::test]
async fn without_a_token_the_api_refuses_to_start_unless_insecure() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let port = free_port().to_string();
    let queue = format!("test-rapinoauth-{}", std::process::id());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args([
            "api",
            "serve",
            "--state-dir",
            state.to_str().unwrap(),
            "--http-port",
            &port,
            "--queue-name",
            &queue,
        ])
        .env_remove("SYNCHUB_API_TOKEN")
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: the HTTP API has no token: set SYNCHUB_API_TOKEN (or the global config's scheduler.api_token: ${VAR}), or pass --insecure-no-auth to serve without one"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args([
            "scheduler",
            "start",
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--http-port",
            &port,
            "--queue-name",
            &queue,
        ])
        .env_remove("SYNCHUB_API_TOKEN")
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut server = Worker::spawn(
        &[
            "api",
            "serve",
            "--state-dir",
            state.to_str().unwrap(),
            "--http-port",
            &port,
            "--queue-name",
            &queue,
            "--insecure-no-auth",
        ],
        &[],
    )?;
    let api = Api::new(port.parse()?);
    api.until_up().await?;
    let (status, body) = api.get("/api/pipelines/states", None)?;
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (status, body) = api.get("/api/pipelines/x/history", None)?;
    assert_eq!(status, 200);
    let empty: HashMap<String, Value> = serde_json::from_str(&body)?;
    assert_eq!(empty["runs"], serde_json::json!([]));
    assert_eq!(server.stop(), Some(0));
    Ok(())
}

/// The global config names the token's variable; a token written in the
/// file, or port 0, is refused by path.
#[test]
fn a_token_written_in_the_global_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("global_config.yaml");
    std::fs::write(&file, "scheduler:\n  http_port: 0\n  api_token: s3cret\n").unwrap();
    let out = synchub(&["config", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scheduler.http_port: 0 is no port; give the API's port, e.g. 8001"),
        "{stderr}"
    );
    assert!(
        stderr.contains("scheduler.api_token: a token written in the file; name the environment variable that holds it instead, e.g. api_token: ${SYNCHUB_API_TOKEN}"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    std::fs::write(
        &file,
        "scheduler:\n  http_port: 8001\n  api_token: ${SYNCHUB_API_TOKEN}\n",
    )
    .unwrap();
    let out = synchub(&["config", "validate", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
