//! End-to-end tests of what `synchub` says when its input is wrong: each test
//! writes small fixture files into its own temporary folder, runs the real
//! binary and checks the exact error text and the exit code
//! (0 success, 1 failed run, 2 invalid input).

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_synchub");

/// What one `synchub` invocation did.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A temporary folder holding one test's config files, databases and state.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `path` as the CLI prints it.
    fn show(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write fixture");
        p
    }

    fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// `datastores.yaml` with two SQLite datastores: `src` (source.db) and
    /// `dst` (dest.db), paths relative to the file.
    fn sqlite_datastores(&self) -> PathBuf {
        self.write(
            "datastores.yaml",
            "datastores:\n  src:\n    type: sqlite\n    connection:\n      path: source.db\n  dst:\n    type: sqlite\n    connection:\n      path: dest.db\n",
        )
    }

    fn source(&self) -> Connection {
        Connection::open(self.path("source.db")).expect("open source.db")
    }

    fn dest(&self) -> Connection {
        Connection::open(self.path("dest.db")).expect("open dest.db")
    }

    /// `synchub run <pipeline> --state-dir <tmp>/state [extra...]`, logs off
    /// so stderr holds only what the CLI itself prints.
    fn run(&self, pipeline: &Path, extra: &[&str]) -> Outcome {
        let mut cmd = synchub();
        cmd.arg("run")
            .arg(pipeline)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(extra)
            .env("SYNCHUB_LOG", "off");
        exec(cmd)
    }
}

fn synchub() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("SYNCHUB_LOG");
    cmd
}

fn exec(mut cmd: Command) -> Outcome {
    let out = cmd.output().expect("run synchub");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts the exit code and that stderr is exactly `error: <message>\n`.
#[track_caller]
fn assert_error(out: &Outcome, code: i32, message: &str) {
    assert_eq!(
        out.stderr,
        format!("error: {message}\n"),
        "stderr differs; stdout was:\n{}",
        out.stdout
    );
    assert_eq!(out.code, Some(code), "exit code; stderr:\n{}", out.stderr);
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The source's `items` table: every test's rows have this shape. Timestamps
/// are `YYYY-MM-DD HH:MM:SS.ffffff` text and decimals text.
const ITEMS_DDL: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, qty INTEGER, updated_at TEXT)";

type ItemRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn item(id: i64) -> ItemRow {
    (
        id,
        Some(format!("item-{id}")),
        Some(format!("{}.{:02}", id * 7, id % 100)),
        Some(id * 3),
        Some(format!(
            "2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            1 + id % 12,
            1 + id % 28,
            id % 24,
            id % 60,
            (id * 7) % 60,
            (id * 7919) % 1_000_000
        )),
    )
}

fn insert_items(conn: &Connection, rows: impl IntoIterator<Item = ItemRow>) {
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut stmt = conn
            .prepare(
                "INSERT INTO items (id, name, amount, qty, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .unwrap();
        for r in rows {
            stmt.execute(rusqlite::params![r.0, r.1, r.2, r.3, r.4])
                .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// Creates `source.db` with `items` holding `item(1..=n)`.
fn source_items(fx: &Fixture, n: i64) {
    let conn = fx.source();
    conn.execute_batch(ITEMS_DDL).unwrap();
    insert_items(&conn, (1..=n).map(item));
}

fn read_items(conn: &Connection, table: &str) -> Vec<ItemRow> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, name, amount, qty, updated_at FROM \"{table}\" ORDER BY id"
        ))
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// The `column_map` entries for `items`, `name` as `string(name_len)`.
fn items_columns(name_len: u32) -> String {
    format!(
        "column_map:
  - source: id
    dest: id
    roles: [unique_column, partition_column]
    data_type: bigint
  - source: name
    dest: name
    data_type: string
    length: {name_len}
  - source: amount
    dest: amount
    data_type: decimal
    precision: 12
    scale: 2
  - source: qty
    dest: qty
    data_type: bigint
  - source: updated_at
    dest: updated_at
    data_type: timestamp
"
    )
}

/// A simple-form pipeline from `src.items` to `dst.items_copy`.
fn items_pipeline(step: i64, columns: &str) -> String {
    format!(
        "name: items_copy
partition_column: id
partition_step: {step}

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

{columns}
strategies:
  - name: full
    type: full
    page_size: 1000
"
    )
}

fn summary(out: &Outcome) -> Value {
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout is not one JSON line: {:?}; stderr:\n{}",
        out.stdout,
        out.stderr
    );
    serde_json::from_str(lines[0]).expect("stdout is JSON")
}

// ---------------------------------------------------------------------------
// Config files
// ---------------------------------------------------------------------------

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    // An unterminated quote: libyaml notices at the end of the file and says
    // where the quoted scalar began.
    let p = fx.write(
        "quote.yaml",
        "name: broken\ncolumn_map:\n  - source: id\n    dest: \"id\n    data_type: bigint\n",
    );
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        &format!(
            "{}:6:1: invalid YAML: found unexpected end of stream, while scanning a quoted scalar at line 4 column 11",
            p.display()
        ),
    );

    // A list item indented less than its siblings.
    let p = fx.write(
        "indent.yaml",
        "name: broken\nstrategies:\n  - name: full\n    type: full\n  page_size: 10\n",
    );
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        &format!(
            "{}:5:3: invalid YAML: did not find expected '-' indicator, while parsing a block collection at line 3 column 3",
            p.display()
        ),
    );
}

#[test]
fn unknown_field_suggests_the_closest_name() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    let text =
        items_pipeline(100, &items_columns(50)).replace("partition_step:", "partition_stpe:");
    let p = fx.write("typo.yaml", &text);
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        &format!(
            "{}:3:1: unknown field \"partition_stpe\"; did you mean \"partition_step\"?",
            fx.show("typo.yaml")
        ),
    );
}

#[test]
fn undefined_datastore_names_it_the_field_and_the_file() {
    let fx = Fixture::new();
    let ds = fx.sqlite_datastores();
    let text = items_pipeline(100, &items_columns(50))
        .replace("datastore_name: dst", "datastore_name: analytics");
    let p = fx.write("pipeline.yaml", &text);
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        &format!(
            "{}: destination_provider.data_backend.datastore_name: datastore \"analytics\" is not defined in {}; defined: dst, src",
            p.display(),
            ds.display()
        ),
    );
}

#[test]
fn unset_environment_variable_names_file_line_and_variable() {
    const VAR: &str = "SYNCHUB_BAD_INPUT_TEST_UNSET_PASSWORD";
    let fx = Fixture::new();
    let ds = fx.write(
        "datastores.yaml",
        &format!(
            // The pipeline writes to `dst`, so its variable must be set.
            "datastores:\n  src:\n    type: sqlite\n    connection:\n      path: source.db\n  dst:\n    type: postgres\n    connection:\n      host: 127.0.0.1\n      dbname: shop\n      password: ${{{VAR}}}\n"
        ),
    );
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &items_columns(50)));
    let mut cmd = synchub();
    cmd.arg("run")
        .arg(&p)
        .arg("--state-dir")
        .arg(fx.state_dir())
        .env("SYNCHUB_LOG", "off")
        .env_remove(VAR);
    let out = exec(cmd);
    assert_error(
        &out,
        2,
        &format!(
            "{}:11: environment variable {VAR} is not set; export it or edit the file",
            ds.display()
        ),
    );
}

#[test]
fn unknown_source_column_is_named() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    // The source table exists, with rows, but has no `name`.
    let src = fx.source();
    src.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, amount TEXT, qty INTEGER, updated_at TEXT);
         INSERT INTO items VALUES (1, '1.50', 3, '2024-01-15 10:00:00.000000');",
    )
    .unwrap();
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &items_columns(50)));
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        "source column \"name\" (mapped to dest \"name\") does not exist in \"items\": fix the column name in the pipeline or add the column to the source",
    );
}

#[test]
fn unknown_quoted_source_column_is_named_as_written() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    fx.source()
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, \"Quantity Sold\" INTEGER, updated_at TEXT)",
        )
        .unwrap();
    let text = items_pipeline(
        100,
        &items_columns(50).replace("source: qty", "source: '\"Quantity Sould\"'"),
    );
    let p = fx.write("pipeline.yaml", &text);
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        "source column \"Quantity Sould\" (mapped to dest \"qty\") does not exist in \"items\": fix the column name in the pipeline or add the column to the source",
    );
}

#[test]
fn unknown_qualified_source_column_is_named() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    fx.source()
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, updated_at TEXT)",
        )
        .unwrap();
    let text = items_pipeline(
        100,
        &items_columns(50).replace("source: qty", "source: i.qty"),
    )
    .replacen("table: items\n", "table: items\n    alias: i\n", 1);
    let p = fx.write("pipeline.yaml", &text);
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        "source column \"i.qty\" (mapped to dest \"qty\") does not exist in \"items\": fix the column name in the pipeline or add the column to the source",
    );
}

#[test]
fn duplicate_destination_column_names_the_field_path() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    let columns = items_columns(50).replace("dest: qty", "dest: amount");
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &columns));
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        &format!(
            "{}: column_map[3].dest: destination column \"amount\" is mapped twice; give each column a distinct dest",
            p.display()
        ),
    );
}

#[test]
fn zero_concurrent_partitions_is_refused() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    let pipeline = items_pipeline(100, &items_columns(50)).replace(
        "partition_step: 100\n",
        "partition_step: 100\nmax_concurrent_partitions: 0\n",
    );
    let p = fx.write("pipeline.yaml", &pipeline);
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        &format!(
            "{}: max_concurrent_partitions: 0 partitions at a time would write nothing: use 1 (one after another) or more",
            p.display()
        ),
    );
}

#[test]
fn duplicate_destination_column_path_counts_every_entry() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    let columns = "column_map:
  - source: \"a b\"
    dest: x
    data_type: int
  - source: id
    dest: id
    roles: [unique_column]
    data_type: bigint
  - source: qty
    dest: id
    data_type: bigint
";
    let p = fx.write("pipeline.yaml", &items_pipeline(100, columns));
    let out = fx.run(&p, &[]);
    let f = p.display();
    assert_error(
        &out,
        2,
        &format!(
            "{f}: column_map[0].source: \"a b\" is not a column name; write a column (id) or a qualified column (o.id), and put a name with spaces or other characters in double quotes (in YAML inside single ones: '\"a b\"')\n\
             {f}: column_map[2].dest: destination column \"id\" is mapped twice; give each column a distinct dest"
        ),
    );
}

#[test]
fn missing_unique_column_is_invalid_input() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    let columns = items_columns(50).replace(
        "roles: [unique_column, partition_column]",
        "roles: [partition_column]",
    );
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &columns));
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        &format!(
            "{}: column_map: no unique column: upserts need a key; add roles: [\"unique_column\"] (or unique_column: true) to the key column",
            p.display()
        ),
    );
}

// ---------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------

const PG_PASSWORD: &str = "hunter2-secret";

/// `datastores.yaml` with a postgres datastore `pg` nobody listens for
/// (127.0.0.1, port 1) and the SQLite destination `dst`.
fn unreachable_pg_datastores(fx: &Fixture) -> PathBuf {
    fx.write(
        "datastores.yaml",
        &format!(
            "datastores:\n  pg:\n    type: postgres\n    connection:\n      host: 127.0.0.1\n      port: 1\n      user: sync\n      password: {PG_PASSWORD}\n      dbname: shop\n  dst:\n    type: sqlite\n    connection:\n      path: dest.db\n"
        ),
    )
}

fn pg_items_pipeline() -> String {
    items_pipeline(100, &items_columns(50)).replacen(
        "type: sqlite\n    datastore_name: src",
        "type: postgres\n    datastore_name: pg",
        1,
    )
}

#[test]
fn unreachable_database_names_host_and_port_but_not_the_password() {
    let fx = Fixture::new();
    unreachable_pg_datastores(&fx);
    let p = fx.write("pipeline.yaml", &pg_items_pipeline());

    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        1,
        "cannot connect to PostgreSQL at 127.0.0.1:1 (datastore \"pg\", database \"shop\", user \"sync\"): error connecting to server: Connection refused (os error 111)",
    );

    // Nor in the JSON output, nor in the most verbose logs.
    for (args, log) in [(&["--output", "json"][..], "trace"), (&[][..], "trace")] {
        let mut cmd = synchub();
        cmd.arg("run")
            .arg(&p)
            .arg("--state-dir")
            .arg(fx.state_dir())
            .args(args)
            .env("SYNCHUB_LOG", log);
        let out = exec(cmd);
        assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
        assert!(
            out.stderr.contains("127.0.0.1:1"),
            "stderr:\n{}",
            out.stderr
        );
        for text in [&out.stdout, &out.stderr] {
            assert!(!text.contains(PG_PASSWORD), "password leaked:\n{text}");
            assert!(!text.contains("hunter2"), "password leaked:\n{text}");
        }
    }
}

#[test]
fn config_show_masks_the_password() {
    let fx = Fixture::new();
    unreachable_pg_datastores(&fx);
    let p = fx.write("pipeline.yaml", &pg_items_pipeline());
    let mut cmd = synchub();
    cmd.args(["config", "show"]).arg(&p);
    let out = exec(cmd);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.contains("password: '***'") || out.stdout.contains("password: \"***\""),
        "password not shown as ***:\n{}",
        out.stdout
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("hunter2"), "password leaked:\n{text}");
    }
}

#[test]
fn destination_table_missing_a_column_is_a_schema_conflict() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    source_items(&fx, 10);
    fx.dest()
        .execute_batch("CREATE TABLE items_copy (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, updated_at TEXT)")
        .unwrap();
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &items_columns(50)));
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        "destination table \"items_copy\" has no column \"qty\"; add it (ALTER TABLE \"items_copy\" ADD COLUMN \"qty\" INTEGER) or drop the table so SyncHub creates it",
    );
    assert_eq!(
        fx.dest()
            .query_row("SELECT count(*) FROM items_copy", [], |r| r
                .get::<_, i64>(0))
            .unwrap(),
        0
    );
}

#[test]
fn destination_column_of_an_incompatible_type_is_a_schema_conflict() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    source_items(&fx, 10);
    fx.dest()
        .execute_batch("CREATE TABLE items_copy (id INTEGER PRIMARY KEY, name TEXT, amount REAL, qty INTEGER, updated_at TEXT)")
        .unwrap();
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &items_columns(50)));
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        2,
        "destination table \"items_copy\" column \"amount\" is REAL, but the pipeline maps it as decimal(12,2); alter the column or change data_type",
    );
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

#[test]
fn text_too_long_for_varchar_fails_the_run_naming_key_and_column() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    source_items(&fx, 5);
    let long = "x".repeat(30);
    fx.source()
        .execute("UPDATE items SET name = ?1 WHERE id = 3", [&long])
        .unwrap();
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &items_columns(10)));
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        1,
        &format!("fetch: row id=3, column \"name\": value \"{long}\" (30 characters) does not fit varchar(10)"),
    );
}

#[test]
fn bigint_too_large_for_int_fails_the_run_naming_key_and_column() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    source_items(&fx, 5);
    fx.source()
        .execute("UPDATE items SET qty = 3000000000 WHERE id = 4", [])
        .unwrap();
    let columns = items_columns(50).replace(
        "  - source: qty\n    dest: qty\n    data_type: bigint",
        "  - source: qty\n    dest: qty\n    data_type: int",
    );
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &columns));
    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        1,
        "fetch: row id=4, column \"qty\": value 3000000000 does not fit int",
    );
}

/// Two ids 10^15 apart with a step of 10 span 10^14 ranges: only the two
/// holding rows are planned (`plan` says so) and written. Ids too far apart
/// for the source to number their ranges in 64 bits would be planned range
/// by range: that run (and `plan`) stops before planning them, saying which
/// step would do, instead of filling memory with empty ranges.
#[test]
fn a_sparse_key_plans_only_ranges_holding_rows_and_an_unnumbered_span_is_refused() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    let src = fx.source();
    src.execute_batch(ITEMS_DDL).unwrap();
    let far = 1_000_000_000_000_000;
    insert_items(&src, [item(1), item(far)]);
    let columns = items_columns(50).replace("precision: 12", "precision: 18");
    let p = fx.write("pipeline.yaml", &items_pipeline(10, &columns));
    let plan = || {
        let mut plan = synchub();
        plan.arg("plan").arg(&p).env("SYNCHUB_LOG", "off");
        exec(plan)
    };
    let planned = plan();
    assert_eq!(planned.code, Some(0), "{}", planned.stderr);
    assert!(
        planned.stdout.ends_with(
            "partitions: 2 holding rows, of 100000000000001 ranges\n  id_0_10\n  id_1000000000000000_1000000000000010\n"
        ),
        "{}",
        planned.stdout
    );
    let out = fx.run(&p, &["--output", "json"]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(summary(&out)["partitions_total"], 2);
    assert_eq!(summary(&out)["rows_inserted"], 2);
    assert_eq!(read_items(&fx.dest(), "items_copy"), [item(1), item(far)]);

    src.execute_batch("DELETE FROM items").unwrap();
    let bare = |id: i64| (id, Some(format!("item-{id}")), None, None, None);
    insert_items(&src, [bare(-9e18 as i64), bare(9e18 as i64)]);
    let message = "pipeline items_copy: partitioning on \"id\" in steps of 10 from -9000000000000000000 to 9000000000000000000 makes 1800000000000000001 partitions, more than the 1000000 a run can take; raise its step to at least 20000000000000 (partition_step, or step in primary_partitions); every range costs its queries, even an empty one";
    assert_error(&fx.run(&p, &[]), 2, message);
    assert_error(&plan(), 2, message);
}

#[test]
fn failed_run_keeps_committed_partitions_and_resumes() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    source_items(&fx, 1000);
    let long = "y".repeat(30);
    fx.source()
        .execute("UPDATE items SET name = ?1 WHERE id = 555", [&long])
        .unwrap();
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &items_columns(10)));

    let out = fx.run(&p, &[]);
    assert_error(
        &out,
        1,
        &format!("fetch: row id=555, column \"name\": value \"{long}\" (30 characters) does not fit varchar(10)"),
    );
    // Partitions [0,100) .. [400,500) are committed, [500,600) and later untouched.
    let written = read_items(&fx.dest(), "items_copy");
    let expected: Vec<ItemRow> = (1..=499).map(item).collect();
    assert_eq!(written.len(), expected.len(), "rows in the destination");
    assert_eq!(written, expected);

    // Fix the value and resume with the same state.
    fx.source()
        .execute("UPDATE items SET name = 'item-555' WHERE id = 555", [])
        .unwrap();
    let out = fx.run(&p, &["--output", "json"]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let s = summary(&out);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["partitions_total"], 11);
    assert_eq!(s["partitions_skipped"], 5);
    assert_eq!(s["partitions_done"], 6);
    assert_eq!(s["rows_read"], 501);
    assert_eq!(s["rows_inserted"], 501);
    assert_eq!(
        read_items(&fx.dest(), "items_copy"),
        read_items(&fx.source(), "items")
    );
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

#[test]
fn json_output_summarises_the_run() {
    let fx = Fixture::new();
    fx.sqlite_datastores();
    source_items(&fx, 250);
    let p = fx.write("pipeline.yaml", &items_pipeline(100, &items_columns(50)));

    let out = fx.run(&p, &["--output", "json"]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let s = summary(&out);
    let keys = [
        "pipeline",
        "strategy",
        "status",
        "rows_read",
        "rows_inserted",
        "rows_updated",
        "rows_deleted",
        "rows_unchanged",
        "partitions_total",
        "partitions_done",
        "partitions_skipped",
        "duration_seconds",
    ];
    for k in keys {
        assert!(s.get(k).is_some(), "key {k} missing from {s}");
    }
    assert!(s["duration_seconds"].as_f64().is_some_and(|d| d >= 0.0));
    // The fixed cost: before the first partition and after the last
    // commit, both inside the run's duration, which also holds the work.
    let secs = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} in {s}"));
    let (setup, wrapup, duration) = (
        secs("setup_seconds"),
        secs("wrapup_seconds"),
        secs("duration_seconds"),
    );
    assert!(setup > 0.0 && wrapup >= 0.0, "{s}");
    assert!(setup + wrapup < duration, "{s}");
    let counts = |s: &Value| {
        [
            "rows_read",
            "rows_inserted",
            "rows_updated",
            "rows_deleted",
            "rows_unchanged",
            "partitions_total",
            "partitions_done",
            "partitions_skipped",
        ]
        .map(|k| {
            s[k].as_u64()
                .unwrap_or_else(|| panic!("{k} is not a count in {s}"))
        })
    };
    assert_eq!(s["pipeline"], "items_copy");
    assert_eq!(s["strategy"], "full");
    assert_eq!(s["status"], "completed");
    // ids 1..=250 with step 100: [0,100), [100,200), [200,300).
    assert_eq!(counts(&s), [250, 250, 0, 0, 0, 3, 3, 0]);
    assert_eq!(
        read_items(&fx.dest(), "items_copy"),
        read_items(&fx.source(), "items")
    );

    let out = fx.run(&p, &["--output", "json"]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let s = summary(&out);
    assert_eq!(s["status"], "completed");
    // Into a populated table the partitions' checksums match: nothing is
    // read again, every row counts as unchanged.
    assert_eq!(counts(&s), [0, 0, 0, 0, 250, 3, 3, 0]);
}
