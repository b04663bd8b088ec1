//! Checks that a destination holds exactly the source's rows: both sides are
//! streamed through the same connectors and reduced to a row count plus an
//! order-independent 128-bit fingerprint (two sums of row hashes), so
//! memory stays bounded.

use connectors::rowhash::{self, WideChecksum};
use connectors::{open_source, Source};
use futures_util::StreamExt;
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

/// Compares the pipeline's source (as mapped) with its destination table.
pub async fn compare(pipeline: &Pipeline) -> Result<Comparison, EngineError> {
    // An aggregate's source is compared as the groups it makes, computed
    // by its own SQL, whichever engine runs the sync.
    let mut table = pipeline.source.clone();
    if let Some(g) = &mut table.grouped {
        g.form = planner::model::GroupedForm::Groups;
    }
    let mut source = open_source(&table, &pipeline.columns).await?;
    source.check().await?;
    let src = fingerprint(source.as_mut()).await?;

    let mut dest = crate::run::destination_as_source(pipeline).await?;
    dest.check().await?;
    let dst = fingerprint(dest.as_mut()).await?;
    Ok(Comparison {
        pipeline: pipeline.name.clone(),
        source: src,
        destination: dst,
    })
}
