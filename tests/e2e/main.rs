//! The end-to-end tests, linked into one test binary (one link instead of one
//! per file): each module was a `tests/<name>.rs` binary of its own and keeps
//! its name, so a test is `<module>::<test>` (e.g. `nextest run -E
//! 'test(/^tamper::/)'`). nextest still runs every test in its own process.
//! Shared helpers are in `common`.

mod common;

mod aggregate_sync;
mod bad_input;
mod catalog_types;
mod clickhouse_sync;
mod composite_keys;
mod concurrency;
mod concurrent_partitions;
mod config_cli;
mod connection_secrets;
mod crash_resume;
#[cfg(feature = "delta")]
mod delta_lake;
mod delta_sync;
mod demo;
mod dense_estimate;
mod deploy_files;
mod duplicate_keys;
mod full_delete_missing;
mod hash_key_column;
mod hash_sync;
mod hostile_cases;
mod hostile_input;
mod hostile_run;
mod http_api;
#[cfg(feature = "delta")]
mod lake_s3;
mod mysql_sync;
mod pipelines_plan;
mod plan_is_what_runs;
mod postgres_full_sync;
mod quoted_names;
mod redis_workers;
mod restarts;
mod scheduler;
mod sparse_partitions;
mod spec_fixtures;
mod sqlite_incremental;
mod state_cli;
mod table_locks;
mod tamper;
mod transforms;
mod worker_task;
