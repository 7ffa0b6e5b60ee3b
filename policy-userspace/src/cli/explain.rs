//! `policyd explain`: what policyd would do with a packet, and why: which
//! user (and by which identifier), which class (by which match), which
//! profile (at which time), which action (from which rule of which file).
//! Uses the reference model on the same compiled tables as the kernel; the
//! tests check the two agree.

use std::{net::IpAddr, path::PathBuf};

use anyhow::{Context as _, bail};
use policy_common::{GROUP_BIT, SUBJECT_ANY, USER_UNIDENTIFIED, cast, dir, kind, side};

use crate::{
    model::{Hook, Model, PacketInfo},
    policy::{self, Ceilings, CompiledPolicy, Policy, Subject, Verdicts, addr16, truncate},
    schedule::{self, Clock},
    wire::{Direction, Proto},
};

/// Explain what policyd does with a packet, and why.
///
/// Example: `policyd explain -p policy.toml --src 10.10.0.2 --dst 203.0.113.7
/// --proto tcp --dport 445 --at 2026-12-01T10:00`.
///
/// `--json` prints one JSON object; its fields are stable (new ones may be
/// added): `user`, `user_why`, `class`, `class_why`, `direction` (upload,
/// download), `profile`, `profile_why`, `action`, `action_why`, `verdict`
/// (pass, deny, limit, monitor), `quarantine` (text or null), `quotas`
/// (lines), `bucket` (text or null), `layers` (null for one file, else
/// {`files` [{`file`, `action`, `why`}], `enforced`, `from`}).
#[derive(Debug, clap::Args)]
pub(super) struct ExplainArgs {
    /// Policy files (layered as for `run`); none: the built-in baseline.
    #[arg(long = "policy", short = 'p', value_name = "FILE")]
    policies: Vec<PathBuf>,
    #[arg(long)]
    src: IpAddr,
    #[arg(long)]
    dst: IpAddr,
    /// `tcp`, `udp`, `sctp`, `icmp`, `icmpv6` or a protocol number.
    #[arg(long, default_value = "tcp")]
    proto: String,
    #[arg(long)]
    sport: Option<u16>,
    #[arg(long)]
    dport: Option<u16>,
    #[arg(long)]
    icmp_type: Option<u8>,
    /// The sender's MAC address (for MAC identities and spoofing checks).
    #[arg(long)]
    src_mac: Option<String>,
    #[arg(long, value_enum, default_value_t = Direction::Upload)]
    direction: Direction,
    /// When: an instant (`2026-12-01T10:00:00-05:00`) or a local time in
    /// the policy's time zone (`2026-12-01T10:00`). Default: now.
    #[arg(long)]
    at: Option<String>,
    /// Pin a profile instead of working it out from the time.
    #[arg(long)]
    profile: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// A running policyd's pin directory, to show this period's use of the
    /// quotas that apply.
    #[arg(long)]
    pin_dir: Option<PathBuf>,
    /// The name the destination is known by (a DNS answer for it, or the
    /// server name of a TLS ClientHello): classified as if learned, in the
    /// domain sets the name matches.
    #[arg(long, value_name = "NAME")]
    dst_name: Option<String>,
}

/// The domain sets `name` is in, as (bitmap, why).
fn name_sets(c: &CompiledPolicy, p: &Policy, name: &str) -> anyhow::Result<(u64, String)> {
    let normal = crate::names::domain::normalise(name)
        .with_context(|| format!("`{name}` is not a valid domain name"))?;
    let sets = crate::dataplane::domain_matcher(c).sets_of(&normal);
    let names: Vec<&str> = (0..64)
        .filter(|i| sets >> i & 1 != 0)
        .filter_map(|i| p.sets.get(i).map(|s| s.name.as_str()))
        .collect();
    let why = if names.is_empty() {
        format!("{normal} is in no domain set")
    } else {
        format!("{normal} is in domain set {}", names.join(", "))
    };
    Ok((sets, why))
}

/// The quotas of `user` (in `group`) that count packets of `class`, with
/// this period's use when a pin directory is given.
fn quota_lines(
    p: &Policy,
    args: &ExplainArgs,
    user: &str,
    class: &str,
) -> anyhow::Result<Vec<String>> {
    let group = p
        .users
        .iter()
        .find(|u| u.name == user)
        .and_then(|u| u.group.as_deref());
    let mine: Vec<&policy::Quota> = p
        .quotas
        .iter()
        .filter(|q| q.applies_to(user, group) && q.class.as_deref().is_none_or(|c| c == class))
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    // The live slots of this user, in the policy's order (dataplane's
    // quota.rs lays them out so), when a daemon's pins are given.
    let live = match &args.pin_dir {
        Some(dir) => {
            let ids = crate::dataplane::pinned_ids(dir)?;
            let id = ids
                .users
                .iter()
                .find(|(_, s)| matches!(s, policy::Slot::Live(n) if n == user))
                .map(|(id, _)| id);
            let usage = crate::dataplane::QuotaTable::from_pins(dir)?.usage()?;
            Some(
                usage
                    .into_iter()
                    .filter(|u| Some(u.user) == id)
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let all_of_user: Vec<&policy::Quota> = p
        .quotas
        .iter()
        .filter(|q| q.applies_to(user, group))
        .collect();
    Ok(mine
        .iter()
        .map(|q| {
            let what = q.class.as_deref().unwrap_or("all traffic");
            let head = format!("{} of {what}, then {}", q.describe(), q.exhausted);
            let rank = all_of_user.iter().position(|x| std::ptr::eq(*x, *q));
            match (live.as_ref(), rank) {
                (Some(slots), Some(r)) => match slots.get(r) {
                    Some(u) if u.exhausted() => format!(
                        "{head}: used up ({} of {} bytes): `{}` applies",
                        u.used, u.limit, q.exhausted
                    ),
                    Some(u) => format!(
                        "{head}: {} of {} bytes used this period ({:.1}%)",
                        u.used,
                        u.limit,
                        100.0 * u.used as f64 / u.limit.max(1) as f64
                    ),
                    None => format!("{head}: not in the running policy"),
                },
                _ => format!("{head} (`--pin-dir` shows this period's use)"),
            }
        })
        .collect())
}

fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("`{s}` is not a MAC address"))?;
    parts
        .try_into()
        .map_err(|_| anyhow::anyhow!("`{s}` is not a MAC address"))
}

/// The instant `--at` names: an instant, or a civil time in the policy's zone.
fn instant(at: Option<&str>, policy: &Policy) -> anyhow::Result<jiff::Timestamp> {
    let Some(at) = at else {
        return Ok(Clock::real().now());
    };
    if let Ok(ts) = at.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let civil: jiff::civil::DateTime = at
        .parse()
        .with_context(|| format!("`{at}` is neither an instant nor a local date and time"))?;
    Ok(civil
        .to_zoned_datetime(policy.settings.timezone.clone())?
        .timestamp())
}

struct Explanation<'a> {
    /// Each file's action when there are several: `file: action (why)`,
    /// and which is enforced.
    layers: Option<Verdicts<'a>>,
    user: String,
    user_why: String,
    class: String,
    class_why: String,
    profile: String,
    profile_why: String,
    action: String,
    action_why: String,
    verdict: &'static str,
    /// Which bucket a limit of the `unidentified` user polices against.
    bucket: Option<String>,
}

pub(super) fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    let layered = policy::load_layers(&args.policies).context("the policy is invalid")?;
    let p = &layered.policy;
    let c = CompiledPolicy::compile(p);
    let at = instant(args.at.as_deref(), p)?;
    let profile = match &args.profile {
        Some(name) => c.profile(name).with_context(|| {
            format!(
                "the policy has no profile `{name}`; it has: {}",
                c.profiles.join(", ")
            )
        })?,
        None => schedule::active_profile(&p.schedules, &p.settings.timezone, at),
    };
    let proto = args.proto.parse::<Proto>()?.0;
    let has_ports = matches!(proto, 6 | 17 | 132);
    if (args.sport.is_some() || args.dport.is_some()) && !has_ports {
        bail!("ports need --proto tcp, udp or sctp");
    }
    let packet = PacketInfo {
        src: addr16(args.src),
        dst: addr16(args.dst),
        // Without --src-mac, assume the address's rightful owner sends.
        src_mac: match args.src_mac.as_deref() {
            Some(m) => parse_mac(m)?,
            None => c
                .bindings
                .iter()
                .find(|(a, _)| *a == addr16(args.src))
                .map_or([2, 0, 0, 0, 0, 0xfe], |(_, b)| {
                    let m = b.macs[0];
                    [m[0], m[1], m[2], m[3], m[4], m[5]]
                }),
        },
        dst_mac: [2, 0, 0, 0, 0, 0xff],
        proto,
        sport: args.sport.unwrap_or(0),
        dport: args.dport.unwrap_or(0),
        has_ports,
        icmp_type: args.icmp_type,
        dscp: 0,
        ecn: 0,
        l2_cast: if args.dst.is_multicast() {
            cast::MULTICAST
        } else {
            0
        },
        too_deep: false,
        // A connection's first packet is the one a `conn` limit counts;
        // the action line shows the limit either way.
        tcp_flags: 0,
        ethertype: if args.src.is_ipv4() {
            policy_common::ethertype::IPV4
        } else {
            policy_common::ethertype::IPV6
        },
    };
    let hook = Hook {
        side: side::USERS,
        egress: args.direction == Direction::Download,
    };
    let model = Model::new(&c, profile);
    let (user, direction, spoofed) = model.identify(&packet, hook);
    let by_name = match &args.dst_name {
        Some(name) => Some(name_sets(&c, p, name)?),
        None => None,
    };
    let class =
        model.classify_with_sets(&packet, direction, by_name.as_ref().map_or(0, |(s, _)| *s));
    let key = model.action_key(user, class);
    let a = model.action(user, class);

    let who_addr = if direction == dir::UPLOAD {
        packet.src
    } else {
        packet.dst
    };
    let user_why = if spoofed {
        "claims an address bound to other MACs: spoofed".to_owned()
    } else if user == USER_UNIDENTIFIED {
        "no user's address, MAC or CIDR matches".to_owned()
    } else if c.exact.iter().any(|(a, u)| *a == who_addr && *u == user) {
        format!(
            "exact address {}",
            if direction == dir::UPLOAD {
                args.src
            } else {
                args.dst
            }
        )
    } else if let Some((len, net, _)) = c
        .cidrs
        .iter()
        .filter(|(len, net, _)| truncate(&who_addr, *len) == *net)
        .max_by_key(|(len, _, _)| *len)
    {
        let addr = std::net::Ipv6Addr::from(*net);
        match addr.to_ipv4_mapped() {
            Some(v4) => format!("longest matching prefix {v4}/{}", len - 96),
            None => format!("longest matching prefix {addr}/{len}"),
        }
    } else {
        "its MAC address".to_owned()
    };
    let class_why = match c.class_rules.iter().position(|r| r.class == class) {
        _ if class == 0 => "no class matches".to_owned(),
        Some(_) if p.classes[class as usize - 1].matches.is_none() => "elephant flow".to_owned(),
        Some(_) | None => format!("class #{class} in match order, first to match"),
    };
    let class_why = match &by_name {
        Some((_, why)) => format!("{class_why}; {why}"),
        None => class_why,
    };
    let profile_name = c.profiles[profile].clone();
    let profile_why = match &args.profile {
        Some(_) => "pinned with --profile".to_owned(),
        None => format!(
            "at {} ({})",
            at.to_zoned_datetime(p.settings.timezone.clone()),
            if profile == 0 {
                "outside every schedule"
            } else {
                "inside its schedule"
            }
        ),
    };
    let class_name = c.classes[class as usize].clone();
    let user_name = c.users[user as usize].name.clone();
    let rule_subject = match key {
        None => None,
        Some(k) if k.subject == SUBJECT_ANY => Some(Subject::Everyone),
        Some(k) if k.subject & GROUP_BIT != 0 => Some(Subject::Group(
            c.groups[(k.subject & !GROUP_BIT) as usize - 1].clone(),
        )),
        Some(_) => Some(Subject::User(user_name.clone())),
    };
    let rule = rule_subject.as_ref().and_then(|s| {
        p.rules
            .iter()
            .find(|r| r.class == class_name && r.subject == *s)
    });
    let action = match rule {
        Some(r) => r.actions[profile].to_string(),
        None if key.is_none() => "allow".to_owned(),
        // A user's (or unidentified's) blanket action, as compiled.
        None => {
            let u = p.users.iter().find(|u| u.name == user_name);
            let blanket = if user == USER_UNIDENTIFIED {
                p.unidentified
            } else {
                u.and_then(|u| u.action)
            };
            blanket.map_or_else(
                || "allow".to_owned(),
                |b| {
                    let group = u.and_then(|u| u.group.as_deref());
                    policy::blanket_actions(p, b, group, &class_name)[profile].to_string()
                },
            )
        }
    };
    let action_why = match (key, rule) {
        (None, _) => "no rule for this class: allow".to_owned(),
        (Some(_), Some(r)) => {
            let key = policy::provenance_key(&r.class, &r.subject, &profile_name);
            match layered.provenance.get(&key) {
                Some((_, from)) => format!("{key}, from {}", from.display()),
                None => key,
            }
        }
        (Some(_), None) if user == USER_UNIDENTIFIED => {
            "[unidentified] action, with the class's rule for everyone if stricter".to_owned()
        }
        (Some(_), None) => {
            format!("user {user_name}'s own `action`, with the class's shared rule if stricter")
        }
    };
    let verdict = if spoofed {
        "deny"
    } else {
        match a.kind {
            kind::DENY => "deny",
            kind::LIMIT => "limit",
            kind::MONITOR => "monitor",
            _ => "pass",
        }
    };
    let bucket = (user == USER_UNIDENTIFIED && verdict == "limit").then(|| {
        let sender = if direction == dir::UPLOAD {
            args.src
        } else {
            args.dst
        };
        p.unidentified_buckets.describe_for(sender)
    });
    let who = Subject::User(user_name.clone());
    let ceilings = Ceilings::new(&layered.layers, &p.users);
    let layers = (layered.layers.len() > 1)
        .then(|| ceilings.verdicts(&who, &class_name, profile))
        .flatten();
    // Scan detection's part: live quarantines are in the kernel
    // (`policyd status`); this says what one would do to this packet.
    let quarantine = p.scan.as_ref().map(|scan| {
        let n = |v: Option<u32>, what: &str| v.map(|v| format!("{v} {what}"));
        let limits: Vec<String> = [n(scan.hosts, "hosts"), n(scan.ports, "ports")]
            .into_iter()
            .flatten()
            .collect();
        let outcome = if user == USER_UNIDENTIFIED {
            "never for `unidentified` (it is every unknown sender)".to_owned()
        } else if scan.monitor {
            "reported only (`action = \"monitor\"`)".to_owned()
        } else if class == 0 && scan.allow.iter().any(|c| c == "default")
            || scan.allow.contains(&class_name)
        {
            format!(
                "{} for {:?}; this class still passes",
                user_name, scan.quarantine
            )
        } else {
            format!(
                "{} for {:?}; this packet would be denied",
                user_name, scan.quarantine
            )
        };
        format!(
            "new flows to {} within {:?} quarantine {outcome}",
            limits.join(" or "),
            scan.window
        )
    });
    let quotas = if user == USER_UNIDENTIFIED {
        Vec::new()
    } else {
        quota_lines(p, args, &user_name, &class_name)?
    };
    let e = Explanation {
        layers,
        user: user_name,
        user_why,
        class: class_name,
        class_why,
        profile: profile_name,
        profile_why,
        action,
        action_why,
        verdict,
        bucket,
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "user": e.user, "user_why": e.user_why,
                "class": e.class, "class_why": e.class_why,
                "direction": Direction::from_wire(direction).as_str(),
                "profile": e.profile, "profile_why": e.profile_why,
                "action": e.action, "action_why": e.action_why,
                "verdict": e.verdict,
                "quarantine": quarantine,
                "quotas": quotas,
                "bucket": e.bucket,
                "layers": e.layers.as_ref().map(|v| serde_json::json!({
                    "files": v.layers.iter().map(|(path, l)| serde_json::json!({
                        "file": path.display().to_string(),
                        "action": l.action.to_string(),
                        "why": policy::describe(&who, &l.source),
                    })).collect::<Vec<_>>(),
                    "enforced": v.effective.to_string(),
                    "from": v.layers[v.from].0.display().to_string(),
                })),
            })
        );
    } else {
        println!("user:    {} ({})", e.user, e.user_why);
        println!("class:   {} ({})", e.class, e.class_why);
        println!("profile: {} ({})", e.profile, e.profile_why);
        println!("action:  {} ({})", e.action, e.action_why);
        if let Some(v) = &e.layers {
            println!("layers:  {}", super::ceilings::line(v, &who));
        }
        println!("verdict: {}", e.verdict);
        if let Some(q) = &quarantine {
            println!("scans:   {q}");
        }
        for q in &quotas {
            println!("quota:   {q}");
        }
        if let Some(b) = &e.bucket {
            println!("bucket:  {b}");
        }
    }
    Ok(())
}
