//! Totals over cargo test's per-binary `test result:` lines, so one line at
//! the end tells the whole run.

use std::fmt;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    /// Test binaries whose result line said FAILED.
    pub failed_binaries: u64,
}

impl Tally {
    /// Adds another tally's counts in (one tier's into the whole run's).
    pub(super) fn merge(&mut self, other: &Self) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
        self.failed_binaries += other.failed_binaries;
    }

    /// Adds `line` in if it is a result line such as
    /// `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
    pub(super) fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim_start().strip_prefix("test result: ") else {
            return;
        };
        let Some((verdict, counts)) = rest.split_once(". ") else {
            return;
        };
        for part in counts.split(';') {
            let mut words = part.split_whitespace();
            let (Some(count), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
        if verdict != "ok" {
            self.failed_binaries += 1;
        }
    }
}

/// `N passed, M failed`, with `, K skipped` when tests were ignored: the
/// plain closing line CI reads.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.ignored > 0 {
            write!(f, ", {} skipped", self.ignored)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(output: &str) -> Tally {
        let mut tally = Tally::default();
        output.lines().for_each(|line| tally.add_line(line));
        tally
    }

    #[test]
    fn sums_every_binary() {
        let output = "running 3 tests\n\
            test a ... ok\n\
            test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
            \n\
            test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s\n\
            test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
        assert_eq!(
            tally(output),
            Tally {
                passed: 7,
                failed: 2,
                ignored: 1,
                failed_binaries: 1
            }
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(
            tally("test result is fine\nok. 3 passed\n"),
            Tally::default()
        );
    }

    #[test]
    fn closing_line_mentions_skipped_only_when_some_were() {
        let mut t = Tally {
            passed: 5,
            failed: 1,
            ..Tally::default()
        };
        assert_eq!(t.to_string(), "5 passed, 1 failed");
        t.ignored = 2;
        assert_eq!(t.to_string(), "5 passed, 1 failed, 2 skipped");
    }
}
