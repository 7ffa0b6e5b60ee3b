//! `policyd run`: start (check, lock the pin directory, load or adopt,
//! enforce), serve (metrics, events, schedules, reloads), drain (on
//! SIGINT/SIGTERM: stop the endpoint, write the queued events). Enforcement
//! stays pinned after a stop, so a restart or an upgrade leaves no gap;
//! `policyd unload` removes it.

use std::{
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
};

use anyhow::{Context as _, bail};
use aya::maps::{MapData, RingBuf};
use policy_common::DECAY_INTERVAL_SECS;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};

use super::{reload::Reloader, watch::PolicyWatch};
use crate::{
    dataplane::{self, Capacity, DEFAULT_PIN_DIR, Dataplane, Ingress, Pins, Side},
    policy::{self, CompiledPolicy},
    schedule::{self, Clock},
    telemetry::{
        DEFAULT_METRICS_ADDR, DaemonMetrics, EventSink, KernelCounters, MetricsServer, Names,
        ProcessMetrics, open_events_file,
    },
};

/// How to attach the XDP program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum XdpModeArg {
    /// Native (driver) mode; fall back to generic mode with a warning.
    Auto,
    /// Native mode only: fail if the driver has no XDP support.
    Native,
}

/// Where ingress is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum HookArg {
    /// XDP: the earliest point, before the stack allocates a socket buffer
    /// (with a driver that supports it natively).
    Xdp,
    /// TC ingress: after the socket buffer exists. Costs less where XDP
    /// buys nothing, e.g. on veth (see BENCHMARKS.md, drop throughput).
    Tc,
}

/// Enforce a policy on network interfaces until interrupted.
///
/// Each interface gets XDP (or, with `--hook tc`, TC) on ingress and TC on
/// egress. On an interface
/// facing the users (`--iface`) ingress traffic is their upload, identified
/// by source address or MAC; on one facing the network (`--uplink`) ingress
/// traffic is their download, identified by destination address.
///
/// Flags that name a variable (`POLICYD_IFACE`, ...) can be set through it
/// instead: policyd.service reads them from /etc/policyd/policyd.conf.
#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// Interface facing the users; repeat for several (in the variable,
    /// separated by spaces: no interface name holds one).
    #[arg(
        long = "iface",
        short = 'i',
        value_name = "IFACE",
        env = "POLICYD_IFACE",
        value_delimiter = ' '
    )]
    ifaces: Vec<String>,
    /// Interface facing the network (uplink); repeat for several (in the
    /// variable, separated by spaces).
    #[arg(
        long = "uplink",
        value_name = "IFACE",
        env = "POLICYD_UPLINK",
        value_delimiter = ' '
    )]
    uplinks: Vec<String>,
    /// Policy file (TOML); see `policyd check`. Repeat to layer files (the
    /// more restrictive setting wins); a directory layers its `*.toml` files
    /// in name order. Without it, the built-in acceptable-use baseline is
    /// enforced (`policyd default-policy`). The variable names one file or
    /// directory.
    #[arg(
        long = "policy",
        short = 'p',
        value_name = "FILE|DIR",
        env = "POLICYD_POLICY"
    )]
    policies: Vec<PathBuf>,
    /// Accept a policy that enforces nothing: an empty file (or one of only
    /// comments), a directory with no `*.toml` file, or, on a reload, a
    /// policy with no users, rules or `[unidentified]` action in place of
    /// one with some. Without it they are refused: a truncated file looks
    /// just like that.
    #[arg(long)]
    allow_empty_policy: bool,
    /// After a policy file changes, wait until it has not changed for this
    /// long before reloading (every change restarts the wait), so that a
    /// file being written is not read half-done.
    #[arg(
        long,
        default_value = super::watch::DEFAULT_SETTLE,
        value_name = "DURATION",
        value_parser = super::watch::parse_settle
    )]
    reload_settle: std::time::Duration,
    /// Pin a profile (e.g. `off_hours`) instead of following the policy's
    /// schedules.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Run the schedule clock from this instant instead of the real time
    /// (RFC 3339, e.g. `2026-12-01T16:59:55-05:00`), counted from when
    /// enforcement starts: for trying schedules.
    #[arg(long, env = "POLICYD_NOW", value_name = "TIME")]
    now: Option<jiff::Timestamp>,
    /// Address for the Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`).
    #[arg(
        long,
        default_value = DEFAULT_METRICS_ADDR,
        value_name = "ADDR:PORT",
        env = "POLICYD_METRICS_ADDR"
    )]
    metrics_addr: SocketAddr,
    /// Where enforcement events go, as JSON lines: a file (appended to), or
    /// `-` for standard output. Under systemd give a file: standard output
    /// and the log would both end up in the journal.
    #[arg(long, default_value = "-", value_name = "PATH", env = "POLICYD_EVENTS")]
    events: String,
    /// The ingress hook. Changing it needs `policyd unload` first.
    #[arg(long, value_enum, default_value_t = HookArg::Xdp, env = "POLICYD_HOOK")]
    hook: HookArg,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto, env = "POLICYD_XDP_MODE")]
    xdp_mode: XdpModeArg,
    /// Where maps and links are pinned in bpffs (made root-only; a directory
    /// anyone else could have made or could change is refused). One policyd
    /// per directory. Enforcement outlives policyd, whether it crashed or
    /// stopped cleanly; the next one adopts it, counters included.
    /// `policyd unload` removes it.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR", env = "POLICYD_PIN_DIR")]
    pin_dir: PathBuf,
    /// Attach only on ingress (XDP), not TC on egress.
    #[arg(long)]
    ingress_only: bool,
    /// Cells per row of the elephant-detection sketch, rounded up to a
    /// power of two (8 bytes each, two rows). Wider: fewer small flows
    /// promoted by sharing cells with big ones (docs/datapath.md).
    #[arg(long, default_value_t = Capacity::default().sketch_width, value_name = "N")]
    sketch_width: u32,
    /// Slots per row of the table of recent UDP flows that connection
    /// limits (`conn 20/min`) tell new flows by, rounded up to a power of
    /// two, at most 65536 (8 bytes each, two rows). Wider: fewer flows
    /// forgotten early when many are live at once (docs/datapath.md).
    #[arg(long, default_value_t = Capacity::default().conn_flow_width, value_name = "N")]
    conn_flow_width: u32,
    /// (user, class, direction) counter entries. Default: every user in
    /// every class both ways and a quarter more, at least 4096, at most
    /// 2097152 (the map holds only what traffic creates; its bucket array
    /// costs 16 bytes an entry). When full, new triples are not counted
    /// and `policyd_uncounted_packets_total` says so.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_counters: Option<u32>,
    /// Token buckets (one per limited user, class and direction; never
    /// evicted). Default: twice what the policy needs, at least 1024. A
    /// value below the policy's need is refused.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_buckets: Option<u32>,
}

pub(super) fn run(mut args: RunArgs) -> anyhow::Result<()> {
    // An empty POLICYD_IFACE (or two spaces in one) is no interface, not
    // one named "".
    args.ifaces.retain(|i| !i.is_empty());
    args.uplinks.retain(|i| !i.is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let daemon = start(&args, &runtime)?;
    let pin_dir = args.pin_dir.display().to_string();
    runtime.block_on(daemon.serve())?;
    tracing::info!(
        pins = %pin_dir,
        "stopped; enforcement stays in force from the pins (`policyd unload` removes it)"
    );
    Ok(())
}

/// A started daemon: enforcing, with everything `serve` needs.
struct Started {
    dataplane: Dataplane,
    reloader: Reloader,
    server: MetricsServer,
    events: EventSink,
    ring: RingBuf<MapData>,
    /// The learned destinations and the ring of DNS answers and TLS
    /// handshakes they are learned from.
    learned: (
        Arc<std::sync::Mutex<dataplane::LearnedMaps>>,
        RingBuf<MapData>,
    ),
    /// The quiet period after a file change before reloading.
    settle: std::time::Duration,
}

/// Start: check everything that can be checked, lock the pin directory,
/// load or adopt, then enforce. A start that fails leaves the kernel as it
/// found it: it undoes only what it made itself, and never removes or
/// detaches what a previous policyd left.
fn start(args: &RunArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Started> {
    if args.ifaces.is_empty() && args.uplinks.is_empty() {
        bail!("nothing to enforce on: give at least one --iface or --uplink");
    }
    // A mistyped interface fails here, before anything is loaded.
    for iface in args.ifaces.iter().chain(&args.uplinks) {
        dataplane::ifindex(iface)?;
    }
    if args.policies.is_empty() {
        tracing::warn!(
            "no --policy given: enforcing the built-in baseline (see `policyd default-policy`)"
        );
    }
    let policy = policy::load_for_run(&args.policies, args.allow_empty_policy, None)
        .context("the policy is invalid; nothing was loaded")?
        .policy;
    let compiled = CompiledPolicy::compile(&policy);
    let capacity = Capacity {
        sketch_width: args.sketch_width,
        conn_flow_width: args.conn_flow_width,
        counters: args.max_counters.unwrap_or_default(),
        buckets: args.max_buckets.unwrap_or_default(),
        ..Capacity::default()
    }
    .fit(&compiled);
    capacity
        .check_buckets(&compiled)
        .context("--max-buckets is too small for the policy; nothing was loaded")?;
    // A pinned profile must exist before anything is loaded.
    if let Some(name) = &args.profile {
        compiled.profile(name).with_context(|| {
            format!(
                "the policy has no profile `{name}`; it has: {}",
                compiled.profiles.join(", ")
            )
        })?;
    }
    // After the arguments and the policy (a mistake there is named first,
    // with or without privileges) and before anything touches the kernel:
    // a missing feature is named here, not left to a verifier log or an
    // attach error.
    let probing = std::time::Instant::now();
    let kernel = dataplane::kernel_floor::check()?;
    tracing::debug!(%kernel, took = ?probing.elapsed(), "the kernel has every feature policyd needs");
    let events_out: Box<dyn Write + Send> = if args.events == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            open_events_file(args.events.as_ref())
                .with_context(|| format!("cannot open the events file `{}`", args.events))?,
        )
    };

    let mut dataplane = Dataplane::load_programs(
        capacity,
        Pins::Persistent(args.pin_dir.clone()),
        &programs(args),
    )
    .map_err(|e| {
        let refused = matches!(e, dataplane::DataplaneError::Verify { .. });
        let e = anyhow::Error::from(e).context("loading the kernel programs failed");
        match dataplane::kernel_floor::older_verifier(kernel) {
            Some(note) if refused => e.context(note),
            _ => e,
        }
    })?;
    // Names keep the ids a previous policyd pinned (and their counters).
    let compiled = match dataplane.assign_ids(&compiled) {
        Ok(c) => c,
        Err(e) => {
            let _ = dataplane.remove_created_pins();
            return Err(e.into());
        }
    };
    if dataplane.adopted() {
        tracing::info!(
            pins = %args.pin_dir.display(),
            "adopting the maps and links a previous policyd left: enforcement never stopped, counters carry on"
        );
    }
    let names = Arc::new(RwLock::new(Names {
        users: compiled.users.iter().map(|u| u.name.clone()).collect(),
        classes: compiled.classes.clone(),
        profiles: compiled.profiles.clone(),
        per_user: policy.per_user.unwrap_or_default(),
        tables: dataplane.table_fill(&compiled),
        started_at: unix_now(),
        last_reload_ok: true,
        counters_capacity: u64::from(dataplane.capacity().counters),
        buckets_capacity: u64::from(dataplane.capacity().buckets),
        ..Names::default()
    }));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(
        KernelCounters::new(dataplane.counters(), Arc::clone(&names))
            .with_scan(
                dataplane
                    .scan_table()
                    .context("opening the scan-detection table")?,
            )
            .with_quotas(dataplane.quota_table())
            .with_pins(dataplane.pins().dir().to_owned()),
    ));
    registry.register_collector(Box::new(DaemonMetrics::new(Arc::clone(&names))));
    registry.register_collector(Box::new(ProcessMetrics));
    let ring = dataplane
        .take_events()
        .context("opening the event ring buffer")?;
    let learned = dataplane
        .learn_names(&compiled)
        .context("opening the learned-destination tables")?;
    registry.register_collector(Box::new(crate::telemetry::NamesMetrics::new(Arc::clone(
        &learned.0,
    ))));
    // Bound before anything changes in the kernel: a busy port fails a start
    // that has not touched enforcement yet.
    let server = runtime
        .block_on(MetricsServer::bind(args.metrics_addr, registry))
        .inspect_err(|_| {
            let _ = dataplane.remove_created_pins();
        })?;

    // The clock starts now, after the slow part (the verifier), so that
    // `--now` is the time when enforcement starts.
    let clock = args.now.map_or_else(Clock::real, Clock::starting_at);
    let profile = super::profile_index(&policy, &compiled, args.profile.as_deref(), &clock)?;
    if let Err(e) = enforce(&mut dataplane, &compiled, profile, args) {
        dataplane.undo_attachments();
        let _ = dataplane.remove_created_pins();
        return Err(e);
    }
    // For `policyd status`: who serves the pins, since when, attached how.
    if let Err(e) = dataplane.record_serving() {
        tracing::warn!(error = %e, "cannot record this daemon in the pins; `policyd status` will not see it");
    }
    {
        let mut n = names.write().unwrap_or_else(|p| p.into_inner());
        n.profile.clone_from(&compiled.profiles[profile]);
        n.generation = 1;
        n.last_applied_at = unix_now();
    }
    tracing::info!(
        policy = %describe_sources(&args.policies),
        users = policy.users.len(),
        classes = policy.classes.len(),
        profile = %compiled.profiles[profile],
        schedule = if args.profile.is_some() { "pinned" } else { "followed" },
        metrics = %server.local_addr().map_or_else(|| args.metrics_addr.to_string(), |a| a.to_string()),
        "enforcing"
    );
    let reloader = Reloader {
        paths: args.policies.clone(),
        allow_empty: args.allow_empty_policy,
        pinned: args.profile.clone(),
        clock,
        names: Arc::clone(&names),
        policy,
        compiled,
        profile,
    };
    Ok(Started {
        dataplane,
        reloader,
        server,
        events: EventSink::new(events_out, names).with_learned(Arc::clone(&learned.0)),
        ring,
        learned,
        settle: args.reload_settle,
    })
}

/// Puts the policy in force on every interface. A fresh start writes the
/// policy, then attaches, so no packet meets programs with empty maps. An
/// adopting one attaches first (its program takes over the previous
/// policyd's links, which keep enforcing the policy already in the maps),
/// then writes: whichever step fails, the policy in force stays the old one.
fn enforce(
    dataplane: &mut Dataplane,
    compiled: &CompiledPolicy,
    profile: usize,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let apply = |dp: &mut Dataplane| {
        dp.apply_with_profile(compiled, profile)
            .context("writing the policy into the kernel maps failed")
    };
    if dataplane.adopted() {
        attach_all(dataplane, args)?;
        apply(dataplane)
    } else {
        apply(dataplane)?;
        attach_all(dataplane, args)
    }
}

fn describe_sources(policies: &[PathBuf]) -> String {
    if policies.is_empty() {
        return policy::BASELINE_NAME.to_owned();
    }
    let names: Vec<String> = policies.iter().map(|p| p.display().to_string()).collect();
    names.join(" + ")
}

impl Started {
    /// Serve until SIGINT or SIGTERM: metrics, events, schedules, reloads.
    /// Then drain: the endpoint stops, the scheduler stops, the events the
    /// kernel queued are written out. Enforcement stays pinned.
    async fn serve(self) -> anyhow::Result<()> {
        let Self {
            mut dataplane,
            mut reloader,
            server,
            events,
            ring,
            learned,
            settle,
        } = self;
        let (stop_learning_tx, stop_learning) = tokio::sync::oneshot::channel::<()>();
        let learning = tokio::spawn(super::learn::learn_names(
            learned.0,
            learned.1,
            async move {
                let _ = stop_learning.await;
            },
        ));
        let (stop_events_tx, stop_events) = tokio::sync::oneshot::channel::<()>();
        let events = tokio::spawn(events.run(ring, async move {
            let _ = stop_events.await;
        }));
        let start_scheduler = |r: &Reloader, switch| {
            r.pinned.is_none().then(|| {
                tokio::spawn(follow_schedule(
                    r.policy.clone(),
                    r.compiled.profiles.clone(),
                    r.clock,
                    switch,
                    Arc::clone(&r.names),
                    r.profile,
                ))
            })
        };
        let mut scheduler = start_scheduler(&reloader, dataplane.profile_switch());
        let ageing = tokio::spawn(age_sketch(dataplane.flow_sketch()));
        let quotas = tokio::spawn(roll_quotas(dataplane.quota_table(), reloader.clock));
        // Watch and handle signals before serving: the first answer on the
        // endpoint is what supervisors (and the tests) take for readiness,
        // and a SIGHUP that arrives before its handler would kill policyd.
        let mut watch = PolicyWatch::start(&reloader.paths, settle);
        let signals = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        );
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server.serve(async move {
            let _ = stop_rx.await;
        }));
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = signals else {
            tracing::error!("cannot install signal handlers; stop policyd with SIGKILL");
            return server
                .await
                .map_err(|e| anyhow::anyhow!(e))?
                .map_err(anyhow::Error::from);
        };
        // Enforcement is attached and every handler is in place: this is
        // where a `Type=notify` unit counts as started.
        super::notify::notify("READY=1\nSTATUS=enforcing");
        loop {
            let trigger = tokio::select! {
                _ = int.recv() => { tracing::info!(signal = "SIGINT", "received signal"); break; }
                _ = term.recv() => { tracing::info!(signal = "SIGTERM", "received signal"); break; }
                _ = hup.recv() => "SIGHUP",
                () = watch.settled() => "file change",
            };
            watch.refresh();
            if reloader.reload(&mut dataplane, trigger) {
                if let Some(s) = scheduler.take() {
                    s.abort();
                }
                scheduler = start_scheduler(&reloader, dataplane.profile_switch());
            }
        }

        // Drain. The scheduler only flips profiles: stopping it loses
        // nothing (the profile in force stays until the next policyd).
        tracing::info!("draining: stopping the endpoint, writing the queued events");
        super::notify::notify("STOPPING=1\nSTATUS=draining");
        if let Err(e) = dataplane.record_stopped() {
            tracing::warn!(error = %e, "cannot record the clean stop in the pins");
        }
        if let Some(s) = scheduler {
            s.abort();
        }
        // Halving the sketch is idempotent enough to stop anywhere: a half
        // done pass leaves some cells halved once less.
        ageing.abort();
        // Starting a period is one write per slot, each complete: a pass
        // stopped half way is finished by the next policyd.
        quotas.abort();
        let _ = stop_tx.send(());
        let served = server.await.map_err(|e| anyhow::anyhow!(e))?;
        // Answers queued before the stop are learned before the events are
        // drained, so those events can still carry the names.
        let _ = stop_learning_tx.send(());
        let learned = learning.await.map_err(|e| anyhow::anyhow!(e))?;
        if let Err(e) = learned {
            tracing::warn!(error = %e, "reading the names ring failed");
        }
        let _ = stop_events_tx.send(());
        let written = events.await.map_err(|e| anyhow::anyhow!(e))?;
        served?;
        written.context("writing the events failed")
    }
}

/// The entry points this run attaches, all verified before anything is
/// attached: a program the verifier refuses fails the start with nothing
/// changed. The third one is left out, since each costs the verifier
/// about a second (2.7 s for TC ingress on the CI machine; BENCHMARKS.md,
/// program size).
fn programs(args: &RunArgs) -> Vec<&'static str> {
    let mut programs = vec![match args.hook {
        HookArg::Xdp => dataplane::XDP_PROGRAM,
        HookArg::Tc => dataplane::TC_INGRESS_PROGRAM,
    }];
    if !args.ingress_only {
        programs.push(dataplane::TC_EGRESS_PROGRAM);
    }
    programs
}

fn attach_all(dataplane: &mut Dataplane, args: &RunArgs) -> anyhow::Result<()> {
    let all = args
        .ifaces
        .iter()
        .map(|i| (i, Side::Users))
        .chain(args.uplinks.iter().map(|i| (i, Side::Network)));
    for (iface, side) in all {
        let ingress = match args.hook {
            HookArg::Xdp => Ingress::Xdp {
                native_only: args.xdp_mode == XdpModeArg::Native,
            },
            HookArg::Tc => Ingress::Tc,
        };
        let mode = dataplane
            .attach(iface, side, ingress, args.ingress_only)
            .with_context(|| format!("attaching to `{iface}` failed"))?;
        tracing::info!(
            iface = %iface,
            side = if side == Side::Users { "users" } else { "network" },
            ingress = mode.as_str(),
            tc_egress = !args.ingress_only,
            "attached"
        );
    }
    Ok(())
}

/// Ages the elephant sketch: every [`DECAY_INTERVAL_SECS`] halves its
/// cells (policy-common's sketch.rs says what that means for promotions).
async fn age_sketch(sketch: Arc<dataplane::FlowSketch>) {
    let period = std::time::Duration::from_secs(DECAY_INTERVAL_SECS);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        let sketch = Arc::clone(&sketch);
        // Thousands of map syscalls: off the runtime's worker threads.
        match tokio::task::spawn_blocking(move || sketch.decay()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot age the elephant sketch; will retry"),
            Err(e) => tracing::warn!(error = %e, "the sketch ageing task failed; will retry"),
        }
    }
}

/// Starts each quota's new period when its reset time comes: once a
/// second, every slot whose period may have ended is looked at.
async fn roll_quotas(table: Arc<std::sync::Mutex<dataplane::QuotaTable>>, clock: Clock) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let table = Arc::clone(&table);
        let now = clock.now();
        let rolled = tokio::task::spawn_blocking(move || {
            table.lock().unwrap_or_else(|p| p.into_inner()).roll(now)
        })
        .await;
        match rolled {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(slots = n, "quota periods started"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot start quota periods; will retry"),
            Err(e) => tracing::warn!(error = %e, "the quota task failed; will retry"),
        }
    }
}

/// Follows the policy's schedules: every quarter of a second, works out the
/// profile in force and, when it changes, flips the kernel's active profile
/// (one store) and the metrics' label. Boundaries are met within 250 ms.
async fn follow_schedule(
    policy: policy::Policy,
    profiles: Vec<String>,
    clock: Clock,
    switch: Arc<std::sync::Mutex<dataplane::ProfileSwitch>>,
    names: Arc<RwLock<Names>>,
    mut current: usize,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tick.tick().await;
        let now = clock.now();
        let next = schedule::active_profile(&policy.schedules, &policy.settings.timezone, now);
        if next == current {
            continue;
        }
        let result = switch.lock().unwrap_or_else(|p| p.into_inner()).set(next);
        match result {
            Ok(()) => {
                tracing::info!(
                    from = %profiles[current],
                    to = %profiles[next],
                    at = %now.to_zoned_datetime(policy.settings.timezone.clone()),
                    "profile changed"
                );
                names.write().unwrap_or_else(|p| p.into_inner()).profile = profiles[next].clone();
                current = next;
            }
            Err(e) => tracing::error!(error = %e, "cannot switch the profile; will retry"),
        }
    }
}

/// Seconds since the epoch, for the metrics' timestamps.
pub(super) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
