//! The connector conformance suite: the same cases against every connector
//! (schema check, read, hash agreement between a pushdown and the generic
//! path, upsert, delete, an aborted partition and its checkpoints). A
//! connector joins by implementing [`Harness`] (a datastore of its own per
//! test) and one `conformance!` line. The type matrix and partition
//! planning's buckets are in `conformance/`.

#[path = "conformance/buckets.rs"]
mod buckets;
mod common;
#[path = "conformance/types.rs"]
mod types;

use common::column;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::Int64Type;
use async_trait::async_trait;
use connectors::rowhash::{self, WideChecksum, ROW_HASH_COLUMN};
use connectors::{
    open_sink, open_source, BatchStream, Buckets, Checksum, RunIdentity, Sink, Source, WriteMode,
    WriteStats,
};
use futures_util::TryStreamExt;
use planner::model::{MappedColumn, TableRef};
use planner::partition::{DimRange, Partition, PartitionDimensionRef, PartitionValue};
use planner::types::{arrow_schema, ColumnSpec, ColumnType, PartitionKind};
use planner::ColumnRef;
use planner::Datastore;

/// Whatever must live as long as a test's datastore (a schema dropped
/// when it goes).
type Guard = Box<dyn std::any::Any + Send>;

/// What a connector gives the suite: a datastore no other test uses.
#[async_trait]
trait Harness: Send + Sync {
    async fn datastore(&self, test: &str) -> (Datastore, Guard);

    /// Whether the connector's sources hash where the data lives
    /// (`Source::hash_pushdown`).
    fn hashes_where_data_lives(&self) -> bool;

    /// Whether the store has a type for `ty` (the others are refused by
    /// name, which the connector's own tests check).
    fn holds(&self, _ty: &ColumnType) -> bool {
        true
    }
}

struct Postgres;
struct Sqlite(tempfile::TempDir);
struct Memory;
struct MySql;
struct ClickHouse;
#[cfg(feature = "delta")]
struct Delta(tempfile::TempDir);

#[async_trait]
impl Harness for Postgres {
    async fn datastore(&self, test: &str) -> (Datastore, Guard) {
        let client = common::connect().await;
        let schema = common::Schema::create(&client, &format!("conf_{test}")).await;
        (common::pg_datastore(&schema.0), Box::new(schema))
    }

    fn hashes_where_data_lives(&self) -> bool {
        true
    }
}

#[async_trait]
impl Harness for Sqlite {
    async fn datastore(&self, test: &str) -> (Datastore, Guard) {
        let file = self.0.path().join(format!("{test}.db"));
        (common::sqlite_datastore("lite", &file), Box::new(()))
    }

    fn hashes_where_data_lives(&self) -> bool {
        true
    }
}

#[async_trait]
impl Harness for Memory {
    async fn datastore(&self, test: &str) -> (Datastore, Guard) {
        let text = format!(
            "datastores:\n  mem: {{type: memory, connection: {{store: conformance_{test}}}}}\n"
        );
        let text = planner::Datastores::parse(
            std::path::Path::new("datastores.yaml"),
            &text,
            &connectors::registry::types(),
            |_| None,
        )
        .unwrap();
        (text.stores["mem"].clone(), Box::new(()))
    }

    fn hashes_where_data_lives(&self) -> bool {
        false
    }
}

#[async_trait]
impl Harness for MySql {
    async fn datastore(&self, test: &str) -> (Datastore, Guard) {
        let db = common::MySqlDatabase::create(&format!("conf_{test}")).await;
        (common::mysql_datastore(&db.0), Box::new(db))
    }

    /// The first slice reads and hashes in Rust (see docs/decisions.md).
    fn hashes_where_data_lives(&self) -> bool {
        false
    }
}

#[async_trait]
impl Harness for ClickHouse {
    async fn datastore(&self, test: &str) -> (Datastore, Guard) {
        let db = common::ClickHouseDatabase::create(&format!("conf_{test}")).await;
        (common::clickhouse_datastore(&db.0), Box::new(db))
    }

    /// Read and hashed in Rust.
    fn hashes_where_data_lives(&self) -> bool {
        false
    }
}

#[cfg(feature = "delta")]
#[async_trait]
impl Harness for Delta {
    async fn datastore(&self, test: &str) -> (Datastore, Guard) {
        let text = format!("datastores:\n  lake: {{type: delta, connection: {{uri: {test}}}}}\n");
        let stores = planner::Datastores::parse(
            &self.0.path().join("datastores.yaml"),
            &text,
            &connectors::registry::types(),
            |_| None,
        )
        .unwrap();
        (stores.stores["lake"].clone(), Box::new(()))
    }

    /// Read through DataFusion and hashed in Rust.
    fn hashes_where_data_lives(&self) -> bool {
        false
    }

    /// Delta Lake has no time-of-day type.
    fn holds(&self, ty: &ColumnType) -> bool {
        *ty != ColumnType::Time
    }
}

const ROWS: i64 = 1000;

fn columns() -> Vec<MappedColumn> {
    let amount = ColumnType::Decimal {
        precision: 12,
        scale: 2,
    };
    vec![
        column("id", ColumnType::Int64, true, true),
        column("name", ColumnType::Text, false, true),
        column("amount", amount, false, true),
        column("at", ColumnType::TimestampTz, false, true),
        column("flag", ColumnType::Bool, false, true),
    ]
}

fn specs() -> Vec<ColumnSpec> {
    columns().into_iter().map(|c| c.spec).collect()
}

/// Rows `ids`, each value a function of its id (NULLs included), with
/// `name` suffixed by `tag` so a rewrite is told from the original.
fn rows(ids: impl IntoIterator<Item = i64>, tag: &str) -> RecordBatch {
    let ids: Vec<i64> = ids.into_iter().collect();
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|i| (i % 7 != 0).then(|| format!("näme {i}{tag}")))
                .collect::<Vec<_>>(),
        )),
        Arc::new(
            Decimal128Array::from(
                ids.iter()
                    .map(|i| (i % 5 != 0).then_some(i128::from(*i) * 125 - 3000))
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(12, 2)
            .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(
                ids.iter()
                    .map(|i| Some(1_700_000_000_000_000 + i * 1_000_003))
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(BooleanArray::from(
            ids.iter()
                .map(|i| (i % 3 != 0).then_some(i % 2 == 0))
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(arrow_schema(&specs()), arrays).unwrap()
}

fn table(ds: &Datastore, name: &str) -> TableRef {
    TableRef {
        datastore: ds.clone(),
        schema: ds.default_schema().map(str::to_string),
        table: name.into(),
        alias: None,
        joins: Vec::new(),
        filters: Vec::new(),
        grouped: None,
    }
}

fn run() -> RunIdentity {
    RunIdentity {
        pipeline: "conformance".into(),
        strategy: "full".into(),
        run_id: "run-1".into(),
        fingerprint: "f1".into(),
    }
}

fn by_id(range: std::ops::Range<i64>) -> Partition {
    Partition {
        id: format!("id_{}_{}", range.start, range.end),
        ranges: vec![(
            PartitionDimensionRef {
                name: "id".into(),
                column: ColumnRef::bare("id"),
                kind: PartitionKind::Integer,
                date_only: false,
            },
            DimRange::Range {
                start: PartitionValue::Int(range.start),
                end: PartitionValue::Int(range.end),
            },
        )],
    }
}

/// Writes `batch` (and deletes `deletes`) as one committed partition.
async fn write(
    sink: &mut dyn Sink,
    partition: &Partition,
    batch: Option<&RecordBatch>,
    deletes: Option<&RecordBatch>,
) -> WriteStats {
    sink.begin_partition(partition, WriteMode::Merge)
        .await
        .unwrap();
    if let Some(b) = batch {
        sink.write(b).await.unwrap();
    }
    if let Some(d) = deletes {
        sink.delete(d).await.unwrap();
    }
    let stats = sink.commit_partition(&run(), partition).await.unwrap();
    // As the engine does for a destination that is not transactional.
    if !sink.capabilities().transactional {
        sink.record_checkpoint(&run(), partition).await.unwrap();
    }
    stats
}

/// A table `name` holding `batch`, written through the connector's sink.
async fn filled(ds: &Datastore, name: &str, batch: &RecordBatch) -> TableRef {
    let t = table(ds, name);
    let mut sink = open_sink(&t, &specs()).await.unwrap();
    sink.prepare().await.unwrap();
    write(sink.as_mut(), &Partition::whole(), Some(batch), None).await;
    t
}

/// Every row of `t` as the connector's source reads it, sorted by id.
async fn read_all(t: &TableRef) -> RecordBatch {
    let mut source = open_source(t, &columns()).await.unwrap();
    source.check().await.unwrap();
    sorted(read(source.as_mut(), &Partition::whole()).await)
}

async fn read(source: &mut dyn Source, p: &Partition) -> RecordBatch {
    let batches: Vec<RecordBatch> = source
        .read(p, 97)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    concat_batches(&arrow_schema(&specs()), &batches).unwrap()
}

fn sorted(b: RecordBatch) -> RecordBatch {
    let order = sort_to_indices(b.column(0), None, None).unwrap();
    take_record_batch(&b, &order).unwrap()
}

async fn read_back_equals_what_was_written(h: &dyn Harness) {
    let (ds, _guard) = h.datastore("read").await;
    let written = rows(1..=ROWS, "");
    let t = filled(&ds, "items", &written).await;
    assert_eq!(read_all(&t).await, written);
    // A partition reads exactly its rows, in pages no larger than asked.
    let mut source = open_source(&t, &columns()).await.unwrap();
    let part = read(source.as_mut(), &by_id(100..300)).await;
    assert_eq!(sorted(part), rows(100..300, ""));
    let dims = [planner::partition::PartitionDimension {
        name: "id".into(),
        column: ColumnRef::bare("id"),
        kind: PartitionKind::Integer,
        date_only: false,
        step: planner::partition::Step::Int(100),
    }];
    let bounds = source.bounds(&dims).await.unwrap();
    assert_eq!(
        bounds[0].min_max,
        Some((PartitionValue::Int(1), PartitionValue::Int(ROWS)))
    );
    // Within a partition, as the rows read there give them.
    let within = source.bounds_within(&by_id(100..300), &dims).await.unwrap();
    assert_eq!(
        within[0].min_max,
        Some((PartitionValue::Int(100), PartitionValue::Int(299)))
    );
    assert_eq!(
        within,
        connectors::bounds::bounds_by_reading(source.as_mut(), &by_id(100..300), &dims)
            .await
            .unwrap()
    );
    let none = source
        .bounds_within(&by_id(5000..6000), &dims)
        .await
        .unwrap();
    assert_eq!((none[0].min_max, none[0].has_nulls), (None, false));
}

async fn check_names_a_missing_column(h: &dyn Harness) {
    let (ds, _guard) = h.datastore("check").await;
    let t = filled(&ds, "items", &rows(1..=10, "")).await;
    let mut wrong = columns();
    wrong[1].source = "nickname".into();
    wrong[1].source_ref = ColumnRef::bare("nickname");
    let mut source = open_source(&t, &wrong).await.unwrap();
    let e = source.check().await.unwrap_err().to_string();
    assert!(e.contains("nickname"), "{e}");
}

/// (id, row hash) pairs of a `row_hashes` stream, sorted by id.
async fn id_hashes(stream: BatchStream<'_>) -> Vec<(i64, i64)> {
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let mut out: Vec<(i64, i64)> = batches
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_primitive::<Int64Type>().clone();
            let hashes = b
                .column_by_name(ROW_HASH_COLUMN)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            (0..b.num_rows()).map(move |i| (ids.value(i), hashes.value(i)))
        })
        .collect();
    out.sort();
    out
}

/// A source's hash pushdown, when it has one, gives the checksums, row
/// hashes and bucket checksums of the generic path, which reads the rows
/// and hashes them in Rust; the hash strategy's entry points
/// (`rowhash::checksum`, `rowhash::row_hashes`) give them either way.
async fn hashes_agree_with_the_generic_path(h: &dyn Harness) {
    let (ds, _guard) = h.datastore("hash").await;
    let t = filled(&ds, "items", &rows(1..=ROWS, "")).await;
    let mut source = open_source(&t, &columns()).await.unwrap();
    source.check().await.unwrap();
    assert_eq!(
        source.hash_pushdown().is_some(),
        h.hashes_where_data_lives(),
        "hash pushdown"
    );
    for p in [Partition::whole(), by_id(1..250), by_id(5000..6000)] {
        let generic = rowhash::checksum_by_reading(source.as_mut(), &p)
            .await
            .unwrap();
        let generic_rows = id_hashes(
            rowhash::row_hashes_by_reading(source.as_mut(), &p, 101)
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(generic.rows as usize, generic_rows.len());
        let strategy: Checksum = rowhash::checksum(source.as_mut(), &p).await.unwrap();
        assert_eq!(strategy, generic, "partition {}", p.id);
        // Every column is hashed here: whole-row fingerprints (the
        // verifier's) are the same sums; a full run's in-process partition
        // comparison counts the same rows.
        let whole = rowhash::whole_rows(source.columns());
        let compared = rowhash::checksum_of_columns(source.as_mut(), &p, &whole, 97)
            .await
            .unwrap();
        assert_eq!(compared, generic, "partition {}", p.id);
        let mut verified = WideChecksum::default();
        verified
            .add_batch(&read(source.as_mut(), &p).await, &whole)
            .unwrap();
        assert_eq!(verified.narrow(), generic, "partition {}", p.id);
        let encoded = rowhash::row_encoding_checksum(source.as_mut(), &p, 89)
            .await
            .unwrap();
        assert_eq!(encoded.rows, generic.rows, "partition {}", p.id);
        assert_eq!(
            encoded,
            rowhash::row_encoding_checksum(source.as_mut(), &p, 1000)
                .await
                .unwrap(),
            "partition {}: the same rows in other pages",
            p.id
        );
        let strategy_rows =
            id_hashes(rowhash::row_hashes(source.as_mut(), &p, 101).await.unwrap()).await;
        assert_eq!(strategy_rows, generic_rows, "partition {}", p.id);
        let Some(pushdown) = source.hash_pushdown() else {
            continue;
        };
        assert_eq!(
            pushdown.checksum(&p).await.unwrap(),
            generic,
            "partition {}",
            p.id
        );
        let own = id_hashes(pushdown.row_hashes(&p, 101).await.unwrap()).await;
        assert_eq!(own, generic_rows, "partition {}", p.id);
        if p.ranges.is_empty() {
            continue;
        }
        // Buckets of 16 ids from the range's start: each bucket's checksum
        // is that of the generic row hashes of its ids.
        let buckets = Buckets {
            dim: 0,
            origin: 1,
            width: 16,
        };
        let by_bucket = pushdown
            .bucket_checksums(&p, buckets)
            .await
            .unwrap()
            .expect("an integer range is bucketed");
        let mut expected: Vec<(i64, Checksum)> = Vec::new();
        for (id, hash) in &generic_rows {
            let bucket = (id - buckets.origin).div_euclid(buckets.width);
            if expected.last().is_none_or(|(b, _)| *b != bucket) {
                expected.push((bucket, Checksum::default()));
            }
            rowhash::checksum_add(&mut expected.last_mut().unwrap().1, *hash);
        }
        assert_eq!(by_bucket, expected, "partition {}", p.id);
        let which: Vec<i64> = expected.iter().map(|(b, _)| *b).step_by(3).collect();
        let in_buckets = id_hashes(
            pushdown
                .bucket_row_hashes(&p, buckets, &which, 7)
                .await
                .unwrap(),
        )
        .await;
        let wanted: Vec<(i64, i64)> = generic_rows
            .iter()
            .filter(|(id, _)| which.contains(&(id - 1).div_euclid(16)))
            .copied()
            .collect();
        assert_eq!(in_buckets, wanted, "partition {}", p.id);
    }
}

async fn upserts_count_what_they_did(h: &dyn Harness) {
    let (ds, _guard) = h.datastore("upsert").await;
    let t = filled(&ds, "items", &rows(1..=100, "")).await;
    let mut sink = open_sink(&t, &specs()).await.unwrap();
    sink.prepare().await.unwrap();
    assert!(!sink.started_empty());
    // 50 unchanged, 40 rewritten of which 35 changed (a NULL name, every
    // seventh, stays NULL), 30 new.
    let again = concat_batches(
        &arrow_schema(&specs()),
        &[rows(1..=50, ""), rows(51..=90, " v2"), rows(101..=130, "")],
    )
    .unwrap();
    let stats = write(sink.as_mut(), &by_id(1..200), Some(&again), None).await;
    assert_eq!(
        (stats.inserted, stats.updated, stats.unchanged),
        (30, 35, 55),
        "{stats:?}"
    );
    let expected = concat_batches(
        &arrow_schema(&specs()),
        &[rows(1..=50, ""), rows(51..=90, " v2"), rows(91..=130, "")],
    )
    .unwrap();
    assert_eq!(read_all(&t).await, expected);
}

async fn deletes_remove_exactly_their_keys(h: &dyn Harness) {
    let (ds, _guard) = h.datastore("delete").await;
    let t = filled(&ds, "items", &rows(1..=100, "")).await;
    let mut sink = open_sink(&t, &specs()).await.unwrap();
    sink.prepare().await.unwrap();
    let key_schema = Arc::new(arrow_schema(&specs()).project(&[0]).unwrap());
    let keys = RecordBatch::try_new(
        key_schema,
        vec![Arc::new(Int64Array::from(vec![3, 4, 77, 5000]))],
    )
    .unwrap();
    let stats = write(sink.as_mut(), &by_id(1..200), None, Some(&keys)).await;
    assert_eq!(stats.deleted, 3, "{stats:?}");
    let left = read_all(&t).await;
    let ids: Vec<i64> = left.column(0).as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(ids.len(), 97);
    assert!(!ids.iter().any(|i| [3, 4, 77].contains(i)));
}

/// The keys of a `read_keys` result, sorted, or `None` when the source
/// cannot select by key (the caller then reads and filters).
async fn keys_read(
    source: &mut dyn Source,
    p: &Partition,
    keys: &RecordBatch,
) -> Option<Vec<(i64, String)>> {
    let stream = source.read_keys(p, keys, 2).await.unwrap()?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let mut out: Vec<(i64, String)> = batches
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_primitive::<Int64Type>().clone();
            let names = b.column(1).as_string::<i32>().clone();
            (0..b.num_rows()).map(move |i| (ids.value(i), names.value(i).to_string()))
        })
        .collect();
    out.sort();
    Some(out)
}

/// A select by key returns exactly the partition's rows with those keys,
/// for one integer key and for a composite (integer, text) key, in pages
/// no larger than asked. Every connector here selects by key.
async fn reads_by_key_return_exactly_those_rows(h: &dyn Harness) {
    let (ds, _guard) = h.datastore("by_key").await;
    let t = filled(&ds, "items", &rows(1..=ROWS, "")).await;
    let mut source = open_source(&t, &columns()).await.unwrap();
    source.check().await.unwrap();
    let ids = RecordBatch::try_new(
        Arc::new(arrow_schema(&specs()).project(&[0]).unwrap()),
        vec![Arc::new(Int64Array::from(vec![8, 3, 4, 77, 5000]))],
    )
    .unwrap();
    let name = |i: i64| format!("näme {i}");
    assert_eq!(
        keys_read(source.as_mut(), &by_id(1..50), &ids).await,
        Some(vec![(3, name(3)), (4, name(4)), (8, name(8))])
    );

    let composite = vec![
        column("grp", ColumnType::Int64, true, true),
        column("code", ColumnType::Text, true, true),
        column("qty", ColumnType::Int64, false, true),
    ];
    let codes = ["a", "b'c", "ä", "a,\"b\""];
    let grp: Vec<i64> = (1..=20).flat_map(|g| [g; 4]).collect();
    let code: Vec<&str> = (1..=20).flat_map(|_| codes).collect();
    let qty: Vec<i64> = (0..80).collect();
    let schema = arrow_schema(&specs_of(&composite));
    let all = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(grp)),
            Arc::new(StringArray::from(code)),
            Arc::new(Int64Array::from(qty)),
        ],
    )
    .unwrap();
    let pairs = table(&ds, "pairs");
    let mut sink = open_sink(&pairs, &specs_of(&composite)).await.unwrap();
    sink.prepare().await.unwrap();
    write(sink.as_mut(), &Partition::whole(), Some(&all), None).await;
    let mut source = open_source(&pairs, &composite).await.unwrap();
    source.check().await.unwrap();
    let keys = RecordBatch::try_new(
        Arc::new(schema.project(&[0, 1]).unwrap()),
        vec![
            Arc::new(Int64Array::from(vec![3, 3, 7, 7, 99, 4])),
            Arc::new(StringArray::from(vec![
                "a", "ä", "b'c", "a,\"b\"", "a", "zz",
            ])),
        ],
    )
    .unwrap();
    let s = |g: i64, c: &str| (g, c.to_string());
    assert_eq!(
        keys_read(source.as_mut(), &Partition::whole(), &keys).await,
        Some(vec![s(3, "a"), s(3, "ä"), s(7, "a,\"b\""), s(7, "b'c")])
    );
    let grp_range = Partition {
        id: "grp_1_5".into(),
        ranges: vec![(
            PartitionDimensionRef {
                name: "grp".into(),
                column: ColumnRef::bare("grp"),
                kind: PartitionKind::Integer,
                date_only: false,
            },
            DimRange::Range {
                start: PartitionValue::Int(1),
                end: PartitionValue::Int(5),
            },
        )],
    };
    assert_eq!(
        keys_read(source.as_mut(), &grp_range, &keys).await,
        Some(vec![s(3, "a"), s(3, "ä")]),
        "only the partition's rows"
    );
}

/// An aborted partition leaves neither rows nor a checkpoint; a committed
/// one is listed with the run's fingerprint and the table's identity.
async fn aborted_partitions_leave_nothing(h: &dyn Harness) {
    let (ds, _guard) = h.datastore("abort").await;
    let t = table(&ds, "items");
    let mut sink = open_sink(&t, &specs()).await.unwrap();
    sink.prepare().await.unwrap();
    assert!(sink.started_empty());
    let p1 = by_id(1..101);
    write(sink.as_mut(), &p1, Some(&rows(1..=100, "")), None).await;
    let p2 = by_id(101..201);
    sink.begin_partition(&p2, WriteMode::Merge).await.unwrap();
    sink.write(&rows(101..=200, "")).await.unwrap();
    sink.abort_partition().await.unwrap();
    assert_eq!(read_all(&t).await, rows(1..=100, ""));
    let checkpoints = sink.checkpoints(&run()).await.unwrap();
    assert_eq!(
        checkpoints
            .iter()
            .map(|c| (c.partition_id.as_str(), c.rows, c.fingerprint.as_deref()))
            .collect::<Vec<_>>(),
        [(p1.id.as_str(), 100, Some("f1"))]
    );
    assert_eq!(
        checkpoints[0].table_identity.as_deref(),
        Some(sink.table_identity().as_str())
    );
    // A sink dropped mid-partition (a crash) commits nothing either; the
    // partition written again afterwards is whole.
    sink.begin_partition(&p2, WriteMode::Merge).await.unwrap();
    sink.write(&rows(101..=150, "")).await.unwrap();
    drop(sink);
    assert_eq!(read_all(&t).await, rows(1..=100, ""));
    let mut sink = open_sink(&t, &specs()).await.unwrap();
    sink.prepare().await.unwrap();
    write(sink.as_mut(), &p2, Some(&rows(101..=200, "")), None).await;
    assert_eq!(read_all(&t).await, rows(1..=200, ""));
}

fn specs_of(columns: &[MappedColumn]) -> Vec<ColumnSpec> {
    columns.iter().map(|c| c.spec.clone()).collect()
}

macro_rules! conformance {
    ($connector:ident, $harness:expr) => {
        mod $connector {
            use super::*;

            #[tokio::test]
            async fn read_back_equals_what_was_written() {
                super::read_back_equals_what_was_written(&$harness).await
            }

            #[tokio::test]
            async fn check_names_a_missing_column() {
                super::check_names_a_missing_column(&$harness).await
            }

            #[tokio::test]
            async fn hashes_agree_with_the_generic_path() {
                super::hashes_agree_with_the_generic_path(&$harness).await
            }

            #[tokio::test]
            async fn upserts_count_what_they_did() {
                super::upserts_count_what_they_did(&$harness).await
            }

            #[tokio::test]
            async fn deletes_remove_exactly_their_keys() {
                super::deletes_remove_exactly_their_keys(&$harness).await
            }

            #[tokio::test]
            async fn reads_by_key_return_exactly_those_rows() {
                super::reads_by_key_return_exactly_those_rows(&$harness).await
            }

            #[tokio::test]
            async fn aborted_partitions_leave_nothing() {
                super::aborted_partitions_leave_nothing(&$harness).await
            }

            #[tokio::test]
            async fn occupied_buckets_are_exactly_the_ranges_with_rows() {
                super::buckets::occupied_buckets_are_exactly_the_ranges_with_rows(&$harness).await
            }

            #[tokio::test]
            async fn every_type_round_trips() {
                super::types::every_type_round_trips(&$harness).await
            }
        }
    };
}

conformance!(postgres, Postgres);
conformance!(sqlite, Sqlite(tempfile::tempdir().unwrap()));
conformance!(memory, Memory);
conformance!(mysql, MySql);
conformance!(clickhouse, ClickHouse);
#[cfg(feature = "delta")]
conformance!(delta, Delta(tempfile::tempdir().unwrap()));

#[test]
fn the_memory_connector_is_registered_as_the_others_are() {
    let types = connectors::registry::types();
    let mut want = vec!["postgres", "sqlite", "memory", "mysql", "clickhouse"];
    if cfg!(feature = "delta") {
        want.push("delta");
        assert!(!types.is_planned("delta"));
    }
    assert_eq!(types.names(), want);
    // MariaDB is the same connector under another name.
    assert_eq!(types.get("MariaDB").map(|t| t.name()), Some("mysql"));
    assert!(!types.is_planned("mysql"));
    assert!(!types.is_planned("clickhouse"));
}
