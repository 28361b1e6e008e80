//! `rig run`: one run per kernel, KTAP on stdout as results arrive, then
//! JSON, JUnit and Markdown files if asked, and annotations under GitHub
//! Actions.

use super::ui::Ui;
use super::{exit_code_for, install_signal_handlers, plan_and_kernels, run_options, GlobalArgs, RunArgs};
use super::{report, EXIT_FAILED, EXIT_INTERRUPTED};
use anyhow::Context;
use rig::exec::run::{Event, RunOptions};
use rig::results::ktap::{self, Ktap};
use rig::results::{json, junit, Tree};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub run: RunArgs,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a Markdown summary here (kernel x check table, failures folded, timings), e.g. for $GITHUB_STEP_SUMMARY.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn main(g: &GlobalArgs, cmd: &RunCmd) -> anyhow::Result<u8> {
    let started = Instant::now();
    let (plan, kernels) = plan_and_kernels(&cmd.run)?;
    let title = report::title(&plan.source);
    let interrupt = install_signal_handlers()?;
    let base = run_options(g, &cmd.run, plan);
    let (mut ktap, head) = Ktap::start(kernels.len());
    println!("{head}");
    let mut worst = 0u8;
    let mut tree = Tree::default();
    for name in &kernels {
        let opts = RunOptions { kernel: name.clone(), ..base.clone() };
        let mut planned = false;
        let mut ui = Ui::new();
        let result = {
            let mut emit = |e: Event| match ui.event(e) {
                Some(Event::Plan(groups)) => {
                    planned = true;
                    println!("{}", ktap.kernel_plan(name, &groups));
                }
                Some(Event::Result { group, result }) => println!("{}", ktap.result(group, &result)),
                _ => {}
            };
            rig::exec::run::run(&opts, interrupt.clone(), &mut emit)
        };
        ui.finish();
        match &result {
            Ok(report) => {
                println!("{}", ktap.kernel_end(name, report.passed(), None));
                println!("{}", ktap::summary(&report.results));
                let t = &report.timings;
                let isolation = if t.restores > 0 {
                    format!(", save {:.2?}, {} restores {:.2?}", t.save, t.restores, t.restore)
                } else {
                    String::new()
                };
                ui.note(&format!(
                    "{} on {}: fetch {:.1?}, build {:.1?}, initramfs {:.1?}, boot {:.2?}{isolation}, checks {:.2?}, power-off {:.2?}, total {:.2?}",
                    if report.passed() { "PASS" } else { "FAIL" },
                    report.release,
                    t.fetch,
                    t.build,
                    t.initramfs,
                    t.boot,
                    t.checks,
                    t.shutdown,
                    t.total
                ));
                if report.kept {
                    ui.note(&format!("run directory: {}", report.run_dir.display()));
                } else {
                    ui.note(&format!("run directory {} removed (pass --keep to keep it)", report.run_dir.display()));
                }
                if !report.passed() {
                    worst = worst.max(EXIT_FAILED);
                }
            }
            Err(e) => {
                if !planned {
                    ktap.kernel_skipped_plan();
                }
                println!("{}", ktap.kernel_end(name, false, Some(&e.to_string())));
                ui.error(&e.to_string());
                let code = exit_code_for(e);
                if code == EXIT_INTERRUPTED {
                    return Ok(code);
                }
                worst = worst.max(code);
            }
        }
        tree.kernels.push(rig::exec::run::kernel_result(name, &result));
    }
    if kernels.len() > 1 {
        let line = ktap::totals(tree.counts()).replacen("# ", "# all kernels: ", 1);
        println!("{line}");
    }
    if let Some(path) = &cmd.json {
        write_file(path, &(serde_json::to_string_pretty(&json::document(&tree))? + "\n"))?;
    }
    if let Some(path) = &cmd.junit {
        write_file(path, &junit::junit(&tree))?;
    }
    if let Some(path) = &cmd.markdown {
        report::write_markdown(path, &tree, &title, Some(started.elapsed()))?;
    }
    report::annotate(&tree);
    Ok(worst)
}
