use super::*;

fn dim(step: Step, kind: PartitionKind) -> PartitionDimension {
    PartitionDimension {
        name: "id".into(),
        column: ColumnRef::bare("id"),
        kind,
        date_only: false,
        step,
    }
}

#[test]
fn integer_ranges_are_aligned_and_cover_bounds() {
    let parts = plan_partitions(
        &[dim(Step::Int(10), PartitionKind::Integer)],
        &[ColumnBounds {
            min_max: Some((PartitionValue::Int(7), PartitionValue::Int(20))),
            has_nulls: true,
        }],
    );
    let ids: Vec<_> = parts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["id_0_10", "id_10_20", "id_20_30", "id_null"]);
}

#[test]
fn negative_integers_align_downwards() {
    let parts = plan_partitions(
        &[dim(Step::Int(10), PartitionKind::Integer)],
        &[ColumnBounds {
            min_max: Some((PartitionValue::Int(-3), PartitionValue::Int(-1))),
            has_nulls: false,
        }],
    );
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].id, "id_-10_0");
}

#[test]
fn month_steps_follow_the_calendar() {
    let jan15 = Utc
        .with_ymd_and_hms(2024, 1, 15, 10, 0, 0)
        .unwrap()
        .timestamp_micros();
    let mar2 = Utc
        .with_ymd_and_hms(2024, 3, 2, 0, 0, 0)
        .unwrap()
        .timestamp_micros();
    let parts = plan_partitions(
        &[dim(Step::Months(1), PartitionKind::Datetime)],
        &[ColumnBounds {
            min_max: Some((PartitionValue::Micros(jan15), PartitionValue::Micros(mar2))),
            has_nulls: false,
        }],
    );
    let ids: Vec<_> = parts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "id_2024-01-01T00:00:00_2024-02-01T00:00:00",
            "id_2024-02-01T00:00:00_2024-03-01T00:00:00",
            "id_2024-03-01T00:00:00_2024-04-01T00:00:00"
        ]
    );
}

#[test]
fn delta_window_starts_at_the_watermark_and_ends_at_the_max() {
    let cursor = dim(Step::Single, PartitionKind::Integer);
    let bounds = ColumnBounds {
        min_max: Some((PartitionValue::Int(1), PartitionValue::Int(500))),
        has_nulls: true,
    };
    assert_eq!(
        delta_window(&cursor, Some(PartitionValue::Int(300)), &bounds),
        [
            DimRange::Range {
                start: PartitionValue::Int(300),
                end: PartitionValue::Int(501)
            },
            DimRange::Null
        ]
    );
    // First run: from the minimum.
    assert_eq!(
        delta_window(&cursor, None, &bounds)[0],
        DimRange::Range {
            start: PartitionValue::Int(1),
            end: PartitionValue::Int(501)
        }
    );
    // A watermark past every row: nothing but the NULL rows.
    assert_eq!(
        delta_window(&cursor, Some(PartitionValue::Int(900)), &bounds),
        [DimRange::Null]
    );
    // With a step the window is cut into aligned pieces.
    let stepped = dim(Step::Int(100), PartitionKind::Integer);
    let no_nulls = ColumnBounds {
        has_nulls: false,
        ..bounds
    };
    assert_eq!(
        delta_window(&stepped, Some(PartitionValue::Int(250)), &no_nulls).len(),
        4 // [200,300) .. [500,600): 500 itself is in the window
    );
}

#[test]
fn halves_split_the_first_wide_range() {
    let parts = plan_partitions(
        &[dim(Step::Int(10), PartitionKind::Integer)],
        &[ColumnBounds {
            min_max: Some((PartitionValue::Int(0), PartitionValue::Int(9))),
            has_nulls: false,
        }],
    );
    let (a, b) = parts[0].halves().unwrap();
    assert_eq!((a.id.as_str(), b.id.as_str()), ("id_0_5", "id_5_10"));
    let (c, _) = a.halves().unwrap();
    assert_eq!(c.id, "id_0_2");
    let single = plan_partitions(
        &[dim(Step::Int(1), PartitionKind::Integer)],
        &[ColumnBounds {
            min_max: Some((PartitionValue::Int(3), PartitionValue::Int(3))),
            has_nulls: false,
        }],
    );
    assert!(single[0].halves().is_none());
}

#[test]
fn split_by_cuts_along_finer_steps_within_the_range() {
    let parts = plan_partitions(
        &[dim(Step::Int(50), PartitionKind::Integer)],
        &[ColumnBounds {
            min_max: Some((PartitionValue::Int(0), PartitionValue::Int(49))),
            has_nulls: false,
        }],
    );
    let finer = parts[0].split_by(&[dim(Step::Int(20), PartitionKind::Integer)]);
    let ids: Vec<_> = finer.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["id_0_20", "id_20_40", "id_40_50"]);
    let other = PartitionDimension {
        name: "other".into(),
        ..dim(Step::Int(5), PartitionKind::Integer)
    };
    assert_eq!(parts[0].split_by(&[other]), vec![parts[0].clone()]);
}

/// Steps over spans: negative, single-value, before 1970, calendar.
fn step_cases() -> Vec<(Step, PartitionValue, PartitionValue)> {
    vec![
        (
            Step::Int(10),
            PartitionValue::Int(-25),
            PartitionValue::Int(31),
        ),
        (Step::Int(7), PartitionValue::Int(0), PartitionValue::Int(0)),
        (Step::Int(1), PartitionValue::Int(5), PartitionValue::Int(9)),
        (
            Step::Micros(3_600_000_000),
            PartitionValue::Micros(-7_200_000_001),
            PartitionValue::Micros(86_400_000_000),
        ),
        (
            Step::Months(1),
            PartitionValue::Micros(0),
            PartitionValue::Micros(40_000_000_000_000),
        ),
        (
            Step::Months(3),
            PartitionValue::Micros(-40_000_000_000_000),
            PartitionValue::Micros(1_000),
        ),
        (
            Step::Single,
            PartitionValue::Int(3),
            PartitionValue::Int(90),
        ),
    ]
}

#[test]
fn range_count_is_the_number_of_ranges_split_makes() {
    let cases = step_cases();
    for (step, lo, hi) in cases {
        assert_eq!(
            range_count(step, lo, hi),
            split(step, lo, hi).len() as u128,
            "{step:?} {lo} {hi}"
        );
    }
}

#[test]
fn a_grid_numbers_the_ranges_split_makes() {
    let mut cases = step_cases();
    cases.extend([
        (
            Step::Micros(7_200_000_000),
            PartitionValue::Micros(1_704_067_200_000_001),
            PartitionValue::Micros(1_704_096_000_500_000),
        ),
        (
            Step::Single,
            PartitionValue::Micros(-5),
            PartitionValue::Micros(7_000_001),
        ),
    ]);
    for (step, lo, hi) in cases {
        let ranges = split(step, lo, hi);
        let grid = BucketGrid::of(step, lo, hi).unwrap();
        assert_eq!(grid.count, ranges.len() as u128, "{step:?}");
        for (b, r) in ranges.iter().enumerate() {
            assert_eq!(grid.range(b as i64).as_ref(), Some(r), "{step:?} {b}");
            let DimRange::Range { start, end } = r else {
                panic!("{r:?}")
            };
            // The first and the last value of the range in the span.
            for v in [
                start.as_i64().max(lo.as_i64()),
                (end.as_i64() - 1).min(hi.as_i64()),
            ] {
                assert_eq!(grid.bucket_of(v), b as i64, "{step:?} {v}");
            }
        }
        assert_eq!(grid.range(-1), None);
        assert_eq!(grid.range(ranges.len() as i64), None);
        let (DimRange::Range { start, .. }, DimRange::Range { end, .. }) =
            (&ranges[0], &ranges[ranges.len() - 1])
        else {
            panic!()
        };
        assert_eq!(
            grid.span(),
            Some(DimRange::Range {
                start: *start,
                end: *end
            })
        );
    }
    // Ranges that are never made: the bucket of a far value, its range.
    let wide = BucketGrid::of(
        Step::Int(10),
        PartitionValue::Int(1),
        PartitionValue::Int(1_000_000_000_000_000),
    )
    .unwrap();
    assert_eq!(wide.count, 100_000_000_000_001);
    assert_eq!(wide.bucket_of(1_000_000_000_000_000), 100_000_000_000_000);
    assert_eq!(
        wide.range(100_000_000_000_000),
        Some(DimRange::Range {
            start: PartitionValue::Int(1_000_000_000_000_000),
            end: PartitionValue::Int(1_000_000_000_000_010)
        })
    );
    // Ranges clamped at the ends of i64 are not numbered.
    assert_eq!(
        BucketGrid::of(
            Step::Int(1000),
            PartitionValue::Int(i64::MIN),
            PartitionValue::Int(0)
        ),
        None
    );
}

#[test]
fn occupied_partitions_are_the_products_with_rows_in_its_order() {
    let a = dim(Step::Int(10), PartitionKind::Integer);
    let b = PartitionDimension {
        name: "b".into(),
        ..dim(Step::Int(100), PartitionKind::Integer)
    };
    let ba = ColumnBounds {
        min_max: Some((PartitionValue::Int(0), PartitionValue::Int(29))),
        has_nulls: true,
    };
    let bb = ColumnBounds {
        min_max: Some((PartitionValue::Int(0), PartitionValue::Int(250))),
        has_nulls: false,
    };
    let dims = [a, b];
    let grids: Vec<BucketGrid> = dims
        .iter()
        .zip([ba, bb])
        .map(|(d, b)| {
            let (lo, hi) = b.min_max.unwrap();
            BucketGrid::of(d.step, lo, hi).unwrap()
        })
        .collect();
    let key = |buckets: Vec<Option<i64>>, rows: u64| OccupiedBucket { buckets, rows };
    let keys = vec![
        key(vec![None, Some(2)], 1),
        key(vec![Some(1), Some(0)], 4),
        key(vec![Some(0), Some(2)], 2),
        // Named by the destination too, with fewer rows.
        key(vec![Some(1), Some(0)], 3),
        // Not in the bounds read: left out.
        key(vec![Some(3), Some(0)], 1),
        key(vec![Some(0), None], 1),
    ];
    let plan = occupied_partitions(&dims, &grids, &[true, false], keys, MERGE_SMALL_RANGES);
    assert_eq!(plan.ranges_holding_rows, 3);
    let occupied = plan.partitions;
    let ids: Vec<_> = occupied.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "id_0_10__b_200_300",
            "id_10_20__b_0_100",
            "id_null__b_200_300"
        ]
    );
    let dense = plan_partitions(&dims, &[ba, bb]);
    let in_dense: Vec<_> = dense.iter().filter(|p| occupied.contains(p)).collect();
    assert_eq!(in_dense.len(), 3, "the same partitions as the dense plan's");
}

fn ids(plan: &OccupiedPlan) -> Vec<&str> {
    plan.partitions.iter().map(|p| p.id.as_str()).collect()
}

fn merge_below(max_rows: u64) -> MergePolicy {
    MergePolicy {
        max_rows,
        above_partitions: 0,
    }
}

#[test]
fn neighbouring_ranges_merge_in_order_up_to_the_row_bound() {
    let dims = [dim(Step::Int(10), PartitionKind::Integer)];
    let grid = BucketGrid::of(
        dims[0].step,
        PartitionValue::Int(0),
        PartitionValue::Int(99),
    )
    .unwrap();
    let counts = [
        (Some(0), 60),
        (Some(1), 30),
        (Some(2), 20),
        (Some(3), 70),
        (Some(5), 500),
        (Some(7), 10),
        (Some(9), 5),
        (None, 5),
    ];
    let keys: OccupiedBuckets = counts
        .iter()
        .rev()
        .map(|&(b, rows)| OccupiedBucket {
            buckets: vec![b],
            rows,
        })
        .collect();
    let plan = occupied_partitions(&dims, &[grid], &[true], keys.clone(), merge_below(100));
    // 0+1 (90 rows; 2 would make 110), 2+3 (90), 5 alone (more than the
    // bound, never merged), 7..9 across the empty 8, NULLs alone and last.
    assert_eq!(
        ids(&plan),
        ["id_0_20", "id_20_40", "id_50_60", "id_70_100", "id_null"]
    );
    assert_eq!(plan.ranges_holding_rows, 8);
    // The same rows per range, in any order, plan the same partitions.
    let mut shuffled = keys.clone();
    shuffled.swap(0, 5);
    shuffled.swap(2, 7);
    assert_eq!(
        occupied_partitions(&dims, &[grid], &[true], shuffled, merge_below(100)),
        plan
    );
    // No more ranges holding rows than the policy merges above: each
    // its own partition, as the dense plan names it.
    let unmerged = occupied_partitions(
        &dims,
        &[grid],
        &[true],
        keys,
        MergePolicy {
            max_rows: 100,
            above_partitions: 8,
        },
    );
    assert_eq!(
        ids(&unmerged),
        [
            "id_0_10",
            "id_10_20",
            "id_20_30",
            "id_30_40",
            "id_50_60",
            "id_70_80",
            "id_90_100",
            "id_null"
        ]
    );
}

#[test]
fn a_window_with_one_cursor_range_merges_along_the_next_dimension() {
    let cursor = PartitionDimension {
        name: "at".into(),
        ..dim(Step::Single, PartitionKind::Integer)
    };
    let dims = [cursor, dim(Step::Int(10), PartitionKind::Integer)];
    let grids = [
        BucketGrid::of(Step::Single, PartitionValue::Int(5), PartitionValue::Int(9)).unwrap(),
        BucketGrid::of(
            dims[1].step,
            PartitionValue::Int(0),
            PartitionValue::Int(59),
        )
        .unwrap(),
    ];
    // Ranges 0, 1, 2 and 4 of the id hold rows: one partition under the
    // window's bound, two under a bound of 10 rows (range 4 holds 9).
    let keys: OccupiedBuckets = [(0, 3), (1, 3), (2, 3), (4, 9)]
        .into_iter()
        .map(|(b, rows)| OccupiedBucket {
            buckets: vec![Some(0), Some(b)],
            rows,
        })
        .collect();
    let plan = occupied_partitions(&dims, &grids, &[false, false], keys, MERGE_DELTA_WINDOW);
    assert_eq!(plan.ranges_holding_rows, 4);
    assert_eq!(ids(&plan), ["at_5_10__id_0_50"]);
    let merged = occupied_partitions(
        &dims,
        &grids,
        &[false, false],
        [(0, 3), (1, 3), (2, 3), (4, 9)]
            .into_iter()
            .map(|(b, rows)| OccupiedBucket {
                buckets: vec![Some(0), Some(b)],
                rows,
            })
            .collect(),
        MergePolicy {
            max_rows: 10,
            above_partitions: 1,
        },
    );
    assert_eq!(ids(&merged), ["at_5_10__id_0_30", "at_5_10__id_40_50"]);
}

#[test]
fn ranges_merge_only_where_every_other_dimension_agrees() {
    let a = dim(Step::Int(10), PartitionKind::Integer);
    let b = PartitionDimension {
        name: "b".into(),
        ..dim(Step::Int(100), PartitionKind::Integer)
    };
    let dims = [a, b];
    let grids = [
        BucketGrid::of(
            dims[0].step,
            PartitionValue::Int(0),
            PartitionValue::Int(39),
        )
        .unwrap(),
        BucketGrid::of(
            dims[1].step,
            PartitionValue::Int(0),
            PartitionValue::Int(250),
        )
        .unwrap(),
    ];
    let keys: OccupiedBuckets = [
        [Some(0), Some(0)],
        [Some(1), Some(0)],
        [Some(3), Some(0)],
        [Some(1), Some(2)],
        [Some(2), Some(2)],
        [None, Some(0)],
        [Some(2), None],
    ]
    .into_iter()
    .map(|k| OccupiedBucket {
        buckets: k.to_vec(),
        rows: 1,
    })
    .collect();
    let plan = occupied_partitions(&dims, &grids, &[true, true], keys, merge_below(100));
    assert_eq!(
        ids(&plan),
        [
            "id_0_40__b_0_100",
            "id_10_30__b_200_300",
            "id_20_30__b_null",
            "id_null__b_0_100"
        ]
    );
    // Every row's range is in exactly one partition.
    let holds = |p: &Partition, a: i64, b: i64| {
        p.ranges.iter().zip([a, b]).all(|((_, r), v)| match r {
            DimRange::Range { start, end } => start.as_i64() <= v && v < end.as_i64(),
            _ => false,
        })
    };
    for (a, b) in [(5, 50), (15, 50), (35, 50), (15, 250), (25, 250)] {
        assert_eq!(
            plan.partitions.iter().filter(|p| holds(p, a, b)).count(),
            1,
            "{a}, {b}"
        );
    }
}

#[test]
fn a_sparse_key_over_a_wide_span_is_refused_with_the_step_that_would_do() {
    let d = dim(Step::Int(10), PartitionKind::Integer);
    let wide = ColumnBounds {
        min_max: Some((
            PartitionValue::Int(1),
            PartitionValue::Int(1_000_000_000_000_000),
        )),
        has_nulls: false,
    };
    assert_eq!(
        too_many_partitions(std::slice::from_ref(&d), &[wide]).as_deref(),
        Some("partitioning on \"id\" in steps of 10 from 1 to 1000000000000000 makes 100000000000001 partitions, more than the 1000000 a run can take; raise its step to at least 2000000000 (partition_step, or step in primary_partitions); every range costs its queries, even an empty one")
    );
    let fits = ColumnBounds {
        min_max: Some((PartitionValue::Int(0), PartitionValue::Int(9_999_999))),
        has_nulls: false,
    };
    assert_eq!(too_many_partitions(&[d], &[fits]), None);
}

#[test]
fn empty_table_has_no_partitions() {
    let parts = plan_partitions(
        &[dim(Step::Int(10), PartitionKind::Integer)],
        &[ColumnBounds {
            min_max: None,
            has_nulls: false,
        }],
    );
    assert!(parts.is_empty());
}

/// Found by the config fuzz test: bounds at the ends of i64 overflowed
/// the aligned start, and a timestamp past chrono's last date made the
/// monthly split loop from 1970 without end.
#[test]
fn extreme_bounds_split_without_overflow_or_end() {
    let b = |lo, hi| ColumnBounds {
        min_max: Some((lo, hi)),
        has_nulls: false,
    };
    let ints = dim(Step::Int(1000), PartitionKind::Integer);
    let low = b(
        PartitionValue::Int(i64::MIN),
        PartitionValue::Int(i64::MIN + 1500),
    );
    let parts = plan_partitions(std::slice::from_ref(&ints), &[low]);
    assert_eq!(
        parts.len() as u128,
        range_count(
            ints.step,
            PartitionValue::Int(i64::MIN),
            PartitionValue::Int(i64::MIN + 1500)
        )
    );
    assert!(matches!(
        parts[0].ranges[0].1,
        DimRange::Range {
            start: PartitionValue::Int(i64::MIN),
            ..
        }
    ));

    let months = dim(Step::Months(1), PartitionKind::Datetime);
    let end_of_time = b(
        PartitionValue::Micros(i64::MAX - 10),
        PartitionValue::Micros(i64::MAX),
    );
    let parts = plan_partitions(std::slice::from_ref(&months), &[end_of_time]);
    assert_eq!(parts.len(), 1);
    // From 1970 to the end of time is too many months, and says so
    // rather than counting one.
    let all = b(PartitionValue::Micros(0), PartitionValue::Micros(i64::MAX));
    assert!(too_many_partitions(std::slice::from_ref(&months), &[all]).is_some());
}
