//! The report as tables.

use std::io::Write;

use super::report::{Report, Tally};
use crate::capture::{Format, Stats};

/// What was read, and how the replay ran.
pub(super) fn header(
    out: &mut impl Write,
    file: &str,
    format: Format,
    stats: &Stats,
    report: &Report,
    burst: bool,
) -> std::io::Result<()> {
    let format = match format {
        Format::Pcap { nanos: true, .. } => "pcap (ns)",
        Format::Pcap { nanos: false, .. } => "pcap (µs)",
        Format::PcapNg => "pcapng",
    };
    let span = match (report.first_ns, report.last_ns) {
        (Some(a), Some(b)) => format!(" over {:.3} s", b.saturating_sub(a) as f64 / 1e9),
        _ => String::new(),
    };
    writeln!(out, "\n{file}: {format}, {} packets{span}", report.packets)?;
    if stats.truncated_packets > 0 {
        writeln!(
            out,
            "  {} packets captured short of their length (snap length): replayed at their length on the wire",
            stats.truncated_packets
        )?;
    }
    if stats.damaged > 0 {
        writeln!(
            out,
            "  {} damaged records skipped ({} bytes)",
            stats.damaged, stats.skipped_bytes
        )?;
    }
    if stats.unsupported > 0 {
        writeln!(
            out,
            "  {} packets of link types replay cannot read, skipped",
            stats.unsupported
        )?;
    }
    if stats.truncated_file {
        writeln!(out, "  the file ends inside a record: cut short")?;
    }
    if report.refused + report.oversize > 0 {
        writeln!(
            out,
            "  not replayed: {} too short for the kernel's test run, {} longer than it takes (GRO/TSO: capture with offloads off)",
            report.refused, report.oversize
        )?;
    }
    writeln!(
        out,
        "  {}",
        if burst {
            "replayed back to back (--burst): every packet at the first one's time"
        } else {
            "replayed at the capture's timing"
        }
    )
}

fn row(out: &mut impl Write, first: &str, t: &Tally) -> std::io::Result<()> {
    writeln!(
        out,
        "{first} {:>9} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9}",
        t.passed.packets,
        t.passed.bytes,
        t.limited.packets,
        t.limited.bytes,
        t.denied.packets,
        t.denied.bytes,
        t.monitored.packets,
    )
}

fn columns(out: &mut impl Write, first: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "{first} {:>9} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9}",
        "passed", "bytes", "limited", "bytes", "denied", "bytes", "monitor"
    )
}

/// Per user and class; per user; by hour and profile.
pub(super) fn tables(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    writeln!(out, "\nBy user and class:")?;
    columns(
        out,
        &format!("{:<16} {:<14} {:<9}", "user", "class", "direction"),
    )?;
    for (user, u) in &report.users {
        for ((class, dir), t) in &u.classes {
            row(out, &format!("{user:<16} {class:<14} {dir:<9}"), t)?;
        }
    }
    writeln!(out, "\nBy user:")?;
    writeln!(
        out,
        "{:<16} {:>8} {:>9} {:>9}  would be",
        "user", "dropped", "at limit", "packets"
    )?;
    for (user, u) in &report.users {
        let t = u.total();
        let mut would = Vec::new();
        if u.quarantined() {
            would.push("quarantined");
        }
        if u.hit_quota() {
            would.push("over quota");
        }
        writeln!(
            out,
            "{user:<16} {:>7.1}% {:>7} s {:>9}  {}",
            100.0 * t.dropped_share(),
            u.seconds_at_limit,
            t.passed.packets + t.limited.packets + t.denied.packets + t.monitored.packets,
            if would.is_empty() {
                "-".to_owned()
            } else {
                would.join(", ")
            }
        )?;
    }
    writeln!(out, "\nBy hour:")?;
    columns(out, &format!("{:<24} {:<14}", "hour", "profiles"))?;
    for h in report.hours.values() {
        let profiles: Vec<&str> = h.profiles.iter().map(String::as_str).collect();
        row(
            out,
            &format!("{:<24} {:<14}", h.hour, profiles.join(",")),
            &h.tally,
        )?;
    }
    writeln!(out, "\nBy profile:")?;
    columns(out, &format!("{:<14}", "profile"))?;
    for (p, t) in &report.profiles {
        row(out, &format!("{p:<14}"), t)?;
    }
    Ok(())
}
