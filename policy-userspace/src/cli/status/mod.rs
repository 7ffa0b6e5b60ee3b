//! `policyd status`: what the kernel is enforcing right now, and whether a
//! daemon serves it, read from the pinned maps and links alone (so it works
//! while policyd runs, after it stopped and after it was killed):
//! the daemon, attachments, mode, the generation and profile in force, ids,
//! and how full the maps are. `--json` gives the same as one document
//! (its fields are in [`Report`] and in `policyd status --help`).

use std::path::{Path, PathBuf};

mod learned;
mod liveness;
mod text;

use anyhow::Context as _;
use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, MapInfo, PerCpuHashMap};
use policy_common::{
    ActionEntry, BucketKey, Config, CounterKey, Counters, DAEMON_IFACE_NETWORK, GenAddr, GenPrefix,
    GenPrefix4, GenU32, MAP_ACTIONS, MAP_ACTIVE_PROFILE, MAP_BUCKETS, MAP_CONFIG, MAP_CONN_FLOWS,
    MAP_COUNTERS, MAP_FLOW_SKETCH, MAP_GENERATION, MAP_UNID_BUCKETS, MAP_USER_CIDRS,
    MAP_USER_CIDRS4, MAP_USERS, MAP_USERS4, UserId, ingress_mode, mode,
};
use serde::Serialize;

use self::liveness::State;
use crate::{
    dataplane::{self, DEFAULT_PIN_DIR},
    policy::{Slot, Table},
};

/// Show what is being enforced and whether a daemon serves it: the
/// daemon (pid, uptime, version), attachments and XDP mode, mode,
/// generation, profile, ids, map fill levels (all read from the pinned
/// state).
///
/// `--json` prints one JSON document; its fields are stable (new ones may
/// be added): `pin_dir`; `daemon` {`state` (serving, starting, stopped,
/// gone, not_running), `pid`, `lock_holder`, `version`, `started_at`,
/// `uptime_seconds`, `stopped_at`, `policy_written_at`, `reloads`};
/// `interfaces` [{`name`, `ifindex`, `side` (users, network), `ingress`
/// (xdp_native, xdp_generic, xdp, tc, unknown), `tc_egress`}]; `links`;
/// `mode` (enforce, monitor); `generation`; `class_rules`; `profile`
/// {`index`, `name`}; `ids` {`users`, `users_retiring`, `highest_user_id`,
/// `classes`}; `maps` [{`map`, `what`, `entries`, `capacity`}]; `scan`
/// {`enabled`, `report_only`, `quarantined` [{`user`, `seconds_left`,
/// `reason`}]}; `quotas` {`enabled`, `slots` [{`user`, `class`, `used`,
/// `limit`, `exhausted`, `period_start`}]}; `learned` {`enabled`, `sets`
/// [{`set`, `addresses` [{`address`, `name`, `user`, `seconds_left`}]}]}.
/// Times are RFC 3339.
#[derive(Debug, clap::Args)]
pub(super) struct StatusArgs {
    /// The pin directory `policyd run` uses.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pin_dir: PathBuf,
    /// The policy files in force, to name the profile when the pins have no
    /// names for it (left by a policyd older than the pinned names).
    #[arg(long = "policy", short = 'p', value_name = "FILE")]
    policies: Vec<PathBuf>,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Everything `status` says, as `--json` prints it.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    pin_dir: String,
    daemon: DaemonReport,
    interfaces: Vec<IfaceReport>,
    links: Vec<String>,
    mode: &'static str,
    generation: u32,
    class_rules: u32,
    profile: ProfileReport,
    ids: Option<IdsReport>,
    maps: Vec<MapReport>,
    scan: ScanReport,
    quotas: QuotaReport,
    learned: learned::LearnedReport,
}

#[derive(Debug, Serialize)]
struct DaemonReport {
    state: State,
    /// The recorded daemon's pid (serving or not).
    pid: Option<u32>,
    /// Who holds the pin directory's lock now.
    lock_holder: Option<u32>,
    version: Option<String>,
    started_at: Option<String>,
    uptime_seconds: Option<u64>,
    stopped_at: Option<String>,
    policy_written_at: Option<String>,
    reloads: Option<u32>,
}

#[derive(Debug, Serialize)]
struct IfaceReport {
    name: String,
    ifindex: u32,
    side: &'static str,
    ingress: &'static str,
    tc_egress: bool,
}

#[derive(Debug, Serialize)]
struct ProfileReport {
    index: u32,
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct IdsReport {
    users: usize,
    users_retiring: usize,
    highest_user_id: u32,
    classes: usize,
}

#[derive(Debug, Serialize)]
struct MapReport {
    map: &'static str,
    what: &'static str,
    entries: usize,
    capacity: u32,
}

#[derive(Debug, Serialize)]
struct ScanReport {
    enabled: bool,
    report_only: bool,
    quarantined: Vec<QuarantineReport>,
}

#[derive(Debug, Serialize)]
struct QuarantineReport {
    user: String,
    seconds_left: u64,
    reason: &'static str,
}

#[derive(Debug, Serialize)]
struct QuotaReport {
    enabled: bool,
    slots: Vec<QuotaSlotReport>,
}

#[derive(Debug, Serialize)]
struct QuotaSlotReport {
    user: String,
    /// The class's name, or null for a quota of all traffic.
    class: Option<String>,
    used: u64,
    limit: u64,
    exhausted: bool,
    /// When the period began (RFC 3339), null until the daemon starts it.
    period_start: Option<String>,
}

fn open(dir: &Path, name: &str) -> anyhow::Result<MapData> {
    MapData::from_pin(dir.join(name)).with_context(|| format!("cannot open the pinned map {name}"))
}

fn info(dir: &Path, name: &str) -> anyhow::Result<MapInfo> {
    MapInfo::from_pin(dir.join(name)).with_context(|| format!("cannot read the pinned map {name}"))
}

/// Entries in a hash map (by walking its keys).
fn hash_entries<K: aya::Pod, V: aya::Pod>(dir: &Path, name: &str) -> anyhow::Result<usize> {
    let map = Map::from_map_data(open(dir, name)?)?;
    let count = match map {
        Map::PerCpuHashMap(_) | Map::PerCpuLruHashMap(_) => {
            PerCpuHashMap::<MapData, K, V>::try_from(map)?
                .keys()
                .filter_map(Result::ok)
                .count()
        }
        _ => HashMap::<MapData, K, V>::try_from(map)?
            .keys()
            .filter_map(Result::ok)
            .count(),
    };
    Ok(count)
}

fn trie_entries<K: aya::Pod, V: aya::Pod>(dir: &Path, name: &str) -> anyhow::Result<usize> {
    let trie: LpmTrie<MapData, K, V> = Map::from_map_data(open(dir, name)?)?.try_into()?;
    Ok(trie.keys().filter_map(Result::ok).count())
}

/// Unix ns -> RFC 3339; `None` for 0 (never).
fn timestamp(ns: u64) -> Option<String> {
    (ns > 0)
        .then(|| jiff::Timestamp::from_nanosecond(i128::from(ns)).ok())
        .flatten()
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
}

fn ingress_name(code: u32) -> &'static str {
    match code {
        ingress_mode::XDP_NATIVE => "xdp_native",
        ingress_mode::XDP_GENERIC => "xdp_generic",
        ingress_mode::XDP => "xdp",
        ingress_mode::TC => "tc",
        _ => "unknown",
    }
}

fn daemon_report(dir: &Path) -> anyhow::Result<(DaemonReport, Vec<IfaceReport>)> {
    let record = dataplane::pinned_daemon(dir)?;
    let holder = dataplane::lock_holder(dir);
    let facts = liveness::Facts {
        record,
        holder,
        recorded_is_policyd: record.is_some_and(|r| liveness::is_policyd(r.pid)),
    };
    let state = liveness::judge(&facts);
    let now = dataplane::unix_now_ns();
    let report = DaemonReport {
        state,
        pid: record.map(|r| r.pid),
        lock_holder: holder,
        version: record.map(|r| String::from_utf8_lossy(r.version()).into_owned()),
        started_at: record.and_then(|r| timestamp(r.started_ns)),
        uptime_seconds: (state == State::Serving)
            .then(|| record.map(|r| now.saturating_sub(r.started_ns) / 1_000_000_000))
            .flatten(),
        stopped_at: record.and_then(|r| timestamp(r.stopped_ns)),
        policy_written_at: record.and_then(|r| timestamp(r.applied_ns)),
        reloads: record.map(|r| r.reloads),
    };
    let ifaces = record
        .map(|r| {
            r.ifaces()
                .iter()
                .map(|i| IfaceReport {
                    name: String::from_utf8_lossy(i.name()).into_owned(),
                    ifindex: i.ifindex,
                    side: if i.side == DAEMON_IFACE_NETWORK {
                        "network"
                    } else {
                        "users"
                    },
                    ingress: ingress_name(i.ingress),
                    tc_egress: i.egress != 0,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((report, ifaces))
}

/// `table`'s name for `id`, or `#id`.
fn name_in(table: Option<&Table>, id: u32) -> String {
    table
        .and_then(|t| match t.get(id) {
            Some(Slot::Live(n)) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| format!("#{id}"))
}

pub(super) fn gather(args: &StatusArgs) -> anyhow::Result<Report> {
    let dir = &args.pin_dir;
    super::require_pins(dir)?;
    let (daemon, interfaces) = daemon_report(dir)?;
    let mut links: Vec<String> = std::fs::read_dir(dir.join("links"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    let generation: Array<MapData, u32> =
        Map::from_map_data(open(dir, MAP_GENERATION)?)?.try_into()?;
    let g = generation.get(&0, 0)? & 1;
    let config: Array<MapData, Config> = Map::from_map_data(open(dir, MAP_CONFIG)?)?.try_into()?;
    let cfg = config.get(&g, 0)?;
    let profiles: Array<MapData, u32> =
        Map::from_map_data(open(dir, MAP_ACTIVE_PROFILE)?)?.try_into()?;
    let p = profiles.get(&g, 0)?;
    let pinned_names = dataplane::profile_names_from_pins(dir, g)?;
    let profile_name = match pinned_names {
        Some(names) => names.get(p as usize).filter(|n| !n.is_empty()).cloned(),
        None => {
            super::names_from(&args.policies)?.and_then(|c| c.profiles.get(p as usize).cloned())
        }
    };
    let ids = dataplane::pinned_ids(dir).ok();
    let ids_report = ids.as_ref().map(|ids| IdsReport {
        users: ids.users.len(),
        users_retiring: ids
            .users
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Retired(_)))
            .count(),
        highest_user_id: ids.users.highest().unwrap_or(0),
        classes: ids.classes.len(),
    });
    let counts = [
        (
            MAP_USERS4,
            "exact IPv4 addresses (both generations)",
            hash_entries::<GenU32, UserId>(dir, MAP_USERS4)?,
        ),
        (
            MAP_USERS,
            "exact IPv6 addresses (both generations)",
            hash_entries::<GenAddr, UserId>(dir, MAP_USERS)?,
        ),
        (
            MAP_USER_CIDRS4,
            "user IPv4 CIDRs (both generations)",
            trie_entries::<GenPrefix4, UserId>(dir, MAP_USER_CIDRS4)?,
        ),
        (
            MAP_USER_CIDRS,
            "user IPv6 CIDRs (both generations)",
            trie_entries::<GenPrefix, UserId>(dir, MAP_USER_CIDRS)?,
        ),
        (
            MAP_COUNTERS,
            "counters (user, class, direction)",
            hash_entries::<CounterKey, Counters>(dir, MAP_COUNTERS)?,
        ),
        (
            MAP_BUCKETS,
            "token buckets",
            hash_entries::<BucketKey, u64>(dir, MAP_BUCKETS)?,
        ),
    ];
    let mut maps = Vec::with_capacity(counts.len() + 4);
    for (map, what, entries) in counts {
        maps.push(MapReport {
            map,
            what,
            entries,
            capacity: info(dir, map)?.max_entries(),
        });
    }
    // The arrays, read as the daemon's metrics read them (cells not zero).
    let arrays = std::iter::once(dataplane::array_in_use::<ActionEntry>(dir, MAP_ACTIONS)).chain(
        dataplane::traffic_fill(dir)
            .map_or_else(|e| vec![Err(e)], |f| f.into_iter().map(Ok).collect()),
    );
    for fill in arrays {
        let fill = fill?;
        maps.push(MapReport {
            map: fill.map,
            what: match fill.map {
                MAP_ACTIONS => "action entries set (both generations)",
                MAP_FLOW_SKETCH => "elephant sketch cells in use",
                MAP_CONN_FLOWS => "connection-rate flow slots in use",
                MAP_UNID_BUCKETS => "unidentified senders' bucket slots used",
                _ => "cells in use",
            },
            entries: usize::try_from(fill.entries).unwrap_or(usize::MAX),
            capacity: u32::try_from(fill.capacity).unwrap_or(u32::MAX),
        });
    }
    Ok(Report {
        pin_dir: dir.display().to_string(),
        daemon,
        interfaces,
        links,
        mode: if cfg.mode == mode::MONITOR {
            "monitor"
        } else {
            "enforce"
        },
        generation: g,
        class_rules: cfg.rule_count,
        profile: ProfileReport {
            index: p,
            name: profile_name,
        },
        ids: ids_report,
        maps,
        scan: quarantines(dir, &cfg, ids.as_ref())?,
        quotas: quotas(dir, &cfg, ids.as_ref())?,
        learned: learned::learned(dir, &cfg, g, ids.as_ref())?,
    })
}

pub(super) fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let report = gather(args)?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        text::render(&report, !args.policies.is_empty())
    };
    super::write_stdout(text.as_bytes())
}

/// Byte quotas: each user's use of each budget this period.
fn quotas(
    dir: &Path,
    cfg: &Config,
    ids: Option<&crate::policy::Allocation>,
) -> anyhow::Result<QuotaReport> {
    if cfg.present & policy_common::present::QUOTAS == 0 {
        return Ok(QuotaReport {
            enabled: false,
            slots: Vec::new(),
        });
    }
    let usage = dataplane::QuotaTable::from_pins(dir)?.usage()?;
    let slots = usage
        .into_iter()
        .map(|u| QuotaSlotReport {
            user: name_in(ids.map(|i| &i.users), u.user),
            class: (u.class != policy_common::QUOTA_ALL_CLASSES)
                .then(|| name_in(ids.map(|i| &i.classes), u.class)),
            used: u.used,
            limit: u.limit,
            exhausted: u.exhausted(),
            period_start: i64::try_from(u.period_start)
                .ok()
                .filter(|s| *s > 0)
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map(|t| t.to_string()),
        })
        .collect();
    Ok(QuotaReport {
        enabled: true,
        slots,
    })
}

/// Scan detection: who is in quarantine, for how long yet, and why.
fn quarantines(
    dir: &Path,
    cfg: &Config,
    ids: Option<&crate::policy::Allocation>,
) -> anyhow::Result<ScanReport> {
    if cfg.present & policy_common::present::SCAN == 0 {
        return Ok(ScanReport {
            enabled: false,
            report_only: false,
            quarantined: Vec::new(),
        });
    }
    let table = dataplane::ScanTable::from_pins(dir)?;
    let quarantined = table
        .quarantined()?
        .into_iter()
        .map(|q| QuarantineReport {
            user: name_in(ids.map(|i| &i.users), q.user),
            seconds_left: q.left_ns.div_ceil(1_000_000_000),
            reason: q.reason_name(),
        })
        .collect();
    Ok(ScanReport {
        enabled: true,
        report_only: cfg.scan_flags & policy_common::scan_flag::MONITOR != 0,
        quarantined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: State) -> Report {
        Report {
            pin_dir: "/sys/fs/bpf/policyd".into(),
            daemon: DaemonReport {
                state,
                pid: Some(1234),
                lock_holder: (state == State::Serving).then_some(1234),
                version: Some("0.1.0".into()),
                started_at: Some("2026-12-02T03:00:00Z".into()),
                uptime_seconds: (state == State::Serving).then_some(192),
                stopped_at: None,
                policy_written_at: Some("2026-12-02T03:00:00Z".into()),
                reloads: Some(2),
            },
            interfaces: vec![IfaceReport {
                name: "gw0".into(),
                ifindex: 4,
                side: "users",
                ingress: "xdp_generic",
                tc_egress: true,
            }],
            links: vec!["gw0-tc_egress".into(), "gw0-xdp".into()],
            mode: "enforce",
            generation: 1,
            class_rules: 3,
            profile: ProfileReport {
                index: 1,
                name: Some("off_hours".into()),
            },
            ids: None,
            maps: vec![MapReport {
                map: MAP_USERS4,
                what: "exact IPv4 addresses (both generations)",
                entries: 4,
                capacity: 8192,
            }],
            scan: ScanReport {
                enabled: false,
                report_only: false,
                quarantined: Vec::new(),
            },
            quotas: QuotaReport {
                enabled: false,
                slots: Vec::new(),
            },
            learned: learned::LearnedReport {
                enabled: false,
                sets: Vec::new(),
            },
        }
    }

    #[test]
    fn json_field_names_are_the_documented_ones() {
        let v = serde_json::to_value(report(State::Serving)).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut documented = [
            "pin_dir",
            "daemon",
            "interfaces",
            "links",
            "mode",
            "generation",
            "class_rules",
            "profile",
            "ids",
            "maps",
            "scan",
            "quotas",
            "learned",
        ];
        documented.sort_unstable();
        assert_eq!(keys, documented);
        assert_eq!(v["daemon"]["state"], "serving");
        assert_eq!(v["daemon"]["pid"], 1234);
        assert_eq!(v["daemon"]["uptime_seconds"], 192);
        assert_eq!(v["interfaces"][0]["ingress"], "xdp_generic");
        assert_eq!(v["profile"]["name"], "off_hours");
        let gone = serde_json::to_value(report(State::Gone)).unwrap();
        assert_eq!(gone["daemon"]["state"], "gone");
        assert!(gone["daemon"]["uptime_seconds"].is_null());
        assert_eq!(
            serde_json::to_value(State::NotRunning).unwrap(),
            "not_running"
        );
    }

    #[test]
    fn text_says_who_serves_and_who_is_gone() {
        let serving = text::render(&report(State::Serving), false);
        assert!(
            serving.contains("daemon:      serving (pid 1234, up 3m12s, policyd 0.1.0)"),
            "{serving}"
        );
        assert!(
            serving.contains("gw0              users    ingress xdp generic"),
            "{serving}"
        );
        assert!(serving.contains("profile:     off_hours\n"), "{serving}");
        assert!(
            serving.contains("slot 1 in force; 3 class rules; written 2026-12-02T03:00:00Z"),
            "{serving}"
        );
        let gone = text::render(&report(State::Gone), false);
        assert!(
            gone.contains("daemon:      not running (enforcement pinned by pid 1234"),
            "{gone}"
        );
        assert!(gone.contains("which is gone without stopping"), "{gone}");
        let mut unnamed = report(State::Serving);
        unnamed.profile.name = None;
        assert!(
            text::render(&unnamed, false).contains("profile:     #1 (the pins name no profiles"),
        );
    }
}
