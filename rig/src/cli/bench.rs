//! `rig bench`: figures written to a JSON file (and an SVG chart), summed
//! up on stdout, one line per figure.

use super::ui::Ui;
use super::{exit_code_for, install_signal_handlers, plan_and_kernels, run_options, GlobalArgs, RunArgs};
use super::{EXIT_FAILED, EXIT_RIG};
use rig::exec::run::RunOptions;
use rig::suites::bench::BenchError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BenchCmd {
    #[command(flatten)]
    pub run: RunArgs,
    /// Samples per boot variant (rig bzImage and PVH, bare QEMU, restore, alternating).
    #[arg(long, default_value_t = 3)]
    pub boots: usize,
    /// Steps (console round trips) per boot.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Doorbell round trips per boot, through the module and through VFIO (0: skip them).
    #[arg(long, default_value_t = 200)]
    pub pings: usize,
    /// Rounds of `rig matrix` of the config over the kernels, three ways (0: skip them).
    #[arg(long, default_value_t = 1)]
    pub suite_rounds: usize,
    /// Output file.
    #[arg(long, default_value = "bench.json")]
    pub out: PathBuf,
    /// Also draw the figures as an SVG chart here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

pub fn main(g: &GlobalArgs, cmd: &BenchCmd) -> anyhow::Result<u8> {
    let (plan, kernels) = plan_and_kernels(&cmd.run)?;
    let interrupt = install_signal_handlers()?;
    let run = RunOptions { ..run_options(g, &cmd.run, plan) };
    let opts = rig::suites::bench::BenchOptions {
        run,
        kernels,
        boots: cmd.boots,
        steps: cmd.steps,
        pings: cmd.pings,
        suite_rounds: cmd.suite_rounds,
        out: cmd.out.clone(),
        plot: cmd.plot.clone(),
    };
    let mut ui = Ui::new();
    let mut emit = |e| {
        ui.event(e);
    };
    let result = rig::suites::bench::bench(&opts, interrupt, &mut emit);
    ui.finish();
    match result {
        Ok(r) => {
            println!("{} (QEMU {}), load {:.1} to {:.1}", r.accel, r.qemu_version, r.load_before, r.load_after);
            for f in &r.figures {
                let bars: Vec<String> = f
                    .bars
                    .iter()
                    .map(|b| format!("{} {}", b.label, rig::suites::bench::plot::short(b.median)))
                    .collect();
                let notes = if f.notes.is_empty() { String::new() } else { format!(" ({})", f.notes.join("; ")) };
                println!("{} {} [{}]: {}{notes}", f.kernel, f.id, f.unit, bars.join(", "));
            }
            println!("written to {}", cmd.out.display());
            if let Some(p) = &cmd.plot {
                println!("chart in {}", p.display());
            }
            Ok(0)
        }
        Err(e) => {
            Ui::new().error(&e.to_string());
            Ok(match &e {
                BenchError::Run(e) => exit_code_for(e),
                BenchError::Guest { .. } => EXIT_FAILED,
                BenchError::Doorbell { .. } => EXIT_RIG,
            })
        }
    }
}
