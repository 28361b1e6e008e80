//! The tree of verdicts: a run (one kernel) holds groups, a group holds
//! steps. Every output format is written from it.

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
