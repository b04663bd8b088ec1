//! PostgreSQL source and sink.
//!
//! Reads use the extended protocol with binary results (values bound as
//! parameters, rows streamed as they arrive). Writes stream binary COPY into a
//! temporary staging table, then merge with `INSERT … ON CONFLICT … DO UPDATE
//! … WHERE … IS DISTINCT FROM …` and write the checkpoint in the same
//! transaction.

pub mod codec;
mod tls;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt, StreamExt};
use planner::datastores::{redact_url_password, Datastore, SslMode};
use planner::model::{quote_ident, MappedColumn, TableRef};
use planner::partition::{ColumnBounds, Partition, PartitionDimension, PartitionValue};
use planner::types::{arrow_schema, ColumnSpec};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, CopyInSink, NoTls};

use crate::conform::{check_fits, keyed_batch, value_error};
use crate::sql;
use crate::traits::{
    BatchStream, BucketChecksum, Buckets, Checkpoint, Checksum, LockAttempt, RunIdentity, Sink,
    Source, WriteStats,
};
use crate::{ConnectorError, Result};
use codec::{BatchEncoder, ColumnDecoder};

/// Micros between the Unix epoch and PostgreSQL's 2000-01-01 epoch.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Opens a connection, with TLS as the datastore's sslmode says. The error
/// names the datastore, host:port and why, and never the password (nor one
/// inside a URL pasted into host or dbname).
pub async fn connect(ds: &Datastore) -> Result<Client> {
    let Datastore::Postgres {
        name,
        host,
        port,
        user,
        password,
        dbname,
        tls,
        ..
    } = ds
    else {
        return Err(ConnectorError::Other(format!(
            "datastore \"{}\" is not postgres",
            ds.name()
        )));
    };
    // host, dbname and user print masked (`Masked`); the whole text is masked
    // again, and the password blotted out, in case the driver quoted it.
    let fail = |reason: String| {
        let text = format!(
            "cannot connect to PostgreSQL at {host}:{port} (datastore \"{name}\", database \"{dbname}\", user \"{user}\"): {reason}"
        );
        let mut text = redact_url_password(&text).into_owned();
        if let Some(p) = password
            .as_ref()
            .map(|p| p.expose())
            .filter(|p| p.len() > 2)
        {
            text = text.replace(p, "***");
        }
        text
    };
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&**host)
        .port(*port)
        .user(&**user)
        .dbname(&**dbname)
        .application_name("synchub")
        // Filters are printed back from their parse with strings in the
        // standard form ('it''s', backslashes literal): a server set to
        // the old escape form must read them the same way.
        .options("-c standard_conforming_strings=on")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(p) = password {
        cfg.password(p.expose());
    }
    let connector = tls::connector(tls).map_err(|e| ConnectorError::Config(fail(e)))?;
    let opened = match connector {
        None => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            spawn_connection(cfg.connect(NoTls).await)
        }
        Some(connector) => {
            cfg.ssl_mode(match tls.sslmode {
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
            spawn_connection(cfg.connect(connector).await)
        }
    };
    let e = match opened {
        Ok(client) => return Ok(client),
        Err(e) => e,
    };
    let Some(reason) = tls::describe_failure(&e, tls, host) else {
        return Err(ConnectorError::Unreachable(fail(describe_connect_error(
            &e,
        ))));
    };
    if tls.sslmode != SslMode::Prefer {
        return Err(ConnectorError::Config(fail(reason)));
    }
    // libpq's prefer, too, goes on in plain when the handshake fails (a
    // server that offers only TLS 1.0, say, which rustls does not speak):
    // the connections that worked before TLS came in keep working.
    tracing::warn!(datastore = %name, "{}; connecting without TLS", redact_url_password(&reason));
    cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    spawn_connection(cfg.connect(NoTls).await)
        .map_err(|e| ConnectorError::Unreachable(fail(describe_connect_error(&e))))
}

/// The client, its connection driven by a task of its own.
fn spawn_connection<S, T>(
    opened: std::result::Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
) -> std::result::Result<Client, tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = opened?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

fn describe_connect_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Any value in binary format, as raw bytes.
struct RawValue<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(Some(raw)))
    }
    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Bind values a query owns (partition bounds, key arrays, bucket numbers).
type OwnedParams = Vec<Box<dyn ToSql + Sync + Send>>;

/// A partition bound bound as whatever type the server inferred for it.
#[derive(Debug)]
struct BoundParam {
    value: PartitionValue,
}

impl ToSql for BoundParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let v = self.value.as_i64();
        match *ty {
            Type::INT2 => out.extend_from_slice(
                &(v.clamp(i16::MIN as i64, i16::MAX as i64) as i16).to_be_bytes(),
            ),
            Type::INT4 => out.extend_from_slice(
                &(v.clamp(i32::MIN as i64, i32::MAX as i64) as i32).to_be_bytes(),
            ),
            Type::INT8 => out.extend_from_slice(&v.to_be_bytes()),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                out.extend_from_slice(&v.saturating_sub(PG_EPOCH_OFFSET_MICROS).to_be_bytes())
            }
            Type::DATE => {
                // Rounded up: for date values, `d >= ceil(bound)` equals `d >= bound`.
                let days = (v - PG_EPOCH_OFFSET_MICROS).div_euclid(MICROS_PER_DAY)
                    + i64::from((v - PG_EPOCH_OFFSET_MICROS).rem_euclid(MICROS_PER_DAY) != 0);
                out.extend_from_slice(
                    &(days.clamp(i32::MIN as i64, i32::MAX as i64) as i32).to_be_bytes(),
                )
            }
            _ => return Err(format!("cannot bind a partition bound as {ty}").into()),
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::DATE
        )
    }
    tokio_postgres::types::to_sql_checked!();
}

/// A min/max result as a partition value.
struct BoundValue(Option<PartitionValue>);

impl<'a> FromSql<'a> for BoundValue {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let be = |n: usize| -> std::result::Result<i64, Box<dyn std::error::Error + Sync + Send>> {
            if raw.len() != n {
                return Err("bad length".into());
            }
            let mut b = [0u8; 8];
            b[8 - n..].copy_from_slice(raw);
            // Sign-extend narrower integers.
            let v = i64::from_be_bytes(b);
            Ok((v << (64 - 8 * n as u32)) >> (64 - 8 * n as u32))
        };
        let v = match *ty {
            Type::INT2 => PartitionValue::Int(be(2)?),
            Type::INT4 => PartitionValue::Int(be(4)?),
            Type::INT8 => PartitionValue::Int(be(8)?),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                PartitionValue::Micros(be(8)?.saturating_add(PG_EPOCH_OFFSET_MICROS))
            }
            Type::DATE => PartitionValue::Micros(be(4)? * MICROS_PER_DAY + PG_EPOCH_OFFSET_MICROS),
            _ => return Err(format!("cannot partition by a column of type {ty}").into()),
        };
        Ok(BoundValue(Some(v)))
    }
    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(BoundValue(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

pub struct PostgresSource {
    client: Client,
    table: TableRef,
    columns: Vec<MappedColumn>,
    specs: Vec<ColumnSpec>,
    /// The source's own type of each mapped column, learned by `check`.
    source_types: Vec<Type>,
}

impl PostgresSource {
    pub async fn open(table: &TableRef, columns: &[MappedColumn]) -> Result<PostgresSource> {
        let client = connect(&table.datastore).await?;
        let specs: Vec<ColumnSpec> = columns.iter().map(|c| c.spec.clone()).collect();
        Ok(PostgresSource {
            client,
            table: table.clone(),
            columns: columns.to_vec(),
            specs,
            source_types: Vec::new(),
        })
    }

    fn missing_column_error(&self, message: &str) -> ConnectorError {
        // PostgreSQL says: column "x" does not exist / column o.x does not exist.
        let missing = message
            .split("column ")
            .nth(1)
            .and_then(|r| r.split(" does not exist").next())
            .map(|s| s.trim_matches('"').to_string());
        let mapped = missing
            .as_ref()
            .and_then(|m| self.columns.iter().position(|c| c.is_source_reported_as(m)));
        match (missing, mapped) {
            (Some(m), Some(i)) => ConnectorError::Schema(format!(
                "source column {} (mapped to dest \"{}\") does not exist in {}: {}",
                self.columns[i].source_for_message(),
                self.columns[i].dest,
                self.table.display_name(),
                hint_fix(&m)
            )),
            _ => ConnectorError::Schema(format!(
                "cannot read source {}: {message}",
                self.table.display_name()
            )),
        }
    }
}

impl PostgresSource {
    /// Streams the rows of a SELECT of the mapped columns as batches.
    async fn read_query<'a>(
        &'a mut self,
        q: &str,
        params: OwnedParams,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        // Decoders live in the stream state so their buffers are reused.
        let decoders = self
            .columns
            .iter()
            .zip(&self.source_types)
            .map(|(c, ty)| ColumnDecoder::new(&c.dest, ty, &c.spec.data_type))
            .collect::<Result<Vec<_>>>()?;
        let columns = (decoders, self.source_types.clone(), self.specs.clone());
        let stream = ReadState::query(&self.client, q, &params, columns, page_rows)
            .await?
            .into_stream();
        // A stored row hash column is computed from the decoded row.
        let columns = self.columns.clone();
        Ok(Box::pin(stream.map(move |batch| {
            batch.and_then(|b| crate::rowhash::fill_computed_hash(b, &columns))
        })))
    }
}

impl PostgresSource {
    /// Probes the source's column types unless `check` already did.
    async fn ensure_checked(&mut self) -> Result<()> {
        if self.source_types.is_empty() {
            self.check().await?;
        }
        Ok(())
    }
}

fn hint_fix(_missing: &str) -> String {
    "fix the column name in the pipeline or add the column to the source".to_string()
}

#[async_trait]
impl Source for PostgresSource {
    async fn check(&mut self) -> Result<()> {
        let probe = sql::probe_sql(&self.table, &self.columns);
        let stmt = match self.client.prepare(&probe).await {
            Ok(s) => s,
            Err(e) => {
                let msg = ConnectorError::from(e).to_string();
                let msg = msg.trim_start_matches("PostgreSQL error: ").to_string();
                if msg.contains("does not exist") && msg.starts_with("column") {
                    return Err(self.missing_column_error(&msg));
                }
                return Err(ConnectorError::Schema(format!(
                    "cannot read source {}: {msg}",
                    self.table.display_name()
                )));
            }
        };
        self.source_types = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        for (c, ty) in self.columns.iter().zip(&self.source_types) {
            ColumnDecoder::new(&c.dest, ty, &c.spec.data_type)?;
        }
        Ok(())
    }

    async fn bounds(&mut self, dims: &[PartitionDimension]) -> Result<Vec<ColumnBounds>> {
        if dims.is_empty() {
            return Ok(Vec::new());
        }
        let q = sql::bounds_sql(&self.table, dims, sql::pg_placeholder);
        let row = self.client.query_one(&q, &[]).await?;
        let mut out = Vec::with_capacity(dims.len());
        for i in 0..dims.len() {
            let min: BoundValue = row.try_get(3 * i)?;
            let max: BoundValue = row.try_get(3 * i + 1)?;
            let has_nulls: bool = row.try_get(3 * i + 2)?;
            out.push(ColumnBounds {
                min_max: min.0.zip(max.0),
                has_nulls,
            });
        }
        Ok(out)
    }

    async fn read<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        self.ensure_checked().await?;
        let (q, params) =
            sql::select_partition_sql(&self.table, &self.columns, partition, sql::pg_placeholder);
        let params: OwnedParams = params
            .into_iter()
            .map(|value| Box::new(BoundParam { value }) as Box<dyn ToSql + Sync + Send>)
            .collect();
        self.read_query(&q, params, page_rows).await
    }

    async fn read_keys<'a>(
        &'a mut self,
        partition: &Partition,
        keys: &RecordBatch,
        page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        // One integer key: `key = ANY($n)` with the keys bound as an array.
        let Some(sql::KeySelect {
            sql: q,
            params,
            keys: values,
        }) = sql::select_by_integer_key(
            &self.table,
            &self.columns,
            partition,
            sql::pg_placeholder,
            keys,
            |key, n| format!("{key} = ANY(${n}::bigint[])"),
        )?
        else {
            return Ok(None);
        };
        self.ensure_checked().await?;
        let mut params: OwnedParams = params
            .into_iter()
            .map(|value| Box::new(BoundParam { value }) as Box<dyn ToSql + Sync + Send>)
            .collect();
        params.push(Box::new(values));
        Ok(Some(self.read_query(&q, params, page_rows).await?))
    }

    async fn checksum(&mut self, partition: &Partition) -> Result<crate::traits::Checksum> {
        self.ensure_checked().await?;
        let (from_where, params) = partition_from_where(&self.table, partition);
        let q = crate::rowhash::PgHashQuery::new(&self.columns, &self.source_types)
            .checksum_sql(&from_where);
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        // count(*) and the exact numeric sum(hash) in one query; the sum is
        // wrapped to 64 bits here.
        let row = self.client.query_one(&q, &params).await?;
        let rows: i64 = row.try_get(0)?;
        let sum = wrapped_sum(row.try_get(1)?)?;
        Ok(crate::traits::Checksum {
            rows: rows as u64,
            sum,
        })
    }

    async fn row_hashes<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        self.ensure_checked().await?;
        let (from_where, params) = partition_from_where(&self.table, partition);
        let q = crate::rowhash::PgHashQuery::new(&self.columns, &self.source_types)
            .rows_sql(&from_where);
        let params: OwnedParams = params
            .into_iter()
            .map(|p| Box::new(p) as Box<dyn ToSql + Sync + Send>)
            .collect();
        self.row_hash_stream(&q, params, page_rows).await
    }

    async fn bucket_checksums(
        &mut self,
        partition: &Partition,
        buckets: Buckets,
    ) -> Result<Option<Vec<BucketChecksum>>> {
        self.ensure_checked().await?;
        let Some((from_where, bucket, params)) =
            bucket_from_where(&self.table, partition, buckets, None)
        else {
            return Ok(None);
        };
        let hash = crate::rowhash::PgHashQuery::new(&self.columns, &self.source_types);
        let q = hash.bucket_checksums_sql(&from_where, &bucket);
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        // The planner cannot know that the bucket expression has a few
        // hundred values per partition: it expects one group per row and
        // sorts them, spilling to disk (0.4 s more per million rows). Hash
        // aggregation over the real groups fits in a few MB; with the same
        // estimate, partial aggregation in parallel workers looks like it
        // sends a row per row to the leader unless tuples cost nothing.
        let tx = self.client.transaction().await?;
        tx.batch_execute("SET LOCAL enable_sort = off; SET LOCAL parallel_tuple_cost = 0")
            .await?;
        let rows = tx.query(&q, &params).await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let bucket: i64 = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            let sum = wrapped_sum(row.try_get(2)?)?;
            out.push((
                bucket,
                Checksum {
                    rows: count as u64,
                    sum,
                },
            ));
        }
        out.sort_unstable_by_key(|(b, _)| *b);
        Ok(Some(out))
    }

    async fn bucket_row_hashes<'a>(
        &'a mut self,
        partition: &Partition,
        buckets: Buckets,
        which: &[i64],
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        self.ensure_checked().await?;
        let (from_where, _, params) =
            bucket_from_where(&self.table, partition, buckets, Some(which.to_vec()))
                .ok_or_else(|| sql::not_bucketed(partition))?;
        let q = crate::rowhash::PgHashQuery::new(&self.columns, &self.source_types)
            .rows_sql(&from_where);
        self.row_hash_stream(&q, params, page_rows).await
    }
}

impl PostgresSource {
    /// Streams the result of a row-hash query (`PgHashQuery::rows_sql`): the
    /// unique key columns, then the hash.
    async fn row_hash_stream<'a>(
        &'a mut self,
        q: &str,
        params: OwnedParams,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        let mut decoders = Vec::new();
        let mut types = Vec::new();
        for (c, ty) in self.columns.iter().zip(&self.source_types) {
            if c.spec.unique {
                decoders.push(ColumnDecoder::new(&c.dest, ty, &c.spec.data_type)?);
                types.push(ty.clone());
            }
        }
        decoders.push(ColumnDecoder::new(
            crate::rowhash::ROW_HASH_COLUMN,
            &Type::INT8,
            &planner::types::ColumnType::Int64,
        )?);
        types.push(Type::INT8);
        let columns = (
            decoders,
            types,
            crate::rowhash::row_hash_specs(&self.columns),
        );
        let state = ReadState::query(&self.client, q, &params, columns, page_rows).await?;
        Ok(Box::pin(state.into_stream()))
    }
}

/// An exact `sum(hash)::text` (NULL over no rows) wrapped to 64 bits.
fn wrapped_sum(sum: Option<String>) -> Result<u64> {
    match sum {
        None => Ok(0),
        Some(text) => crate::rowhash::wrap_decimal_sum(&text).ok_or_else(|| {
            ConnectorError::Other(format!("unexpected checksum sum from PostgreSQL: {text}"))
        }),
    }
}

/// A write that failed on the key means two source rows share it: COPY
/// into a table loaded from empty reports the key ("Key (id)=(2) already
/// exists."), the merge only that a row was hit twice. Other failures pass.
fn key_error(
    e: tokio_postgres::Error,
    specs: &[ColumnSpec],
    partition: Option<&str>,
) -> ConnectorError {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        return e.into();
    };
    let mut keys: Vec<&str> = specs
        .iter()
        .filter(|c| c.unique)
        .map(|c| c.name.as_str())
        .collect();
    keys.sort_unstable();
    if *db.code() == SqlState::UNIQUE_VIOLATION {
        let key = db.detail().and_then(|d| {
            let rest = d.strip_prefix("Key (")?;
            let (cols, rest) = rest.split_once(")=(")?;
            let (values, _) = rest.rsplit_once(") already exists")?;
            let mut named: Vec<&str> = cols.split(", ").map(|c| c.trim_matches('"')).collect();
            named.sort_unstable();
            (named == keys).then(|| match cols.split(", ").count() {
                1 => format!("{}={values}", cols.trim_matches('"')),
                _ => format!("({cols})=({values})"),
            })
        });
        if let Some(key) = key {
            return crate::conform::duplicate_key(&format!("two source rows have the key {key}"));
        }
    }
    if *db.code() == SqlState::CARDINALITY_VIOLATION {
        if let Some(partition) = partition {
            return crate::conform::duplicate_key(&format!(
                "two source rows of partition {partition} have the same key"
            ));
        }
    }
    e.into()
}

/// Keys a differing-bucket read lists for the index at most (sparse keys
/// make wide buckets); past it, it filters on the bucket.
const MAX_LISTED_KEYS: i64 = 65_536;

/// `partition_from_where` (with `which`, only the rows of those buckets),
/// the bucket expression of `buckets` (origin and width bound as bigint)
/// and the bound values. `None` when `buckets` does not cut an integer
/// range of `partition`.
fn bucket_from_where(
    table: &TableRef,
    partition: &Partition,
    buckets: Buckets,
    which: Option<Vec<i64>>,
) -> Option<(String, String, OwnedParams)> {
    let column = sql::bucket_column(partition, buckets)?;
    let (from_where, bounds) = partition_from_where(table, partition);
    let n = bounds.len();
    let bucket = sql::bucket_expr(
        &format!("({column})::bigint"),
        &format!("${}::bigint", n + 1),
        &format!("${}::bigint", n + 2),
    );
    let mut params: OwnedParams = bounds
        .into_iter()
        .map(|p| Box::new(p) as Box<dyn ToSql + Sync + Send>)
        .collect();
    params.push(Box::new(buckets.origin));
    params.push(Box::new(buckets.width));
    let (origin, width, list) = (
        format!("${}::bigint", n + 1),
        format!("${}::bigint", n + 2),
        format!("${}::bigint[]", n + 3),
    );
    // The partition's ranges make a WHERE clause (`bucket_column`).
    let from_where = match which {
        // The buckets' keys listed for the key index (one probe each), where
        // a filter on the bucket would compute it for every row of the
        // partition: 6 ms instead of 15 for a hundred buckets of 65 in a
        // 100,000-row partition.
        Some(which) if (which.len() as i64).saturating_mul(buckets.width) <= MAX_LISTED_KEYS => {
            params.push(Box::new(which));
            format!(
                "{from_where} AND {column} = ANY(ARRAY(SELECT generate_series({origin} + b * {width}, \
                 {origin} + (b + 1) * {width} - 1) FROM unnest({list}) AS b))"
            )
        }
        Some(which) => {
            params.push(Box::new(which));
            format!("{from_where} AND {bucket} = ANY({list})")
        }
        None => from_where,
    };
    Some((from_where, bucket, params))
}

/// `FROM ... WHERE ...` of a partition and its bound values: the filter
/// `read` applies (the same builders, the same parameter binding).
fn partition_from_where(table: &TableRef, partition: &Partition) -> (String, Vec<BoundParam>) {
    let mut params = Vec::new();
    let sql = format!(
        "{}{}",
        sql::from_sql(table),
        sql::where_sql(table, Some(partition), sql::pg_placeholder, &mut params)
    );
    let params = params
        .into_iter()
        .map(|value| BoundParam { value })
        .collect();
    (sql, params)
}

/// Rows a page holds at least before it may end early (`next_batch`).
const EARLY_PAGE_ROWS: usize = 4096;

struct ReadState {
    rows: std::pin::Pin<Box<tokio_postgres::RowStream>>,
    decoders: Vec<ColumnDecoder>,
    schema: SchemaRef,
    specs: Vec<ColumnSpec>,
    types: Vec<Type>,
    page_rows: usize,
    done: bool,
}

impl ReadState {
    /// Runs `q` and holds its rows, to be decoded by `columns` (a decoder
    /// and the server's type per result column, and the specs of the
    /// batches' columns).
    async fn query(
        client: &Client,
        q: &str,
        params: &[Box<dyn ToSql + Sync + Send>],
        columns: (Vec<ColumnDecoder>, Vec<Type>, Vec<ColumnSpec>),
        page_rows: usize,
    ) -> Result<ReadState> {
        let rows = client
            .query_raw(q, params.iter().map(|p| p.as_ref() as &dyn ToSql))
            .await?;
        let (decoders, types, specs) = columns;
        Ok(ReadState {
            rows: Box::pin(rows),
            decoders,
            schema: arrow_schema(&specs),
            specs,
            types,
            page_rows: page_rows.max(1),
            done: false,
        })
    }

    /// The batches, until the rows end or the first error.
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<RecordBatch>> + Send {
        futures_util::stream::unfold(self, |mut st| async move {
            if st.done {
                return None;
            }
            match st.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), st)),
                Ok(None) => None,
                Err(e) => {
                    st.done = true;
                    Some((Err(e), st))
                }
            }
        })
    }

    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // Past this many rows, a page ends early when the server has sent
        // nothing more yet: downstream gets to work while the query runs.
        let early = EARLY_PAGE_ROWS.min(self.page_rows);
        let mut n = 0;
        while n < self.page_rows {
            let next = if n >= early {
                match self.rows.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            } else {
                self.rows.next().await
            };
            // A RowStream polled after its end reports "connection closed".
            let Some(row) = next else {
                self.done = true;
                break;
            };
            let row = row?;
            for (i, dec) in self.decoders.iter_mut().enumerate() {
                let raw: RawValue = row.try_get(i)?;
                if let Err(e) = dec.push(raw.0) {
                    return Err(self.row_error(&row, i, &e));
                }
            }
            n += 1;
        }
        if n == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = self.decoders.iter_mut().map(|d| d.finish()).collect();
        let batch = keyed_batch(self.schema.clone(), arrays, &self.specs)?;
        check_fits(&batch, &self.specs)?;
        Ok(Some(batch))
    }

    /// Names the row by its key, read straight from the raw row.
    fn row_error(
        &self,
        row: &tokio_postgres::Row,
        column: usize,
        e: &ConnectorError,
    ) -> ConnectorError {
        let key = self
            .specs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.unique)
            .map(|(i, c)| {
                let raw: Option<RawValue> = row.try_get(i).ok();
                format!(
                    "{}={}",
                    c.name,
                    codec::display_value(&self.types[i], raw.and_then(|r| r.0))
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        ConnectorError::Value(format!(
            "row {key}, column \"{}\": {e}",
            self.specs[column].name
        ))
    }
}

/// Runs `CREATE … IF NOT EXISTS`. Two sessions creating the same object at
/// once can still collide in the catalog (a unique violation on
/// `pg_type_typname_nsp_index` or `pg_namespace_nspname_index`); the loser
/// finds it there on a second try.
async fn create_if_missing(client: &Client, ddl: &str) -> Result<()> {
    match client.batch_execute(ddl).await {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            client.batch_execute(ddl).await?;
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Name of the table holding committed partitions, beside the destination.
pub const CHECKPOINT_TABLE: &str = "_synchub_checkpoints";
const STAGE_TABLE: &str = "_synchub_stage";

pub struct PostgresSink {
    client: Client,
    table: TableRef,
    specs: Vec<ColumnSpec>,
    /// Actual destination types, in `specs` order; known after `prepare`.
    dest_types: Vec<Type>,
    encoder: Option<BatchEncoder>,
    copy: Option<std::pin::Pin<Box<CopyInSink<bytes::Bytes>>>>,
    /// A partition's transaction is open (its COPY opens at the first row).
    in_partition: bool,
    buf: BytesMut,
    merge_sql: String,
    /// The same without the test for equal rows, for rows known to be
    /// changes.
    merge_changes_sql: String,
    rows_are_changes: bool,
    /// The table was empty when the run began: partitions COPY straight into
    /// it instead of staging and merging (half the writes for a first load).
    /// Partitions hold disjoint rows, so this stays safe for the whole run;
    /// a duplicate key fails loudly instead of being merged away.
    direct: bool,
    /// Keys to delete in the open partition. The connection is busy with
    /// the COPY until commit, so they are applied then.
    pending_deletes: Vec<RecordBatch>,
    /// Rows this writer committed straight into the table.
    loaded: u64,
    /// `Sink::table_identity`, read by `prepare`.
    identity: String,
}

impl PostgresSink {
    pub async fn open(table: &TableRef, columns: &[ColumnSpec]) -> Result<PostgresSink> {
        let client = connect(&table.datastore).await?;
        // The upsert's per-row probes price it over jit_above_cost, and
        // compiling it costs more than it saves (0.3 s of a 0.8 s delta).
        // current_setting(…, true) is NULL where the server has no JIT.
        client
            .batch_execute(
                "SELECT set_config('jit', 'off', false) WHERE current_setting('jit', true) IS NOT NULL",
            )
            .await?;
        Ok(PostgresSink {
            client,
            table: table.clone(),
            specs: columns.to_vec(),
            dest_types: Vec::new(),
            encoder: None,
            copy: None,
            in_partition: false,
            buf: BytesMut::with_capacity(1 << 20),
            merge_sql: String::new(),
            merge_changes_sql: String::new(),
            rows_are_changes: false,
            direct: false,
            pending_deletes: Vec::new(),
            loaded: 0,
            identity: String::new(),
        })
    }

    fn qualified(&self) -> String {
        sql::table_sql(self.table.schema.as_deref(), &self.table.table, None)
    }

    /// The COPY encoder for the destination's actual column types.
    fn new_encoder(&self) -> Result<BatchEncoder> {
        let targets: Vec<(String, Type)> = self
            .specs
            .iter()
            .zip(&self.dest_types)
            .map(|(c, t)| (c.name.clone(), t.clone()))
            .collect();
        let arrow_types: Vec<_> = self
            .specs
            .iter()
            .map(|c| c.data_type.arrow_type())
            .collect();
        BatchEncoder::new(&targets, &arrow_types)
    }

    fn checkpoint_table(&self) -> String {
        sql::table_sql(self.table.schema.as_deref(), CHECKPOINT_TABLE, None)
    }

    /// Existing columns of the destination (name, type), empty when the table is missing.
    async fn existing_columns(&self) -> Result<Vec<(String, Type)>> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, a.atttypid FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&self.qualified()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let oid: u32 = r.get(1);
                (
                    r.get::<_, String>(0),
                    Type::from_oid(oid).unwrap_or(Type::UNKNOWN),
                )
            })
            .collect())
    }

    async fn create_table(&self) -> Result<()> {
        let cols = self
            .specs
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    quote_ident(&c.name),
                    codec::pg_type_ddl(&c.data_type),
                    if c.unique { " NOT NULL" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let keys = self.key_list();
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} ({cols}, PRIMARY KEY ({keys}))",
            self.qualified()
        );
        tracing::info!(table = %self.qualified(), "creating destination table");
        create_if_missing(&self.client, &ddl).await
    }

    fn key_list(&self) -> String {
        self.specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether some unique index covers exactly the key columns.
    async fn has_unique_index_on_keys(&self) -> Result<bool> {
        let keys: Vec<String> = self
            .specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| c.name.clone())
            .collect();
        let rows = self
            .client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL \
                 GROUP BY i.indexrelid",
                &[&self.qualified()],
            )
            .await?;
        let mut want = keys;
        want.sort();
        Ok(rows.iter().any(|r| r.get::<_, Vec<String>>(0) == want))
    }

    /// Opens the partition's COPY: into the table itself when writing
    /// straight, else into a fresh staging table dropped at commit.
    async fn open_copy(&mut self) -> Result<()> {
        let target = if self.direct {
            self.qualified()
        } else {
            self.client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE {STAGE_TABLE} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
                    self.qualified()
                ))
                .await?;
            STAGE_TABLE.to_string()
        };
        let cols = self
            .specs
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY {target} ({cols}) FROM STDIN (FORMAT binary)"
            ))
            .await?;
        let mut sink = Box::pin(sink);
        self.buf.clear();
        codec::write_copy_header(&mut self.buf);
        sink.send(self.buf.split().freeze()).await?;
        self.copy = Some(sink);
        Ok(())
    }

    /// Deletes the buffered keys inside the open transaction: the keys are
    /// COPYed into a temporary table and removed with one join. Only rows
    /// still inside `partition` go: a row whose partition column changed
    /// was compared as missing here and as new in its other partition, and
    /// that other partition may have written it already.
    async fn apply_deletes(&mut self, partition: &Partition) -> Result<u64> {
        if self.pending_deletes.iter().all(|b| b.num_rows() == 0) {
            self.pending_deletes.clear();
            return Ok(0);
        }
        let keys: Vec<(String, Type)> = self
            .specs
            .iter()
            .zip(&self.dest_types)
            .filter(|(c, _)| c.unique)
            .map(|(c, t)| (c.name.clone(), t.clone()))
            .collect();
        let key_list = self.key_list();
        self.client
            .batch_execute(&format!(
                "CREATE TEMP TABLE _synchub_deletes ON COMMIT DROP AS SELECT {key_list} FROM {} WITH NO DATA",
                self.qualified()
            ))
            .await?;
        let arrow_types: Vec<_> = self
            .specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| c.data_type.arrow_type())
            .collect();
        let encoder = BatchEncoder::new(&keys, &arrow_types)?;
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY _synchub_deletes ({key_list}) FROM STDIN (FORMAT binary)"
            ))
            .await?;
        let mut sink = Box::pin(sink);
        let mut buf = BytesMut::new();
        codec::write_copy_header(&mut buf);
        for batch in std::mem::take(&mut self.pending_deletes) {
            encoder.encode(&batch, &mut buf)?;
            sink.send(buf.split().freeze()).await?;
        }
        codec::write_copy_trailer(&mut buf);
        sink.send(buf.split().freeze()).await?;
        sink.as_mut().finish().await?;
        let mut conds: Vec<String> = keys
            .iter()
            .map(|(k, _)| format!("t.{q} = d.{q}", q = quote_ident(k)))
            .collect();
        let mut bounds = Vec::new();
        conds.extend(sql::destination_range_conditions(
            partition,
            "t",
            sql::pg_placeholder,
            &mut bounds,
        ));
        let bounds: Vec<BoundParam> = bounds
            .into_iter()
            .map(|value| BoundParam { value })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            bounds.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let deleted = self
            .client
            .execute(
                &format!(
                    "DELETE FROM {} t USING _synchub_deletes d WHERE {}",
                    self.qualified(),
                    conds.join(" AND ")
                ),
                &params,
            )
            .await?;
        self.client
            .batch_execute("DROP TABLE _synchub_deletes")
            .await?;
        Ok(deleted)
    }

    /// The statement that merges the stage into the table; `skip_equal`
    /// first drops staged rows equal to the table's.
    fn build_merge_sql(&self, skip_equal: bool) -> String {
        let cols: Vec<String> = self.specs.iter().map(|c| quote_ident(&c.name)).collect();
        let col_list = cols.join(", ");
        let non_keys: Vec<(String, &Type)> = self
            .specs
            .iter()
            .zip(&self.dest_types)
            .filter(|(c, _)| !c.unique)
            .map(|(c, t)| (quote_ident(&c.name), t))
            .collect();
        // Rows equal to the destination's are dropped before the insert:
        // ON CONFLICT DO UPDATE locks every conflicting row even when its
        // WHERE then skips it, and a lock dirties the page and writes WAL (a
        // first delta run over 2M equal rows wrote 379 MB of it). The
        // anti-join only reads, but costs a probe per staged row: rows known
        // to be changes (see `Sink::rows_are_changes`) skip it. The WHERE
        // stays as the rule for what counts as a change.
        let (unchanged_filter, conflict) = if non_keys.is_empty() {
            (String::new(), "DO NOTHING".to_string())
        } else {
            let set = non_keys
                .iter()
                .map(|(c, _)| format!("{c} = EXCLUDED.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            // json has no equality operator; compare it as jsonb. Floats
            // compare by their bits: `=` holds -0 equal to 0, so a sign
            // change of a zero would never reach the destination.
            let cmp = |prefix: &str, c: &str, t: &Type| match *t {
                Type::JSON => format!("{prefix}.{c}::jsonb"),
                Type::FLOAT4 => format!("float4send({prefix}.{c})"),
                Type::FLOAT8 => format!("float8send({prefix}.{c})"),
                _ => format!("{prefix}.{c}"),
            };
            // ROW() keeps a single column a row value too.
            let row_of = |prefix: &str| {
                let values = non_keys
                    .iter()
                    .map(|(c, t)| cmp(prefix, c, t))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("ROW({values})")
            };
            let keys_match = self
                .specs
                .iter()
                .filter(|c| c.unique)
                .map(|c| format!("d.{k} = s.{k}", k = quote_ident(&c.name)))
                .collect::<Vec<_>>()
                .join(" AND ");
            // OFFSET 0 keeps the test a per-row probe of the key's index: as
            // a join PostgreSQL hashes the stage and scans the whole table
            // (1.5 s instead of 0.45 s for 20,000 changed rows in 2M).
            let unchanged_filter = if skip_equal {
                format!(
                    " WHERE NOT EXISTS (SELECT 1 FROM {} d WHERE {keys_match} AND {} IS NOT DISTINCT FROM {} OFFSET 0)",
                    self.qualified(),
                    row_of("d"),
                    row_of("s")
                )
            } else {
                String::new()
            };
            (
                unchanged_filter,
                format!(
                    "DO UPDATE SET {set} WHERE {} IS DISTINCT FROM {}",
                    row_of("t"),
                    row_of("EXCLUDED")
                ),
            )
        };
        let staged = cols
            .iter()
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "WITH upserted AS (INSERT INTO {} AS t ({col_list}) SELECT {staged} FROM {STAGE_TABLE} s{unchanged_filter} \
             ON CONFLICT ({}) {conflict} RETURNING (xmax = 0) AS inserted) \
             SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted",
            self.qualified(),
            self.key_list()
        )
    }
}

#[async_trait]
impl Sink for PostgresSink {
    fn rows_are_changes(&mut self, yes: bool) {
        self.rows_are_changes = yes;
    }

    async fn another_writer(&mut self) -> Result<Option<Box<dyn Sink>>> {
        let mut writer = PostgresSink::open(&self.table, &self.specs).await?;
        writer.dest_types = self.dest_types.clone();
        writer.encoder = Some(writer.new_encoder()?);
        writer.merge_sql = self.merge_sql.clone();
        writer.merge_changes_sql = self.merge_changes_sql.clone();
        writer.rows_are_changes = self.rows_are_changes;
        writer.direct = self.direct;
        writer.identity = self.identity.clone();
        Ok(Some(Box::new(writer)))
    }

    async fn prepare(&mut self) -> Result<()> {
        if let Some(schema) = &self.table.schema {
            create_if_missing(
                &self.client,
                &format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)),
            )
            .await?;
        }
        let mut existing = self.existing_columns().await?;
        if existing.is_empty() {
            self.create_table().await?;
            existing = self.existing_columns().await?;
        } else {
            let mut problems = Vec::new();
            for c in &self.specs {
                match existing.iter().find(|(n, _)| *n == c.name) {
                    None => problems.push(format!(
                        "has no column \"{}\"; add it (ALTER TABLE {} ADD COLUMN {} {}) or drop the table so SyncHub creates it",
                        c.name,
                        self.qualified(),
                        quote_ident(&c.name),
                        codec::pg_type_ddl(&c.data_type)
                    )),
                    Some((_, t)) if !codec::pg_type_compatible(&c.data_type, t) => problems.push(format!(
                        "column \"{}\" is {}, but the pipeline maps it as {}; alter the column or change data_type",
                        c.name, t, c.data_type
                    )),
                    _ => {}
                }
            }
            if !problems.is_empty() {
                return Err(ConnectorError::Schema(format!(
                    "destination table {} {}",
                    self.qualified(),
                    problems.join("; ")
                )));
            }
            if !self.has_unique_index_on_keys().await? {
                return Err(ConnectorError::Schema(format!(
                    "destination table {} has no unique index on ({}); upserts need one: CREATE UNIQUE INDEX ON {} ({})",
                    self.qualified(),
                    self.key_list(),
                    self.qualified(),
                    self.key_list()
                )));
            }
        }
        self.dest_types = self
            .specs
            .iter()
            .map(|c| {
                existing
                    .iter()
                    .find(|(n, _)| *n == c.name)
                    .map(|(_, t)| t.clone())
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect();
        self.encoder = Some(self.new_encoder()?);
        self.merge_sql = self.build_merge_sql(true);
        self.merge_changes_sql = self.build_merge_sql(false);
        self.direct = !self
            .client
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {})", self.qualified()),
                &[],
            )
            .await?
            .get::<_, bool>(0);
        create_if_missing(
            &self.client,
            &format!(
                "CREATE TABLE IF NOT EXISTS {} (pipeline text NOT NULL, strategy text NOT NULL, \
                 run_id text NOT NULL, partition_id text NOT NULL, rows bigint NOT NULL, \
                 committed_at timestamptz NOT NULL DEFAULT now(), \
                 fingerprint text, table_identity text, \
                 PRIMARY KEY (pipeline, strategy, run_id, partition_id))",
                self.checkpoint_table()
            ),
        )
        .await?;
        // Checkpoint tables of SyncHub before 0.2 lack the two columns; their
        // rows then match no run, which starts over.
        let columns: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) \
                 AND attname IN ('fingerprint', 'table_identity') AND NOT attisdropped",
                &[&self.checkpoint_table()],
            )
            .await?
            .get(0);
        if columns < 2 {
            self.client
                .batch_execute(&format!(
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS fingerprint text, \
                     ADD COLUMN IF NOT EXISTS table_identity text",
                    self.checkpoint_table()
                ))
                .await?;
        }
        // The OID changes when the table is dropped and created again, the
        // file node when it is truncated (or rewritten by VACUUM FULL,
        // CLUSTER or a type change: then a resume starts over, which is safe).
        let row = self
            .client
            .query_one(
                "SELECT c.oid::bigint, pg_relation_filenode(c.oid)::bigint FROM pg_class c \
                 WHERE c.oid = to_regclass($1)",
                &[&self.qualified()],
            )
            .await?;
        self.identity = format!(
            "postgres:{}:{}",
            row.get::<_, i64>(0),
            row.get::<_, Option<i64>>(1).unwrap_or(0)
        );
        Ok(())
    }

    fn started_empty(&self) -> bool {
        self.direct
    }

    fn table_identity(&self) -> String {
        self.identity.clone()
    }

    async fn checkpoints(&mut self, run: &RunIdentity) -> Result<Vec<Checkpoint>> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT partition_id, rows, fingerprint, table_identity FROM {} \
                     WHERE pipeline = $1 AND strategy = $2 AND run_id = $3",
                    self.checkpoint_table()
                ),
                &[&run.pipeline, &run.strategy, &run.run_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Checkpoint {
                partition_id: r.get(0),
                rows: r.get::<_, i64>(1).max(0) as u64,
                fingerprint: r.get(2),
                table_identity: r.get(3),
            })
            .collect())
    }

    async fn try_lock(&mut self, key: &str, holder: &str) -> Result<LockAttempt> {
        // A session-level advisory lock: held while this connection lives,
        // released by the server when the process dies, whatever machine
        // it ran on.
        let taken: bool = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await?
            .get(0);
        if taken {
            self.client
                .execute(
                    "SELECT set_config('application_name', $1, false)",
                    &[&holder],
                )
                .await?;
            return Ok(LockAttempt::Acquired);
        }
        let row = self
            .client
            .query_opt(
                "SELECT a.application_name, coalesce(host(a.client_addr), 'local socket'), \
                 to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0) LIMIT 1",
                &[&key],
            )
            .await?;
        Ok(LockAttempt::Held {
            holder: match row {
                Some(r) => format!(
                    "{}, connected from {} since {} UTC",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                ),
                None => "a session that has just let go".to_string(),
            },
        })
    }

    async fn begin_partition(&mut self, _partition: &Partition) -> Result<()> {
        // The stage and its COPY wait for the first row: a partition with
        // nothing to write (most of a hash run) commits its checkpoint alone,
        // without creating and dropping a temporary table.
        self.client.batch_execute("BEGIN").await?;
        self.in_partition = true;
        Ok(())
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if !self.in_partition {
            return Err(ConnectorError::Other("no partition open".into()));
        }
        if self.copy.is_none() {
            self.open_copy().await?;
        }
        let encoder = self
            .encoder
            .as_ref()
            .ok_or_else(|| ConnectorError::Other("sink not prepared".into()))?;
        if let Err(e) = encoder.encode_located(batch, &mut self.buf) {
            return Err(match e.error {
                ConnectorError::Value(msg) => {
                    value_error(batch, &self.specs, e.row, &self.specs[e.column].name, &msg)
                }
                other => other,
            });
        }
        let copy = self
            .copy
            .as_mut()
            .ok_or_else(|| ConnectorError::Other("no partition open".into()))?;
        copy.send(self.buf.split().freeze())
            .await
            .map_err(|e| key_error(e, &self.specs, None))?;
        Ok(())
    }

    async fn delete(&mut self, keys: &RecordBatch) -> Result<()> {
        self.pending_deletes.push(keys.clone());
        Ok(())
    }

    async fn abort_partition(&mut self) -> Result<()> {
        // Dropping an unfinished COPY sink aborts the COPY; the transaction
        // is then failed and ROLLBACK ends it.
        self.copy = None;
        self.in_partition = false;
        self.pending_deletes.clear();
        self.buf.clear();
        self.client.batch_execute("ROLLBACK").await?;
        Ok(())
    }

    async fn commit_partition(
        &mut self,
        run: &RunIdentity,
        partition: &Partition,
    ) -> Result<WriteStats> {
        if !self.in_partition {
            return Err(ConnectorError::Other("no partition open".into()));
        }
        self.in_partition = false;
        let staged = match self.copy.take() {
            Some(mut copy) => {
                codec::write_copy_trailer(&mut self.buf);
                copy.send(self.buf.split().freeze()).await?;
                Some(
                    copy.as_mut()
                        .finish()
                        .await
                        .map_err(|e| key_error(e, &self.specs, Some(&partition.id)))?,
                )
            }
            None => None,
        };
        let (staged, inserted, updated) = match staged {
            None => (0, 0, 0),
            Some(staged) if self.direct => {
                self.loaded += staged;
                (staged, staged, 0)
            }
            Some(staged) => {
                let merge = if self.rows_are_changes {
                    &self.merge_changes_sql
                } else {
                    &self.merge_sql
                };
                let row = self
                    .client
                    .query_one(merge, &[])
                    .await
                    .map_err(|e| key_error(e, &self.specs, Some(&partition.id)))?;
                (
                    staged,
                    row.get::<_, i64>(0) as u64,
                    row.get::<_, i64>(1) as u64,
                )
            }
        };
        let deleted = self.apply_deletes(partition).await?;
        self.client
            .execute(
                &format!(
                    "INSERT INTO {} (pipeline, strategy, run_id, partition_id, rows, fingerprint, table_identity) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (pipeline, strategy, run_id, partition_id) DO UPDATE SET rows = EXCLUDED.rows, \
                     committed_at = now(), fingerprint = EXCLUDED.fingerprint, table_identity = EXCLUDED.table_identity",
                    self.checkpoint_table()
                ),
                &[
                    &run.pipeline,
                    &run.strategy,
                    &run.run_id,
                    &partition.id,
                    &(staged as i64),
                    &run.fingerprint,
                    &self.identity,
                ],
            )
            .await?;
        self.client.batch_execute("COMMIT").await?;
        Ok(WriteStats {
            inserted,
            updated,
            unchanged: staged.saturating_sub(inserted + updated),
            deleted,
        })
    }

    /// A table loaded from empty has no statistics until autovacuum gets to
    /// it, and the planner then takes a range of a partition for 0.5% of
    /// the table: the next hash run's grouped checksums of the destination
    /// ran without parallel workers, 1.6 times as long as the source's.
    /// (With lanes each writer analyzes; the last one sees every row.)
    async fn finish(&mut self) -> Result<()> {
        if self.direct && self.loaded > 0 {
            self.client
                .batch_execute(&format!("ANALYZE {}", self.qualified()))
                .await?;
        }
        Ok(())
    }
}
