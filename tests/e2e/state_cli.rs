//! End-to-end tests of `synchub state show|reset|cleanup`, `synchub history`
//! and the per-run metrics and log files: each test writes a SQLite pipeline
//! into its own temporary folder and runs the real binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_synchub");

#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    #[track_caller]
    fn ok(self) -> Outcome {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout as one JSON value.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim_end()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON value ({e}): {:?}; stderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// `datastores.yaml` with SQLite `src` (source.db) and `dst` (dest.db),
    /// and `pipeline.yaml` syncing `items` (ids 1..=n) to `items_copy` in
    /// partitions of 100 ids, with strategies `full` and `nightly`.
    fn new(n: i64) -> Fixture {
        let fx = Fixture {
            dir: tempfile::tempdir().expect("create temp dir"),
        };
        fx.write(
            "datastores.yaml",
            "datastores:\n  src:\n    type: sqlite\n    connection:\n      path: source.db\n  dst:\n    type: sqlite\n    connection:\n      path: dest.db\n",
        );
        fx.write("pipeline.yaml", PIPELINE);
        let src = fx.source();
        src.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
            .unwrap();
        src.execute_batch("BEGIN").unwrap();
        for id in 1..=n {
            src.execute(
                "INSERT INTO items VALUES (?1, ?2, ?3)",
                rusqlite::params![id, format!("item-{id}"), id * 3],
            )
            .unwrap();
        }
        src.execute_batch("COMMIT").unwrap();
        fx
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write fixture");
        p
    }

    fn source(&self) -> Connection {
        Connection::open(self.path("source.db")).expect("open source.db")
    }

    fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// `synchub <args...> --state-dir <tmp>/state`, logs off.
    fn synchub(&self, args: &[&str]) -> Outcome {
        let out = Command::new(BIN)
            .args(args)
            .arg("--state-dir")
            .arg(self.state_dir())
            .env("SYNCHUB_LOG", "off")
            .output()
            .expect("run synchub");
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `synchub run pipeline.yaml --output json [--strategy s]`: the summary.
    fn run(&self, strategy: &str) -> Outcome {
        let p = self.path("pipeline.yaml");
        self.synchub(&[
            "run",
            p.to_str().unwrap(),
            "--strategy",
            strategy,
            "--output",
            "json",
        ])
    }

    #[track_caller]
    fn run_ok(&self, strategy: &str) -> Value {
        self.run(strategy).ok().json()
    }

    fn metrics(&self, run_id: &str) -> PathBuf {
        self.state_dir()
            .join("metrics/items_copy")
            .join(format!("{run_id}.json"))
    }

    fn log(&self, run_id: &str) -> PathBuf {
        self.state_dir()
            .join("logs/items_copy")
            .join(format!("{run_id}.log"))
    }

    /// Every file under the state directory, relative to it.
    fn state_files(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.insert(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.state_dir(), &self.state_dir(), &mut out);
        out
    }
}

const PIPELINE: &str = "name: items_copy
partition_column: id
partition_step: 100

source_provider:
  data_backend:
    type: sqlite
    datastore_name: src
    table: items

destination_provider:
  data_backend:
    type: sqlite
    datastore_name: dst
    table: items_copy

column_map:
  - source: id
    dest: id
    roles: [unique_column, partition_column]
    data_type: bigint
  - source: name
    dest: name
    data_type: string
    length: 10
  - source: qty
    dest: qty
    data_type: bigint

strategies:
  - name: full
    type: full
    page_size: 1000
  - name: nightly
    type: full
    page_size: 1000
";

fn run_id(summary: &Value) -> String {
    summary["run_id"].as_str().expect("run_id").to_string()
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Makes item `id`'s name too long for varchar(10): its partition fails.
fn break_item(fx: &Fixture, id: i64) {
    fx.source()
        .execute(
            "UPDATE items SET name = 'much-too-long-a-name' WHERE id = ?1",
            [id],
        )
        .unwrap();
}

fn fix_item(fx: &Fixture, id: i64) {
    fx.source()
        .execute("UPDATE items SET name = 'item-' || id WHERE id = ?1", [id])
        .unwrap();
}

#[test]
fn show_and_history_report_completed_runs() {
    let fx = Fixture::new(250);
    let first = run_id(&fx.run_ok("full"));

    let out = fx.synchub(&["state", "show", "items_copy"]).ok();
    let text = &out.stdout;
    for want in [
        "items_copy (state store ".to_string(),
        "  strategy full\n".to_string(),
        format!("    last run    {first} (completed)\n"),
        "    rows        250 committed (250 inserted, 0 updated, 0 unchanged), 0 deleted\n"
            .to_string(),
        "    progress    3/3 partitions\n".to_string(),
        "    watermark   none\n".to_string(),
        "    runs        1 recorded\n".to_string(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from:\n{text}");
    }
    assert!(!text.contains("error"), "{text}");

    let second = run_id(&fx.run_ok("full"));
    assert_ne!(first, second, "a completed run is never resumed");

    let s = fx
        .synchub(&["state", "show", "items_copy", "--output", "json"])
        .ok()
        .json();
    assert_eq!(s["pipeline"], "items_copy");
    let strategies = s["strategies"].as_array().unwrap();
    assert_eq!(strategies.len(), 1, "{s}");
    let full = &strategies[0];
    assert_eq!(full["strategy"], "full");
    assert_eq!(full["runs"], 2);
    assert_eq!(full["watermark"], Value::Null);
    let last = &full["last_run"];
    assert_eq!(last["run_id"], second.as_str());
    assert_eq!(last["status"], "completed");
    assert_eq!(last["rows"], 250);
    assert_eq!(last["rows_unchanged"], 250);
    assert_eq!(last["error"], Value::Null);
    assert!(last["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(last["finished_at"].as_str().unwrap() >= last["started_at"].as_str().unwrap());
    assert_eq!(
        full["progress"],
        serde_json::json!({"partitions_done": 3, "partitions_total": 3})
    );

    // The pipeline file names the same pipeline; --strategy filters.
    let by_file = fx
        .synchub(&[
            "state",
            "show",
            fx.path("pipeline.yaml").to_str().unwrap(),
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(by_file, s);
    let nightly = fx
        .synchub(&["state", "show", "items_copy", "--strategy", "nightly"])
        .ok();
    assert_eq!(
        nightly.stdout,
        format!(
            "items_copy [nightly]: no state recorded in {}\n",
            fx.state_dir().join("state.db").display()
        )
    );

    // History: newest first, as a table and as JSON.
    let out = fx.synchub(&["history", "items_copy"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("RUN ID "), "{}", lines[0]);
    for (line, id) in lines[1..].iter().zip([&second, &first]) {
        assert!(line.starts_with(id.as_str()), "{line}");
        assert!(line.contains(" full "), "{line}");
        assert!(line.contains(" completed "), "{line}");
        assert!(line.contains(" 250 "), "{line}");
        assert!(line.ends_with("3/3"), "{line}");
    }
    let h = fx
        .synchub(&["history", "items_copy", "--output", "json"])
        .ok()
        .json();
    let runs = h["runs"].as_array().unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    assert_eq!(runs[1]["rows_inserted"], 250);
    assert_eq!(runs[0]["rows_unchanged"], 250);

    let h = fx
        .synchub(&["history", "items_copy", "--limit", "1", "--output", "json"])
        .ok()
        .json();
    assert_eq!(h["runs"].as_array().unwrap().len(), 1);
    assert_eq!(h["runs"][0]["run_id"], second.as_str());
    let h = fx
        .synchub(&["history", "items_copy", "--strategy", "nightly"])
        .ok();
    assert_eq!(h.stdout, "no runs of items_copy [nightly] recorded\n");
}

#[test]
fn metrics_and_log_files_record_each_run() {
    let fx = Fixture::new(1000);
    break_item(&fx, 555);

    // A failed run: metrics say so, the log ends with the error.
    let out = fx.run("full");
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let failed = out.json();
    let id = run_id(&failed);
    let m: Value = serde_json::from_slice(&std::fs::read(fx.metrics(&id)).unwrap()).unwrap();
    assert_eq!(m["run_id"], id.as_str());
    assert_eq!(m["pipeline"], "items_copy");
    assert_eq!(m["strategy"], "full");
    assert_eq!(m["status"], "failed");
    assert_eq!(m["errors"], 1);
    let error = m["error"].as_str().unwrap();
    assert!(error.contains("row id=555, column \"name\""), "{error}");
    assert_eq!(m["partitions_processed"], 5);
    assert_eq!(m["partitions_skipped"], 0);
    assert_eq!(m["rows_inserted"], 499);
    assert_eq!(m["attempt"], 1);
    let log = log_lines(&fx.log(&id));
    let last = log.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["message"].as_str().unwrap().contains("row id=555"),
        "{last}"
    );
    let committed: Vec<&Value> = log
        .iter()
        .filter(|l| l.get("partition").is_some())
        .collect();
    assert_eq!(committed.len(), 5);

    // Resumed: same run id, the log goes on, the metrics count the attempt.
    fix_item(&fx, 555);
    let s = fx.run_ok("full");
    assert_eq!(run_id(&s), id);
    let m: Value = serde_json::from_slice(&std::fs::read(fx.metrics(&id)).unwrap()).unwrap();
    let keys = [
        "run_id",
        "pipeline",
        "strategy",
        "status",
        "started_at",
        "completed_at",
        "duration_seconds",
        "rows_processed",
        "rows_inserted",
        "rows_updated",
        "rows_deleted",
        "rows_unchanged",
        "partitions_processed",
        "partitions_skipped",
        "errors",
        "error",
        "operators",
    ];
    for k in keys {
        assert!(m.get(k).is_some(), "{k} missing from {m}");
    }
    assert_eq!(m["status"], "completed");
    assert_eq!(m["errors"], 0);
    assert_eq!(m["error"], Value::Null);
    assert_eq!(m["attempt"], 2);
    assert_eq!(m["rows_processed"], s["rows_read"]);
    assert_eq!(m["rows_processed"], 501);
    assert_eq!(m["rows_inserted"], 501);
    assert_eq!(m["rows_updated"], 0);
    assert_eq!(m["rows_deleted"], 0);
    assert_eq!(m["rows_unchanged"], 0);
    assert_eq!(m["partitions_processed"], 6);
    assert_eq!(m["partitions_skipped"], 5);
    assert_eq!(m["operators"], s["operators"]);
    assert!(!m["operators"].as_array().unwrap().is_empty());
    assert!(m["duration_seconds"].as_f64().unwrap() >= 0.0);
    let started = chrono::DateTime::parse_from_rfc3339(m["started_at"].as_str().unwrap()).unwrap();
    let completed =
        chrono::DateTime::parse_from_rfc3339(m["completed_at"].as_str().unwrap()).unwrap();
    assert!(started <= completed);
    let apart = (completed - started).num_milliseconds() as f64 / 1000.0;
    let duration = m["duration_seconds"].as_f64().unwrap();
    assert!((apart - duration).abs() <= 0.002, "{apart} vs {duration}");

    let log = log_lines(&fx.log(&id));
    for line in &log {
        for k in ["timestamp", "level", "message", "run_id"] {
            assert!(line.get(k).is_some(), "{k} missing from {line}");
        }
        assert_eq!(line["run_id"], id.as_str());
        let ts = line["timestamp"].as_str().unwrap();
        let t = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
        assert_eq!(t.offset().local_minus_utc(), 0, "{ts}");
        assert!(["INFO", "WARN", "ERROR"].contains(&line["level"].as_str().unwrap()));
    }
    // Eleven partitions committed over both attempts, every row once.
    let committed: Vec<&Value> = log
        .iter()
        .filter(|l| l.get("partition").is_some())
        .collect();
    assert_eq!(committed.len(), 11);
    let rows: u64 = committed.iter().map(|l| l["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, 1000);
    let partitions: BTreeSet<&str> = committed
        .iter()
        .map(|l| l["partition"].as_str().unwrap())
        .collect();
    assert_eq!(partitions.len(), 11);
    let ends: Vec<&Value> = log.iter().filter(|l| l.get("status").is_some()).collect();
    assert_eq!(ends.len(), 2);
    assert_eq!(ends[0]["status"], "failed");
    assert_eq!(ends[1]["status"], "completed");
    assert_eq!(log.last().unwrap()["level"], "INFO");

    // state show counts both attempts.
    let s = fx
        .synchub(&["state", "show", "items_copy", "--output", "json"])
        .ok()
        .json();
    let full = &s["strategies"][0];
    assert_eq!(full["last_run"]["rows"], 1000);
    assert_eq!(
        full["progress"],
        serde_json::json!({"partitions_done": 11, "partitions_total": 11})
    );
}

#[test]
fn reset_makes_the_next_run_redo_every_partition() {
    let fx = Fixture::new(1000);
    break_item(&fx, 555);
    let out = fx.run("full");
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let failed = run_id(&out.json());

    let show = fx
        .synchub(&["state", "show", "items_copy", "--output", "json"])
        .ok()
        .json();
    let last = &show["strategies"][0]["last_run"];
    assert_eq!(last["status"], "failed");
    assert!(last["error"].as_str().unwrap().contains("row id=555"));
    assert_eq!(
        show["strategies"][0]["progress"],
        serde_json::json!({"partitions_done": 5, "partitions_total": 11})
    );

    // Another strategy has nothing to reset.
    let out = fx
        .synchub(&["state", "reset", "items_copy", "--strategy", "nightly"])
        .ok();
    assert_eq!(
        out.stdout,
        format!(
            "items_copy [nightly]: nothing to reset (no runs or watermark in {})\n",
            fx.state_dir().join("state.db").display()
        )
    );

    let r = fx
        .synchub(&[
            "state",
            "reset",
            "items_copy",
            "--strategy",
            "full",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(r["pipeline"], "items_copy");
    assert_eq!(r["strategy"], "full");
    assert_eq!(
        r["runs_removed"],
        serde_json::json!([{"run_id": failed, "strategy": "full", "status": "failed"}])
    );
    assert_eq!(r["partitions_removed"], 5);
    assert_eq!(r["watermarks_removed"], serde_json::json!([]));

    let show = fx.synchub(&["state", "show", "items_copy"]).ok();
    assert!(
        show.stdout.starts_with("items_copy: no state recorded in "),
        "{}",
        show.stdout
    );
    assert_eq!(
        fx.synchub(&["history", "items_copy"]).ok().stdout,
        "no runs of items_copy recorded\n"
    );

    // The next run is a new one: nothing is skipped, every partition is redone.
    fix_item(&fx, 555);
    let s = fx.run_ok("full");
    assert_ne!(run_id(&s), failed);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["partitions_total"], 11);
    assert_eq!(s["partitions_skipped"], 0);
    assert_eq!(s["partitions_done"], 11);
    // Partitions whose checksums already match are not read again.
    assert_eq!(s["rows_read"], 501);
    assert_eq!(s["rows_inserted"], 501);
    assert_eq!(s["rows_unchanged"], 499);

    // Without --strategy, everything of the pipeline goes; text says what.
    let out = fx.synchub(&["state", "reset", "items_copy"]).ok();
    assert!(
        out.stdout.starts_with(
            "reset items_copy: removed 1 run, 11 committed partitions and 0 watermarks\n"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&run_id(&s)), "{}", out.stdout);
}

#[test]
fn cleanup_keeps_the_latest_run_of_each_strategy() {
    let fx = Fixture::new(250);
    let full: Vec<String> = (0..3).map(|_| run_id(&fx.run_ok("full"))).collect();
    let nightly = run_id(&fx.run_ok("nightly"));
    for id in full.iter().chain([&nightly]) {
        assert!(fx.metrics(id).is_file(), "{id}");
        assert!(fx.log(id).is_file(), "{id}");
    }

    // Nothing is 30 days old.
    let r = fx
        .synchub(&["state", "cleanup", "--output", "json"])
        .ok()
        .json();
    assert_eq!(r["days"], 30);
    assert_eq!(r["runs_removed"], serde_json::json!([]));
    assert_eq!(r["files_removed"], serde_json::json!([]));

    let out = fx.synchub(&["state", "cleanup", "--days", "0"]).ok();
    assert!(
        out.stdout
            .starts_with("removed 2 runs that finished before "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(", 6 committed partitions and 4 metrics/log files;"),
        "{}",
        out.stdout
    );
    for id in &full[..2] {
        assert!(
            out.stdout
                .contains(&format!("  items_copy [full] run {id} (completed)\n")),
            "{}",
            out.stdout
        );
        assert!(!fx.metrics(id).exists());
        assert!(!fx.log(id).exists());
    }
    for id in [&full[2], &nightly] {
        assert!(fx.metrics(id).is_file(), "{id}");
        assert!(fx.log(id).is_file(), "{id}");
    }
    let h = fx
        .synchub(&["history", "items_copy", "--output", "json"])
        .ok()
        .json();
    let mut ids: Vec<&str> = h["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![full[2].as_str(), nightly.as_str()];
    want.sort();
    assert_eq!(ids, want);

    // A second cleanup finds nothing more: the latest runs stay.
    let r = fx
        .synchub(&["state", "cleanup", "--days", "0", "--output", "json"])
        .ok()
        .json();
    assert_eq!(r["runs_removed"], serde_json::json!([]));

    // After a reset, the forgotten runs' files go with the next cleanup.
    fx.synchub(&["state", "reset", "items_copy", "--strategy", "nightly"])
        .ok();
    assert!(fx.metrics(&nightly).is_file());
    let r = fx
        .synchub(&["state", "cleanup", "--days", "0", "--output", "json"])
        .ok()
        .json();
    assert_eq!(r["runs_removed"], serde_json::json!([]));
    let files: Vec<&str> = r["files_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            fx.log(&nightly).display().to_string(),
            fx.metrics(&nightly).display().to_string()
        ]
    );
    assert!(fx.metrics(&full[2]).is_file());
}

#[test]
fn a_corrupt_state_store_is_refused_and_left_alone() {
    let fx = Fixture::new(10);
    std::fs::create_dir_all(fx.state_dir()).unwrap();
    let db = fx.state_dir().join("state.db");
    let garbage = b"name,rows\nusers,10\nthis is a CSV file, not SQLite\n".repeat(40);
    std::fs::write(&db, &garbage).unwrap();
    let message = format!(
        "error: state store {}: not a SyncHub state store (file is not a database); move it away or pass another --state-dir\n",
        db.display()
    );
    let pipeline = fx.path("pipeline.yaml");
    let commands: [&[&str]; 6] = [
        &["state", "show", "items_copy"],
        &["state", "show", "items_copy", "--output", "json"],
        &["history", "items_copy"],
        &["state", "reset", "items_copy"],
        &["state", "cleanup", "--days", "0"],
        &["run", pipeline.to_str().unwrap()],
    ];
    for args in commands {
        let out = fx.synchub(args);
        assert_eq!(out.stderr, message, "{args:?}");
        assert!(
            matches!(out.code, Some(1) | Some(2)),
            "{args:?}: exit {:?}",
            out.code
        );
        assert_eq!(std::fs::read(&db).unwrap(), garbage, "{args:?}");
        assert_eq!(
            fx.state_files(),
            BTreeSet::from(["state.db".to_string()]),
            "{args:?}"
        );
    }
}

#[test]
fn a_newer_state_store_is_refused() {
    let fx = Fixture::new(10);
    std::fs::create_dir_all(fx.state_dir()).unwrap();
    let db = fx.state_dir().join("state.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 7")
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let out = fx.synchub(&["state", "show", "items_copy"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        format!(
            "error: state store {}: written by a newer SyncHub (state version 7, this build reads 4); upgrade synchub or use another --state-dir\n",
            db.display()
        )
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn state_commands_without_a_store_create_nothing() {
    let fx = Fixture::new(10);
    let out = fx.synchub(&["state", "show", "items_copy"]).ok();
    assert_eq!(
        out.stdout,
        format!(
            "items_copy: no state recorded in {}\n",
            fx.state_dir().join("state.db").display()
        )
    );
    let s = fx
        .synchub(&["state", "show", "items_copy", "--output", "json"])
        .ok()
        .json();
    assert_eq!(s["strategies"], serde_json::json!([]));
    let h = fx
        .synchub(&["history", "items_copy", "--output", "json"])
        .ok()
        .json();
    assert_eq!(h["runs"], serde_json::json!([]));
    fx.synchub(&["state", "reset", "items_copy"]).ok();
    fx.synchub(&["state", "cleanup"]).ok();
    assert!(!fx.state_dir().exists());

    // A name that could be a path is neither a name nor a file.
    let out = fx.synchub(&["state", "show", "../items_copy"]);
    assert_eq!(out.code, Some(2));
    assert_eq!(
        out.stderr,
        "error: \"../items_copy\" is neither a pipeline name (letters, digits, '_' and '-') nor a pipeline file\n"
    );

    // A store with other pipelines names them.
    fx.run_ok("full");
    let out = fx.synchub(&["state", "show", "items"]).ok();
    assert_eq!(
        out.stdout,
        format!(
            "items: no state recorded in {}\npipelines with state there: items_copy\n",
            fx.state_dir().join("state.db").display()
        )
    );
}
