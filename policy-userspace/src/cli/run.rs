//! `policyd run`: load the programs, fill the maps from the policy, attach,
//! serve metrics, and detach cleanly on SIGINT/SIGTERM.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    dataplane::{Capacity, Dataplane},
    policy::{self, CompiledPolicy},
    telemetry::{DEFAULT_METRICS_ADDR, KernelCounters, MetricsServer},
};

/// How to attach the XDP program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum XdpModeArg {
    /// Native (driver) mode; fall back to generic mode with a warning.
    Auto,
    /// Native mode only: fail if the driver has no XDP support.
    Native,
}

/// Enforce a policy on network interfaces until interrupted.
#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// Interface to enforce on (ingress, XDP); repeat for several.
    #[arg(long = "iface", short = 'i', required = true, value_name = "IFACE")]
    ifaces: Vec<String>,
    /// Policy file (TOML); see `policyd check`.
    #[arg(long, short = 'p', value_name = "FILE")]
    policy: PathBuf,
    /// Address for the Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, default_value = DEFAULT_METRICS_ADDR, value_name = "ADDR:PORT")]
    metrics_addr: SocketAddr,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    xdp_mode: XdpModeArg,
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<()> {
    let policy = policy::load(&args.policy).context("the policy is invalid; nothing was loaded")?;
    let compiled = CompiledPolicy::compile(&policy);
    let mut dataplane = Dataplane::load(Capacity::for_policy(&compiled))
        .context("loading the kernel programs failed")?;
    dataplane
        .apply(&compiled)
        .context("writing the policy into the kernel maps failed")?;

    let users = Arc::new(RwLock::new(
        compiled
            .users
            .iter()
            .map(|u| (u.id, u.name.clone()))
            .collect(),
    ));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(KernelCounters::new(dataplane.counters(), users)));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Bind before attaching, so a busy port fails before anything changes.
    let server = runtime.block_on(MetricsServer::bind(args.metrics_addr, registry))?;

    let attached = attach_all(&mut dataplane, &args);
    if let Err(e) = attached {
        // Leave no interface half-enforced.
        dataplane
            .detach_all()
            .context("detaching after a failed attach")?;
        return Err(e);
    }
    tracing::info!(
        policy = %args.policy.display(),
        users = policy.users.len(),
        metrics = %server.local_addr().map_or_else(|| args.metrics_addr.to_string(), |a| a.to_string()),
        "enforcing"
    );

    let served = runtime.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel::<&'static str>();
        let waiter = tokio::spawn(async move {
            let which = wait_for_signal().await;
            let _ = tx.send(which);
        });
        let result = server
            .serve(async move {
                let _ = rx.await;
            })
            .await;
        waiter.abort();
        result
    });
    tracing::info!("shutting down: detaching programs");
    dataplane
        .detach_all()
        .context("detaching the programs failed")?;
    served?;
    tracing::info!("detached; bye");
    Ok(())
}

fn attach_all(dataplane: &mut Dataplane, args: &RunArgs) -> anyhow::Result<()> {
    for iface in &args.ifaces {
        let mode = dataplane
            .attach_xdp(iface, args.xdp_mode == XdpModeArg::Native)
            .with_context(|| format!("attaching to `{iface}` failed"))?;
        tracing::info!(iface = %iface, mode = mode.as_str(), "XDP program attached");
    }
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop policyd with SIGKILL");
        return std::future::pending().await;
    };
    let which = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    tracing::info!(signal = which, "received signal");
    which
}
