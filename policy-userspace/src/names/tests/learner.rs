use hickory_proto::op::ResponseCode;

use super::build::{Rr, client_hello, dns_frame, frame, query, response, sni_ext, v4};
use crate::names::{
    Change, DomainMatcher, DomainPattern, FailReason, LearnedKey, Learner, Limits, Outcome,
};

fn learner() -> Learner {
    let p = |s| DomainPattern::parse(s).unwrap();
    Learner::new(
        Limits::default(),
        DomainMatcher::new([(0, p("mail.yahoo.com")), (4, p("*.mail.yahoo.com"))]),
    )
}

#[test]
fn answers_learn_and_reloads_rematch() {
    let mut l = learner();
    let m = response(
        "mail.yahoo.com.",
        &[Rr::A("mail.yahoo.com.", [192, 0, 2, 1], 60)],
        ResponseCode::NoError,
    );
    let key = LearnedKey {
        scope: 9,
        addr: v4([192, 0, 2, 1]),
    };
    assert_eq!(
        l.handle_frame(&dns_frame(&m), 9, 0),
        Outcome::Learned(vec![Change::Upsert {
            key,
            sets: 1,
            expires_ns: 300_000_000_000
        }])
    );
    assert_eq!((l.stats().answers_seen, l.stats().learned), (1, 1));
    assert_eq!(
        l.handle_frame(&dns_frame(&query("a.example.")), 9, 0),
        Outcome::Ignored
    );
    assert_eq!(
        l.set_matcher(DomainMatcher::default()),
        [Change::Remove(key)]
    );
    assert!(l.table.is_empty());
}

#[test]
fn hellos_classify_and_failures_count() {
    let mut l = learner();
    let hello = client_hello(&[sni_ext("x.mail.yahoo.com"), (0xfe0d, vec![1, 2])]);
    let (c, s) = (v4([192, 0, 2, 10]), v4([198, 51, 100, 1]));
    let Outcome::Sni {
        name, sets, ech, ..
    } = l.handle_frame(&frame(c, s, true, (40000, 443), 0, &hello), 0, 0)
    else {
        panic!("no SNI");
    };
    assert_eq!(
        (name.as_deref(), sets, ech),
        (Some("x.mail.yahoo.com"), 1 << 4, true)
    );
    assert_eq!((l.stats().hellos_seen, l.stats().ech_seen), (1, 1));
    let cut = frame(c, s, true, (40000, 443), 0, &hello[..20]);
    assert_eq!(
        l.handle_frame(&cut, 0, 0),
        Outcome::Failed(FailReason::TlsTruncated)
    );
    assert_eq!(
        l.handle_frame(&dns_frame(&[0x12, 0x34, 0x81]), 0, 0),
        Outcome::Failed(FailReason::DnsMalformed)
    );
    assert_eq!(l.stats().parse_failures(FailReason::TlsTruncated), 1);
    let labels: Vec<&str> = l
        .stats()
        .parse_failures_all()
        .map(|(r, _)| r.as_str())
        .collect();
    assert_eq!(labels.len(), FailReason::ALL.len());
    assert!(labels.contains(&"dns_malformed"));
}
