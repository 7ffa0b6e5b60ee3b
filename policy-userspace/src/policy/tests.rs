use policy_common::{
    ActionKey, GROUP_BIT, SUBJECT_ANY, USER_UNIDENTIFIED, field, flag, kind, v4_mapped,
};

use super::*;

pub(super) fn parse_str(src: &str) -> Result<Policy, PolicyError> {
    parse(Path::new("p.toml"), src)
}

pub(super) fn err(src: &str) -> String {
    parse_str(src)
        .expect_err("policy should be rejected")
        .to_string()
}

const GOOD: &str = r#"
[unidentified]
action = "deny"

[[user]]
name = "alice"
ips = ["10.0.0.2", "2001:db8::2", "10.1.0.0/16"]

[[user]]
name = "bob"
ips = ["10.1.2.0/24", "2001:db8:1::/48"]
action = "deny"
"#;

#[test]
fn parses_a_valid_policy() {
    let p = parse_str(GOOD).unwrap();
    assert_eq!(p.unidentified, Some(ActionSpec::Deny));
    assert_eq!(p.users.len(), 2);
    assert_eq!(p.users[0].name, "alice");
    assert_eq!(p.users[0].action, None, "no blanket action unless given");
    assert_eq!(p.users[0].nets.len(), 3);
    assert_eq!(p.users[1].action, Some(ActionSpec::Deny));
}

#[test]
fn empty_file_allows_unidentified() {
    let p = parse_str("").unwrap();
    assert!(p.users.is_empty());
    assert_eq!(p.unidentified, None);
    assert_eq!(p.settings, Settings::default());
}

#[test]
fn bad_toml_names_line_and_column() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"\n");
    assert!(e.starts_with("p.toml:3:"), "{e}");
}

#[test]
fn unknown_field_is_rejected_with_its_name() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\nacton = \"deny\"\n");
    assert!(e.starts_with("p.toml:4:1:"), "{e}");
    assert!(e.contains("unknown field `acton`"), "{e}");
    assert!(
        e.contains("`action`"),
        "the expected fields are listed: {e}"
    );
}

#[test]
fn unknown_top_level_section_is_rejected() {
    let e = err("[users]\n");
    assert!(e.contains("unknown field `users`"), "{e}");
}

#[test]
fn missing_name_is_rejected() {
    let e = err("[[user]]\nips = [\"10.0.0.1\"]\n");
    assert!(e.contains("missing field `name`"), "{e}");
}

#[test]
fn bad_address_names_field_line_and_value() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\", \"10.0.0.300\"]\n");
    assert_eq!(
        e,
        "p.toml:3:20: user[0].ips[1]: `10.0.0.300` is not a valid IP address or CIDR"
    );
}

#[test]
fn bad_cidr_is_rejected() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.0/33\"]\n");
    assert!(
        e.contains("user[0].ips[0]: `10.0.0.0/33` is not a valid CIDR"),
        "{e}"
    );
}

#[test]
fn cidr_with_host_bits_suggests_the_network() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.5/24\"]\n");
    assert!(e.contains("did you mean `10.0.0.0/24`"), "{e}");
}

#[test]
fn address_claimed_by_two_users_is_rejected() {
    let e = err(
        "[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\n[[user]]\nname = \"b\"\nips = [\"10.0.0.1/32\"]\n",
    );
    assert!(e.starts_with("p.toml:6:"), "{e}");
    assert!(
        e.contains("user[1].ips[0]: `10.0.0.1/32` already belongs to user `a`"),
        "{e}"
    );
}

#[test]
fn duplicate_user_name_is_rejected() {
    let e = err(
        "[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\n[[user]]\nname = \"a\"\nips = [\"10.0.0.2\"]\n",
    );
    assert!(
        e.contains("user[1].name: user `a` is already defined as user[0]"),
        "{e}"
    );
}

#[test]
fn reserved_and_malformed_names_are_rejected() {
    let e = err("[[user]]\nname = \"unidentified\"\nips = [\"10.0.0.1\"]\n");
    assert!(e.contains("`unidentified` is reserved"), "{e}");
    let e = err("[[user]]\nname = \"a b\"\nips = [\"10.0.0.1\"]\n");
    assert!(e.contains("not a valid user name"), "{e}");
    // The metrics' sums are labelled `_other` and `_all`.
    for label in ["_other", "_all", "_x"] {
        let e = err(&format!(
            "[[user]]\nname = \"{label}\"\nips = [\"10.0.0.1\"]\n"
        ));
        assert!(
            e.contains("user[0].name") && e.contains("reserved for policyd's own labels"),
            "{e}"
        );
        let e = err(&format!(
            "[[class]]\nname = \"{label}\"\nmatch = {{ ports = [25] }}\n"
        ));
        assert!(e.contains("class[0].name") && e.contains("reserved"), "{e}");
    }
}

#[test]
fn user_without_addresses_is_rejected() {
    let e = err("[[user]]\nname = \"a\"\n");
    assert!(
        e.contains("user[0].ips: user `a` has no addresses, MACs, UIDs or cgroups"),
        "{e}"
    );
}

#[test]
fn unknown_action_is_rejected() {
    let e = err("[unidentified]\naction = \"drop\"\n");
    assert_eq!(
        e,
        "p.toml:2:10: unidentified.action: `drop` is not an action: expected `allow`, `deny`, \
         `monitor` or `limit <rate> [options]`; did you mean `deny`?"
    );
}

#[test]
fn wrong_type_is_rejected() {
    let e = err("[[user]]\nname = \"a\"\nips = \"10.0.0.1\"\n");
    assert!(e.starts_with("p.toml:3:7:"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

const FULL: &str = concat!(
    r#"
[settings]
mode = "monitor"
malformed = "drop"
event_interval = "250ms"
"#,
    include_str!("../../../tests/fixtures/business-hours.toml"),
    include_str!("../../../tests/fixtures/classes/webmail.toml"),
    // Goes on the webmail fixture's open [sets] table.
    r#"banned = ["203.0.113.128/25", "198.51.100.0/24"]
"#,
    include_str!("../../../tests/fixtures/classes/mail.toml"),
    r#"
[[class]]
name = "bulk"
match = { proto = "tcp", ports = [21, "6000-6010"], user_ports = [22] }
elephant = "50MiB"
"#,
    include_str!("../../../tests/fixtures/classes/broadcast.toml"),
    include_str!("../../../tests/fixtures/classes/ping.toml"),
    r#"
[[user]]
name = "alice"
ips = ["10.0.0.2", "10.1.0.0/16"]
macs = ["02:00:00:00:00:02"]
group = "finance"

[[user]]
name = "bob"
ips = ["10.0.0.3"]
macs = ["02:00:00:00:00:03"]
uids = [1000]
spoof_check = false
action = "deny"

[[rule]]
class = "bulk"
business = "limit 20Mbit burst 256KiB"
off_hours = "allow"

[[rule]]
class = "mail"
group = "finance"
action = "limit 10pps"

[[rule]]
class = "webmail"
action = "deny"

[[rule]]
class = "bulk"
aggregate = true
business = "limit 200Mbit"
"#
);

#[test]
fn full_policy_validates() {
    let p = parse_str(FULL).unwrap();
    assert_eq!(p.settings.mode, Mode::Monitor);
    assert!(p.settings.malformed_drop);
    assert_eq!(
        p.settings.event_interval,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(p.sets.len(), 2);
    assert_eq!(p.classes.len(), 5);
    assert_eq!(p.classes[2].elephant_bytes, Some(50 * 1024 * 1024));
    assert_eq!(
        p.classes[2].matches.as_ref().unwrap().remote_ports,
        vec![(21, 21), (6000, 6010)]
    );
    assert!(
        p.users[0].spoof_check,
        "on by default with exact ips and macs"
    );
    assert!(!p.users[1].spoof_check);
    assert_eq!(p.rules.len(), 4);
    assert_eq!(p.rules[0].actions[0], ActionSpec::Allow, "off_hours");
    assert!(
        matches!(p.rules[0].actions[1], ActionSpec::Limit(_)),
        "business"
    );
    assert_eq!(p.rules[3].subject, Subject::Aggregate);
}

#[test]
fn full_policy_compiles_to_tables() {
    let c = CompiledPolicy::compile(&parse_str(FULL).unwrap());
    assert_eq!(
        c.classes,
        ["default", "webmail", "mail", "bulk", "broadcast", "ping"]
    );
    assert_eq!(c.groups, ["finance"]);
    assert_eq!(c.users[1].group, 1);
    // mail: 3 ports; bulk: 2 remote ranges x 1 user port; one each for the rest.
    assert_eq!(c.class_rules.len(), 1 + 3 + 2 + 1 + 1);
    assert_eq!(c.config.rule_count, 8);
    let bulk = &c.class_rules[4];
    assert_eq!(bulk.class, 3);
    assert_eq!(
        bulk.fields,
        field::PROTO | field::REMOTE_PORT | field::USER_PORT
    );
    assert_eq!(
        (bulk.remote_port_lo, bulk.remote_port_hi, bulk.user_port_lo),
        (21, 21, 22)
    );
    assert_eq!(
        c.class_rules[0].remote_sets, 0b10,
        "webmail is bit 1 (sets sort by name)"
    );
    assert_eq!(c.config.elephant_class, 3);
    assert_eq!(c.config.elephant_bytes, 50 << 20);
    assert_eq!(c.config.mode, policy_common::mode::MONITOR);
    assert_eq!(c.config.malformed_drop, 1);
    assert_eq!(c.config.event_interval_ns, 250_000_000);
    // IPv4 goes to the mapped space: /16 becomes /112, hosts are exact.
    assert!(c.exact.contains(&(v4_mapped([10, 0, 0, 2]), 1)));
    assert!(c.cidrs.contains(&(112, v4_mapped([10, 1, 0, 0]), 1)));
    assert_eq!(c.uids, [(1000, 2)]);
    assert_eq!(c.bindings.len(), 1, "only alice is bound");
    assert_eq!(c.bindings[0].1.count, 1);
}

#[test]
fn set_prefixes_carry_every_set_that_contains_them() {
    let c = CompiledPolicy::compile(&parse_str(FULL).unwrap());
    let bits = |len: u32, a: [u8; 4]| {
        c.set_cidrs
            .iter()
            .find(|(l, n, _)| *l == 96 + len && *n == v4_mapped(a))
            .map(|(_, _, b)| *b)
    };
    // Sets are sorted by name: banned = bit 0, webmail = bit 1.
    assert_eq!(bits(24, [203, 0, 113, 0]), Some(0b10));
    assert_eq!(
        bits(25, [203, 0, 113, 128]),
        Some(0b11),
        "inside webmail's /24 too"
    );
    assert_eq!(bits(24, [198, 51, 100, 0]), Some(0b01));
}

#[test]
fn connection_limits_compile_to_a_second_bucket() {
    let p = params(&units::parse_action("limit 50Mbit conn 20/min").unwrap());
    assert_eq!(p.kind, kind::LIMIT);
    assert_eq!(p.cost_fp, 160 << 16, "50 Mbit/s: 160 ns a byte");
    // 20 a minute: one per 3 s; the default burst is a minute's 20.
    assert_eq!(p.conn_cost_ns, 3_000_000_000);
    assert_eq!(p.conn_tolerance_ns, 60_000_000_000);
    let alone = params(&units::parse_action("limit 20conn/min conn-burst 5").unwrap());
    assert_eq!(alone.kind, kind::LIMIT);
    assert_eq!(
        (alone.cost_fp, alone.tolerance_ns),
        (0, 0),
        "no byte or packet bucket"
    );
    assert_eq!(alone.conn_tolerance_ns, 15_000_000_000);
    let plain = params(&units::parse_action("limit 50Mbit").unwrap());
    assert_eq!(plain.conn_cost_ns, 0, "no connection bucket");
}

#[test]
fn actions_resolve_user_group_everyone_and_blanket() {
    let c = CompiledPolicy::compile(&parse_str(FULL).unwrap());
    let find = |subject, class| {
        c.actions
            .iter()
            .find(|(k, _)| *k == ActionKey { subject, class })
            .map(|(_, e)| *e)
    };
    let bulk = find(SUBJECT_ANY, 3).unwrap();
    assert_eq!(bulk.profiles[0].kind, kind::ALLOW, "off_hours");
    let limit = bulk.profiles[1];
    assert_eq!(limit.kind, kind::LIMIT);
    // 20 Mbit/s = 2.5 MB/s = 400 ns per byte; burst 256 KiB = 104 857 600 ns.
    assert_eq!(limit.cost_fp, 400 << 16);
    assert_eq!(limit.tolerance_ns, 262_144 * 400);
    assert_ne!(limit.flags & flag::ECN, 0, "ECN marking is on by default");
    let mail = find(GROUP_BIT | 1, 2).unwrap().profiles[1];
    assert_eq!(mail.kind, kind::LIMIT);
    assert_ne!(mail.flags & flag::PACKETS, 0);
    assert_eq!(find(SUBJECT_ANY, 1).unwrap().profiles[0].kind, kind::DENY);
    // bob's blanket deny covers every class, including default.
    for class in 0..6 {
        assert_eq!(
            find(2, class).unwrap().profiles[1].kind,
            kind::DENY,
            "class {class}"
        );
    }
    assert!(
        find(USER_UNIDENTIFIED, 0).is_none(),
        "no [unidentified]: rules for everyone apply"
    );
    assert_eq!(c.class_limits.len(), 1);
    assert_eq!(c.class_limits[0].0, 3);
    assert_eq!(c.class_limits[0].1.profiles[0].kind, kind::ALLOW);
    assert_eq!(c.class_limits[0].1.profiles[1].kind, kind::LIMIT);
}

#[test]
fn class_errors_name_the_field() {
    let e = err("[[class]]\nname = \"default\"\nmatch = { proto = \"tcp\" }\n");
    assert!(e.contains("class[0].name: `default` is reserved"), "{e}");
    let e = err("[[class]]\nname = \"x\"\nmatch = { proto = \"tcp\", ports = [70000] }\n");
    assert!(
        e.contains("class[0].match.ports[0]: `70000` is not a port"),
        "{e}"
    );
    let e = err("[[class]]\nname = \"x\"\nmatch = { proto = \"tcp\", ports = [\"9-1\"] }\n");
    assert!(e.contains("the range is empty"), "{e}");
    let e = err("[[class]]\nname = \"x\"\nmatch = { ports = [80] }\n");
    assert!(e.contains("ports need `proto`"), "{e}");
    let e = err("[[class]]\nname = \"x\"\nmatch = { proto = \"gre\" }\n");
    assert!(e.contains("unknown protocol `gre`"), "{e}");
    let e = err("[[class]]\nname = \"x\"\nmatch = { sets = [\"nope\"] }\n");
    assert!(
        e.contains("class[0].match.sets[0]: no set named `nope`"),
        "{e}"
    );
    let e = err("[[class]]\nname = \"x\"\nmatch = { l2 = \"unicast\" }\n");
    assert!(e.contains("unknown value `unicast`"), "{e}");
    let e = err(
        "[[class]]\nname = \"x\"\nmatch = { proto = \"tcp\" }\n[[class]]\nname = \"x\"\nmatch = { proto = \"udp\" }\n",
    );
    assert!(
        e.contains("class[1].name: class `x` is defined twice"),
        "{e}"
    );
    let e = err("[[class]]\nname = \"x\"\n");
    assert!(e.contains("neither `match` nor `elephant`"), "{e}");
    let e = err("[[class]]\nname = \"x\"\nmatch = { proto = \"tcp\", colour = 1 }\n");
    assert!(e.contains("unknown field `colour`"), "{e}");
}

#[test]
fn too_many_kernel_rules_is_an_error() {
    let ports: Vec<String> = (1..=65).map(|p| p.to_string()).collect();
    let src = format!(
        "[[class]]\nname = \"x\"\nmatch = {{ proto = \"tcp\", ports = [{}] }}\n",
        ports.join(", ")
    );
    let e = err(&src);
    assert!(e.contains("65 kernel rules"), "{e}");
}

#[test]
fn rule_errors_name_the_field() {
    let base = "[schedule.business]\ndays = [\"mon\"]\nstart = \"08:00\"\nend = \"17:00\"\n[[class]]\nname = \"bulk\"\nmatch = { proto = \"tcp\" }\n[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\ngroup = \"g\"\n";
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"nope\"\naction = \"deny\"\n"
    ));
    assert!(e.contains("rule[0].class: no class named `nope`"), "{e}");
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\nuser = \"zed\"\naction = \"deny\"\n"
    ));
    assert!(e.contains("rule[0].user: no user named `zed`"), "{e}");
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\ngroup = \"h\"\naction = \"deny\"\n"
    ));
    assert!(e.contains("rule[0].group: no user is in group `h`"), "{e}");
    let e = err(&format!("{base}[[rule]]\nclass = \"bulk\"\n"));
    assert!(e.contains("the rule sets no action"), "{e}");
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\naggregate = true\naction = \"deny\"\n"
    ));
    assert!(e.contains("an aggregate rule can only `limit`"), "{e}");
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\naggregate = true\nbusiness = \"limit 1Gbit conn 5/s\"\n"
    ));
    assert!(
        e.contains("rule[0].action") && e.contains("not connections (`limit 1Gbit conn 5/s`)"),
        "{e}"
    );
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\naction = \"deny\"\n[[rule]]\nclass = \"bulk\"\naction = \"allow\"\n"
    ));
    assert!(
        e.contains("rule[1].class: rule[0] already sets class `bulk` for everyone"),
        "{e}"
    );
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\nbusiness = \"limit fast\"\n"
    ));
    assert!(e.contains("rule[0].business:"), "{e}");
    assert!(e.contains("fast"), "{e}");
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\nweekend = \"deny\"\n"
    ));
    assert!(e.contains("unknown field `weekend`"), "{e}");
}

#[test]
fn identifier_errors() {
    let e = err("[[user]]\nname = \"a\"\nmacs = [\"02:00:00:00:00\"]\n");
    assert!(
        e.contains("user[0].macs[0]: `02:00:00:00:00` is not a MAC address"),
        "{e}"
    );
    let e = err("[[user]]\nname = \"a\"\nmacs = [\"01:00:5e:00:00:01\"]\n");
    assert!(e.contains("multicast MAC"), "{e}");
    let e = err(
        "[[user]]\nname = \"a\"\nmacs = [\"02:00:00:00:00:01\"]\n[[user]]\nname = \"b\"\nmacs = [\"02:00:00:00:00:01\"]\n",
    );
    assert!(e.contains("already belongs to user `a`"), "{e}");
    let e = err("[[user]]\nname = \"a\"\nuids = [-1]\n");
    assert!(e.contains("user[0].uids[0]: expected a UID"), "{e}");
    let e = err("[[user]]\nname = \"a\"\ncgroups = [\"user.slice\"]\n");
    assert!(e.contains("absolute cgroup"), "{e}");
    let e = err(
        "[[user]]\nname = \"a\"\nips = [\"10.0.0.0/24\"]\nmacs = [\"02:00:00:00:00:01\"]\nspoof_check = true\n",
    );
    assert!(e.contains("spoof_check binds exact addresses"), "{e}");
}

#[test]
fn settings_errors() {
    let e = err("[settings]\nmode = \"audit\"\n");
    assert!(
        e.contains("settings.mode: unknown value `audit`, expected `enforce` or `monitor`"),
        "{e}"
    );
    let e = err("[settings]\nevent_interval = \"1h\"\n");
    assert!(e.contains("settings.event_interval"), "{e}");
    let e = err("[sets]\nweb = [\"300.0.0.0/8\"]\n");
    assert!(e.contains("sets.web[0]"), "{e}");
}

#[test]
fn the_baseline_is_valid_and_says_what_the_policy_says() {
    let p = baseline().unwrap();
    let c = CompiledPolicy::compile(&p);
    assert_eq!(
        c.classes,
        [
            "default",
            "prohibited",
            "webmail",
            "doh",
            "doh-udp",
            "dot",
            "ech",
            "mail",
            "bulk",
            "broadcast",
            "dns",
            "dns-tcp",
            "dhcp"
        ]
    );
    let set = |name: &str| p.sets.iter().find(|s| s.name == name).unwrap();
    assert!(set("prohibited").nets.is_empty() && set("prohibited").domains.is_empty());
    // Personal webmail by name, "such as Yahoo! or Hotmail".
    let webmail = &set("webmail").domains;
    for d in [
        "mail.yahoo.com",
        "*.mail.yahoo.com",
        "outlook.live.com",
        "hotmail.com",
    ] {
        assert!(webmail.iter().any(|x| x == d), "{d} in {webmail:?}");
    }
    assert!(set("webmail").nets.is_empty(), "webmail is by name only");
    assert!(set("doh").domains.iter().any(|d| d == "dns.google"));
    assert_ne!(
        c.config.present & policy_common::present::NAMES,
        0,
        "names are learned"
    );
    let scan = p.scan.clone().expect("scans are detected");
    assert_eq!((scan.hosts, scan.ports), (Some(100), Some(100)));
    assert!(!scan.monitor, "and quarantined");
    assert_eq!(scan.allow, ["dns", "dns-tcp", "dhcp"]);
    let everyone = |class: &str| {
        let id = c.classes.iter().position(|x| x == class).unwrap() as u32;
        c.actions
            .iter()
            .find(|(k, _)| {
                *k == ActionKey {
                    subject: SUBJECT_ANY,
                    class: id,
                }
            })
            .map(|(_, e)| *e)
            .unwrap()
    };
    let business = c.profile("business").unwrap();
    let off = c.profile("off_hours").unwrap();
    assert_eq!(everyone("webmail").profiles[business].kind, kind::DENY);
    for flagged in ["doh", "doh-udp", "dot", "ech"] {
        assert_eq!(
            everyone(flagged).profiles[off].kind,
            kind::MONITOR,
            "{flagged}"
        );
    }
    assert_eq!(everyone("prohibited").profiles[off].kind, kind::DENY);
    assert_eq!(everyone("bulk").profiles[business].kind, kind::LIMIT);
    assert_eq!(everyone("bulk").profiles[off].kind, kind::ALLOW);
    assert_eq!(
        everyone("mail").profiles[off].kind,
        kind::LIMIT,
        "mail is limited at all hours"
    );
    assert_ne!(
        everyone("broadcast").profiles[business].flags & flag::PACKETS,
        0
    );
    assert_eq!(
        everyone("mail").profiles[business].conn_cost_ns,
        3_000_000_000,
        "mail: 20 connections a minute"
    );
    assert!(c.config.elephant_bytes > 0);
    assert!(
        matches!(p.unidentified, Some(ActionSpec::Limit(_))),
        "unidentified senders are restricted"
    );
}

#[test]
fn schedules_define_the_profiles() {
    let p = parse_str(
        "[settings]\ntimezone = \"Europe/Paris\"\n[schedule.evening]\ndays = [\"fri\", \"sat\"]\nstart = \"18:00\"\nend = \"02:00\"\n[schedule.business]\ndays = [\"mon\"]\nstart = \"08:00\"\nend = \"24:00\"\nholidays = [\"2026-12-25\"]\n",
    )
    .unwrap();
    assert_eq!(
        p.profiles,
        ["off_hours", "business", "evening"],
        "off_hours, then by name"
    );
    assert_eq!(p.settings.timezone_name, "Europe/Paris");
    assert_eq!(p.schedules[0].window.end, 1440);
    assert_eq!(
        p.schedules[1].window.days,
        [false, false, false, false, true, true, false]
    );
    assert_eq!(p.schedules[1].window.start, 18 * 60);
    assert_eq!(p.schedules[0].holidays.len(), 1);
}

#[test]
fn rules_set_actions_per_profile_and_reject_unknown_keys_with_their_line() {
    let base = "[schedule.business]\ndays = [\"mon\"]\nstart = \"08:00\"\nend = \"17:00\"\n[[class]]\nname = \"bulk\"\nmatch = { proto = \"tcp\" }\n";
    let p = parse_str(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\naction = \"deny\"\nbusiness = \"limit 1Mbit\"\n"
    ))
    .unwrap();
    assert_eq!(
        p.rules[0].actions[0],
        ActionSpec::Deny,
        "off_hours takes `action`"
    );
    assert!(matches!(p.rules[0].actions[1], ActionSpec::Limit(_)));
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\naction = \"deny\"\nweekend = \"allow\"\n"
    ));
    assert!(
        e.starts_with("p.toml:11:1: rule[0].weekend: unknown field `weekend`"),
        "{e}"
    );
    assert!(e.contains("(`off_hours`, `business`)"), "{e}");
    let e = err(&format!(
        "{base}[[rule]]\nclass = \"bulk\"\n  business = \"limit fast\"\n"
    ));
    assert!(e.starts_with("p.toml:10:3: rule[0].business:"), "{e}");
    let e = err(&format!("{base}[[rule]]\nclass = \"bulk\"\nbusiness = 5\n"));
    assert!(e.contains("expected an action as a string"), "{e}");
    let e = err(
        "[[class]]\nname = \"bulk\"\nmatch = { proto = \"tcp\" }\n[[rule]]\nclass = \"bulk\"\nbusiness = \"deny\"\n",
    );
    assert!(
        e.contains("unknown field `business`") && e.contains("(`off_hours`)"),
        "no schedule, no business: {e}"
    );
}

#[test]
fn schedule_errors() {
    let sched = |body: &str| format!("[schedule.business]\n{body}\n");
    let e = err(&sched(
        "days = [\"monday\"]\nstart = \"08:00\"\nend = \"17:00\"",
    ));
    assert!(
        e.contains("schedule.business.days[0]: `monday` is not a day"),
        "{e}"
    );
    let e = err(&sched(
        "days = [\"mon\"]\nstart = \"8:00\"\nend = \"17:00\"",
    ));
    assert!(
        e.contains("schedule.business.start: `8:00` is not a time of day"),
        "{e}"
    );
    let e = err(&sched(
        "days = [\"mon\"]\nstart = \"24:00\"\nend = \"17:00\"",
    ));
    assert!(e.contains("schedule.business.start"), "{e}");
    let e = err(&sched(
        "days = [\"mon\"]\nstart = \"08:00\"\nend = \"08:00\"",
    ));
    assert!(e.contains("the window is empty"), "{e}");
    let e = err(&sched(
        "days = [\"mon\"]\nstart = \"08:00\"\nend = \"17:00\"\nholidays = [\"25/12/2026\"]",
    ));
    assert!(
        e.contains("schedule.business.holidays[0]: `25/12/2026` is not a date"),
        "{e}"
    );
    let e = err(&sched("days = []\nstart = \"08:00\"\nend = \"17:00\""));
    assert!(e.contains("the schedule has no days"), "{e}");
    let e = err(&sched(
        "days = [\"mon\"]\nstart = \"08:00\"\nend = \"17:00\"\nweekly = true",
    ));
    assert!(e.contains("unknown field `weekly`"), "{e}");
    let e = err("[schedule.off_hours]\ndays = [\"mon\"]\nstart = \"08:00\"\nend = \"17:00\"\n");
    assert!(e.contains("cannot name a schedule"), "{e}");
    let e = err("[settings]\ntimezone = \"Mars/Olympus\"\n");
    assert!(
        e.contains("settings.timezone: unknown time zone `Mars/Olympus`"),
        "{e}"
    );
    // Sunday night runs into Monday morning.
    let e = err(
        "[schedule.a]\ndays = [\"sun\"]\nstart = \"22:00\"\nend = \"09:00\"\n[schedule.b]\ndays = [\"mon\"]\nstart = \"08:00\"\nend = \"17:00\"\n",
    );
    assert!(e.contains("overlap those of schedule `a`"), "{e}");
    let four: String = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!("[schedule.{n}]\ndays = [\"mon\"]\nstart = \"0{i}:00\"\nend = \"0{i}:30\"\n")
        })
        .collect();
    let e = err(&four);
    assert!(e.contains("at most 3 schedules"), "{e}");
}

/// Writes each text to a file and loads them as layers (the ceiling tests
/// use it too).
pub(super) fn layers(texts: &[&str]) -> (tempfile::TempDir, Result<Layered, PolicyError>) {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<std::path::PathBuf> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = dir.path().join(format!("layer{i}.toml"));
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect();
    let result = load_layers(&paths);
    (dir, result)
}

const STATE: &str = r#"
[settings]
mode = "monitor"
timezone = "America/New_York"

[schedule.business]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "17:00"

[sets]
webmail = ["203.0.113.0/24"]

[[class]]
name = "bulk"
match = { proto = "tcp", ports = [21] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]

[[rule]]
class = "bulk"
business = "limit 20Mbit"
off_hours = "allow"
"#;

#[test]
fn layers_take_the_more_restrictive_setting_and_say_where_from() {
    let agency = r#"
[settings]
mode = "enforce"
malformed = "drop"

[sets]
webmail = ["198.51.100.0/24"]

[[class]]
name = "webmail"
match = { sets = ["webmail"] }

[[user]]
name = "alice"
ips = ["2001:db8::2"]

[[rule]]
class = "bulk"
business = "limit 10Mbit burst 64KiB"
off_hours = "limit 50Mbit"

[[rule]]
class = "webmail"
user = "alice"
action = "deny"
"#;
    let (_dir, l) = layers(&[STATE, agency]);
    let l = l.unwrap();
    let p = &l.policy;
    assert_eq!(p.settings.mode, Mode::Enforce, "enforce beats monitor");
    assert!(p.settings.malformed_drop);
    assert_eq!(
        p.settings.timezone_name, "America/New_York",
        "kept from the state file"
    );
    assert_eq!(p.sets[0].nets.len(), 2, "sets are the union");
    assert_eq!(
        p.classes
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["bulk", "webmail"]
    );
    assert_eq!(p.users.len(), 1);
    assert_eq!(p.users[0].nets.len(), 2, "identifiers are the union");
    let bulk = p.rules.iter().find(|r| r.class == "bulk").unwrap();
    let business = p.profiles.iter().position(|x| x == "business").unwrap();
    assert_eq!(
        bulk.actions[business].to_string(),
        "limit 10Mbit burst 64KiB",
        "smaller rate and burst"
    );
    assert_eq!(
        bulk.actions[0].to_string(),
        "limit 50Mbit",
        "limit beats allow off-hours"
    );
    let from = |what: &str| {
        let (value, path) = &l.provenance[what];
        (
            value.clone(),
            path.file_name().unwrap().to_string_lossy().into_owned(),
        )
    };
    assert_eq!(
        from("settings.mode"),
        ("enforce".into(), "layer1.toml".into())
    );
    assert_eq!(
        from("settings.timezone"),
        ("America/New_York".into(), "layer0.toml".into())
    );
    assert_eq!(from("rule bulk for everyone, business").1, "layer1.toml");
    assert_eq!(
        from("user alice is identified by 10.0.0.2/32").1,
        "layer0.toml"
    );
    assert_eq!(
        from("user alice is identified by 2001:db8::2/128").1,
        "layer1.toml"
    );
    assert_eq!(from("rule webmail for user alice, off_hours").0, "deny");
}

#[test]
fn deny_beats_limit_beats_monitor_beats_allow() {
    let a = |s: &str| units::parse_action(s).unwrap();
    let pick = |x: &str, y: &str| stricter(&a(x), &a(y)).unwrap().0.to_string();
    assert_eq!(pick("deny", "limit 1Mbit"), "deny");
    assert_eq!(pick("limit 1Mbit", "deny"), "deny");
    assert_eq!(pick("allow", "monitor"), "monitor");
    assert_eq!(pick("monitor", "limit 5Mbit"), "limit 5Mbit");
    assert_eq!(
        pick("limit 5Mbit burst 1MiB", "limit 8Mbit burst 64KiB"),
        "limit 5Mbit burst 64KiB"
    );
    assert_eq!(
        pick("limit 5Mbit no-ecn", "limit 8Mbit"),
        "limit 5Mbit no-ecn",
        "the same limit as the kernel enforces it: the stricter, as written"
    );
    assert!(
        stricter(&a("limit 5Mbit"), &a("limit 10pps")).is_err(),
        "bits and packets"
    );
}

#[test]
fn a_later_layer_adds_a_schedule_and_earlier_rules_keep_their_default() {
    let overlay = "[schedule.evening]\ndays = [\"mon\"]\nstart = \"18:00\"\nend = \"22:00\"\n[[rule]]\nclass = \"bulk\"\nevening = \"deny\"\n";
    let (_dir, l) = layers(&[STATE, overlay]);
    let p = l.unwrap().policy;
    assert_eq!(p.profiles, ["off_hours", "business", "evening"]);
    let bulk = &p.rules[0];
    assert_eq!(bulk.actions.len(), 3);
    assert_eq!(bulk.actions[2], ActionSpec::Deny);
    let c = CompiledPolicy::compile(&p);
    assert_eq!(c.profiles, p.profiles);
}

#[test]
fn layers_that_cannot_be_combined_are_errors_naming_both_files() {
    let (_dir, l) = layers(&[STATE, "[settings]\ntimezone = \"Europe/Paris\"\n"]);
    let e = l.unwrap_err().to_string();
    assert!(
        e.contains("layer1.toml: conflicts with") && e.contains("layer0.toml"),
        "{e}"
    );
    assert!(
        e.contains("settings.timezone is `Europe/Paris` here but `America/New_York`"),
        "{e}"
    );
    let (_dir, l) = layers(&[
        STATE,
        "[[user]]\nname = \"mallory\"\nips = [\"10.0.0.2\"]\n",
    ]);
    let e = l.unwrap_err().to_string();
    assert!(
        e.contains("layer1.toml:3:8: user[0].ips[0]: user `mallory`: `10.0.0.2/32` is already user `alice`'s (")
            && e.contains("layer0.toml:20:8)"),
        "{e}"
    );
    let (_dir, l) = layers(&[
        STATE,
        "[[class]]\nname = \"bulk\"\nmatch = { proto = \"udp\" }\n",
    ]);
    assert!(l.unwrap_err().to_string().contains("class `bulk` differs"));
    let (_dir, l) = layers(&[STATE, "[[rule]]\nclass = \"nope\"\naction = \"deny\"\n"]);
    let e = l.unwrap_err().to_string();
    assert!(
        e.contains("layer1.toml:2:9: rule[0].class: no class named `nope`"),
        "{e}"
    );
    let (_dir, l) = layers(&[
        STATE,
        "[[rule]]\nclass = \"bulk\"\nbusiness = \"limit 10pps\"\n",
    ]);
    assert!(l.unwrap_err().to_string().contains("different units"));
}

#[test]
fn a_blanket_action_cannot_lift_a_stricter_class_rule() {
    let src = "[sets]\nwebmail = [\"203.0.113.0/24\"]\n[[class]]\nname = \"webmail\"\nmatch = { sets = [\"webmail\"] }\n[[class]]\nname = \"dns\"\nmatch = { proto = \"udp\", ports = [53] }\n[[rule]]\nclass = \"webmail\"\naction = \"deny\"\n[[rule]]\nclass = \"dns\"\naction = \"limit 100Mbit\"\n[unidentified]\naction = \"limit 1Mbit\"\n";
    let c = CompiledPolicy::compile(&parse_str(src).unwrap());
    let kind_of = |class: u32| {
        c.actions
            .iter()
            .find(|(k, _)| {
                *k == ActionKey {
                    subject: USER_UNIDENTIFIED,
                    class,
                }
            })
            .map(|(_, e)| e.profiles[0])
            .unwrap()
    };
    assert_eq!(
        kind_of(1).kind,
        kind::DENY,
        "webmail stays denied for unidentified senders"
    );
    let dns = kind_of(2);
    assert_eq!(dns.kind, kind::LIMIT);
    assert_eq!(
        dns.cost_fp,
        8000 << 16,
        "the blanket 1 Mbit/s (8000 ns per byte) is the stricter"
    );
    assert_eq!(
        kind_of(0).kind,
        kind::LIMIT,
        "no rule for default: the blanket alone"
    );
}

#[test]
fn metrics_per_user_is_validated() {
    assert_eq!(
        parse_str("[metrics]\nper_user = \"top:100\"\n")
            .unwrap()
            .per_user,
        Some(PerUser::Top(100))
    );
    assert_eq!(
        parse_str("[metrics]\nper_user = \"none\"\n")
            .unwrap()
            .per_user,
        Some(PerUser::None)
    );
    assert_eq!(parse_str("").unwrap().per_user, None);
    let e = err("[metrics]\nper_user = \"top:0\"\n");
    assert!(
        e.contains("metrics.per_user: `top:0` is not a choice"),
        "{e}"
    );
    let e = err("[metrics]\nper_users = \"all\"\n");
    assert!(e.contains("unknown field `per_users`"), "{e}");
}

const DNS: &str = "[[class]]\nname = \"dns\"\nmatch = { proto = \"udp\", ports = [53] }\n";

#[test]
fn scan_detection_compiles_to_bits_and_allowed_classes() {
    let p = parse_str(&format!(
        "{DNS}[detect.scan]\nhosts = 25\nports = 100\nquarantine = \"5m\"\nallow = [\"dns\", \"default\"]\n"
    ))
    .unwrap();
    let scan = p.scan.clone().unwrap();
    assert_eq!((scan.hosts, scan.ports), (Some(25), Some(100)));
    assert_eq!(scan.window, ScanPolicy::DEFAULT_WINDOW, "60 s by default");
    assert_eq!(scan.quarantine, std::time::Duration::from_secs(300));
    assert!(!scan.monitor, "quarantine by default");
    let c = CompiledPolicy::compile(&p);
    assert_ne!(c.config.present & policy_common::present::SCAN, 0);
    assert_eq!(c.config.scan_host_bits, policy_common::bits_for(25));
    assert_eq!(c.config.scan_port_bits, policy_common::bits_for(100));
    assert_eq!(c.config.quarantine_ns, 300_000_000_000);
    assert_eq!(c.config.quarantine_classes, 0b11, "default (0) and dns (1)");
    let none = CompiledPolicy::compile(&parse_str(DNS).unwrap());
    assert_eq!(none.config.present & policy_common::present::SCAN, 0);
}

#[test]
fn scan_detection_mistakes_point_at_the_value() {
    let e = err("[detect.scan]\nwindow = \"60s\"\n");
    assert!(
        e.contains("detect.scan") && e.contains("give `hosts`, `ports` or both"),
        "{e}"
    );
    let e = err("[detect.scan]\nhosts = 1\n");
    assert!(
        e.contains("p.toml:2:9") && e.contains("detect.scan.hosts"),
        "{e}"
    );
    assert!(e.contains("expected 2 to 1000"), "{e}");
    let e = err("[detect.scan]\nports = 5000\n");
    assert!(e.contains("detect.scan.ports"), "{e}");
    let e = err("[detect.scan]\nports = 50\nwindow = \"soon\"\n");
    assert!(
        e.contains("detect.scan.window") && e.contains("`soon` is not a duration"),
        "{e}"
    );
    let e = err("[detect.scan]\nports = 50\nquarantine = \"1d\"\n");
    assert!(
        e.contains("detect.scan.quarantine"),
        "days are not fixed-length: {e}"
    );
    let e = err("[detect.scan]\nports = 50\naction = \"kill\"\n");
    assert!(
        e.contains("unknown value `kill`, expected `quarantine` or `monitor`"),
        "{e}"
    );
    let e = err("[detect.scan]\nports = 50\nallow = [\"dsn\"]\n");
    assert!(e.contains("detect.scan.allow: no class named `dsn`"), "{e}");
    let e = err("[detect.scan]\nports = 50\nthreshold = 3\n");
    assert!(e.contains("unknown field `threshold`"), "{e}");
}

#[test]
fn layered_scan_detection_only_tightens() {
    let (_dir, l) = layers(&[
        &format!(
            "{DNS}[detect.scan]\nhosts = 50\nwindow = \"60s\"\naction = \"monitor\"\nquarantine = \"5m\"\nallow = [\"dns\", \"default\"]\n"
        ),
        "[detect.scan]\nhosts = 100\nports = 80\nwindow = \"30s\"\nquarantine = \"1h\"\nallow = [\"dns\"]\n",
    ]);
    let l = l.unwrap();
    let s = l.policy.scan.clone().unwrap();
    assert_eq!(s.hosts, Some(50), "the lower threshold");
    assert_eq!(s.ports, Some(80), "a threshold either file sets");
    assert_eq!(
        s.window,
        std::time::Duration::from_secs(60),
        "the longer window"
    );
    assert!(!s.monitor, "quarantining beats reporting");
    assert_eq!(s.quarantine, std::time::Duration::from_secs(3600));
    assert_eq!(s.allow, ["dns"], "only what both allow");
    let (value, from) = &l.provenance["detect.scan"];
    assert!(value.contains("hosts 50 ports 80"), "{value}");
    assert!(from.ends_with("layer1.toml"), "{from:?}");
}
