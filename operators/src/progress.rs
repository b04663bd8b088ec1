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
    /// When the first partition was taken and the last one committed, in
    /// microseconds since the Unix epoch (0: not yet). What lies outside
    /// them is the run's fixed cost: starting, connecting, planning, and
    /// recording the end.
    pub first_partition_taken_us: AtomicU64,
    pub last_commit_us: AtomicU64,
}

impl RunProgress {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks a partition taken; only the first one counts.
    pub fn partition_taken(&self) {
        let _ = self.first_partition_taken_us.compare_exchange(
            0,
            epoch_micros(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Marks a partition committed; the latest one counts.
    pub fn partition_committed(&self) {
        self.last_commit_us
            .fetch_max(epoch_micros(), Ordering::Relaxed);
    }
}

/// Now, in microseconds since the Unix epoch (0 before it).
pub fn epoch_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
