//! The results of apidiff: a verdict per item and kernel, the table printed
//! and the Markdown kept in docs/api-changes.md, and where builds disagree
//! with an item's version.

use super::markers::{expect_fail, parse_version, CompatItem};
use regex::Regex;
use serde::Serialize;
use std::path::Path;

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
    pub fn word(&self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suites::apidiff::fixtures::{item, report};
    use crate::suites::apidiff::section_verdicts;

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
}
