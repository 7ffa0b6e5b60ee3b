//! Properties of the reference model on packets built by etherparse
//! (`policyd_tests::packet_gen`): what each packet must get is derived from
//! what the generator built, independently of the model's parser. The
//! kernel programs face the same properties in the privileged tier
//! (`tests/tests/integration/kernel/props.rs`).

use std::path::Path;

use policy_common::{dir, side};
use policyd::{
    model::{Decision, Hook, Model, Verdict},
    policy::{self, CompiledPolicy},
};
use policyd_tests::packet_gen::{Expect, Expected, Frag, L4, POLICY, Spec, Who, spec, truncated};
use proptest::prelude::*;

fn compiled() -> CompiledPolicy {
    CompiledPolicy::compile(&policy::parse(Path::new("props.toml"), POLICY).expect("valid policy"))
}

fn hook(s: &Spec) -> Hook {
    Hook {
        side: side::USERS,
        egress: s.egress,
    }
}

/// The model's decision for `s`, as names.
fn decide(p: &CompiledPolicy, s: &Spec) -> (Decision, Expected) {
    let d = Model::new(p, 0).decide(&s.frame(), hook(s));
    let verdict = match d.verdict {
        Verdict::Pass => Expect::Pass,
        Verdict::Deny => Expect::Deny,
        Verdict::LimitConform => Expect::Limit,
        Verdict::Monitor => Expect::Monitor,
        v => panic!("{v:?} for a well-formed IP packet: {s:?}"),
    };
    let got = Expected {
        user: static_name(&p.users[d.user as usize].name),
        class: static_name(&p.classes[d.class as usize]),
        upload: d.dir == dir::UPLOAD,
        verdict,
    };
    (d, got)
}

/// The policy's names as the generator spells them (`Expected` holds
/// `&'static str`).
fn static_name(name: &str) -> &'static str {
    [
        "alice",
        "bob",
        "dave",
        "unidentified",
        "webmail",
        "mail",
        "dns",
        "ping",
        "ping6",
        "voice",
        "default",
    ]
    .into_iter()
    .find(|n| *n == name)
    .unwrap_or_else(|| panic!("a name the generator does not know: {name}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_packet_gets_what_it_was_built_for(s in spec()) {
        let p = compiled();
        let (_, got) = decide(&p, &s);
        prop_assert_eq!(got, s.expected(), "{:?}", s);
    }

    #[test]
    fn a_denied_users_packet_is_dropped_whatever_its_ports(
        s in spec().prop_map(|s| Spec { who: Who::Dave, ..s })
    ) {
        let p = compiled();
        let (d, _) = decide(&p, &s);
        prop_assert_eq!(d.verdict, Verdict::Deny, "{:?}", s);
    }

    #[test]
    fn tcp_to_port_25_from_alice_is_mail(
        s in (spec(), any::<u16>()).prop_map(|(s, sport)| Spec {
            who: Who::Alice,
            egress: false,
            webmail: false,
            l4: L4::Tcp { sport, dport: 25 },
            frag: None,
            exts: Vec::new(),
            ..s
        })
    ) {
        let p = compiled();
        let (_, got) = decide(&p, &s);
        prop_assert_eq!((got.user, got.class), ("alice", "mail"), "{:?}", s);
    }

    #[test]
    fn the_direction_is_upload_on_a_users_side_ingress_hook(s in spec()) {
        let p = compiled();
        let (d, _) = decide(&p, &s);
        prop_assert_eq!(d.dir == dir::UPLOAD, !s.egress, "{:?}", s);
    }

    #[test]
    fn a_later_fragment_never_matches_a_port_rule(
        (s, offset) in (spec(), 1u16..8192)
    ) {
        let s = Spec {
            frag: Some(Frag { offset, more: false }),
            ..s
        };
        let p = compiled();
        let (_, got) = decide(&p, &s);
        prop_assert!(!["mail", "dns", "ping", "ping6"].contains(&got.class), "{:?}: {:?}", s, got);
    }

    #[test]
    fn a_frame_cut_inside_its_ip_header_is_malformed((s, len) in truncated()) {
        let p = compiled();
        let frame = s.frame();
        let d = Model::new(&p, 0).decide(&frame[..len], hook(&s));
        prop_assert!(matches!(d.verdict, Verdict::Malformed { .. }), "{:?} cut at {}: {:?}", s, len, d);
    }
}
