//! JUnit XML, as CI dashboards read it: one testsuite per kernel and group,
//! one testcase per step.

use crate::results::Outcome;
use crate::results::RunReport;

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

/// JUnit XML: one testsuite per kernel and group, one testcase per step.
pub fn junit(reports: &[RunReport]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"rig\">\n");
    for r in reports {
        for g in &r.tests {
            let failures = g.results.iter().filter(|c| matches!(c.outcome, Outcome::Fail(_))).count();
            let skipped = g.results.iter().filter(|c| matches!(c.outcome, Outcome::NotRun(_))).count();
            let time: f64 = g.results.iter().map(|c| c.elapsed.as_secs_f64()).sum();
            x.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
                xml_escape(&format!("{}.{}", r.kernel, g.name)),
                g.results.len()
            ));
            for c in &g.results {
                x.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    xml_escape(&format!("{}.{}", r.kernel, g.name)),
                    xml_escape(&c.name),
                    c.elapsed.as_secs_f64()
                ));
                match &c.outcome {
                    Outcome::Pass => x.push_str("/>\n"),
                    Outcome::Fail(m) => x.push_str(&format!(
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                        xml_escape(m.lines().next().unwrap_or("")),
                        xml_escape(&format!("{m}\n{}", c.output))
                    )),
                    Outcome::NotRun(m) => {
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
    use crate::results::CheckResult;
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
                    },
                    CheckResult {
                        name: "c".into(),
                        outcome: Outcome::Fail("bad \"x\"\u{1b}[6n".into()),
                        output: "o".into(),
                        elapsed: Duration::ZERO,
                        host_side: false,
                    },
                    CheckResult {
                        name: "d".into(),
                        outcome: Outcome::NotRun("crash".into()),
                        output: String::new(),
                        elapsed: Duration::ZERO,
                        host_side: false,
                    },
                ],
            }],
            results: vec![],
            run_dir: PathBuf::new(),
            kept: false,
            timings: Default::default(),
        };
        let x = junit(&[report]);
        assert!(x.contains("name=\"k.g&lt;1&gt;\" tests=\"3\" failures=\"1\" skipped=\"1\""), "{x}");
        assert!(x.contains("name=\"a &amp; b\""));
        assert!(x.contains("bad &quot;x&quot;\\x1b[6n"));
        assert!(!x.contains('\u{1b}'));
    }
}
