//! `policyd replay` on a capture written here: per-packet lines, the
//! kernel's summary, and errors for files it cannot read. Needs root.

use std::{process::Command, time::Duration};

use pcap_file::pcap::{PcapPacket, PcapWriter};
use policyd_tests::{packet::*, policyd_bin};

const POLICY: &str = r#"
[sets]
webmail = ["203.0.113.0/24"]

[[class]]
name = "webmail"
match = { sets = ["webmail"] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]

[[user]]
name = "mallory"
ips = ["10.0.0.66"]
action = "deny"

[[rule]]
class = "webmail"
action = "deny"
"#;

fn run(pcap: &[u8], extra: &[&str]) -> (bool, String, String) {
    run_with(POLICY, pcap, extra)
}

fn run_with(policy: &str, pcap: &[u8], extra: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (cap, pol) = (dir.path().join("c.pcap"), dir.path().join("p.toml"));
    std::fs::write(&cap, pcap).unwrap();
    std::fs::write(&pol, policy).unwrap();
    let out = Command::new(policyd_bin())
        .arg("replay")
        .arg("--pcap")
        .arg(&cap)
        .arg("--policy")
        .arg(&pol)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn capture(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let len = u32::try_from(f.len()).unwrap();
        w.write_packet(&PcapPacket::new(Duration::from_millis(i as u64), len, f))
            .unwrap();
    }
    w.into_writer()
}

fn udp_from(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    eth(ETH_P_IP, &ipv4(src, dst, 17, &udp(40000, 443, &[0; 18])))
}

#[test]
fn replay_reports_each_packet_and_the_kernel_summary() {
    let _timing = crate::rates::shared();
    let frames = vec![
        udp_from([10, 0, 0, 2], [192, 0, 2, 1]),
        udp_from([10, 0, 0, 2], [203, 0, 113, 7]),
        udp_from([10, 0, 0, 66], [192, 0, 2, 1]),
        udp_from([10, 0, 0, 66], [192, 0, 2, 1]),
        udp_from([10, 9, 9, 9], [192, 0, 2, 1]),
        eth(ETH_P_ARP, &[0; 28]),
        udp_from([10, 0, 0, 2], [192, 0, 2, 1])[..20].to_vec(),
    ];
    let (ok, stdout, stderr) = run(&capture(&frames), &[]);
    assert!(ok, "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "#1 60 bytes: user=alice class=default direction=upload verdict=pass"
    );
    assert_eq!(
        lines[1],
        "#2 60 bytes: user=alice class=webmail direction=upload verdict=deny"
    );
    assert_eq!(
        lines[2],
        "#3 60 bytes: user=mallory class=default direction=upload verdict=deny"
    );
    assert_eq!(
        lines[4],
        "#5 60 bytes: user=unidentified class=default direction=upload verdict=pass"
    );
    assert!(lines[5].ends_with("verdict=non-ip"), "{}", lines[5]);
    assert!(lines[6].ends_with("verdict=malformed"), "{}", lines[6]);
    assert!(
        stdout.contains("7 packets replayed (0 refused by the test run)"),
        "{stdout}"
    );
    let row = |user: &str, class: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([user, class]))
            .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
    };
    // pass deny limit monitor bytes
    assert_eq!(
        row("alice", "default").as_deref(),
        Some("1 0 0 0 60"),
        "{stdout}"
    );
    assert_eq!(
        row("alice", "webmail").as_deref(),
        Some("0 1 0 0 60"),
        "{stdout}"
    );
    assert_eq!(
        row("mallory", "default").as_deref(),
        Some("0 2 0 0 120"),
        "{stdout}"
    );
    // --quiet keeps the summary only (and the packets the kernel and the
    // model disagree on: none); --json gives it as one document.
    let (ok, quiet, stderr) = run(&capture(&frames), &["--quiet", "--json"]);
    assert!(ok, "{quiet}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&quiet).expect(&quiet);
    assert_eq!(
        (&doc["packets"], &doc["refused"], &doc["disagreements"]),
        (&7.into(), &0.into(), &0.into()),
        "{quiet}"
    );
    assert_eq!(doc["verdicts"], serde_json::json!([]), "{quiet}");
    let mallory = doc["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == "mallory")
        .expect(&quiet);
    assert_eq!(
        (&mallory["class"], &mallory["deny"], &mallory["bytes"]),
        (&"default".into(), &2.into(), &120.into()),
        "{quiet}"
    );
}

/// The threats' state machines replay as in the kernel: alice's 150-byte
/// quota passes three 60-byte packets (the third reaches it) and denies the
/// rest; bob's mail takes one new connection a minute, so his second SYN
/// is limited while his ACKs pass. Each line is the model's verdict;
/// one the kernel's counters disagree with is flagged (and fails here).
#[test]
fn replay_shows_quotas_and_connection_limits_taking_hold() {
    let _timing = crate::rates::shared();
    let policy = format!(
        "{POLICY}
[[class]]
name = \"mail\"
match = {{ proto = \"tcp\", ports = [25] }}

[[user]]
name = \"bob\"
ips = [\"10.0.0.3\"]

[[rule]]
class = \"mail\"
action = \"limit 1Gbit conn 1/min conn-burst 1\"

[[quota]]
user = \"alice\"
quota = \"150B/day\"
exhausted = \"deny\"
"
    );
    let tcp_from = |flags: u8, sport: u16| {
        eth(
            ETH_P_IP,
            &ipv4(
                [10, 0, 0, 3],
                [192, 0, 2, 1],
                6,
                &tcp(sport, 25, flags, &[]),
            ),
        )
    };
    let mut frames = vec![udp_from([10, 0, 0, 2], [192, 0, 2, 1]); 5];
    frames.extend([
        tcp_from(0x02, 40000),
        tcp_from(0x10, 40000),
        tcp_from(0x02, 40001),
    ]);
    let (ok, stdout, stderr) = run_with(&policy, &capture(&frames), &[]);
    assert!(ok, "{stdout}\n{stderr}");
    let verdicts: Vec<&str> = stdout
        .lines()
        .take(frames.len())
        .map(|l| l.rsplit("verdict=").next().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        [
            "pass",
            "pass",
            "pass",
            "deny",
            "deny",
            "limit (passed)",
            "limit (passed)",
            "limit (connections)"
        ],
        "{stdout}"
    );
}

#[test]
fn replay_at_tc_egress_sees_downloads() {
    let _timing = crate::rates::shared();
    let frames = vec![udp_from([203, 0, 113, 7], [10, 0, 0, 2])];
    let (ok, stdout, stderr) = run(&capture(&frames), &["--hook", "tc-egress"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("#1 60 bytes: user=alice class=webmail direction=download verdict=deny"),
        "{stdout}"
    );
}

#[test]
fn replay_refuses_what_it_cannot_read() {
    let _timing = crate::rates::shared();
    let (ok, _, stderr) = run(b"not a capture at all", &[]);
    assert!(!ok);
    assert!(stderr.contains("is not a pcap file"), "{stderr}");
}
