//! GitHub Actions annotations: each failed or crashed check as an
//! `::error file=F,line=L,title=T::MESSAGE` workflow command, pointing at the
//! step's line in the user's config, so the failure shows on the file in
//! the pull request and at the top of the run.
//!
//! A step that fails on several kernels is one annotation naming them all:
//! GitHub shows at most [`PER_STEP`] errors of a step and drops the rest
//! silently, so past that the last one says how many more there are. Checks
//! that did not run get no annotation of their own (they are a consequence,
//! and their lines are not at fault): the failure before them says how many
//! it stopped. Pure: the caller prints the commands when `GITHUB_ACTIONS`
//! is `true`.

use super::text::{excerpt, first_line, label, plural};
use super::workspace::Workspace;
use super::{Failure, Status, Tree};
use crate::plan::step::Source;

/// Annotations of one kind GitHub shows per step.
pub const PER_STEP: usize = 10;

/// Longest title kept (GitHub shows it as the annotation's heading).
const TITLE_MAX: usize = 160;

/// An annotation's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// One annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    pub level: Level,
    /// Relative to the workspace (GitHub drops files outside it).
    pub file: Option<String>,
    /// 1-based.
    pub line: Option<usize>,
    pub title: String,
    pub message: String,
}

impl Annotation {
    /// The workflow command, one line.
    pub fn command(&self) -> String {
        let mut props = vec![];
        if let Some(f) = &self.file {
            props.push(format!("file={}", escape_property(f)));
            if let Some(l) = self.line {
                props.push(format!("line={l}"));
            }
        }
        props.push(format!("title={}", escape_property(&self.title)));
        format!("::{} {}::{}", self.level.command(), props.join(","), escape_data(&self.message))
    }
}

/// A command's message: `%`, CR and LF encoded (the runner decodes `%25`
/// last, so `%` goes first here).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A command's property value: as data, and `:` and `,`, which would end
/// the property or the property list.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A step over kernels: where it is written, its group and its name.
type StepKey<'a> = (Option<&'a Source>, &'a str, &'a str);

/// The annotations of `tree`: one per failing step (over all kernels),
/// crashes first, then in the order they happened; at most [`PER_STEP`].
pub fn annotations(tree: &Tree, ws: &Workspace) -> Vec<Annotation> {
    let failures = tree.failures();
    let mut steps: Vec<(StepKey, Vec<&Failure>)> = vec![];
    for f in &failures {
        let key = (f.result.source.as_ref(), f.group.as_str(), f.result.name.as_str());
        match steps.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(f),
            None => steps.push((key, vec![f])),
        }
    }
    // Stable: the order of appearance within each kind.
    steps.sort_by_key(|(_, list)| worst(list));
    let mut out: Vec<Annotation> = steps.iter().map(|(_, list)| step_annotation(list, ws)).collect();
    if out.len() > PER_STEP {
        let rest = out.split_off(PER_STEP - 1);
        let titles: Vec<&str> = rest.iter().map(|a| a.title.as_str()).collect();
        out.push(Annotation {
            level: Level::Error,
            file: None,
            line: None,
            title: format!("rig: {} more failed step{}", rest.len(), if rest.len() == 1 { "" } else { "s" }),
            message: format!(
                "GitHub shows {PER_STEP} annotations per step; the others are in the job summary and the KTAP output:\n{}",
                titles.join("\n")
            ),
        });
    }
    out
}

fn worst(list: &[&Failure]) -> Status {
    list.iter().map(|f| f.result.outcome.status()).min().unwrap_or(Status::Fail)
}

fn step_annotation(list: &[&Failure], ws: &Workspace) -> Annotation {
    let first = list[0];
    let on = |status: Status| {
        let kernels: Vec<&str> =
            list.iter().filter(|f| f.result.outcome.status() == status).map(|f| f.kernel.as_str()).collect();
        if kernels.len() <= 3 {
            kernels.join(", ")
        } else {
            plural(kernels.len(), "kernel")
        }
    };
    let verbs: Vec<String> = [(Status::Crash, "crashed the kernel"), (Status::Fail, "failed")]
        .into_iter()
        .map(|(status, verb)| (on(status), verb))
        .filter(|(on, _)| !on.is_empty())
        .map(|(on, verb)| format!("{verb} on {on}"))
        .collect();
    let mut title = format!("{} {}", label(&first.group, &first.result.name), verbs.join("; "));
    if title.chars().count() > TITLE_MAX {
        title = title.chars().take(TITLE_MAX - 1).collect::<String>() + "…";
    }
    let source = first.result.source.as_ref();
    let place = source.and_then(|s| Some((ws.relative(&s.file)?, s.line)));
    let mut parts = vec![];
    if let (Some(s), None) = (source, &place) {
        // Outside the workspace GitHub cannot place it: say where in the text.
        parts.push(format!("{}: the step", ws.show(s)));
    }
    for f in list {
        let why = f.result.outcome.message().unwrap_or_default();
        let mut p = format!("{}: {}", f.kernel, excerpt(why, 10, 5, 1500));
        let out = f.result.output.trim();
        if !out.is_empty() && out != why.trim() {
            let shown = excerpt(out, 12, 8, 2000).replace('\n', "\n  ");
            p.push_str(&format!("\n  output:\n  {shown}"));
        }
        if !f.not_run_after.is_empty() {
            p.push_str(&format!("\n  ({} not run after it)", plural(f.not_run_after.len(), "later check")));
        }
        parts.push(p);
    }
    let (file, line) = match place {
        Some((f, l)) => (Some(f), Some(l)),
        None => (None, None),
    };
    Annotation {
        level: Level::Error,
        file,
        line,
        title: first_line(&title),
        message: excerpt(&parts.join("\n\n"), 80, 20, 8000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{CheckResult, KernelError, KernelResult, Outcome, RunReport, Stage, TestResult};
    use std::path::PathBuf;

    /// What the runner does with a command line (actions/runner's
    /// ActionCommand.TryParseV2: split, then unescape with `%25` last).
    fn parse(line: &str) -> (String, Vec<(String, String)>, String) {
        let rest = line.strip_prefix("::").expect("starts with ::");
        let end = rest.find("::").expect("a second ::");
        let (info, data) = (&rest[..end], &rest[end + 2..]);
        let (name, props) = info.split_once(' ').unwrap_or((info, ""));
        let unescape = |s: &str, prop: bool| {
            let mut s = s.replace("%0D", "\r").replace("%0A", "\n");
            if prop {
                s = s.replace("%3A", ":").replace("%2C", ",");
            }
            s.replace("%25", "%")
        };
        let props = props
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').expect("key=value"))
            .map(|(k, v)| (k.to_owned(), unescape(v, true)))
            .collect();
        (name.to_owned(), props, unescape(data, false))
    }

    fn check(name: &str, outcome: Outcome, line: Option<usize>, output: &str) -> CheckResult {
        CheckResult {
            output: output.into(),
            source: line.map(|line| Source { file: PathBuf::from("/w/repo/tests/rig.toml"), line }),
            ..CheckResult::verdict(name, outcome)
        }
    }

    fn ran(kernel: &str, groups: Vec<TestResult>) -> KernelResult {
        KernelResult::Ran(RunReport {
            kernel: kernel.into(),
            release: "6.1".into(),
            results: groups.iter().flat_map(|g| g.results.clone()).collect(),
            tests: groups,
            run_dir: PathBuf::new(),
            kept: false,
            timings: Default::default(),
        })
    }

    fn ws() -> Workspace {
        Workspace::new(Some("/w/repo".into()), None, None, None)
    }

    #[test]
    fn escapes_survive_the_runners_parser() {
        let a = Annotation {
            level: Level::Error,
            file: Some("dir, with: odd%name/rig.toml".into()),
            line: Some(12),
            title: "t: a, b %0A c".into(),
            message: "first: 1, 2\r\nsecond %25 ::error::x".into(),
        };
        let line = a.command();
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        assert!(line.starts_with("::error file=dir%2C with%3A odd%25name/rig.toml,line=12,title=t%3A a%2C b %250A c::"));
        let (name, props, data) = parse(&line);
        assert_eq!(name, "error");
        let get = |k: &str| props.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
        assert_eq!(get("file"), Some("dir, with: odd%name/rig.toml"));
        assert_eq!(get("line"), Some("12"));
        assert_eq!(get("title"), Some("t: a, b %0A c"));
        assert_eq!(data, "first: 1, 2\r\nsecond %25 ::error::x");
    }

    #[test]
    fn a_step_failing_on_two_kernels_is_one_annotation_at_its_line() {
        let t = |o: Outcome| TestResult {
            name: "greeting".into(),
            results: vec![
                check("read", o, Some(27), "hello 0\n"),
                check("write", Outcome::NotRun("a check failed".into()), Some(32), ""),
            ],
        };
        let tree = Tree {
            kernels: vec![
                ran("bookworm-6.1", vec![t(Outcome::Fail("output does not match /^hello 1$/".into()))]),
                ran("sid-7", vec![t(Outcome::Crash("the kernel reported BUG: kernel NULL pointer".into()))]),
            ],
        };
        let a = annotations(&tree, &ws());
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!((a[0].file.as_deref(), a[0].line), (Some("tests/rig.toml"), Some(27)));
        assert_eq!(a[0].title, "greeting: read crashed the kernel on sid-7; failed on bookworm-6.1");
        let m = &a[0].message;
        assert!(m.starts_with("bookworm-6.1: output does not match /^hello 1$/\n  output:\n  hello 0\n"), "{m}");
        assert!(m.contains("\n\nsid-7: the kernel reported BUG"), "{m}");
        assert!(m.contains("(1 later check not run after it)"), "{m}");
    }

    #[test]
    fn rig_checks_and_kernels_that_could_not_run_have_no_file() {
        let boot = TestResult {
            name: "boot".into(),
            results: vec![check("insmod m.ko", Outcome::Fail("insmod exited with 1".into()), None, "")],
        };
        let err = KernelResult::Error(KernelError {
            kernel: "sid-7".into(),
            stage: Stage::Build,
            message: "make: *** [m.o] Error 1".into(),
            run_dir: None,
        });
        let a = annotations(&Tree { kernels: vec![ran("k", vec![boot]), err] }, &ws());
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].file.as_ref(), a[0].title.as_str()), (None, "insmod m.ko failed on k"));
        assert_eq!(a[1].title, "rig: the modules build failed on sid-7");
        assert_eq!(
            a[1].command(),
            "::error title=rig%3A the modules build failed on sid-7::sid-7: make: *** [m.o] Error 1"
        );
    }

    #[test]
    fn outside_the_workspace_the_place_is_in_the_message() {
        let t = TestResult { name: "g".into(), results: vec![check("s", Outcome::Fail("bad".into()), Some(4), "")] };
        let elsewhere = Workspace::new(Some("/other".into()), None, None, None);
        let a = annotations(&Tree { kernels: vec![ran("k", vec![t])] }, &elsewhere);
        assert_eq!((a[0].file.as_ref(), a[0].line), (None, None));
        assert!(a[0].message.starts_with("/w/repo/tests/rig.toml:4: the step\n\nk: bad"), "{}", a[0].message);
        assert!(!a[0].command().contains("line="));
    }

    #[test]
    fn crashes_first_and_at_most_ten() {
        let mut results: Vec<CheckResult> =
            (0..12).map(|i| check(&format!("s{i}"), Outcome::Fail("x".into()), Some(10 + i), "")).collect();
        results.push(check("boom", Outcome::Crash("panic".into()), Some(99), ""));
        let tree = Tree { kernels: vec![ran("k", vec![TestResult { name: "g".into(), results }])] };
        let a = annotations(&tree, &ws());
        assert_eq!(a.len(), PER_STEP);
        assert_eq!(a[0].line, Some(99));
        assert_eq!(a[1].line, Some(10));
        assert_eq!(a[9].title, "rig: 4 more failed steps");
        assert!(a[9].message.ends_with("g: s8 failed on k\ng: s9 failed on k\ng: s10 failed on k\ng: s11 failed on k"));
        assert!(annotations(&Tree::default(), &ws()).is_empty());
    }
}
