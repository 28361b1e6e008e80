//! One QEMU guest: the accelerator choice, the command line (pure), the
//! process with its boot watchdog, and QMP. Uses [`crate::guest`] (console).

pub mod accel;
pub mod devices;
pub mod machine;
mod process;
pub mod qemu;
pub mod qmp;

pub use process::{Boot, Vm, VmError};
