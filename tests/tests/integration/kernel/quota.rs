//! Byte quotas (`[[quota]]`): the kernel counts passed bytes into each
//! slot that covers the packet, and once a budget is used up adds its
//! `exhausted` action; 80 % and 100 % send one event each; a new period
//! starts from zero; a reload keeps what was used.

use policy_common::{QUOTA_ALL_CLASSES, quota_reason};
use policyd::dataplane::QuotaUse;

use super::*;

/// alice: 3000 bytes a day of everything, then denied; bob: 2000 bytes a
/// day of `bulk`, then 10 packets a second with a burst of 2.
const QUOTAS: &str = r#"
[[class]]
name = "bulk"
match = { proto = "udp", ports = [9000] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]

[[user]]
name = "bob"
ips = ["10.1.9.9"]

[[quota]]
user = "alice"
quota = "3000B/day"
exhausted = "deny"

[[quota]]
user = "bob"
class = "bulk"
quota = "2000B/day"
exhausted = "limit 10pps burst 2"
"#;

fn usage(k: &Kernel) -> Vec<QuotaUse> {
    k.dp.quota_table().lock().unwrap().usage().unwrap()
}

/// A 1000-byte frame (14 + 20 + 8 + 958).
fn kilobyte(src: [u8; 4], dport: u16) -> Vec<u8> {
    let f = udp4(src, REMOTE4, 5000, dport, 958);
    assert_eq!(f.len(), 1000);
    f
}

#[test]
fn a_used_up_quota_denies_and_says_so_at_80_and_100_percent() {
    let _timing = crate::rates::shared();
    let mut k = Kernel::new(QUOTAS);
    let frame = kilobyte(ALICE4, 80);
    // 1000, 2000, 3000 bytes: the third reaches the budget and passes;
    // from then on every packet is denied, counted neither as used.
    for _ in 0..3 {
        k.expect(&frame, "alice", "default", UP, V::Pass);
    }
    for _ in 0..3 {
        k.expect(&frame, "alice", "default", UP, V::Deny);
    }
    assert_eq!(
        k.dropped("alice", "default", UP, policy_common::drop_reason::QUOTA),
        3,
        "denied with the quota as their reason"
    );
    let alice = k.user_id("alice");
    let u = usage(&k);
    let mine: Vec<_> = u.iter().filter(|u| u.user == alice).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].used, mine[0].limit), (3000, 3000));
    assert_eq!(mine[0].class, QUOTA_ALL_CLASSES);
    // One event at 80 % (the second packet: 2000 < 2400, the third is
    // past both), then exhaustion; deny events for the drops.
    let quota: Vec<u8> = events(&mut k)
        .into_iter()
        .filter(|e| e.kind == event_kind::QUOTA)
        .map(|e| e.reason)
        .collect();
    assert_eq!(quota, [quota_reason::EXHAUSTED]);
    // bob has no quota on the default class.
    for _ in 0..5 {
        k.expect(&kilobyte(BOB4, 80), "bob", "default", UP, V::Pass);
    }
}

#[test]
fn the_warning_comes_once_before_the_end() {
    let _timing = crate::rates::shared();
    let mut k = Kernel::new(QUOTAS);
    // 500-byte frames: 2500 crosses 80 % (2400), 3000 the budget.
    let frame = udp4(ALICE4, REMOTE4, 5000, 80, 458);
    for _ in 0..6 {
        k.expect(&frame, "alice", "default", UP, V::Pass);
    }
    k.expect(&frame, "alice", "default", UP, V::Deny);
    let quota: Vec<(u8, u32)> = events(&mut k)
        .into_iter()
        .filter(|e| e.kind == event_kind::QUOTA)
        .map(|e| (e.reason, e.class))
        .collect();
    assert_eq!(
        quota,
        [
            (quota_reason::WARN, QUOTA_ALL_CLASSES),
            (quota_reason::EXHAUSTED, QUOTA_ALL_CLASSES)
        ]
    );
}

#[test]
fn a_class_quota_limits_that_class_only() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(QUOTAS);
    let bulk = kilobyte(BOB4, 9000);
    for _ in 0..2 {
        k.expect(&bulk, "bob", "bulk", UP, V::Pass);
    }
    // Used up: the exhausted limit's burst of 2, then limited.
    for _ in 0..2 {
        k.expect(&bulk, "bob", "bulk", UP, V::Pass);
    }
    for _ in 0..3 {
        k.expect(&bulk, "bob", "bulk", UP, V::Limit);
    }
    // Bob's other traffic is not held, nor counted.
    for _ in 0..5 {
        k.expect(&kilobyte(BOB4, 80), "bob", "default", UP, V::Pass);
    }
    let bob = k.user_id("bob");
    let u: Vec<_> = usage(&k).into_iter().filter(|u| u.user == bob).collect();
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].used, u[0].class), (4000, k.class_id("bulk")));
}

#[test]
fn a_new_period_starts_from_nothing_and_a_reload_keeps_the_use() {
    let _timing = crate::rates::shared();
    let mut k = Kernel::new(QUOTAS);
    let frame = kilobyte(ALICE4, 80);
    let table = k.dp.quota_table();
    let now = jiff::Timestamp::now();
    // The daemon's first pass dates the fresh slots: what they counted
    // stays.
    k.expect(&frame, "alice", "default", UP, V::Pass);
    assert_eq!(table.lock().unwrap().roll(now).unwrap(), 2);
    assert_eq!(table.lock().unwrap().roll(now).unwrap(), 0, "nothing new");
    for _ in 0..2 {
        k.expect(&frame, "alice", "default", UP, V::Pass);
    }
    k.expect(&frame, "alice", "default", UP, V::Deny);
    // A reload with a larger budget keeps the 3000 bytes used.
    let bigger = QUOTAS.replace("3000B/day", "4000B/day");
    let policy = policyd::policy::CompiledPolicy::compile(
        &policyd::policy::parse(std::path::Path::new("test.toml"), &bigger).unwrap(),
    );
    k.dp.apply(&policy).unwrap();
    k.expect(&frame, "alice", "default", UP, V::Pass);
    k.expect(&frame, "alice", "default", UP, V::Deny);
    // Two days on, the period has changed: used goes back to 0.
    let later = now + jiff::SignedDuration::from_hours(48);
    assert!(table.lock().unwrap().roll(later).unwrap() >= 1);
    k.expect(&frame, "alice", "default", UP, V::Pass);
    let alice = k.user_id("alice");
    let u = usage(&k).into_iter().find(|u| u.user == alice).unwrap();
    assert_eq!((u.used, u.limit), (1000, 4000));
    drop(events(&mut k));
}
