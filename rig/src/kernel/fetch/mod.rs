//! Fetching Debian kernel packages into a local cache.
//!
//! `fetch` resolves a catalog entry to concrete packages through the suite's
//! metapackages, downloads them with apt (using a private apt state under the
//! cache directory, signatures checked against the Debian archive keyring)
//! and unpacks them with `dpkg-deb -x`. Nothing is installed and the host's
//! apt state is never touched.
//!
//! Cache layout under `FetchOptions::cache_dir`:
//!
//! ```text
//! apt/<suite>/            private apt lists, caches and sources.list (and .rig-used)
//! apt/<suite>.lock        serialises apt runs on that state
//! kernels/<name>.lock     serialises fetches of one kernel
//! kernels/<name>/debs/    the downloaded .deb files
//! kernels/<name>/root/    the unpacked packages (root.tmp/ while unpacking)
//! kernels/<name>/manifest.json  every file's size, and the image's and
//!                         config's SHA256: checked before the tree is reused
//! kernels/<name>/tree.json  stamp, written last: present = tree complete
//! kernels/<name>/.rig-used  touched by every run that uses it (`rig cache`)
//! ```
//!
//! `<name>` is [`KernelEntry::cache_name`]: `bookworm-6.1`, or
//! `bookworm_amd64` for `--kernel bookworm/amd64`.
//!
//! A little over 500 lines: the whole cache protocol of a kernel (lock,
//! stamp, manifest, repair) in one place; the apt, deb822, resolve and
//! unpack steps are their own files.

mod apt;
mod deb822;
mod resolve;
mod sources;
mod unpack;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::{info, warn};

use crate::kernel::catalog::KernelEntry;
use crate::support::{
    self, find_program, hex, io_err, lock_file, mark_used, remove_file_if_exists, ChildError, IoError, LockError,
    LockMode,
};
use apt::Apt;
use resolve::resolve;
pub use sources::archive_uri_from_system;
use sources::{is_plausible_uri, normalize_uri};
use std::sync::atomic::AtomicBool;
use unpack::{
    extract, load_stamp, locate, same_packages, verify, write_stamp, Manifest, TreeProblem, MANIFEST_FILE, STAMP_FILE,
};

/// Keyring that archive signatures are checked against.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "RIG_CACHE_DIR";
/// Lines of tool output kept in error messages.
const ERROR_TAIL_LINES: usize = 20;
/// Logged when another rig holds the lock.
const WAITING: &str = "another rig is fetching; waiting for it";

/// Errors from fetching a kernel.
#[derive(Debug, Error)]
pub enum FetchError {
    /// A required host tool is not installed.
    #[error("`{tool}` is not on PATH: install the `{package}` package (rig uses it to {purpose})")]
    ToolMissing {
        /// Program name.
        tool: &'static str,
        /// Debian package providing it.
        package: &'static str,
        /// What rig needs it for.
        purpose: &'static str,
    },
    /// The Debian archive keyring is not installed.
    #[error("the Debian archive keyring {} is missing: install the `debian-archive-keyring` package (rig checks archive signatures against it)", path.display())]
    KeyringMissing {
        /// Where the keyring was expected.
        path: PathBuf,
    },
    /// No archive URI was given and none was found in the host's apt sources.
    #[error("no Debian archive found in the host's apt sources ({searched}): pass --archive <uri> or set RIG_DEBIAN_ARCHIVE, e.g. http://<mirror>/debian")]
    NoArchive {
        /// The files that were searched.
        searched: String,
    },
    /// The archive URI is not usable.
    #[error("invalid archive URI `{uri}`: pass --archive / RIG_DEBIAN_ARCHIVE as a URI like http://<mirror>/debian")]
    InvalidArchive {
        /// The rejected URI.
        uri: String,
    },
    /// The archive could not be reached.
    #[error("cannot reach {uri}: check the network or pass --archive / RIG_DEBIAN_ARCHIVE; {cache_note}\n{output}")]
    Unreachable {
        /// The archive URI.
        uri: String,
        /// Catalog name of the kernel being fetched.
        name: String,
        /// What is (not) cached for the kernel.
        cache_note: String,
        /// Tail of apt's output.
        output: String,
    },
    /// Offline, and the cached tree is damaged with no intact packages to
    /// unpack it again from.
    #[error("the cached kernel `{name}` in {} is damaged ({why}) and its packages are not cached intact to unpack it again: run once without --offline to download it again", dir.display())]
    Damaged {
        /// Catalog name.
        name: String,
        /// The kernel's cache directory.
        dir: PathBuf,
        /// What the check found.
        why: String,
    },
    /// Ctrl-C or SIGTERM: the download or unpacking was stopped.
    #[error("interrupted; the kernel's cache entry is left incomplete and will be redone")]
    Interrupted,
    /// Offline mode and nothing cached.
    #[error("offline and nothing is cached for `{name}` in {}: run once without --offline to download it", dir.display())]
    NotCached {
        /// Catalog name.
        name: String,
        /// Where the cache was looked for.
        dir: PathBuf,
    },
    /// The Release file signature did not verify.
    #[error("signature check failed for suite `{suite}` at {uri}: upgrade the `debian-archive-keyring` package (newer suites are signed with newer keys) and check that the archive URI points at a Debian mirror\n{output}")]
    Signature {
        /// Suite.
        suite: String,
        /// Archive URI.
        uri: String,
        /// Tail of apt's output.
        output: String,
    },
    /// The Release file is signed but past its Valid-Until date.
    #[error("the Release file of suite `{suite}` at {uri} has expired (the mirror is stale): pass --archive / RIG_DEBIAN_ARCHIVE with an up-to-date mirror\n{output}")]
    Expired {
        /// Suite.
        suite: String,
        /// Archive URI.
        uri: String,
        /// Tail of apt's output.
        output: String,
    },
    /// The archive does not carry the suite.
    #[error("suite `{suite}` is not available at {uri}: check that the URI is a Debian archive and the suite in images/kernels.toml is right; releases past their end of life move to Debian's archive of old releases, pass that with --archive\n{output}")]
    SuiteMissing {
        /// Suite.
        suite: String,
        /// Archive URI.
        uri: String,
        /// Tail of apt's output.
        output: String,
    },
    /// A package needed for the kernel is not in the suite.
    #[error("package `{package}` is not in suite `{suite}` at {uri}: {hint}")]
    PackageNotFound {
        /// Package name.
        package: String,
        /// Suite.
        suite: String,
        /// Archive URI.
        uri: String,
        /// How to fix it.
        hint: String,
    },
    /// apt printed something rig cannot interpret.
    #[error("unexpected output from `{command}`: {detail}; this suite's kernel packaging may have changed, check images/kernels.toml")]
    UnexpectedOutput {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// A tool failed in a way not covered above.
    #[error("`{command}` failed ({status}): {hint}\n{output}")]
    CommandFailed {
        /// The command.
        command: String,
        /// Exit status.
        status: String,
        /// How to fix it.
        hint: String,
        /// Tail of the tool's output.
        output: String,
    },
    /// An expected file is missing after unpacking.
    #[error("{} is missing after unpacking `{name}`: the package layout is not what rig expects; check `packaging` for `{name}` in images/kernels.toml, then fetch with --refresh", path.display())]
    Layout {
        /// Catalog name.
        name: String,
        /// The missing path.
        path: PathBuf,
    },
    /// A filesystem or process operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Taking a lock in the cache failed.
    #[error(transparent)]
    Lock(LockError),
    /// Writing the stamp failed to serialise.
    #[error("cannot write the cache stamp {}: {source}", path.display())]
    Stamp {
        /// The stamp path.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl From<LockError> for FetchError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Interrupted { .. } => FetchError::Interrupted,
            e => FetchError::Lock(e),
        }
    }
}

/// How `fetch` finds and refreshes packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Cache root, e.g. `~/.cache/rig` (see [`default_cache_dir`]).
    pub cache_dir: PathBuf,
    /// Debian archive URI; `None` takes it from the host's apt sources.
    pub archive_uri: Option<String>,
    /// Download and unpack again even if a complete tree is cached.
    pub refresh: bool,
    /// Ask the archive for newer packages; download and unpack only when
    /// they differ from the cached tree's (or that tree is damaged).
    pub update: bool,
    /// Never touch the network; only a cached tree can be returned.
    pub offline: bool,
}

impl Default for FetchOptions {
    /// [`default_cache_dir`], archive from the host, cached trees reused.
    fn default() -> Self {
        FetchOptions {
            cache_dir: default_cache_dir(),
            archive_uri: None,
            refresh: false,
            update: false,
            offline: false,
        }
    }
}

/// An unpacked kernel: image, config and build headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelTree {
    /// The name the user gave: a catalog name (`bookworm-6.1`) or
    /// `SUITE/FLAVOUR` (`bookworm/amd64`).
    pub name: String,
    /// Kernel release (`uname -r`), e.g. `6.1.0-50-cloud-amd64`.
    pub release: String,
    /// Debian package version, e.g. `6.1.176-1`.
    pub package_version: String,
    /// Extraction root.
    pub root: PathBuf,
    /// The bootable kernel image.
    pub vmlinuz: PathBuf,
    /// `root/usr/src/linux-headers-<abi>-common`.
    pub headers_common: PathBuf,
    /// `root/usr/src/linux-headers-<release>`.
    pub headers_flavour: PathBuf,
    /// `root/[usr/]lib/modules/<release>` if the packages carry modules.
    pub modules_dir: Option<PathBuf>,
    /// The kernel config.
    pub config: PathBuf,
    /// Debian suite the packages came from (a chroot of it builds modules
    /// when the host lacks the kernel's compiler).
    pub suite: String,
    /// Debian architecture of the packages.
    pub arch: String,
    /// The archive URI the packages were downloaded from.
    pub archive_uri: String,
    /// The cache the tree lives in (`<cache_dir>/kernels/<name>/root`).
    pub cache_dir: PathBuf,
}

/// The cache directory: `$RIG_CACHE_DIR`, else `$XDG_CACHE_HOME/rig`, else
/// `~/.cache/rig` (else a per-user directory under the temp dir).
pub fn default_cache_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = env(CACHE_DIR_ENV) {
        return dir;
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(dir) = env("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return dir.join("rig");
    }
    if let Some(home) = env("HOME") {
        return home.join(".cache").join("rig");
    }
    std::env::temp_dir().join(format!("rig-cache-{}", crate::support::effective_uid()))
}

/// Fetches (or finds in the cache) the kernel `entry` names.
///
/// Holds an exclusive lock on `cache_dir/kernels/<name>.lock` throughout,
/// so concurrent fetches of one kernel wait for each other and the second
/// finds the first one's result. A cached tree is checked against the
/// manifest written when it was unpacked; a damaged one is unpacked again
/// from its packages (offline, if they are cached and intact) or fetched
/// again. `refresh` downloads and unpacks everything again; `update` only
/// when the archive has other packages for the kernel now. Setting
/// `interrupt` (Ctrl-C) stops apt, dpkg-deb and a wait for the lock.
pub fn fetch(entry: &KernelEntry, opts: &FetchOptions, interrupt: &AtomicBool) -> Result<KernelTree, FetchError> {
    let kernels = opts.cache_dir.join("kernels");
    create_dir(&kernels)?;
    let kdir = kernels.join(entry.cache_name());
    let lock_path = kernels.join(format!("{}.lock", entry.cache_name()));
    let _lock = lock_file(&lock_path, LockMode::Exclusive, WAITING, interrupt)?;

    let cached = load_stamp(&kdir, entry);
    let mut damage = None;
    if let Some(stamp) = &cached {
        if !(opts.refresh || opts.update) || opts.offline {
            if opts.refresh || opts.update {
                warn!(kernel = %entry.name, "offline: ignoring refresh or update, using the cached tree");
            }
            match verify(&kdir, stamp) {
                Ok(()) => {
                    info!(kernel = %entry.name, release = %stamp.release, "using cached kernel tree");
                    mark_used(&kdir);
                    return Ok(stamp.tree(&kdir, &entry.name));
                }
                Err(problem) => {
                    match &problem {
                        TreeProblem::NoManifest => {
                            info!(kernel = %entry.name, "the cached kernel tree has no manifest; unpacking it again to record one")
                        }
                        TreeProblem::Damaged(why) => {
                            warn!(kernel = %entry.name, %why, "the cached kernel tree is damaged; unpacking it again")
                        }
                    }
                    if let Some(debs) = cached_debs(&kdir.join("debs"), &stamp.packages) {
                        let plan = stamp.plan();
                        let tree = unpack_tree(entry, &kdir, &plan, &stamp.archive_uri, &debs, interrupt)?;
                        info!(kernel = %entry.name, "kernel tree unpacked again from the cached packages");
                        return Ok(tree);
                    }
                    damage = Some(problem.to_string());
                }
            }
        }
    }
    if opts.offline {
        return Err(match damage {
            Some(why) => FetchError::Damaged { name: entry.name.clone(), dir: kdir, why },
            None => FetchError::NotCached { name: entry.name.clone(), dir: kdir },
        });
    }

    require_tool("apt-get", "apt", "download packages")?;
    require_tool("apt-cache", "apt", "resolve kernel packages")?;
    require_tool("dpkg-deb", "dpkg", "unpack packages")?;
    if !Path::new(DEBIAN_KEYRING).is_file() {
        return Err(FetchError::KeyringMissing { path: DEBIAN_KEYRING.into() });
    }
    let uri = match &opts.archive_uri {
        Some(uri) => normalize_uri(uri),
        None => archive_uri_from_system()?,
    };
    if !is_plausible_uri(&uri) {
        return Err(FetchError::InvalidArchive { uri });
    }

    let apt_root = opts.cache_dir.join("apt");
    create_dir(&apt_root)?;
    let apt = Apt {
        dir: apt_root.join(&entry.suite),
        uri,
        suite: entry.suite.clone(),
        arch: entry.arch.clone(),
        name: entry.name.clone(),
        cache_note: match &cached {
            Some(s) => format!("the cached tree for {} ({}) is still usable without --refresh", entry.name, s.release),
            None => format!("nothing is cached for {} yet", entry.name),
        },
        interrupt,
    };
    // apt's own lock would make a concurrent run fail, not wait.
    let suite_lock =
        lock_file(&apt_root.join(format!("{}.lock", entry.suite)), LockMode::Exclusive, WAITING, interrupt)?;
    apt.prepare()?;
    mark_used(&apt.dir);
    apt.update()?;
    let plan = resolve(&apt, entry)?;
    info!(
        kernel = %entry.name,
        release = %plan.release,
        version = %plan.package_version,
        packages = ?plan.packages.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        "resolved kernel packages"
    );

    if let (Some(stamp), false) = (&cached, opts.refresh) {
        if same_packages(&stamp.packages, &plan.packages) && verify(&kdir, stamp).is_ok() {
            info!(kernel = %entry.name, "cached tree is up to date");
            mark_used(&kdir);
            return Ok(stamp.tree(&kdir, &entry.name));
        }
    }

    let debs_dir = kdir.join("debs");
    create_dir(&debs_dir)?;
    if opts.refresh {
        // Downloaded again, not only checked: --refresh is the way out of
        // whatever the cache holds.
        remove_debs(&debs_dir)?;
    }
    let debs = apt.download(&plan.packages, &debs_dir)?;
    drop(suite_lock);
    let tree = unpack_tree(entry, &kdir, &plan, &apt.uri, &debs, interrupt)?;
    info!(kernel = %entry.name, root = %tree.root.display(), "kernel tree ready");
    Ok(tree)
}

/// Unpacks `debs` into a fresh `kdir/root` and stamps it: the stamp goes
/// first and comes back last (its presence means "complete"), the
/// manifest just before it. The tree is unpacked beside the old one and
/// renamed into place, so a build reading the old headers keeps finding
/// files until the switch.
fn unpack_tree(
    entry: &KernelEntry,
    kdir: &Path,
    plan: &resolve::Plan,
    uri: &str,
    debs: &[PathBuf],
    interrupt: &AtomicBool,
) -> Result<KernelTree, FetchError> {
    let stamp_path = kdir.join(STAMP_FILE);
    remove_file_if_exists(&stamp_path)?;
    remove_file_if_exists(&kdir.join(MANIFEST_FILE))?;
    let fresh = kdir.join("root.tmp");
    let root = kdir.join("root");
    let old = kdir.join("root.old");
    for leftover in [&fresh, &old] {
        remove_dir_if_exists(leftover)?;
    }
    create_dir(&fresh)?;
    for deb in debs {
        extract(deb, &fresh, interrupt)?;
    }
    let stamp = locate(entry, plan, uri, &fresh)?;
    let manifest = Manifest::of(&fresh, &stamp)?;
    if root.exists() {
        fs::rename(&root, &old).map_err(io_err("rename", &root))?;
    }
    fs::rename(&fresh, &root).map_err(io_err("rename", &fresh))?;
    remove_dir_if_exists(&old)?;
    manifest.write(&kdir.join(MANIFEST_FILE))?;
    write_stamp(&stamp_path, &stamp)?;
    mark_used(kdir);
    Ok(stamp.tree(kdir, &entry.name))
}

/// The cached .debs of `packages` in `debs_dir`, if every one is there
/// and matches its SHA256 from the package index.
fn cached_debs(debs_dir: &Path, packages: &[resolve::DebPackage]) -> Option<Vec<PathBuf>> {
    let files: Vec<PathBuf> = packages.iter().map(|p| debs_dir.join(p.file_name())).collect();
    let intact = !packages.is_empty() && packages.iter().zip(&files).all(|(p, f)| file_has_sha256(f, &p.sha256));
    intact.then_some(files)
}

fn remove_debs(debs_dir: &Path) -> Result<(), FetchError> {
    let Ok(entries) = fs::read_dir(debs_dir) else {
        return Ok(());
    };
    for e in entries.filter_map(Result::ok) {
        if e.path().extension().is_some_and(|x| x == "deb") {
            remove_file_if_exists(&e.path())?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Small helpers

pub(super) fn create_dir(path: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(path).map_err(io_err("create directory", path))?;
    Ok(())
}

fn remove_dir_if_exists(path: &Path) -> Result<(), FetchError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e).into()),
        _ => Ok(()),
    }
}

pub(super) fn file_has_sha256(path: &Path, expected: &str) -> bool {
    file_sha256(path).is_ok_and(|h| h.eq_ignore_ascii_case(expected.trim()))
}

/// Lower-case hex SHA256 of the file at `path`.
pub(super) fn file_sha256(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hex(&hasher.finalize()))
}

pub(super) fn require_tool(tool: &'static str, package: &'static str, purpose: &'static str) -> Result<(), FetchError> {
    match find_program(tool) {
        Some(_) => Ok(()),
        None => Err(FetchError::ToolMissing { tool, package, purpose }),
    }
}

/// Runs `cmd` in a process group of its own, output captured; Ctrl-C
/// (`interrupt`) stops the whole group.
pub(super) fn run(cmd: &mut Command, what: &str, interrupt: &AtomicBool) -> Result<Output, FetchError> {
    match support::output(cmd, interrupt) {
        Ok(out) => Ok(out),
        Err(ChildError::Interrupted { .. }) => Err(FetchError::Interrupted),
        Err(ChildError::Io(e)) => Err(IoError { path: PathBuf::from(what), ..e }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::catalog::Packaging;

    fn entry(packaging: Packaging) -> KernelEntry {
        unpack::tests::entry(packaging)
    }

    #[test]
    fn offline_without_cache_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = FetchOptions { cache_dir: tmp.path().to_owned(), offline: true, ..FetchOptions::default() };
        let err = fetch(&entry(Packaging::Classic), &opts, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(err, FetchError::NotCached { .. }), "{err}");
        assert!(err.to_string().contains("without --offline"));
    }

    #[test]
    fn sha256_check() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"abc").unwrap();
        assert!(file_has_sha256(&f, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert!(!file_has_sha256(&f, "00"));
        assert!(!file_has_sha256(&tmp.path().join("missing"), ""));
    }

    /// A .deb of `files` (path, contents), built with dpkg-deb, and its
    /// index entry.
    fn fake_deb(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> (PathBuf, resolve::DebPackage) {
        let tree = dir.join(format!("{name}.tree"));
        for (path, data) in files {
            let p = tree.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }
        fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        let control = format!("Package: {name}\nVersion: 1-1\nArchitecture: amd64\nMaintainer: rig <rig@example.org>\nDescription: test\n");
        fs::write(tree.join("DEBIAN/control"), control).unwrap();
        let deb = dir.join(format!("{name}_1-1_amd64.deb"));
        let out = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&tree)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let package = resolve::DebPackage {
            name: name.into(),
            version: "1-1".into(),
            arch: "amd64".into(),
            sha256: file_sha256(&deb).unwrap(),
        };
        (deb, package)
    }

    #[test]
    fn a_damaged_tree_is_unpacked_again_from_its_packages() {
        let tmp = tempfile::tempdir().unwrap();
        let e = entry(Packaging::Classic);
        let kdir = tmp.path().join("kernels").join(e.cache_name());
        let debs_dir = kdir.join("debs");
        fs::create_dir_all(&debs_dir).unwrap();
        let r = "6.1.0-50-cloud-amd64";
        let image = vec![0x5au8; 300_000];
        let (image_deb, image_pkg) = fake_deb(
            &debs_dir,
            "linux-image",
            &[(&format!("boot/vmlinuz-{r}"), &image), (&format!("boot/config-{r}"), b"CONFIG_X=y\n")],
        );
        let (headers_deb, headers_pkg) = fake_deb(
            &debs_dir,
            "linux-headers",
            &[
                (&format!("usr/src/linux-headers-{r}/.config"), b"CONFIG_X=y\n"),
                ("usr/src/linux-headers-6.1.0-50-common/Makefile", b"all:\n"),
            ],
        );
        let plan = resolve::Plan {
            release: r.into(),
            package_version: "1-1".into(),
            common: "linux-headers-6.1.0-50-common".into(),
            packages: vec![image_pkg, headers_pkg],
        };
        let never = AtomicBool::new(false);
        let tree = unpack_tree(&e, &kdir, &plan, "http://m.example/debian", &[image_deb, headers_deb], &never).unwrap();
        let offline = FetchOptions { cache_dir: tmp.path().to_owned(), offline: true, ..FetchOptions::default() };
        assert_eq!(fetch(&e, &offline, &never).unwrap(), tree);

        // A truncated image (a boot would fail with QEMU exiting 0) is
        // unpacked again from the cached packages, offline.
        fs::write(&tree.vmlinuz, &image[..4096]).unwrap();
        assert_eq!(fetch(&e, &offline, &never).unwrap(), tree);
        assert_eq!(fs::read(&tree.vmlinuz).unwrap(), image);
        assert!(!kdir.join("root.tmp").exists() && !kdir.join("root.old").exists());

        // Without intact packages, offline can only say what is wrong.
        fs::write(&tree.vmlinuz, &image[..4096]).unwrap();
        fs::write(debs_dir.join("linux-image_1-1_amd64.deb"), b"not a deb").unwrap();
        let err = fetch(&e, &offline, &never).unwrap_err();
        assert!(matches!(err, FetchError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains(&format!("boot/vmlinuz-{r} has 4096 bytes, not 300000")), "{err}");

        // An interrupt set before the lock is free gives up the wait.
        let lock =
            crate::support::lock_file(&tmp.path().join("kernels/k.lock"), LockMode::Exclusive, "", &never).unwrap();
        let err = fetch(&e, &offline, &AtomicBool::new(true)).unwrap_err();
        assert!(matches!(err, FetchError::Interrupted), "{err}");
        drop(lock);
    }
}
