//! The spec's own pipeline examples: every field they use parses, and planning
//! either succeeds or names exactly what is not supported yet.

use std::path::PathBuf;

use planner::config::PipelineFile;
use planner::{Datastores, Pipeline, Plan};

/// The package folder, read at run time: a test binary built from another
/// checkout sharing the target directory must still read this one's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

fn example(n: u32) -> PathBuf {
    manifest_dir().join(format!("tests/spec_examples/example_{n:02}.yaml"))
}

/// The outcome of validating and planning an example with its default strategy.
fn plan_outcome(n: u32) -> String {
    let file = example(n);
    let ds = Datastores::load(
        &file.with_file_name("datastores.yaml"),
        &planner::connection::stand_in::types(),
    )
    .unwrap();
    match Pipeline::load(&file, &ds).and_then(|p| Plan::compile(&p, None)) {
        Ok(plan) => format!("ok: {}", plan.strategy),
        Err(e) => e.to_string().replace(&format!("{}: ", file.display()), ""),
    }
}

#[test]
fn every_spec_example_parses() {
    let dir = manifest_dir().join("tests/spec_examples");
    let mut pipelines = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("example_")
        {
            PipelineFile::read(&path).unwrap_or_else(|e| panic!("{e}"));
            pipelines += 1;
        }
    }
    // The spec's 12 YAML blocks: 10 pipelines (or pieces of one), the
    // datastores file and the global config.
    assert_eq!(pipelines, 10);
    Datastores::load(
        &dir.join("spec_datastores.yaml"),
        &planner::connection::stand_in::types(),
    )
    .unwrap();
    assert!(dir.join("global_config.yaml").exists());
}

#[test]
fn spec_examples_plan_or_name_what_is_missing() {
    assert_eq!(plan_outcome(1), "ok: hourly_delta");
    assert_eq!(plan_outcome(2), "enrichment: not supported yet: enrichment");
    assert_eq!(plan_outcome(3), "ok: delta_sync");
    // The spec's aggregate: its delta re-computes the touched groups.
    assert_eq!(plan_outcome(4), "ok: delta");
}

#[test]
fn spec_examples_run_full_where_they_can() {
    let ds = Datastores::load(
        &example(1).with_file_name("datastores.yaml"),
        &planner::connection::stand_in::types(),
    )
    .unwrap();
    let p = Pipeline::load(&example(1), &ds).unwrap();
    let plan = Plan::compile(&p, Some("full")).unwrap();
    assert_eq!(plan.strategy, "full");
    assert_eq!(plan.dimensions[0].column, planner::ColumnRef::bare("id"));
}

/// Fingerprints bind checkpoints and delta watermarks: a change of how the
/// model holds columns (structured references instead of SQL text) must not
/// change them, or every delta pipeline would re-read its table once after
/// an upgrade. Values computed before the model changed.
#[test]
fn fingerprints_do_not_depend_on_how_the_model_holds_columns() {
    let root = manifest_dir().join("..");
    let mut seen = Vec::new();
    for (file, datastores) in [
        (
            "pipelines/demo/orders.yaml",
            "pipelines/demo/datastores.yaml",
        ),
        (
            "pipelines/demo/orders_stage_form.yaml",
            "pipelines/demo/datastores.yaml",
        ),
        (
            "pipelines/demo/users.yaml",
            "pipelines/demo/datastores.yaml",
        ),
        (
            "pipelines/examples/postgres_postgres_join.yaml",
            "pipelines/examples/datastores.yaml",
        ),
        (
            "planner/tests/spec_examples/example_01.yaml",
            "planner/tests/spec_examples/datastores.yaml",
        ),
        (
            "planner/tests/spec_examples/example_03.yaml",
            "planner/tests/spec_examples/datastores.yaml",
        ),
        (
            "planner/tests/spec_examples/example_06_column_level.yaml",
            "planner/tests/spec_examples/datastores.yaml",
        ),
    ] {
        let ds = Datastores::load(
            &root.join(datastores),
            &planner::connection::stand_in::types(),
        )
        .unwrap();
        let Ok(p) = Pipeline::load(&root.join(file), &ds) else {
            seen.push(format!("{file}: invalid"));
            continue;
        };
        for s in &p.strategies {
            let Ok(plan) = Plan::compile(&p, Some(&s.name)) else {
                continue;
            };
            let f = planner::fingerprint::SyncFingerprint::of(&p, &plan);
            seen.push(format!("{file} {}: {} {}", s.name, f.rows, f.run));
        }
    }
    assert_eq!(
        seen,
        [
            "pipelines/demo/orders.yaml full: b9fa9b745b4102f7 e0d0f7b96a12542f",
            "pipelines/demo/orders_stage_form.yaml full: ca9e52bb563ffd6e eeb3d7ec813eeb86",
            "pipelines/demo/users.yaml full: ee33e66135647338 df9f7e614690c8e1",
            "pipelines/examples/postgres_postgres_join.yaml full_sync: a33949e91c945bd1 4028255c5ef9d176",
            // Its delta is cut by partition_column now: the same rows,
            // other partitions (checkpoints start over, the watermark holds).
            "planner/tests/spec_examples/example_01.yaml hourly_delta: b1e13e3b6defcd9a 7eea5f0a80a88c70",
            "planner/tests/spec_examples/example_03.yaml delta_sync: 3a8192950e8af053 79fc91d6f61a9eb6",
            "planner/tests/spec_examples/example_06_column_level.yaml hash: 40a0bb7bbb84eb88 803d7a1a0cf6d757",
        ]
    );
}
