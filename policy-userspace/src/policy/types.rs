//! The validated policy: what a file means, with every name resolved and
//! every value checked. Built by `validate`, consumed by `compile`.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use ipnet::IpNet;

pub use super::units::{ActionSpec, LimitSpec, Rate};

/// The name under which unmatched packets are accounted. Reserved.
pub const UNIDENTIFIED: &str = "unidentified";
/// The class of packets no class rule matches. Reserved.
pub const DEFAULT_CLASS: &str = "default";
/// The profile in force outside every schedule window (index 0).
pub const OFF_HOURS: &str = "off_hours";

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
    /// In match order; the implicit `default` class is not listed.
    pub classes: Vec<Class>,
    pub users: Vec<User>,
    /// Every class's action for packets no identity matches; `None`: the
    /// rules for everyone apply to them too.
    pub unidentified: Option<ActionSpec>,
    pub rules: Vec<Rule>,
}
