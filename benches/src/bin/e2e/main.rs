//! The end-to-end benchmark of issue 4: synchub against the physical limit,
//! measured side by side in one run.
//!
//! ```text
//! cargo run --release -p synchub-benches --bin e2e -- --rows 2000000 --rounds 2
//! ```
//!
//! Generates a table in the local PostgreSQL, then for each round times,
//! alternating baseline and candidate: the raw binary COPY pipe, `synchub
//! run` full into an empty table, the pipe again, full into the identical
//! table, the pipe again, delta after 1% of rows changed, the two bare
//! checksum scans in parallel, hash with nothing changed, the scans again,
//! hash after 0.1% changed. Then the same suite SQLite → SQLite, on files in
//! a temporary folder, against SQLite's own copy, delta and checksums
//! (`--engines` picks the suites). Writes `bench-report.json` and
//! `bench-report.md` into `$CARGO_TARGET_DIR` (else the workspace's
//! `target/`) and prints the tables.

mod cases;
mod pg;
mod report;
mod shapes;
mod sqlite;
mod suite;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use tokio_postgres::Client;

use report::{Measurement, ScaleLine};
use suite::*;

const AFTER_HELP: &str = "\
Peak RSS is the synchub process's own (getrusage of a wrapper process whose only child it is).
Needs a local PostgreSQL (default 127.0.0.1:5432, user postgres, db test, trust auth or
PGPASSWORD), for the SQLite suite too (the runner's lock); uses the schemas bench_src, bench_dst
and bench_pipe, dropped at the end. The SQLite suite's files live in a temporary folder.

--peers: benches/peers/setup.sh installs dlt (sql_database source, connectorx backend -> postgres
destination) and reladiff from PyPI into a virtualenv (--peers-venv; skipped when it already holds
the pinned versions); each round then also times dlt's full copy of bench_src.items into the fresh
schema bench_dlt right after synchub's full sync into an empty table, and reladiff's hash diff of
bench_src.items against bench_dst.items in the 0.1%-changed state right before synchub's hash run,
with the peak RSS of the Python process. Targets: synchub >= 3x dlt's rows/s, >= 2x faster than
reladiff; reladiff must find exactly the keys the runner changed, dlt's copy must equal the source.
The peers talk to 127.0.0.1 only; dlt's telemetry is off (RUNTIME__DLTHUB_TELEMETRY=false).";

#[derive(Parser, Debug)]
#[command(
    name = "e2e",
    about = "End-to-end benchmark: synchub full/delta/hash syncs against the raw COPY pipe and bare checksum scans, in one run",
    after_help = AFTER_HELP
)]
struct Args {
    /// Rows in the generated source table.
    #[arg(long, default_value_t = 2_000_000)]
    rows: i64,
    /// The suites to run: PostgreSQL → PostgreSQL against the raw COPY
    /// pipe, SQLite → SQLite (files in a temporary folder) against SQLite's
    /// own `INSERT INTO … SELECT * FROM` an attached file.
    #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
    engines: Vec<report::Engine>,
    /// Rounds; each times every case once, after its baseline.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Instead of the suite: full into empty, full into identical and hash
    /// with nothing changed at each of these table sizes, to show whether
    /// synchub's peak RSS grows with rows (`--rss-scale` alone: 1M and 4M).
    #[arg(long, value_delimiter = ',', num_args = 0.., value_name = "ROWS,ROWS",
          default_missing_values = ["1000000", "4000000"])]
    rss_scale: Option<Vec<i64>>,
    /// partition_step of the benchmark pipeline (ids per partition).
    #[arg(long, default_value_t = 100_000)]
    partition_step: i64,
    /// max_concurrent_partitions of the benchmark pipeline: partitions
    /// written (and compared) by this many lanes at once.
    #[arg(long, default_value_t = 1)]
    max_concurrent_partitions: u32,
    /// page_size of the pipeline's strategies (default: synchub's).
    #[arg(long)]
    page_size: Option<usize>,
    #[arg(long, default_value = "127.0.0.1")]
    pg_host: String,
    #[arg(long, default_value_t = 5432)]
    pg_port: u16,
    #[arg(long, default_value = "postgres")]
    pg_user: String,
    #[arg(long, default_value = "test")]
    pg_db: String,
    /// The synchub binary to measure (default: the workspace's release
    /// build, rebuilt first with `cargo build --release -p synchub`).
    #[arg(long)]
    synchub: Option<PathBuf>,
    /// Do not run `cargo build`; use the release binary as it is.
    #[arg(long)]
    no_build: bool,
    /// Where bench-report.{json,md} go (default: $CARGO_TARGET_DIR, else
    /// the workspace's target/).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Keep the bench_* schemas at the end.
    #[arg(long)]
    keep: bool,
    /// Also time the peers (dlt, reladiff) on the same tables; see below.
    #[arg(long)]
    peers: bool,
    /// The peers' virtualenv (made by benches/peers/setup.sh).
    #[arg(long, value_name = "DIR")]
    peers_venv: Option<PathBuf>,
    /// reladiff's connections per side (its thread pool).
    #[arg(long, default_value_t = 2)]
    reladiff_threads: usize,
}

/// Which 1% of the rows a delta round changes.
#[derive(Debug, Clone, Copy)]
pub enum DeltaChange {
    /// One row in a hundred (`id % 100 = round`), over the whole table:
    /// every changed row on a page of its own, the worst case for the
    /// destination's writes.
    Spread,
    /// The newest 1% of the ids, as when recent orders or events change.
    Newest,
}

/// The argument that makes this binary the measuring wrapper of one
/// synchub run: `e2e __measure RSS_FILE PROGRAM ARGS…`.
const MEASURE: &str = "__measure";

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == MEASURE) {
        return measure_child(&argv[2..]);
    }
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("e2e: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs PROGRAM as this process's only child and writes its peak RSS (kB)
/// to RSS_FILE: `getrusage(RUSAGE_CHILDREN)` covers exactly the waited-for
/// children, and here that is synchub alone.
fn measure_child(args: &[OsString]) -> ExitCode {
    let [rss_file, program, rest @ ..] = args else {
        eprintln!("usage: e2e {MEASURE} RSS_FILE PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let status = match std::process::Command::new(program).args(rest).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("e2e: running {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN) {
        // ru_maxrss is in kilobytes on Linux.
        Ok(u) => {
            if let Err(e) = std::fs::write(rss_file, u.max_rss().to_string()) {
                eprintln!("e2e: writing {}: {e}", rss_file.to_string_lossy());
            }
        }
        Err(e) => eprintln!("e2e: getrusage: {e}"),
    }
    ExitCode::from(status.code().map_or(1, |c| c.clamp(0, 255) as u8))
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("target"),
    }
}

/// The synchub binary to measure, rebuilt unless told otherwise (cargo
/// does nothing when it is up to date).
fn synchub_binary(args: &Args) -> Result<PathBuf> {
    if let Some(bin) = &args.synchub {
        ensure!(bin.is_file(), "--synchub {} is not a file", bin.display());
        return Ok(bin.clone());
    }
    let bin = target_dir().join("release").join("synchub");
    if !args.no_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("building: cargo build --release -p synchub");
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "-p", "synchub"])
            .current_dir(workspace_root())
            .status()
            .context("running cargo build")?;
        ensure!(
            status.success(),
            "cargo build --release -p synchub failed (use --no-build to measure the binary there is)"
        );
    }
    ensure!(
        bin.is_file(),
        "{} does not exist; build it with cargo build --release -p synchub",
        bin.display()
    );
    Ok(bin)
}

/// What the table must say about where it was measured.
async fn machine_facts(admin: &Client, bin: &Path) -> Result<Vec<(String, String)>> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.1} GB", kb / 1024.0 / 1024.0));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "?".into());
    let pg_version = pg::server_version(admin).await?;
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!("{c}{}", if dirty { " + uncommitted changes" } else { "" })
        }
        None => "?".into(),
    };
    Ok(vec![
        (
            "date".into(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        ),
        ("nproc".into(), cpus.to_string()),
        ("memory".into(), mem_gb),
        ("cpu".into(), cpu),
        ("PostgreSQL".into(), pg_version),
        ("synchub".into(), format!("{} ({commit})", bin.display())),
    ])
}

async fn run(args: Args) -> Result<()> {
    ensure!(args.rows > 0, "--rows must be positive");
    ensure!(args.rounds > 0, "--rounds must be positive");
    let bin = synchub_binary(&args)?;
    let pg = pg::PgTarget {
        host: args.pg_host.clone(),
        port: args.pg_port,
        user: args.pg_user.clone(),
        dbname: args.pg_db.clone(),
    };
    ensure!(
        !(args.peers && args.rss_scale.is_some()),
        "--peers runs with the suite, not with --rss-scale"
    );
    let peers = if args.peers {
        Some(Peers::setup(&args, &pg)?)
    } else {
        None
    };
    let admin = pg::connect(&pg).await?;
    pg::lock(&admin).await?;
    let mut facts = machine_facts(&admin, &bin).await?;
    facts.push((
        "pipeline".into(),
        format!(
            "partition_step {}, max_concurrent_partitions {}",
            args.partition_step, args.max_concurrent_partitions
        ),
    ));
    let self_exe = std::env::current_exe().context("locating the runner's own binary")?;
    // One bench per suite: its own folder, pipeline and state; the
    // PostgreSQL suite's also holds the lock and drops the schemas at the end.
    let new_bench = |engine: report::Engine, admin: Client, peers: Option<Peers>| {
        let pg = pg.clone();
        let bin = bin.clone();
        let self_exe = self_exe.clone();
        async move {
            let work = tempfile::Builder::new().prefix("synchub-bench").tempdir()?;
            let sqlite = (engine == report::Engine::Sqlite).then(|| sqlite::Files {
                dir: work.path().to_path_buf(),
                partition_step: args.partition_step,
            });
            anyhow::Ok(Bench {
                a: pg::connect(&pg).await?,
                b: pg::connect(&pg).await?,
                admin,
                pg,
                bin,
                self_exe,
                pipeline: work.path().join("bench_items.yaml"),
                work,
                rows: args.rows,
                partition_step: args.partition_step,
                round: 0,
                peers,
                sqlite,
            })
        }
    };
    let mut bench = new_bench(report::Engine::Postgres, admin, peers).await?;
    bench.write_pipeline(&args)?;
    let out_dir = args.out_dir.clone().unwrap_or_else(target_dir);
    std::fs::create_dir_all(&out_dir)?;
    let config = json!({
        "rows": args.rows,
        "rounds": args.rounds,
        "partition_step": args.partition_step,
        "page_size": args.page_size,
        "peers": args.peers.then(|| json!({
            "dlt": "dlt_copy.py: sql_table(backend=connectorx) -> postgres, csv loader (COPY), replace into fresh schema",
            "reladiff": format!("reladiff_diff.py: hashdiff, key id, all columns, {} connections per side", args.reladiff_threads),
        })),
        "postgres": format!("{}:{} db {}", args.pg_host, args.pg_port, args.pg_db),
        "pipeline": std::fs::read_to_string(&bench.pipeline)?,
    });

    let result = async {
        if let Some(sizes) = &args.rss_scale {
            ensure!(
                !sizes.is_empty() && sizes.iter().all(|n| *n > 0),
                "--rss-scale takes positive row counts"
            );
        }
        let mut md = String::new();
        let mut suites: Vec<(report::Engine, Value)> = Vec::new();
        for &engine in &args.engines {
            if suites.iter().any(|(e, _)| *e == engine) {
                continue;
            }
            let mut sqlite_bench;
            let b = match engine {
                report::Engine::Postgres => &mut bench,
                report::Engine::Sqlite => {
                    sqlite_bench = new_bench(engine, pg::connect(&bench.pg).await?, None).await?;
                    sqlite_bench.write_pipeline(&args)?;
                    &mut sqlite_bench
                }
            };
            eprintln!("{}", engine.suite_name());
            if let Some(sizes) = &args.rss_scale {
                let lines = rss_scale(b, sizes).await?;
                md.push_str(&report::scale_markdown(engine, &lines));
                suites.push((
                    engine,
                    json!({
                        "title": engine.suite_name(),
                        "sizes": lines.iter().map(|l| json!({
                            "rows": l.rows,
                            "full_empty": l.full.to_json(),
                            "full_identical": l.identical.to_json(),
                            "hash_none": l.hash.to_json(),
                            "delta_first_run": l.delta.to_json(),
                        })).collect::<Vec<_>>(),
                    }),
                ));
                continue;
            }
            b.generate(args.rows).await?;
            let mut notes = Vec::new();
            let ms = suite(b, args.rounds, &mut notes).await?;
            let lines = report::lines(&ms, engine);
            let title = format!(
                "{}, {} rows × 9 columns, {} round{}",
                engine.suite_name(),
                args.rows,
                args.rounds,
                if args.rounds == 1 { "" } else { "s" }
            );
            md.push_str(&report::markdown(&title, engine, &lines, &notes));
            suites.push((
                engine,
                json!({
                    "title": title,
                    "summary": lines.iter().map(report::Line::to_json).collect::<Vec<_>>(),
                    "measurements": ms.iter().map(Measurement::to_json).collect::<Vec<_>>(),
                    "notes": notes,
                }),
            ));
        }
        md.push_str(&report::machine_markdown(&facts));
        let value = json!({
            "machine": report::facts_json(&facts),
            "config": config,
            "suites": suites.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        });
        let stem = if args.rss_scale.is_some() {
            "bench-rss-scale"
        } else {
            "bench-report"
        };
        write_report(&out_dir, stem, &value, &md)?;
        println!("\n{md}");
        Ok(())
    }
    .await;

    if args.keep {
        eprintln!(
            "kept the schemas {}, {}, {}, {}",
            pg::SRC,
            pg::DST,
            pg::PIPE,
            pg::DLT
        );
    } else if let Err(e) = pg::drop_all(&bench.admin).await {
        eprintln!("e2e: dropping the bench_* schemas: {e}");
    }
    result
}

fn write_report(dir: &Path, stem: &str, value: &Value, md: &str) -> Result<()> {
    let json_path = dir.join(format!("{stem}.json"));
    let md_path = dir.join(format!("{stem}.md"));
    std::fs::write(&json_path, serde_json::to_string_pretty(value)? + "\n")?;
    std::fs::write(&md_path, md)?;
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}
