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
    /// An aggregate's groups could not be re-computed.
    #[error(transparent)]
    Compute(#[from] compute::ComputeError),
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

/// Where an operator sends its messages; counts what it sends, and knows
/// which partition it is in (the last started and not yet ended), to stamp
/// the data messages sent through `batch`, `changes`, `delete` and
/// `unchanged`.
pub struct Output {
    sender: Option<RowSender>,
    pub rows_out: u64,
    partition: Option<Arc<Partition>>,
}

impl Output {
    pub fn new(sender: Option<RowSender>) -> Self {
        Output {
            sender,
            rows_out: 0,
            partition: None,
        }
    }

    /// Sends rows of the partition this output is in.
    pub async fn batch(&mut self, batch: RecordBatch) -> Result<()> {
        let p = self.open("rows")?;
        self.send(Message::Batch(p, batch)).await
    }

    /// Sends what a comparison found in the partition this output is in.
    pub async fn changes(&mut self, changes: Arc<ChangeSet>) -> Result<()> {
        let p = self.open("a change set")?;
        self.send(Message::Changes(p, changes)).await
    }

    /// Sends keys to delete in the partition this output is in.
    pub async fn delete(&mut self, keys: RecordBatch) -> Result<()> {
        let p = self.open("keys to delete")?;
        self.send(Message::Delete(p, keys)).await
    }

    /// Sends a count of unchanged rows of the partition this output is in.
    pub async fn unchanged(&mut self, rows: u64) -> Result<()> {
        let p = self.open("unchanged rows")?;
        self.send(Message::Unchanged(p, rows)).await
    }

    /// The partition this output is in; sending `what` outside one is an
    /// operator's bug, reported rather than sent unlabelled.
    fn open(&self, what: &str) -> Result<Arc<Partition>> {
        self.partition.clone().ok_or_else(|| {
            OperatorError::Other(format!(
                "{what} sent outside a partition (an operator's bug)"
            ))
        })
    }

    pub async fn send(&mut self, msg: Message) -> Result<()> {
        match &msg {
            Message::PartitionStart(p) => self.partition = Some(p.clone()),
            Message::PartitionEnd(_) => self.partition = None,
            _ => {}
        }
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
        out.batch(batch).await
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        out.send(Message::PartitionEnd(p)).await
    }

    async fn on_changes(&mut self, changes: Arc<ChangeSet>, out: &mut Output) -> Result<()> {
        out.changes(changes).await
    }

    async fn on_delete(&mut self, keys: RecordBatch, out: &mut Output) -> Result<()> {
        out.delete(keys).await
    }

    async fn on_unchanged(&mut self, rows: u64, out: &mut Output) -> Result<()> {
        out.unchanged(rows).await
    }

    /// One input message, handed to the hook of its kind. An operator that
    /// needs each message's partition as it comes (one with two inputs,
    /// joining them by partition) takes the whole message here instead.
    async fn on_message(&mut self, msg: Message, out: &mut Output) -> Result<()> {
        match msg {
            Message::PartitionStart(p) => self.on_partition_start(p, out).await,
            Message::Batch(_, b) => self.process_batch(b, out).await,
            Message::PartitionEnd(p) => self.on_partition_end(p, out).await,
            Message::Changes(_, c) => self.on_changes(c, out).await,
            Message::Delete(_, keys) => self.on_delete(keys, out).await,
            Message::Unchanged(_, rows) => self.on_unchanged(rows, out).await,
        }
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
