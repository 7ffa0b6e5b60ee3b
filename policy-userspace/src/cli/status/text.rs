//! `policyd status` as text, for a person.

use super::{
    Report,
    liveness::{State, human_duration},
};

fn ingress_text(code: &str) -> &'static str {
    match code {
        "xdp_native" => "xdp native",
        "xdp_generic" => "xdp generic (skb mode: the driver has no native XDP)",
        "xdp" => "xdp (mode unknown: adopted from an older policyd)",
        "tc" => "tc ingress",
        _ => "unknown",
    }
}

fn daemon_line(r: &Report) -> String {
    let d = &r.daemon;
    let pid = d.pid.unwrap_or(0);
    let version = d.version.as_deref().unwrap_or("?");
    let started = d.started_at.as_deref().unwrap_or("?");
    match d.state {
        State::Serving => format!(
            "serving (pid {pid}, up {}, policyd {version})",
            human_duration(d.uptime_seconds.unwrap_or(0))
        ),
        State::Starting => format!(
            "starting (pid {} holds the pins and has not recorded itself yet)",
            d.lock_holder.unwrap_or(0)
        ),
        State::Stopped => format!(
            "not running (stopped cleanly at {}; pid {pid}, policyd {version}, started {started}); \
             enforcement stays in force from the pins",
            d.stopped_at.as_deref().unwrap_or("?")
        ),
        State::Gone => format!(
            "not running (enforcement pinned by pid {pid}, policyd {version} started {started}, \
             which is gone without stopping: killed or crashed); enforcement stays in force from \
             the pins"
        ),
        State::NotRunning => "not running (enforcement stays in force from the pins)".to_owned(),
    }
}

/// The report as text; `named_by_files`: --policy was given (to say where
/// a profile name came from when the pins have none).
pub(super) fn render(r: &Report, named_by_files: bool) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("pins:        {}", r.pin_dir));
    line(format!("daemon:      {}", daemon_line(r)));
    if !r.interfaces.is_empty() {
        line("interfaces:".to_owned());
        for i in &r.interfaces {
            line(format!(
                "  {:<16} {:<8} ingress {}{}",
                i.name,
                i.side,
                ingress_text(i.ingress),
                if i.tc_egress { ", tc egress" } else { "" }
            ));
        }
    }
    line(format!(
        "attached:    {}",
        if r.links.is_empty() {
            "nothing (programs are not attached)".to_owned()
        } else {
            r.links.join(", ")
        }
    ));
    line(format!(
        "mode:        {}",
        if r.mode == "monitor" {
            "monitor (dry run)"
        } else {
            "enforce"
        }
    ));
    let p = &r.profile;
    line(format!(
        "profile:     {}",
        match &p.name {
            Some(n) => n.clone(),
            None if named_by_files => format!("#{} (not in the policy files given)", p.index),
            None => format!("#{} (the pins name no profiles: give --policy)", p.index),
        }
    ));
    let written = match (&r.daemon.policy_written_at, r.daemon.reloads) {
        (Some(at), Some(n)) => format!(
            "; written {at}, {n} reload{} since the start",
            if n == 1 { "" } else { "s" }
        ),
        _ => String::new(),
    };
    line(format!(
        "generation:  slot {} in force; {} class rules{written}",
        r.generation, r.class_rules
    ));
    match &r.ids {
        Some(ids) => line(format!(
            "ids:         {} users ({} being retired, highest id {}), {} classes",
            ids.users, ids.users_retiring, ids.highest_user_id, ids.classes
        )),
        None => line("ids:         unknown (the pins hold no names)".to_owned()),
    }
    line("maps (entries / capacity):".to_owned());
    for m in &r.maps {
        line(format!(
            "  {:<40} {:>9} / {:<9} ({:.1}%)",
            m.what,
            m.entries,
            m.capacity,
            100.0 * m.entries as f64 / f64::from(m.capacity.max(1))
        ));
    }
    let s = &r.scan;
    if s.enabled {
        line(format!(
            "scan detection: on ({}); {} in quarantine",
            if s.report_only {
                "report only"
            } else {
                "quarantine"
            },
            s.quarantined.len()
        ));
        for q in &s.quarantined {
            line(format!(
                "  {:<24} {:>6} s left  (too many distinct {})",
                q.user, q.seconds_left, q.reason
            ));
        }
    } else {
        line("scan detection: off".to_owned());
    }
    let q = &r.quotas;
    if q.enabled {
        line(format!(
            "quotas: {} ({} used up)",
            q.slots.len(),
            q.slots.iter().filter(|s| s.exhausted).count()
        ));
        for s in &q.slots {
            let since = s
                .period_start
                .as_ref()
                .map_or_else(|| "not started".to_owned(), |t| format!("since {t}"));
            line(format!(
                "  {:<24} {:<16} {:>14} / {:<14} ({:.1}%{}) {since}",
                s.user,
                s.class.as_deref().unwrap_or("(all traffic)"),
                s.used,
                s.limit,
                100.0 * s.used as f64 / s.limit.max(1) as f64,
                if s.exhausted { ", used up" } else { "" },
            ));
        }
    } else {
        line("quotas: none".to_owned());
    }
    let l = &r.learned;
    if l.enabled {
        let n: usize = l.sets.iter().map(|s| s.addresses.len()).sum();
        line(format!("learned by name: {n} addresses"));
        for s in &l.sets {
            line(format!("  set {}: {}", s.set, s.addresses.len()));
            for a in &s.addresses {
                line(format!(
                    "    {:<40} {:<40} {:<16} {}s left",
                    a.address,
                    a.name.as_deref().unwrap_or("(learned before a restart)"),
                    a.user,
                    a.seconds_left
                ));
            }
        }
    } else {
        line("learned by name: no domain sets".to_owned());
    }
    out
}
