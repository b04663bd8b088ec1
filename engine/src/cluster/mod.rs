//! Production mode on Redis: the work queue a run's coordinator shares
//! with worker processes on any host (`queue`), the coordinator's side of
//! such a run (`run`), the workers' (`worker`), and the scheduler that
//! starts runs when their cron says (`scheduler`).

pub mod queue;
pub mod run;
pub mod scheduler;
pub mod worker;

pub use queue::{RedisQueue, DEFAULT_QUEUE, DEFAULT_REDIS_URL};
pub use run::run_on_queue;
pub use worker::{serve, WorkerEvent, WorkerOptions};
