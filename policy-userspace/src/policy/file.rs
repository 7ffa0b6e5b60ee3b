//! The on-disk schema, exactly as written by operators. Unknown fields are
//! errors (a typo must never silently weaken a policy). Values that need
//! checking keep their source span so errors can point at them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    #[serde(default)]
    pub settings: Option<SettingsSection>,
    /// What `/metrics` exposes.
    #[serde(default)]
    pub metrics: Option<MetricsSection>,
    /// Named schedules; each is a profile, `off_hours` is the rest.
    #[serde(default)]
    pub schedule: BTreeMap<String, Spanned<ScheduleEntry>>,
    /// The user packets fall under when no identity matches.
    #[serde(default)]
    pub unidentified: Option<UnidentifiedSection>,
    /// Named sets of destinations: `webmail = ["203.0.113.0/24"]`, or
    /// `webmail = { domains = ["mail.example"], cidrs = [...] }`.
    #[serde(default)]
    pub sets: BTreeMap<String, Spanned<SetEntry>>,
    /// How addresses are learned for domain sets.
    #[serde(default)]
    pub names: Option<NamesSection>,
    #[serde(default, rename = "class")]
    pub classes: Vec<ClassEntry>,
    #[serde(default, rename = "user")]
    pub users: Vec<UserEntry>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleEntry>>,
    /// Threat detection: `[detect.scan]`.
    #[serde(default)]
    pub detect: Option<DetectSection>,
    #[serde(default, rename = "quota")]
    pub quotas: Vec<Spanned<QuotaEntry>>,
}

/// `[[quota]]`: a byte budget per period.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaEntry {
    /// Whose: a user, a group (each member their own budget), or neither:
    /// every identified user, each their own.
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    /// Only this class's bytes; all the user's traffic when absent.
    pub class: Option<Spanned<String>>,
    /// `5GiB/day`, `/week` or `/month`.
    pub quota: Spanned<String>,
    /// `03:00` (daily), `mon 03:00` (weekly), `15 03:00` (monthly).
    pub reset: Option<Spanned<String>>,
    /// What applies once it is used up: `deny`, `monitor` or a `limit`.
    pub exhausted: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DetectSection {
    pub scan: Option<Spanned<ScanEntry>>,
}

/// `[detect.scan]`: scans and worm-like fan-out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScanEntry {
    /// Distinct destination addresses in a window that mark a scan.
    pub hosts: Option<Spanned<i64>>,
    /// Distinct destination ports in a window that mark a scan.
    pub ports: Option<Spanned<i64>>,
    /// `60s`.
    pub window: Option<Spanned<String>>,
    /// `quarantine` (default) or `monitor` (report only).
    pub action: Option<Spanned<String>>,
    /// How long a quarantine lasts: `10m`.
    pub quarantine: Option<Spanned<String>>,
    /// Classes a quarantined user may still use (DNS, DHCP, management).
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleEntry {
    /// `mon` .. `sun`.
    pub days: Vec<Spanned<String>>,
    /// `HH:MM`, local time.
    pub start: Spanned<String>,
    /// `HH:MM` (`24:00` allowed); not after `start` means overnight.
    pub end: Spanned<String>,
    /// `YYYY-MM-DD`: these days the windows stay shut.
    #[serde(default)]
    pub holidays: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsSection {
    /// `enforce` (default) or `monitor`.
    pub mode: Option<Spanned<String>>,
    /// Verdict for malformed packets: `pass` (default) or `drop`.
    pub malformed: Option<Spanned<String>>,
    /// Least time between two events of one kind for one user (`1s`).
    pub event_interval: Option<Spanned<String>>,
    /// IANA time zone of the schedules (`America/New_York`).
    pub timezone: Option<Spanned<String>>,
}

/// `[names]`: learning domain sets' addresses from DNS answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NamesSection {
    /// Least time a learned address stays in its set (`5m`), whatever
    /// the answer's TTL.
    pub ttl_floor: Option<Spanned<String>>,
    /// Most time a learned address stays without a new answer (`1d`).
    pub ttl_cap: Option<Spanned<String>>,
    /// Most addresses kept per name and user.
    pub addresses_per_name: Option<Spanned<i64>>,
    /// Most learned addresses in all.
    pub max_learned: Option<Spanned<i64>>,
    /// `user` (default): an address applies to the user the answer went
    /// to; `everyone`: to every user.
    pub scope: Option<Spanned<String>>,
}

/// A set: a plain list of CIDRs, or a table of CIDRs and domains.
#[derive(Debug, Default)]
pub(super) struct SetEntry {
    pub cidrs: Vec<Spanned<String>>,
    pub domains: Vec<Spanned<String>>,
}

/// By hand rather than an untagged enum: serde buffers an untagged
/// enum's input, and toml's spans do not survive that, so errors could not
/// point at the bad element.
impl<'de> Deserialize<'de> for SetEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SetEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of CIDRs, or a table with `cidrs` and `domains`")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SetEntry, A::Error> {
                let mut cidrs = Vec::new();
                while let Some(c) = seq.next_element()? {
                    cidrs.push(c);
                }
                Ok(SetEntry {
                    cidrs,
                    domains: Vec::new(),
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SetEntry, A::Error> {
                let mut out = SetEntry::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "cidrs" => out.cidrs = map.next_value()?,
                        "domains" => out.domains = map.next_value()?,
                        other => {
                            return Err(serde::de::Error::unknown_field(
                                other,
                                &["cidrs", "domains"],
                            ));
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricsSection {
    /// `all` (default), `top:N` (the N users with most bytes, the rest
    /// summed as `_other`) or `none` (all users summed as `_all`).
    pub per_user: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnidentifiedSection {
    pub action: Spanned<String>,
    /// `per-source` (default) or `shared`.
    pub buckets: Option<Spanned<String>>,
    /// Slots of the per-source table, a power of two.
    pub slots: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClassEntry {
    pub name: Spanned<String>,
    #[serde(default, rename = "match")]
    pub matches: Option<Spanned<MatchEntry>>,
    /// A flow past this size is reclassified into this class.
    pub elephant: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MatchEntry {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp` or a protocol number.
    pub proto: Option<Spanned<ProtoSpec>>,
    /// Remote (service) ports: numbers or `"lo-hi"` ranges.
    #[serde(default)]
    pub ports: Vec<Spanned<PortSpec>>,
    /// The user's own ports.
    #[serde(default)]
    pub user_ports: Vec<Spanned<PortSpec>>,
    /// The remote address is in one of these sets.
    #[serde(default)]
    pub sets: Vec<Spanned<String>>,
    /// `broadcast`, `multicast` or `broadcast-or-multicast` (destination MAC).
    pub l2: Option<Spanned<String>>,
    pub icmp_type: Option<Spanned<i64>>,
    pub dscp: Option<Spanned<i64>>,
    /// A non-IP EtherType: `arp`, `lldp` or a number (`0x88cc`).
    pub ethertype: Option<Spanned<ProtoSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum PortSpec {
    Port(i64),
    Range(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ProtoSpec {
    Number(i64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserEntry {
    pub name: Spanned<String>,
    /// Addresses (`10.0.0.2`, `2001:db8::2`) and CIDRs (`10.1.0.0/24`).
    #[serde(default)]
    pub ips: Vec<Spanned<String>>,
    #[serde(default)]
    pub macs: Vec<Spanned<String>>,
    /// Socket owners (TC egress of locally generated traffic).
    #[serde(default)]
    pub uids: Vec<Spanned<i64>>,
    /// cgroup v2 directories, e.g. `/sys/fs/cgroup/user.slice/user-1000.slice`.
    #[serde(default)]
    pub cgroups: Vec<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    /// Bind the user's exact addresses to their MACs (default: true when
    /// both are given).
    pub spoof_check: Option<bool>,
    /// Shorthand for a rule for every class this user has no rule for.
    pub action: Option<Spanned<String>>,
}

/// A rule. Besides the fields below, a key named after a profile
/// (`business = "limit 20Mbit"`, `off_hours = "allow"`) sets the action in
/// that profile; any other key is an error, reported by validation (serde's
/// `deny_unknown_fields` does not combine with `flatten`).
#[derive(Debug, Deserialize)]
pub(super) struct RuleEntry {
    pub class: Spanned<String>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    /// The limit applies to the class as a whole (all users together).
    #[serde(default)]
    pub aggregate: bool,
    /// The action in every profile not given by name.
    pub action: Option<Spanned<String>>,
    /// Profile name -> action. Plain values: flattened fields lose their
    /// spans, so validation finds the key in the rule's text instead.
    #[serde(flatten)]
    pub profiles: BTreeMap<String, toml::Value>,
}
