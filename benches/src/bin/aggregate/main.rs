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
//! (every group), then after 0.1%, 1% and 10% of the orders changed
//! (picked by a hash of their id: spread over every group) and after the
//! newest 1% changed (the latest days' orders), the delta that
//! re-computes only the groups they touch, beside the bare SQL delta of
//! the same changes; with each engine (`aggregate_engine: source` and
//! `datafusion`), and the source engine with `track_moves`. Every synchub
//! result is checked against the floor's table. Writes
//! `aggregate-report.md` to `--out-dir` and prints it.

#[path = "../pg_runner/mod.rs"]
mod pg_runner;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Result};
use clap::Parser;
use tokio_postgres::Client;

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
    let client = pg_runner::connect(&args.pg).await?;
    generate(&client, args.rows).await?;
    let work = tempfile::tempdir()?;
    let mut lines = Vec::new();
    // Each engine, and the source engine with `track_moves` (its cost).
    // Each change is stamped past every earlier one, whichever engine made
    // it: a delta sees only rows stamped past its watermark.
    let mut stamps = 0u32;
    for (engine, track_moves) in [("source", false), ("datafusion", false), ("source", true)] {
        let name = if track_moves {
            format!("{engine}_track_moves")
        } else {
            engine.to_string()
        };
        let pipeline = write_pipeline(work.path(), &name, engine, track_moves)?;
        for round in 1..=args.rounds {
            lines.extend(round_of(&client, &args, &pipeline, &name, round, &mut stamps).await?);
        }
    }
    let report = render(&args, &lines);
    pg_runner::finish(
        &client,
        &args.out_dir,
        "aggregate-report.md",
        &report,
        &[SRC, DST],
    )
    .await
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
             CREATE MATERIALIZED VIEW {DST}.mv AS {GROUP_BY};
             CREATE TABLE {DST}.floor (user_id int, date date, num_orders int, amount numeric(14,2),
               discount numeric(14,2), last_updated_at timestamp, PRIMARY KEY (user_id, date));"
        ))
        .await?;
    pg_runner::vacuum_analyze(client, &format!("{SRC}.orders")).await
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
    pg_runner::write_datastores(dir, SRC, DST)?;
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
    /// The bare SQL delta of the same changes, timed just before.
    bare: Option<f64>,
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
    stamps: &mut u32,
) -> Result<Vec<Line>> {
    let state = tempfile::tempdir()?;
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {DST}.agg_{engine}"))
        .await?;
    let mut lines = Vec::new();
    let mut line =
        |case: &str, seconds: f64, floor: f64, groups: Option<i64>, bare: Option<f64>| {
            eprintln!("{engine} round {round}: {case}: {seconds:.3} s (floor {floor:.3} s)");
            lines.push(Line {
                engine: engine.into(),
                round,
                case: case.into(),
                seconds,
                floor,
                groups,
                bare,
            })
        };
    let f = floor(client).await?;
    line(
        "floor: INSERT … SELECT … GROUP BY into an empty table",
        f,
        f,
        None,
        None,
    );
    let mv = timed_sql(client, &format!("REFRESH MATERIALIZED VIEW {DST}.mv")).await?;
    line("REFRESH MATERIALIZED VIEW", mv, f, None, None);
    let f = floor(client).await?;
    let (s, groups) = synchub_run(args, pipeline, state.path())?;
    line(
        "synchub, every group into an empty table",
        s,
        f,
        Some(groups),
        None,
    );
    same_as_floor(client, engine).await?;
    // The bare SQL delta keeps a table of its own, equal to synchub's now.
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {DST}.bare;
             CREATE TABLE {DST}.bare (LIKE {DST}.floor INCLUDING ALL);
             INSERT INTO {DST}.bare SELECT * FROM {DST}.floor;"
        ))
        .await?;
    let changes = [
        (Change::Spread, 0.1f64),
        (Change::Spread, 1.0),
        (Change::Spread, 10.0),
        (Change::Newest, 1.0),
    ];
    for (change, pct) in changes {
        *stamps += 1;
        let from = change.apply(client, pct, *stamps).await?;
        let what = format!("{pct}% of orders changed, {}", change.name());
        let f = floor(client).await?;
        let bare = bare_delta(client, &from).await?;
        line(&format!("bare SQL delta after {what}"), bare, f, None, None);
        let (s, groups) = synchub_run(args, pipeline, state.path())?;
        line(
            &format!("synchub delta after {what}"),
            s,
            f,
            Some(groups),
            Some(bare),
        );
        same_as_floor(client, engine).await?;
    }
    Ok(lines)
}

/// Which orders a round changes.
#[derive(Clone, Copy)]
enum Change {
    /// Picked by a hash of the order id: spread over every group.
    Spread,
    /// The orders of the latest days: few days, every user.
    Newest,
}

impl Change {
    fn name(self) -> &'static str {
        match self {
            Change::Spread => "spread over every group",
            Change::Newest => "the newest orders",
        }
    }

    /// Changes `pct`% of the orders, each stamped with an `updated_at` of
    /// its own past every earlier one (a delta reads from its watermark
    /// inclusive: one shared stamp would be read again by the next run);
    /// the first stamp it gave.
    async fn apply(self, client: &Client, pct: f64, stamp: u32) -> Result<String> {
        let from = format!("timestamp '2025-06-01' + interval '1 hour' * {stamp}");
        let which = match self {
            Change::Spread => format!(
                "abs(hashint8(order_id + {stamp})) % {} = 0",
                (100.0 / pct).round() as i64
            ),
            Change::Newest => format!(
                "order_date >= (SELECT percentile_disc({}) WITHIN GROUP (ORDER BY order_date) FROM {SRC}.orders)",
                1.0 - pct / 100.0
            ),
        };
        client
            .batch_execute(&format!(
                "UPDATE {SRC}.orders SET amount = amount + 0.01,
                   updated_at = {from} + order_id * interval '1 microsecond' WHERE {which}"
            ))
            .await?;
        let (first,): (String,) = {
            let row = client
                .query_one(&format!("SELECT CAST({from} AS text)"), &[])
                .await?;
            (row.get(0),)
        };
        Ok(first)
    }
}

/// The same re-computation by hand, knowing which rows changed: their
/// groups re-aggregated and upserted into `bare` where they differ.
async fn bare_delta(client: &Client, from: &str) -> Result<f64> {
    let cols = ["num_orders", "amount", "discount", "last_updated_at"];
    let set: Vec<String> = cols.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
    let mine: Vec<String> = cols.iter().map(|c| format!("bare.{c}")).collect();
    let theirs: Vec<String> = cols.iter().map(|c| format!("EXCLUDED.{c}")).collect();
    timed_sql(
        client,
        &format!(
            "INSERT INTO {DST}.bare AS bare
             SELECT o.user_id, CAST(o.order_date AS DATE), count(1)::int, sum(o.amount),
               sum(o.discount), max(o.updated_at)
             FROM (SELECT DISTINCT user_id AS k0, CAST(order_date AS DATE) AS k1 FROM {SRC}.orders
                   WHERE updated_at >= timestamp '{from}') t
             JOIN {SRC}.orders o ON o.user_id = t.k0 AND o.order_date >= t.k1 AND o.order_date < t.k1 + 1
             GROUP BY o.user_id, CAST(o.order_date AS DATE)
             ON CONFLICT (user_id, date) DO UPDATE SET {}
             WHERE ({}) IS DISTINCT FROM ({})",
            set.join(", "),
            mine.join(", "),
            theirs.join(", ")
        ),
    )
    .await
}

fn render(args: &Args, lines: &[Line]) -> String {
    let mut s = format!(
        "# Aggregate sync: delta vs full re-aggregation\n\n{} orders, {USERS} users over {DAYS} days; \
         each time with the floor (INSERT … SELECT … GROUP BY into an empty table) timed just \
         before it; each synchub delta with the bare SQL delta of the same changes (their groups \
         re-aggregated and upserted by hand, knowing which rows changed) timed just before it; \
         every synchub result checked equal to the floor's table.\n\n\
         | engine | round | case | seconds | ratio to the floor | ratio to the bare SQL delta | groups re-computed |\n\
         |---|---|---|---|---|---|---|\n",
        args.rows
    );
    for l in lines {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {} | {} |\n",
            l.engine,
            l.round,
            l.case,
            l.seconds,
            l.seconds / l.floor,
            l.bare
                .map_or(String::new(), |b| format!("{:.2}×", l.seconds / b)),
            l.groups.map_or(String::new(), |g| g.to_string())
        ));
    }
    s
}
