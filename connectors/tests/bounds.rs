//! A source's bounds: min, max and whether any row has NULL, with the
//! source's filters applied to all three, on PostgreSQL and SQLite.
//!
//! Needs the local PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth,
//! database `test`); the test works in its own schema `bounds_<pid>`.

use connectors::postgres::PostgresSource;
use connectors::sqlite::SqliteSource;
use connectors::Source;
use planner::datastores::Datastore;
use planner::model::{MappedColumn, TableRef};
use planner::partition::{ColumnBounds, PartitionDimension, PartitionValue, Step};
use planner::types::{ColumnType, PartitionKind};
use planner::ColumnRef;
use planner::{SqlDialect, SqlExpr};

mod common;
use common::{connect, pg_datastore, Schema};

const ROWS_SQL: &str = "INSERT INTO t (id, score) VALUES (1, 10), (2, NULL), (3, 30), (4, 40)";

fn column(name: &str, unique: bool) -> MappedColumn {
    MappedColumn::same_name(name, ColumnType::Int64, unique, true)
}

fn dim(name: &str) -> PartitionDimension {
    PartitionDimension {
        name: name.into(),
        column: ColumnRef::bare(name),
        kind: PartitionKind::Integer,
        date_only: false,
        step: Step::Int(10),
    }
}

fn table(datastore: Datastore, schema: Option<&str>, filters: &[&str]) -> TableRef {
    let dialect = SqlDialect::of(&datastore);
    TableRef {
        datastore,
        schema: schema.map(str::to_string),
        table: "t".into(),
        alias: None,
        joins: Vec::new(),
        filters: filters
            .iter()
            .map(|f| SqlExpr::parse(f, dialect).unwrap())
            .collect(),
        grouped: None,
    }
}

fn bounds(min: i64, max: i64, has_nulls: bool) -> ColumnBounds {
    ColumnBounds {
        min_max: Some((PartitionValue::Int(min), PartitionValue::Int(max))),
        has_nulls,
    }
}

/// Unfiltered, the NULL score is seen; filtered to `id <> 2` it is not, and
/// the filter also moves the bounds.
async fn check(source_for: impl Fn(&[&str]) -> TableRef, open: OpenFn) {
    let cols = [column("id", true), column("score", false)];
    let dims = [dim("id"), dim("score")];
    let mut all = open(source_for(&[]), cols.to_vec()).await;
    assert_eq!(
        all.bounds(&dims).await.unwrap(),
        vec![bounds(1, 4, false), bounds(10, 40, true)]
    );
    let mut filtered = open(source_for(&["id <> 2", "id < 4"]), cols.to_vec()).await;
    assert_eq!(
        filtered.bounds(&dims).await.unwrap(),
        vec![bounds(1, 3, false), bounds(10, 30, false)]
    );
}

type OpenFn = fn(
    TableRef,
    Vec<MappedColumn>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Box<dyn Source>>>>;

#[tokio::test]
async fn sqlite_bounds_apply_filters_to_the_null_test() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, score INTEGER); {ROWS_SQL}"
    ))
    .unwrap();
    drop(conn);
    let ds = common::sqlite_datastore("lite", &path);
    check(
        |filters| table(ds.clone(), None, filters),
        |t, cols| {
            Box::pin(async move {
                Box::new(SqliteSource::open(&t, &cols).await.unwrap()) as Box<dyn Source>
            })
        },
    )
    .await;
}

/// A schema of its own holding table `t` with `ROWS_SQL`'s rows.
async fn pg_table_t(label: &str) -> (tokio_postgres::Client, Schema) {
    let client = connect().await;
    let schema = Schema::create(&client, label).await;
    client
        .batch_execute(&format!(
            "SET search_path = {}; CREATE TABLE t (id bigint PRIMARY KEY, score bigint); {ROWS_SQL}",
            schema.0
        ))
        .await
        .unwrap();
    (client, schema)
}

#[tokio::test]
async fn postgres_bounds_apply_filters_to_the_null_test() {
    let (_client, schema) = pg_table_t("bounds").await;
    let ds = pg_datastore(&schema.0);
    let s = schema.0.clone();
    check(
        move |filters| table(ds.clone(), Some(&s), filters),
        |t, cols| {
            Box::pin(async move {
                Box::new(PostgresSource::open(&t, &cols).await.unwrap()) as Box<dyn Source>
            })
        },
    )
    .await;
}

/// A PostgreSQL source whose session is cut before it checks its columns
/// (a server restart, an administrator's `pg_terminate_backend`) says so as
/// a retryable error, not as a schema problem that fails the task for good.
#[tokio::test]
async fn a_session_cut_before_the_check_is_retryable() {
    let (client, schema) = pg_table_t("cutcheck").await;
    let table = table(pg_datastore(&schema.0), Some(&schema.0), &[]);
    let mut source = PostgresSource::open(&table, &[column("id", true), column("score", false)])
        .await
        .unwrap();
    // Its session's last statement names the test's own schema: that
    // session, and no other test's, is cut.
    source.bounds(&[dim("id")]).await.unwrap();
    let cut: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = 'synchub' AND pid <> pg_backend_pid()
               AND position($1 in query) > 0",
            &[&schema.0],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cut, 1);
    let e = source.check().await.expect_err("its session is gone");
    assert!(e.retryable(), "{e}");
}
