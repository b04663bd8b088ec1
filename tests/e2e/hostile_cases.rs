//! Hostile input, case by case, against one PostgreSQL destination that a
//! first run filled: each case runs `synchub run` on a pipeline or a
//! datastores file an attacker or a careless user could write, and checks
//! the exit code, the exact message, that the destination is untouched
//! (same rows, no new checkpoint) and that no secret given to the case shows
//! in its output or under its state directory.
//!
//! Cases elsewhere: SIGTERM/SIGINT and runs at once (`concurrency.rs`),
//! stale watermarks (`tamper.rs`), alias bombs and filter parsing in detail
//! (`hostile_input.rs`), secrets byte for byte (`connection_secrets.rs`),
//! NULL keys (`hostile_run.rs`), malformed configs (`bad_input.rs`).

use std::path::Path;
use std::process::Command;

use crate::common::{connect, scalar, Schemas};
use anyhow::Result;

/// One hostile input.
struct Case {
    name: &'static str,
    /// The pipeline; `{src}` and `{dst}` name the datastores.
    pipeline: String,
    /// The destination's connection mapping, when not the fixture's own.
    destination: Option<String>,
    env: Vec<(&'static str, &'static str)>,
    code: i32,
    /// The whole of stderr's last line; `{dir}` is the case's folder.
    message: String,
    /// A secret the case gives that must show nowhere.
    secret: Option<&'static str>,
}

const COLUMNS: &str = "column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: name, dest: name, data_type: text}
";

fn pipeline(source_extra: &str, rest: &str) -> String {
    format!(
        "name: hostile
partition_column: id
partition_step: 50
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: items{source_extra}}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: items}}
{rest}"
    )
}

fn cases(dst_schema: &str) -> Vec<Case> {
    let plain = |extra: &str| pipeline(extra, COLUMNS);
    let conn = |fields: &str| {
        format!("{{host: 127.0.0.1, user: postgres, dbname: test, schema: {dst_schema}{fields}}}")
    };
    let case = |name, pipeline, code, message: &str| Case {
        name,
        pipeline,
        destination: None,
        env: Vec::new(),
        code,
        message: message.to_string(),
        secret: None,
    };
    let p = "{dir}/p.yaml";
    let ds = "{dir}/datastores.yaml";
    vec![
        case(
            "a filter closing its parentheses",
            plain(", filters: [\"id < 10) OR (true\"]"),
            2,
            &format!("error: {p}: source_provider.data_backend.filters[0]: not a single SQL condition: Expected: end of the condition, found: ) at Line: 1, Column: 8"),
        ),
        case(
            "a second statement in a filter",
            plain(", filters: [\"1=1; DELETE FROM items\"]"),
            2,
            &format!("error: {p}: source_provider.data_backend.filters[0]: not a single SQL condition: Expected: end of the condition, found: ; at Line: 1, Column: 4"),
        ),
        case(
            "a comment hiding the rest of the query",
            plain(", filters: [\"id > 0 /* \"]"),
            2,
            &format!("error: {p}: source_provider.data_backend.filters[0]: not a single SQL condition: Unexpected EOF while in a multi-line comment at Line: 1, Column: 11"),
        ),
        case(
            "a bind parameter in a filter",
            plain(", filters: [\"id = $1\"]"),
            2,
            &format!("error: {p}: source_provider.data_backend.filters[0]: not a single SQL condition: $1 is a bind parameter; SyncHub binds its own partition bounds, so write the value itself"),
        ),
        case(
            "a join condition breaking out",
            plain(", alias: i, join: [{table: items, alias: j, on: \"i.id = j.id) UNION (SELECT 1\"}]"),
            2,
            &format!("error: {p}: source_provider.data_backend.join[0].on: not a single SQL condition: Expected: end of the condition, found: ) at Line: 1, Column: 12"),
        ),
        case(
            "an unterminated string in a filter",
            plain(", filters: [\"name = 'x\"]"),
            2,
            &format!("error: {p}: source_provider.data_backend.filters[0]: not a single SQL condition: Unterminated string literal at Line: 1, Column: 8"),
        ),
        case(
            "a pipeline name that climbs out of the state directory",
            plain("").replace("name: hostile", "name: ../../etc/x"),
            2,
            &format!("error: {p}: name: \"../../etc/x\" is not a valid pipeline name: use letters, digits, '_' and '-' only"),
        ),
        case(
            "a field misspelt",
            plain("").replace("partition_step", "partition_stpe"),
            2,
            &format!("error: {p}:3:1: unknown field \"partition_stpe\"; did you mean \"partition_step\"?"),
        ),
        case(
            "a source column that is text mapped as bigint",
            pipeline("", &COLUMNS.replace("{source: name, dest: name, data_type: text}", "{source: name, dest: name, data_type: bigint}")),
            2,
            "error: source column \"name\" has PostgreSQL type text, which SyncHub cannot read as bigint; map it with a data_type that can hold it (text holds every type), or read it through a view that converts it",
        ),
        case(
            "no unique column",
            pipeline("", &COLUMNS.replace("roles: [unique_column], ", "")),
            2,
            &format!("error: {p}: column_map: no unique column: upserts need a key; add roles: [\"unique_column\"] (or unique_column: true) to the key column"),
        ),
        case(
            "two strategies with one name",
            plain("") + "strategies:\n  - {name: nightly, type: hash}\n  - {name: nightly, type: full}\n",
            2,
            &format!("error: {p}: strategies[1].name: strategy name \"nightly\" is used twice"),
        ),
        Case {
            destination: Some(conn(", password: \"${HOSTILE_UNSET}\"")),
            ..case(
                "an unset variable",
                plain(""),
                2,
                &format!("error: {ds}:3: environment variable HOSTILE_UNSET is not set; export it or edit the file"),
            )
        },
        Case {
            // Substituted as a value, the quote and the rest stay in the
            // database name: nothing is injected into the mapping.
            destination: Some(conn(", dbname: \"${HOSTILE_DB}\"").replace("dbname: test, ", "")),
            env: vec![("HOSTILE_DB", "test\", schema: \"evil")],
            ..case(
                "a variable that tries to add a key",
                plain(""),
                1,
                "error: cannot connect to PostgreSQL at 127.0.0.1:5432 (datastore \"dst\", database \"test\", schema: \"evil\", user \"postgres\"): database \"test\", schema: \"evil\" does not exist",
            )
        },
        Case {
            destination: Some(conn(", dbname: \"${HOSTILE_DB}\"").replace("dbname: test, ", "")),
            env: vec![("HOSTILE_DB", "te\\x50st")],
            ..case(
                "a variable with a backslash escape",
                plain(""),
                1,
                "error: cannot connect to PostgreSQL at 127.0.0.1:5432 (datastore \"dst\", database \"te\\x50st\", user \"postgres\"): database \"te\\x50st\" does not exist",
            )
        },
        Case {
            destination: Some(conn(", password: \"${HOSTILE_PW}\"").replace("host: 127.0.0.1", "host: 127.0.0.1, port: 1")),
            env: vec![("HOSTILE_PW", "pw\"with'quotes\\and\nnewline")],
            secret: Some("pw\"with'quotes\\and\nnewline"),
            ..case(
                "a password with quotes, a backslash and a newline, server down",
                plain(""),
                1,
                "error: cannot connect to PostgreSQL at 127.0.0.1:1 (datastore \"dst\", database \"test\", user \"postgres\"): error connecting to server: Connection refused (os error 111)",
            )
        },
        Case {
            destination: Some(format!(
                "{{host: \"postgresql://u:hostile-secret-1@127.0.0.1:1/test\", user: postgres, dbname: test, schema: {dst_schema}}}"
            )),
            secret: Some("hostile-secret-1"),
            ..case(
                "a URL with its password pasted into host",
                plain(""),
                1,
                "error: cannot connect to PostgreSQL at postgresql://u:***@127.0.0.1:1/test:5432 (datastore \"dst\", database \"test\", user \"postgres\"): error connecting to server: failed to lookup address information: Name or service not known",
            )
        },
        Case {
            destination: Some(format!(
                "{{url: \"postgresql://postgres:hostile-secret-2@127.0.0.1/test?sslmode=sometimes\", schema: {dst_schema}}}"
            )),
            secret: Some("hostile-secret-2"),
            ..case(
                "a URL with an unknown sslmode",
                plain(""),
                2,
                &format!("error: {ds}: datastores.dst.connection.url: unknown sslmode \"sometimes\"; valid: disable, prefer, require, verify-ca, verify-full"),
            )
        },
        Case {
            destination: Some(format!(
                "{{url: \"mysql://root:hostile-secret-3@127.0.0.1/test\", schema: {dst_schema}}}"
            )),
            secret: Some("hostile-secret-3"),
            ..case(
                "a URL of another database",
                plain(""),
                2,
                &format!("error: {ds}: datastores.dst.connection.url: not a PostgreSQL URL: the scheme must be postgresql:// or postgres:// (other databases are datastore types of their own)"),
            )
        },
        Case {
            destination: Some(conn(", sslmode: verify-full")),
            ..case(
                "TLS verify-full against a certificate for another name",
                plain(""),
                2,
                "error: cannot connect to PostgreSQL at 127.0.0.1:5432 (datastore \"dst\", database \"test\", user \"postgres\"): sslmode=verify-full: certificate verify failed: the certificate is for \"localhost\", not \"127.0.0.1\"; connect by a name it lists or use sslmode=verify-ca",
            )
        },
        Case {
            destination: Some(conn(", sslmode: verify-ca, sslrootcert: missing-ca.pem")),
            ..case(
                "a CA file that is not there",
                plain(""),
                2,
                "error: cannot connect to PostgreSQL at 127.0.0.1:5432 (datastore \"dst\", database \"test\", user \"postgres\"): sslrootcert {dir}/missing-ca.pem: cannot read: No such file or directory (os error 2)",
            )
        },
        Case {
            destination: Some(conn(", sslcert: client.pem")),
            ..case(
                "a client certificate without its key",
                plain(""),
                2,
                &format!("error: {ds}: datastores.dst.connection.sslkey: sslcert needs sslkey, the client certificate's private key"),
            )
        },
        case(
            "a partition step of zero",
            plain("").replace("partition_step: 50", "partition_step: 0"),
            2,
            &format!("error: {p}: partition_step: step must be at least 1, got 0: it is how many values (or units of step_unit) one partition spans"),
        ),
    ]
}

fn run_case(dir: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(dir.join("p.yaml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("SYNCHUB_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run synchub");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir`, as lossy text.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn hostile_input_is_refused_and_the_destination_untouched() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "hostile_cases").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint PRIMARY KEY, name text);
             INSERT INTO {src}.items SELECT g, 'item ' || g FROM generate_series(1, 200) g;",
            src = s.src
        ))
        .await?;
    let src_conn = format!(
        "{{host: 127.0.0.1, user: postgres, dbname: test, schema: {}}}",
        s.src
    );
    let dst_conn = format!(
        "{{host: 127.0.0.1, user: postgres, dbname: test, schema: {}}}",
        s.dst
    );
    let write_case = |dir: &Path, pipeline: &str, destination: &str| -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("p.yaml"), pipeline)?;
        std::fs::write(
            dir.join("datastores.yaml"),
            format!(
                "datastores:\n  src: {{type: postgres, connection: {src_conn}}}\n  dst: {{type: postgres, connection: {destination}}}\n"
            ),
        )?;
        Ok(())
    };
    // The destination every case must leave as it is: filled by a good run,
    // then one row changed, so that any write would show.
    let root = tempfile::tempdir()?;
    let good = root.path().join("good");
    write_case(&good, &pipeline("", COLUMNS), &dst_conn)?;
    let (code, _, stderr) = run_case(&good, &[]);
    assert_eq!(code, 0, "{stderr}");
    client
        .batch_execute(&format!(
            "UPDATE {}.items SET name = 'only in the destination' WHERE id = 7",
            s.dst
        ))
        .await?;
    let fingerprint = format!(
        "SELECT count(*) * 1000000 + sum(hashtext(id::text || name) % 1000000)::bigint FROM {}.items",
        s.dst
    );
    let checkpoints = format!("SELECT count(*) FROM {}._synchub_checkpoints", s.dst);
    let (before, before_checkpoints) = (
        scalar(&client, &fingerprint).await?,
        scalar(&client, &checkpoints).await?,
    );

    let all = cases(&s.dst);
    assert!(all.len() >= 20, "{} cases", all.len());
    let mut failures = Vec::new();
    for (i, case) in all.iter().enumerate() {
        let dir = root.path().join(format!("case{i}"));
        write_case(
            &dir,
            &case.pipeline,
            case.destination.as_deref().unwrap_or(&dst_conn),
        )?;
        let (code, stdout, stderr) = run_case(&dir, &case.env);
        let expected = case.message.replace("{dir}", &dir.display().to_string());
        let last = stderr.trim_end().lines().last().unwrap_or_default();
        if code != case.code || last != expected {
            failures.push(format!(
                "{}: exit {code} (want {}), said\n  {last}\nwant\n  {expected}",
                case.name, case.code
            ));
        }
        if let Some(secret) = case.secret {
            let mut texts = vec![
                ("stdout".to_string(), stdout),
                ("stderr".to_string(), stderr),
            ];
            texts.extend(files_under(&dir.join("state")));
            for (what, text) in texts {
                if text.contains(secret) {
                    failures.push(format!("{}: the secret shows in {what}", case.name));
                }
            }
        }
        if scalar(&client, &fingerprint).await? != before
            || scalar(&client, &checkpoints).await? != before_checkpoints
        {
            failures.push(format!("{}: the destination changed", case.name));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    Ok(())
}
