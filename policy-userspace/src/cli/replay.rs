//! `policyd replay`: every packet of a capture through the kernel program
//! (by `BPF_PROG_TEST_RUN`), with per-packet and summary verdicts per user
//! and class, so a policy can be tried on real traffic before it is deployed.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufReader, Write as _},
    path::PathBuf,
};

use anyhow::{Context as _, bail};
use aya::programs::{TestRun as _, TestRunOptions};
use pcap_file::{DataLink, pcap::PcapReader};
use policy_common::{CounterKey, Counters, side};

use crate::{
    dataplane::{Capacity, Dataplane, Pins, TC_EGRESS_PROGRAM, TC_INGRESS_PROGRAM, XDP_PROGRAM},
    model::{Hook, Model, Verdict},
    policy::{self, CompiledPolicy},
    schedule::Clock,
    wire::Direction,
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

/// Run every packet of a pcap capture through the kernel program and report
/// the verdicts (needs root: the program is loaded, not attached).
///
/// Packets are replayed back to back, so rate limits see them as a burst,
/// not at the capture's timing: use replay for identity, classes, deny and
/// monitor decisions. Only classic pcap files of Ethernet frames are read
/// (convert pcapng with `tcpdump -r in.pcapng -w out.pcap`).
///
/// `--json` prints one JSON document; its fields are stable (new ones may
/// be added): `packets`, `refused`, `disagreements`; `verdicts` [{`n`,
/// `bytes`, `user`, `class`, `direction`, `verdict`, `agrees`}, or {`n`,
/// `bytes`, `refused`: true}] (with --quiet only the packets where the
/// kernel and the model disagree); `summary` [{`user`, `class`,
/// `direction`, `pass`, `deny`, `limit`, `monitor`, `bytes`}], the
/// kernel's counters. Disagreements still exit non-zero.
#[derive(Debug, clap::Args)]
pub(super) struct ReplayArgs {
    /// The capture (pcap, Ethernet).
    #[arg(long, value_name = "FILE")]
    pcap: PathBuf,
    /// The policy to try; repeat to layer files (a directory: its `*.toml`
    /// files in name order).
    #[arg(long = "policy", short = 'p', value_name = "FILE", required = true)]
    policies: Vec<PathBuf>,
    /// Schedule profile in force (default: the one the policy's schedules
    /// give right now).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Where the packets are seen.
    #[arg(long, value_enum, default_value_t = HookArg::Xdp)]
    hook: HookArg,
    /// Print only the summary.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

fn verdict_name(v: Verdict, kernel_dropped: bool) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Deny => "deny",
        Verdict::Spoofed => "deny (spoofed)",
        Verdict::Monitor => "monitor",
        Verdict::LimitConform if kernel_dropped => "limit (dropped)",
        Verdict::LimitConform => "limit (passed)",
        Verdict::Limited => "limit (connections)",
        Verdict::Malformed { .. } => "malformed",
        Verdict::NonIp => "non-ip",
    }
}

pub(super) fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let policy = policy::load_layers(&args.policies)
        .context("the policy is invalid")?
        .policy;
    let compiled = CompiledPolicy::compile(&policy);
    let program = match args.hook {
        HookArg::Xdp => XDP_PROGRAM,
        HookArg::TcIngress => TC_INGRESS_PROGRAM,
        HookArg::TcEgress => TC_EGRESS_PROGRAM,
    };
    // Only the program the packets go through: the verifier takes a few
    // hundred milliseconds per program.
    let mut dataplane = Dataplane::load_programs(
        Capacity::default().fit(&compiled),
        Pins::ephemeral(),
        &[program],
    )
    .context("loading the kernel programs failed")?;
    dataplane
        .apply(&compiled)
        .context("writing the policy into the maps")?;
    let profile =
        super::profile_index(&policy, &compiled, args.profile.as_deref(), &Clock::real())?;
    dataplane.set_profile(profile)?;
    let file =
        File::open(&args.pcap).with_context(|| format!("cannot open `{}`", args.pcap.display()))?;
    let mut reader = PcapReader::new(BufReader::new(file)).with_context(|| {
        format!(
            "`{}` is not a pcap file (pcapng must be converted first)",
            args.pcap.display()
        )
    })?;
    if reader.header().datalink != DataLink::ETHERNET {
        bail!(
            "`{}` holds {:?} frames; replay needs Ethernet",
            args.pcap.display(),
            reader.header().datalink
        );
    }
    let hook = match args.hook {
        HookArg::Xdp | HookArg::TcIngress => Hook::XDP_USERS,
        HookArg::TcEgress => Hook {
            side: side::USERS,
            egress: true,
        },
    };
    let mut model = Model::new(&compiled, profile);
    let counters = dataplane.counters();
    let mut out = std::io::stdout().lock();
    let (mut n, mut disagreements, mut refused) = (0u64, 0u64, 0u64);
    let mut verdicts: Vec<serde_json::Value> = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.context("reading the capture")?;
        n += 1;
        let frame = &packet.data;
        let d = model.decide(frame, hook);
        let before = counters.total(d.user, d.class as u16, d.dir)?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        let run = match args.hook {
            HookArg::Xdp => dataplane.xdp()?.test_run(opts),
            HookArg::TcIngress => dataplane.tc(TC_INGRESS_PROGRAM)?.test_run(opts),
            HookArg::TcEgress => dataplane.tc(TC_EGRESS_PROGRAM)?.test_run(opts),
        };
        let Ok(result) = run else {
            // The skb test run refuses frames too short for their headers.
            refused += 1;
            if args.json {
                verdicts.push(serde_json::json!({
                    "n": n, "bytes": frame.len(), "refused": true,
                }));
            } else {
                writeln!(
                    out,
                    "#{n} {} bytes: refused by the kernel's test run (truncated)",
                    frame.len()
                )?;
            }
            continue;
        };
        let dropped = match args.hook {
            HookArg::Xdp => result.return_value == 1,
            _ => result.return_value == 2,
        };
        let after = counters.total(d.user, d.class as u16, d.dir)?;
        let counted =
            matches!(d.verdict, Verdict::Malformed { .. } | Verdict::NonIp) || after != before;
        let model_drops = matches!(
            d.verdict,
            Verdict::Deny
                | Verdict::Spoofed
                | Verdict::Limited
                | Verdict::Malformed { dropped: true }
        );
        let agrees = counted && (model_drops == dropped || d.verdict == Verdict::LimitConform);
        if !agrees {
            disagreements += 1;
        }
        if args.json {
            if !args.quiet || !agrees {
                verdicts.push(serde_json::json!({
                    "n": n,
                    "bytes": frame.len(),
                    "user": compiled.users[d.user as usize].name,
                    "class": compiled.classes[d.class as usize],
                    "direction": Direction::from_wire(d.dir).as_str(),
                    "verdict": verdict_name(d.verdict, dropped),
                    "agrees": agrees,
                }));
            }
        } else if !args.quiet || !agrees {
            writeln!(
                out,
                "#{n} {} bytes: user={} class={} direction={} verdict={}{}",
                frame.len(),
                compiled.users[d.user as usize].name,
                compiled.classes[d.class as usize],
                Direction::from_wire(d.dir),
                verdict_name(d.verdict, dropped),
                if agrees {
                    ""
                } else {
                    "  <-- the kernel disagrees with the model: please report this"
                },
            )?;
        }
    }
    let totals = counters.all().context("reading the counters")?;
    if args.json {
        let summary: Vec<serde_json::Value> = by_name(&compiled, &totals)
            .iter()
            .map(|((user, class, d), c)| {
                serde_json::json!({
                    "user": user, "class": class, "direction": d,
                    "pass": c.pass_packets, "deny": c.deny_packets,
                    "limit": c.limit_packets, "monitor": c.monitor_packets,
                    "bytes": c.pass_bytes + c.deny_bytes + c.limit_bytes + c.monitor_bytes,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "packets": n,
            "refused": refused,
            "disagreements": disagreements,
            "verdicts": verdicts,
            "summary": summary,
        });
        writeln!(out, "{doc:#}")?;
    } else {
        summary(&mut out, &compiled, &totals, n, refused)?;
    }
    if disagreements > 0 {
        bail!("{disagreements} of {n} packets: the kernel and the reference model disagreed");
    }
    Ok(())
}

/// The kernel's counters by (user, class, direction) name, sorted.
fn by_name(
    policy: &CompiledPolicy,
    rows: &[(CounterKey, Counters)],
) -> BTreeMap<(String, String, &'static str), Counters> {
    let mut sorted = BTreeMap::new();
    for (k, c) in rows {
        let user = policy
            .users
            .get(k.user as usize)
            .map_or("?", |u| u.name.as_str())
            .to_owned();
        let class = policy
            .classes
            .get(usize::from(k.class))
            .map_or("?", String::as_str)
            .to_owned();
        let d = Direction::from_wire(k.dir).as_str();
        sorted.insert((user, class, d), *c);
    }
    sorted
}

fn summary(
    out: &mut impl std::io::Write,
    policy: &CompiledPolicy,
    rows: &[(CounterKey, Counters)],
    n: u64,
    refused: u64,
) -> anyhow::Result<()> {
    let sorted = by_name(policy, rows);
    writeln!(
        out,
        "\n{n} packets replayed ({refused} refused by the test run); the kernel counted:"
    )?;
    writeln!(
        out,
        "{:<16} {:<14} {:<9} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "user", "class", "direction", "pass", "deny", "limit", "monitor", "bytes"
    )?;
    for ((user, class, d), c) in &sorted {
        writeln!(
            out,
            "{user:<16} {class:<14} {d:<9} {:>9} {:>9} {:>9} {:>9} {:>12}",
            c.pass_packets,
            c.deny_packets,
            c.limit_packets,
            c.monitor_packets,
            c.pass_bytes + c.deny_bytes + c.limit_bytes + c.monitor_bytes
        )?;
    }
    Ok(())
}
