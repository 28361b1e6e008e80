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

mod doc;
mod markers;
mod report;

pub use doc::{check_doc, check_shim_table, extract_section, replace_section, section_verdicts, DOC_BEGIN, DOC_END};
pub use markers::{expect_fail, module_items, parse_markers, parse_version, CompatItem, Version};
pub use report::{first_error, ApidiffReport, KernelColumn, Verdict};

use crate::build::kbuild::{self, BuildRequest, KbuildError};
use crate::exec::run::{RunError, RunOptions};
use crate::kernel::fetch::KernelTree;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// A build job: kernel index, and `None` for the baseline or an item index.
type Job = (usize, Option<usize>);

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
        let tree = crate::exec::prepare::fetch_kernel(&ro, &interrupt)?.1;
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
                let v = build_one(&opts.base.cache_dir, &opts.module_dir, tree, &name, vars, &interrupt);
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
    interrupt: &AtomicBool,
) -> Verdict {
    let out_dir = cache.join("apidiff").join(&tree.release).join(name);
    let req =
        BuildRequest { src_dir: module_dir.to_owned(), out_dir: out_dir.clone(), make_vars, extra_cflags_w1: false };
    match kbuild::build_module(tree, &req, interrupt) {
        Ok(_) => Verdict::Builds,
        Err(KbuildError::BuildFailed { log_path, tail, .. }) => {
            let log = std::fs::read_to_string(&log_path).unwrap_or(tail);
            Verdict::Fails { error: first_error(&log, &out_dir) }
        }
        Err(e) => Verdict::Unknown { why: e.to_string() },
    }
}

/// Items and a report shared by the tests of markers, report and doc.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn item(name: &str, since: &str) -> CompatItem {
        CompatItem {
            name: name.into(),
            since: since.into(),
            version: parse_version(since).unwrap(),
            old_form: "o".into(),
            modern_form: "m".into(),
            line: 1,
        }
    }

    pub(crate) fn report() -> ApidiffReport {
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
}
