//! `sync_type: aggregate` as the spec writes it (a data_fetch stage with
//! `expr` columns and `group_by`, a dedup stage, a destination virtual
//! column), and each bad input refused with the field it is in.

use std::path::Path;

use planner::model::AggregateEngine;
use planner::{Datastores, Pipeline, PlannerError};

/// The spec's `user_daily_orders_aggregate`, over SQLite stand-ins, with
/// `edit` applied to its text.
const SPEC: &str = r#"name: user_daily_orders_aggregate
sync_type: aggregate
strategies:
  - name: delta
    type: delta
    primary_partitions:
      - {column: updated_at, step: 2, step_unit: hour, data_type: datetime, bounded: true}
    delta_partitions:
      - {column: user_id, type: value, step: -1, data_type: integer}
      - {column: order_date, step: 1, step_unit: day, data_type: datetime}
backends:
  - name: source_backend
    type: sqlite
    datastore_name: src
    table: orders
    columns:
      - {name: user_id, data_type: integer}
      - {name: amount, data_type: decimal}
      - {name: discount, data_type: decimal}
      - {name: order_date, data_type: datetime}
      - {name: updated_at, data_type: datetime}
      - {name: checksum_int, data_type: bigint, hash_key: true, virtual: true}
  - name: destination_backend
    type: sqlite
    datastore_name: dst
    table: user_daily_orders_aggregate
    columns:
      - {name: user_id, data_type: integer, unique_column: true}
      - {name: date, data_type: date, unique_column: true}
      - {name: amount, data_type: decimal}
      - {name: discount, data_type: decimal}
      - {name: num_orders, data_type: integer}
      - {name: last_updated_at, data_type: datetime}
      - {name: checksum_int, data_type: bigint, hash_key: true}
      - {name: order_date, expr: date, data_type: date, virtual: true}
stages:
  - name: data_fetch
    type: data_fetch
    source:
      name: source_backend
      columns:
        - name: user_id
        - {name: date, expr: "CAST(order_date AS DATE)"}
        - {name: num_orders, expr: "count(1)"}
        - {name: amount, expr: "sum(amount)"}
        - {name: discount, expr: "sum(discount)"}
        - {name: last_updated_at, expr: "max(updated_at)"}
      group_by: [user_id, date]
    destination:
      name: destination_backend
  - name: dedup
    type: dedup
    applicable_on: delta
    config:
      dedup_keys: [user_id, date]
  - name: populate
    type: populate
    destination:
      name: destination_backend
"#;

fn load(text: &str) -> Result<Pipeline, PlannerError> {
    let file = Path::new("p.yaml");
    let datastores = Datastores::parse(
        Path::new("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {}}\n  dst: {type: sqlite, connection: {}}\n",
        &planner::connection::stand_in::types(),
        |_| None,
    )?;
    Pipeline::from_file(file, planner::yaml::parse(file, text)?, &datastores)
}

/// The problems `text` has, a `path: message` line each.
fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(PlannerError::Invalid { problems, .. }) => problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
        Err(other) => vec![other.to_string()],
    }
}

fn edited(from: &str, to: &str) -> String {
    assert!(SPEC.contains(from), "the fixture moved: {from}");
    SPEC.replacen(from, to, 1)
}

#[test]
fn the_specs_aggregate_parses_into_keys_values_and_delta_keys() {
    let p = load(SPEC).unwrap();
    let agg = p.aggregate.as_ref().unwrap();
    let names = |cs: &[planner::model::AggregateColumn]| {
        cs.iter()
            .map(|c| format!("{} = {}", c.dest, c.expr))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&agg.keys),
        ["user_id = \"user_id\"", "date = CAST(order_date AS DATE)"]
    );
    assert_eq!(
        names(&agg.values),
        [
            "num_orders = count(1)",
            "amount = sum(amount)",
            "discount = sum(discount)",
            "last_updated_at = max(updated_at)"
        ]
    );
    // user_id by name; order_date as the one column `date` is computed
    // from (and the destination's virtual order_date says the same).
    assert_eq!(agg.delta_keys, [vec![0, 1]]);
    assert_eq!(agg.engine, AggregateEngine::Auto);
    assert_eq!(
        agg.select_sql("\"orders\""),
        "SELECT \"user_id\" AS \"user_id\", CAST(order_date AS DATE) AS \"date\", count(1) AS \"num_orders\", sum(amount) AS \"amount\", sum(discount) AS \"discount\", max(updated_at) AS \"last_updated_at\" FROM \"orders\" GROUP BY \"user_id\", CAST(order_date AS DATE)"
    );
    // The destination holds the computed columns and the row hash; the
    // virtual order_date is a mapping, not stored.
    let dest: Vec<&str> = p.columns.iter().map(|c| c.dest.as_str()).collect();
    assert_eq!(
        dest,
        [
            "user_id",
            "date",
            "amount",
            "discount",
            "num_orders",
            "last_updated_at",
            "checksum_int"
        ]
    );
    assert_eq!(p.unique_columns(), ["user_id", "date"]);
}

#[test]
fn the_engine_is_chosen_by_aggregate_engine() {
    for (word, engine) in [
        ("source", AggregateEngine::Source),
        ("datafusion", AggregateEngine::Datafusion),
        ("auto", AggregateEngine::Auto),
    ] {
        let p = load(&format!("aggregate_engine: {word}\n{SPEC}")).unwrap();
        assert_eq!(p.aggregate.unwrap().engine, engine);
    }
    assert_eq!(
        problems(&format!("aggregate_engine: duckdb\n{SPEC}")),
        ["aggregate_engine: unknown aggregate_engine \"duckdb\"; use auto, source or datafusion"]
    );
}

#[test]
fn auto_groups_in_datafusion_where_sqlite_would_sum_decimals_as_floats() {
    let plan = |text: &str| {
        let p = load(text).unwrap();
        let plan = planner::Plan::compile(&p, None).unwrap();
        let a = plan.aggregate.unwrap();
        (a.engine, a.why)
    };
    // The spec sums decimal amounts: SQLite's sum would be floating point.
    assert_eq!(
        plan(SPEC),
        (
            AggregateEngine::Datafusion,
            "auto: SQLite adds decimals as floating point; DataFusion adds them exactly"
        )
    );
    // Integer sums only: the source's SQL, which sends groups, not rows.
    // (The first of each is the source backend's.)
    let integers = SPEC
        .replacen(
            "{name: amount, data_type: decimal}",
            "{name: amount, data_type: bigint}",
            1,
        )
        .replacen(
            "{name: discount, data_type: decimal}",
            "{name: discount, data_type: bigint}",
            1,
        );
    assert_eq!(
        plan(&integers),
        (
            AggregateEngine::Source,
            "auto: the source sends the groups, fewer bytes than their rows"
        )
    );
    // The config's word wins.
    assert_eq!(
        plan(&format!("aggregate_engine: source\n{SPEC}")),
        (AggregateEngine::Source, "aggregate_engine: source")
    );
}

#[test]
fn an_expression_naming_an_unknown_column_is_refused_with_a_hint() {
    assert_eq!(
        problems(&edited("sum(amount)", "sum(amout)")),
        ["stages[0].source.columns[3].expr: column \"amount\" reads \"amout\", which backend \"source_backend\" does not have; did you mean \"amount\"?"]
    );
}

#[test]
fn a_group_by_column_must_be_a_unique_destination_column() {
    assert_eq!(
        problems(&edited(
            "{name: date, data_type: date, unique_column: true}",
            "{name: date, data_type: date}"
        )),
        ["stages[0].source.group_by[1]: group_by column \"date\" is not a unique column of the destination (backend \"destination_backend\"; unique: user_id): each group is one destination row, upserted on the group_by columns, so mark \"date\" unique_column: true there"]
    );
}

#[test]
fn a_delta_partition_must_be_a_group_key_or_what_one_is_computed_from() {
    assert_eq!(
        problems(&edited(
            "{column: user_id, type: value, step: -1, data_type: integer}",
            "{column: amount, type: value, step: -1, data_type: integer}"
        )),
        ["strategies[0].delta_partitions[0].column: delta partition column \"amount\" is not a group_by column nor the one column a group_by expression reads: delta partitions name the aggregate keys a changed row touches; use one of: user_id, date, order_date"]
    );
}

#[test]
fn a_column_neither_grouped_nor_aggregated_is_refused() {
    assert_eq!(
        problems(&edited(
            "{name: discount, expr: \"sum(discount)\"}",
            "{name: discount}"
        )),
        ["stages[0].source.columns[4]: column \"discount\" is neither in group_by nor an aggregate: \"discount\" is read outside count(), sum(), min(), max(), avg(); add \"discount\" to group_by or aggregate it (e.g. max(discount))"]
    );
    // Read outside the aggregate call, next to one.
    assert_eq!(
        problems(&edited("sum(discount)", "sum(amount) - discount")),
        ["stages[0].source.columns[4]: column \"discount\" is neither in group_by nor an aggregate: \"discount\" is read outside count(), sum(), min(), max(), avg(); add \"discount\" to group_by or aggregate it (e.g. max(discount))"]
    );
}

#[test]
fn non_deterministic_expressions_are_refused() {
    for (expr, f) in [("max(random())", "random"), ("max(now())", "now")] {
        assert_eq!(
            problems(&edited("max(updated_at)", expr)),
            [format!("stages[0].source.columns[5].expr: column \"last_updated_at\": {f}() gives another value on every call, so the group would differ on every run; aggregate a source column instead (e.g. max(updated_at))")]
        );
    }
}

#[test]
fn dedup_keys_must_be_the_group_by() {
    assert_eq!(
        problems(&edited("dedup_keys: [user_id, date]", "dedup_keys: [user_id]")),
        ["stages[1].config.dedup_keys: dedup_keys [user_id] must be the group_by columns [user_id, date]: an aggregate writes one destination row per group"]
    );
}

#[test]
fn an_aggregate_needs_a_group_by_and_a_group_by_needs_an_aggregate() {
    let no_group_by = problems(&edited("      group_by: [user_id, date]\n", ""));
    assert_eq!(
        no_group_by[0],
        "stages[0].source.group_by: an aggregate sync needs group_by: the columns whose distinct values make one destination row each (e.g. group_by: [user_id, date])"
    );
    let row_level = problems(&edited("sync_type: aggregate", "sync_type: row-level"));
    assert!(
        row_level.contains(
            &"stages[0].source.group_by: group_by makes an aggregate sync: add sync_type: aggregate, or remove group_by".to_string()
        ),
        "{row_level:?}"
    );
}

/// The spec's nested hash partitions (month × 50 users → day × 5 users)
/// added to `text` as a second strategy.
fn with_hash(text: &str, primary: &str, secondary: &str) -> String {
    text.replacen(
        "backends:",
        &format!("  - name: hash\n    type: hash\n    primary_partitions:\n{primary}    secondary_partitions:\n{secondary}backends:"),
        1,
    )
}

const MONTHS_BY_50_USERS: &str = "      - {column: order_date, step: 1, step_unit: month, data_type: datetime}\n      - {column: user_id, step: 50, data_type: integer}\n";
const DAYS_BY_5_USERS: &str = "      - {column: order_date, step: 1, step_unit: day, data_type: datetime}\n      - {column: user_id, step: 5, data_type: integer}\n";

#[test]
fn hash_partitions_become_ranges_of_the_group_keys() {
    let p = load(&with_hash(SPEC, MONTHS_BY_50_USERS, DAYS_BY_5_USERS)).unwrap();
    let hash = &p.strategies[1];
    // Named as the destination's keys (the destination is cut on them),
    // read from the source columns the keys are (the day of).
    let dims = |ds: &[planner::partition::PartitionDimension]| {
        ds.iter()
            .map(|d| format!("{} <- {}", d.name, d.column))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        dims(&hash.primary),
        ["date <- \"order_date\"", "user_id <- \"user_id\""]
    );
    assert_eq!(
        dims(&hash.secondary),
        ["date <- \"order_date\"", "user_id <- \"user_id\""]
    );
    let agg = p.aggregate.as_ref().unwrap();
    assert_eq!(agg.group_sum.as_deref(), Some("checksum_int"));
    let plan = planner::Plan::compile(&p, Some("hash")).unwrap();
    let ops: Vec<&str> = plan.operators.iter().map(|o| o.name()).collect();
    assert_eq!(
        ops,
        [
            "partition_source",
            "group_checksums",
            "fetch",
            "regroup",
            "group_deletes",
            "batcher",
            "populate"
        ]
    );
    assert!(plan.deletes_missing());
}

#[test]
fn a_hash_partition_must_be_a_group_key_or_the_column_one_is_the_day_of() {
    let primary = "      - {column: updated_at, step: 1, step_unit: month, data_type: datetime}\n";
    let secondary = "      - {column: updated_at, step: 1, step_unit: day, data_type: datetime}\n";
    assert_eq!(
        problems(&with_hash(SPEC, primary, secondary)),
        [
            "strategies[1].primary_partitions[0].column: partition column \"updated_at\" is not a group key of the aggregate nor the column one is read from: a hash run compares whole groups, so each partition must be a range of a group_by column or of the column it is the day of; use one of: user_id, order_date, date",
            "strategies[1].secondary_partitions[0].column: partition column \"updated_at\" is not a group key of the aggregate nor the column one is read from: a hash run compares whole groups, so each partition must be a range of a group_by column or of the column it is the day of; use one of: user_id, order_date, date",
        ]
    );
}

#[test]
fn a_day_key_is_cut_on_whole_days_only() {
    let hours = "      - {column: order_date, step: 6, step_unit: hour, data_type: datetime}\n      - {column: user_id, step: 5, data_type: integer}\n";
    assert_eq!(
        problems(&with_hash(SPEC, MONTHS_BY_50_USERS, hours)),
        ["strategies[1].secondary_partitions[0].step: group key \"date\" is the day of \"order_date\", so a partition holds its groups whole only if it cuts on whole days: use step_unit day, week, month or year"]
    );
}

#[test]
fn a_hash_aggregate_needs_a_hash_key_column_in_the_destination() {
    let text = with_hash(SPEC, MONTHS_BY_50_USERS, DAYS_BY_5_USERS).replacen(
        "      - {name: checksum_int, data_type: bigint, hash_key: true}\n",
        "",
        1,
    );
    assert_eq!(
        problems(&text),
        ["strategies[1].type: hash for sync_type: aggregate compares each partition's source rows with the checksums of its groups stored in the destination: add a destination column with hash_key: true and data_type: bigint"]
    );
    let text = with_hash(SPEC, MONTHS_BY_50_USERS, DAYS_BY_5_USERS).replacen(
        "{name: checksum_int, data_type: bigint, hash_key: true}",
        "{name: checksum_int, data_type: varchar, length: 16, hash_key: true}",
        1,
    );
    assert_eq!(
        problems(&text),
        ["backends[1].columns[6].data_type: hash_key column \"checksum_int\" of an aggregate holds the wrapping sum of its group's row hashes: its data_type must be bigint, not varchar"]
    );
}

#[test]
fn track_moves_plans_the_groups_rows_left_and_reads_the_row_key() {
    let text = edited("    type: delta\n", "    type: delta\n    track_moves: true\n").replacen(
        "      - {name: user_id, data_type: integer}\n",
        "      - {name: order_id, data_type: bigint, unique_column: true}\n      - {name: user_id, data_type: integer}\n",
        1,
    );
    let pipeline = load(&text).unwrap();
    let plan = planner::Plan::compile(&pipeline, Some("delta")).unwrap();
    let dag: Vec<&str> = plan.operators.iter().map(|o| o.name()).collect();
    assert_eq!(
        dag,
        [
            "partition_source",
            "track_moves",
            "fetch",
            "regroup",
            "group_deletes",
            "batcher",
            "populate"
        ]
    );
    assert!(
        plan.describe(None)
            .contains("track_moves: each source row's group is remembered"),
        "{}",
        plan.describe(None)
    );
    let read: Vec<String> = pipeline
        .aggregate
        .as_ref()
        .unwrap()
        .moves_columns()
        .unwrap()
        .iter()
        .map(|c| c.dest.clone())
        .collect();
    assert_eq!(read, ["order_id", "user_id", "order_date"]);
}

#[test]
fn track_moves_without_a_source_row_key_is_refused() {
    assert_eq!(
        problems(&edited(
            "    type: delta\n",
            "    type: delta\n    track_moves: true\n"
        )),
        ["strategies[0].track_moves: track_moves remembers each source row's group by the row's key: mark the key column(s) of backend \"source_backend\" unique_column: true with a data_type (e.g. {name: order_id, data_type: integer, unique_column: true})"]
    );
}

#[test]
fn track_moves_in_a_row_level_sync_is_refused() {
    let row_level = r#"name: orders
backends:
  - name: source_backend
    type: sqlite
    datastore_name: src
    table: orders
    columns:
      - {name: id, data_type: bigint}
      - {name: updated_at, data_type: datetime}
  - name: destination_backend
    type: sqlite
    datastore_name: dst
    table: orders
    columns:
      - {name: id, data_type: bigint, unique_column: true}
      - {name: updated_at, data_type: datetime}
strategies:
  - name: delta
    type: delta
    track_moves: true
    primary_partitions: [{column: updated_at, step: 2, step_unit: hour, data_type: datetime}]
stages:
  - {name: fetch, type: data_fetch, source: {name: source_backend}, destination: {name: destination_backend}}
"#;
    assert_eq!(
        problems(row_level),
        ["strategies[0].track_moves: track_moves is for sync_type: aggregate; a row-level delta writes each changed row under its own key, so no row is left behind where it was"]
    );
}
