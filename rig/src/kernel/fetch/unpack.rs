//! Unpacking the downloaded packages, the stamp that marks a complete tree
//! (written last, checked against the catalog entry before the tree is
//! reused) and the manifest that says what the tree held when it was
//! unpacked (checked against the tree before it is reused).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::resolve::{DebPackage, Plan};
use super::{file_sha256, run, FetchError, KernelTree, ERROR_TAIL_LINES};
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
    pub(super) archive_uri: String,
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

    /// The packages this tree was unpacked from, to unpack them again.
    pub(super) fn plan(&self) -> Plan {
        let common = self.headers_common.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Plan {
            release: self.release.clone(),
            package_version: self.package_version.clone(),
            common,
            packages: self.packages.clone(),
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

/// The same packages at the same versions (hashes aside), in any order.
pub(super) fn same_packages(a: &[DebPackage], b: &[DebPackage]) -> bool {
    let key = |v: &[DebPackage]| {
        let mut k: Vec<(String, String)> = v.iter().map(|p| (p.name.clone(), p.version.clone())).collect();
        k.sort();
        k
    };
    key(a) == key(b)
}

/// `kernels/<name>/manifest.json`, written just before the stamp.
pub(super) const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_FORMAT: u32 = 1;
/// Differences named in a message; the rest are counted.
const SHOWN_DIFFERENCES: usize = 3;

/// What an unpacked tree held: every file's size (a truncated or missing
/// file, as an interrupted restore or a full disk leaves, is found with one
/// `lstat` per file) and the SHA256 of the two files a run reads whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Manifest {
    format: u32,
    vmlinuz_sha256: String,
    config_sha256: String,
    /// Size of every file and symlink under the root, by relative path.
    files: BTreeMap<String, u64>,
}

impl Manifest {
    /// The manifest of the tree at `root`, whose files `stamp` names.
    pub(super) fn of(root: &Path, stamp: &Stamp) -> Result<Manifest, FetchError> {
        let sha = |rel: &Path| {
            let path = root.join(rel);
            file_sha256(&path).map_err(|e| FetchError::from(io_err("read", &path)(e)))
        };
        Ok(Manifest {
            format: MANIFEST_FORMAT,
            vmlinuz_sha256: sha(&stamp.vmlinuz)?,
            config_sha256: sha(&stamp.config)?,
            files: listing(root).map_err(|(path, e)| FetchError::from(io_err("read", &path)(e)))?,
        })
    }

    pub(super) fn write(&self, path: &Path) -> Result<(), FetchError> {
        let json = serde_json::to_vec(self).map_err(|source| FetchError::Stamp { path: path.to_owned(), source })?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, json).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
        Ok(())
    }

    fn read(path: &Path) -> Result<Manifest, TreeProblem> {
        let damaged = TreeProblem::Damaged;
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(TreeProblem::NoManifest),
            Err(e) => return Err(damaged(format!("cannot read {}: {e}", path.display()))),
        };
        let m: Manifest =
            serde_json::from_str(&text).map_err(|e| damaged(format!("{} is unreadable: {e}", path.display())))?;
        if m.format != MANIFEST_FORMAT {
            return Err(damaged(format!("{} has format {}, not {MANIFEST_FORMAT}", path.display(), m.format)));
        }
        Ok(m)
    }

    /// The files missing from `now` or of another size there (extra files
    /// do no harm), the first few named.
    pub(super) fn differences(&self, now: &BTreeMap<String, u64>) -> Option<String> {
        let mut found: Vec<String> = Vec::new();
        let mut count = 0;
        for (path, &size) in &self.files {
            let what = match now.get(path) {
                None => format!("{path} is missing"),
                Some(&s) if s != size => format!("{path} has {s} bytes, not {size}"),
                Some(_) => continue,
            };
            count += 1;
            if found.len() < SHOWN_DIFFERENCES {
                found.push(what);
            }
        }
        if count > found.len() {
            found.push(format!("{} more", count - found.len()));
        }
        (!found.is_empty()).then(|| found.join(", "))
    }
}

/// Size of every file and symlink under `root` (not following links), by
/// path relative to `root`; the path of what could not be read on error.
pub(super) fn listing(root: &Path) -> Result<BTreeMap<String, u64>, (PathBuf, std::io::Error)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| (dir.clone(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| (dir.clone(), e))?;
            let path = entry.path();
            let md = fs::symlink_metadata(&path).map_err(|e| (path.clone(), e))?;
            if md.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                files.insert(rel.to_string_lossy().into_owned(), md.len());
            }
        }
    }
    Ok(files)
}

/// Why a cached tree is not reused as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TreeProblem {
    /// Unpacked by a rig that wrote no manifest: nothing to check against.
    NoManifest,
    /// It differs from its manifest (what differs).
    Damaged(String),
}

impl std::fmt::Display for TreeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeProblem::NoManifest => write!(f, "no {MANIFEST_FILE} (unpacked by an older rig)"),
            TreeProblem::Damaged(why) => f.write_str(why),
        }
    }
}

/// Checks the tree in `kdir` against the manifest written when it was
/// unpacked.
pub(super) fn verify(kdir: &Path, stamp: &Stamp) -> Result<(), TreeProblem> {
    let damaged = TreeProblem::Damaged;
    let manifest = Manifest::read(&kdir.join(MANIFEST_FILE))?;
    let root = kdir.join("root");
    let now = listing(&root).map_err(|(path, e)| damaged(format!("cannot read {}: {e}", path.display())))?;
    if let Some(diff) = manifest.differences(&now) {
        return Err(damaged(diff));
    }
    for (rel, want) in [(&stamp.vmlinuz, &manifest.vmlinuz_sha256), (&stamp.config, &manifest.config_sha256)] {
        let path = root.join(rel);
        match file_sha256(&path) {
            Ok(got) if &got == want => {}
            Ok(_) => return Err(damaged(format!("{} does not have the SHA256 it had when unpacked", rel.display()))),
            Err(e) => return Err(damaged(format!("cannot read {}: {e}", path.display()))),
        }
    }
    Ok(())
}

pub(super) fn extract(deb: &Path, root: &Path, interrupt: &AtomicBool) -> Result<(), FetchError> {
    debug!(deb = %deb.display(), "unpacking");
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("-x").arg(deb).arg(root);
    let out = run(&mut cmd, "dpkg-deb -x", interrupt)?;
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
    fn manifest_finds_truncated_missing_and_changed_files() {
        let tmp = tempfile::tempdir().unwrap();
        let kdir = tmp.path();
        let root = kdir.join("root");
        let r = "6.1.0-50-cloud-amd64";
        touch(&root, &format!("boot/vmlinuz-{r}"));
        fs::write(root.join(format!("boot/vmlinuz-{r}")), vec![7u8; 5000]).unwrap();
        touch(&root, &format!("boot/config-{r}"));
        touch(&root, &format!("usr/src/linux-headers-{r}/.config"));
        touch(&root, "usr/src/linux-headers-6.1.0-50-common/Makefile");
        std::os::unix::fs::symlink(
            "../linux-headers-6.1.0-50-common",
            root.join(format!("usr/src/linux-headers-{r}/common")),
        )
        .unwrap();
        let stamp = locate(&entry(Packaging::Classic), &plan(r, "linux-headers-6.1.0-50-common"), "u:", &root).unwrap();
        // No manifest: an older rig's tree, not trusted.
        assert_eq!(verify(kdir, &stamp), Err(TreeProblem::NoManifest));
        let m = Manifest::of(&root, &stamp).unwrap();
        assert_eq!(m.files.len(), 5, "{:?}", m.files);
        assert_eq!(m.files[&format!("boot/vmlinuz-{r}")], 5000);
        m.write(&kdir.join(MANIFEST_FILE)).unwrap();
        assert_eq!(verify(kdir, &stamp), Ok(()));
        // An extra file does no harm.
        touch(&root, "usr/src/extra");
        assert_eq!(verify(kdir, &stamp), Ok(()));
        // The image cut short.
        fs::write(root.join(format!("boot/vmlinuz-{r}")), vec![7u8; 4096]).unwrap();
        let why = verify(kdir, &stamp).unwrap_err();
        assert_eq!(why, TreeProblem::Damaged(format!("boot/vmlinuz-{r} has 4096 bytes, not 5000")));
        // Same size, other bytes: the hash catches it.
        fs::write(root.join(format!("boot/vmlinuz-{r}")), vec![8u8; 5000]).unwrap();
        assert!(verify(kdir, &stamp).unwrap_err().to_string().contains("SHA256"));
        fs::write(root.join(format!("boot/vmlinuz-{r}")), vec![7u8; 5000]).unwrap();
        assert_eq!(verify(kdir, &stamp), Ok(()));
        // A header gone.
        fs::remove_file(root.join("usr/src/linux-headers-6.1.0-50-common/Makefile")).unwrap();
        assert_eq!(
            verify(kdir, &stamp).unwrap_err().to_string(),
            "usr/src/linux-headers-6.1.0-50-common/Makefile is missing"
        );
        // An unreadable manifest is not trusted either.
        fs::write(kdir.join(MANIFEST_FILE), "{").unwrap();
        assert!(verify(kdir, &stamp).unwrap_err().to_string().contains("unreadable"));
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

    #[test]
    fn differences_name_the_first_few() {
        let m = Manifest {
            format: MANIFEST_FORMAT,
            vmlinuz_sha256: String::new(),
            config_sha256: String::new(),
            files: (0..6).map(|i| (format!("f{i}"), 10)).collect(),
        };
        assert_eq!(m.differences(&m.files), None);
        assert_eq!(m.differences(&BTreeMap::new()).unwrap(), "f0 is missing, f1 is missing, f2 is missing, 3 more");
    }
}
