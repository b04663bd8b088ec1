//! The process's Prometheus recorder: what `engine::telemetry` counts,
//! rendered as Prometheus text.

use std::sync::OnceLock;

use engine::telemetry;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Run durations from a second to a few hours.
const DURATION_BUCKETS: &[f64] = &[
    0.1,
    0.5,
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4.0 * 3600.0,
];

/// Installs the recorder once per process; later calls return the same.
/// `None` when another recorder was installed first.
pub fn install_recorder() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(telemetry::RUN_DURATION.to_string()),
                    DURATION_BUCKETS,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "no Prometheus metrics: a recorder is installed already");
                    None
                }
            }
        })
        .as_ref()
}

/// The metrics as Prometheus text, the queue's gauges set first.
pub async fn render(queue: Option<&engine::cluster::RedisQueue>) -> String {
    if let Some(queue) = queue {
        match queue.status().await {
            Ok(s) => {
                let label = [("queue", s.queue.clone())];
                metrics::gauge!(telemetry::QUEUE_TASKS, &label).set(s.tasks as f64);
                metrics::gauge!(telemetry::QUEUE_TASKS_WAITING, &label).set(s.waiting as f64);
                metrics::gauge!(telemetry::QUEUE_OLDEST_TASK_AGE, &label)
                    .set(s.oldest_task_age_seconds.unwrap_or(0.0));
            }
            Err(e) => {
                tracing::warn!(error = %e.message(), "no queue gauges: cannot read the queue")
            }
        }
    }
    install_recorder().map(|h| h.render()).unwrap_or_default()
}
