//! Grouping rows as they arrive: the rows of a partition's touched groups
//! stream into DataFusion's hash aggregate through a bounded channel, so
//! what is held is one accumulator per group, not the rows.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures_util::StreamExt;
use planner::model::Aggregate;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{logical_columns, ComputeError};

/// Batches queued ahead of DataFusion.
const QUEUED_BATCHES: usize = 2;

/// One partition's grouping, running in a task of its own.
pub struct Grouping {
    rows: Option<mpsc::Sender<RecordBatch>>,
    groups: JoinHandle<Result<Vec<RecordBatch>, ComputeError>>,
}

impl Grouping {
    /// Starts grouping rows of `schema` by `aggregate`'s keys.
    pub fn start(aggregate: Aggregate, schema: SchemaRef) -> Grouping {
        let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
        let groups = tokio::spawn(async move {
            let ctx = SessionContext::new();
            let input = ChannelPartition {
                schema: schema.clone(),
                rows: Mutex::new(Some(rx)),
            };
            let table = StreamingTable::try_new(schema, vec![Arc::new(input)])?;
            let df = ctx.read_table(Arc::new(table))?;
            let keys = logical_columns(&ctx, &df, &aggregate.keys)?;
            let values = logical_columns(&ctx, &df, &aggregate.values)?;
            Ok(df.aggregate(keys, values)?.collect().await?)
        });
        Grouping {
            rows: Some(tx),
            groups,
        }
    }

    /// Hands DataFusion a batch of rows; waits while it is behind.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<(), ComputeError> {
        let Some(rows) = &self.rows else {
            return Ok(());
        };
        if rows.send(batch).await.is_err() {
            // DataFusion stopped reading: its error is the one to report.
            self.rows = None;
        }
        Ok(())
    }

    /// The groups, once every row is in: keys then values, named by their
    /// destination columns.
    pub async fn finish(mut self) -> Result<Vec<RecordBatch>, ComputeError> {
        self.rows = None;
        self.groups
            .await
            .map_err(|e| ComputeError::DataFusion(DataFusionError::External(Box::new(e))))?
    }
}

/// The rows as DataFusion reads them: one partition, streamed once.
#[derive(Debug)]
struct ChannelPartition {
    schema: SchemaRef,
    rows: Mutex<Option<mpsc::Receiver<RecordBatch>>>,
}

impl PartitionStream for ChannelPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rows = self.rows.lock().ok().and_then(|mut r| r.take());
        let stream = futures_util::stream::unfold(rows, |rows| async move {
            let mut rx = rows?;
            let batch = rx.recv().await?;
            Some((Ok(batch), Some(rx)))
        })
        .boxed();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
