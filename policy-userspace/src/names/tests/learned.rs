use std::net::IpAddr;

use super::build::v4;
use crate::names::dns::Resolved;
use crate::names::domain::{DomainMatcher, DomainPattern};
use crate::names::learned::{Change, LearnedKey, LearnedTable, Limits};

const S: u64 = 1_000_000_000;

fn matcher(p: &[(u32, &str)]) -> DomainMatcher {
    DomainMatcher::new(
        p.iter()
            .map(|(i, s)| (*i, DomainPattern::parse(s).unwrap())),
    )
}

fn res(chain: &[&str], addr: IpAddr, ttl: u32) -> Resolved {
    Resolved {
        chain: chain.iter().map(|s| s.to_string()).collect(),
        addr,
        ttl,
    }
}

fn key(addr: IpAddr) -> LearnedKey {
    LearnedKey { scope: 1, addr }
}

#[test]
fn ttl_is_clamped_and_extended_never_shortened() {
    let m = matcher(&[(0, "*.yahoo.com"), (3, "edge.example")]);
    let mut t = LearnedTable::new(Limits::default());
    let a = v4([192, 0, 2, 1]);
    let c = t.observe(
        1,
        &[res(&["mail.yahoo.com", "edge.example"], a, 5)],
        &m,
        10 * S,
    );
    assert_eq!(
        c,
        [Change::Upsert {
            key: key(a),
            sets: 0b1001,
            expires_ns: 310 * S
        }]
    );
    assert_eq!(t.name_of(1, a), Some("edge.example"));
    assert_eq!(
        t.get(&key(a)).unwrap().names,
        ["mail.yahoo.com", "edge.example"]
    );
    // Capped at a day.
    let c = t.observe(1, &[res(&["mail.yahoo.com"], a, u32::MAX)], &m, 20 * S);
    assert_eq!(
        c,
        [Change::Upsert {
            key: key(a),
            sets: 0b1001,
            expires_ns: 86420 * S
        }]
    );
    // Shorter: no change.
    assert!(
        t.observe(1, &[res(&["mail.yahoo.com"], a, 5)], &m, 21 * S)
            .is_empty()
    );
    assert_eq!(t.get(&key(a)).unwrap().expires_ns, 86420 * S);
    // Not named by any set: nothing.
    assert!(
        t.observe(1, &[res(&["other.example"], v4([192, 0, 2, 2]), 60)], &m, 0)
            .is_empty()
    );
    assert_eq!(t.len(), 1);
    assert_eq!(t.addresses_per_set()[0], 1);
    assert_eq!(t.addresses_per_set()[3], 1);
    assert_eq!(t.addresses_per_set()[1], 0);
}

#[test]
fn expiry_removes_what_is_due() {
    let m = matcher(&[(0, "a.example")]);
    let mut t = LearnedTable::new(Limits::default());
    let (a, b) = (v4([192, 0, 2, 1]), v4([192, 0, 2, 2]));
    t.observe(1, &[res(&["a.example"], a, 300)], &m, 0);
    t.observe(1, &[res(&["a.example"], b, 600)], &m, 0);
    assert!(t.expire(299 * S).is_empty());
    assert_eq!(t.expire(300 * S), [Change::Remove(key(a))]);
    assert_eq!(t.len(), 1);
    assert_eq!(t.addresses_of(1, "a.example"), 1);
    assert_eq!(t.expire(u64::MAX), [Change::Remove(key(b))]);
    assert!(t.is_empty());
    assert_eq!(t.stats().expired, 2);
}

#[test]
fn per_name_cap_drops_the_oldest_address() {
    let m = matcher(&[(0, "a.example"), (1, "b.example")]);
    let limits = Limits {
        per_name: 2,
        ..Limits::default()
    };
    let mut t = LearnedTable::new(limits);
    let ips: Vec<IpAddr> = (1..=3).map(|i| v4([192, 0, 2, i])).collect();
    t.observe(1, &[res(&["a.example"], ips[0], 60)], &m, 0);
    t.observe(1, &[res(&["b.example"], ips[0], 60)], &m, 0);
    t.observe(1, &[res(&["a.example"], ips[1], 60)], &m, 0);
    // The same name in another scope has its own allowance.
    t.observe(2, &[res(&["a.example"], ips[1], 60)], &m, 0);
    let c = t.observe(1, &[res(&["a.example"], ips[2], 60)], &m, 0);
    // ips[0] stays for b.example but leaves set 0.
    assert!(c.contains(&Change::Upsert {
        key: key(ips[0]),
        sets: 0b10,
        expires_ns: 300 * S
    }));
    assert_eq!(t.addresses_of(1, "a.example"), 2);
    assert_eq!(t.addresses_of(2, "a.example"), 1);
    assert_eq!(t.stats().per_name_capped, 1);
    let c = t.observe(
        1,
        &[
            res(&["b.example"], ips[1], 60),
            res(&["b.example"], ips[2], 60),
        ],
        &m,
        0,
    );
    // b.example's oldest, ips[0], now has no name left and goes.
    assert!(c.contains(&Change::Remove(key(ips[0]))));
    assert_eq!(t.len(), 3);
}

#[test]
fn max_entries_evicts_the_soonest_to_expire() {
    let m = matcher(&[(0, "a.example"), (0, "b.example"), (0, "c.example")]);
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    let mut t = LearnedTable::new(limits);
    let ips: Vec<IpAddr> = (1..=3).map(|i| v4([192, 0, 2, i])).collect();
    t.observe(1, &[res(&["a.example"], ips[0], 1000)], &m, 0);
    t.observe(1, &[res(&["b.example"], ips[1], 500)], &m, 0);
    let c = t.observe(1, &[res(&["c.example"], ips[2], 700)], &m, 0);
    assert_eq!(c.len(), 2);
    assert!(c.contains(&Change::Remove(key(ips[1]))));
    assert_eq!(t.len(), 2);
    assert_eq!(t.stats().evictions, 1);
    let zero = Limits {
        max_entries: 0,
        ..Limits::default()
    };
    let mut t = LearnedTable::new(zero);
    assert!(
        t.observe(1, &[res(&["a.example"], ips[0], 1)], &m, 0)
            .is_empty()
    );
}

#[test]
fn rematch_recomputes_sets_and_drops_the_unnamed() {
    let m = matcher(&[(0, "a.example"), (1, "b.example")]);
    let mut t = LearnedTable::new(Limits::default());
    let (a, b) = (v4([192, 0, 2, 1]), v4([192, 0, 2, 2]));
    t.observe(1, &[res(&["a.example"], a, 60)], &m, 0);
    t.observe(1, &[res(&["b.example"], b, 60)], &m, 0);
    let c = t.rematch(&matcher(&[(5, "a.example")]));
    assert_eq!(c.len(), 2);
    assert!(c.contains(&Change::Upsert {
        key: key(a),
        sets: 1 << 5,
        expires_ns: 300 * S
    }));
    assert!(c.contains(&Change::Remove(key(b))));
    assert_eq!(t.name_of(1, b), None);
    assert_eq!(t.addresses_of(1, "b.example"), 0);
    assert!(t.rematch(&matcher(&[(5, "a.example")])).is_empty());
    assert_eq!(t.entries().count(), 1);
}
