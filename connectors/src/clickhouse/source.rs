//! The ClickHouse source: a table read with `FINAL` (a ReplacingMergeTree's
//! rows as they are once replaced; on other engines `FINAL` is refused, so
//! those are read as they are), a partition's or some keys' rows at a time
//! in RowBinary. No joins or filters yet, and no hash pushdown: the hash
//! strategy reads the rows and hashes them in Rust.

use std::collections::HashMap;

use async_trait::async_trait;
use futures_util::stream;
use planner::model::{MappedColumn, TableRef};
use planner::partition::{
    BucketGrid, ColumnBounds, OccupiedBucket, OccupiedBuckets, Partition, PartitionDimension,
    PartitionDimensionRef,
};
use planner::types::{ColumnSpec, ColumnType};

use super::client::{bytes_literal, ident, table_name, Client};
use super::codec;
use crate::traits::BatchStream;
use crate::{ConnectorError, Result, Source};

/// Keys per `IN (…)` list of a read by key.
const KEYS_PER_QUERY: usize = 5_000;

pub struct ClickHouseSource {
    client: Client,
    database: String,
    table: String,
    name: String,
    columns: Vec<MappedColumn>,
    specs: Vec<ColumnSpec>,
    /// Each column's declared type, once `check` (or the first read) ran.
    declared: Option<HashMap<String, String>>,
    /// `FINAL`, or nothing for an engine without it.
    final_: &'static str,
}

impl ClickHouseSource {
    pub fn open(table: &TableRef, columns: &[MappedColumn]) -> Result<ClickHouseSource> {
        if !table.joins.is_empty() || !table.filters.is_empty() || table.grouped.is_some() {
            return Err(ConnectorError::Unsupported(format!(
                "{}: a ClickHouse source reads one table as it is; joins, filters and aggregate reads are not supported yet",
                table.display_name()
            )));
        }
        let client = Client::new(&table.datastore)?;
        let database = table
            .schema
            .clone()
            .unwrap_or_else(|| client.database.clone());
        Ok(ClickHouseSource {
            name: table_name(&database, &table.table),
            client,
            database,
            table: table.table.clone(),
            columns: columns.to_vec(),
            specs: columns.iter().map(|c| c.spec.clone()).collect(),
            declared: None,
            final_: "",
        })
    }

    async fn declared(&mut self) -> Result<&HashMap<String, String>> {
        if self.declared.is_none() {
            let text = self
                .client
                .text(&format!(
                    "SELECT name, type FROM system.columns WHERE database = {} AND table = {} FORMAT TSV",
                    bytes_literal(self.database.as_bytes()),
                    bytes_literal(self.table.as_bytes())
                ))
                .await?;
            let engine = self
                .client
                .text(&format!(
                    "SELECT engine FROM system.tables WHERE database = {} AND name = {} FORMAT TSV",
                    bytes_literal(self.database.as_bytes()),
                    bytes_literal(self.table.as_bytes())
                ))
                .await?;
            if engine.trim().is_empty() {
                return Err(ConnectorError::Schema(format!(
                    "table {} does not exist in ClickHouse",
                    self.name
                )));
            }
            // FINAL merges the rows of one key in the engines that replace
            // or collapse rows; the others refuse it.
            let engine = engine.trim();
            self.final_ = if engine.contains("Replacing")
                || engine.contains("Collapsing")
                || engine.contains("Summing")
                || engine.contains("Aggregating")
            {
                " FINAL"
            } else {
                ""
            };
            self.declared = Some(
                text.lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(n, t)| (n.to_string(), t.to_string()))
                    .collect(),
            );
        }
        Ok(self.declared.as_ref().unwrap_or_else(|| unreachable!()))
    }

    /// The column `c` reads, as a select expression of its stored values.
    fn expr_of(&self, c: &MappedColumn) -> Result<String> {
        let declared = self
            .declared
            .as_ref()
            .and_then(|d| d.get(&c.source_ref.column));
        let Some(declared) = declared else {
            return Err(ConnectorError::Schema(format!(
                "column \"{}\" (mapped to \"{}\") is not a column of {}",
                c.source_ref.column, c.spec.name, self.name
            )));
        };
        codec::read_expr(&ident(&c.source_ref.column), declared, &c.spec.data_type)
    }

    /// The mapped column a partition dimension ranges over.
    fn column_of(&self, name: &str, column: &planner::ColumnRef) -> Result<&MappedColumn> {
        self.columns
            .iter()
            .find(|c| c.spec.name == name || c.source_ref.column == column.column)
            .ok_or_else(|| {
                ConnectorError::Schema(format!(
                    "partition column \"{name}\" is not a mapped column of {}",
                    self.name
                ))
            })
    }

    fn dim_expr(&self, dim: &PartitionDimensionRef) -> Result<(String, ColumnType)> {
        let c = self.column_of(&dim.name, &dim.column)?;
        // The stored value without toNullable: comparisons keep NULLs out.
        let e = self.expr_of(c)?;
        let e = e
            .strip_prefix("toNullable(")
            .and_then(|e| e.strip_suffix(')'))
            .unwrap_or(&e)
            .to_string();
        Ok((e, c.spec.data_type))
    }

    fn select(&self, conds: &[String]) -> Result<String> {
        let exprs: Vec<String> = self
            .columns
            .iter()
            .map(|c| self.expr_of(c))
            .collect::<Result<_>>()?;
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        Ok(format!(
            "SELECT {} FROM {}{}{filter} FORMAT RowBinary",
            exprs.join(", "),
            self.name,
            self.final_
        ))
    }

    async fn rows(&mut self, sql: String, page_rows: usize) -> Result<BatchStream<'static>> {
        let bytes = self.client.query(&sql).await?;
        let batches = codec::decode(&bytes, &self.specs, page_rows)?;
        Ok(Box::pin(stream::iter(batches.into_iter().map(Ok))))
    }
}

#[async_trait]
impl Source for ClickHouseSource {
    fn columns(&self) -> &[MappedColumn] {
        &self.columns
    }

    async fn check(&mut self) -> Result<()> {
        self.declared().await?;
        let mut problems = Vec::new();
        for c in &self.columns {
            if let Err(e) = self.expr_of(c) {
                problems.push(e.to_string());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConnectorError::Schema(problems.join("; ")))
        }
    }

    async fn bounds(&mut self, dims: &[PartitionDimension]) -> Result<Vec<ColumnBounds>> {
        self.bounds_within(&Partition::whole(), dims).await
    }

    async fn bounds_within(
        &mut self,
        partition: &Partition,
        dims: &[PartitionDimension],
    ) -> Result<Vec<ColumnBounds>> {
        self.declared().await?;
        let conds = codec::range_conditions(partition, |d| self.dim_expr(d))?;
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let mut out = Vec::with_capacity(dims.len());
        for dim in dims {
            let c = self.column_of(&dim.name, &dim.column)?;
            let ty = c.spec.data_type;
            let (e, _) = self.dim_expr(&PartitionDimensionRef {
                name: dim.name.clone(),
                column: dim.column.clone(),
                kind: dim.kind,
                date_only: dim.date_only,
            })?;
            let text = self
                .client
                .text(&format!(
                    "SELECT count({e}), count() - count({e}), toInt64(ifNull(min({e}), 0)), toInt64(ifNull(max({e}), 0)) FROM {}{}{filter} FORMAT TSV",
                    self.name, self.final_
                ))
                .await?;
            let fields: Vec<i64> = text
                .trim()
                .split('\t')
                .map(|f| f.parse::<i64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| {
                    ConnectorError::Other(format!(
                        "bounds of \"{}\" in {}: {e} in {text:?}",
                        dim.name, self.name
                    ))
                })?;
            let [values, nulls, min, max] = fields[..] else {
                return Err(ConnectorError::Other(format!(
                    "bounds of \"{}\" in {}: unexpected answer {text:?}",
                    dim.name, self.name
                )));
            };
            out.push(ColumnBounds {
                min_max: (values > 0).then(|| {
                    (
                        codec::partition_value(&ty, min),
                        codec::partition_value(&ty, max),
                    )
                }),
                has_nulls: nulls > 0,
            });
        }
        Ok(out)
    }

    /// The distinct partition values of the scope's rows, counted by the
    /// server, bucketed here: fewer values cross the wire than rows exist.
    async fn occupied_buckets(
        &mut self,
        scope: &Partition,
        dims: &[PartitionDimension],
        grids: &[BucketGrid],
        limit: usize,
    ) -> Result<Option<OccupiedBuckets>> {
        self.declared().await?;
        let conds = codec::range_conditions(scope, |d| self.dim_expr(d))?;
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let mut exprs = Vec::with_capacity(dims.len());
        let mut types = Vec::with_capacity(dims.len());
        for dim in dims {
            let (e, ty) = self.dim_expr(&PartitionDimensionRef {
                name: dim.name.clone(),
                column: dim.column.clone(),
                kind: dim.kind,
                date_only: dim.date_only,
            })?;
            exprs.push(format!("toNullable(toInt64({e}))"));
            types.push(ty);
        }
        let list: Vec<String> = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS v{i}"))
            .collect();
        let group: Vec<String> = (0..exprs.len()).map(|i| format!("v{i}")).collect();
        let bytes = self
            .client
            .query(&format!(
                "SELECT {}, toUInt64(count()) FROM {}{}{filter} GROUP BY {} FORMAT RowBinary",
                list.join(", "),
                self.name,
                self.final_,
                group.join(", ")
            ))
            .await?;
        let mut cur = codec::Cursor::new(&bytes);
        let mut seen = std::collections::BTreeMap::<Vec<Option<i64>>, u64>::new();
        while !cur.at_end() {
            let mut key = Vec::with_capacity(dims.len());
            for (ty, grid) in types.iter().zip(grids) {
                let v = cur
                    .value(&ColumnType::Int64, true)?
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()));
                key.push(v.map(|v| grid.bucket_of(codec::partition_value(ty, v).as_i64())));
            }
            let n = cur.u64()?;
            *seen.entry(key).or_default() += n;
            if seen.len() > limit {
                break;
            }
        }
        Ok(Some(
            seen.into_iter()
                .map(|(buckets, rows)| OccupiedBucket { buckets, rows })
                .collect(),
        ))
    }

    async fn read<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        self.declared().await?;
        let conds = codec::range_conditions(partition, |d| self.dim_expr(d))?;
        let sql = self.select(&conds)?;
        self.rows(sql, page_rows).await
    }

    async fn read_keys<'a>(
        &'a mut self,
        partition: &Partition,
        keys: &arrow::record_batch::RecordBatch,
        page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        self.declared().await?;
        let key_cols: Vec<&MappedColumn> = self.columns.iter().filter(|c| c.spec.unique).collect();
        if key_cols
            .iter()
            .any(|c| !codec::key_type_supported(&c.spec.data_type))
        {
            return Ok(None);
        }
        let key_specs: Vec<&ColumnSpec> = key_cols.iter().map(|c| &c.spec).collect();
        let mut key_exprs = Vec::new();
        for c in &key_cols {
            let e = self.expr_of(c)?;
            key_exprs.push(
                e.strip_prefix("toNullable(")
                    .and_then(|e| e.strip_suffix(')'))
                    .unwrap_or(&e)
                    .to_string(),
            );
        }
        let range = codec::range_conditions(partition, |d| self.dim_expr(d))?;
        let mut batches = Vec::new();
        for cond in codec::keys_in(&key_exprs, keys, &key_specs, KEYS_PER_QUERY)? {
            let mut conds = vec![cond];
            conds.extend(range.iter().cloned());
            let bytes = self.client.query(&self.select(&conds)?).await?;
            batches.extend(codec::decode(&bytes, &self.specs, page_rows)?);
        }
        Ok(Some(Box::pin(stream::iter(batches.into_iter().map(Ok)))))
    }
}
