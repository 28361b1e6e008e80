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
use crate::guest::kernel_console::Attributed;
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
use crate::plan::{Bind, GuestPlan, Isolation, Plan};
use crate::results::{CheckResult, KernelError, KernelResult, Outcome, RunReport, Stage, TestResult, Timings};
use crate::vm::accel::AccelRequest;
use crate::vm::qemu::{QemuConfig, QemuError, Version};
use crate::vm::snapshot;
use crate::vm::{Launch, Vm, VmError};
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

    /// Every check of `checks` as not run, for `why`.
    fn not_run(&mut self, group: usize, checks: &[Check], why: &str) {
        for check in checks {
            let not_run = CheckResult::verdict(&check.name, Outcome::NotRun(why.to_owned()));
            self.fixed(group, CheckResult { source: check.source.clone(), ..not_run });
        }
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

/// How the test groups of a run share guests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// The guest is saved after boot and setup, and each group after that
    /// runs on a guest restored from the save.
    Isolated,
    /// Every group on the one guest; `why`, when isolation was asked for
    /// and this guest cannot have it.
    Shared { why: Option<String> },
}

/// Whether the groups after setup (`groups` of them) get a guest each:
/// asked for, more than one group, no device driven from userspace, and a
/// QEMU and devices that can save and restore the guest (`argv`: the
/// guest's command line).
pub fn sharing(guest: &GuestPlan, groups: usize, qemu: Version, argv: &[String]) -> Sharing {
    if guest.isolation == Isolation::None || groups < 2 {
        return Sharing::Shared { why: None };
    }
    if let Some(d) = guest.devices.iter().find(|d| d.bind == Bind::VfioPci) {
        return Sharing::Shared {
            why: Some(format!(
                "[[device]] {} is bound to vfio-pci: a restored guest would not have its userspace driver's IOMMU mappings and interrupts as the device left them",
                d.name
            )),
        };
    }
    if let Some(nic) = super::setup::first_nic(guest) {
        return Sharing::Shared {
            why: Some(format!(
                "[[device]] {nic} is a NIC whose cable the rig holds: a restored QEMU opens a new netdev socket, so the capture and the frames in flight would not carry over"
            )),
        };
    }
    if !snapshot::qemu_supports(qemu) {
        let (a, b, c) = qemu;
        let (x, y, _) = snapshot::MIN_QEMU;
        return Sharing::Shared { why: Some(format!("QEMU {a}.{b}.{c} cannot save a guest to a file ({x}.{y} can)")) };
    }
    match snapshot::unmigratable(argv) {
        Some(why) => Sharing::Shared { why: Some(why) },
        None => Sharing::Isolated,
    }
}

/// How a group left its guest.
enum After {
    /// It answers: the next group may run on it.
    Usable,
    /// It crashed or stopped answering (why); the rest of the group did not run.
    Lost(String),
}

/// Why a run stops in the middle of a group.
enum Stop {
    Interrupted,
    /// QEMU went away with no kernel report: the rig's failure.
    QemuDied(String),
}

/// What running a group's checks needs besides the guest.
struct GroupCtx<'a, 'b> {
    side: HostSide<'b>,
    charged: &'a mut Charged,
    interrupt: &'a AtomicBool,
}

/// Runs the checks of group `gi` on `vm`. A kernel report or a dead shell
/// fails its step; when the guest does not survive it, the rest of the
/// group is not run. `stop_on_failure`: any failure ends the group (setup).
fn run_group(
    rec: &mut Recorder,
    gi: usize,
    group: &[Check],
    vm: &mut Vm,
    cx: &mut GroupCtx,
    stop_on_failure: bool,
) -> Result<After, Stop> {
    for (ci, check) in group.iter().enumerate() {
        let (mut r, abort, guest) = checks::run_check(check, &mut vm.console, &mut cx.side, cx.charged);
        let how = match guest {
            Some(g) => How::Guest(g),
            None => How::Fixed(Fixed::of(&r)),
        };
        let timed_out = matches!(&r.outcome, Outcome::Fail(m) if m.starts_with("timed out"));
        let failed = !r.passed();
        let mut lost = None;
        if let Some(checks::Abort::Console(e)) = abort {
            if let ConsoleError::Eof { .. } = e {
                // QEMU went away without the kernel saying why: killed,
                // or QEMU itself failed. Not the test's verdict.
                if let Some(died) = vm.died_unexpectedly() {
                    return Err(Stop::QemuDied(died));
                }
            }
            // A report or a dead shell fails the step; the group goes on
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
                lost = Some(if why.is_empty() { reason } else { format!("{reason}: {why}") });
                if matches!(e, ConsoleError::Crash { .. }) {
                    // The step did not fail: the kernel under it died.
                    r.outcome = Outcome::Crash(r.outcome.message().unwrap_or("the guest kernel crashed").into());
                }
            }
        } else if timed_out && vm.console.run("true", Duration::from_secs(5)).is_err() {
            // Ctrl-C did not bring the shell back: the guest is hung.
            lost = Some("the guest stopped answering after a step timed out".into());
        } else if failed && stop_on_failure {
            lost = Some("a setup step failed".into());
        }
        rec.push(gi, r, how);
        if cx.interrupt.load(Ordering::Relaxed) {
            return Err(Stop::Interrupted);
        }
        if let Some(why) = lost {
            rec.not_run(gi, &group[ci + 1..], &why);
            return Ok(After::Lost(why));
        }
    }
    Ok(After::Usable)
}

/// The guest the groups run on, and the saved one each isolated group
/// starts from.
struct Guests<'a> {
    vm: Vm,
    cfg: &'a QemuConfig,
    run_dir: &'a std::path::Path,
    nonce: Nonce,
    interrupt: Arc<AtomicBool>,
    /// The saved guest, once there is one.
    state: Option<PathBuf>,
    restores: u64,
    /// Reports of the guests already thrown away.
    gone: Vec<Attributed>,
}

impl Guests<'_> {
    /// Saves the guest into `state` and lets it go on (it runs the first
    /// group after the save: it is the saved guest).
    fn save(&mut self, state: PathBuf) -> Result<Duration, String> {
        let socket = self.vm.qmp_socket().ok_or("the guest has no QMP socket")?.to_path_buf();
        let saved = snapshot::save(&socket, &state, Duration::from_secs(120));
        // Stopped for the save, failed or not: it goes on either way.
        let resumed = snapshot::go_on(&socket);
        let took = saved.map_err(|e| e.to_string())?;
        resumed.map_err(|e| e.to_string())?;
        self.state = Some(state);
        Ok(took)
    }

    /// Throws the guest away and restores a new one from the save; its
    /// console transcript goes on after a restore mark.
    fn fresh(&mut self) -> Result<Duration, VmError> {
        let Some(state) = self.state.clone() else {
            return Err(VmError::Restore { detail: "no saved guest".into(), stderr: String::new() });
        };
        let start = Instant::now();
        self.vm.discard();
        tracing::debug!(took = ?start.elapsed(), "guest discarded");
        self.gone.extend(self.vm.console.kernel().reports());
        let mut resume = self.vm.console.resume_point();
        self.restores += 1;
        let mark = protocol::restore_mark(&self.nonce, self.restores);
        let log = self.run_dir.join("console.log");
        append_line(&log, &mark).map_err(|source| VmError::RunDir { path: log.clone(), source })?;
        resume.lines += 1;
        let how = Launch::Restore { state: &state, resume };
        self.vm = Vm::launch(self.cfg, self.run_dir, self.nonce.clone(), self.interrupt.clone(), how)?;
        tracing::debug!(pid = self.vm.pid(), took = ?start.elapsed(), "guest restored");
        Ok(start.elapsed())
    }

    /// Every report of every guest of the run.
    fn reports(&self) -> Vec<Attributed> {
        let mut all = self.gone.clone();
        all.extend(self.vm.console.kernel().reports());
        all
    }
}

/// Appends `line` to `log` on a line of its own.
fn append_line(log: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::File::options().read(true).append(true).create(true).open(log)?;
    let mut last = [0u8; 1];
    let ends_open = f.seek(SeekFrom::End(-1)).is_ok() && f.read(&mut last)? == 1 && last[0] != b'\n';
    let text = if ends_open { format!("\n{line}\n") } else { format!("{line}\n") };
    f.write_all(text.as_bytes())
}

/// `dmesg` of the guest into the run directory's kernel.log; labelled: in
/// shell.log the dump would read as a boot after the steps.
fn save_kernel_log(vm: &mut Vm, run_dir: &std::path::Path) {
    let command = format!("echo '{KERNEL_LOG_LABEL}'; dmesg");
    if let Ok(out) = vm.console.run(&command, Duration::from_secs(20)) {
        let log = out.output.strip_prefix(KERNEL_LOG_LABEL).unwrap_or(&out.output).trim_start_matches('\n');
        let _ = crate::support::write_private(&run_dir.join("kernel.log"), log.to_owned() + "\n");
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
    let mut vm = match Vm::start(&cfg, run_dir.path(), nonce.clone(), interrupt.clone()) {
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
    // Set when nothing more can run (no shell, a failed setup, a lost shared guest).
    let mut aborted: Option<String> = None;
    match vm.console.prepare_shell(Duration::from_secs(20)) {
        Ok(()) => rec.fixed(0, CheckResult::verdict("guest shell answers", Outcome::Pass)),
        Err(ConsoleError::Interrupted) => return Err(RunError::Interrupted),
        Err(e) => {
            aborted = Some("the guest shell did not answer".into());
            rec.fixed(0, CheckResult::verdict("guest shell answers", Outcome::Fail(e.to_string())));
        }
    }
    let mut cx = GroupCtx {
        side: HostSide {
            shm: shm.as_ref(),
            images: &images,
            run_dir: run_dir.path(),
            doorbell: server.as_mut().map(|s| s as &mut dyn crate::host::doorbell::Doorbell),
            interrupt: &interrupt,
            wires: &wires,
            last_output: String::new(),
        },
        charged: &mut charged,
        interrupt: &interrupt,
    };
    let stopped = |s: Stop, run_dir: tempfile::TempDir| match s {
        Stop::Interrupted => RunError::Interrupted,
        Stop::QemuDied(detail) => RunError::QemuDied { detail, run_dir: run_dir.keep() },
    };
    let last = group_list.len() - 1;
    // Setup runs on the booted guest; the groups after it may each get one.
    let first = if opts.plan.setup.is_empty() { 1 } else { 2 };
    if first == 2 {
        let (_, setup) = &group_list[1];
        match &aborted {
            Some(why) => rec.not_run(1, setup, why),
            None => match run_group(&mut rec, 1, setup, &mut vm, &mut cx, true) {
                Ok(After::Usable) => {}
                Ok(After::Lost(why)) => aborted = Some(why),
                Err(s) => return Err(stopped(s, run_dir)),
            },
        }
    }

    let mut guests = Guests {
        vm,
        cfg: &cfg,
        run_dir: run_dir.path(),
        nonce: nonce.clone(),
        interrupt: interrupt.clone(),
        state: None,
        restores: 0,
        gone: vec![],
    };
    let argv = crate::vm::qemu::argv(&cfg);
    let qemu_version = crate::vm::qemu::version(&opts.qemu)?;
    let mut isolated = false;
    if aborted.is_none() {
        match sharing(&opts.plan.guest, last - first, qemu_version, &argv) {
            Sharing::Isolated => {
                // Boot and setup as the kernel logged them, before the groups part ways.
                save_kernel_log(&mut guests.vm, guests.run_dir);
                match guests.save(private.path().join("guest.state")) {
                    Ok(took) => {
                        t.save = took;
                        isolated = true;
                        (rec.emit)(Event::Note(format!(
                            "isolation: each of the {} groups on a guest restored from the one saved after boot{} (saved in {took:.2?})",
                            last - first,
                            if first == 2 { " and setup" } else { "" }
                        )));
                    }
                    Err(why) => (rec.emit)(Event::Note(format!("isolation: the groups share one guest: {why}"))),
                }
            }
            Sharing::Shared { why: Some(why) } => {
                (rec.emit)(Event::Note(format!("isolation: the groups share one guest: {why}")));
            }
            Sharing::Shared { why: None } => {}
        }
    }
    for (gi, (_, group)) in group_list.iter().enumerate().take(last).skip(first) {
        if let Some(why) = &aborted {
            rec.not_run(gi, group, why);
            continue;
        }
        // The first group runs on the saved guest itself.
        if isolated && gi > first {
            match guests.fresh() {
                Ok(took) => {
                    t.restore += took;
                    t.restores += 1;
                }
                Err(VmError::Console(ConsoleError::Interrupted)) => return Err(RunError::Interrupted),
                Err(source) => return Err(RunError::Boot { source: Box::new(source), run_dir: run_dir.keep() }),
            }
        }
        match run_group(&mut rec, gi, group, &mut guests.vm, &mut cx, false) {
            Ok(After::Usable) => {}
            // The next group starts on a guest of its own.
            Ok(After::Lost(_)) if isolated => {}
            Ok(After::Lost(why)) => aborted = Some(why),
            Err(s) => return Err(stopped(s, run_dir)),
        }
    }
    if aborted.is_none() && !isolated {
        save_kernel_log(&mut guests.vm, guests.run_dir);
    }
    t.checks = phase.elapsed().saturating_sub(t.save + t.restore);

    let phase = Instant::now();
    if isolated {
        // Nobody needs the last guest to power off: it is thrown away.
        guests.vm.discard();
    } else {
        // A guest that stopped answering will not power off: do not wait for it.
        guests.vm.shutdown(if aborted.is_some() { Duration::from_millis(500) } else { Duration::from_secs(5) });
    }
    t.shutdown = phase.elapsed();
    // The kernel console to its end: whatever the kernel reported that no
    // check was charged with, up to the power-off, fails the last check.
    guests.vm.console.kernel().wait_until(Duration::from_secs(2), |k| k.eof());
    let leftover = cx.charged.fresh(guests.reports());
    let (clean, excerpt) = report_outcome(&leftover).unwrap_or((Outcome::Pass, String::new()));
    rec.push(last, CheckResult { output: excerpt, ..CheckResult::verdict(KERNEL_LOG_CLEAN, clean) }, How::KernelLog);
    // The record goes with the logs; `rig parse` reads them back.
    if let Ok(json) = serde_json::to_string_pretty(&rec.record) {
        let _ = crate::support::write_private(&run_dir.path().join(record::FILE), json + "\n");
    }
    drop(guests);
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

    #[test]
    fn groups_get_a_guest_each_when_they_can() {
        let guest = |isolation, bind: Option<Bind>| GuestPlan {
            memory_mib: 256,
            cpus: 1,
            cmdline: vec![],
            files: vec![],
            shm: None,
            isolation,
            iommu: None,
            devices: bind
                .map(|bind| crate::plan::DevicePlan {
                    name: "edu0".into(),
                    kind: "edu".into(),
                    bind,
                    slot: crate::plan::FIRST_DEVICE_SLOT,
                    image_size: None,
                })
                .into_iter()
                .collect(),
            checks: vec![],
            strict_checks: false,
            captures: vec![],
            rootfs: None,
            hugepages: 0,
        };
        let g = guest(Isolation::Group, None);
        let argv: Vec<String> = ["-device", "ivshmem-plain,memdev=shm0,master=on"].map(String::from).to_vec();
        assert_eq!(sharing(&g, 3, (10, 0, 2), &argv), Sharing::Isolated);
        // Asked not to, or nothing to isolate: no note either.
        assert_eq!(sharing(&guest(Isolation::None, None), 3, (10, 0, 2), &argv), Sharing::Shared { why: None });
        assert_eq!(sharing(&g, 1, (10, 0, 2), &argv), Sharing::Shared { why: None });
        let old = sharing(&g, 3, (7, 2, 15), &argv);
        assert!(matches!(old, Sharing::Shared { why: Some(w) } if w.contains("7.2.15") && w.contains("8.2")));
        let vfio: Vec<String> = ["-device", "vfio-pci,host=01:00.0"].map(String::from).to_vec();
        assert!(matches!(sharing(&g, 3, (10, 0, 2), &vfio), Sharing::Shared { why: Some(w) } if w.contains("VFIO")));
        // A device the guest binds to vfio-pci: one guest, and the note names it.
        let udrv = sharing(&guest(Isolation::Group, Some(Bind::VfioPci)), 3, (10, 0, 2), &argv);
        assert!(matches!(udrv, Sharing::Shared { why: Some(w) } if w.contains("edu0") && w.contains("vfio-pci")));
        assert_eq!(sharing(&guest(Isolation::Group, Some(Bind::Kernel)), 3, (10, 0, 2), &argv), Sharing::Isolated);
        // A NIC: its cable's far end (and capture) would not survive a restore.
        let mut nic = guest(Isolation::Group, Some(Bind::Kernel));
        nic.devices[0].kind = "virtio-net".into();
        nic.devices[0].name = "nic0".into();
        let shared = sharing(&nic, 3, (10, 0, 2), &argv);
        assert!(matches!(shared, Sharing::Shared { why: Some(w) } if w.contains("nic0") && w.contains("NIC")));
    }

    #[test]
    fn restore_marks_go_on_a_line_of_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("console.log");
        append_line(&log, "first").expect("append");
        std::fs::write(&log, "a\nunfinished").expect("write");
        append_line(&log, "mark").expect("append");
        append_line(&log, "mark2").expect("append");
        assert_eq!(std::fs::read_to_string(&log).expect("read"), "a\nunfinished\nmark\nmark2\n");
    }
}
