use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::util::display::array_value_to_string;
use planner::model::{Aggregate, AggregateColumn, AggregateEngine};
use planner::{SqlDialect, SqlExpr};

use super::*;

fn column(dest: &str, expr: &str) -> AggregateColumn {
    AggregateColumn {
        dest: dest.to_string(),
        expr: SqlExpr::parse(expr, SqlDialect::Postgres).unwrap(),
        reads: Vec::new(),
    }
}

/// The spec's daily orders per user.
fn spec_aggregate() -> Aggregate {
    Aggregate {
        keys: vec![
            column("user_id", "user_id"),
            column("date", "CAST(order_date AS DATE)"),
        ],
        values: vec![
            column("num_orders", "count(1)"),
            column("amount", "sum(amount)"),
            column("last_updated_at", "max(updated_at)"),
        ],
        engine: AggregateEngine::Datafusion,
        delta_keys: Vec::new(),
        row_columns: None,
        key_ranges: Vec::new(),
        group_sum: None,
        row_key: None,
    }
}

fn micros(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("amount", DataType::Decimal128(10, 2), true),
        Field::new(
            "order_date",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
    ]))
}

/// Orders as (order_id, user_id, amount in cents, order_date, updated_at).
fn orders(rows: &[(i64, i64, i128, &str, &str)]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(
            Decimal128Array::from_iter_values(rows.iter().map(|r| r.2))
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|r| micros(r.3)),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|r| micros(r.4)),
        )),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

/// Each result row as its values, comma-separated, sorted.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let values: Vec<String> = b
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, r).unwrap())
                .collect();
            out.push(values.join(", "));
        }
    }
    out.sort();
    out
}

async fn run(batches: Vec<RecordBatch>) -> Vec<String> {
    rows(
        &aggregate_batches(&spec_aggregate(), schema(), batches)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn the_specs_worked_example_before_and_after_the_update() {
    let before = [
        (1, 101, 5000, "2024-01-15 09:30", "2024-01-15 10:00"),
        (2, 101, 3000, "2024-01-15 10:30", "2024-01-15 11:00"),
        (3, 102, 7500, "2024-01-15 11:30", "2024-01-15 12:00"),
    ];
    assert_eq!(
        run(vec![orders(&before)]).await,
        [
            "101, 2024-01-15, 2, 80.00, 2024-01-15T11:00:00",
            "102, 2024-01-15, 1, 75.00, 2024-01-15T12:00:00",
        ]
    );
    // UPDATE orders SET amount = 40.00, updated_at = '2024-01-15 14:00'
    // WHERE order_id = 2; only user 101's day is re-computed, from all its
    // rows, split over two batches.
    let touched = [
        (1, 101, 5000, "2024-01-15 09:30", "2024-01-15 10:00"),
        (2, 101, 4000, "2024-01-15 10:30", "2024-01-15 14:00"),
    ];
    assert_eq!(
        run(vec![orders(&touched[..1]), orders(&touched[1..])]).await,
        ["101, 2024-01-15, 2, 90.00, 2024-01-15T14:00:00"]
    );
}

#[tokio::test]
async fn min_and_max_after_a_delete_come_from_the_rows_left() {
    let mut agg = spec_aggregate();
    agg.values = vec![
        column("first", "min(amount)"),
        column("last", "max(amount)"),
    ];
    let left = [(1, 7, 500, "2024-02-01 08:00", "2024-02-01 08:00")];
    let out = aggregate_batches(&agg, schema(), vec![orders(&left)])
        .await
        .unwrap();
    assert_eq!(rows(&out), ["7, 2024-02-01, 5.00, 5.00"]);
}

#[tokio::test]
async fn no_rows_is_no_groups_so_the_group_is_deleted() {
    assert!(run(Vec::new()).await.is_empty());
}

#[tokio::test]
async fn an_expression_datafusion_cannot_plan_names_its_column() {
    let mut agg = spec_aggregate();
    agg.values = vec![column("odd", "sum(no_such_column)")];
    let err = aggregate_batches(&agg, schema(), vec![orders(&[])])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("aggregate column \"odd\" (sum(no_such_column)): "),
        "{err}"
    );
    assert!(err.contains("no_such_column"), "{err}");
}

#[tokio::test]
async fn changed_rows_touch_their_distinct_keys_only() {
    let changed = [
        (2, 101, 4000, "2024-01-15 10:30", "2024-01-15 14:00"),
        (5, 101, 100, "2024-01-15 23:59", "2024-01-15 14:01"),
        (9, 103, 100, "2024-01-16 00:00", "2024-01-16 14:02"),
    ];
    let keys = touched_keys(&spec_aggregate(), schema(), vec![orders(&changed)])
        .await
        .unwrap();
    assert_eq!(rows(&keys), ["101, 2024-01-15", "103, 2024-01-16"]);
}

/// Destination rows as (user_id, date, num_orders, amount in cents,
/// last_updated_at), in the destination's own types (int, decimal(12,2)).
fn destination(rows: &[(i64, &str, i32, i128, &str)]) -> (SchemaRef, Vec<RecordBatch>) {
    use arrow::array::{Date32Array, Int32Array};
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("date", DataType::Date32, false),
        Field::new("num_orders", DataType::Int32, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new(
            "last_updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
    ]));
    let day = |d: &str| (micros(&format!("{d} 00:00")) / 86_400_000_000) as i32;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| day(r.1)))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(
            Decimal128Array::from_iter_values(rows.iter().map(|r| r.3))
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|r| micros(r.4)),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    (schema, vec![batch])
}

#[tokio::test]
async fn only_changed_groups_are_upserted_and_emptied_ones_deleted() {
    let agg = spec_aggregate();
    // User 101's day changed (order 2 updated), 102's was touched but sums
    // to what the destination holds, and 104's only order was deleted.
    let left = [
        (1, 101, 5000, "2024-01-15 09:30", "2024-01-15 10:00"),
        (2, 101, 4000, "2024-01-15 10:30", "2024-01-15 14:00"),
        (3, 102, 7500, "2024-01-15 11:30", "2024-01-15 12:00"),
    ];
    let recomputed = aggregate_batches(&agg, schema(), vec![orders(&left)])
        .await
        .unwrap();
    let recomputed_schema = recomputed[0].schema();
    let touched_rows = [
        (2, 101, 4000, "2024-01-15 10:30", "2024-01-15 14:00"),
        (3, 102, 7500, "2024-01-15 11:30", "2024-01-15 12:00"),
        (4, 104, 1000, "2024-01-17 08:00", "2024-01-17 08:00"),
    ];
    let touched = touched_keys(&agg, schema(), vec![orders(&touched_rows)])
        .await
        .unwrap();
    let touched_schema = touched[0].schema();
    let dest = destination(&[
        (101, "2024-01-15", 2, 8000, "2024-01-15 11:00"),
        (102, "2024-01-15", 1, 7500, "2024-01-15 12:00"),
        (104, "2024-01-17", 1, 1000, "2024-01-17 08:00"),
        (105, "2024-01-18", 1, 1000, "2024-01-18 08:00"),
    ]);
    let changes = group_changes(
        &agg,
        (touched_schema, touched),
        (recomputed_schema, recomputed),
        dest,
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&changes.upserts),
        ["101, 2024-01-15, 2, 90.00, 2024-01-15T14:00:00"]
    );
    // 105 was not touched: a delta never deletes what it did not look at.
    assert_eq!(rows(&changes.deletes), ["104, 2024-01-17"]);
    assert_eq!(changes.unchanged, 1);
}

#[tokio::test]
async fn avg_and_count_distinct_group_by_an_expression_alone() {
    let agg = Aggregate {
        keys: vec![column("date", "CAST(order_date AS DATE)")],
        values: vec![
            column("users", "count(DISTINCT user_id)"),
            column("mean", "avg(amount)"),
        ],
        engine: AggregateEngine::Datafusion,
        delta_keys: Vec::new(),
        row_columns: None,
        key_ranges: Vec::new(),
        group_sum: None,
        row_key: None,
    };
    let day = [
        (1, 101, 5000, "2024-01-15 09:30", "2024-01-15 10:00"),
        (2, 101, 3000, "2024-01-15 10:30", "2024-01-15 11:00"),
        (3, 102, 7600, "2024-01-15 11:30", "2024-01-15 12:00"),
    ];
    let out = aggregate_batches(&agg, schema(), vec![orders(&day)])
        .await
        .unwrap();
    assert_eq!(rows(&out), ["2024-01-15, 2, 52.000000"]);
}
