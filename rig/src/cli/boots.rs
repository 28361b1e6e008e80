//! `rig boots`: repeated boots per kernel, JSON figures.

use super::ui::Ui;
use super::EXIT_FAILED;
use super::{exit_code_for, install_signal_handlers, load_plan, run_options, GlobalArgs, RunArgs, UsageError};
use rig::kernel::catalog::Catalog;
use rig::suites::boots::BootsOptions;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BootsCmd {
    #[command(flatten)]
    pub run: RunArgs,
    /// Boots per kernel.
    #[arg(long, default_value_t = 50)]
    pub boots: usize,
    /// Guests booting at once.
    #[arg(long, default_value_t = 2)]
    pub parallel: usize,
    /// Output file.
    #[arg(long, default_value = "boots.json")]
    pub out: PathBuf,
}

pub fn main(g: &GlobalArgs, a: &BootsCmd) -> anyhow::Result<u8> {
    let names = all_by_default(&a.run)?;
    if a.boots == 0 || a.parallel == 0 {
        return Err(UsageError("--boots and --parallel must be at least 1".into()).into());
    }
    let plan = load_plan(&a.run)?;
    let interrupt = install_signal_handlers()?;
    let opts = BootsOptions {
        base: run_options(g, &a.run, plan),
        kernels: names,
        boots: a.boots,
        parallel: a.parallel,
        out: a.out.clone(),
    };
    let mut ui = Ui::new();
    let mut emit = |e| {
        ui.event(e);
    };
    match rig::suites::boots::repeated_boots(&opts, interrupt, &mut emit) {
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
            Ok(if r.failures() == 0 { 0 } else { EXIT_FAILED })
        }
        Err(e) => {
            Ui::new().error(&e.to_string());
            Ok(exit_code_for(&e))
        }
    }
}

/// The kernels of `rig matrix`, `boots` and `apidiff`: `--kernel`, else the
/// config's `kernels`, else the whole catalog.
pub fn all_by_default(a: &RunArgs) -> Result<Vec<String>, UsageError> {
    let catalog = Catalog::builtin().map_err(|e| UsageError(e.to_string()))?;
    // The config's `kernels` if it names any, else the whole catalog.
    let mut fallback = super::load_plan(a)?.kernels;
    if fallback.is_empty() {
        fallback = catalog.entries().map(|e| e.name.clone()).collect();
    }
    catalog.select(a.kernel.as_deref(), &fallback).map_err(|e| UsageError(e.to_string()))
}
