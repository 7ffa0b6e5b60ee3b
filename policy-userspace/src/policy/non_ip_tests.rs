//! The policy language's non-IP conditions (`ethertype`, `l2` on non-IP
//! frames) and the model's decision on such frames.

use std::path::Path;

use policy_common::{CLASS_DEFAULT, USER_UNIDENTIFIED, dir, ethertype, field, present};

use super::{CompiledPolicy, parse};
use crate::model::{Decision, Hook, Model, Verdict};

fn compiled(src: &str) -> CompiledPolicy {
    CompiledPolicy::compile(&parse(Path::new("p.toml"), src).expect("valid policy"))
}

fn err(src: &str) -> String {
    parse(Path::new("p.toml"), src)
        .expect_err("policy should be rejected")
        .to_string()
}

fn class(m: &str) -> String {
    format!("[[class]]\nname = \"x\"\nmatch = {m}\n")
}

#[test]
fn ethertype_takes_names_and_numbers() {
    for (m, want) in [
        ("{ ethertype = \"arp\" }", ethertype::ARP),
        ("{ ethertype = \"lldp\" }", ethertype::LLDP),
        ("{ ethertype = 0x88b5 }", 0x88b5),
    ] {
        let c = compiled(&class(m));
        let r = c.class_rules[0];
        assert_eq!(r.fields, field::ETHERTYPE, "{m}");
        assert_eq!(r.ethertype, want, "{m}");
        assert_ne!(c.config.present & present::NON_IP_RULES, 0, "{m}");
    }
}

#[test]
fn ethertype_errors_name_the_line_and_field() {
    let e = err(&class("{ ethertype = \"ipx\" }"));
    assert!(e.starts_with("p.toml:3:"), "{e}");
    assert!(
        e.contains("class[0].match.ethertype: unknown EtherType `ipx`"),
        "{e}"
    );
    let e = err(&class("{ ethertype = 1500 }"));
    assert!(e.contains("`1500` is not an EtherType"), "{e}");
    let e = err(&class("{ ethertype = 0x86dd }"));
    assert!(e.contains("is IP or a VLAN tag"), "{e}");
    let e = err(&class("{ ethertype = 0x8100 }"));
    assert!(e.contains("is IP or a VLAN tag"), "{e}");
    let e = err(&class("{ ethertype = \"arp\", proto = \"udp\" }"));
    assert!(
        e.contains("class[0].match.ethertype: ethertype matches non-IP frames"),
        "{e}"
    );
    let e = err(&class("{ ethertype = \"arp\", dscp = 0 }"));
    assert!(e.contains("cannot be combined"), "{e}");
}

#[test]
fn only_rules_with_l2_conditions_and_no_ip_ones_reach_non_ip_frames() {
    for (m, non_ip) in [
        ("{ l2 = \"broadcast\" }", true),
        ("{ l2 = \"broadcast\", ethertype = \"arp\" }", true),
        ("{ l2 = \"broadcast\", proto = \"udp\" }", false),
        ("{ proto = \"udp\" }", false),
        ("{ dscp = 0 }", false),
    ] {
        let c = compiled(&class(m));
        assert_eq!(c.config.present & present::NON_IP_RULES != 0, non_ip, "{m}");
    }
}

const POLICY: &str = r#"
[[class]]
name = "arp"
match = { ethertype = "arp", l2 = "broadcast" }

[[class]]
name = "flood"
match = { l2 = "broadcast-or-multicast" }

[[class]]
name = "udp"
match = { proto = "udp" }

[[user]]
name = "alice"
macs = ["02:00:00:00:00:0a"]
action = "deny"

[[rule]]
class = "arp"
action = "limit 10pps"
"#;

/// An Ethernet frame of `ethertype` with a 28-byte body.
fn frame(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::from(dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(&[0; 28]);
    f
}

#[test]
fn the_model_enforces_non_ip_frames_a_class_names_and_passes_the_rest() {
    let c = compiled(POLICY);
    let mut m = Model::new(&c, 0);
    let (alice, stranger) = ([2, 0, 0, 0, 0, 0x0a], [2, 0, 0, 0, 0, 0xee]);
    let (bcast, unicast, lldp_mc) = ([0xff; 6], [2, 0, 0, 0, 0, 1], [1, 0x80, 0xc2, 0, 0, 0x0e]);
    let alice_id = c.user("alice").unwrap().id;
    let class = |name: &str| c.classes.iter().position(|n| n == name).unwrap() as u32;
    let d = |m: &mut Model<'_>, f: &[u8], h: Hook| m.decide(f, h);
    // An ARP broadcast from alice: class arp, whose limit outranks her
    // blanket deny (her own action covers every class; the rule for arp is
    // everyone's, so hers wins): deny.
    assert_eq!(
        d(
            &mut m,
            &frame(bcast, alice, ethertype::ARP),
            Hook::XDP_USERS
        ),
        Decision {
            user: alice_id,
            class: class("arp"),
            dir: dir::UPLOAD,
            verdict: Verdict::Deny,
        }
    );
    // From a stranger: unidentified, limited (conforming in the model).
    let s = d(
        &mut m,
        &frame(bcast, stranger, ethertype::ARP),
        Hook::XDP_USERS,
    );
    assert_eq!(
        (s.user, s.class, s.verdict),
        (USER_UNIDENTIFIED, class("arp"), Verdict::LimitConform)
    );
    // Multicast LLDP: the l2 class, no action: pass.
    let l = d(
        &mut m,
        &frame(lldp_mc, stranger, ethertype::LLDP),
        Hook::XDP_USERS,
    );
    assert_eq!((l.class, l.verdict), (class("flood"), Verdict::Pass));
    // A unicast ARP reply from alice matches no class: unenforced, though
    // her default is deny, so she keeps her neighbours.
    let r = d(
        &mut m,
        &frame(unicast, alice, ethertype::ARP),
        Hook::XDP_USERS,
    );
    assert_eq!(
        (r.user, r.class, r.verdict),
        (alice_id, CLASS_DEFAULT, Verdict::NonIp)
    );
}

#[test]
fn without_non_ip_rules_every_non_ip_frame_passes_unenforced() {
    let c = compiled(
        "[[class]]\nname = \"udp\"\nmatch = { proto = \"udp\" }\n[unidentified]\naction = \"deny\"\n",
    );
    assert_eq!(c.config.present & present::NON_IP_RULES, 0);
    let mut m = Model::new(&c, 0);
    let v = m.decide(
        &frame([0xff; 6], [2, 0, 0, 0, 0, 9], ethertype::ARP),
        Hook::XDP_USERS,
    );
    assert_eq!(v.verdict, Verdict::NonIp);
}
