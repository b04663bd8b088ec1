use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use connectors::ConnectorError;
use planner::partition::Partition;
use thiserror::Error;

use crate::channel::RowSender;
use crate::message::{ChangeSet, Message};

#[derive(Debug, Error)]
pub enum OperatorError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The downstream operator stopped; its own error is the one to report.
    #[error("downstream operator stopped")]
    DownstreamClosed,
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = OperatorError> = std::result::Result<T, E>;

/// Names the partition (and, when the reader counted them, the row) of a
/// NULL read in a unique column; other errors pass through.
pub fn name_null_key(
    e: OperatorError,
    partition: &str,
    rows_before: Option<usize>,
) -> OperatorError {
    match e {
        OperatorError::Connector(ConnectorError::NullKey { column, row }) => {
            let at = match rows_before {
                Some(before) => format!("partition {partition}, row {} read", before + row + 1),
                None => format!("partition {partition}"),
            };
            OperatorError::Other(format!(
                "{at}: unique column \"{column}\" is NULL; a key identifies its row and cannot be \
                 NULL: leave such rows out with a filter on the source (IS NOT NULL) or map a \
                 column that is never NULL as unique_column"
            ))
        }
        other => other,
    }
}

/// Where an operator sends its messages; counts what it sends.
pub struct Output {
    sender: Option<RowSender>,
    pub rows_out: u64,
}

impl Output {
    pub fn new(sender: Option<RowSender>) -> Self {
        Output {
            sender,
            rows_out: 0,
        }
    }

    pub async fn send(&mut self, msg: Message) -> Result<()> {
        self.rows_out += msg.rows() as u64;
        match &self.sender {
            Some(s) => s
                .send(msg)
                .await
                .map_err(|_| OperatorError::DownstreamClosed),
            // The last operator of a chain has nowhere to send.
            None => Ok(()),
        }
    }
}

/// One node of the DAG. The engine owns the loop: it calls `on_start`, then
/// one hook per input message in order, then `on_finish`, and closes the
/// output when this returns. The defaults forward messages unchanged.
#[async_trait]
pub trait Operator: Send {
    fn name(&self) -> &'static str;

    /// Called once before any input; sources emit everything from here.
    async fn on_start(&mut self, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        out.send(Message::PartitionStart(p)).await
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        out.send(Message::Batch(batch)).await
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        out.send(Message::PartitionEnd(p)).await
    }

    async fn on_changes(&mut self, changes: Arc<ChangeSet>, out: &mut Output) -> Result<()> {
        out.send(Message::Changes(changes)).await
    }

    async fn on_delete(&mut self, keys: RecordBatch, out: &mut Output) -> Result<()> {
        out.send(Message::Delete(keys)).await
    }

    async fn on_unchanged(&mut self, rows: u64, out: &mut Output) -> Result<()> {
        out.send(Message::Unchanged(rows)).await
    }

    /// Called when no input is queued, before waiting for more: upstream
    /// is slower than this operator, so what it holds back is better passed
    /// on now than when more arrives.
    async fn on_idle(&mut self, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// Called once all input has ended.
    async fn on_finish(&mut self, _out: &mut Output) -> Result<()> {
        Ok(())
    }
}
