//! `rig run`: the linear recipe from a kernel name and a [`Plan`] to results.
//! fetch -> build the modules -> initramfs -> private dir + shared memory ->
//! choose the accelerator -> boot -> setup, tests, teardown -> power off ->
//! keep or remove the run directory. The engine never prints: it sends
//! [`Event`]s to the caller.

use super::devices::{self, DeviceSetupError};
use super::prepare::{prepare, Prepared};
use super::record::{self, Fixed, How, RunRecord};
use super::setup::{host_setup, private_dir, HostSetup};
use crate::build::kbuild::KbuildError;
use crate::exec::step::{self as checks, report_outcome, Charged, HostSide};
use crate::guest::console::ConsoleError;
use crate::guest::protocol::{self, Nonce};
use crate::host::doorbell::DoorbellError;
use crate::host::net::PcapError;
use crate::host::shm::ShmError;
use crate::image::initramfs::InitramfsError;
use crate::image::rootfs::RootfsError;
use crate::kernel::catalog::CatalogError;
use crate::kernel::fetch::FetchError;
use crate::kernel::intree::IntreeError;
use crate::plan::step::Check;
use crate::plan::Plan;
use crate::results::{CheckResult, KernelError, KernelResult, Outcome, RunReport, Stage, TestResult, Timings};
use crate::vm::accel::AccelRequest;
use crate::vm::qemu::QemuError;
use crate::vm::{Vm, VmError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything `rig run` needs to know.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Catalog name; empty means the catalog's default.
    pub kernel: String,
    /// What to build, boot and check.
    pub plan: Plan,
    /// Cache for kernels, builds and initramfs images.
    pub cache_dir: PathBuf,
    /// Debian archive URI (else the system's apt sources).
    pub archive_uri: Option<String>,
    /// Never touch the network.
    pub offline: bool,
    /// KVM, TCG or automatic.
    pub accel: AccelRequest,
    /// QEMU binary.
    pub qemu: PathBuf,
    /// A statically linked busybox.
    pub busybox: PathBuf,
    /// Statically linked guest programs (`rig-guest`), put in /bin when present.
    pub guest_bin: PathBuf,
    /// The reference userspace driver (`rig-udrv`, static), put in /bin when a step uses it.
    pub udrv_bin: PathBuf,
    /// QEMU CPU model (`None`: host under KVM, QEMU's default under TCG).
    pub cpu_model: Option<String>,
    /// Boot watchdog.
    pub boot_timeout: Duration,
    /// Keep the run directory even when everything passed.
    pub keep: bool,
}

/// What the engine reports while it works.
#[derive(Clone, Debug)]
pub enum Event {
    /// A one-line note for the user (accelerator choice, cache use, ...).
    Note(String),
    /// Long work starts (download, chroot, build, boot); ends at the next note.
    Progress(String),
    /// The groups about to run, with their number of checks.
    Plan(Vec<(String, usize)>),
    /// A finished check of group `group`.
    Result { group: usize, result: CheckResult },
}

/// Why a run could not produce results.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Fetch(FetchError),
    /// Boxed: a build error carries the compiler's output.
    #[error(transparent)]
    Kbuild(Box<KbuildError>),
    #[error(transparent)]
    Intree(#[from] IntreeError),
    #[error(transparent)]
    Initramfs(#[from] InitramfsError),
    /// The Debian root could not be built or found (boxed: it carries a log tail).
    #[error(transparent)]
    Rootfs(Box<RootfsError>),
    /// The kernel's suite cannot have what the config asks for (`rig run`
    /// reports it as a skipped check).
    #[error("{kernel} ({release}) skipped: {reason}")]
    Skipped { kernel: String, release: String, reason: String },
    #[error(transparent)]
    Qemu(#[from] QemuError),
    #[error(transparent)]
    Shm(#[from] ShmError),
    #[error(transparent)]
    Doorbell(#[from] DoorbellError),
    /// A NIC's capture file could not be written, or a pcap file read.
    #[error(transparent)]
    Net(#[from] PcapError),
    /// The kernel cannot drive a `[[device]]` as the config asks.
    #[error(transparent)]
    Device(#[from] DeviceSetupError),
    /// The guest never became usable (the console log is in the run dir).
    #[error("{source}\n(run directory kept: {run_dir})")]
    Boot { source: Box<VmError>, run_dir: PathBuf },
    /// A file the run needs is missing.
    #[error("{what} not found at {path}: {fix}")]
    Missing { what: String, path: PathBuf, fix: String },
    /// Creating the private directories failed.
    #[error("cannot create a private directory under {dir}: {source}")]
    TempDir { dir: PathBuf, source: std::io::Error },
    /// QEMU died under the rig (killed, or failed) with no kernel report.
    #[error("QEMU died during the run: {detail}\n(run directory kept: {run_dir})")]
    QemuDied { detail: String, run_dir: PathBuf },
    /// Ctrl-C or SIGTERM.
    #[error("interrupted; QEMU stopped and temporary files removed")]
    Interrupted,
    /// `strict_checks`, and the kernel cannot do some of the checks.
    #[error("{kernel} cannot do the checks {missing} (strict_checks): drop them, or the kernel")]
    Checks { kernel: String, missing: String },
}

impl From<RootfsError> for RunError {
    fn from(e: RootfsError) -> Self {
        match e {
            RootfsError::Interrupted => RunError::Interrupted,
            e => RunError::Rootfs(Box::new(e)),
        }
    }
}

impl From<KbuildError> for RunError {
    fn from(e: KbuildError) -> Self {
        match e {
            KbuildError::Interrupted => RunError::Interrupted,
            e => RunError::Kbuild(Box::new(e)),
        }
    }
}

impl From<FetchError> for RunError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Interrupted => RunError::Interrupted,
            e => RunError::Fetch(e),
        }
    }
}

impl RunError {
    /// Where the run stopped, as the result formats show it.
    pub fn stage(&self) -> Stage {
        match self {
            RunError::Fetch(_) => Stage::Fetch,
            RunError::Kbuild(e) if user_build_failure(e) => Stage::Build,
            RunError::Boot { .. } => Stage::Boot,
            _ => Stage::Rig,
        }
    }

    /// The user's code failed (their module does not build, or the guest
    /// crashed while booting with it): a failed test, exit 1, not the
    /// rig's own trouble (exit 3).
    pub fn is_test_failure(&self) -> bool {
        match self {
            RunError::Kbuild(e) => user_build_failure(e),
            RunError::Boot { source, .. } => matches!(**source, VmError::Crashed { .. }),
            _ => false,
        }
    }

    /// The kept run directory, if any.
    pub fn run_dir(&self) -> Option<&std::path::Path> {
        match self {
            RunError::Boot { run_dir, .. } | RunError::QemuDied { run_dir, .. } => Some(run_dir),
            _ => None,
        }
    }
}

/// `result`, with `dir` kept on disk when the error names it as kept (a
/// boot that failed), else removed: an error never points at a directory
/// that is gone.
pub fn keep_if_named<T>(dir: tempfile::TempDir, result: Result<T, RunError>) -> Result<T, RunError> {
    if let Err(e) = &result {
        if e.run_dir() == Some(dir.path()) {
            let _ = dir.keep();
        }
    }
    result
}

/// A build that ran and failed on the module's own sources.
fn user_build_failure(e: &KbuildError) -> bool {
    matches!(e, KbuildError::BuildFailed { .. } | KbuildError::NoModules { .. } | KbuildError::SourceMissing { .. })
}

/// One kernel's result for the result tree.
pub fn kernel_result(kernel: &str, outcome: &Result<RunReport, RunError>) -> KernelResult {
    match outcome {
        Ok(r) => KernelResult::Ran(r.clone()),
        Err(e) => KernelResult::Error(KernelError {
            kernel: kernel.to_owned(),
            stage: e.stage(),
            message: e.to_string(),
            run_dir: e.run_dir().map(std::path::Path::to_path_buf),
        }),
    }
}

/// The line before the kernel log the rig reads after the last step, in
/// shell.log (kernel.log has the log alone).
const KERNEL_LOG_LABEL: &str = "--- rig: the kernel log (dmesg) for kernel.log, read after the last step ---";

/// The boot check that fails when the kernel warned or oopsed before the shell.
pub const BOOT_CLEAN: &str = "no kernel warning or oops during boot";

/// The last group: reports made outside any step (between steps, after the
/// last one, by a work item or timer) fail it, so none goes unseen.
pub const KERNEL_LOG_GROUP: &str = "kernel log";
/// Its one check.
pub const KERNEL_LOG_CLEAN: &str = "no kernel report outside the steps";

/// The groups of a run: boot (one check per loaded module, then the shell),
/// setup, the tests, teardown.
pub fn groups(plan: &Plan, p: &Prepared) -> Vec<(String, Vec<Check>)> {
    let mut boot: Vec<Check> = p.loaded().map(|m| Check::rig(format!("insmod {}", m.file))).collect();
    boot.extend(devices::boot_checks(&p.devices));
    boot.extend(super::rootfs::boot_checks(&plan.guest));
    boot.push(Check::rig(BOOT_CLEAN));
    boot.push(Check::rig("guest shell answers"));
    let mut g = vec![("boot".to_string(), boot)];
    if !plan.setup.is_empty() {
        g.push(("setup".into(), plan.setup.clone()));
    }
    g.extend(plan.tests.iter().map(|t| (t.name.clone(), t.checks.clone())));
    if !plan.teardown.is_empty() {
        g.push(("teardown".into(), plan.teardown.clone()));
    }
    let check = Check::rig(KERNEL_LOG_CLEAN);
    g.push((KERNEL_LOG_GROUP.into(), vec![check]));
    g
}

/// Brings the shell back after a step the kernel or the shell's own exit
/// cut short: stops what runs, sets up a new shell if one took over, and
/// checks it answers. The error says, in a few words, what did not come.
/// Generous waits: they are only spent on a guest that is in trouble, and a
/// loaded runner can take seconds to start a shell after an oops.
fn recover(console: &mut crate::guest::console::Console, shell_exited: bool) -> Result<(), String> {
    let take_new = |console: &mut crate::guest::console::Console| {
        console.take_new_shell(RECOVER_WAIT).map_err(|e| {
            tracing::warn!("taking over the new guest shell: {e}");
            format!("no new shell answered within {}s", RECOVER_WAIT.as_secs())
        })
    };
    if shell_exited {
        take_new(console)?;
    } else {
        let _ = console.interrupt_step();
    }
    for _ in 0..2 {
        match console.run("true", RECOVER_WAIT) {
            Ok(_) => return Ok(()),
            Err(ConsoleError::ShellExited { .. }) => take_new(console)?,
            Err(e) => {
                tracing::warn!("the guest shell after a failed step: {e}");
                return Err(format!("the shell did not answer `true` within {}s", RECOVER_WAIT.as_secs()));
            }
        }
    }
    Err("each new shell exited at once".into())
}

/// How long recovery waits for each thing it needs from the guest.
const RECOVER_WAIT: Duration = Duration::from_secs(30);

/// Collects results by group and emits them.
/// Collects results by group, emits them, and keeps the run's record.
struct Recorder<'a> {
    tests: Vec<TestResult>,
    record: RunRecord,
    emit: &'a mut dyn FnMut(Event),
}

impl Recorder<'_> {
    fn push(&mut self, group: usize, result: CheckResult, how: How) {
        (self.emit)(Event::Result { group, result: result.clone() });
        let name = self.tests[group].name.clone();
        self.record.push(group, &name, &result, how);
        self.tests[group].results.push(result);
    }

    /// A check whose verdict the logs cannot re-derive.
    fn fixed(&mut self, group: usize, result: CheckResult) {
        let how = How::Fixed(Fixed::of(&result));
        self.push(group, result, how);
    }
}

fn abort_reason(e: &ConsoleError) -> String {
    match e {
        ConsoleError::Crash { .. } => "the guest kernel crashed".into(),
        ConsoleError::ShellExited { .. } => "the guest shell could not be brought back".into(),
        ConsoleError::Eof { .. } => "QEMU exited".into(),
        ConsoleError::Interrupted => "interrupted".into(),
        other => other.to_string(),
    }
}

/// The whole run. `interrupt` is set by the signal handler.
pub fn run(opts: &RunOptions, interrupt: Arc<AtomicBool>, emit: &mut dyn FnMut(Event)) -> Result<RunReport, RunError> {
    let total = Instant::now();
    let mut t = Timings::default();
    let stop = || if interrupt.load(Ordering::Relaxed) { Err(RunError::Interrupted) } else { Ok(()) };
    let prepared = match prepare(opts, &mut t, &interrupt, emit) {
        Err(RunError::Skipped { kernel, release, reason }) => {
            return super::rootfs::skipped(opts, &kernel, &release, &reason, t, total, emit)
        }
        other => other?,
    };
    stop()?;
    let tree = &prepared.tree;

    let run_dir = private_dir("rig-run-")?;
    let HostSetup { mut server, shm, images, cfg, choice, private } = host_setup(opts, &prepared, emit)?;
    let wires = super::setup::start_wires(opts, private.path(), run_dir.path())?;

    let group_list = groups(&opts.plan, &prepared);
    emit(Event::Plan(group_list.iter().map(|(n, c)| (n.clone(), c.len())).collect()));
    let nonce = Nonce::new();
    let mut rec = Recorder {
        tests: group_list.iter().map(|(n, _)| TestResult { name: n.clone(), results: vec![] }).collect(),
        record: RunRecord::new(&tree.name, &tree.release, nonce.as_str()),
        emit,
    };

    let phase = Instant::now();
    (rec.emit)(Event::Progress(format!("booting {} under {}", tree.release, choice.accel.name())));
    let mut vm = match Vm::start(&cfg, run_dir.path(), nonce, interrupt.clone()) {
        Ok(vm) => vm,
        Err(VmError::Console(ConsoleError::Interrupted)) => return Err(RunError::Interrupted),
        Err(source) => return Err(RunError::Boot { source: Box::new(source), run_dir: run_dir.keep() }),
    };
    (rec.emit)(Event::Note(format!(
        "QEMU pid {} started; console and QEMU command line in {}",
        vm.pid(),
        run_dir.path().display()
    )));
    let boot = match vm.wait_ready(opts.boot_timeout) {
        Ok(b) => b,
        Err(VmError::Console(ConsoleError::Interrupted)) => return Err(RunError::Interrupted),
        Err(source) => {
            drop(vm);
            return Err(RunError::Boot { source: Box::new(source), run_dir: run_dir.keep() });
        }
    };
    t.boot = phase.elapsed();
    (rec.emit)(Event::Note(format!("guest ready in {:.2?} ({})", t.boot, choice.accel.name())));

    let phase = Instant::now();
    let loaded: Vec<String> = prepared.loaded().map(|m| m.file.clone()).collect();
    for r in insmod_results(&boot.log, &loaded) {
        rec.fixed(0, r);
    }
    for r in devices::boot_results(&boot.log, &prepared.devices) {
        rec.fixed(0, r);
    }
    for r in super::rootfs::boot_results(&boot.log, &opts.plan.guest, &prepared) {
        rec.fixed(0, r);
    }
    // Surfaced as a boot check so no run passes over a warning at insmod.
    let mut charged = Charged::default();
    let boot_reports = charged.fresh(boot.reports.clone());
    let (quiet, excerpt) = report_outcome(&boot_reports).unwrap_or((Outcome::Pass, String::new()));
    rec.record.boot_reports = boot.reports.iter().map(|a| *a.report.lines.start()).collect();
    rec.push(0, CheckResult { output: excerpt, ..CheckResult::verdict(BOOT_CLEAN, quiet) }, How::BootClean);
    let mut aborted: Option<String> = None;
    match vm.console.prepare_shell(Duration::from_secs(20)) {
        Ok(()) => rec.fixed(0, CheckResult::verdict("guest shell answers", Outcome::Pass)),
        Err(ConsoleError::Interrupted) => return Err(RunError::Interrupted),
        Err(e) => {
            aborted = Some("the guest shell did not answer".into());
            rec.fixed(0, CheckResult::verdict("guest shell answers", Outcome::Fail(e.to_string())));
        }
    }
    let mut side = HostSide {
        shm: shm.as_ref(),
        images: &images,
        run_dir: run_dir.path(),
        doorbell: server.as_mut().map(|s| s as &mut dyn crate::host::doorbell::Doorbell),
        interrupt: &interrupt,
        wires: &wires,
        last_output: String::new(),
    };
    let last = group_list.len() - 1;
    for (gi, (gname, group)) in group_list.iter().enumerate().skip(1).take(last - 1) {
        for check in group {
            if let Some(why) = &aborted {
                let not_run = CheckResult::verdict(&check.name, Outcome::NotRun(why.clone()));
                rec.fixed(gi, CheckResult { source: check.source.clone(), ..not_run });
                continue;
            }
            let (mut r, abort, guest) = checks::run_check(check, &mut vm.console, &mut side, &mut charged);
            let how = match guest {
                Some(g) => How::Guest(g),
                None => How::Fixed(Fixed::of(&r)),
            };
            let timed_out = matches!(&r.outcome, Outcome::Fail(m) if m.starts_with("timed out"));
            let failed = !r.passed();
            if let Some(checks::Abort::Console(e)) = abort {
                if let ConsoleError::Eof { .. } = e {
                    // QEMU went away without the kernel saying why: killed,
                    // or QEMU itself failed. Not the test's verdict.
                    if let Some(died) = vm.died_unexpectedly() {
                        return Err(RunError::QemuDied { detail: died, run_dir: run_dir.keep() });
                    }
                }
                // A report or a dead shell fails the step; the run goes on
                // only if the guest still answers (a panic or hang ends it).
                let panicked =
                    matches!(&e, ConsoleError::Crash { reports, .. } if reports.iter().any(|a| a.report.panicked));
                let survivable = matches!(e, ConsoleError::Crash { .. } | ConsoleError::ShellExited { .. });
                let shell_exited = matches!(e, ConsoleError::ShellExited { .. });
                let recovered = match (panicked, survivable) {
                    (false, true) => recover(&mut vm.console, shell_exited),
                    _ => Err(String::new()),
                };
                if let Err(why) = recovered {
                    let reason = abort_reason(&e);
                    aborted = Some(if why.is_empty() { reason } else { format!("{reason}: {why}") });
                    if matches!(e, ConsoleError::Crash { .. }) {
                        // The step did not fail: the kernel under it died.
                        r.outcome = Outcome::Crash(r.outcome.message().unwrap_or("the guest kernel crashed").into());
                    }
                }
                rec.push(gi, r, how);
            } else if timed_out && vm.console.run("true", Duration::from_secs(5)).is_err() {
                // Ctrl-C did not bring the shell back: the guest is hung.
                rec.push(gi, r, how);
                aborted = Some("the guest stopped answering after a step timed out".into());
            } else {
                rec.push(gi, r, how);
                if failed && gname == "setup" {
                    aborted = Some("a setup step failed".into());
                }
            }
            if interrupt.load(Ordering::Relaxed) {
                return Err(RunError::Interrupted);
            }
        }
    }
    if aborted.is_none() {
        // Labelled: in shell.log the dump would read as a boot after the steps.
        let command = format!("echo '{KERNEL_LOG_LABEL}'; dmesg");
        if let Ok(out) = vm.console.run(&command, Duration::from_secs(20)) {
            let log = out.output.strip_prefix(KERNEL_LOG_LABEL).unwrap_or(&out.output).trim_start_matches('\n');
            let _ = crate::support::write_private(&run_dir.path().join("kernel.log"), log.to_owned() + "\n");
        }
    }
    t.checks = phase.elapsed();

    let phase = Instant::now();
    // A guest that stopped answering will not power off: do not wait for it.
    vm.shutdown(if aborted.is_some() { Duration::from_millis(500) } else { Duration::from_secs(5) });
    t.shutdown = phase.elapsed();
    // The kernel console to its end: whatever the kernel reported that no
    // check was charged with, up to the power-off, fails the last check.
    vm.console.kernel().wait_until(Duration::from_secs(2), |k| k.eof());
    let leftover = charged.fresh(vm.console.kernel().reports());
    let (clean, excerpt) = report_outcome(&leftover).unwrap_or((Outcome::Pass, String::new()));
    rec.push(last, CheckResult { output: excerpt, ..CheckResult::verdict(KERNEL_LOG_CLEAN, clean) }, How::KernelLog);
    // The record goes with the logs; `rig parse` reads them back.
    if let Ok(json) = serde_json::to_string_pretty(&rec.record) {
        let _ = crate::support::write_private(&run_dir.path().join(record::FILE), json + "\n");
    }
    drop(vm);
    // The captures are complete once QEMU is gone.
    drop(wires);
    drop(server);
    drop(shm);
    drop(images);
    drop(private);
    t.total = total.elapsed();

    let tests = rec.tests;
    let results: Vec<CheckResult> = tests.iter().flat_map(|g| g.results.iter().cloned()).collect();
    let passed = !results.is_empty() && results.iter().all(CheckResult::passed);
    let kept = opts.keep || !passed;
    let run_dir = if kept { run_dir.keep() } else { run_dir.path().to_path_buf() };
    Ok(RunReport {
        kernel: tree.name.clone(),
        release: tree.release.clone(),
        tests,
        results,
        run_dir,
        kept,
        timings: t,
    })
}

/// One result per module from `/init`'s `RIG-INSMOD <file> <status>` lines.
pub fn insmod_results(boot_log: &str, files: &[String]) -> Vec<CheckResult> {
    files
        .iter()
        .map(|file| {
            let outcome = match protocol::insmod_status(boot_log, file) {
                Some("0") => Outcome::Pass,
                Some(s) => Outcome::Fail(format!("insmod exited with {s}")),
                None => Outcome::Fail("/init never reported loading it".into()),
            };
            let output = if outcome == Outcome::Pass {
                String::new()
            } else {
                crate::guest::console::clean(&crate::support::tail_bytes(boot_log, 1500))
            };
            CheckResult { name: format!("insmod {file}"), output, ..CheckResult::verdict("", outcome) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insmod_markers_become_results() {
        let log = "RIG-BOOTED 6.1.0\r\nRIG-INSMOD a.ko 0\r\ninsmod: can't insert 'b.ko': Invalid argument\r\nRIG-INSMOD b.ko 1\r\n";
        let r = insmod_results(log, &["a.ko".into(), "b.ko".into(), "c.ko".into()]);
        assert_eq!(r[0].outcome, Outcome::Pass);
        assert!(matches!(&r[1].outcome, Outcome::Fail(m) if m.contains('1')));
        assert!(r[1].output.contains("Invalid argument"));
        assert!(matches!(&r[2].outcome, Outcome::Fail(m) if m.contains("never")));
    }
}
