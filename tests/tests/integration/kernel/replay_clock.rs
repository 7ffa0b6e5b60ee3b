//! A replay's programs (policy-common's replay.rs) read the time and the
//! early drops' randomness the replay gives them: verdicts follow the
//! capture's timestamps, not the speed of the test runs, and repeat
//! exactly; a daemon's programs keep the kernel's clocks.

use aya::programs::ProgramInfo;

use super::*;

const ONE_SECOND: u64 = 1_000_000_000;
/// Any origin but 0 (the tables' "never").
const T0: u64 = 1 << 40;

#[test]
fn a_limit_refills_at_the_replayed_time_and_not_before() {
    let _timing = crate::rates::shared();
    let (k, mut clock) = Kernel::replay(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 10pps burst 5\"\n",
        1,
    );
    let frame = udp4_frame(ALICE4, 10);
    clock.set(T0).unwrap();
    // However long the runs take, the time stands still: the burst of 5
    // and nothing more.
    for i in 0..20 {
        let v = if i < 5 { V::Pass } else { V::Limit };
        k.expect(&frame, "alice", "default", UP, v);
    }
    // One packet's worth (100 ms) later, exactly one more.
    clock.set(T0 + ONE_SECOND / 10).unwrap();
    k.expect(&frame, "alice", "default", UP, V::Pass);
    k.expect(&frame, "alice", "default", UP, V::Limit);
    // Idle for a second: the whole burst again.
    clock.set(T0 + 2 * ONE_SECOND).unwrap();
    for i in 0..7 {
        let v = if i < 5 { V::Pass } else { V::Limit };
        k.expect(&frame, "alice", "default", UP, v);
    }
}

/// The verdicts of 1000 TCP packets without ECN at twice a limit's rate:
/// early drops, then the limit's.
fn early_drops(seed: u64) -> Vec<u32> {
    let (k, mut clock) = Kernel::replay(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 8Mbit burst 3000\"\n",
        seed,
    );
    let frame = tcp4(ALICE4, REMOTE4, 40000, 443);
    // 8 Mbit/s is a byte per µs: a frame every len/2 µs is twice the rate.
    let step = frame.len() as u64 * 1000 / 2;
    (0..1000u64)
        .map(|i| {
            clock.set(T0 + i * step).unwrap();
            k.run(&frame)
        })
        .collect()
}

#[test]
fn early_drops_fall_on_the_same_packets_for_the_same_seed() {
    let _timing = crate::rates::shared();
    let a = early_drops(7);
    assert_eq!(a, early_drops(7));
    let dropped = a.iter().filter(|&&v| v == XDP_DROP).count();
    // Twice the rate (less the burst): about half are dropped.
    assert!((400..=550).contains(&dropped), "{dropped} of 1000 dropped");
    assert_ne!(a, early_drops(8), "another seed, other packets");
}

fn verified(k: &Kernel) -> u32 {
    let info: ProgramInfo = k.dp.xdp().unwrap().info().unwrap();
    info.verified_instruction_count()
        .expect("kernel 5.16+ reports verified instructions")
}

#[test]
fn a_daemons_programs_have_no_replay_clock_to_read() {
    let _timing = crate::rates::shared();
    const POLICY: &str =
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 10pps burst 5\"\n";
    let daemon = Kernel::new(POLICY);
    let (replay, _clock) = Kernel::replay(POLICY, 1);
    // The flag is a frozen constant to the verifier: it walks the replay's
    // reads only where the flag is set.
    assert!(
        verified(&daemon) < verified(&replay),
        "{} verified instructions for the daemon's XDP program, {} for the replay's",
        verified(&daemon),
        verified(&replay)
    );
}
