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
//! kernels/<name>/root/    the unpacked packages
//! kernels/<name>/tree.json  stamp, written last: present = tree complete
//! kernels/<name>/.rig-used  touched by every run that uses it (`rig cache`)
//! ```
//!
//! `<name>` is [`KernelEntry::cache_name`]: `bookworm-6.1`, or
//! `bookworm_amd64` for `--kernel bookworm/amd64`.

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
use tracing::{debug, info, warn};

use crate::kernel::catalog::KernelEntry;
use crate::support::{find_program, hex, io_err, lock_file, mark_used, IoError, LockError, LockMode};
use apt::Apt;
use resolve::resolve;
pub use sources::archive_uri_from_system;
use sources::{is_plausible_uri, normalize_uri};
use unpack::{extract, load_stamp, locate, same_packages, write_stamp, STAMP_FILE};

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
    Lock(#[from] LockError),
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

/// How `fetch` finds and refreshes packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Cache root, e.g. `~/.cache/rig` (see [`default_cache_dir`]).
    pub cache_dir: PathBuf,
    /// Debian archive URI; `None` takes it from the host's apt sources.
    pub archive_uri: Option<String>,
    /// Re-resolve the packages even if a complete tree is cached.
    pub refresh: bool,
    /// Never touch the network; only a cached tree can be returned.
    pub offline: bool,
}

impl Default for FetchOptions {
    /// [`default_cache_dir`], archive from the host, cached trees reused.
    fn default() -> Self {
        FetchOptions { cache_dir: default_cache_dir(), archive_uri: None, refresh: false, offline: false }
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

/// Finds the Debian archive in the host's apt sources: deb822
/// Fetches (or finds in the cache) the kernel `entry` names.
///
/// Holds an exclusive lock on `cache_dir/kernels/<name>.lock` throughout,
/// so concurrent fetches of one kernel wait for each other and the second
/// finds the first one's result.
pub fn fetch(entry: &KernelEntry, opts: &FetchOptions) -> Result<KernelTree, FetchError> {
    let kernels = opts.cache_dir.join("kernels");
    create_dir(&kernels)?;
    let kdir = kernels.join(entry.cache_name());
    let _lock = lock_file(&kernels.join(format!("{}.lock", entry.cache_name())), LockMode::Exclusive, WAITING)?;

    let cached = load_stamp(&kdir, entry);
    if let Some(stamp) = &cached {
        if !opts.refresh || opts.offline {
            if opts.refresh {
                warn!(kernel = %entry.name, "offline: ignoring refresh, using the cached tree");
            }
            info!(kernel = %entry.name, release = %stamp.release, "using cached kernel tree");
            mark_used(&kdir);
            return Ok(stamp.tree(&kdir, &entry.name));
        }
    }
    if opts.offline {
        return Err(FetchError::NotCached { name: entry.name.clone(), dir: kdir });
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
    };
    // apt's own lock would make a concurrent run fail, not wait.
    let suite_lock = lock_file(&apt_root.join(format!("{}.lock", entry.suite)), LockMode::Exclusive, WAITING)?;
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
    if let Some(stamp) = &cached {
        if same_packages(&stamp.packages, &plan.packages) {
            info!(kernel = %entry.name, "cached tree is up to date");
            mark_used(&kdir);
            return Ok(stamp.tree(&kdir, &entry.name));
        }
    }

    let debs_dir = kdir.join("debs");
    create_dir(&debs_dir)?;
    let debs = apt.download(&plan.packages, &debs_dir)?;
    drop(suite_lock);

    // Stamp goes first and comes back last: its presence means "complete".
    let stamp_path = kdir.join(STAMP_FILE);
    remove_file_if_exists(&stamp_path)?;
    let root = kdir.join("root");
    if root.exists() {
        fs::remove_dir_all(&root).map_err(io_err("remove", &root))?;
    }
    create_dir(&root)?;
    for deb in &debs {
        extract(deb, &root)?;
    }
    let stamp = locate(entry, &plan, &apt.uri, &root)?;
    write_stamp(&stamp_path, &stamp)?;
    info!(kernel = %entry.name, root = %root.display(), "kernel tree ready");
    mark_used(&kdir);
    Ok(stamp.tree(&kdir, &entry.name))
}

// ---------------------------------------------------------------------------
// Small helpers

pub(super) fn create_dir(path: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(path).map_err(io_err("create directory", path))?;
    Ok(())
}

pub(super) fn remove_file_if_exists(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e).into()),
        _ => Ok(()),
    }
}

pub(super) fn file_has_sha256(path: &Path, expected: &str) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(_) => return false,
        }
    }
    hex(&hasher.finalize()).eq_ignore_ascii_case(expected.trim())
}

pub(super) fn require_tool(tool: &'static str, package: &'static str, purpose: &'static str) -> Result<(), FetchError> {
    match find_program(tool) {
        Some(_) => Ok(()),
        None => Err(FetchError::ToolMissing { tool, package, purpose }),
    }
}

pub(super) fn run(cmd: &mut Command, what: &str) -> Result<Output, FetchError> {
    debug!(command = ?cmd, "running");
    cmd.output().map_err(|source| IoError { action: "run", path: PathBuf::from(what), source }.into())
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
        let opts = FetchOptions { cache_dir: tmp.path().to_owned(), archive_uri: None, refresh: false, offline: true };
        let err = fetch(&entry(Packaging::Classic), &opts).unwrap_err();
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
}
