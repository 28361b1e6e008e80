//! `rig run`: the linear recipe from a kernel name and a [`Plan`] to results.
//! fetch -> build the modules -> initramfs -> private dir + shared memory ->
//! choose the accelerator -> boot -> setup, tests, teardown -> power off ->
//! keep or remove the run directory. The engine never prints: it sends
//! [`Event`]s to the caller.

use crate::build::kbuild::{self, BuildRequest, KbuildError};
use crate::exec::step::{self as checks, HostSide};
use crate::guest::console::ConsoleError;
use crate::host::doorbell::{DoorbellError, DoorbellServer};
use crate::host::shm::{SharedMemory, ShmError};
use crate::image::initramfs::{self, GuestFile, InitramfsError, InitramfsSpec};
use crate::kernel::catalog::{Catalog, CatalogError};
use crate::kernel::fetch::{self, FetchError, FetchOptions, KernelTree};
use crate::kernel::intree::{self, IntreeError};
use crate::plan::{ModulePlan, Plan};
use crate::plan::step::{Action, Check};
use crate::results::{CheckResult, Outcome};
use crate::vm::accel::{self, AccelRequest};
use crate::vm::qemu::{self, Ivshmem, QemuConfig, QemuError};
use crate::vm::{Vm, VmError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
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

/// Why a run could not produce results.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Boxed: a build error carries the compiler's output.
    #[error(transparent)]
    Kbuild(Box<KbuildError>),
    #[error(transparent)]
    Intree(#[from] IntreeError),
    #[error(transparent)]
    Initramfs(#[from] InitramfsError),
    #[error(transparent)]
    Qemu(#[from] QemuError),
    #[error(transparent)]
    Shm(#[from] ShmError),
    #[error(transparent)]
    Doorbell(#[from] DoorbellError),
    /// The guest never became usable (the console log is in the run dir).
    #[error("{source}\n(run directory kept: {run_dir})")]
    Boot { source: Box<VmError>, run_dir: PathBuf },
    /// A file the run needs is missing.
    #[error("{what} not found at {path}: {fix}")]
    Missing { what: String, path: PathBuf, fix: String },
    /// Creating the private directories failed.
    #[error("cannot create a private directory under {dir}: {source}")]
    TempDir { dir: PathBuf, source: std::io::Error },
    /// Ctrl-C or SIGTERM.
    #[error("interrupted; QEMU stopped and temporary files removed")]
    Interrupted,
}

impl From<KbuildError> for RunError {
    fn from(e: KbuildError) -> Self {
        RunError::Kbuild(Box::new(e))
    }
}

fn require(path: &Path, what: &str, fix: &str) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|_| RunError::Missing { what: what.into(), path: path.to_path_buf(), fix: fix.into() })
}

fn uses_guest_programs(plan: &Plan) -> bool {
    let all = plan.setup.iter().chain(&plan.teardown).chain(plan.tests.iter().flat_map(|t| &t.checks));
    all.into_iter().any(|c| matches!(&c.action, Action::Guest { command, .. } if command.contains("rig-guest")))
}

/// Checks the host tools before any long work, so a missing one fails fast.
pub fn preflight(opts: &RunOptions, emit: &mut dyn FnMut(Event)) -> Result<(), RunError> {
    let (major, minor, micro) = qemu::version(&opts.qemu)?;
    if major < qemu::RECOMMENDED_MAJOR {
        emit(Event::Note(format!(
            "warning: QEMU {major}.{minor}.{micro} is older than {}: it double-faults 6.12 guests under TCG now and then; `make setup` installs QEMU 10 from bookworm-backports",
            qemu::RECOMMENDED_MAJOR
        )));
    }
    let fix_bb = "install busybox-static (`sudo apt-get install busybox-static`) or pass --busybox";
    let bb = require(&opts.busybox, "busybox", fix_bb)?;
    initramfs::check_static(&opts.busybox, &bb, fix_bb)?;
    if uses_guest_programs(&opts.plan) {
        let fix_guest = "build the guest programs with `make guest` or pass --guest-bin";
        let g = require(&opts.guest_bin, "the guest programs (rig-guest)", fix_guest)?;
        initramfs::check_static(&opts.guest_bin, &g, fix_guest)?;
    }
    for m in &opts.plan.modules {
        if !m.dir.join("Kbuild").is_file() && !m.dir.join("Makefile").is_file() {
            return Err(RunError::Missing {
                what: "a module source directory (Kbuild or Makefile)".into(),
                path: m.dir.clone(),
                fix: "fix [[module]] path in the config, or pass --module-dir DIR".into(),
            });
        }
    }
    Ok(())
}

/// Fetches the kernel named in `opts` (or the default one).
pub fn fetch_kernel(opts: &RunOptions) -> Result<KernelTree, RunError> {
    let catalog = Catalog::builtin()?;
    let entry = if opts.kernel.is_empty() {
        std::borrow::Cow::Borrowed(catalog.default_entry())
    } else {
        catalog.get(&opts.kernel)?
    };
    let fo = FetchOptions {
        cache_dir: opts.cache_dir.clone(),
        archive_uri: opts.archive_uri.clone(),
        refresh: false,
        offline: opts.offline,
    };
    Ok(fetch::fetch(&entry, &fo)?)
}

/// A module built for the kernel, with how to load it.
#[derive(Clone, Debug)]
pub struct LoadedModule {
    /// File name in the guest's module directory.
    pub file: String,
    /// The object.
    pub data: Vec<u8>,
    /// insmod parameters.
    pub params: String,
    /// Loaded by /init.
    pub load: bool,
}

/// What the guest boots: the kernel, the modules and the image.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The fetched kernel.
    pub tree: KernelTree,
    /// In-tree modules (dependencies first), then the built ones.
    pub modules: Vec<LoadedModule>,
    /// The initramfs path.
    pub initrd: PathBuf,
}

impl Prepared {
    /// The modules /init loads, in order.
    pub fn loaded(&self) -> impl Iterator<Item = &LoadedModule> {
        self.modules.iter().filter(|m| m.load)
    }
}

fn build_dir_for(cache: &Path, release: &str, m: &ModulePlan) -> PathBuf {
    // Two configs with same-named module directories must not share a build dir.
    let digest = Sha256::digest(m.dir.to_string_lossy().as_bytes());
    let tag: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let name = m.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "module".into());
    cache.join("build").join(release).join(format!("{name}-{tag}"))
}

/// Fetch, build and pack: everything before QEMU starts.
pub fn prepare(opts: &RunOptions, t: &mut Timings, emit: &mut dyn FnMut(Event)) -> Result<Prepared, RunError> {
    preflight(opts, emit)?;
    let phase = Instant::now();
    emit(Event::Progress(format!(
        "fetching kernel {}",
        if opts.kernel.is_empty() { "(default)" } else { &opts.kernel }
    )));
    let tree = fetch_kernel(opts)?;
    t.fetch = phase.elapsed();
    emit(Event::Note(format!("kernel {} ({} {}) in {:.1?}", tree.name, tree.release, tree.package_version, t.fetch)));

    let phase = Instant::now();
    let mut modules: Vec<LoadedModule> =
        intree::resolve(tree.modules_dir.as_deref(), &tree.release, &opts.plan.intree)?
            .into_iter()
            .map(|m| LoadedModule { file: format!("{}.ko", m.name), data: m.data, params: String::new(), load: true })
            .collect();
    for m in &opts.plan.modules {
        emit(Event::Progress(format!("building {} for {}", m.dir.display(), tree.release)));
        let built = kbuild::build_module(
            &tree,
            &BuildRequest {
                src_dir: m.dir.clone(),
                out_dir: build_dir_for(&opts.cache_dir, &tree.release, m),
                make_vars: m.make_vars.clone(),
                extra_cflags_w1: false,
            },
        )?;
        emit(Event::Note(format!(
            "built {} against {} in {} ({})",
            m.dir.display(),
            tree.release,
            built.env,
            built.vermagic
        )));
        for ko in &built.ko_files {
            let file = ko.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "module.ko".into());
            modules.push(LoadedModule {
                file,
                data: initramfs::read_input(ko, "")?,
                params: m.params.clone(),
                load: m.load,
            });
        }
    }
    t.build = phase.elapsed();

    let phase = Instant::now();
    let spec = guest_image(opts, &modules)?;
    let (initrd, fresh) = spec.build_cached(&opts.cache_dir.join("initramfs").join(&tree.release))?;
    t.initramfs = phase.elapsed();
    emit(Event::Note(format!("initramfs {} ({})", initrd.display(), if fresh { "built" } else { "cached" })));
    Ok(Prepared { tree, modules, initrd })
}

/// A 0700 temporary directory (tempfile), removed on drop.
pub fn private_dir(prefix: &str) -> Result<tempfile::TempDir, RunError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| RunError::TempDir { dir: std::env::temp_dir(), source })
}

/// The QEMU configuration of one guest; sockets live in `private`.
pub fn guest_config(
    opts: &RunOptions,
    p: &Prepared,
    accel: qemu::Accel,
    private: &Path,
    shm: Option<&SharedMemory>,
) -> Result<QemuConfig, RunError> {
    let entry_args = Catalog::builtin()?.get(&p.tree.name).map(|e| e.cmdline_args());
    let mut cmdline = entry_args.unwrap_or_else(|_| vec!["console=ttyS0".into()]);
    cmdline.extend(qemu::default_cmdline("ttyS0").into_iter().filter(|a| !a.starts_with("console=")));
    cmdline.extend(opts.plan.guest.cmdline.iter().cloned());
    let ivshmem = match (shm, opts.plan.guest.shm) {
        (Some(_), Some(plan)) if plan.doorbell => {
            Some(qemu::SharedMemoryDevice::Doorbell { socket: private.join("ivshmem.sock"), vectors: plan.vectors })
        }
        (Some(m), _) => {
            Some(qemu::SharedMemoryDevice::Plain(Ivshmem { mem_path: m.path().to_path_buf(), size: m.size() }))
        }
        (None, _) => None,
    };
    Ok(QemuConfig {
        binary: opts.qemu.clone(),
        accel,
        memory_mib: opts.plan.guest.memory_mib,
        cpus: opts.plan.guest.cpus,
        cpu_model: opts.cpu_model.clone(),
        kernel: p.tree.vmlinuz.clone(),
        initrd: p.initrd.clone(),
        cmdline,
        console: qemu::SerialBackend::Socket(private.join("console.sock")),
        qmp_socket: Some(private.join("qmp.sock")),
        ivshmem,
        extra: vec![],
    })
}

/// The boot check that fails when the kernel warned or oopsed before the shell.
pub const BOOT_CLEAN: &str = "no kernel warning or oops during boot";

/// What one guest needs on the host before QEMU starts. Fields drop in
/// order: the server, then the memory, then the private directory.
pub struct HostSetup {
    /// The ivshmem server, when the guest has ivshmem-doorbell.
    pub server: Option<DoorbellServer>,
    /// The ivshmem backing file, mapped.
    pub shm: Option<SharedMemory>,
    /// QEMU's configuration.
    pub cfg: QemuConfig,
    /// The accelerator and why.
    pub choice: accel::AccelChoice,
    /// 0700 directory of the sockets and the backing file.
    pub private: tempfile::TempDir,
}

/// Private directory, shared memory, accelerator (announced), QEMU
/// configuration and, for ivshmem-doorbell, the server (it must listen
/// before QEMU starts).
pub fn host_setup(opts: &RunOptions, p: &Prepared, emit: &mut dyn FnMut(Event)) -> Result<HostSetup, RunError> {
    let private = private_dir("rig-")?;
    let shm = match opts.plan.guest.shm {
        Some(s) => Some(SharedMemory::create(&private.path().join("ivshmem"), s.size)?),
        None => None,
    };
    let choice = accel::decide(opts.accel, &accel::probe());
    emit(Event::Note(format!("accelerator: {} ({})", choice.accel.name(), choice.reason)));
    let cfg = guest_config(opts, p, choice.accel, private.path(), shm.as_ref())?;
    let server = match (&cfg.ivshmem, &shm) {
        (Some(qemu::SharedMemoryDevice::Doorbell { socket, vectors }), Some(m)) => {
            Some(DoorbellServer::start(socket, m.path(), *vectors)?)
        }
        _ => None,
    };
    Ok(HostSetup { server, shm, cfg, choice, private })
}

/// The groups of a run: boot (one check per loaded module, then the shell),
/// setup, the tests, teardown.
pub fn groups(plan: &Plan, p: &Prepared) -> Vec<(String, Vec<Check>)> {
    let mut boot: Vec<Check> = p
        .loaded()
        .map(|m| Check {
            name: format!("insmod {}", m.file),
            action: Action::Guest { command: String::new(), status: 0, expect: None, timeout: Duration::ZERO },
        })
        .collect();
    boot.push(Check {
        name: BOOT_CLEAN.into(),
        action: Action::Guest { command: String::new(), status: 0, expect: None, timeout: Duration::ZERO },
    });
    boot.push(Check {
        name: "guest shell answers".into(),
        action: Action::Guest { command: String::new(), status: 0, expect: None, timeout: Duration::ZERO },
    });
    let mut g = vec![("boot".to_string(), boot)];
    if !plan.setup.is_empty() {
        g.push(("setup".into(), plan.setup.clone()));
    }
    g.extend(plan.tests.iter().map(|t| (t.name.clone(), t.checks.clone())));
    if !plan.teardown.is_empty() {
        g.push(("teardown".into(), plan.teardown.clone()));
    }
    g
}

/// Collects results by group and emits them.
struct Recorder<'a> {
    tests: Vec<TestResult>,
    emit: &'a mut dyn FnMut(Event),
}

impl Recorder<'_> {
    fn push(&mut self, group: usize, result: CheckResult) {
        (self.emit)(Event::Result { group, result: result.clone() });
        self.tests[group].results.push(result);
    }
}

fn abort_reason(e: &ConsoleError) -> String {
    match e {
        ConsoleError::Crash { .. } => "the guest kernel crashed".into(),
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
    let prepared = prepare(opts, &mut t, emit)?;
    stop()?;
    let tree = &prepared.tree;

    let run_dir = private_dir("rig-run-")?;
    let HostSetup { mut server, shm, cfg, choice, private } = host_setup(opts, &prepared, emit)?;

    let group_list = groups(&opts.plan, &prepared);
    emit(Event::Plan(group_list.iter().map(|(n, c)| (n.clone(), c.len())).collect()));
    let mut rec = Recorder {
        tests: group_list.iter().map(|(n, _)| TestResult { name: n.clone(), results: vec![] }).collect(),
        emit,
    };

    let phase = Instant::now();
    (rec.emit)(Event::Progress(format!("booting {} under {}", tree.release, choice.accel.name())));
    let mut vm = match Vm::start(&cfg, run_dir.path(), interrupt.clone()) {
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
        rec.push(0, r);
    }
    // Surfaced as a boot check so no run passes over a warning at insmod.
    let quiet = if boot.crashes.is_empty() { Outcome::Pass } else { Outcome::Fail(boot.crashes.join("\n")) };
    rec.push(0, CheckResult::verdict(BOOT_CLEAN, quiet));
    let mut aborted: Option<String> = None;
    match vm.console.prepare_shell(Duration::from_secs(20)) {
        Ok(()) => rec.push(0, CheckResult::verdict("guest shell answers", Outcome::Pass)),
        Err(ConsoleError::Interrupted) => return Err(RunError::Interrupted),
        Err(e) => {
            aborted = Some("the guest shell did not answer".into());
            rec.push(0, CheckResult::verdict("guest shell answers", Outcome::Fail(e.to_string())));
        }
    }
    let mut side = HostSide {
        shm: shm.as_ref(),
        run_dir: run_dir.path(),
        doorbell: server.as_mut().map(|s| s as &mut dyn crate::host::doorbell::Doorbell),
    };
    for (gi, (gname, group)) in group_list.iter().enumerate().skip(1) {
        for check in group {
            if let Some(why) = &aborted {
                rec.push(gi, CheckResult::verdict(&check.name, Outcome::NotRun(why.clone())));
                continue;
            }
            let (r, abort) = checks::run_check(check, &mut vm.console, &mut side);
            let timed_out = matches!(&r.outcome, Outcome::Fail(m) if m.starts_with("timed out"));
            let failed = !r.passed();
            rec.push(gi, r);
            if let Some(checks::Abort::Console(e)) = abort {
                // A warning or oops fails the step; the run goes on only if
                // the guest still answers (a panic or hang ends it).
                let survivable = matches!(e, ConsoleError::Crash { .. });
                if !(survivable && vm.console.run("true", Duration::from_secs(5)).is_ok()) {
                    aborted = Some(abort_reason(&e));
                }
            } else if timed_out && vm.console.run("true", Duration::from_secs(5)).is_err() {
                // Ctrl-C did not bring the shell back: the guest is hung.
                aborted = Some("the guest stopped answering after a step timed out".into());
            } else if failed && gname == "setup" {
                aborted = Some("a setup step failed".into());
            }
            if interrupt.load(Ordering::Relaxed) {
                return Err(RunError::Interrupted);
            }
        }
    }
    if aborted.is_none() {
        if let Ok(out) = vm.console.run("dmesg", Duration::from_secs(20)) {
            let _ = std::fs::write(run_dir.path().join("kernel.log"), out.output + "\n");
        }
    }
    t.checks = phase.elapsed();

    let phase = Instant::now();
    // A guest that stopped answering will not power off: do not wait for it.
    vm.shutdown(if aborted.is_some() { Duration::from_millis(500) } else { Duration::from_secs(5) });
    drop(vm);
    t.shutdown = phase.elapsed();
    drop(server);
    drop(shm);
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
            let prefix = format!("{} {file} ", initramfs::INSMOD_MARKER);
            let status = boot_log
                .lines()
                .rev()
                .find_map(|l| l.trim_end_matches('\r').strip_prefix(&prefix).map(|s| s.trim().to_string()));
            let outcome = match status.as_deref() {
                Some("0") => Outcome::Pass,
                Some(s) => Outcome::Fail(format!("insmod exited with {s}")),
                None => Outcome::Fail("/init never reported loading it".into()),
            };
            let output = if outcome == Outcome::Pass {
                String::new()
            } else {
                crate::guest::console::clean(&crate::guest::console::tail_of(boot_log, 1500))
            };
            CheckResult { name: format!("insmod {file}"), outcome, output, elapsed: Duration::ZERO, host_side: false }
        })
        .collect()
}

/// The files of the guest image: /init, busybox, the guest programs, modules, user files.
pub fn guest_image(opts: &RunOptions, modules: &[LoadedModule]) -> Result<InitramfsSpec, RunError> {
    let load: Vec<(String, String)> =
        modules.iter().filter(|m| m.load).map(|m| (m.file.clone(), m.params.clone())).collect();
    let mut files = vec![
        GuestFile { guest_path: "/init".into(), data: initramfs::init_script(&load).into_bytes(), mode: 0o755 },
        GuestFile { guest_path: "/bin/busybox".into(), data: initramfs::read_input(&opts.busybox, "")?, mode: 0o755 },
    ];
    if opts.guest_bin.is_file() {
        files.push(GuestFile {
            guest_path: "/bin/rig-guest".into(),
            data: initramfs::read_input(&opts.guest_bin, "")?,
            mode: 0o755,
        });
    }
    for m in modules {
        files.push(GuestFile {
            guest_path: format!("{}/{}", initramfs::MODULE_DIR, m.file),
            data: m.data.clone(),
            mode: 0o644,
        });
    }
    for f in &opts.plan.guest.files {
        let data = initramfs::read_input(&f.src, "")?;
        let exec = data.starts_with(b"\x7fELF") || data.starts_with(b"#!");
        files.push(GuestFile {
            guest_path: f.dest.clone(),
            data,
            mode: f.mode.unwrap_or(if exec { 0o755 } else { 0o644 }),
        });
    }
    Ok(InitramfsSpec { files })
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
