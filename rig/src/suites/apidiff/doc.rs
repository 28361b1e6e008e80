//! The doc that records apidiff's results: the generated section between
//! the markers, and the hand-written table of shims checked against
//! compat.h.

use super::markers::{parse_version, CompatItem};
use super::report::ApidiffReport;
use super::ApidiffError;
use std::path::Path;

/// Start of the generated section in the doc.
pub const DOC_BEGIN: &str = "<!-- apidiff:begin -->";
/// End of the generated section in the doc.
pub const DOC_END: &str = "<!-- apidiff:end -->";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suites::apidiff::fixtures::{item, report};
    use crate::suites::apidiff::{module_items, Verdict};

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
