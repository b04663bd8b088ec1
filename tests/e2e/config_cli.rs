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

/// A test folder: `source.db` made by `source_sql`, the SQLite datastores,
/// and an open connection to the source for later changes.
fn sqlite_fixture(source_sql: &str) -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let source = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    source.execute_batch(source_sql).unwrap();
    std::fs::write(dir.path().join("datastores.yaml"), DATASTORES).unwrap();
    (dir, source)
}

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
            "p.yaml: sync_type: an aggregate sync is written in the stage form: backends, and a data_fetch stage whose source lists the columns (with expr) and group_by",
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
    let (dir, source) = sqlite_fixture(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 1000)
         INSERT INTO items SELECT i, i FROM g;",
    );
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

/// `pipeline(extra)` with `extra` (indented lines) added to its strategy.
fn with_strategy_field(field: &str) -> String {
    pipeline("").replace(
        "    type: delta\n",
        &format!("    type: delta\n    {field}\n"),
    )
}

#[test]
fn keys_that_would_be_ignored_are_refused_by_validate_and_run_alike() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("datastores.yaml"), DATASTORES).unwrap();
    let cases = [
        (
            "prevent_update_unless_changed: false",
            "p.yaml: not supported yet: strategies[0].prevent_update_unless_changed: false",
        ),
        (
            "use_pagination: false",
            "p.yaml: not supported yet: strategies[0].use_pagination: false",
        ),
        (
            "data_fetch: {enabled: false}",
            "p.yaml: not supported yet: strategies[0].data_fetch.enabled: false",
        ),
        (
            "pipeline_config: {max_concurrent_batches: 4}",
            "p.yaml: not supported yet: strategies[0].pipeline_config.max_concurrent_batches: 4 (use max_concurrent_partitions)",
        ),
        (
            "cron: 'this is not cron'",
            "p.yaml: strategies[0].cron: \"this is not cron\" is not a cron expression (Invalid pattern: Pattern must have between 5 and 7 fields.); write five fields, minute hour day-of-month month day-of-week, e.g. \"*/15 * * * *\"",
        ),
    ];
    for (field, message) in cases {
        std::fs::write(dir.path().join("p.yaml"), with_strategy_field(field)).unwrap();
        let (code, stdout, stderr) = synchub(dir.path(), &["config", "validate", "p.yaml"]);
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (2, "", format!("{message}\n").as_str()),
            "{field}"
        );
        let (code, _, stderr) = synchub(dir.path(), &["run", "p.yaml", "--state-dir", "st"]);
        assert_eq!(
            (code, stderr.as_str()),
            (2, format!("error: {message}\n").as_str()),
            "{field}"
        );
        assert!(!dir.path().join("warehouse.db").exists(), "{field}");
    }
    // What SyncHub does anyway is accepted; a strategy's batch size is used.
    for field in [
        "prevent_update_unless_changed: true",
        "use_pagination: true",
        "cron: '*/15 * * * *'",
        "pipeline_config: {batch_size: 123, max_concurrent_batches: 1}",
    ] {
        std::fs::write(dir.path().join("p.yaml"), with_strategy_field(field)).unwrap();
        let (code, stdout, stderr) = synchub(dir.path(), &["config", "validate", "p.yaml"]);
        assert_eq!(
            (code, stdout.as_str()),
            (0, "p.yaml: ok (items_copy)\n"),
            "{field}: {stderr}"
        );
    }
    std::fs::write(
        dir.path().join("p.yaml"),
        with_strategy_field("pipeline_config: {batch_size: 123}"),
    )
    .unwrap();
    rusqlite::Connection::open(dir.path().join("source.db"))
        .unwrap()
        .execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        .unwrap();
    let (code, stdout, stderr) = synchub(dir.path(), &["plan", "p.yaml", "--state-dir", "st"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "dag: partition_source -> fetch(page=50000) -> batcher(rows=123) -> populate\n"
        ),
        "{stdout}"
    );
}

#[test]
fn a_disabled_pipeline_or_strategy_runs_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("datastores.yaml"), DATASTORES).unwrap();
    rusqlite::Connection::open(dir.path().join("source.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
             INSERT INTO items VALUES (1, 1), (2, 2);",
        )
        .unwrap();
    let both = pipeline("").replace(
        "strategies:\n",
        "strategies:\n  - {name: full, type: full, enabled: false}\n",
    );
    let cases = [
        (
            pipeline("enabled: false\n"),
            None,
            "error: pipeline items_copy is disabled (enabled: false in p.yaml); not running it. Run it anyway with --force, or set enabled: true",
        ),
        (
            with_strategy_field("enabled: false"),
            None,
            "error: every strategy of pipeline items_copy is disabled (enabled: false in p.yaml); not running it. Run it anyway with --force, or set enabled: true",
        ),
        (
            both,
            Some("full"),
            "error: strategy full of pipeline items_copy is disabled (enabled: false in p.yaml); not running it. Run it anyway with --force, or set enabled: true",
        ),
    ];
    for (yaml, strategy, message) in cases {
        std::fs::write(dir.path().join("p.yaml"), &yaml).unwrap();
        let mut args = vec!["run", "p.yaml", "--state-dir", "st"];
        if let Some(s) = strategy {
            args.extend(["--strategy", s]);
        }
        let (code, _, stderr) = synchub(dir.path(), &args);
        assert_eq!(
            (code, stderr.as_str()),
            (2, format!("{message}\n").as_str())
        );
        assert!(!dir.path().join("warehouse.db").exists(), "{message}");
        args.push("--force");
        let (code, _, stderr) = synchub(dir.path(), &args);
        assert_eq!(code, 0, "{stderr}");
        let rows: i64 = rusqlite::Connection::open(dir.path().join("warehouse.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        std::fs::remove_file(dir.path().join("warehouse.db")).unwrap();
        std::fs::remove_dir_all(dir.path().join("st")).unwrap();
    }
}

#[test]
fn stage_form_switches_that_would_be_ignored_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/demo");
    std::fs::copy(
        demo.join("datastores.yaml"),
        dir.path().join("datastores.yaml"),
    )
    .unwrap();
    let stage_form = std::fs::read_to_string(demo.join("orders_stage_form.yaml")).unwrap();
    let cases = [
        (
            stage_form.replace(
                "  - name: data_fetch\n    type: data_fetch\n",
                "  - name: data_fetch\n    type: data_fetch\n    enabled: false\n",
            ),
            "stages[1].enabled: not supported yet: stages[1].enabled: false on a data_fetch stage; remove the key to run the stage",
        ),
        (
            stage_form.replace(
                "  - name: data_fetch\n    type: data_fetch\n",
                "  - name: data_fetch\n    type: data_fetch\n    applicable_on: hash\n",
            ),
            "stages[1].applicable_on: not supported yet: stages[1].applicable_on (every stage applies to every strategy)",
        ),
    ];
    for (yaml, message) in cases {
        assert_ne!(yaml, stage_form, "the fixture moved: {message}");
        std::fs::write(dir.path().join("p.yaml"), &yaml).unwrap();
        let (code, _, stderr) = synchub(dir.path(), &["config", "validate", "p.yaml"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}

/// One datastores file shared by pipelines of several databases: an entry
/// of a type to come, or one needing a variable this shell lacks, does not
/// stop a pipeline that does not use it; validating the file itself still
/// reports them.
#[test]
fn a_pipeline_resolves_only_the_datastores_it_names() {
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join("source.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
             INSERT INTO items VALUES (1, 1), (2, 2);",
        )
        .unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        format!(
            "{DATASTORES}  shop_mysql: {{type: mysql, connection: {{host: 127.0.0.1, dbname: shop}}}}\n  \
             billing: {{type: postgres, connection: {{host: 127.0.0.1, dbname: billing, password: \"${{SYNCHUB_TEST_UNSET_PW}}\"}}}}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("p.yaml"), pipeline("")).unwrap();
    let (code, stdout, stderr) = synchub(dir.path(), &["config", "validate", "p.yaml"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "p.yaml: ok (items_copy)\n"),
        "{stderr}"
    );
    let (code, _, stderr) = synchub(dir.path(), &["run", "p.yaml", "--state-dir", "st"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = synchub(dir.path(), &["config", "show", "p.yaml"]);
    assert_eq!(code, 0);
    assert!(
        !stdout.contains("billing") && !stdout.contains("shop_mysql"),
        "{stdout}"
    );

    // A pipeline naming a datastore the file lacks hears of all it defines.
    std::fs::write(
        dir.path().join("q.yaml"),
        pipeline("").replace("datastore_name: dst", "datastore_name: dts"),
    )
    .unwrap();
    let (code, _, stderr) = synchub(dir.path(), &["config", "validate", "q.yaml"]);
    assert_eq!(
        (code, stderr.as_str()),
        (
            2,
            "q.yaml: destination_provider.data_backend.datastore_name: datastore \"dts\" is not defined in ./datastores.yaml; defined: billing, dst, shop_mysql, src\n"
        )
    );

    // The file itself, validated, reports what is wrong in it.
    let (code, stdout, stderr) = synchub(dir.path(), &["config", "validate", "datastores.yaml"]);
    assert_eq!(code, 2, "{stdout}");
    assert_eq!(
        stderr,
        "datastores.yaml:5: environment variable SYNCHUB_TEST_UNSET_PW is not set; export it or edit the file\n"
    );
}

/// The stage form's `hash_column: false` on a source backend column, where
/// the spec's column-level example puts it: a change to that column alone
/// is not a change.
#[test]
fn hash_column_false_on_a_source_backend_column_is_honoured() {
    let (dir, source) = sqlite_fixture(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, views INTEGER);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 300)
         INSERT INTO items SELECT i, 'item ' || i, 0 FROM g;",
    );
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: staged_items
backends:
  - name: source_backend
    type: sqlite
    datastore_name: src
    table: items
    columns:
      - {name: id, data_type: bigint}
      - {name: name, data_type: text}
      - {name: views, data_type: int, hash_column: false}
  - name: destination_backend
    type: sqlite
    datastore_name: dst
    table: items
    columns:
      - {name: id, data_type: bigint, unique_column: true}
      - {name: name, data_type: text}
      - {name: views, data_type: int}
strategies:
  - {name: hash, type: hash}
stages:
  - {name: fetch, type: data_fetch, source: {name: source_backend}, destination: {name: destination_backend}}
  - {name: populate, type: populate, destination: {name: destination_backend}}
",
    )
    .unwrap();
    let run = || {
        let (code, stdout, stderr) = synchub(
            dir.path(),
            &["run", "p.yaml", "--state-dir", "st", "--output", "json"],
        );
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    assert_eq!(run()["rows_inserted"], 300);
    source
        .execute_batch(
            "UPDATE items SET views = views + 1 WHERE id <= 99;
             UPDATE items SET name = 'renamed' WHERE id = 200;",
        )
        .unwrap();
    let second = run();
    assert_eq!(
        (
            second["rows_updated"].as_i64(),
            second["rows_inserted"].as_i64()
        ),
        (Some(1), Some(0)),
        "{second}"
    );
}

/// `plan` and `config validate|show|list` speak JSON with `--output json`.
#[test]
fn plan_and_config_commands_print_json() {
    let (dir, _source) = sqlite_fixture(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         INSERT INTO items VALUES (1, 1), (2, 150);",
    );
    std::fs::write(dir.path().join("p.yaml"), pipeline("")).unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        pipeline("").replacen("data_type: bigint}", "data_type: bigintt}", 1),
    )
    .unwrap();
    let json = |args: &[&str], want_code: i32| {
        let (code, stdout, stderr) = synchub(dir.path(), args);
        assert_eq!(code, want_code, "{args:?}: {stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    };
    let plan = json(
        &["plan", "p.yaml", "--state-dir", "st", "--output", "json"],
        0,
    );
    assert_eq!(
        plan,
        serde_json::json!({
            "pipeline": "items_copy",
            "strategy": "delta",
            "kind": "delta",
            "dag": ["partition_source", "fetch(page=50000)", "batcher(rows=50000)", "populate"],
            "lanes": 1,
            "partitions_total": 2,
            "ranges_total": 2,
            "ranges_holding_rows": 2,
            "partitions": ["v_0_100", "v_100_200"],
        })
    );
    let validate = json(
        &[
            "config",
            "validate",
            "p.yaml",
            "bad.yaml",
            "datastores.yaml",
            "--output",
            "json",
        ],
        2,
    );
    assert_eq!(
        validate,
        serde_json::json!({
            "ok": false,
            "files": [
                {"file": "p.yaml", "ok": true, "what": "items_copy"},
                {"file": "bad.yaml", "ok": false, "errors": [
                    "bad.yaml: column_map[0].data_type: unknown data_type \"bigintt\"; did you mean \"bigint\"?"
                ]},
                {"file": "datastores.yaml", "ok": true, "what": "2 datastores"},
            ],
        })
    );
    let show = json(&["config", "show", "p.yaml", "--output", "json"], 0);
    assert_eq!(show["name"], "items_copy");
    assert_eq!(show["columns"][0]["dest"], "id");
    // The column it reads, by name: each connector quotes it its own way.
    assert_eq!(
        show["columns"][0]["source_ref"],
        serde_json::json!({"column": "id"})
    );
    assert_eq!(show["source"]["datastore"]["type"], "sqlite");
    let list = json(
        &["config", "list", "--config-dir", ".", "--output", "json"],
        0,
    );
    assert_eq!(list["pipelines"][1]["name"], "items_copy");
    assert_eq!(
        list["pipelines"][1]["strategies"],
        serde_json::json!([{"name": "delta", "type": "delta", "enabled": true}])
    );
    assert_eq!(list["pipelines"].as_array().map(Vec::len), Some(2));
}
