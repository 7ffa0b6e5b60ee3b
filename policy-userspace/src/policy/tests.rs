use std::{net::IpAddr, path::Path};

use policy_common::{USER_UNIDENTIFIED, action};

use super::*;

fn parse_str(src: &str) -> Result<Policy, PolicyError> {
    parse(Path::new("p.toml"), src)
}

fn err(src: &str) -> String {
    parse_str(src)
        .expect_err("policy should be rejected")
        .to_string()
}

const GOOD: &str = r#"
[unidentified]
action = "deny"

[[user]]
name = "alice"
ips = ["10.0.0.2", "2001:db8::2", "10.1.0.0/16"]

[[user]]
name = "bob"
ips = ["10.1.2.0/24", "2001:db8:1::/48"]
action = "deny"
"#;

#[test]
fn parses_a_valid_policy() {
    let p = parse_str(GOOD).unwrap();
    assert_eq!(p.unidentified, Action::Deny);
    assert_eq!(p.users.len(), 2);
    assert_eq!(p.users[0].name, "alice");
    assert_eq!(p.users[0].action, Action::Allow, "action defaults to allow");
    assert_eq!(p.users[0].nets.len(), 3);
    assert_eq!(p.users[1].action, Action::Deny);
}

#[test]
fn empty_file_allows_unidentified() {
    let p = parse_str("").unwrap();
    assert!(p.users.is_empty());
    assert_eq!(p.unidentified, Action::Allow);
}

#[test]
fn bad_toml_names_line_and_column() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"\n");
    assert!(e.starts_with("p.toml:3:"), "{e}");
}

#[test]
fn unknown_field_is_rejected_with_its_name() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\nacton = \"deny\"\n");
    assert!(e.starts_with("p.toml:4:1:"), "{e}");
    assert!(e.contains("unknown field `acton`"), "{e}");
    assert!(
        e.contains("`action`"),
        "the expected fields are listed: {e}"
    );
}

#[test]
fn unknown_top_level_section_is_rejected() {
    let e = err("[users]\n");
    assert!(e.contains("unknown field `users`"), "{e}");
}

#[test]
fn missing_name_is_rejected() {
    let e = err("[[user]]\nips = [\"10.0.0.1\"]\n");
    assert!(e.contains("missing field `name`"), "{e}");
}

#[test]
fn bad_address_names_field_line_and_value() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\", \"10.0.0.300\"]\n");
    assert_eq!(
        e,
        "p.toml:3:20: user[0].ips[1]: `10.0.0.300` is not a valid IP address or CIDR"
    );
}

#[test]
fn bad_cidr_is_rejected() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.0/33\"]\n");
    assert!(
        e.contains("user[0].ips[0]: `10.0.0.0/33` is not a valid CIDR"),
        "{e}"
    );
}

#[test]
fn cidr_with_host_bits_suggests_the_network() {
    let e = err("[[user]]\nname = \"a\"\nips = [\"10.0.0.5/24\"]\n");
    assert!(e.contains("did you mean `10.0.0.0/24`"), "{e}");
}

#[test]
fn address_claimed_by_two_users_is_rejected() {
    let e = err(
        "[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\n[[user]]\nname = \"b\"\nips = [\"10.0.0.1/32\"]\n",
    );
    assert!(e.starts_with("p.toml:6:"), "{e}");
    assert!(
        e.contains("user[1].ips[0]: `10.0.0.1/32` already belongs to user `a`"),
        "{e}"
    );
}

#[test]
fn duplicate_user_name_is_rejected() {
    let e = err(
        "[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\n[[user]]\nname = \"a\"\nips = [\"10.0.0.2\"]\n",
    );
    assert!(
        e.contains("user[1].name: user `a` is already defined as user[0]"),
        "{e}"
    );
}

#[test]
fn reserved_and_malformed_names_are_rejected() {
    let e = err("[[user]]\nname = \"unidentified\"\nips = [\"10.0.0.1\"]\n");
    assert!(e.contains("`unidentified` is reserved"), "{e}");
    let e = err("[[user]]\nname = \"a b\"\nips = [\"10.0.0.1\"]\n");
    assert!(e.contains("not a valid user name"), "{e}");
}

#[test]
fn user_without_addresses_is_rejected() {
    let e = err("[[user]]\nname = \"a\"\n");
    assert!(e.contains("user[0].ips: user `a` has no addresses"), "{e}");
}

#[test]
fn unknown_action_is_rejected() {
    let e = err("[unidentified]\naction = \"drop\"\n");
    assert_eq!(
        e,
        "p.toml:2:10: unidentified.action: unknown action `drop`, expected `allow` or `deny`"
    );
}

#[test]
fn wrong_type_is_rejected() {
    let e = err("[[user]]\nname = \"a\"\nips = \"10.0.0.1\"\n");
    assert!(e.starts_with("p.toml:3:7:"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn compile_assigns_dense_ids_and_splits_hosts_from_cidrs() {
    let c = CompiledPolicy::compile(&parse_str(GOOD).unwrap());
    assert_eq!(c.users[0].name, UNIDENTIFIED);
    assert_eq!(c.users[0].id, USER_UNIDENTIFIED);
    assert_eq!(c.users[0].policy.action, action::DENY);
    assert_eq!((c.users[1].id, c.users[1].name.as_str()), (1, "alice"));
    assert_eq!((c.users[2].id, c.users[2].policy.action), (2, action::DENY));
    assert_eq!(c.v4_exact, vec![([10, 0, 0, 2], 1)]);
    assert_eq!(c.v6_exact.len(), 1);
    assert_eq!(
        c.v4_cidrs,
        vec![(16, [10, 1, 0, 0], 1), (24, [10, 1, 2, 0], 2)]
    );
    assert_eq!(c.v6_cidrs.len(), 1);
}

#[test]
fn identity_prefers_exact_then_longest_prefix() {
    let c = CompiledPolicy::compile(&parse_str(GOOD).unwrap());
    let id = |s: &str| c.user_of(s.parse::<IpAddr>().unwrap());
    assert_eq!(id("10.0.0.2"), 1);
    assert_eq!(id("10.1.9.9"), 1, "inside alice's /16");
    assert_eq!(id("10.1.2.9"), 2, "bob's /24 is longer than alice's /16");
    assert_eq!(id("10.0.0.3"), USER_UNIDENTIFIED);
    assert_eq!(id("2001:db8:1::5"), 2);
    assert_eq!(id("2001:db8::2"), 1);
    assert_eq!(id("2001:db8:2::1"), USER_UNIDENTIFIED);
}
