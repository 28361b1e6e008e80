//! `rig apidiff`: the API x kernel table from real builds.

use super::boots::all_by_default;
use super::ui::Ui;
use super::{cpus, exit_code_for, install_signal_handlers, load_plan, run_options, GlobalArgs, RunArgs, UsageError};
use super::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_RIG};
use rig::suites::apidiff::{self, ApidiffError, ApidiffOptions};
use std::path::PathBuf;
use std::sync::Mutex;

/// `rig apidiff`.
#[derive(clap::Args)]
pub struct ApidiffCmd {
    #[command(flatten)]
    pub run: RunArgs,
    /// Builds at once (default: the number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Only this compat item (repeatable; default: every marked item).
    #[arg(long = "item")]
    pub items: Vec<String>,
    /// Write the table into this Markdown file between <!-- apidiff:begin --> and <!-- apidiff:end -->.
    #[arg(long)]
    pub write_doc: Option<PathBuf>,
    /// Compare this Markdown file's generated table with the builds (exit 1 if it differs).
    #[arg(long)]
    pub check_doc: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `rig apidiff`: the API x kernel table from real builds.
pub fn main(g: &GlobalArgs, a: &ApidiffCmd) -> anyhow::Result<u8> {
    let names = all_by_default(&a.run)?;
    let plan = load_plan(&a.run)?;
    let Some(module_dir) = plan.modules.first().map(|m| m.dir.clone()) else {
        let why = "the config builds no module: pass --module-dir or a config with a [[module]]";
        return Err(UsageError(why.into()).into());
    };
    let interrupt = install_signal_handlers()?;
    let opts = ApidiffOptions {
        base: run_options(g, &a.run, plan),
        module_dir,
        kernels: names,
        only: a.items.clone(),
        jobs: a.jobs.unwrap_or_else(cpus),
    };
    let shared = Mutex::new(Ui::new());
    let ui = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let on_note = |s: String| ui().note(&s);
    let report = match apidiff::run_apidiff(&opts, interrupt, &on_note) {
        Ok(r) => r,
        Err(ApidiffError::Interrupted) => return Ok(EXIT_INTERRUPTED),
        Err(ApidiffError::Run(e)) => {
            ui().error(&e.to_string());
            return Ok(exit_code_for(&e));
        }
        Err(e @ (ApidiffError::NoMarkers { .. } | ApidiffError::BadMarker { .. })) => {
            return Err(UsageError(e.to_string()).into())
        }
        Err(e) => {
            ui().error(&e.to_string());
            return Ok(EXIT_RIG);
        }
    };
    print!("{}", report.table());
    for k in &report.kernels {
        ui().note(&format!("{} {} ({}) built in {}", k.kernel, k.release, k.version, k.build_env));
    }
    let mut code = 0u8;
    let disagreements = report.disagreements();
    for d in &disagreements {
        ui().note(&format!("disagreement: {d}"));
    }
    if !disagreements.is_empty() {
        code = EXIT_FAILED;
    }
    if report.kernels.iter().any(|k| k.baseline != apidiff::Verdict::Builds) {
        ui().error("the module itself (with its shims) does not build on every kernel");
        code = code.max(EXIT_RIG);
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if let Some(path) = &a.write_doc {
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, apidiff::replace_section(&doc, &report.markdown()))?;
        ui().note(&format!("wrote the table into {}", path.display()));
    }
    if let Some(path) = &a.check_doc {
        match apidiff::check_doc(path, &report) {
            Ok(diffs) if diffs.is_empty() => eprintln!("rig: {} agrees with the builds", path.display()),
            Ok(diffs) => {
                for d in diffs {
                    ui().note(&format!("{}: {d}", path.display()));
                }
                ui().note(&format!("regenerate it with `rig apidiff --write-doc {}`", path.display()));
                code = code.max(EXIT_FAILED);
            }
            Err(e) => {
                ui().error(&e.to_string());
                code = code.max(EXIT_FAILED);
            }
        }
    }
    ui().note(&format!("apidiff took {:.0} s", report.wall_secs));
    Ok(code)
}
