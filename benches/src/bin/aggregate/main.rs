//! The aggregate benchmark of issue 14: an aggregate delta against a full
//! re-aggregation, measured side by side in one run on the local
//! PostgreSQL.
//!
//! ```text
//! cargo run --release -p synchub-benches --bin aggregate -- --rows 2000000 --rounds 2
//! ```
//!
//! Generates `orders` (1,000 users over a year) and, each round, times
//! alternately: the floor of a full rebuild (`INSERT INTO … SELECT … GROUP
//! BY` into an empty table), `REFRESH MATERIALIZED VIEW` of the same query,
//! `synchub run` of the spec's daily-orders aggregate into an empty table
//! (every group), then after 0.1%, 1% and 10% of the orders changed, the
//! delta that re-computes only the groups they touch; with each engine
//! (`aggregate_engine: source` and `datafusion`). Every synchub result is
//! checked against the floor's table. Writes `aggregate-report.md` to
//! `--out-dir` and prints it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use tokio_postgres::{Client, NoTls};

const SRC: &str = "bench_agg_src";
const DST: &str = "bench_agg_dst";
const USERS: i64 = 1_000;
const DAYS: i64 = 365;

/// The spec's group-by, as SQL over `SRC.orders`.
const GROUP_BY: &str =
    "SELECT user_id, CAST(order_date AS DATE) AS date, count(1)::int AS num_orders, \
    sum(amount) AS amount, sum(discount) AS discount, max(updated_at) AS last_updated_at \
    FROM bench_agg_src.orders GROUP BY user_id, CAST(order_date AS DATE)";

#[derive(Parser, Debug)]
#[command(
    name = "aggregate",
    about = "Aggregate delta vs full re-aggregation, in one run"
)]
struct Args {
    #[arg(long, default_value_t = 2_000_000)]
    rows: i64,
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// The synchub binary (a release build).
    #[arg(long)]
    synchub: PathBuf,
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    #[arg(
        long,
        default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    )]
    pg: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (client, conn) = tokio_postgres::connect(&args.pg, NoTls)
        .await
        .context("local PostgreSQL")?;
    tokio::spawn(conn);
    generate(&client, args.rows).await?;
    let work = tempfile::tempdir()?;
    let mut lines = Vec::new();
    // Each engine, and the source engine with `track_moves` (its cost).
    for (engine, track_moves) in [("source", false), ("datafusion", false), ("source", true)] {
        let name = if track_moves {
            format!("{engine}_track_moves")
        } else {
            engine.to_string()
        };
        let pipeline = write_pipeline(work.path(), &name, engine, track_moves)?;
        for round in 1..=args.rounds {
            lines.extend(round_of(&client, &args, &pipeline, &name, round).await?);
        }
    }
    let report = render(&args, &lines);
    println!("{report}");
    std::fs::create_dir_all(&args.out_dir)?;
    std::fs::write(args.out_dir.join("aggregate-report.md"), report)?;
    client
        .batch_execute(&format!(
            "DROP SCHEMA {SRC} CASCADE; DROP SCHEMA {DST} CASCADE"
        ))
        .await?;
    Ok(())
}

async fn generate(client: &Client, rows: i64) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {SRC} CASCADE; DROP SCHEMA IF EXISTS {DST} CASCADE;
             CREATE SCHEMA {SRC}; CREATE SCHEMA {DST};
             CREATE TABLE {SRC}.orders (order_id bigint PRIMARY KEY, user_id int NOT NULL,
               amount numeric(12,2) NOT NULL, discount numeric(12,2), order_date timestamp NOT NULL,
               updated_at timestamp NOT NULL);
             INSERT INTO {SRC}.orders SELECT g, (g * 7919) % {USERS}, 1 + (g % 50000) / 100.0,
               CASE WHEN g % 4 = 0 THEN (g % 1000) / 100.0 END,
               timestamp '2024-01-01' + ((g * 104729) % ({DAYS} * 86400)) * interval '1 second',
               timestamp '2024-01-01' + (g % ({DAYS} * 86400)) * interval '1 second'
             FROM generate_series(1::bigint, {rows}) g;
             CREATE INDEX ON {SRC}.orders (updated_at);
             CREATE INDEX ON {SRC}.orders (user_id, order_date);
             VACUUM ANALYZE {SRC}.orders;
             CREATE MATERIALIZED VIEW {DST}.mv AS {GROUP_BY};
             CREATE TABLE {DST}.floor (user_id int, date date, num_orders int, amount numeric(14,2),
               discount numeric(14,2), last_updated_at timestamp, PRIMARY KEY (user_id, date));"
        ))
        .await?;
    Ok(())
}

/// The pipeline `agg_<name>` into table `agg_<name>`.
fn write_pipeline(dir: &Path, name: &str, engine: &str, track_moves: bool) -> Result<PathBuf> {
    let (tracking, row_key) = if track_moves {
        (
            "    track_moves: true\n",
            "      - {name: order_id, data_type: bigint, unique_column: true}\n",
        )
    } else {
        ("", "")
    };
    std::fs::write(
        dir.join("datastores.yaml"),
        format!(
            "datastores:\n  src: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {SRC}, sslmode: disable}}}}\n  dst: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {DST}, sslmode: disable}}}}\n"
        ),
    )?;
    let path = dir.join(format!("agg_{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: agg_{name}
sync_type: aggregate
aggregate_engine: {engine}
strategies:
  - name: delta
    type: delta
{tracking}    primary_partitions:
      - {{column: updated_at, step: 30, step_unit: day, data_type: datetime}}
    delta_partitions:
      - {{column: user_id, type: value, step: -1, data_type: integer}}
      - {{column: order_date, step: 1, step_unit: day, data_type: datetime}}
backends:
  - name: orders
    type: postgres
    datastore_name: src
    table: orders
    columns:
{row_key}      - {{name: user_id, data_type: integer}}
      - {{name: amount, data_type: decimal, precision: 12, scale: 2}}
      - {{name: discount, data_type: decimal, precision: 12, scale: 2}}
      - {{name: order_date, data_type: datetime}}
      - {{name: updated_at, data_type: datetime}}
  - name: daily
    type: postgres
    datastore_name: dst
    table: agg_{name}
    columns:
      - {{name: user_id, data_type: integer, unique_column: true}}
      - {{name: date, data_type: date, unique_column: true}}
      - {{name: num_orders, data_type: integer}}
      - {{name: amount, data_type: decimal, precision: 14, scale: 2}}
      - {{name: discount, data_type: decimal, precision: 14, scale: 2}}
      - {{name: last_updated_at, data_type: datetime}}
      - {{name: order_date, expr: date, data_type: date, virtual: true}}
stages:
  - name: data_fetch
    type: data_fetch
    source:
      name: orders
      columns:
        - {{name: user_id}}
        - {{name: date, expr: \"CAST(order_date AS DATE)\"}}
        - {{name: num_orders, expr: \"count(1)\"}}
        - {{name: amount, expr: \"sum(amount)\"}}
        - {{name: discount, expr: \"sum(discount)\"}}
        - {{name: last_updated_at, expr: \"max(updated_at)\"}}
      group_by: [user_id, date]
    destination: {{name: daily}}
"
        ),
    )?;
    Ok(path)
}

/// One timed measurement.
struct Line {
    /// The engine, and `_track_moves` when the delta tracks moves.
    engine: String,
    round: u32,
    case: String,
    seconds: f64,
    /// The floor measured just before, in the same round.
    floor: f64,
    groups: Option<i64>,
}

async fn timed_sql(client: &Client, sql: &str) -> Result<f64> {
    let t = Instant::now();
    client.batch_execute(sql).await?;
    Ok(t.elapsed().as_secs_f64())
}

/// `synchub run` of the delta strategy: seconds and groups re-computed.
fn synchub_run(args: &Args, pipeline: &Path, state: &Path) -> Result<(f64, i64)> {
    let t = Instant::now();
    let out = Command::new(&args.synchub)
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--strategy",
            "delta",
            "--output",
            "json",
        ])
        .arg("--state-dir")
        .arg(state)
        .env("SYNCHUB_LOG", "warn")
        .output()?;
    let seconds = t.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "synchub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok((seconds, summary["groups_recomputed"].as_i64().unwrap_or(-1)))
}

async fn floor(client: &Client) -> Result<f64> {
    client
        .batch_execute(&format!("TRUNCATE {DST}.floor"))
        .await?;
    timed_sql(client, &format!("INSERT INTO {DST}.floor {GROUP_BY}")).await
}

async fn same_as_floor(client: &Client, engine: &str) -> Result<()> {
    let cols = "user_id, date, num_orders, amount, discount, last_updated_at";
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM (SELECT {cols} FROM {DST}.floor EXCEPT SELECT {cols} FROM {DST}.agg_{engine}) a)
                      + (SELECT count(*) FROM (SELECT {cols} FROM {DST}.agg_{engine} EXCEPT SELECT {cols} FROM {DST}.floor) b)"
            ),
            &[],
        )
        .await?;
    let differing: i64 = row.get(0);
    ensure!(
        differing == 0,
        "{engine}: {differing} groups differ from the floor's GROUP BY"
    );
    Ok(())
}

async fn round_of(
    client: &Client,
    args: &Args,
    pipeline: &Path,
    engine: &str,
    round: u32,
) -> Result<Vec<Line>> {
    let state = tempfile::tempdir()?;
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {DST}.agg_{engine}"))
        .await?;
    let mut lines = Vec::new();
    let mut line = |case: &str, seconds: f64, floor: f64, groups: Option<i64>| {
        lines.push(Line {
            engine: engine.into(),
            round,
            case: case.into(),
            seconds,
            floor,
            groups,
        })
    };
    let f = floor(client).await?;
    line(
        "floor: INSERT … SELECT … GROUP BY into an empty table",
        f,
        f,
        None,
    );
    let mv = timed_sql(client, &format!("REFRESH MATERIALIZED VIEW {DST}.mv")).await?;
    line("REFRESH MATERIALIZED VIEW", mv, f, None);
    let f = floor(client).await?;
    let (s, groups) = synchub_run(args, pipeline, state.path())?;
    line(
        "synchub, every group into an empty table",
        s,
        f,
        Some(groups),
    );
    same_as_floor(client, engine).await?;
    // Changes stamped past every updated_at so far, a second apart per round.
    for (i, pct) in [0.1f64, 1.0, 10.0].into_iter().enumerate() {
        let every = (100.0 / pct).round() as i64;
        let stamp = format!(
            "2025-06-01 00:00:00'::timestamp + interval '{} seconds",
            round * 10 + i as u32
        );
        client
            .batch_execute(&format!(
                "UPDATE {SRC}.orders SET amount = amount + 0.01, updated_at = '{stamp}'
                 WHERE order_id % {every} = {}",
                (round as i64 * 7 + i as i64) % every
            ))
            .await?;
        let f = floor(client).await?;
        let (s, groups) = synchub_run(args, pipeline, state.path())?;
        line(
            &format!("synchub delta after {pct}% of orders changed"),
            s,
            f,
            Some(groups),
        );
        same_as_floor(client, engine).await?;
    }
    Ok(lines)
}

fn render(args: &Args, lines: &[Line]) -> String {
    let mut s = format!(
        "# Aggregate sync: delta vs full re-aggregation\n\n{} orders, {USERS} users over {DAYS} days; \
         each synchub time with the floor (INSERT … SELECT … GROUP BY into an empty table) timed \
         just before it; every synchub result checked equal to the floor's table.\n\n\
         | engine | round | case | seconds | ratio to the floor | groups re-computed |\n|---|---|---|---|---|---|\n",
        args.rows
    );
    for l in lines {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {} |\n",
            l.engine,
            l.round,
            l.case,
            l.seconds,
            l.seconds / l.floor,
            l.groups.map_or("".to_string(), |g| g.to_string())
        ));
    }
    s
}
