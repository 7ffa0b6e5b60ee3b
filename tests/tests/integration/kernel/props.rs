//! The properties of policy-userspace's `model_props`, against the kernel
//! programs: packets built by etherparse (`policyd_tests::packet_gen`), what
//! each must get derived from what was built, checked through the verdict
//! and the exact counter that moved. Needs root.

use crate::common::*;
use policy_common::{Counters, global_counter};
use policyd_tests::packet_gen::{Expect, POLICY, Spec, spec, truncated};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const CASES: u32 = 512;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        // The kernel fixture lives outside the runner; nothing to persist
        // a failure next to.
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs `frame` at the users-side hook `s` names: XDP for what arrives
/// (half the arrivals through TC ingress instead), TC egress for what
/// leaves. Returns the return code and the codes for pass and drop.
fn run(k: &Kernel, s: &Spec, frame: &[u8], tc_ingress: bool) -> (u32, u32, u32) {
    if s.egress || tc_ingress {
        let ret = k
            .try_run_tc(s.egress, frame)
            .unwrap_or_else(|| panic!("the TC test run refused {frame:02x?}"));
        (ret, TC_ACT_OK, TC_ACT_SHOT)
    } else {
        (k.run(frame), XDP_PASS, XDP_DROP)
    }
}

fn check(k: &Kernel, s: &Spec, tc_ingress: bool) -> Result<(), TestCaseError> {
    let want = s.expected();
    let frame = s.frame();
    let direction = if want.upload { UP } else { DOWN };
    let before = k.counters(want.user, want.class, direction);
    let (ret, pass, drop) = run(k, s, &frame, tc_ingress);
    let dropped = want.verdict == Expect::Deny;
    proptest::prop_assert_eq!(
        ret,
        if dropped { drop } else { pass },
        "verdict for {:?}: want {:?}",
        s,
        want
    );
    // The counted length is the frame's length.
    let len = frame.len() as u64;
    let mut expected: Counters = before;
    let (p, b) = match want.verdict {
        Expect::Pass | Expect::Limit => (&mut expected.pass_packets, &mut expected.pass_bytes),
        Expect::Deny => (&mut expected.deny_packets, &mut expected.deny_bytes),
        Expect::Monitor => (&mut expected.monitor_packets, &mut expected.monitor_bytes),
    };
    *p += 1;
    *b += len;
    proptest::prop_assert_eq!(
        k.counters(want.user, want.class, direction),
        expected,
        "counters for {:?}: want {:?}",
        s,
        want
    );
    Ok(())
}

#[test]
fn kernel_gives_every_packet_what_it_was_built_for() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(POLICY).with_tc();
    runner()
        .run(&(spec(), proptest::bool::ANY), |(s, tc_ingress)| {
            check(&k, &s, tc_ingress)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn kernel_finds_a_frame_cut_inside_its_ip_header_malformed() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(POLICY).with_tc();
    runner()
        .run(&truncated(), |(s, len)| {
            let frame = &s.frame()[..len];
            let malformed = k.global(global_counter::MALFORMED);
            // The skb test run refuses frames cut inside the IP header
            // (see `Kernel::try_run_tc`), so XDP is where they are seen.
            proptest::prop_assert_eq!(k.run(frame), XDP_PASS, "{:?} cut at {}", s, len);
            proptest::prop_assert_eq!(
                k.global(global_counter::MALFORMED),
                malformed + 1,
                "{:?} cut at {}",
                s,
                len
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
