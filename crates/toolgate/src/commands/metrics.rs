//! `--metrics-listen`: the Prometheus listener, started beside the gateway.

use std::sync::Arc;

use anyhow::Context;
use toolgate_proxy::approvals::Approvals;
use toolgate_proxy::metrics::{Exposition, Metrics};

use crate::cli::RunArgs;

/// Starts the metrics listener when `--metrics-listen` asks for one; its URL goes to stderr.
pub(super) async fn serve(
    metrics: Option<Arc<Metrics>>,
    approvals: Option<Arc<Approvals>>,
    args: &RunArgs,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(listen) = &args.metrics_listen else {
        return Ok(None);
    };
    let bind = toolgate_proxy::admin::parse_addr(listen)
        .map_err(|e| anyhow::anyhow!("--metrics-listen {e}"))?;
    if !bind.ip().is_loopback() && !args.metrics_public {
        anyhow::bail!(
            "--metrics-listen {listen}: not a loopback address; add --metrics-public to serve \
             the metrics beyond this machine"
        );
    }
    let Some(metrics) = metrics else {
        anyhow::bail!("metrics are off although --metrics-listen was given");
    };
    let exposition = Exposition { metrics, approvals };
    let (addr, task) = toolgate_proxy::metrics::spawn(exposition, bind)
        .await
        .with_context(|| format!("cannot listen on {bind} for metrics"))?;
    eprintln!("toolgate: metrics on http://{addr}/metrics");
    Ok(Some(task))
}
