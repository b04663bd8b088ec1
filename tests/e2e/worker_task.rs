//! A run planned by one process and executed, one partition, by another:
//! `synchub run --emit-tasks` writes the run's partition tasks, `synchub
//! worker run-task` commits one of them in the destination, and a normal
//! `synchub run` afterwards resumes the run and finishes the rest.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::Result;
use serde_json::Value;

use crate::common::{connect, difference, scalar, Schemas};

const ROWS: i64 = 10_000;
const STEP: i64 = 2_500;
const PASSWORD_VAR: &str = "SYNCHUB_WTASK_PASSWORD";

fn pipeline_yaml() -> String {
    format!(
        "name: worker_task
partition_column: id
partition_step: {STEP}
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: title, dest: title, data_type: text}}
strategies:
  - {{name: full, type: full, page_size: 1000}}
"
    )
}

/// Both datastores take their password from a variable (PostgreSQL here
/// trusts local connections, so any value connects).
fn datastores_yaml(s: &Schemas) -> String {
    let store = |schema: &str| {
        format!(
            "{{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, password: '${{{PASSWORD_VAR}}}', dbname: test, schema: {schema}}}}}"
        )
    };
    format!(
        "datastores:\n  src: {}\n  dst: {}\n",
        store(&s.src),
        store(&s.dst)
    )
}

fn synchub(args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synchub"));
    cmd.args(args)
        .env("SYNCHUB_LOG", "warn")
        .env_remove(PASSWORD_VAR);
    if let Some(p) = password {
        cmd.env(PASSWORD_VAR, p);
    }
    cmd.output().expect("run synchub")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The `[start, end)` of a task's partition on `id`.
fn id_range(task: &Value) -> (i64, i64) {
    let ranges = task["partition"]["ranges"].as_array().expect("ranges");
    assert_eq!(ranges.len(), 1, "one dimension: {task}");
    let range = &ranges[0][1]["Range"];
    (
        range["start"]["Int"].as_i64().expect("start"),
        range["end"]["Int"].as_i64().expect("end"),
    )
}

#[tokio::test]
async fn a_task_run_by_a_second_process_is_committed_and_the_run_resumes_past_it() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "wtask").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint PRIMARY KEY, qty int, title text);
             INSERT INTO {src}.items SELECT g, g % 7, 'item ' || g FROM generate_series(1, {ROWS}) g;",
            src = s.src
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("datastores.yaml"), datastores_yaml(&s))?;
    let pipeline = dir.path().join("items.yaml");
    std::fs::write(&pipeline, pipeline_yaml())?;
    let state = dir.path().join("state");
    let tasks = dir.path().join("tasks");
    let secret = format!("not-to-be-shipped-{}", std::process::id());
    let (pipeline, state_dir) = (pipeline.to_str().unwrap(), state.to_str().unwrap());

    // The coordinator plans the run and writes its tasks.
    let out = synchub(
        &[
            "run",
            pipeline,
            "--strategy",
            "full",
            "--state-dir",
            state_dir,
            "--emit-tasks",
            tasks.to_str().unwrap(),
        ],
        Some(&secret),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "emit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let emitted = json(&out);
    let run_id = emitted["run_id"].as_str().expect("run_id").to_string();
    let files: Vec<String> = emitted["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(emitted["partitions_total"], files.len() as u64);
    assert!(files.len() >= 4, "{emitted}");
    // Nothing written yet.
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {}.items", s.dst)).await?,
        0
    );

    // The task carries the variable's name, never its value.
    let task_file = &files[1];
    let text = std::fs::read_to_string(task_file)?;
    assert!(!text.contains(&secret), "the secret was serialized");
    assert!(text.contains(&format!("${{{PASSWORD_VAR}}}")), "{text}");
    let task: Value = serde_json::from_str(&text)?;
    // Planned into an empty table: every task writes as into one (a
    // PostgreSQL `COPY` straight in), whichever commits first.
    assert_eq!(task["run"]["destination_started_empty"], true, "{text}");
    let partition_id = task["partition"]["id"].as_str().unwrap().to_string();
    let (start, end) = id_range(&task);

    // A worker without the variable cannot resolve the datastores.
    let out = synchub(&["worker", "run-task", task_file], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "environment variable {PASSWORD_VAR} is not set (the task names it; set it where the task runs)"
        )),
        "{stderr}"
    );

    // A second process executes the task, from standard input as a
    // worker would receive it.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["worker", "run-task", "-"])
        .env("SYNCHUB_LOG", "warn")
        .env(PASSWORD_VAR, &secret)
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = worker.stdin.take().unwrap();
        stdin.write_all(text.as_bytes())?;
    }
    let out = worker.wait_with_output()?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "worker: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = json(&out);
    let in_range = end.min(ROWS + 1) - start.max(1);
    assert_eq!(outcome["status"], "committed");
    assert_eq!(outcome["run_id"], run_id.as_str());
    assert_eq!(outcome["partition"], partition_id.as_str());
    assert_eq!(outcome["rows_inserted"], in_range);
    assert_eq!(outcome["reports"][0]["status"], "committed");

    // Exactly that partition's rows, and its checkpoint, are in the destination.
    let src_part = format!(
        "(SELECT * FROM {}.items WHERE id >= {start} AND id < {end}) p",
        s.src
    );
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {}.items", s.dst)).await?,
        in_range
    );
    assert_eq!(
        difference(&client, &src_part, &format!("{}.items", s.dst)).await?,
        0
    );
    assert_eq!(
        scalar(
            &client,
            &format!(
                "SELECT count(*) FROM {}._synchub_checkpoints WHERE run_id = '{run_id}' AND partition_id = '{partition_id}'",
                s.dst
            )
        )
        .await?,
        1
    );

    // A normal run resumes the run: the worker's partition is skipped as
    // committed, the others are done.
    let out = synchub(
        &[
            "run",
            pipeline,
            "--strategy",
            "full",
            "--state-dir",
            state_dir,
            "--output",
            "json",
        ],
        Some(&secret),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "resume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json(&out);
    assert_eq!(summary["run_id"], run_id.as_str());
    assert_eq!(summary["partitions_skipped"], 1);
    assert_eq!(summary["partitions_done"], files.len() as u64 - 1);
    assert_eq!(summary["rows_inserted"], ROWS - in_range);
    assert_eq!(
        difference(
            &client,
            &format!("{}.items", s.src),
            &format!("{}.items", s.dst)
        )
        .await?,
        0
    );
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {}.items", s.dst)).await?,
        ROWS
    );
    Ok(())
}

#[test]
fn a_task_that_is_not_one_is_refused_with_its_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("task.json");
    std::fs::write(&file, "{\"run\": {}}").unwrap();
    let out = synchub(&["worker", "run-task", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {}: partition task: ", file.display())),
        "{stderr}"
    );
    let missing = Path::new("/nonexistent/task.json");
    let out = synchub(&["worker", "run-task", missing.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("error: cannot read task file /nonexistent/task.json: "));
}
