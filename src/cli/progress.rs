//! The one progress bar of the command line (on stderr; hidden when it is not a terminal), and the training
//! observer that drives it.

use biqa::train::{EvalLog, Observer, StepLog};
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar, or nothing (one item, JSON output): every method is then a no-op and messages go to stderr.
#[derive(Debug, Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` items called `what` when `show`, otherwise nothing.
    pub fn items_if(show: bool, total: usize, what: &str) -> Self {
        let template =
            format!("{{bar:40}} {{pos}}/{{len}} {what}  {{per_sec}}  {{elapsed}} < {{eta}}");
        Self::with_template(show, total, &template)
    }

    /// A bar over `total` items called `what` when there are at least two.
    pub fn items(total: usize, what: &str) -> Self {
        Self::items_if(total > 1, total, what)
    }

    /// A bar over `total` optimiser steps, with a message (loss, learning rate, throughput).
    pub fn steps(total: usize) -> Self {
        Self::with_template(
            true,
            total,
            "{bar:30} step {pos}/{len}  {msg}  {elapsed} < {eta}",
        )
    }

    fn with_template(show: bool, total: usize, template: &str) -> Self {
        let bar = show.then(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Self { bar }
    }

    /// Whether a bar is shown.
    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Moves the bar to `done` items.
    pub fn set(&self, done: usize) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
        }
    }

    /// Advances the bar by one item.
    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Sets the bar's message.
    pub fn message(&self, message: String) {
        if let Some(b) = &self.bar {
            b.set_message(message);
        }
    }

    /// Prints a line above the bar, or on stderr without a bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// The [`Observer`] of `biqa train`: a step bar (made at the first step, when the total is known) with the loss,
/// the learning rate and the throughput; validation results and messages above it.
#[derive(Debug, Default)]
pub struct TrainProgress {
    /// The bar (none before the first step).
    pub progress: Progress,
}

impl Observer for TrainProgress {
    fn on_step(&mut self, log: &StepLog, total: usize) {
        if !self.progress.is_shown() {
            self.progress = Progress::steps(total);
        }
        self.progress.set(log.global_step);
        self.progress.message(format!(
            "{} loss {:.4}  lr {:.2e}  {:.0} tok/s",
            log.stage.name(),
            log.loss,
            log.lr,
            log.tokens_per_s
        ));
    }

    fn on_eval(&mut self, log: &EvalLog) {
        let mut line = format!(
            "validation after step {} ({}): SRCC {:.4}  PLCC {:.4} on {} images",
            log.global_step,
            log.stage.name(),
            log.srcc,
            log.plcc,
            log.images
        );
        if let (Some(i), Some(r)) = (log.instability, log.invalid_rate) {
            line.push_str(&format!("; instability {i:.4} (invalid answers {r:.3})"));
        }
        self.progress.println(&line);
    }

    fn on_message(&mut self, message: &str) {
        self.progress.println(message);
    }
}
