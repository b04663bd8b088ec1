//! The worker benchmark of issue 18: one pipeline run by 1, 2 and 4
//! worker processes through the Redis queue, each against the same run in
//! one process with as many lanes, measured side by side in one run.
//!
//! ```text
//! cargo build --release -p synchub -p synchub-benches --bin synchub --bin workers
//! target/release/workers --rows 2000000 --rounds 2 --synchub target/release/synchub
//! ```
//!
//! Generates `items` (id, qty, title) in the local PostgreSQL. Each round,
//! for 1, 2 and 4: `synchub run` with `max_concurrent_partitions` of that
//! many lanes, then `synchub run --queue redis` with that many workers
//! (started beforehand, one task at a time each), each a full sync into an
//! empty table, checked equal to the source by count and sums. Then the
//! queue's overhead per task: `--overhead-tasks` partitions of 20 rows,
//! one lane in one process against one worker; the difference over the
//! task count is what the queue adds to a task. Writes
//! `workers-report.md` to `--out-dir` and prints it.

#[path = "../pg_runner/mod.rs"]
mod pg_runner;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use clap::Parser;
use tokio_postgres::Client;

const SRC: &str = "bench_wrk_src";
const DST: &str = "bench_wrk_dst";
/// The tiny partitions of the overhead case.
const OVERHEAD_STEP: i64 = 20;

#[derive(Parser, Debug)]
#[command(
    name = "workers",
    about = "Runs on 1, 2 and 4 Redis workers against the same run in one process"
)]
struct Args {
    #[arg(long, default_value_t = 2_000_000)]
    rows: i64,
    /// Ids per partition task of the main cases.
    #[arg(long, default_value_t = 50_000)]
    step: i64,
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Partition tasks of 20 rows in the overhead case: at most 100, as
    /// more neighbours holding few rows are merged into one partition.
    #[arg(long, default_value_t = 100)]
    overhead_tasks: i64,
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
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    redis_url: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = pg_runner::connect(&args.pg).await?;
    let work = tempfile::tempdir()?;
    pg_runner::write_datastores(work.path(), SRC, DST)?;
    let mut lines = Vec::new();
    generate(&client, args.rows).await?;
    for round in 1..=args.rounds {
        for parallel in [1usize, 2, 4] {
            let pipeline = write_pipeline(work.path(), "items", args.step, parallel)?;
            let alone = timed_run(&client, &args, &pipeline, None).await?;
            let queued = timed_run(&client, &args, &pipeline, Some(parallel)).await?;
            lines.push(Line {
                round,
                parallel,
                rows: args.rows,
                tasks: (args.rows + args.step - 1) / args.step,
                alone,
                queued,
            });
        }
    }
    ensure!(
        (1..=100).contains(&args.overhead_tasks),
        "--overhead-tasks: 1 to 100 (more ranges holding few rows merge into one partition)"
    );
    // Ids 1 to tasks × 20 − 1: exactly `tasks` ranges of 20 (the first
    // range starts at 0).
    let overhead_rows = args.overhead_tasks * OVERHEAD_STEP - 1;
    generate(&client, overhead_rows).await?;
    let mut overheads = Vec::new();
    for _ in 1..=args.rounds {
        let pipeline = write_pipeline(work.path(), "tiny", OVERHEAD_STEP, 1)?;
        let alone = timed_run(&client, &args, &pipeline, None).await?;
        let queued = timed_run(&client, &args, &pipeline, Some(1)).await?;
        overheads.push((alone, queued));
    }
    let report = render(&args, &lines, &overheads);
    pg_runner::finish(
        &client,
        &args.out_dir,
        "workers-report.md",
        &report,
        &[SRC, DST],
    )
    .await
}

async fn generate(client: &Client, rows: i64) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {SRC} CASCADE; CREATE SCHEMA {SRC};
             CREATE TABLE {SRC}.items (id bigint PRIMARY KEY, qty int, title text);
             INSERT INTO {SRC}.items SELECT g, g % 7, 'item ' || g FROM generate_series(1, {rows}) g;"
        ))
        .await?;
    pg_runner::vacuum_analyze(client, &format!("{SRC}.items")).await
}

/// A full sync of `items` in partitions of `step` ids, `lanes` at once
/// when run in one process.
fn write_pipeline(dir: &Path, name: &str, step: i64, lanes: usize) -> Result<PathBuf> {
    let path = dir.join(format!("{name}_{step}_{lanes}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: bench_workers_{name}
partition_column: id
partition_step: {step}
max_concurrent_partitions: {lanes}
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: title, dest: title, data_type: text}}
strategies:
  - {{name: full, type: full}}
"
        ),
    )?;
    Ok(path)
}

/// A full sync into an empty destination, in this process's child alone
/// (`workers: None`) or through the queue to that many workers started
/// beforehand: its wall time, the destination checked.
async fn timed_run(
    client: &Client,
    args: &Args,
    pipeline: &Path,
    workers: Option<usize>,
) -> Result<f64> {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {DST} CASCADE; CREATE SCHEMA {DST};"
        ))
        .await?;
    let state = tempfile::tempdir()?;
    let queue = format!("bench-workers-{}", std::process::id());
    let mut started: Vec<Child> = Vec::new();
    let mut run = Command::new(&args.synchub);
    run.args(["run", pipeline.to_str().unwrap(), "--strategy", "full"])
        .arg("--state-dir")
        .arg(state.path())
        .env("SYNCHUB_LOG", "warn");
    if let Some(n) = workers {
        clear_queue(args, &queue)?;
        for i in 0..n {
            started.push(
                Command::new(&args.synchub)
                    .args(["worker", "start", "--max-jobs", "1", "--queue-name"])
                    .arg(&queue)
                    .args(["--redis-url", &args.redis_url, "--name"])
                    .arg(format!("bench-w{i}"))
                    .env("SYNCHUB_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()?,
            );
        }
        // Each reads the queue within a second of starting.
        std::thread::sleep(Duration::from_millis(1500));
        run.args(["--queue", "redis", "--queue-name", &queue])
            .args(["--redis-url", &args.redis_url]);
    }
    let t = Instant::now();
    let out = run.output()?;
    let seconds = t.elapsed().as_secs_f64();
    for mut w in started {
        w.kill()?;
        w.wait()?;
    }
    if workers.is_some() {
        clear_queue(args, &queue)?;
    }
    ensure!(
        out.status.success(),
        "synchub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    same_as_source(client).await?;
    Ok(seconds)
}

fn clear_queue(args: &Args, queue: &str) -> Result<()> {
    let out = Command::new(&args.synchub)
        .args(["queue", "clear", "--yes", "--queue-name", queue])
        .args(["--redis-url", &args.redis_url])
        .output()?;
    ensure!(
        out.status.success(),
        "queue clear: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn same_as_source(client: &Client) -> Result<()> {
    let sums = "SELECT count(*), count(DISTINCT id), sum(id)::text, sum(qty)::text, \
                sum(length(title))::text FROM";
    let src = client
        .query_one(&format!("{sums} {SRC}.items"), &[])
        .await?;
    let dst = client
        .query_one(&format!("{sums} {DST}.items"), &[])
        .await?;
    for i in 0..5 {
        let (a, b): (Option<String>, Option<String>) = if i < 2 {
            (
                Some(src.get::<_, i64>(i).to_string()),
                Some(dst.get::<_, i64>(i).to_string()),
            )
        } else {
            (src.get(i), dst.get(i))
        };
        ensure!(
            a == b,
            "the destination differs from the source ({a:?} vs {b:?})"
        );
    }
    Ok(())
}

struct Line {
    round: u32,
    parallel: usize,
    rows: i64,
    tasks: i64,
    alone: f64,
    queued: f64,
}

fn render(args: &Args, lines: &[Line], overheads: &[(f64, f64)]) -> String {
    let mut s = format!(
        "# Runs on Redis workers\n\n{} rows of `items` (id, qty, title), PostgreSQL → PostgreSQL, \
         a full sync into an empty table in tasks of {} ids; each queued run (N workers, one task \
         at a time each) timed right after the same run in one process with N lanes; every \
         result checked equal to the source.\n\n\
         | round | workers | tasks | one process, N lanes: rows/s | N workers: rows/s | workers / one process |\n\
         |---|---|---|---|---|---|\n",
        args.rows, args.step
    );
    for l in lines {
        s.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2}× |\n",
            l.round,
            l.parallel,
            l.tasks,
            l.rows as f64 / l.alone,
            l.rows as f64 / l.queued,
            l.alone / l.queued
        ));
    }
    s.push_str(&format!(
        "\nThe queue's overhead per task: {} tasks of {OVERHEAD_STEP} rows, one lane in one process \
         against one worker (target ≤ 5 ms a task).\n\n\
         | round | one process (s) | one worker (s) | per task |\n|---|---|---|---|\n",
        args.overhead_tasks
    ));
    for (i, (alone, queued)) in overheads.iter().enumerate() {
        s.push_str(&format!(
            "| {} | {alone:.2} | {queued:.2} | {:.2} ms |\n",
            i + 1,
            (queued - alone) * 1000.0 / args.overhead_tasks as f64
        ));
    }
    s
}
