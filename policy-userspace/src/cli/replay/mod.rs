//! `policyd replay`: what a policy would have done to the traffic of a
//! capture. Every packet goes through the kernel program (by
//! `BPF_PROG_TEST_RUN`, at the capture's timestamps: engine.rs) and the
//! reference model, which checks it; the report says per user and class
//! what passed, was limited or denied, when, and (with `--against`) whom a
//! second policy would treat differently.

mod compare;
mod engine;
mod line;
mod progress;
mod report;
mod text;

use std::{
    io::{BufWriter, Write as _},
    path::PathBuf,
};

use anyhow::Context as _;
use policy_common::CounterKey;

use self::{engine::Engine, report::Report};
use crate::{
    capture::Capture,
    policy::{self, CompiledPolicy, Policy},
};

/// Where the packets are taken to be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum HookArg {
    /// XDP on an interface facing the users (uploads, by source).
    Xdp,
    /// TC ingress, same direction as XDP.
    TcIngress,
    /// TC egress on an interface facing the users (downloads, by destination).
    TcEgress,
}

/// What a policy would have done to the traffic of a capture: every packet
/// through the kernel program (needs root: the program is loaded, not
/// attached) at the capture's timestamps, so rate limits, elephant
/// thresholds, connection rates, quotas, scan detection and schedules act
/// as they would have live, and the same capture and policy always give the
/// same verdicts.
///
/// Reads classic pcap (either byte order, µs or ns, any snap length) and
/// pcapng (several interfaces), of Ethernet, Linux cooked (v1, v2: `tcpdump
/// -i any`) or raw IP frames. A packet captured short of its length counts
/// at its length on the wire. Damaged records are skipped, and counted.
///
/// Direction: a packet whose source is a user's is an upload (seen by XDP
/// on the users' side), else one whose destination is a user's is a
/// download (TC egress), else an upload by `unidentified`; `--hook` makes
/// every packet one kind.
///
/// Exit status: 0 when done; 1 on an error, or when the kernel and the
/// reference model disagreed on a packet (please report it); 3 when the
/// report is complete for what could be read but the capture was damaged
/// or cut short. Output into a closed pipe (`| head`) ends the replay
/// quietly.
///
/// `--json` prints one JSON document; its fields are stable (new ones may
/// be added): `capture` {`file`, `format`, `records`, `damaged`,
/// `unsupported`, `truncated_packets`, `truncated_file`, `skipped_bytes`};
/// `packets`, `refused`, `oversize`, `disagreements`, `first_ns`,
/// `last_ns`, `seconds` (the replay's, after its start-up); `users` {name: {`classes` [{`class`, `direction`, `passed`,
/// `limited`, `denied`, `monitored` ({`packets`, `bytes`} each)}],
/// `seconds_at_limit`, `drops_by_reason`, `quarantined`, `hit_quota`}};
/// `hours` [{`hour`, `profiles`, `tally`}]; `profiles` {name: tally};
/// `verdicts` [per packet: `n`, `time`, `ts_ns`, `bytes`, `packet`,
/// `user`, `class`, `direction`, `verdict`, `reason`, `agrees`] (with
/// --quiet only disagreements; with --against only the packets treated
/// differently, with `against`); `against` {`policy`, `users`,
/// `differences` [{`user`, `classes` [{`class`, `direction`, `policy`,
/// `against`}]}]}.
#[derive(Debug, clap::Args)]
pub(super) struct ReplayArgs {
    /// The capture: pcap or pcapng.
    #[arg(long, visible_alias = "capture", value_name = "FILE")]
    pcap: PathBuf,
    /// The policy to try; repeat to layer files (a directory: its `*.toml`
    /// files in name order).
    #[arg(long = "policy", short = 'p', value_name = "FILE", required = true)]
    policies: Vec<PathBuf>,
    /// A second policy to compare with on the same capture (repeat to
    /// layer): the report lists the users it treats differently.
    #[arg(long = "against", value_name = "FILE")]
    against: Vec<PathBuf>,
    /// Schedule profile in force throughout (default: the one the policy's
    /// schedules give at each packet's timestamp, in its time zone).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Where every packet is seen (default: by direction, from the
    /// policy's users).
    #[arg(long, value_enum)]
    hook: Option<HookArg>,
    /// Every packet at the first one's time (back to back), as a burst.
    #[arg(long)]
    burst: bool,
    /// Seed of the random early drops (the same seed gives the same drops).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print only the report (and packets the kernel and model disagree on).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// A policy as the command line names it, compiled.
struct Loaded {
    policy: Policy,
    compiled: CompiledPolicy,
    label: String,
}

fn load(paths: &[PathBuf]) -> anyhow::Result<Loaded> {
    let label = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let policy = policy::load_layers(paths)
        .with_context(|| format!("the policy {label} is invalid"))?
        .policy;
    let compiled = CompiledPolicy::compile(&policy);
    Ok(Loaded {
        policy,
        compiled,
        label,
    })
}

fn profile_slot(l: &Loaded, name: Option<&str>) -> anyhow::Result<Option<usize>> {
    name.map(|name| {
        l.compiled.profile(name).ok_or_else(|| {
            anyhow::anyhow!(
                "the policy {} has no profile `{name}`; it has: {}",
                l.label,
                l.compiled.profiles.join(", ")
            )
        })
    })
    .transpose()
}

/// One policy's pass: its engine and what it found.
struct Pass<'a> {
    engine: Engine<'a>,
    report: Report,
    loaded: &'a Loaded,
}

impl<'a> Pass<'a> {
    fn new(l: &'a Loaded, args: &ReplayArgs) -> anyhow::Result<Self> {
        let engine = Engine::load(
            &l.policy,
            &l.compiled,
            args.hook,
            profile_slot(l, args.profile.as_deref())?,
            args.burst,
            args.seed,
        )
        .with_context(|| format!("loading the kernel programs with {}", l.label))?;
        Ok(Self {
            engine,
            report: Report::default(),
            loaded: l,
        })
    }

    /// Checks the model's attribution against the kernel's counters: the
    /// same packets under each (user, class, direction).
    fn check_counters(&mut self) -> anyhow::Result<Vec<String>> {
        let kernel = self
            .engine
            .dp
            .counters()
            .all()
            .context("reading the counters")?;
        let mut model = self.engine.attribution.clone();
        let mut wrong = Vec::new();
        for (
            CounterKey {
                user, class, dir, ..
            },
            c,
        ) in kernel
        {
            let packets = c.pass_packets + c.deny_packets + c.limit_packets + c.monitor_packets;
            let m = model.remove(&(user, u32::from(class), dir)).unwrap_or(0);
            if m != packets {
                wrong.push(self.row_name(user, u32::from(class), dir, packets, m));
            }
        }
        for ((user, class, dir), m) in model {
            wrong.push(self.row_name(user, class, dir, 0, m));
        }
        Ok(wrong)
    }

    fn row_name(&self, user: u32, class: u32, dir: u8, kernel: u64, model: u64) -> String {
        let c = &self.loaded.compiled;
        format!(
            "{}/{}/{}: the kernel counted {kernel} packets, the model {model}",
            report::name(c, user),
            c.classes.get(class as usize).map_or("?", String::as_str),
            crate::wire::Direction::from_wire(dir)
        )
    }
}

/// The replay's outcome for the exit status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplayStatus {
    #[error("{0} packets: the kernel and the reference model disagreed (please report this)")]
    Disagreed(u64),
    #[error("the capture was damaged or cut short: the report covers what could be read")]
    Damaged,
}

impl ReplayStatus {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Disagreed(_) => 1,
            Self::Damaged => 3,
        }
    }
}

pub(super) fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let main = load(&args.policies)?;
    let other = (!args.against.is_empty())
        .then(|| load(&args.against))
        .transpose()?;
    let mut capture = Capture::open(&args.pcap)
        .with_context(|| format!("cannot replay `{}`", args.pcap.display()))?;
    let mut passes = vec![Pass::new(&main, args)?];
    if let Some(o) = &other {
        passes.push(Pass::new(o, args)?);
    }
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    let mut verdicts: Vec<serde_json::Value> = Vec::new();
    let mut progress = progress::Progress::new();
    let mut first_ns = None;
    let started = std::time::Instant::now();
    for record in capture.by_ref() {
        let first = *first_ns.get_or_insert(record.ts_ns);
        let mut steps = Vec::with_capacity(passes.len());
        for pass in &mut passes {
            let step = pass.engine.step(&record)?;
            pass.report.add(
                &pass.loaded.compiled,
                &pass.loaded.policy.settings.timezone,
                &step,
            );
            steps.push(step);
        }
        progress.tick(passes[0].engine.packets());
        let s = &steps[0];
        let differs = steps
            .get(1)
            .is_some_and(|b| (b.user, b.class, b.outcome) != (s.user, s.class, s.outcome));
        let show = if other.is_some() {
            differs || !s.agrees
        } else {
            !args.quiet || !s.agrees
        };
        if !show {
            continue;
        }
        let compiled = &main.compiled;
        if args.json {
            let mut v = line::json(compiled, s, &record.frame, first);
            if let (Some(b), Some(o)) = (steps.get(1), &other) {
                v["against"] = line::json(&o.compiled, b, &record.frame, first);
            }
            verdicts.push(v);
        } else {
            let mut text = line::text(compiled, s, &record.frame, first);
            if let (Some(b), Some(o)) = (steps.get(1), &other) {
                text.push_str(&format!(
                    "  | against: user={} class={} verdict={}",
                    report::name(&o.compiled, b.user),
                    o.compiled
                        .classes
                        .get(b.class as usize)
                        .map_or("?", String::as_str),
                    b.outcome.name()
                ));
            }
            writeln!(out, "{text}")?;
        }
    }
    progress.done();
    let seconds = started.elapsed().as_secs_f64();
    let mut disagreements = 0;
    for pass in &mut passes {
        pass.report.finish(&pass.loaded.compiled);
        for wrong in pass.check_counters()? {
            tracing::error!("{}: {wrong}", pass.loaded.label);
            disagreements += 1;
        }
        disagreements += pass.report.disagreements;
    }
    let stats = capture.stats().clone();
    let file = args.pcap.display().to_string();
    let diffs =
        (passes.len() > 1).then(|| compare::differences(&passes[0].report, &passes[1].report));
    if args.json {
        let mut doc = serde_json::to_value(&passes[0].report)?;
        doc["capture"] = serde_json::json!({
            "file": file,
            "format": capture.format(),
            "records": stats.records,
            "damaged": stats.damaged,
            "unsupported": stats.unsupported,
            "truncated_packets": stats.truncated_packets,
            "truncated_file": stats.truncated_file,
            "skipped_bytes": stats.skipped_bytes,
        });
        doc["disagreements"] = disagreements.into();
        doc["seconds"] = seconds.into();
        for (name, u) in &passes[0].report.users {
            doc["users"][name]["quarantined"] = u.quarantined().into();
            doc["users"][name]["hit_quota"] = u.hit_quota().into();
        }
        doc["verdicts"] = verdicts.into();
        if let (Some(o), Some(diffs)) = (&other, &diffs) {
            doc["against"] = serde_json::json!({
                "policy": o.label,
                "users": passes[1].report.users,
                "differences": diffs,
            });
        }
        writeln!(out, "{doc:#}")?;
    } else {
        text::header(
            &mut out,
            &file,
            capture.format(),
            &stats,
            &passes[0].report,
            args.burst,
        )?;
        writeln!(
            out,
            "  {:.0} packets/s ({seconds:.2} s after the start-up)",
            passes[0].report.packets as f64 / seconds.max(1e-9)
        )?;
        text::tables(&mut out, &passes[0].report)?;
        if let (Some(o), Some(diffs)) = (&other, &diffs) {
            let users = passes[0]
                .report
                .users
                .keys()
                .chain(passes[1].report.users.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            compare::text(&mut out, &o.label, diffs, users)?;
        }
    }
    out.flush()?;
    if let Some(e) = capture.error() {
        tracing::warn!("{e}");
    }
    if disagreements > 0 {
        return Err(ReplayStatus::Disagreed(disagreements).into());
    }
    if stats.damaged > 0 || stats.truncated_file || capture.error().is_some() {
        return Err(ReplayStatus::Damaged.into());
    }
    Ok(())
}
