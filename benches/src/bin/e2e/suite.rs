//! The PostgreSQL suite: the bench's databases and binaries, each case timed
//! against its baseline round by round, and the peak-RSS scale runs.

use super::*;

pub(super) struct Bench {
    pub(super) pg: pg::PgTarget,
    /// DDL, changes, checks.
    pub(super) admin: Client,
    /// The pipe's and the bare scans' two sides.
    pub(super) a: Client,
    pub(super) b: Client,
    pub(super) bin: PathBuf,
    pub(super) self_exe: PathBuf,
    pub(super) work: tempfile::TempDir,
    pub(super) pipeline: PathBuf,
    pub(super) rows: i64,
    /// partition_step of the benchmark pipeline.
    pub(super) partition_step: i64,
    pub(super) round: u32,
    pub(super) peers: Option<Peers>,
    /// Set for the SQLite suite: source and destinations are these files
    /// (the PostgreSQL clients then serve only the runner's lock).
    pub(super) sqlite: Option<sqlite::Files>,
}

/// The peers' Python and scripts (`--peers`).
pub(super) struct Peers {
    pub(super) python: PathBuf,
    pub(super) dir: PathBuf,
    /// `postgresql://…` of the local database, passed in the environment.
    pub(super) dsn: String,
    pub(super) reladiff_threads: usize,
}

impl Peers {
    /// Runs benches/peers/setup.sh (which returns at once when the venv
    /// already holds the pinned versions).
    pub(super) fn setup(args: &Args, pg: &pg::PgTarget) -> Result<Self> {
        let dir = workspace_root().join("benches").join("peers");
        let venv = match &args.peers_venv {
            Some(v) => v.clone(),
            None => {
                let home = std::env::var_os("HOME").context("HOME is not set")?;
                PathBuf::from(home)
                    .join(".cache")
                    .join("synchub-peers-venv")
            }
        };
        eprintln!("peers: benches/peers/setup.sh {}", venv.display());
        let status = std::process::Command::new("bash")
            .arg(dir.join("setup.sh"))
            .arg(&venv)
            .env("RUNTIME__DLTHUB_TELEMETRY", "false")
            .stdin(Stdio::null())
            // stdout is the report's.
            .stdout(std::io::stderr())
            .status()
            .context("running benches/peers/setup.sh")?;
        ensure!(status.success(), "benches/peers/setup.sh failed ({status})");
        // dlt's postgres destination insists on a password; with trust auth
        // any will do.
        let password = std::env::var("PGPASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "unused".into());
        let dsn = format!(
            "postgresql://{}:{}@{}:{}/{}",
            url_escape(&pg.user),
            url_escape(&password),
            pg.host,
            pg.port,
            url_escape(&pg.dbname)
        );
        Ok(Self {
            python: venv.join("bin").join("python"),
            dir,
            dsn,
            reladiff_threads: args.reladiff_threads,
        })
    }
}

/// Percent-encodes what is not unreserved in a URL component.
pub(super) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Bench {
    pub(super) fn state_dir(&self) -> PathBuf {
        self.work.path().join("state")
    }

    pub(super) fn write_pipeline(&self, args: &Args) -> Result<()> {
        let page = args
            .page_size
            .map_or(String::new(), |p| format!(", page_size: {p}"));
        let (datastores, backend) = match &self.sqlite {
            Some(files) => (files.datastores_yaml(), "sqlite"),
            None => (
                format!(
                    "datastores:\n{}{}",
                    self.pg.datastore_yaml("src", pg::SRC),
                    self.pg.datastore_yaml("dst", pg::DST)
                ),
                "postgres",
            ),
        };
        std::fs::write(self.work.path().join("datastores.yaml"), datastores)?;
        let pipeline = format!(
            "name: bench_items
partition_column: id
partition_step: {}
max_concurrent_partitions: {}
source_provider: {{data_backend: {{type: {backend}, datastore_name: src, table: items}}}}
destination_provider: {{data_backend: {{type: {backend}, datastore_name: dst, table: items}}}}
column_map:
{}strategies:
  - {{name: full, type: full{page}}}
  - {{name: delta, type: delta, column: updated_at{page}}}
  - {{name: hash, type: hash{page}}}
",
            args.partition_step,
            args.max_concurrent_partitions,
            pg::COLUMN_MAP
        );
        std::fs::write(&self.pipeline, pipeline)?;
        Ok(())
    }

    pub(super) fn say(&self, line: String) {
        eprintln!("  {line}");
    }

    /// Runs `f` on the SQLite files on the blocking pool.
    pub(super) async fn on_files<T: Send + 'static>(
        &self,
        f: impl FnOnce(&sqlite::Files) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let files = self.sqlite.clone().context("not the SQLite suite")?;
        tokio::task::spawn_blocking(move || f(&files)).await?
    }

    /// Before each timed step: PostgreSQL writes its dirty pages out
    /// (CHECKPOINT), SQLite moves every file's WAL back into it.
    pub(super) async fn settle(&self) -> Result<()> {
        match self.sqlite {
            Some(_) => self.on_files(sqlite::Files::checkpoint_all).await,
            None => pg::checkpoint(&self.admin).await,
        }
    }

    /// The server's WAL position (PostgreSQL only).
    pub(super) async fn wal_position(&self) -> Result<Option<u64>> {
        match self.sqlite {
            Some(_) => Ok(None),
            None => Ok(Some(pg::wal_position(&self.admin).await?)),
        }
    }

    /// WAL written since `before`.
    pub(super) async fn wal_since(&self, before: Option<u64>) -> Result<Option<u64>> {
        Ok(match (before, self.wal_position().await?) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        })
    }

    /// The raw copy into an empty table: the binary COPY pipe between two
    /// PostgreSQL connections, or SQLite's `INSERT … SELECT *`.
    pub(super) async fn pipe(&mut self) -> Result<Measurement> {
        if self.sqlite.is_none() {
            pg::reset_pipe_target(&self.admin).await?;
        }
        self.settle().await?;
        let wal = self.wal_position().await?;
        let start = Instant::now();
        let copied = match self.sqlite {
            Some(_) => self.on_files(sqlite::Files::raw_copy).await?,
            None => pg::copy_pipe(&self.a, &self.b).await?,
        };
        let wall = start.elapsed().as_secs_f64();
        let wal = self.wal_since(wal).await?;
        ensure!(
            copied == self.rows as u64,
            "the raw pipe copied {copied} rows of {}",
            self.rows
        );
        let mut m = self.measurement(report::PIPE, wall, None, None);
        m.wal_bytes = wal;
        self.say(format!(
            "raw copy                      {wall:7.2} s  {:>9.0} rows/s",
            m.rows_per_second()
        ));
        Ok(m)
    }

    /// SQLite's partitioned copy into an empty table (`None` on
    /// PostgreSQL, whose pipe already builds every row anew).
    pub(super) async fn partitioned_copy(&mut self) -> Result<Option<Measurement>> {
        if self.sqlite.is_none() {
            return Ok(None);
        }
        self.settle().await?;
        let start = Instant::now();
        let copied = self.on_files(sqlite::Files::partitioned_copy).await?;
        let wall = start.elapsed().as_secs_f64();
        ensure!(
            copied == self.rows as u64,
            "the partitioned copy copied {copied} rows of {}",
            self.rows
        );
        let m = self.measurement(report::PARTITIONED_COPY, wall, None, None);
        self.say(format!(
            "partitioned copy              {wall:7.2} s  {:>9.0} rows/s",
            m.rows_per_second()
        ));
        Ok(Some(m))
    }

    /// The bare SQL delta: the rows at or after `since` (the watermark the
    /// measured delta run starts from) applied to the raw pipe's copy.
    pub(super) async fn delta_floor(
        &mut self,
        case: &'static str,
        since: &str,
        changed: u64,
    ) -> Result<Measurement> {
        self.settle().await?;
        let wal = self.wal_position().await?;
        let start = Instant::now();
        let applied = match self.sqlite {
            Some(_) => {
                let since = since.to_string();
                self.on_files(move |f| f.bare_delta(&since)).await?
            }
            None => pg::bare_delta(&self.a, &self.b, since).await?,
        };
        let wall = start.elapsed().as_secs_f64();
        let mut m = self.measurement(case, wall, None, None);
        m.wal_bytes = self.wal_since(wal).await?;
        ensure!(
            applied >= changed,
            "the bare SQL delta applied {applied} rows, fewer than the {changed} changed"
        );
        self.say(format!(
            "bare SQL {case:<21} {wall:7.2} s  {applied} rows  WAL {:>4} MB",
            m.wal_bytes.unwrap_or(0) >> 20
        ));
        Ok(m)
    }

    /// Both sides' bare checksums, at once; whether they are equal.
    pub(super) async fn checksums_equal(&self) -> Result<bool> {
        Ok(match self.sqlite {
            Some(_) => {
                let [src, dst] = self.on_files(sqlite::Files::bare_checksums).await?;
                src == dst
            }
            None => {
                let [src, dst] = pg::bare_checksums(&self.a, &self.b).await?;
                src == dst
            }
        })
    }

    /// The two bare checksum scans, in parallel; returns whether both sides
    /// had the same checksum.
    pub(super) async fn bare_scans(&mut self) -> Result<(Measurement, bool)> {
        self.settle().await?;
        let wal = self.wal_position().await?;
        let start = Instant::now();
        let equal = self.checksums_equal().await?;
        let wall = start.elapsed().as_secs_f64();
        let mut m = self.measurement(report::BARE, wall, None, None);
        m.wal_bytes = self.wal_since(wal).await?;
        self.say(format!(
            "bare checksum scans ×2        {wall:7.2} s  {:>9.0} rows/s",
            m.rows_per_second()
        ));
        Ok((m, equal))
    }

    pub(super) fn measurement(
        &self,
        case: &'static str,
        wall: f64,
        rss: Option<u64>,
        summary: Option<Value>,
    ) -> Measurement {
        Measurement {
            case,
            round: self.round,
            rows: self.rows,
            wall_seconds: wall,
            baseline_seconds: None,
            full_seconds: None,
            peak_rss_kb: rss,
            wal_bytes: None,
            summary,
            changed_rows: None,
        }
    }

    /// One `synchub run` of the benchmark pipeline, timed, with its peak
    /// RSS and JSON summary.
    pub(super) async fn synchub(
        &mut self,
        case: &'static str,
        strategy: &str,
        baseline: Option<&Measurement>,
    ) -> Result<Measurement> {
        let (pipeline, state) = (self.pipeline.clone(), self.state_dir());
        self.synchub_run(&pipeline, &state, case, strategy, baseline)
            .await
    }

    /// One `synchub run` of `pipeline` with its state in `state`, as
    /// [`Bench::synchub`].
    pub(super) async fn synchub_run(
        &mut self,
        pipeline: &Path,
        state: &Path,
        case: &'static str,
        strategy: &str,
        baseline: Option<&Measurement>,
    ) -> Result<Measurement> {
        self.settle().await?;
        let rss_file = self.work.path().join("rss");
        let _ = std::fs::remove_file(&rss_file);
        let log = self.work.path().join(format!("{case}.log"));
        let wal = self.wal_position().await?;
        let start = Instant::now();
        let out = tokio::process::Command::new(&self.self_exe)
            .arg(MEASURE)
            .arg(&rss_file)
            .arg(&self.bin)
            .arg("run")
            .arg(pipeline)
            .args(["--strategy", strategy, "--output", "json", "--state-dir"])
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .output()
            .await
            .context("running synchub")?;
        let wall = start.elapsed().as_secs_f64();
        let wal = self.wal_since(wal).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = last_json_line(&stdout);
        let status = summary
            .as_ref()
            .and_then(|s| s.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if !out.status.success() || status != "completed" {
            bail!(
                "synchub run --strategy {strategy} ({case}) failed ({}, status {status}):\n{}\n{}",
                out.status,
                stdout.trim(),
                log_tail(&log)
            );
        }
        let rss = read_rss(&rss_file);
        let mut m = self.measurement(case, wall, rss, summary);
        m.baseline_seconds = baseline.map(|b| b.wall_seconds);
        m.wal_bytes = wal;
        let c = |n: &str| m.counter(n).unwrap_or(0);
        self.say(format!(
            "synchub {case:<21} {wall:7.2} s  {:>9.0} rows/s  fixed {:>4.0} ms  peak RSS {:>4} MB  WAL {:>4} MB  read {} ins {} upd {} del {} same {}",
            m.rows_per_second(),
            m.fixed_seconds().map_or(f64::NAN, |f| f * 1000.0),
            rss.map_or("?".into(), |k: u64| (k / 1024).to_string()),
            wal.map_or("–".into(), |w| (w >> 20).to_string()),
            c("rows_read"),
            c("rows_inserted"),
            c("rows_updated"),
            c("rows_deleted"),
            c("rows_unchanged"),
        ));
        Ok(m)
    }

    /// One peer script under the measuring wrapper: its wall time, peak RSS
    /// and the last JSON line it printed.
    pub(super) async fn peer(
        &self,
        name: &str,
        script: &str,
        args: &[String],
    ) -> Result<(f64, Option<u64>, Value)> {
        let peers = self.peers.as_ref().context("--peers is not set")?;
        pg::checkpoint(&self.admin).await?;
        let rss_file = self.work.path().join("rss");
        let _ = std::fs::remove_file(&rss_file);
        let log = self.work.path().join(format!("{name}.log"));
        let home = self.work.path().join("peer-home");
        std::fs::create_dir_all(&home)?;
        let start = Instant::now();
        let out = tokio::process::Command::new(&self.self_exe)
            .arg(MEASURE)
            .arg(&rss_file)
            .arg(&peers.python)
            .arg(peers.dir.join(script))
            .args(args)
            .current_dir(&home)
            .env("SYNCHUB_PEERS_DSN", &peers.dsn)
            .env("RUNTIME__DLTHUB_TELEMETRY", "false")
            .env("DLT_DATA_DIR", &home)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .output()
            .await
            .with_context(|| format!("running {script}"))?;
        let wall = start.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let result = last_json_line(&stdout);
        let Some(result) = result.filter(|_| out.status.success()) else {
            bail!(
                "{script} failed ({}):\n{}\n{}",
                out.status,
                stdout.trim(),
                log_tail(&log)
            );
        };
        let rss = read_rss(&rss_file);
        Ok((wall, rss, result))
    }

    /// dlt's full copy of the source into the fresh schema bench_dlt,
    /// checked (untimed) against the source's checksum.
    pub(super) async fn dlt(&mut self, synchub_full: &Measurement) -> Result<Measurement> {
        self.admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", pg::DLT))
            .await?;
        let pipelines = self.work.path().join("dlt-pipelines");
        if pipelines.exists() {
            std::fs::remove_dir_all(&pipelines)?;
        }
        let args = vec![
            "--src-schema".into(),
            pg::SRC.into(),
            "--dest-schema".into(),
            pg::DLT.into(),
            "--pipelines-dir".into(),
            pipelines.display().to_string(),
        ];
        let (wall, rss, result) = self.peer("dlt", "dlt_copy.py", &args).await?;
        let loaded = result.get("rows").and_then(Value::as_i64).unwrap_or(-1);
        let (src, copy) = tokio::try_join!(
            pg::checksum(&self.a, pg::SRC),
            pg::checksum(&self.b, pg::DLT)
        )?;
        let equal = src == copy && loaded == self.rows;
        let version = result.get("dlt").and_then(Value::as_str).unwrap_or("?");
        let summary = json!({
            "peer": "dlt",
            "version": version,
            "rows_loaded": loaded,
            "copy_equal": equal,
            "peer_note": format!(
                "dlt {version}: loaded {loaded} rows; copy {} the source",
                if equal { "equals" } else { "**differs from**" }
            ),
            "result": result,
        });
        let mut m = self.measurement(report::DLT_FULL, wall, rss, Some(summary));
        m.baseline_seconds = Some(synchub_full.wall_seconds);
        self.say(format!(
            "dlt full → empty             {wall:7.2} s  {:>9.0} rows/s  peak RSS {:>4} MB  copy equal: {equal}",
            m.rows_per_second(),
            rss.map_or("?".into(), |k: u64| (k / 1024).to_string()),
        ));
        Ok(m)
    }

    /// reladiff's hash diff of source and synchub's destination; its keys
    /// must be exactly `changed`. synchub's time is filled in later.
    pub(super) async fn reladiff(&mut self, changed: &[i64]) -> Result<Measurement> {
        let threads = self.peers.as_ref().map_or(1, |p| p.reladiff_threads);
        let args = vec![
            "--table1".into(),
            format!("{}.items", pg::SRC),
            "--table2".into(),
            format!("{}.items", pg::DST),
            "--key".into(),
            "id".into(),
            "--columns".into(),
            pg::COLUMNS
                .split(", ")
                .filter(|c| *c != "id")
                .collect::<Vec<_>>()
                .join(","),
            "--threads".into(),
            threads.to_string(),
        ];
        let (wall, rss, result) = self.peer("reladiff", "reladiff_diff.py", &args).await?;
        let mut found: Vec<i64> = result
            .get("keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        found.sort_unstable();
        let same = found == changed;
        let missing = changed
            .iter()
            .filter(|k| found.binary_search(k).is_err())
            .count();
        let extra = found
            .iter()
            .filter(|k| changed.binary_search(k).is_err())
            .count();
        let summary = json!({
            "peer": "reladiff",
            "version": result.get("reladiff"),
            "threads": threads,
            "keys_found": found.len(),
            "keys_changed": changed.len(),
            "missing": missing,
            "extra": extra,
            "same_keys": same,
            "peer_note": format!(
                "reladiff: {} differing keys, the runner changed {}: {}",
                found.len(),
                changed.len(),
                if same { "same set".to_string() } else { format!("**{missing} missing, {extra} extra**") }
            ),
        });
        let m = self.measurement(report::RELADIFF_SOME, wall, rss, Some(summary));
        self.say(format!(
            "reladiff hashdiff 0.1%       {wall:7.2} s  {:>9.0} rows/s  peak RSS {:>4} MB  keys {} / changed {} same: {same}",
            m.rows_per_second(),
            rss.map_or("?".into(), |k: u64| (k / 1024).to_string()),
            found.len(),
            changed.len(),
        ));
        Ok(m)
    }

    /// An empty destination: no table, no state.
    pub(super) async fn reset_destination(&self) -> Result<()> {
        match self.sqlite {
            Some(_) => self.on_files(sqlite::Files::reset_destination).await?,
            None => {
                self.admin
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", pg::DST))
                    .await?
            }
        }
        let state = self.state_dir();
        if state.exists() {
            std::fs::remove_dir_all(&state)?;
        }
        Ok(())
    }

    pub(super) async fn generate(&mut self, rows: i64) -> Result<()> {
        self.rows = rows;
        let start = Instant::now();
        match &self.sqlite {
            Some(files) => {
                eprintln!("generating {rows} rows in {} …", files.source().display());
                self.on_files(move |f| f.create_source(rows)).await?;
            }
            None => {
                eprintln!("generating {rows} rows in {}.items …", pg::SRC);
                pg::create_source(&self.admin, rows).await?;
            }
        }
        eprintln!("  done in {:.1} s", start.elapsed().as_secs_f64());
        Ok(())
    }

    pub(super) async fn destination_rows(&self) -> Result<i64> {
        match self.sqlite {
            Some(_) => self.on_files(sqlite::Files::destination_rows).await,
            None => pg::count(&self.admin, pg::DST).await,
        }
    }

    pub(super) async fn newest_cursor(&self) -> Result<String> {
        match self.sqlite {
            Some(_) => self.on_files(sqlite::Files::newest_cursor).await,
            None => pg::newest_cursor(&self.admin).await,
        }
    }

    pub(super) async fn change_for_delta(&self, which: DeltaChange) -> Result<u64> {
        let round = self.round;
        match self.sqlite {
            Some(_) => {
                self.on_files(move |f| f.change_for_delta(round, which))
                    .await
            }
            None => pg::change_for_delta(&self.admin, round, which).await,
        }
    }

    pub(super) async fn change_for_hash(&self) -> Result<Vec<i64>> {
        let round = self.round;
        match self.sqlite {
            Some(_) => self.on_files(move |f| f.change_for_hash(round)).await,
            None => pg::change_for_hash(&self.admin, round).await,
        }
    }
}

/// Checks a run's counters; a mismatch is reported, not fatal: the
/// timings stand, the note says what to look into.
/// The last line of a process's stdout that parses as JSON (its summary).
pub(super) fn last_json_line(stdout: &str) -> Option<Value> {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
}

/// The last 20 lines of a log, for an error message.
pub(super) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Peak RSS in kB as the measuring wrapper wrote it, if it did.
pub(super) fn read_rss(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

pub(super) fn expect(
    notes: &mut Vec<String>,
    m: &Measurement,
    what: &str,
    counter: &str,
    want: u64,
) {
    let got = m.counter(counter).unwrap_or(u64::MAX);
    if got != want {
        notes.push(format!(
            "round {}: {what}: {counter} = {got}, expected {want}",
            m.round
        ));
    }
}

/// The suite: every case, `rounds` times, each after its baseline.
pub(super) async fn suite(
    b: &mut Bench,
    rounds: u32,
    notes: &mut Vec<String>,
) -> Result<Vec<Measurement>> {
    let mut ms = Vec::new();
    let rows = b.rows as u64;
    for round in 1..=rounds {
        b.round = round;
        eprintln!("round {round}/{rounds}");

        let pipe = b.pipe().await?;
        let partitioned = b.partitioned_copy().await?;
        b.reset_destination().await?;
        let full = b.synchub(report::FULL_EMPTY, "full", Some(&pipe)).await?;
        expect(notes, &full, "full into empty", "rows_inserted", rows);
        ensure!(
            b.destination_rows().await? == b.rows,
            "after the full sync the destination does not hold every row"
        );
        ms.extend([pipe, full.clone()]);
        if let Some(reference) = partitioned {
            ms.push(Measurement {
                case: report::FULL_EMPTY_VS_PARTITIONED,
                baseline_seconds: Some(reference.wall_seconds),
                ..full.clone()
            });
            ms.push(reference);
        }
        if b.peers.is_some() {
            let dlt = b.dlt(&full).await?;
            if dlt.summary.as_ref().and_then(|s| s.get("copy_equal")) != Some(&json!(true)) {
                notes.push(format!("round {round}: dlt's copy differs from the source"));
            }
            ms.push(dlt);
        }

        let pipe = b.pipe().await?;
        let same = b
            .synchub(report::FULL_IDENTICAL, "full", Some(&pipe))
            .await?;
        expect(notes, &same, "full into identical", "rows_unchanged", rows);
        ms.extend([pipe, same]);

        // The first delta run has no watermark and reads every row; it only
        // sets the watermark the measured one starts from.
        // The bare SQL delta applies the same changes to the raw pipe's copy
        // (loaded here, before the change), from the watermark the first run
        // stored: the newest cursor value then.
        let first = b.synchub(report::DELTA_SETUP, "delta", None).await?;
        ms.push(first.clone());
        let pipe = b.pipe().await?;
        ms.push(pipe);
        // The newest rows first: after the spread case and its VACUUM,
        // PostgreSQL would put their new versions into the space freed on
        // pages all over the table, and the case would measure that instead.
        for (which, case, floor_case) in [
            (
                DeltaChange::Newest,
                report::DELTA_NEWEST,
                report::DELTA_NEWEST_FLOOR,
            ),
            (DeltaChange::Spread, report::DELTA, report::DELTA_FLOOR),
        ] {
            let watermark = b.newest_cursor().await?;
            let changed = b.change_for_delta(which).await?;
            let floor = b.delta_floor(floor_case, &watermark, changed).await?;
            let mut delta = b.synchub(case, "delta", Some(&floor)).await?;
            delta.full_seconds = Some(full.wall_seconds);
            expect(notes, &delta, case, "rows_updated", changed);
            ms.extend([floor, delta]);
        }

        let (bare, equal) = b.bare_scans().await?;
        if !equal {
            notes.push(format!(
                "round {round}: before the hash run the bare checksums of source and destination differ"
            ));
        }
        let hash = b.synchub(report::HASH_NONE, "hash", Some(&bare)).await?;
        expect(
            notes,
            &hash,
            "hash, nothing changed",
            "rows_unchanged",
            rows,
        );
        expect(notes, &hash, "hash, nothing changed", "rows_read", 0);
        ms.extend([bare, hash]);

        let changed_ids = b.change_for_hash().await?;
        let changed = changed_ids.len() as u64;
        let reladiff = match b.peers {
            Some(_) => Some(b.reladiff(&changed_ids).await?),
            None => None,
        };
        let (bare, _) = b.bare_scans().await?;
        let hash = b.synchub(report::HASH_SOME, "hash", Some(&bare)).await?;
        expect(notes, &hash, "hash, 0.1% changed", "rows_updated", changed);
        if let Some(mut r) = reladiff {
            r.baseline_seconds = Some(hash.wall_seconds);
            if r.summary.as_ref().and_then(|s| s.get("same_keys")) != Some(&json!(true)) {
                notes.push(format!(
                    "round {round}: reladiff's differing keys are not the {changed} the runner changed"
                ));
            }
            ms.push(r);
        }
        ms.extend([bare, hash]);
        if !b.checksums_equal().await? {
            notes.push(format!(
                "round {round}: after the hash run source and destination still differ"
            ));
        }
        if b.sqlite.is_none() {
            let shaped = crate::shapes::shapes(b, &first, notes).await?;
            ms.extend(shaped);
        }
    }
    Ok(ms)
}

/// `--rss-scale`: the memory-heavy cases at each table size.
pub(super) async fn rss_scale(b: &mut Bench, sizes: &[i64]) -> Result<Vec<ScaleLine>> {
    let mut out = Vec::new();
    for &rows in sizes {
        b.generate(rows).await?;
        b.round = 1;
        let pipe = b.pipe().await?;
        b.reset_destination().await?;
        let full = b.synchub(report::FULL_EMPTY, "full", Some(&pipe)).await?;
        let pipe = b.pipe().await?;
        let identical = b
            .synchub(report::FULL_IDENTICAL, "full", Some(&pipe))
            .await?;
        let (bare, _) = b.bare_scans().await?;
        let hash = b.synchub(report::HASH_NONE, "hash", Some(&bare)).await?;
        // No watermark yet (the state went with the destination): every
        // row in one window, the largest partition a run can have.
        let delta = b.synchub(report::DELTA_SETUP, "delta", None).await?;
        out.push(ScaleLine {
            rows,
            full,
            identical,
            hash,
            delta,
        });
    }
    Ok(out)
}
