//! Per-packet cost of destinations by name (issue 14): the same packets
//! through a policy whose set lists CIDRs only and one whose set also
//! names domains (so DNS answers and TLS handshakes are copied and learned
//! addresses and named flows looked up), in XDP test runs.

use std::{net::Ipv4Addr, path::Path};

use aya::maps::{MapData, RingBuf};
use policyd::{
    dataplane::{Dataplane, LearnedMaps, coarse_now_ns},
    policy::{self, CompiledPolicy},
};
use policyd_tests::{packet::*, tls::client_hello, topology::dns};

use crate::{Settings, cost::run_xdp, median, workload::load};

/// A limit no test run reaches: a learned packet passes like the others.
const POLICY: &str = r#"
[sets]
webmail = SET

[[class]]
name = "webmail"
match = { sets = ["webmail"] }

[[user]]
name = "alice"
ips = ["10.0.0.1"]

[[rule]]
class = "webmail"
action = "limit 10Gbit"
"#;
const ALICE: [u8; 4] = [10, 0, 0, 1];
const LEARNED: [u8; 4] = [192, 0, 2, 10];
const OTHER: [u8; 4] = [198, 51, 100, 1];
/// Records the names ring holds (512 KiB of 2 KiB records, less headers):
/// a run of more repeats than this copies the rest into a full ring.
const RING_ROOM: u32 = 200;

fn compile(src: &str) -> CompiledPolicy {
    CompiledPolicy::compile(&policy::parse(Path::new("bench.toml"), src).expect("a valid policy"))
}

fn drain(ring: &mut RingBuf<MapData>, maps: &std::sync::Mutex<LearnedMaps>) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        maps.lock().unwrap().handle_record(&item, coarse_now_ns());
        n += 1;
    }
    n
}

fn tcp_frame(dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(ALICE, dst, 6, &tcp(sport, dport, 0x18, payload)),
    )
}

/// One row: the packet through both, `repeat` times a round; `between`
/// runs after each round of the policy with domains (to empty the ring).
fn row(
    s: &Settings,
    what: &str,
    (plain, named): (&Dataplane, &Dataplane),
    frame: &[u8],
    repeat: u32,
    mut between: impl FnMut(),
) {
    let (mut off, mut on) = (vec![], vec![]);
    for _ in 0..s.rounds.max(3) * 4 {
        off.push(run_xdp(plain.xdp().unwrap(), frame, repeat));
        on.push(run_xdp(named.xdp().unwrap(), frame, repeat));
        between();
    }
    let (off, on) = (median(off), median(on));
    println!("| {what} | {off:.1} | {on:.1} | {:+.1} |", on - off);
}

pub(crate) fn names_table(s: &Settings) {
    println!("### Destinations by name: per-packet cost\n");
    println!(
        "_XDP test runs of each packet through a policy whose set lists a CIDR only and one whose set also names domains, both loaded, rounds interleaved. With domains, every packet looks up its remote address among the learned ones (the user's scope), TCP to or from port 443 its flow among the named ones, and DNS answers and new flows' TLS handshakes are copied to the daemon. A copy row runs {RING_ROOM} repeats a round and the daemon's side empties the ring between rounds; the full-ring row runs into a ring nobody empties (the copy is refused and counted)._\n"
    );
    println!("| packet | CIDRs only (ns) | with domains (ns) | difference (ns) |");
    println!("|---|---:|---:|---:|");
    let plain = load(&compile(&POLICY.replace("SET", "[\"203.0.113.0/24\"]")));
    let mut named = load(&compile(&POLICY.replace(
        "SET",
        "{ domains = [\"mail.webmail.test\"], cidrs = [\"203.0.113.0/24\"] }",
    )));
    let policy = compile(&POLICY.replace(
        "SET",
        "{ domains = [\"mail.webmail.test\"], cidrs = [\"203.0.113.0/24\"] }",
    ));
    let (maps, mut ring) = named.learn_names(&policy).expect("the names ring");
    let msg = dns::response("mail.webmail.test", &[Ipv4Addr::from(LEARNED)], 86_400);
    // From a DNS server on the users' side: an answer the data path copies.
    let answer = eth(ETH_P_IP, &ipv4(ALICE, OTHER, 17, &udp(53, 40000, &msg)));
    run_xdp(named.xdp().unwrap(), &answer, 1);
    // Learned under the scope of the packet's user (alice sent it here).
    assert_eq!(drain(&mut ring, &maps), 1, "the answer was copied");
    let hello = client_hello(Some("mail.webmail.test"), false);
    run_xdp(
        named.xdp().unwrap(),
        &tcp_frame(OTHER, 40443, 443, &hello),
        1,
    );
    assert_eq!(drain(&mut ring, &maps), 1, "the hello was copied");
    let pair = (&plain, &named);
    let udp_other = eth(
        ETH_P_IP,
        &ipv4(ALICE, OTHER, 17, &udp(40000, 5060, &[0; 64])),
    );
    row(
        s,
        "UDP, not DNS, remote not learned",
        pair,
        &udp_other,
        s.repeat,
        || {},
    );
    let learned = tcp_frame(LEARNED, 40001, 8080, &[0; 64]);
    row(
        s,
        "TCP to a learned address (the set's class)",
        pair,
        &learned,
        s.repeat,
        || {},
    );
    let data_443 = tcp_frame(OTHER, 40443, 443, &[0x17; 64]);
    row(
        s,
        "TCP 443 of a flow named by its ClientHello",
        pair,
        &data_443,
        s.repeat,
        || {},
    );
    let unnamed_443 = tcp_frame(OTHER, 40444, 443, &[0x17; 64]);
    row(
        s,
        "TCP 443 application data, flow not named",
        pair,
        &unnamed_443,
        s.repeat,
        || {},
    );
    row(
        s,
        "DNS answer, copied to the daemon",
        pair,
        &answer,
        RING_ROOM,
        || {
            drain(&mut ring, &maps);
        },
    );
    let new_hello = tcp_frame(OTHER, 40445, 443, &hello);
    // Each round's first copy names the flow (the daemon then records it
    // and later repeats are not copied): mostly the lookup that says so.
    row(
        s,
        "TLS ClientHello, flow already named",
        pair,
        &new_hello,
        RING_ROOM,
        || {
            drain(&mut ring, &maps);
        },
    );
    run_xdp(named.xdp().unwrap(), &answer, RING_ROOM * 3);
    row(
        s,
        "DNS answer, names ring full (dropped copy)",
        pair,
        &answer,
        s.repeat,
        || {},
    );
    drain(&mut ring, &maps);
    println!();
}
