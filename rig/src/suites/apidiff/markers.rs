//! The compat items: marker lines in the module's `compat.h`, each naming
//! an API change, the kernel version that made it, and both forms.

use super::ApidiffError;
use regex::Regex;
use serde::Serialize;
use std::path::Path;

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

/// What an item's version says about a kernel: `true` = the old form should fail.
pub fn expect_fail(item: &CompatItem, kernel: Version) -> bool {
    kernel >= item.version
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suites::apidiff::fixtures::item;

    const COMPAT: &str = "\
 *   rig-compat marker: item | version of the change | 2.6-era form | modern form
/* rig-compat: nopage_fault | 2.6.23 | .nopage(vma, address, type) | .fault(vmf) */
#if RIG_KERNEL_SINCE(2, 6, 23) && !defined(RIG_FORCE_OLD_nopage_fault)
/* rig-compat: vm_reserved | 3.7 | vma->vm_flags |= VM_RESERVED | VM_DONTEXPAND | VM_DONTDUMP */
  /*   rig-compat:   no_llseek | 6.12 | .llseek = no_llseek | .llseek left NULL   */
";

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
}
