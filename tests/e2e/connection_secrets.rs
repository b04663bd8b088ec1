//! Secrets in `datastores.yaml`, through the real binary: a variable's value
//! reaches the database byte for byte, whatever YAML would make of it, and a
//! password never shows, not even one inside a URL pasted into another
//! field: not on stdout or stderr, in the JSON output, in `config show`, nor
//! in any file the run leaves in its state directory.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_synchub");

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn synchub(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("SYNCHUB_LOG", "trace");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run synchub");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A folder with `datastores.yaml` (`datastores` is the text under its
/// `datastores:` key, before the SQLite `dst`) and a pipeline from `pg.items`
/// to `dst.items_copy`.
fn fixture(datastores: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        format!("datastores:\n{datastores}  dst:\n    type: sqlite\n    connection:\n      path: dest.db\n"),
    )
    .unwrap();
    let pipeline = dir.path().join("items.yaml");
    std::fs::write(
        &pipeline,
        "name: items_copy
partition_column: id
partition_step: 100
source_provider:
  data_backend: {type: postgres, datastore_name: pg, table: items}
destination_provider:
  data_backend: {type: sqlite, datastore_name: dst, table: items_copy}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
strategies:
  - {name: full, type: full}
",
    )
    .unwrap();
    (dir, pipeline)
}

fn run_json(pipeline: &Path, state: &Path, env: &[(&str, &str)]) -> Outcome {
    synchub(
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--output",
            "json",
        ],
        env,
    )
}

/// Every file under `dir`, read as bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[track_caller]
fn assert_absent(secret: &str, texts: &[(&str, &str)]) {
    for (name, text) in texts {
        assert!(
            !text.contains(secret),
            "{secret:?} leaked into {name}:\n{text}"
        );
    }
}

/// YAML could read this as a quote, an escape, a line break, a new key.
const NASTY: &str = "te\"st\\x50\\\nx\", schema: \"evil # ${HOME} : [{&*";

#[test]
fn a_variables_bytes_reach_the_server_verbatim() {
    let (dir, pipeline) = fixture(
        "  pg:\n    type: postgres\n    connection:\n      host: 127.0.0.1\n      user: postgres\n      dbname: ${SYNCHUB_TEST_DB}\n",
    );
    let state = dir.path().join("state");
    let out = run_json(&pipeline, &state, &[("SYNCHUB_TEST_DB", NASTY)]);
    // The server quotes back the database it was asked for.
    let message = format!(
        "cannot connect to PostgreSQL at 127.0.0.1:5432 (datastore \"pg\", database \"{NASTY}\", user \"postgres\"): database \"{NASTY}\" does not exist"
    );
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.ends_with(&format!("error: {message}\n")),
        "stderr:\n{}",
        out.stderr
    );
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["error"], message.as_str());

    // The same value where the schema goes: nothing injected.
    let show = synchub(
        &["config", "show", pipeline.to_str().unwrap()],
        &[("SYNCHUB_TEST_DB", NASTY)],
    );
    assert_eq!(show.code, Some(0), "stderr:\n{}", show.stderr);
    let shown: serde_json::Value = serde_norway::from_str(&show.stdout).unwrap();
    assert_eq!(shown["source"]["datastore"]["dbname"], NASTY);
    assert_eq!(
        shown["source"]["datastore"]["schema"],
        serde_json::Value::Null
    );
    assert_eq!(shown["source"]["schema"], "public");
}

#[test]
fn a_password_in_a_url_in_any_field_never_shows() {
    let (dir, pipeline) = fixture(
        "  pg:\n    type: postgres\n    connection:\n      host: postgresql://sync:pw-in-host@127.0.0.1:1/shop\n      port: 1\n      user: sync\n      password: ${SYNCHUB_TEST_PASSWORD}\n      dbname: 'postgres://x:pw-in-dbname@h/db'\n",
    );
    let password = "pw-from-env\"\\x50";
    let env = [("SYNCHUB_TEST_PASSWORD", password)];
    let state = dir.path().join("state");
    let out = run_json(&pipeline, &state, &env);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let error = json["error"].as_str().unwrap();
    // The resolver's words for a name that is no host name.
    let reasons = [
        "error connecting to server: failed to lookup address information: Name or service not known",
        "error connecting to server: failed to lookup address information: Temporary failure in name resolution",
    ];
    let at = "cannot connect to PostgreSQL at postgresql://sync:***@127.0.0.1:1/shop:1 (datastore \"pg\", database \"postgres://x:***@h/db\", user \"sync\"): ";
    assert!(
        reasons.iter().any(|r| error == format!("{at}{r}")),
        "{error}"
    );
    assert!(
        out.stderr.ends_with(&format!("error: {error}\n")),
        "stderr:\n{}",
        out.stderr
    );

    let show = synchub(&["config", "show", pipeline.to_str().unwrap()], &env);
    assert_eq!(show.code, Some(0), "stderr:\n{}", show.stderr);
    let shown: serde_json::Value = serde_norway::from_str(&show.stdout).unwrap();
    let ds = &shown["source"]["datastore"];
    assert_eq!(ds["password"], "***");
    assert_eq!(ds["host"], "postgresql://sync:***@127.0.0.1:1/shop");
    assert_eq!(ds["dbname"], "postgres://x:***@h/db");

    let validate = synchub(&["config", "validate", pipeline.to_str().unwrap()], &env);
    let files = files_under(dir.path())
        .into_iter()
        .filter(|(p, _)| p.file_name().is_some_and(|n| n != "datastores.yaml"))
        .map(|(p, bytes)| {
            (
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        })
        .collect::<Vec<_>>();
    assert!(
        files.iter().any(|(p, _)| p.ends_with("state.db")),
        "the run left no state store: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for secret in ["pw-in-host", "pw-in-dbname", password, "pw-from-env"] {
        let mut texts = vec![
            ("run stdout", out.stdout.as_str()),
            ("run stderr", out.stderr.as_str()),
            ("config show", show.stdout.as_str()),
            ("config show stderr", show.stderr.as_str()),
            ("config validate", validate.stdout.as_str()),
            ("config validate stderr", validate.stderr.as_str()),
        ];
        texts.extend(files.iter().map(|(p, t)| (p.as_str(), t.as_str())));
        assert_absent(secret, &texts);
    }
}

#[test]
fn a_missing_variable_names_file_line_and_variable() {
    let (dir, pipeline) = fixture(
        "  pg:\n    type: postgres\n    connection:\n      url: ${SYNCHUB_TEST_UNSET_URL}\n      # ${NOT_READ_IN_A_COMMENT}\n      password: ${SYNCHUB_TEST_UNSET_URL:-}\n",
    );
    let mut cmd = Command::new(BIN);
    cmd.args(["config", "validate", pipeline.to_str().unwrap()])
        .env_remove("SYNCHUB_TEST_UNSET_URL")
        .env_remove("NOT_READ_IN_A_COMMENT");
    let out = cmd.output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "{}:5: environment variable SYNCHUB_TEST_UNSET_URL is not set; export it or edit the file\n",
            dir.path().join("datastores.yaml").display()
        )
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_url_names_the_datastore_and_field_not_the_password() {
    let (dir, pipeline) = fixture(
        "  pg:\n    type: postgres\n    connection:\n      url: 'postgresql://sync:hunter2@db.example:54x2/shop'\n",
    );
    let out = synchub(&["config", "validate", pipeline.to_str().unwrap()], &[]);
    assert_eq!(
        out.stderr,
        format!(
            "{}: datastores.pg.connection.url: not a PostgreSQL URL: the port must be a number from 1 to 65535\n",
            dir.path().join("datastores.yaml").display()
        )
    );
    assert_eq!(out.code, Some(2));
}
