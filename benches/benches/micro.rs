//! Micro-benchmarks of the hot paths a sync's rows go through, each reported
//! in rows per second (`Throughput::Elements`):
//!
//! - `channel`: `operators::row_channel`, batches sent and received between
//!   two tokio tasks, at the page size a sync uses and at a small one (the
//!   per-message cost);
//! - `rowhash`: `connectors::rowhash::hash_rows` over a realistic 8-column
//!   batch (what the hash strategy computes on the Rust side);
//! - `keyset`: `operators::keys::KeySet::mask`, by a bigint key and by a
//!   composite (bigint, text) key;
//! - `batcher`: `operators::batcher::Batcher` merging small pages and slicing
//!   big ones to its target size;
//! - `pg_codec`: Arrow → PostgreSQL binary COPY (`BatchEncoder::encode`) and
//!   binary values → Arrow (`ColumnDecoder::push` / `finish`);
//! - `sqlite_codec`: Arrow values bound as a prepared INSERT's parameters
//!   (`ColumnEncoder::bind`, SQLite's copy of each text included, the insert
//!   itself not), and a stored table's rows stepped through and decoded into
//!   Arrow (`sqlite::codec::ColumnDecoder`), in memory.
//!
//! `cargo bench -p synchub-benches --bench micro` runs them all in a few
//! minutes on 2 cores; `cargo bench -p synchub-benches --bench micro -- rowhash`
//! runs one group.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use bytes::{Buf, BytesMut};
use connectors::postgres::codec::{
    write_copy_header, write_copy_trailer, BatchEncoder, ColumnDecoder,
};
use connectors::rowhash::hash_rows;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use operators::batcher::Batcher;
use operators::keys::KeySet;
use operators::{row_channel, Message, Operator, Output};
use planner::model::{MappedColumn, Pipeline};
use planner::partition::Partition;
use planner::types::{arrow_schema, ColumnSpec, ColumnType};
use planner::Datastores;
use tokio_postgres::types::Type;

/// Rows of the batch most benchmarks work on: a typical page.
const BATCH_ROWS: usize = 10_000;

/// The columns of the benchmark table as `synchub` maps them (loaded
/// through the planner from a pipeline, as a run gets them), each with the
/// PostgreSQL type of its destination column.
fn columns() -> Vec<(MappedColumn, Type)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ds = dir.path().join("datastores.yaml");
    std::fs::write(
        &ds,
        "datastores:
  src: {type: postgres, connection: {host: 127.0.0.1, user: postgres, dbname: test}}
  dst: {type: postgres, connection: {host: 127.0.0.1, user: postgres, dbname: test}}
",
    )
    .expect("datastores.yaml");
    let file = dir.path().join("items.yaml");
    std::fs::write(
        &file,
        "name: bench_items
source_provider: {data_backend: {type: postgres, datastore_name: src, table: items}}
destination_provider: {data_backend: {type: postgres, datastore_name: dst, table: items}}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: qty, dest: qty, data_type: int}
  - {source: category, dest: category, data_type: int}
  - {source: price, dest: price, data_type: decimal, precision: 12, scale: 2}
  - {source: title, dest: title, data_type: text}
  - {source: created_at, dest: created_at, data_type: timestamptz}
  - {source: note, dest: note, data_type: text}
  - {source: active, dest: active, data_type: bool}
strategies:
  - {name: full, type: full}
",
    )
    .expect("pipeline");
    let datastores = Datastores::load(&ds, &connectors::registry::types()).expect("datastores");
    let pipeline = Pipeline::load(&file, &datastores).expect("benchmark pipeline");
    pipeline
        .columns
        .into_iter()
        .map(|c| {
            let pg = match c.spec.data_type {
                ColumnType::Int64 => Type::INT8,
                ColumnType::Int32 => Type::INT4,
                ColumnType::Decimal { .. } => Type::NUMERIC,
                ColumnType::Text => Type::TEXT,
                ColumnType::TimestampTz => Type::TIMESTAMPTZ,
                ColumnType::Bool => Type::BOOL,
                other => panic!("no PostgreSQL type for {other} in this benchmark"),
            };
            (c, pg)
        })
        .collect()
}

/// A deterministic pseudo-random sequence (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `rows` rows with the mix of the end-to-end benchmark's table: a bigint
/// key from `first_id`, ints, numeric(12,2), text of 32 to 96 characters, a
/// timestamptz, a text that is NULL one row in five, a bool.
fn batch(first_id: i64, rows: usize) -> RecordBatch {
    let specs: Vec<ColumnSpec> = columns().into_iter().map(|(c, _)| c.spec).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ first_id as u64);
    let ids: Vec<i64> = (first_id..first_id + rows as i64).collect();
    let title = |rng: &mut Rng| {
        let words = 1 + (rng.next() % 3) as usize;
        (0..words)
            .map(|_| format!("{:016x}{:016x}", rng.next(), rng.next()))
            .collect::<String>()
    };
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Int32Array::from_iter_values(
            ids.iter().map(|g| (g % 1000) as i32),
        )),
        Arc::new(Int32Array::from_iter_values(
            ids.iter().map(|g| (g % 37) as i32),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(ids.iter().map(|g| (g * 7919 % 10_000_000) as i128))
                .with_precision_and_scale(12, 2)
                .expect("decimal(12,2)"),
        ),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|_| title(&mut rng)),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                ids.iter().map(|g| 1_704_067_200_000_000 + g * 1_500_000),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter(
            ids.iter()
                .map(|g| (g % 5 != 0).then(|| format!("note {g}"))),
        )),
        Arc::new(BooleanArray::from_iter(
            ids.iter().map(|g| Some(g % 2 == 0)),
        )),
    ];
    RecordBatch::try_new(arrow_schema(&specs), arrays).expect("benchmark batch")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn channel(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("channel");
    const TOTAL_ROWS: usize = 1_000_000;
    for batch_rows in [100, BATCH_ROWS] {
        let one = batch(0, batch_rows);
        group.throughput(Throughput::Elements(TOTAL_ROWS as u64));
        group.bench_function(BenchmarkId::new("send_recv", batch_rows), |b| {
            b.iter(|| {
                rt.block_on(async {
                    // The engine's default: room for 100,000 rows.
                    let (tx, mut rx, _) = row_channel(100_000);
                    let producer = {
                        let one = one.clone();
                        let whole = Arc::new(Partition::whole());
                        tokio::spawn(async move {
                            for _ in 0..TOTAL_ROWS / batch_rows {
                                tx.send(Message::Batch(whole.clone(), one.clone()))
                                    .await
                                    .expect("open");
                            }
                        })
                    };
                    let mut rows = 0;
                    while let Some(msg) = rx.recv().await {
                        rows += msg.rows();
                    }
                    producer.await.expect("producer");
                    assert_eq!(rows, TOTAL_ROWS);
                })
            })
        });
    }
    group.finish();
}

fn rowhash(c: &mut Criterion) {
    let cols: Vec<MappedColumn> = columns().into_iter().map(|(c, _)| c).collect();
    let data = batch(0, BATCH_ROWS);
    let mut group = c.benchmark_group("rowhash");
    group.throughput(Throughput::Elements(BATCH_ROWS as u64));
    group.bench_function("hash_rows_8_columns", |b| {
        b.iter(|| black_box(hash_rows(black_box(&data), &cols)))
    });
    // A full run's whole-partition comparison: the row hash of every column
    // (rowhash::whole_rows), against what it replaced, std's DefaultHasher
    // over Arrow's row encoding.
    let whole = connectors::rowhash::whole_rows(&cols);
    group.bench_function("whole_row_checksum_8_columns", |b| {
        b.iter(|| {
            black_box(connectors::rowhash::checksum_batch(
                black_box(&data),
                &whole,
            ))
        })
    });
    // rowhash::row_encoding_checksum's loop: the row hash's function over
    // Arrow's row encoding.
    group.bench_function("pghash_row_encoding_8_columns", |b| {
        b.iter(|| {
            let batch = black_box(&data);
            let converter = connectors::rowhash::row_converter(batch).expect("converter");
            let mut sum = connectors::Checksum::default();
            connectors::rowhash::add_row_encoding(&mut sum, &converter, batch).expect("rows");
            black_box(sum)
        })
    });
    group.bench_function("default_hasher_row_encoding_8_columns", |b| {
        use std::hash::BuildHasher;
        let hasher =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        b.iter(|| {
            let batch = black_box(&data);
            let converter = connectors::rowhash::row_converter(batch).expect("converter");
            let rows = converter.convert_columns(batch.columns()).expect("rows");
            let mut sum = 0u64;
            for row in rows.iter() {
                sum = sum.wrapping_add(hasher.hash_one(row.as_ref()));
            }
            black_box(sum)
        })
    });
    group.finish();
}

fn keyset(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyset");
    // A partition's worth of destination keys, probed with a page of which
    // half is present.
    const SET_ROWS: usize = 100_000;
    let set_batch = batch(0, SET_ROWS);
    let probe = batch(SET_ROWS as i64 - BATCH_ROWS as i64 / 2, BATCH_ROWS);
    group.throughput(Throughput::Elements(BATCH_ROWS as u64));

    let set = KeySet::new(&[set_batch.column(0).clone()]).expect("key set");
    let keys = [probe.column(0).clone()];
    group.bench_function("mask_bigint", |b| {
        b.iter(|| black_box(set.mask(black_box(&keys)).expect("mask")))
    });

    let set =
        KeySet::new(&[set_batch.column(0).clone(), set_batch.column(4).clone()]).expect("key set");
    let keys = [probe.column(0).clone(), probe.column(4).clone()];
    group.bench_function("mask_bigint_text", |b| {
        b.iter(|| black_box(set.mask(black_box(&keys)).expect("mask")))
    });
    group.finish();
}

fn batcher(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("batcher");
    const TOTAL_ROWS: usize = 400_000;
    const TARGET: usize = 50_000; // planner's DEFAULT_BATCH_ROWS
    for (name, page_rows) in [
        ("merge_pages_of_1000", 1_000),
        ("slice_pages_of_200000", 200_000),
    ] {
        let page = batch(0, page_rows);
        group.throughput(Throughput::Elements(TOTAL_ROWS as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let (tx, mut rx, _) = row_channel(TOTAL_ROWS);
                    let mut out = Output::new(Some(tx));
                    let mut op = Batcher::new(TARGET);
                    let partition = Arc::new(Partition::whole());
                    let produce = async {
                        op.on_partition_start(partition.clone(), &mut out)
                            .await
                            .expect("start");
                        for _ in 0..TOTAL_ROWS / page_rows {
                            op.process_batch(page.clone(), &mut out)
                                .await
                                .expect("batch");
                        }
                        op.on_partition_end(partition, &mut out).await.expect("end");
                        drop(out);
                    };
                    let consume = async {
                        let mut rows = 0;
                        while let Some(msg) = rx.recv().await {
                            rows += msg.rows();
                        }
                        rows
                    };
                    let ((), rows) = tokio::join!(produce, consume);
                    assert_eq!(rows, TOTAL_ROWS);
                })
            })
        });
    }
    group.finish();
}

/// Splits binary COPY data into each row's values, as a source sees them.
fn copy_values(mut data: &[u8]) -> Vec<Vec<Option<&[u8]>>> {
    data.advance(19); // signature, flags, header extension length
    let mut rows = Vec::new();
    loop {
        let fields = data.get_i16();
        if fields < 0 {
            return rows;
        }
        let mut row = Vec::with_capacity(fields as usize);
        for _ in 0..fields {
            let len = data.get_i32();
            if len < 0 {
                row.push(None);
            } else {
                let (value, rest) = data.split_at(len as usize);
                row.push(Some(value));
                data = rest;
            }
        }
        rows.push(row);
    }
}

fn pg_codec(c: &mut Criterion) {
    let cols = columns();
    let data = batch(0, BATCH_ROWS);
    let targets: Vec<(String, Type)> = cols
        .iter()
        .map(|(c, t)| (c.dest.clone(), t.clone()))
        .collect();
    let arrow_types: Vec<_> = data
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let encoder = BatchEncoder::new(&targets, &arrow_types).expect("encoder");

    let mut group = c.benchmark_group("pg_codec");
    group.throughput(Throughput::Elements(BATCH_ROWS as u64));
    let mut buf = BytesMut::new();
    group.bench_function("encode_arrow_to_copy_binary", |b| {
        b.iter(|| {
            buf.clear();
            encoder.encode(black_box(&data), &mut buf).expect("encode");
            black_box(buf.len())
        })
    });

    let mut copy = BytesMut::new();
    write_copy_header(&mut copy);
    encoder.encode(&data, &mut copy).expect("encode");
    write_copy_trailer(&mut copy);
    let rows = copy_values(&copy);
    assert_eq!(rows.len(), BATCH_ROWS);
    let mut decoders: Vec<ColumnDecoder> = cols
        .iter()
        .map(|(c, t)| ColumnDecoder::new(&c.dest, t, &c.spec.data_type).expect("decoder"))
        .collect();
    group.bench_function("decode_binary_to_arrow", |b| {
        b.iter(|| {
            for row in &rows {
                for (dec, raw) in decoders.iter_mut().zip(row) {
                    dec.push(*raw).expect("decode");
                }
            }
            let arrays: Vec<ArrayRef> = decoders.iter_mut().map(|d| d.finish()).collect();
            black_box(arrays)
        })
    });
    group.finish();
}

fn sqlite_codec(c: &mut Criterion) {
    use connectors::sql::{Dialect, SqliteDialect};
    use connectors::sqlite::codec::{self, ColumnEncoder, TextBuf};
    let specs: Vec<ColumnSpec> = columns().into_iter().map(|(c, _)| c.spec).collect();
    let data = batch(0, BATCH_ROWS);
    let conn = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
    let ddl = specs
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                SqliteDialect.quote_ident(&c.name),
                SqliteDialect.type_ddl(&c.data_type)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    conn.execute_batch(&format!("CREATE TABLE t ({ddl})"))
        .expect("table");
    let placeholders = (1..=specs.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut insert = conn
        .prepare(&format!("INSERT INTO t VALUES ({placeholders})"))
        .expect("insert");
    let encoders: Vec<ColumnEncoder> = specs
        .iter()
        .enumerate()
        .map(|(i, c)| ColumnEncoder::new(data.column(i), &c.data_type).expect("encoder"))
        .collect();

    let mut group = c.benchmark_group("sqlite_codec");
    group.throughput(Throughput::Elements(BATCH_ROWS as u64));
    let mut scratch = TextBuf::new();
    group.bench_function("encode_and_bind", |b| {
        b.iter(|| {
            for row in 0..BATCH_ROWS {
                for (i, enc) in encoders.iter().enumerate() {
                    enc.bind(&mut insert, i + 1, row, &mut scratch)
                        .expect("bind");
                }
            }
        })
    });

    // The table filled once, in the forms the sink stores.
    for row in 0..BATCH_ROWS {
        for (i, enc) in encoders.iter().enumerate() {
            enc.bind(&mut insert, i + 1, row, &mut scratch)
                .expect("bind");
        }
        insert.raw_execute().expect("insert");
    }
    let mut select = conn.prepare("SELECT * FROM t").expect("select");
    let mut decoders: Vec<codec::ColumnDecoder> = specs
        .iter()
        .map(|c| codec::ColumnDecoder::new(&c.data_type))
        .collect();
    group.bench_function("step_and_decode_to_arrow", |b| {
        b.iter(|| {
            let mut rows = select.query([]).expect("query");
            while let Some(row) = rows.next().expect("step") {
                for (i, dec) in decoders.iter_mut().enumerate() {
                    dec.push(row.get_ref(i).expect("value")).expect("decode");
                }
            }
            let arrays: Vec<ArrayRef> = decoders.iter_mut().map(|d| d.finish()).collect();
            black_box(arrays)
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = micro;
    config = config();
    targets = channel, rowhash, keyset, batcher, pg_codec, sqlite_codec
}
criterion_main!(micro);
