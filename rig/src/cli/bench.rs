//! `rig bench`: figures written to a JSON file and summed up on stdout.

use super::ui::Ui;
use super::{exit_code_for, install_signal_handlers, plan_and_kernels, run_options, GlobalArgs, RunArgs};
use super::{EXIT_FAILED, EXIT_RIG};
use rig::exec::run::RunOptions;
use rig::suites::bench::{BenchError, Stats};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BenchCmd {
    #[command(flatten)]
    pub run: RunArgs,
    /// Boots per variant (rig and bare QEMU, alternating).
    #[arg(long, default_value_t = 5)]
    pub boots: usize,
    /// Steps (console round trips) per boot.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Doorbell round trips per boot, through the module and through VFIO (0: skip them).
    #[arg(long, default_value_t = 200)]
    pub pings: usize,
    /// Output file.
    #[arg(long, default_value = "bench.json")]
    pub out: PathBuf,
}

pub fn main(g: &GlobalArgs, cmd: &BenchCmd) -> anyhow::Result<u8> {
    let (plan, kernels) = plan_and_kernels(&cmd.run)?;
    let interrupt = install_signal_handlers()?;
    let kernel = kernels.first().cloned().unwrap_or_default();
    let run = RunOptions { kernel, ..run_options(g, &cmd.run, plan) };
    let opts = rig::suites::bench::BenchOptions {
        run,
        boots: cmd.boots,
        steps: cmd.steps,
        pings: cmd.pings,
        out: cmd.out.clone(),
    };
    let mut ui = Ui::new();
    let mut emit = |e| {
        ui.event(e);
    };
    match rig::suites::bench::bench(&opts, interrupt, &mut emit) {
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
            let median = |s: &Option<Stats>| s.as_ref().map_or("-".to_string(), |s| format!("{:.3} ms", s.median_ms));
            if cmd.pings > 0 {
                println!(
                    "doorbell round trip (host rings, guest wakes and rings back, host sees it), median of {} ({} per boot): module {}, VFIO {}",
                    r.doorbell_vfio.as_ref().map_or(0, |s| s.n),
                    cmd.pings,
                    median(&r.doorbell_module),
                    median(&r.doorbell_vfio)
                );
            }
            println!("written to {}", cmd.out.display());
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
