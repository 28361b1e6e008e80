//! `rig apidiff`: the 2.6-era API breaks reproduced by real builds. The
//! module is built on every kernel once per compat item with the old form
//! forced instead of the shim, and the result is a table API x kernel ->
//! builds / fails, with the compiler's first error line.
//!
//! The items come from marker lines in the module's `compat.h`:
//!
//! ```c
//! /* rig-compat: <item> | <kernel version> | <2.6-era form> | <modern form> */
//! ```
//!
//! and the old form is forced with `make KCFLAGS=-DRIG_FORCE_OLD_<item>`.
//! An item changed in version V should fail on every kernel >= V and build
//! on every kernel < V; [`ApidiffReport::disagreements`] lists where the
//! builds say otherwise. [`ApidiffReport::markdown`] is the table kept in
//! `docs/api-changes.md` between `<!-- apidiff:begin -->` and
//! `<!-- apidiff:end -->`, and [`check_doc`] compares that section with real
//! builds.

use crate::build::kbuild::{self, BuildRequest, KbuildError};
use crate::exec::run::{self, RunError, RunOptions};
use crate::kernel::fetch::KernelTree;
use regex::Regex;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Start of the generated section in the doc.
pub const DOC_BEGIN: &str = "<!-- apidiff:begin -->";
/// End of the generated section in the doc.
pub const DOC_END: &str = "<!-- apidiff:end -->";
/// The make variable carrying the `-D` flag.
pub const FORCE_VAR: &str = "KCFLAGS";

/// Errors that stop apidiff.
#[derive(Debug, thiserror::Error)]
pub enum ApidiffError {
    /// No marker lines.
    #[error("no `/* rig-compat: item | version | 2.6 form | modern form */` lines in {}: mark each shim in the module's compat.h", path.display())]
    NoMarkers {
        /// Where they were looked for.
        path: PathBuf,
    },
    /// A marker line that does not parse.
    #[error("{}:{line}: bad rig-compat marker ({why}): write `/* rig-compat: item | version | 2.6 form | modern form */`", path.display())]
    BadMarker {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The doc has no generated section.
    #[error("{} has no `{DOC_BEGIN}` ... `{DOC_END}` section: run `rig apidiff --write-doc {}`", path.display(), path.display())]
    NoSection {
        /// The doc.
        path: PathBuf,
    },
    /// A kernel could not be fetched.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

/// A kernel version `major.minor.patch`.
pub type Version = (u32, u32, u32);

/// One shim of compat.h.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompatItem {
    /// Item name (`RIG_FORCE_OLD_<name>`).
    pub name: String,
    /// The release that changed the API, as written (`2.6.23`).
    pub since: String,
    /// Parsed `since`.
    #[serde(skip)]
    pub version: Version,
    /// The 2.6-era form.
    pub old_form: String,
    /// The modern form.
    pub modern_form: String,
    /// Line in compat.h.
    pub line: usize,
}

/// Parses `2.6.23`, `6.12`, `6.12.117` (and Debian's `6.12.117-1`).
pub fn parse_version(s: &str) -> Option<Version> {
    let upstream = s.trim().split(['-', '+', '~']).next()?;
    let mut parts = upstream.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = match parts.next() {
        Some(p) => p?,
        None => 0,
    };
    Some((major, minor, patch))
}

/// The marker items of `text` (a compat.h), in file order.
pub fn parse_markers(path: &Path, text: &str) -> Result<Vec<CompatItem>, ApidiffError> {
    let re = Regex::new(r"^\s*/\*\s*rig-compat:\s*(.*?)\s*\*/\s*$").unwrap_or_else(|_| unreachable!());
    let mut items: Vec<CompatItem> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let Some(body) = re.captures(l).and_then(|c| c.get(1)) else { continue };
        let bad = |why: &str| ApidiffError::BadMarker { path: path.to_owned(), line: i + 1, why: why.to_owned() };
        // The modern form may itself contain ` | ` (`VM_DONTEXPAND | VM_DONTDUMP`).
        let f: Vec<&str> = body.as_str().splitn(4, " | ").map(str::trim).collect();
        if f.len() != 4 || f.iter().any(|x| x.is_empty()) {
            return Err(bad("four fields separated by ` | ` expected"));
        }
        let name = f[0];
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("the item must be a C identifier suffix (letters, digits, _)"));
        }
        let version = parse_version(f[1]).ok_or_else(|| bad("the version must look like 2.6.23 or 6.12"))?;
        if items.iter().any(|it| it.name == name) {
            return Err(bad(&format!("item `{name}` is marked twice")));
        }
        items.push(CompatItem {
            name: name.to_owned(),
            since: f[1].to_owned(),
            version,
            old_form: f[2].to_owned(),
            modern_form: f[3].to_owned(),
            line: i + 1,
        });
    }
    if items.is_empty() {
        return Err(ApidiffError::NoMarkers { path: path.to_owned() });
    }
    Ok(items)
}

/// The items of `module_dir/compat.h`.
pub fn module_items(module_dir: &Path) -> Result<Vec<CompatItem>, ApidiffError> {
    let path = module_dir.join("compat.h");
    let text = std::fs::read_to_string(&path).map_err(|source| ApidiffError::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    parse_markers(&path, &text)
}

/// What one build did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Verdict {
    /// It built.
    Builds,
    /// The compiler (or make) failed; the first error line.
    Fails {
        /// e.g. `fault_dev.c: error: 'struct vm_operations_struct' has no member named 'nopage'`.
        error: String,
    },
    /// Not built: the baseline failed on this kernel, or the rig could not build at all.
    Unknown {
        /// Why.
        why: String,
    },
}

impl Verdict {
    fn word(&self) -> &'static str {
        match self {
            Verdict::Builds => "builds",
            Verdict::Fails { .. } => "fails",
            Verdict::Unknown { .. } => "-",
        }
    }
}

/// A kernel column.
#[derive(Clone, Debug, Serialize)]
pub struct KernelColumn {
    /// Catalog name.
    pub kernel: String,
    /// `uname -r`.
    pub release: String,
    /// Upstream version from the package version.
    pub version: String,
    /// Where it built (`host (gcc-12)`, `chroot trixie-gcc-14 (...)`).
    pub build_env: String,
    /// The unmodified module (all shims).
    pub baseline: Verdict,
}

/// The results.
#[derive(Clone, Debug, Serialize)]
pub struct ApidiffReport {
    /// Kernel columns.
    pub kernels: Vec<KernelColumn>,
    /// One row per item: its verdict on each kernel (same order).
    pub rows: Vec<(CompatItem, Vec<Verdict>)>,
    /// Wall time.
    pub wall_secs: f64,
}

/// The first error line of a build log, without the build directory and the
/// line:column (so it stays put when code moves): `file.c: error: ...`.
pub fn first_error(log: &str, out_dir: &Path) -> String {
    let re =
        Regex::new(r"^(?:.*/)?([^/:\s]+):\d+:(?:\d+:)?\s*(?:fatal )?error:\s*(.*)$").unwrap_or_else(|_| unreachable!());
    let prefix = format!("{}/", out_dir.display());
    for l in log.lines() {
        let l = l.trim_end();
        if let Some(c) = re.captures(l) {
            return format!("{}: error: {}", &c[1], c[2].trim());
        }
        if l.contains("error:") || l.starts_with("ERROR:") {
            return l.replace(&prefix, "").trim().to_owned();
        }
    }
    log.lines().rev().find(|l| l.contains("***")).map(|l| l.trim().to_owned()).unwrap_or_else(|| "make failed".into())
}

/// A first error and the kernels that gave it.
type ErrorKernels = (String, Vec<String>);

/// A build job: kernel index, and `None` for the baseline or an item index.
type Job = (usize, Option<usize>);

/// What an item's version says about a kernel: `true` = the old form should fail.
pub fn expect_fail(item: &CompatItem, kernel: Version) -> bool {
    kernel >= item.version
}

impl ApidiffReport {
    /// Where a build disagrees with the item's version (one line each).
    pub fn disagreements(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (item, cells) in &self.rows {
            for (k, v) in self.kernels.iter().zip(cells) {
                let Some(kv) = parse_version(&k.version) else { continue };
                let want_fail = expect_fail(item, kv);
                match (v, want_fail) {
                    (Verdict::Builds, true) => out.push(format!(
                        "{}: the 2.6 form still builds on {} ({}), but compat.h says the API changed in {}",
                        item.name, k.kernel, k.version, item.since
                    )),
                    (Verdict::Fails { error }, false) => out.push(format!(
                        "{}: the 2.6 form fails on {} ({}) although compat.h says the API changed only in {}: {error}",
                        item.name, k.kernel, k.version, item.since
                    )),
                    _ => {}
                }
            }
        }
        out
    }

    /// The terminal table, then each item's first error per distinct message.
    pub fn table(&self) -> String {
        let head: Vec<String> = self.kernels.iter().map(|k| k.kernel.clone()).collect();
        let mut rows: Vec<(String, Vec<&str>)> =
            vec![("baseline (the shims)".into(), self.kernels.iter().map(|k| k.baseline.word()).collect())];
        for (item, cells) in &self.rows {
            rows.push((format!("{} ({})", item.name, item.since), cells.iter().map(Verdict::word).collect()));
        }
        let first = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0).max("API (changed in)".len());
        let widths: Vec<usize> = head
            .iter()
            .enumerate()
            .map(|(i, h)| rows.iter().map(|(_, c)| c[i].len()).max().unwrap_or(0).max(h.len()))
            .collect();
        let line = |l: &str, cells: &[&str]| {
            let mut s = format!("{l:<first$}");
            for (c, w) in cells.iter().zip(&widths) {
                s.push_str(&format!("  {c:<w$}"));
            }
            s.trim_end().to_owned()
        };
        let mut out = vec![line("API (changed in)", &head.iter().map(String::as_str).collect::<Vec<_>>())];
        out.extend(rows.iter().map(|(l, c)| line(l, c)));
        out.push(String::new());
        out.push("first compiler error with the 2.6 form forced:".into());
        for (item, errors) in self.errors_by_item() {
            for (error, kernels) in errors {
                out.push(format!("  {item} on {}: {error}", kernels.join(", ")));
            }
        }
        for k in &self.kernels {
            if let Verdict::Fails { error } | Verdict::Unknown { why: error } = &k.baseline {
                out.push(format!("  baseline on {}: {error}", k.kernel));
            }
        }
        out.join("\n") + "\n"
    }

    /// Distinct first errors per item, with the kernels that gave them.
    fn errors_by_item(&self) -> Vec<(String, Vec<ErrorKernels>)> {
        self.rows
            .iter()
            .map(|(item, cells)| {
                let mut errors: Vec<ErrorKernels> = Vec::new();
                for (k, v) in self.kernels.iter().zip(cells) {
                    if let Verdict::Fails { error } = v {
                        match errors.iter_mut().find(|(e, _)| e == error) {
                            Some((_, ks)) => ks.push(k.kernel.clone()),
                            None => errors.push((error.clone(), vec![k.kernel.clone()])),
                        }
                    }
                }
                (item.name.clone(), errors)
            })
            .filter(|(_, e)| !e.is_empty())
            .collect()
    }

    /// The doc section (without the begin/end markers): a Markdown table
    /// item x kernel and the first errors.
    pub fn markdown(&self) -> String {
        let md = |s: &str| s.replace('|', "\\|").replace('`', "'");
        let mut s = String::from(
            "Generated by `rig apidiff --write-doc docs/api-changes.md` from real builds: the module\n\
             built on each kernel with one item's 2.6-era form forced (`KCFLAGS=-DRIG_FORCE_OLD_<item>`).\n\
             A test (`rig/tests/apidiff.rs`) rebuilds and compares the verdicts.\n\n",
        );
        s.push_str("| API | changed in |");
        for k in &self.kernels {
            s.push_str(&format!(" {} |", k.kernel));
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---|".repeat(self.kernels.len()));
        s.push_str("\n| baseline (the shims) | |");
        for k in &self.kernels {
            s.push_str(&format!(" {} |", k.baseline.word()));
        }
        for (item, cells) in &self.rows {
            s.push_str(&format!("\n| `{}` | {} |", item.name, item.since));
            for v in cells {
                s.push_str(&format!(" {} |", v.word()));
            }
        }
        s.push_str("\n\nFirst compiler error with the 2.6-era form forced:\n\n");
        for (item, errors) in self.errors_by_item() {
            for (error, kernels) in errors {
                s.push_str(&format!("- `{item}` ({}): `{}`\n", kernels.join(", "), md(&error)));
            }
        }
        s
    }
}

/// The verdict table of a generated section: `(row label, cells)` for the
/// rows of the first Markdown table (labels without backticks).
pub fn section_verdicts(section: &str) -> Vec<(String, Vec<String>)> {
    section
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<String> =
                l.trim().trim_matches('|').split(" |").map(|c| c.trim().trim_matches('`').to_owned()).collect();
            (cells.first().cloned().unwrap_or_default(), cells.into_iter().skip(2).collect())
        })
        .collect()
}

/// The text between the begin and end markers, if both are there.
pub fn extract_section(doc: &str) -> Option<&str> {
    let start = doc.find(DOC_BEGIN)? + DOC_BEGIN.len();
    let end = start + doc[start..].find(DOC_END)?;
    Some(doc[start..end].trim_matches('\n'))
}

/// `doc` with its section replaced by `section` (appended, with a heading,
/// when there is none yet).
pub fn replace_section(doc: &str, section: &str) -> String {
    let body = format!("{DOC_BEGIN}\n{}\n{DOC_END}", section.trim_end());
    match (doc.find(DOC_BEGIN), doc.find(DOC_END)) {
        (Some(a), Some(b)) if b > a => format!("{}{body}{}", &doc[..a], &doc[b + DOC_END.len()..]),
        _ => {
            let sep = if doc.is_empty() || doc.ends_with("\n\n") {
                ""
            } else if doc.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{doc}{sep}## Real builds with the 2.6-era form forced\n\n{body}\n")
        }
    }
}

/// The cells of a Markdown table row, split on unescaped `|`, trimmed, with
/// `\|` unescaped and surrounding backticks removed.
fn row_cells(line: &str) -> Vec<String> {
    let body = line.trim().strip_prefix('|').unwrap_or(line.trim());
    let body = body.strip_suffix('|').unwrap_or(body);
    let mut cells = vec![String::new()];
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap_or_else(|| unreachable!()).push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap_or_else(|| unreachable!()).push(c),
        }
    }
    cells.iter().map(|c| c.trim().trim_matches('`').trim().to_owned()).collect()
}

/// Checks the doc's hand-written table of shims (a table whose header has an
/// `item` and a `kernel version` column) against the compat.h markers: the
/// same items, and each with the marker's version. Returns the differences;
/// none when the doc has no such table.
pub fn check_shim_table(doc: &str, items: &[CompatItem]) -> Vec<String> {
    let lines: Vec<&str> = doc.lines().collect();
    let Some(h) = lines.iter().position(|l| {
        let c = row_cells(l);
        l.trim_start().starts_with('|')
            && c.first().is_some_and(|f| f == "item")
            && c.iter().any(|x| x == "kernel version")
    }) else {
        return vec![];
    };
    let header = row_cells(lines[h]);
    let col = header.iter().position(|x| x == "kernel version").unwrap_or(0);
    let rows: Vec<Vec<String>> =
        lines[h + 1..].iter().take_while(|l| l.trim_start().starts_with('|')).skip(1).map(|l| row_cells(l)).collect();
    let mut diffs = Vec::new();
    for item in items {
        match rows.iter().find(|r| r.first() == Some(&item.name)) {
            None => {
                diffs.push(format!("`{}` (compat.h line {}) is missing from the table of shims", item.name, item.line))
            }
            Some(r) => {
                let v = r.get(col).map(String::as_str).unwrap_or_default();
                if parse_version(v) != Some(item.version) {
                    diffs.push(format!(
                        "`{}`: the table of shims says version `{v}`, compat.h says `{}`",
                        item.name, item.since
                    ));
                }
            }
        }
    }
    for r in &rows {
        let name = r.first().cloned().unwrap_or_default();
        if !items.iter().any(|i| i.name == name) {
            diffs.push(format!("`{name}` is in the table of shims but has no rig-compat marker in compat.h"));
        }
    }
    diffs
}

/// Compares the doc with fresh results: the verdict of every item on every
/// kernel in the generated section must match, and the hand-written table
/// of shims must have the markers' items and versions (which the builds
/// confirmed, see [`ApidiffReport::disagreements`]). Returns the differences.
pub fn check_doc(doc_path: &Path, report: &ApidiffReport) -> Result<Vec<String>, ApidiffError> {
    let doc = std::fs::read_to_string(doc_path).map_err(|source| ApidiffError::Io {
        action: "read",
        path: doc_path.to_owned(),
        source,
    })?;
    let section = extract_section(&doc).ok_or_else(|| ApidiffError::NoSection { path: doc_path.to_owned() })?;
    let fresh_md = report.markdown();
    let (old, fresh) = (section_verdicts(section), section_verdicts(&fresh_md));
    let mut diffs = Vec::new();
    let header = |md: &str| md.lines().find(|l| l.starts_with("| API")).map(str::to_owned).unwrap_or_default();
    if header(section) != header(&fresh_md) {
        diffs.push(format!(
            "kernel columns differ: the doc has `{}`, the builds `{}`",
            header(section),
            header(&fresh_md)
        ));
    }
    for (label, cells) in &fresh {
        match old.iter().find(|(l, _)| l == label) {
            None => diffs.push(format!("`{label}` is missing from the doc")),
            Some((_, was)) if was != cells => {
                diffs.push(format!("`{label}`: the doc says {}, the builds say {}", was.join(" / "), cells.join(" / ")))
            }
            Some(_) => {}
        }
    }
    for (label, _) in &old {
        if !fresh.iter().any(|(l, _)| l == label) {
            diffs.push(format!("`{label}` is in the doc but not in compat.h"));
        }
    }
    let items: Vec<CompatItem> = report.rows.iter().map(|(i, _)| i.clone()).collect();
    diffs.extend(check_shim_table(&doc, &items));
    Ok(diffs)
}

/// What to build.
#[derive(Clone, Debug)]
pub struct ApidiffOptions {
    /// Cache, archive, offline and the module (the plan's first module).
    pub base: RunOptions,
    /// The module source directory (holds compat.h).
    pub module_dir: PathBuf,
    /// Catalog names, in column order.
    pub kernels: Vec<String>,
    /// Only these items (all when empty).
    pub only: Vec<String>,
    /// Builds at once.
    pub jobs: usize,
}

/// Fetches every kernel, builds the baseline and each item's forced build.
pub fn run_apidiff(
    opts: &ApidiffOptions,
    interrupt: Arc<AtomicBool>,
    on_note: &(dyn Fn(String) + Sync),
) -> Result<ApidiffReport, ApidiffError> {
    let started = Instant::now();
    let mut items = module_items(&opts.module_dir)?;
    if !opts.only.is_empty() {
        items.retain(|i| opts.only.contains(&i.name));
    }
    let mut trees = Vec::new();
    for k in &opts.kernels {
        let ro = RunOptions { kernel: k.clone(), ..opts.base.clone() };
        let tree = run::fetch_kernel(&ro)?;
        on_note(format!("{k}: {} ({})", tree.release, tree.package_version));
        trees.push(tree);
    }
    let make_vars: Vec<(String, String)> = opts
        .base
        .plan
        .modules
        .iter()
        .find(|m| m.dir == opts.module_dir)
        .map(|m| m.make_vars.clone())
        .unwrap_or_default();

    // Jobs: (kernel index, None = baseline | Some(item index)); baselines first.
    let mut queue: VecDeque<Job> = (0..trees.len()).map(|k| (k, None)).collect();
    for i in 0..items.len() {
        queue.extend((0..trees.len()).map(|k| (k, Some(i))));
    }
    let total = queue.len();
    let queue = Mutex::new(queue);
    let results: Mutex<Vec<(Job, Verdict)>> = Mutex::new(Vec::new());
    let envs: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; trees.len()]);
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| loop {
                if interrupt.load(Ordering::Relaxed) {
                    break;
                }
                let Some((k, item)) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else { break };
                let tree = &trees[k];
                let mut vars = make_vars.clone();
                let name = match item {
                    None => "baseline".to_owned(),
                    Some(i) => {
                        let flag = format!("-DRIG_FORCE_OLD_{}", items[i].name);
                        match vars.iter_mut().find(|(n, _)| n == FORCE_VAR) {
                            Some((_, v)) => *v = format!("{v} {flag}"),
                            None => vars.push((FORCE_VAR.into(), flag)),
                        }
                        items[i].name.clone()
                    }
                };
                let v = build_one(&opts.base.cache_dir, &opts.module_dir, tree, &name, vars);
                if item.is_none() {
                    let env = kbuild::BuildEnv::for_tree(tree).map(|e| e.describe()).unwrap_or_default();
                    envs.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(env);
                }
                let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                r.push(((k, item), v.clone()));
                on_note(format!("[{}/{total}] {} {name}: {}", r.len(), tree.name, v.word()));
            });
        }
    });
    if interrupt.load(Ordering::Relaxed) {
        return Err(ApidiffError::Interrupted);
    }
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let envs = envs.into_inner().unwrap_or_else(|e| e.into_inner());
    let get = |key: Job| {
        results
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or(Verdict::Unknown { why: "not built".into() })
    };
    let kernels: Vec<KernelColumn> = trees
        .iter()
        .enumerate()
        .map(|(k, t)| KernelColumn {
            kernel: t.name.clone(),
            release: t.release.clone(),
            version: t.package_version.split('-').next().unwrap_or_default().to_owned(),
            build_env: envs[k].clone().unwrap_or_default(),
            baseline: get((k, None)),
        })
        .collect();
    let rows = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let cells = (0..trees.len())
                .map(|k| match &kernels[k].baseline {
                    Verdict::Builds => get((k, Some(i))),
                    _ => Verdict::Unknown { why: "the baseline does not build on this kernel".into() },
                })
                .collect();
            (item.clone(), cells)
        })
        .collect();
    Ok(ApidiffReport { kernels, rows, wall_secs: started.elapsed().as_secs_f64() })
}

/// One build in `cache/apidiff/<release>/<name>`.
fn build_one(
    cache: &Path,
    module_dir: &Path,
    tree: &KernelTree,
    name: &str,
    make_vars: Vec<(String, String)>,
) -> Verdict {
    let out_dir = cache.join("apidiff").join(&tree.release).join(name);
    let req =
        BuildRequest { src_dir: module_dir.to_owned(), out_dir: out_dir.clone(), make_vars, extra_cflags_w1: false };
    match kbuild::build_module(tree, &req) {
        Ok(_) => Verdict::Builds,
        Err(KbuildError::BuildFailed { log_path, tail, .. }) => {
            let log = std::fs::read_to_string(&log_path).unwrap_or(tail);
            Verdict::Fails { error: first_error(&log, &out_dir) }
        }
        Err(e) => Verdict::Unknown { why: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPAT: &str = "\
 *   rig-compat marker: item | version of the change | 2.6-era form | modern form
/* rig-compat: nopage_fault | 2.6.23 | .nopage(vma, address, type) | .fault(vmf) */
#if RIG_KERNEL_SINCE(2, 6, 23) && !defined(RIG_FORCE_OLD_nopage_fault)
/* rig-compat: vm_reserved | 3.7 | vma->vm_flags |= VM_RESERVED | VM_DONTEXPAND | VM_DONTDUMP */
  /*   rig-compat:   no_llseek | 6.12 | .llseek = no_llseek | .llseek left NULL   */
";

    fn item(name: &str, since: &str) -> CompatItem {
        CompatItem {
            name: name.into(),
            since: since.into(),
            version: parse_version(since).unwrap(),
            old_form: "o".into(),
            modern_form: "m".into(),
            line: 1,
        }
    }

    #[test]
    fn markers_parse() {
        let items = parse_markers(Path::new("compat.h"), COMPAT).unwrap();
        let names: Vec<_> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["nopage_fault", "vm_reserved", "no_llseek"]);
        assert_eq!(items[0].version, (2, 6, 23));
        assert_eq!(items[0].line, 2);
        assert_eq!(items[1].old_form, "vma->vm_flags |= VM_RESERVED");
        assert_eq!(items[1].modern_form, "VM_DONTEXPAND | VM_DONTDUMP");
        assert_eq!(items[2].version, (6, 12, 0));
        assert_eq!(items[2].modern_form, ".llseek left NULL");
    }

    #[test]
    fn bad_markers_are_errors() {
        let p = Path::new("c.h");
        for bad in [
            "/* rig-compat: x | 6.1 | old */",
            "/* rig-compat: x y | 6.1 | old | new */",
            "/* rig-compat: x | six | old | new */",
            "/* rig-compat: x | 6.1 | old | new */\n/* rig-compat: x | 6.2 | old | new */",
        ] {
            assert!(matches!(parse_markers(p, bad), Err(ApidiffError::BadMarker { .. })), "{bad}");
        }
        assert!(matches!(parse_markers(p, "int x;\n"), Err(ApidiffError::NoMarkers { .. })));
    }

    #[test]
    fn the_real_compat_h_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kmod");
        if dir.join("compat.h").is_file() {
            let items = module_items(&dir).unwrap();
            assert!(!items.is_empty());
            let text = std::fs::read_to_string(dir.join("compat.h")).unwrap();
            for i in &items {
                assert!(text.contains(&format!("RIG_FORCE_OLD_{}", i.name)), "{} has no RIG_FORCE_OLD_ switch", i.name);
            }
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("2.6.23"), Some((2, 6, 23)));
        assert_eq!(parse_version("6.12"), Some((6, 12, 0)));
        assert_eq!(parse_version("6.12.117-1"), Some((6, 12, 117)));
        assert_eq!(parse_version("7.2.13+deb14"), Some((7, 2, 13)));
        assert_eq!(parse_version("x"), None);
        assert!(expect_fail(&item("a", "6.12"), (6, 12, 117)));
        assert!(!expect_fail(&item("a", "6.12"), (6, 1, 176)));
        assert!(expect_fail(&item("a", "5.10"), (5, 10, 0)));
    }

    #[test]
    fn first_error_lines() {
        let out = Path::new("/c/apidiff/6.1/no_llseek");
        let log = "\
make: Entering directory '/x'
  CC [M]  /c/apidiff/6.1/no_llseek/main.o
/c/apidiff/6.1/no_llseek/chardev_rw.c:88:20: error: 'no_llseek' undeclared here (not in a function)
/c/apidiff/6.1/no_llseek/chardev_rw.c:90:1: error: second
make[2]: *** [x] Error 1
";
        assert_eq!(first_error(log, out), "chardev_rw.c: error: 'no_llseek' undeclared here (not in a function)");
        let log = "In file included from x.c:1:\n/c/apidiff/6.1/no_llseek/compat.h:5:10: fatal error: linux/nope.h: No such file or directory\n";
        assert_eq!(first_error(log, out), "compat.h: error: linux/nope.h: No such file or directory");
        assert_eq!(
            first_error("ERROR: modpost: \"x\" [/c/apidiff/6.1/no_llseek/m.ko] undefined!\n", out),
            "ERROR: modpost: \"x\" [m.ko] undefined!"
        );
        assert_eq!(first_error("make: *** [Makefile:2] Error 2\n", out), "make: *** [Makefile:2] Error 2");
    }

    fn report() -> ApidiffReport {
        let col = |k: &str, v: &str| KernelColumn {
            kernel: k.into(),
            release: String::new(),
            version: v.into(),
            build_env: String::new(),
            baseline: Verdict::Builds,
        };
        let fails = |e: &str| Verdict::Fails { error: e.into() };
        ApidiffReport {
            kernels: vec![col("bookworm-6.1", "6.1.176"), col("trixie-6.12", "6.12.117")],
            rows: vec![
                (
                    item("access_ok", "5.0"),
                    vec![fails("a.c: error: too many | args"), fails("a.c: error: too many | args")],
                ),
                (item("no_llseek", "6.12"), vec![Verdict::Builds, fails("c.c: error: 'no_llseek' undeclared")]),
            ],
            wall_secs: 1.0,
        }
    }

    #[test]
    fn tables_and_agreement() {
        let r = report();
        assert!(r.disagreements().is_empty(), "{:?}", r.disagreements());
        let t = r.table();
        assert!(t.lines().next().unwrap().ends_with("bookworm-6.1  trixie-6.12"), "{t}");
        assert!(
            t.contains("no_llseek (6.12)") && t.contains("access_ok on bookworm-6.1, trixie-6.12: a.c: error"),
            "{t}"
        );
        let md = r.markdown();
        assert!(md.contains("| API | changed in | bookworm-6.1 | trixie-6.12 |"), "{md}");
        assert!(md.contains("| `no_llseek` | 6.12 | builds | fails |"), "{md}");
        assert!(md.contains("`a.c: error: too many \\| args`"), "{md}");
        let v = section_verdicts(&md);
        assert_eq!(v[0], ("baseline (the shims)".to_string(), vec!["builds".to_string(), "builds".to_string()]));
        assert_eq!(v[2], ("no_llseek".to_string(), vec!["builds".to_string(), "fails".to_string()]));

        let mut wrong = r.clone();
        wrong.rows[1].0 = item("no_llseek", "6.1");
        let d = wrong.disagreements();
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("still builds on bookworm-6.1"), "{d:?}");
    }

    #[test]
    fn shim_table_against_markers() {
        let doc = "\
| item | 2.6 form | modern form | kernel version | file(s) |
|---|---|---|---|---|
| `access_ok` | `access_ok(VERIFY_READ, p, n)` | `access_ok(p, n)` | 5.0 | ioctl.c |
| `vm_reserved` | `vma->vm_flags \\|= VM_RESERVED` | `VM_DONTEXPAND \\| VM_DONTDUMP` | 3.7 | a.c |
| `extra` | x | y | 1.0 | b.c |

text
";
        assert_eq!(row_cells("| `a \\| b` | c |"), ["a | b", "c"]);
        let items = [item("access_ok", "5.0"), item("vm_reserved", "3.8"), item("no_llseek", "6.12")];
        let d = check_shim_table(doc, &items);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].contains("`vm_reserved`: the table of shims says version `3.7`, compat.h says `3.8`"), "{d:?}");
        assert!(d[1].contains("`no_llseek`") && d[1].contains("missing"), "{d:?}");
        assert!(d[2].contains("`extra`") && d[2].contains("no rig-compat marker"), "{d:?}");
        assert!(check_shim_table("no table here\n", &items).is_empty());
    }

    #[test]
    fn the_real_doc_agrees_with_compat_h() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let (Ok(doc), Ok(items)) =
            (std::fs::read_to_string(root.join("docs/api-changes.md")), module_items(&root.join("guest-kmod")))
        else {
            return;
        };
        let d = check_shim_table(&doc, &items);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn doc_section_roundtrip_and_check() {
        let r = report();
        let doc = "# API changes\n\nhand-written table\n";
        let once = replace_section(doc, &r.markdown());
        assert!(once.starts_with(doc));
        assert_eq!(extract_section(&once), Some(r.markdown().trim_end()));
        // Replacing again keeps one section and the text around it.
        let twice = replace_section(&format!("{once}\ntrailer\n"), &r.markdown());
        assert_eq!(twice.matches(DOC_BEGIN).count(), 1);
        assert!(twice.ends_with("trailer\n"));

        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("api.md");
        std::fs::write(&path, &once).unwrap();
        assert!(check_doc(&path, &r).unwrap().is_empty());
        let mut changed = r.clone();
        changed.rows[1].1[0] = Verdict::Fails { error: "x".into() };
        let diffs = check_doc(&path, &changed).unwrap();
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(diffs[0].contains("no_llseek") && diffs[0].contains("builds / fails"), "{diffs:?}");
        std::fs::write(&path, doc).unwrap();
        assert!(matches!(check_doc(&path, &r), Err(ApidiffError::NoSection { .. })));
    }
}
