//! The hash strategy of any source: its pushdown when it has one
//! ([`Source::hash_pushdown`]), else its rows read and hashed here. Both
//! give the same checksums and row hashes, so callers never care which ran.

use futures_util::StreamExt;
use planner::model::MappedColumn;
use planner::partition::Partition;

use super::{checksum_combine, row_hashes_batch, try_checksum_batch};
use crate::traits::{BatchStream, BucketChecksum, Buckets, Checksum, Source};
use crate::Result;

/// Rows per page when a source's rows are read to be hashed here.
const HASH_PAGE_ROWS: usize = 8192;

/// Row count and wrapping sum of the row hashes of `partition`.
pub async fn checksum(source: &mut dyn Source, partition: &Partition) -> Result<Checksum> {
    match source.hash_pushdown() {
        Some(pushdown) => pushdown.checksum(partition).await,
        None => checksum_by_reading(source, partition).await,
    }
}

/// The unique key columns plus the row hash of every row of `partition`
/// ([`row_hashes_batch`]'s columns).
pub async fn row_hashes<'a>(
    source: &'a mut dyn Source,
    partition: &Partition,
    page_rows: usize,
) -> Result<BatchStream<'a>> {
    // Asked twice: a stream borrowed from the pushdown cannot be returned
    // from one arm of a match whose other arm uses `source` again (a known
    // limit of the borrow checker).
    if source.hash_pushdown().is_none() {
        return row_hashes_by_reading(source, partition, page_rows).await;
    }
    let pushdown = source.hash_pushdown().expect("asked just above");
    pushdown.row_hashes(partition, page_rows).await
}

/// Checksums of each non-empty bucket of `partition`, sorted by bucket;
/// `None` when the source cannot group its rows by bucket where they live
/// (reading every row to bucket them here would cost the scan the buckets
/// are meant to narrow).
pub async fn bucket_checksums(
    source: &mut dyn Source,
    partition: &Partition,
    buckets: Buckets,
) -> Result<Option<Vec<BucketChecksum>>> {
    match source.hash_pushdown() {
        Some(pushdown) => pushdown.bucket_checksums(partition, buckets).await,
        None => Ok(None),
    }
}

/// The row hashes of the rows of `partition` in the buckets `which`. Only
/// called where [`bucket_checksums`] answered.
pub async fn bucket_row_hashes<'a>(
    source: &'a mut dyn Source,
    partition: &Partition,
    buckets: Buckets,
    which: &[i64],
    page_rows: usize,
) -> Result<BatchStream<'a>> {
    match source.hash_pushdown() {
        Some(pushdown) => {
            pushdown
                .bucket_row_hashes(partition, buckets, which, page_rows)
                .await
        }
        None => Err(crate::ConnectorError::Unsupported(
            "this source cannot compute row hashes by bucket".into(),
        )),
    }
}

/// `partition`'s checksum from its rows as `source` reads them, hashed here:
/// the path of every source that cannot hash where its data lives. A
/// pushdown's checksum equals this one (the conformance suite holds them
/// equal).
pub async fn checksum_by_reading<S: Source + ?Sized>(
    source: &mut S,
    partition: &Partition,
) -> Result<Checksum> {
    let columns = source.columns().to_vec();
    checksum_of_columns(source, partition, &columns, HASH_PAGE_ROWS).await
}

/// [`checksum_by_reading`] over `columns` (the source's, with other
/// `hash_column` flags: [`super::whole_rows`]), read in pages of
/// `page_rows`.
pub async fn checksum_of_columns<S: Source + ?Sized>(
    source: &mut S,
    partition: &Partition,
    columns: &[MappedColumn],
    page_rows: usize,
) -> Result<Checksum> {
    let mut batches = source.read(partition, page_rows).await?;
    let mut total = Checksum::default();
    while let Some(batch) = batches.next().await {
        total = checksum_combine(total, try_checksum_batch(&batch?, columns)?);
    }
    Ok(total)
}

/// The keys and row hashes of `partition` ([`row_hashes_batch`]) from its
/// rows as `source` reads them.
pub async fn row_hashes_by_reading<'a, S: Source + ?Sized>(
    source: &'a mut S,
    partition: &Partition,
    page_rows: usize,
) -> Result<BatchStream<'a>> {
    let columns = source.columns().to_vec();
    let batches = source.read(partition, page_rows).await?;
    Ok(Box::pin(batches.map(move |batch| {
        batch.and_then(|b| row_hashes_batch(&b, &columns))
    })))
}
