use super::*;
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
    let file = Path::new("p.yaml");
    let datastores = Datastores::parse(
        Path::new("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {}}\n  dst: {type: sqlite, connection: {}}\n",
        &crate::connection::stand_in::types(),
        |_| None,
    )?;
    let text = format!(
        "name: p\nhash_algo: hash_md5_hash\nsource_provider:\n  data_backend: {{type: sqlite, datastore_name: src, table: t}}\ndestination_provider:\n  data_backend: {{type: sqlite, datastore_name: dst, table: t}}\ncolumn_map:\n  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}\n  - {{source: at, dest: at, data_type: datetime}}\nstrategies:\n{strategies}"
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
