//! Build chroots: a `debootstrap --variant=minbase` of a kernel's own Debian
//! suite with the compiler that built the kernel, for kernels whose compiler
//! (or whose kbuild tools' glibc) the host lacks.
//!
//! A chroot is created once and cached under `<cache_dir>/chroots/`:
//!
//! ```text
//! chroots/<suite>-gcc-<N>/          the tree (with .rig-chroot.json, written last)
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

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::kernel::fetch::{find_program, tail_lines, DEBIAN_KEYRING};

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
    /// Taking the chroot lock failed.
    #[error("cannot lock {}: {source}; keep the cache on a local filesystem that supports flock (set RIG_CACHE_DIR)", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// A filesystem or process operation failed.
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
        vec![
            "--variant=minbase".into(),
            format!("--arch={}", self.arch),
            format!("--keyring={DEBIAN_KEYRING}"),
            "--components=main".into(),
            format!("--include={}", self.packages().join(",")),
            self.suite.clone(),
            target.display().to_string(),
            self.archive_uri.clone(),
        ]
    }
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
    fn matches(&self, spec: &ChrootSpec) -> bool {
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
/// the namespace.
const ENTER_SCRIPT: &str = r#"set -eu
root=$1 userspec=$2
shift 2
while [ "$1" != -- ]; do
    mode=$1 dir=$2
    shift 2
    mkdir -p "$root$dir"
    mount --bind "$dir" "$root$dir"
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$root$dir"; fi
done
shift
mount -t proc proc "$root/proc"
exec chroot ${userspec:+--userspec="$userspec"} "$root" "$@"
"#;

impl Chroot {
    /// A command running `program args` inside the chroot with `binds`
    /// mounted, as the calling user, with a clean environment
    /// (`PATH`, `HOME=/tmp`, `LC_ALL=C`).
    pub fn command(&self, binds: &[Bind], program: &str, args: &[String]) -> Command {
        let (mut cmd, userspec) = enter_command();
        cmd.args(["--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(ENTER_SCRIPT)
            .arg("sh")
            .arg(&self.root)
            .arg(userspec);
        for b in binds {
            cmd.arg(if b.writable { "rw" } else { "ro" }).arg(&b.path);
        }
        cmd.arg("--")
            .args(["/usr/bin/env", "-i", &format!("PATH={CHROOT_PATH}"), "HOME=/tmp", "LC_ALL=C"])
            .arg(program)
            .args(args);
        cmd
    }

    /// True if `/usr/bin/<program>` (or `/bin`, `/usr/sbin`) exists in the chroot.
    pub fn has_program(&self, program: &str) -> bool {
        has_program(&self.root, program)
    }
}

fn has_program(root: &Path, program: &str) -> bool {
    !program.contains('/') && ["usr/bin", "bin", "usr/sbin"].iter().any(|d| root.join(d).join(program).is_file())
}

/// `unshare` (through `sudo -n` when not root) and the `--userspec` that
/// gives the calling user back inside (empty when root).
fn enter_command() -> (Command, String) {
    let (uid, gid) = ids();
    if uid == 0 {
        (Command::new("unshare"), String::new())
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "--", "unshare"]);
        (c, format!("{uid}:{gid}"))
    }
}

/// Effective user and group id.
fn ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid have no preconditions and cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

fn is_root() -> bool {
    ids().0 == 0
}

/// `program` as root: directly when root, else through `sudo -n`.
fn privileged(program: &str) -> Command {
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
pub fn ensure(spec: &ChrootSpec, cache_dir: &Path) -> Result<Chroot, ChrootError> {
    let dir = cache_dir.join("chroots");
    fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
    let name = spec.dir_name();
    let root = dir.join(&name);
    let lock_path = dir.join(format!("{name}.lock"));
    let lock = lock(&lock_path, FlockArg::LockShared)?;
    let mut created = false;
    loop {
        if let Some(stamp) = load_stamp(&root, spec) {
            debug!(chroot = %root.display(), "using cached chroot");
            return Ok(Chroot { root, stamp, created, _lock: lock });
        }
        relock(&lock, &lock_path, FlockArg::LockExclusive)?;
        if load_stamp(&root, spec).is_none() {
            create(spec, &dir, &name)?;
            created = true;
        }
        relock(&lock, &lock_path, FlockArg::LockShared)?;
    }
}

/// Reads the stamp of a complete chroot matching `spec`.
pub fn load_stamp(root: &Path, spec: &ChrootSpec) -> Option<ChrootStamp> {
    let text = fs::read_to_string(root.join(STAMP_FILE)).ok()?;
    let stamp: ChrootStamp = serde_json::from_str(&text).ok()?;
    stamp.matches(spec).then_some(stamp)
}

/// debootstraps into `.<name>.tmp`, cleans it, stamps it and renames it to
/// `<name>` (replacing a stale one). Called with the exclusive lock held.
fn create(spec: &ChrootSpec, dir: &Path, name: &str) -> Result<(), ChrootError> {
    preflight(&spec.suite)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let log_path = dir.join(format!("{name}.log"));
    remove_tree(&tmp)?;
    info!(suite = %spec.suite, compiler = %spec.compiler, uri = %spec.archive_uri, "creating the build chroot (debootstrap, once)");
    let started = Instant::now();
    let log = File::create(&log_path).map_err(io_err("create", &log_path))?;
    let log2 = log.try_clone().map_err(io_err("open", &log_path))?;
    // In a private mount namespace: the /proc debootstrap mounts in the
    // target disappears with it, even if debootstrap is killed.
    let mut cmd = privileged("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "debootstrap"])
        .args(spec.debootstrap_args(&tmp))
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    debug!(command = ?cmd, "running");
    let status = cmd.status().map_err(io_err("run debootstrap for", &tmp))?;
    if !status.success() {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let _ = remove_tree(&tmp);
        return Err(debootstrap_error(spec, &status.to_string(), &text, log_path));
    }
    // The .debs and package lists are not needed to build (about a third).
    for sub in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_dir(&tmp.join(sub))?;
    }
    for program in [spec.compiler.as_str(), "make"] {
        if !has_program(&tmp, program) {
            let _ = remove_tree(&tmp);
            return Err(ChrootError::Incomplete { root: target, missing: format!("/usr/bin/{program}") });
        }
    }
    let bytes = tree_bytes(&tmp);
    let create_secs = started.elapsed().as_secs_f64();
    let stamp = ChrootStamp {
        format: STAMP_FORMAT,
        spec: spec.clone(),
        packages: spec.packages(),
        created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        create_secs,
        bytes,
    };
    write_stamp(&tmp, &stamp)?;
    if target.exists() {
        let old = dir.join(format!(".{name}.old"));
        remove_tree(&old)?;
        rename(&target, &old)?;
        remove_tree(&old)?;
    }
    rename(&tmp, &target)?;
    info!(
        chroot = %target.display(),
        secs = format!("{create_secs:.1}"),
        mib = bytes / (1 << 20),
        "build chroot ready"
    );
    Ok(())
}

#[cfg(test)]
fn placeholder_stamp(spec: &ChrootSpec) -> ChrootStamp {
    ChrootStamp {
        format: STAMP_FORMAT,
        spec: spec.clone(),
        packages: spec.packages(),
        created_unix: 0,
        create_secs: 0.0,
        bytes: 0,
    }
}

/// Turns debootstrap's log into an error that says what to do.
fn debootstrap_error(spec: &ChrootSpec, status: &str, log: &str, log_path: PathBuf) -> ChrootError {
    // debootstrap: "E: Couldn't find these debs: gcc-16"
    if let Some(missing) = log.lines().find_map(|l| l.split("Couldn't find these debs:").nth(1)) {
        return ChrootError::PackageMissing {
            suite: spec.suite.clone(),
            uri: spec.archive_uri.clone(),
            packages: missing.trim().to_owned(),
            log: log_path,
        };
    }
    let hint = if log.contains("Release signed by unknown key") || log.contains("Invalid Release signature") {
        "the archive's signature did not verify: upgrade `debian-archive-keyring`".to_owned()
    } else if log.contains("Failed getting release file") || log.contains("Couldn't download") {
        "the archive could not be reached or lacks the suite: check the network, or pass --archive / RIG_DEBIAN_ARCHIVE"
            .to_owned()
    } else if log.contains("No such script") {
        format!("this debootstrap does not know `{}`: install a newer debootstrap (bookworm-backports)", spec.suite)
    } else {
        "see debootstrap's messages below".to_owned()
    };
    ChrootError::Debootstrap {
        suite: spec.suite.clone(),
        uri: spec.archive_uri.clone(),
        status: status.to_owned(),
        hint,
        log: log_path,
        tail: tail_lines(log, ERROR_TAIL_LINES),
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ChrootError + 'a {
    move |source| ChrootError::Io { action, path: path.to_owned(), source }
}

fn lock(path: &Path, arg: FlockArg) -> Result<Flock<File>, ChrootError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open lock file", path))?;
    Flock::lock(file, arg).map_err(|(_, source)| ChrootError::Lock { path: path.to_owned(), source })
}

fn relock(lock: &Flock<File>, path: &Path, arg: FlockArg) -> Result<(), ChrootError> {
    if arg == FlockArg::LockExclusive {
        if lock.relock(FlockArg::LockExclusiveNonblock).is_ok() {
            return Ok(());
        }
        info!(lock = %path.display(), "another rig is using or creating this chroot; waiting for it");
    }
    lock.relock(arg).map_err(|source| ChrootError::Lock { path: path.to_owned(), source })
}

fn rename(from: &Path, to: &Path) -> Result<(), ChrootError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            run_privileged(privileged("mv").arg("-T").arg(from).arg(to), from)
        }
        Err(e) => Err(io_err("rename", from)(e)),
    }
}

fn write_stamp(root: &Path, stamp: &ChrootStamp) -> Result<(), ChrootError> {
    let path = root.join(STAMP_FILE);
    let json = serde_json::to_string_pretty(stamp).map_err(|e| io_err("serialise", &path)(io::Error::other(e)))?;
    match fs::write(&path, json.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            // The tree is root's: write through `sudo tee`.
            let mut child = privileged("tee")
                .arg(&path)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .map_err(io_err("write", &path))?;
            if let Some(mut stdin) = child.stdin.take() {
                io::Write::write_all(&mut stdin, json.as_bytes()).map_err(io_err("write", &path))?;
            }
            let status = child.wait().map_err(io_err("write", &path))?;
            if status.success() {
                Ok(())
            } else {
                Err(io_err("write", &path)(io::Error::other(format!("sudo tee: {status}"))))
            }
        }
        Err(e) => Err(io_err("write", &path)(e)),
    }
}

fn run_privileged(cmd: &mut Command, path: &Path) -> Result<(), ChrootError> {
    debug!(command = ?cmd, "running");
    let out = cmd.stdin(Stdio::null()).output().map_err(io_err("run a command on", path))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        Err(io_err("change", path)(io::Error::other(msg)))
    }
}

/// Mount points at or below `path` (from /proc/self/mountinfo).
fn mounts_under(path: &Path) -> Vec<String> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return vec![];
    };
    mounts_under_in(&info, path)
}

fn mounts_under_in(mountinfo: &str, path: &Path) -> Vec<String> {
    let p = path.to_string_lossy();
    let prefix = format!("{}/", p.trim_end_matches('/'));
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        // Spaces in mount points are written as \040.
        .map(|m| m.replace("\\040", " "))
        .filter(|m| *m == p || m.starts_with(&prefix))
        .collect()
}

/// Removes a (possibly root-owned) tree without crossing filesystems; refuses
/// if anything is mounted below it.
fn remove_tree(path: &Path) -> Result<(), ChrootError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if let Some(mount) = mounts_under(path).into_iter().next() {
        return Err(ChrootError::Mounted { path: path.to_owned(), mount });
    }
    debug!(path = %path.display(), "removing");
    run_privileged(privileged("rm").args(["-rf", "--one-file-system", "--"]).arg(path), path)
}

/// Empties a directory, keeping it.
fn clear_dir(path: &Path) -> Result<(), ChrootError> {
    let Ok(entries) = fs::read_dir(path) else {
        return Ok(());
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let res = if is_dir { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        if let Err(err) = res {
            if err.kind() == io::ErrorKind::PermissionDenied {
                remove_tree(&p)?;
            } else {
                warn!(path = %p.display(), error = %err, "cannot remove");
            }
        }
    }
    Ok(())
}

/// Disk usage of a tree in bytes (allocated blocks, hard links once).
pub fn tree_bytes(root: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.filter_map(Result::ok) {
            let Ok(md) = e.path().symlink_metadata() else { continue };
            if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
                continue;
            }
            total += md.blocks() * 512;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChrootSpec {
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

    #[test]
    fn debootstrap_errors_say_what_to_do() {
        let s = spec();
        let e = debootstrap_error(&s, "exit status: 1", "I: x\nE: Couldn't find these debs: gcc-14\n", "/l".into());
        assert!(matches!(&e, ChrootError::PackageMissing { packages, .. } if packages == "gcc-14"), "{e}");
        let e =
            debootstrap_error(&s, "exit status: 1", "E: Failed getting release file http://x/Release\n", "/l".into());
        assert!(e.to_string().contains("--archive"), "{e}");
        let e = debootstrap_error(&s, "exit status: 1", "E: Release signed by unknown key (key id 123)\n", "/l".into());
        assert!(e.to_string().contains("debian-archive-keyring"), "{e}");
    }

    #[test]
    fn mountinfo_parsing() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:5 / /c/chroots/.sid-gcc-16.tmp/proc rw - proc proc rw
41 22 0:6 / /c/chroots/sid-gcc-16x rw - tmpfs t rw
42 22 0:7 / /c/my\\040dir/x rw - tmpfs t rw
";
        assert_eq!(mounts_under_in(info, Path::new("/c/chroots/.sid-gcc-16.tmp")), ["/c/chroots/.sid-gcc-16.tmp/proc"]);
        assert!(mounts_under_in(info, Path::new("/c/chroots/sid-gcc-16")).is_empty());
        assert_eq!(mounts_under_in(info, Path::new("/c/my dir")), ["/c/my dir/x"]);
    }

    #[test]
    fn enter_command_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Chroot {
            root: "/c/chroots/trixie-gcc-14".into(),
            stamp: placeholder_stamp(&spec()),
            created: false,
            _lock: lock(&tmp.path().join("l"), FlockArg::LockShared).unwrap(),
        };
        let cmd = c.command(
            &[Bind::rw(Path::new("/b/out")), Bind::ro(Path::new("/k/root"))],
            "make",
            &["-C".into(), "/k/root/usr/src/x".into()],
        );
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        assert!(joined.contains("--mount --pid --fork --kill-child --propagation private -- /bin/sh -c"), "{joined}");
        let script_at = args.iter().position(|a| a == ENTER_SCRIPT).unwrap();
        assert_eq!(args[script_at + 1], "sh");
        assert_eq!(args[script_at + 2], "/c/chroots/trixie-gcc-14");
        let rest = &args[script_at + 4..];
        assert_eq!(
            rest,
            [
                "rw",
                "/b/out",
                "ro",
                "/k/root",
                "--",
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/tmp",
                "LC_ALL=C",
                "make",
                "-C",
                "/k/root/usr/src/x"
            ]
        );
    }

    #[test]
    fn enter_script_is_valid_sh() {
        let status = Command::new("sh").arg("-n").arg("-c").arg(ENTER_SCRIPT).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn tree_bytes_counts_files() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a"), vec![1u8; 10000]).unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        fs::write(tmp.path().join("d/b"), vec![1u8; 10000]).unwrap();
        fs::hard_link(tmp.path().join("a"), tmp.path().join("d/a2")).unwrap();
        let b = tree_bytes(tmp.path());
        assert!((20000..40000).contains(&b), "{b}");
    }
}
