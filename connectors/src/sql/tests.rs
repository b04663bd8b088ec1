//! Rendering per dialect: PostgreSQL, SQLite, and a test-only MySQL-like
//! dialect (backtick quotes, `?` placeholders) that proves nothing of ANSI
//! quoting is baked into the model.

use std::path::Path;

use planner::partition::{plan_partitions, ColumnBounds, Partition, PartitionValue};
use planner::types::ColumnType;
use planner::{ColumnRef, Datastores, Pipeline, SqlDialect, SqlExpr};

use super::*;

/// Backtick quotes and positional `?` placeholders, as MySQL without
/// `ANSI_QUOTES` writes them.
struct BacktickDialect;

impl Dialect for BacktickDialect {
    fn identifier_quote(&self) -> char {
        '`'
    }

    fn placeholder(&self, _n: usize) -> String {
        "?".into()
    }

    fn bigint_placeholder(&self, n: usize) -> String {
        format!("CAST({} AS SIGNED)", self.placeholder(n))
    }

    fn bigint(&self, e: &str) -> String {
        format!("CAST({e} AS SIGNED)")
    }

    fn listed_keys(&self, _keys: &[(KeyKind, ColumnType)], names: &[String], _n: usize) -> String {
        format!("SELECT {} FROM JSON_TABLE(?)", names.join(", "))
    }

    fn keys_in(&self, keys: &[(String, KeyKind)], _n: usize) -> String {
        let columns: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        format!("JSON_CONTAINS(?, JSON_ARRAY({}))", columns.join(", "))
    }

    fn epoch_seconds(&self, e: &str) -> String {
        format!("CAST(FLOOR(UNIX_TIMESTAMP({e})) AS SIGNED)")
    }

    fn month_index(&self, e: &str) -> String {
        format!("(YEAR({e}) * 12 + MONTH({e}) - 23641)")
    }

    fn type_ddl(&self, ty: &ColumnType) -> String {
        match ty {
            ColumnType::Int64 => "BIGINT".into(),
            _ => "LONGTEXT".into(),
        }
    }

    fn computed_hash(&self, ty: &ColumnType) -> String {
        format!("CAST(NULL AS {})", self.type_ddl(ty))
    }
}

/// A simple-form pipeline over PostgreSQL stand-ins: a join, a filter with
/// a quoted name, qualified columns (one with a space and quotes in its
/// name) and integer partitions on `o.id`.
fn pipeline() -> Pipeline {
    let datastores = Datastores::parse(
        Path::new("datastores.yaml"),
        "datastores:\n  src: {type: postgres, connection: {}}\n  dst: {type: postgres, connection: {}}\n",
        &planner::connection::stand_in::types(),
        |_| None,
    )
    .unwrap();
    let text = r#"
name: p
partition_column: o.id
partition_step: 100
source_provider:
  data_backend:
    type: postgres
    datastore_name: src
    schema: shop
    table: orders
    alias: o
    join:
      - {table: users, alias: u, on: 'o.user_id = u."User Id"', type: left}
    filters:
      - "o.status = 'it''s' AND \"u\".\"Country\" IS NOT NULL"
destination_provider:
  data_backend: {type: postgres, datastore_name: dst, table: orders}
column_map:
  - {source: o.id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: 'u."Na`me ""x"""', dest: name, data_type: text}
strategies:
  - {name: full, type: full}
"#;
    let file = Path::new("p.yaml");
    Pipeline::from_file(file, planner::yaml::parse(file, text).unwrap(), &datastores).unwrap()
}

/// The partition `[100, 200)` of `o.id`.
fn partition(p: &Pipeline) -> Partition {
    let bounds = ColumnBounds {
        min_max: Some((PartitionValue::Int(150), PartitionValue::Int(150))),
        has_nulls: false,
    };
    plan_partitions(&p.default_partitioning, &[bounds])
        .pop()
        .unwrap()
}

#[test]
fn a_partition_select_renders_in_each_dialect() {
    let p = pipeline();
    let part = partition(&p);
    let select = |d: &dyn Dialect| select_partition_sql(d, &p.source, &p.columns, &part);
    let (pg, pg_params) = select(&PostgresDialect);
    assert_eq!(
        pg,
        r#"SELECT "o"."id", "u"."Na`me ""x""" FROM "shop"."orders" AS "o" LEFT JOIN "shop"."users" AS "u" ON o.user_id = u."User Id" WHERE (o.status = 'it''s' AND "u"."Country" IS NOT NULL) AND "o"."id" >= $1 AND "o"."id" < $2"#
    );
    assert_eq!(
        pg_params,
        [PartitionValue::Int(100), PartitionValue::Int(200)]
    );
    let (lite, _) = select(&SqliteDialect);
    assert_eq!(lite, pg.replace("$1", "?1").replace("$2", "?2"));
    let (mysql, params) = select(&BacktickDialect);
    assert_eq!(
        mysql,
        r#"SELECT `o`.`id`, `u`.`Na``me "x"` FROM `shop`.`orders` AS `o` LEFT JOIN `shop`.`users` AS `u` ON o.user_id = u.`User Id` WHERE (o.status = 'it''s' AND `u`.`Country` IS NOT NULL) AND `o`.`id` >= ? AND `o`.`id` < ?"#
    );
    assert_eq!(params, pg_params);
}

#[test]
fn bounds_probe_and_key_selects_render_in_each_dialect() {
    let p = pipeline();
    let dims = &p.default_partitioning;
    let (bounds, _) = bounds_sql(&BacktickDialect, &p.source, None, dims);
    assert!(
        bounds.starts_with("SELECT (SELECT min(`o`.`id`) FROM `shop`.`orders` AS `o` LEFT JOIN"),
        "{bounds}"
    );
    assert!(
        bounds.ends_with("IS NOT NULL) AND `o`.`id` IS NULL)"),
        "{bounds}"
    );
    assert_eq!(
        probe_sql(&BacktickDialect, &p.source, &p.columns[..1]),
        "SELECT `o`.`id` FROM `shop`.`orders` AS `o` LEFT JOIN `shop`.`users` AS `u` ON o.user_id = u.`User Id` LIMIT 0"
    );
    let keys = arrow::record_batch::RecordBatch::try_from_iter([(
        "id",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![101, 150]))
            as arrow::array::ArrayRef,
    )])
    .unwrap();
    let part = partition(&p);
    let by_key = |d: &dyn Dialect| {
        select_by_keys(d, &p.source, &p.columns, &part, &keys)
            .unwrap()
            .unwrap()
    };
    let pg = by_key(&PostgresDialect);
    assert!(
        pg.sql
            .ends_with(r#""o"."id" < $2 AND "o"."id" = ANY($3::bigint[])"#),
        "{}",
        pg.sql
    );
    assert_eq!(pg.keys, vec![KeyValues::Ints(vec![101, 150])]);
    assert!(by_key(&SqliteDialect)
        .sql
        .ends_with(r#""o"."id" < ?2 AND "o"."id" IN (SELECT value FROM json_each(?3))"#));
    assert!(by_key(&BacktickDialect)
        .sql
        .ends_with("`o`.`id` < ? AND JSON_CONTAINS(?, JSON_ARRAY(`o`.`id`))"));
}

/// A composite key is selected by its tuples: integer and text columns
/// each bound as a list; a key of another type, or a NULL in a key, is not
/// bound (the source reads the partition and the caller filters).
#[test]
fn composite_key_selects_render_in_each_dialect() {
    let mut p = pipeline();
    p.columns[1].unique = true;
    p.columns[1].spec.unique = true;
    let part = partition(&p);
    let keys = |names: Vec<Option<&str>>| {
        arrow::record_batch::RecordBatch::try_from_iter([
            (
                "id",
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![101, 150]))
                    as arrow::array::ArrayRef,
            ),
            (
                "name",
                std::sync::Arc::new(arrow::array::StringArray::from(names))
                    as arrow::array::ArrayRef,
            ),
        ])
        .unwrap()
    };
    let both = keys(vec![Some("a"), Some("b'c")]);
    let pg = select_by_keys(&PostgresDialect, &p.source, &p.columns, &part, &both)
        .unwrap()
        .unwrap();
    assert!(
        pg.sql.ends_with(
            r#""o"."id" < $2 AND ("o"."id", "u"."Na`me ""x""") IN (SELECT * FROM unnest($3::bigint[], $4::text[]))"#
        ),
        "{}",
        pg.sql
    );
    assert_eq!(
        pg.keys,
        vec![
            KeyValues::Ints(vec![101, 150]),
            KeyValues::Texts(vec!["a".into(), "b'c".into()])
        ]
    );
    let lite = select_by_keys(&SqliteDialect, &p.source, &p.columns, &part, &both)
        .unwrap()
        .unwrap();
    assert!(
        lite.sql.ends_with(
            r#""o"."id" < ?2 AND ("o"."id", "u"."Na`me ""x""") IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?3))"#
        ),
        "{}",
        lite.sql
    );
    let with_null = keys(vec![Some("a"), None]);
    assert_eq!(
        select_by_keys(&PostgresDialect, &p.source, &p.columns, &part, &with_null).unwrap(),
        None
    );
    p.columns[1].spec.data_type = ColumnType::Uuid;
    assert_eq!(
        select_by_keys(&PostgresDialect, &p.source, &p.columns, &part, &both).unwrap(),
        None,
        "a uuid key is not bound"
    );
}

#[test]
fn buckets_and_destination_ranges_render_in_each_dialect() {
    let p = pipeline();
    let part = partition(&p);
    let o_id = ColumnRef::parse("o.id").unwrap();
    assert_eq!(
        bucket_expr(&PostgresDialect, &o_id, 3),
        r#"(((("o"."id")::bigint) - $3::bigint) / $4::bigint)"#
    );
    assert_eq!(
        bucket_expr(&SqliteDialect, &o_id, 3),
        r#"(((CAST("o"."id" AS INTEGER)) - ?3) / ?4)"#
    );
    assert_eq!(
        bucket_expr(&BacktickDialect, &o_id, 3),
        "(((CAST(`o`.`id` AS SIGNED)) - CAST(? AS SIGNED)) / CAST(? AS SIGNED))"
    );
    let mut bound = Vec::new();
    assert_eq!(
        destination_range_conditions(&SqliteDialect, &part, "\"orders\"", 2, &mut bound),
        [r#""orders"."id" >= ?3 AND "orders"."id" < ?4"#]
    );
    assert_eq!(bound.len(), 2);
    let mut bound = Vec::new();
    assert_eq!(
        destination_range_conditions(&BacktickDialect, &part, "t", 0, &mut bound),
        ["t.`id` >= ? AND t.`id` < ?"]
    );
}

#[test]
fn identifiers_with_quotes_inside_are_escaped_in_each_dialect() {
    let name = r#"a "b" `c`"#;
    assert_eq!(PostgresDialect.quote_ident(name), r#""a ""b"" `c`""#);
    assert_eq!(SqliteDialect.quote_ident(name), r#""a ""b"" `c`""#);
    assert_eq!(BacktickDialect.quote_ident(name), r#"`a "b" ``c```"#);
    let column = ColumnRef {
        table: Some("t\"`".into()),
        column: name.into(),
    };
    assert_eq!(BacktickDialect.column(&column), r#"`t"```.`a "b" ``c```"#);
    assert_eq!(
        PostgresDialect.table_as(Some("s\""), "t", Some("a")),
        r#""s"""."t" AS "a""#
    );
}

#[test]
fn conditions_take_the_dialects_quotes_wherever_a_name_is_quoted() {
    let requote = |text: &str, parsed: SqlDialect| {
        BacktickDialect.expr(&SqlExpr::parse(text, parsed).unwrap())
    };
    for (text, rendered) in [
        (r#""Order Id" > 10"#, "`Order Id` > 10"),
        (r#""say ""hi"" `x`" = 'a"b'"#, r#"`say "hi" ``x``` = 'a"b'"#),
        (
            r#"o."Ship Date" IS NULL AND o.status = 'x'"#,
            "o.`Ship Date` IS NULL AND o.status = 'x'",
        ),
        (r#""My Fn"("a b") = 1"#, "`My Fn`(`a b`) = 1"),
        (
            r#"CAST("x" AS "My Type") = 1"#,
            "CAST(`x` AS `My Type`) = 1",
        ),
        (
            r#""k" IN (SELECT "t"."k" AS "K" FROM "s"."T" AS "t" WHERE "t"."v" > 0)"#,
            "`k` IN (SELECT `t`.`k` AS `K` FROM `s`.`T` AS `t` WHERE `t`.`v` > 0)",
        ),
        (
            r#"EXISTS (WITH "c" AS (SELECT 1) SELECT "c".* FROM "c")"#,
            "EXISTS (WITH `c` AS (SELECT 1) SELECT `c`.* FROM `c`)",
        ),
        ("lower(name) = 'x'", "lower(name) = 'x'"),
    ] {
        assert_eq!(requote(text, SqlDialect::Postgres), rendered, "{text}");
    }
    // SQLite's own quotes (backticks, brackets) come out in the dialect's.
    let lite = |text: &str| SqliteDialect.expr(&SqlExpr::parse(text, SqlDialect::Sqlite).unwrap());
    assert_eq!(lite("`a b` = [c d]"), r#""a b" = "c d""#);
    // The text PostgreSQL and SQLite get is the parse's own print.
    let text = r#"o."Ship Date" IS NULL AND o.status IN ('a', 'it''s')"#;
    let e = SqlExpr::parse(text, SqlDialect::Postgres).unwrap();
    assert_eq!(PostgresDialect.expr(&e), e.to_string());
    assert_eq!(SqliteDialect.expr(&e), e.to_string());
}

#[test]
fn key_lists_and_key_matches_render_in_each_dialect() {
    let spec = |name: &str, unique: bool| planner::types::ColumnSpec {
        name: name.into(),
        data_type: ColumnType::Int64,
        unique,
        nullable: !unique,
    };
    let specs = [spec("id", true), spec("v", false), spec("Day `x`", true)];
    assert_eq!(PostgresDialect.key_list(&specs), r#""id", "Day `x`""#);
    assert_eq!(BacktickDialect.key_list(&specs), "`id`, `Day ``x```");
    assert_eq!(SqliteDialect.column_list(&specs), r#""id", "v", "Day `x`""#);
    assert_eq!(
        PostgresDialect.keys_equal("t", "d", &specs),
        r#"t."id" = d."id" AND t."Day `x`" = d."Day `x`""#
    );
    assert_eq!(
        BacktickDialect.keys_equal("t", "s", &specs),
        "t.`id` = s.`id` AND t.`Day ``x``` = s.`Day ``x```"
    );
}

/// Listed group keys (`track_moves`) as a derived table: bound as the
/// dialect binds key lists, cast to the key columns' types.
#[test]
fn listed_group_keys_render_in_each_dialect() {
    let keys = [
        (KeyKind::Int, ColumnType::Int32),
        (KeyKind::Text, ColumnType::Date),
    ];
    let names = ["k0".to_string(), "k1".to_string()];
    assert_eq!(
        PostgresDialect.listed_keys(&keys, &names, 5),
        r#"SELECT CAST(k0 AS integer) AS "k0", CAST(k1 AS date) AS "k1" FROM unnest($5::bigint[], $6::text[]) AS synchub_listed(k0, k1)"#
    );
    assert_eq!(
        SqliteDialect.listed_keys(&keys, &names, 5),
        r#"SELECT json_extract(value, '$[0]') AS "k0", json_extract(value, '$[1]') AS "k1" FROM json_each(?5)"#
    );
    assert_eq!(
        SqliteDialect.listed_keys(&keys[..1], &names[..1], 2),
        r#"SELECT value AS "k0" FROM json_each(?2)"#
    );
    assert_eq!(
        MySqlDialect.listed_keys(&keys, &names, 5),
        "SELECT j.k0 AS `k0`, j.k1 AS `k1` FROM JSON_TABLE(:p5, '$[*]' COLUMNS (k0 INT PATH '$[0]', k1 DATE PATH '$[1]')) AS j"
    );
}

#[test]
fn type_ddl_and_computed_hashes_are_the_dialects() {
    let decimal = ColumnType::Decimal {
        precision: 12,
        scale: 2,
    };
    assert_eq!(PostgresDialect.type_ddl(&decimal), "numeric(12,2)");
    assert_eq!(SqliteDialect.type_ddl(&decimal), "TEXT");
    assert_eq!(
        PostgresDialect.type_ddl(&ColumnType::String { max_len: Some(7) }),
        "varchar(7)"
    );
    assert_eq!(
        PostgresDialect.type_ddl(&ColumnType::String { max_len: None }),
        "text"
    );
    assert_eq!(
        PostgresDialect.type_ddl(&ColumnType::Float64),
        "double precision"
    );
    assert_eq!(PostgresDialect.type_ddl(&ColumnType::Json), "jsonb");
    assert_eq!(SqliteDialect.type_ddl(&ColumnType::Bool), "INTEGER");
    assert_eq!(
        PostgresDialect.computed_hash(&ColumnType::Int64),
        "CAST(NULL AS bigint)"
    );
    assert_eq!(
        SqliteDialect.computed_hash(&ColumnType::Text),
        "CAST(NULL AS text)"
    );
}
