//! nftables rule sets for the comparisons, applied inside a namespace.

use std::{io::Write as _, process::Stdio};

use policyd_tests::NetNs;

/// Loads `rules` (an `nft -f` script) into `ns`; panics with nft's error.
pub(crate) fn apply(ns: &NetNs, rules: &str) {
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rules.as_bytes())
        .expect("nft rules");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft refused the rules: {}",
        String::from_utf8_lossy(&out.stderr)
            .chars()
            .take(2000)
            .collect::<String>()
    );
}

/// The sum of the packet counts of every `counter` in `ns`'s rule set.
pub(crate) fn counter_packets(ns: &NetNs) -> u64 {
    let out = ns
        .command("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| w[0] == "counter" && w[1] == "packets")
        .filter_map(|w| w[2].parse::<u64>().ok())
        .sum()
}
