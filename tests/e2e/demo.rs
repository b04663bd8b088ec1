//! `synchub demo` creates its data set, syncs it and verifies it, with no server.

use std::process::Command;

#[test]
fn demo_syncs_and_verifies_identical_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["demo", "--rows", "5000", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": identical").count(), 4, "{stdout}");
    assert!(stdout.contains("verify: source 5000 rows, destination 5000 rows: identical"));
    assert!(stdout.contains("verify: source 500 rows, destination 500 rows: identical"));
    aggregate_equals_a_fresh_group_by(dir.path());

    // A second run of a demo pipeline finds everything in place: the
    // partitions' checksums match, so it reads and rewrites nothing.
    let pipeline = dir.path().join("pipelines/orders.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(&pipeline)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["rows_read"], 0);
    assert_eq!(summary["rows_unchanged"], 5000);
    assert_eq!(summary["rows_inserted"], 0);
    assert_eq!(summary["rows_updated"], 0);
}

/// The demo's daily orders per user equal a GROUP BY over the source,
/// computed here in SQL with amounts as integer cents (exact, where
/// SQLite's own sum of decimal text is floating point).
fn aggregate_equals_a_fresh_group_by(dir: &std::path::Path) {
    let c = rusqlite::Connection::open(dir.join("source.db")).unwrap();
    c.execute_batch(&format!(
        "ATTACH '{}' AS w",
        dir.join("warehouse.db").display()
    ))
    .unwrap();
    let cents = |e: &str| format!("CAST(round({e} * 100) AS INTEGER)");
    let expected = format!(
        "SELECT user_id, order_date, count(*), sum({}), sum(coalesce({}, 0)), max(updated_at)
         FROM main.orders WHERE user_id IS NOT NULL GROUP BY user_id, order_date",
        cents("amount"),
        cents("discount")
    );
    let got = format!(
        "SELECT user_id, date, num_orders, {}, coalesce({}, 0), last_updated_at FROM w.user_daily_orders",
        cents("amount"),
        cents("discount")
    );
    let (groups, differ): (i64, i64) = c
        .query_row(
            &format!(
                "SELECT (SELECT count(*) FROM ({expected})),
                        (SELECT count(*) FROM ({expected} EXCEPT {got}))
                      + (SELECT count(*) FROM ({got} EXCEPT {expected}))"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(groups > 1000, "{groups} groups");
    assert_eq!(differ, 0, "groups differing from a fresh GROUP BY");
}
