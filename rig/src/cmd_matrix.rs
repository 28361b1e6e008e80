//! The command line of `rig matrix`, `rig boots` and `rig apidiff`: argument
//! parsing and printing around [`rig::matrix`], [`rig::boots`] and
//! [`rig::apidiff`]. Reuses `rig run`'s arguments (flattened) and its
//! option building, so every `rig run` option works here too.

use super::{
    exit_code_for, install_signal_handlers, load_plan, run_options, Cli, RunArgs, UsageError, EXIT_FAILED,
    EXIT_INTERRUPTED, EXIT_RIG, EXIT_USAGE,
};
use rig::apidiff::{self, ApidiffError, ApidiffOptions};
use rig::boots::BootsOptions;
use rig::catalog::Catalog;
use rig::checks::Outcome;
use rig::matrix::{self, MatrixOptions};
use rig::run::Event;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

/// `rig matrix`.
#[derive(clap::Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Guests at once (default: the number of CPUs).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Where the per-kernel KTAP, JUnit XML and console logs go.
    #[arg(long, default_value = "rig-matrix")]
    out_dir: PathBuf,
    /// Only list the kernels (for a CI job matrix) and exit.
    #[arg(long)]
    list: bool,
    /// With --list: a JSON array of {kernel, suite, flavour, description}.
    #[arg(long, requires = "list")]
    json: bool,
}

/// `rig boots`.
#[derive(clap::Args)]
pub struct BootsArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Boots per kernel.
    #[arg(long, default_value_t = 50)]
    boots: usize,
    /// Guests booting at once.
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// Output file.
    #[arg(long, default_value = "boots.json")]
    out: PathBuf,
}

/// `rig apidiff`.
#[derive(clap::Args)]
pub struct ApidiffArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Builds at once (default: the number of CPUs).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Only this compat item (repeatable; default: every marked item).
    #[arg(long = "item")]
    items: Vec<String>,
    /// Write the table into this Markdown file between <!-- apidiff:begin --> and <!-- apidiff:end -->.
    #[arg(long)]
    write_doc: Option<PathBuf>,
    /// Compare this Markdown file's generated table with the builds (exit 1 if it differs).
    #[arg(long)]
    check_doc: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The catalog and the kernels `--kernel` names (`all`, one, or a comma list; default all).
fn kernels(a: &RunArgs) -> Result<(Catalog, Vec<String>), UsageError> {
    let catalog = Catalog::builtin().map_err(|e| UsageError(e.to_string()))?;
    let names = matrix::select_kernels(&catalog, a.kernel.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    Ok((catalog, names))
}

fn usage(msg: &str) -> anyhow::Result<ExitCode> {
    eprintln!("rig: error: {msg}");
    Ok(ExitCode::from(EXIT_USAGE))
}

/// `rig matrix`: runs every kernel, prints the table, writes the output dir.
pub fn matrix(cli: &Cli, a: &MatrixArgs) -> anyhow::Result<ExitCode> {
    let (catalog, names) = match kernels(&a.run) {
        Ok(v) => v,
        Err(UsageError(msg)) => return usage(&msg),
    };
    if a.list {
        if a.json {
            println!("{}", serde_json::to_string(&matrix::list_entries(&catalog, &names))?);
        } else {
            names.iter().for_each(|n| println!("{n}"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let plan = match load_plan(&a.run) {
        Ok(p) => p,
        Err(UsageError(msg)) => return usage(&msg),
    };
    let interrupt = install_signal_handlers()?;
    let opts = MatrixOptions {
        base: run_options(cli, &a.run, plan),
        kernels: names,
        jobs: a.jobs.unwrap_or_else(cpus),
        out_dir: a.out_dir.clone(),
    };
    eprintln!(
        "rig: matrix of {} kernel(s), {} guest(s) at once: {}",
        opts.kernels.len(),
        opts.jobs.min(opts.kernels.len()),
        opts.kernels.join(", ")
    );
    let groups: Mutex<std::collections::HashMap<String, Vec<String>>> = Mutex::default();
    let on_event = |kernel: &str, e: Event| match e {
        Event::Note(s) => eprintln!("rig: [{kernel}] {s}"),
        Event::Progress(s) => eprintln!("rig: [{kernel}] {s} ..."),
        Event::Plan(g) => {
            let mut map = groups.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(kernel.to_owned(), g.into_iter().map(|(n, _)| n).collect());
        }
        Event::Result { group, result } => {
            let map = groups.lock().unwrap_or_else(|e| e.into_inner());
            let g = map.get(kernel).and_then(|g| g.get(group)).cloned().unwrap_or_default();
            let verdict = match result.outcome {
                Outcome::Pass => "ok",
                Outcome::Fail(_) => "FAIL",
                Outcome::NotRun(_) => "not run",
            };
            eprintln!("rig: [{kernel}] {verdict}: {g}: {}", result.name);
        }
    };
    let report = matrix::run_matrix(&opts, interrupt.clone(), &on_event)?;
    print!("{}", report.table());
    let mut worst = 0u8;
    for r in &report.runs {
        match &r.outcome {
            Ok(rep) if !rep.passed() => worst = worst.max(EXIT_FAILED),
            Ok(_) => {}
            Err(e) => {
                eprintln!("rig: [{}] error: {e}", r.kernel);
                worst = worst.max(exit_code_for(e));
            }
        }
    }
    if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
        worst = EXIT_INTERRUPTED;
    }
    eprintln!(
        "rig: matrix {} in {:.0} s ({} at once); KTAP, JUnit XML and logs in {}",
        if report.passed() { "PASS" } else { "FAIL" },
        report.wall.as_secs_f64(),
        report.jobs,
        opts.out_dir.display()
    );
    Ok(ExitCode::from(worst))
}

/// `rig boots`: repeated boots per kernel, JSON figures.
pub fn boots(cli: &Cli, a: &BootsArgs) -> anyhow::Result<ExitCode> {
    let (_, names) = match kernels(&a.run) {
        Ok(v) => v,
        Err(UsageError(msg)) => return usage(&msg),
    };
    if a.boots == 0 || a.parallel == 0 {
        return usage("--boots and --parallel must be at least 1");
    }
    let plan = match load_plan(&a.run) {
        Ok(p) => p,
        Err(UsageError(msg)) => return usage(&msg),
    };
    let interrupt = install_signal_handlers()?;
    let opts = BootsOptions {
        base: run_options(cli, &a.run, plan),
        kernels: names,
        boots: a.boots,
        parallel: a.parallel,
        out: a.out.clone(),
    };
    let mut emit = |e: Event| {
        if let Event::Note(s) = e {
            eprintln!("rig: {s}");
        }
    };
    match rig::boots::repeated_boots(&opts, interrupt, &mut emit) {
        Ok(r) => {
            println!("QEMU {} ({}), {} at once on {} CPUs:", r.qemu_version, r.accel, r.parallel, r.host_cpus);
            for k in &r.kernels {
                println!(
                    "{:<16} {:>3} boots  {:>2} failed  boot min {:.2} s  median {:.2} s  max {:.2} s",
                    k.kernel,
                    k.boots,
                    k.failures,
                    k.boot.min_ms / 1000.0,
                    k.boot.median_ms / 1000.0,
                    k.boot.max_ms / 1000.0
                );
            }
            println!("{} failed boots in {:.0} s; written to {}", r.failures(), r.wall_secs, a.out.display());
            Ok(if r.failures() == 0 { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
        }
        Err(e) => {
            eprintln!("rig: error: {e}");
            Ok(ExitCode::from(exit_code_for(&e)))
        }
    }
}

/// `rig apidiff`: the API x kernel table from real builds.
pub fn apidiff(cli: &Cli, a: &ApidiffArgs) -> anyhow::Result<ExitCode> {
    let (_, names) = match kernels(&a.run) {
        Ok(v) => v,
        Err(UsageError(msg)) => return usage(&msg),
    };
    let plan = match load_plan(&a.run) {
        Ok(p) => p,
        Err(UsageError(msg)) => return usage(&msg),
    };
    let Some(module_dir) = plan.modules.first().map(|m| m.dir.clone()) else {
        return usage("the config builds no module: pass --module-dir or a config with a [[module]]");
    };
    let interrupt = install_signal_handlers()?;
    let opts = ApidiffOptions {
        base: run_options(cli, &a.run, plan),
        module_dir,
        kernels: names,
        only: a.items.clone(),
        jobs: a.jobs.unwrap_or_else(cpus),
    };
    let on_note = |s: String| eprintln!("rig: {s}");
    let report = match apidiff::run_apidiff(&opts, interrupt, &on_note) {
        Ok(r) => r,
        Err(ApidiffError::Interrupted) => return Ok(ExitCode::from(EXIT_INTERRUPTED)),
        Err(ApidiffError::Run(e)) => {
            eprintln!("rig: error: {e}");
            return Ok(ExitCode::from(exit_code_for(&e)));
        }
        Err(e @ (ApidiffError::NoMarkers { .. } | ApidiffError::BadMarker { .. })) => return usage(&e.to_string()),
        Err(e) => {
            eprintln!("rig: error: {e}");
            return Ok(ExitCode::from(EXIT_RIG));
        }
    };
    print!("{}", report.table());
    for k in &report.kernels {
        eprintln!("rig: {} {} ({}) built in {}", k.kernel, k.release, k.version, k.build_env);
    }
    let mut code = 0u8;
    let disagreements = report.disagreements();
    for d in &disagreements {
        eprintln!("rig: disagreement: {d}");
    }
    if !disagreements.is_empty() {
        code = EXIT_FAILED;
    }
    if report.kernels.iter().any(|k| k.baseline != apidiff::Verdict::Builds) {
        eprintln!("rig: error: the module itself (with its shims) does not build on every kernel");
        code = code.max(EXIT_RIG);
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if let Some(path) = &a.write_doc {
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, apidiff::replace_section(&doc, &report.markdown()))?;
        eprintln!("rig: wrote the table into {}", path.display());
    }
    if let Some(path) = &a.check_doc {
        match apidiff::check_doc(path, &report) {
            Ok(diffs) if diffs.is_empty() => eprintln!("rig: {} agrees with the builds", path.display()),
            Ok(diffs) => {
                for d in diffs {
                    eprintln!("rig: {}: {d}", path.display());
                }
                eprintln!("rig: regenerate it with `rig apidiff --write-doc {}`", path.display());
                code = code.max(EXIT_FAILED);
            }
            Err(e) => {
                eprintln!("rig: error: {e}");
                code = code.max(EXIT_FAILED);
            }
        }
    }
    eprintln!("rig: apidiff took {:.0} s", report.wall_secs);
    Ok(ExitCode::from(code))
}
