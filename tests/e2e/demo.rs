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
    assert_eq!(stdout.matches(": identical").count(), 3, "{stdout}");
    assert!(stdout.contains("verify: source 5000 rows, destination 5000 rows: identical"));
    assert!(stdout.contains("verify: source 500 rows, destination 500 rows: identical"));

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
