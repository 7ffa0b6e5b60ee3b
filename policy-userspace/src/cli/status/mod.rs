//! `policyd status`: what the kernel is enforcing right now, read from the
//! pinned maps and links (so it works while policyd runs, and after it
//! crashed): attachments, mode, the policy generation and profile in force,
//! and how full the maps are.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, MapInfo, PerCpuHashMap};
use policy_common::{
    ActionEntry, BucketKey, Config, CounterKey, Counters, GenAddr, GenPrefix, GenPrefix4, GenU32,
    MAP_ACTIONS, MAP_ACTIVE_PROFILE, MAP_BUCKETS, MAP_CONFIG, MAP_COUNTERS, MAP_FLOW_SKETCH,
    MAP_GENERATION, MAP_UNID_BUCKETS, MAP_USER_CIDRS, MAP_USER_CIDRS4, MAP_USERS, MAP_USERS4,
    UnidSlot, UserId, mode,
};

use crate::dataplane::DEFAULT_PIN_DIR;

/// Show what is being enforced: attachments, mode, generation, profile, map
/// fill levels (read from the pinned state).
#[derive(Debug, clap::Args)]
pub(super) struct StatusArgs {
    /// The pin directory `policyd run` uses.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pin_dir: PathBuf,
    /// The policy files in force, to name the profile (the kernel knows
    /// only its index).
    #[arg(long = "policy", short = 'p', value_name = "FILE")]
    policies: Vec<PathBuf>,
}

fn open(dir: &Path, name: &str) -> anyhow::Result<MapData> {
    MapData::from_pin(dir.join(name)).with_context(|| format!("cannot open the pinned map {name}"))
}

fn info(dir: &Path, name: &str) -> anyhow::Result<MapInfo> {
    MapInfo::from_pin(dir.join(name)).with_context(|| format!("cannot read the pinned map {name}"))
}

/// Entries of an array that are not all zero (every entry of an array
/// exists; a zero one holds nothing).
fn array_set<V: aya::Pod + Default + PartialEq>(dir: &Path, name: &str) -> anyhow::Result<usize> {
    let cells = Array::<MapData, V>::try_from(Map::from_map_data(open(dir, name)?)?)?;
    Ok(cells
        .iter()
        .filter(|v| v.as_ref().is_ok_and(|v| *v != V::default()))
        .count())
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

pub(super) fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let dir = &args.pin_dir;
    super::require_pins(dir)?;
    println!("pins:        {}", dir.display());
    // Whoever holds the directory's lock is the policyd serving it.
    println!(
        "daemon:      {}",
        crate::dataplane::lock_holder(dir).map_or_else(
            || "none serving (enforcement stays in force from the pins)".to_owned(),
            |pid| format!("policyd pid {pid} serving")
        )
    );
    let mut links: Vec<String> = std::fs::read_dir(dir.join("links"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    println!(
        "attached:    {}",
        if links.is_empty() {
            "nothing (programs are not attached)".to_owned()
        } else {
            links.join(", ")
        }
    );
    let generation: Array<MapData, u32> =
        Map::from_map_data(open(dir, MAP_GENERATION)?)?.try_into()?;
    let g = generation.get(&0, 0)? & 1;
    let config: Array<MapData, Config> = Map::from_map_data(open(dir, MAP_CONFIG)?)?.try_into()?;
    let cfg = config.get(&g, 0)?;
    println!(
        "mode:        {}",
        if cfg.mode == mode::MONITOR {
            "monitor (dry run)"
        } else {
            "enforce"
        }
    );
    let profiles: Array<MapData, u32> =
        Map::from_map_data(open(dir, MAP_ACTIVE_PROFILE)?)?.try_into()?;
    let p = profiles.get(&g, 0)? as usize;
    let name = match super::names_from(&args.policies)? {
        None => format!("#{p} (give --policy to name it)"),
        Some(compiled) => compiled
            .profiles
            .get(p)
            .cloned()
            .unwrap_or_else(|| format!("#{p}")),
    };
    println!("profile:     {name}");
    println!(
        "generation:  slot {g} in force; {} class rules",
        cfg.rule_count
    );
    match crate::dataplane::pinned_ids(dir) {
        Ok(ids) => {
            let retiring = |t: &crate::policy::Table| {
                t.iter()
                    .filter(|(_, s)| matches!(s, crate::policy::Slot::Retired(_)))
                    .count()
            };
            println!(
                "ids:         {} users ({} being retired, highest id {}), {} classes",
                ids.users.len(),
                retiring(&ids.users),
                ids.users.highest().unwrap_or(0),
                ids.classes.len()
            );
        }
        Err(e) => println!("ids:         unknown ({e})"),
    }
    println!("maps (entries / capacity):");
    let rows = [
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
            MAP_ACTIONS,
            "action entries set (both generations)",
            array_set::<ActionEntry>(dir, MAP_ACTIONS)?,
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
        (
            MAP_FLOW_SKETCH,
            "elephant sketch cells in use",
            array_set::<u64>(dir, MAP_FLOW_SKETCH)?,
        ),
        (
            MAP_UNID_BUCKETS,
            "unidentified senders' bucket slots used",
            array_set::<UnidSlot>(dir, MAP_UNID_BUCKETS)?,
        ),
    ];
    for (map, what, n) in rows {
        let cap = info(dir, map)?.max_entries();
        println!(
            "  {what:<40} {n:>9} / {cap:<9} ({:.1}%)",
            100.0 * n as f64 / f64::from(cap.max(1))
        );
    }
    quarantines(dir, &cfg)?;
    quotas(dir, &cfg)
}

/// Byte quotas: each user's use of each budget this period.
fn quotas(dir: &Path, cfg: &Config) -> anyhow::Result<()> {
    if cfg.present & policy_common::present::QUOTAS == 0 {
        println!("quotas: none");
        return Ok(());
    }
    let usage = crate::dataplane::QuotaTable::from_pins(dir)?.usage()?;
    println!(
        "quotas: {} ({} used up)",
        usage.len(),
        usage.iter().filter(|u| u.exhausted()).count()
    );
    let ids = crate::dataplane::pinned_ids(dir).ok();
    let name = |t: Option<&crate::policy::Table>, id: u32| {
        t.and_then(|t| match t.get(id) {
            Some(crate::policy::Slot::Live(n)) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| format!("#{id}"))
    };
    for u in usage {
        let class = if u.class == policy_common::QUOTA_ALL_CLASSES {
            "(all traffic)".to_owned()
        } else {
            name(ids.as_ref().map(|i| &i.classes), u.class)
        };
        let since = i64::try_from(u.period_start)
            .ok()
            .filter(|s| *s > 0)
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map_or_else(|| "not started".to_owned(), |t| format!("since {t}"));
        println!(
            "  {:<24} {class:<16} {:>14} / {:<14} ({:.1}%{}) {since}",
            name(ids.as_ref().map(|i| &i.users), u.user),
            u.used,
            u.limit,
            100.0 * u.used as f64 / u.limit.max(1) as f64,
            if u.exhausted() { ", used up" } else { "" },
        );
    }
    Ok(())
}

/// Scan detection: who is in quarantine, for how long yet, and why.
fn quarantines(dir: &Path, cfg: &Config) -> anyhow::Result<()> {
    if cfg.present & policy_common::present::SCAN == 0 {
        println!("scan detection: off");
        return Ok(());
    }
    let monitor = cfg.scan_flags & policy_common::scan_flag::MONITOR != 0;
    let table = crate::dataplane::ScanTable::from_pins(dir)?;
    let quarantined = table.quarantined()?;
    println!(
        "scan detection: on ({}); {} in quarantine",
        if monitor { "report only" } else { "quarantine" },
        quarantined.len()
    );
    let names = crate::dataplane::pinned_ids(dir).ok();
    for q in quarantined {
        let name = names
            .as_ref()
            .and_then(|ids| match ids.users.get(q.user) {
                Some(crate::policy::Slot::Live(n)) => Some(n.clone()),
                _ => None,
            })
            .unwrap_or_else(|| format!("#{}", q.user));
        println!(
            "  {name:<24} {:>6} s left  (too many distinct {})",
            q.left_ns.div_ceil(1_000_000_000),
            q.reason_name()
        );
    }
    Ok(())
}
