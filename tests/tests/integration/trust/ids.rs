//! Stable ids (issue 9, items 6 and 7): a user's counters stay under their
//! name across a restart whatever order the policy lists users in, a user
//! added later starts from zero, and ids of users that left are reused once
//! their state is deleted, so any number of reloads works without a
//! restart.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap, Map, MapData};
use policy_common::{BucketKey, EventTimes, MAP_BUCKETS, MAP_EVENT_LIMITER, USER_UNIDENTIFIED};
use policyd::{
    dataplane::pinned_ids,
    policy::{self, CompiledPolicy, Slot},
};
use policyd_tests::{
    Daemon, metric_sum, metric_value,
    packet::udp4_frame,
    policyd_bin,
    topology::{Net, Topology, replace_file},
};

use crate::common::{Kernel, XDP_DROP, XDP_PASS};

/// Every packet counted under `user`, whatever the class, direction or
/// verdict.
fn packets(body: &str, user: &str) -> u64 {
    metric_sum(body, "policyd_packets_total", &[("user", user)])
}

fn user(name: &str, ip: &str, extra: &str) -> String {
    format!("[[user]]\nname = \"{name}\"\nips = [\"{ip}\"]\n{extra}\n")
}

#[test]
fn counters_stay_with_their_users_across_a_kill_9_and_a_reordered_policy() {
    let _timing = crate::rates::shared();
    let net = Net::new(
        "idsrst",
        70,
        &[],
        &[
            "10.70.0.2/24",
            "10.70.0.3/24",
            "10.70.0.4/24",
            "10.70.0.5/24",
            "10.70.0.6/24",
        ],
    )
    .unwrap();
    let v1 = [
        user("alice", "10.70.0.2", ""),
        user("bob", "10.70.0.3", ""),
        user("mallory", "10.70.0.4", "action = \"deny\""),
        user("dave", "10.70.0.5", ""),
    ]
    .concat();
    let mut topo = Topology::start(net, &policyd_bin(), &v1, &[]).unwrap();
    let pins = topo.daemon.pin_dir.clone();
    // Counts all different, so that any shift of history shows.
    for (src, port, n, arrive) in [
        ("10.70.0.2", 7000, 10, 10),
        ("10.70.0.3", 7001, 20, 20),
        ("10.70.0.4", 7002, 30, 0),
        ("10.70.0.5", 7003, 40, 40),
    ] {
        assert_eq!(topo.through(src, port, n).unwrap(), arrive, "{src}");
    }
    let body = topo.metrics().unwrap();
    let before: Vec<u64> = ["alice", "bob", "mallory", "dave"]
        .iter()
        .map(|u| packets(&body, u))
        .collect();
    assert_eq!(before, [10, 20, 30, 40], "{}", topo.diag(&body));

    topo.daemon
        .stop_with(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    // The next policy puts a new user first, drops dave, and lists the rest
    // backwards: positional ids would give newbie alice's history, alice
    // dave's and bob mallory's denials.
    let v2 = [
        user("newbie", "10.70.0.6", ""),
        user("mallory", "10.70.0.4", "action = \"deny\""),
        user("bob", "10.70.0.3", ""),
        user("alice", "10.70.0.2", ""),
    ]
    .concat();
    let policy_path = topo.dir.path().join("policy.toml");
    replace_file(&policy_path, &v2).unwrap();
    let pin_arg = pins.display().to_string();
    let next = Daemon::start(
        &topo.gw,
        &policyd_bin(),
        &["gw0"],
        &policy_path,
        Topology::metrics_addr(),
        &topo.dir.path().join("next.log"),
        &["--pin-dir", &pin_arg],
    )
    .unwrap();
    let body = topo.metrics().unwrap();
    let diag = || format!("{}\n--- next ---\n{}", topo.diag(&body), next.log_text());
    for (name, n) in [("alice", 10), ("bob", 20), ("mallory", 30)] {
        assert_eq!(packets(&body, name), n, "{name}'s counters{}", diag());
    }
    assert_eq!(
        metric_sum(
            &body,
            "policyd_packets_total",
            &[("user", "mallory"), ("verdict", "deny")]
        ),
        30,
        "mallory's denials stay hers{}",
        diag()
    );
    assert_eq!(
        packets(&body, "newbie"),
        0,
        "newbie inherits nothing{}",
        diag()
    );
    assert_eq!(packets(&body, "dave"), 0, "dave left, with his counters");

    // In the pinned allocation: the kept users have their ids, dave's was
    // retired and freed (his counters deleted), newbie has a new one.
    let ids = pinned_ids(&pins).unwrap();
    let id_of = |name: &str| {
        ids.users
            .iter()
            .find(|(_, s)| **s == Slot::Live(name.to_owned()))
            .map(|(id, _)| id)
    };
    assert_eq!(
        ["alice", "bob", "mallory"].map(id_of),
        [Some(1), Some(2), Some(3)]
    );
    assert_eq!(
        id_of("newbie"),
        Some(5),
        "not dave's id (4): its state was in the maps"
    );
    assert_eq!(ids.users.get(4), None, "dave's id is free again");
    let counters = policyd::dataplane::Counters::from_pins(&pins).unwrap();
    assert!(
        !counters.all().unwrap().iter().any(|(k, _)| k.user == 4),
        "dave's counters are deleted"
    );

    // New traffic counts under the right names.
    assert_eq!(topo.through("10.70.0.6", 7004, 5).unwrap(), 5);
    assert_eq!(topo.through("10.70.0.2", 7005, 3).unwrap(), 3);
    assert_eq!(topo.through("10.70.0.4", 7006, 2).unwrap(), 0);
    let body = topo.metrics().unwrap();
    assert_eq!(
        ["newbie", "alice", "bob", "mallory"].map(|u| packets(&body, u)),
        [5, 13, 20, 32],
        "{}",
        topo.diag(&body)
    );

    // `policyd top` names users from the pinned allocation: no --policy.
    let out = std::process::Command::new(policyd_bin())
        .args(["top", "--count", "1", "--interval", "0.1", "--pin-dir"])
        .arg(&pins)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // USER pass/s drop/s pkt/s drop/s limit/s | passed dropped (bytes)
    let dropped = |name: &str| -> String {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .split_whitespace()
            .nth(8)
            .unwrap()
            .to_owned()
    };
    assert_ne!(dropped("mallory"), "0", "{text}");
    assert_eq!(
        (dropped("alice"), dropped("newbie")),
        ("0".to_owned(), "0".to_owned()),
        "{text}"
    );
    let out = std::process::Command::new(policyd_bin())
        .args(["status", "--pin-dir"])
        .arg(&pins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("ids:         5 users (0 being retired, highest id 5), 1 classes"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(next);
}

#[test]
fn retired_ids_lose_their_state_before_a_new_name_gets_them() {
    let _timing = crate::rates::shared();
    // Alice is limited (a bucket), mallory denied (an event limit), bob
    // passes; all three get counters.
    let v1 = [
        user("alice", "10.73.0.2", "action = \"limit 1Mbit\""),
        user("mallory", "10.73.0.3", "action = \"deny\""),
        user("bob", "10.73.0.4", ""),
    ]
    .concat();
    let mut k = Kernel::new(&v1);
    assert_eq!(k.run(&udp4_frame([10, 73, 0, 2], 100)), XDP_PASS);
    assert_eq!(k.run(&udp4_frame([10, 73, 0, 3], 100)), XDP_DROP);
    assert_eq!(k.run(&udp4_frame([10, 73, 0, 4], 100)), XDP_PASS);
    let (alice, mallory, bob) = (k.user_id("alice"), k.user_id("mallory"), k.user_id("bob"));
    let dir = k.dp.pins().dir().to_owned();
    let buckets = || -> Vec<BucketKey> {
        let map: HashMap<MapData, BucketKey, u64> =
            Map::from_map_data(MapData::from_pin(dir.join(MAP_BUCKETS)).unwrap())
                .unwrap()
                .try_into()
                .unwrap();
        map.keys().map(Result::unwrap).collect()
    };
    // The users with an event time in the limiter (an array by user id).
    let limiter = || -> Vec<u32> {
        let map: Array<MapData, EventTimes> =
            Map::from_map_data(MapData::from_pin(dir.join(MAP_EVENT_LIMITER)).unwrap())
                .unwrap()
                .try_into()
                .unwrap();
        (0..map.len())
            .filter(|i| map.get(i, 0).unwrap() != EventTimes::default())
            .collect()
    };
    let users_counted = |k: &Kernel| -> Vec<u32> {
        let mut u: Vec<u32> =
            k.dp.counters()
                .all()
                .unwrap()
                .iter()
                .map(|(c, _)| c.user)
                .collect();
        u.sort_unstable();
        u.dedup();
        u
    };
    assert_eq!(users_counted(&k), [alice, mallory, bob]);
    assert!(
        buckets().iter().any(|b| b.user == alice),
        "alice has a bucket"
    );
    assert!(limiter().contains(&mallory), "and mallory an event limit");

    // A reload keeps bob and brings carol: alice and mallory are retired.
    let compile =
        |src: &str| CompiledPolicy::compile(&policy::parse(Path::new("v.toml"), src).unwrap());
    let v2 =
        k.dp.assign_ids(&compile(
            &[user("bob", "10.73.0.4", ""), user("carol", "10.73.0.5", "")].concat(),
        ))
        .unwrap();
    assert_eq!(v2.user("bob").unwrap().id, bob, "bob keeps his id");
    let carol = v2.user("carol").unwrap().id;
    assert!(
        ![alice, mallory].contains(&carol),
        "carol does not get an id whose state is still in the maps"
    );
    k.dp.apply(&v2).unwrap();
    assert_eq!(
        users_counted(&k),
        [bob],
        "alice's and mallory's counters are deleted"
    );
    assert!(
        !buckets().iter().any(|b| b.user == alice),
        "so is alice's bucket"
    );
    assert!(!limiter().contains(&mallory), "and mallory's event limit");
    let held: Vec<u32> = k.dp.ids().users.iter().map(|(id, _)| id).collect();
    assert_eq!(held, [USER_UNIDENTIFIED, bob, carol], "their ids are free");

    // The next new name gets a freed id, and starts from nothing.
    let v3 =
        k.dp.assign_ids(&compile(
            &[
                user("bob", "10.73.0.4", ""),
                user("carol", "10.73.0.5", ""),
                user("dave", "10.73.0.2", "action = \"deny\""),
            ]
            .concat(),
        ))
        .unwrap();
    let dave = v3.user("dave").unwrap().id;
    assert_eq!(dave, alice.min(mallory), "the lowest freed id");
    k.dp.apply(&v3).unwrap();
    k.policy = v3;
    assert_eq!(k.run(&udp4_frame([10, 73, 0, 2], 100)), XDP_DROP);
    let c = k.counters("dave", "default", crate::common::UP);
    assert_eq!(
        (c.pass_packets, c.deny_packets),
        (0, 1),
        "only his own packet"
    );
}

/// The policy of one churn round: the anchor, who stays, and 1000 users
/// with names never seen before.
fn churn_policy(round: usize) -> String {
    let mut text = user("anchor", "10.71.0.2", "");
    for i in 0..1000 {
        text.push_str(&user(
            &format!("r{round}u{i}"),
            &format!("10.72.{}.{}", i / 250, i % 250 + 2),
            "",
        ));
    }
    text
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.starts_with("Name:\tpolicyd"), "{status}");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn two_hundred_reloads_of_a_thousand_new_names_need_no_restart() {
    let _timing = crate::rates::shared();
    const ROUNDS: usize = 200;
    let net = Net::new("idschurn", 71, &[], &["10.71.0.2/24"]).unwrap();
    let topo = Topology::start(net, &policyd_bin(), &churn_policy(0), &[]).unwrap();
    let policy_path = topo.dir.path().join("policy.toml");
    let pid = topo.daemon.pid();
    let scrape = || topo.metrics().unwrap();
    let generation = |body: &str| metric_value(body, "policyd_policy_generation", &[]).unwrap();
    assert_eq!(topo.through("10.71.0.2", 7100, 20).unwrap(), 20);
    let rss_start = rss_kib(pid);

    let mut times = Vec::with_capacity(ROUNDS);
    let churn_start = Instant::now();
    for round in 1..=ROUNDS {
        replace_file(&policy_path, &churn_policy(round)).unwrap();
        let sent = Instant::now();
        topo.hup();
        // Generation 1 is the first policy; each round makes one more.
        let want = round as u64 + 1;
        loop {
            let body = scrape();
            let g = generation(&body);
            assert!(g <= want, "generation {g} in round {round}");
            if g == want {
                break;
            }
            assert_eq!(
                metric_value(&body, "policyd_reloads_total", &[("result", "failure")]),
                Some(0),
                "round {round}: a reload failed{}",
                topo.diag(&body)
            );
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "round {round}: no new generation after 10 s{}",
                topo.diag(&body)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        times.push(sent.elapsed());
    }
    let churn = churn_start.elapsed();
    let rss_end = rss_kib(pid);
    assert_eq!(topo.through("10.71.0.2", 7101, 20).unwrap(), 20);

    let body = scrape();
    assert_eq!(
        metric_value(&body, "policyd_reloads_total", &[("result", "failure")]),
        Some(0),
        "{}",
        topo.diag(&body)
    );
    assert_eq!(
        packets(&body, "anchor"),
        40,
        "the anchor's counters carried on"
    );
    let ids = pinned_ids(&topo.daemon.pin_dir).unwrap();
    assert_eq!(
        ids.users.len(),
        1002,
        "unidentified, the anchor and the last 1000"
    );
    assert!(
        ids.users.highest().unwrap() < 2002,
        "ids are reused: highest {:?}",
        ids.users.highest()
    );
    assert!(
        metric_value(&body, "policyd_map_entries", &[("map", "USER_INFO")]).unwrap() <= 2002,
        "{}",
        topo.diag(&body)
    );
    assert!(
        ids.users.iter().all(|(_, s)| matches!(s, Slot::Live(_))),
        "nothing left retiring"
    );

    // What policyd says each reload took (read, compile, assign ids, write,
    // switch, grace, retire); the round trip above adds the scrapes and,
    // when the file watcher's trigger wins over SIGHUP, its debounce.
    let log = topo.daemon.log_text();
    let took: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("policy reloaded"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ms=")))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(took.len(), ROUNDS, "one reload per round{}", topo.diag(""));
    let mean = times.iter().sum::<Duration>() / ROUNDS as u32;
    println!(
        "churn: {ROUNDS} reloads of 1000 new names in {:.1} s; reload {} ms mean, {} ms max (policyd's log); \
         SIGHUP to new generation {:.0} ms mean, {:.0} ms max; policyd VmRSS {rss_start} KiB at the start, {rss_end} KiB at the end",
        churn.as_secs_f64(),
        took.iter().sum::<u64>() / ROUNDS as u64,
        took.iter().max().unwrap(),
        mean.as_secs_f64() * 1e3,
        times.iter().max().unwrap().as_secs_f64() * 1e3,
    );
}
