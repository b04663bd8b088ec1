use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one run, shared by the operators and whoever reports
/// progress (the CLI's progress bar, logs, metrics).
#[derive(Debug, Default)]
pub struct RunProgress {
    pub rows_read: AtomicU64,
    pub rows_written: AtomicU64,
    pub rows_inserted: AtomicU64,
    pub rows_updated: AtomicU64,
    pub rows_unchanged: AtomicU64,
    pub rows_deleted: AtomicU64,
    pub partitions_total: AtomicU64,
    pub partitions_done: AtomicU64,
    pub partitions_skipped: AtomicU64,
}

impl RunProgress {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
