//! What the runner measured, as ratios to the baselines, checked against
//! the targets of issues 4 and 13; written as JSON and as a Markdown table.

use std::fmt::Write as _;

use serde_json::{json, Value};

pub use crate::cases::*;

/// One timed step.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub case: &'static str,
    pub round: u32,
    /// Rows in the source table.
    pub rows: i64,
    pub wall_seconds: f64,
    /// The baseline measured right before it, in the same round.
    pub baseline_seconds: Option<f64>,
    /// For a delta: the same round's full sync into an empty table.
    pub full_seconds: Option<f64>,
    /// Peak RSS of the synchub process (of the peer's, for a peer).
    pub peak_rss_kb: Option<u64>,
    /// WAL the server wrote meanwhile (`pg_current_wal_lsn()` before and
    /// after): what the case cost the database in writes.
    pub wal_bytes: Option<u64>,
    /// synchub's `--output json` object; for a peer, what the runner
    /// checked of its run (`peer_note`, `same_keys`, …).
    pub summary: Option<Value>,
    /// Rows the runner changed before the case, where its target counts
    /// rows read against them.
    pub changed_rows: Option<u64>,
}

impl Measurement {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.wall_seconds
    }

    /// The ratio the case's target is about.
    pub fn ratio(&self, target: Target) -> Option<f64> {
        match target {
            Target::None => None,
            Target::PipeSpeedAtLeast(_) | Target::ReferenceSpeed => {
                self.baseline_seconds.map(|b| b / self.wall_seconds)
            }
            Target::ShareOfFullAtMost(_) => self.full_seconds.map(|f| self.wall_seconds / f),
            Target::BareTimeAtMost(_) | Target::FloorTimeAtMost(_) | Target::RunTimeAtMost(_) => {
                self.baseline_seconds.map(|b| self.wall_seconds / b)
            }
            Target::ReadPerChangedAtMost(_) => {
                Some(self.counter("rows_read")? as f64 / self.changed_rows?.max(1) as f64)
            }
            Target::PeerTimeAtLeast(_) => self.baseline_seconds.map(|b| self.wall_seconds / b),
        }
    }

    /// synchub's fixed cost in this run: its wall time outside the span
    /// from the first partition taken to the last one committed (process
    /// start, connecting, planning; recording the end, exit). `None` for a
    /// baseline or a peer.
    pub fn fixed_seconds(&self) -> Option<f64> {
        let s = self.summary.as_ref()?;
        let f = |k: &str| s.get(k).and_then(Value::as_f64);
        Some(
            self.wall_seconds - f("duration_seconds")? + f("setup_seconds")? + f("wrapup_seconds")?,
        )
    }

    pub fn counter(&self, name: &str) -> Option<u64> {
        self.summary.as_ref()?.get(name)?.as_u64()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "case": self.case,
            "round": self.round,
            "rows": self.rows,
            "wall_seconds": self.wall_seconds,
            "rows_per_second": self.rows_per_second(),
            "baseline_seconds": self.baseline_seconds,
            "full_seconds": self.full_seconds,
            "peak_rss_mb": self.peak_rss_kb.map(|k| k as f64 / 1024.0),
            "wal_mb": self.wal_bytes.map(mb),
            "fixed_seconds": self.fixed_seconds(),
            "changed_rows": self.changed_rows,
            "synchub": self.summary,
        })
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One line of the table: a case over all rounds.
pub struct Line {
    pub case: &'static Case,
    pub title: &'static str,
    /// The case's target in this suite.
    pub target: Target,
    pub ratios: Vec<f64>,
    pub ratio: Option<f64>,
    pub met: Option<bool>,
    /// By how much a missed target is missed, as a share of the target.
    pub missed_by: Option<f64>,
    /// For a delta: its bare SQL delta's own share of the full sync's time
    /// (median over rounds), the least any tool's delta could reach.
    pub floor_share: Option<f64>,
    pub wall: f64,
    pub baseline: Option<f64>,
    pub rows_per_second: f64,
    pub peak_rss_mb: Option<f64>,
    pub wal_mb: Option<f64>,
    /// synchub's fixed cost (median over rounds), see
    /// [`Measurement::fixed_seconds`].
    pub fixed_seconds: Option<f64>,
    pub last: Measurement,
    pub extra_failures: Vec<String>,
}

pub fn lines(ms: &[Measurement], engine: Engine) -> Vec<Line> {
    let mut out = Vec::new();
    for case in CASES {
        let of: Vec<&Measurement> = ms.iter().filter(|m| m.case == case.id).collect();
        let Some(last) = of.last() else { continue };
        let target = case.target(engine);
        let ratios: Vec<f64> = of.iter().filter_map(|m| m.ratio(target)).collect();
        let ratio = median(ratios.clone());
        let wall = median(of.iter().map(|m| m.wall_seconds).collect()).unwrap_or(f64::NAN);
        let baseline = median(of.iter().filter_map(|m| m.baseline_seconds).collect());
        let peak_rss_mb = of
            .iter()
            .filter_map(|m| m.peak_rss_kb)
            .max()
            .map(|k| k as f64 / 1024.0);
        let wal_mb = median(of.iter().filter_map(|m| m.wal_bytes.map(mb)).collect());
        let fixed_seconds = median(of.iter().filter_map(|m| m.fixed_seconds()).collect());
        let floor_share = match target {
            Target::ShareOfFullAtMost(_) | Target::FloorTimeAtMost(_) => median(
                of.iter()
                    .filter_map(|m| Some(m.baseline_seconds? / m.full_seconds?))
                    .collect(),
            ),
            _ => None,
        };
        let mut extra_failures = Vec::new();
        let full_case = matches!(target, Target::PipeSpeedAtLeast(_))
            && matches!(case.id, FULL_EMPTY | FULL_EMPTY_VS_PARTITIONED);
        if full_case && peak_rss_mb.is_some_and(|r| r > RSS_LIMIT_MB) {
            extra_failures.push(format!("peak RSS over {RSS_LIMIT_MB} MB"));
        }
        if case.id == FULL_IDENTICAL {
            let writes: u64 = of
                .iter()
                .map(|m| {
                    ["rows_inserted", "rows_updated", "rows_deleted"]
                        .iter()
                        .filter_map(|c| m.counter(c))
                        .sum::<u64>()
                })
                .sum();
            if writes > 0 {
                extra_failures.push(format!("wrote {writes} rows"));
            }
        }
        if case.id == SPARSE_SPAN && wall > SPARSE_SPAN_LIMIT_SECONDS {
            extra_failures.push(format!(
                "took {wall:.2} s, over {SPARSE_SPAN_LIMIT_SECONDS:.0} s"
            ));
        }
        if case.id == DELTA_LANES && last.counter("partitions_total").unwrap_or(0) <= 1 {
            extra_failures.push("one partition: the delta was not partitioned".into());
        }
        let peer_failed = |key: &str| {
            of.iter().any(|m| {
                m.summary
                    .as_ref()
                    .and_then(|s| s.get(key))
                    .and_then(Value::as_bool)
                    == Some(false)
            })
        };
        if case.id == RELADIFF_SOME && peer_failed("same_keys") {
            extra_failures.push("differing keys not the changed set".into());
        }
        if case.id == DLT_FULL && peer_failed("copy_equal") {
            extra_failures.push("dlt's copy differs from the source".into());
        }
        let (met, missed_by) = match (target, ratio) {
            (Target::PipeSpeedAtLeast(t) | Target::PeerTimeAtLeast(t), Some(r)) => {
                (Some(r >= t), Some((t - r) / t))
            }
            (
                Target::ShareOfFullAtMost(t)
                | Target::BareTimeAtMost(t)
                | Target::FloorTimeAtMost(t)
                | Target::RunTimeAtMost(t)
                | Target::ReadPerChangedAtMost(t),
                Some(r),
            ) => (Some(r <= t), Some((r - t) / t)),
            _ => (None, None),
        };
        let met = met.map(|m| m && extra_failures.is_empty());
        out.push(Line {
            case,
            title: case.title(engine),
            target,
            ratios,
            ratio,
            met,
            missed_by: missed_by.filter(|m| *m > 0.0),
            floor_share,
            wall,
            baseline,
            rows_per_second: last.rows as f64 / wall,
            peak_rss_mb,
            wal_mb,
            fixed_seconds,
            last: (*last).clone(),
            extra_failures,
        });
    }
    out
}

fn fmt_ratio(target: Target, r: f64) -> String {
    match target {
        Target::None => String::new(),
        Target::PipeSpeedAtLeast(_) | Target::ReferenceSpeed => format!("{r:.2}×"),
        Target::ShareOfFullAtMost(_) => format!("{:.1}%", r * 100.0),
        Target::BareTimeAtMost(_) | Target::FloorTimeAtMost(_) | Target::RunTimeAtMost(_) => {
            format!("{r:.2}×")
        }
        Target::ReadPerChangedAtMost(_) => format!("{r:.1}"),
        Target::PeerTimeAtLeast(_) => format!("{r:.2}×"),
    }
}

impl Line {
    pub fn ratio_text(&self) -> String {
        let Some(r) = self.ratio else {
            return "—".into();
        };
        let t = self.target;
        let unit = match t {
            Target::PipeSpeedAtLeast(_) if self.case.id == FULL_EMPTY_VS_PARTITIONED => {
                " the partitioned copy's rows/s"
            }
            Target::PipeSpeedAtLeast(_) => " pipe rows/s",
            Target::ReferenceSpeed => " the reference's rows/s",
            Target::ShareOfFullAtMost(_) => " of full's time",
            Target::BareTimeAtMost(_) => " bare scans' time",
            Target::FloorTimeAtMost(_) => " the bare SQL delta's time",
            Target::RunTimeAtMost(_) if self.case.id == SPARSE_SPAN => " the dense span's time",
            Target::RunTimeAtMost(_) => " one lane's time",
            Target::ReadPerChangedAtMost(_) => " rows read per row changed",
            Target::PeerTimeAtLeast(_) => " synchub's speed over it",
            Target::None => "",
        };
        let mut s = format!("**{}**{unit}", fmt_ratio(t, r));
        if self.ratios.len() > 1 {
            let each: Vec<String> = self.ratios.iter().map(|r| fmt_ratio(t, *r)).collect();
            let _ = write!(s, " ({})", each.join(", "));
        }
        if let (Target::ShareOfFullAtMost(_), Some(floor)) = (t, self.baseline) {
            let _ = write!(s, "; {:.2}× the bare SQL delta", self.wall / floor);
        }
        if let (Target::FloorTimeAtMost(_), Some(full)) = (t, self.last.full_seconds) {
            let _ = write!(s, "; {:.1}% of full's time", self.wall / full * 100.0);
        }
        s
    }

    pub fn target_text(&self) -> String {
        match (self.target, self.case.id) {
            (Target::PipeSpeedAtLeast(t), FULL_EMPTY) => {
                format!("≥ {t:.1}× pipe, RSS ≤ {RSS_LIMIT_MB:.0} MB")
            }
            (Target::PipeSpeedAtLeast(t), FULL_EMPTY_VS_PARTITIONED) => {
                format!("≥ {t:.1}× the partitioned copy, RSS ≤ {RSS_LIMIT_MB:.0} MB")
            }
            (Target::PipeSpeedAtLeast(t), _) => format!("≥ {t:.1}× pipe, no writes"),
            (Target::ShareOfFullAtMost(t), _) => format!("≤ {:.0}% of full", t * 100.0),
            (Target::BareTimeAtMost(t), _) => format!("≤ {t:.1}× bare scans"),
            (Target::FloorTimeAtMost(t), _) => format!("≤ {t:.2}× the bare SQL delta"),
            (Target::RunTimeAtMost(t), SPARSE_SPAN) => {
                format!("≤ {SPARSE_SPAN_LIMIT_SECONDS:.0} s and ≤ {t:.0}× the dense span")
            }
            (Target::RunTimeAtMost(t), _) => format!("≤ {t:.1}× one lane's time"),
            (Target::ReadPerChangedAtMost(t), _) => format!("rows read ≤ {t:.0}× rows changed"),
            (Target::PeerTimeAtLeast(t), RELADIFF_SOME) => {
                format!("synchub ≥ {t:.1}× faster, same keys")
            }
            (Target::PeerTimeAtLeast(t), _) => format!("synchub ≥ {t:.1}× faster"),
            (Target::None, _) => "—".into(),
            (Target::ReferenceSpeed, _) => "— (a reference, not the target's baseline)".into(),
        }
    }

    pub fn met_text(&self) -> String {
        match self.met {
            None => "—".into(),
            Some(true) => "yes".into(),
            Some(false) => {
                let mut why: Vec<String> = Vec::new();
                if let Some(m) = self.missed_by {
                    why.push(format!("by {:.0}%", m * 100.0));
                }
                if let (Target::ShareOfFullAtMost(t), Some(f)) = (self.target, self.floor_share) {
                    if f > t {
                        why.push(format!(
                            "the bare SQL delta alone takes {:.1}% of full",
                            f * 100.0
                        ));
                    }
                }
                why.extend(self.extra_failures.iter().cloned());
                format!("**no** ({})", why.join(", "))
            }
        }
    }

    fn counters_text(&self) -> String {
        let Some(summary) = &self.last.summary else {
            return "—".into();
        };
        if let Some(note) = summary.get("peer_note").and_then(Value::as_str) {
            return note.to_string();
        }
        let c = |n: &str| {
            self.last
                .counter(n)
                .map_or("?".to_string(), |v| v.to_string())
        };
        format!(
            "{} / {} / {} / {} / {}",
            c("rows_read"),
            c("rows_inserted"),
            c("rows_updated"),
            c("rows_deleted"),
            c("rows_unchanged")
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "case": self.case.id,
            "title": self.title,
            "ratio": self.ratio,
            "ratios": self.ratios,
            "ratio_text": self.ratio_text().replace("**", ""),
            "target": self.target_text(),
            "met": self.met,
            "missed_by": self.missed_by,
            "floor_share_of_full": self.floor_share,
            "wall_seconds_median": self.wall,
            "baseline_seconds_median": self.baseline,
            "rows_per_second": self.rows_per_second,
            "peak_rss_mb": self.peak_rss_mb,
            "wal_mb_median": self.wal_mb,
            "fixed_seconds_median": self.fixed_seconds,
            "counters_last_round": self.last.summary.as_ref().map(|s| json!({
                "rows_read": s.get("rows_read"),
                "rows_inserted": s.get("rows_inserted"),
                "rows_updated": s.get("rows_updated"),
                "rows_deleted": s.get("rows_deleted"),
                "rows_unchanged": s.get("rows_unchanged"),
                "partitions_total": s.get("partitions_total"),
            })),
        })
    }
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else {
        format!("{:.0}k", r / 1e3)
    }
}

/// One suite's Markdown: the ratios table, how the baselines were
/// measured, where synchub's time went (per operator), and notes.
pub fn markdown(title: &str, engine: Engine, lines: &[Line], notes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### {title}\n");
    let _ = writeln!(
        s,
        "| case | ratio (median; per round) | target | met | wall s | fixed ms | baseline s | rows/s | peak RSS MB | WAL MB | read / ins / upd / del / unchanged |"
    );
    let _ = writeln!(s, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    for l in lines {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
            l.title,
            l.ratio_text(),
            l.target_text(),
            l.met_text(),
            l.wall,
            l.fixed_seconds
                .map_or("—".into(), |f| format!("{:.0}", f * 1000.0)),
            l.baseline.map_or("—".into(), |b| format!("{b:.2}")),
            rate(l.rows_per_second),
            l.peak_rss_mb.map_or("—".into(), |r| format!("{r:.0}")),
            l.wal_mb.map_or("—".into(), |w| format!("{w:.0}")),
            l.counters_text(),
        );
    }
    let _ = writeln!(
        s,
        "\nRatios pair each synchub run with the baseline measured just before it in the same round; \
         delta is given as a share of the same round's full sync into an empty table, and against \
         the bare SQL delta (its baseline s), the same changed rows applied to the raw copy of the \
         table by hand right before it. Baselines: {} rows/s = rows in the table ÷ wall time. \
         Fixed ms = synchub's wall time outside the span from its first partition taken to its \
         last commit (process start, connecting, planning, recording the run, exit; median). \
         A peer's line (`--peers`) gives synchub's speed over the peer on the same case in the same round \
         (peer's wall time ÷ synchub's, each a whole process from start to exit; baseline s = synchub's \
         wall time) and the peak RSS of the peer's Python process.\n",
        engine.baselines_text()
    );

    let _ = writeln!(
        s,
        "**Where synchub's time goes** (last round; seconds per operator: busy = its own work \
         including its database calls, waiting = for input from upstream, blocked = on a full output channel)\n"
    );
    let _ = writeln!(
        s,
        "| case | operator | rows in | rows out | busy s | waiting s | blocked s |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    // A reference line repeats the run of its target line.
    for l in lines.iter().filter(|l| l.target != Target::ReferenceSpeed) {
        let Some(ops) = l
            .last
            .summary
            .as_ref()
            .and_then(|s| s.get("operators"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for op in ops {
            let f = |k: &str| op.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
            let n = |k: &str| op.get(k).and_then(Value::as_u64).unwrap_or(0);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
                l.case.title,
                op.get("operator").and_then(Value::as_str).unwrap_or("?"),
                n("rows_in"),
                n("rows_out"),
                f("busy_seconds"),
                f("waiting_on_input_seconds"),
                f("blocked_on_output_seconds"),
            );
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "\n**Notes**\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// Where the suites ran, after their tables.
pub fn machine_markdown(facts: &[(String, String)]) -> String {
    format!("\n**Machine**: {}\n", facts_text(facts))
}

pub fn facts_text(facts: &[(String, String)]) -> String {
    facts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn facts_json(facts: &[(String, String)]) -> Value {
    Value::Object(
        facts
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// One line of the `--rss-scale` table.
pub struct ScaleLine {
    pub rows: i64,
    pub full: Measurement,
    pub identical: Measurement,
    pub hash: Measurement,
    /// The first delta run: every row in one partition.
    pub delta: Measurement,
}

pub fn scale_markdown(engine: Engine, lines: &[ScaleLine]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {}: synchub peak RSS by table size\n",
        engine.suite_name()
    );
    let _ = writeln!(
        s,
        "| rows | full → empty: × pipe rows/s | rows/s | peak RSS MB | full → identical: × pipe | peak RSS MB | hash, nothing changed: × bare scans | peak RSS MB | first delta (every row): s | peak RSS MB |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mb = |m: &Measurement| {
        m.peak_rss_kb
            .map_or("—".into(), |k| format!("{:.0}", k as f64 / 1024.0))
    };
    let r = |m: &Measurement, t: Target| m.ratio(t).map_or("—".into(), |r| format!("{r:.2}×"));
    for l in lines {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            l.rows,
            r(&l.full, Target::PipeSpeedAtLeast(0.0)),
            rate(l.full.rows_per_second()),
            mb(&l.full),
            r(&l.identical, Target::PipeSpeedAtLeast(0.0)),
            mb(&l.identical),
            r(&l.hash, Target::BareTimeAtMost(0.0)),
            mb(&l.hash),
            l.delta.wall_seconds,
            mb(&l.delta),
        );
    }
    let peak = lines
        .iter()
        .flat_map(|l| {
            [&l.full, &l.identical, &l.hash, &l.delta]
                .map(|m| (m.peak_rss_kb.unwrap_or(0) as f64 / 1024.0, l.rows))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((mb, rows)) = peak {
        let _ = writeln!(
            s,
            "\nPeak RSS ≤ {RSS_LIMIT_MB:.0} MB at every size: {} (the most: {mb:.0} MB, at {rows} rows)",
            if mb <= RSS_LIMIT_MB { "yes" } else { "**no**" }
        );
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(case: &'static str, round: u32, wall: f64, baseline: Option<f64>) -> Measurement {
        Measurement {
            case,
            round,
            rows: 1_000,
            wall_seconds: wall,
            baseline_seconds: baseline,
            full_seconds: None,
            peak_rss_kb: Some(50 * 1024),
            wal_bytes: Some(1 << 20),
            changed_rows: None,
            summary: Some(
                json!({"rows_read": 1000, "rows_inserted": 0, "rows_updated": 0,
                                 "rows_deleted": 0, "rows_unchanged": 1000}),
            ),
        }
    }

    fn line<'a>(lines: &'a [Line], case: &str) -> &'a Line {
        lines.iter().find(|l| l.case.id == case).unwrap()
    }

    #[test]
    fn fixed_cost_is_the_wall_time_outside_the_partitions() {
        let mut run = m(DELTA_NEWEST, 1, 0.5, None);
        assert_eq!(run.fixed_seconds(), None, "a summary without timings");
        run.summary =
            Some(json!({"duration_seconds": 0.4, "setup_seconds": 0.05, "wrapup_seconds": 0.01}));
        // 0.1 s outside the run (process start, exit), 0.06 s inside it.
        assert!((run.fixed_seconds().unwrap() - 0.16).abs() < 1e-9);
        let ls = lines(&[run], Engine::Postgres);
        assert!(markdown("t", Engine::Postgres, &ls, &[]).contains("| 160 |"));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn a_reference_line_gives_a_ratio_and_no_verdict() {
        // Reference copy 2 s, synchub 2.5 s: 0.8× its rows/s, neither met nor missed.
        let ms = vec![m(FULL_EMPTY_VS_PARTITIONED, 1, 2.5, Some(2.0))];
        let ls = lines(&ms, Engine::Postgres);
        let reference = line(&ls, FULL_EMPTY_VS_PARTITIONED);
        assert!((reference.ratio.unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(reference.met, None);
        assert_eq!(reference.met_text(), "—");
        assert!(
            reference
                .ratio_text()
                .starts_with("**0.80×** the reference's rows/s"),
            "{}",
            reference.ratio_text()
        );
    }

    #[test]
    fn ratios_point_the_way_each_target_reads() {
        let mut delta = m(DELTA_NEWEST, 1, 0.5, Some(0.4));
        delta.full_seconds = Some(10.0);
        // The bare SQL delta 0.4 s, synchub's 0.6 s: 1.5×, over 1.25×.
        let spread = m(DELTA, 1, 0.6, Some(0.4));
        let ms = vec![
            spread,
            // Pipe 2 s, synchub 2.2 s: 0.91× the pipe's rows/s, met.
            m(FULL_EMPTY, 1, 2.2, Some(2.0)),
            // Bare scans 2 s, hash 3.2 s: 1.6× their time, over 1.5× by 6.7%.
            m(HASH_NONE, 1, 3.2, Some(2.0)),
            delta,
            m(PIPE, 1, 2.0, None),
        ];
        let ls = lines(&ms, Engine::Postgres);
        let full = line(&ls, FULL_EMPTY);
        assert!((full.ratio.unwrap() - 2.0 / 2.2).abs() < 1e-9);
        assert_eq!(full.met, Some(true));
        let hash = line(&ls, HASH_NONE);
        assert!((hash.ratio.unwrap() - 1.6).abs() < 1e-9);
        assert_eq!(hash.met, Some(false));
        assert!((hash.missed_by.unwrap() - 0.1 / 1.5).abs() < 1e-9);
        assert!(hash.met_text().contains("by 7%"), "{}", hash.met_text());
        let delta = line(&ls, DELTA_NEWEST);
        assert!((delta.ratio.unwrap() - 0.05).abs() < 1e-9);
        assert_eq!(delta.met, Some(true));
        let spread = line(&ls, DELTA);
        assert!((spread.ratio.unwrap() - 1.5).abs() < 1e-9);
        assert_eq!(spread.met_text(), "**no** (by 20%)");
        assert_eq!(spread.target_text(), "≤ 1.25× the bare SQL delta");
        assert_eq!(line(&ls, PIPE).met, None);
    }

    #[test]
    fn a_missed_delta_names_its_floor_when_the_floor_misses_too() {
        // Full 10 s; the bare SQL delta 0.8 s (8%), synchub's 1.0 s (10%).
        let mut newest = m(DELTA_NEWEST, 1, 1.0, Some(0.8));
        newest.full_seconds = Some(10.0);
        let ls = lines(&[newest.clone()], Engine::Postgres);
        assert_eq!(
            line(&ls, DELTA_NEWEST).met_text(),
            "**no** (by 100%, the bare SQL delta alone takes 8.0% of full)"
        );
        // Full 10 s; the floor 0.2 s (2%), synchub's 0.6 s (6%): synchub's own miss.
        newest.wall_seconds = 0.6;
        newest.baseline_seconds = Some(0.2);
        let ls = lines(&[newest], Engine::Postgres);
        assert_eq!(line(&ls, DELTA_NEWEST).met_text(), "**no** (by 20%)");
    }

    #[test]
    fn rss_and_writes_can_miss_a_target_the_ratio_meets() {
        let mut big = m(FULL_EMPTY, 1, 1.0, Some(2.0));
        big.peak_rss_kb = Some(300 * 1024);
        let mut wrote = m(FULL_IDENTICAL, 1, 1.0, Some(2.0));
        wrote.summary = Some(json!({"rows_updated": 3}));
        let ls = lines(&[big, wrote], Engine::Postgres);
        let full = line(&ls, FULL_EMPTY);
        assert_eq!(full.met, Some(false));
        assert!(full.met_text().contains("peak RSS"), "{}", full.met_text());
        let same = line(&ls, FULL_IDENTICAL);
        assert_eq!(same.met, Some(false));
        assert!(
            same.met_text().contains("wrote 3 rows"),
            "{}",
            same.met_text()
        );
    }

    #[test]
    fn peers_are_ratios_of_their_time_to_synchubs_and_need_the_same_keys() {
        // dlt 9 s, synchub 2 s: synchub 4.5× faster, over 3×.
        let mut dlt = m(DLT_FULL, 1, 9.0, Some(2.0));
        dlt.summary = Some(json!({"copy_equal": true, "peer_note": "dlt ok"}));
        // reladiff 5 s, synchub 2 s: 2.5×, over 2×, but other keys.
        let mut rd = m(RELADIFF_SOME, 1, 5.0, Some(2.0));
        rd.summary = Some(json!({"same_keys": false, "peer_note": "reladiff"}));
        let ls = lines(&[dlt, rd], Engine::Postgres);
        let dlt = line(&ls, DLT_FULL);
        assert!((dlt.ratio.unwrap() - 4.5).abs() < 1e-9);
        assert_eq!(dlt.met, Some(true));
        assert_eq!(dlt.counters_text(), "dlt ok");
        let rd = line(&ls, RELADIFF_SOME);
        assert!((rd.ratio.unwrap() - 2.5).abs() < 1e-9);
        assert_eq!(rd.met, Some(false));
        assert!(
            rd.met_text().contains("differing keys"),
            "{}",
            rd.met_text()
        );
    }

    #[test]
    fn sqlite_full_is_held_to_its_partitioned_copy() {
        // Raw copy 1 s, partitioned copy 2 s, synchub 2.4 s: 0.83× the
        // partitioned copy, met; 0.42× the raw copy, a reference only.
        let full = m(FULL_EMPTY, 1, 2.4, Some(1.0));
        let vs = Measurement {
            case: FULL_EMPTY_VS_PARTITIONED,
            baseline_seconds: Some(2.0),
            ..full.clone()
        };
        let ls = lines(&[full, vs], Engine::Sqlite);
        assert_eq!(line(&ls, FULL_EMPTY).met, None);
        let vs = line(&ls, FULL_EMPTY_VS_PARTITIONED);
        assert_eq!(vs.met, Some(true));
        assert_eq!(
            vs.target_text(),
            "≥ 0.8× the partitioned copy, RSS ≤ 256 MB"
        );
        assert!(vs.ratio_text().contains("partitioned copy's rows/s"));
    }

    #[test]
    fn rounds_give_the_median_ratio_and_each_round_in_the_text() {
        let ms = vec![
            m(FULL_EMPTY, 1, 2.0, Some(2.0)),
            m(FULL_EMPTY, 2, 4.0, Some(2.0)),
        ];
        let ls = lines(&ms, Engine::Postgres);
        let full = line(&ls, FULL_EMPTY);
        assert!((full.ratio.unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(full.ratio_text(), "**0.75×** pipe rows/s (1.00×, 0.50×)");
        assert!(
            markdown("t", Engine::Postgres, &ls, &[]).contains("| synchub full → empty table |")
        );
    }
}
