//! `policyd replay` on captures written here: per-packet lines, the report,
//! capture timing, direction from the policy, what-if comparisons, and the
//! documented results for files it cannot read whole. Needs root.
//! Captures made by tcpdump from real traffic: replay_capture.rs.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

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

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n{}\n{}", self.code, self.stdout, self.stderr)
    }
}

fn run(pcap: &[u8], extra: &[&str]) -> Run {
    run_with(&[POLICY], pcap, extra)
}

/// Replays `pcap` with `policies[0]` (and `--against policies[1]`).
fn run_with(policies: &[&str], pcap: &[u8], extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.pcap");
    std::fs::write(&cap, pcap).unwrap();
    let mut cmd = Command::new(policyd_bin());
    cmd.arg("replay").arg("--pcap").arg(&cap);
    for (i, p) in policies.iter().enumerate() {
        let path = dir.path().join(format!("p{i}.toml"));
        std::fs::write(&path, p).unwrap();
        cmd.arg(if i == 0 { "--policy" } else { "--against" })
            .arg(path);
    }
    let out = cmd.args(extra).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Wednesday 2026-12-02 12:00:00 UTC, in ns.
const NOON: u64 = 1_796_212_800 * 1_000_000_000;

/// A classic pcap (little-endian, µs): `(ts_ns, original length, data)`
/// records of link type `linktype`, snap length `snaplen`.
fn pcap(linktype: u32, snaplen: u32, records: &[(u64, u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, snaplen, linktype] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for (ts, orig, data) in records {
        let (s, us) = (ts / 1_000_000_000, ts % 1_000_000_000 / 1000);
        for w in [s as u32, us as u32, data.len() as u32, *orig] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(data);
    }
    out
}

/// Ethernet frames 1 ms apart from noon.
fn capture(frames: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<_> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (NOON + i as u64 * 1_000_000, f.len() as u32, f.clone()))
        .collect();
    pcap(1, 65535, &records)
}

fn udp_from(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    eth(ETH_P_IP, &ipv4(src, dst, 17, &udp(40000, 443, &[0; 18])))
}

/// The report's row for (user, class, direction): passed, limited, denied
/// and monitored packets.
fn packets(doc: &serde_json::Value, user: &str, class: &str, direction: &str) -> [u64; 4] {
    let rows = doc["users"][user]["classes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(r) = rows
        .iter()
        .find(|r| r["class"] == class && r["direction"] == direction)
    else {
        return [0; 4];
    };
    ["passed", "limited", "denied", "monitored"].map(|k| r[k]["packets"].as_u64().unwrap())
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
    let r = run(&capture(&frames), &[]);
    assert!(r.ok(), "{r}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "#1 0.000000 udp 10.0.0.2:40000 > 192.0.2.1:443 60 bytes: \
         user=alice class=default direction=upload verdict=pass reason=-"
    );
    assert_eq!(
        lines[1],
        "#2 0.001000 udp 10.0.0.2:40000 > 203.0.113.7:443 60 bytes: \
         user=alice class=webmail direction=upload verdict=deny reason=deny_rule"
    );
    assert!(
        lines[2]
            .ends_with("user=mallory class=default direction=upload verdict=deny reason=deny_rule"),
        "{r}"
    );
    assert!(
        lines[4]
            .ends_with("user=unidentified class=default direction=upload verdict=pass reason=-"),
        "{r}"
    );
    assert!(lines[5].contains("ethertype 0x0806"), "{r}");
    assert!(lines[5].contains("verdict=non-ip"), "{r}");
    assert!(lines[6].contains("verdict=malformed"), "{r}");
    assert!(
        r.stdout.contains("pcap (µs), 7 packets over 0.006 s"),
        "{r}"
    );
    let row = |user: &str, class: &str| {
        r.stdout
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([user, class]))
            .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
    };
    // passed bytes limited bytes denied bytes monitor
    assert_eq!(
        row("alice", "default").as_deref(),
        Some("1 60 0 0 0 0 0"),
        "{r}"
    );
    assert_eq!(
        row("alice", "webmail").as_deref(),
        Some("0 0 0 0 1 60 0"),
        "{r}"
    );
    assert_eq!(
        row("mallory", "default").as_deref(),
        Some("0 0 0 0 2 120 0"),
        "{r}"
    );
    // --quiet keeps the report only (and the packets the kernel and the
    // model disagree on: none); --json gives it as one document.
    let q = run(&capture(&frames), &["--quiet", "--json"]);
    assert!(q.ok(), "{q}");
    let doc = q.json();
    assert_eq!(
        (&doc["packets"], &doc["refused"], &doc["disagreements"]),
        (&7.into(), &0.into(), &0.into()),
        "{q}"
    );
    assert_eq!(doc["verdicts"], serde_json::json!([]), "{q}");
    assert_eq!(
        packets(&doc, "mallory", "default", "upload"),
        [0, 0, 2, 0],
        "{q}"
    );
    assert_eq!(
        doc["users"]["mallory"]["drops_by_reason"]["deny_rule"], 2,
        "{q}"
    );
    assert_eq!(doc["capture"]["records"], 7, "{q}");
}

/// The threats' state machines replay as in the kernel: alice's 150-byte
/// quota passes three 60-byte packets (the third reaches it) and denies the
/// rest; bob's mail takes one new connection a minute, so his second SYN
/// is limited while his ACKs pass.
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
    let r = run_with(&[&policy], &capture(&frames), &[]);
    assert!(r.ok(), "{r}");
    let verdicts: Vec<&str> = r
        .stdout
        .lines()
        .take(frames.len())
        .map(|l| l.split("verdict=").nth(1).unwrap())
        .collect();
    assert_eq!(
        verdicts,
        [
            "pass reason=-",
            "pass reason=-",
            "pass reason=-",
            "deny reason=quota",
            "deny reason=quota",
            "pass reason=-",
            "pass reason=-",
            "limited reason=limit"
        ],
        "{r}"
    );
    assert!(r.stdout.contains("over quota"), "{r}");
}

#[test]
fn replay_takes_the_direction_from_the_policy_unless_a_hook_is_named() {
    let _timing = crate::rates::shared();
    let frames = vec![
        udp_from([10, 0, 0, 2], [203, 0, 113, 7]),
        // The server's reply: a download to alice, not an unidentified
        // upload.
        udp_from([203, 0, 113, 7], [10, 0, 0, 2]),
        udp_from([192, 0, 2, 9], [192, 0, 2, 1]),
    ];
    let r = run(&capture(&frames), &["--json"]);
    assert!(r.ok(), "{r}");
    let doc = r.json();
    let v = &doc["verdicts"];
    assert_eq!(
        (
            &v[1]["user"],
            &v[1]["direction"],
            &v[1]["class"],
            &v[1]["verdict"]
        ),
        (
            &"alice".into(),
            &"download".into(),
            &"webmail".into(),
            &"deny".into()
        ),
        "{r}"
    );
    assert_eq!(
        v[1]["packet"], "udp 203.0.113.7:40000 > 10.0.0.2:443",
        "{r}"
    );
    assert_eq!(
        (&v[2]["user"], &v[2]["direction"]),
        (&"unidentified".into(), &"upload".into())
    );
    // Named, the hook decides: at TC egress everything is a download, by
    // destination.
    let r = run(&capture(&frames[1..2]), &["--hook", "tc-egress"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stdout
            .contains("user=alice class=webmail direction=download verdict=deny"),
        "{r}"
    );
    let r = run(&capture(&frames[1..2]), &["--hook", "xdp"]);
    assert!(
        r.stdout
            .contains("user=unidentified class=default direction=upload verdict=pass"),
        "{r}"
    );
}

const LIMITED: &str = r#"
[[user]]
name = "alice"
ips = ["10.0.0.2"]
action = "limit 100pps burst 10"
"#;

/// 2000 datagrams from alice, 5 ms apart: twice her 100 pps.
fn twice_the_limit() -> Vec<u8> {
    let frame = udp_from([10, 0, 0, 2], [192, 0, 2, 1]);
    let records: Vec<_> = (0..2000u64)
        .map(|i| (NOON + i * 5_000_000, frame.len() as u32, frame.clone()))
        .collect();
    pcap(1, 65535, &records)
}

#[test]
fn limits_act_at_the_captures_timing_and_give_the_same_verdicts_every_time() {
    let _timing = crate::rates::shared();
    let cap = twice_the_limit();
    let a = run_with(&[LIMITED], &cap, &["--json"]);
    assert!(a.ok(), "{a}");
    let [passed, limited, ..] = packets(&a.json(), "alice", "default", "upload");
    // GCRA with 10 ms a packet and 100 ms of burst: the first 19 pass (each
    // adds 10 ms, 5 ms go by), then one every 10 ms from 100 ms to 9.99 s.
    assert_eq!((passed, limited), (19 + 990, 991), "{a}");
    assert_eq!(a.json()["users"]["alice"]["seconds_at_limit"], 10, "{a}");
    // Everything but the file's (temporary) name and the time the replay
    // took is the same.
    let same = |r: &Run| {
        let mut doc = r.json();
        doc["capture"]["file"] = serde_json::Value::Null;
        doc["seconds"] = serde_json::Value::Null;
        doc
    };
    let b = run_with(&[LIMITED], &cap, &["--json"]);
    assert!(same(&a) == same(&b), "the same capture, other verdicts");
    // Back to back, only the burst passes.
    let burst = run_with(&[LIMITED], &cap, &["--json", "--burst"]);
    assert_eq!(
        packets(&burst.json(), "alice", "default", "upload")[..2],
        [10, 1990],
        "{burst}"
    );
}

#[test]
fn the_profile_follows_the_captures_clock() {
    let _timing = crate::rates::shared();
    let policy = concat!(
        include_str!("../../../fixtures/business-hours.toml"),
        r#"
[settings]
timezone = "UTC"

[[class]]
name = "bulk"
match = { proto = "udp", ports = [443] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]

[[rule]]
class = "bulk"
business = "deny"
off_hours = "allow"
"#
    );
    let frame = udp_from([10, 0, 0, 2], [192, 0, 2, 1]);
    let hour = 3_600_000_000_000u64;
    // Wednesday 16:59:59 and 17:00:01 UTC.
    let records = vec![
        (NOON + 5 * hour - 1_000_000_000, 60, frame.clone()),
        (NOON + 5 * hour + 1_000_000_000, 60, frame),
    ];
    let r = run_with(&[policy], &pcap(1, 65535, &records), &["--json"]);
    assert!(r.ok(), "{r}");
    let doc = r.json();
    assert_eq!(doc["verdicts"][0]["verdict"], "deny", "{r}");
    assert_eq!(doc["verdicts"][1]["verdict"], "pass", "{r}");
    let hours: Vec<(&str, &serde_json::Value)> = doc["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["hour"].as_str().unwrap(), &h["profiles"]))
        .collect();
    assert_eq!(
        hours,
        [
            ("2026-12-02 16:00", &serde_json::json!(["business"])),
            ("2026-12-02 17:00", &serde_json::json!(["off_hours"]))
        ],
        "{r}"
    );
    // --profile holds one profile throughout.
    let r = run_with(
        &[policy],
        &pcap(1, 65535, &records),
        &["--json", "--profile", "business"],
    );
    assert_eq!(r.json()["verdicts"][1]["verdict"], "deny", "{r}");
}

#[test]
fn a_what_if_names_exactly_the_users_treated_differently() {
    let _timing = crate::rates::shared();
    let users = r#"
[sets]
webmail = ["203.0.113.0/24"]

[[class]]
name = "webmail"
match = { sets = ["webmail"] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]

[[user]]
name = "bob"
ips = ["10.0.0.3"]

[[user]]
name = "carol"
ips = ["10.0.0.4"]

[[user]]
name = "dave"
ips = ["10.0.0.5"]
"#;
    let today =
        format!("{users}\n[[rule]]\nclass = \"webmail\"\nuser = \"alice\"\naction = \"deny\"\n");
    // Tomorrow: bob's webmail denied as well, carol limited to 10 pps;
    // dave (no webmail) and alice (denied both times) are unaffected.
    let tomorrow = format!(
        "{today}\n[[rule]]\nclass = \"webmail\"\nuser = \"bob\"\naction = \"deny\"\n\n\
         [[rule]]\nclass = \"webmail\"\nuser = \"carol\"\naction = \"limit 10pps burst 2\"\n"
    );
    let mut frames = Vec::new();
    for _ in 0..20 {
        for src in [2, 3, 4] {
            frames.push(udp_from([10, 0, 0, src], [203, 0, 113, 7]));
        }
        frames.push(udp_from([10, 0, 0, 5], [192, 0, 2, 1]));
    }
    let r = run_with(&[&today, &tomorrow], &capture(&frames), &["--json"]);
    assert!(r.ok(), "{r}");
    let doc = r.json();
    let differ: Vec<&str> = doc["against"]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["user"].as_str().unwrap())
        .collect();
    assert_eq!(differ, ["bob", "carol"], "{r}");
    // Per packet, only those treated differently: bob's 20 and carol's
    // beyond her burst.
    let shown = doc["verdicts"].as_array().unwrap();
    assert!(
        shown
            .iter()
            .all(|v| v["user"] == "bob" || v["user"] == "carol"),
        "{r}"
    );
    assert_eq!(
        shown.iter().filter(|v| v["user"] == "bob").count(),
        20,
        "{r}"
    );
    let text = run_with(&[&today, &tomorrow], &capture(&frames), &["--quiet"]);
    assert!(
        text.stdout.contains("2 of 4 users treated differently"),
        "{text}"
    );
}

#[test]
fn replay_refuses_what_it_cannot_read() {
    let _timing = crate::rates::shared();
    let r = run(b"not a capture at all", &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("not a pcap or pcapng capture"), "{r}");
}

#[test]
fn damaged_and_cut_captures_are_replayed_as_far_as_they_go() {
    let _timing = crate::rates::shared();
    let frame = udp_from([10, 0, 0, 2], [192, 0, 2, 1]);
    let good: Vec<_> = (0..6u64)
        .map(|i| (NOON + i * 1_000_000, 60, frame.clone()))
        .collect();
    // A record whose captured length is absurd, between good ones: skipped
    // and counted, the rest replayed; exit status 3.
    let mut damaged = pcap(1, 65535, &good[..3]);
    let mut bad = pcap(1, 65535, &[(NOON + 3_000_000, 60, frame.clone())]);
    bad[24 + 8..24 + 12].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    damaged.extend_from_slice(&bad[24..]);
    damaged.extend_from_slice(&pcap(1, 65535, &good[3..])[24..]);
    let r = run(&damaged, &["--quiet"]);
    assert_eq!(r.code, Some(3), "{r}");
    assert!(r.stdout.contains("6 packets"), "{r}");
    assert!(r.stdout.contains("1 damaged records skipped"), "{r}");
    assert!(r.stderr.contains("damaged or cut short"), "{r}");
    // Cut inside the last record: what came before, and exit status 3.
    let whole = pcap(1, 65535, &good);
    let r = run(&whole[..whole.len() - 20], &["--quiet"]);
    assert_eq!(r.code, Some(3), "{r}");
    assert!(r.stdout.contains("5 packets"), "{r}");
    assert!(r.stdout.contains("cut short"), "{r}");
    // A link type replay cannot read (USER0): skipped, counted, exit 0.
    let r = run(&pcap(147, 65535, &good), &["--quiet"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stdout
            .contains("6 packets of link types replay cannot read"),
        "{r}"
    );
    // Captured short (snap length 42: the headers): replayed at the length
    // on the wire.
    let cut: Vec<_> = good
        .iter()
        .map(|(ts, _, f)| (*ts, 1000, f[..42].to_vec()))
        .collect();
    let r = run(&pcap(1, 42, &cut), &["--quiet", "--json"]);
    assert!(r.ok(), "{r}");
    let doc = r.json();
    assert_eq!(doc["capture"]["truncated_packets"], 6, "{r}");
    let row = &doc["users"]["alice"]["classes"][0];
    assert_eq!(row["passed"]["bytes"], 6000, "{r}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let _timing = crate::rates::shared();
    let dir = tempfile::tempdir().unwrap();
    let (cap, pol) = (dir.path().join("c.pcap"), dir.path().join("p.toml"));
    std::fs::write(&cap, twice_the_limit()).unwrap();
    std::fs::write(&pol, LIMITED).unwrap();
    let mut child = Command::new(policyd_bin())
        .args(["replay", "--pcap"])
        .arg(&cap)
        .arg("--policy")
        .arg(&pol)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: one line, then the pipe closes.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("#1 "), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}
