//! Reading a Delta table through DataFusion's Delta table provider: a
//! partition's ranges become a filter, so Delta skips the files whose
//! statistics lie outside them; columns are conformed to the destination's
//! types as every source's are.

use std::collections::HashSet;

use arrow::array::{new_null_array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Schema;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use deltalake::datafusion::common::Column;
use deltalake::datafusion::execution::config::SessionConfig;
use deltalake::datafusion::logical_expr::JoinType;
use deltalake::datafusion::prelude::{DataFrame, Expr, SessionContext};
use deltalake::datafusion::sql::sqlparser::ast::ExprWithAlias;
use deltalake::DeltaTable;
use futures_util::{StreamExt, TryStreamExt};
use planner::model::{GroupedRead, MappedColumn, StoredHash, TableRef};
use planner::partition::{
    BucketGrid, ColumnBounds, OccupiedBuckets, Partition, PartitionDimension,
};
use planner::types::{arrow_schema, ColumnType};

use super::table::{self, TableLocation};
use crate::bounds::{as_bound_values, widen, OccupiedCount};
use crate::{BatchStream, ConnectorError, Result, Source};

pub struct DeltaSource {
    location: TableLocation,
    columns: Vec<MappedColumn>,
    /// An aggregate's read: its rows, for DataFusion to group.
    grouped: Option<GroupedRead>,
}

impl DeltaSource {
    pub fn open(table: &TableRef, columns: &[MappedColumn]) -> Result<DeltaSource> {
        if !table.joins.is_empty() || !table.filters.is_empty() {
            return Err(ConnectorError::Unsupported(format!(
                "{}: joins and filters on a Delta source are not supported yet",
                table.display_name()
            )));
        }
        Ok(DeltaSource {
            location: TableLocation::of(table)?,
            columns: columns.to_vec(),
            grouped: table.grouped.clone(),
        })
    }

    async fn table(&self) -> Result<DeltaTable> {
        let missing = self.location.missing_locally();
        let table = match missing {
            true => None,
            false => Some(self.location.open().await?),
        };
        let Some(table) = table.filter(|t| !table::is_not_a_table(t)) else {
            return Err(ConnectorError::Schema(format!(
                "{} does not exist: no Delta log at {}",
                self.location.name, self.location.url
            )));
        };
        Ok(table)
    }

    /// A session reading the table in batches of `page_rows`.
    async fn session(&self, page_rows: usize) -> Result<(SessionContext, DeltaTable)> {
        let table = self.table().await?;
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_batch_size(page_rows.max(1)));
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| self.location.error(e))?;
        Ok((ctx, table))
    }

    /// The table's rows in `partition`, as a DataFrame of the columns
    /// `names`.
    async fn frame(
        &self,
        partition: &Partition,
        names: &[String],
        page_rows: usize,
    ) -> Result<DataFrame> {
        let (ctx, table) = self.session(page_rows).await?;
        self.scan(&ctx, &table, partition, names).await
    }

    async fn scan(
        &self,
        ctx: &SessionContext,
        table: &DeltaTable,
        partition: &Partition,
        names: &[String],
    ) -> Result<DataFrame> {
        let df_err = |e| self.location.datafusion_error(e);
        let provider = table.table_provider().await.map_err(df_err)?;
        let mut frame = ctx.read_table(provider).map_err(df_err)?;
        let schema: Schema = frame.schema().as_arrow().clone();
        if let Some(filter) =
            table::range_filter(partition, &schema, None, |d| d.column.column.clone())?
        {
            frame = frame.filter(filter).map_err(df_err)?;
        }
        let select: Vec<Expr> = names
            .iter()
            .map(|n| Expr::Column(Column::new_unqualified(n)))
            .collect();
        frame.select(select).map_err(df_err)
    }

    /// An aggregate's rows for `partition`'s window: every row of each
    /// group a row in the window touches (a semi-join of the table to the
    /// window's distinct keys, the group-by's key expressions evaluated by
    /// DataFusion), plus the window's rows with a NULL key, whose group
    /// then stops the run with the key column named, as a SQL source's does.
    async fn touched_groups(
        &self,
        grouped: &GroupedRead,
        partition: &Partition,
        names: &[String],
        page_rows: usize,
    ) -> Result<DataFrame> {
        let df_err = |e| self.location.datafusion_error(e);
        let (ctx, table) = self.session(page_rows).await?;
        let state = ctx.state();
        let keys_of = |frame: &DataFrame| -> Result<Vec<Expr>> {
            grouped
                .aggregate
                .keys
                .iter()
                .map(|k| {
                    let tree = ExprWithAlias {
                        expr: k.expr.expr().clone(),
                        alias: None,
                    };
                    state
                        .create_logical_expr_from_sql_expr(tree, frame.schema())
                        .map_err(df_err)
                })
                .collect()
        };
        let window = self.scan(&ctx, &table, partition, names).await?;
        let window_keys = keys_of(&window)?;
        let any_null = window_keys
            .iter()
            .map(|k| k.clone().is_null())
            .reduce(Expr::or)
            .expect("an aggregate has keys");
        let touched_names: Vec<String> = (0..window_keys.len())
            .map(|i| format!("synchub_touched_k{i}"))
            .collect();
        let touched = window
            .clone()
            .filter(!any_null.clone())
            .and_then(|f| {
                f.select(
                    window_keys
                        .iter()
                        .zip(&touched_names)
                        .map(|(k, n)| k.clone().alias(n))
                        .collect::<Vec<_>>(),
                )
            })
            .and_then(DataFrame::distinct)
            .map_err(df_err)?;
        let mut rows = self.scan(&ctx, &table, &Partition::whole(), names).await?;
        let row_names: Vec<String> = (0..window_keys.len())
            .map(|i| format!("synchub_row_k{i}"))
            .collect();
        for (key, name) in keys_of(&rows)?.into_iter().zip(&row_names) {
            rows = rows.with_column(name, key).map_err(df_err)?;
        }
        let left: Vec<&str> = row_names.iter().map(String::as_str).collect();
        let right: Vec<&str> = touched_names.iter().map(String::as_str).collect();
        let columns: Vec<Expr> = names
            .iter()
            .map(|n| Expr::Column(Column::new_unqualified(n)))
            .collect();
        rows.join(touched, JoinType::LeftSemi, &left, &right, None)
            .and_then(|joined| joined.select(columns))
            .and_then(|joined| joined.union(window.filter(any_null)?))
            .map_err(df_err)
    }

    /// The source columns read, each once, in mapping order.
    fn read_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for c in &self.columns {
            if c.stored_hash != StoredHash::Compute && !names.contains(&c.source_ref.column) {
                names.push(c.source_ref.column.clone());
            }
        }
        names
    }

    /// A batch of `names` as the destination's columns and types.
    fn project(
        columns: &[MappedColumn],
        names: &[String],
        batch: &RecordBatch,
    ) -> Result<RecordBatch> {
        let specs: Vec<_> = columns.iter().map(|c| c.spec.clone()).collect();
        let schema = arrow_schema(&specs);
        let arrays = columns
            .iter()
            .zip(schema.fields())
            .map(|(c, field)| -> Result<ArrayRef> {
                if c.stored_hash == StoredHash::Compute {
                    return Ok(new_null_array(field.data_type(), batch.num_rows()));
                }
                let at = names
                    .iter()
                    .position(|n| n == &c.source_ref.column)
                    .ok_or_else(|| {
                        ConnectorError::Other(format!("column {} not read", c.source_ref.column))
                    })?;
                let values = batch.column(at);
                match c.spec.data_type {
                    ColumnType::Uuid if values.data_type() != field.data_type() => {
                        table::uuid_values(values, &c.source_column())
                    }
                    _ => crate::conform::conform_array(values, &c.spec.data_type),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(schema, arrays)?;
        crate::rowhash::fill_computed_hash(batch, columns)
    }
}

#[async_trait]
impl Source for DeltaSource {
    fn columns(&self) -> &[MappedColumn] {
        &self.columns
    }

    async fn check(&mut self) -> Result<()> {
        let table = self.table().await?;
        let schema = table
            .snapshot()
            .map_err(|e| self.location.error(e))?
            .snapshot()
            .arrow_schema();
        let mut problems = Vec::new();
        for c in &self.columns {
            if c.stored_hash == StoredHash::Compute {
                continue;
            }
            let name = &c.source_ref.column;
            match schema.field_with_name(name) {
                Err(_) => problems.push(format!("it has no column \"{name}\"")),
                Ok(f) => {
                    let readable = match c.spec.data_type {
                        ColumnType::Uuid => {
                            f.data_type().is_string()
                                || crate::conform::conformable(f.data_type(), &c.spec.data_type)
                        }
                        _ => crate::conform::conformable(f.data_type(), &c.spec.data_type),
                    };
                    if !readable {
                        problems.push(format!(
                            "column \"{name}\" is {}, which cannot be read as {}",
                            f.data_type(),
                            c.spec.data_type
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConnectorError::Schema(format!(
            "{}: {}",
            self.location.name,
            problems.join("; ")
        )))
    }

    /// Read from the dimension columns alone, a page at a time.
    async fn bounds(&mut self, dims: &[PartitionDimension]) -> Result<Vec<ColumnBounds>> {
        let names: Vec<String> = dims.iter().map(|d| d.column.column.clone()).collect();
        let mut unique = names.clone();
        unique.dedup();
        let frame = self.frame(&Partition::whole(), &unique, 8192).await?;
        let mut stream = frame
            .execute_stream()
            .await
            .map_err(|e| self.location.datafusion_error(e))?;
        let mut acc: Vec<ColumnBounds> = dims
            .iter()
            .map(|_| ColumnBounds {
                min_max: None,
                has_nulls: false,
            })
            .collect();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| self.location.datafusion_error(e))?;
            for ((d, name), bounds) in dims.iter().zip(&names).zip(acc.iter_mut()) {
                let at = unique.iter().position(|n| n == name).unwrap_or(0);
                let values = as_bound_values(batch.column(at), d.kind)?;
                widen(bounds, &values, d.kind);
            }
        }
        Ok(acc)
    }

    /// Counted from the dimension columns of `scope`'s rows, a page at a
    /// time: Delta keeps no statistics finer than a file's.
    async fn occupied_buckets(
        &mut self,
        scope: &Partition,
        dims: &[PartitionDimension],
        grids: &[BucketGrid],
        limit: usize,
    ) -> Result<Option<OccupiedBuckets>> {
        let names: Vec<String> = dims.iter().map(|d| d.column.column.clone()).collect();
        let mut unique = names.clone();
        unique.dedup();
        let frame = self.frame(scope, &unique, 8192).await?;
        let mut stream = frame
            .execute_stream()
            .await
            .map_err(|e| self.location.datafusion_error(e))?;
        let mut count = OccupiedCount::default();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| self.location.datafusion_error(e))?;
            let values = dims
                .iter()
                .zip(&names)
                .map(|(d, name)| {
                    let at = unique.iter().position(|n| n == name).unwrap_or(0);
                    as_bound_values(batch.column(at), d.kind)
                })
                .collect::<Result<Vec<_>>>()?;
            if !count.add(&values, grids, 0..batch.num_rows(), limit) {
                break;
            }
        }
        Ok(Some(count.finish()))
    }

    /// The partition's rows whose unique columns are among `keys`, filtered
    /// here page by page.
    async fn read_keys<'a>(
        &'a mut self,
        partition: &Partition,
        keys: &RecordBatch,
        page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        let key_at: Vec<usize> = (0..self.columns.len())
            .filter(|i| self.columns[*i].spec.unique)
            .collect();
        if key_at.len() != keys.num_columns() {
            return Ok(None);
        }
        let converter = RowConverter::new(
            keys.schema()
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let wanted: HashSet<Vec<u8>> = converter
            .convert_columns(keys.columns())?
            .iter()
            .map(|r| r.data().to_vec())
            .collect();
        let rows = self.read(partition, page_rows).await?;
        Ok(Some(Box::pin(rows.and_then(move |batch| {
            let kept = (|| {
                let found = converter.convert_columns(
                    &key_at
                        .iter()
                        .map(|i| batch.column(*i).clone())
                        .collect::<Vec<_>>(),
                )?;
                let keep: BooleanArray = found
                    .iter()
                    .map(|r| Some(wanted.contains(r.data())))
                    .collect();
                Ok(filter_record_batch(&batch, &keep)?)
            })();
            async move { kept }
        }))))
    }

    async fn read<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        let names = self.read_names();
        let frame = match &self.grouped {
            Some(grouped) if crate::sql::reads_touched_groups(grouped, partition) => {
                self.touched_groups(grouped, partition, &names, page_rows)
                    .await?
            }
            _ => self.frame(partition, &names, page_rows).await?,
        };
        let stream = frame
            .execute_stream()
            .await
            .map_err(|e| self.location.datafusion_error(e))?;
        let location = self.location.clone();
        let columns = self.columns.clone();
        Ok(Box::pin(
            stream
                .map_err(move |e| location.datafusion_error(e))
                .and_then(move |batch| {
                    let out = Self::project(&columns, &names, &batch);
                    async move { out }
                }),
        ))
    }
}
