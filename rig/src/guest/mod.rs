//! The guest side as the host sees it: the console protocol (every marker and
//! the shell set-up line, in one place) and the console driver (rexpect).
//! Uses nothing else of the rig.

pub mod console;
pub mod protocol;
