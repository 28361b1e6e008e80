//! `rig shell`: the guest of `rig run`, its console on the terminal.

use super::ui::Ui;
use super::{exit_code_for, install_signal_handlers, plan_and_kernels, run_options, GlobalArgs, RunArgs};
use rig::exec::run::RunOptions;

#[derive(clap::Args)]
pub struct ShellCmd {
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn main(g: &GlobalArgs, cmd: &ShellCmd) -> anyhow::Result<u8> {
    let (plan, kernels) = plan_and_kernels(&cmd.run)?;
    let interrupt = install_signal_handlers()?;
    let kernel = kernels.first().cloned().unwrap_or_default();
    let opts = RunOptions { kernel, ..run_options(g, &cmd.run, plan) };
    let mut ui = Ui::new();
    let mut emit = |e| {
        ui.event(e);
    };
    match rig::exec::shell::shell(&opts, interrupt, &mut emit) {
        Ok(()) => Ok(0),
        Err(e) => {
            Ui::new().error(&e.to_string());
            Ok(exit_code_for(&e))
        }
    }
}
