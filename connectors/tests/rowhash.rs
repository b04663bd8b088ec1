//! Row hashes agree across engines: the same rows hashed by PostgreSQL (SQL),
//! by SQLite (the registered function) and by Rust over Arrow give the same
//! 64-bit hash row by row, and the same partition checksums.
//!
//! Needs the local PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth,
//! database `test`). Each test works in its own schema
//! `rowhash_<pid>_<test>`, dropped at the end even when the test fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use common::column;
use connectors::postgres::PostgresSource;
use connectors::rowhash::{self, ROW_HASH_COLUMN};
use connectors::sqlite::{SqliteSink, SqliteSource};
use connectors::{Buckets, Checksum, HashPushdown, RunIdentity, Sink, Source};
use futures_util::StreamExt;
use planner::datastores::Datastore;
use planner::model::{MappedColumn, TableRef};
use planner::partition::{DimRange, Partition, PartitionDimensionRef, PartitionValue};
use planner::types::{ColumnSpec, ColumnType, PartitionKind};
use planner::ColumnRef;
use planner::{SqlDialect, SqlExpr};
use tokio_postgres::Client;

mod common;
use common::{connect, pg_datastore, Schema};

fn table_ref(datastore: Datastore, schema: Option<&str>, table: &str) -> TableRef {
    TableRef {
        datastore,
        schema: schema.map(str::to_string),
        table: table.into(),
        alias: None,
        joins: Vec::new(),
        filters: Vec::new(),
        grouped: None,
    }
}

/// Every configured type, a composite key, and one column left out of the hash.
fn columns() -> Vec<MappedColumn> {
    use ColumnType::*;
    vec![
        column("id", Int64, true, true),
        column("region", String { max_len: Some(8) }, true, true),
        column("small", Int16, false, true),
        column("i4", Int32, false, true),
        column("big", Int64, false, true),
        column("f4", Float32, false, true),
        column("f8", Float64, false, true),
        column(
            "amount",
            Decimal {
                precision: 12,
                scale: 3,
            },
            false,
            true,
        ),
        // An int column read as a decimal, a real read as a double: the
        // configured type, not the stored one, decides the text.
        column(
            "int_as_dec",
            Decimal {
                precision: 10,
                scale: 2,
            },
            false,
            true,
        ),
        column("f4_as_f8", Float64, false, true),
        column("flag", Bool, false, true),
        column("name", String { max_len: Some(40) }, false, true),
        column("padded", Text, false, true),
        column("note", Text, false, true),
        column("doc", Json, false, true),
        column("bin", Binary, false, true),
        column("day", Date, false, true),
        column("at", Time, false, true),
        column("ts", Timestamp, false, true),
        column("tz", TimestampTz, false, true),
        column("u", Uuid, false, true),
        column("extra", Text, false, false),
    ]
}

const CREATE: &str = "CREATE TABLE t (
    id bigint NOT NULL, region varchar(8) NOT NULL, small smallint, i4 integer, big bigint,
    f4 real, f8 double precision, amount numeric(12,3), int_as_dec integer, f4_as_f8 real,
    flag boolean, name varchar(40), padded char(6), note text, doc jsonb, bin bytea, day date,
    at time, ts timestamp, tz timestamptz, u uuid, extra text,
    PRIMARY KEY (id, region))";

const ROWS: &str = "INSERT INTO t VALUES
 (1, 'eu', 1, 10, 100, 1.5, 2.25, 12.345, 7, 0.1, true, 'alice', 'ab', 'plain', '{\"b\": [1, 2], \"a\": \"x\"}',
  '\\x00ff10', '2024-01-15', '10:00:00', '2024-01-15 10:00:00', '2024-01-15 10:00:00+02', '67e55044-10b1-426f-9247-bb680e5fe0c8', 'x'),
 (2, 'eu', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 'eu', -32768, -2147483648, -9223372036854775808, '-0', '-0', -12.345, -5, '-0', false, '', '', '', '[]',
  '\\x', '1969-12-31', '00:00:00', '1969-12-31 23:59:59.999999', '1969-12-31 23:59:59.999999+00', '00000000-0000-0000-0000-000000000000', ''),
 (4, 'eu', 32767, 2147483647, 9223372036854775807, 'NaN', 'NaN', -0.001, 0, 'NaN', true, 'héllo wörld ✓', 'é', '日本語 🎉', '{\"k\": \"ü\"}',
  '\\xdeadbeef', '1900-01-01', '23:59:59.999999', '1900-01-01 00:00:00.000001', '1900-01-01 00:00:00.000001+00', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', NULL),
 (5, 'us', 0, 0, 0, 'Infinity', '-Infinity', 0, -1, '-Infinity', false, 'ab', NULL, 'c', 'null',
  '\\x61', '1970-01-01', '12:34:56.000001', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'y'),
 (5, 'eu', 0, 0, 0, 3.4028235e38, 1e-300, 999999999.999, 12345678, 1e-38, false, 'a', NULL, 'bc', '\"s\"',
  '\\x62', '2999-12-31', '00:00:00.5', '2262-04-11 23:47:16.854775', '1677-09-21 00:12:43.145225+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'z'),
 (6, 'asia', 7, 7, 7, 1, -2.5, -999999999.999, 99999999, 16777217, true, NULL, '', NULL, '{}',
  '\\x', '0001-01-01', '00:00:00.000001', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', NULL, NULL),
 (7, 'eu', NULL, 1, NULL, 1, NULL, 0.5, NULL, 1, NULL, 'N', 'N', 'N', '1',
  NULL, NULL, NULL, '2024-02-29 12:00:00.123456', '2024-02-29 12:00:00.123456-05:30', NULL, NULL)";

/// `key columns → hash`, key formatted as text.
type Hashes = BTreeMap<String, i64>;

fn key_of(batch: &RecordBatch, keys: &[usize], row: usize) -> String {
    let opts = FormatOptions::default().with_null("NULL");
    keys.iter()
        .map(|&i| {
            ArrayFormatter::try_new(batch.column(i).as_ref(), &opts)
                .unwrap()
                .value(row)
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Hashes in Rust of the rows `read` streams.
async fn hashes_of_read(source: &mut dyn Source, cols: &[MappedColumn], p: &Partition) -> Hashes {
    let keys: Vec<usize> = (0..cols.len()).filter(|&i| cols[i].spec.unique).collect();
    let mut out = Hashes::new();
    let mut stream = source.read(p, 3).await.unwrap();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        let h = rowhash::hash_rows(&batch, cols);
        assert_eq!(h.null_count(), 0);
        for row in 0..batch.num_rows() {
            assert!(out
                .insert(key_of(&batch, &keys, row), h.value(row))
                .is_none());
        }
    }
    out
}

/// The source's hashing in its database, which these tests are about.
fn pushdown(source: &mut dyn Source) -> &mut dyn HashPushdown {
    source
        .hash_pushdown()
        .expect("PostgreSQL and SQLite hash where their data lives")
}

/// Hashes the database computes, streamed by `row_hashes`.
async fn hashes_of_source(source: &mut dyn Source, cols: &[MappedColumn], p: &Partition) -> Hashes {
    collect_hashes(pushdown(source).row_hashes(p, 3).await.unwrap(), cols, 3).await
}

/// A `row_hashes`-shaped stream (keys, then the hash; pages of at most
/// `page_rows`) by key.
async fn collect_hashes(
    mut stream: connectors::BatchStream<'_>,
    cols: &[MappedColumn],
    page_rows: usize,
) -> Hashes {
    let nkeys = cols.iter().filter(|c| c.spec.unique).count();
    let keys: Vec<usize> = (0..nkeys).collect();
    let mut out = Hashes::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert_eq!(batch.schema(), rowhash::row_hash_schema(cols));
        assert_eq!(batch.schema().field(nkeys).name(), ROW_HASH_COLUMN);
        assert!(batch.num_rows() <= page_rows);
        let h = batch.column(nkeys).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            assert!(out
                .insert(key_of(&batch, &keys, row), h.value(row))
                .is_none());
        }
    }
    out
}

fn checksum_of(h: &Hashes) -> Checksum {
    let mut c = Checksum::default();
    for v in h.values() {
        rowhash::checksum_add(&mut c, *v);
    }
    c
}

/// Copies the PostgreSQL rows into a SQLite table through the SQLite sink,
/// as a sync would.
async fn load_sqlite(pg: &mut PostgresSource, cols: &[MappedColumn], file: &Path) -> TableRef {
    let table = table_ref(common::sqlite_datastore("lite", file), None, "t");
    let specs: Vec<ColumnSpec> = cols.iter().map(|c| c.spec.clone()).collect();
    let mut sink = SqliteSink::open(&table, &specs).await.unwrap();
    sink.prepare().await.unwrap();
    let whole = Partition::whole();
    sink.begin_partition(&whole, connectors::WriteMode::Merge)
        .await
        .unwrap();
    {
        let mut stream = pg.read(&whole, 1000).await.unwrap();
        while let Some(batch) = stream.next().await {
            sink.write(&batch.unwrap()).await.unwrap();
        }
    }
    let run = RunIdentity {
        pipeline: "rowhash".into(),
        strategy: "hash".into(),
        run_id: "1".into(),
        fingerprint: "test".into(),
    };
    sink.commit_partition(&run, &whole).await.unwrap();
    table
}

fn id_range(start: i64, end: i64) -> Partition {
    Partition {
        id: format!("id_{start}_{end}"),
        ranges: vec![(
            PartitionDimensionRef {
                name: "id".into(),
                column: ColumnRef::bare("id"),
                kind: PartitionKind::Integer,
                date_only: false,
            },
            DimRange::Range {
                start: PartitionValue::Int(start),
                end: PartitionValue::Int(end),
            },
        )],
    }
}

fn ts_partition(range: DimRange) -> Partition {
    Partition {
        id: format!("ts_{range:?}"),
        ranges: vec![(
            PartitionDimensionRef {
                name: "ts".into(),
                column: ColumnRef::bare("ts"),
                kind: PartitionKind::Datetime,
                date_only: false,
            },
            range,
        )],
    }
}

/// `day` in [start, end), bounds as midnight micros.
fn day_range(start: &str, end: &str) -> Partition {
    let micros = |d: &str| {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros()
    };
    Partition {
        id: format!("day_{start}_{end}"),
        ranges: vec![(
            PartitionDimensionRef {
                name: "day".into(),
                column: ColumnRef::bare("day"),
                kind: PartitionKind::Datetime,
                date_only: true,
            },
            DimRange::Range {
                start: PartitionValue::Micros(micros(start)),
                end: PartitionValue::Micros(micros(end)),
            },
        )],
    }
}

/// Rust over `read`, the database's `row_hashes` and its `checksum` agree
/// for `p`; returns the hashes.
async fn agree(source: &mut dyn Source, cols: &[MappedColumn], p: &Partition) -> Hashes {
    let from_read = hashes_of_read(source, cols, p).await;
    let from_db = hashes_of_source(source, cols, p).await;
    assert_eq!(from_read, from_db, "partition {}", p.id);
    assert_eq!(
        pushdown(source).checksum(p).await.unwrap(),
        checksum_of(&from_read),
        "partition {}",
        p.id
    );
    from_read
}

/// The test rows in a PostgreSQL schema of their own and copied into a
/// SQLite file, with a source open on each.
struct Engines {
    client: Client,
    schema: Schema,
    cols: Vec<MappedColumn>,
    pg_table: TableRef,
    pg: PostgresSource,
    lite: SqliteSource,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn engines(test: &str) -> Engines {
    let client = connect().await;
    let schema = Schema::create(&client, &format!("rowhash_{test}")).await;
    client
        .batch_execute(&format!("SET search_path = {}; {CREATE}; {ROWS}", schema.0))
        .await
        .unwrap();
    let cols = columns();
    let pg_table = table_ref(pg_datastore(&schema.0), Some(&schema.0), "t");
    let mut pg = PostgresSource::open(&pg_table, &cols).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{test}.db"));
    let lite_table = load_sqlite(&mut pg, &cols, &file).await;
    let lite = SqliteSource::open(&lite_table, &cols).await.unwrap();
    Engines {
        client,
        schema,
        cols,
        pg_table,
        pg,
        lite,
        file,
        _dir: dir,
    }
}

#[tokio::test]
async fn postgres_sqlite_and_arrow_agree() {
    let Engines {
        client,
        schema,
        cols,
        pg_table,
        mut pg,
        mut lite,
        file,
        _dir,
    } = engines("agree").await;

    let whole = Partition::whole();
    let pg_hashes = agree(&mut pg, &cols, &whole).await;
    let lite_hashes = agree(&mut lite, &cols, &whole).await;
    assert_eq!(pg_hashes.len(), 8);
    assert_eq!(pg_hashes, lite_hashes);
    let distinct: std::collections::HashSet<_> = pg_hashes.values().collect();
    assert_eq!(distinct.len(), pg_hashes.len());
    let full = pg.checksum(&whole).await.unwrap();
    assert_eq!(full, lite.checksum(&whole).await.unwrap());
    assert_eq!(full.rows, 8);

    // Partitions filter exactly like `read`, on both engines.
    let parts = [
        id_range(2, 5),
        id_range(5, 6),
        id_range(100, 200),
        ts_partition(DimRange::Range {
            start: PartitionValue::Micros(-1),
            end: PartitionValue::Micros(1_705_312_800_000_001),
        }),
        ts_partition(DimRange::Null),
        day_range("1969-12-31", "1970-01-02"),
    ];
    let mut parts_sum = Checksum::default();
    for p in &parts[..3] {
        parts_sum = rowhash::checksum_combine(parts_sum, pg.checksum(p).await.unwrap());
    }
    for p in &parts {
        let a = agree(&mut pg, &cols, p).await;
        let b = agree(&mut lite, &cols, p).await;
        assert_eq!(a, b, "partition {}", p.id);
        let want: Hashes = pg_hashes
            .iter()
            .filter(|(k, _)| a.contains_key(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(a, want);
    }
    assert_eq!(parts_sum.rows, 5);
    assert_eq!(
        hashes_of_source(&mut pg, &cols, &parts[3]).await.len(),
        3,
        "ts in [1969-12-31 23:59:59.999999, 2024-01-15 10:00:00.000001)"
    );
    assert_eq!(hashes_of_source(&mut pg, &cols, &parts[4]).await.len(), 1);
    assert_eq!(hashes_of_source(&mut lite, &cols, &parts[5]).await.len(), 2);

    // Source filters apply too.
    let mut filtered_table = pg_table.clone();
    filtered_table.filters =
        vec![SqlExpr::parse("\"region\" = 'eu'", SqlDialect::Postgres).unwrap()];
    let mut filtered = PostgresSource::open(&filtered_table, &cols).await.unwrap();
    assert_eq!(agree(&mut filtered, &cols, &whole).await.len(), 6);

    // A column left out of the hash changes nothing; a hashed one changes
    // the checksum and that row's hash only.
    let lite_conn = rusqlite::Connection::open(&file).unwrap();
    client
        .batch_execute(&format!(
            "UPDATE {}.t SET extra = 'changed' WHERE id = 1",
            schema.0
        ))
        .await
        .unwrap();
    lite_conn
        .execute("UPDATE t SET extra = 'changed' WHERE id = 1", [])
        .unwrap();
    assert_eq!(pg.checksum(&whole).await.unwrap(), full);
    assert_eq!(lite.checksum(&whole).await.unwrap(), full);

    client
        .batch_execute(&format!(
            "UPDATE {}.t SET note = 'plain!' WHERE id = 1",
            schema.0
        ))
        .await
        .unwrap();
    let changed = pg.checksum(&whole).await.unwrap();
    assert_eq!(changed.rows, full.rows);
    assert_ne!(changed.sum, full.sum);
    let after = agree(&mut pg, &cols, &whole).await;
    let differing: Vec<&String> = after
        .iter()
        .filter(|(k, v)| pg_hashes[*k] != **v)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(differing, vec!["1|eu"]);
    assert_ne!(changed, lite.checksum(&whole).await.unwrap());
    lite_conn
        .execute("UPDATE t SET note = 'plain!' WHERE id = 1", [])
        .unwrap();
    assert_eq!(lite.checksum(&whole).await.unwrap(), changed);
    // A NULL is not an empty string.
    lite_conn
        .execute("UPDATE t SET note = NULL WHERE id = 3", [])
        .unwrap();
    assert_ne!(lite.checksum(&whole).await.unwrap(), changed);
}

/// Row hashes `bucket_row_hashes` streams, by key.
async fn hashes_of_buckets(
    source: &mut dyn Source,
    cols: &[MappedColumn],
    p: &Partition,
    buckets: Buckets,
    which: &[i64],
) -> Hashes {
    let stream = pushdown(source)
        .bucket_row_hashes(p, buckets, which, 2)
        .await
        .unwrap();
    collect_hashes(stream, cols, 2).await
}

/// A bucket's checksum is the checksum of the range it covers, on both
/// engines; empty buckets are left out; `bucket_row_hashes` gives the row
/// hashes of exactly the buckets asked for.
#[tokio::test]
async fn buckets_are_the_checksums_of_their_ranges() {
    // Every field bound: the schema and the folder live until the end.
    let Engines {
        client: _client,
        schema: _schema,
        cols,
        pg_table,
        mut pg,
        mut lite,
        file: _file,
        _dir,
    } = engines("buckets").await;

    // ids 1 to 7 (5 twice) in [1, 20), three ids a bucket from 1:
    // bucket 0 = [1, 4), 1 = [4, 7) with both 5s, 2 = [7, 10); 3 to 6 are empty.
    let p = id_range(1, 20);
    let buckets = Buckets {
        dim: 0,
        origin: 1,
        width: 3,
    };
    let mut want = Vec::new();
    for b in 0..7 {
        let c = pg.checksum(&id_range(1 + 3 * b, 4 + 3 * b)).await.unwrap();
        if c.rows > 0 {
            want.push((b, c));
        }
    }
    assert_eq!(
        want.iter().map(|(b, c)| (*b, c.rows)).collect::<Vec<_>>(),
        vec![(0, 3), (1, 4), (2, 1)]
    );
    let from_pg = pg.bucket_checksums(&p, buckets).await.unwrap();
    assert_eq!(from_pg.as_ref(), Some(&want));
    assert_eq!(lite.bucket_checksums(&p, buckets).await.unwrap(), from_pg);

    for which in [vec![0], vec![0, 2], vec![1, 5], vec![]] {
        let mut want = Hashes::new();
        for &b in &which {
            want.extend(hashes_of_source(&mut pg, &cols, &id_range(1 + 3 * b, 4 + 3 * b)).await);
        }
        assert_eq!(
            hashes_of_buckets(&mut pg, &cols, &p, buckets, &which).await,
            want,
            "PostgreSQL, buckets {which:?}"
        );
        assert_eq!(
            hashes_of_buckets(&mut lite, &cols, &p, buckets, &which).await,
            want,
            "SQLite, buckets {which:?}"
        );
    }

    // Buckets too wide to list their keys (sparse keys) are read by bucket.
    let wide = Buckets {
        dim: 0,
        origin: 1,
        width: 100_000,
    };
    let everything = id_range(1, 200_001);
    let want = hashes_of_source(&mut pg, &cols, &id_range(1, 100_001)).await;
    assert_eq!(want.len(), 8, "ids 1 to 7, 5 twice");
    for source in [&mut pg as &mut dyn Source, &mut lite] {
        assert_eq!(
            hashes_of_buckets(source, &cols, &everything, wide, &[0]).await,
            want
        );
    }

    // The source's filters apply to buckets too.
    let mut filtered_table = pg_table.clone();
    filtered_table.filters =
        vec![SqlExpr::parse("\"region\" = 'eu'", SqlDialect::Postgres).unwrap()];
    let mut filtered = PostgresSource::open(&filtered_table, &cols).await.unwrap();
    let eu = filtered
        .bucket_checksums(&p, buckets)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        eu.iter().map(|(b, c)| (*b, c.rows)).collect::<Vec<_>>(),
        vec![(0, 3), (1, 2), (2, 1)]
    );

    // Only an integer range can be cut into buckets.
    let ts = ts_partition(DimRange::Range {
        start: PartitionValue::Micros(0),
        end: PartitionValue::Micros(1_000_000),
    });
    assert_eq!(pg.bucket_checksums(&ts, buckets).await.unwrap(), None);
    assert_eq!(lite.bucket_checksums(&ts, buckets).await.unwrap(), None);
    assert_eq!(
        pg.bucket_checksums(&Partition::whole(), buckets)
            .await
            .unwrap(),
        None
    );
}

/// Values stored by other tools in SQLite's lenient forms hash like the
/// canonical forms SyncHub writes.
#[tokio::test]
async fn sqlite_lenient_storage_hashes_like_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lenient.db");
    {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(
            "CREATE TABLE a (id INTEGER, amount TEXT, ts TEXT, tz TEXT, u TEXT, flag INTEGER, f REAL, d TEXT);
             CREATE TABLE b (id INTEGER, amount, ts, tz, u, flag, f, d);
             INSERT INTO a VALUES (1, '-12.500', '2024-01-15 10:00:00.000000', '2024-01-15 08:00:00.000000+00:00',
                                   '67e55044-10b1-426f-9247-bb680e5fe0c8', 1, 'NaN', '2024-01-15');
             INSERT INTO b VALUES (1, -12.5, '2024-01-15T10:00:00', '2024-01-15T10:00:00+02:00',
                                   X'67E5504410B1426F9247BB680E5FE0C8', 'true', 'NaN', '2024-01-15 00:00:00');",
        )
        .unwrap();
    }
    use ColumnType::*;
    let cols = vec![
        column("id", Int64, true, true),
        column(
            "amount",
            Decimal {
                precision: 10,
                scale: 3,
            },
            false,
            true,
        ),
        column("ts", Timestamp, false, true),
        column("tz", TimestampTz, false, true),
        column("u", Uuid, false, true),
        column("flag", Bool, false, true),
        column("f", Float64, false, true),
        column("d", Date, false, true),
    ];
    let ds = common::sqlite_datastore("lite", &file);
    let mut a = SqliteSource::open(&table_ref(ds.clone(), None, "a"), &cols)
        .await
        .unwrap();
    let mut b = SqliteSource::open(&table_ref(ds, None, "b"), &cols)
        .await
        .unwrap();
    let whole = Partition::whole();
    let ha = agree(&mut a, &cols, &whole).await;
    let hb = agree(&mut b, &cols, &whole).await;
    assert_eq!(ha, hb);
}

/// `checksum` over 1,000,000 rows × 8 columns against a bare
/// `count(*), sum(hashtext(t::text))`. Prints the ratio; asserts no timing.
/// Run with `cargo test -p connectors --test rowhash -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "speed check: 1,000,000 rows"]
async fn checksum_speed() {
    let client = connect().await;
    let schema = Schema::create(&client, "rowhash_speed").await;
    client
        .batch_execute(&format!(
            "SET search_path = {s};
             CREATE TABLE t AS SELECT g::bigint AS id, (g % 1000)::int AS qty, g * 1.5::float8 AS price,
               ((g % 100000) / 100.0)::numeric(12,2) AS amount, 'name ' || g AS name,
               timestamp '2020-01-01' + g * interval '1 second' AS ts, g % 2 = 0 AS flag,
               date '2020-01-01' + (g % 1000) AS day
             FROM generate_series(1, 1000000) g;
             ALTER TABLE t ADD PRIMARY KEY (id);",
            s = schema.0
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!("VACUUM ANALYZE {}.t", schema.0))
        .await
        .unwrap();
    use ColumnType::*;
    let cols = vec![
        column("id", Int64, true, true),
        column("qty", Int32, false, true),
        column("price", Float64, false, true),
        column(
            "amount",
            Decimal {
                precision: 12,
                scale: 2,
            },
            false,
            true,
        ),
        column("name", Text, false, true),
        column("ts", Timestamp, false, true),
        column("flag", Bool, false, true),
        column("day", Date, false, true),
    ];
    let mut pg = PostgresSource::open(
        &table_ref(pg_datastore(&schema.0), Some(&schema.0), "t"),
        &cols,
    )
    .await
    .unwrap();
    let whole = Partition::whole();
    let bare_sql = format!(
        "SELECT count(*), sum(hashtext(t::text)) FROM {}.t",
        schema.0
    );
    // Warm the cache and the connections once.
    pg.checksum(&whole).await.unwrap();
    client.query_one(&bare_sql, &[]).await.unwrap();
    let mut ours = f64::MAX;
    let mut bare = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let c = pg.checksum(&whole).await.unwrap();
        ours = ours.min(t.elapsed().as_secs_f64());
        assert_eq!(c.rows, 1_000_000);
        let t = Instant::now();
        client.query_one(&bare_sql, &[]).await.unwrap();
        bare = bare.min(t.elapsed().as_secs_f64());
    }
    println!(
        "checksum: {ours:.3}s, bare count+sum(hashtext(t::text)): {bare:.3}s, ratio {:.2}",
        ours / bare
    );
}

/// A text `hash_key` column holds the 64 bits as 16 lowercase hex digits;
/// anything else reads as no hash (0), so the row is rewritten.
#[test]
fn hash_hex_round_trips_and_rejects_other_text() {
    use connectors::rowhash::{hash_from_hex, hash_hex};
    for h in [0, 1, -1, i64::MIN, i64::MAX, 0x0123_4567_89ab_cdef] {
        assert_eq!(hash_from_hex(&hash_hex(h)), Some(h));
    }
    assert_eq!(hash_hex(-1), "ffffffffffffffff");
    assert_eq!(hash_hex(255), "00000000000000ff");
    for bad in [
        "",
        "ff",
        "FFFFFFFFFFFFFFFF",
        "0x00000000000000f",
        "000000000000000g",
        "00000000000000000",
    ] {
        assert_eq!(hash_from_hex(bad), None, "{bad:?}");
    }
}
