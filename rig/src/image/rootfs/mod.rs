//! The Debian root of `rootfs = "debian"`: a `debootstrap --variant=minbase`
//! of the kernel's own suite (the archive and keyring the kernels come
//! from), the config's packages installed with apt, the kernel's modules
//! with their `depmod` lists, packed as a read-only squashfs (lz4). The
//! guest mounts it under a tmpfs overlay (see [`super::init`]).
//!
//! Why squashfs: the cloud kernels have no 9p and bookworm no virtiofsd; a
//! squashfs is half the size of the tree (a trixie root with DPDK: 690 MB
//! as files, 250 MB packed in 3 s), it is read-only so guests side by side
//! share one image and no test can change the cache, and squashfs and
//! overlay are modules on every catalog kernel. What changes from run to
//! run (the rig's programs, `[guest] files`, the modules built) is not in
//! it: the initramfs copies those onto the overlay, so editing a test never
//! rebuilds the root.
//!
//! Cache layout under `<cache_dir>/rootfs/`:
//!
//! ```text
//! <suite>-<key>/root.squashfs   the image
//! <suite>-<key>/rootfs.json     its stamp (inputs, sizes, versions), written last
//! <suite>-<key>/.rig-used       when a run last used it (`rig cache`)
//! <suite>-<key>.lock            shared while used, exclusive while built
//! <suite>-<key>.log             debootstrap's, apt's and mksquashfs's output
//! .<suite>-<key>.tmp/           a build in progress (redone if left over)
//! ```
//!
//! The key hashes every input: the suite, architecture, packages as
//! written, what every root gets, and the kernel (release and package
//! version, so a new kernel brings a new root). A stamp that does not match
//! the key, or an image whose size or superblock disagrees with its stamp,
//! is rebuilt. A pattern that matches nothing in the suite is recorded too:
//! the kernel is skipped without a new debootstrap.

// Errors carry a log tail: large, but only on the cold path.
#![allow(clippy::result_large_err)]

mod build;
pub mod packages;
pub mod squashfs;

use crate::build::chroot::ChrootError;
use crate::support::{io_err, lock_file, mark_used, relock, IoError, LockError, LockMode};
use nix::fcntl::Flock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub use packages::BASE_PACKAGES;

/// Bumped when the way a root is made changes: old images are rebuilt.
pub const FORMAT: u32 = 1;
/// The image in an item's directory.
pub const IMAGE_FILE: &str = "root.squashfs";
/// The stamp in an item's directory; its presence means "complete".
pub const STAMP_FILE: &str = "rootfs.json";
/// Logged when another rig holds the root's lock.
const WAITING: &str = "another rig is building or using this Debian root; waiting for it";
/// Lines of a tool's output kept in errors.
const TAIL_LINES: usize = 25;

/// Why a Debian root could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A host tool is missing.
    #[error("`{tool}` is not on PATH: install the `{package}` package (rig uses it to {purpose})")]
    ToolMissing { tool: &'static str, package: &'static str, purpose: &'static str },
    /// debootstrap failed, or its tools, keyring or root privileges are missing.
    #[error(transparent)]
    Chroot(#[from] Box<ChrootError>),
    /// apt does not know a package the config names: a configuration error.
    #[error("the `{suite}` root cannot have {packages}: apt says:\n{message}\n(check [guest] packages; full log: {})", log.display())]
    PackageMissing { suite: String, packages: String, message: String, log: PathBuf },
    /// apt failed otherwise (network, dependencies, a maintainer script).
    #[error("apt-get {step} in the `{suite}` root failed ({status}):\n{message}\nfull log: {}", log.display())]
    Apt { suite: String, step: String, status: String, message: String, log: PathBuf },
    /// Another step of the build failed (depmod, mksquashfs, copying).
    #[error("building the `{suite}` root: {step} failed ({status}); full log: {}\n{tail}", log.display())]
    Step { suite: String, step: String, status: String, log: PathBuf, tail: String },
    /// The kernel package carries no modules to put in the root.
    #[error("kernel {release} has no modules directory: the Debian root needs the kernel's modules")]
    NoModules { release: String },
    /// Offline and not cached.
    #[error("offline and no Debian root of `{suite}` with these packages is cached in {}: run once without --offline", dir.display())]
    NotCached { suite: String, dir: PathBuf },
    #[error(transparent)]
    Lock(LockError),
    #[error(transparent)]
    Io(#[from] IoError),
    /// Ctrl-C or SIGTERM stopped the build or the wait for it.
    #[error("interrupted; an unfinished Debian root is built again next time")]
    Interrupted,
}

impl From<ChrootError> for RootfsError {
    fn from(e: ChrootError) -> Self {
        match e {
            ChrootError::Interrupted => RootfsError::Interrupted,
            e => RootfsError::Chroot(Box::new(e)),
        }
    }
}

impl From<LockError> for RootfsError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Interrupted { .. } => RootfsError::Interrupted,
            e => RootfsError::Lock(e),
        }
    }
}

impl RootfsError {
    /// The config asked for what cannot be (exit 2), not the rig failing.
    pub fn is_config(&self) -> bool {
        matches!(self, RootfsError::PackageMissing { .. })
    }
}

/// Everything a root is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootfsSpec {
    /// The kernel's Debian suite.
    pub suite: String,
    /// Debian architecture.
    pub arch: String,
    /// The archive debootstrap and apt download from (not part of the key:
    /// any mirror of the suite gives the same root).
    pub archive_uri: String,
    /// The config's packages as written, sorted (patterns included).
    pub packages: Vec<String>,
    /// `uname -r` of the kernel whose modules go in.
    pub release: String,
    /// The kernel package's version.
    pub kernel_version: String,
    /// Where the kernel's modules are on the host.
    pub modules_dir: Option<PathBuf>,
}

impl RootfsSpec {
    /// The hash of every input (12 hex digits).
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        let base = BASE_PACKAGES.join(",");
        for part in [
            &FORMAT.to_string(),
            &self.suite,
            &self.arch,
            &base,
            &self.packages.join(","),
            &self.release,
            &self.kernel_version,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        crate::support::hex(&h.finalize()[..6])
    }

    /// `trixie-0123456789ab`: the item's name in the cache.
    pub fn name(&self) -> String {
        format!("{}-{}", self.suite, self.key())
    }
}

/// What `rootfs.json` records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootfsStamp {
    pub format: u32,
    pub key: String,
    pub suite: String,
    pub arch: String,
    pub archive_uri: String,
    /// As written in the config.
    pub packages: Vec<String>,
    /// What was installed for them, with versions (`dpdk-dev 24.11.8-0+deb13u1`).
    pub installed: Vec<String>,
    pub release: String,
    pub kernel_version: String,
    /// The image's size, and the filesystem's in its superblock.
    pub image_bytes: u64,
    pub bytes_used: u64,
    /// The unpacked tree, before packing.
    pub tree_bytes: u64,
    pub created_unix: u64,
    pub build_secs: f64,
    /// Set when the suite cannot have the packages: why the kernel is skipped.
    pub skip: Option<String>,
}

/// A root ready for a guest, or why this kernel cannot have it.
#[derive(Debug)]
pub enum Rootfs {
    /// The image, held (a shared lock) until dropped.
    Image { path: PathBuf, stamp: Box<RootfsStamp>, built: bool, _lock: Flock<File> },
    /// The suite lacks what the config asks for (a pattern matched nothing).
    Skip { reason: String },
}

/// The verified stamp of `dir`, or why it cannot be used.
fn load(dir: &Path, spec: &RootfsSpec) -> Result<RootfsStamp, String> {
    let text = fs::read_to_string(dir.join(STAMP_FILE)).map_err(|e| e.to_string())?;
    let stamp: RootfsStamp = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if stamp.format != FORMAT || stamp.key != spec.key() {
        return Err("made from other inputs".into());
    }
    if stamp.skip.is_none() {
        let sb = squashfs::verify(&dir.join(IMAGE_FILE), stamp.image_bytes)?;
        if sb.bytes_used != stamp.bytes_used {
            return Err(format!("the superblock says {} bytes, the stamp {}", sb.bytes_used, stamp.bytes_used));
        }
    }
    Ok(stamp)
}

fn ready(dir: PathBuf, stamp: RootfsStamp, built: bool, lock: Flock<File>) -> Rootfs {
    mark_used(&dir);
    match stamp.skip.clone() {
        Some(reason) => Rootfs::Skip { reason },
        None => Rootfs::Image { path: dir.join(IMAGE_FILE), stamp: Box::new(stamp), built, _lock: lock },
    }
}

/// The root for `spec` under `<cache_dir>/rootfs`, built first unless a
/// verified one is there. Concurrent callers wait for one build. `log`
/// hears each long step as it starts; `interrupt` stops the build or the wait.
pub fn ensure(
    spec: &RootfsSpec,
    cache_dir: &Path,
    offline: bool,
    log: &mut dyn FnMut(&str),
    interrupt: &AtomicBool,
) -> Result<Rootfs, RootfsError> {
    let root = cache_dir.join("rootfs");
    fs::create_dir_all(&root).map_err(io_err("create directory", &root))?;
    let name = spec.name();
    let dir = root.join(&name);
    let lock_path = root.join(format!("{name}.lock"));
    let lock = lock_file(&lock_path, LockMode::Shared, WAITING, interrupt)?;
    let mut built = false;
    loop {
        match load(&dir, spec) {
            Ok(stamp) => return Ok(ready(dir, stamp, built, lock)),
            Err(why) if dir.exists() => {
                tracing::warn!(root = %dir.display(), %why, "the cached Debian root is stale or damaged: building it again")
            }
            Err(_) => {}
        }
        if offline {
            return Err(RootfsError::NotCached { suite: spec.suite.clone(), dir });
        }
        relock(&lock, &lock_path, LockMode::Exclusive, WAITING, interrupt)?;
        if load(&dir, spec).is_err() {
            build::build(spec, &root, &name, log, interrupt)?;
            built = true;
        }
        relock(&lock, &lock_path, LockMode::Shared, WAITING, interrupt)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RootfsSpec {
        RootfsSpec {
            suite: "trixie".into(),
            arch: "amd64".into(),
            archive_uri: "http://mirror.example/debian".into(),
            packages: vec!["dpdk-dev".into(), "librte-net-e1000-*".into()],
            release: "6.12.117+deb13-cloud-amd64".into(),
            kernel_version: "6.12.117-1".into(),
            modules_dir: None,
        }
    }

    #[test]
    fn the_key_follows_every_input_but_the_mirror() {
        let s = spec();
        assert_eq!(s.key().len(), 12);
        assert!(s.name().starts_with("trixie-"));
        assert_eq!(RootfsSpec { archive_uri: "http://other/debian".into(), ..spec() }.key(), s.key());
        for other in [
            RootfsSpec { suite: "sid".into(), ..spec() },
            RootfsSpec { packages: vec!["dpdk-dev".into()], ..spec() },
            RootfsSpec { kernel_version: "6.12.118-1".into(), ..spec() },
            RootfsSpec { release: "6.12.118+deb13-cloud-amd64".into(), ..spec() },
        ] {
            assert_ne!(other.key(), s.key(), "{other:?}");
        }
    }

    fn stamp(s: &RootfsSpec, image_bytes: u64, bytes_used: u64, skip: Option<String>) -> RootfsStamp {
        RootfsStamp {
            format: FORMAT,
            key: s.key(),
            suite: s.suite.clone(),
            arch: s.arch.clone(),
            archive_uri: s.archive_uri.clone(),
            packages: s.packages.clone(),
            installed: vec![],
            release: s.release.clone(),
            kernel_version: s.kernel_version.clone(),
            image_bytes,
            bytes_used,
            tree_bytes: 0,
            created_unix: 0,
            build_secs: 0.0,
            skip,
        }
    }

    /// A cached root is used only when its stamp matches the inputs and
    /// the image its stamp; a recorded skip is reused as it is.
    #[test]
    fn cached_roots_are_verified() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = spec();
        let dir = tmp.path().join("rootfs").join(s.name());
        fs::create_dir_all(&dir).expect("mkdir");
        let mut img = vec![0u8; 8192];
        img[0..4].copy_from_slice(b"hsqs");
        img[4] = 1;
        img[28] = 4;
        img[40..48].copy_from_slice(&8000u64.to_le_bytes());
        fs::write(dir.join(IMAGE_FILE), &img).expect("image");
        let write = |st: &RootfsStamp| {
            fs::write(dir.join(STAMP_FILE), serde_json::to_string(st).expect("json")).expect("stamp")
        };
        write(&stamp(&s, 8192, 8000, None));
        let mut log = |_: &str| {};
        let flag = AtomicBool::new(false);
        match ensure(&s, tmp.path(), true, &mut log, &flag).expect("cached") {
            Rootfs::Image { path, built, .. } => assert!(path.ends_with(IMAGE_FILE) && !built),
            other => panic!("{other:?}"),
        }
        assert!(dir.join(crate::support::USED_FILE).is_file());
        // A truncated image, or one the stamp does not describe, is not used
        // (offline: nothing can be rebuilt, so the error says so).
        write(&stamp(&s, 8192, 7000, None));
        assert!(matches!(ensure(&s, tmp.path(), true, &mut log, &flag), Err(RootfsError::NotCached { .. })));
        fs::write(dir.join(IMAGE_FILE), &img[..4096]).expect("cut");
        write(&stamp(&s, 8192, 8000, None));
        assert!(load(&dir, &s).is_err_and(|e| e.contains("4096 bytes")));
        let other = RootfsSpec { packages: vec![], ..spec() };
        assert!(load(&dir, &other).is_err_and(|e| e.contains("other inputs")));
        write(&stamp(&s, 0, 0, Some("no match".into())));
        assert!(
            matches!(ensure(&s, tmp.path(), true, &mut log, &flag), Ok(Rootfs::Skip { reason }) if reason == "no match")
        );
    }
}
