//! Checks that a destination holds exactly the source's rows: both sides are
//! streamed through the same connectors and reduced to a row count plus an
//! order-independent 128-bit fingerprint (two sums of row hashes), so
//! memory stays bounded.

use connectors::rowhash::{self, WideChecksum};
use connectors::{open_source, Source};
use futures_util::StreamExt;
use operators::regroup::groups_as_destination;
use operators::OperatorError;
use planner::partition::Partition;
use planner::Pipeline;
use serde::Serialize;

use crate::error::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TableFingerprint {
    pub rows: u64,
    pub sum_a: u64,
    pub sum_b: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub pipeline: String,
    pub source: TableFingerprint,
    pub destination: TableFingerprint,
}

impl Comparison {
    pub fn identical(&self) -> bool {
        self.source == self.destination
    }
}

/// The whole-row fingerprint of every row `source` reads (the one
/// fingerprint module's, `connectors::rowhash`, on every column).
async fn fingerprint(source: &mut dyn Source) -> Result<TableFingerprint, EngineError> {
    let columns = rowhash::whole_rows(source.columns());
    let mut sum = WideChecksum::default();
    let mut batches = source.read(&Partition::whole(), 50_000).await?;
    while let Some(batch) = batches.next().await {
        sum.add_batch(&batch?, &columns)?;
    }
    Ok(TableFingerprint {
        rows: sum.rows,
        sum_a: sum.sum,
        sum_b: sum.second_sum,
    })
}

/// The fingerprint of every group of `aggregate` over the source's rows,
/// grouped in DataFusion, in the destination's columns.
async fn grouped_fingerprint(
    source: &mut dyn Source,
    aggregate: &planner::model::Aggregate,
    pipeline: &Pipeline,
) -> Result<TableFingerprint, EngineError> {
    let specs = |columns: &[planner::model::MappedColumn]| {
        let specs: Vec<_> = columns.iter().map(|c| c.spec.clone()).collect();
        planner::types::arrow_schema(&specs)
    };
    let failed = |source: OperatorError| EngineError::Operator {
        operator: "regroup".into(),
        source,
    };
    let mut grouping = compute::Grouping::start(aggregate.clone(), specs(source.columns()));
    let mut rows = source.read(&Partition::whole(), 50_000).await?;
    while let Some(batch) = rows.next().await {
        grouping.push(batch?).await.map_err(|e| failed(e.into()))?;
    }
    drop(rows);
    let schema = specs(&pipeline.columns);
    let columns = rowhash::whole_rows(&pipeline.columns);
    let mut sum = WideChecksum::default();
    for groups in grouping.finish().await.map_err(|e| failed(e.into()))? {
        let batch = groups_as_destination(&groups, &pipeline.columns, &schema).map_err(failed)?;
        sum.add_batch(&batch, &columns)?;
    }
    Ok(TableFingerprint {
        rows: sum.rows,
        sum_a: sum.sum,
        sum_b: sum.second_sum,
    })
}

/// Compares the pipeline's source (as mapped) with its destination table.
pub async fn compare(pipeline: &Pipeline) -> Result<Comparison, EngineError> {
    let mut source = open_source(&pipeline.source, pipeline.read_columns()).await?;
    source.check().await?;
    let src = match (&pipeline.source.grouped, &pipeline.aggregate) {
        // The source's rows grouped as a run's DataFusion engine groups them.
        (Some(g), Some(aggregate)) if g.form == planner::model::GroupedForm::Rows => {
            grouped_fingerprint(source.as_mut(), aggregate, pipeline).await?
        }
        _ => fingerprint(source.as_mut()).await?,
    };

    let mut dest = crate::run::destination_as_source(pipeline).await?;
    dest.check().await?;
    let dst = fingerprint(dest.as_mut()).await?;
    Ok(Comparison {
        pipeline: pipeline.name.clone(),
        source: src,
        destination: dst,
    })
}
