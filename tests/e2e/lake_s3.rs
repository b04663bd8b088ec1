//! PostgreSQL into a Delta table on S3 (moto's server on loopback, with IAM
//! authentication on): full, delta and hash runs with inserts, updates and
//! deletes between them, the table read back by the independent reader
//! through the same endpoint; a wrong secret is refused naming the datastore
//! and never printed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::common::{difference, RunResult, Workspace};
use crate::delta_lake::{
    pg_checksum, pipeline_yaml, reader_checksum, reader_python, setup_with, ROWS,
};

const BUCKET: &str = "synchub-lake";
/// The variable the datastore takes its secret from.
const SECRET_VAR: &str = "LAKE_S3_SECRET";

/// A local S3 of this test's own (tests/e2e/s3_server.py): stopped when
/// dropped, and by itself when the test process ends (its stdin closes).
pub(crate) struct S3Server {
    child: Child,
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Server {
    pub(crate) fn start(buckets: &[&str]) -> Result<S3Server> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/s3_server.py");
        let mut child = Command::new(reader_python()?)
            .arg(script)
            .args(buckets)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting s3_server.py")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("its stdout")?).read_line(&mut line)?;
        let mut server = S3Server {
            child,
            endpoint: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        let said: Value = serde_json::from_str(&line)
            .with_context(|| format!("s3_server.py did not start: {line:?}"))?;
        let field = |k: &str| said[k].as_str().unwrap_or_default().to_string();
        server.endpoint = field("endpoint");
        server.access_key_id = field("access_key_id");
        server.secret_access_key = field("secret_access_key");
        Ok(server)
    }

    /// A `delta` datastore at `s3://BUCKET/prefix`, its secret from
    /// `${LAKE_S3_SECRET}`.
    pub(crate) fn datastore(&self, kind: &str, prefix: &str) -> String {
        format!(
            "{{type: {kind}, connection: {{uri: 's3://{BUCKET}/{prefix}', storage_options: \
             {{endpoint: '{}', region: us-east-1, access_key_id: {}, \
             secret_access_key: '${{{SECRET_VAR}}}', allow_http: 'true'}}}}}}",
            self.endpoint, self.access_key_id
        )
    }

    /// The Python `deltalake` options for the same store.
    pub(crate) fn reader_options(&self) -> Value {
        json!({
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_ALLOW_HTTP": "true",
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `synchub run` of the workspace's pipeline with the datastore's secret
/// set to `secret`.
pub(crate) fn run_with_secret(ws: &Workspace, strategy: &str, secret: &str) -> RunResult {
    run_pipeline(&ws.pipeline, &ws.state, strategy, secret)
}

fn run_pipeline(pipeline: &Path, state: &Path, strategy: &str, secret: &str) -> RunResult {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(pipeline)
        .args(["--strategy", strategy, "--state-dir"])
        .arg(state)
        .args(["--output", "json"])
        .env("SYNCHUB_LOG", "warn")
        .env(SECRET_VAR, secret)
        .output()
        .expect("run synchub");
    RunResult {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn postgres_into_delta_on_s3_full_delta_and_hash_keep_the_table_equal() -> Result<()> {
    let s3 = S3Server::start(&[BUCKET])?;
    let (client, s, ws) = setup_with("lake_s3", &s3.datastore("delta", "lake")).await?;
    let src = format!("{}.items", s.src);
    let table = format!("s3://{BUCKET}/lake/items");
    let check = |context: &'static str| {
        let (client, src, table, options) = (&client, &src, &table, s3.reader_options());
        async move {
            let have = reader_checksum(table.as_ref(), Some(&options))
                .with_context(|| format!("{context}: reading the table back"))?;
            assert_eq!(
                have,
                pg_checksum(client, src).await?,
                "{context}: the independent reader disagrees with the source"
            );
            anyhow::Ok(())
        }
    };
    let secret = s3.secret_access_key.clone();

    let first = run_with_secret(&ws, "full", &secret);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("rows_inserted"), ROWS, "{}", first.json);
    check("first full load").await?;
    let again = run_with_secret(&ws, "full", &secret);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.n("rows_inserted") + again.n("rows_updated") + again.n("rows_deleted"),
        0,
        "{}",
        again.json
    );

    client
        .batch_execute(&format!(
            "UPDATE {src} SET qty = qty + 100, title = NULL, updated_at = updated_at + interval '2 days'
               WHERE id BETWEEN 10 AND 19;
             UPDATE {src} SET title = '', updated_at = updated_at + interval '2 days' WHERE id = 4000;
             INSERT INTO {src} SELECT g, 7, 1.5, 'new ' || g, timestamptz '2024-06-05 00:00:00+00' + g * interval '1 microsecond'
               FROM generate_series({ROWS} + 1, {ROWS} + 20) g;"
        ))
        .await?;
    let delta = run_with_secret(&ws, "delta", &secret);
    assert_eq!(delta.code, 0, "{}", delta.stderr);
    assert_eq!(delta.n("rows_updated"), 11, "{}", delta.json);
    assert_eq!(delta.n("rows_inserted"), 20, "{}", delta.json);
    check("after delta").await?;

    client
        .batch_execute(&format!(
            "DELETE FROM {src} WHERE id BETWEEN 2500 AND 2514 OR id = 5003;
             UPDATE {src} SET price = price + 0.01 WHERE id IN (1, 1999, 4999);"
        ))
        .await?;
    let hash = run_with_secret(&ws, "hash", &secret);
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_deleted"), 16, "{}", hash.json);
    assert_eq!(hash.n("rows_updated"), 3, "{}", hash.json);
    assert_eq!(hash.n("rows_inserted"), 0, "{}", hash.json);
    check("after hash").await?;

    // The table on S3 as a source, back into PostgreSQL.
    let back = ws.dir.path().join("back.yaml");
    std::fs::write(
        &back,
        pipeline_yaml("lake_s3_back", ("delta", "lake"), ("postgres", "dst")),
    )?;
    let full = run_pipeline(&back, &ws.dir.path().join("state_back"), "full", &secret);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), ROWS + 20 - 16, "{}", full.json);
    assert_eq!(
        difference(&client, &src, &format!("{}.items", s.dst)).await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_s3_secret_is_refused_naming_the_datastore_and_never_printed() -> Result<()> {
    let s3 = S3Server::start(&[BUCKET])?;
    let (_client, _s, ws) = setup_with("lake_s3_auth", &s3.datastore("delta", "lake")).await?;
    let wrong = "wrong-secret-Zq8vX2";
    let out = run_with_secret(&ws, "full", wrong);
    // A credential the store refuses is the config's fault: exit 2, as for bad input.
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains(wrong), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "Delta table \"items\" of datastore \"lake\" (s3://{BUCKET}/lake/items/): \
             the S3 endpoint refused the credentials (SignatureDoesNotMatch): check \
             storage_options access_key_id and secret_access_key"
        )),
        "{}",
        out.stderr
    );
    Ok(())
}
