//! `rig cache`: what the cache holds, how big, when a run last used it, and
//! pruning it by age, by size (least recently used first) or whole.
//!
//! The cache (`RIG_CACHE_DIR`, else `~/.cache/rig`) is laid out by its
//! owners; this module only reads that layout:
//!
//! ```text
//! kernels/<name>/             a fetched kernel (crate::kernel::fetch), lock kernels/<name>.lock
//! apt/<suite>/                private apt state for fetches, lock apt/<suite>.lock
//! chroots/<suite>-gcc-<N>/    a build chroot, root's (crate::build::chroot), lock chroots/<name>.lock
//! build/<release>/<module>/   a module build (crate::build::kbuild), lock build/<release>/<module>.lock
//! apidiff/<release>/<item>/   an apidiff build, lock apidiff/<release>/<item>.lock
//! initramfs/<release>/initramfs-<hash>.cpio   a guest image (crate::image::initramfs)
//! rootfs/<suite>-<key>/      a guest's Debian root (crate::image::rootfs), lock rootfs/<name>.lock
//! boots/<release>/<key>/      a guest saved after boot and setup (crate::exec::saved_boot)
//! ```
//!
//! Runs record use with [`crate::support::mark_used`]: a directory's
//! `.rig-used` or an image's modification time. Pruning takes each item's
//! lock without waiting and skips the item when another rig holds it. A run
//! holds the fetch lock only while it fetches, so items used in the last
//! `keep_recent` also count as in use.

mod inventory;
mod plan;
mod prune;

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

pub use inventory::inventory;
pub use plan::{human_bytes, parse_age, parse_size, plan, Policy, PrunePlan, Reason};
pub use prune::{prune, prune_with, PruneOutcome};

/// What kind of thing a cache item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An unpacked kernel with its headers and modules.
    Kernel,
    /// A debootstrap chroot of a kernel's suite.
    Chroot,
    /// A module built for a kernel release.
    Build,
    /// A module built by `rig apidiff` with one old API form forced.
    Apidiff,
    /// A guest image.
    Initramfs,
    /// A guest saved after boot and setup, for later runs.
    Boot,
    /// A guest's Debian root (`rootfs = "debian"`).
    Rootfs,
    /// The private apt state of one suite.
    Apt,
    /// What an interrupted creation or removal left behind.
    Leftover,
}

impl Kind {
    /// Every kind, in the order they are listed.
    pub const ALL: [Kind; 9] = [
        Kind::Kernel,
        Kind::Chroot,
        Kind::Build,
        Kind::Apidiff,
        Kind::Initramfs,
        Kind::Boot,
        Kind::Rootfs,
        Kind::Apt,
        Kind::Leftover,
    ];

    /// A word for listings.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel",
            Kind::Chroot => "chroot",
            Kind::Build => "build",
            Kind::Apidiff => "apidiff",
            Kind::Initramfs => "initramfs",
            Kind::Boot => "boot",
            Kind::Rootfs => "rootfs",
            Kind::Apt => "apt",
            Kind::Leftover => "leftover",
        }
    }

    /// The plural for totals.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Kernel => "kernels",
            Kind::Chroot => "chroots",
            Kind::Build => "module builds",
            Kind::Apidiff => "apidiff builds",
            Kind::Initramfs => "initramfs images",
            Kind::Boot => "saved boots",
            Kind::Rootfs => "Debian roots",
            Kind::Apt => "apt state",
            Kind::Leftover => "leftovers",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.word())
    }
}

/// One thing in the cache, removed as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// What it is.
    pub kind: Kind,
    /// Its name under its kind's folder: `bookworm-6.1`, `trixie-gcc-14`,
    /// `6.1.0-50-cloud-amd64/guest-kmod-1a2b3c4d`.
    pub name: String,
    /// A few words about it (a kernel's release, a chroot's compiler).
    pub detail: String,
    /// The directory or file.
    pub path: PathBuf,
    /// Disk usage in bytes.
    pub bytes: u64,
    /// When a run last used it (or, for items older than use stamps, when it
    /// last changed).
    pub last_used: SystemTime,
    /// The lock a rig holds while it fetches, creates, builds in or uses it.
    pub lock: Option<PathBuf>,
    /// Small files that go with it (a chroot's debootstrap log).
    pub companions: Vec<PathBuf>,
    /// Another rig held it when pruning tried: it stays.
    pub busy: bool,
}

/// Errors from reading or pruning the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory cannot be read.
    #[error(transparent)]
    Io(#[from] crate::support::IoError),
    /// Taking an item's lock failed (not: it is held).
    #[error(transparent)]
    Lock(#[from] crate::support::LockError),
    /// A chroot could not be removed (boxed: it carries a log tail).
    #[error(transparent)]
    Chroot(Box<crate::build::chroot::ChrootError>),
}

impl From<crate::build::chroot::ChrootError> for CacheError {
    fn from(e: crate::build::chroot::ChrootError) -> Self {
        CacheError::Chroot(Box::new(e))
    }
}
