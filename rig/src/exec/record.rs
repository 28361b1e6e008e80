//! The record of a run, `run.json` in its run directory: the checks in
//! order and, for each, what the logs alone cannot say (a host check's
//! finding, how a guest step's wait ended, which reports came during boot).
//! With console.log and shell.log it is all `rig parse` needs to give every
//! check the verdict the run gave it.

use super::step::GuestRecord;
use crate::plan::step::Source;
use crate::results::{CheckResult, Outcome};
use serde::{Deserialize, Serialize};

/// The file's name in the run directory.
pub const FILE: &str = "run.json";
/// Its format; a reader refuses others.
pub const FORMAT: u32 = 1;

/// A check's verdict as the run gave it, when the logs cannot re-derive it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fixed {
    pub status: String,
    pub message: Option<String>,
    pub output: String,
}

impl Fixed {
    /// Records `o` and `output`.
    pub fn of(r: &CheckResult) -> Fixed {
        Fixed {
            status: r.outcome.status().name().to_owned(),
            message: r.outcome.message().map(str::to_owned),
            output: r.output.clone(),
        }
    }

    /// Back to an outcome.
    pub fn outcome(&self) -> Outcome {
        let m = self.message.clone().unwrap_or_default();
        match self.status.as_str() {
            "pass" => Outcome::Pass,
            "crash" => Outcome::Crash(m),
            "not_run" => Outcome::NotRun(m),
            "skip" => Outcome::Skip(m),
            _ => Outcome::Fail(m),
        }
    }
}

/// How a check gets its verdict back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// A guest step: from shell.log, console.log and this.
    Guest(GuestRecord),
    /// No kernel report during boot: from console.log and the boot reports' lines.
    BootClean,
    /// No kernel report outside the steps: from console.log.
    KernelLog,
    /// As recorded: host checks, the rig's own boot checks, not run.
    Fixed(Fixed),
}

/// One check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub name: String,
    pub host_side: bool,
    pub elapsed_ms: f64,
    pub how: How,
    /// The kernel under this check died: its failure is a crash.
    #[serde(default)]
    pub crashed: bool,
    /// The step in the config (records before it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// One group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub name: String,
    pub checks: Vec<CheckRecord>,
}

/// The whole record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub format: u32,
    pub kernel: String,
    pub release: String,
    /// The run's marker secret (the step marks in console.log carry it).
    pub nonce: String,
    /// First lines (in console.log) of the reports made during boot.
    pub boot_reports: Vec<usize>,
    pub groups: Vec<GroupRecord>,
}

impl RunRecord {
    /// An empty record of a run.
    pub fn new(kernel: &str, release: &str, nonce: &str) -> RunRecord {
        RunRecord {
            format: FORMAT,
            kernel: kernel.into(),
            release: release.into(),
            nonce: nonce.into(),
            boot_reports: vec![],
            groups: vec![],
        }
    }

    /// Adds a check's record to group `group` (named `name`).
    pub fn push(&mut self, group: usize, name: &str, r: &CheckResult, how: How) {
        while self.groups.len() <= group {
            self.groups.push(GroupRecord { name: String::new(), checks: vec![] });
        }
        self.groups[group].name = name.to_owned();
        self.groups[group].checks.push(CheckRecord {
            name: r.name.clone(),
            host_side: r.host_side,
            elapsed_ms: r.elapsed.as_secs_f64() * 1000.0,
            how,
            crashed: matches!(r.outcome, Outcome::Crash(_)),
            source: r.source.clone(),
        });
    }
}
