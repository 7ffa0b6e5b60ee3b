//! Properties of [`Learner::handle_frame`] over generated frames: valid
//! DNS responses, the same damaged, TLS-like payloads and random bytes.
//! Never a panic; the table stays within its limits; the changes it hands
//! out, applied in order, give exactly the table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::names::learned::MAX_NAMES_PER_ENTRY;
use crate::names::{Change, DomainMatcher, DomainPattern, LearnedKey, Learner, Limits};

const NAMES: [&str; 6] = [
    "a.example",
    "b.example",
    "x.cdn.example",
    "mail.yahoo.com",
    "m.mail.yahoo.com",
    "other.test",
];
const LIMITS: Limits = Limits {
    ttl_floor: std::time::Duration::from_secs(300),
    ttl_cap: std::time::Duration::from_secs(86400),
    per_name: 2,
    max_entries: 4,
};

fn matcher(variant: bool) -> DomainMatcher {
    let p = |s| DomainPattern::parse(s).unwrap();
    if variant {
        DomainMatcher::new([(7, p("b.example")), (1, p("*.cdn.example"))])
    } else {
        DomainMatcher::new([
            (0, p("a.example")),
            (1, p("*.cdn.example")),
            (2, p("mail.yahoo.com")),
            (3, p("*.mail.yahoo.com")),
        ])
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend(label.as_bytes());
    }
    out.push(0);
}

/// (type 0 A, 1 AAAA, 2 CNAME; owner; target; address byte; ttl)
type Answer = (u8, usize, usize, u8, u32);

/// A DNS response encoded by hand (cheaper than hickory's encoder in a
/// debug build); owners equal to the question are written as a pointer.
fn message(question: usize, answers: &[Answer]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
    m.extend((answers.len() as u16).to_be_bytes());
    m.extend([0, 0, 0, 0]);
    put_name(&mut m, NAMES[question]);
    m.extend([0, 1, 0, 1]);
    for &(kind, owner, target, addr, ttl) in answers {
        if owner == question {
            m.extend([0xc0, 12]);
        } else {
            put_name(&mut m, NAMES[owner]);
        }
        let rtype: u16 = [1, 28, 5][usize::from(kind % 3)];
        m.extend(rtype.to_be_bytes());
        m.extend([0, 1]);
        m.extend(ttl.to_be_bytes());
        match kind % 3 {
            0 => {
                m.extend([0, 4, 192, 0, 2, addr % 8]);
            }
            1 => {
                m.extend([0, 16, 0x20, 0x01, 0x0d, 0xb8]);
                m.extend([0; 11]);
                m.push(addr % 8);
            }
            _ => {
                let mut t = Vec::new();
                put_name(&mut t, NAMES[target]);
                m.extend((t.len() as u16).to_be_bytes());
                m.extend(t);
            }
        }
    }
    m
}

/// Ethernet, IPv4 and UDP or TCP headers around `payload`, by hand.
fn frame(tcp: bool, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let l4 = if tcp { 20 } else { 8 };
    let total = (20 + l4 + payload.len()) as u16;
    f.extend([0x45, 0]);
    f.extend(total.to_be_bytes());
    f.extend([0, 0, 0x40, 0, 64, if tcp { 6 } else { 17 }, 0, 0]);
    f.extend(Ipv4Addr::new(192, 0, 2, 53).octets());
    f.extend(Ipv4Addr::new(192, 0, 2, 10).octets());
    f.extend(ports.0.to_be_bytes());
    f.extend(ports.1.to_be_bytes());
    if tcp {
        f.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 4, 0, 0, 0, 0, 0]);
    } else {
        f.extend(((8 + payload.len()) as u16).to_be_bytes());
        f.extend([0, 0]);
    }
    f.extend(payload);
    f
}

/// A cheap deterministic generator (splitmix64): proptest draws only a
/// seed per frame, as its value trees for nested collections cost more in
/// a debug build than the parsing under test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Damage: none, a bit flip, a cut, a compression pointer to itself, or
/// inserted bytes.
fn mutate(mut m: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    let n = m.len();
    match rng.below(9) {
        0..=2 => {}
        3 | 4 => m[rng.below(n)] ^= (rng.next() as u8) | 1,
        5 | 6 => m.truncate(rng.below(n)),
        7 => {
            let at = 12 + rng.below(n - 13);
            m[at] = 0xc0 | (at >> 8) as u8;
            m[at + 1] = at as u8;
        }
        _ => {
            let at = rng.below(n);
            let len = 1 + rng.below(8);
            let bytes = rng.bytes(len);
            m.splice(at..at, bytes);
        }
    }
    m
}

/// A DNS response frame over UDP or TCP (with its length prefix), maybe
/// damaged.
fn dns_frame(rng: &mut Rng) -> Vec<u8> {
    let q = rng.below(NAMES.len());
    let answers: Vec<Answer> = (0..rng.below(6))
        .map(|_| {
            let ttl = if rng.below(2) == 0 {
                rng.below(400) as u32
            } else {
                rng.next() as u32
            };
            // Half the owners are the question, so that many answers are
            // on its chain and learned.
            let owner = if rng.below(2) == 0 {
                q
            } else {
                rng.below(NAMES.len())
            };
            (
                rng.below(3) as u8,
                owner,
                rng.below(NAMES.len()),
                rng.next() as u8,
                ttl,
            )
        })
        .collect();
    let m = mutate(message(q, &answers), rng);
    if rng.below(2) == 0 {
        let mut p = (m.len() as u16).to_be_bytes().to_vec();
        p.extend(m);
        frame(true, (53, 40000), &p)
    } else {
        frame(false, (53, 40000), &m)
    }
}

/// A TLS record header, a handshake header, then random bytes: most are
/// damaged hellos, cut at random lengths.
fn tls_frame(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(512) as u16;
    let mut p = vec![22, 3, 1];
    p.extend(len.to_be_bytes());
    p.extend([1 + rng.below(2) as u8, 0, (len >> 8) as u8, len as u8]);
    let n = rng.below(120);
    p.extend(rng.bytes(n));
    frame(true, (40000, 443), &p)
}

fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(96);
    rng.bytes(n)
}

/// Feeds the frames to a fresh learner, applying its changes to a copy of
/// the kernel's map, and checks the limits after each.
fn run(frames: &[(Vec<u8>, u32)], reload_at: usize) {
    let mut learner = Learner::new(LIMITS, matcher(false));
    let mut kernel: HashMap<LearnedKey, (u64, u64)> = HashMap::new();
    let apply = |kernel: &mut HashMap<LearnedKey, (u64, u64)>, changes: Vec<Change>| {
        for c in changes {
            match c {
                Change::Upsert {
                    key,
                    sets,
                    expires_ns,
                } => {
                    kernel.insert(key, (sets, expires_ns));
                }
                Change::Remove(key) => {
                    assert!(
                        kernel.remove(&key).is_some(),
                        "removed {key:?}, never written"
                    );
                }
            }
        }
    };
    let mut now = 1_000_000_000u64;
    for (i, (f, scope)) in frames.iter().enumerate() {
        if i == reload_at {
            apply(&mut kernel, learner.set_matcher(matcher(true)));
        }
        if let crate::names::Outcome::Learned(changes) = learner.handle_frame(f, *scope, now) {
            apply(&mut kernel, changes);
        }
        now += 200_000_000_000;
        if i % 3 == 2 {
            apply(&mut kernel, learner.table.expire(now));
        }
        let table = &learner.table;
        assert!(table.len() <= LIMITS.max_entries);
        let mut per_name: HashMap<(u32, &str), usize> = HashMap::new();
        for (key, e) in table.entries() {
            assert!(!e.names.is_empty() && e.names.len() <= MAX_NAMES_PER_ENTRY);
            assert_ne!(e.sets, 0);
            assert_eq!(kernel.get(&key), Some(&(e.sets, e.expires_ns)));
            for n in &e.names {
                *per_name.entry((key.scope, n)).or_default() += 1;
            }
        }
        assert_eq!(kernel.len(), table.len());
        assert!(per_name.values().all(|n| *n <= LIMITS.per_name));
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The frames of one case: each seed makes one, of the kind `pick` gives.
fn frames(seeds: &[u64], pick: fn(&mut Rng) -> Vec<u8>) -> Vec<(Vec<u8>, u32)> {
    seeds
        .iter()
        .map(|s| {
            let mut rng = Rng(*s);
            (pick(&mut rng), (s >> 63) as u32)
        })
        .collect()
}

fn any_frame(rng: &mut Rng) -> Vec<u8> {
    match rng.below(3) {
        0 => tls_frame(rng),
        1 => random_frame(rng),
        _ => dns_frame(rng),
    }
}

proptest! {
    #![proptest_config(config(50_000))]
    #[test]
    fn dns_frames_keep_the_table_bounded(
        seeds in prop::collection::vec(any::<u64>(), 1..4),
        reload_at in 0usize..4,
    ) {
        run(&frames(&seeds, dns_frame), reload_at);
    }
}

proptest! {
    #![proptest_config(config(50_000))]
    #[test]
    fn tls_and_random_frames_never_panic(seeds in prop::collection::vec(any::<u64>(), 1..4)) {
        run(&frames(&seeds, any_frame), usize::MAX);
    }
}

#[test]
fn generated_valid_responses_learn() {
    // The generator's valid messages do parse: the properties above are
    // not all spent on errors.
    let m = message(0, &[(0, 0, 0, 1, 60), (2, 0, 2, 0, 60), (1, 2, 0, 3, 60)]);
    let mut learner = Learner::new(LIMITS, matcher(false));
    let crate::names::Outcome::Learned(c) = learner.handle_frame(&frame(false, (53, 1), &m), 0, 0)
    else {
        panic!("not learned");
    };
    assert_eq!(c.len(), 2);
    assert_eq!(
        learner
            .table
            .name_of(0, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        Some("a.example")
    );
}
