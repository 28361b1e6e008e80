//! `rig matrix`: the whole suite on several kernels, several guests at once,
//! one table kernel x check, and per-kernel KTAP, JUnit XML and console logs
//! in an output directory (what CI uploads).
//!
//! Each kernel's run is an ordinary [`run::run`] with the base options and
//! that kernel's name; runs share nothing but the cache, whose fetches,
//! chroots and module builds lock themselves. The engine never prints: it
//! passes every [`Event`] to the caller with the kernel's name.
//!
//! Output directory layout:
//!
//! ```text
//! <out>/<kernel>.tap          KTAP of that kernel's run
//! <out>/<kernel>.junit.xml    JUnit XML (one testsuite per group)
//! <out>/<kernel>/             console.log, kernel.log, qemu.cmdline, qemu.stderr
//! <out>/summary.json          every kernel (as `rig run --json` writes it), the counts over all and the wall time
//! <out>/table.txt             the table printed at the end
//! ```
//!
//! A `SUITE/FLAVOUR` kernel's files use `SUITE_FLAVOUR` (one file name).

use crate::exec::run::{self, Event, RunError, RunOptions};
use crate::kernel::catalog::file_safe_name;
use crate::results::{json, junit, ktap};
use crate::results::{CheckResult, Counts, Outcome, RunReport, TestResult, Tree};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Files of a run directory copied into the output directory.
pub const LOG_FILES: &[&str] = &["console.log", "shell.log", "kernel.log", "run.json", "qemu.cmdline", "qemu.stderr"];

/// What to run.
#[derive(Clone, Debug)]
pub struct MatrixOptions {
    /// Options shared by every kernel (`kernel` is replaced per run).
    pub base: RunOptions,
    /// Catalog names, in table order.
    pub kernels: Vec<String>,
    /// Guests at once (at least 1).
    pub jobs: usize,
    /// Where the per-kernel files go (created).
    pub out_dir: PathBuf,
}

/// Errors that stop the whole matrix (a kernel's own failure does not).
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// The output directory could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One kernel's run.
#[derive(Debug)]
pub struct KernelRun {
    /// Catalog name.
    pub kernel: String,
    /// The report, or why the rig could not run this kernel.
    pub outcome: Result<RunReport, RunError>,
    /// Wall time of this kernel's run.
    pub wall: Duration,
    /// Its directory of logs under the output directory (may be empty).
    pub logs: PathBuf,
}

impl KernelRun {
    /// True when the run produced results and all passed.
    pub fn passed(&self) -> bool {
        self.outcome.as_ref().is_ok_and(RunReport::passed)
    }

    /// `PASS`, `FAIL` or `ERROR`.
    pub fn verdict(&self) -> &'static str {
        match &self.outcome {
            Ok(r) if r.passed() => "PASS",
            Ok(_) => "FAIL",
            Err(_) => "ERROR",
        }
    }
}

/// All kernels' runs, in the order asked for.
#[derive(Debug)]
pub struct MatrixReport {
    /// One per kernel.
    pub runs: Vec<KernelRun>,
    /// Wall time of the whole matrix.
    pub wall: Duration,
    /// Guests at once.
    pub jobs: usize,
}

impl MatrixReport {
    /// True when every kernel ran and passed.
    pub fn passed(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(KernelRun::passed)
    }

    /// The kernel x check table.
    pub fn table(&self) -> String {
        let columns: Vec<Column> = self
            .runs
            .iter()
            .map(|r| Column {
                kernel: r.kernel.clone(),
                tests: r.outcome.as_ref().map(|rep| rep.tests.clone()).unwrap_or_default(),
                verdict: r.verdict().to_owned(),
                wall: r.wall,
            })
            .collect();
        render_table(&columns)
    }
}

/// One column of the table.
#[derive(Clone, Debug)]
pub struct Column {
    /// Kernel name (the header).
    pub kernel: String,
    /// Its results by group (empty when it could not run).
    pub tests: Vec<TestResult>,
    /// `PASS`, `FAIL` or `ERROR`.
    pub verdict: String,
    /// Wall time.
    pub wall: Duration,
}

/// Longest check label shown; longer ones are cut with `...`.
const LABEL_MAX: usize = 64;

fn cell(r: Option<&CheckResult>) -> &'static str {
    match r.map(|r| &r.outcome) {
        Some(Outcome::Pass) => "PASS",
        Some(Outcome::Fail(_)) => "FAIL",
        Some(Outcome::Crash(_)) => "CRASH",
        Some(Outcome::Skip(_)) => "SKIP",
        Some(Outcome::NotRun(_)) | None => "-",
    }
}

fn label(group: &str, check: &str) -> String {
    let check = check.lines().next().unwrap_or_default();
    let full = if group == "boot" { check.to_owned() } else { format!("{group}: {check}") };
    if full.chars().count() <= LABEL_MAX {
        full
    } else {
        format!("{}...", full.chars().take(LABEL_MAX - 3).collect::<String>())
    }
}

/// Renders rows `group: check` (in first-seen order over the columns) by
/// kernel columns, cells `PASS`, `FAIL` or `-` (not run, or no such check on
/// that kernel), then a `result` row and a `wall time` row.
pub fn render_table(columns: &[Column]) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    for c in columns {
        for g in &c.tests {
            for r in &g.results {
                let key = (g.name.clone(), r.name.clone());
                if !rows.contains(&key) {
                    rows.push(key);
                }
            }
        }
    }
    fn find<'a>(c: &'a Column, group: &str, name: &str) -> Option<&'a CheckResult> {
        c.tests.iter().filter(|g| g.name == group).flat_map(|g| g.results.iter()).find(|r| r.name == name)
    }
    let mut lines: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|(g, n)| (label(g, n), columns.iter().map(|c| cell(find(c, g, n)).to_owned()).collect()))
        .collect();
    lines.push(("result".into(), columns.iter().map(|c| c.verdict.clone()).collect()));
    lines.push(("wall time".into(), columns.iter().map(|c| format!("{:.0}s", c.wall.as_secs_f64())).collect()));

    let first = lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0).max("check".len());
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| lines.iter().map(|(_, cells)| cells[i].len()).max().unwrap_or(0).max(c.kernel.len()))
        .collect();
    let row = |head: &str, cells: Vec<&str>| {
        let mut s = format!("{head:<first$}");
        for (cell, w) in cells.iter().zip(&widths) {
            s.push_str(&format!("  {cell:<w$}"));
        }
        s.trim_end().to_owned()
    };
    let mut out = vec![row("check", columns.iter().map(|c| c.kernel.as_str()).collect())];
    out.extend(lines.iter().map(|(l, cells)| row(l, cells.iter().map(String::as_str).collect())));
    out.join("\n") + "\n"
}

/// The KTAP document of one kernel's run (or of its error).
pub fn kernel_ktap(kernel: &str, outcome: &Result<RunReport, RunError>) -> String {
    ktap::document(&Tree { kernels: vec![run::kernel_result(kernel, outcome)] })
}

/// The JUnit XML of one kernel's run; a kernel that could not run becomes
/// one failed testcase named for where it stopped, carrying the error.
pub fn kernel_junit(kernel: &str, outcome: &Result<RunReport, RunError>) -> String {
    junit::junit(&Tree { kernels: vec![run::kernel_result(kernel, outcome)] })
}

/// `summary.json`.
#[derive(Serialize)]
struct Summary<'a> {
    passed: bool,
    /// The worst outcome over every kernel, and the counts over them all.
    status: &'static str,
    counts: Counts,
    wall_secs: f64,
    jobs: usize,
    kernels: Vec<json::KernelJson>,
    table: &'a str,
}

/// Runs every kernel, `jobs` at a time, and writes the output directory.
/// A kernel that fails or cannot run does not stop the others; an interrupt
/// stops starting new ones (and the running ones stop themselves).
pub fn run_matrix(
    opts: &MatrixOptions,
    interrupt: Arc<AtomicBool>,
    on_event: &(dyn Fn(&str, Event) + Sync),
) -> Result<MatrixReport, MatrixError> {
    let started = Instant::now();
    let out = &opts.out_dir;
    std::fs::create_dir_all(out).map_err(|source| MatrixError::Output { path: out.clone(), source })?;
    let queue: Mutex<VecDeque<(usize, String)>> = Mutex::new(opts.kernels.iter().cloned().enumerate().collect());
    let done: Mutex<Vec<(usize, KernelRun)>> = Mutex::new(Vec::new());
    let jobs = opts.jobs.clamp(1, opts.kernels.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                if interrupt.load(Ordering::Relaxed) {
                    break;
                }
                let Some((i, kernel)) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                    break;
                };
                let kr = run_one(opts, &kernel, interrupt.clone(), on_event);
                done.lock().unwrap_or_else(|e| e.into_inner()).push((i, kr));
            });
        }
    });
    let mut runs = done.into_inner().unwrap_or_else(|e| e.into_inner());
    runs.sort_by_key(|(i, _)| *i);
    let report = MatrixReport { runs: runs.into_iter().map(|(_, r)| r).collect(), wall: started.elapsed(), jobs };

    let table = report.table();
    write(&out.join("table.txt"), &table)?;
    let tree = Tree { kernels: report.runs.iter().map(|r| run::kernel_result(&r.kernel, &r.outcome)).collect() };
    let counts = tree.counts();
    let summary = Summary {
        passed: report.passed(),
        status: counts.status().name(),
        counts,
        wall_secs: report.wall.as_secs_f64(),
        jobs,
        kernels: tree.kernels.iter().map(json::kernel).collect(),
        table: &table,
    };
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| MatrixError::Output { path: out.join("summary.json"), source: std::io::Error::other(e) })?;
    write(&out.join("summary.json"), &(json + "\n"))?;
    Ok(report)
}

fn write(path: &Path, text: &str) -> Result<(), MatrixError> {
    std::fs::write(path, text).map_err(|source| MatrixError::Output { path: path.to_owned(), source })
}

/// One kernel: run, then write its KTAP, JUnit and logs.
fn run_one(
    opts: &MatrixOptions,
    kernel: &str,
    interrupt: Arc<AtomicBool>,
    on_event: &(dyn Fn(&str, Event) + Sync),
) -> KernelRun {
    let started = Instant::now();
    // Keep the run directory so its logs can be copied; removed below.
    let ro = RunOptions { kernel: kernel.to_owned(), keep: true, ..opts.base.clone() };
    let mut emit = |e: Event| on_event(kernel, e);
    let outcome = run::run(&ro, interrupt, &mut emit);
    let wall = started.elapsed();
    // `bookworm/amd64` is one file name, `bookworm_amd64`.
    let file = file_safe_name(kernel);
    let logs = opts.out_dir.join(&file);
    let run_dir = match &outcome {
        Ok(rep) => Some(rep.run_dir.clone()),
        Err(RunError::Boot { run_dir, .. }) => Some(run_dir.clone()),
        Err(_) => None,
    };
    let mut notes = Vec::new();
    if let Some(dir) = &run_dir {
        if let Err(e) = copy_logs(dir, &logs) {
            notes.push(format!("cannot copy the logs of {} to {}: {e}", dir.display(), logs.display()));
        }
        let passed = outcome.as_ref().is_ok_and(RunReport::passed);
        if passed && !opts.base.keep {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let files = [
        (opts.out_dir.join(format!("{file}.tap")), kernel_ktap(kernel, &outcome)),
        (opts.out_dir.join(format!("{file}.junit.xml")), kernel_junit(kernel, &outcome)),
    ];
    for (path, text) in files {
        if let Err(e) = std::fs::write(&path, text) {
            notes.push(format!("cannot write {}: {e}", path.display()));
        }
    }
    for n in notes {
        on_event(kernel, Event::Note(n));
    }
    KernelRun { kernel: kernel.to_owned(), outcome, wall, logs }
}

fn copy_logs(run_dir: &Path, logs: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(logs)?;
    for f in LOG_FILES {
        let from = run_dir.join(f);
        if from.is_file() {
            std::fs::copy(&from, logs.join(f))?;
        }
    }
    Ok(())
}

/// One line of `rig matrix --list --json`: what a CI job needs.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ListEntry {
    /// Catalog name (`--kernel`).
    pub kernel: String,
    /// Debian suite (its chroot is cached per suite).
    pub suite: String,
    /// Kernel flavour.
    pub flavour: String,
    /// One line.
    pub description: String,
}

/// The entries for `names`, in order.
pub fn list_entries(catalog: &crate::kernel::catalog::Catalog, names: &[String]) -> Vec<ListEntry> {
    names
        .iter()
        .filter_map(|n| catalog.get(n).ok())
        .map(|e| ListEntry {
            kernel: e.name.clone(),
            suite: e.suite.clone(),
            flavour: e.flavour.clone(),
            description: e.description.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::catalog::Catalog;

    fn r(name: &str, outcome: Outcome) -> CheckResult {
        CheckResult::verdict(name, outcome)
    }

    fn col(kernel: &str, verdict: &str, tests: Vec<TestResult>) -> Column {
        Column { kernel: kernel.into(), tests, verdict: verdict.into(), wall: Duration::from_secs(42) }
    }

    #[test]
    fn table_has_one_row_per_check_and_a_result_row() {
        let boot =
            |o| TestResult { name: "boot".into(), results: vec![r("insmod m.ko", Outcome::Pass), r("shell", o)] };
        let t = |o| TestResult { name: "mmap".into(), results: vec![r("write\nmore", o)] };
        let cols = vec![
            col("bullseye-5.10", "PASS", vec![boot(Outcome::Pass), t(Outcome::Pass)]),
            col("sid-7", "FAIL", vec![boot(Outcome::Fail("x".into())), t(Outcome::NotRun("crash".into()))]),
            col("trixie-6.12", "ERROR", vec![]),
        ];
        let table = render_table(&cols);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(lines[0].starts_with("check") && lines[0].ends_with("bullseye-5.10  sid-7  trixie-6.12"), "{table}");
        fn cells(l: &str) -> Vec<&str> {
            l.split("  ").map(str::trim).filter(|s| !s.is_empty()).skip(1).collect()
        }
        assert_eq!(cells(lines[1]), ["PASS", "PASS", "-"]);
        assert!(lines[2].starts_with("shell "));
        assert_eq!(cells(lines[2]), ["PASS", "FAIL", "-"]);
        assert!(lines[3].starts_with("mmap: write "), "{table}");
        assert_eq!(cells(lines[3]), ["PASS", "-", "-"]);
        assert_eq!(cells(lines[4]), ["PASS", "FAIL", "ERROR"]);
        assert_eq!(cells(lines[5]), ["42s", "42s", "42s"]);
    }

    #[test]
    fn long_labels_are_cut() {
        let l = label("g", &"x".repeat(100));
        assert_eq!(l.chars().count(), LABEL_MAX);
        assert!(l.ends_with("..."));
    }

    #[test]
    fn kernel_files_for_a_kernel_that_could_not_run() {
        let err: Result<RunReport, RunError> = Err(RunError::Interrupted);
        let ktap = kernel_ktap("sid-7", &err);
        assert!(ktap.starts_with("KTAP version 1\n1..1\nnot ok 1 sid-7\n# interrupted"), "{ktap}");
        let junit = kernel_junit("sid-7", &err);
        assert!(junit.contains("failures=\"1\""), "{junit}");
        assert!(junit.contains("name=\"the rig runs this kernel\""), "{junit}");
    }

    #[test]
    fn kernel_ktap_replays_the_groups() {
        let results = vec![r("insmod m.ko", Outcome::Pass), r("step", Outcome::Fail("bad".into()))];
        let rep = RunReport {
            kernel: "k".into(),
            release: "6.1".into(),
            tests: vec![
                TestResult { name: "boot".into(), results: vec![results[0].clone()] },
                TestResult { name: "t".into(), results: vec![results[1].clone()] },
            ],
            results,
            run_dir: PathBuf::new(),
            kept: false,
            timings: Default::default(),
        };
        let ktap = kernel_ktap("k", &Ok(rep));
        for want in ["# Subtest: k", "# Subtest: boot", "ok 1 insmod m.ko", "not ok 1 step", "not ok 1 k", "1 failed"] {
            assert!(ktap.contains(want), "{want} missing:\n{ktap}");
        }
    }

    #[test]
    fn list_for_ci() {
        let cat = Catalog::builtin().unwrap();
        let all: Vec<String> = cat.entries().map(|e| e.name.clone()).collect();
        let list = list_entries(&cat, &all);
        assert_eq!(list.len(), all.len());
        let json = serde_json::to_string(&list).unwrap();
        assert!(json.starts_with("[{\"kernel\":\"bullseye-5.10\",\"suite\":\"bullseye\""), "{json}");
    }
}
