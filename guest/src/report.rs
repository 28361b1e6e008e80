//! One line per assertion, then a verdict. Lines read
//! `ok: <what>` or `FAIL: <what>: expected <this>, saw <that>`.

use crate::args::Failure;
use crate::sys::{ename, show, Errno, Sys};
use std::fmt::{Debug, Display};

/// The assertions of one subcommand.
pub struct Report {
    name: &'static str,
    passed: u32,
    failed: u32,
}

impl Report {
    /// A report for subcommand `name`.
    pub fn new(name: &'static str) -> Report {
        Report { name, passed: 0, failed: 0 }
    }

    /// Asserts `ok`; `expected`/`seen` explain a failure.
    pub fn check(&mut self, ok: bool, what: impl Display, expected: impl Display, seen: impl Display) -> bool {
        if ok {
            self.passed += 1;
            println!("ok: {what}");
        } else {
            self.failed += 1;
            println!("FAIL: {what}: expected {expected}, saw {seen}");
        }
        ok
    }

    /// Asserts `seen == expected`.
    pub fn eq<T: PartialEq + Debug>(&mut self, what: impl Display, expected: T, seen: T) -> bool {
        let ok = expected == seen;
        self.check(ok, what, format!("{expected:?}"), format!("{seen:?}"))
    }

    /// Asserts that a call failed with `expected`.
    pub fn errno<T: Debug>(&mut self, what: impl Display, expected: Errno, seen: &Sys<T>) -> bool {
        let ok = matches!(seen, Err(e) if *e == expected);
        self.check(ok, what, format!("failure with {}", ename(expected)), show(seen))
    }

    /// Asserts that a call succeeded and returns its value.
    pub fn success<T: Debug>(&mut self, what: impl Display, seen: Sys<T>) -> Option<T> {
        let ok = seen.is_ok();
        self.check(ok, what, "success", show(&seen));
        seen.ok()
    }

    /// Asserts that a step the check depends on worked; a failure is recorded.
    pub fn must<T>(&mut self, what: impl Display, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => {
                self.passed += 1;
                println!("ok: {what}");
                Some(v)
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL: {what}: {e}");
                None
            }
        }
    }

    /// A line that is not an assertion.
    pub fn note(&self, msg: impl Display) {
        println!("note: {msg}");
    }

    /// Ends the check early after a failed prerequisite.
    pub fn abort(mut self, why: impl Display) -> Result<(), Failure> {
        self.failed += 1;
        println!("FAIL: {why}");
        self.finish()
    }

    /// The verdict: Ok when every assertion held.
    pub fn finish(self) -> Result<(), Failure> {
        let total = self.passed + self.failed;
        if self.failed == 0 {
            println!("PASS {}: {total} assertions", self.name);
            Ok(())
        } else {
            Err(Failure::Check(format!("{}: {} of {total} assertions failed", self.name, self.failed)))
        }
    }
}
