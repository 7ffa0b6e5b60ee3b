//! Destinations by name (policy-common's learn.rs) through the programs:
//! a DNS answer run through TC egress lands in the names ring, the
//! daemon's tables learn from it, and packets to the learned address are
//! then the set's class, for the user who asked only, until the entry
//! expires (in the kernel, without the daemon); a ClientHello naming a
//! domain classifies its flow both ways.

use std::{net::Ipv4Addr, time::Duration};

use aya::maps::{MapData, RingBuf};
use policy_common::{SnoopHeader, dir, snoop_kind};
use policyd::dataplane::{LearnedMaps, coarse_now_ns};
use policyd_tests::{tls::client_hello, topology::dns};

use super::*;

const NAMES: &str = r#"
[names]
ttl_floor = "0s"

[sets]
webmail = { domains = ["mail.webmail.test"] }

[[class]]
name = "webmail"
match = { sets = ["webmail"] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]

[[user]]
name = "bob"
ips = ["10.0.0.3"]

[[rule]]
class = "webmail"
action = "deny"
"#;
const ALICE: [u8; 4] = [10, 0, 0, 2];
const BOB: [u8; 4] = [10, 0, 0, 3];
const RESOLVER: [u8; 4] = [10, 9, 9, 9];
const MAIL: [u8; 4] = [192, 0, 2, 10];
const HARD: [u8; 4] = [198, 51, 100, 7];
const PSH_ACK: u8 = 0x18;

/// A DNS answer for `mail.webmail.test` from the resolver to `to`.
fn answer(to: [u8; 4], ttl: u32) -> Vec<u8> {
    let msg = dns::response("mail.webmail.test", &[Ipv4Addr::from(MAIL)], ttl);
    eth(ETH_P_IP, &ipv4(RESOLVER, to, 17, &udp(53, 40000, &msg)))
}

fn tcp_to(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(src, dst, 6, &tcp(sport, dport, PSH_ACK, payload)),
    )
}

/// Hands every record in the ring to the daemon's tables; returns their
/// headers.
fn read_ring(
    ring: &mut RingBuf<MapData>,
    maps: &std::sync::Mutex<LearnedMaps>,
) -> Vec<SnoopHeader> {
    let mut headers = Vec::new();
    while let Some(item) = ring.next() {
        assert!(item.len() >= size_of::<SnoopHeader>());
        // SAFETY: the record holds a whole header (checked just above),
        // read unaligned.
        headers.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<SnoopHeader>()) });
        maps.lock().unwrap().handle_record(&item, coarse_now_ns());
    }
    headers
}

#[test]
fn an_answer_teaches_its_user_the_address_until_it_expires() {
    let mut k = Kernel::new(NAMES).with_tc();
    let (maps, mut ring) = k.dp.learn_names(&k.policy).unwrap();
    let to_mail = |src| tcp_to(src, MAIL, 40001, 8080, b"x");
    assert_eq!(k.run(&to_mail(ALICE)), XDP_PASS, "nothing learned yet");

    // The answer on its way to Alice: TC egress, her download.
    assert_eq!(k.run_tc(true, &answer(ALICE, 1)), TC_ACT_OK);
    let headers = read_ring(&mut ring, &maps);
    assert_eq!(headers.len(), 1, "one record for the one answer");
    let h = headers[0];
    assert_eq!(
        (h.kind, h.dir, h.user),
        (snoop_kind::DNS, dir::DOWNLOAD, k.user_id("alice"))
    );
    assert_eq!(h.len as usize, answer(ALICE, 1).len(), "the whole frame");

    assert_eq!(k.run(&to_mail(ALICE)), XDP_DROP, "alice asked: denied");
    assert_eq!(k.counters("alice", "webmail", UP).deny_packets, 1);
    assert_eq!(k.run(&to_mail(BOB)), XDP_PASS, "bob did not ask");
    // The reply to Alice is hers too (download, remote = source).
    assert_eq!(
        k.run_tc(true, &tcp_to(MAIL, ALICE, 8080, 40001, b"y")),
        TC_ACT_SHOT
    );

    // A TTL of 1 s (the floor is 0 here): once it is up the kernel stops
    // counting the entry, though the daemon has not removed it.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        k.run(&to_mail(ALICE)),
        XDP_PASS,
        "expired in the kernel itself"
    );
    maps.lock().unwrap().expire(coarse_now_ns());
    assert_eq!(maps.lock().unwrap().learner().table.len(), 0);
}

#[test]
fn a_client_hello_naming_a_domain_classifies_its_flow_both_ways() {
    let mut k = Kernel::new(NAMES).with_tc();
    let (maps, mut ring) = k.dp.learn_names(&k.policy).unwrap();
    let hello = client_hello(Some("mail.webmail.test"), false);
    // The hello itself passes: it is read after its verdict.
    assert_eq!(k.run(&tcp_to(ALICE, HARD, 40002, 443, &hello)), XDP_PASS);
    let headers = read_ring(&mut ring, &maps);
    assert_eq!(
        headers.iter().map(|h| h.kind).collect::<Vec<_>>(),
        [snoop_kind::TLS]
    );
    assert_eq!(
        k.run(&tcp_to(ALICE, HARD, 40002, 443, b"more")),
        XDP_DROP,
        "the rest of the flow is webmail"
    );
    assert_eq!(
        k.run_tc(true, &tcp_to(HARD, ALICE, 443, 40002, b"reply")),
        TC_ACT_SHOT,
        "so is the server's side"
    );
    assert_eq!(
        k.run(&tcp_to(ALICE, HARD, 40003, 443, b"other")),
        XDP_PASS,
        "another connection to the same address is not"
    );
    // A hello naming nothing in a set: recorded (its later handshake
    // records are not copied again), classified as before.
    let other = client_hello(Some("news.other.test"), false);
    assert_eq!(k.run(&tcp_to(ALICE, HARD, 40004, 443, &other)), XDP_PASS);
    assert_eq!(read_ring(&mut ring, &maps).len(), 1);
    assert_eq!(k.run(&tcp_to(ALICE, HARD, 40004, 443, &other)), XDP_PASS);
    assert_eq!(read_ring(&mut ring, &maps).len(), 0, "read once per flow");
}

#[test]
fn without_domain_sets_nothing_is_copied() {
    let mut k = Kernel::new(
        "[sets]\nwebmail = [\"192.0.2.0/24\"]\n[[class]]\nname = \"webmail\"\nmatch = { sets = [\"webmail\"] }\n",
    ).with_tc();
    let (maps, mut ring) = k.dp.learn_names(&k.policy).unwrap();
    assert_eq!(k.run_tc(true, &answer(ALICE, 60)), TC_ACT_OK);
    assert_eq!(read_ring(&mut ring, &maps).len(), 0);
}

/// Removes the test's own pin directory, also on panic.
struct OwnPins(std::path::PathBuf);

impl Drop for OwnPins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn what_a_policyd_learned_stays_in_force_across_a_restart() {
    use policyd::dataplane::{Capacity, Dataplane, Pins};
    let pins = OwnPins(std::path::PathBuf::from(format!(
        "/sys/fs/bpf/policyd-test-names-{}",
        std::process::id()
    )));
    let policy = Kernel::new(NAMES).policy;
    let start = || {
        let mut dp = Dataplane::load(
            Capacity::default().fit(&policy),
            Pins::Persistent(pins.0.clone()),
        )
        .unwrap();
        // As `policyd run` does: the tables first, then the policy.
        let learned = dp.learn_names(&policy).unwrap();
        dp.apply(&policy).unwrap();
        (dp, learned)
    };
    let to_mail = tcp_to(ALICE, MAIL, 40001, 8080, b"x");
    {
        let (dp, (maps, mut ring)) = start();
        let k = Kernel {
            dp,
            policy: policy.clone(),
        };
        assert_eq!(k.run_tc(true, &answer(ALICE, 600)), TC_ACT_OK);
        assert_eq!(read_ring(&mut ring, &maps).len(), 1);
        assert_eq!(k.run(&to_mail), XDP_DROP);
    }
    // A second policyd on the same pins: the entry is adopted (without its
    // name) and still counts under the generation the new one writes.
    let (dp, (maps, _ring)) = start();
    assert_eq!(maps.lock().unwrap().adopted(), 1);
    let k = Kernel { dp, policy };
    assert_eq!(k.run(&to_mail), XDP_DROP, "still webmail after the restart");
    assert_eq!(k.run(&tcp_to(BOB, MAIL, 40001, 8080, b"x")), XDP_PASS);
}
