//! Events: rate-limited per user.

use super::*;

#[test]
fn deny_events_are_rate_limited_per_user() {
    let _timing = crate::rates::shared();
    let mut k = Kernel::new(IDENTITY);
    let mut events = k.dp.take_events().unwrap();
    for _ in 0..50 {
        k.run(&udp4_frame(DAVE4, 10));
        k.run(&udp6_frame(v6(0x0c, 1), 10));
    }
    let mut got = Vec::new();
    while let Some(item) = events.next() {
        // SAFETY: the kernel writes whole Events.
        got.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
    }
    let mut users: Vec<u32> = got.iter().map(|e| e.user).collect();
    users.sort_unstable();
    assert_eq!(
        users,
        [k.user_id("dave"), k.user_id("carol")],
        "one deny event each"
    );
    assert!(got.iter().all(|e| e.kind == event_kind::DENY));
    assert_eq!(k.global(global_counter::EVENTS_LOST), 0);
}
