//! Every pipeline shipped under `pipelines/` parses, validates and plans.

use std::path::{Path, PathBuf};

use planner::{Datastores, Pipeline, Plan};

/// The package folder, read at run time: a test binary built from another
/// checkout sharing the target directory must still read this one's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

fn pipeline_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            pipeline_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            && path.file_stem().is_some_and(|s| s != "datastores")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_shipped_pipeline_parses_and_plans() {
    let root = manifest_dir().join("pipelines");
    let mut files = Vec::new();
    pipeline_files(&root, &mut files);
    files.sort();
    assert!(
        files.len() >= 5,
        "expected the demo and example pipelines, found {files:?}"
    );
    for file in &files {
        let ds_file = Datastores::locate(file, None).unwrap_or_else(|e| panic!("{e}"));
        let datastores = Datastores::load(&ds_file, &connectors::registry::types())
            .unwrap_or_else(|e| panic!("{e}"));
        let pipeline = Pipeline::load(file, &datastores).unwrap_or_else(|e| panic!("{e}"));
        let default = Plan::compile(&pipeline, None).unwrap_or_else(|e| panic!("{e}"));
        // Partitions in, the destination out; an aggregate grouped in
        // DataFusion has its regroup between.
        let names: Vec<&str> = default.operators.iter().map(|o| o.name()).collect();
        let regroup = default
            .aggregate
            .as_ref()
            .is_some_and(|a| a.engine == planner::model::AggregateEngine::Datafusion);
        let mut expected = vec!["partition_source", "fetch", "batcher", "populate"];
        if regroup {
            expected.insert(2, "regroup");
        }
        assert_eq!(names, expected, "{}", file.display());
        for s in &pipeline.strategies {
            let plan = Plan::compile(&pipeline, Some(&s.name)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(plan.strategy, s.name);
            assert!(
                plan.describe(None)
                    .contains(&format!("strategy: {}", s.name)),
                "{}",
                file.display()
            );
        }
    }
}

#[test]
fn demo_pipelines_partition_as_declared() {
    let root = manifest_dir().join("pipelines/demo");
    let datastores = Datastores::load(
        &root.join("datastores.yaml"),
        &connectors::registry::types(),
    )
    .unwrap();
    let orders = Pipeline::load(&root.join("orders.yaml"), &datastores).unwrap();
    let plan = Plan::compile(&orders, None).unwrap();
    assert_eq!(plan.dimensions.len(), 1);
    assert_eq!(
        plan.dimensions[0].column,
        planner::ColumnRef::parse("o.id").unwrap()
    );
    assert_eq!(plan.dimensions[0].column.to_string(), "\"o\".\"id\"");
    let by_month = Pipeline::load(&root.join("orders_stage_form.yaml"), &datastores).unwrap();
    let plan = Plan::compile(&by_month, None).unwrap();
    assert_eq!(plan.dimensions[0].step, planner::partition::Step::Months(1));
    assert!(plan.dimensions[0].date_only);
    assert_eq!(
        by_month.unique_columns(),
        ["id"],
        "stage form takes the key from unique_column: true"
    );
}

#[test]
fn concurrent_partitions_show_in_the_plan() {
    let root = manifest_dir().join("pipelines/examples");
    let datastores = Datastores::load(
        &root.join("datastores.yaml"),
        &connectors::registry::types(),
    )
    .unwrap();
    let users = Pipeline::load(&root.join("postgres_postgres.yaml"), &datastores).unwrap();
    let plan = Plan::compile(&users, None).unwrap();
    assert_eq!(plan.lanes, 4);
    assert!(plan.describe(None).contains(
        "\nlanes: up to 4 (partitions written at once, each lane with its own connections)\n"
    ));
    let join = Pipeline::load(&root.join("postgres_postgres_join.yaml"), &datastores).unwrap();
    let plan = Plan::compile(&join, None).unwrap();
    assert_eq!(plan.lanes, 1);
    assert!(!plan.describe(None).contains("lanes:"));
}
