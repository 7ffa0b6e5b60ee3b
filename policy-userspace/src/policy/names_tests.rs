//! Domain sets and `[names]`: parsing, errors with their place, layering,
//! and what the kernel gets.

use std::time::Duration;

use policy_common::{names_scope, present};

use super::{
    CompiledPolicy, NamesScope,
    tests::{err, layers, parse_str},
};

const CLASS: &str = "[[class]]\nname = \"webmail\"\nmatch = { sets = [\"webmail\"] }\n";

fn with_set(set: &str) -> String {
    format!("[sets]\n{set}\n{CLASS}")
}

#[test]
fn a_set_names_domains_cidrs_or_both_and_the_plain_list_still_works() {
    let p = parse_str(&with_set(
        r#"webmail = { domains = ["Mail.Yahoo.COM.", "*.mail.yahoo.com", "bücher.example"], cidrs = ["192.0.2.0/24"] }"#,
    ))
    .unwrap();
    assert_eq!(
        p.sets[0].domains,
        [
            "mail.yahoo.com",
            "*.mail.yahoo.com",
            "xn--bcher-kva.example"
        ],
        "canonical: lower case, no root dot, punycode"
    );
    assert_eq!(p.sets[0].nets.len(), 1);
    let plain = parse_str(&with_set(r#"webmail = ["192.0.2.0/24"]"#)).unwrap();
    assert_eq!(
        (plain.sets[0].nets.len(), plain.sets[0].domains.len()),
        (1, 0)
    );
    let c = CompiledPolicy::compile(&p);
    assert_eq!(c.domains.len(), 3);
    assert_ne!(c.config.present & present::NAMES, 0);
    assert_eq!(c.config.names_scope, names_scope::USER);
    let c = CompiledPolicy::compile(&plain);
    assert_eq!(
        c.config.present & present::NAMES,
        0,
        "no domains: nothing learned"
    );
}

#[test]
fn bad_domains_are_refused_where_they_are() {
    for (domain, says) in [
        ("*", "*"),
        ("*.com", "com"),
        ("mail.*.com", "*"),
        ("bad..name", "empty"),
        ("-bad.example", "-"),
    ] {
        let e = err(&with_set(&format!(
            "webmail = {{ domains = [\"ok.example\", \"{domain}\"] }}"
        )));
        assert!(e.contains("sets.webmail.domains[1]"), "{domain}: {e}");
        assert!(e.contains(":2:"), "the line: {e}");
        assert!(e.to_lowercase().contains(says), "{domain}: {e}");
    }
    let long = format!("{}.example", "a".repeat(64));
    assert!(
        err(&with_set(&format!(
            "webmail = {{ domains = [\"{long}\"] }}"
        )))
        .contains("domains[0]")
    );
    let e = err(&with_set("webmail = { domain = [\"a.example\"] }"));
    assert!(
        e.contains("domain") && e.contains("cidrs"),
        "a misspelt key: {e}"
    );
    let e = err(&with_set("webmail = { cidrs = [\"300.0.0.0/8\"] }"));
    assert!(e.contains("sets.webmail.cidrs[0]"), "{e}");
}

#[test]
fn names_settings_are_checked() {
    let p = parse_str(
        "[names]\nttl_floor = \"30s\"\nttl_cap = \"2h\"\naddresses_per_name = 8\nmax_learned = 1000\nscope = \"everyone\"\n",
    )
    .unwrap();
    let l = p.names.limits();
    assert_eq!(
        (l.ttl_floor, l.ttl_cap, l.per_name, l.max_entries),
        (Duration::from_secs(30), Duration::from_secs(7200), 8, 1000)
    );
    assert_eq!(p.names.scope(), NamesScope::Everyone);
    assert_eq!(
        CompiledPolicy::compile(&p).config.names_scope,
        names_scope::EVERYONE
    );
    let d = parse_str("").unwrap().names.limits();
    assert_eq!(
        (d.ttl_floor, d.ttl_cap),
        (Duration::from_secs(300), Duration::from_secs(86_400))
    );
    for (text, field) in [
        ("ttl_floor = \"1w\"", "names.ttl_floor"),
        ("ttl_cap = \"8d\"", "names.ttl_cap"),
        ("ttl_floor = \"10m\"\nttl_cap = \"1m\"", "names.ttl_cap"),
        ("addresses_per_name = 0", "names.addresses_per_name"),
        ("scope = \"all\"", "names.scope"),
        ("ttl = \"1m\"", "ttl"),
    ] {
        let e = err(&format!("[names]\n{text}\n"));
        assert!(e.contains(field), "{text}: {e}");
    }
}

#[test]
fn layers_only_widen_what_names_classify() {
    let (_dir, l) = layers(&[
        "[sets]\nwebmail = { domains = [\"a.example\"] }\n[names]\nttl_floor = \"10m\"\nscope = \"user\"\n",
        "[sets]\nwebmail = { domains = [\"b.example\"] }\n[names]\nttl_floor = \"1m\"\nscope = \"everyone\"\n",
    ]);
    let p = l.unwrap().policy;
    assert_eq!(p.sets[0].domains, ["a.example", "b.example"], "the union");
    assert_eq!(
        p.names.ttl_floor,
        Some(Duration::from_secs(600)),
        "the larger floor"
    );
    assert_eq!(p.names.scope(), NamesScope::Everyone);
}
