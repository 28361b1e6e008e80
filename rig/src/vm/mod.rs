//! One QEMU guest: the accelerator choice, the command line (pure), the
//! process with its boot watchdog, QMP, and saving a guest to a file and
//! restoring it. Uses [`crate::guest`] (console).

pub mod accel;
pub mod devices;
pub mod machine;
mod process;
pub mod qemu;
pub mod qmp;
pub mod snapshot;

pub use process::{cpu_time, Boot, Launch, Vm, VmError};
