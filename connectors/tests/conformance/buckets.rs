//! Partition planning: the buckets a connector says hold rows are exactly
//! the ranges the partition grid gives those rows, on and beside bounds.

use super::*;
/// Rows whose partition values sit on and beside range bounds (before
/// 1970 too), sparse and NULL: (id, at, ts, d) as integers and microseconds.
#[allow(clippy::type_complexity)]
fn boundary_rows() -> Vec<(i64, Option<i64>, Option<i64>, Option<i32>)> {
    let t = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    };
    let day = |s: &str| {
        (chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    vec![
        (
            -15,
            Some(t("2024-01-01 00:00:00")),
            Some(t("2024-02-29 23:59:59.999999")),
            Some(day("2024-02-29")),
        ),
        (
            -1,
            Some(t("2024-01-01 01:59:59.999999")),
            Some(t("2024-03-01 00:00:00")),
            Some(day("2024-03-01")),
        ),
        (
            0,
            Some(t("2024-01-01 02:00:00")),
            Some(t("1969-12-31 23:59:59.5")),
            Some(day("1969-12-31")),
        ),
        (
            9,
            Some(t("1969-12-31 23:59:59.5")),
            None,
            Some(day("1970-01-01")),
        ),
        (10, None, Some(t("2026-12-31 23:00:00")), None),
        (
            1_000_000_000_000,
            Some(t("2026-12-31 23:00:00")),
            Some(t("2024-03-01 00:00:00.000001")),
            Some(day("2026-12-07")),
        ),
        (
            1_000_000_000_005,
            Some(t("2025-06-15 13:14:15.161718")),
            Some(t("2025-06-15 13:14:15")),
            Some(day("2025-06-15")),
        ),
    ]
}

/// Which ranges hold rows, as each connector answers: exactly the buckets
/// of the rows written (computed here with `BucketGrid::bucket_of`), for
/// integer, fixed and calendar steps, one or two dimensions at once, NULLs,
/// and within a scope; and the partitions made of them read every row.
pub(super) async fn occupied_buckets_are_exactly_the_ranges_with_rows(h: &dyn Harness) {
    use planner::partition::{
        occupied_partitions, BucketGrid, MergePolicy, OccupiedBucket, PartitionDimension, Step,
        MERGE_SMALL_RANGES,
    };
    let (ds, _guard) = h.datastore("occupied").await;
    let cols = vec![
        column("id", ColumnType::Int64, true, true),
        column("at", ColumnType::TimestampTz, false, true),
        column("ts", ColumnType::Timestamp, false, true),
        column("d", ColumnType::Date, false, true),
    ];
    let specs = specs_of(&cols);
    let rows = boundary_rows();
    let batch = RecordBatch::try_new(
        arrow_schema(&specs),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
            Arc::new(
                TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.1)).with_timezone("UTC"),
            ),
            Arc::new(TimestampMicrosecondArray::from_iter(
                rows.iter().map(|r| r.2),
            )),
            Arc::new(arrow::array::Date32Array::from_iter(
                rows.iter().map(|r| r.3),
            )),
        ],
    )
    .unwrap();
    let t = table(&ds, "occupied");
    let mut sink = open_sink(&t, &specs).await.unwrap();
    sink.prepare().await.unwrap();
    write(sink.as_mut(), &Partition::whole(), Some(&batch), None).await;
    let mut source = open_source(&t, &cols).await.unwrap();
    source.check().await.unwrap();

    let dim = |name: &str, kind, date_only, step| PartitionDimension {
        name: name.into(),
        column: ColumnRef::bare(name),
        kind,
        date_only,
        step,
    };
    let hours = |n: i64| Step::Micros(n * 3_600_000_000);
    let (int, time) = (PartitionKind::Integer, PartitionKind::Datetime);
    // A row's values as partition values: integers, microseconds (a date
    // at its midnight).
    let value = |r: &(i64, Option<i64>, Option<i64>, Option<i32>), name: &str| match name {
        "id" => Some(r.0),
        "at" => r.1,
        "ts" => r.2,
        _ => r.3.map(|d| i64::from(d) * 86_400_000_000),
    };
    let at_from_2am = DimRange::Range {
        start: PartitionValue::Micros(1_704_074_400_000_000),
        end: PartitionValue::Micros(i64::MAX),
    };
    let cases: Vec<(Vec<PartitionDimension>, Option<DimRange>)> = vec![
        (vec![dim("id", int, false, Step::Int(10))], None),
        (vec![dim("at", time, false, hours(2))], None),
        (vec![dim("ts", time, false, Step::Months(1))], None),
        (vec![dim("d", time, true, Step::Months(3))], None),
        (vec![dim("d", time, true, hours(24 * 7))], None),
        (
            vec![
                dim("ts", time, false, Step::Months(1)),
                dim("id", int, false, Step::Int(1000)),
            ],
            None,
        ),
        (
            vec![
                dim("at", time, false, Step::Single),
                dim("d", time, true, hours(24)),
            ],
            None,
        ),
        // Rows at or after 2024-01-01 02:00 only.
        (
            vec![dim("id", int, false, Step::Int(10))],
            Some(at_from_2am.clone()),
        ),
    ];
    for (dims, scope_at) in cases {
        let context = format!("{dims:?} within {scope_at:?}");
        let bounds = source.bounds(&dims).await.unwrap();
        let grids: Vec<BucketGrid> = dims
            .iter()
            .zip(&bounds)
            .map(|(d, b)| {
                let (lo, hi) = b.min_max.unwrap();
                BucketGrid::of(d.step, lo, hi).unwrap()
            })
            .collect();
        let at = PartitionDimensionRef {
            name: "at".into(),
            column: ColumnRef::bare("at"),
            kind: time,
            date_only: false,
        };
        let scope = match &scope_at {
            Some(r) => Partition {
                id: "scope".into(),
                ranges: vec![(at, r.clone())],
            },
            None => Partition::whole(),
        };
        let in_scope = |r: &(i64, Option<i64>, Option<i64>, Option<i32>)| match &scope_at {
            Some(DimRange::Range { start, end }) => {
                r.1.is_some_and(|v| start.as_i64() <= v && v < end.as_i64())
            }
            _ => true,
        };
        let mut got = source
            .occupied_buckets(&scope, &dims, &grids, 1000)
            .await
            .unwrap()
            .expect("every connector tells which ranges hold rows");
        got.sort();
        let mut want = std::collections::BTreeMap::<Vec<Option<i64>>, u64>::new();
        for r in rows.iter().filter(|r| in_scope(r)) {
            let key = dims
                .iter()
                .zip(&grids)
                .map(|(d, g)| value(r, &d.name).map(|v| g.bucket_of(v)))
                .collect();
            *want.entry(key).or_default() += 1;
        }
        let want: Vec<OccupiedBucket> = want
            .into_iter()
            .map(|(buckets, rows)| OccupiedBucket { buckets, rows })
            .collect();
        assert_eq!(got, want, "{context}");

        // Read back, the partitions made of them hold every row in scope,
        // and none is empty, each range its own partition or neighbours
        // merged (up to 3 rows a partition).
        let nulls: Vec<bool> = bounds.iter().map(|b| b.has_nulls).collect();
        let merged = MergePolicy {
            max_rows: 3,
            above_partitions: 0,
        };
        for policy in [MERGE_SMALL_RANGES, merged] {
            let context = format!("{context} merged as {policy:?}");
            let mut read_rows = 0;
            let plan = occupied_partitions(&dims, &grids, &nulls, got.clone(), policy);
            for p in plan.partitions {
                let mut p = p;
                p.ranges.extend(scope.ranges.iter().cloned());
                let batches: Vec<RecordBatch> = source
                    .read(&p, 100)
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                let n: usize = batches.iter().map(|b| b.num_rows()).sum();
                assert!(n > 0, "{context}: {} holds no row", p.id);
                read_rows += n;
            }
            assert_eq!(
                read_rows,
                rows.iter().filter(|r| in_scope(r)).count(),
                "{context}"
            );
        }
    }
    // More combinations than the limit are cut short past it.
    let dims = [dim("id", int, false, Step::Int(1))];
    let bounds = source.bounds(&dims).await.unwrap();
    let (lo, hi) = bounds[0].min_max.unwrap();
    let grid = BucketGrid::of(dims[0].step, lo, hi).unwrap();
    let got = source
        .occupied_buckets(&Partition::whole(), &dims, &[grid], 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 4);
}
