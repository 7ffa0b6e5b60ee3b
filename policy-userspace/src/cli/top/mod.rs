//! `policyd top`: a live view of the busiest users (or classes, or
//! directions), read from the pinned counters (so it works beside a running
//! daemon, and after one crashed with enforcement still in force).

mod table;

use std::{io::IsTerminal as _, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use policy_common::USER_UNIDENTIFIED;

use self::table::{GroupBy, Layout, SortBy};

use crate::{
    dataplane,
    dataplane::{Counters, DEFAULT_PIN_DIR},
};

/// Show the top users (or classes, or directions) by traffic passed or
/// dropped, or rate-limit hits, refreshed live.
///
/// Rates are over the last interval, passed and dropped apart (packets a
/// `monitor` action let through count as passed); totals since the counters
/// were created. `*` marks the column the rows are sorted by. Rows fit the
/// terminal's width (80 columns when it is not known; long names are cut
/// with `~`); piped, names are never cut. Names come from the pinned id
/// allocation. Press Ctrl-C to stop.
#[derive(Debug, clap::Args)]
pub(super) struct TopArgs {
    /// The pin directory `policyd run` uses.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pin_dir: PathBuf,
    /// The policy files in force, to name users when the pinned state has
    /// no names (left by a policyd older than the pinned id allocation).
    #[arg(long = "policy", short = 'p', value_name = "FILE")]
    policies: Vec<PathBuf>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    interval: f64,
    /// Stop after this many refreshes (for scripts); default: until Ctrl-C.
    #[arg(long, value_name = "N")]
    count: Option<u32>,
    /// Rows to show.
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    /// What ranks the rows: its rate over the interval, then its total.
    #[arg(long, value_enum, default_value_t = SortBy::Bytes)]
    sort: SortBy,
    /// What a row is: a user, a class, or a direction (upload, download).
    #[arg(long = "by", value_enum, default_value_t = GroupBy::User)]
    by: GroupBy,
}

/// `names` by id; an id with no name (free, or retired with its counters
/// about to go) shows as its number.
fn name(names: &[String], id: u32) -> String {
    names
        .get(id as usize)
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("#{id}"), Clone::clone)
}

/// The terminal's width in columns, if standard output is one that says.
fn terminal_width() -> Option<usize> {
    // SAFETY: `winsize` is plain old data: all zeroes is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize it is given, on a descriptor
    // that stays open for the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &raw mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

pub(super) fn top(args: &TopArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.1) {
        bail!("--interval must be at least 0.1 seconds");
    }
    super::require_pins(&args.pin_dir)?;
    let counters = Counters::from_pins(&args.pin_dir).with_context(|| {
        format!(
            "cannot read the counters pinned in {} (is --pin-dir the one `policyd run` uses?)",
            args.pin_dir.display()
        )
    })?;
    let ids = dataplane::pinned_ids(&args.pin_dir);
    let from_files = || super::names_from(&args.policies);
    let names: Vec<String> = match (args.by, &ids) {
        (GroupBy::User, Ok(ids)) => ids.users.live_names(),
        (GroupBy::Class, Ok(ids)) => ids.classes.live_names(),
        (GroupBy::Direction, _) => Vec::new(),
        (by, Err(e)) => {
            tracing::warn!(error = %e, "the pinned state has no names; naming them from --policy");
            from_files()?
                .map(|p| match by {
                    GroupBy::Class => p.classes,
                    _ => p.users.into_iter().map(|u| u.name).collect(),
                })
                .unwrap_or_default()
        }
    };
    let label = |id: u32| match args.by {
        GroupBy::User if id == USER_UNIDENTIFIED => "(unidentified)".to_owned(),
        GroupBy::Direction => crate::wire::Direction::from_wire(id as u8)
            .as_str()
            .to_owned(),
        _ => name(&names, id),
    };
    // Clear the screen between frames for a person; a pipe gets one frame
    // after another, separated by a blank line.
    let live = std::io::stdout().is_terminal();
    let interval = Duration::from_secs_f64(args.interval);
    let mut before = table::group(&counters.all().context("reading the counters")?, args.by);
    let mut at = std::time::Instant::now();
    // What a script waits for before making the traffic the first frame is
    // to show (at debug level, so a person does not see it).
    tracing::debug!("counters read; the first frame counts from here");
    let mut frame = 0u32;
    while args.count.is_none_or(|n| frame < n) {
        std::thread::sleep(interval);
        let now = table::group(&counters.all().context("reading the counters")?, args.by);
        let secs = at.elapsed().as_secs_f64();
        at = std::time::Instant::now();
        let rows = table::rank(&before, &now, secs, args.sort);
        let layout = Layout {
            by: args.by,
            sort: args.sort,
            limit: args.limit,
            width: live.then(|| terminal_width().unwrap_or(80)),
        };
        let text = table::render(&rows, &label, layout, secs);
        let text = if live {
            format!(
                "\x1b[H\x1b[2Jpolicyd top: {}\n\n{text}",
                args.pin_dir.display()
            )
        } else if frame > 0 {
            format!("\n{text}")
        } else {
            text
        };
        super::write_stdout(text.as_bytes())?;
        before = now;
        frame += 1;
    }
    Ok(())
}
