use super::*;
use crate::partition::Step;
use crate::yaml;

fn parts(s: &str) -> Option<Vec<String>> {
    column_ref_parts(s)
}

#[test]
fn column_references_plain_qualified_and_quoted() {
    let v = |p: &[&str]| Some(p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(parts("id"), v(&["id"]));
    assert_eq!(parts("o.id"), v(&["o", "id"]));
    assert_eq!(parts(r#""Order Id""#), v(&["Order Id"]));
    assert_eq!(parts(r#"o."Order Id""#), v(&["o", "Order Id"]));
    assert_eq!(parts(r#""o t"."a.b""#), v(&["o t", "a.b"]));
    assert_eq!(parts(r#""say ""hi""""#), v(&[r#"say "hi""#]));
    for bad in [
        "", "a b", "id + 1", "a.b.c", r#""""#, r#""open"#, r#""a"b"#, r#""a"."#, "1st", ".id",
        "id.",
    ] {
        assert_eq!(parts(bad), None, "{bad:?}");
    }
}

/// `strategies` (a YAML list) in a simple-form pipeline over SQLite
/// stand-ins, validated.
fn with_strategies(strategies: &str) -> Result<Pipeline> {
    with_header_and_strategies("", strategies)
}

/// `with_strategies`, with `header` (pipeline fields, a line each) first.
fn with_header_and_strategies(header: &str, strategies: &str) -> Result<Pipeline> {
    let file = Path::new("p.yaml");
    let datastores = Datastores::parse(
        Path::new("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {}}\n  dst: {type: sqlite, connection: {}}\n",
        &crate::connection::stand_in::types(),
        |_| None,
    )?;
    let text = format!(
        "name: p\n{header}hash_algo: hash_md5_hash\nsource_provider:\n  data_backend: {{type: sqlite, datastore_name: src, table: t}}\ndestination_provider:\n  data_backend: {{type: sqlite, datastore_name: dst, table: t}}\ncolumn_map:\n  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}\n  - {{source: at, dest: at, data_type: datetime}}\nstrategies:\n{strategies}"
    );
    Pipeline::from_file(file, yaml::parse(file, &text)?, &datastores)
}

#[test]
fn strategies_keep_what_planning_reads_from_their_typed_fields() {
    let p = with_strategies(
        "  - {name: d, type: delta, column: at, lookback: 2, lookback_unit: minute, null_cursor: skip, pipeline_config: {batch_size: 0}}\n  - {name: h, type: hash, delete_missing: false, use_pagination: false}\n  - {name: f, type: full, secondary_partitions: [{column: id, step: 5, data_type: int}]}\n",
    )
    .unwrap();
    let [d, h, f] = &p.strategies[..] else {
        panic!("{:?}", p.strategies)
    };
    let delta = d.delta.as_ref().unwrap();
    assert_eq!((delta.lookback, delta.include_nulls), (120_000_000, false));
    assert_eq!((d.batch_rows, d.unsupported.len()), (Some(1), 0));
    assert!(!h.delete_missing && h.batch_rows.is_none());
    assert_eq!(
        h.unsupported,
        [
            "hash_algo: hash_md5_hash",
            "strategies[1].use_pagination: false"
        ]
    );
    assert_eq!(f.unsupported, ["strategies[2].secondary_partitions"]);
}

/// A delta is cut as the other strategies are: by partition_column and
/// partition_step when it names no primary_partitions, finer by its
/// sub-partitions and secondary partitions; a step on its cursor cuts the
/// window.
#[test]
fn a_delta_is_cut_by_partition_column_sub_partitions_and_secondary_partitions() {
    let p = with_header_and_strategies(
        "partition_column: id\npartition_step: 1000\n",
        "  - {name: d, type: delta, column: at}
  - {name: s, type: delta, column: at, use_sub_partition: true, sub_partition_step: 100}
  - name: r
    type: delta
    primary_partitions: [{column: at, step: 2, step_unit: hour, data_type: datetime}]
    secondary_partitions:
      - {column: at, step: 30, step_unit: minute, data_type: datetime}
      - {column: id, step: 10000, data_type: integer}
",
    )
    .unwrap();
    let cuts = |s: &Strategy| {
        (
            s.delta.as_ref().unwrap().cursor.step,
            s.primary
                .iter()
                .map(|d| (d.name.clone(), d.step))
                .collect::<Vec<_>>(),
        )
    };
    let id = |n| vec![("id".to_string(), Step::Int(n))];
    assert_eq!(cuts(&p.strategies[0]), (Step::Single, id(1000)));
    assert_eq!(cuts(&p.strategies[1]), (Step::Single, id(100)));
    assert_eq!(
        cuts(&p.strategies[2]),
        (Step::Micros(1_800_000_000), id(10000))
    );
    assert!(p
        .strategies
        .iter()
        .all(|s| s.unsupported.is_empty() && s.secondary.is_empty()));
}

#[test]
fn delta_cuts_that_cannot_be_made_are_named() {
    let e = with_header_and_strategies(
        "partition_column: id\npartition_step: 1000\n",
        "  - {name: a, type: delta, column: at, use_sub_partition: true, sub_partition_step: 300}
  - {name: b, type: delta, column: at, use_sub_partition: true}
  - {name: c, type: delta, column: at, sub_partition_step: 10}
  - name: d
    type: delta
    primary_partitions: [{column: at, step: 2, step_unit: hour, data_type: datetime}]
    secondary_partitions: [{column: at, step: 7, step_unit: minute, data_type: datetime}]
",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.yaml: strategies[0].sub_partition_step: a step of 300 does not cut the ranges of \"id\" (step 1000) into whole pieces; a delta's finer partitions need a step that divides it
p.yaml: strategies[1].sub_partition_step: use_sub_partition: true needs sub_partition_step: how many partition_column values (seconds, for a date/time column) one sub-partition spans
p.yaml: strategies[2].sub_partition_step: sub_partition_step applies only with use_sub_partition: true
p.yaml: strategies[3].secondary_partitions[0].step: a step of 420s does not cut the ranges of \"at\" (step 2h) into whole pieces; a delta's finer partitions need a step that divides it"
    );
    let e = with_strategies(
        "  - {name: a, type: delta, column: at, use_sub_partition: true, sub_partition_step: 5}\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.yaml: strategies[0].use_sub_partition: use_sub_partition cuts a delta's partitions by partition_column in steps of sub_partition_step; set partition_column and partition_step"
    );
}

#[test]
fn an_unknown_strategy_type_is_named_with_the_files_other_problems() {
    let e =
        with_strategies("  - {name: w, type: weekly, lookback: 2}\n  - {name: w, type: full}\n")
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.yaml: strategies[0].type: unknown strategy type \"weekly\"; use full, delta or hash\np.yaml: strategies[1].name: strategy name \"w\" is used twice"
    );
}

#[test]
fn a_column_is_named_by_dest_source_or_its_own_name() {
    let c = MappedColumn {
        spec: ColumnSpec {
            name: "order_id".into(),
            data_type: ColumnType::Int64,
            unique: true,
            nullable: false,
        },
        dest: "order_id".into(),
        source: r#"o."Order Id""#.into(),
        source_ref: crate::ColumnRef::parse(r#"o."Order Id""#).unwrap(),
        data_type: "bigint".into(),
        unique: true,
        hash_column: true,
        stored_hash: StoredHash::No,
        data_type_from: None,
        expr: None,
    };
    assert_eq!(c.source_column(), "Order Id");
    for name in ["order_id", r#"o."Order Id""#, "Order Id", r#""Order Id""#] {
        assert!(c.is_named(name), "{name}");
    }
    assert!(!c.is_named("Order"));
    assert!(c.is_source_reported_as("Order Id"));
    assert!(c.is_source_reported_as("o.Order Id"));
    assert!(!c.is_source_reported_as("xOrder Id"));
}

#[test]
fn a_full_strategy_deletes_missing_rows_only_when_asked_and_by_mapped_ranges() {
    let p = with_strategies(
        "  - {name: f, type: full}\n  - {name: g, type: full, delete_missing: true, primary_partitions: [{column: id, step: 10, data_type: int}]}\n",
    )
    .unwrap();
    assert!(!p.strategies[0].delete_missing, "off by default");
    assert!(p.strategies[1].delete_missing);
    // Deletes are scoped by the destination's own columns: a range over a
    // column the destination lacks could not scope them.
    let e = with_strategies(
        "  - {name: g, type: full, delete_missing: true, primary_partitions: [{column: other, step: 10, data_type: int}]}\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.yaml: strategies[0].primary_partitions: a full strategy with delete_missing compares both sides and deletes range by range, so its partition column must be synced; map \"other\" in the columns"
    );
}
