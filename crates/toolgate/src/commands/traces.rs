//! OpenTelemetry traces: on when the standard `OTEL_*` variables name a collector.

use std::sync::Arc;

use toolgate_proxy::metrics::Metrics;
use toolgate_proxy::otel::{OtelConfig, Tracer};

/// The tracer every gateway of the process shares, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Must be called on the runtime (its exporter
/// is a task).
pub(super) fn start(metrics: Option<&Arc<Metrics>>) -> anyhow::Result<Option<Arc<Tracer>>> {
    let config = OtelConfig::from_env(&|name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(config) = config else {
        return Ok(None);
    };
    tracing::info!(
        endpoint = %config.endpoint,
        protocol = ?config.protocol,
        sampler = ?config.sampler,
        "exporting trace spans"
    );
    let tracer = Tracer::start(config, metrics.cloned()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(tracer))
}
