//! Every map name policy-common declares names a map of the object policyd
//! embeds, and every map of the object is one of them or known to be
//! per-run. The loader sizes and pins maps by these names, and aya ignores a
//! size given for a name the object does not have: a misspelt
//! `#[map(name = ...)]` would load at its default size, silently.
//!
//! Parsing the ELF needs no kernel, so this runs unprivileged.

use aya_obj::Object;
use policy_common::ALL_MAPS;

/// The file `dataplane`'s `EBPF_OBJECT` embeds, included the same way
/// (the parser needs it aligned).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/policy-ebpf"));

/// Maps of the object that are not in `ALL_MAPS` on purpose: per-run
/// scratch space, never sized, pinned or read by the loader.
const PER_RUN: &[&str] = &["SCRATCH", "FLOW", "QUOTA_SCRATCH", "ZERO_COUNTERS"];

fn object() -> Object {
    assert!(
        !OBJECT.is_empty(),
        "built with AYA_BUILD_SKIP=1: there is no kernel object to check"
    );
    Object::parse(OBJECT).unwrap_or_else(|err| panic!("the embedded object does not parse: {err}"))
}

fn names(object: &Object) -> Vec<&str> {
    let mut names: Vec<&str> = object.maps.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

#[test]
fn every_map_name_is_a_map_of_the_object() {
    let object = object();
    let missing: Vec<&str> = ALL_MAPS
        .iter()
        .copied()
        .filter(|name| !object.maps.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "policy-common names maps the object does not have: {missing:?}; it has {:?}",
        names(&object)
    );
}

#[test]
fn every_map_of_the_object_is_named_in_policy_common() {
    let object = object();
    let unknown: Vec<&str> = names(&object)
        .into_iter()
        // `.rodata`, `.bss` and `.data` sections are maps to aya as well.
        .filter(|name| !name.starts_with('.'))
        .filter(|name| !ALL_MAPS.contains(name) && !PER_RUN.contains(name))
        .collect();
    assert!(
        unknown.is_empty(),
        "maps of the object without a policy-common name: {unknown:?}"
    );
}
