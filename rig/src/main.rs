//! The `rig` command line. The only place that prints and picks exit codes.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rig::accel::AccelRequest;
use rig::config::{ModulePlan, Plan};
use rig::ktap::Ktap;
use rig::run::{Event, RunError, RunOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

mod cmd_matrix;

/// Exit status: a check failed.
const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage or configuration.
const EXIT_USAGE: u8 = 2;
/// Exit status: the rig itself could not run (missing tool, download, QEMU).
const EXIT_RIG: u8 = 3;
/// Exit status: interrupted by Ctrl-C or SIGTERM.
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "rig",
    version,
    about = "Test rig for Linux kernel modules: boots a QEMU guest on a Debian kernel, loads the module, runs the test steps in the guest and checks the shared pages from the host.",
    after_help = "Exit status: 0 all checks passed; 1 a check failed; 2 usage or configuration error; 3 the rig itself could not run (missing tool, download failed, QEMU died); 130 interrupted."
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
    /// Boot the kernel(s), load the modules and run the test steps (KTAP on stdout).
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Boot the configured guest and hand its console to the terminal (Ctrl-] leaves).
    Shell {
        #[command(flatten)]
        run: RunArgs,
    },
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
    /// Run the suite on every kernel, several guests at once: a kernel x check table, KTAP and JUnit XML per kernel.
    Matrix(cmd_matrix::MatrixArgs),
    /// Boot each kernel's guest many times, several at once, and count the failed boots; writes JSON.
    Boots(cmd_matrix::BootsArgs),
    /// Build the module on every kernel with each compat item's 2.6-era form forced: an API x kernel table.
    Apidiff(cmd_matrix::ApidiffArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Test configuration (default: the reference module's guest-kmod/rig.toml).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Kernel from the catalog, or `all` (default: the config's kernels, else bookworm-6.1).
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
    /// Build and load this module directory instead of the config's modules.
    #[arg(long)]
    module_dir: Option<PathBuf>,
    /// Statically linked guest programs (default: built by `make guest`).
    #[arg(long)]
    guest_bin: Option<PathBuf>,
    /// Guest memory in MiB (overrides the config).
    #[arg(long)]
    memory: Option<u32>,
    /// Guest vCPUs (overrides the config).
    #[arg(long)]
    cpus: Option<u32>,
    /// QEMU CPU model (default: host under KVM, QEMU's default under TCG).
    #[arg(long)]
    cpu: Option<String>,
    /// Boot watchdog in seconds.
    #[arg(long, default_value_t = 120)]
    boot_timeout: u64,
    /// Boot with oops=panic.
    #[arg(long)]
    oops_panic: bool,
    /// Boot with panic_on_warn=1.
    #[arg(long)]
    panic_on_warn: bool,
}

/// Shows long work: a spinner on a terminal, plain lines in CI logs.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    tty: bool,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress { bar: None, tty: std::io::stderr().is_terminal() }
    }

    fn start(&mut self, what: &str) {
        self.finish();
        if self.tty {
            let bar = indicatif::ProgressBar::new_spinner().with_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            self.bar = Some(bar);
        } else {
            eprintln!("rig: {what} ...");
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    /// Shows notes and progress; results are the caller's to print.
    fn event(&mut self, e: Event) {
        match e {
            Event::Note(s) => self.note(&s),
            Event::Progress(s) => self.start(&s),
            Event::Plan(_) | Event::Result { .. } => {}
        }
    }

    /// Prints a note (ending any spinner first).
    fn note(&mut self, text: &str) {
        self.finish();
        eprintln!("rig: {text}");
    }
}

/// The source tree the binary was built from: default config and guest programs.
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
        RunError::Interrupted => EXIT_INTERRUPTED,
        _ => EXIT_RIG,
    }
}

/// A usage or configuration problem: exit 2.
struct UsageError(String);

/// Reads the config and applies the command-line overrides.
fn load_plan(a: &RunArgs) -> Result<Plan, UsageError> {
    let catalog = rig::catalog::Catalog::builtin().map_err(|e| UsageError(e.to_string()))?;
    let path = a.config.clone().unwrap_or_else(|| project_root().join("guest-kmod/rig.toml"));
    let mut plan = rig::config::load(&path, &catalog).map_err(|e| UsageError(e.to_string()))?;
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
    Ok(plan)
}

/// The kernels to run: `--kernel` (or `all`), else the config's, else the default.
fn kernels_for(a: &RunArgs, plan: &Plan) -> Result<Vec<String>, UsageError> {
    let catalog = rig::catalog::Catalog::builtin().map_err(|e| UsageError(e.to_string()))?;
    let names = match a.kernel.as_deref() {
        Some("all") => catalog.entries().map(|e| e.name.clone()).collect(),
        Some(k) => vec![k.to_string()],
        None if !plan.kernels.is_empty() => plan.kernels.clone(),
        None => vec![catalog.default_entry().name.clone()],
    };
    for n in &names {
        catalog.get(n).map_err(|e| UsageError(e.to_string()))?;
    }
    Ok(names)
}

fn run_options(cli: &Cli, a: &RunArgs, plan: Plan) -> RunOptions {
    RunOptions {
        kernel: String::new(),
        plan,
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
        guest_bin: a
            .guest_bin
            .clone()
            .unwrap_or_else(|| project_root().join("target/x86_64-unknown-linux-gnu/release/rig-guest")),
        cpu_model: a.cpu.clone(),
        boot_timeout: Duration::from_secs(a.boot_timeout),
        keep: a.keep,
    }
}

/// The plan and its kernels, or `None` after printing the usage error.
fn plan_and_kernels(a: &RunArgs) -> Option<(Plan, Vec<String>)> {
    match load_plan(a).and_then(|p| kernels_for(a, &p).map(|k| (p, k))) {
        Ok(v) => Some(v),
        Err(UsageError(msg)) => {
            eprintln!("rig: error: {msg}");
            None
        }
    }
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn cmd_run(cli: &Cli, a: &RunArgs, junit: Option<&Path>, json: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some((plan, kernels)) = plan_and_kernels(a) else { return Ok(ExitCode::from(EXIT_USAGE)) };
    let interrupt = install_signal_handlers()?;
    let base = run_options(cli, a, plan);
    let (mut ktap, head) = Ktap::start(kernels.len());
    println!("{head}");
    let mut worst = 0u8;
    let mut json_kernels = Vec::new();
    let mut reports = Vec::new();
    for name in &kernels {
        let opts = RunOptions { kernel: name.clone(), ..base.clone() };
        let mut planned = false;
        let mut progress = Progress::new();
        let result = {
            let ktap = &mut ktap;
            let planned = &mut planned;
            let progress = &mut progress;
            let mut emit = |e: Event| match e {
                Event::Note(s) => progress.note(&s),
                Event::Progress(s) => progress.start(&s),
                Event::Plan(groups) => {
                    *planned = true;
                    println!("{}", ktap.kernel_plan(name, &groups));
                }
                Event::Result { group, result } => {
                    progress.finish();
                    println!("{}", ktap.result(group, &result));
                }
            };
            rig::run::run(&opts, interrupt.clone(), &mut emit)
        };
        progress.finish();
        match result {
            Ok(report) => {
                println!("{}", ktap.kernel_end(name, report.passed(), None));
                println!("{}", rig::ktap::summary(&report.results));
                let t = &report.timings;
                eprintln!(
                    "rig: {} on {}: fetch {:.1?}, build {:.1?}, initramfs {:.1?}, boot {:.2?}, checks {:.2?}, power-off {:.2?}, total {:.2?}",
                    if report.passed() { "PASS" } else { "FAIL" },
                    report.release,
                    t.fetch,
                    t.build,
                    t.initramfs,
                    t.boot,
                    t.checks,
                    t.shutdown,
                    t.total
                );
                if report.kept {
                    eprintln!("rig: run directory: {}", report.run_dir.display());
                } else {
                    eprintln!("rig: run directory {} removed (pass --keep to keep it)", report.run_dir.display());
                }
                if !report.passed() {
                    worst = worst.max(EXIT_FAILED);
                }
                json_kernels.push(rig::report::kernel(&report));
                reports.push(report);
            }
            Err(e) => {
                if !planned {
                    ktap.kernel_skipped_plan();
                }
                println!("{}", ktap.kernel_end(name, false, Some(&e.to_string())));
                eprintln!("rig: error: {e}");
                json_kernels.push(rig::report::kernel_error(name, &e.to_string()));
                let code = exit_code_for(&e);
                if code == EXIT_INTERRUPTED {
                    return Ok(ExitCode::from(code));
                }
                worst = worst.max(code);
            }
        }
    }
    if let Some(path) = json {
        let all = rig::report::RunJson { passed: worst == 0, kernels: json_kernels };
        write_file(path, &(serde_json::to_string_pretty(&all)? + "\n"))?;
    }
    if let Some(path) = junit {
        write_file(path, &rig::report::junit(&reports))?;
    }
    Ok(ExitCode::from(worst))
}

fn cmd_shell(cli: &Cli, a: &RunArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, kernels)) = plan_and_kernels(a) else { return Ok(ExitCode::from(EXIT_USAGE)) };
    let interrupt = install_signal_handlers()?;
    let kernel = kernels.first().cloned().unwrap_or_default();
    let opts = RunOptions { kernel, ..run_options(cli, a, plan) };
    let mut progress = Progress::new();
    let mut emit = |e: Event| progress.event(e);
    match rig::shell::shell(&opts, interrupt, &mut emit) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("rig: error: {e}");
            Ok(ExitCode::from(exit_code_for(&e)))
        }
    }
}

fn cmd_bench(cli: &Cli, a: &RunArgs, boots: usize, steps: usize, out: &Path) -> anyhow::Result<ExitCode> {
    let plan = match load_plan(a) {
        Ok(p) => p,
        Err(UsageError(msg)) => {
            eprintln!("rig: error: {msg}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let interrupt = install_signal_handlers()?;
    let run = RunOptions { kernel: a.kernel.clone().unwrap_or_default(), ..run_options(cli, a, plan) };
    let opts = rig::bench::BenchOptions { run, boots, steps, out: out.to_path_buf() };
    let mut progress = Progress::new();
    let mut emit = |e: Event| progress.event(e);
    match rig::bench::bench(&opts, interrupt, &mut emit) {
        Ok(r) => {
            println!(
                "{} {} ({}, QEMU {}): boot rig {:.0} ms vs bare {:.0} ms (median of {}); step {:.1} ms vs raw round trip {:.1} ms on the same socket, {:.1} ms on stdio (median of {}); power-off {:.0} ms",
                r.kernel,
                r.release,
                r.accel,
                r.qemu_version,
                r.rig_boot.median_ms,
                r.bare_boot.median_ms,
                r.rig_boot.n,
                r.rig_step.median_ms,
                r.socket_console_round_trip.median_ms,
                r.bare_console_round_trip.median_ms,
                r.rig_step.n,
                r.rig_poweroff.median_ms
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

fn cmd_fetch(cli: &Cli, kernel: Option<&str>, refresh: bool) -> anyhow::Result<ExitCode> {
    let catalog = rig::catalog::Catalog::builtin()?;
    let entry = match kernel {
        None => std::borrow::Cow::Borrowed(catalog.default_entry()),
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
    match rig::fetch::fetch(&entry, &opts) {
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("RIG_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match &cli.command {
        Cmd::Run { run, junit, json } => cmd_run(&cli, run, junit.as_deref(), json.as_deref()),
        Cmd::Shell { run } => cmd_shell(&cli, run),
        Cmd::Fetch { kernel, refresh } => cmd_fetch(&cli, kernel.as_deref(), *refresh),
        Cmd::Kernels => cmd_kernels(),
        Cmd::Bench { run, boots, steps, out } => cmd_bench(&cli, run, *boots, *steps, out),
        Cmd::Matrix(a) => cmd_matrix::matrix(&cli, a),
        Cmd::Boots(a) => cmd_matrix::boots(&cli, a),
        Cmd::Apidiff(a) => cmd_matrix::apidiff(&cli, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rig: error: {e:#}");
            ExitCode::from(EXIT_RIG)
        }
    }
}
