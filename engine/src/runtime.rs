//! The actor runtime: each operator is a tokio task that owns its state; the
//! engine owns the loop that feeds it messages.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use operators::{row_channel, ChannelStats, Message, Operator, OperatorError, Output, RowReceiver};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::error::EngineError;

/// What one operator did in a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OperatorStats {
    pub operator: String,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Time spent waiting for room in the output channel (downstream slower).
    pub blocked_on_output_seconds: f64,
    /// Time spent waiting for input (upstream slower).
    pub waiting_on_input_seconds: f64,
    /// The rest: the operator's own work, including its database calls.
    pub busy_seconds: f64,
}

impl OperatorStats {
    /// Adds another lane's figures for the same operator.
    pub fn add(&mut self, other: &OperatorStats) {
        self.rows_in += other.rows_in;
        self.rows_out += other.rows_out;
        self.blocked_on_output_seconds += other.blocked_on_output_seconds;
        self.waiting_on_input_seconds += other.waiting_on_input_seconds;
        self.busy_seconds += other.busy_seconds;
    }
}

async fn drive(
    mut op: Box<dyn Operator>,
    input: Option<RowReceiver>,
    mut out: Output,
    out_stats: Option<Arc<ChannelStats>>,
) -> Result<OperatorStats, OperatorError> {
    let start = Instant::now();
    let mut rows_in = 0u64;
    let mut waiting = Duration::ZERO;
    op.on_start(&mut out).await?;
    if let Some(mut input) = input {
        loop {
            let msg = match input.try_recv() {
                Some(msg) => msg,
                None => {
                    op.on_idle(&mut out).await?;
                    let wait_start = Instant::now();
                    let Some(msg) = input.recv().await else {
                        break;
                    };
                    waiting += wait_start.elapsed();
                    msg
                }
            };
            if let Message::Batch(_, b) = &msg {
                rows_in += b.num_rows() as u64;
            }
            op.on_message(msg, &mut out).await?;
        }
    }
    op.on_finish(&mut out).await?;
    let blocked = out_stats
        .map(|s| Duration::from_micros(s.blocked_micros.load(Ordering::Relaxed)))
        .unwrap_or_default();
    Ok(OperatorStats {
        operator: op.name().to_string(),
        rows_in,
        rows_out: out.rows_out,
        blocked_on_output_seconds: blocked.as_secs_f64(),
        waiting_on_input_seconds: waiting.as_secs_f64(),
        busy_seconds: start
            .elapsed()
            .saturating_sub(blocked)
            .saturating_sub(waiting)
            .as_secs_f64(),
    })
}

/// Runs `ops` as a chain, each connected to the next by a channel holding at
/// most `channel_rows` rows. The first operator error wins: the others are
/// cancelled (dropping closes their channels) and the error names its operator.
pub async fn run_chain(
    ops: Vec<Box<dyn Operator>>,
    channel_rows: usize,
) -> Result<Vec<OperatorStats>, EngineError> {
    let n = ops.len();
    let names: Vec<&'static str> = ops.iter().map(|o| o.name()).collect();
    let mut senders = Vec::with_capacity(n);
    let mut receivers: Vec<Option<RowReceiver>> = vec![None];
    for _ in 1..n {
        let (tx, rx, stats) = row_channel(channel_rows);
        senders.push(Some((tx, stats)));
        receivers.push(Some(rx));
    }
    senders.push(None);

    let mut tasks = JoinSet::new();
    let mut handles = Vec::with_capacity(n);
    for (i, (op, (input, output))) in ops
        .into_iter()
        .zip(receivers.into_iter().zip(senders))
        .enumerate()
    {
        let (sender, stats) = match output {
            Some((tx, stats)) => (Some(tx), Some(stats)),
            None => (None, None),
        };
        handles.push(
            tasks.spawn(async move { (i, drive(op, input, Output::new(sender), stats).await) }),
        );
    }

    let mut results: Vec<Option<OperatorStats>> = vec![None; n];
    let mut first_error: Option<EngineError> = None;
    let mut downstream_closed: Option<usize> = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(stats))) => results[i] = Some(stats),
            // Secondary: the operator it fed has failed and will report why.
            Ok((i, Err(OperatorError::DownstreamClosed))) => {
                downstream_closed.get_or_insert(i);
            }
            Ok((i, Err(e))) => {
                if first_error.is_none() {
                    // Stop everything upstream; let downstream drain what it
                    // already holds, so partitions read whole before the
                    // failure still commit (an open one is rolled back).
                    for h in &handles[..i] {
                        h.abort();
                    }
                    first_error = Some(EngineError::Operator {
                        operator: names[i].to_string(),
                        source: e,
                    });
                }
            }
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".to_string());
                if first_error.is_none() {
                    tasks.abort_all();
                    first_error = Some(EngineError::Panicked {
                        operator: "an operator".to_string(),
                        message,
                    });
                }
            }
            // Aborted by us above.
            Err(_) => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Some(i) = downstream_closed {
        return Err(EngineError::Operator {
            operator: names[i].to_string(),
            source: OperatorError::DownstreamClosed,
        });
    }
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use async_trait::async_trait;
    use operators::operator::Result as OpResult;
    use planner::partition::Partition;

    struct Numbers(usize);
    #[async_trait]
    impl Operator for Numbers {
        fn name(&self) -> &'static str {
            "numbers"
        }
        async fn on_start(&mut self, out: &mut Output) -> OpResult<()> {
            let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
            let whole = Arc::new(Partition::whole());
            out.send(Message::PartitionStart(whole.clone())).await?;
            for i in 0..self.0 {
                let b = RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from_iter_values(0..i as i64 + 1))],
                )
                .unwrap();
                out.batch(b).await?;
            }
            out.send(Message::PartitionEnd(whole)).await
        }
    }

    struct FailAfter(u64);
    #[async_trait]
    impl Operator for FailAfter {
        fn name(&self) -> &'static str {
            "fail_after"
        }
        async fn process_batch(&mut self, b: RecordBatch, _out: &mut Output) -> OpResult<()> {
            self.0 = self.0.saturating_sub(b.num_rows() as u64);
            if self.0 == 0 {
                return Err(OperatorError::Other("boom".into()));
            }
            Ok(())
        }
    }

    struct Sink;
    #[async_trait]
    impl Operator for Sink {
        fn name(&self) -> &'static str {
            "sink"
        }
    }

    #[tokio::test]
    async fn counts_rows_through_the_chain() {
        let stats = run_chain(vec![Box::new(Numbers(10)), Box::new(Sink)], 8)
            .await
            .unwrap();
        assert_eq!(stats[0].rows_out, 55);
        assert_eq!(stats[1].rows_in, 55);
    }

    #[tokio::test]
    async fn first_error_wins_and_names_the_operator() {
        // The producer would block forever on a tiny channel if the failing
        // consumer did not cancel it.
        let err = run_chain(vec![Box::new(Numbers(10_000)), Box::new(FailAfter(20))], 4)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "fail_after: boom");
    }

    fn partition(id: &str) -> Arc<Partition> {
        Arc::new(Partition {
            id: id.to_string(),
            ranges: Vec::new(),
        })
    }

    /// Three partitions, each: 3 batches of 30 rows, 5 unchanged rows and
    /// keys to delete.
    struct Partitions;
    #[async_trait]
    impl Operator for Partitions {
        fn name(&self) -> &'static str {
            "partitions"
        }
        async fn on_start(&mut self, out: &mut Output) -> OpResult<()> {
            let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
            let rows = |n: i64| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from_iter_values(0..n))],
                )
                .unwrap()
            };
            for id in ["p0", "p1", "p2"] {
                let p = partition(id);
                out.send(Message::PartitionStart(p.clone())).await?;
                for _ in 0..3 {
                    out.batch(rows(30)).await?;
                }
                out.unchanged(5).await?;
                out.delete(rows(2)).await?;
                out.send(Message::PartitionEnd(p)).await?;
            }
            Ok(())
        }
    }

    /// (partition id, kind, rows) of one message.
    type Seen = (String, &'static str, usize);

    /// Records the partition and kind of every message it is given.
    struct Tap(Arc<std::sync::Mutex<Vec<Seen>>>);
    #[async_trait]
    impl Operator for Tap {
        fn name(&self) -> &'static str {
            "tap"
        }
        async fn on_message(&mut self, msg: Message, _out: &mut Output) -> OpResult<()> {
            let kind = match &msg {
                Message::PartitionStart(_) => "start",
                Message::Batch(..) => "batch",
                Message::Changes(..) => "changes",
                Message::Delete(..) => "delete",
                Message::Unchanged(..) => "unchanged",
                Message::PartitionEnd(_) => "end",
            };
            let rows = match &msg {
                Message::Unchanged(_, n) => *n as usize,
                other => other.rows(),
            };
            self.0
                .lock()
                .unwrap()
                .push((msg.partition().id.clone(), kind, rows));
            Ok(())
        }
    }

    /// Every message reaches the end of a chain labelled with its own
    /// partition, in order, also when an operator in between holds rows
    /// back and re-cuts them (the batcher flushes 90 rows in pieces of 50,
    /// and at the partition's end).
    #[tokio::test]
    async fn every_message_carries_its_partition_through_the_chain() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        run_chain(
            vec![
                Box::new(Partitions),
                Box::new(operators::batcher::Batcher::new(50)),
                Box::new(Tap(seen.clone())),
            ],
            1000,
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        // Per partition, in the order they started: (id, batch rows,
        // unchanged rows, keys to delete), each message between its own
        // partition's start and end.
        let mut totals: Vec<(String, usize, usize, usize)> = Vec::new();
        let mut open: Option<String> = None;
        for (id, kind, rows) in seen {
            match kind {
                "start" => {
                    assert_eq!(open, None, "{id} started inside another partition");
                    totals.push((id.clone(), 0, 0, 0));
                    open = Some(id);
                }
                "end" => assert_eq!(open.take().as_ref(), Some(&id)),
                _ => {
                    assert_eq!(open.as_ref(), Some(&id), "a {kind} labelled {id}");
                    let t = totals.last_mut().unwrap();
                    match kind {
                        "batch" => t.1 += rows,
                        "unchanged" => t.2 += rows,
                        "delete" => t.3 += rows,
                        other => panic!("unexpected {other}"),
                    }
                }
            }
        }
        assert_eq!(open, None);
        let expected: Vec<(String, usize, usize, usize)> = ["p0", "p1", "p2"]
            .iter()
            .map(|id| (id.to_string(), 90, 5, 2))
            .collect();
        assert_eq!(totals, expected);
    }
}
