//! Property test: whatever YAML a pipeline (or datastores) file holds,
//! parsing, validation and planning answer Ok or Err — never a panic, a
//! stack overflow or unbounded memory. Inputs are the shipped pipelines
//! mutated at random, random documents built from the config's own field
//! names, random filter and join strings, and anchors and aliases,
//! including alias bombs the limits must stop.
//!
//! The only test in its binary, so the peak RSS checked at the end is its
//! own (nextest runs each test in a process of its own anyway).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use planner::config::PipelineFile;
use planner::connection::stand_in::StandInConnection;
use planner::datastores::Datastore;
use planner::partition::{
    plan_partitions, range_count, too_many_partitions, ColumnBounds, PartitionValue,
};
use planner::{yaml, Datastores, Pipeline, Plan, SqlDialect};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The pipelines shipped under `pipelines/`, plus a few written here for
/// what they leave out (quoted names, joins, delta, hash with secondary
/// partitions, the stage form's hash_key).
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    let mut files = Vec::new();
    collect_yaml(&root, &mut files);
    files.sort();
    let mut seeds: Vec<String> = files
        .iter()
        .filter(|f| f.file_stem().is_some_and(|s| s != "datastores"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(seeds.len() >= 5, "shipped pipelines: {files:?}");
    seeds.extend(EXTRA_SEEDS.iter().map(|s| s.to_string()));
    seeds
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_yaml(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

const EXTRA_SEEDS: &[&str] = &[
    r#"name: quoted
partition_column: Order Id
partition_step: 400
source_provider:
  data_backend:
    type: postgres
    datastore_name: src
    table: "Order Lines"
    alias: o
    join:
      - {table: Customers, alias: c, on: 'o."Cust Id" = c."Cust Id"', type: left}
    filters: ["o.\"Region\" <> 'it''s (x)'", "o.id < 10 --"]
destination_provider:
  data_backend: {type: postgres, datastore_name: dst, table: "order lines"}
column_map:
  - {source: 'o."Order Id"', dest: order id, roles: [unique_column], data_type: bigint}
  - {source: '"Ship.Date"', dest: ship date, data_type: timestamp}
  - {source: c.name, dest: name, data_type: text}
strategies:
  - {name: full, type: full}
  - {name: delta, type: delta, column: '"Ship.Date"', lookback: 2, lookback_unit: hour, null_cursor: skip}
  - name: hash
    type: hash
    primary_partitions: [{column: order id, step: 1000, data_type: bigint}]
    secondary_partitions: [{column: order id, step: 10, data_type: bigint}]
"#,
    r#"name: staged_hash
backends:
  - name: source_backend
    type: sqlite
    datastore_name: src
    table: orders
    filters: ["amount > 0"]
    columns:
      - {name: id, data_type: bigint}
      - {name: amount, data_type: decimal, precision: 12, scale: 2}
      - {name: updated_at, data_type: datetime}
      - {name: checksum, data_type: bigint, hash_key: true, virtual: true}
  - name: destination_backend
    type: sqlite
    datastore_name: dst
    table: orders
    columns:
      - {name: id, data_type: bigint, unique_column: true}
      - {name: amount, data_type: decimal, precision: 12, scale: 2}
      - {name: updated_at, data_type: datetime}
      - {name: checksum, data_type: bigint, hash_key: true}
strategies:
  - name: delta
    type: delta
    primary_partitions: [{column: updated_at, step: 2, step_unit: hour, data_type: datetime}]
  - {name: hash, type: hash}
stages:
  - {name: fetch, type: data_fetch, source: {name: source_backend}, destination: {name: destination_backend}}
  - {name: batch, type: batcher, config: {target_batch_size: 1000}}
"#,
];

/// Every datastore name the seeds use, of either kind.
fn datastores(sqlite_src: bool) -> Datastores {
    let stand_in = |name: &str, kind: &'static str, schema: Option<&str>| {
        let dialect = if kind == "postgres" {
            SqlDialect::Postgres
        } else {
            SqlDialect::Sqlite
        };
        Datastore::new(
            name,
            std::sync::Arc::new(StandInConnection {
                kind,
                dialect,
                default_schema: schema.map(str::to_string),
            }),
        )
    };
    let pg = |name: &str, schema: &str| stand_in(name, "postgres", Some(schema));
    let lite = |name: &str| stand_in(name, "sqlite", None);
    let mut stores = BTreeMap::new();
    for (name, ds) in [
        ("source_db", pg("source_db", "public")),
        ("dest_db", pg("dest_db", "analytics")),
        ("demo_source", lite("demo_source")),
        ("demo_warehouse", lite("demo_warehouse")),
        (
            "src",
            if sqlite_src {
                lite("src")
            } else {
                pg("src", "s")
            },
        ),
        ("dst", pg("dst", "d")),
    ] {
        stores.insert(name.to_string(), ds);
    }
    Datastores {
        file: PathBuf::from("datastores.yaml"),
        defined: stores.keys().cloned().collect(),
        stores,
    }
}

/// Field names of the config, for random documents and inserted lines.
const KEYS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "sync_type",
    "partition_step",
    "partition_column",
    "max_concurrent_partitions",
    "hash_algo",
    "source_provider",
    "destination_provider",
    "column_map",
    "strategies",
    "enrichment",
    "backends",
    "stages",
    "data_backend",
    "type",
    "datastore_name",
    "table",
    "schema",
    "alias",
    "join",
    "filters",
    "supports_update",
    "on",
    "source",
    "dest",
    "roles",
    "data_type",
    "precision",
    "scale",
    "length",
    "hash_column",
    "transform",
    "column",
    "cron",
    "page_size",
    "use_sub_partition",
    "sub_partition_step",
    "lookback",
    "lookback_unit",
    "delete_missing",
    "null_cursor",
    "track_moves",
    "primary_partitions",
    "secondary_partitions",
    "delta_partitions",
    "step",
    "step_unit",
    "bounded",
    "columns",
    "unique_column",
    "hash_key",
    "virtual",
    "expr",
    "config",
    "target_batch_size",
    "destination",
    "group_by",
    "applicable_on",
    "dedup_keys",
    "data_fetch",
    "pipeline_config",
];

/// Values that have meant something to some field, and some that never do.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "400",
    "100000",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "4294967295",
    "4294967296",
    "1e400",
    ".nan",
    "~",
    "null",
    "true",
    "no",
    "''",
    "\"\"",
    "[]",
    "{}",
    "id",
    "o.id",
    "'\"Order Id\"'",
    "'o.\"Order Id\"'",
    "a b",
    "\"1st\"",
    "postgres",
    "sqlite",
    "mysql",
    "src",
    "dst",
    "source_db",
    "dest_db",
    "demo_source",
    "demo_warehouse",
    "full",
    "delta",
    "hash",
    "range",
    "value",
    "left",
    "cross",
    "bigint",
    "int",
    "decimal",
    "numeric",
    "text",
    "string",
    "date",
    "datetime",
    "timestamp",
    "timestamptz",
    "bool",
    "uuid",
    "float",
    "second",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "years",
    "skip",
    "include",
    "md5_sum_hash",
    "row-level",
    "aggregate",
    "batcher",
    "data_fetch",
    "populate",
    "partition",
    "dedup",
    "[unique_column]",
    "[unique_column, partition_column]",
    "[partition_column]",
    "'*/5 * * * *'",
    "\"\\u0000\"",
    "!!binary aGVsbG8=",
    "!custom x",
    "&a 5",
    "*a",
    "*nope",
    "&b [1, *b]",
];

/// Pieces of SQL, hostile and not, for filters and join conditions.
const SQL_PIECES: &[&str] = &[
    "id",
    "o.id",
    "\"Order Id\"",
    "o.\"Order Id\"",
    "c.id",
    "status",
    "=",
    "<",
    ">=",
    "<>",
    ")",
    "(",
    "((",
    "))",
    "'",
    "''",
    "'a)b'",
    "'it''s'",
    ";",
    "--",
    "/*",
    "*/",
    "OR",
    "AND",
    "NOT",
    "true",
    "1",
    "10",
    "$1",
    "?",
    "?1",
    ":name",
    "@x",
    "IN",
    "SELECT",
    "FROM",
    "x",
    "DROP TABLE x",
    ",",
    "::int",
    "\"",
    "E'\\\\'",
    "$$",
    "$$x$$",
    "||",
    "+",
    "-",
    "*",
    "/",
    "CASE WHEN",
    "THEN",
    "ELSE",
    "END",
    "NULL",
    "IS",
    "LIKE",
    "'%'",
    "BETWEEN",
    "EXISTS",
    "now()",
    "interval '1 day'",
    "CAST(",
    "AS",
    "TEXT",
    "[",
    "]",
    "`",
    "\\",
    "\n",
    "é",
    "🦀",
];

fn sql_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(
            (prop::sample::select(SQL_PIECES), prop::bool::ANY),
            0..14
        )
        .prop_map(|pieces| {
            pieces
                .into_iter()
                .map(|(p, space)| if space { format!("{p} ") } else { p.to_string() })
                .collect::<String>()
        }),
        // Long chains: past the token and depth limits, not past 64 KiB.
        1 => (0usize..1_500, prop::sample::select(&["+", "AND", "OR", "||"][..]))
            .prop_map(|(n, op)| format!("{}1", format!("1 {op} ").repeat(n))),
        1 => (0usize..80).prop_map(|n| format!("{}1{}", "(".repeat(n), ")".repeat(n))),
        1 => "[ -~]{0,40}",
    ]
}

/// `s` as a YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(VALUES).prop_map(str::to_string),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        2 => sql_text().prop_map(|s| quoted(&s)),
        1 => "[a-zA-Z0-9_ .'\"()*&!%,:#\\[\\]{}|>-]{0,16}",
    ]
}

/// One edit of a seed's text; indices are taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// The value after the line's `:` (or `- `), replaced.
    ReplaceValue(usize, String),
    /// `key: value` inserted at a line, at that line's indentation.
    InsertField(usize, &'static str, String),
    /// A filter (or join condition) list inserted under a line.
    InsertFilters(usize, Vec<String>),
    /// The value of one line anchored, and put as an alias on another.
    AnchorAlias(usize, usize),
    Truncate(usize),
    InsertText(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        2 => at.prop_map(Edit::DeleteLine),
        1 => at.prop_map(Edit::DuplicateLine),
        1 => (at, any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        6 => (at, scalar()).prop_map(|(i, v)| Edit::ReplaceValue(i, v)),
        3 => (at, prop::sample::select(KEYS), scalar()).prop_map(|(i, k, v)| Edit::InsertField(i, k, v)),
        4 => (at, prop::collection::vec(sql_text(), 1..4)).prop_map(|(i, f)| Edit::InsertFilters(i, f)),
        2 => (at, any::<usize>()).prop_map(|(a, b)| Edit::AnchorAlias(a, b)),
        1 => at.prop_map(Edit::Truncate),
        1 => (at, "[ -~\n]{1,6}").prop_map(|(i, s)| Edit::InsertText(i, s)),
    ]
}

fn indent_of(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// Where a line's value starts: after `key: `, else after `- `.
fn value_start(line: &str) -> Option<usize> {
    line.find(": ")
        .map(|i| i + 2)
        .or_else(|| line.find("- ").map(|i| i + 2))
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match e {
            Edit::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Edit::DuplicateLine(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::SwapLines(a, b) => lines.swap(a % n, b % n),
            Edit::ReplaceValue(i, v) => {
                let l = &mut lines[i % n];
                if let Some(at) = value_start(l) {
                    l.truncate(at);
                    l.push_str(v);
                }
            }
            Edit::InsertField(i, k, v) => {
                let indent = indent_of(&lines[i % n]).replace('-', " ");
                lines.insert(i % n, format!("{indent}{k}: {v}"));
            }
            Edit::InsertFilters(i, filters) => {
                let indent = indent_of(&lines[i % n]).replace('-', " ");
                let list = filters.iter().map(|f| quoted(f)).collect::<Vec<_>>();
                lines.insert(i % n, format!("{indent}filters: [{}]", list.join(", ")));
                if let Some(on) = filters.first() {
                    lines.insert(
                        i % n,
                        format!("{indent}join: [{{table: t, alias: j, on: {}}}]", quoted(on)),
                    );
                }
            }
            Edit::AnchorAlias(a, b) => {
                let (a, b) = (a % n, b % n);
                if let (Some(va), Some(vb)) = (value_start(&lines[a]), value_start(&lines[b])) {
                    lines[a].insert_str(va, "&x ");
                    lines[b].truncate(vb);
                    lines[b].push_str("*x");
                }
            }
            Edit::Truncate(i) => {
                lines.truncate(i % n + 1);
            }
            Edit::InsertText(i, s) => {
                let l = &mut lines[i % n];
                let mut at = i % (l.len() + 1);
                while !l.is_char_boundary(at) {
                    at -= 1;
                }
                l.insert_str(at, s);
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// A random document: top-level fields of the config with random values,
/// nested maps and lists, anchors and aliases.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(&'static str, Node)>),
    Anchored(u8, Box<Node>),
    Alias(u8),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        8 => scalar().prop_map(Node::Scalar),
        1 => (0u8..4).prop_map(Node::Alias),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            2 => prop::collection::vec(inner.clone(), 0..6).prop_map(Node::Seq),
            3 => prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..6)
                .prop_map(Node::Map),
            1 => (0u8..4, inner).prop_map(|(a, n)| Node::Anchored(a, Box::new(n))),
        ]
    })
}

/// Flow style: `{k: v, k: [a, b]}`.
fn emit(node: &Node, out: &mut String) {
    match node {
        Node::Scalar(s) => out.push_str(s),
        Node::Alias(a) => out.push_str(&format!("*a{a}")),
        Node::Anchored(a, n) => {
            out.push_str(&format!("&a{a} "));
            emit(n, out);
        }
        Node::Seq(items) => {
            out.push('[');
            for (i, n) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                emit(n, out);
            }
            out.push(']');
        }
        Node::Map(fields) => {
            out.push('{');
            for (i, (k, n)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                emit(n, out);
            }
            out.push('}');
        }
    }
}

fn random_document() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(KEYS), node()), 0..10).prop_map(|fields| {
        let mut out = String::new();
        for (k, n) in fields {
            out.push_str(k);
            out.push_str(": ");
            emit(&n, &mut out);
            out.push('\n');
        }
        out
    })
}

/// Aliases the limits must stop: `levels` nested levels of `width` aliases
/// each (width^levels values), or `count` aliases of one node.
fn alias_bomb(seed: &str, levels: u32, width: usize, count: usize) -> String {
    let mut text = String::from("bomb0: &l0 [x, y]\n");
    for i in 1..=levels {
        text.push_str(&format!(
            "bomb{i}: &l{i} [{}]\n",
            vec![format!("*l{}", i - 1); width].join(", ")
        ));
    }
    text.push_str(&format!(
        "filters: [{}]\n",
        vec![format!("*l{levels}"); count].join(", ")
    ));
    format!("{text}{seed}")
}

#[derive(Debug, Clone)]
struct Case {
    pipeline: String,
    /// A datastores file to load as well (written to a temporary file).
    datastores: Option<String>,
    sqlite_src: bool,
    /// Per partition dimension: min, max, whether NULLs exist.
    bounds: Vec<(i64, i64, bool)>,
}

fn bound() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -1_000i64..1_000,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => any::<i64>(),
        // Around 2024 in microseconds.
        2 => 1_700_000_000_000_000i64..1_800_000_000_000_000,
    ]
}

fn case(seeds: Vec<String>, datastores_seed: String) -> impl Strategy<Value = Case> {
    let seed = prop::sample::select(seeds);
    let pipeline = prop_oneof![
        6 => (seed.clone(), prop::collection::vec(edit(), 0..6))
            .prop_map(|(s, edits)| apply(&s, &edits)),
        2 => random_document(),
        1 => (seed, 1u32..12, 1usize..12, 0usize..12_000)
            .prop_map(|(s, levels, width, count)| alias_bomb(&s, levels, width, count)),
    ];
    let datastores = prop::option::weighted(
        0.15,
        prop::collection::vec(edit(), 0..4).prop_map(move |edits| apply(&datastores_seed, &edits)),
    );
    (
        pipeline,
        datastores,
        any::<bool>(),
        prop::collection::vec((bound(), bound(), any::<bool>()), 0..3),
    )
        .prop_map(|(pipeline, datastores, sqlite_src, bounds)| Case {
            pipeline,
            datastores,
            sqlite_src,
            bounds,
        })
}

/// How far the cases got: parsed, validated, planned, partitioned.
static REACHED: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

fn reached(stage: usize) {
    REACHED[stage].fetch_add(1, Ordering::Relaxed);
}

/// Everything a `config validate` and a `plan` do without a database.
fn exercise(case: &Case, dir: &Path) {
    if let Some(text) = &case.datastores {
        let file = dir.join("datastores.yaml");
        std::fs::write(&file, text).unwrap();
        if let Ok(ds) = Datastores::load(&file, &planner::connection::stand_in::types()) {
            assert!(ds.stores.len() <= text.len());
        }
    }
    let file = Path::new("fuzz.yaml");
    let Ok(raw) = yaml::parse::<PipelineFile>(file, &case.pipeline) else {
        return;
    };
    reached(0);
    let Ok(pipeline) = Pipeline::from_file(file, raw, &datastores(case.sqlite_src)) else {
        return;
    };
    reached(1);
    // What `config show` and the connectors print.
    serde_json::to_string(&pipeline).unwrap();
    for f in pipeline
        .source
        .filters
        .iter()
        .chain(pipeline.source.joins.iter().map(|j| &j.on))
    {
        let printed = f.to_string();
        assert!(!printed.contains(';'), "{printed}");
    }
    let names =
        std::iter::once(None).chain(pipeline.strategies.iter().map(|s| Some(s.name.as_str())));
    for name in names.chain([Some("full"), Some("nope")]) {
        let Ok(plan) = Plan::compile(&pipeline, name) else {
            continue;
        };
        plan.describe(None);
        reached(2);
        let bounds: Vec<ColumnBounds> = plan
            .dimensions
            .iter()
            .zip(case.bounds.iter().cycle())
            .map(|(d, &(a, b, has_nulls))| {
                let (lo, hi) = (a.min(b), a.max(b));
                let v = |x| match d.kind {
                    planner::types::PartitionKind::Integer => PartitionValue::Int(x),
                    planner::types::PartitionKind::Datetime => PartitionValue::Micros(x),
                };
                ColumnBounds {
                    min_max: (!case.bounds.is_empty()).then(|| (v(lo), v(hi))),
                    has_nulls,
                }
            })
            .collect();
        if too_many_partitions(&plan.dimensions, &bounds).is_some() {
            continue;
        }
        // Plan only what is cheap to hold; the count is what bounds a run.
        let count = plan
            .dimensions
            .iter()
            .zip(&bounds)
            .map(|(d, b)| {
                b.min_max
                    .map_or(0, |(lo, hi)| range_count(d.step, lo, hi))
                    .saturating_add(u128::from(b.has_nulls))
            })
            .fold(1u128, u128::saturating_mul);
        if count <= 20_000 {
            let parts = plan_partitions(&plan.dimensions, &bounds);
            reached(3);
            assert!(parts.len() as u128 <= count, "{} > {count}", parts.len());
        }
    }
}

/// Peak resident memory of this process, from /proc (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn config_parsing_and_planning_never_panic() {
    let datastores_seed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/examples/datastores.yaml"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new(Config {
        // PROPTEST_CASES=20000 for a longer hunt.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(512),
        // A failure prints its smallest input; nothing is written into the tree.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(seeds(), datastores_seed), |case| {
        exercise(&case, dir.path());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let [parsed, valid, planned, partitioned] =
        REACHED.each_ref().map(|n| n.load(Ordering::Relaxed));
    eprintln!("{parsed} parsed, {valid} valid, {planned} plans, {partitioned} partitioned");
    // Enough cases go past each step for the test to mean something.
    assert!(
        valid >= 20 && planned >= 20 && partitioned >= 10,
        "{parsed} parsed, {valid} valid, {planned} plans, {partitioned} partitioned"
    );
    if let Some(kib) = peak_rss_kib() {
        assert!(kib < 256 * 1024, "peak RSS {kib} KiB");
        eprintln!("peak RSS {} MiB", kib / 1024);
    }
}
