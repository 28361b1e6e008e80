//! One line per assertion, then a verdict: `ok: <what>`, or
//! `FAIL: <what>: expected <this>, saw <that>`; `note:` lines are facts
//! that assert nothing. The last line is `PASS <cmd>: N assertions` or the
//! `FAIL` line the program's main prints.

use std::fmt::{self, Debug, Display};

/// Why a subcommand did not succeed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Bad command line: exit 2.
    Usage(String),
    /// The check ran and failed: exit 1.
    Check(String),
}

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Check(m) => f.write_str(m),
        }
    }
}

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

    /// Asserts `ok`; `expected` and `seen` explain a failure.
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

    /// Asserts that a step worked and hands back its value.
    pub fn must<T, E: Display>(&mut self, what: impl Display, r: Result<T, E>) -> Option<T> {
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

    /// A line that asserts nothing.
    pub fn note(&self, msg: impl Display) {
        println!("note: {msg}");
    }

    /// Whether every assertion so far held.
    pub fn clean(&self) -> bool {
        self.failed == 0
    }

    /// Ends the check early after a failed prerequisite.
    pub fn abort(mut self, why: impl Display) -> Result<(), Failure> {
        self.failed += 1;
        println!("FAIL: {why}");
        self.finish()
    }

    /// The verdict: Ok when every assertion held and there was at least one.
    pub fn finish(self) -> Result<(), Failure> {
        let total = self.passed + self.failed;
        if self.failed == 0 && total > 0 {
            println!("PASS {}: {total} assertions", self.name);
            Ok(())
        } else if self.failed == 0 {
            Err(Failure::Check(format!("{}: nothing was asserted", self.name)))
        } else {
            Err(Failure::Check(format!("{}: {} of {total} assertions failed", self.name, self.failed)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_counts_failures() {
        let mut r = Report::new("t");
        assert!(r.eq("same", 1, 1));
        assert!(r.must::<_, String>("step", Ok(3)).is_some());
        assert!(r.clean());
        assert_eq!(r.finish(), Ok(()));

        let mut r = Report::new("t");
        assert!(!r.check(false, "x", "a", "b"));
        assert!(r.must::<u8, _>("step", Err("broken")).is_none());
        assert!(!r.clean());
        assert_eq!(r.finish(), Err(Failure::Check("t: 2 of 2 assertions failed".into())));

        let mut r = Report::new("t");
        assert!(r.eq("first", 'a', 'a'));
        assert_eq!(r.abort("no device"), Err(Failure::Check("t: 1 of 2 assertions failed".into())));

        // Nothing asserted is not a pass.
        assert_eq!(Report::new("empty").finish(), Err(Failure::Check("empty: nothing was asserted".into())));
    }
}
