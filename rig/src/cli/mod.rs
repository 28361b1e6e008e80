//! The command line's shared parts: the global and `rig run` arguments, how
//! they become a [`Plan`] and [`RunOptions`], signals, and exit codes. One
//! file per subcommand beside it; [`ui`] renders every engine event.

pub mod apidiff;
pub mod bench;
pub mod boots;
pub mod build;
pub mod cache;
pub mod kernels;
pub mod matrix;
pub mod parse;
pub mod report;
pub mod run;
pub mod shell;
pub mod ui;

use anyhow::Context;
use clap::ValueEnum;
use rig::exec::devices::DeviceSetupError;
use rig::exec::run::{RunError, RunOptions};
use rig::kernel::catalog::Catalog;
use rig::plan::ModulePlan;
use rig::plan::Plan;
use rig::vm::accel::AccelRequest;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Exit status: a check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the rig itself could not run (missing tool, download, QEMU).
pub const EXIT_RIG: u8 = 3;
/// Exit status: interrupted by Ctrl-C or SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Options every subcommand takes.
#[derive(clap::Args)]
pub struct GlobalArgs {
    /// Cache for kernels, builds and images [env: RIG_CACHE_DIR] (default: $XDG_CACHE_HOME/rig).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Debian archive URI [env: RIG_DEBIAN_ARCHIVE] (default: the system's apt sources).
    #[arg(long, global = true, env = "RIG_DEBIAN_ARCHIVE")]
    pub archive: Option<String>,
}

impl GlobalArgs {
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(rig::kernel::fetch::default_cache_dir)
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

/// What `rig run` and every command that boots guests take.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Test configuration (default: the reference module's guest-kmod/rig.toml).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Kernel: a catalog name, SUITE/FLAVOUR (any Debian kernel), a comma list, or `all` (default: the config's kernels, else bookworm-6.1).
    #[arg(long, short)]
    pub kernel: Option<String>,
    /// Accelerator: auto picks KVM only when it can really run the guest.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: AccelArg,
    /// Keep the run directory even when all checks pass.
    #[arg(long)]
    pub keep: bool,
    /// Boot the kernel even when the cache holds a boot saved with the same inputs.
    #[arg(long)]
    pub cold_boot: bool,
    /// Never use the network (the kernel must be cached).
    #[arg(long)]
    pub offline: bool,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
    /// Statically linked busybox for the guest.
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// Build and load this module directory instead of the config's modules.
    #[arg(long)]
    pub module_dir: Option<PathBuf>,
    /// Statically linked guest programs (default: built by `make guest`).
    #[arg(long)]
    pub guest_bin: Option<PathBuf>,
    /// The reference userspace driver rig-udrv, static (default: built by `make guest`).
    #[arg(long)]
    pub udrv_bin: Option<PathBuf>,
    /// Guest memory in MiB (overrides the config).
    #[arg(long)]
    pub memory: Option<u32>,
    /// Guest vCPUs (overrides the config).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// QEMU CPU model (default: host under KVM; under TCG `max` with a Debian root, else QEMU's default).
    #[arg(long)]
    pub cpu: Option<String>,
    /// Boot watchdog in seconds.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
    /// Boot with oops=panic.
    #[arg(long)]
    pub oops_panic: bool,
    /// Boot with panic_on_warn=1.
    #[arg(long)]
    pub panic_on_warn: bool,
    /// Checks to turn on besides the config's, comma-separated, or `all`
    /// (slub, kfence, init_on_free, init_on_alloc, page_poison,
    /// panic_on_warn, oops_panic, softlockup_panic, hung_task).
    #[arg(long, value_name = "A,B")]
    pub checks: Option<String>,
    /// Fail when the kernel cannot do one of the checks (else it is left out, said in one line).
    #[arg(long)]
    pub strict_checks: bool,
}

/// The source tree the binary was built from: default config and guest programs.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn install_signal_handlers() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the rig at once, after killing the process
        // groups of its children (make, apt, debootstrap); QEMU dies with
        // it (PDEATHSIG).
        let set = flag.clone();
        // SAFETY: the handler only loads an atomic, calls kill(2) through
        // kill_child_groups and _exit(2): all async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                if set.load(std::sync::atomic::Ordering::SeqCst) {
                    rig::support::kill_child_groups();
                    libc::_exit(i32::from(EXIT_INTERRUPTED));
                }
            })
        }
        .context("installing signal handlers")?;
        signal_hook::flag::register(sig, flag.clone()).context("installing signal handlers")?;
    }
    Ok(flag)
}

pub fn exit_code_for(e: &RunError) -> u8 {
    match e {
        RunError::Catalog(_) | RunError::Checks { .. } | RunError::Device(DeviceSetupError::MissingModule { .. }) => {
            EXIT_USAGE
        }
        RunError::Interrupted => EXIT_INTERRUPTED,
        // A package apt does not know is the config's mistake.
        RunError::Rootfs(r) if r.is_config() => EXIT_USAGE,
        // The user's module did not build, or crashed the guest at boot.
        e if e.is_test_failure() => EXIT_FAILED,
        _ => EXIT_RIG,
    }
}

/// A usage or configuration problem: `main` prints it and exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(e: impl std::fmt::Display) -> UsageError {
    UsageError(e.to_string())
}

/// Reads the config and applies the command-line overrides.
pub fn load_plan(a: &RunArgs) -> Result<Plan, UsageError> {
    let catalog = Catalog::builtin().map_err(usage)?;
    let path = a.config.clone().unwrap_or_else(|| project_root().join("guest-kmod/rig.toml"));
    let mut plan = rig::plan::load(&path, &catalog).map_err(|e| {
        report::annotate_config_error(&e);
        usage(e)
    })?;
    if let Some(dir) = &a.module_dir {
        if !dir.join("Kbuild").is_file() && !dir.join("Makefile").is_file() {
            return Err(UsageError(format!(
                "--module-dir {}: no Kbuild or Makefile there; point it at a module source directory",
                dir.display()
            )));
        }
        let params = plan.modules.first().map(|m| m.params.clone()).unwrap_or_default();
        plan.modules = vec![ModulePlan { dir: dir.clone(), make_vars: vec![], params, load: true }];
    }
    if let Some(m) = a.memory {
        plan.guest.memory_mib = m;
    }
    if let Some(c) = a.cpus {
        plan.guest.cpus = c;
    }
    if a.oops_panic {
        plan.guest.cmdline.push("oops=panic".into());
    }
    if a.panic_on_warn {
        plan.guest.cmdline.push("panic_on_warn=1".into());
    }
    if let Some(list) = &a.checks {
        let names: Vec<&str> = list.split(',').filter(|n| !n.trim().is_empty()).collect();
        let more = rig::kernel::checks::parse_names(&names).map_err(|e| UsageError(format!("--checks: {e}")))?;
        plan.guest.checks.extend(more);
        plan.guest.checks.sort();
        plan.guest.checks.dedup();
    }
    plan.guest.strict_checks |= a.strict_checks;
    Ok(plan)
}

/// The plan and the kernels `--kernel` names (else the config's, else the default).
pub fn plan_and_kernels(a: &RunArgs) -> Result<(Plan, Vec<String>), UsageError> {
    let plan = load_plan(a)?;
    let catalog = Catalog::builtin().map_err(usage)?;
    let names = catalog.select(a.kernel.as_deref(), &plan.kernels).map_err(usage)?;
    Ok((plan, names))
}

/// The engine's options for `a` and `plan`; `kernel` is set per run.
pub fn run_options(g: &GlobalArgs, a: &RunArgs, plan: Plan) -> RunOptions {
    RunOptions {
        kernel: String::new(),
        plan,
        cache_dir: g.cache_dir(),
        archive_uri: g.archive.clone(),
        offline: a.offline,
        accel: match a.accel {
            AccelArg::Auto => AccelRequest::Auto,
            AccelArg::Kvm => AccelRequest::Kvm,
            AccelArg::Tcg => AccelRequest::Tcg,
        },
        qemu: a.qemu.clone(),
        busybox: a.busybox.clone(),
        guest_bin: a
            .guest_bin
            .clone()
            .unwrap_or_else(|| project_root().join("target/x86_64-unknown-linux-gnu/release/rig-guest")),
        udrv_bin: a
            .udrv_bin
            .clone()
            .unwrap_or_else(|| project_root().join("target/x86_64-unknown-linux-gnu/release/rig-udrv")),
        cpu_model: a.cpu.clone(),
        boot_timeout: Duration::from_secs(a.boot_timeout),
        keep: a.keep,
        cold_boot: a.cold_boot,
    }
}

/// Guests or builds at once by default: the number of CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
