//! Input meant to hurt, through the real binary: YAML whose aliases expand
//! to gigabytes, files past the size limit, filters and join conditions
//! that try to leave their parentheses. Each is refused at validation,
//! `config validate` and `run` alike, with exit code 2 and an exact message;
//! a valid filter with quotes and parentheses in it still syncs exactly the
//! rows it names.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{connect, Schemas, Workspace};

const BIN: &str = env!("CARGO_BIN_EXE_synchub");

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn synchub(args: &[&std::ffi::OsStr]) -> Outcome {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .env("SYNCHUB_LOG", "off")
        .output()
        .expect("run synchub");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// A folder with SQLite datastores `src` and `dst` and a pipeline file.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let fx = Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        fx.write(
            "datastores.yaml",
            "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: dest.db}}\n",
        );
        fx
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write fixture");
        p
    }

    /// `config validate` and `run` of `pipeline` both fail with exit code 2
    /// and `message` (which `run` prefixes with `error: `), within a few
    /// seconds.
    #[track_caller]
    fn assert_refused(&self, pipeline: &Path, message: &str) {
        let validate = synchub(&["config".as_ref(), "validate".as_ref(), pipeline.as_ref()]);
        assert_eq!(validate.stderr, format!("{message}\n"), "config validate");
        assert_eq!(validate.code, Some(2), "config validate");
        assert_eq!(validate.stdout, "");
        let state = self.dir.path().join("state");
        let run = synchub(&[
            "run".as_ref(),
            pipeline.as_ref(),
            "--state-dir".as_ref(),
            state.as_ref(),
        ]);
        assert_eq!(run.stderr, format!("error: {message}\n"), "run");
        assert_eq!(run.code, Some(2), "run");
        for (what, out) in [("validate", &validate), ("run", &run)] {
            assert!(
                out.took < Duration::from_secs(5),
                "{what} took {:?}",
                out.took
            );
        }
    }
}

/// A pipeline from `src.items` to `dst.items`; `extra` goes under the
/// source's data_backend (indented four spaces).
fn pipeline(extra: &str) -> String {
    format!(
        "name: items_copy
partition_column: id
partition_step: 4
source_provider:
  data_backend:
    type: sqlite
    datastore_name: src
    table: items
{extra}destination_provider:
  data_backend:
    type: sqlite
    datastore_name: dst
    table: items
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: note, dest: note, data_type: text}}
strategies:
  - {{name: full, type: full}}
"
    )
}

#[test]
fn an_alias_bomb_is_refused_before_it_is_expanded() {
    let fx = Fixture::new();
    // 3,000 uses of a 1 MB string: 3 GB once expanded. The description
    // takes 1,000,000 bytes, the other values a few hundred, so the tenth
    // use passes 10 MiB.
    let big = "x".repeat(1_000_000);
    let uses = "      - *big\n".repeat(3_000);
    let text = pipeline(&format!("    filters:\n{uses}")).replacen(
        "partition_column",
        &format!("description: &big {big}\npartition_column"),
        1,
    );
    let p = fx.write("bomb.yaml", &text);
    let first_use = text.lines().position(|l| l == "      - *big").unwrap() + 1;
    fx.assert_refused(
        &p,
        &format!(
            "{}:{}:9: this alias expands the document to more than 10 MiB of text; write the values out or use fewer aliases",
            p.display(),
            first_use + 9
        ),
    );
}

#[test]
fn an_alias_bomb_in_the_datastores_file_is_refused() {
    let fx = Fixture::new();
    // Nested: nine levels of ten, 10^9 strings from a few hundred bytes.
    // The levels up to l5 hold some 235,000 values; l6 (line 10) names
    // l5, of 211,111, so its first alias (column 12) passes 250,000.
    let mut levels = String::from("  l0: &l0 [x]\n");
    for i in 1..10 {
        levels.push_str(&format!(
            "  l{i}: &l{i} [{}]\n",
            vec![format!("*l{}", i - 1); 10].join(", ")
        ));
    }
    let ds = fx.write(
        "datastores.yaml",
        &format!("datastores:\n  src: {{type: sqlite, connection: {{path: source.db}}}}\nbomb:\n{levels}"),
    );
    let p = fx.write("pipeline.yaml", &pipeline(""));
    fx.assert_refused(
        &p,
        &format!(
            "{}:10:12: this alias expands the document to more than 250,000 values; write the values out or use fewer aliases",
            ds.display()
        ),
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused() {
    let fx = Fixture::new();
    let padding = format!("# {}\n", "-".repeat(1022)).repeat(10 * 1024 + 1);
    let p = fx.write("big.yaml", &format!("{}{padding}", pipeline("")));
    fx.assert_refused(
        &p,
        &format!(
            "{}: the file is larger than 10 MiB (10485760 bytes), the most a config file may be; check that this is the right file",
            p.display()
        ),
    );
}

#[test]
fn a_filter_that_closes_its_parentheses_is_refused() {
    let fx = Fixture::new();
    let p = fx.write(
        "pipeline.yaml",
        &pipeline("    filters: [\"id < 10) OR (true\"]\n"),
    );
    fx.assert_refused(
        &p,
        &format!(
            "{}: source_provider.data_backend.filters[0]: not a single SQL condition: Expected: end of the condition, found: ) at Line: 1, Column: 8",
            p.display()
        ),
    );
}

#[test]
fn a_second_statement_in_a_filter_is_refused() {
    let fx = Fixture::new();
    let p = fx.write(
        "pipeline.yaml",
        &pipeline("    filters: [\"id > 0\", \"1=1; DROP TABLE x\"]\n"),
    );
    fx.assert_refused(
        &p,
        &format!(
            "{}: source_provider.data_backend.filters[1]: not a single SQL condition: Expected: end of the condition, found: ; at Line: 1, Column: 4",
            p.display()
        ),
    );
}

#[test]
fn a_join_condition_that_breaks_out_is_refused() {
    let fx = Fixture::new();
    let on = "i.owner = o.id) LEFT JOIN secrets s ON (true";
    let p = fx.write(
        "pipeline.yaml",
        &pipeline(&format!(
            "    alias: i\n    join:\n      - {{table: owners, alias: o, on: \"{on}\"}}\n"
        )),
    );
    fx.assert_refused(
        &p,
        &format!(
            "{}: source_provider.data_backend.join[0].on: not a single SQL condition: Expected: end of the condition, found: ) at Line: 1, Column: 15",
            p.display()
        ),
    );
}

#[test]
fn every_bad_condition_is_reported_at_once() {
    let fx = Fixture::new();
    let p = fx.write(
        "pipeline.yaml",
        &pipeline("    filters: [\"id > $1\", \"\"]\n"),
    );
    let file = p.display();
    fx.assert_refused(
        &p,
        &format!(
            "{file}: source_provider.data_backend.filters[0]: not a single SQL condition: $1 is a bind parameter; SyncHub binds its own partition bounds, so write the value itself\n\
             {file}: source_provider.data_backend.filters[1]: not a single SQL condition: Expected: an expression, found: EOF"
        ),
    );
}

/// A filter with a quoted column name, string literals holding `)` and
/// `'`, and a trailing comment (dropped when the parsed filter is printed,
/// so harmless) syncs exactly the rows it names, over several partitions:
/// each filter stays ANDed with the partition's range.
#[tokio::test]
async fn a_quoted_filter_syncs_exactly_its_rows_on_postgres() -> anyhow::Result<()> {
    let client = connect().await?;
    let schemas = Schemas::create(&client, "hostile_filter").await?;
    client
        .batch_execute(&format!(
            r#"CREATE TABLE {src}.items (id bigint PRIMARY KEY, "Order Note" text);
               INSERT INTO {src}.items VALUES
                 (1, 'a)b'), (2, 'it''s (done)'), (3, NULL), (4, 'plain'),
                 (5, ')'), (6, 'x'), (7, 'it''s'), (12, ')');"#,
            src = schemas.src
        ))
        .await?;
    let yaml = r#"name: quoted_filter
partition_column: id
partition_step: 4
source_provider:
  data_backend:
    type: postgres
    datastore_name: src
    table: items
    filters:
      - "\"Order Note\" IN ('a)b', 'it''s (done)', ')') OR id = 6"
      - "id < 10 --"
destination_provider:
  data_backend: {type: postgres, datastore_name: dst, table: items}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: '"Order Note"', dest: note, data_type: text}
strategies:
  - {name: full, type: full}
"#;
    let ws = Workspace::new(&schemas, yaml)?;
    let run = ws.run("full");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("rows_inserted"), 4, "{}", run.json);
    let rows: Vec<(i64, Option<String>)> = client
        .query(
            &format!("SELECT id, note FROM {}.items ORDER BY id", schemas.dst),
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want = [(1, "a)b"), (2, "it's (done)"), (5, ")"), (6, "x")]
        .map(|(id, note)| (id, Some(note.to_string())));
    assert_eq!(rows, want);
    Ok(())
}
