//! Build chroots: a `debootstrap --variant=minbase` of a kernel's own Debian
//! suite with the compiler that built the kernel, for kernels whose compiler
//! (or whose kbuild tools' glibc) the host lacks.
//!
//! A chroot is created once and cached under `<cache_dir>/chroots/`:
//!
//! ```text
//! chroots/<suite>-gcc-<N>/          the tree (with .rig-chroot.json, written last,
//!                                   and .rig-used, which the user may write)
//! chroots/<suite>-gcc-<N>.lock      shared while used, exclusive while created
//! chroots/<suite>-gcc-<N>.log       debootstrap's output of the last creation
//! chroots/.<suite>-gcc-<N>.tmp/     a creation in progress (redone if left over)
//! ```
//!
//! Creation is atomic: debootstrap fills the temporary directory, which is
//! renamed into place only once it is complete, so an interrupted debootstrap
//! is simply redone. debootstrap runs in a private mount namespace, so the
//! `/proc` it mounts in the target can never leak onto the host.
//!
//! Commands run in the chroot through `unshare --mount --pid --fork` (a
//! private mount and pid namespace): the build directory and the kernel tree
//! are bind-mounted at the same paths inside (so `O=` and `M=` paths work),
//! `/proc` is mounted, then `chroot --userspec` drops to the calling user.
//! Nothing is mounted on the host and the host's packages are never touched.
//! All of this needs root; when not root, rig uses `sudo -n`.

// Errors carry the tail of a build or debootstrap log: large, but only on
// the cold path, once per run.
#![allow(clippy::result_large_err)]

mod create;
mod enter;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use nix::fcntl::Flock;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::debug;

use crate::kernel::fetch::DEBIAN_KEYRING;
use crate::support::{find_program, io_err, lock_file, mark_used, relock, IoError, LockError, LockMode};
use create::create;
pub use create::{debootstrap, remove_chroot, remove_leftover, tree_bytes};
pub use enter::command_as_root;

/// File inside a complete chroot describing it; its presence means "complete".
pub const STAMP_FILE: &str = ".rig-chroot.json";
const STAMP_FORMAT: u32 = 1;
const ERROR_TAIL_LINES: usize = 25;

/// Packages every build chroot gets besides the compiler: make, the C
/// library headers, libelf (objtool), pahole (BTF of modules), kmod (depmod,
/// modinfo), xz (compressed modules) and perl (kernel-doc, run by `W=1`
/// builds from 6.12 on; minbase has only perl-base).
pub const BASE_PACKAGES: &[&str] = &["make", "libc6-dev", "libelf-dev", "dwarves", "kmod", "xz-utils", "perl"];

/// `PATH` inside the chroot.
const CHROOT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Logged when another rig holds the chroot's lock.
const WAITING: &str = "another rig is using or creating this chroot; waiting for it";

/// Errors from creating or entering a build chroot.
#[derive(Debug, Error)]
pub enum ChrootError {
    /// A host tool is missing.
    #[error("`{tool}` is not on PATH: install the `{package}` package (rig uses it to {purpose})")]
    ToolMissing {
        /// Program name.
        tool: &'static str,
        /// Debian package providing it.
        package: &'static str,
        /// What rig needs it for.
        purpose: &'static str,
    },
    /// Not root and no password-less sudo.
    #[error("building modules for `{suite}` needs a chroot of it, and creating or entering one needs root: run rig as root, or allow password-less sudo ({detail})")]
    NeedsRoot {
        /// The suite.
        suite: String,
        /// Why sudo did not work.
        detail: String,
    },
    /// The suite lacks a package the chroot needs.
    #[error("suite `{suite}` at {uri} has no package(s) {packages}: the kernel's compiler is not in its own suite any more (the mirror may be mid-sync, or the kernel is older than the suite's toolchain); full log: {}", log.display())]
    PackageMissing {
        /// The suite.
        suite: String,
        /// The archive URI.
        uri: String,
        /// The missing packages.
        packages: String,
        /// debootstrap's log.
        log: PathBuf,
    },
    /// debootstrap failed.
    #[error("debootstrap of `{suite}` from {uri} failed ({status}); {hint} (full log: {}):\n{tail}", log.display())]
    Debootstrap {
        /// The suite.
        suite: String,
        /// The archive URI.
        uri: String,
        /// Exit status.
        status: String,
        /// How to fix it.
        hint: String,
        /// debootstrap's log.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// debootstrap succeeded but something the build needs is missing.
    #[error("the chroot {} lacks {missing} after debootstrap: delete it and try again", root.display())]
    Incomplete {
        /// The chroot.
        root: PathBuf,
        /// What is missing.
        missing: String,
    },
    /// A leftover temporary chroot still has something mounted in it.
    #[error("{} has mounts under it ({mount}): unmount them (`umount -R {}`) before rig removes it", path.display(), path.display())]
    Mounted {
        /// The directory.
        path: PathBuf,
        /// The first mount point found.
        mount: String,
    },
    /// Taking a lock in the cache failed.
    #[error(transparent)]
    Lock(LockError),
    /// Ctrl-C or SIGTERM: debootstrap or a wait for the chroot was stopped.
    #[error("interrupted; an unfinished chroot is created again next time")]
    Interrupted,
    /// A filesystem or process operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl From<LockError> for ChrootError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Interrupted { .. } => ChrootError::Interrupted,
            e => ChrootError::Lock(e),
        }
    }
}

/// Which chroot: a suite, an architecture and the compiler the kernel needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChrootSpec {
    /// Debian suite, e.g. `trixie`.
    pub suite: String,
    /// Debian architecture, e.g. `amd64`.
    pub arch: String,
    /// The compiler package, e.g. `gcc-14`.
    pub compiler: String,
    /// The Debian archive debootstrap downloads from.
    pub archive_uri: String,
}

impl ChrootSpec {
    /// The chroot for a gcc-`major`-built kernel of `suite`.
    pub fn new(suite: &str, arch: &str, gcc_major: u32, archive_uri: &str) -> ChrootSpec {
        ChrootSpec {
            suite: suite.to_owned(),
            arch: arch.to_owned(),
            compiler: format!("gcc-{gcc_major}"),
            archive_uri: archive_uri.trim_end_matches('/').to_owned(),
        }
    }

    /// Directory name under `chroots/`: `trixie-gcc-14` (with the
    /// architecture for anything but amd64).
    pub fn dir_name(&self) -> String {
        if self.arch == "amd64" {
            format!("{}-{}", self.suite, self.compiler)
        } else {
            format!("{}-{}-{}", self.suite, self.arch, self.compiler)
        }
    }

    /// Every package passed to `debootstrap --include`.
    pub fn packages(&self) -> Vec<String> {
        let mut p: Vec<String> = BASE_PACKAGES.iter().map(|s| s.to_string()).collect();
        p.insert(1, self.compiler.clone());
        p
    }

    /// The debootstrap arguments that create this chroot in `target`.
    pub fn debootstrap_args(&self, target: &Path) -> Vec<String> {
        debootstrap_args(&self.suite, &self.arch, &self.packages(), target, &self.archive_uri)
    }
}

/// The arguments of a minbase debootstrap of `suite` with `include`, from
/// `archive_uri`, checked against Debian's keyring: every tree the rig
/// makes (build chroots, the guests' Debian roots) comes from here.
pub fn debootstrap_args(suite: &str, arch: &str, include: &[String], target: &Path, archive_uri: &str) -> Vec<String> {
    vec![
        "--variant=minbase".into(),
        format!("--arch={arch}"),
        format!("--keyring={DEBIAN_KEYRING}"),
        "--components=main".into(),
        format!("--include={}", include.join(",")),
        suite.to_owned(),
        target.display().to_string(),
        archive_uri.to_owned(),
    ]
}

/// What `.rig-chroot.json` records about a complete chroot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChrootStamp {
    format: u32,
    /// The spec it was made from (the archive URI is informational).
    pub spec: ChrootSpec,
    /// The packages installed with `--include`.
    pub packages: Vec<String>,
    /// When it was created (seconds since the epoch).
    pub created_unix: u64,
    /// How long debootstrap and the clean-up took.
    pub create_secs: f64,
    /// Size on disk after clean-up, in bytes.
    pub bytes: u64,
}

impl ChrootStamp {
    pub(super) fn matches(&self, spec: &ChrootSpec) -> bool {
        self.format == STAMP_FORMAT
            && self.spec.suite == spec.suite
            && self.spec.arch == spec.arch
            && self.spec.compiler == spec.compiler
            && self.packages == spec.packages()
    }
}

/// A directory bind-mounted into the chroot at the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path (also the path inside).
    pub path: PathBuf,
    /// Mounted read-write (else read-only).
    pub writable: bool,
}

impl Bind {
    /// A read-write bind.
    pub fn rw(path: &Path) -> Bind {
        Bind { path: path.to_owned(), writable: true }
    }

    /// A read-only bind.
    pub fn ro(path: &Path) -> Bind {
        Bind { path: path.to_owned(), writable: false }
    }
}

/// A complete chroot, held in use (a shared lock) until dropped.
#[derive(Debug)]
pub struct Chroot {
    /// The chroot's root directory.
    pub root: PathBuf,
    /// Its stamp.
    pub stamp: ChrootStamp,
    /// True when this call created it.
    pub created: bool,
    _lock: Flock<File>,
}

/// The script run by `unshare` as root in the new namespaces:
/// `sh -c SCRIPT sh ROOT USERSPEC (rw|ro DIR)... -- PROGRAM ARGS...`.
/// Mount points are created inside the chroot; binds and /proc vanish with
/// Effective user and group id.
pub(super) fn ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid have no preconditions and cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

pub(super) fn is_root() -> bool {
    ids().0 == 0
}

/// `program` as root: directly when root, else through `sudo -n` (the
/// Debian root of `rootfs = "debian"` is made this way too).
pub fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "--", program]);
        c
    }
}

/// Checks that the tools to create and enter chroots are here.
pub fn preflight(suite: &str) -> Result<(), ChrootError> {
    let tools: [(&'static str, &'static str, &'static str); 3] = [
        ("debootstrap", "debootstrap", "create a build chroot of the kernel's suite"),
        ("unshare", "util-linux", "enter the chroot in a private mount namespace"),
        ("chroot", "coreutils", "enter the build chroot"),
    ];
    for (tool, package, purpose) in tools {
        let found = find_program(tool).is_some() || Path::new("/usr/sbin").join(tool).is_file();
        if !found {
            return Err(ChrootError::ToolMissing { tool, package, purpose });
        }
    }
    if !Path::new(DEBIAN_KEYRING).is_file() {
        return Err(ChrootError::ToolMissing {
            tool: "debian-archive-keyring.gpg",
            package: "debian-archive-keyring",
            purpose: "check the archive's signatures",
        });
    }
    if !is_root() {
        let ok = find_program("sudo").is_some()
            && Command::new("sudo")
                .args(["-n", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            return Err(ChrootError::NeedsRoot { suite: suite.to_owned(), detail: "`sudo -n true` failed".into() });
        }
    }
    Ok(())
}

/// Returns the chroot for `spec` under `cache_dir/chroots`, creating it
/// first if it is missing or incomplete. Concurrent callers wait for one
/// creation; the returned [`Chroot`] keeps it from being replaced while used.
/// `interrupt` (Ctrl-C) stops debootstrap and the waits.
pub fn ensure(spec: &ChrootSpec, cache_dir: &Path, interrupt: &AtomicBool) -> Result<Chroot, ChrootError> {
    let dir = cache_dir.join("chroots");
    fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
    let name = spec.dir_name();
    let root = dir.join(&name);
    let lock_path = dir.join(format!("{name}.lock"));
    let lock = lock_file(&lock_path, LockMode::Shared, WAITING, interrupt)?;
    let mut created = false;
    loop {
        if let Some(stamp) = load_stamp(&root, spec) {
            debug!(chroot = %root.display(), "using cached chroot");
            mark_used(&root);
            return Ok(Chroot { root, stamp, created, _lock: lock });
        }
        relock(&lock, &lock_path, LockMode::Exclusive, WAITING, interrupt)?;
        if load_stamp(&root, spec).is_none() {
            create(spec, &dir, &name, interrupt)?;
            created = true;
        }
        relock(&lock, &lock_path, LockMode::Shared, WAITING, interrupt)?;
    }
}

/// Reads the stamp of a complete chroot matching `spec`.
pub fn load_stamp(root: &Path, spec: &ChrootSpec) -> Option<ChrootStamp> {
    let text = fs::read_to_string(root.join(STAMP_FILE)).ok()?;
    let stamp: ChrootStamp = serde_json::from_str(&text).ok()?;
    stamp.matches(spec).then_some(stamp)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use create::{placeholder_stamp, write_stamp};

    pub(in crate::build::chroot) fn spec() -> ChrootSpec {
        ChrootSpec::new("trixie", "amd64", 14, "http://mirror.example/debian/")
    }

    #[test]
    fn spec_names_and_packages() {
        let s = spec();
        assert_eq!(s.dir_name(), "trixie-gcc-14");
        assert_eq!(s.archive_uri, "http://mirror.example/debian");
        assert_eq!(s.packages(), ["make", "gcc-14", "libc6-dev", "libelf-dev", "dwarves", "kmod", "xz-utils", "perl"]);
        let arm = ChrootSpec { arch: "arm64".into(), ..s.clone() };
        assert_eq!(arm.dir_name(), "trixie-arm64-gcc-14");
        let args = s.debootstrap_args(Path::new("/c/.trixie-gcc-14.tmp"));
        assert_eq!(args[0], "--variant=minbase");
        assert!(args.contains(&"--include=make,gcc-14,libc6-dev,libelf-dev,dwarves,kmod,xz-utils,perl".to_string()));
        assert!(args.contains(&format!("--keyring={DEBIAN_KEYRING}")));
        assert_eq!(&args[args.len() - 3..], ["trixie", "/c/.trixie-gcc-14.tmp", "http://mirror.example/debian"]);
    }

    #[test]
    fn stamp_roundtrip_and_matching() {
        let tmp = tempfile::tempdir().unwrap();
        let s = spec();
        assert!(load_stamp(tmp.path(), &s).is_none());
        let stamp = ChrootStamp { created_unix: 1, create_secs: 30.5, bytes: 42, ..placeholder_stamp(&s) };
        write_stamp(tmp.path(), &stamp).unwrap();
        assert_eq!(load_stamp(tmp.path(), &s), Some(stamp));
        // Another archive is the same chroot; another compiler is not.
        let other_uri = ChrootSpec { archive_uri: "http://other.example/debian".into(), ..s.clone() };
        assert!(load_stamp(tmp.path(), &other_uri).is_some());
        assert!(load_stamp(tmp.path(), &ChrootSpec::new("trixie", "amd64", 15, "u:")).is_none());
        fs::write(tmp.path().join(STAMP_FILE), "{").unwrap();
        assert!(load_stamp(tmp.path(), &s).is_none());
    }
}
