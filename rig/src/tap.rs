//! TAP output: one line per check, diagnostics as `#` lines, a plan at the end.

use crate::checks::{CheckResult, Outcome};

/// `ok N - name` / `not ok N - name`, with an indented diagnostic block on failure.
pub fn result_lines(n: usize, r: &CheckResult) -> String {
    let side = if r.host_side { " [host]" } else { "" };
    let mut s = match &r.outcome {
        Outcome::Pass => format!("ok {n} - {}{side}", r.name),
        Outcome::Fail(_) => format!("not ok {n} - {}{side}", r.name),
        Outcome::NotRun(why) => format!("not ok {n} - {}{side} # SKIP not run: {}", r.name, one_line(why)),
    };
    if let Outcome::Fail(why) = &r.outcome {
        for line in why.lines().take(40) {
            s.push_str(&format!("\n  # {line}"));
        }
        if !r.output.is_empty() && r.output != *why {
            s.push_str("\n  # output:");
            for line in crate::console::tail_of(&r.output, 1500).lines() {
                s.push_str(&format!("\n  #   {line}"));
            }
        }
    }
    s
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// The closing plan and a one-line summary comment.
pub fn footer(results: &[CheckResult]) -> String {
    let passed = results.iter().filter(|r| r.passed()).count();
    let failed = results.iter().filter(|r| matches!(r.outcome, Outcome::Fail(_))).count();
    let not_run = results.len() - passed - failed;
    format!("1..{}\n# {passed} passed, {failed} failed, {not_run} not run", results.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn r(name: &str, outcome: Outcome, host_side: bool) -> CheckResult {
        CheckResult { name: name.into(), outcome, output: "out".into(), elapsed: Duration::ZERO, host_side }
    }

    #[test]
    fn lines_and_footer() {
        assert_eq!(result_lines(1, &r("a", Outcome::Pass, false)), "ok 1 - a");
        assert_eq!(result_lines(2, &r("b", Outcome::Pass, true)), "ok 2 - b [host]");
        let f = result_lines(3, &r("c", Outcome::Fail("bad\nworse".into()), false));
        assert!(f.starts_with("not ok 3 - c\n  # bad\n  # worse\n  # output:\n  #   out"), "{f}");
        let s = result_lines(4, &r("d", Outcome::NotRun("guest crashed\nmore".into()), false));
        assert_eq!(s, "not ok 4 - d # SKIP not run: guest crashed");
        let all = vec![
            r("a", Outcome::Pass, false),
            r("c", Outcome::Fail("x".into()), false),
            r("d", Outcome::NotRun("y".into()), false),
        ];
        assert_eq!(footer(&all), "1..3\n# 1 passed, 1 failed, 1 not run");
    }
}
