//! `rig matrix`: the suite on every kernel, several guests at once; prints
//! the kernel x check table and the totals, writes KTAP, JUnit and logs per
//! kernel (and a Markdown summary if asked), annotates under GitHub Actions.

use super::boots::all_by_default;
use super::ui::Ui;
use super::{cpus, exit_code_for, install_signal_handlers, load_plan, run_options, GlobalArgs, RunArgs};
use super::{EXIT_FAILED, EXIT_INTERRUPTED};
use rig::exec::run::{kernel_result, Event};
use rig::kernel::catalog::Catalog;
use rig::results::{ktap, Tree};
use rig::suites::matrix::{self, MatrixOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// `rig matrix`.
#[derive(clap::Args)]
pub struct MatrixCmd {
    #[command(flatten)]
    pub run: RunArgs,
    /// Guests at once (default: the number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Where the per-kernel KTAP, JUnit XML and console logs go.
    #[arg(long, default_value = "rig-matrix")]
    pub out_dir: PathBuf,
    /// Only list the kernels (for a CI job matrix) and exit.
    #[arg(long)]
    pub list: bool,
    /// With --list: a JSON array of {kernel, suite, flavour, description}.
    #[arg(long, requires = "list")]
    pub json: bool,
    /// Write a Markdown summary here (kernel x check table, failures folded, timings), e.g. for $GITHUB_STEP_SUMMARY.
    #[arg(long, conflicts_with = "list")]
    pub markdown: Option<PathBuf>,
}

/// `rig matrix`: runs every kernel, prints the table, writes the output dir.
pub fn main(g: &GlobalArgs, a: &MatrixCmd) -> anyhow::Result<u8> {
    let names = all_by_default(&a.run)?;
    if a.list {
        let catalog = Catalog::builtin()?;
        if a.json {
            println!("{}", serde_json::to_string(&matrix::list_entries(&catalog, &names))?);
        } else {
            names.iter().for_each(|n| println!("{n}"));
        }
        return Ok(0);
    }
    let plan = load_plan(&a.run)?;
    let title = super::report::title(&plan.source);
    let interrupt = install_signal_handlers()?;
    let opts = MatrixOptions {
        base: run_options(g, &a.run, plan),
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
    let uis: Mutex<HashMap<String, Ui>> = Mutex::default();
    let on_event = |kernel: &str, e: Event| {
        let mut uis = uis.lock().unwrap_or_else(|e| e.into_inner());
        uis.entry(kernel.to_owned()).or_insert_with(|| Ui::for_kernel(kernel)).event(e);
    };
    let report = matrix::run_matrix(&opts, interrupt.clone(), &on_event)?;
    print!("{}", report.table());
    let mut worst = 0u8;
    for r in &report.runs {
        match &r.outcome {
            Ok(rep) if !rep.passed() => worst = worst.max(EXIT_FAILED),
            Ok(_) => {}
            Err(e) => {
                Ui::for_kernel(&r.kernel).error(&e.to_string());
                worst = worst.max(exit_code_for(e));
            }
        }
    }
    if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
        worst = EXIT_INTERRUPTED;
    }
    let tree = Tree { kernels: report.runs.iter().map(|r| kernel_result(&r.kernel, &r.outcome)).collect() };
    if let Some(path) = &a.markdown {
        super::report::write_markdown(path, &tree, &title, Some(report.wall))?;
    }
    super::report::annotate(&tree);
    eprintln!(
        "rig: matrix {} in {:.0} s ({} at once): {}; KTAP, JUnit XML and logs in {}",
        if report.passed() { "PASS" } else { "FAIL" },
        report.wall.as_secs_f64(),
        report.jobs,
        ktap::totals(tree.counts()).trim_start_matches("# "),
        opts.out_dir.display()
    );
    Ok(worst)
}
