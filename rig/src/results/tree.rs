//! The tree of verdicts: a run (one kernel) holds groups, a group holds
//! steps. Every output format is written from it.

use std::path::PathBuf;
use std::time::Duration;

/// How a check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed, with the reason.
    Fail(String),
    /// Not run because an earlier failure made it meaningless.
    NotRun(String),
}

/// The result of one check.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Verdict.
    pub outcome: Outcome,
    /// Output of a guest command, or the host's finding.
    pub output: String,
    /// Wall time.
    pub elapsed: Duration,
    /// Made by the host on the shared memory (not in the guest).
    pub host_side: bool,
}

impl CheckResult {
    /// A guest-side result with no output (the rig's own verdicts).
    pub fn verdict(name: &str, outcome: Outcome) -> CheckResult {
        CheckResult { name: name.into(), outcome, output: String::new(), elapsed: Duration::ZERO, host_side: false }
    }

    /// True when it passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// Wall time of each phase.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    pub fetch: Duration,
    pub build: Duration,
    pub initramfs: Duration,
    pub boot: Duration,
    pub checks: Duration,
    pub shutdown: Duration,
    pub total: Duration,
}

/// The results of one named group of checks.
#[derive(Clone, Debug)]
pub struct TestResult {
    /// Group name (`boot`, `setup`, a test name, `teardown`).
    pub name: String,
    /// Its checks, in order.
    pub results: Vec<CheckResult>,
}

impl TestResult {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(CheckResult::passed)
    }
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Catalog name of the kernel.
    pub kernel: String,
    /// Kernel release booted.
    pub release: String,
    /// Results by group.
    pub tests: Vec<TestResult>,
    /// Every result, in order (all groups).
    pub results: Vec<CheckResult>,
    /// Directory with console.log, qemu.cmdline, kernel.log.
    pub run_dir: PathBuf,
    /// Whether `run_dir` was kept.
    pub kept: bool,
    /// Phase timings.
    pub timings: Timings,
}

impl RunReport {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(CheckResult::passed)
    }
}
