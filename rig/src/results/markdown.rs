//! The Markdown summary a reviewer reads at a glance, made for GitHub's job
//! summary (`$GITHUB_STEP_SUMMARY`): the verdict and the counts, the kernel x
//! check table, each failure folded (`<details>`) with its message, output
//! excerpt and line in the config, and the timings. Pure, and bounded in
//! size (GitHub takes at most 1 MiB per step): excerpts are cut and at most
//! [`MAX_DETAILS`] failures are unfolded.

use super::text::{excerpt, first_line, label, plural};
use super::workspace::Workspace;
use super::{CheckResult, Counts, KernelResult, Status, Timings, Tree};
use std::time::Duration;

/// Failures shown with details; the others are counted.
pub const MAX_DETAILS: usize = 30;

/// What the document says besides the tree.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    /// The heading's subject, e.g. `rig: tests/rig.toml`.
    pub title: &'a str,
    /// Wall time of the whole invocation, when known.
    pub wall: Option<Duration>,
    /// Config paths and links to the steps' lines.
    pub workspace: &'a Workspace,
}

fn icon(s: Status) -> &'static str {
    match s {
        Status::Pass => "✅",
        Status::Fail => "❌",
        Status::Crash => "💥",
        Status::NotRun => "⏸️",
        Status::Skip => "⏭️",
    }
}

/// A table cell: passes stay quiet so the rest stands out.
fn cell(r: Option<&CheckResult>) -> String {
    match r.map(|r| r.outcome.status()) {
        None => "–".into(),
        Some(Status::Pass) => icon(Status::Pass).into(),
        Some(s) => format!("{} {}", icon(s), s.name().replace('_', " ")),
    }
}

/// Text inside Markdown (a table cell, a heading): one line, with the
/// characters that would start markup, a cell end or HTML escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for c in first_line(s).chars() {
        if "\\`*_[]<>|~&".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Text inside HTML (`<summary>`), where Markdown is not read.
fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A fenced block that `text` cannot close: the fence is longer than any
/// run of backticks inside.
fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{text}\n{fence}\n")
}

/// `0.42 s`, `12.3 s`, `2 min 05 s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// `1 crashed, 2 failed, 4 not run, 41 passed, 0 skipped`, worst first,
/// the bad ones in bold when there are some.
fn counts_line(c: Counts) -> String {
    let bad = |n: usize, what: &str| if n > 0 { format!("**{n} {what}**") } else { format!("{n} {what}") };
    let mut parts = vec![];
    if c.crashed > 0 {
        parts.push(bad(c.crashed, "crashed"));
    }
    parts.push(bad(c.failed, "failed"));
    parts.push(bad(c.not_run, "not run"));
    parts.push(format!("{} passed", c.passed));
    parts.push(format!("{} skipped", c.skipped));
    parts.join(" · ")
}

/// The kernel's cell in the result row.
fn kernel_verdict(k: &KernelResult) -> String {
    let c = k.counts();
    match k {
        KernelResult::Error(_) => format!("{} could not run", icon(Status::Fail)),
        KernelResult::Ran(_) if k.passed() => format!("{} {} passed", icon(Status::Pass), c.passed),
        KernelResult::Ran(_) => {
            let parts: Vec<String> = [(c.crashed, "crashed"), (c.failed, "failed"), (c.not_run, "not run")]
                .into_iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, what)| format!("{n} {what}"))
                .collect();
            format!("{} {}", icon(c.status()), parts.join(", "))
        }
    }
}

fn heading(tree: &Tree, o: &Options) -> String {
    let names = |ks: Vec<&KernelResult>| -> String {
        if ks.len() <= 3 {
            ks.iter().map(|k| k.kernel()).collect::<Vec<_>>().join(", ")
        } else {
            plural(ks.len(), "kernel")
        }
    };
    let all: Vec<&KernelResult> = tree.kernels.iter().collect();
    let bad: Vec<&KernelResult> = tree.kernels.iter().filter(|k| !k.passed()).collect();
    let (status, verdict) = if tree.kernels.is_empty() {
        (Status::Fail, "no kernel ran".to_owned())
    } else if bad.is_empty() {
        (Status::Pass, format!("passed on {}", names(all)))
    } else if tree.kernels.len() == 1 {
        (tree.counts().status(), format!("failed on {}", names(bad)))
    } else {
        let n = bad.len();
        (tree.counts().status(), format!("failed on {} ({n} of {})", names(bad), plural(tree.kernels.len(), "kernel")))
    };
    format!("### {} {} — {}\n", icon(status), inline(o.title), inline(&verdict))
}

/// Rows of the table: (group, check, occurrence) in first-seen order over
/// the kernels; the occurrence tells apart two steps of one name.
type RowKey = (String, String, usize);

fn rows(columns: &[Vec<(RowKey, CheckResult)>]) -> Vec<RowKey> {
    let mut rows: Vec<RowKey> = vec![];
    for (key, _) in columns.iter().flatten() {
        if !rows.contains(key) {
            rows.push(key.clone());
        }
    }
    rows
}

fn keyed(k: &KernelResult) -> Vec<(RowKey, CheckResult)> {
    let mut out: Vec<(RowKey, CheckResult)> = vec![];
    for g in k.groups() {
        for r in g.results {
            let n = out.iter().filter(|((gn, cn, _), _)| *gn == g.name && *cn == r.name).count();
            out.push(((g.name.clone(), r.name.clone(), n), r));
        }
    }
    out
}

fn table(tree: &Tree) -> String {
    let columns: Vec<Vec<(RowKey, CheckResult)>> = tree.kernels.iter().map(keyed).collect();
    let mut t =
        format!("| check | {} |\n", tree.kernels.iter().map(|k| inline(k.kernel())).collect::<Vec<_>>().join(" | "));
    t.push_str(&format!("| :-- |{}\n", " :-: |".repeat(tree.kernels.len())));
    for key in rows(&columns) {
        let cells: Vec<String> =
            columns.iter().map(|col| cell(col.iter().find(|(k, _)| *k == key).map(|(_, r)| r))).collect();
        t.push_str(&format!("| {} | {} |\n", inline(&label(&key.0, &key.1)), cells.join(" | ")));
    }
    let verdicts: Vec<String> = tree.kernels.iter().map(kernel_verdict).collect();
    t.push_str(&format!("| **result** | {} |\n", verdicts.join(" | ")));
    if tree.kernels.iter().any(|k| timings_of(k).is_some()) {
        let times: Vec<String> =
            tree.kernels.iter().map(|k| timings_of(k).map_or_else(|| "–".into(), |t| duration(t.total))).collect();
        t.push_str(&format!("| time | {} |\n", times.join(" | ")));
    }
    t.push_str(
        "\n<sub>✅ pass · ❌ fail · 💥 crash: the kernel died under the step · ⏸️ not run: an earlier failure \
         stopped the run · ⏭️ skip · – no such check on that kernel</sub>\n",
    );
    t
}

fn failure_details(tree: &Tree, ws: &Workspace) -> String {
    let failures = tree.failures();
    if failures.is_empty() {
        return String::new();
    }
    let mut s = format!("\n#### {}\n\n", plural(failures.len(), "failure"));
    for f in failures.iter().take(MAX_DETAILS) {
        let r = &f.result;
        let why = r.outcome.message().unwrap_or_default();
        s.push_str(&format!(
            "<details><summary>{} <b>{}</b> · {} — {}</summary>\n\n",
            icon(r.outcome.status()),
            html(&f.kernel),
            html(&label(&f.group, &r.name)),
            html(&excerpt(&first_line(why), 1, 0, 200)),
        ));
        if let Some(src) = &r.source {
            let place = ws.show(src);
            match ws.link(src) {
                Some(url) => s.push_str(&format!("Step at [{}]({url}).\n\n", inline(&place))),
                None => s.push_str(&format!("Step at `{place}`.\n\n")),
            }
        }
        if why.trim().contains('\n') || why.chars().count() > 200 {
            s.push_str(&fenced(&excerpt(why, 40, 20, 4000)));
            s.push('\n');
        }
        let out = r.output.trim();
        if !out.is_empty() && out != why.trim() {
            s.push_str("Output:\n\n");
            s.push_str(&fenced(&excerpt(out, 40, 20, 4000)));
            s.push('\n');
        }
        if !f.not_run_after.is_empty() {
            let names: Vec<String> = f.not_run_after.iter().take(10).map(|n| inline(n)).collect();
            let more = f.not_run_after.len().saturating_sub(names.len());
            let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
            s.push_str(&format!("Not run after it: {}{tail}.\n\n", names.join(", ")));
        }
        s.push_str("</details>\n\n");
    }
    if failures.len() > MAX_DETAILS {
        s.push_str(&format!(
            "{} more: see the KTAP output and the logs.\n",
            plural(failures.len() - MAX_DETAILS, "failure")
        ));
    }
    s
}

/// A kernel's timings, when it ran and they were measured (a run read back
/// from its directory has none).
fn timings_of(k: &KernelResult) -> Option<&Timings> {
    match k {
        KernelResult::Ran(r) if !r.timings.total.is_zero() => Some(&r.timings),
        _ => None,
    }
}

fn timings(tree: &Tree) -> String {
    if !tree.kernels.iter().any(|k| timings_of(k).is_some()) {
        return String::new();
    }
    let mut s = String::from(
        "\n<details><summary>Timings</summary>\n\n\
         | kernel | release | fetch | build | initramfs | boot | checks | power-off | total |\n\
         | :-- | :-- | --: | --: | --: | --: | --: | --: | --: |\n",
    );
    for k in &tree.kernels {
        match k {
            KernelResult::Ran(r) => {
                let cells: Vec<String> = match timings_of(k) {
                    Some(t) => {
                        [t.fetch, t.build, t.initramfs, t.boot, t.checks, t.shutdown, t.total].map(duration).into()
                    }
                    None => vec!["–".into(); 7],
                };
                s.push_str(&format!("| {} | {} | {} |\n", inline(&r.kernel), inline(&r.release), cells.join(" | ")));
            }
            KernelResult::Error(e) => {
                let stage = inline(e.stage.check_name());
                s.push_str(&format!("| {} | could not run: {stage} | {} |\n", inline(&e.kernel), ["–"; 7].join(" | ")));
            }
        }
    }
    s.push_str("\n</details>\n");
    s
}

/// The whole summary.
pub fn document(tree: &Tree, o: &Options) -> String {
    let c = tree.counts();
    let mut s = heading(tree, o);
    let wall = o.wall.map(|w| format!(" in {}", duration(w))).unwrap_or_default();
    s.push_str(&format!(
        "\n{} — {} on {}{wall}\n\n",
        counts_line(c),
        plural(c.total(), "check"),
        plural(tree.kernels.len(), "kernel")
    ));
    if !tree.kernels.is_empty() {
        s.push_str(&table(tree));
    }
    s.push_str(&failure_details(tree, o.workspace));
    if !tree.kernels.is_empty() {
        s.push_str(&timings(tree));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::step::Source;
    use crate::results::{KernelError, Outcome, RunReport, Stage, TestResult};
    use std::path::PathBuf;

    fn check(name: &str, outcome: Outcome, line: Option<usize>, output: &str) -> CheckResult {
        CheckResult {
            output: output.into(),
            source: line.map(|line| Source { file: PathBuf::from("/w/repo/rig.toml"), line }),
            ..CheckResult::verdict(name, outcome)
        }
    }

    fn ran(kernel: &str, groups: Vec<TestResult>) -> KernelResult {
        KernelResult::Ran(RunReport {
            kernel: kernel.into(),
            release: format!("{kernel}-release"),
            results: groups.iter().flat_map(|g| g.results.clone()).collect(),
            tests: groups,
            run_dir: PathBuf::new(),
            kept: false,
            timings: Timings {
                boot: Duration::from_millis(2500),
                total: Duration::from_secs(75),
                ..Timings::default()
            },
        })
    }

    /// Three kernels: one passes, one fails a step and crashes on the next
    /// (whose successor is not run), one cannot build.
    fn tree() -> Tree {
        let boot = TestResult { name: "boot".into(), results: vec![check("insmod m.ko", Outcome::Pass, None, "")] };
        let t = |read: Outcome, write: Outcome, after: Outcome| TestResult {
            name: "greeting".into(),
            results: vec![
                check("read | count", read, Some(21), "hello 0\n```\nfenced?\n"),
                check("write", write, Some(26), "[  3.1] BUG: kernel NULL pointer dereference"),
                check("write", after, Some(30), ""),
            ],
        };
        let build = KernelError {
            kernel: "sid-7".into(),
            stage: Stage::Build,
            message: "make: *** [m.o] Error 1\nm.c:3: error: <linux/x.h>: No such file".into(),
            run_dir: None,
        };
        Tree {
            kernels: vec![
                ran("bullseye-5.10", vec![boot.clone(), t(Outcome::Pass, Outcome::Pass, Outcome::Pass)]),
                ran(
                    "bookworm-6.1",
                    vec![
                        boot,
                        t(
                            Outcome::Fail("output does not match /^hello 1$/".into()),
                            Outcome::Crash("the kernel reported BUG: kernel NULL pointer dereference".into()),
                            Outcome::NotRun("the guest kernel crashed".into()),
                        ),
                    ],
                ),
                KernelResult::Error(build),
            ],
        }
    }

    fn doc(tree: &Tree) -> String {
        let ws = Workspace::new(Some("/w/repo".into()), Some("https://github.com"), Some("o/r"), Some("abc"));
        document(tree, &Options { title: "rig: rig.toml", wall: Some(Duration::from_secs(83)), workspace: &ws })
    }

    #[test]
    fn verdict_counts_and_table() {
        let d = doc(&tree());
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines[0], "### 💥 rig: rig.toml — failed on bookworm-6.1, sid-7 (2 of 3 kernels)");
        assert_eq!(
            lines[2],
            "**1 crashed** · **2 failed** · **1 not run** · 5 passed · 0 skipped — 9 checks on 3 kernels in 1 min 23 s"
        );
        let table: Vec<&str> = lines.iter().copied().skip_while(|l| !l.starts_with("| check")).take(9).collect();
        assert_eq!(
            table,
            [
                "| check | bullseye-5.10 | bookworm-6.1 | sid-7 |",
                "| :-- | :-: | :-: | :-: |",
                "| insmod m.ko | ✅ | ✅ | – |",
                "| greeting: read \\| count | ✅ | ❌ fail | – |",
                "| greeting: write | ✅ | 💥 crash | – |",
                // The second step of the same name is its own row.
                "| greeting: write | ✅ | ⏸️ not run | – |",
                "| rig: the modules build | – | – | ❌ fail |",
                "| **result** | ✅ 4 passed | 💥 1 crashed, 1 failed, 1 not run | ❌ could not run |",
                "| time | 1 min 15 s | 1 min 15 s | – |",
            ]
        );
    }

    #[test]
    fn failures_are_folded_with_their_line_and_output() {
        let d = doc(&tree());
        assert!(d.contains("\n#### 3 failures\n"), "{d}");
        let read = d.split("<details>").nth(1).expect("first failure");
        assert!(read.starts_with(
            "<summary>❌ <b>bookworm-6.1</b> · greeting: read | count — output does not match /^hello 1$/</summary>\n\n\
             Step at [rig.toml:21](https://github.com/o/r/blob/abc/rig.toml#L21).\n\n"
        ), "{read}");
        // The output's own ``` cannot close the block.
        assert!(read.contains("Output:\n\n````text\nhello 0\n```\nfenced?\n````\n"), "{read}");
        let crash = d.split("<details>").nth(2).expect("second failure");
        assert!(crash.contains("Not run after it: greeting: write.\n"), "{crash}");
        let build = d.split("<details>").nth(3).expect("third failure");
        assert!(
            build
                .starts_with("<summary>❌ <b>sid-7</b> · rig: the modules build — make: *** [m.o] Error 1 …</summary>"),
            "{build}"
        );
        // The whole message, HTML-looking text and all, in a block.
        assert!(
            build.contains("```text\nmake: *** [m.o] Error 1\nm.c:3: error: <linux/x.h>: No such file\n```"),
            "{build}"
        );
        assert!(d.contains("| sid-7 | could not run: the modules build | – | – |"), "{d}");
        assert!(d.contains("| bookworm-6.1 | bookworm-6.1-release | 0.00 s | 0.00 s | 0.00 s | 2.5 s | 0.00 s | 0.00 s | 1 min 15 s |"), "{d}");
    }

    #[test]
    fn a_clean_run_and_an_empty_one() {
        let boot = TestResult { name: "boot".into(), results: vec![check("insmod m.ko", Outcome::Pass, None, "")] };
        let d = doc(&Tree { kernels: vec![ran("bookworm-6.1", vec![boot])] });
        assert!(
            d.starts_with("### ✅ rig: rig.toml — passed on bookworm-6.1\n\n0 failed · 0 not run · 1 passed"),
            "{d}"
        );
        assert!(!d.contains("####") && !d.contains("<details><summary>❌"), "{d}");
        // Read back from a run directory: no timings to show.
        let mut back = ran("k", vec![]);
        if let KernelResult::Ran(r) = &mut back {
            r.timings = Timings::default();
        }
        let d = doc(&Tree { kernels: vec![back] });
        assert!(!d.contains("| time |") && !d.contains("Timings"), "{d}");
        let d = doc(&Tree::default());
        assert!(d.starts_with("### ❌ rig: rig.toml — no kernel ran\n"), "{d}");
        assert!(!d.contains("| check"), "{d}");
    }

    #[test]
    fn size_is_bounded() {
        // A megabyte of output in one line, and in many.
        let wide = "x".repeat(1 << 20);
        let tall = "line\n".repeat(200_000);
        let results: Vec<CheckResult> = (0..40)
            .map(|i| {
                let out = if i % 2 == 0 { &wide } else { &tall };
                check(&format!("s{i}"), Outcome::Fail(format!("bad\n{out}")), Some(i + 1), out)
            })
            .collect();
        let kernels =
            (0..2).map(|k| ran(&format!("k{k}"), vec![TestResult { name: "g".into(), results: results.clone() }]));
        let d = doc(&Tree { kernels: kernels.collect() });
        assert!(d.len() < 512 << 10, "{} bytes", d.len());
        assert_eq!(d.matches("<details><summary>❌").count(), MAX_DETAILS);
        assert!(d.contains(&format!(
            "</details>\n\n{} more: see the KTAP output and the logs.\n",
            plural(80 - MAX_DETAILS, "failure")
        )));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            inline("a|b <i>*x*</i> `c` [l](u) _e_ &amp;\nmore"),
            "a\\|b \\<i\\>\\*x\\*\\</i\\> \\`c\\` \\[l\\](u) \\_e\\_ \\&amp; …"
        );
        assert_eq!(html("<b>&\"</b>"), "&lt;b&gt;&amp;&quot;&lt;/b&gt;");
        assert_eq!(fenced("a ````` b"), "``````text\na ````` b\n``````\n");
        assert_eq!(duration(Duration::from_millis(420)), "0.42 s");
        assert_eq!(duration(Duration::from_secs(125)), "2 min 05 s");
    }
}
