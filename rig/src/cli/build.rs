//! `rig build`: the config's modules built for each kernel, nothing booted;
//! one line per module file on stdout (`KERNEL RELEASE PATH`).

use super::ui::Ui;
use super::EXIT_INTERRUPTED;
use super::{exit_code_for, install_signal_handlers, plan_and_kernels, run_options, GlobalArgs, RunArgs};
use rig::exec::run::{Event, RunOptions};

#[derive(clap::Args)]
pub struct BuildCmd {
    /// `rig run`'s options; -c, --kernel, --module-dir and --offline are the ones that matter here.
    #[command(flatten)]
    pub run: RunArgs,
    /// Build with W=1 (extra compiler warnings).
    #[arg(long)]
    pub w1: bool,
}

pub fn main(g: &GlobalArgs, cmd: &BuildCmd) -> anyhow::Result<u8> {
    let (plan, kernels) = plan_and_kernels(&cmd.run)?;
    let interrupt = install_signal_handlers()?;
    let base = run_options(g, &cmd.run, plan);
    let mut worst = 0u8;
    for name in &kernels {
        let opts = RunOptions { kernel: name.clone(), ..base.clone() };
        let mut ui = Ui::new();
        let result = rig::exec::build::build(&opts, cmd.w1, &interrupt, &mut |e: Event| {
            ui.event(e);
        });
        ui.finish();
        match result {
            Ok((tree, built)) => {
                for b in &built {
                    for ko in &b.ko_files {
                        println!("{} {} {}", tree.name, tree.release, ko.display());
                    }
                }
            }
            Err(e) => {
                ui.error(&format!("{name}: {e}"));
                let code = exit_code_for(&e);
                if code == EXIT_INTERRUPTED {
                    return Ok(code);
                }
                worst = worst.max(code);
            }
        }
    }
    Ok(worst)
}
