//! Checks that a destination holds exactly the source's rows: both sides are
//! streamed through the same connectors and reduced to a row count plus an
//! order-independent 128-bit fingerprint, so memory stays bounded.

use std::hash::{Hash, Hasher};

use arrow::row::{RowConverter, SortField};
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

async fn fingerprint(
    source: &mut dyn Source,
    fields: Vec<SortField>,
) -> Result<TableFingerprint, EngineError> {
    let converter = RowConverter::new(fields).map_err(connectors::ConnectorError::from)?;
    let mut fp = TableFingerprint {
        rows: 0,
        sum_a: 0,
        sum_b: 0,
    };
    let mut batches = source.read(&Partition::whole(), 50_000).await?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let rows = converter
            .convert_columns(batch.columns())
            .map_err(connectors::ConnectorError::from)?;
        for row in rows.iter() {
            let bytes = row.as_ref();
            // Two differently seeded hashes: a 128-bit sum makes an accidental
            // match of different tables vanishingly unlikely.
            let mut a = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut a);
            let mut b = std::collections::hash_map::DefaultHasher::new();
            0x9e37_79b9_7f4a_7c15u64.hash(&mut b);
            bytes.hash(&mut b);
            fp.sum_a = fp.sum_a.wrapping_add(a.finish());
            fp.sum_b = fp.sum_b.wrapping_add(b.finish());
            fp.rows += 1;
        }
    }
    Ok(fp)
}

/// Compares the pipeline's source (as mapped) with its destination table.
pub async fn compare(pipeline: &Pipeline) -> Result<Comparison, EngineError> {
    let fields: Vec<SortField> = pipeline
        .columns
        .iter()
        .map(|c| SortField::new(c.spec.data_type.arrow_type()))
        .collect();
    let mut source = open_source(&pipeline.source, &pipeline.columns).await?;
    source.check().await?;
    let src = fingerprint(source.as_mut(), fields.clone()).await?;

    let mut dest = crate::run::destination_as_source(pipeline).await?;
    dest.check().await?;
    let dst = fingerprint(dest.as_mut(), fields).await?;
    Ok(Comparison {
        pipeline: pipeline.name.clone(),
        source: src,
        destination: dst,
    })
}
