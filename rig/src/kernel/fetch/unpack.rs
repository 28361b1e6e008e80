//! Unpacking the downloaded packages and the stamp that marks a complete
//! tree: written last, checked (entry and files) before the tree is reused.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::resolve::{DebPackage, Plan};
use super::{run, FetchError, KernelTree, ERROR_TAIL_LINES};
use crate::kernel::catalog::{KernelEntry, Packaging};
use crate::support::{io_err, tail_lines};

/// The stamp file in `kernels/<name>/`.
pub(super) const STAMP_FILE: &str = "tree.json";
const STAMP_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Stamp {
    format: u32,
    /// The cache directory's name ([`KernelEntry::cache_name`]).
    name: String,
    suite: String,
    flavour: String,
    arch: String,
    packaging: Packaging,
    archive_uri: String,
    pub(super) release: String,
    package_version: String,
    pub(super) packages: Vec<DebPackage>,
    /// Paths below are relative to the root, so the cache can move.
    vmlinuz: PathBuf,
    config: PathBuf,
    headers_common: PathBuf,
    headers_flavour: PathBuf,
    modules_dir: Option<PathBuf>,
}

impl Stamp {
    /// The tree in `kdir`, shown as `name` (the name the user gave).
    pub(super) fn tree(&self, kdir: &Path, name: &str) -> KernelTree {
        let root = kdir.join("root");
        KernelTree {
            name: name.to_owned(),
            release: self.release.clone(),
            package_version: self.package_version.clone(),
            vmlinuz: root.join(&self.vmlinuz),
            headers_common: root.join(&self.headers_common),
            headers_flavour: root.join(&self.headers_flavour),
            modules_dir: self.modules_dir.as_ref().map(|m| root.join(m)),
            config: root.join(&self.config),
            suite: self.suite.clone(),
            arch: self.arch.clone(),
            archive_uri: self.archive_uri.clone(),
            cache_dir: kdir.parent().and_then(Path::parent).map(Path::to_owned).unwrap_or_default(),
            root,
        }
    }

    fn matches(&self, entry: &KernelEntry) -> bool {
        self.format == STAMP_FORMAT
            && self.name == entry.cache_name()
            && self.suite == entry.suite
            && self.flavour == entry.flavour
            && self.arch == entry.arch
            && self.packaging == entry.packaging
    }
}

/// The stamp of a complete cached tree for `entry`, if there is one.
pub(super) fn load_stamp(kdir: &Path, entry: &KernelEntry) -> Option<Stamp> {
    let path = kdir.join(STAMP_FILE);
    let text = fs::read_to_string(&path).ok()?;
    let stamp: Stamp = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "ignoring unreadable cache stamp");
            return None;
        }
    };
    if !stamp.matches(entry) {
        info!(kernel = %entry.name, "catalog entry changed since the cached fetch; fetching again");
        return None;
    }
    let tree = stamp.tree(kdir, &entry.name);
    let present = [&tree.vmlinuz, &tree.config, &tree.headers_common, &tree.headers_flavour].iter().all(|p| p.exists());
    if !present {
        warn!(kernel = %entry.name, "cached tree is incomplete; fetching again");
        return None;
    }
    Some(stamp)
}

pub(super) fn same_packages(a: &[DebPackage], b: &[DebPackage]) -> bool {
    let key = |v: &[DebPackage]| {
        let mut k: Vec<(String, String)> = v.iter().map(|p| (p.name.clone(), p.version.clone())).collect();
        k.sort();
        k
    };
    key(a) == key(b)
}

pub(super) fn extract(deb: &Path, root: &Path) -> Result<(), FetchError> {
    debug!(deb = %deb.display(), "unpacking");
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("-x").arg(deb).arg(root);
    let out = run(&mut cmd, "dpkg-deb -x")?;
    if !out.status.success() {
        return Err(FetchError::CommandFailed {
            command: format!("dpkg-deb -x {}", deb.display()),
            status: out.status.to_string(),
            hint: "the .deb may be damaged or the disk full; fetch again with --refresh".into(),
            output: tail_lines(&String::from_utf8_lossy(&out.stderr), ERROR_TAIL_LINES),
        });
    }
    Ok(())
}

/// Finds the kernel's files under `root` and builds the stamp for them.
pub(super) fn locate(entry: &KernelEntry, plan: &Plan, uri: &str, root: &Path) -> Result<Stamp, FetchError> {
    let r = &plan.release;
    let layout = |path: PathBuf| FetchError::Layout { name: entry.name.clone(), path: root.join(path) };
    let first = |candidates: Vec<PathBuf>| -> Result<PathBuf, FetchError> {
        candidates
            .iter()
            .find(|p| root.join(p).is_file())
            .cloned()
            .ok_or_else(|| layout(candidates.first().cloned().unwrap_or_default()))
    };
    let modules = |base: &str| PathBuf::from(format!("{base}/{r}"));
    let vmlinuz = first(match entry.packaging {
        Packaging::Classic => vec![format!("boot/vmlinuz-{r}").into(), modules("usr/lib/modules").join("vmlinuz")],
        Packaging::Split => {
            vec![modules("usr/lib/modules").join("vmlinuz.unsigned"), modules("lib/modules").join("vmlinuz.unsigned")]
        }
    })?;
    let headers_flavour = PathBuf::from(format!("usr/src/linux-headers-{r}"));
    let config = first(vec![
        format!("boot/config-{r}").into(),
        modules("usr/lib/modules").join("config"),
        modules("lib/modules").join("config"),
        // Same file, shipped with the headers.
        headers_flavour.join(".config"),
    ])?;
    let headers_common = PathBuf::from(format!("usr/src/{}", plan.common));
    for dir in [&headers_common, &headers_flavour] {
        if !root.join(dir).is_dir() {
            return Err(layout(dir.clone()));
        }
    }
    // The headers add a modules/<release>/build link; real modules have kernel/.
    let modules_dir =
        [modules("usr/lib/modules"), modules("lib/modules")].into_iter().find(|m| root.join(m).join("kernel").is_dir());
    Ok(Stamp {
        format: STAMP_FORMAT,
        name: entry.cache_name(),
        suite: entry.suite.clone(),
        flavour: entry.flavour.clone(),
        arch: entry.arch.clone(),
        packaging: entry.packaging,
        archive_uri: uri.to_owned(),
        release: plan.release.clone(),
        package_version: plan.package_version.clone(),
        packages: plan.packages.clone(),
        vmlinuz,
        config,
        headers_common,
        headers_flavour,
        modules_dir,
    })
}

pub(super) fn write_stamp(path: &Path, stamp: &Stamp) -> Result<(), FetchError> {
    let json =
        serde_json::to_vec_pretty(stamp).map_err(|source| FetchError::Stamp { path: path.to_owned(), source })?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, json).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn entry(packaging: Packaging) -> KernelEntry {
        KernelEntry {
            name: "k".into(),
            suite: "sid".into(),
            flavour: "cloud-amd64".into(),
            packaging,
            arch: "amd64".into(),
            description: String::new(),
            console: "ttyS0".into(),
            cmdline: vec![],
        }
    }

    fn plan(release: &str, common: &str) -> Plan {
        Plan { release: release.into(), package_version: "1-1".into(), common: common.into(), packages: vec![] }
    }

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }

    #[test]
    fn locate_split_layout_and_stamp_roundtrip() {
        let tmp = tempfile::tempdir().unwrap();
        let kdir = tmp.path();
        let root = kdir.join("root");
        let r = "7.2.13+deb14-cloud-amd64";
        touch(&root, &format!("usr/lib/modules/{r}/vmlinuz.unsigned"));
        touch(&root, &format!("usr/lib/modules/{r}/config"));
        touch(&root, &format!("usr/lib/modules/{r}/kernel/fs/x.ko.xz"));
        touch(&root, &format!("usr/src/linux-headers-{r}/.config"));
        touch(&root, "usr/src/linux-headers-7.2.13+deb14-common/Makefile");
        let e = entry(Packaging::Split);
        let stamp =
            locate(&e, &plan(r, "linux-headers-7.2.13+deb14-common"), "http://m.example/debian", &root).unwrap();
        let tree = stamp.tree(kdir, "k");
        assert_eq!(tree.name, "k");
        assert_eq!(tree.vmlinuz, root.join(format!("usr/lib/modules/{r}/vmlinuz.unsigned")));
        assert_eq!(tree.config, root.join(format!("usr/lib/modules/{r}/config")));
        assert_eq!(tree.modules_dir, Some(root.join(format!("usr/lib/modules/{r}"))));
        assert_eq!(tree.headers_common, root.join("usr/src/linux-headers-7.2.13+deb14-common"));
        assert_eq!((tree.suite.as_str(), tree.arch.as_str()), ("sid", "amd64"));
        assert_eq!(tree.archive_uri, "http://m.example/debian");
        assert_eq!(tree.cache_dir, kdir.parent().unwrap().parent().unwrap());

        // No stamp yet: nothing cached.
        assert!(load_stamp(kdir, &e).is_none());
        write_stamp(&kdir.join(STAMP_FILE), &stamp).unwrap();
        assert_eq!(load_stamp(kdir, &e), Some(stamp.clone()));
        // A changed catalog entry invalidates it.
        assert!(load_stamp(kdir, &entry(Packaging::Classic)).is_none());
        // So does a missing file.
        fs::remove_file(&tree.vmlinuz).unwrap();
        assert!(load_stamp(kdir, &e).is_none());
    }

    #[test]
    fn locate_classic_layout_without_modules() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let r = "6.1.0-50-cloud-amd64";
        touch(&root, &format!("boot/vmlinuz-{r}"));
        touch(&root, &format!("boot/config-{r}"));
        touch(&root, &format!("usr/src/linux-headers-{r}/.config"));
        touch(&root, "usr/src/linux-headers-6.1.0-50-common/Makefile");
        let e = entry(Packaging::Classic);
        let stamp = locate(&e, &plan(r, "linux-headers-6.1.0-50-common"), "u:", &root).unwrap();
        assert_eq!(stamp.vmlinuz, PathBuf::from(format!("boot/vmlinuz-{r}")));
        assert_eq!(stamp.modules_dir, None);
        // Wrong packaging in the catalog: a Layout error naming the file.
        let err = locate(&entry(Packaging::Split), &plan(r, "linux-headers-6.1.0-50-common"), "u:", &root).unwrap_err();
        assert!(matches!(err, FetchError::Layout { .. }));
        assert!(err.to_string().contains("vmlinuz.unsigned"), "{err}");
    }

    #[test]
    fn same_packages_ignores_order_and_hashes() {
        let p = |n: &str, v: &str| DebPackage {
            name: n.into(),
            version: v.into(),
            arch: "amd64".into(),
            sha256: String::new(),
        };
        assert!(same_packages(&[p("a", "1"), p("b", "1")], &[p("b", "1"), p("a", "1")]));
        assert!(!same_packages(&[p("a", "1")], &[p("a", "2")]));
    }
}
