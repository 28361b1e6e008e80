//! The guest side as the host sees it: the protocol (every marker and the
//! shell set-up line, in one place), the shell's console driver (rexpect)
//! and the kernel console beside it. Uses [`crate::verdict`] to read the
//! kernel's reports.

pub mod console;
pub mod kernel_console;
pub mod protocol;
