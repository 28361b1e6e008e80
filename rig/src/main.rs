//! The `rig` command line: clap, dispatch and exit codes. With `cli/`, the
//! only place that prints and the only user of anyhow.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

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
    #[command(flatten)]
    global: cli::GlobalArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot the kernel(s), load the modules and run the test steps (KTAP on stdout).
    Run(cli::run::RunCmd),
    /// Boot the configured guest and hand its console to the terminal (Ctrl-] leaves).
    Shell(cli::shell::ShellCmd),
    /// Build the config's modules for the kernel(s), booting nothing; prints each module's path.
    Build(cli::build::BuildCmd),
    /// Download and unpack a kernel with its headers into the cache.
    Fetch(cli::kernels::FetchCmd),
    /// List the kernel catalog; with --checks, which checks each kernel can do.
    Kernels(cli::kernels::KernelsCmd),
    /// Give the verdicts of saved run directories again (KTAP; --json, --junit), booting nothing.
    Parse(cli::parse::ParseCmd),
    /// Measure boot latency against bare QEMU and the console step overhead; writes JSON.
    Bench(cli::bench::BenchCmd),
    /// Run the suite on every kernel, several guests at once: a kernel x check table, KTAP and JUnit XML per kernel.
    Matrix(cli::matrix::MatrixCmd),
    /// Boot each kernel's guest many times, several at once, and count the failed boots; writes JSON.
    Boots(cli::boots::BootsCmd),
    /// Build the module on every kernel with each compat item's 2.6-era form forced: an API x kernel table.
    Apidiff(cli::apidiff::ApidiffCmd),
    /// Show what the cache holds (kernels, chroots, builds, images) and prune it by age, by size or whole.
    Cache(cli::cache::CacheCmd),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("RIG_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let parsed = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { cli::EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let g = &parsed.global;
    let result = match &parsed.command {
        Cmd::Run(a) => cli::run::main(g, a),
        Cmd::Shell(a) => cli::shell::main(g, a),
        Cmd::Build(a) => cli::build::main(g, a),
        Cmd::Fetch(a) => cli::kernels::fetch(g, a),
        Cmd::Kernels(a) => cli::kernels::list(g, a),
        Cmd::Parse(a) => cli::parse::main(g, a),
        Cmd::Bench(a) => cli::bench::main(g, a),
        Cmd::Matrix(a) => cli::matrix::main(g, a),
        Cmd::Boots(a) => cli::boots::main(g, a),
        Cmd::Apidiff(a) => cli::apidiff::main(g, a),
        Cmd::Cache(a) => cli::cache::main(g, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rig: error: {e:#}");
            let usage = e.downcast_ref::<cli::UsageError>().is_some();
            ExitCode::from(if usage { cli::EXIT_USAGE } else { cli::EXIT_RIG })
        }
    }
}
