//! One QEMU guest: the accelerator choice, the command line (pure), the
//! process with its boot watchdog, and QMP. Uses [`crate::guest`] (console).

pub mod accel;
mod process;
pub mod qemu;
pub mod qmp;

pub use process::{Boot, Vm, VmError};
