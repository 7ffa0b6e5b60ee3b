//! Named steps with timings: a header as each starts, and a table of how
//! long each took at the end.

use std::time::{Duration, Instant};

use anyhow::Context as _;

#[derive(Default)]
pub(super) struct Steps {
    done: Vec<(&'static str, Duration)>,
}

impl Steps {
    /// Runs `step`, timing it; its error is wrapped with the step's name.
    pub(super) fn run(
        &mut self,
        name: &'static str,
        step: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        eprintln!("\n==> {name}");
        let started = Instant::now();
        let result = step();
        self.done.push((name, started.elapsed()));
        result.with_context(|| format!("step `{name}` failed"))
    }

    pub(super) fn print_timings(&self) {
        let width = self
            .done
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        eprintln!("\nstep timings:");
        for (name, took) in &self.done {
            eprintln!("  {name:<width$}  {:>7.1}s", took.as_secs_f64());
        }
    }
}
