//! `rig run`: the linear recipe from a kernel name to a list of results.
//! fetch -> build the module -> initramfs -> private dir + shared memory ->
//! choose the accelerator -> boot -> checks -> power off -> keep or remove.
//! The engine never prints: it sends [`Event`]s to the caller.

use crate::accel::{self, AccelRequest};
use crate::catalog::{Catalog, CatalogError};
use crate::checks::{self, Check, CheckResult, Outcome};
use crate::console::ConsoleError;
use crate::fetch::{self, FetchError, FetchOptions, KernelTree};
use crate::initramfs::{self, GuestFile, InitramfsError, InitramfsSpec};
use crate::kbuild::{self, BuildRequest, KbuildError};
use crate::qemu::{self, Ivshmem, QemuConfig, QemuError};
use crate::shm::{SharedMemory, ShmError};
use crate::vm::{Vm, VmError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything `rig run` needs to know.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Catalog name; empty means the catalog's default.
    pub kernel: String,
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
    /// Source directory of the module under test.
    pub module_dir: PathBuf,
    /// Statically linked guest programs binary.
    pub guest_bin: PathBuf,
    /// Guest RAM.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub cpus: u32,
    /// QEMU CPU model (`None`: host under KVM, QEMU's default under TCG).
    pub cpu_model: Option<String>,
    /// ivshmem size in bytes.
    pub shm_size: u64,
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
    /// A finished check.
    Result(CheckResult),
}

/// Wall time of each phase.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub fetch: Duration,
    pub build: Duration,
    pub initramfs: Duration,
    pub boot: Duration,
    pub checks: Duration,
    pub shutdown: Duration,
    pub total: Duration,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Kernel release booted.
    pub release: String,
    /// One result per check, in order.
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
    #[error(transparent)]
    Kbuild(#[from] KbuildError),
    #[error(transparent)]
    Initramfs(#[from] InitramfsError),
    #[error(transparent)]
    Qemu(#[from] QemuError),
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// The guest never became usable (the console log is in the run dir).
    #[error("{source}\n(run directory kept: {run_dir})")]
    Boot { source: VmError, run_dir: PathBuf },
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

/// Name of the reference module's object.
pub const MODULE_NAME: &str = "rig_kmod";

fn require(path: &Path, what: &str, fix: &str) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|_| RunError::Missing { what: what.into(), path: path.to_path_buf(), fix: fix.into() })
}

/// Seeds differ per run so a stale pattern from an earlier run cannot pass.
fn seeds() -> (u32, u32) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(1);
    let a = (nanos as u32) | 1;
    (a, a.rotate_left(16) ^ 0x5a5a_5a5a)
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
    let fix_guest = "build the guest programs with `make guest` or pass --guest-bin";
    let g = require(&opts.guest_bin, "the guest programs (rig-guest)", fix_guest)?;
    initramfs::check_static(&opts.guest_bin, &g, fix_guest)?;
    if !opts.module_dir.join("Kbuild").is_file() && !opts.module_dir.join("Makefile").is_file() {
        return Err(RunError::Missing {
            what: "a module source directory (Kbuild or Makefile)".into(),
            path: opts.module_dir.clone(),
            fix: "pass --module-dir DIR".into(),
        });
    }
    Ok(())
}

/// Fetches the kernel named in `opts` (or the default one).
pub fn fetch_kernel(opts: &RunOptions) -> Result<KernelTree, RunError> {
    let catalog = Catalog::builtin()?;
    let entry = if opts.kernel.is_empty() { catalog.default_entry() } else { catalog.get(&opts.kernel)? };
    let fo = FetchOptions {
        cache_dir: opts.cache_dir.clone(),
        archive_uri: opts.archive_uri.clone(),
        refresh: false,
        offline: opts.offline,
    };
    Ok(fetch::fetch(entry, &fo)?)
}

/// What the guest boots: the kernel, the built module and the image.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The fetched kernel.
    pub tree: KernelTree,
    /// The module under test.
    pub built: kbuild::BuiltModule,
    /// The initramfs path.
    pub initrd: PathBuf,
}

/// Fetch, build and pack: everything before QEMU starts.
pub fn prepare(opts: &RunOptions, t: &mut Timings, emit: &mut dyn FnMut(Event)) -> Result<Prepared, RunError> {
    preflight(opts, emit)?;
    let phase = Instant::now();
    let tree = fetch_kernel(opts)?;
    t.fetch = phase.elapsed();
    emit(Event::Note(format!("kernel {} ({} {}) in {:.1?}", tree.name, tree.release, tree.package_version, t.fetch)));

    let phase = Instant::now();
    let module_name =
        opts.module_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "module".into());
    let built = kbuild::build_module(
        &tree,
        &BuildRequest {
            src_dir: opts.module_dir.clone(),
            out_dir: opts.cache_dir.join("build").join(&tree.release).join(module_name),
            make_vars: vec![],
            extra_cflags_w1: false,
        },
    )?;
    t.build = phase.elapsed();
    emit(Event::Note(format!("module built against {} ({}) in {:.1?}", tree.release, built.vermagic, t.build)));

    let phase = Instant::now();
    let spec = guest_image(opts, &built.ko_files)?;
    let (initrd, fresh) = spec.build_cached(&opts.cache_dir.join("initramfs").join(&tree.release))?;
    t.initramfs = phase.elapsed();
    emit(Event::Note(format!("initramfs {} ({})", initrd.display(), if fresh { "built" } else { "cached" })));
    Ok(Prepared { tree, built, initrd })
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
    Ok(QemuConfig {
        binary: opts.qemu.clone(),
        accel,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        cpu_model: opts.cpu_model.clone(),
        kernel: p.tree.vmlinuz.clone(),
        initrd: p.initrd.clone(),
        cmdline,
        console: qemu::SerialBackend::Socket(private.join("console.sock")),
        qmp_socket: Some(private.join("qmp.sock")),
        ivshmem: shm.map(|m| Ivshmem { mem_path: m.path().to_path_buf(), size: m.size() }),
        extra: vec![],
    })
}

/// The whole run. `interrupt` is set by the signal handler.
pub fn run(opts: &RunOptions, interrupt: Arc<AtomicBool>, emit: &mut dyn FnMut(Event)) -> Result<RunReport, RunError> {
    let total = Instant::now();
    let mut t = Timings::default();
    let stop = || if interrupt.load(Ordering::Relaxed) { Err(RunError::Interrupted) } else { Ok(()) };
    let prepared = prepare(opts, &mut t, emit)?;
    stop()?;
    let tree = &prepared.tree;
    let built = &prepared.built;

    let private = private_dir("rig-")?;
    let run_dir = private_dir("rig-run-")?;
    let shm = SharedMemory::create(&private.path().join("ivshmem"), opts.shm_size)?;

    let choice = accel::decide(opts.accel, &accel::probe());
    emit(Event::Note(format!("accelerator: {} ({})", choice.accel.name(), choice.reason)));
    let cfg = guest_config(opts, &prepared, choice.accel, private.path(), Some(&shm))?;

    let keep_dir = |run_dir: tempfile::TempDir| run_dir.keep();
    let phase = Instant::now();
    let mut vm = match Vm::start(&cfg, run_dir.path(), interrupt.clone()) {
        Ok(vm) => vm,
        Err(VmError::Console(ConsoleError::Interrupted)) => return Err(RunError::Interrupted),
        Err(source) => return Err(RunError::Boot { source, run_dir: keep_dir(run_dir) }),
    };
    emit(Event::Note(format!(
        "QEMU pid {} started; console and QEMU command line in {}",
        vm.pid(),
        run_dir.path().display()
    )));
    let boot = match vm.wait_ready(opts.boot_timeout) {
        Ok(b) => b,
        Err(VmError::Console(ConsoleError::Interrupted)) => return Err(RunError::Interrupted),
        Err(source) => {
            drop(vm);
            return Err(RunError::Boot { source, run_dir: keep_dir(run_dir) });
        }
    };
    t.boot = phase.elapsed();
    emit(Event::Note(format!("guest ready in {:.2?} ({})", t.boot, choice.accel.name())));

    let phase = Instant::now();
    let mut results = insmod_results(&boot.log, &built.ko_files);
    for r in &results {
        emit(Event::Result(r.clone()));
    }
    let (seed_g2h, seed_h2g) = seeds();
    let suite = checks::reference_suite(seed_g2h, seed_h2g);
    let usable = match vm.console.prepare_shell(Duration::from_secs(20)) {
        Ok(()) => true,
        Err(ConsoleError::Interrupted) => return Err(RunError::Interrupted),
        Err(e) => {
            let r = CheckResult::verdict("guest shell answers", Outcome::Fail(e.to_string()));
            emit(Event::Result(r.clone()));
            results.push(r);
            false
        }
    };
    let before_suite = results.len();
    let aborted = if usable {
        run_suite(&suite, &mut vm, &shm, &mut results, emit)
    } else {
        Some("the guest shell did not answer".into())
    };
    if let Some(why) = &aborted {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted);
        }
        let ran = results.len() - before_suite;
        for c in suite.iter().skip(ran) {
            let r = CheckResult::verdict(&c.name, Outcome::NotRun(why.clone()));
            emit(Event::Result(r.clone()));
            results.push(r);
        }
    } else if let Ok(out) = vm.console.run("dmesg", Duration::from_secs(20)) {
        let _ = std::fs::write(run_dir.path().join("kernel.log"), out.output + "\n");
    }
    t.checks = phase.elapsed();

    let phase = Instant::now();
    vm.shutdown(Duration::from_secs(5));
    drop(vm);
    t.shutdown = phase.elapsed();
    drop(shm);
    drop(private);
    t.total = total.elapsed();

    let passed = !results.is_empty() && results.iter().all(CheckResult::passed);
    let kept = opts.keep || !passed;
    let run_dir = if kept { run_dir.keep() } else { run_dir.path().to_path_buf() };
    Ok(RunReport { release: tree.release.clone(), results, run_dir, kept, timings: t })
}

/// Runs checks until the end or until the guest becomes unusable; returns
/// the reason when it stopped early.
fn run_suite(
    suite: &[Check],
    vm: &mut Vm,
    shm: &SharedMemory,
    results: &mut Vec<CheckResult>,
    emit: &mut dyn FnMut(Event),
) -> Option<String> {
    for check in suite {
        let (r, abort) = checks::run_check(check, &mut vm.console, Some(shm));
        emit(Event::Result(r.clone()));
        results.push(r);
        match abort {
            None => {}
            Some(checks::Abort::Console(e)) => {
                return Some(match e {
                    ConsoleError::Crash { .. } => "the guest kernel crashed".into(),
                    ConsoleError::Eof { .. } => "QEMU exited".into(),
                    ConsoleError::Interrupted => "interrupted".into(),
                    other => other.to_string(),
                });
            }
        }
        if vm.interrupted() {
            return Some("interrupted".into());
        }
    }
    None
}

/// One result per module from `/init`'s `RIG-INSMOD <file> <status>` lines.
pub fn insmod_results(boot_log: &str, ko_files: &[PathBuf]) -> Vec<CheckResult> {
    ko_files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
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
                crate::console::clean(&crate::console::tail_of(boot_log, 1500))
            };
            CheckResult { name: format!("insmod {file}"), outcome, output, elapsed: Duration::ZERO, host_side: false }
        })
        .collect()
}

/// The files of the guest image: /init, busybox, the guest programs, modules.
pub fn guest_image(opts: &RunOptions, ko_files: &[PathBuf]) -> Result<InitramfsSpec, RunError> {
    let mut modules = Vec::new();
    let mut files = Vec::new();
    for (i, ko) in ko_files.iter().enumerate() {
        let name = ko.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| format!("m{i}.ko"));
        files.push(GuestFile {
            guest_path: format!("{}/{name}", initramfs::MODULE_DIR),
            data: initramfs::read_input(ko, "")?,
            mode: 0o644,
        });
        modules.push((name, String::new()));
    }
    let mut all = vec![
        GuestFile { guest_path: "/init".into(), data: initramfs::init_script(&modules).into_bytes(), mode: 0o755 },
        GuestFile { guest_path: "/bin/busybox".into(), data: initramfs::read_input(&opts.busybox, "")?, mode: 0o755 },
        GuestFile {
            guest_path: "/bin/rig-guest".into(),
            data: initramfs::read_input(&opts.guest_bin, "")?,
            mode: 0o755,
        },
    ];
    all.extend(files);
    Ok(InitramfsSpec { files: all })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insmod_markers_become_results() {
        let log = "RIG-BOOTED 6.1.0\r\nRIG-INSMOD a.ko 0\r\ninsmod: can't insert 'b.ko': Invalid argument\r\nRIG-INSMOD b.ko 1\r\n";
        let r = insmod_results(log, &["/x/a.ko".into(), "/x/b.ko".into(), "/x/c.ko".into()]);
        assert_eq!(r[0].outcome, Outcome::Pass);
        assert!(matches!(&r[1].outcome, Outcome::Fail(m) if m.contains('1')));
        assert!(r[1].output.contains("Invalid argument"));
        assert!(matches!(&r[2].outcome, Outcome::Fail(m) if m.contains("never")));
    }

    #[test]
    fn seeds_differ() {
        let (a, b) = seeds();
        assert_ne!(a, b);
    }
}
