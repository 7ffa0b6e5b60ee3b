//! One pass of a capture through a policy: every packet through the kernel
//! program (`BPF_PROG_TEST_RUN`) at the capture's time, and through the
//! reference model as its check.
//!
//! Time: the programs are a replay's (policy-common's replay.rs), so rate
//! limits, elephants, connection rates, scan windows and event intervals
//! run on the capture's clock; the daemon's periodic work (profile
//! switches, quota periods, sketch ageing) is done here on the same clock.
//! The model takes the kernel's rate-limit outcome (`decide_after`), so
//! their states stay in step.

use std::collections::HashMap;

use aya::programs::{ProgramError, TestRun as _, TestRunOptions};
use jiff::Timestamp;
use policy_common::{CLASS_DEFAULT, DECAY_INTERVAL_SECS, USER_UNIDENTIFIED, drop_reason, side};

use super::HookArg;
use crate::{
    capture::Record,
    dataplane::{
        Capacity, Dataplane, DataplaneError, ReplayClock, TC_EGRESS_PROGRAM, TC_INGRESS_PROGRAM,
        XDP_PROGRAM,
    },
    model::{Hook, Model, Parsed, Verdict, parse},
    policy::{CompiledPolicy, Policy},
    schedule,
};

/// The longest frame a test run takes: a page less the room the kernel
/// keeps around the data (XDP: 256 bytes of headroom and the shared info;
/// kernel 6.18's `bpf_test_init`). Longer frames are what GRO and TSO
/// make on the capturing host, never seen on a wire.
pub(super) const MAX_RUN_FRAME: usize = 3_500;

/// Where the programs' clock starts (the model's origin: any but 0).
const CLOCK_ORIGIN: u64 = 1 << 40;

/// What happened to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Pass,
    Deny,
    /// Dropped by a limit (rate, connections, a quota's limit).
    Limited,
    Monitor,
    Malformed {
        dropped: bool,
    },
    /// A non-IP frame no rule matched: passed unenforced.
    NonIp,
    /// The kernel's test run refused the frame (too short for its
    /// headers).
    Refused,
    /// Longer than a test run takes ([`MAX_RUN_FRAME`]).
    Oversize,
}

impl Outcome {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Deny => "deny",
            Self::Limited => "limited",
            Self::Monitor => "monitor",
            Self::Malformed { dropped: true } => "malformed (dropped)",
            Self::Malformed { dropped: false } => "malformed (passed)",
            Self::NonIp => "non-ip",
            Self::Refused => "refused",
            Self::Oversize => "oversize",
        }
    }
}

/// One packet's verdict, with who and what it was.
#[derive(Debug, Clone)]
pub(super) struct Step {
    /// 1-based, in capture order.
    pub n: u64,
    pub ts_ns: u64,
    /// Bytes as the kernel counted them (the original length).
    pub len: u64,
    pub user: u32,
    pub class: u32,
    pub dir: u8,
    pub profile: usize,
    pub outcome: Outcome,
    /// A `policy_common::drop_reason` (the model's; a class aggregate's
    /// limit shows as `RULE`).
    pub reason: u8,
    /// The kernel and the model agree on the verdict.
    pub agrees: bool,
}

/// The per-(user, class, direction) packet count the model gave, for the
/// check against the kernel's counters at the end.
pub(super) type Attribution = HashMap<(u32, u32, u8), u64>;

pub(super) struct Engine<'a> {
    policy: &'a Policy,
    pub dp: Dataplane,
    clock: ReplayClock,
    model: Model<'a>,
    hook: Option<HookArg>,
    fixed_profile: Option<usize>,
    pub profile: usize,
    burst: bool,
    first_ts: Option<u64>,
    /// The capture time of the last packet, ns (never goes back).
    last_ts: u64,
    /// The capture second the periodic work last ran for.
    second: Option<u64>,
    next_decay: u64,
    n: u64,
    pub attribution: Attribution,
    pub reordered: u64,
    /// Packets the model did not see because the kernel could not run
    /// them (refused, oversize).
    pub unrun: u64,
    egress_loaded: bool,
}

impl<'a> Engine<'a> {
    /// Loads a replay's programs with `compiled` in force.
    pub(super) fn load(
        policy: &'a Policy,
        compiled: &'a CompiledPolicy,
        hook: Option<HookArg>,
        fixed_profile: Option<usize>,
        burst: bool,
        seed: u64,
    ) -> Result<Self, DataplaneError> {
        // Only the programs the packets go through: the verifier takes a
        // second or more per program on a small machine. By direction, TC
        // egress is loaded at the first download.
        let programs: &[&'static str] = match hook {
            Some(HookArg::Xdp) | None => &[XDP_PROGRAM],
            Some(HookArg::TcIngress) => &[TC_INGRESS_PROGRAM],
            Some(HookArg::TcEgress) => &[TC_EGRESS_PROGRAM],
        };
        let (mut dp, clock) =
            Dataplane::load_replay(Capacity::default().fit(compiled), programs, seed)?;
        dp.apply(compiled)?;
        let profile = fixed_profile.unwrap_or(0);
        dp.set_profile(profile)?;
        let model = Model::new(compiled, profile)
            .with_sketch_width(dp.capacity().sketch_width)
            .with_conn_flow_width(dp.capacity().conn_flow_width);
        Ok(Self {
            policy,
            dp,
            clock,
            model,
            hook,
            fixed_profile,
            profile,
            burst,
            first_ts: None,
            last_ts: 0,
            second: None,
            next_decay: DECAY_INTERVAL_SECS,
            n: 0,
            attribution: HashMap::new(),
            reordered: 0,
            unrun: 0,
            egress_loaded: false,
        })
    }

    /// Where a packet is seen: the hook named, else upload when its source
    /// is a user's (as on a gateway seeing both ways), download when its
    /// destination is, upload (by `unidentified`) when neither is.
    fn hook_for(&self, frame: &[u8]) -> Hook {
        let upload = Hook::XDP_USERS;
        let download = Hook {
            side: side::USERS,
            egress: true,
        };
        match self.hook {
            Some(HookArg::Xdp | HookArg::TcIngress) => return upload,
            Some(HookArg::TcEgress) => return download,
            None => {}
        }
        let (src, dst, src_mac, dst_mac) = match parse(frame) {
            Parsed::Ip(p) => (Some(p.src), Some(p.dst), p.src_mac, p.dst_mac),
            Parsed::Other(p) => (None, None, p.src_mac, p.dst_mac),
            Parsed::Malformed => return upload,
        };
        if self.model.is_users(src.as_ref(), &src_mac) {
            upload
        } else if self.model.is_users(dst.as_ref(), &dst_mac) {
            download
        } else {
            upload
        }
    }

    /// The daemon's once-a-second work, at the capture's second `second`.
    fn each_second(&mut self, ts_ns: u64, since_start_s: u64) -> Result<(), DataplaneError> {
        let at = Timestamp::from_nanosecond(i128::from(ts_ns)).unwrap_or(Timestamp::UNIX_EPOCH);
        if self.fixed_profile.is_none() {
            let next = schedule::active_profile(
                &self.policy.schedules,
                &self.policy.settings.timezone,
                at,
            );
            if next != self.profile {
                self.dp.set_profile(next)?;
                self.model.set_profile(next);
                self.profile = next;
            }
        }
        let rolled = self
            .dp
            .quota_table()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .roll(at)?;
        if rolled > 0 {
            // A period began: the model's quotas begin again with the
            // kernel's (the slots it rolled are at zero).
            self.model.reset_quotas(
                &self
                    .dp
                    .quota_table()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .usage()?,
            );
        }
        while since_start_s >= self.next_decay {
            self.dp.flow_sketch().decay()?;
            self.model.decay_sketch();
            self.next_decay += DECAY_INTERVAL_SECS;
        }
        Ok(())
    }

    /// Replays one packet.
    pub(super) fn step(&mut self, record: &Record) -> Result<Step, DataplaneError> {
        self.n += 1;
        let first = *self.first_ts.get_or_insert(record.ts_ns);
        // Interfaces of a pcapng file interleave slightly out of order:
        // time never goes back for the programs.
        if record.ts_ns < self.last_ts {
            self.reordered += 1;
        }
        let ts = if self.burst {
            first
        } else {
            record.ts_ns.max(self.last_ts)
        };
        self.last_ts = ts;
        let since = ts.saturating_sub(first);
        let second = ts / 1_000_000_000;
        if self.second != Some(second) {
            self.second = Some(second);
            self.each_second(ts, since / 1_000_000_000)?;
        }
        let now = CLOCK_ORIGIN + since;
        self.clock.set(now)?;
        self.model.set_clock(now);

        let hook = self.hook_for(&record.frame);
        let len = (record.orig_len as usize).max(record.frame.len());
        let mut step = Step {
            n: self.n,
            ts_ns: record.ts_ns,
            len: len as u64,
            user: USER_UNIDENTIFIED,
            class: CLASS_DEFAULT,
            dir: policy_common::dir::at(hook.side, hook.egress),
            profile: self.profile,
            outcome: Outcome::Oversize,
            reason: drop_reason::RULE,
            agrees: true,
        };
        if len > MAX_RUN_FRAME {
            self.unrun += 1;
            return Ok(step);
        }
        // A packet cut at the snap length is run at its length on the
        // wire: limits and counters see its bytes (zeros past the cut).
        let padded;
        let frame = if record.frame.len() < len {
            let mut f = Vec::with_capacity(len);
            f.extend_from_slice(&record.frame);
            f.resize(len, 0);
            padded = f;
            &padded[..]
        } else {
            &record.frame[..]
        };
        let Some(dropped) = self.run(frame, hook)? else {
            self.unrun += 1;
            step.outcome = Outcome::Refused;
            return Ok(step);
        };
        let d = self.model.decide_after(frame, hook, dropped);
        step.user = d.user;
        step.class = d.class;
        step.dir = d.dir;
        step.reason = self.model.last_reason();
        let (outcome, agrees) = match d.verdict {
            Verdict::Pass => (Outcome::Pass, !dropped),
            Verdict::Monitor => (Outcome::Monitor, !dropped),
            Verdict::Deny | Verdict::Spoofed => (Outcome::Deny, dropped),
            Verdict::Limited => (Outcome::Limited, dropped),
            Verdict::LimitConform if dropped => (Outcome::Limited, true),
            Verdict::LimitConform => (Outcome::Pass, true),
            Verdict::Malformed { dropped: d } => (Outcome::Malformed { dropped: d }, d == dropped),
            Verdict::NonIp => (Outcome::NonIp, !dropped),
        };
        step.outcome = outcome;
        step.agrees = agrees;
        // What the kernel's counters hold: IP packets and enforced non-IP
        // frames under their user, dropped malformed ones under
        // unidentified.
        let counted = match d.verdict {
            Verdict::NonIp => false,
            Verdict::Malformed { dropped } => dropped,
            _ => true,
        };
        if counted {
            *self
                .attribution
                .entry((d.user, d.class, d.dir))
                .or_default() += 1;
        }
        Ok(step)
    }

    /// The kernel's verdict on `frame`: dropped or not; `None` when the
    /// test run refuses the frame.
    fn run(&mut self, frame: &[u8], hook: Hook) -> Result<Option<bool>, DataplaneError> {
        if hook.egress && self.hook.is_none() && !self.egress_loaded {
            self.dp.load_program(TC_EGRESS_PROGRAM)?;
            self.egress_loaded = true;
        }
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        let (result, drop_code) = if hook.egress {
            (self.dp.tc(TC_EGRESS_PROGRAM)?.test_run(opts), TC_ACT_SHOT)
        } else if self.hook == Some(HookArg::TcIngress) {
            (self.dp.tc(TC_INGRESS_PROGRAM)?.test_run(opts), TC_ACT_SHOT)
        } else {
            (self.dp.xdp()?.test_run(opts), XDP_DROP)
        };
        match result {
            Ok(r) => Ok(Some(r.return_value == drop_code)),
            // The skb test run refuses frames too short for their headers.
            Err(ProgramError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EINVAL) =>
            {
                Ok(None)
            }
            Err(source) => Err(DataplaneError::TestRun(source)),
        }
    }

    /// Packets replayed.
    pub(super) fn packets(&self) -> u64 {
        self.n
    }
}

const XDP_DROP: u32 = 1;
const TC_ACT_SHOT: u32 = 2;
