//! The deployment files (issue 18): `Dockerfile`, `docker-compose.yml` and
//! `deploy/k8s/`. No image is built and nothing is started (no network
//! here): each file is parsed, the keys that matter are checked, and every
//! `synchub` command line they hold is parsed by the real binary (`--help`
//! after the arguments: clap refuses an unknown subcommand or flag before
//! it prints the help). The example config folder they mount validates.
//! Where `docker compose` or `kubectl` is installed, it renders them too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

const SYNCHUB: &str = env!("CARGO_BIN_EXE_synchub");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document in `path`, as JSON values.
fn yaml_documents(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).with_context(|| path.display().to_string()))
        .filter(|doc| !matches!(doc, Ok(Value::Null)))
        .collect()
}

/// `synchub ARGS --help`: clap parses ARGS first, so a subcommand or flag
/// that does not exist fails (exit 2) instead of printing the help.
fn parses(args: &[String]) -> std::process::Output {
    Command::new(SYNCHUB)
        .args(args)
        .arg("--help")
        .output()
        .expect("run synchub")
}

fn assert_synchub_parses(args: &[String], whence: &str) {
    let out = parses(args);
    assert!(
        out.status.success(),
        "{whence}: `synchub {}` is not a command synchub takes: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    // The help of the subcommand itself, not of a parent.
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| !a.starts_with('-'))
        .collect();
    let usage = format!("Usage: synchub {}", words.join(" "));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&usage),
        "{whence}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list of strings: {v}"))
        .iter()
        .map(|s| match s {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The way this test checks a command line catches what it should.
#[test]
fn a_flag_synchub_does_not_take_is_caught() {
    let bad = ["scheduler", "start", "--no-such-flag", "x"].map(String::from);
    assert_eq!(parses(&bad).status.code(), Some(2));
    let bad = ["workers", "start"].map(String::from);
    assert_eq!(parses(&bad).status.code(), Some(2));
}

/// Multi-stage, a non-root user, a health check on /health, and a default
/// command the binary takes, serving on the port it exposes.
#[test]
fn the_dockerfile_builds_in_two_stages_and_runs_the_scheduler_as_a_non_root_user() -> Result<()> {
    let text = std::fs::read_to_string(root().join("Dockerfile"))?;
    // Instructions, continuation lines joined.
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let instr = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(name).filter(|r| r.starts_with(' ')))
            .map(str::trim)
            .collect()
    };
    let from = instr("FROM");
    assert_eq!(from.len(), 2, "{from:?}");
    assert!(from[0].ends_with(" AS build"), "{from:?}");
    assert!(instr("COPY").iter().any(|c| c.starts_with("--from=build ")));
    let user = instr("USER");
    assert_eq!(user.len(), 1);
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "{user:?}");
    let health = instr("HEALTHCHECK");
    assert_eq!(health.len(), 1);
    assert!(
        health[0].contains("CMD curl -fsS http://127.0.0.1:8001/health"),
        "{health:?}"
    );
    assert_eq!(instr("EXPOSE"), ["8001"]);
    let entrypoint: Vec<String> = serde_json::from_str(instr("ENTRYPOINT")[0])?;
    assert_eq!(entrypoint, ["synchub"]);
    let cmd: Vec<String> = serde_json::from_str(instr("CMD")[0])?;
    assert_synchub_parses(&cmd, "Dockerfile CMD");
    assert_eq!(flag(&cmd, "--http-port"), Some("8001"));
    assert_eq!(flag(&cmd, "--http-host"), Some("0.0.0.0"));
    let ignored = std::fs::read_to_string(root().join(".dockerignore"))?;
    assert!(ignored.lines().any(|l| l == "target/"));
    Ok(())
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// redis, postgres, a scheduler and workers; the workers scale (no fixed
/// name or host port); both run the one image with commands synchub takes;
/// secrets come from the environment, never written in the file.
#[test]
fn docker_compose_has_a_scheduler_and_scalable_workers() -> Result<()> {
    let path = root().join("docker-compose.yml");
    let docs = yaml_documents(&path)?;
    assert_eq!(docs.len(), 1);
    let services = docs[0]["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["postgres", "redis", "scheduler", "worker"])
    );
    let (scheduler, worker) = (&services["scheduler"], &services["worker"]);
    assert_eq!(scheduler["build"], ".");
    assert_eq!(scheduler["image"], worker["image"]);
    // `--scale worker=N` needs N containers that do not clash.
    assert!(worker.get("container_name").is_none());
    assert!(worker.get("ports").is_none());
    let command = strings(&scheduler["command"]);
    assert_synchub_parses(&command, "docker-compose.yml scheduler");
    assert_eq!(flag(&command, "--config-dir"), Some("/configs"));
    let published = strings(&scheduler["ports"]);
    assert_eq!(
        published,
        [format!(
            "127.0.0.1:8001:{}",
            flag(&command, "--http-port").unwrap()
        )]
    );
    let worker_command = strings(&worker["command"]);
    assert_synchub_parses(&worker_command, "docker-compose.yml worker");
    let health = strings(&worker["healthcheck"]["test"]);
    assert_eq!(health[..2], ["CMD", "synchub"]);
    assert_synchub_parses(&health[2..], "docker-compose.yml worker healthcheck");
    for service in [scheduler, worker] {
        assert_eq!(service["environment"]["REDIS_URL"], "redis://redis:6379");
        assert!(strings(&service["volumes"]).contains(&"./deploy/configs:/configs:ro".to_string()));
        for (var, value) in service["environment"].as_object().unwrap() {
            if var != "REDIS_URL" {
                let value = value.as_str().unwrap();
                assert!(
                    value.starts_with(&format!("${{{var}:?")),
                    "{var} must come from the environment: {value}"
                );
            }
        }
    }
    assert_eq!(
        services["redis"]["healthcheck"]["test"],
        serde_json::json!(["CMD", "redis-cli", "ping"])
    );
    assert_eq!(
        scheduler["depends_on"]["redis"]["condition"],
        "service_healthy"
    );

    // Rendered by Compose itself where it is installed.
    let compose = Command::new("docker").args(["compose", "version"]).output();
    if compose.is_ok_and(|o| o.status.success()) {
        let out = Command::new("docker")
            .args(["compose", "-f"])
            .arg(&path)
            .args(["config", "--quiet"])
            .env("POSTGRES_PASSWORD", "x")
            .env("SYNCHUB_API_TOKEN", "x")
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("docker compose is not installed: the file was checked as YAML only");
    }
    Ok(())
}

/// Every manifest has its kind, name and labels right; the deployments run
/// commands synchub takes, as a non-root user, and name only services,
/// claims and secrets that exist or that the README says to create.
#[test]
fn the_kubernetes_manifests_are_consistent() -> Result<()> {
    let dir = root().join("deploy/k8s");
    let kustomization = &yaml_documents(&dir.join("kustomization.yaml"))?[0];
    let listed = strings(&kustomization["resources"]);
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "kustomization.yaml lists every manifest");

    let mut docs = Vec::new();
    for file in &listed {
        docs.extend(yaml_documents(&dir.join(file))?);
    }
    let named = |kind: &str| -> BTreeSet<String> {
        docs.iter()
            .filter(|d| d["kind"] == kind)
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    for d in &docs {
        assert!(d["apiVersion"].is_string(), "{d}");
        assert!(d["metadata"]["name"].is_string(), "{d}");
    }
    assert_eq!(
        named("Deployment"),
        BTreeSet::from(["redis", "synchub-scheduler", "synchub-worker"].map(String::from))
    );
    assert_eq!(
        named("Service"),
        BTreeSet::from(["redis-service", "synchub-api"].map(String::from))
    );
    let claims = named("PersistentVolumeClaim");
    // Created by hand from deploy/configs and the operator's secrets (README).
    let config_maps = BTreeSet::from(["synchub-configs".to_string()]);
    let secrets = BTreeSet::from(["synchub-secrets".to_string()]);

    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let name = d["metadata"]["name"].as_str().unwrap();
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        for (k, v) in d["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "{name}: the selector matches its pods");
        }
        let pod = &d["spec"]["template"]["spec"];
        for volume in pod["volumes"].as_array().into_iter().flatten() {
            if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                assert!(claims.contains(claim), "{name}: claim {claim}");
            }
            if let Some(map) = volume["configMap"]["name"].as_str() {
                assert!(config_maps.contains(map), "{name}: config map {map}");
            }
        }
        if name == "redis" {
            continue;
        }
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["securityContext"]["runAsUser"], 10001, "{name}");
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "synchub:latest");
        let command = strings(&container["command"]);
        assert_eq!(command[0], "synchub", "{name}");
        assert_synchub_parses(&command[1..], name);
        let mounts: BTreeSet<&str> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        let volumes: BTreeSet<&str> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            mounts, volumes,
            "{name}: every volume mounted, none missing"
        );
        for env in container["env"].as_array().unwrap() {
            if env["name"] == "REDIS_URL" {
                assert_eq!(env["value"], "redis://redis-service:6379", "{name}");
            } else {
                let secret = env["valueFrom"]["secretKeyRef"]["name"].as_str();
                assert!(
                    secret.is_some_and(|s| secrets.contains(s)),
                    "{name}: {} comes from the secret",
                    env["name"]
                );
            }
        }
        if name == "synchub-scheduler" {
            assert_eq!(d["spec"]["replicas"], 1);
            let port = flag(&command, "--http-port").unwrap();
            assert_eq!(container["ports"][0]["containerPort"], port.parse::<u16>()?);
            for probe in ["livenessProbe", "readinessProbe"] {
                assert_eq!(container[probe]["httpGet"]["path"], "/health", "{probe}");
                assert_eq!(
                    container[probe]["httpGet"]["port"],
                    container["ports"][0]["name"]
                );
            }
        }
    }
    let api = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "synchub-api")
        .unwrap();
    assert_eq!(api["spec"]["selector"]["app"], "synchub-scheduler");

    // Rendered by kubectl's kustomize where it is installed (no cluster
    // needed).
    match Command::new("kubectl")
        .args(["kustomize"])
        .arg(&dir)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rendered = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                rendered.matches("\nkind: ").count() + usize::from(rendered.starts_with("kind: ")),
                docs.len()
            );
        }
        Err(_) => eprintln!("kubectl is not installed: the manifests were checked as YAML only"),
    }
    Ok(())
}

/// The config folder compose and Kubernetes mount: its pipeline and global
/// config validate, and the scheduler would schedule the pipeline.
#[test]
fn the_mounted_config_folder_validates_and_schedules() -> Result<()> {
    let dir = root().join("deploy/configs");
    for file in ["users_sync.yaml", "global_config.yaml"] {
        let out = Command::new(SYNCHUB)
            .args(["config", "validate"])
            .arg(dir.join(file))
            .env("POSTGRES_PASSWORD", "x")
            .env("SYNCHUB_API_TOKEN", "x")
            .output()?;
        assert!(
            out.status.success(),
            "{file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(SYNCHUB)
        .args(["scheduler", "list-jobs", "--output", "json", "--config-dir"])
        .arg(&dir)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(listed["refused"], serde_json::json!([]));
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{listed}");
    assert_eq!(jobs[0]["pipeline"], "users_sync");
    assert_eq!(jobs[0]["slot"], "normal");
    assert_eq!(jobs[0]["cron"], "0 2 * * *");
    Ok(())
}
