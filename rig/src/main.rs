//! The `rig` command line. The only place that prints and picks exit codes.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rig::accel::AccelRequest;
use rig::run::{Event, RunError, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Exit status: a check failed.
const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage or configuration.
const EXIT_USAGE: u8 = 2;
/// Exit status: the rig itself could not run (missing tool, download, QEMU).
const EXIT_RIG: u8 = 3;

#[derive(Parser)]
#[command(
    name = "rig",
    version,
    about = "Test rig for Linux kernel modules: boots a QEMU guest on a Debian kernel, loads the module, runs checks in the guest and on the shared pages from the host.",
    after_help = "Exit status: 0 all checks passed, 1 a check failed, 2 usage error, 3 the rig could not run (missing tool, download failed, QEMU died)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Cache for kernels, builds and images [env: RIG_CACHE_DIR] (default: $XDG_CACHE_HOME/rig).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Debian archive URI [env: RIG_DEBIAN_ARCHIVE] (default: the system's apt sources).
    #[arg(long, global = true, env = "RIG_DEBIAN_ARCHIVE")]
    archive: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a kernel, load the module and run the checks (TAP on stdout).
    Run(RunArgs),
    /// Download and unpack a kernel with its headers into the cache.
    Fetch {
        /// Catalog name (see `rig kernels`).
        kernel: Option<String>,
        /// Re-resolve the version even if a kernel is cached.
        #[arg(long)]
        refresh: bool,
    },
    /// List the kernel catalog.
    Kernels,
    /// Measure boot latency against bare QEMU and the console step overhead; writes JSON.
    Bench {
        #[command(flatten)]
        run: RunArgs,
        /// Boots per variant (rig and bare QEMU, alternating).
        #[arg(long, default_value_t = 5)]
        boots: usize,
        /// Steps (console round trips) per boot.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Output file.
        #[arg(long, default_value = "bench.json")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Kernel from the catalog (default: the catalog's default, bookworm-6.1).
    #[arg(long, short)]
    kernel: Option<String>,
    /// Accelerator: auto picks KVM only when it can really run the guest.
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    /// Keep the run directory even when all checks pass.
    #[arg(long)]
    keep: bool,
    /// Never use the network (the kernel must be cached).
    #[arg(long)]
    offline: bool,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// Statically linked busybox for the guest.
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// Module source directory (default: the reference module, guest-kmod/).
    #[arg(long)]
    module_dir: Option<PathBuf>,
    /// Statically linked guest programs (default: built by `make guest`).
    #[arg(long)]
    guest_bin: Option<PathBuf>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    memory: u32,
    /// Guest vCPUs.
    #[arg(long, default_value_t = 1)]
    cpus: u32,
    /// QEMU CPU model (default: host under KVM, QEMU's default under TCG).
    #[arg(long)]
    cpu: Option<String>,
    /// ivshmem size in MiB (a power of two, at least 1).
    #[arg(long, default_value_t = 4)]
    shm_mib: u64,
    /// Boot watchdog in seconds.
    #[arg(long, default_value_t = 120)]
    boot_timeout: u64,
}

/// The source tree the binary was built from: default module and guest programs.
fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cache_dir(cli: &Cli) -> PathBuf {
    cli.cache_dir.clone().unwrap_or_else(rig::fetch::default_cache_dir)
}

fn install_signal_handlers() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the rig at once (QEMU dies with it: PDEATHSIG).
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, flag.clone()).context("installing signal handlers")?;
    }
    Ok(flag)
}

fn exit_code_for(e: &RunError) -> u8 {
    match e {
        RunError::Catalog(_) => EXIT_USAGE,
        RunError::Interrupted => 130,
        _ => EXIT_RIG,
    }
}

fn run_options(cli: &Cli, a: &RunArgs) -> RunOptions {
    let root = project_root();
    RunOptions {
        kernel: a.kernel.clone().unwrap_or_default(),
        cache_dir: cache_dir(cli),
        archive_uri: cli.archive.clone(),
        offline: a.offline,
        accel: match a.accel {
            AccelArg::Auto => AccelRequest::Auto,
            AccelArg::Kvm => AccelRequest::Kvm,
            AccelArg::Tcg => AccelRequest::Tcg,
        },
        qemu: a.qemu.clone(),
        busybox: a.busybox.clone(),
        module_dir: a.module_dir.clone().unwrap_or_else(|| root.join("guest-kmod")),
        guest_bin: a
            .guest_bin
            .clone()
            .unwrap_or_else(|| root.join("target/x86_64-unknown-linux-gnu/release/rig-guest")),
        memory_mib: a.memory,
        cpus: a.cpus,
        cpu_model: a.cpu.clone(),
        shm_size: a.shm_mib.saturating_mul(1 << 20),
        boot_timeout: Duration::from_secs(a.boot_timeout),
        keep: a.keep,
    }
}

fn cmd_bench(cli: &Cli, a: &RunArgs, boots: usize, steps: usize, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let interrupt = install_signal_handlers()?;
    let opts = rig::bench::BenchOptions { run: run_options(cli, a), boots, steps, out: out.to_path_buf() };
    let mut emit = |e: Event| {
        if let Event::Note(s) = e {
            eprintln!("rig: {s}");
        }
    };
    match rig::bench::bench(&opts, interrupt, &mut emit) {
        Ok(r) => {
            println!(
                "{} {} ({}, QEMU {}): boot rig {:.0} ms vs bare {:.0} ms (median of {}); step {:.1} ms vs console round trip {:.1} ms (median of {}); power-off {:.0} ms",
                r.kernel, r.release, r.accel, r.qemu_version, r.rig_boot.median_ms, r.bare_boot.median_ms, r.rig_boot.n,
                r.rig_step.median_ms, r.bare_console_round_trip.median_ms, r.rig_step.n, r.rig_poweroff.median_ms
            );
            println!("written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("rig: error: {e}");
            Ok(ExitCode::from(exit_code_for(&e)))
        }
    }
}

fn cmd_run(cli: &Cli, a: &RunArgs) -> anyhow::Result<ExitCode> {
    let interrupt = install_signal_handlers()?;
    let opts = run_options(cli, a);
    println!("TAP version 13");
    let mut n = 0usize;
    let mut emit = |e: Event| match e {
        Event::Note(s) => eprintln!("rig: {s}"),
        Event::Result(r) => {
            n += 1;
            println!("{}", rig::tap::result_lines(n, &r));
        }
    };
    match rig::run::run(&opts, interrupt, &mut emit) {
        Ok(report) => {
            println!("{}", rig::tap::footer(&report.results));
            let t = &report.timings;
            eprintln!(
                "rig: {} on {}: fetch {:.1?}, build {:.1?}, initramfs {:.1?}, boot {:.2?}, checks {:.2?}, power-off {:.2?}, total {:.2?}",
                if report.passed() { "PASS" } else { "FAIL" },
                report.release,
                t.fetch, t.build, t.initramfs, t.boot, t.checks, t.shutdown, t.total
            );
            if report.kept {
                eprintln!("rig: run directory: {}", report.run_dir.display());
            } else {
                eprintln!("rig: run directory {} removed (pass --keep to keep it)", report.run_dir.display());
            }
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
        }
        Err(e) => {
            println!("Bail out! {}", e.to_string().lines().next().unwrap_or(""));
            eprintln!("rig: error: {e}");
            Ok(ExitCode::from(exit_code_for(&e)))
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("RIG_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::Run(a) => cmd_run(&cli, a),
        Cmd::Fetch { kernel, refresh } => cmd_fetch(&cli, kernel.as_deref(), *refresh),
        Cmd::Kernels => cmd_kernels(),
        Cmd::Bench { run, boots, steps, out } => cmd_bench(&cli, run, *boots, *steps, out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rig: error: {e:#}");
            ExitCode::from(EXIT_RIG)
        }
    }
}

fn cmd_fetch(cli: &Cli, kernel: Option<&str>, refresh: bool) -> anyhow::Result<ExitCode> {
    let catalog = rig::catalog::Catalog::builtin()?;
    let entry = match kernel {
        None => catalog.default_entry(),
        Some(k) => match catalog.get(k) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("rig: error: {e}");
                return Ok(ExitCode::from(EXIT_USAGE));
            }
        },
    };
    let opts = rig::fetch::FetchOptions {
        cache_dir: cache_dir(cli),
        archive_uri: cli.archive.clone(),
        refresh,
        offline: false,
    };
    match rig::fetch::fetch(entry, &opts) {
        Ok(tree) => {
            println!("{} {} {} {}", tree.name, tree.release, tree.package_version, tree.root.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("rig: error: {e}");
            Ok(ExitCode::from(EXIT_RIG))
        }
    }
}

fn cmd_kernels() -> anyhow::Result<ExitCode> {
    let catalog = rig::catalog::Catalog::builtin()?;
    let default = catalog.default_entry().name.clone();
    for e in catalog.entries() {
        let mark = if e.name == default { " (default)" } else { "" };
        println!("{:<16} {:<20} {}{mark}", e.name, format!("{} {}", e.suite, e.flavour), e.description);
    }
    Ok(ExitCode::SUCCESS)
}
