//! `policyd explain` agrees with the kernel: each case is explained by the
//! CLI, then the same packet runs through the kernel programs in the profile
//! the explanation names; the user, class, direction and verdict must match.
//! Needs root.

use std::{path::PathBuf, process::Command};

use crate::common::*;
use policyd_tests::{packet::*, policyd_bin};

fn example() -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/acceptable-use.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

struct Case {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    dport: u16,
    download: bool,
    at: &'static str,
    want_user: &'static str,
    want_class: &'static str,
    want_verdict: &'static str,
}

const ALICE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

#[test]
fn explain_agrees_with_the_kernel() {
    let _timing = crate::rates::shared();
    let (path, text) = example();
    let cases = [
        Case {
            src: [10, 10, 0, 2],
            dst: [192, 0, 2, 9],
            proto: 6,
            dport: 445,
            download: false,
            at: "2026-12-01T10:00",
            want_user: "alice",
            want_class: "bulk",
            want_verdict: "limit",
        },
        Case {
            src: [10, 10, 0, 2],
            dst: [192, 0, 2, 9],
            proto: 6,
            dport: 445,
            download: false,
            at: "2026-12-01T20:00",
            want_user: "alice",
            want_class: "bulk",
            want_verdict: "pass",
        },
        Case {
            src: [10, 10, 0, 2],
            dst: [192, 0, 2, 9],
            proto: 6,
            dport: 445,
            download: false,
            at: "2026-12-25T10:00",
            want_user: "alice",
            want_class: "bulk",
            want_verdict: "pass",
        },
        Case {
            src: [10, 20, 0, 7],
            dst: [192, 0, 2, 9],
            proto: 6,
            dport: 445,
            download: false,
            at: "2026-12-01T10:00",
            want_user: "lab",
            want_class: "bulk",
            want_verdict: "monitor",
        },
        Case {
            src: [10, 10, 0, 3],
            dst: [203, 0, 113, 5],
            proto: 6,
            dport: 443,
            download: false,
            at: "2026-12-01T10:00",
            want_user: "bob",
            want_class: "webmail",
            want_verdict: "deny",
        },
        Case {
            src: [10, 99, 0, 1],
            dst: [198, 51, 100, 4],
            proto: 17,
            dport: 53,
            download: false,
            at: "2026-12-01T10:00",
            want_user: "unidentified",
            want_class: "prohibited",
            want_verdict: "deny",
        },
        Case {
            src: [10, 99, 0, 1],
            dst: [192, 0, 2, 4],
            proto: 17,
            dport: 53,
            download: false,
            at: "2026-12-01T10:00",
            want_user: "unidentified",
            // The example's `dns` class (what a quarantine still allows).
            want_class: "dns",
            want_verdict: "limit",
        },
        Case {
            src: [192, 0, 2, 9],
            dst: [10, 10, 0, 3],
            proto: 6,
            dport: 40000,
            download: true,
            at: "2026-12-01T10:00",
            want_user: "bob",
            want_class: "default",
            want_verdict: "pass",
        },
        Case {
            src: [203, 0, 113, 5],
            dst: [10, 10, 0, 3],
            proto: 6,
            dport: 40000,
            download: true,
            at: "2026-12-01T10:00",
            want_user: "bob",
            want_class: "webmail",
            want_verdict: "deny",
        },
    ];
    for (n, c) in cases.iter().enumerate() {
        let ip = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_string();
        let proto = if c.proto == 6 { "tcp" } else { "udp" };
        let port_flag = if c.download { "--sport" } else { "--dport" };
        let remote_port = if c.download { 443 } else { c.dport };
        let out = Command::new(policyd_bin())
            .args(["explain", "--json", "-p"])
            .arg(&path)
            .args([
                "--src",
                &ip(c.src),
                "--dst",
                &ip(c.dst),
                "--proto",
                proto,
                "--at",
                c.at,
            ])
            .args([port_flag, &remote_port.to_string()])
            .args([
                "--direction",
                if c.download { "download" } else { "upload" },
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "case {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let field = |k: &str| e[k].as_str().unwrap().to_owned();
        assert_eq!(
            (
                field("user").as_str(),
                field("class").as_str(),
                field("verdict").as_str()
            ),
            (c.want_user, c.want_class, c.want_verdict),
            "case {n}: {e}"
        );

        // The same packet through the kernel, in the profile explain named.
        let k = Kernel::with_profile(&text, Some(&field("profile")));
        // TC egress only where a case needs it: each costs the verifier seconds.
        let k = if c.download { k.with_tc() } else { k };
        let (sport, dport) = if c.download {
            (remote_port, c.dport)
        } else {
            (40000, c.dport)
        };
        let l4 = if c.proto == 6 {
            tcp(sport, dport, 0x10, &[])
        } else {
            udp(sport, dport, &[])
        };
        // Alice's frames come from her bound MAC; others from a MAC no user
        // has (explain's default when --src-mac is not given).
        let src_mac = if c.src == [10, 10, 0, 2] {
            ALICE_MAC
        } else {
            [2, 0, 0, 0, 0, 0xfe]
        };
        let frame = eth_macs(
            DST_MAC,
            src_mac,
            ETH_P_IP,
            &ipv4(c.src, c.dst, c.proto, &l4),
        );
        let direction = if c.download { DOWN } else { UP };
        let before = k.counters(c.want_user, c.want_class, direction);
        let ret = if c.download {
            k.run_tc(true, &frame)
        } else {
            k.run(&frame)
        };
        let after = k.counters(c.want_user, c.want_class, direction);
        let dropped = if c.download {
            ret == TC_ACT_SHOT
        } else {
            ret == XDP_DROP
        };
        match c.want_verdict {
            // A limit's first packet fits the burst: it passes.
            "pass" | "limit" => {
                assert!(!dropped, "case {n}");
                assert_eq!(after.pass_packets, before.pass_packets + 1, "case {n}");
            }
            "deny" => {
                assert!(dropped, "case {n}");
                assert_eq!(after.deny_packets, before.deny_packets + 1, "case {n}");
            }
            "monitor" => {
                assert!(!dropped, "case {n}");
                assert_eq!(
                    after.monitor_packets,
                    before.monitor_packets + 1,
                    "case {n}: {:?}",
                    k.dp.counters().all()
                );
            }
            other => panic!("case {n}: verdict {other}"),
        }
    }
}

#[test]
fn explain_says_why_in_words() {
    let _timing = crate::rates::shared();
    let (path, _) = example();
    let out = Command::new(policyd_bin())
        .args(["explain", "-p"])
        .arg(&path)
        .args([
            "--src",
            "10.20.0.7",
            "--dst",
            "192.0.2.9",
            "--proto",
            "tcp",
            "--dport",
            "445",
        ])
        .args(["--at", "2026-12-01T10:00"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("user:    lab (longest matching prefix 10.20.0.0/24)"),
        "{text}"
    );
    assert!(
        text.contains("profile: business (at 2026-12-01T10:00:00-05:00[America/New_York]"),
        "{text}"
    );
    assert!(
        text.contains("action:  monitor (rule bulk for user lab, business, from "),
        "{text}"
    );
    assert!(text.contains("acceptable-use.toml)"), "{text}");
}

#[test]
fn explain_shows_each_layer_and_the_one_enforced() {
    let _timing = crate::rates::shared();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.toml");
    let agency = dir.path().join("agency.toml");
    std::fs::write(
        &state,
        "[[class]]\nname = \"bulk\"\nmatch = { proto = \"tcp\", ports = [21] }\n[[user]]\nname = \"ian\"\nips = [\"10.0.0.2\"]\ngroup = \"it\"\n[[rule]]\nclass = \"bulk\"\naction = \"limit 50Mbit\"\n",
    )
    .unwrap();
    std::fs::write(
        &agency,
        "[[rule]]\nclass = \"bulk\"\ngroup = \"it\"\naction = \"limit 100Mbit\"\n",
    )
    .unwrap();
    let out = Command::new(policyd_bin())
        .arg("explain")
        .arg("-p")
        .arg(&state)
        .arg("-p")
        .arg(&agency)
        .args(["--src", "10.0.0.2", "--dst", "192.0.2.9", "--dport", "21"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).replace(&dir.path().display().to_string(), "DIR");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("action:  limit 50Mbit ("), "{text}");
    assert!(
        text.contains(
            "layers:  DIR/state.toml: limit 50Mbit (everyone); DIR/agency.toml: limit 100Mbit \
             (group it) -> limit 50Mbit, from DIR/state.toml\n"
        ),
        "{text}"
    );
}

/// `explain` says which bucket a limit of the unidentified user uses: the
/// sender's own (its IPv6 /64) by default, the one shared bucket if asked.
#[test]
fn explain_names_the_unidentified_senders_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = |extra: &str, src: &str, dst: &str, direction: &str| {
        let path = dir.path().join("unid.toml");
        std::fs::write(
            &path,
            format!("[unidentified]\naction = \"limit 10Mbit\"\n{extra}"),
        )
        .unwrap();
        let out = Command::new(policyd_bin())
            .arg("explain")
            .arg("--policy")
            .arg(&path)
            .args([
                "--src",
                src,
                "--dst",
                dst,
                "--direction",
                direction,
                "--json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["bucket"].as_str().unwrap_or_default().to_owned()
    };
    let b = bucket("", "10.9.0.7", "192.0.2.1", "upload");
    assert!(b.starts_with("per source: 10.9.0.7's own bucket"), "{b}");
    let b = bucket("slots = 64\n", "192.0.2.1", "2001:db8:1:2::9", "download");
    assert!(
        b.starts_with("per source: 2001:db8:1:2::/64's own bucket, in a table of 64 slots"),
        "the download's user end, by /64: {b}"
    );
    let b = bucket("buckets = \"shared\"\n", "10.9.0.7", "192.0.2.1", "upload");
    assert!(b.starts_with("shared"), "{b}");
}
