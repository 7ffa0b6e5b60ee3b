//! Layers are ceilings, and one address has one owner in any spelling.

use policy_common::{ActionParams, USER_UNIDENTIFIED, kind};
use policyd_tests::xorshift::Rng;

use super::{tests::layers, *};
use crate::model::Model;

/// What the kernel's lookup (user, group, everyone) gives `user` in `class`
/// and `profile` of the compiled policy.
fn enforced(c: &CompiledPolicy, user: &str, class: &str, profile: &str) -> ActionParams {
    let id = if user == UNIDENTIFIED {
        USER_UNIDENTIFIED
    } else {
        c.user(user).unwrap().id
    };
    let class = c.classes.iter().position(|x| x == class).unwrap() as u32;
    Model::new(c, c.profile(profile).unwrap()).action(id, class)
}

fn limit(text: &str) -> ActionParams {
    params(&units::parse_action(text).unwrap())
}

/// The state's layer: bulk at 50 Mbit/s in business hours; ian in `it`, sam.
const STATE: &str = include_str!("../../../tests/fixtures/layered-state.toml");

/// The agency's looser 100 Mbit/s for group `it`.
const AGENCY: &str = include_str!("../../../tests/fixtures/layered-agency.toml");

#[test]
fn a_group_rule_of_a_later_layer_cannot_loosen_an_earlier_rule_for_everyone() {
    let (_dir, l) = layers(&[STATE, AGENCY]);
    let l = l.unwrap();
    let c = CompiledPolicy::compile(&l.policy);
    assert_eq!(
        enforced(&c, "ian", "bulk", "business"),
        limit("limit 50Mbit"),
        "the state's 50 Mbit/s holds for the agency's group"
    );
    assert_eq!(
        enforced(&c, "sam", "bulk", "business"),
        limit("limit 50Mbit")
    );
    assert_eq!(enforced(&c, "ian", "bulk", "off_hours").kind, kind::ALLOW);
    let (value, from) = &l.provenance["rule bulk for group it, business"];
    assert_eq!(value, "limit 50Mbit");
    assert!(from.ends_with("layer0.toml"), "{from:?}");
    let v = Ceilings::new(&l.layers, &l.policy.users)
        .verdicts(&Subject::User("ian".into()), "bulk", 1)
        .unwrap();
    assert!(v.overridden());
    assert_eq!(v.from, 0, "the state file wins");
    assert_eq!(v.effective.to_string(), "limit 50Mbit");
    assert_eq!(v.layers[0].1.source, Source::Rule(Subject::Everyone));
    assert_eq!(
        v.layers[1].1.source,
        Source::Rule(Subject::Group("it".into()))
    );
    assert_eq!(v.layers[1].1.action.to_string(), "limit 100Mbit");
}

#[test]
fn a_stricter_later_layer_still_tightens() {
    let (_dir, l) = layers(&[
        STATE,
        "[[rule]]\nclass = \"bulk\"\ngroup = \"it\"\nbusiness = \"limit 10Mbit\"\n",
    ]);
    let l = l.unwrap();
    let c = CompiledPolicy::compile(&l.policy);
    assert_eq!(
        enforced(&c, "ian", "bulk", "business"),
        limit("limit 10Mbit")
    );
    assert_eq!(
        enforced(&c, "sam", "bulk", "business"),
        limit("limit 50Mbit"),
        "the agency's group rule is only for its group"
    );
    let (_, from) = &l.provenance["rule bulk for group it, business"];
    assert!(from.ends_with("layer1.toml"), "{from:?}");
}

#[test]
fn within_one_file_a_user_rule_may_still_loosen_the_group_rule() {
    let (_dir, l) = layers(&[
        &format!("{STATE}[[rule]]\nclass = \"bulk\"\nuser = \"ian\"\nbusiness = \"allow\"\n"),
        "[[rule]]\nclass = \"bulk\"\ngroup = \"it\"\naction = \"monitor\"\n",
    ]);
    let c = CompiledPolicy::compile(&l.unwrap().policy);
    assert_eq!(
        enforced(&c, "ian", "bulk", "business").kind,
        kind::MONITOR,
        "the state lets ian through; the agency's group rule still caps him"
    );
    assert_eq!(
        enforced(&c, "sam", "bulk", "business"),
        limit("limit 50Mbit")
    );
}

#[test]
fn an_earlier_user_rule_cannot_lift_a_later_rule_for_everyone() {
    let (_dir, l) = layers(&[
        &format!("{STATE}[[rule]]\nclass = \"bulk\"\nuser = \"ian\"\naction = \"allow\"\n"),
        "[[rule]]\nclass = \"bulk\"\naction = \"deny\"\n",
    ]);
    let c = CompiledPolicy::compile(&l.unwrap().policy);
    for profile in ["business", "off_hours"] {
        assert_eq!(enforced(&c, "ian", "bulk", profile).kind, kind::DENY);
        assert_eq!(enforced(&c, "sam", "bulk", profile).kind, kind::DENY);
    }
}

#[test]
fn blankets_and_unidentified_are_ceilings_too() {
    let state = format!(
        "{STATE}[[user]]\nname = \"bea\"\nips = [\"10.0.0.4\"]\naction = \"limit 1Mbit\"\n[unidentified]\naction = \"deny\"\n"
    );
    let agency = "[[rule]]\nclass = \"bulk\"\nuser = \"bea\"\naction = \"allow\"\n[[rule]]\nclass = \"bulk\"\nuser = \"unidentified\"\naction = \"allow\"\n[[rule]]\nclass = \"default\"\naction = \"monitor\"\n";
    let (_dir, l) = layers(&[&state, agency]);
    let c = CompiledPolicy::compile(&l.unwrap().policy);
    assert_eq!(
        enforced(&c, "bea", "bulk", "off_hours"),
        limit("limit 1Mbit"),
        "the agency's allow cannot lift the state's blanket"
    );
    assert_eq!(
        enforced(&c, "unidentified", "bulk", "business").kind,
        kind::DENY
    );
    assert_eq!(
        enforced(&c, "bea", "default", "off_hours"),
        limit("limit 1Mbit"),
        "a limit is stricter than the agency's monitor"
    );
    assert_eq!(
        enforced(&c, "sam", "default", "off_hours").kind,
        kind::MONITOR
    );
}

#[test]
fn a_profile_added_by_a_later_layer_keeps_the_earlier_ceiling() {
    let state = STATE.replace(
        "business = \"limit 50Mbit\"",
        "action = \"limit 50Mbit\"\noff_hours = \"allow\"",
    );
    let agency = "[schedule.evening]\ndays = [\"mon\"]\nstart = \"18:00\"\nend = \"22:00\"\n[[rule]]\nclass = \"bulk\"\ngroup = \"it\"\nevening = \"allow\"\naction = \"limit 200Mbit\"\n";
    let (_dir, l) = layers(&[&state, agency]);
    let c = CompiledPolicy::compile(&l.unwrap().policy);
    assert_eq!(c.profiles, ["off_hours", "business", "evening"]);
    assert_eq!(
        enforced(&c, "ian", "bulk", "evening"),
        limit("limit 50Mbit"),
        "the state's rule takes its `action` in the new profile"
    );
    assert_eq!(
        enforced(&c, "ian", "bulk", "off_hours"),
        limit("limit 200Mbit")
    );
}

#[test]
fn the_file_credited_is_the_one_whose_limit_is_enforced() {
    let base = "[[class]]\nname = \"bulk\"\nmatch = { proto = \"tcp\" }\n";
    let (_dir, l) = layers(&[
        &format!("{base}[unidentified]\naction = \"limit 20Mbit\"\n"),
        "[unidentified]\naction = \"limit 10Mbit\"\n",
    ]);
    let l = l.unwrap();
    let (value, from) = &l.provenance["unidentified action"];
    assert_eq!(value, "limit 10Mbit");
    assert!(from.ends_with("layer1.toml"), "{from:?}");
    let (_dir, l) = layers(&[
        &format!("{base}[unidentified]\naction = \"limit 10Mbit\"\n"),
        "[unidentified]\naction = \"limit 20Mbit\"\n",
    ]);
    let (value, from) = &l.unwrap().provenance["unidentified action"];
    assert_eq!(value, "limit 10Mbit");
    assert!(from.ends_with("layer0.toml"), "{from:?}");
}

#[test]
fn connection_limits_only_tighten_across_layers() {
    let base = "[[class]]\nname = \"mail\"\nmatch = { proto = \"tcp\", ports = [25] }\n";
    let rule = |action: &str| format!("[[rule]]\nclass = \"mail\"\naction = \"{action}\"\n");
    let merged = |a: &str, b: &str| {
        let (_dir, l) = layers(&[&format!("{base}{}", rule(a)), &rule(b)]);
        let c = CompiledPolicy::compile(&l.unwrap().policy);
        enforced(&c, UNIDENTIFIED, "mail", "off_hours")
    };
    assert_eq!(
        merged("limit 50Mbit conn 20/min", "limit 50Mbit conn 10/min"),
        limit("limit 50Mbit conn 10/min conn-burst 10"),
        "the fewer connections, with the smaller burst"
    );
    assert_eq!(
        merged("limit 50Mbit conn 10/min", "limit 100Mbit conn 20/min"),
        limit("limit 50Mbit conn 10/min"),
        "a later layer cannot raise either rate"
    );
    assert_eq!(
        merged("limit 50Mbit", "limit 20conn/min"),
        limit("limit 50Mbit conn 20/min"),
        "a connection limit on top of a byte limit keeps both"
    );
    assert_eq!(
        merged("limit 20conn/min", "limit 50Mbit"),
        limit("limit 50Mbit conn 20/min")
    );
    assert_eq!(merged("limit 20conn/min", "deny").kind, kind::DENY);
    assert_eq!(
        merged("limit 20conn/min", "allow"),
        limit("limit 20conn/min"),
        "allow does not lift it"
    );
}

const ACTIONS: &[&str] = &[
    "allow",
    "monitor",
    "deny",
    "limit 10Mbit",
    "limit 50Mbit",
    "limit 20Mbit burst 64KiB",
    "limit 30Mbit no-ecn",
    "limit 20conn/min",
    "limit 50Mbit conn 10/min",
];
const USERS: &[(&str, &str, Option<&str>)] = &[
    ("a", "10.0.0.1", Some("g")),
    ("b", "10.0.0.2", Some("g")),
    ("c", "10.0.0.3", None),
    ("d", "10.0.0.4", Some("h")),
];
const CLASSES: &[&str] = &["default", "x", "y"];

/// A whole policy file (so it also compiles on its own) with random
/// blankets and rules; `evening`: it adds a profile.
fn random_layer(rng: &mut Rng, evening: bool) -> String {
    let mut s = String::from(
        "[schedule.business]\ndays = [\"mon\"]\nstart = \"08:00\"\nend = \"17:00\"\n\
         [[class]]\nname = \"x\"\nmatch = { proto = \"tcp\" }\n\
         [[class]]\nname = \"y\"\nmatch = { proto = \"udp\" }\n",
    );
    let mut profiles = vec!["off_hours", "business"];
    if evening {
        s.push_str("[schedule.evening]\ndays = [\"tue\"]\nstart = \"18:00\"\nend = \"22:00\"\n");
        profiles.push("evening");
    }
    for (name, ip, group) in USERS {
        s.push_str(&format!("[[user]]\nname = \"{name}\"\nips = [\"{ip}\"]\n"));
        if let Some(g) = group {
            s.push_str(&format!("group = \"{g}\"\n"));
        }
        if rng.one_in(4) {
            s.push_str(&format!("action = \"{}\"\n", rng.pick(ACTIONS)));
        }
    }
    if rng.one_in(3) {
        s.push_str(&format!(
            "[unidentified]\naction = \"{}\"\n",
            rng.pick(ACTIONS)
        ));
    }
    let subjects = [
        "user = \"a\"",
        "user = \"b\"",
        "user = \"c\"",
        "user = \"d\"",
        "user = \"unidentified\"",
        "group = \"g\"",
        "group = \"h\"",
        "",
    ];
    for class in CLASSES {
        for subject in subjects {
            if !rng.one_in(3) {
                continue;
            }
            s.push_str(&format!("[[rule]]\nclass = \"{class}\"\n{subject}\n"));
            let mut any = false;
            if rng.one_in(2) {
                s.push_str(&format!("action = \"{}\"\n", rng.pick(ACTIONS)));
                any = true;
            }
            for p in &profiles {
                if rng.one_in(2) || (!any && *p == "business") {
                    s.push_str(&format!("{p} = \"{}\"\n", rng.pick(ACTIONS)));
                }
            }
        }
    }
    s
}

/// For random layers: every user's compiled action, in every class and
/// profile, is the stricter of what each layer gives them on its own (and
/// what a layer gives on its own is what that file compiles to alone).
#[test]
fn compiled_layers_enforce_the_stricter_of_each_layers_own_action() {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for round in 0..300 {
        let count = 2 + (round % 2);
        let texts: Vec<String> = (0..count)
            .map(|i| random_layer(&mut rng, i > 0 && round % 3 == 0))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (_dir, l) = layers(&refs);
        let l = l.unwrap_or_else(|e| panic!("round {round}: {e}"));
        let merged = CompiledPolicy::compile(&l.policy);
        let mut who: Vec<&str> = USERS.iter().map(|u| u.0).collect();
        who.push(UNIDENTIFIED);
        for (k, text) in texts.iter().enumerate() {
            let alone = CompiledPolicy::compile(&parse(Path::new("alone"), text).unwrap());
            for user in &who {
                for class in CLASSES {
                    for (slot, profile) in alone.profiles.iter().enumerate() {
                        let e = in_layer_for_test(&l, k, user, class, slot);
                        assert_eq!(
                            params(&e),
                            enforced(&alone, user, class, profile),
                            "round {round}, layer {k} alone, {user} {class} {profile}:\n{text}"
                        );
                    }
                }
            }
        }
        let ceilings = Ceilings::new(&l.layers, &l.policy.users);
        for user in &who {
            for class in CLASSES {
                for (slot, profile) in merged.profiles.iter().enumerate() {
                    let v = ceilings
                        .verdicts(&Subject::User((*user).to_owned()), class, slot)
                        .unwrap();
                    assert_eq!(
                        enforced(&merged, user, class, profile),
                        params(&v.effective),
                        "round {round}, {user} {class} {profile}: {v:?}\n{}",
                        texts.join("\n--------\n")
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

fn in_layer_for_test(l: &Layered, k: usize, user: &str, class: &str, slot: usize) -> ActionSpec {
    Ceilings::new(&l.layers[k..=k], &l.policy.users)
        .verdicts(&Subject::User(user.to_owned()), class, slot)
        .unwrap()
        .effective
}

fn err(src: &str) -> String {
    parse(Path::new("p.toml"), src)
        .expect_err("policy should be rejected")
        .to_string()
}

#[test]
fn an_ipv4_address_and_its_mapped_form_are_one_address() {
    let e = err(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.1\"]\n[[user]]\nname = \"mallory\"\nips = [\"::ffff:10.0.0.1\"]\n",
    );
    assert_eq!(
        e,
        "p.toml:6:8: user[1].ips[0]: `10.0.0.1/32` (written `::ffff:10.0.0.1`) already belongs to \
         user `alice` (p.toml:3:8); an address identifies one user"
    );
    let e = err(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.0/24\"]\n[[user]]\nname = \"mallory\"\nips = [\"::ffff:10.0.0.0/120\"]\n",
    );
    assert!(
        e.contains("`10.0.0.0/24` (written `::ffff:10.0.0.0/120`) already belongs to user `alice`"),
        "{e}"
    );
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\", \"::FFFF:a00:1\"]\n");
    assert!(e.contains("is listed twice (first at p.toml:3:8)"), "{e}");
    let p = parse(
        Path::new("p.toml"),
        "[sets]\nweb = [\"::ffff:203.0.113.0/120\", \"::ffff:198.51.100.7\"]\n[[user]]\nname = \"a\"\nips = [\"::ffff:10.0.0.1\"]\nmacs = [\"02:00:00:00:00:01\"]\n",
    )
    .unwrap();
    assert_eq!(p.sets[0].nets[0].to_string(), "203.0.113.0/24");
    assert_eq!(p.sets[0].nets[1].to_string(), "198.51.100.7/32");
    assert_eq!(p.users[0].nets[0].to_string(), "10.0.0.1/32");
    let c = CompiledPolicy::compile(&p);
    assert_eq!(c.bindings.len(), 1, "bound like an IPv4 address");
    assert_eq!(c.exact[0].0, policy_common::v4_mapped([10, 0, 0, 1]));
    // Not mapped: stays IPv6 (and a prefix shorter than /96 stays one).
    let p = parse(
        Path::new("p.toml"),
        "[[user]]\nname = \"a\"\nips = [\"::10.0.0.1\", \"64:ff9b::/96\"]\n",
    )
    .unwrap();
    assert_eq!(p.users[0].nets[0].to_string(), "::a00:1/128");
    assert_eq!(p.users[0].nets[1].to_string(), "64:ff9b::/96");
}

#[test]
fn across_layers_an_address_in_any_spelling_or_an_overlapping_prefix_is_one_users() {
    let state = "[[user]]\nname = \"alice\"\nips = [\"10.0.0.1\", \"10.1.0.0/24\"]\n[[user]]\nname = \"lab\"\nips = [\"10.2.0.0/16\"]\n";
    for (agency, theirs) in [
        ("::ffff:10.0.0.1", "is already user `alice`'s (".to_owned()),
        (
            "::ffff:10.1.0.0/120",
            "is already user `alice`'s (".to_owned(),
        ),
        (
            "10.1.0.7",
            "overlaps user `alice`'s `10.1.0.0/24` (".to_owned(),
        ),
        (
            "::ffff:10.2.3.0/120",
            "overlaps user `lab`'s `10.2.0.0/16` (".to_owned(),
        ),
        (
            "10.0.0.0/8",
            "overlaps user `alice`'s `10.0.0.1/32` (".to_owned(),
        ),
        ("::/0", "overlaps user `alice`'s `10.0.0.1/32` (".to_owned()),
    ] {
        let (_dir, l) = layers(&[
            state,
            &format!("[[user]]\nname = \"mallory\"\nips = [\"{agency}\"]\n"),
        ]);
        let e = l.unwrap_err().to_string();
        assert!(
            e.contains("layer1.toml:3:8: user[0].ips[0]: user `mallory`: ")
                && e.contains(&theirs)
                && e.contains("layer0.toml:"),
            "{agency}: {e}"
        );
    }
    let (_dir, l) = layers(&[
        state,
        "[[user]]\nname = \"alice\"\nips = [\"::ffff:10.1.0.9\"]\n[[user]]\nname = \"bob\"\nips = [\"10.3.0.1\"]\n",
    ]);
    let p = l.unwrap().policy;
    assert_eq!(
        p.users[0].nets.len(),
        3,
        "alice may add to her own; bob is new"
    );
}

#[test]
fn a_mac_of_two_users_is_an_error_in_one_file_and_across_layers() {
    let e = err(
        "[[user]]\nname = \"a\"\nmacs = [\"02:00:00:00:00:0a\"]\n[[user]]\nname = \"b\"\nmacs = [\"02:00:00:00:00:0A\"]\n",
    );
    assert!(
        e.contains("user[1].macs[0]: `02:00:00:00:00:0A` already belongs to user `a` (p.toml:3:9)"),
        "{e}"
    );
    let (_dir, l) = layers(&[
        "[[user]]\nname = \"a\"\nmacs = [\"02:00:00:00:00:0a\"]\n",
        "[[user]]\nname = \"b\"\nmacs = [\"02:00:00:00:00:0A\"]\n",
    ]);
    let e = l.unwrap_err().to_string();
    assert!(
        e.contains("layer1.toml: conflicts with")
            && e.contains("layer0.toml")
            && e.contains("02:00:00:00:00:0a belongs to user `b` here but to user `a`"),
        "{e}"
    );
}

#[test]
fn aggregate_limits_combine_per_class_the_stricter_winning() {
    let state = format!(
        "{STATE}[[rule]]\nclass = \"bulk\"\naggregate = true\nbusiness = \"limit 200Mbit\"\n"
    );
    let (_dir, l) = layers(&[
        &state,
        "[[rule]]\nclass = \"bulk\"\naggregate = true\naction = \"limit 500Mbit\"\n",
    ]);
    let c = CompiledPolicy::compile(&l.unwrap().policy);
    assert_eq!(c.class_limits.len(), 1);
    let (class, entry) = c.class_limits[0];
    assert_eq!(class, 1);
    let business = c.profile("business").unwrap();
    assert_eq!(entry.profiles[business], limit("limit 200Mbit"));
    assert_eq!(
        entry.profiles[0],
        limit("limit 500Mbit"),
        "off-hours: the agency's"
    );
}
