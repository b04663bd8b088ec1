//! `synchub scheduler start`: cron schedules run as runs whose partitions
//! the workers execute, capped per slot, led by one scheduler at a time,
//! and a schedule missed while no scheduler ran is run once.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;

use crate::common::{connect, Schemas};
use crate::redis_workers::{clear_queue, source_rows, synchub, Worker};

/// Pipeline `name` from `src.items` into `dst.<table>`, 2 partitions of
/// 1,000 ids, its full strategy on `cron`.
fn pipeline(name: &str, table: &str, cron: &str, slot: Option<&str>) -> String {
    format!(
        "name: {name}
{slot}partition_column: id
partition_step: 1000
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: {table}}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: title, dest: title, data_type: text}}
strategies:
  - {{name: full, type: full, cron: \"{cron}\"}}
",
        slot = slot.map(|s| format!("slot: {s}\n")).unwrap_or_default()
    )
}

/// The config folder of a test: its datastores and `global`.
fn config_dir(s: &Schemas, global: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("datastores.yaml"), s.datastores_yaml())?;
    std::fs::write(dir.path().join("global_config.yaml"), global)?;
    Ok(dir)
}

fn scheduler(dir: &Path, queue: &str, name: &str) -> Result<Worker> {
    let state = dir.join("state");
    Worker::spawn(
        &[
            "scheduler",
            "start",
            "--config-dir",
            dir.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--queue-name",
            queue,
            "--name",
            name,
        ],
        &[],
    )
}

/// A worker whose commits each take 300 ms more, so runs overlap.
fn slow_worker(queue: &str, jobs: &str) -> Result<Worker> {
    Worker::spawn(
        &[
            "worker",
            "start",
            "--queue-name",
            queue,
            "--max-jobs",
            jobs,
            "--name",
            "w",
        ],
        &[("SYNCHUB_TEST_SLOW_COMMIT_MS", "300")],
    )
}

fn finished_runs(events: &[Value], pipeline: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e["event"] == "finished" && e["pipeline"] == pipeline && e["status"] == "completed"
        })
        .count()
}

/// Waits until `done` says the scheduler's events are enough.
async fn until(scheduler: &Worker, done: impl Fn(&[Value]) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done(&scheduler.events()) {
        if Instant::now() > deadline {
            bail!("not reached in 90 s: {:?}", scheduler.events());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The runs of `pipeline` recorded in `dir/state`: `[started, finished]`.
fn run_times(dir: &Path, pipeline: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let state = dir.join("state");
    let out = synchub(&[
        "history",
        pipeline,
        "--state-dir",
        state.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let time = |v: &Value| {
        DateTime::parse_from_rfc3339(v.as_str().expect("a finished run"))
            .unwrap()
            .with_timezone(&Utc)
    };
    history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (time(&r["started_at"]), time(&r["finished_at"])))
        .collect()
}

/// The most runs going at one instant.
fn most_at_once(runs: &[(DateTime<Utc>, DateTime<Utc>)]) -> usize {
    let mut edges: Vec<(DateTime<Utc>, i32)> = runs
        .iter()
        .flat_map(|(start, end)| [(*start, 1), (*end, -1)])
        .collect();
    // An end at the instant another starts: not at once.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// Five pipelines due every second in a slot of capacity 2: from the run
/// records' start and end times, never more than 2 ran at once, 2 did, and
/// each pipeline ran.
#[tokio::test]
async fn a_slot_of_two_never_runs_more_than_two_of_five_due_pipelines() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "rslot").await?;
    source_rows(&client, &s, 2_000).await?;
    let dir = config_dir(&s, "scheduler:\n  slot_definitions:\n    batch: 2\n")?;
    let names: Vec<String> = (1..=5).map(|k| format!("rslot{k}")).collect();
    for (k, name) in names.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("{name}.yaml")),
            pipeline(name, &format!("items_{k}"), "* * * * * *", Some("batch")),
        )?;
    }
    let queue = format!("test-rslot-{}", std::process::id());
    clear_queue(&queue);
    let mut worker = slow_worker(&queue, "8")?;
    let mut sched = scheduler(dir.path(), &queue, "s1")?;
    until(&sched, |events| {
        names.iter().all(|n| finished_runs(events, n) >= 1)
    })
    .await?;
    assert_eq!(sched.stop(), Some(0));
    assert_eq!(worker.stop(), Some(0));

    let runs: Vec<_> = names
        .iter()
        .flat_map(|n| run_times(dir.path(), n))
        .collect();
    assert!(runs.len() >= 5);
    assert_eq!(most_at_once(&runs), 2, "{runs:?}");
    // The scheduler's own account agrees: started less finished, at most 2.
    let mut going = 0i32;
    for e in sched.events() {
        match e["event"].as_str() {
            Some("started") => {
                assert_eq!(e["slot"], "batch");
                going += 1;
            }
            Some("finished") => going -= 1,
            _ => {}
        }
        assert!(going <= 2, "{:?}", sched.events());
    }
    clear_queue(&queue);
    Ok(())
}

/// The spans a scheduler led, from its events: `leader` to
/// `stopped_leading` (a span never closed runs to the end of time, so a
/// scheduler that died leading overlaps every later leader).
fn leading_spans(events: &[Value]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut spans = Vec::new();
    let mut since = None;
    for e in events {
        match e["event"].as_str() {
            Some("leader") => {
                assert!(since.is_none(), "led twice at once: {events:?}");
                since = Some(at(e));
            }
            Some("stopped_leading") => {
                let start = since.take().expect("stopped leading before it led");
                spans.push((start, at(e)));
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        spans.push((start, DateTime::<Utc>::MAX_UTC));
    }
    spans
}

fn at(event: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(event["at"].as_str().expect("an event with its time"))
        .unwrap()
        .with_timezone(&Utc)
}

/// Two schedulers started together on one queue: one leads at a time and
/// only the leader starts runs; the pipeline's runs never overlap.
///
/// Which one leads may change during the test: a leader starved of CPU on
/// a loaded machine can let its lease run out, and then the standby takes
/// over (stopping the leader first hands over too). What must hold is that
/// the spans the two led never overlap (a leader's span ends where its
/// lease did), that every run was started inside its scheduler's span, and
/// that the run records never overlap.
#[tokio::test]
async fn of_two_schedulers_started_together_only_one_starts_runs() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "rlead").await?;
    source_rows(&client, &s, 2_000).await?;
    let dir = config_dir(&s, "scheduler:\n  check_interval: 60\n")?;
    std::fs::write(
        dir.path().join("rlead.yaml"),
        pipeline("rlead", "items", "* * * * * *", None),
    )?;
    let queue = format!("test-rlead-{}", std::process::id());
    clear_queue(&queue);
    let mut worker = slow_worker(&queue, "4")?;
    let mut schedulers = [
        scheduler(dir.path(), &queue, "s1")?,
        scheduler(dir.path(), &queue, "s2")?,
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    while schedulers
        .iter()
        .map(|s| finished_runs(&s.events(), "rlead"))
        .sum::<usize>()
        < 3
    {
        assert!(Instant::now() < deadline, "fewer than 3 runs in 90 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // `scheduler status` names the leader, by its pid.
    let out = synchub(&[
        "scheduler",
        "status",
        "--queue-name",
        &queue,
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout)?;
    let leader_pid = status["leader"]["pid"].as_u64().expect("a leader");
    for s in &mut schedulers {
        assert_eq!(s.stop(), Some(0));
    }
    assert_eq!(worker.stop(), Some(0));
    let events: Vec<Vec<Value>> = schedulers.iter().map(|s| s.events()).collect();
    let spans: Vec<Vec<(DateTime<Utc>, DateTime<Utc>)>> =
        events.iter().map(|e| leading_spans(e)).collect();
    assert!(
        spans.iter().any(|s| !s.is_empty()),
        "no scheduler led: {events:?}"
    );
    // One leader at a time.
    let mut all: Vec<_> = spans.iter().flatten().copied().collect();
    all.sort();
    for pair in all.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two schedulers led at once, {:?} and {:?}: {events:?}",
            pair[0],
            pair[1]
        );
    }
    for (i, events) in events.iter().enumerate() {
        // Only a leader starts runs.
        for started in events.iter().filter(|e| e["event"] == "started") {
            let t = at(started);
            assert!(
                spans[i].iter().any(|(from, to)| *from <= t && t <= *to),
                "a run started at {t} outside the spans {:?} it led: {events:?}",
                spans[i]
            );
        }
        if spans[i].is_empty() {
            assert!(events.iter().any(|e| e["event"] == "standby"), "{events:?}");
        }
    }
    // The leader `scheduler status` named is one of the two, and it led.
    let named = schedulers
        .iter()
        .position(|s| u64::from(s.child.id()) == leader_pid)
        .expect("the leader is one of the two schedulers");
    assert!(!spans[named].is_empty(), "{events:?}");
    let runs = run_times(dir.path(), "rlead");
    assert!(runs.len() >= 3);
    // `scheduler history` is `history`.
    let state = dir.path().join("state");
    let args = [
        "rlead",
        "--state-dir",
        state.to_str().unwrap(),
        "--output",
        "json",
    ];
    let scheduler_history = synchub(&[&["scheduler", "history"][..], &args].concat());
    assert_eq!(
        scheduler_history.stdout,
        synchub(&[&["history"][..], &args].concat()).stdout
    );
    assert_eq!(most_at_once(&runs), 1, "{runs:?}");
    clear_queue(&queue);
    Ok(())
}

/// A schedule due three times while no scheduler ran is run once, at
/// once, when one starts.
#[tokio::test]
async fn a_schedule_missed_three_times_runs_once_when_a_scheduler_starts() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "rmiss").await?;
    source_rows(&client, &s, 2_000).await?;
    let dir = config_dir(&s, "scheduler:\n  check_interval: 60\n")?;
    let file = dir.path().join("rmiss.yaml");
    // A run before: the history the scheduler reads.
    std::fs::write(&file, pipeline("rmiss", "items", "0 0 1 1 *", None))?;
    let state = dir.path().join("state");
    let out = synchub(&[
        "run",
        file.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Due the next three seconds, then not for a minute.
    let now = Utc::now();
    let seconds: Vec<String> = (1..=3)
        .map(|i| ((now.second() + i) % 60).to_string())
        .collect();
    std::fs::write(
        &file,
        pipeline(
            "rmiss",
            "items",
            &format!("{} * * * * *", seconds.join(",")),
            None,
        ),
    )?;
    tokio::time::sleep(Duration::from_millis(
        4_000 - u64::from(now.timestamp_subsec_millis()),
    ))
    .await;

    let queue = format!("test-rmiss-{}", std::process::id());
    clear_queue(&queue);
    let mut worker = slow_worker(&queue, "2")?;
    let mut sched = scheduler(dir.path(), &queue, "s1")?;
    until(&sched, |events| finished_runs(events, "rmiss") >= 1).await?;
    // Nothing more is due for almost a minute: no second run comes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sched.stop(), Some(0));
    assert_eq!(worker.stop(), Some(0));
    let started: Vec<Value> = sched
        .events()
        .into_iter()
        .filter(|e| e["event"] == "started")
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["missed"], true);
    assert_eq!(run_times(dir.path(), "rmiss").len(), 2);
    clear_queue(&queue);
    Ok(())
}

/// A pipeline naming a slot the global config does not define is refused
/// by the scheduler, with the slots it does; a slot of 0 is refused when
/// the global config is validated.
#[tokio::test]
async fn an_undefined_slot_is_refused_with_the_defined_ones() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "rbadslot").await?;
    let dir = config_dir(
        &s,
        "scheduler:\n  slot_definitions:\n    batch: 1\n    high: 3\n",
    )?;
    let file = dir.path().join("rbadslot.yaml");
    std::fs::write(
        &file,
        pipeline("rbadslot", "items", "0 0 1 1 *", Some("nightly")),
    )?;
    let queue = format!("test-rbadslot-{}", std::process::id());
    let mut sched = scheduler(dir.path(), &queue, "s1")?;
    until(&sched, |events| {
        events.iter().any(|e| e["event"] == "refused")
    })
    .await?;
    assert_eq!(sched.stop(), Some(0));
    let refused: Vec<Value> = sched
        .events()
        .into_iter()
        .filter(|e| e["event"] == "refused")
        .collect();
    assert_eq!(
        refused[0],
        serde_json::json!({
            "event": "refused",
            "file": file.display().to_string(),
            "error": "slot: nightly is not in the global config's scheduler.slot_definitions (batch, high)"
        })
    );

    // list-jobs says the same, and lists the pipelines it can schedule.
    std::fs::write(
        dir.path().join("rgood.yaml"),
        pipeline("rgood", "items", "0 0 1 1 *", Some("high")),
    )?;
    let out = synchub(&[
        "scheduler",
        "list-jobs",
        "--config-dir",
        dir.path().to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let listed: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(listed["refused"], serde_json::json!([refused[0]]));
    let next_new_year = format!("{}-01-01T00:00:00Z", Utc::now().year() + 1);
    assert_eq!(
        listed["jobs"],
        serde_json::json!([{
            "pipeline": "rgood", "strategy": "full", "cron": "0 0 1 1 *", "slot": "high",
            "next_due": next_new_year,
            "file": dir.path().join("rgood.yaml").display().to_string(),
            "covers": [],
        }])
    );

    let global = dir.path().join("global_config.yaml");
    std::fs::write(&global, "scheduler:\n  slot_definitions:\n    batch: 0\n")?;
    let out = synchub(&["config", "validate", global.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "scheduler.slot_definitions.batch: 0 runs at once would never run the slot's pipelines; give at least 1"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    clear_queue(&queue);
    Ok(())
}

/// Strategies of one pipeline due together: the one whose run covers the
/// others runs alone (a full run with `delete_missing: true` covers a hash
/// and a delta), each covered one said so; where none covers the rest (a
/// hash run leaves out a column a delta writes) they run one after the
/// other, never at once.
#[tokio::test]
async fn strategies_due_together_run_the_one_covering_the_others() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "rcover").await?;
    source_rows(&client, &s, 2_000).await?;
    let dir = config_dir(&s, "scheduler: {}\n")?;
    let every_second = "* * * * * *";
    let covering = pipeline("rcover_all", "items_all", every_second, None).replace(
        "  - {name: full, type: full, cron: \"* * * * * *\"}\n",
        "  - {name: full, type: full, delete_missing: true, cron: \"* * * * * *\"}\n  - {name: hash, type: hash, cron: \"* * * * * *\"}\n  - {name: delta, type: delta, column: id, cron: \"* * * * * *\"}\n",
    );
    assert!(covering.contains("name: delta"), "{covering}");
    let apart = pipeline("rcover_apart", "items_apart", every_second, None)
        .replace(
            "  - {source: qty, dest: qty, data_type: int}\n",
            "  - {source: qty, dest: qty, data_type: int, hash_column: false}\n",
        )
        .replace(
            "  - {name: full, type: full, cron: \"* * * * * *\"}\n",
            "  - {name: hash, type: hash, cron: \"* * * * * *\"}\n  - {name: delta, type: delta, column: id, cron: \"* * * * * *\"}\n",
        );
    assert!(apart.contains("hash_column: false") && apart.contains("name: delta"));
    std::fs::write(dir.path().join("rcover_all.yaml"), covering)?;
    std::fs::write(dir.path().join("rcover_apart.yaml"), apart)?;
    // list-jobs says which strategy covers which.
    let out = synchub(&[
        "scheduler",
        "list-jobs",
        "--config-dir",
        dir.path().to_str().unwrap(),
        "--output",
        "json",
    ]);
    let listed: Value = serde_json::from_slice(&out.stdout)?;
    let covers: Vec<(String, String, Value)> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["pipeline"].as_str().unwrap().to_string(),
                j["strategy"].as_str().unwrap().to_string(),
                j["covers"].clone(),
            )
        })
        .collect();
    assert_eq!(
        covers,
        [
            (
                "rcover_all".into(),
                "full".into(),
                serde_json::json!(["hash", "delta"])
            ),
            (
                "rcover_all".into(),
                "hash".into(),
                serde_json::json!(["delta"])
            ),
            ("rcover_all".into(), "delta".into(), serde_json::json!([])),
            ("rcover_apart".into(), "hash".into(), serde_json::json!([])),
            ("rcover_apart".into(), "delta".into(), serde_json::json!([])),
        ]
    );
    let queue = format!("test-rcover-{}", std::process::id());
    clear_queue(&queue);
    let mut worker = slow_worker(&queue, "4")?;
    let mut sched = scheduler(dir.path(), &queue, "s1")?;
    let started = |events: &[Value], pipeline: &str, strategy: &str| {
        events
            .iter()
            .filter(|e| {
                e["event"] == "started" && e["pipeline"] == pipeline && e["strategy"] == strategy
            })
            .count()
    };
    until(&sched, |events| {
        finished_runs(events, "rcover_all") >= 2
            && started(events, "rcover_apart", "hash") >= 1
            && started(events, "rcover_apart", "delta") >= 1
            && finished_runs(events, "rcover_apart") >= 2
    })
    .await?;
    assert_eq!(sched.stop(), Some(0));
    assert_eq!(worker.stop(), Some(0));
    let events = sched.events();
    assert_eq!(started(&events, "rcover_all", "hash"), 0, "{events:?}");
    assert_eq!(started(&events, "rcover_all", "delta"), 0, "{events:?}");
    let covered = |strategy: &str| {
        events.iter().any(|e| {
            e["event"] == "covered"
                && e["pipeline"] == "rcover_all"
                && e["strategy"] == strategy
                && e["by"] == "full"
        })
    };
    assert!(covered("hash") && covered("delta"), "{events:?}");
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "covered" && e["pipeline"] == "rcover_apart"),
        "{events:?}"
    );
    // No run refused for the pipeline's lock or failed (one still going
    // when the scheduler stopped is cancelled), one at a time for each
    // pipeline.
    assert!(
        !events.iter().any(|e| e["event"] == "finished"
            && !["completed", "cancelled"].contains(&e["status"].as_str().unwrap_or(""))),
        "{events:?}"
    );
    for pipeline in ["rcover_all", "rcover_apart"] {
        let runs = run_times(dir.path(), pipeline);
        assert_eq!(most_at_once(&runs), 1, "{pipeline}: {runs:?}");
    }
    clear_queue(&queue);
    Ok(())
}
