//! JUnit XML, as CI dashboards read it: one testsuite per kernel and group,
//! one testcase per step.

use crate::results::{Outcome, Tree};

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters; consoles emit them.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one testsuite per kernel and group, one testcase per step. A
/// kernel that could not run is a failed testcase too, so no dashboard
/// shows it green.
pub fn junit(tree: &Tree) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"rig\">\n");
    for k in &tree.kernels {
        for g in k.groups() {
            let c = g.counts();
            let time: f64 = g.results.iter().map(|c| c.elapsed.as_secs_f64()).sum();
            let suite = format!("{}.{}", k.kernel(), g.name);
            x.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">\n",
                xml_escape(&suite),
                g.results.len(),
                c.failed,
                c.crashed,
                c.not_run + c.skipped,
            ));
            for c in &g.results {
                x.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    xml_escape(&suite),
                    xml_escape(&c.name),
                    c.elapsed.as_secs_f64()
                ));
                let body = |tag: &str, m: &str| {
                    format!(
                        ">\n      <{tag} message=\"{}\">{}</{tag}>\n    </testcase>\n",
                        xml_escape(m.lines().next().unwrap_or("")),
                        xml_escape(&format!("{m}\n{}", c.output))
                    )
                };
                match &c.outcome {
                    Outcome::Pass => x.push_str("/>\n"),
                    Outcome::Fail(m) => x.push_str(&body("failure", m)),
                    // A crash is an error in JUnit's terms: the test could not finish.
                    Outcome::Crash(m) => x.push_str(&body("error", m)),
                    Outcome::NotRun(m) | Outcome::Skip(m) => {
                        x.push_str(&format!(">\n      <skipped message=\"{}\"/>\n    </testcase>\n", xml_escape(m)))
                    }
                }
            }
            x.push_str("  </testsuite>\n");
        }
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{CheckResult, RunReport};
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn junit_escapes_and_counts() {
        let report = RunReport {
            kernel: "k".into(),
            release: "6.1".into(),
            tests: vec![crate::results::TestResult {
                name: "g<1>".into(),
                results: vec![
                    CheckResult {
                        name: "a & b".into(),
                        outcome: Outcome::Pass,
                        output: String::new(),
                        elapsed: Duration::ZERO,
                        host_side: false,
                        source: None,
                    },
                    CheckResult {
                        name: "c".into(),
                        outcome: Outcome::Fail("bad \"x\"\u{1b}[6n".into()),
                        output: "o".into(),
                        elapsed: Duration::ZERO,
                        host_side: false,
                        source: None,
                    },
                    CheckResult {
                        name: "d".into(),
                        outcome: Outcome::NotRun("crash".into()),
                        output: String::new(),
                        elapsed: Duration::ZERO,
                        host_side: false,
                        source: None,
                    },
                ],
            }],
            results: vec![],
            run_dir: PathBuf::new(),
            kept: false,
            timings: Default::default(),
        };
        let err = crate::results::KernelError {
            kernel: "j".into(),
            stage: crate::results::Stage::Boot,
            message: "kernel panic".into(),
            run_dir: None,
        };
        let tree =
            Tree { kernels: vec![crate::results::KernelResult::Ran(report), crate::results::KernelResult::Error(err)] };
        let x = junit(&tree);
        assert!(x.contains("name=\"k.g&lt;1&gt;\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""), "{x}");
        // The kernel that could not boot is a failed case, not a missing one.
        assert!(x.contains("name=\"the guest boots\"") && x.contains("<failure message=\"kernel panic\">"), "{x}");
        assert!(x.contains("name=\"a &amp; b\""));
        assert!(x.contains("bad &quot;x&quot;\\x1b[6n"));
        assert!(!x.contains('\u{1b}'));
    }
}
