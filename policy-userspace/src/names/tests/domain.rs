use crate::names::domain::{DomainError, DomainMatcher, DomainPattern, normalise};

/// Whether an error is the one expected.
type IsError = fn(&DomainError) -> bool;

#[test]
fn patterns_parse_or_say_why_not() {
    let ok = [
        ("mail.yahoo.com", "mail.yahoo.com"),
        ("Mail.Yahoo.COM.", "mail.yahoo.com"),
        ("*.mail.yahoo.com", "*.mail.yahoo.com"),
        ("*.co.uk", "*.co.uk"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("*.Bücher.example", "*.xn--bcher-kva.example"),
        ("a-b.c", "a-b.c"),
        ("com", "com"),
    ];
    for (input, want) in ok {
        assert_eq!(
            DomainPattern::parse(input).unwrap().as_str(),
            want,
            "{input}"
        );
    }
    let long_label = format!("{}.com", "a".repeat(64));
    let long_name = format!("{}com", "abcdefghi.".repeat(26));
    let bad: [(&str, IsError); 12] = [
        ("", |e| matches!(e, DomainError::Empty)),
        ("*", |e| matches!(e, DomainError::BareWildcard)),
        ("*.com", |e| {
            matches!(e, DomainError::WildcardTooBroad { .. })
        }),
        ("a.*.com", |e| {
            matches!(e, DomainError::MisplacedWildcard { .. })
        }),
        ("*a.example.com", |e| {
            matches!(e, DomainError::MisplacedWildcard { .. })
        }),
        ("*.*.example.com", |e| {
            matches!(e, DomainError::MisplacedWildcard { .. })
        }),
        ("a..com", |e| matches!(e, DomainError::EmptyLabel { .. })),
        (".a.com", |e| matches!(e, DomainError::EmptyLabel { .. })),
        ("-a.com", |e| matches!(e, DomainError::Hyphen { .. })),
        ("a-.com", |e| matches!(e, DomainError::Hyphen { .. })),
        ("a b.com", |e| {
            matches!(e, DomainError::BadCharacter { ch: ' ', .. })
        }),
        ("a/b.com", |e| matches!(e, DomainError::BadCharacter { .. })),
    ];
    for (input, want) in bad {
        let e = DomainPattern::parse(input).unwrap_err();
        assert!(want(&e), "{input}: {e:?}");
        assert!(!e.to_string().is_empty());
    }
    assert!(matches!(
        DomainPattern::parse(&long_label),
        Err(DomainError::LabelTooLong { len: 64, .. })
    ));
    assert!(matches!(
        DomainPattern::parse(&long_name),
        Err(DomainError::NameTooLong { .. })
    ));
    let e = DomainPattern::parse("*.com").unwrap_err().to_string();
    assert!(e.contains("top-level"), "{e}");
}

#[test]
fn wildcards_match_names_below_not_the_base() {
    let p = DomainPattern::parse("*.example.com").unwrap();
    assert!(p.matches("a.example.com"));
    assert!(p.matches("a.b.example.com"));
    assert!(!p.matches("example.com"));
    assert!(!p.matches("badexample.com"));
    assert!(!p.matches("a.example.co"));
    let exact = DomainPattern::parse("example.com").unwrap();
    assert!(exact.matches("example.com"));
    assert!(!exact.matches("a.example.com"));
}

#[test]
fn normalise_lowercases_and_encodes() {
    assert_eq!(normalise("WWW.Example.COM.").unwrap(), "www.example.com");
    assert_eq!(
        normalise("BÜCHER.example").unwrap(),
        "xn--bcher-kva.example"
    );
    assert_eq!(
        normalise("xn--bcher-kva.example").unwrap(),
        "xn--bcher-kva.example"
    );
    assert!(normalise(".").is_err());
    assert!(normalise("a\u{0}b.com").is_err());
}

#[test]
fn matcher_ors_the_sets_of_exact_and_wildcard_patterns() {
    let p = |s| DomainPattern::parse(s).unwrap();
    let m = DomainMatcher::new([
        (0, p("mail.yahoo.com")),
        (1, p("*.mail.yahoo.com")),
        (2, p("*.yahoo.com")),
        (3, p("example.org")),
        (70, p("ignored.example")),
    ]);
    assert!(!m.is_empty());
    assert_eq!(m.sets_of("mail.yahoo.com"), 0b101);
    assert_eq!(m.sets_of("x.mail.yahoo.com"), 0b110);
    assert_eq!(m.sets_of("x.y.mail.yahoo.com"), 0b110);
    assert_eq!(m.sets_of("yahoo.com"), 0);
    assert_eq!(m.sets_of("example.org"), 0b1000);
    assert_eq!(m.sets_of("a.example.org"), 0);
    assert_eq!(m.sets_of("ignored.example"), 0);
    assert!(DomainMatcher::default().is_empty());
    assert_eq!(DomainMatcher::default().sets_of("a.b"), 0);
}
