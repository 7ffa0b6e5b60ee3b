//! `[unidentified] buckets` and `slots`: parsing, errors, layering, and
//! what the kernel gets.

use super::{
    CompiledPolicy, UnidBuckets,
    tests::{err, layers, parse_str},
};

const LIMITED: &str = "[unidentified]\naction = \"limit 10Mbit\"\n";

#[test]
fn per_source_buckets_are_the_default() {
    let p = parse_str(LIMITED).unwrap();
    assert_eq!(p.unidentified_buckets, UnidBuckets::default());
    assert!(!p.unidentified_buckets.is_shared());
    assert_eq!(
        CompiledPolicy::compile(&p).config.unid_slots,
        policy_common::DEFAULT_UNID_SLOTS
    );
}

#[test]
fn shared_and_slots_reach_the_kernel_config() {
    let p = parse_str(&format!("{LIMITED}buckets = \"shared\"\n")).unwrap();
    assert_eq!(CompiledPolicy::compile(&p).config.unid_slots, 0, "shared");
    let p = parse_str(&format!("{LIMITED}buckets = \"per-source\"\nslots = 64\n")).unwrap();
    assert_eq!(CompiledPolicy::compile(&p).config.unid_slots, 64);
}

#[test]
fn bad_bucket_options_name_file_line_column_and_field() {
    let e = err(&format!("{LIMITED}buckets = \"per-host\"\n"));
    assert_eq!(
        e,
        "p.toml:3:11: unidentified.buckets: unknown value `per-host`, expected `per-source` or `shared`"
    );
    for bad in ["0", "1000", "2097152", "-4"] {
        let e = err(&format!("{LIMITED}slots = {bad}\n"));
        assert!(
            e.starts_with("p.toml:3:9: unidentified.slots: ")
                && e.contains("power of two from 1 to 1048576"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn a_later_layer_may_share_the_bucket_or_shrink_the_table_never_the_reverse() {
    let base = format!("{LIMITED}slots = 1024\n");
    let (_d, l) = layers(&[&base, &format!("{LIMITED}buckets = \"shared\"\n")]);
    let l = l.unwrap();
    assert!(l.policy.unidentified_buckets.is_shared());
    assert!(
        l.provenance["unidentified buckets"].0.starts_with("shared"),
        "{:?}",
        l.provenance
    );
    let shared = format!("{LIMITED}buckets = \"shared\"\n");
    let (_d, l) = layers(&[&shared, &format!("{LIMITED}buckets = \"per-source\"\n")]);
    assert!(
        l.unwrap().policy.unidentified_buckets.is_shared(),
        "shared is the stricter: it stays"
    );
    let (_d, l) = layers(&[&base, &format!("{LIMITED}slots = 4096\n")]);
    assert_eq!(l.unwrap().policy.unidentified_buckets.slots(), 1024);
    let (_d, l) = layers(&[&base, &format!("{LIMITED}slots = 16\n")]);
    assert_eq!(l.unwrap().policy.unidentified_buckets.slots(), 16);
}
