//! The validated policy: what a file means, with every name resolved and
//! every value checked. Built by `validate`, consumed by `compile`.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use ipnet::IpNet;

pub use super::units::{ActionSpec, ConnLimit, LimitSpec, Rate};

/// The name under which unmatched packets are accounted. Reserved.
pub const UNIDENTIFIED: &str = "unidentified";
/// The class of packets no class rule matches. Reserved.
pub const DEFAULT_CLASS: &str = "default";
/// The profile in force outside every schedule window (index 0).
pub const OFF_HOURS: &str = "off_hours";

/// How the `unidentified` user's limits are kept (`[unidentified]
/// buckets` and `slots`); `None` where no file gave the field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnidBuckets {
    /// `buckets = "shared"`: one bucket for all unidentified senders
    /// together; else (`"per-source"`, the default) one per sender.
    pub shared: Option<bool>,
    /// Slots of the per-source table (a power of two).
    pub slots: Option<u32>,
}

impl UnidBuckets {
    pub fn is_shared(&self) -> bool {
        self.shared == Some(true)
    }

    pub fn slots(&self) -> u32 {
        self.slots.unwrap_or(policy_common::DEFAULT_UNID_SLOTS)
    }

    /// [`policy_common::Config::unid_slots`]: 0 for a shared bucket.
    pub fn kernel_slots(&self) -> u32 {
        if self.is_shared() { 0 } else { self.slots() }
    }

    /// For `explain` and the provenance.
    pub fn describe(&self) -> String {
        if self.is_shared() {
            "shared: one bucket for all unidentified senders".to_owned()
        } else {
            format!(
                "per source: a bucket per address (IPv6 per /64), in a table of {} slots",
                self.slots()
            )
        }
    }

    /// Which bucket a limit of the unidentified `sender` polices against.
    pub fn describe_for(&self, sender: std::net::IpAddr) -> String {
        if self.is_shared() {
            return self.describe();
        }
        let key = match sender {
            std::net::IpAddr::V4(a) => a.to_string(),
            std::net::IpAddr::V6(a) => {
                ipnet::Ipv6Net::new(a, 64).map_or_else(|_| a.to_string(), |n| n.trunc().to_string())
            }
        };
        format!(
            "per source: {key}'s own bucket, in a table of {} slots (a busy slot is shared)",
            self.slots()
        )
    }

    /// The stricter of two layers' settings: a shared bucket (every
    /// sender's traffic is also within it alone, and the group's total is
    /// held to one limit) and the smaller table (more senders share).
    pub fn stricter(self, later: Self) -> Self {
        Self {
            shared: match (self.shared, later.shared) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (a, b) => a.or(b),
            },
            slots: match (self.slots, later.slots) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Monitor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub malformed_drop: bool,
    pub event_interval: Duration,
    /// The zone schedule windows are in; the system's own when not given.
    pub timezone: jiff::tz::TimeZone,
    /// Its IANA name, for messages (`system` when not given).
    pub timezone_name: String,
    /// Which fields the file gave (layering only combines given ones).
    pub given: SettingsGiven,
}

/// Which `[settings]` fields a file set explicitly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsGiven {
    pub mode: bool,
    pub malformed: bool,
    pub event_interval: bool,
    pub timezone: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            malformed_drop: false,
            event_interval: Duration::from_secs(1),
            timezone: jiff::tz::TimeZone::system(),
            timezone_name: "system".to_owned(),
            given: SettingsGiven::default(),
        }
    }
}

/// How many users get series of their own in `/metrics` (cardinality
/// control for large sites).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PerUser {
    #[default]
    All,
    /// The N users with the most bytes; the others summed as `_other`.
    Top(usize),
    /// Every user summed as `_all`.
    None,
}

/// When a schedule is in force: on `days` (Monday first), from `start` to
/// `end`, in minutes after local midnight. `end <= start` runs overnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: [bool; 7],
    pub start: u16,
    /// 1 to 1440 (`24:00`).
    pub end: u16,
}

/// A named schedule: its windows make its profile the active one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub name: String,
    pub window: Window,
    /// Dates whose windows do not open (they are off-hours).
    pub holidays: BTreeSet<jiff::civil::Date>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub nets: Vec<IpNet>,
    /// Domain patterns in canonical form (`names::domain`): exact names
    /// and `*.` wildcards, whose addresses are learned from DNS answers.
    pub domains: Vec<String>,
}

/// Whose traffic an address learned from a DNS answer classifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum NamesScope {
    /// The user the answer was addressed to, only.
    #[default]
    User,
    /// Every user.
    Everyone,
}

/// `[names]`: each field as given (layering keeps the larger, see
/// merge.rs); `None`: the default of [`crate::names::learned::Limits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamesSettings {
    pub ttl_floor: Option<Duration>,
    pub ttl_cap: Option<Duration>,
    pub addresses_per_name: Option<usize>,
    pub max_learned: Option<usize>,
    pub scope: Option<NamesScope>,
}

impl NamesSettings {
    /// The table limits these settings give.
    pub fn limits(&self) -> crate::names::learned::Limits {
        let d = crate::names::learned::Limits::default();
        crate::names::learned::Limits {
            ttl_floor: self.ttl_floor.unwrap_or(d.ttl_floor),
            ttl_cap: self.ttl_cap.unwrap_or(d.ttl_cap),
            per_name: self.addresses_per_name.unwrap_or(d.per_name),
            max_entries: self.max_learned.unwrap_or(d.max_entries),
        }
    }

    pub fn scope(&self) -> NamesScope {
        self.scope.unwrap_or_default()
    }
}

/// One way to match a class; a class with several ports has one `Match`
/// with several ranges (any of them matches).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    pub proto: Option<u8>,
    /// Inclusive ranges; empty = any.
    pub remote_ports: Vec<(u16, u16)>,
    pub user_ports: Vec<(u16, u16)>,
    /// Names of sets in [`Policy::sets`]; empty = any.
    pub sets: Vec<String>,
    /// Bits of `policy_common::cast`.
    pub l2_cast: Option<u8>,
    pub icmp_type: Option<u8>,
    pub dscp: Option<u8>,
    /// A non-IP EtherType (never IPv4, IPv6 or a VLAN tag's).
    pub ethertype: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub name: String,
    /// `None`: the class is only reached as an elephant class.
    pub matches: Option<Match>,
    pub elephant_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Host addresses are stored as /32 or /128 networks.
    pub nets: Vec<IpNet>,
    pub macs: Vec<[u8; 6]>,
    pub uids: Vec<u32>,
    pub cgroups: Vec<PathBuf>,
    pub group: Option<String>,
    pub spoof_check: bool,
    pub action: Option<ActionSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(String),
    Group(String),
    Everyone,
    /// The class as a whole.
    Aggregate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub class: String,
    pub subject: Subject,
    /// The action per profile, indexed like [`Policy::profiles`].
    pub actions: Vec<ActionSpec>,
    /// The action in profiles the rule does not name (its `action`, else
    /// allow); used when a later layer adds profiles.
    pub default: ActionSpec,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub settings: Settings,
    /// `None` when no file set it (layering keeps the last one given).
    pub per_user: Option<PerUser>,
    /// In file order (by name); schedule `i` is profile `i + 1`.
    pub schedules: Vec<Schedule>,
    /// `off_hours`, then the schedules' names: the kernel's profile slots.
    pub profiles: Vec<String>,
    pub sets: Vec<Set>,
    /// `[names]`: how domain sets learn addresses.
    pub names: NamesSettings,
    /// In match order; the implicit `default` class is not listed.
    pub classes: Vec<Class>,
    pub users: Vec<User>,
    /// Every class's action for packets no identity matches; `None`: the
    /// rules for everyone apply to them too.
    pub unidentified: Option<ActionSpec>,
    /// Whether the `unidentified` user's limits are per sender.
    pub unidentified_buckets: UnidBuckets,
    pub rules: Vec<Rule>,
    /// `[detect.scan]`, if any file set it.
    pub scan: Option<ScanPolicy>,
    /// Every layer's `[[quota]]`s: each applies (layering only adds).
    pub quotas: Vec<super::Quota>,
}

/// Scan and fan-out detection (`[detect.scan]`, policy-common's scan.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPolicy {
    /// Distinct destination addresses per window; `None`: not counted.
    pub hosts: Option<u32>,
    /// Distinct destination ports per window; `None`: not counted.
    pub ports: Option<u32>,
    pub window: Duration,
    /// Report only (`action = "monitor"`).
    pub monitor: bool,
    pub quarantine: Duration,
    /// Classes a quarantined user may still use.
    pub allow: Vec<String>,
}

impl ScanPolicy {
    /// Defaults: 60 s windows (as Zeek's and Snort's scan detectors count),
    /// a quarantine of 10 minutes, nothing allowed during it.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
    pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(600);
}
