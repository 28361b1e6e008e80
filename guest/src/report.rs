//! The shared report (see `rig_guest_util::Report`) with the assertions on
//! raw system calls that only `rig-guest` makes.

use crate::sys::{ename, show, Errno, Sys};
use std::fmt::{Debug, Display};

pub use rig_guest_util::Report;

/// Assertions on the result of a raw system call.
pub trait SysChecks {
    /// Asserts that a call failed with `expected`.
    fn errno<T: Debug>(&mut self, what: impl Display, expected: Errno, seen: &Sys<T>) -> bool;
    /// Asserts that a call succeeded and returns its value.
    fn success<T: Debug>(&mut self, what: impl Display, seen: Sys<T>) -> Option<T>;
}

impl SysChecks for Report {
    fn errno<T: Debug>(&mut self, what: impl Display, expected: Errno, seen: &Sys<T>) -> bool {
        let ok = matches!(seen, Err(e) if *e == expected);
        self.check(ok, what, format!("failure with {}", ename(expected)), show(seen))
    }

    fn success<T: Debug>(&mut self, what: impl Display, seen: Sys<T>) -> Option<T> {
        let ok = seen.is_ok();
        self.check(ok, what, "success", show(&seen));
        seen.ok()
    }
}
