//! Full syncs PostgreSQL -> PostgreSQL through the real `synchub` binary.
//!
//! Needs the local PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth,
//! database `test`). Every test works in its own pair of schemas
//! (`fs_<test>_<pid>_src` / `_dst`), dropped at the end even when the test
//! fails, so the tests run in parallel with each other and with other runs.
//! Test data is generated in SQL so the tests stay fast in a debug build.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use tokio_postgres::Client;

use crate::common::{connect, scalar as scalar_i64, Schemas};

const PARTITION_STEP: i64 = 25_000;

// ---------------------------------------------------------------------------
// Pipelines and runs
// ---------------------------------------------------------------------------

/// A pipeline file with its datastores.yaml and state folder in a temp dir.
struct Pipeline {
    _dir: tempfile::TempDir,
    file: PathBuf,
    state_dir: PathBuf,
}

/// `columns`: one YAML flow mapping body per column, without source/dest,
/// e.g. `data_type: decimal, precision: 12, scale: 2`. The first is the key.
fn write_pipeline(name: &str, s: &Schemas, table: &str, columns: &[(&str, &str)]) -> Pipeline {
    let dir = tempfile::tempdir().expect("temp dir");
    let datastores = s.datastores_yaml();
    let mut pipeline = format!(
        "name: {name}\n\
         partition_column: id\n\
         partition_step: {PARTITION_STEP}\n\
         source_provider:\n\
         \x20 data_backend: {{type: postgres, datastore_name: src, table: {table}, schema: {src}}}\n\
         destination_provider:\n\
         \x20 data_backend: {{type: postgres, datastore_name: dst, table: {table}, schema: {dst}}}\n\
         strategies:\n\
         \x20 - {{name: full_sync, type: full, page_size: 10000}}\n\
         column_map:\n",
        src = s.src,
        dst = s.dst
    );
    for (i, (col, ty)) in columns.iter().enumerate() {
        let roles = if i == 0 {
            ", roles: [unique_column, partition_column]"
        } else {
            ""
        };
        pipeline.push_str(&format!(
            "  - {{source: {col}, dest: {col}, {ty}{roles}}}\n"
        ));
    }
    std::fs::write(dir.path().join("datastores.yaml"), datastores).unwrap();
    let file = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, pipeline).unwrap();
    Pipeline {
        state_dir: dir.path().join("state"),
        file,
        _dir: dir,
    }
}

/// What `synchub run --output json` reported.
struct Run {
    code: Option<i32>,
    json: Value,
    stderr: String,
}

impl Run {
    fn count(&self, key: &str) -> u64 {
        self.json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no count {key} in {}", self.json))
    }

    /// Fails with the whole summary and the logs unless every count matches.
    fn expect(&self, code: i32, counts: &[(&str, u64)]) -> Result<()> {
        let wrong: Vec<String> = counts
            .iter()
            .filter(|(k, v)| self.json[*k].as_u64() != Some(*v))
            .map(|(k, v)| format!("{k}: expected {v}, got {}", self.json[*k]))
            .collect();
        if self.code != Some(code) || !wrong.is_empty() {
            bail!(
                "exit code {:?} (expected {code}); {}\nsummary: {:#}\nstderr:\n{}",
                self.code,
                wrong.join("; "),
                self.json,
                self.stderr
            );
        }
        Ok(())
    }
}

async fn run(p: &Pipeline) -> Result<Run> {
    let started = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(&p.file)
        .arg("--state-dir")
        .arg(&p.state_dir)
        .args(["--output", "json"])
        .env_remove("SYNCHUB_LOG")
        .kill_on_drop(true)
        .output()
        .await
        .context("running synchub")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_str(stdout.trim()).with_context(|| {
        format!("stdout is not one JSON summary: {stdout:?}\nstderr:\n{stderr}")
    })?;
    eprintln!(
        "synchub run {}: {:.1}s, {}",
        p.file.file_name().unwrap().to_string_lossy(),
        started.elapsed().as_secs_f64(),
        json
    );
    Ok(Run {
        code: out.status.code(),
        json,
        stderr,
    })
}

// ---------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------

/// Asserts that `a` and `b` (qualified names, same columns in the same order,
/// key `id`) hold the same rows. `EXCEPT ALL` both ways compares with each
/// type's equality; the row-text comparison then catches what equality
/// forgives (-0 = 0 for floats, 1.0 = 1.00 for numerics).
async fn assert_same_rows(client: &Client, a: &str, b: &str, filter: &str) -> Result<()> {
    let count_a = scalar_i64(client, &format!("SELECT count(*) FROM {a} WHERE {filter}")).await?;
    let count_b = scalar_i64(client, &format!("SELECT count(*) FROM {b} WHERE {filter}")).await?;
    ensure!(
        count_a == count_b,
        "{a} has {count_a} rows, {b} has {count_b}"
    );
    for (x, y) in [(a, b), (b, a)] {
        let missing = scalar_i64(
            client,
            &format!(
                "SELECT count(*) FROM (SELECT * FROM {x} WHERE {filter} \
                 EXCEPT ALL SELECT * FROM {y} WHERE {filter}) d"
            ),
        )
        .await?;
        if missing > 0 {
            let sample = client
                .query(
                    &format!(
                        "SELECT d::text FROM (SELECT * FROM {x} WHERE {filter} \
                         EXCEPT ALL SELECT * FROM {y} WHERE {filter}) d ORDER BY id LIMIT 3"
                    ),
                    &[],
                )
                .await?;
            let sample: Vec<String> = sample.iter().map(|r| r.get(0)).collect();
            bail!("{missing} rows of {x} are not in {y}, e.g. {sample:#?}");
        }
    }
    let text_diff = format!(
        "FROM (SELECT * FROM {a} WHERE {filter}) x FULL JOIN (SELECT * FROM {b} WHERE {filter}) y \
         USING (id) WHERE x.id IS NULL OR y.id IS NULL OR x::text IS DISTINCT FROM y::text"
    );
    let differ = scalar_i64(client, &format!("SELECT count(*) {text_diff}")).await?;
    if differ > 0 {
        let sample = client
            .query(
                &format!("SELECT x::text, y::text {text_diff} ORDER BY id LIMIT 3"),
                &[],
            )
            .await?;
        let sample: Vec<(Option<String>, Option<String>)> =
            sample.iter().map(|r| (r.get(0), r.get(1))).collect();
        bail!("{differ} rows print differently in {a} and {b}, e.g. {sample:#?}");
    }
    Ok(())
}

/// Copies the `xmin` of every row of `table` into `snapshot`.
async fn snapshot_xmin(client: &Client, table: &str, snapshot: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {snapshot}; \
             CREATE TABLE {snapshot} AS SELECT id, xmin::text AS row_xmin FROM {table}"
        ))
        .await?;
    Ok(())
}

/// Ids of rows of `table` that were rewritten (or deleted) since `snapshot`.
fn rewritten_sql(table: &str, snapshot: &str) -> String {
    format!(
        "SELECT s.id FROM {snapshot} s LEFT JOIN {table} t USING (id) \
         WHERE t.xmin::text IS DISTINCT FROM s.row_xmin"
    )
}

// ---------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------

/// The all-types table: (column, PostgreSQL type, pipeline data_type, and the
/// expected destination columns from information_schema: data_type,
/// character_maximum_length, numeric_precision, numeric_scale,
/// datetime_precision).
type Expected = (
    &'static str,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
);
const ALL_TYPES: &[(&str, &str, &str, Expected)] = &[
    (
        "id",
        "integer PRIMARY KEY",
        "data_type: int",
        ("integer", None, Some(32), Some(0), None),
    ),
    (
        "c_int2",
        "smallint",
        "data_type: smallint",
        ("smallint", None, Some(16), Some(0), None),
    ),
    (
        "c_int4",
        "integer",
        "data_type: integer",
        ("integer", None, Some(32), Some(0), None),
    ),
    (
        "c_int8",
        "bigint",
        "data_type: bigint",
        ("bigint", None, Some(64), Some(0), None),
    ),
    (
        "c_real",
        "real",
        "data_type: real",
        ("real", None, Some(24), None, None),
    ),
    (
        "c_double",
        "double precision",
        "data_type: double",
        ("double precision", None, Some(53), None, None),
    ),
    (
        "c_num38",
        "numeric(38,10)",
        "data_type: decimal, precision: 38, scale: 10",
        ("numeric", None, Some(38), Some(10), None),
    ),
    (
        "c_num12",
        "numeric(12,2)",
        "data_type: numeric, precision: 12, scale: 2",
        ("numeric", None, Some(12), Some(2), None),
    ),
    (
        "c_bool",
        "boolean",
        "data_type: boolean",
        ("boolean", None, None, None, None),
    ),
    (
        "c_varchar",
        "varchar(50)",
        "data_type: varchar, length: 50",
        ("character varying", Some(50), None, None, None),
    ),
    (
        "c_text",
        "text",
        "data_type: text",
        ("text", None, None, None, None),
    ),
    (
        "c_bytea",
        "bytea",
        "data_type: binary",
        ("bytea", None, None, None, None),
    ),
    (
        "c_date",
        "date",
        "data_type: date",
        ("date", None, None, None, Some(0)),
    ),
    (
        "c_time",
        "time",
        "data_type: time",
        ("time without time zone", None, None, None, Some(6)),
    ),
    (
        "c_ts",
        "timestamp",
        "data_type: timestamp",
        ("timestamp without time zone", None, None, None, Some(6)),
    ),
    (
        "c_tstz",
        "timestamptz",
        "data_type: timestamptz",
        ("timestamp with time zone", None, None, None, Some(6)),
    ),
    (
        "c_uuid",
        "uuid",
        "data_type: uuid",
        ("uuid", None, None, None, None),
    ),
    (
        "c_jsonb",
        "jsonb",
        "data_type: json",
        ("jsonb", None, None, None, None),
    ),
];

fn all_types_columns() -> Vec<(&'static str, &'static str)> {
    ALL_TYPES.iter().map(|(c, _, t, _)| (*c, *t)).collect()
}

async fn create_all_types(client: &Client, table: &str) -> Result<()> {
    let cols: Vec<String> = ALL_TYPES
        .iter()
        .map(|(c, t, _, _)| format!("{c} {t}"))
        .collect();
    client
        .batch_execute(&format!("CREATE TABLE {table} ({})", cols.join(", ")))
        .await?;
    Ok(())
}

/// Inserts rows `from..=to` of the all-types table. Every nullable column is
/// NULL on its own residue class (and all of them together on every
/// 10,000th row); the edge values sit on fixed residues of `i % 1000`, so
/// every partition holds each of them.
async fn insert_all_types(client: &Client, table: &str, from: i64, to: i64) -> Result<()> {
    const SQL: &str = r#"
INSERT INTO {T}
SELECT i,
  CASE WHEN {NULL 11} THEN NULL
       WHEN i % 1000 = 2 THEN -32768 WHEN i % 1000 = 3 THEN 32767
       ELSE i::bigint * 7919 % 65536 - 32768 END,
  CASE WHEN {NULL 13} THEN NULL
       WHEN i % 1000 = 4 THEN -2147483648 WHEN i % 1000 = 5 THEN 2147483647
       ELSE i::bigint * 2654435761 % 4294967296 - 2147483648 END,
  CASE WHEN {NULL 17} THEN NULL
       WHEN i % 1000 = 6 THEN -9223372036854775808 WHEN i % 1000 = 7 THEN 9223372036854775807
       ELSE i::numeric * 46116860184273879 % 18446744073709551616 - 9223372036854775808 END,
  CASE WHEN {NULL 19} THEN NULL
       WHEN i % 1000 = 8 THEN 'NaN'::real WHEN i % 1000 = 9 THEN 'Infinity'::real
       WHEN i % 1000 = 10 THEN '-Infinity'::real WHEN i % 1000 = 11 THEN '-0'::real
       WHEN i % 1000 = 12 THEN '3.4028235e38'::real WHEN i % 1000 = 13 THEN '1e-45'::real
       WHEN i % 1000 = 14 THEN '-1.17549435e-38'::real
       ELSE ((i - 100000) / 7.0)::real END,
  CASE WHEN {NULL 23} THEN NULL
       WHEN i % 1000 = 8 THEN 'NaN'::float8 WHEN i % 1000 = 9 THEN 'Infinity'::float8
       WHEN i % 1000 = 10 THEN '-Infinity'::float8 WHEN i % 1000 = 11 THEN '-0'::float8
       WHEN i % 1000 = 12 THEN '1.7976931348623157e308'::float8
       WHEN i % 1000 = 13 THEN '5e-324'::float8
       WHEN i % 1000 = 14 THEN '-2.2250738585072014e-308'::float8
       ELSE (i - 100000) * pi() / 3 END,
  CASE WHEN {NULL 29} THEN NULL
       WHEN i % 1000 = 15 THEN 9999999999999999999999999999.9999999999
       WHEN i % 1000 = 16 THEN -9999999999999999999999999999.9999999999
       WHEN i % 1000 = 17 THEN 0.0000000001 WHEN i % 1000 = 18 THEN -0.0000000001
       WHEN i % 1000 = 19 THEN 0
       ELSE round((i - 100000)::numeric * 49382716049382716049382.7160493827 + i / 7.0, 10) END,
  CASE WHEN {NULL 31} THEN NULL
       WHEN i % 1000 = 15 THEN 9999999999.99 WHEN i % 1000 = 16 THEN -9999999999.99
       WHEN i % 1000 = 17 THEN 0.01 WHEN i % 1000 = 18 THEN -0.01
       ELSE round((i - 100000) * 49999.99 + i / 3.0, 2) END,
  CASE WHEN {NULL 3} THEN NULL ELSE i % 2 = 0 END,
  CASE WHEN {NULL 37} THEN NULL
       WHEN i % 1000 = 20 THEN repeat('😀', 50)
       WHEN i % 1000 = 21 THEN ''
       WHEN i % 1000 = 22 THEN repeat('e' || U&'\0301', 25)
       ELSE (ARRAY['ascii', 'emoji 😀🎉 👩‍👩‍👧‍👦', '漢字テスト 中文 한국어',
                   'combining e' || U&'\0301' || 'n' || U&'\0303',
                   'quote '' " \ tab' || chr(9) || 'nl' || chr(10) || 'end',
                   'RTL שלום مرحبا'])[i % 6 + 1] || ' #' || i END,
  CASE WHEN {NULL 41} THEN NULL
       WHEN i % 1000 = 23 THEN repeat('long text 長い文章 🚀 ', 2000)
       WHEN i % 1000 = 24 THEN ''
       WHEN i % 1000 = 25 THEN 'ctrl' || chr(1) || chr(27) || chr(127) || ' \\N \N NULL'
       ELSE repeat((ARRAY['a', 'ü', '中', '🦀', 'e' || U&'\0301'])[i % 5 + 1], i % 40)
            || ' row ' || i END,
  CASE WHEN {NULL 43} THEN NULL
       WHEN i % 1000 = 26 THEN '\x'::bytea
       WHEN i % 1000 = 27 THEN '\x{ALL_BYTES}'::bytea
       ELSE substring(sha256(int4send(i)) FROM 1 FOR i % 33) END,
  CASE WHEN {NULL 47} THEN NULL
       WHEN i % 1000 = 28 THEN '4713-01-01 BC'::date
       WHEN i % 1000 = 29 THEN '0001-01-01'::date
       WHEN i % 1000 = 30 THEN '9999-12-31'::date
       WHEN i % 1000 = 31 THEN '1969-12-31'::date
       ELSE date '2000-01-01' + (i - 100000) END,
  CASE WHEN {NULL 53} THEN NULL
       WHEN i % 1000 = 32 THEN '00:00:00'::time
       WHEN i % 1000 = 33 THEN '23:59:59.999999'::time
       WHEN i % 1000 = 34 THEN '24:00:00'::time
       ELSE time '00:00:00' + (i::bigint * 1234567891 % 86400000000) * interval '1 microsecond' END,
  CASE WHEN {NULL 59} THEN NULL
       WHEN i % 1000 = 35 THEN '4713-11-24 00:00:00 BC'::timestamp
       WHEN i % 1000 = 36 THEN '1969-12-31 23:59:59.999999'::timestamp
       WHEN i % 1000 = 37 THEN '2038-01-19 03:14:08.000001'::timestamp
       -- The last instant an Arrow timestamp (i64 micros since 1970) holds.
       WHEN i % 1000 = 38 THEN '294247-01-10 04:00:54.775807'::timestamp
       ELSE timestamp '1900-01-01' + (i::bigint * 43200000123) * interval '1 microsecond' END,
  CASE WHEN {NULL 61} THEN NULL
       WHEN i % 1000 = 39 THEN '4713-11-24 00:00:00+00 BC'::timestamptz
       WHEN i % 1000 = 40 THEN '1969-12-31 23:59:59.999999-12'::timestamptz
       WHEN i % 1000 = 41 THEN '2038-01-19 03:14:08.000001+14'::timestamptz
       WHEN i % 1000 = 42 THEN '294247-01-10 04:00:54.775807+00'::timestamptz
       ELSE (timestamp '1901-12-13 20:45:52.123456' + i * interval '11 hours 13 minutes 7.654321 seconds')
            AT TIME ZONE (ARRAY['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Pacific/Chatham',
                                'Asia/Kathmandu', 'America/Los_Angeles'])[i % 6 + 1] END,
  CASE WHEN {NULL 67} THEN NULL
       WHEN i % 1000 = 43 THEN '00000000-0000-0000-0000-000000000000'::uuid
       WHEN i % 1000 = 44 THEN 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid
       ELSE md5(i::text)::uuid END,
  CASE WHEN {NULL 71} THEN NULL
       WHEN i % 1000 = 45 THEN 'null'::jsonb
       WHEN i % 1000 = 46 THEN '"scalar 😀 \u00e9"'::jsonb
       WHEN i % 1000 = 47 THEN '[]'::jsonb
       WHEN i % 1000 = 48 THEN '{}'::jsonb
       WHEN i % 1000 = 49 THEN '-12345678901234567890123456789.123456789e-5'::jsonb
       ELSE jsonb_build_object('id', i, 'name', 'ünï 😀 ' || i,
                               'big', 123456789012345678901234567890.123456789 + i,
                               'tiny', -1.5e-10,
                               'arr', jsonb_build_array(i % 7, true, null, 'x"y\z'),
                               'nested', jsonb_build_object('k', i % 7, 'e', '{}'::jsonb)) END
FROM generate_series({FROM}, {TO}) AS i
"#;
    let all_bytes: String = (0..=255u8).map(|b| format!("{b:02x}")).collect();
    let mut sql = SQL
        .replace("{T}", table)
        .replace("{FROM}", &from.to_string())
        .replace("{TO}", &to.to_string())
        .replace("{ALL_BYTES}", &all_bytes);
    for p in [
        3, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
    ] {
        sql = sql.replace(
            &format!("{{NULL {p}}}"),
            &format!("(i % {p} = 1 OR i % 10000 = 9999)"),
        );
    }
    client
        .batch_execute(&sql)
        .await
        .context("generating rows")?;
    Ok(())
}

/// Checks that the generated source really holds what the tests claim:
/// NULLs and values in every nullable column, and each integer type's extremes.
async fn check_source_variety(client: &Client, table: &str) -> Result<()> {
    let checks: Vec<String> = ALL_TYPES[1..]
        .iter()
        .map(|(c, ..)| format!("count({c}) > 0 AND count(*) > count({c})"))
        .chain([
            "min(c_int2) = -32768 AND max(c_int2) = 32767".to_string(),
            "min(c_int4) = -2147483648 AND max(c_int4) = 2147483647".to_string(),
            "min(c_int8) = -9223372036854775808 AND max(c_int8) = 9223372036854775807".to_string(),
            "max(c_num38) = 9999999999999999999999999999.9999999999".to_string(),
            "max(char_length(c_varchar)) = 50 AND max(octet_length(c_varchar)) = 200".to_string(),
            "min(c_ts) < '1970-01-01' AND max(c_ts) > '2038-01-20'".to_string(),
            "min(c_tstz) < '1970-01-01' AND max(c_tstz) > '2038-01-20'".to_string(),
            "count(*) FILTER (WHERE c_jsonb = 'null') > 0".to_string(),
        ])
        .collect();
    for check in checks {
        let ok: bool = client
            .query_one(&format!("SELECT {check} FROM {table}"), &[])
            .await?
            .get(0);
        ensure!(ok, "generated source fails: {check}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

const ROWS: i64 = 200_000;

#[tokio::test]
async fn full_sync_of_every_type_is_exact_and_idempotent() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "fs_types").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);

    let started = Instant::now();
    create_all_types(&client, &src).await?;
    insert_all_types(&client, &src, 0, ROWS - 1).await?;
    check_source_variety(&client, &src).await?;
    eprintln!(
        "generated {ROWS} rows in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let p = write_pipeline("fs_types", &s, "items", &all_types_columns());
    let first = run(&p).await?;
    first.expect(
        0,
        &[
            ("rows_read", 200_000),
            ("rows_inserted", 200_000),
            ("rows_updated", 0),
            ("rows_unchanged", 0),
            ("partitions_total", 8),
            ("partitions_done", 8),
            ("partitions_skipped", 0),
        ],
    )?;
    assert_eq!(first.json["status"], "completed");

    assert_same_rows(&client, &src, &dst, "true").await?;

    // Loaded from empty, the table was analyzed: the planner knows its key.
    let key_stats = scalar_i64(
        &client,
        &format!(
            "SELECT count(*) FROM pg_stats WHERE schemaname = '{}' AND tablename = 'items' AND attname = 'id'",
            s.dst
        ),
    )
    .await?;
    assert_eq!(key_stats, 1, "no statistics on {dst}");
    // From a sample: the row count the planner estimates with is close.
    let estimate = scalar_i64(
        &client,
        &format!("SELECT reltuples::bigint FROM pg_class WHERE oid = '{dst}'::regclass"),
    )
    .await?;
    assert!(
        (190_000..=210_000).contains(&estimate),
        "{dst} is estimated at {estimate} rows"
    );

    // The created table has exactly the configured types.
    let rows = client
        .query(
            "SELECT column_name::text, data_type::text, character_maximum_length::int, \
             numeric_precision::int, numeric_scale::int, datetime_precision::int, \
             is_nullable::text \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' \
             ORDER BY ordinal_position",
            &[&s.dst],
        )
        .await?;
    let describe = |c: &str, t: &str, len, prec, scale, dt, nullable: &str| {
        format!(
            "{c}: {t} length={len:?} precision={prec:?} scale={scale:?} \
             datetime_precision={dt:?} nullable={nullable}"
        )
    };
    let actual: Vec<String> = rows
        .iter()
        .map(|r| {
            describe(
                r.get(0),
                r.get(1),
                r.get::<_, Option<i32>>(2),
                r.get::<_, Option<i32>>(3),
                r.get::<_, Option<i32>>(4),
                r.get::<_, Option<i32>>(5),
                r.get(6),
            )
        })
        .collect();
    let expected: Vec<String> = ALL_TYPES
        .iter()
        .map(|(c, _, _, (t, len, prec, scale, dt))| {
            let nullable = if *c == "id" { "NO" } else { "YES" };
            describe(c, t, *len, *prec, *scale, *dt, nullable)
        })
        .collect();
    assert_eq!(actual, expected);
    let key: Vec<String> = client
        .query_one(
            "SELECT array_agg(a.attname::text) FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
            &[&dst],
        )
        .await?
        .get(0);
    assert_eq!(key, ["id"]);

    // One checkpoint per partition, each with its row count.
    let checkpoints = client
        .query(
            &format!(
                "SELECT partition_id, rows FROM {}._synchub_checkpoints \
                 WHERE pipeline = 'fs_types' AND run_id = $1 ORDER BY rows, partition_id",
                s.dst
            ),
            &[&first.json["run_id"].as_str().unwrap_or_default()],
        )
        .await?;
    assert_eq!(checkpoints.len(), 8);
    assert!(checkpoints
        .iter()
        .all(|r| r.get::<_, i64>(1) == PARTITION_STEP));

    // A second run finds nothing to do and rewrites no row: every
    // partition's checksum matches, so no row is even read.
    let snapshot = format!("{}.xmin_before", s.src);
    snapshot_xmin(&client, &dst, &snapshot).await?;
    let second = run(&p).await?;
    second.expect(
        0,
        &[
            ("rows_read", 0),
            ("rows_inserted", 0),
            ("rows_updated", 0),
            ("rows_unchanged", 200_000),
            ("partitions_total", 8),
            ("partitions_done", 8),
            ("partitions_skipped", 0),
        ],
    )?;
    assert_ne!(second.json["run_id"], first.json["run_id"]);
    let rewritten = client.query(&rewritten_sql(&dst, &snapshot), &[]).await?;
    assert!(
        rewritten.is_empty(),
        "{} unchanged rows were rewritten, e.g. id {}",
        rewritten.len(),
        rewritten[0].get::<_, i32>(0)
    );
    assert_same_rows(&client, &src, &dst, "true").await?;

    Ok(())
}

#[tokio::test]
async fn updates_in_source_are_applied() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "fs_updates").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    // Smaller than the other tests: the point here is the change detection.
    const SMALL_ROWS: i64 = 100_000;
    create_all_types(&client, &src).await?;
    insert_all_types(&client, &src, 0, SMALL_ROWS - 1).await?;

    let p = write_pipeline("fs_updates", &s, "items", &all_types_columns());
    run(&p).await?.expect(
        0,
        &[
            ("rows_inserted", SMALL_ROWS as u64),
            ("partitions_total", 4),
        ],
    )?;
    let snapshot = format!("{}.xmin_before", s.src);
    snapshot_xmin(&client, &dst, &snapshot).await?;

    // 1,000 updated rows (ids ending in 11), each with one change. Most get
    // one column changed, by group: the 17 groups cover every column, with
    // value -> other value, NULL -> value and value -> NULL. The rows with
    // id % 1000 = 11 hold -0 in c_real and c_double (or NULL in one of
    // them) and only get that zero's sign flipped: equal under `=`, but a
    // different value all the same.
    let alternatives = [
        ("c_int2", "12345::smallint"),
        ("c_int4", "7"),
        ("c_int8", "-7::bigint"),
        ("c_real", "0.5::real"),
        ("c_double", "2.5::float8"),
        ("c_num38", "1.5"),
        ("c_num12", "2.25"),
        ("c_bool", "true"),
        ("c_varchar", "'changed ✓'"),
        ("c_text", "'changed text ✓'"),
        ("c_bytea", r"'\xdeadbeef'::bytea"),
        ("c_date", "'2024-02-29'::date"),
        ("c_time", "'12:00:00.000001'::time"),
        ("c_ts", "'2038-01-19 03:14:08.000001'::timestamp"),
        ("c_tstz", "'2099-12-31 23:59:59.999999+00'::timestamptz"),
        ("c_uuid", "'00000000-0000-4000-8000-000000000001'::uuid"),
        ("c_jsonb", r#"'{"changed": true}'::jsonb"#),
    ];
    let every = SMALL_ROWS / 1000;
    let set: Vec<String> = alternatives
        .iter()
        .enumerate()
        .map(|(g, (c, v))| {
            let zero = if matches!(*c, "c_real" | "c_double") {
                format!("-{c}")
            } else {
                c.to_string()
            };
            format!(
                "{c} = CASE WHEN id % 1000 = 11 THEN {zero} \
                 WHEN (id / {every}) % 17 = {g} THEN \
                 (CASE WHEN {c} IS NOT DISTINCT FROM {v} THEN NULL ELSE {v} END) ELSE {c} END"
            )
        })
        .collect();
    let updated = client
        .execute(
            &format!(
                "UPDATE {src} SET {} WHERE id % {every} = 11",
                set.join(", ")
            ),
            &[],
        )
        .await?;
    assert_eq!(updated, 1000);
    let flipped = scalar_i64(
        &client,
        &format!(
            "SELECT count(*) FROM {src} WHERE id % 1000 = 11 \
             AND (c_real::text = '0' OR c_double::text = '0') \
             AND c_real::text IS DISTINCT FROM '-0' AND c_double::text IS DISTINCT FROM '-0'"
        ),
    )
    .await?;
    assert_eq!(flipped, SMALL_ROWS / 1000);
    insert_all_types(&client, &src, SMALL_ROWS, SMALL_ROWS + 499).await?;

    let second = run(&p).await?;
    second.expect(
        0,
        &[
            ("rows_read", SMALL_ROWS as u64 + 500),
            ("rows_inserted", 500),
            ("rows_updated", 1000),
            ("rows_unchanged", SMALL_ROWS as u64 - 1000),
            ("partitions_total", 5),
            ("partitions_done", 5),
            ("partitions_skipped", 0),
        ],
    )?;
    assert_same_rows(&client, &src, &dst, "true").await?;
    // Exactly the updated rows were rewritten.
    let rewritten: Vec<i32> = client
        .query(
            &format!("{} ORDER BY 1", rewritten_sql(&dst, &snapshot)),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i32> = (0..SMALL_ROWS as i32)
        .filter(|id| id % every as i32 == 11)
        .collect();
    assert_eq!(rewritten.len(), expected.len());
    assert!(
        rewritten == expected,
        "rewritten rows are not the updated ones"
    );

    Ok(())
}

/// The row of the resume tests whose `code` is too long for varchar(10).
const BAD_ID: i64 = 150_000;

/// Syncs a table whose row `BAD_ID` has a `code` too long for varchar(10):
/// the first run fails in partition 150000..175000, the checkpoints name
/// exactly the partitions whose rows reached the destination, and after the
/// row is fixed a second run skips those and finishes the sync.
///
/// With `reject_in_destination` the pipeline maps `code` as an unbounded
/// string into an existing varchar(10) column, so PostgreSQL rejects the
/// row when populate writes it; otherwise the pipeline maps it as
/// varchar(10) and fetch rejects it while reading. Returns how many
/// partitions the failed run committed.
async fn check_resume(test: &str, reject_in_destination: bool) -> Result<i64> {
    let client = connect().await?;
    let s = Schemas::create(&client, &format!("fs_{test}")).await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    let name = format!("fs_{test}");
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id integer PRIMARY KEY, code text, amount numeric(12,2), seen timestamptz);
             INSERT INTO {src}
             SELECT i, CASE WHEN i = {BAD_ID} THEN 'much longer than ten' ELSE 'c' || i END,
                    round(i / 7.0, 2), timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
             FROM generate_series(0, {}) AS i",
            ROWS - 1
        ))
        .await?;
    let code_type = if reject_in_destination {
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {}; CREATE TABLE {dst} (id integer PRIMARY KEY, code varchar(10), \
                 amount numeric(12,2), seen timestamptz)",
                s.dst
            ))
            .await?;
        "data_type: string"
    } else {
        "data_type: varchar, length: 10"
    };
    let p = write_pipeline(
        &name,
        &s,
        "items",
        &[
            ("id", "data_type: int"),
            ("code", code_type),
            ("amount", "data_type: decimal, precision: 12, scale: 2"),
            ("seen", "data_type: timestamptz"),
        ],
    );

    let failed = run(&p).await?;
    ensure!(
        failed.code == Some(1) && failed.json["status"] == "failed",
        "expected a failed run with exit code 1, got {:?}: {:#}\n{}",
        failed.code,
        failed.json,
        failed.stderr
    );
    assert_eq!(failed.count("partitions_total"), 8);
    let error = failed.json["error"].as_str().unwrap_or_default();
    if reject_in_destination {
        assert!(
            error.starts_with("populate:") && error.contains("varying(10)"),
            "the error should come from the destination's varchar(10): {error}"
        );
    } else {
        assert!(
            error.starts_with("fetch:")
                && error.contains("id=150000")
                && error.contains("\"code\"")
                && error.contains("varchar(10)"),
            "the error should name the row, the column and the type: {error}"
        );
    }

    // The checkpoints are an unbroken run of partitions from the first one,
    // all before the bad row, and the destination holds exactly their rows.
    let mut checkpoints: Vec<(i64, i64, String)> = client
        .query(
            &format!(
                "SELECT partition_id, rows FROM {}._synchub_checkpoints \
                 WHERE pipeline = $1 AND run_id = $2",
                s.dst
            ),
            &[&name, &failed.json["run_id"].as_str().unwrap_or_default()],
        )
        .await?
        .iter()
        .map(|r| {
            let id: String = r.get(0);
            let start = id.split('_').nth(1).and_then(|n| n.parse().ok());
            (start.unwrap_or(-1), r.get(1), id)
        })
        .collect();
    checkpoints.sort();
    let committed = checkpoints.len() as i64;
    let expected: Vec<(i64, i64, String)> = (0..committed)
        .map(|k| {
            let (start, end) = (k * PARTITION_STEP, (k + 1) * PARTITION_STEP);
            (start, PARTITION_STEP, format!("id_{start}_{end}"))
        })
        .collect();
    assert_eq!(checkpoints, expected);
    assert!(committed * PARTITION_STEP <= BAD_ID, "{checkpoints:?}");
    assert_same_rows(
        &client,
        &src,
        &dst,
        &format!("id < {}", committed * PARTITION_STEP),
    )
    .await?;
    assert_eq!(
        scalar_i64(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        committed * PARTITION_STEP,
        "rows of uncommitted partitions reached the destination"
    );
    // Everything read whole before the failure is committed and counted.
    assert_eq!(failed.count("partitions_done") as i64, committed);
    assert_eq!(committed, BAD_ID / PARTITION_STEP, "{checkpoints:?}");

    // Fix the row; the next run resumes the same run and skips what was committed.
    client
        .batch_execute(&format!(
            "UPDATE {src} SET code = 'fixed' WHERE id = {BAD_ID}"
        ))
        .await?;
    let remaining = 8 - committed as u64;
    let resumed = run(&p).await?;
    resumed.expect(
        0,
        &[
            ("partitions_total", 8),
            ("partitions_skipped", committed as u64),
            ("partitions_done", remaining),
            ("rows_read", remaining * PARTITION_STEP as u64),
            ("rows_inserted", remaining * PARTITION_STEP as u64),
            ("rows_updated", 0),
            ("rows_unchanged", 0),
        ],
    )?;
    assert_eq!(resumed.json["run_id"], failed.json["run_id"]);
    assert_same_rows(&client, &src, &dst, "true").await?;
    Ok(committed)
}

/// The pipeline's own varchar(10) rejects the row while fetch reads it; the
/// operators downstream still commit the six partitions read before it.
#[tokio::test]
async fn resumes_after_failure() -> Result<()> {
    check_resume("resume", false).await?;
    Ok(())
}

/// The destination's varchar(10) rejects the row when populate writes it,
/// so every partition before it is committed.
#[tokio::test]
async fn resumes_after_failure_in_destination() -> Result<()> {
    let committed = check_resume("resume_dst", true).await?;
    assert_eq!(committed, BAD_ID / PARTITION_STEP);
    Ok(())
}
