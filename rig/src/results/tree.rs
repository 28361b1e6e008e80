//! The tree of verdicts: a [`Tree`] holds one result per kernel, a kernel's
//! [`RunReport`] holds groups, a group holds steps. Counts and statuses are
//! worst-first (crash > fail > not run > pass > skip). KTAP, JUnit and JSON
//! are all written from it, so they cannot disagree.

use crate::plan::step::Source;
use std::path::PathBuf;
use std::time::Duration;

/// How a check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed, with the reason.
    Fail(String),
    /// The guest kernel crashed (panic, or an oops it did not come back
    /// from) during the check: it failed, and it ended the run.
    Crash(String),
    /// Not run because an earlier failure made it meaningless.
    NotRun(String),
    /// Skipped on purpose (it does not apply here), with why.
    Skip(String),
}

/// A verdict's kind, ordered worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Crash,
    Fail,
    NotRun,
    Pass,
    Skip,
}

impl Status {
    /// As the formats spell it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Crash => "crash",
            Status::Fail => "fail",
            Status::NotRun => "not_run",
            Status::Pass => "pass",
            Status::Skip => "skip",
        }
    }

    /// Pass or skip: nothing went wrong.
    pub fn good(self) -> bool {
        matches!(self, Status::Pass | Status::Skip)
    }
}

impl Outcome {
    /// Its kind.
    pub fn status(&self) -> Status {
        match self {
            Outcome::Pass => Status::Pass,
            Outcome::Fail(_) => Status::Fail,
            Outcome::Crash(_) => Status::Crash,
            Outcome::NotRun(_) => Status::NotRun,
            Outcome::Skip(_) => Status::Skip,
        }
    }

    /// Why it failed, crashed, was not run or skipped.
    pub fn message(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail(m) | Outcome::Crash(m) | Outcome::NotRun(m) | Outcome::Skip(m) => Some(m),
        }
    }
}

/// How many checks ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub crashed: usize,
    pub failed: usize,
    pub not_run: usize,
    pub passed: usize,
    pub skipped: usize,
}

impl Counts {
    /// Counts of `checks`.
    pub fn of<'a>(checks: impl IntoIterator<Item = &'a CheckResult>) -> Counts {
        let mut c = Counts::default();
        for r in checks {
            c.add(r.outcome.status());
        }
        c
    }

    fn add(&mut self, s: Status) {
        match s {
            Status::Crash => self.crashed += 1,
            Status::Fail => self.failed += 1,
            Status::NotRun => self.not_run += 1,
            Status::Pass => self.passed += 1,
            Status::Skip => self.skipped += 1,
        }
    }

    /// Both added.
    pub fn plus(self, o: Counts) -> Counts {
        Counts {
            crashed: self.crashed + o.crashed,
            failed: self.failed + o.failed,
            not_run: self.not_run + o.not_run,
            passed: self.passed + o.passed,
            skipped: self.skipped + o.skipped,
        }
    }

    /// The worst status present; `Skip` for nothing at all.
    pub fn status(self) -> Status {
        [
            (self.crashed, Status::Crash),
            (self.failed, Status::Fail),
            (self.not_run, Status::NotRun),
            (self.passed, Status::Pass),
        ]
        .into_iter()
        .find(|(n, _)| *n > 0)
        .map_or(Status::Skip, |(_, s)| s)
    }

    /// All checks.
    pub fn total(self) -> usize {
        self.crashed + self.failed + self.not_run + self.passed + self.skipped
    }
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
    /// The step in the config it is the result of (`None`: the rig's own check).
    pub source: Option<Source>,
}

impl CheckResult {
    /// A guest-side result with no output (the rig's own verdicts).
    pub fn verdict(name: &str, outcome: Outcome) -> CheckResult {
        CheckResult {
            name: name.into(),
            outcome,
            output: String::new(),
            elapsed: Duration::ZERO,
            host_side: false,
            source: None,
        }
    }

    /// True when nothing went wrong (it passed, or was skipped on purpose).
    pub fn passed(&self) -> bool {
        self.outcome.status().good()
    }
}

/// Wall time of each phase.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    pub fetch: Duration,
    pub build: Duration,
    pub initramfs: Duration,
    pub boot: Duration,
    /// Saving the guest after boot and setup (isolated groups).
    pub save: Duration,
    /// Restoring a guest for each isolated group, all of them.
    pub restore: Duration,
    /// How many guests were restored.
    pub restores: u32,
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
    /// Its counts.
    pub fn counts(&self) -> Counts {
        Counts::of(&self.results)
    }

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
    /// Its counts.
    pub fn counts(&self) -> Counts {
        Counts::of(&self.results)
    }

    /// True when every check passed.
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(CheckResult::passed)
    }
}

/// Where a kernel's run stopped when it produced no results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Fetching the kernel (the rig's infrastructure).
    Fetch,
    /// Building the user's module: the user's code failed.
    Build,
    /// Booting: the guest crashed or never came up.
    Boot,
    /// The rig itself (a missing tool, QEMU gone, a bad config).
    Rig,
}

impl Stage {
    /// The test case a kernel that stopped here fails, in every format.
    pub fn check_name(self) -> &'static str {
        match self {
            Stage::Fetch => "the kernel is fetched",
            Stage::Build => "the modules build",
            Stage::Boot => "the guest boots",
            Stage::Rig => "the rig runs this kernel",
        }
    }
}

/// A kernel the rig could not produce results for.
#[derive(Clone, Debug)]
pub struct KernelError {
    pub kernel: String,
    pub stage: Stage,
    pub message: String,
    /// Kept logs, when there are some.
    pub run_dir: Option<PathBuf>,
}

/// One kernel's results.
#[derive(Clone, Debug)]
pub enum KernelResult {
    /// It ran: its checks.
    Ran(RunReport),
    /// It could not run.
    Error(KernelError),
}

impl KernelResult {
    /// The kernel's name.
    pub fn kernel(&self) -> &str {
        match self {
            KernelResult::Ran(r) => &r.kernel,
            KernelResult::Error(e) => &e.kernel,
        }
    }

    /// Its groups; a kernel that could not run has one failed check, named
    /// for the stage it stopped at, so every format shows it as a failure.
    pub fn groups(&self) -> Vec<TestResult> {
        match self {
            KernelResult::Ran(r) => r.tests.clone(),
            KernelResult::Error(e) => vec![TestResult {
                name: "rig".into(),
                results: vec![CheckResult::verdict(e.stage.check_name(), Outcome::Fail(e.message.clone()))],
            }],
        }
    }

    /// Its counts.
    pub fn counts(&self) -> Counts {
        match self {
            KernelResult::Ran(r) => r.counts(),
            KernelResult::Error(_) => Counts { failed: 1, ..Counts::default() },
        }
    }

    /// True when it ran and nothing went wrong.
    pub fn passed(&self) -> bool {
        matches!(self, KernelResult::Ran(r) if r.passed())
    }
}

/// The results of one invocation: every kernel.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub kernels: Vec<KernelResult>,
}

impl Tree {
    /// Counts over every kernel.
    pub fn counts(&self) -> Counts {
        self.kernels.iter().map(KernelResult::counts).fold(Counts::default(), Counts::plus)
    }

    /// True when every kernel ran and passed.
    pub fn passed(&self) -> bool {
        !self.kernels.is_empty() && self.kernels.iter().all(KernelResult::passed)
    }
}

/// A check that failed or crashed, with the checks its failure stopped.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The kernel it happened on.
    pub kernel: String,
    /// Its group.
    pub group: String,
    /// The check.
    pub result: CheckResult,
    /// Labels (`group: check`) of the later checks not run after it.
    pub not_run_after: Vec<String>,
}

impl Tree {
    /// Every failed or crashed check, kernel by kernel in order; checks not
    /// run are charged to the failure before them on the same kernel.
    pub fn failures(&self) -> Vec<Failure> {
        let mut out: Vec<Failure> = vec![];
        for k in &self.kernels {
            let first = out.len();
            for g in k.groups() {
                for r in g.results {
                    match r.outcome.status() {
                        Status::Crash | Status::Fail => out.push(Failure {
                            kernel: k.kernel().to_owned(),
                            group: g.name.clone(),
                            result: r,
                            not_run_after: vec![],
                        }),
                        Status::NotRun if out.len() > first => {
                            if let Some(f) = out.last_mut() {
                                f.not_run_after.push(super::text::label(&g.name, &r.name));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(o: Outcome) -> CheckResult {
        CheckResult::verdict("x", o)
    }

    #[test]
    fn statuses_are_worst_first() {
        let c = Counts::of(&[r(Outcome::Pass), r(Outcome::Skip("n/a".into()))]);
        assert_eq!(c.status(), Status::Pass);
        let c = Counts::of(&[r(Outcome::Pass), r(Outcome::NotRun("x".into())), r(Outcome::Fail("y".into()))]);
        assert_eq!(c.status(), Status::Fail);
        assert_eq!(c.plus(Counts::of(&[r(Outcome::Crash("z".into()))])).status(), Status::Crash);
        assert_eq!(Counts::default().status(), Status::Skip);
        assert!(Status::Crash < Status::Fail && Status::NotRun < Status::Pass);
        assert!(r(Outcome::Skip("n/a".into())).passed());
    }

    #[test]
    fn a_kernel_that_could_not_run_is_a_failed_check() {
        let e = KernelResult::Error(KernelError {
            kernel: "k".into(),
            stage: Stage::Build,
            message: "modpost: undefined".into(),
            run_dir: None,
        });
        let g = e.groups();
        assert_eq!(g[0].results[0].name, "the modules build");
        assert_eq!(e.counts().status(), Status::Fail);
        let tree = Tree { kernels: vec![e] };
        assert!(!tree.passed());
        let f = tree.failures();
        assert_eq!((f.len(), f[0].kernel.as_str(), f[0].group.as_str()), (1, "k", "rig"));
    }

    #[test]
    fn checks_not_run_are_charged_to_the_failure_before_them() {
        let named = |n: &str, o| CheckResult::verdict(n, o);
        let groups = vec![
            TestResult { name: "boot".into(), results: vec![named("shell", Outcome::Pass)] },
            TestResult {
                name: "t".into(),
                results: vec![
                    named("a", Outcome::Fail("exit 1".into())),
                    named("b", Outcome::Crash("panic".into())),
                    named("c", Outcome::NotRun("the guest kernel crashed".into())),
                ],
            },
            TestResult { name: "u".into(), results: vec![named("d", Outcome::NotRun("crashed".into()))] },
        ];
        let report = |kernel: &str| RunReport {
            kernel: kernel.into(),
            release: "r".into(),
            results: groups.iter().flat_map(|g| g.results.clone()).collect(),
            tests: groups.clone(),
            run_dir: PathBuf::new(),
            kept: false,
            timings: Timings::default(),
        };
        let tree = Tree { kernels: vec![KernelResult::Ran(report("k1")), KernelResult::Ran(report("k2"))] };
        let f = tree.failures();
        let got: Vec<(&str, &str, usize)> =
            f.iter().map(|f| (f.kernel.as_str(), f.result.name.as_str(), f.not_run_after.len())).collect();
        assert_eq!(got, [("k1", "a", 0), ("k1", "b", 2), ("k2", "a", 0), ("k2", "b", 2)]);
        assert_eq!(f[1].not_run_after, ["t: c", "u: d"]);
    }
}
