//! The monitoring assets against the real tools (issue 12): a policyd
//! carrying traffic (passed, limited, spoofed) and a refused reload;
//! `promtool check metrics` on its `/metrics`; OpenMetrics when asked; a real
//! Prometheus (Debian's) scraping it with the shipped rules, every rule
//! evaluating without error, the alerts whose conditions the test made
//! pending, every alert's and recording rule's query and every dashboard
//! panel's query returning data. Needs root and the `prometheus` package.

use std::{
    io::Write as _,
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use policyd_tests::{
    http_request, metric_value,
    packet::{ETH_P_IP, eth_macs, ipv4, udp},
    policyd_bin,
    topology::{ChildGuard, Net, Topology, send_frames},
};

const ALICE: &str = "10.170.0.2";
const BOB: &str = "10.170.0.3";
/// Prometheus listens beside policyd, in the gateway namespace.
const PROMETHEUS: &str = "127.0.0.1:9090";
/// A target that never answers, so that the `up == 0` alert has a real
/// down target to fire on.
const DEAD_TARGET: &str = "127.0.0.1:9";

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy-userspace/deploy/monitoring")
}

/// GET with headers; returns (status line and headers, body).
fn get(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    http_request(addr, path, headers).unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"))
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query's result vector (`data.result`).
fn query(topo: &Topology, promql: &str) -> Vec<serde_json::Value> {
    let addr: SocketAddr = PROMETHEUS.parse().unwrap();
    let path = format!("/api/v1/query?query={}", encode(promql));
    let (head, body) = topo.gw.run(move || get(addr, &path, "")).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{promql}: {e}: {head}\n{body}"));
    assert_eq!(v["status"], "success", "{promql}: {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The rules Prometheus loaded, as `/api/v1/rules` lists them.
fn rules(topo: &Topology) -> Vec<serde_json::Value> {
    let addr: SocketAddr = PROMETHEUS.parse().unwrap();
    let (_, body) = topo.gw.run(move || get(addr, "/api/v1/rules", "")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

/// An alert's expression without its threshold: the query a dashboard or
/// a person would look at, which returns data whether or not it fires.
fn without_threshold(expr: &str) -> &str {
    [" == ", " >= ", " > ", " < "]
        .iter()
        .filter_map(|op| expr.rfind(op))
        .max()
        .map_or(expr, |i| expr[..i].trim())
}

/// Spoofed frames: alice's address from another MAC.
fn spoofed_frames(topo: &Topology, n: usize) {
    let gw_mac = topo.gw.mac("gw0").unwrap();
    let mac: Vec<u8> = gw_mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let datagram = udp(40000, 7100, &[0x5a; 64]);
    let packet = ipv4([10, 170, 0, 2], [10, 170, 0, 1], 17, &datagram);
    let frame = eth_macs(
        mac.try_into().unwrap(),
        [0x02, 0, 0, 0, 0, 0xee],
        ETH_P_IP,
        &packet,
    );
    let sent = send_frames(&topo.cl, "cl0", vec![frame; n], Duration::from_millis(1)).unwrap();
    assert_eq!(sent, n);
}

#[test]
fn promtool_prometheus_the_rules_and_the_dashboard_accept_policyd() {
    let _timing = crate::rates::shared();
    let net = Net::new(
        "mon",
        170,
        &[],
        &[&format!("{ALICE}/24"), &format!("{BOB}/24")],
    )
    .unwrap();
    // Alice's address is bound to a MAC of her own, so frames from it with
    // another MAC are spoofed; bob sends for real, over his limit.
    let policy = format!(
        r#"
[metrics]
per_user = "top:1"

[[user]]
name = "alice"
ips = ["{ALICE}"]
macs = ["02:00:00:00:00:aa"]

[[user]]
name = "bob"
ips = ["{BOB}"]
action = "limit 200kbit burst 4KB"

[[quota]]
user = "bob"
quota = "1GB/day"
exhausted = "deny"
"#
    );
    let topo = Topology::start(net, &policyd_bin(), &policy, &[]).unwrap();
    let bob = topo.through(BOB, 7000, 200).unwrap();
    assert!(
        (1..200).contains(&bob),
        "bob is limited: {bob} of 200 arrived{}",
        topo.diag(&topo.metrics().unwrap_or_default())
    );
    spoofed_frames(&topo, 20);

    // The classic format by default, clean for promtool.
    let metrics: SocketAddr = Topology::metrics_addr();
    let (head, classic) = topo.gw.run(move || get(metrics, "/metrics", "")).unwrap();
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(!classic.contains("# EOF"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; `cargo xtask bootstrap` installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(classic.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{classic}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every family has HELP and TYPE naming its samples.
    assert!(classic.contains("# TYPE policyd_packets_total counter"));
    assert!(classic.contains("# HELP policyd_build_info "));
    assert!(classic.contains("# TYPE process_cpu_seconds_total counter"));
    assert_eq!(
        metric_value(&classic, "policyd_spoofed_packets_total", &[]),
        Some(20)
    );
    assert_eq!(
        metric_value(
            &classic,
            "policyd_active_profile",
            &[("profile", "off_hours")]
        ),
        Some(1)
    );
    // Drops by reason: bob's own limit; the spoofed frames under their
    // unregistered sender (summed into `_other` by top:1), never alice.
    let dropped = |user, reason| {
        policyd_tests::metric_sum(
            &classic,
            "policyd_dropped_packets_total",
            &[("user", user), ("reason", reason)],
        )
    };
    let (bob_limited, spoofed) = (dropped("bob", "limit_user"), dropped("_other", "spoofed"));
    assert!(
        (bob_limited > 0 || dropped("_other", "limit_user") > 0) && spoofed == 20,
        "bob limited {bob_limited}, spoofed {spoofed}:\n{classic}"
    );
    assert_eq!(dropped("alice", "spoofed"), 0);
    // OpenMetrics when asked.
    let (head, open) = topo
        .gw
        .run(move || {
            get(
                metrics,
                "/metrics",
                "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
            )
        })
        .unwrap();
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(open.trim_end().ends_with("# EOF"));

    // A refused reload: the last reload's gauge says so.
    std::fs::write(topo.dir.path().join("policy.toml"), "[[user]]\nname = 3\n").unwrap();
    topo.hup();
    topo.wait_until("the reload is refused", || topo.reloads("failure") == 1);

    // Prometheus with the shipped rules, scraping every second.
    let dir = topo.dir.path();
    let rules_file = monitoring_dir().join("rules.yml");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [\"{}\"]\n\
             scrape_configs:\n  - job_name: policyd\n    static_configs:\n      \
             - targets: [\"{metrics}\", \"{DEAD_TARGET}\"]\n",
            rules_file.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let _prometheus = ChildGuard::spawn(
        topo.gw
            .command("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={PROMETHEUS}"))
            .stdout(Stdio::null())
            .stderr(log),
    )
    .unwrap();
    let prom_log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    // Until policyd has been scraped a few times (rates need two samples)
    // and the rules have been evaluated since.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let addr: SocketAddr = PROMETHEUS.parse().unwrap();
        let path = format!(
            "/api/v1/query?query={}",
            encode(&format!(
                "count_over_time(up{{instance=\"{metrics}\"}}[1m]) >= 4"
            ))
        );
        // Not listening yet is not an error here.
        let ready = topo
            .gw
            .run(move || http_request(addr, &path, ""))
            .ok()
            .and_then(Result::ok)
            .is_some_and(|(_, body)| body.contains("\"result\":[{"));
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped policyd:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The traffic goes on while Prometheus watches (rates over windows
    // that hold more than one sample of growth).
    spoofed_frames(&topo, 20);
    assert!(topo.through(BOB, 7001, 200).unwrap() < 200);
    std::thread::sleep(Duration::from_secs(3));

    let rules = rules(&topo);
    assert_eq!(rules.len(), 13, "every rule of rules.yml loaded");
    for rule in &rules {
        let name = rule["name"].as_str().unwrap();
        let expr = rule["query"].as_str().unwrap();
        assert_eq!(rule["health"], "ok", "{name}: {rule}\n{}", prom_log());
        if rule["type"] == "recording" {
            assert!(
                !query(&topo, name).is_empty(),
                "no data recorded for {name}"
            );
        } else {
            let q = without_threshold(expr);
            assert!(
                !query(&topo, q).is_empty(),
                "alert {name}: no data for `{q}`"
            );
        }
    }
    // The conditions this test made.
    for alert in [
        "PolicydDown",
        "PolicydReloadRefused",
        "PolicydSpoofing",
        "PolicydUserAtLimit",
    ] {
        let state: Vec<String> = rules
            .iter()
            .filter(|r| r["name"] == alert)
            .map(|r| r["state"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(
            matches!(state.as_slice(), [s] if s == "pending" || s == "firing"),
            "{alert}: {state:?}"
        );
    }
    for quiet in [
        "PolicydMapNearlyFull",
        "PolicydEventsLost",
        "PolicydQuotaUsedUp",
    ] {
        assert!(
            rules
                .iter()
                .any(|r| r["name"] == quiet && r["state"] == "inactive"),
            "{quiet} should not fire"
        );
    }

    // Every dashboard panel's query, with the dashboard's variables as
    // Grafana would fill them.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "30s")
                .replace("$instance", ".*")
                .replace("$job", "policyd");
            let result = query(&topo, &expr);
            assert!(
                !result.is_empty(),
                "panel {:?}: no data for `{expr}`",
                panel["title"]
            );
            queries += 1;
        }
    }
    assert!(queries >= 14, "{queries} panel queries");
    // The sums of `top:1` are monotonic by construction (unit-tested); here
    // they exist beside the one user with a series.
    let users: Vec<String> = query(&topo, "sum by (user) (policyd_bytes_total)")
        .iter()
        .map(|s| s["metric"]["user"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(users.contains(&"_other".to_owned()), "{users:?}");
}

/// The rules' own unit tests (`rules_test.yml`): each alert fires on the
/// series that should fire it, after its `for`, and not on healthy ones;
/// the recording rules compute what they say.
#[test]
fn the_rules_pass_their_promtool_unit_tests() {
    for args in [
        &["check", "rules", "rules.yml"][..],
        &["test", "rules", "rules_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(monitoring_dir())
            .output()
            .expect("promtool (Debian's prometheus package)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
