//! Logs on stderr, in one of two shapes. For a person: timestamps, levels,
//! colours at a terminal. Under systemd, whose journal already stamps every
//! line and reads stderr as a stream (`JOURNAL_STREAM`): no timestamp, and
//! each line led by its sd-daemon(3) priority (`<3>` error, `<4>` warning,
//! `<6>` info, `<7>` debug), so that `journalctl -p err` finds a refused
//! reload. (Enforcement events never come here: they have a stream or file
//! of their own, `run --events`.)
//!
//! Not the native journal protocol (`tracing-journald`): that writes to a
//! fixed socket path, which neither a test nor a machine without journald
//! (this project's CI) can stand in for, and the stream with prefixes is
//! what systemd documents for daemons logging to stderr.

use std::{fmt, os::unix::fs::MetadataExt as _};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// Where stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stderr {
    /// A terminal, a file, a pipe: lines for a person.
    Plain,
    /// The journal's stream: priority prefixes, no timestamps.
    Journal,
}

/// Sets up logging to stderr, filtered by `RUST_LOG` (default `info`), and
/// says which shape it chose (for the last words of a failed command).
pub(super) fn init() -> Stderr {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = detect();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match stderr {
        Stderr::Journal => builder.with_ansi(false).event_format(JournalFormat).init(),
        // Colours only for a person at a terminal: a log file would get raw
        // escape sequences.
        Stderr::Plain => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    stderr
}

/// The journal's stream, when `JOURNAL_STREAM` names the very file stderr
/// is. The variable is inherited: a command started from a service (say
/// `policyd check` in a shell that `systemd-run` opened, writing to a
/// terminal) must not take it for its own, so the device and inode are
/// compared, as systemd.exec(5) tells.
fn detect() -> Stderr {
    let stream = std::env::var("JOURNAL_STREAM").ok();
    choose(stream.as_deref(), stderr_identity())
}

/// The shape for a `JOURNAL_STREAM` value and stderr's (device, inode).
fn choose(stream: Option<&str>, stderr: Option<(u64, u64)>) -> Stderr {
    match (stream.and_then(parse_journal_stream), stderr) {
        (Some(journal), Some(own)) if journal == own => Stderr::Journal,
        _ => Stderr::Plain,
    }
}

/// `DEVICE:INODE`, both decimal, as systemd writes `JOURNAL_STREAM`.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The device and inode of the file behind stderr.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd as _;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The sd-daemon(3) priority of a level (syslog's numbers).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// `text` with every line led by the priority prefix: the journal reads
/// each line as an entry of its own, and a continuation line without the
/// prefix would be filed as info.
pub(super) fn prefixed(level: Level, text: &str) -> String {
    let prefix = priority(level);
    let mut out = String::with_capacity(text.len() + 4);
    for line in text.split('\n') {
        out.push_str(&format!("<{prefix}>{line}\n"));
    }
    out
}

/// Message and fields, no timestamp, no level word (the priority says it).
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut text = String::new();
        ctx.format_fields(Writer::new(&mut text), event)?;
        writer.write_str(&prefixed(*event.metadata().level(), &text))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Every byte the formatter writes, in order.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the journal shape writes for the events `emit` logs.
    fn journal_lines(emit: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_ansi(false)
            .event_format(JournalFormat)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn each_level_gets_its_priority_and_no_timestamp() {
        let text = journal_lines(|| {
            tracing::error!(trigger = "SIGHUP", "reload refused");
            tracing::warn!("no --policy given");
            tracing::info!(users = 3, "enforcing");
            tracing::debug!("detail");
        });
        assert_eq!(
            text,
            "<3>reload refused trigger=\"SIGHUP\"\n\
             <4>no --policy given\n\
             <6>enforcing users=3\n\
             <7>detail\n"
        );
    }

    #[test]
    fn a_message_of_several_lines_keeps_its_priority_on_each() {
        let text = journal_lines(|| tracing::error!("the policy is invalid:\n  line 3: bad"));
        assert_eq!(text, "<3>the policy is invalid:\n<3>  line 3: bad\n");
    }

    #[test]
    fn the_last_error_is_prefixed_line_by_line() {
        assert_eq!(
            prefixed(Level::ERROR, "policyd: error: a\nb"),
            "<3>policyd: error: a\n<3>b\n"
        );
    }

    #[test]
    fn journal_stream_is_device_and_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("8:x"), None);
        assert_eq!(parse_journal_stream(""), None);
    }

    #[test]
    fn only_a_stream_naming_stderr_itself_is_the_journal() {
        let own = Some((8, 12345));
        assert_eq!(choose(Some("8:12345"), own), Stderr::Journal);
        // Inherited from a service by a command writing elsewhere.
        assert_eq!(choose(Some("8:999"), own), Stderr::Plain);
        assert_eq!(choose(None, own), Stderr::Plain);
        assert_eq!(choose(Some("garbage"), own), Stderr::Plain);
        assert_eq!(choose(Some("8:12345"), None), Stderr::Plain);
    }

    #[test]
    fn stderr_identity_is_that_of_the_file_behind_fd_2() {
        use std::os::fd::AsRawFd as _;
        let own = stderr_identity().expect("stderr has a device and inode");
        let via_proc =
            std::fs::metadata(format!("/proc/self/fd/{}", std::io::stderr().as_raw_fd()))
                .expect("stat /proc/self/fd/2");
        assert_eq!(own, (via_proc.dev(), via_proc.ino()));
    }
}
