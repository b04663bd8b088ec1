//! `config validate` and `plan` say what `run` would: the file's own YAML
//! errors first, `sync_type` checked in both config forms, and the plan of a
//! delta read from the state directory the runs use.

use std::path::Path;
use std::process::Command;

fn synchub(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .current_dir(dir)
        .args(args)
        .env("SYNCHUB_LOG", "off")
        .output()
        .expect("run synchub");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DATASTORES: &str = "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n";

fn pipeline(extra: &str) -> String {
    format!(
        "name: items_copy
{extra}source_provider:
  data_backend: {{type: sqlite, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: sqlite, datastore_name: dst, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: v, dest: v, data_type: bigint}}
strategies:
  - name: delta
    type: delta
    column: v
    primary_partitions: [{{column: v, step: 100, data_type: int}}]
"
    )
}

#[test]
fn a_malformed_file_is_reported_at_its_line_without_a_datastores_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "name: x\nsource_provider: [\n").unwrap();
    let (code, stdout, stderr) = synchub(dir.path(), &["config", "validate", "bad.yaml"]);
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "bad.yaml:3:1: invalid YAML: did not find expected node content, while parsing a flow node\n"
    );
    // `run` says the same.
    let (code, _, stderr) = synchub(dir.path(), &["run", "bad.yaml", "--state-dir", "st"]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "error: bad.yaml:3:1: invalid YAML: did not find expected node content, while parsing a flow node\n"
    );
}

#[test]
fn the_simple_form_checks_sync_type() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("datastores.yaml"), DATASTORES).unwrap();
    for (sync_type, message) in [
        (
            "aggregate",
            "p.yaml: sync_type: not supported yet: sync_type: aggregate",
        ),
        (
            "bogus",
            "p.yaml: sync_type: unknown sync_type \"bogus\"; use row-level or aggregate",
        ),
    ] {
        std::fs::write(
            dir.path().join("p.yaml"),
            pipeline(&format!("sync_type: {sync_type}\n")),
        )
        .unwrap();
        let (code, _, stderr) = synchub(dir.path(), &["config", "validate", "p.yaml"]);
        assert_eq!(
            (code, stderr.as_str()),
            (2, format!("{message}\n").as_str())
        );
        let (code, _, stderr) = synchub(dir.path(), &["run", "p.yaml", "--state-dir", "st"]);
        assert_eq!(
            (code, stderr.as_str()),
            (2, format!("error: {message}\n").as_str())
        );
        assert!(!dir.path().join("warehouse.db").exists(), "{sync_type}");
    }
    std::fs::write(
        dir.path().join("p.yaml"),
        pipeline("sync_type: row-level\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = synchub(dir.path(), &["config", "validate", "p.yaml"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "p.yaml: ok (items_copy)\n"),
        "{stderr}"
    );
}

#[test]
fn plan_reads_the_watermark_from_the_state_dir_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let source = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    source
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
             WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 1000)
             INSERT INTO items SELECT i, i FROM g;",
        )
        .unwrap();
    std::fs::write(dir.path().join("datastores.yaml"), DATASTORES).unwrap();
    std::fs::write(dir.path().join("p.yaml"), pipeline("")).unwrap();
    let partitions = |state: &str| {
        let (code, stdout, stderr) = synchub(dir.path(), &["plan", "p.yaml", "--state-dir", state]);
        assert_eq!(code, 0, "{stderr}");
        stdout
            .lines()
            .skip_while(|l| !l.starts_with("partitions: "))
            .skip(1)
            .map(|l| l.trim().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        partitions("runs").len(),
        11,
        "no watermark yet: every window"
    );
    let (code, _, stderr) = synchub(dir.path(), &["run", "p.yaml", "--state-dir", "runs"]);
    assert_eq!(code, 0, "{stderr}");
    source
        .execute_batch("UPDATE items SET v = 1050 WHERE id = 3")
        .unwrap();
    // The watermark (1000) in `runs` leaves the window from there; another
    // state directory knows none.
    assert_eq!(partitions("runs"), ["v_1000_1100"]);
    assert_eq!(partitions("elsewhere").len(), 11);
}
