//! Layers are ceilings: an agency file layered on the state's cannot loosen
//! it, and an address has one owner whatever its spelling. The verdicts are
//! the kernel's (`BPF_PROG_TEST_RUN` on the programs loaded with the layered
//! policy); the refusals are `policyd check`'s and `policyd run`'s.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use policyd_tests::{packet::*, policyd_bin, topology::Net, topology::ScratchDir};

use crate::common::*;

const IAN: [u8; 4] = [10, 60, 0, 2];
const SAM: [u8; 4] = [10, 60, 0, 3];
const REMOTE: [u8; 4] = [10, 61, 0, 9];

/// The state's layer (ian in `it`, sam), on this test's addresses, with
/// `bulk` as its business-hours action for bulk.
fn state(bulk: &str) -> String {
    include_str!("../../../fixtures/layered-state.toml")
        .replace("\"10.0.0.", "\"10.60.0.")
        .replace(
            "business = \"limit 50Mbit\"",
            &format!("business = \"{bulk}\""),
        )
}

/// The agency's looser 100 Mbit/s for group `it`.
const AGENCY: &str = include_str!("../../../fixtures/layered-agency.toml");

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A full-size (1500-byte) FTP frame from `src`.
fn ftp_from(src: [u8; 4]) -> Vec<u8> {
    let l4 = tcp(40000, 21, 0x10, &[0; 1500 - 14 - 20 - 20]);
    let frame = eth(ETH_P_IP, &ipv4(src, REMOTE, 6, &l4));
    assert_eq!(frame.len(), 1500);
    frame
}

#[test]
fn an_agency_allow_cannot_lift_the_states_deny() {
    let _timing = crate::rates::shared();
    let dir = ScratchDir::new("layers-deny").unwrap();
    let paths = [
        write(dir.path(), "state.toml", &state("deny")),
        write(
            dir.path(),
            "agency.toml",
            "[[rule]]\nclass = \"bulk\"\ngroup = \"it\"\naction = \"allow\"\n",
        ),
    ];
    let k = Kernel::layered(&paths, "business");
    for (user, src) in [("ian", IAN), ("sam", SAM)] {
        let before = k.counters(user, "bulk", UP);
        assert_eq!(k.run(&ftp_from(src)), XDP_DROP, "{user}");
        let after = k.counters(user, "bulk", UP);
        assert_eq!(after.deny_packets, before.deny_packets + 1, "{user}");
        assert_eq!(after.pass_packets, before.pass_packets, "{user}");
    }
    // Off-hours the state allows bulk, and so does the agency.
    let k = Kernel::layered(&paths, "off_hours");
    assert_eq!(k.run(&ftp_from(IAN)), XDP_PASS);
}

/// How many back-to-back frames pass ian's bulk limit before the first is
/// dropped, and how long the run took. The frames are ECN-capable: the
/// limit then marks them while the burst runs low instead of dropping some
/// early (as it does TCP without ECN), so the first drop is where the burst
/// ends.
fn passed_before_first_drop(k: &Kernel) -> (u64, Duration) {
    let mut frame = ftp_from(IAN);
    set_tos(&mut frame, 0, 0b10);
    let start = Instant::now();
    for n in 0..10_000u64 {
        if k.run(&frame) == XDP_DROP {
            return (n, start.elapsed());
        }
    }
    panic!("10 000 frames and no drop: ian's bulk is not limited");
}

#[test]
fn the_states_50mbit_holds_against_the_agencys_100mbit_for_its_group() {
    let _timing = crate::rates::shared();
    let dir = ScratchDir::new("layers-limit").unwrap();
    let paths = [
        write(dir.path(), "state.toml", &state("limit 50Mbit")),
        write(dir.path(), "agency.toml", AGENCY),
    ];
    let k = Kernel::layered(&paths, "business");
    // The kernel's bucket: 50 Mbit/s is 6.25 MB/s and the default burst is
    // 250 ms of it, 1 562 500 bytes: 1041 full frames, plus what refills
    // while the run lasts. The agency's 100 Mbit/s would pass 2083.
    let (rate, burst, size) = (6_250_000.0, 1_562_500.0, 1500.0);
    let (passed, took) = passed_before_first_drop(&k);
    assert!(
        took < Duration::from_millis(200),
        "the run took {took:?}: too slow to tell the two limits apart"
    );
    let most = ((burst + rate * took.as_secs_f64()) / size).ceil() as u64 + 1;
    assert!(
        (1041..=most).contains(&passed),
        "{passed} frames passed in {took:?}; 50 Mbit/s allows 1041 to {most}"
    );
    let counters = k.counters("ian", "bulk", UP);
    assert_eq!(counters.pass_packets, passed);
    assert_eq!(counters.limit_packets, 1);
}

const ALICE: &str = "[[user]]\nname = \"alice\"\nips = [\"10.60.0.2\"]\naction = \"deny\"\n";
const MALLORY: &str = "[[user]]\nname = \"mallory\"\nips = [\"::ffff:10.60.0.2\"]\n";

/// Runs `policyd run` on `gw0` with `policies` layered; it must exit (within
/// 20 s, else it is killed and the test fails) without attaching anything.
/// Returns its stderr.
fn run_refuses(net: &Net, dir: &Path, policies: &[PathBuf]) -> String {
    let pin_dir = PathBuf::from(format!(
        "/sys/fs/bpf/policyd-test-layers-{}",
        std::process::id()
    ));
    let mut cmd = net.gw.command(&policyd_bin().display().to_string());
    cmd.args(["run", "--iface", "gw0", "--metrics-addr", "127.0.0.1:9660"])
        .arg("--pin-dir")
        .arg(&pin_dir);
    for p in policies {
        cmd.arg("--policy").arg(p);
    }
    let log = dir.join("run.log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            let _ = Command::new(policyd_bin())
                .args(["unload", "--pin-dir"])
                .arg(&pin_dir)
                .status();
            panic!(
                "policyd run accepted the policy:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(!net.gw.xdp_attached("gw0"), "nothing attached: {stderr}");
    assert!(!pin_dir.exists(), "nothing pinned: {stderr}");
    stderr
}

#[test]
fn an_alias_of_another_users_address_is_refused_by_check_and_run() {
    let _timing = crate::rates::shared();
    let net = Net::new("alias", 60, &[], &["10.60.0.2/24"]).unwrap();
    let dir = ScratchDir::new("layers-alias").unwrap();
    let one = write(dir.path(), "policy.toml", &format!("{ALICE}{MALLORY}"));
    let state = write(dir.path(), "state.toml", ALICE);
    let agency = write(dir.path(), "agency.toml", MALLORY);
    let d = dir.path().display().to_string();

    let check = |files: &[&PathBuf]| {
        let out = Command::new(policyd_bin())
            .arg("check")
            .args(files)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let one_file = format!(
        "{d}/policy.toml:7:8: user[1].ips[0]: `10.60.0.2/32` (written `::ffff:10.60.0.2`) \
         already belongs to user `alice` ({d}/policy.toml:3:8)"
    );
    let layered = format!(
        "{d}/agency.toml:3:8: user[0].ips[0]: user `mallory`: `10.60.0.2/32` (written \
         `::ffff:10.60.0.2`) is already user `alice`'s ({d}/state.toml:3:8)"
    );
    let e = check(&[&one]);
    assert!(e.contains(&one_file), "{e}");
    let e = check(&[&state, &agency]);
    assert!(e.contains(&layered), "{e}");

    let e = run_refuses(&net, dir.path(), &[one]);
    assert!(e.contains(&one_file), "{e}");
    let e = run_refuses(&net, dir.path(), &[state, agency]);
    assert!(e.contains(&layered), "{e}");
}
