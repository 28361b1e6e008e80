//! The one place that renders the engine's events for a person: a spinner
//! on a terminal or plain lines in CI logs for progress, `rig: ` notes on
//! stderr, and, for runs in parallel, one prefixed line per result. KTAP and
//! the other result formats are written by `rig::results`, not here.

use rig::exec::run::Event;
use rig::results::Status;
use std::io::IsTerminal;
use std::time::Duration;

/// Renders events of one run (or of several, each line prefixed).
pub struct Ui {
    bar: Option<indicatif::ProgressBar>,
    tty: bool,
    /// `[kernel] ` for runs in parallel; they never use a spinner.
    prefix: String,
    /// Group names of the running plan (for prefixed result lines).
    groups: Vec<String>,
}

impl Ui {
    /// For one run at a time: a spinner on a terminal.
    pub fn new() -> Ui {
        Ui { bar: None, tty: std::io::stderr().is_terminal(), prefix: String::new(), groups: vec![] }
    }

    /// For one of several runs at once: plain lines that name the kernel.
    pub fn for_kernel(kernel: &str) -> Ui {
        Ui { bar: None, tty: false, prefix: format!("[{kernel}] "), groups: vec![] }
    }

    /// Long work starts; a spinner until the next line.
    pub fn progress(&mut self, what: &str) {
        self.finish();
        if self.tty {
            let bar = indicatif::ProgressBar::new_spinner().with_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            self.bar = Some(bar);
        } else {
            eprintln!("rig: {}{what} ...", self.prefix);
        }
    }

    /// Ends the spinner, if any.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    /// A one-line note on stderr.
    pub fn note(&mut self, text: &str) {
        self.finish();
        eprintln!("rig: {}{text}", self.prefix);
    }

    /// An error line on stderr.
    pub fn error(&mut self, text: &str) {
        self.finish();
        eprintln!("rig: {}error: {text}", self.prefix);
    }

    /// Renders notes and progress. Plans and results go back to the caller,
    /// which writes them in its output format; a prefixed UI prints them as
    /// lines itself (parallel runs have no one stream to interleave KTAP in).
    pub fn event(&mut self, e: Event) -> Option<Event> {
        match e {
            Event::Note(s) => self.note(&s),
            Event::Progress(s) => self.progress(&s),
            Event::Plan(groups) if !self.prefix.is_empty() => {
                self.groups = groups.into_iter().map(|(n, _)| n).collect();
            }
            Event::Result { group, result } if !self.prefix.is_empty() => {
                let verdict = match result.outcome.status() {
                    Status::Pass => "ok",
                    Status::Skip => "skipped",
                    Status::Fail => "FAIL",
                    Status::Crash => "CRASH",
                    Status::NotRun => "not run",
                };
                let g = self.groups.get(group).map(String::as_str).unwrap_or("");
                eprintln!("rig: {}{verdict}: {g}: {}", self.prefix, result.name);
            }
            other => {
                self.finish();
                return Some(other);
            }
        }
        None
    }
}
