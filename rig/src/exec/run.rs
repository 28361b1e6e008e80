//! `rig run`: the linear recipe from a kernel name and a [`Plan`] to results.
//! fetch -> build the modules -> initramfs -> private dir + shared memory ->
//! choose the accelerator -> boot -> setup, tests, teardown -> power off ->
//! keep or remove the run directory. The engine never prints: it sends
//! [`Event`]s to the caller.

use super::devices::{self, DeviceSetupError};
use super::groups::{run_group, set_clock, starts_fresh, After, GroupCtx, Guests, Recorder, Restored, Stop};
pub use super::groups::{sharing, Sharing};
use super::prepare::{prepare, Prepared};
use super::record::{self, How, RunRecord};
use super::saved_boot::{self, KeyInputs, SavedBoot, ToStore};
use super::setup::{host_setup, private_dir, HostSetup};
use crate::build::kbuild::KbuildError;
use crate::exec::step::{report_outcome, Charged, HostSide};
use crate::guest::console::{ConsoleError, Resume};
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
use crate::plan::{Isolation, Plan};
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
    /// Boot even when the cache holds a boot saved with the same inputs.
    pub cold_boot: bool,
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
    let last = group_list.len() - 1;
    // Setup runs on the booted guest; the groups after it may part ways.
    let first = if opts.plan.setup.is_empty() { 1 } else { 2 };
    let argv = crate::vm::qemu::argv(&cfg);
    let qemu_version = crate::vm::qemu::version(&opts.qemu)?;
    let sharing = sharing(&opts.plan.guest, last - first, qemu_version, &argv);
    // A guest that is saved anyway may come from, and go to, the cache.
    let keeps = sharing == Sharing::Isolated && images.is_empty() && saved_boot::setup_keeps(&opts.plan.setup);
    let boot_key = keeps.then(|| {
        let qemu = crate::support::find_program(&cfg.binary.to_string_lossy()).unwrap_or_else(|| cfg.binary.clone());
        saved_boot::key(&KeyInputs {
            argv: &argv,
            run_paths: &[private.path(), run_dir.path()],
            qemu: &qemu,
            other: format!("{} {}\n{:?}", tree.release, tree.package_version, opts.plan.setup),
        })
    });
    let saved = match &boot_key {
        Some(key) if !opts.cold_boot => SavedBoot::find(&opts.cache_dir, &tree.release, key),
        _ => None,
    };
    let nonce = saved.as_ref().map_or_else(Nonce::new, SavedBoot::nonce);
    let mut rec = Recorder {
        tests: group_list.iter().map(|(n, _)| TestResult { name: n.clone(), results: vec![] }).collect(),
        record: RunRecord::new(&tree.name, &tree.release, nonce.as_str()),
        emit,
    };
    let mut charged = Charged::default();
    // Set when nothing more can run (no shell, a failed setup, a lost shared guest).
    let mut aborted: Option<String> = None;

    let phase = Instant::now();
    let restored = Restored { cfg: &cfg, run_dir: run_dir.path(), nonce: &nonce, interrupt: &interrupt };
    let from_saved = match &saved {
        Some(s) => {
            match start_saved(s, &restored, &private.path().join(GUEST_STATE), &group_list[..first], &mut rec)? {
                Ok(vm) => Some(vm),
                Err(why) => {
                    (rec.emit)(Event::Note(format!("the saved boot could not be used ({why}): booting")));
                    None
                }
            }
        }
        None => None,
    };
    let from_cache = from_saved.is_some();
    let mut vm = match from_saved {
        Some(vm) => {
            t.boot = phase.elapsed();
            // What the guest is, for a user who wants to boot it by hand.
            let line = crate::vm::qemu::shell_line(&cfg.binary, &argv) + "\n";
            let _ = crate::support::write_private(&run_dir.path().join("qemu.cmdline"), line);
            (rec.emit)(Event::Note(format!(
                "QEMU pid {} started; console and QEMU command line in {}",
                vm.pid(),
                run_dir.path().display()
            )));
            let then = saved.as_ref().map(SavedBoot::boot_time).unwrap_or_default();
            (rec.emit)(Event::Note(format!(
                "guest ready in {:.2?} ({}; restored from the boot{} a run saved with the same inputs, which took {then:.2?}; --cold-boot boots)",
                t.boot,
                choice.accel.name(),
                if first == 2 { " and setup" } else { "" },
            )));
            vm
        }
        None => {
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
            aborted = boot_group(&mut vm, &boot, &prepared, opts, &mut rec, &mut charged)?;
            vm
        }
    };

    let phase = Instant::now();
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
    if first == 2 && !from_cache {
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

    let mut guests = Guests { vm, restored: &restored, state: None, restores: 0, gone: vec![] };
    let isolation = opts.plan.guest.isolation;
    let mut isolated = false;
    // Where the save left the logs, when this boot goes to the cache.
    let mut to_store: Option<(Resume, u64)> = None;
    if from_cache {
        guests.state = Some(private.path().join(GUEST_STATE));
        isolated = true;
        (rec.emit)(Event::Note(isolation_note(isolation, last - first, first, None)));
    } else if aborted.is_none() {
        match &sharing {
            Sharing::Isolated => {
                // Boot and setup as the kernel logged them, before the groups part ways.
                save_kernel_log(&mut guests.vm, run_dir.path());
                let clean = guests.vm.console.kernel().reports().is_empty()
                    && rec.tests[..first].iter().all(TestResult::passed);
                match guests.save(private.path().join(GUEST_STATE)) {
                    Ok(took) => {
                        t.save = took;
                        isolated = true;
                        let shell_bytes =
                            std::fs::metadata(run_dir.path().join("shell.log")).map(|m| m.len()).unwrap_or(0);
                        if clean && boot_key.is_some() {
                            to_store = Some((guests.vm.console.resume_point(), shell_bytes));
                        }
                        (rec.emit)(Event::Note(isolation_note(isolation, last - first, first, Some(took))));
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
    let mut previous_failed = false;
    for (gi, (_, group)) in group_list.iter().enumerate().take(last).skip(first) {
        if let Some(why) = &aborted {
            rec.not_run(gi, group, why);
            continue;
        }
        if isolated && starts_fresh(isolation, gi, first, previous_failed) {
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
            Ok(After::Usable) => previous_failed = !rec.tests[gi].passed(),
            // The next group starts on a guest of its own.
            Ok(After::Lost(_)) if isolated => previous_failed = true,
            Ok(After::Lost(why)) => aborted = Some(why),
            Err(s) => return Err(stopped(s, run_dir)),
        }
    }
    if aborted.is_none() && !isolated {
        save_kernel_log(&mut guests.vm, run_dir.path());
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
    if let (Some(key), Some((resume, shell_bytes))) = (&boot_key, to_store) {
        let mut record = rec.record.clone();
        record.groups.truncate(first);
        let store = ToStore {
            cache_dir: &opts.cache_dir,
            key,
            state: &private.path().join(GUEST_STATE),
            run_dir: run_dir.path(),
            resume,
            shell_bytes,
            boot: t.boot,
            record,
        };
        if let Err(e) = saved_boot::store(&store) {
            (rec.emit)(Event::Note(format!("the boot was not kept for later runs: {e}")));
        }
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

/// The saved guest in a run's private directory.
const GUEST_STATE: &str = "guest.state";

/// The one line that says how the `groups` groups after boot (and setup,
/// when `first` is 2) share guests; `saved`: how long the save took, when
/// this run made it (pure).
fn isolation_note(isolation: Isolation, groups: usize, first: usize, saved: Option<Duration>) -> String {
    let how = match isolation {
        Isolation::Group => format!("each of the {groups} groups on a guest restored"),
        _ => format!(
            "the {groups} groups share a guest until one fails; the group after a failure runs on a guest restored"
        ),
    };
    let setup = if first == 2 { " and setup" } else { "" };
    match saved {
        Some(took) => format!("isolation: {how} from the one saved after boot{setup} (saved in {took:.2?})"),
        None => format!("isolation: {how} from the saved boot"),
    }
}

/// The boot group of a guest that booted: one check per loaded module and
/// device, the Debian root's, no report during boot, and a shell that
/// answers. Returns why nothing more can run, if the shell did not answer.
fn boot_group(
    vm: &mut Vm,
    boot: &crate::vm::Boot,
    prepared: &Prepared,
    opts: &RunOptions,
    rec: &mut Recorder,
    charged: &mut Charged,
) -> Result<Option<String>, RunError> {
    let loaded: Vec<String> = prepared.loaded().map(|m| m.file.clone()).collect();
    for r in insmod_results(&boot.log, &loaded) {
        rec.fixed(0, r);
    }
    for r in devices::boot_results(&boot.log, &prepared.devices) {
        rec.fixed(0, r);
    }
    for r in super::rootfs::boot_results(&boot.log, &opts.plan.guest, prepared) {
        rec.fixed(0, r);
    }
    // Surfaced as a boot check so no run passes over a warning at insmod.
    let boot_reports = charged.fresh(boot.reports.clone());
    let (quiet, excerpt) = report_outcome(&boot_reports).unwrap_or((Outcome::Pass, String::new()));
    rec.record.boot_reports = boot.reports.iter().map(|a| *a.report.lines.start()).collect();
    rec.push(0, CheckResult { output: excerpt, ..CheckResult::verdict(BOOT_CLEAN, quiet) }, How::BootClean);
    match vm.console.prepare_shell(Duration::from_secs(20)) {
        Ok(()) => {
            rec.fixed(0, CheckResult::verdict("guest shell answers", Outcome::Pass));
            Ok(None)
        }
        Err(ConsoleError::Interrupted) => Err(RunError::Interrupted),
        Err(e) => {
            rec.fixed(0, CheckResult::verdict("guest shell answers", Outcome::Fail(e.to_string())));
            Ok(Some("the guest shell did not answer".into()))
        }
    }
}

/// The guest restored from `saved`, its boot (and setup) groups recorded
/// as they were read back from its logs; `Ok(Err(why))` when it cannot be
/// used and the run boots instead.
fn start_saved(
    saved: &SavedBoot,
    restored: &Restored,
    local: &std::path::Path,
    groups: &[(String, Vec<Check>)],
    rec: &mut Recorder,
) -> Result<Result<Vm, String>, RunError> {
    let tests = match saved.groups() {
        Ok(t) => t,
        Err(why) => return Ok(Err(why)),
    };
    let record = saved.record();
    let same = tests.len() == groups.len()
        && tests.iter().zip(groups).all(|(t, (name, checks))| {
            t.name == *name && t.passed() && t.results.iter().map(|r| &r.name).eq(checks.iter().map(|c| &c.name))
        });
    if !same {
        return Ok(Err("its boot checks are not this run's".into()));
    }
    let resume = match saved.prime(restored.run_dir) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    // The run's own link (or copy): the cache may drop the entry meanwhile.
    // Only read: a boot after a failed restore saves to a new file.
    if let Err(e) = std::fs::hard_link(saved.state(), local).or_else(|_| std::fs::copy(saved.state(), local).map(drop))
    {
        return Ok(Err(format!("cannot copy {}: {e}", saved.state().display())));
    }
    let mut vm = match restored.launch(local, resume, 0) {
        Ok(vm) => vm,
        Err(e) => {
            let _ = std::fs::remove_file(local);
            if let VmError::Console(ConsoleError::Interrupted) = e {
                return Err(RunError::Interrupted);
            }
            // QEMU cannot load it: the next run saves a new one.
            saved.forget();
            return Ok(Err(e.to_string()));
        }
    };
    for (gi, (test, group)) in tests.into_iter().zip(&record.groups).enumerate() {
        for (r, c) in test.results.into_iter().zip(&group.checks) {
            rec.push(gi, r, c.how.clone());
        }
    }
    rec.record.boot_reports = record.boot_reports.clone();
    set_clock(&mut vm);
    Ok(Ok(vm))
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
    fn the_isolation_note_says_how_groups_share_guests() {
        let took = Some(Duration::from_millis(500));
        let group = isolation_note(Isolation::Group, 3, 1, took);
        assert!(
            group.starts_with("isolation: each of the 3 groups on a guest restored from the one saved after boot (")
        );
        let on_failure = isolation_note(Isolation::OnFailure, 3, 2, None);
        assert!(on_failure.contains("share a guest until one fails"), "{on_failure}");
        assert!(on_failure.ends_with("from the saved boot"), "{on_failure}");
        assert!(isolation_note(Isolation::OnFailure, 3, 2, took).contains("after boot and setup"));
    }

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
