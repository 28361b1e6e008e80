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
//! apt/<suite>/            private apt lists, caches and sources.list
//! apt/<suite>.lock        serialises apt runs on that state
//! kernels/<name>.lock     serialises fetches of one kernel
//! kernels/<name>/debs/    the downloaded .deb files
//! kernels/<name>/root/    the unpacked packages
//! kernels/<name>/tree.json  stamp, written last: present = tree complete
//! ```

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::kernel::catalog::{KernelEntry, Packaging};

/// Keyring that archive signatures are checked against.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "RIG_CACHE_DIR";

/// Environment variable the CLI reads for the archive URI.
pub const ARCHIVE_ENV: &str = "RIG_DEBIAN_ARCHIVE";

const STAMP_FILE: &str = "tree.json";
const STAMP_FORMAT: u32 = 1;
/// Lines of tool output kept in error messages.
const ERROR_TAIL_LINES: usize = 20;

/// Suite names and aliases of the Debian archive, used to tell a Debian
/// entry in the host's apt sources from third-party repositories.
const DEBIAN_SUITES: &[&str] = &[
    "jessie",
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "experimental",
];

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
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Taking the cache lock failed.
    #[error("cannot lock {}: {source}; keep the cache directory on a local filesystem that supports flock (set RIG_CACHE_DIR)", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Errno,
    },
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
    /// Catalog name, e.g. `bookworm-6.1`.
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

impl KernelTree {
    /// `modules_dir/modules.dep` if the packages carry modules and it has
    /// been generated (Debian ships none: see [`ensure_modules_dep`];
    /// [`crate::kernel::intree`] reads dependencies from each module instead).
    pub fn modules_dep(&self) -> Option<PathBuf> {
        self.modules_dir.as_ref().map(|m| m.join("modules.dep")).filter(|p| p.is_file())
    }
}

/// Generates `modules.dep` (and the other depmod indexes) in the tree's
/// modules directory if it is missing, with the host's `depmod` (package
/// `kmod`). Returns its path, or `None` when the packages carry no modules.
///
/// `depmod -b` looks in `<base>/lib/modules/<release>`; split packaging
/// puts modules under `usr/lib/modules`, so a private base directory links
/// to the real one.
pub fn ensure_modules_dep(tree: &KernelTree) -> Result<Option<PathBuf>, FetchError> {
    let Some(dir) = &tree.modules_dir else {
        return Ok(None);
    };
    if let Some(dep) = tree.modules_dep() {
        return Ok(Some(dep));
    }
    let depmod = find_program("depmod")
        .or_else(|| ["/usr/sbin/depmod", "/sbin/depmod"].iter().map(PathBuf::from).find(|p| p.is_file()))
        .ok_or(FetchError::ToolMissing {
            tool: "depmod",
            package: "kmod",
            purpose: "index the kernel's own modules",
        })?;
    let base = tempfile::tempdir().map_err(io_err("create a temporary directory in", &std::env::temp_dir()))?;
    let link_dir = base.path().join("lib/modules");
    create_dir(&link_dir)?;
    let link = link_dir.join(&tree.release);
    std::os::unix::fs::symlink(dir, &link).map_err(io_err("create symlink", &link))?;
    let mut cmd = Command::new(depmod);
    cmd.arg("-b").arg(base.path()).arg(&tree.release);
    let out = run(&mut cmd, "depmod")?;
    if !out.status.success() {
        return Err(FetchError::CommandFailed {
            command: format!("depmod -b {} {}", base.path().display(), tree.release),
            status: out.status.to_string(),
            hint: "the modules may be damaged; fetch the kernel again with --refresh".into(),
            output: tail_lines(&String::from_utf8_lossy(&out.stderr), ERROR_TAIL_LINES),
        });
    }
    Ok(tree.modules_dep())
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
    std::env::temp_dir().join(format!("rig-cache-{}", effective_uid()))
}

/// Finds the Debian archive in the host's apt sources: deb822
/// `/etc/apt/sources.list.d/*.sources` first, then `/etc/apt/sources.list`
/// and `/etc/apt/sources.list.d/*.list`. Security archives are skipped.
pub fn archive_uri_from_system() -> Result<String, FetchError> {
    let etc = Path::new("/etc/apt");
    let parts = etc.join("sources.list.d");
    let mut deb822 = Vec::new();
    let mut one_line = vec![etc.join("sources.list")];
    if let Ok(dir) = fs::read_dir(&parts) {
        let mut names: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for p in names {
            match p.extension().and_then(OsStr::to_str) {
                Some("sources") => deb822.push(p),
                Some("list") => one_line.push(p),
                _ => {}
            }
        }
    }
    let read = |p: &PathBuf| fs::read_to_string(p).ok();
    let found = deb822
        .iter()
        .filter_map(read)
        .find_map(|text| debian_uri_from_deb822(&text))
        .or_else(|| one_line.iter().filter_map(read).find_map(|text| debian_uri_from_one_line(&text)));
    match found {
        Some(uri) => {
            debug!(%uri, "archive URI from the host's apt sources");
            Ok(normalize_uri(&uri))
        }
        None => Err(FetchError::NoArchive {
            searched: format!(
                "{}/*.sources, {}, {}/*.list",
                parts.display(),
                etc.join("sources.list").display(),
                parts.display()
            ),
        }),
    }
}

/// Fetches (or finds in the cache) the kernel `entry` names.
///
/// Holds an exclusive lock on `cache_dir/kernels/<name>.lock` throughout,
/// so concurrent fetches of one kernel wait for each other and the second
/// finds the first one's result.
pub fn fetch(entry: &KernelEntry, opts: &FetchOptions) -> Result<KernelTree, FetchError> {
    let kernels = opts.cache_dir.join("kernels");
    create_dir(&kernels)?;
    let kdir = kernels.join(&entry.name);
    let _lock = lock(&kernels.join(format!("{}.lock", entry.name)))?;

    let cached = load_stamp(&kdir, entry);
    if let Some(stamp) = &cached {
        if !opts.refresh || opts.offline {
            if opts.refresh {
                warn!(kernel = %entry.name, "offline: ignoring refresh, using the cached tree");
            }
            info!(kernel = %entry.name, release = %stamp.release, "using cached kernel tree");
            return Ok(stamp.tree(&kdir));
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
    let suite_lock = lock(&apt_root.join(format!("{}.lock", entry.suite)))?;
    apt.prepare()?;
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
            return Ok(stamp.tree(&kdir));
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
    Ok(stamp.tree(&kdir))
}

// ---------------------------------------------------------------------------
// apt with a private state directory

struct Apt {
    dir: PathBuf,
    uri: String,
    suite: String,
    arch: String,
    name: String,
    cache_note: String,
}

impl Apt {
    fn prepare(&self) -> Result<(), FetchError> {
        for sub in ["state", "lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/trusted.gpg.d"] {
            create_dir(&self.dir.join(sub))?;
        }
        let list = self.dir.join("etc/sources.list");
        let line = sources_line(&self.uri, &self.suite, &self.arch, DEBIAN_KEYRING);
        fs::write(&list, line).map_err(io_err("write", &list))
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-q")
            .args(apt_options(&self.dir, &self.arch, effective_uid() == 0))
            // apt's messages are classified below; keep them in English.
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE");
        cmd
    }

    fn update(&self) -> Result<(), FetchError> {
        let mut cmd = self.command("apt-get");
        cmd.arg("update");
        let out = run(&mut cmd, "apt-get update")?;
        let text = apt_diagnostics(&out);
        match classify_update(out.status.success(), &text) {
            UpdateOutcome::Ok => Ok(()),
            failure => Err(self.update_error(failure, "apt-get update", &out, text)),
        }
    }

    fn update_error(&self, failure: UpdateOutcome, command: &str, out: &Output, text: String) -> FetchError {
        let output = tail_lines(&text, ERROR_TAIL_LINES);
        let (uri, suite) = (self.uri.clone(), self.suite.clone());
        match failure {
            UpdateOutcome::Unreachable => {
                FetchError::Unreachable { uri, name: self.name.clone(), cache_note: self.cache_note.clone(), output }
            }
            UpdateOutcome::SuiteMissing => FetchError::SuiteMissing { suite, uri, output },
            UpdateOutcome::Expired => FetchError::Expired { suite, uri, output },
            UpdateOutcome::Signature => FetchError::Signature { suite, uri, output },
            UpdateOutcome::Ok | UpdateOutcome::Other => FetchError::CommandFailed {
                command: command.to_owned(),
                status: out.status.to_string(),
                hint: format!(
                    "see apt's messages below; the private apt state is in {}, delete it to start over",
                    self.dir.display()
                ),
                output,
            },
        }
    }

    /// The candidate stanza of `package`, or `None` if the suite lacks it.
    fn show(&self, package: &str) -> Result<Option<Stanza>, FetchError> {
        let mut cmd = self.command("apt-cache");
        cmd.args(["show", "--no-all-versions", package]);
        let out = run(&mut cmd, "apt-cache show")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if is_not_found(&stderr) {
                return Ok(None);
            }
            return Err(FetchError::CommandFailed {
                command: format!("apt-cache show {package}"),
                status: out.status.to_string(),
                hint: format!("delete {} and retry to rebuild apt's cache", self.dir.display()),
                output: tail_lines(&stderr, ERROR_TAIL_LINES),
            });
        }
        let stanza = parse_stanza(&stdout);
        if stanza.get("Package").is_none() {
            return Ok(None);
        }
        Ok(Some(stanza))
    }

    fn require(&self, package: &str, hint: impl FnOnce() -> String) -> Result<Stanza, FetchError> {
        self.show(package)?.ok_or_else(|| FetchError::PackageNotFound {
            package: package.to_owned(),
            suite: self.suite.clone(),
            uri: self.uri.clone(),
            hint: hint(),
        })
    }

    /// Downloads `packages` into `dest` (reusing files whose SHA256 matches)
    /// and returns the .deb paths in `packages` order.
    fn download(&self, packages: &[DebPackage], dest: &Path) -> Result<Vec<PathBuf>, FetchError> {
        let files: Vec<PathBuf> = packages.iter().map(|p| dest.join(p.file_name())).collect();
        let missing: Vec<&DebPackage> =
            packages.iter().zip(&files).filter(|(p, f)| !file_has_sha256(f, &p.sha256)).map(|(p, _)| p).collect();
        if !missing.is_empty() {
            info!(kernel = %self.name, count = missing.len(), "downloading kernel packages");
            let mut cmd = self.command("apt-get");
            cmd.arg("download").args(missing.iter().map(|p| format!("{}={}", p.name, p.version))).current_dir(dest);
            let out = run(&mut cmd, "apt-get download")?;
            let text = apt_diagnostics(&out);
            if !out.status.success() {
                let failure = match classify_update(false, &text) {
                    UpdateOutcome::Unreachable => UpdateOutcome::Unreachable,
                    _ => UpdateOutcome::Other,
                };
                return Err(self.update_error(failure, "apt-get download", &out, text));
            }
        }
        for (p, f) in packages.iter().zip(&files) {
            if !file_has_sha256(f, &p.sha256) {
                return Err(FetchError::UnexpectedOutput {
                    command: "apt-get download".into(),
                    detail: format!("{} is missing or does not match the SHA256 in the package list", f.display()),
                });
            }
        }
        // Old versions pile up otherwise.
        if let Ok(dir) = fs::read_dir(dest) {
            for e in dir.filter_map(|e| e.ok()) {
                let p = e.path();
                if p.extension() == Some(OsStr::new("deb")) && !files.contains(&p) {
                    debug!(file = %p.display(), "removing stale .deb");
                    remove_file_if_exists(&p)?;
                }
            }
        }
        Ok(files)
    }
}

/// The one-line sources.list for the private apt state: only the Packages
/// index, signatures checked against `keyring` alone.
fn sources_line(uri: &str, suite: &str, arch: &str, keyring: &str) -> String {
    format!("deb [arch={arch} target=Packages signed-by={keyring}] {uri} {suite} main\n")
}

/// `-o` options that point apt at the private state in `dir` and nowhere
/// else: no host sources, pins, trusted keys or dpkg status.
fn apt_options(dir: &Path, arch: &str, as_root: bool) -> Vec<String> {
    let d = dir.display();
    let mut opts = vec![
        format!("Dir::State={d}/state"),
        format!("Dir::State::Lists={d}/lists"),
        "Dir::State::status=/dev/null".to_owned(),
        format!("Dir::Cache={d}/cache"),
        format!("Dir::Etc::sourcelist={d}/etc/sources.list"),
        "Dir::Etc::sourceparts=-".to_owned(),
        format!("Dir::Etc::preferences={d}/etc/preferences"),
        format!("Dir::Etc::preferencesparts={d}/etc/preferences.d"),
        format!("Dir::Etc::trusted={d}/etc/trusted.gpg"),
        format!("Dir::Etc::trustedparts={d}/etc/trusted.gpg.d"),
        format!("APT::Architecture={arch}"),
        format!("APT::Architectures={arch}"),
        "Acquire::Languages=none".to_owned(),
    ];
    if as_root {
        // The _apt sandbox user cannot write into a root-owned cache.
        opts.push("APT::Sandbox::User=root".to_owned());
    }
    opts.into_iter().flat_map(|o| ["-o".to_owned(), o]).collect()
}

/// Result of an `apt-get update`, judged from its messages: apt exits 0
/// when an index merely failed to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateOutcome {
    Ok,
    Unreachable,
    SuiteMissing,
    Expired,
    Signature,
    Other,
}

fn classify_update(success: bool, text: &str) -> UpdateOutcome {
    const UNREACHABLE: &[&str] = &[
        "Could not resolve",
        "Temporary failure resolving",
        "Could not connect",
        "Connection failed",
        "Connection timed out",
        "Network is unreachable",
        "No route to host",
        "Unable to connect",
        "Could not handshake",
    ];
    const SIGNATURE: &[&str] =
        &["NO_PUBKEY", "GPG error", "is not signed", "BADSIG", "EXPKEYSIG", "signatures were invalid", "signature"];
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    let fetch_failed = text.contains("Failed to fetch");
    if has(UNREACHABLE) {
        UpdateOutcome::Unreachable
    } else if text.contains("does not have a Release file")
        || (fetch_failed && has(&[" 404 ", " 400 ", " 403 ", " 410 "]))
    {
        UpdateOutcome::SuiteMissing
    } else if text.contains("is expired") {
        UpdateOutcome::Expired
    } else if has(SIGNATURE) {
        UpdateOutcome::Signature
    } else if !success || fetch_failed || text.lines().any(|l| l.starts_with("E:")) {
        UpdateOutcome::Other
    } else {
        UpdateOutcome::Ok
    }
}

/// apt's error lines: `Err:` blocks from stdout and everything on stderr.
fn apt_diagnostics(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = Vec::new();
    let mut in_err = false;
    for line in stdout.lines() {
        if line.starts_with("Err:") {
            in_err = true;
        } else if !line.starts_with(' ') {
            in_err = false;
        }
        if in_err {
            lines.push(line);
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    lines.extend(stderr.lines());
    lines.join("\n")
}

fn is_not_found(stderr: &str) -> bool {
    stderr.contains("Unable to locate package")
        || stderr.contains("No packages found")
        || stderr.contains("purely virtual")
}

// ---------------------------------------------------------------------------
// Resolution

/// One package to download, with the index data needed to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DebPackage {
    name: String,
    version: String,
    arch: String,
    sha256: String,
}

impl DebPackage {
    fn from_stanza(stanza: &Stanza, command: &str) -> Result<DebPackage, FetchError> {
        let field = |k: &str| {
            stanza.get(k).map(str::to_owned).ok_or_else(|| FetchError::UnexpectedOutput {
                command: command.to_owned(),
                detail: format!("no `{k}` field"),
            })
        };
        Ok(DebPackage {
            name: field("Package")?,
            version: field("Version")?,
            arch: field("Architecture")?,
            sha256: field("SHA256")?,
        })
    }

    /// The name `apt-get download` gives the file.
    fn file_name(&self) -> String {
        // apt escapes the epoch colon in file names.
        let version = self.version.replace(':', "%3a");
        format!("{}_{}_{}.deb", self.name, version, self.arch)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    release: String,
    package_version: String,
    common: String,
    packages: Vec<DebPackage>,
}

fn resolve(apt: &Apt, entry: &KernelEntry) -> Result<Plan, FetchError> {
    let flavour = &entry.flavour;
    let meta = format!("linux-headers-{flavour}");
    let meta_stanza = apt.require(&meta, || {
        format!(
            "there is no headers metapackage for flavour `{flavour}`; check `flavour` for `{}` in images/kernels.toml",
            entry.name
        )
    })?;
    let headers_name = abi_headers_package(&relations(&meta_stanza, "Depends"), flavour).ok_or_else(|| {
        FetchError::UnexpectedOutput {
            command: format!("apt-cache show {meta}"),
            detail: format!("no `linux-headers-<abi>-{flavour}` in Depends"),
        }
    })?;
    let release = headers_name.strip_prefix("linux-headers-").unwrap_or(&headers_name).to_owned();

    let headers =
        apt.require(&headers_name, || "the metapackage points at it; the mirror may be mid-sync, retry later".into())?;
    let headers_deps = relations(&headers, "Depends");
    let (common, kbuild) = common_and_kbuild(&headers_deps);
    let bad_deps = |what: &str| FetchError::UnexpectedOutput {
        command: format!("apt-cache show {headers_name}"),
        detail: format!("no {what} package in Depends"),
    };
    let common = common.ok_or_else(|| bad_deps("linux-headers-*-common"))?;
    let kbuild = kbuild.ok_or_else(|| bad_deps("linux-kbuild-*"))?;

    let headers_pkg = DebPackage::from_stanza(&headers, "apt-cache show")?;
    let mut packages = vec![headers_pkg.clone()];
    for name in [common.as_str(), kbuild.as_str()] {
        let stanza =
            apt.require(name, || format!("`{headers_name}` depends on it; the mirror may be mid-sync, retry later"))?;
        packages.push(DebPackage::from_stanza(&stanza, "apt-cache show")?);
    }
    for name in image_packages(entry.packaging, &release) {
        let stanza = match apt.show(&name)? {
            Some(s) => s,
            None => return Err(image_not_found(apt, entry, &release, name)?),
        };
        packages.push(DebPackage::from_stanza(&stanza, "apt-cache show")?);
    }
    for p in &packages {
        if p.version != headers_pkg.version && !p.name.starts_with("linux-kbuild-") {
            warn!(package = %p.name, version = %p.version, expected = %headers_pkg.version, "package version differs from the headers");
        }
    }
    Ok(Plan { release, package_version: headers_pkg.version, common, packages })
}

/// A missing image package: say whether the other packaging would work.
fn image_not_found(apt: &Apt, entry: &KernelEntry, release: &str, name: String) -> Result<FetchError, FetchError> {
    let other = match entry.packaging {
        Packaging::Classic => Packaging::Split,
        Packaging::Split => Packaging::Classic,
    };
    let other_first = image_packages(other, release).into_iter().next();
    let other_exists = match &other_first {
        Some(p) => apt.show(p)?.is_some(),
        None => false,
    };
    let hint = if other_exists {
        format!(
            "this suite packages the kernel the `{other}` way: set packaging = \"{other}\" for `{}` in images/kernels.toml",
            entry.name
        )
    } else {
        "the headers exist but no unsigned image does; the mirror may be mid-sync, retry later".to_owned()
    };
    Ok(FetchError::PackageNotFound { package: name, suite: apt.suite.clone(), uri: apt.uri.clone(), hint })
}

/// The packages carrying the kernel image, config and modules.
fn image_packages(packaging: Packaging, release: &str) -> Vec<String> {
    match packaging {
        Packaging::Classic => vec![format!("linux-image-{release}-unsigned")],
        Packaging::Split => vec![
            format!("linux-binary-unsigned-{release}"),
            format!("linux-base-{release}"),
            format!("linux-modules-{release}"),
        ],
    }
}

/// The concrete `linux-headers-<abi>-<flavour>` a metapackage depends on.
fn abi_headers_package(depends: &[Vec<String>], flavour: &str) -> Option<String> {
    let meta = format!("linux-headers-{flavour}");
    let suffix = format!("-{flavour}");
    depends.iter().flatten().find(|n| n.starts_with("linux-headers-") && n.ends_with(&suffix) && **n != meta).cloned()
}

/// The common headers and kbuild packages a flavour headers package needs.
fn common_and_kbuild(depends: &[Vec<String>]) -> (Option<String>, Option<String>) {
    let names = || depends.iter().flatten();
    let common = names()
        .find(|n| n.starts_with("linux-headers-") && (n.ends_with("-common") || n.contains("-common-")))
        .cloned();
    let kbuild = names().find(|n| n.starts_with("linux-kbuild-")).cloned();
    (common, kbuild)
}

/// Fields of one deb822 stanza (the first in `text`); continuation lines
/// are joined with newlines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stanza(BTreeMap<String, String>);

impl Stanza {
    /// Field value, with case-insensitive names as in deb822.
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }
}

fn parse_stanza(text: &str) -> Stanza {
    parse_stanzas(text).into_iter().next().unwrap_or_default()
}

fn parse_stanzas(text: &str) -> Vec<Stanza> {
    let mut stanzas = Vec::new();
    let mut cur = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                stanzas.push(Stanza(std::mem::take(&mut cur)));
            }
            last = None;
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| cur.get_mut(k)) {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let key = k.trim().to_ascii_lowercase();
            cur.insert(key.clone(), v.trim().to_owned());
            last = Some(key);
        }
    }
    if !cur.is_empty() {
        stanzas.push(Stanza(cur));
    }
    stanzas
}

/// A relation field (`Depends`) as groups of alternative package names,
/// without version constraints or architecture qualifiers.
fn relations(stanza: &Stanza, field: &str) -> Vec<Vec<String>> {
    stanza.get(field).map(parse_relations).unwrap_or_default()
}

fn parse_relations(value: &str) -> Vec<Vec<String>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let name = alt.trim().split([' ', '(', '[', ':', '<']).next()?.trim();
                    (!name.is_empty()).then(|| name.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------
// Unpacking and the stamp

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stamp {
    format: u32,
    name: String,
    suite: String,
    flavour: String,
    arch: String,
    packaging: Packaging,
    archive_uri: String,
    release: String,
    package_version: String,
    packages: Vec<DebPackage>,
    /// Paths below are relative to the root, so the cache can move.
    vmlinuz: PathBuf,
    config: PathBuf,
    headers_common: PathBuf,
    headers_flavour: PathBuf,
    modules_dir: Option<PathBuf>,
}

impl Stamp {
    fn tree(&self, kdir: &Path) -> KernelTree {
        let root = kdir.join("root");
        KernelTree {
            name: self.name.clone(),
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
            && self.name == entry.name
            && self.suite == entry.suite
            && self.flavour == entry.flavour
            && self.arch == entry.arch
            && self.packaging == entry.packaging
    }
}

/// The stamp of a complete cached tree for `entry`, if there is one.
fn load_stamp(kdir: &Path, entry: &KernelEntry) -> Option<Stamp> {
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
    let tree = stamp.tree(kdir);
    let present = [&tree.vmlinuz, &tree.config, &tree.headers_common, &tree.headers_flavour].iter().all(|p| p.exists());
    if !present {
        warn!(kernel = %entry.name, "cached tree is incomplete; fetching again");
        return None;
    }
    Some(stamp)
}

fn same_packages(a: &[DebPackage], b: &[DebPackage]) -> bool {
    let key = |v: &[DebPackage]| {
        let mut k: Vec<(String, String)> = v.iter().map(|p| (p.name.clone(), p.version.clone())).collect();
        k.sort();
        k
    };
    key(a) == key(b)
}

fn extract(deb: &Path, root: &Path) -> Result<(), FetchError> {
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
fn locate(entry: &KernelEntry, plan: &Plan, uri: &str, root: &Path) -> Result<Stamp, FetchError> {
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
        name: entry.name.clone(),
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

fn write_stamp(path: &Path, stamp: &Stamp) -> Result<(), FetchError> {
    let json =
        serde_json::to_vec_pretty(stamp).map_err(|source| FetchError::Stamp { path: path.to_owned(), source })?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, json).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))
}

// ---------------------------------------------------------------------------
// Host apt sources

/// First Debian archive URI in deb822 text (`*.sources`).
fn debian_uri_from_deb822(text: &str) -> Option<String> {
    parse_stanzas(text).into_iter().find_map(|s| {
        let enabled = s.get("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        let is_deb = s.get("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let suites: Vec<&str> = s.get("Suites")?.split_whitespace().collect();
        let uri = s.get("URIs")?.split_whitespace().next()?.to_owned();
        (enabled && is_deb && is_debian_source(&uri, &suites)).then_some(uri)
    })
}

/// First Debian archive URI in one-line text (`sources.list`).
fn debian_uri_from_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let rest = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t"))?.trim_start();
        // Skip an `[ options ]` block.
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']')?.1,
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let uri = words.next()?.to_owned();
        let suite = words.next()?;
        is_debian_source(&uri, &[suite]).then_some(uri)
    })
}

/// A source is the Debian archive if it serves Debian suites and is not
/// the security archive (which has no kernels of its own flavour lists).
fn is_debian_source(uri: &str, suites: &[&str]) -> bool {
    if uri.starts_with("cdrom:") || uri.contains("debian-security") || suites.is_empty() {
        return false;
    }
    suites.iter().all(|s| {
        let base = s.split(['-', '/']).next().unwrap_or(s);
        !s.ends_with("-security") && !s.contains("/updates") && DEBIAN_SUITES.contains(&base)
    })
}

fn normalize_uri(uri: &str) -> String {
    uri.trim().trim_end_matches('/').to_owned()
}

fn is_plausible_uri(uri: &str) -> bool {
    !uri.is_empty() && uri.contains(':') && !uri.contains(char::is_whitespace) && !uri.contains(['[', ']'])
}

// ---------------------------------------------------------------------------
// Small helpers

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FetchError + 'a {
    move |source| FetchError::Io { action, path: path.to_owned(), source }
}

fn create_dir(path: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(path).map_err(io_err("create directory", path))
}

fn remove_file_if_exists(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Exclusive flock on `path`, waiting (with a log line) if it is held.
fn lock(path: &Path) -> Result<Flock<File>, FetchError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open lock file", path))?;
    let lock_err = |source| FetchError::Lock { path: path.to_owned(), source };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(l),
        Err((file, Errno::EWOULDBLOCK)) => {
            info!(lock = %path.display(), "another rig is fetching; waiting for it");
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| lock_err(e))
        }
        Err((_, e)) => Err(lock_err(e)),
    }
}

fn file_has_sha256(path: &Path, expected: &str) -> bool {
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

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last `n` lines of `text`, with a marker if lines were dropped.
pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines ...]\n"));
    }
    out.push_str(&lines[start..].join("\n"));
    out
}

/// Full path of `program` if it is an executable file on `$PATH`.
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn require_tool(tool: &'static str, package: &'static str, purpose: &'static str) -> Result<(), FetchError> {
    match find_program(tool) {
        Some(_) => Ok(()),
        None => Err(FetchError::ToolMissing { tool, package, purpose }),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<Output, FetchError> {
    debug!(command = ?cmd, "running");
    cmd.output().map_err(|source| FetchError::Io { action: "run", path: PathBuf::from(what), source })
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from `apt-cache show --no-all-versions` (bookworm, sid).
    const META_BOOKWORM: &str = "\
Package: linux-headers-cloud-amd64
Source: linux-signed-amd64 (6.1.176+1)
Version: 6.1.176-1
Architecture: amd64
Depends: linux-headers-6.1.0-50-cloud-amd64 (= 6.1.176-1)
Description: Header files for Linux cloud-amd64 configuration (meta-package)
 This package depends on the architecture-specific header files for the
 latest Linux kernel cloud-amd64 configuration.
";
    const META_SID: &str = "\
Package: linux-headers-cloud-amd64
Version: 7.2.13-1
Architecture: amd64
Depends: linux-base-cloud-amd64 (= 7.2.13-1), linux-headers-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)
";
    const HEADERS_BOOKWORM: &str = "\
Package: linux-headers-6.1.0-50-cloud-amd64
Source: linux
Version: 6.1.176-1
Architecture: amd64
Depends: linux-headers-6.1.0-50-common (= 6.1.176-1), linux-kbuild-6.1 (>= 6.1.176-1), linux-compiler-gcc-12-x86
SHA256: 0123abcd
";
    const HEADERS_SID: &str = "\
Package: linux-headers-7.2.13+deb14-cloud-amd64
Source: linux
Version: 7.2.13-1
Installed-Size: 8413
Architecture: amd64
Depends: gcc-16-for-host, linux-base (>= 4.12~), linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-headers-7.2.13+deb14-common (= 7.2.13-1), linux-kbuild-7.2.13+deb14
";
    const HEADERS_TRIXIE: &str = "\
Package: linux-headers-6.12.117+deb13-cloud-amd64
Version: 6.12.117-1
Depends: linux-base (>= 4.12~), linux-headers-6.12.117+deb13-common (= 6.12.117-1), linux-image-6.12.117+deb13-cloud-amd64 (= 6.12.117-1) | linux-image-6.12.117+deb13-cloud-amd64-unsigned (= 6.12.117-1), linux-kbuild-6.12.117+deb13, gcc-14
";

    #[test]
    fn stanza_fields_and_continuations() {
        let s = parse_stanza(META_BOOKWORM);
        assert_eq!(s.get("package"), Some("linux-headers-cloud-amd64"));
        assert_eq!(s.get("VERSION"), Some("6.1.176-1"));
        let d = s.get("Description").unwrap();
        assert!(d.starts_with("Header files") && d.ends_with("configuration."), "{d}");
        assert_eq!(parse_stanza("").get("Package"), None);
    }

    #[test]
    fn relations_strip_versions_and_keep_alternatives() {
        let r = parse_relations("a (>= 1), b:any | c [amd64] (= 2),, d");
        assert_eq!(r, vec![vec!["a"], vec!["b", "c"], vec!["d"]]);
    }

    #[test]
    fn metapackage_resolves_abi_package() {
        let deps = relations(&parse_stanza(META_BOOKWORM), "Depends");
        assert_eq!(abi_headers_package(&deps, "cloud-amd64").as_deref(), Some("linux-headers-6.1.0-50-cloud-amd64"));
        // sid's metapackage also depends on linux-base-<flavour>.
        let deps = relations(&parse_stanza(META_SID), "Depends");
        assert_eq!(
            abi_headers_package(&deps, "cloud-amd64").as_deref(),
            Some("linux-headers-7.2.13+deb14-cloud-amd64")
        );
        assert_eq!(abi_headers_package(&deps, "rt-amd64"), None);
    }

    #[test]
    fn headers_give_common_and_kbuild() {
        let cases = [
            (HEADERS_BOOKWORM, "linux-headers-6.1.0-50-common", "linux-kbuild-6.1"),
            (HEADERS_SID, "linux-headers-7.2.13+deb14-common", "linux-kbuild-7.2.13+deb14"),
            (HEADERS_TRIXIE, "linux-headers-6.12.117+deb13-common", "linux-kbuild-6.12.117+deb13"),
        ];
        for (text, common, kbuild) in cases {
            let deps = relations(&parse_stanza(text), "Depends");
            let (c, k) = common_and_kbuild(&deps);
            assert_eq!(c.as_deref(), Some(common));
            assert_eq!(k.as_deref(), Some(kbuild));
        }
        let rt = parse_relations("linux-headers-6.1.0-50-common-rt (= 1), linux-kbuild-6.1");
        assert_eq!(common_and_kbuild(&rt).0.as_deref(), Some("linux-headers-6.1.0-50-common-rt"));
    }

    #[test]
    fn image_package_names() {
        assert_eq!(
            image_packages(Packaging::Classic, "6.1.0-50-cloud-amd64"),
            ["linux-image-6.1.0-50-cloud-amd64-unsigned"]
        );
        assert_eq!(
            image_packages(Packaging::Split, "7.2.13+deb14-cloud-amd64"),
            [
                "linux-binary-unsigned-7.2.13+deb14-cloud-amd64",
                "linux-base-7.2.13+deb14-cloud-amd64",
                "linux-modules-7.2.13+deb14-cloud-amd64"
            ]
        );
    }

    #[test]
    fn deb_package_from_stanza_and_file_name() {
        let p = DebPackage::from_stanza(&parse_stanza(HEADERS_BOOKWORM), "x").unwrap();
        assert_eq!(p.file_name(), "linux-headers-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb");
        let epoch = DebPackage { version: "1:2.0-1".into(), ..p };
        assert!(epoch.file_name().contains("_1%3a2.0-1_"));
        let err = DebPackage::from_stanza(&parse_stanza(META_SID), "apt-cache show").unwrap_err();
        assert!(err.to_string().contains("`SHA256`"), "{err}");
    }

    #[test]
    fn classify_update_messages() {
        use UpdateOutcome::*;
        let cases = [
            ("", true, Ok),
            (
                "Err:1 http://mirror.example/debian bookworm InRelease\n  Could not resolve 'mirror.example'\nW: Failed to fetch http://mirror.example/debian/dists/bookworm/InRelease  Could not resolve 'mirror.example'\nW: Some index files failed to download. They have been ignored, or old ones used instead.",
                true,
                Unreachable,
            ),
            (
                "W: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)",
                true,
                Unreachable,
            ),
            (
                "Err:2 http://mirror.example/debian nosuchsuite Release\n  404  Not Found [IP: 192.0.2.1 80]\nE: The repository 'http://mirror.example/debian nosuchsuite Release' does not have a Release file.",
                false,
                SuiteMissing,
            ),
            (
                "E: Failed to fetch http://mirror.example/nothere/dists/bookworm/InRelease  400  Bad Request [IP: 192.0.2.1 80]\nE: The repository 'http://mirror.example/nothere bookworm InRelease' is not signed.",
                false,
                SuiteMissing,
            ),
            (
                "W: GPG error: http://mirror.example/debian sid InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 6ED0E7B82643E131\nE: The repository 'http://mirror.example/debian sid InRelease' is not signed.",
                false,
                Signature,
            ),
            (
                "E: Release file for http://mirror.example/debian/dists/sid/InRelease is expired (invalid since 24d 2h). Updates for this repository will not be applied.",
                false,
                Expired,
            ),
            ("E: something odd", true, Other),
            ("", false, Other),
        ];
        for (text, ok, want) in cases {
            assert_eq!(classify_update(ok, text), want, "{text}");
        }
    }

    #[test]
    fn not_found_messages() {
        assert!(is_not_found("N: Unable to locate package foo\nE: No packages found"));
        assert!(is_not_found("N: Can't select versions from package 'x' as it is purely virtual"));
        assert!(!is_not_found("E: Could not open file"));
    }

    #[test]
    fn apt_options_are_private() {
        let opts = apt_options(Path::new("/c/apt/sid"), "amd64", false);
        let joined = opts.join(" ");
        for want in [
            "-o Dir::State::status=/dev/null",
            "-o Dir::Etc::sourceparts=-",
            "-o Dir::State::Lists=/c/apt/sid/lists",
            "-o Dir::Etc::sourcelist=/c/apt/sid/etc/sources.list",
            "-o Dir::Etc::trustedparts=/c/apt/sid/etc/trusted.gpg.d",
            "-o Dir::Cache=/c/apt/sid/cache",
        ] {
            assert!(joined.contains(want), "missing {want} in {joined}");
        }
        assert!(!joined.contains("Sandbox"));
        assert!(apt_options(Path::new("/c"), "amd64", true).join(" ").contains("APT::Sandbox::User=root"));
        // Every value follows its own -o.
        assert!(opts.chunks(2).all(|c| c[0] == "-o"));
    }

    #[test]
    fn sources_line_checks_signatures() {
        assert_eq!(
            sources_line("http://mirror.example/debian", "sid", "amd64", DEBIAN_KEYRING),
            "deb [arch=amd64 target=Packages signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian sid main\n"
        );
    }

    #[test]
    fn uri_from_deb822_skips_security_and_third_party() {
        let text = "\
Types: deb
URIs: https://repo.example/node_20.x
Suites: nodistro
Components: main

Types: deb
# a comment
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm

Types: deb deb-src
URIs: http://mirror.example/debian http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";
        assert_eq!(debian_uri_from_deb822(text).as_deref(), Some("http://mirror.example/debian"));
        assert_eq!(debian_uri_from_deb822("Types: deb\nURIs: http://x.example/ubuntu\nSuites: jammy\n"), None);
    }

    #[test]
    fn uri_from_one_line_sources() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb https://repo.example/apt cloud-sdk-bookworm main
deb http://security.example/debian-security bookworm-security main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian/ trixie main contrib
";
        assert_eq!(
            debian_uri_from_one_line(text).map(|u| normalize_uri(&u)).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(debian_uri_from_one_line("deb http://old.example/debian buster/updates main"), None);
    }

    #[test]
    fn uri_checks() {
        assert!(is_plausible_uri("http://mirror.example/debian"));
        assert!(is_plausible_uri("file:/srv/mirror/debian"));
        assert!(!is_plausible_uri("mirror.example"));
        assert!(!is_plausible_uri("http://a b"));
        assert!(!is_plausible_uri(""));
        assert_eq!(normalize_uri(" http://m.example/debian/ "), "http://m.example/debian");
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail_lines("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(tail_lines("a\nb\nc", 2), "[... 1 earlier lines ...]\nb\nc");
    }

    #[test]
    fn diagnostics_keep_err_blocks_and_stderr() {
        use std::os::unix::process::ExitStatusExt;
        let out = Output {
            status: std::process::ExitStatus::from_raw(0),
            stdout: b"Get:1 x\nErr:1 http://m.example/debian sid InRelease\n  Could not resolve 'm.example'\nReading package lists...\n".to_vec(),
            stderr: b"W: Failed to fetch\n".to_vec(),
        };
        assert_eq!(
            apt_diagnostics(&out),
            "Err:1 http://m.example/debian sid InRelease\n  Could not resolve 'm.example'\nW: Failed to fetch"
        );
    }

    fn entry(packaging: Packaging) -> KernelEntry {
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
        let tree = stamp.tree(kdir);
        assert_eq!(tree.vmlinuz, root.join(format!("usr/lib/modules/{r}/vmlinuz.unsigned")));
        assert_eq!(tree.config, root.join(format!("usr/lib/modules/{r}/config")));
        assert_eq!(tree.modules_dir, Some(root.join(format!("usr/lib/modules/{r}"))));
        assert_eq!(tree.headers_common, root.join("usr/src/linux-headers-7.2.13+deb14-common"));
        assert_eq!((tree.suite.as_str(), tree.arch.as_str()), ("sid", "amd64"));
        assert_eq!(tree.archive_uri, "http://m.example/debian");
        assert_eq!(tree.cache_dir, kdir.parent().unwrap().parent().unwrap());
        // No modules.dep until depmod ran.
        assert_eq!(tree.modules_dep(), None);
        let mdir = root.join(format!("usr/lib/modules/{r}"));
        fs::write(mdir.join("modules.dep"), "kernel/fs/x.ko.xz:\n").unwrap();
        assert_eq!(tree.modules_dep(), Some(mdir.join("modules.dep")));

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
    fn offline_without_cache_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = FetchOptions { cache_dir: tmp.path().to_owned(), archive_uri: None, refresh: false, offline: true };
        let err = fetch(&entry(Packaging::Classic), &opts).unwrap_err();
        assert!(matches!(err, FetchError::NotCached { .. }), "{err}");
        assert!(err.to_string().contains("without --offline"));
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
    fn sha256_check() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"abc").unwrap();
        assert!(file_has_sha256(&f, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert!(!file_has_sha256(&f, "00"));
        assert!(!file_has_sha256(&tmp.path().join("missing"), ""));
    }
}
