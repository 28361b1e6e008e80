//! KTAP output, as the kernel's own tests print it: one level per kernel,
//! one per test group, one line per step; failures carry `#` diagnostics.
//! Written as results arrive (a long run shows progress), or whole from a
//! [`Tree`] (`rig parse`, the matrix's files): both give the same text.

use crate::results::{CheckResult, Counts, KernelResult, Outcome, Tree};

const INDENT: &str = "    ";

/// Streaming KTAP writer; each method returns the text to print.
#[derive(Debug, Default)]
pub struct Ktap {
    kernel: usize,
    groups: Vec<(String, usize)>,
    seen: Vec<usize>,
    group_ok: Vec<bool>,
}

fn diag(prefix: &str, text: &str, max_lines: usize) -> String {
    text.lines().take(max_lines).map(|l| format!("\n{prefix}# {l}")).collect()
}

impl Ktap {
    /// `KTAP version 1` and the plan: one subtest per kernel.
    pub fn start(kernels: usize) -> (Ktap, String) {
        (Ktap::default(), format!("KTAP version 1\n1..{kernels}"))
    }

    /// A kernel's subtest header and its plan of groups.
    pub fn kernel_plan(&mut self, name: &str, groups: &[(String, usize)]) -> String {
        self.kernel += 1;
        self.groups = groups.to_vec();
        self.seen = vec![0; groups.len()];
        self.group_ok = vec![true; groups.len()];
        format!("{INDENT}KTAP version 1\n{INDENT}# Subtest: {name}\n{INDENT}1..{}", groups.len())
    }

    /// One step's line; closes its group after the last step.
    pub fn result(&mut self, group: usize, r: &CheckResult) -> String {
        let Some((gname, count)) = self.groups.get(group).cloned() else { return String::new() };
        let p2 = format!("{INDENT}{INDENT}");
        let mut s = String::new();
        if self.seen[group] == 0 {
            s.push_str(&format!("{p2}KTAP version 1\n{p2}# Subtest: {gname}\n{p2}1..{count}\n"));
        }
        self.seen[group] += 1;
        let n = self.seen[group];
        let side = if r.host_side { " [host]" } else { "" };
        let name = one_line(&r.name);
        match &r.outcome {
            Outcome::Pass => s.push_str(&format!("{p2}ok {n} {name}{side}")),
            Outcome::Skip(why) => s.push_str(&format!("{p2}ok {n} {name}{side} # SKIP {}", one_line(why))),
            Outcome::NotRun(why) => {
                self.group_ok[group] = false;
                s.push_str(&format!("{p2}not ok {n} {name}{side} # SKIP not run: {}", one_line(why)));
            }
            Outcome::Fail(why) | Outcome::Crash(why) => {
                self.group_ok[group] = false;
                s.push_str(&format!("{p2}not ok {n} {name}{side}"));
                if matches!(r.outcome, Outcome::Crash(_)) {
                    s.push_str(&format!("\n{p2}# the guest kernel crashed"));
                }
                s.push_str(&diag(&p2, why, 40));
                if !r.output.is_empty() && r.output.trim() != why.trim() {
                    s.push_str(&format!("\n{p2}# output:"));
                    s.push_str(&diag(&p2, &crate::support::head_and_tail(&r.output, 24, 15), 40));
                }
            }
        }
        if n == count {
            let verdict = if self.group_ok[group] { "ok" } else { "not ok" };
            s.push_str(&format!("\n{INDENT}{verdict} {} {gname}", group + 1));
        }
        s
    }

    /// The kernel's result line; `error` when the run could not produce results.
    pub fn kernel_end(&mut self, name: &str, passed: bool, error: Option<&str>) -> String {
        match error {
            Some(e) => {
                let mut s = format!("not ok {} {name}", self.kernel.max(1));
                s.push_str(&diag("", e, 30));
                s
            }
            None => format!("{} {} {name}", if passed { "ok" } else { "not ok" }, self.kernel),
        }
    }

    /// Notes that a kernel failed before its plan (no subtest block).
    pub fn kernel_skipped_plan(&mut self) {
        self.kernel += 1;
    }
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").replace('#', "\\#")
}

/// Counts for the closing summary comment.
pub fn summary(results: &[CheckResult]) -> String {
    totals(Counts::of(results))
}

/// `# 44 passed, 1 failed, 1 crashed, 2 not run, 0 skipped` (zeros of the
/// rare kinds left out).
pub fn totals(c: Counts) -> String {
    let mut s = format!("# {} passed, {} failed", c.passed, c.failed);
    if c.crashed > 0 {
        s.push_str(&format!(", {} crashed", c.crashed));
    }
    s.push_str(&format!(", {} not run", c.not_run));
    if c.skipped > 0 {
        s.push_str(&format!(", {} skipped", c.skipped));
    }
    s
}

/// The whole KTAP document of `tree`, as `rig run` streams it.
pub fn document(tree: &Tree) -> String {
    let (mut k, head) = Ktap::start(tree.kernels.len());
    let mut out = vec![head];
    for kr in &tree.kernels {
        match kr {
            KernelResult::Ran(rep) => {
                let groups: Vec<(String, usize)> =
                    rep.tests.iter().map(|t| (t.name.clone(), t.results.len())).collect();
                out.push(k.kernel_plan(&rep.kernel, &groups));
                for (gi, t) in rep.tests.iter().enumerate() {
                    for r in &t.results {
                        out.push(k.result(gi, r));
                    }
                }
                out.push(k.kernel_end(&rep.kernel, rep.passed(), None));
                out.push(summary(&rep.results));
            }
            KernelResult::Error(e) => {
                k.kernel_skipped_plan();
                out.push(k.kernel_end(&e.kernel, false, Some(&e.message)));
            }
        }
    }
    if tree.kernels.len() > 1 {
        out.push(totals(tree.counts()).replacen("# ", "# all kernels: ", 1));
    }
    out.retain(|s| !s.is_empty());
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, outcome: Outcome) -> CheckResult {
        CheckResult { output: "out".into(), ..CheckResult::verdict(name, outcome) }
    }

    #[test]
    fn nested_ktap() {
        let (mut k, head) = Ktap::start(1);
        let mut text = head;
        text.push('\n');
        text.push_str(&k.kernel_plan("bookworm-6.1", &[("boot".into(), 1), ("mmap".into(), 2)]));
        text.push('\n');
        text.push_str(&k.result(0, &r("insmod a.ko", Outcome::Pass)));
        text.push('\n');
        text.push_str(&k.result(1, &r("write # then read", Outcome::Pass)));
        text.push('\n');
        text.push_str(&k.result(1, &r("host sees it", Outcome::Fail("bytes differ".into()))));
        text.push('\n');
        text.push_str(&k.kernel_end("bookworm-6.1", false, None));
        let want = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: bookworm-6.1
    1..2
        KTAP version 1
        # Subtest: boot
        1..1
        ok 1 insmod a.ko
    ok 1 boot
        KTAP version 1
        # Subtest: mmap
        1..2
        ok 1 write \\# then read
        not ok 2 host sees it
        # bytes differ
        # output:
        # out
    not ok 2 mmap
not ok 1 bookworm-6.1";
        assert_eq!(text, want);
    }

    #[test]
    fn not_run_is_skip_and_fails_the_group() {
        let (mut k, _) = Ktap::start(1);
        k.kernel_plan("k", &[("g".into(), 1)]);
        let s = k.result(0, &r("x", Outcome::NotRun("the guest kernel crashed\nmore".into())));
        assert!(s.ends_with("\n        not ok 1 x # SKIP not run: the guest kernel crashed\n    not ok 1 g"), "{s}");
        assert_eq!(
            summary(&[r("a", Outcome::Pass), r("b", Outcome::NotRun("x".into()))]),
            "# 1 passed, 0 failed, 1 not run"
        );
        assert_eq!(
            summary(&[r("a", Outcome::Crash("p".into())), r("b", Outcome::Skip("n/a".into()))]),
            "# 0 passed, 0 failed, 1 crashed, 0 not run, 1 skipped"
        );
    }

    #[test]
    fn several_kernels_end_with_the_totals_over_all() {
        use crate::results::{KernelError, RunReport, Stage, TestResult};
        let checks =
            vec![r("a", Outcome::Pass), r("b", Outcome::Fail("x".into())), r("c", Outcome::NotRun("y".into()))];
        let ran = KernelResult::Ran(RunReport {
            kernel: "k1".into(),
            release: "6.1".into(),
            tests: vec![TestResult { name: "g".into(), results: checks.clone() }],
            results: checks,
            run_dir: Default::default(),
            kept: false,
            timings: Default::default(),
        });
        let err = KernelResult::Error(KernelError {
            kernel: "k2".into(),
            stage: Stage::Boot,
            message: "no shell".into(),
            run_dir: None,
        });
        let doc = document(&Tree { kernels: vec![ran.clone(), err] });
        let lines: Vec<&str> = doc.lines().collect();
        // Each kernel's totals, then all of them (the kernel that could not boot is one failure).
        assert!(lines.contains(&"# 1 passed, 1 failed, 1 not run"), "{doc}");
        assert_eq!(lines.last(), Some(&"# all kernels: 1 passed, 2 failed, 1 not run"), "{doc}");
        assert!(!document(&Tree { kernels: vec![ran] }).contains("all kernels"));
    }

    #[test]
    fn kernel_error_has_diagnostics() {
        let (mut k, _) = Ktap::start(2);
        k.kernel_skipped_plan();
        assert_eq!(k.kernel_end("sid-7", false, Some("QEMU died\ntail")), "not ok 1 sid-7\n# QEMU died\n# tail");
    }
}
