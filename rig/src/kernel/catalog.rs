//! The kernel catalog: which Debian kernels `rig` knows how to fetch and boot.
//!
//! The catalog is data (`images/kernels.toml`) embedded into the binary. An
//! entry names a suite and a flavour, never an ABI version: the concrete
//! package versions are resolved at fetch time (see `crate::kernel::fetch`).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The catalog shipped with `rig`.
const BUILTIN: &str = include_str!("../../../images/kernels.toml");

/// Errors from loading or querying the kernel catalog.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The TOML text is malformed or has unknown/missing fields.
    #[error("invalid kernel catalog: {source}; fix the TOML (see the field list at the top of images/kernels.toml)")]
    Parse {
        /// The underlying TOML error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// The catalog defines no kernels at all.
    #[error("the kernel catalog is empty: add at least one [[kernel]] entry to images/kernels.toml")]
    Empty,
    /// Two entries share a name.
    #[error("kernel `{name}` is defined twice in the catalog: give each [[kernel]] a unique name")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// No default entry, or more than one.
    #[error("{problem}: set the top-level `default = \"<name>\"` in images/kernels.toml")]
    Default {
        /// What is wrong with the default.
        problem: String,
    },
    /// A field holds a value unsafe for paths or apt arguments.
    #[error("kernel `{name}`: invalid {field} `{value}`: use only letters, digits, `.`, `-`, `+` and `_`, not starting with `.` or `-`")]
    InvalidField {
        /// Entry name (may itself be the invalid value).
        name: String,
        /// Field name.
        field: &'static str,
        /// Offending value.
        value: String,
    },
    /// `get` was asked for a name the catalog does not have.
    #[error("unknown kernel `{name}`: known kernels are {known}; or name any Debian kernel as SUITE/FLAVOUR (e.g. bookworm-backports/cloud-amd64), or add a [[kernel]] entry to images/kernels.toml")]
    Unknown {
        /// The requested name.
        name: String,
        /// Comma-separated list of the known names.
        known: String,
    },
}

/// How a Debian suite packages its kernel image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Packaging {
    /// `linux-image-<release>-unsigned` carries `/boot/vmlinuz-<release>`,
    /// `/boot/config-<release>` and the modules (bullseye .. trixie).
    #[default]
    Classic,
    /// The kernel is split: `linux-binary-unsigned-<release>` holds
    /// `/usr/lib/modules/<release>/vmlinuz.unsigned`, `linux-base-<release>`
    /// the config and `linux-modules-<release>` the modules (sid).
    Split,
}

impl fmt::Display for Packaging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Packaging::Classic => "classic",
            Packaging::Split => "split",
        })
    }
}

/// One kernel the rig can fetch and boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelEntry {
    /// The name the user gives and every message shows: a catalog name such
    /// as `bookworm-6.1`, or `SUITE/FLAVOUR`. [`KernelEntry::cache_name`]
    /// names its cache directory.
    pub name: String,
    /// Debian suite or codename in the archive, e.g. `bookworm`.
    pub suite: String,
    /// Kernel flavour, e.g. `cloud-amd64`.
    pub flavour: String,
    /// How the suite packages the kernel image.
    #[serde(default)]
    pub packaging: Packaging,
    /// Debian architecture of the packages.
    #[serde(default = "default_arch")]
    pub arch: String,
    /// One-line human description.
    pub description: String,
    /// Guest serial console device, e.g. `ttyS0`.
    pub console: String,
    /// Extra kernel command-line arguments.
    #[serde(default)]
    pub cmdline: Vec<String>,
}

fn default_arch() -> String {
    "amd64".to_owned()
}

impl KernelEntry {
    /// Kernel command-line arguments this entry needs: the console first,
    /// then the entry's extra arguments.
    pub fn cmdline_args(&self) -> Vec<String> {
        let mut args = Vec::with_capacity(self.cmdline.len() + 1);
        args.push(format!("console={}", self.console));
        args.extend(self.cmdline.iter().cloned());
        args
    }

    /// The directory of this kernel in the cache (and in output
    /// directories): the name, with the `/` of `SUITE/FLAVOUR` as `_`.
    pub fn cache_name(&self) -> String {
        file_safe_name(&self.name)
    }

    fn validate(&self) -> Result<(), CatalogError> {
        // `SUITE/FLAVOUR` is checked as its two parts.
        let name_ok = match self.name.split_once('/') {
            Some((suite, flavour)) => suite == self.suite && flavour == self.flavour,
            None => is_safe_token(&self.name),
        };
        if !name_ok {
            return Err(CatalogError::InvalidField {
                name: self.name.clone(),
                field: "name",
                value: self.name.clone(),
            });
        }
        let fields: [(&'static str, &str); 4] =
            [("suite", &self.suite), ("flavour", &self.flavour), ("arch", &self.arch), ("console", &self.console)];
        for (field, value) in fields {
            if !is_safe_token(value) {
                return Err(CatalogError::InvalidField { name: self.name.clone(), field, value: value.to_owned() });
            }
        }
        Ok(())
    }
}

/// `SUITE/FLAVOUR` as an entry (`None` when `name` has no slash).
fn adhoc_entry(name: &str) -> Result<Option<KernelEntry>, CatalogError> {
    let Some((suite, flavour)) = name.split_once('/') else { return Ok(None) };
    let entry = KernelEntry {
        // Shown as given; the cache directory is `SUITE_FLAVOUR` (cache_name).
        name: format!("{suite}/{flavour}"),
        suite: suite.to_owned(),
        flavour: flavour.to_owned(),
        // sid splits the kernel packages; the released suites do not (yet).
        packaging: if matches!(suite, "sid" | "unstable") { Packaging::Split } else { Packaging::Classic },
        arch: default_arch(),
        description: format!("Debian {suite} kernel, {flavour} flavour (named on the command line)"),
        console: "ttyS0".to_owned(),
        cmdline: vec![],
    };
    entry.validate()?;
    Ok(Some(entry))
}

/// A kernel name as a file or directory name: `bookworm/amd64` becomes
/// `bookworm_amd64`; catalog names are unchanged.
pub fn file_safe_name(name: &str) -> String {
    name.replace('/', "_")
}

/// Names become directory names and apt arguments: keep them boring.
fn is_safe_token(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    default: String,
    #[serde(default)]
    kernel: Vec<KernelEntry>,
}

/// The set of known kernels, in catalog order, with one default.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<KernelEntry>,
    default: usize,
}

impl Catalog {
    /// The catalog embedded in the binary (`images/kernels.toml`).
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::parse(BUILTIN)
    }

    /// Parses and validates catalog TOML text.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|source| CatalogError::Parse { source })?;
        if file.kernel.is_empty() {
            return Err(CatalogError::Empty);
        }
        let mut seen = BTreeSet::new();
        for entry in &file.kernel {
            entry.validate()?;
            if !seen.insert(entry.name.as_str()) {
                return Err(CatalogError::Duplicate { name: entry.name.clone() });
            }
        }
        let default = file.kernel.iter().position(|e| e.name == file.default).ok_or_else(|| CatalogError::Default {
            problem: format!(
                "the default kernel `{}` is not in the catalog (known: {})",
                file.default,
                known_names(&file.kernel)
            ),
        })?;
        Ok(Catalog { entries: file.kernel, default })
    }

    /// Looks up an entry by name; the error lists the known names.
    ///
    /// Besides the catalog's names, `SUITE/FLAVOUR` names any Debian kernel
    /// (`bookworm-backports/cloud-amd64`, `trixie/amd64`): resolved like the
    /// catalog's entries, through the suite's metapackages.
    pub fn get(&self, name: &str) -> Result<Cow<'_, KernelEntry>, CatalogError> {
        if let Some(e) = self.entries.iter().find(|e| e.name == name) {
            return Ok(Cow::Borrowed(e));
        }
        if let Some(e) = adhoc_entry(name)? {
            return Ok(Cow::Owned(e));
        }
        Err(CatalogError::Unknown { name: name.to_owned(), known: known_names(&self.entries) })
    }

    /// The entry `name` names, or the default one.
    pub fn entry_or_default(&self, name: Option<&str>) -> Result<Cow<'_, KernelEntry>, CatalogError> {
        match name.map(str::trim) {
            None | Some("") => Ok(Cow::Borrowed(self.default_entry())),
            Some(n) => self.get(n),
        }
    }

    /// The kernels a command runs on: `arg` is `all`, a name or a
    /// comma-separated list (each checked, duplicates dropped, in order);
    /// without it, `fallback` (say, the config's kernels), else the default.
    /// The one place a kernel name or `all` is resolved.
    pub fn select(&self, arg: Option<&str>, fallback: &[String]) -> Result<Vec<String>, CatalogError> {
        let words: Vec<&str> = match arg.map(str::trim) {
            None | Some("") if fallback.is_empty() => vec![self.default_entry().name.as_str()],
            None | Some("") => fallback.iter().map(String::as_str).collect(),
            Some(list) => list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect(),
        };
        let mut names = Vec::new();
        for w in words {
            if w == "all" {
                names.extend(self.entries.iter().map(|e| e.name.clone()));
            } else {
                // An ad-hoc SUITE/FLAVOUR keeps the name the user gave.
                self.get(w)?;
                names.push(w.to_owned());
            }
        }
        let mut seen = BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        Ok(names)
    }

    /// The entry used when no kernel is named.
    pub fn default_entry(&self) -> &KernelEntry {
        // `parse` guarantees the index is in range.
        &self.entries[self.default]
    }

    /// All entries, in catalog order.
    pub fn entries(&self) -> impl Iterator<Item = &KernelEntry> + '_ {
        self.entries.iter()
    }
}

fn known_names(entries: &[KernelEntry]) -> String {
    entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
default = "a"
[[kernel]]
name = "a"
suite = "bookworm"
flavour = "cloud-amd64"
description = "test"
console = "ttyS0"
"#;

    #[test]
    fn builtin_has_the_four_kernels_and_bookworm_default() {
        let cat = Catalog::builtin().unwrap();
        let names: Vec<_> = cat.entries().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bullseye-5.10", "bookworm-6.1", "trixie-6.12", "sid-7"]);
        assert_eq!(cat.default_entry().name, "bookworm-6.1");
        let sid = cat.get("sid-7").unwrap();
        assert_eq!(sid.suite, "sid");
        assert_eq!(sid.packaging, Packaging::Split);
        assert_eq!(cat.get("trixie-6.12").unwrap().packaging, Packaging::Classic);
        for e in cat.entries() {
            assert_eq!(e.flavour, "cloud-amd64");
            assert_eq!(e.arch, "amd64");
            assert_eq!(e.console, "ttyS0");
        }
    }

    #[test]
    fn builtin_names_no_mirror() {
        // The archive must come from the user or the host, never the catalog.
        assert!(!BUILTIN.contains("http://") && !BUILTIN.contains("https://"));
    }

    #[test]
    fn defaults_for_optional_fields() {
        let cat = Catalog::parse(ONE).unwrap();
        let e = cat.default_entry();
        assert_eq!(e.packaging, Packaging::Classic);
        assert_eq!(e.arch, "amd64");
        assert!(e.cmdline.is_empty());
        assert_eq!(e.cmdline_args(), ["console=ttyS0"]);
    }

    #[test]
    fn cmdline_args_put_console_first() {
        let text = ONE.replace("console = \"ttyS0\"", "console = \"ttyS1\"\ncmdline = [\"quiet\", \"nokaslr\"]");
        let cat = Catalog::parse(&text).unwrap();
        assert_eq!(cat.default_entry().cmdline_args(), ["console=ttyS1", "quiet", "nokaslr"]);
    }

    #[test]
    fn suite_slash_flavour_names_any_debian_kernel() {
        let cat = Catalog::builtin().expect("catalog");
        let e = cat.get("bookworm-backports/cloud-amd64").expect("ad-hoc");
        assert_eq!((e.suite.as_str(), e.flavour.as_str()), ("bookworm-backports", "cloud-amd64"));
        assert_eq!(e.packaging, Packaging::Classic);
        // Shown as given; cached as one directory.
        assert_eq!(e.name, "bookworm-backports/cloud-amd64");
        assert_eq!(e.cache_name(), "bookworm-backports_cloud-amd64");
        assert_eq!(cat.get("bookworm-6.1").expect("catalog").cache_name(), "bookworm-6.1");
        assert!(cat.get("bookworm/../x").is_err());
        assert_eq!(cat.get("sid/amd64").expect("sid").packaging, Packaging::Split);
        assert!(cat.get("../x/y").is_err());
    }

    #[test]
    fn unknown_name_lists_known_names() {
        let cat = Catalog::builtin().unwrap();
        let err = cat.get("foo").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown kernel `foo`"), "{msg}");
        assert!(msg.contains("bullseye-5.10, bookworm-6.1, trixie-6.12, sid-7"), "{msg}");
    }

    #[test]
    fn selection() {
        let cat = Catalog::builtin().unwrap();
        let all: Vec<String> = cat.entries().map(|e| e.name.clone()).collect();
        assert_eq!(cat.select(None, &all).unwrap(), all);
        assert_eq!(cat.select(Some("all"), &[]).unwrap(), all);
        assert_eq!(cat.select(None, &[]).unwrap(), ["bookworm-6.1"]);
        assert_eq!(cat.select(Some(""), &["sid-7".into()]).unwrap(), ["sid-7"]);
        assert_eq!(cat.select(Some("sid-7, bookworm-6.1,sid-7"), &[]).unwrap(), ["sid-7", "bookworm-6.1"]);
        assert_eq!(cat.select(Some("trixie/amd64"), &[]).unwrap(), ["trixie/amd64"]);
        assert!(cat.select(Some("bookworm-6.1,nope"), &[]).is_err());
        assert_eq!(cat.entry_or_default(None).unwrap().name, "bookworm-6.1");
        assert_eq!(cat.entry_or_default(Some("sid-7")).unwrap().name, "sid-7");
    }

    #[test]
    fn rejects_unknown_fields() {
        let text = ONE.replace("console = \"ttyS0\"", "console = \"ttyS0\"\nabi = \"6.1.0-50\"");
        assert!(matches!(Catalog::parse(&text), Err(CatalogError::Parse { .. })));
        let text = format!("mirror = \"x\"\n{ONE}");
        assert!(matches!(Catalog::parse(&text), Err(CatalogError::Parse { .. })));
    }

    #[test]
    fn rejects_bad_packaging() {
        let text = ONE.replace("console = \"ttyS0\"", "console = \"ttyS0\"\npackaging = \"weird\"");
        assert!(matches!(Catalog::parse(&text), Err(CatalogError::Parse { .. })));
    }

    #[test]
    fn rejects_duplicates_and_missing_default() {
        let dup = format!("{ONE}{}", ONE.replace("default = \"a\"", ""));
        assert!(matches!(
            Catalog::parse(&dup),
            Err(CatalogError::Duplicate { name }) if name == "a"
        ));
        let nodef = ONE.replace("default = \"a\"", "default = \"b\"");
        let err = Catalog::parse(&nodef).unwrap_err();
        assert!(matches!(err, CatalogError::Default { .. }));
        assert!(err.to_string().contains("`b`"));
        assert!(matches!(Catalog::parse("default = \"a\"\n"), Err(CatalogError::Empty)));
    }

    #[test]
    fn rejects_path_like_names() {
        for bad in ["../x", "a/b", ".hidden", "", "-x", "a b"] {
            let text = ONE
                .replace("name = \"a\"", &format!("name = \"{bad}\""))
                .replace("default = \"a\"", &format!("default = \"{bad}\""));
            assert!(
                matches!(Catalog::parse(&text), Err(CatalogError::InvalidField { field: "name", .. })),
                "{bad:?} accepted"
            );
        }
        let text = ONE.replace("suite = \"bookworm\"", "suite = \"book worm\"");
        assert!(matches!(Catalog::parse(&text), Err(CatalogError::InvalidField { field: "suite", .. })));
    }
}
