//! The PostgreSQL source: reads of a partition or of keys, checksums and row
//! hashes (whole or per bucket), and the read state that decodes the rows.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use planner::model::{MappedColumn, TableRef};
use planner::partition::{
    BucketGrid, ColumnBounds, OccupiedBucket, OccupiedBuckets, Partition, PartitionDimension,
};
use planner::types::{arrow_schema, ColumnSpec};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use super::codec::{self, ColumnDecoder};
use super::connect;
use super::params::{BoundParam, BoundValue, OwnedParams, RawValue};
use crate::conform::{check_fits, keyed_batch};
use crate::sql::{self, Dialect, PostgresDialect};
use crate::traits::{BatchStream, BucketChecksum, Buckets, Checksum, HashPushdown, Source};
use crate::{ConnectorError, Result};

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
        if let Some(e) = missing
            .as_deref()
            .and_then(|m| sql::aggregate_missing_column(&self.table, m))
        {
            return e;
        }
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
    /// An aggregate's groups carry the sum of their rows' hashes: the hash
    /// in SQL follows the row columns' own PostgreSQL types, probed here.
    async fn learn_row_hash(&mut self) -> Result<()> {
        let Some(grouped) = &self.table.grouped else {
            return Ok(());
        };
        let Some(rows) = grouped.aggregate.row_hash_columns() else {
            return Ok(());
        };
        let mut plain = self.table.clone();
        plain.grouped = None;
        let probe = sql::probe_sql(&PostgresDialect, &plain, &rows);
        let stmt = self.client.prepare(&probe).await?;
        let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        let hash = crate::rowhash::PgHashQuery::new(&rows, &types);
        if let Some(grouped) = self.table.grouped.as_mut() {
            grouped.row_hash_sql = Some(hash.hash_sql().to_string());
        }
        Ok(())
    }

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
impl sql::SqlSource for PostgresSource {
    fn select_from(&self) -> sql::SelectFrom<'_> {
        sql::SelectFrom {
            dialect: &PostgresDialect,
            table: &self.table,
            columns: &self.columns,
        }
    }

    async fn run_select<'a>(
        &'a mut self,
        _partition: &Partition,
        select: sql::Select,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        self.ensure_checked().await?;
        let sql = select.sql.clone();
        self.read_query(&sql, bound_params(select), page_rows).await
    }

    async fn select_keys(
        &mut self,
        select: sql::Select,
        kinds: &[sql::KeyKind],
    ) -> Result<Option<Vec<sql::KeyValues>>> {
        let sql = select.sql.clone();
        let params = bound_params(select);
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = self.client.query(&sql, &refs).await?;
        let mut columns: Vec<sql::KeyValues> = kinds
            .iter()
            .map(|k| match k {
                sql::KeyKind::Int => sql::KeyValues::Ints(Vec::with_capacity(rows.len())),
                sql::KeyKind::Text => sql::KeyValues::Texts(Vec::with_capacity(rows.len())),
            })
            .collect();
        for row in &rows {
            for (i, column) in columns.iter_mut().enumerate() {
                match column {
                    sql::KeyValues::Ints(v) => v.push(row.try_get(i)?),
                    sql::KeyValues::Texts(v) => v.push(row.try_get(i)?),
                }
            }
        }
        Ok(Some(columns))
    }

    async fn indexed_rows(&mut self, columns: &[String]) -> Result<Option<u64>> {
        if !self.table.joins.is_empty() {
            return Ok(None);
        }
        let name = PostgresDialect.table(self.table.schema.as_deref(), &self.table.table);
        // Each valid index's columns in order (NULL for an expression).
        let rows = self
            .client
            .query(
                "SELECT c.reltuples::float8, ARRAY(SELECT a.attname::text \
                   FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(n, o) \
                   LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                   ORDER BY k.o) \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                 WHERE i.indrelid = to_regclass($1) AND i.indisvalid",
                &[&name],
            )
            .await?;
        for row in rows {
            let table_rows: f64 = row.try_get(0)?;
            let indexed: Vec<Option<String>> = row.try_get(1)?;
            let leading = indexed.iter().take(columns.len());
            let covers = indexed.len() >= columns.len()
                && leading
                    .clone()
                    .all(|c| c.as_ref().is_some_and(|c| columns.contains(c)))
                && columns
                    .iter()
                    .all(|c| indexed[..columns.len()].contains(&Some(c.clone())));
            if covers {
                return Ok(Some(table_rows.max(0.0) as u64));
            }
        }
        Ok(None)
    }

    async fn check_readable(&mut self) -> Result<()> {
        let probe = sql::probe_sql(&PostgresDialect, &self.table, &self.columns);
        let stmt = match self.client.prepare(&probe).await {
            Ok(s) => s,
            Err(e) => {
                let e = ConnectorError::from(e);
                // A session cut or a server restarting: the task is retried,
                // not failed as a schema problem.
                if e.retryable() {
                    return Err(e);
                }
                let msg = e.to_string();
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
        self.learn_row_hash().await
    }

    async fn column_bounds(
        &mut self,
        within: &Partition,
        dims: &[PartitionDimension],
    ) -> Result<Vec<ColumnBounds>> {
        if dims.is_empty() {
            return Ok(Vec::new());
        }
        let (q, params) = sql::bounds_sql(&PostgresDialect, &self.table, Some(within), dims);
        let params: Vec<BoundParam> = params
            .into_iter()
            .map(|value| BoundParam { value })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let row = self.client.query_one(&q, &params).await?;
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

    async fn occupied(
        &mut self,
        scope: &Partition,
        dims: &[PartitionDimension],
        grids: &[BucketGrid],
        limit: usize,
    ) -> Result<Option<OccupiedBuckets>> {
        let mut values = Vec::new();
        let (select, grid_params) = sql::buckets_sql(
            &PostgresDialect,
            &self.table,
            scope,
            dims,
            grids,
            &mut values,
            true,
        );
        let groups: Vec<String> = (1..=dims.len()).map(|i| i.to_string()).collect();
        let q = format!(
            "{select} GROUP BY {} LIMIT {}",
            groups.join(", "),
            limit.saturating_add(1)
        );
        let mut params: OwnedParams = values
            .into_iter()
            .map(|value| Box::new(BoundParam { value }) as Box<dyn ToSql + Sync + Send>)
            .collect();
        params.extend(
            grid_params
                .into_iter()
                .map(|v| Box::new(v) as Box<dyn ToSql + Sync + Send>),
        );
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        // As for bucket checksums: the planner cannot know how few buckets
        // there are and would sort every row to group them.
        let tx = self.client.transaction().await?;
        tx.batch_execute("SET LOCAL enable_sort = off").await?;
        let rows = tx.query(&q, &params).await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(OccupiedBucket {
                buckets: (0..dims.len())
                    .map(|i| row.try_get::<_, Option<i64>>(i))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
                rows: row.try_get::<_, i64>(dims.len())? as u64,
            });
        }
        Ok(Some(out))
    }

    fn pushdown(&mut self) -> Option<&mut dyn HashPushdown> {
        Some(self)
    }

    /// The planner's own row count (`pg_class.reltuples`, kept by ANALYZE
    /// and autovacuum). Not for a join or a filtered table, whose rows
    /// the table's count does not tell; not before the first ANALYZE
    /// (-1, or 0 before PostgreSQL 14).
    async fn row_estimate(&mut self) -> Result<Option<u64>> {
        if !self.table.joins.is_empty() || !self.table.filters.is_empty() {
            return Ok(None);
        }
        let name = PostgresDialect.table(self.table.schema.as_deref(), &self.table.table);
        let row = self
            .client
            .query_opt(
                "SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1)",
                &[&name],
            )
            .await?;
        let estimate: Option<f64> = row.map(|r| r.get(0));
        Ok(estimate.filter(|n| *n > 0.0).map(|n| n as u64))
    }
}

/// `select`'s range values, then its keys (one array per key column).
fn bound_params(select: sql::Select) -> OwnedParams {
    let mut params: OwnedParams = select
        .params
        .into_iter()
        .map(|value| Box::new(BoundParam { value }) as Box<dyn ToSql + Sync + Send>)
        .collect();
    for keys in select.keys {
        params.push(match keys {
            sql::KeyValues::Ints(ints) => Box::new(ints),
            sql::KeyValues::Texts(texts) => Box::new(texts),
        });
    }
    params
}

#[async_trait]
impl HashPushdown for PostgresSource {
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
    let d = PostgresDialect;
    let column = sql::bucket_column(partition, buckets)?;
    let (from_where, bounds) = partition_from_where(table, partition);
    let n = bounds.len();
    let bucket = sql::bucket_expr(&d, column, n + 1);
    let column = d.column(column);
    let mut params: OwnedParams = bounds
        .into_iter()
        .map(|p| Box::new(p) as Box<dyn ToSql + Sync + Send>)
        .collect();
    params.push(Box::new(buckets.origin));
    params.push(Box::new(buckets.width));
    let (origin, width, list) = (
        d.bigint_placeholder(n + 1),
        d.bigint_placeholder(n + 2),
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
        sql::from_sql(&PostgresDialect, table),
        sql::where_sql(&PostgresDialect, table, Some(partition), &mut params)
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
