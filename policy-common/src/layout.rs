//! Pins the size and alignment of every type shared with the kernel: a
//! change here is a change of the contract and must be made on both sides.

use super::*;

#[test]
fn layouts_are_pinned() {
    assert_eq!((size_of::<UserInfo>(), align_of::<UserInfo>()), (8, 4));
    assert_eq!(
        (size_of::<IfaceConfig>(), align_of::<IfaceConfig>()),
        (8, 4)
    );
    assert_eq!((size_of::<MacBinding>(), align_of::<MacBinding>()), (40, 4));
    assert_eq!((size_of::<ClassRule>(), align_of::<ClassRule>()), (32, 8));
    // The EtherType took half of what was padding: old rules read as none.
    assert_eq!(core::mem::offset_of!(ClassRule, ethertype), 28);
    assert_eq!(
        (size_of::<ActionParams>(), align_of::<ActionParams>()),
        (48, 8)
    );
    assert_eq!(size_of::<ActionEntry>(), 48 * MAX_PROFILES);
    assert_eq!((size_of::<ActionKey>(), align_of::<ActionKey>()), (8, 4));
    assert_eq!((size_of::<GenAddr>(), align_of::<GenAddr>()), (20, 4));
    assert_eq!((size_of::<GenMac>(), align_of::<GenMac>()), (12, 4));
    assert_eq!((size_of::<GenU32>(), align_of::<GenU32>()), (8, 4));
    assert_eq!((size_of::<GenU64>(), align_of::<GenU64>()), (16, 8));
    assert_eq!((size_of::<BucketKey>(), align_of::<BucketKey>()), (8, 4));
    assert_eq!((size_of::<Config>(), align_of::<Config>()), (112, 8));
    assert_eq!(
        (size_of::<LearnedKey4>(), align_of::<LearnedKey4>()),
        (8, 4)
    );
    assert_eq!(
        (size_of::<LearnedKey6>(), align_of::<LearnedKey6>()),
        (20, 4)
    );
    assert_eq!(
        (size_of::<LearnedSets>(), align_of::<LearnedSets>()),
        (24, 8)
    );
    assert_eq!(
        (size_of::<NameFlowKey>(), align_of::<NameFlowKey>()),
        (36, 2)
    );
    assert_eq!(
        (size_of::<SnoopHeader>(), align_of::<SnoopHeader>()),
        (24, 4)
    );
    assert_eq!(size_of::<SnoopRecord>(), 24 + SNOOP_BYTES);
    assert_eq!(
        (size_of::<DomainName>(), align_of::<DomainName>()),
        (256, 4)
    );
    assert_eq!((size_of::<ScanState>(), align_of::<ScanState>()), (88, 8));
    assert_eq!((size_of::<CounterKey>(), align_of::<CounterKey>()), (8, 4));
    assert_eq!((size_of::<Counters>(), align_of::<Counters>()), (72, 8));
    assert_eq!((size_of::<Event>(), align_of::<Event>()), (72, 8));
    assert_eq!((size_of::<EventTimes>(), align_of::<EventTimes>()), (16, 4));
    assert_eq!((size_of::<NameSlot>(), align_of::<NameSlot>()), (72, 4));
    assert_eq!((size_of::<UnidSlot>(), align_of::<UnidSlot>()), (16, 8));
    assert_eq!((size_of::<QuotaSlot>(), align_of::<QuotaSlot>()), (80, 8));
    assert_eq!(
        (size_of::<DaemonIface>(), align_of::<DaemonIface>()),
        (32, 4)
    );
    assert_eq!(
        (size_of::<DaemonInfo>(), align_of::<DaemonInfo>()),
        (2128, 8)
    );
    assert_eq!(core::mem::offset_of!(DaemonInfo, ifaces), 80);
}

#[test]
fn v4_addresses_are_mapped() {
    assert_eq!(
        v4_mapped([10, 0, 0, 1]),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]
    );
    assert_eq!(mac8([1, 2, 3, 4, 5, 6]), [1, 2, 3, 4, 5, 6, 0, 0]);
}

#[test]
fn counters_accumulate_every_field() {
    let one = Counters {
        pass_packets: 1,
        pass_bytes: 2,
        deny_packets: 3,
        deny_bytes: 4,
        limit_packets: 5,
        limit_bytes: 6,
        monitor_packets: 7,
        monitor_bytes: 8,
        ecn_marked_packets: 9,
    };
    let mut total = Counters::default();
    total.accumulate(&one);
    total.accumulate(&one);
    assert_eq!(total.pass_packets, 2);
    assert_eq!(total.ecn_marked_packets, 18);
    assert_eq!(total.limit_bytes, 12);
    assert_eq!(total.monitor_packets, 14);
    assert_eq!(total.deny_bytes, 8);
}

#[test]
fn generation_prefixes_lead_with_the_generation() {
    let p = gen_prefix(1, &v4_mapped([10, 0, 0, 1]));
    assert_eq!(&p[..4], &[0, 0, 0, 1]);
    assert_eq!(&p[4..], &v4_mapped([10, 0, 0, 1]));
}

#[test]
fn name_slots_hold_a_name_and_cut_a_longer_one() {
    let slot = NameSlot::new(name_state::LIVE, b"alice");
    assert_eq!((slot.state, slot.len, slot.name()), (1, 5, &b"alice"[..]));
    let long = [b'x'; MAX_NAME_LEN + 1];
    assert_eq!(NameSlot::new(0, &long).name(), &long[..MAX_NAME_LEN]);
}
