//! The loaded kernel programs, driven through `BPF_PROG_TEST_RUN`, shared by
//! the kernel, differential, explain and trust tests.

use std::path::Path;

use aya::programs::{TestRun as _, TestRunOptions};
use policy_common::{Counters, dir};
use policyd::{
    dataplane::{
        Capacity, Dataplane, Pins, ReplayClock, TC_EGRESS_PROGRAM, TC_INGRESS_PROGRAM, XDP_PROGRAM,
    },
    policy::{self, CompiledPolicy},
};

pub(crate) const XDP_DROP: u32 = 1;
pub(crate) const XDP_PASS: u32 = 2;
pub(crate) const TC_ACT_OK: u32 = 0;
pub(crate) const TC_ACT_SHOT: u32 = 2;
pub(crate) const UP: u8 = dir::UPLOAD;
pub(crate) const DOWN: u8 = dir::DOWNLOAD;

/// `policy`'s dataplane with the XDP program verified; the TC ones are
/// verified when a test first runs them ([`Kernel::tc`]).
fn load(policy: &CompiledPolicy) -> Dataplane {
    let mut dp = Dataplane::load_programs(
        Capacity::default().fit(policy),
        Pins::ephemeral(),
        &[XDP_PROGRAM],
    )
    .expect("loading the programs (are you root?)");
    dp.apply(policy).unwrap();
    dp
}

pub(crate) struct Kernel {
    pub dp: Dataplane,
    pub policy: CompiledPolicy,
}

impl Kernel {
    /// Loads the programs with `src` as policy, in profile `business` if the
    /// policy has one (else `off_hours`).
    pub(crate) fn new(src: &str) -> Self {
        Self::with_profile(src, None)
    }

    pub(crate) fn with_profile(src: &str, profile: Option<&str>) -> Self {
        let policy = CompiledPolicy::compile(
            &policy::parse(Path::new("test.toml"), src).unwrap_or_else(|e| panic!("{e}")),
        );
        let mut dp = load(&policy);
        let slot = match profile {
            Some(name) => policy
                .profile(name)
                .unwrap_or_else(|| panic!("no profile {name}")),
            None => policy.profile("business").unwrap_or(0),
        };
        dp.set_profile(slot).unwrap();
        Self { dp, policy }
    }

    /// [`Self::new`] with a replay's programs: they read the time from the
    /// returned clock and draw early drops from a generator seeded with
    /// `seed` (policy-common's replay.rs).
    pub(crate) fn replay(src: &str, seed: u64) -> (Self, ReplayClock) {
        let policy = CompiledPolicy::compile(
            &policy::parse(Path::new("test.toml"), src).unwrap_or_else(|e| panic!("{e}")),
        );
        let (mut dp, clock) =
            Dataplane::load_replay(Capacity::default().fit(&policy), &[XDP_PROGRAM], seed)
                .expect("loading the programs (are you root?)");
        dp.apply(&policy).unwrap();
        (Self { dp, policy }, clock)
    }

    /// Loads the programs with the policy files `paths` layered as `policyd
    /// run --policy ... --policy ...` layers them, in profile `profile`.
    pub(crate) fn layered(paths: &[std::path::PathBuf], profile: &str) -> Self {
        let layered = policy::load_layers(paths).unwrap_or_else(|e| panic!("{e}"));
        let policy = CompiledPolicy::compile(&layered.policy);
        let mut dp = load(&policy);
        let slot = policy
            .profile(profile)
            .unwrap_or_else(|| panic!("no profile {profile}"));
        dp.set_profile(slot).unwrap();
        Self { dp, policy }
    }

    fn opts(frame: &[u8]) -> TestRunOptions<'_> {
        TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        }
    }

    /// Runs the XDP program on `frame`; returns the XDP action.
    pub(crate) fn run(&self, frame: &[u8]) -> u32 {
        self.dp
            .xdp()
            .unwrap()
            .test_run(Self::opts(frame))
            .unwrap()
            .return_value
    }

    /// Runs the XDP program and returns the frame as it left (ECN marks).
    pub(crate) fn run_out(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        };
        let r = self.dp.xdp().unwrap().test_run(opts).unwrap();
        out.truncate(r.data_size_out as usize);
        (r.return_value, out)
    }

    /// Runs a TC program (ingress or egress) on `frame`.
    pub(crate) fn run_tc(&self, egress: bool, frame: &[u8]) -> u32 {
        self.try_run_tc(egress, frame)
            .unwrap_or_else(|| panic!("the kernel refused a TC test run on {frame:02x?}"))
    }

    /// Like [`Self::run_tc`], but `None` when the kernel refuses the frame:
    /// the skb test run (6.18) rejects frames of no more than an Ethernet
    /// header and IP frames whose IP header is incomplete.
    pub(crate) fn try_run_tc(&self, egress: bool, frame: &[u8]) -> Option<u32> {
        let name = if egress {
            TC_EGRESS_PROGRAM
        } else {
            TC_INGRESS_PROGRAM
        };
        match self.tc(name).test_run(Self::opts(frame)) {
            Ok(r) => Some(r.return_value),
            Err(aya::programs::ProgramError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(22) =>
            {
                None
            }
            Err(e) => panic!("{name} test run on {} bytes: {e}", frame.len()),
        }
    }

    /// Runs TC egress on `frame` and returns the verdict and the
    /// `__sk_buff.priority` the program left (HTB reads it as a class id).
    pub(crate) fn run_tc_egress_priority(&self, frame: &[u8]) -> (u32, u32) {
        // struct __sk_buff: `priority` is the ninth u32. The test run takes
        // a zeroed context and hands back the one the program saw.
        const SKB_SIZE: usize = 192;
        const PRIORITY: usize = 32;
        let ctx_in = [0u8; SKB_SIZE];
        let mut ctx_out = [0u8; SKB_SIZE];
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx_in),
            ctx_out: Some(&mut ctx_out),
            ..TestRunOptions::default()
        };
        let r = self.tc(TC_EGRESS_PROGRAM).test_run(opts).unwrap();
        let priority = u32::from_ne_bytes(ctx_out[PRIORITY..PRIORITY + 4].try_into().unwrap());
        (r.return_value, priority)
    }

    /// Verifies the TC programs too: [`Self::new`] and the other
    /// constructors verify only XDP, since most tests run nothing else and
    /// each TC program costs the verifier seconds.
    pub(crate) fn with_tc(mut self) -> Self {
        for name in [TC_INGRESS_PROGRAM, TC_EGRESS_PROGRAM] {
            self.dp.load_program(name).unwrap();
        }
        self
    }

    /// TC program `name`; panics unless the Kernel was made [`Self::with_tc`].
    pub(crate) fn tc(&self, name: &'static str) -> &aya::programs::SchedClassifier {
        let tc = self.dp.tc(name).unwrap();
        assert!(
            tc.fd().is_ok(),
            "{name} is not loaded: make the Kernel with .with_tc()"
        );
        tc
    }

    pub(crate) fn user_id(&self, name: &str) -> u32 {
        self.policy
            .user(name)
            .unwrap_or_else(|| panic!("no user {name}"))
            .id
    }

    pub(crate) fn class_id(&self, name: &str) -> u32 {
        self.policy
            .classes
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no class {name}")) as u32
    }

    pub(crate) fn counters(&self, user: &str, class: &str, direction: u8) -> Counters {
        self.dp
            .counters()
            .total(self.user_id(user), self.class_id(class) as u16, direction)
            .unwrap()
    }

    /// Packets dropped for `reason` (a `policy_common::drop_reason` other
    /// than `RULE`: those have an entry of their own).
    pub(crate) fn dropped(&self, user: &str, class: &str, direction: u8, reason: u8) -> u64 {
        let c = self
            .dp
            .counters()
            .get(&policy_common::CounterKey {
                user: self.user_id(user),
                class: self.class_id(class) as u16,
                dir: direction,
                reason,
            })
            .unwrap();
        c.deny_packets + c.limit_packets
    }

    pub(crate) fn global(&self, index: u32) -> u64 {
        self.dp.counters().global(index).unwrap()
    }
}
