//! The kernel programs on crafted packets, through `BPF_PROG_TEST_RUN`: exact
//! verdicts and exact counter changes, one module per stage; and the
//! differential tests against the reference model; and properties on
//! packets built by etherparse (`props`). Needs root (CAP_BPF).

mod classify;
mod conn;
mod differential;
mod events;
mod identity;
mod limits;
mod names;
mod non_ip;
mod parse;
mod props;
mod quota;
mod replay_clock;
mod scan;
mod unidentified;

use crate::common::*;
use policy_common::{Counters, Event, event_kind, global_counter};
use policyd_tests::packet::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Pass,
    Deny,
    Limit,
    Monitor,
}

impl Kernel {
    /// Runs `frame` through XDP and checks the verdict and that exactly the
    /// (user, class, dir) counter for that verdict moved, by one packet of
    /// the frame's length.
    fn expect(&self, frame: &[u8], user: &str, class: &str, direction: u8, v: V) {
        let want = if matches!(v, V::Pass | V::Monitor) {
            XDP_PASS
        } else {
            XDP_DROP
        };
        self.expect_with(
            || self.run(frame),
            want,
            frame.len(),
            (user, class, direction),
            v,
        );
    }

    fn expect_with(
        &self,
        run: impl FnOnce() -> u32,
        want: u32,
        len: usize,
        (user, class, direction): (&str, &str, u8),
        v: V,
    ) {
        let before = self.counters(user, class, direction);
        assert_eq!(run(), want, "verdict for {user}/{class}: {v:?}");
        let after = self.counters(user, class, direction);
        let mut expected = before;
        let len = len as u64;
        let (p, b) = match v {
            V::Pass => (&mut expected.pass_packets, &mut expected.pass_bytes),
            V::Deny => (&mut expected.deny_packets, &mut expected.deny_bytes),
            V::Limit => (&mut expected.limit_packets, &mut expected.limit_bytes),
            V::Monitor => (&mut expected.monitor_packets, &mut expected.monitor_bytes),
        };
        *p += 1;
        *b += len;
        assert_eq!(after, expected, "counters of {user}/{class} ({v:?})");
    }
}

/// Every event the kernel has queued, in order.
fn events(k: &mut Kernel) -> Vec<Event> {
    let mut ring = k.dp.take_events().unwrap();
    let mut got = Vec::new();
    while let Some(item) = ring.next() {
        // SAFETY: the kernel writes whole Events.
        got.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
    }
    got
}

const IDENTITY: &str = r#"
[[user]]
name = "alice"
ips = ["10.0.0.2", "2001:db8:a::2"]

[[user]]
name = "bob"
ips = ["10.1.0.0/16"]

[[user]]
name = "dave"
ips = ["10.1.2.0/24"]
action = "deny"

[[user]]
name = "carol"
ips = ["2001:db8:c::/48"]
action = "deny"
"#;

const ALICE4: [u8; 4] = [10, 0, 0, 2];
const BOB4: [u8; 4] = [10, 1, 9, 9];
const DAVE4: [u8; 4] = [10, 1, 2, 77];
const STRANGER4: [u8; 4] = [10, 0, 0, 3];
const REMOTE4: [u8; 4] = [192, 0, 2, 1];

fn v6(third: u8, last: u8) -> [u8; 16] {
    [
        0x20, 0x01, 0x0d, 0xb8, 0, third, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
    ]
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, len: usize) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(src, dst, 17, &udp(sport, dport, &vec![0; len])),
    )
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(src, dst, 6, &tcp(sport, dport, 0x10, &[0; 10])),
    )
}

/// Cuts a denied user's frame at every length the test run accepts (it needs
/// at least an Ethernet header): shorter than the headers up to the ports,
/// it is malformed and passes; from there on the user is known and dropped.
fn truncations(k: &Kernel, frame: &[u8], ports_end: usize, user: &str) {
    for len in 14..=frame.len() {
        let cut = &frame[..len];
        let malformed = k.global(global_counter::MALFORMED);
        if len < ports_end {
            let counters = k.counters(user, "default", UP);
            assert_eq!(k.run(cut), XDP_PASS, "frame cut at {len} bytes");
            assert_eq!(
                k.global(global_counter::MALFORMED),
                malformed + 1,
                "cut at {len}"
            );
            assert_eq!(k.counters(user, "default", UP), counters, "cut at {len}");
        } else {
            k.expect(cut, user, "default", UP, V::Deny);
            assert_eq!(
                k.global(global_counter::MALFORMED),
                malformed,
                "cut at {len}"
            );
        }
    }
}

const CLASSES: &str = concat!(
    include_str!("../../../fixtures/classes/webmail.toml"),
    r#"
[[class]]
name = "mail"
match = { proto = "tcp", ports = [25, 587] }

[[class]]
name = "ssh-out"
match = { proto = "tcp", user_ports = [22] }

[[class]]
name = "dns"
match = { proto = "udp", ports = ["53-54"] }
"#,
    include_str!("../../../fixtures/classes/broadcast.toml"),
    include_str!("../../../fixtures/classes/ping.toml"),
    r#"
[[class]]
name = "ef"
match = { dscp = 46 }

[[user]]
name = "alice"
ips = ["10.0.0.2", "2001:db8:a::2"]

[[rule]]
class = "webmail"
action = "deny"
"#
);

const RULES: &str = concat!(
    include_str!("../../../fixtures/business-hours.toml"),
    r#"
[[class]]
name = "bulk"
match = { proto = "tcp", ports = [21] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]
group = "finance"

[[user]]
name = "bob"
ips = ["10.0.0.3"]
group = "finance"

[[user]]
name = "carol"
ips = ["10.0.0.4"]

[[rule]]
class = "bulk"
action = "monitor"

[[rule]]
class = "bulk"
group = "finance"
business = "deny"
off_hours = "allow"

[[rule]]
class = "bulk"
user = "bob"
action = "allow"
"#
);
