//! Executing a plan: the linear recipe of `rig run` (prepare, host set-up,
//! boot, steps, power off), one step at a time, the interactive shell, and
//! a guest's Debian root, and `rig build` (the modules only).
//! Uses every stage below it; nothing below imports from here.

pub mod build;
pub mod devices;
mod groups;
pub mod prepare;
pub mod record;
pub mod replay;
pub mod rootfs;
pub mod run;
pub mod saved_boot;
pub mod setup;
pub mod shell;
pub mod step;
