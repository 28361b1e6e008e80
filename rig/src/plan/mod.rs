//! What to do, before anything runs: `rig.toml` (see docs/config.md)
//! parsed with serde ([`file`]) and validated ([`validate`]) into a [`Plan`]
//! of pure types; steps are [`step::Check`]s. Every error names the file,
//! the line and the key. Uses [`crate::kernel::catalog`] to check kernel
//! names, the data of [`crate::vm`] (device table, machine profile) to check
//! devices and IOMMUs, and [`crate::verdict`]'s class names.

mod devices;
pub mod file;
mod net;
mod rootfs;
pub mod step;
mod validate;

pub use devices::DEFAULT_IOMMU;
pub use rootfs::{is_pattern, PACKAGE_PATTERN_CHARS};
pub use validate::{load, parse};

use std::path::PathBuf;
use std::time::Duration;
use step::Check;

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// TOML syntax, an unknown key or a wrong type.
    #[error("{path}:{line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    /// A value that parses but cannot work.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid { path: PathBuf, line: usize, key: String, message: String },
}

/// A module to build and maybe load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePlan {
    pub dir: PathBuf,
    pub make_vars: Vec<(String, String)>,
    pub params: String,
    pub load: bool,
}

/// A file for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    pub src: PathBuf,
    pub dest: String,
    pub mode: Option<u32>,
}

/// Shared memory of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmPlan {
    pub size: u64,
    pub doorbell: bool,
    pub vectors: u32,
}

/// Where the test groups run (`[guest] isolation`). The guest is saved
/// after boot and setup for the first two; a restored guest starts from the
/// save.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Groups share a guest until one fails (a failed check, a kernel
    /// report, a crash): the group after it starts on a restored guest.
    /// A crash costs its group alone, and a passing suite pays no restore.
    #[default]
    OnFailure,
    /// Each group on a guest restored from the save, failed or not.
    Group,
    /// Every group on the one guest, one after the other.
    None,
}

/// Who drives a device once the guest is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// The kernel's driver as the guest booted (an in-tree one, or the
    /// user's module); some driver must have taken it.
    Kernel,
    /// vfio-pci, for a driver in userspace.
    VfioPci,
    /// No driver.
    None,
}

impl Bind {
    /// As written in `rig.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Bind::Kernel => "kernel",
            Bind::VfioPci => "vfio-pci",
            Bind::None => "none",
        }
    }
}

/// PCI slot of the Debian root's disk (`rootfs = "debian"`).
pub const ROOT_SLOT: u8 = 0x02;
/// PCI slot of the `[guest.ivshmem]` device.
pub const SHM_SLOT: u8 = 0x03;
/// PCI slot of the first `[[device]]`; the others follow in order.
pub const FIRST_DEVICE_SLOT: u8 = 0x04;
/// How many `[[device]]`s a guest may have (slots 0x04..=0x13).
pub const MAX_DEVICES: usize = 16;

/// A virtual PCI device of the guest (`[[device]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    /// As written; `$RIG_DEV_<NAME>` in the guest.
    pub name: String,
    /// A kind of the device table.
    pub kind: String,
    pub bind: Bind,
    /// Its PCI slot on the root bus (fixed, so its address is known before boot).
    pub slot: u8,
    /// Bytes of its backing image (kinds with one, e.g. nvme).
    pub image_size: Option<u64>,
}

impl DevicePlan {
    /// `0000:00:04.0`.
    pub fn bdf(&self) -> String {
        crate::vm::devices::bdf(self.slot)
    }

    /// `RIG_DEV_EDU0`: the variable with its address; `_SYSFS` and `_GROUP` follow it.
    pub fn env(&self) -> String {
        env_name(&self.name)
    }

    /// Is it the guest's shared memory (an ivshmem kind)?
    pub fn is_shm(&self) -> bool {
        is_shm_kind(&self.kind)
    }
}

/// `RIG_DEV_<NAME>` of a device name.
pub fn env_name(name: &str) -> String {
    format!("RIG_DEV_{}", name.to_ascii_uppercase())
}

/// ivshmem-plain and ivshmem-doorbell are the shared memory the host maps.
pub fn is_shm_kind(kind: &str) -> bool {
    kind.starts_with("ivshmem-")
}

/// Guest settings after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlan {
    pub memory_mib: u32,
    pub cpus: u32,
    pub cmdline: Vec<String>,
    pub files: Vec<FilePlan>,
    /// The shared memory, from `[guest.ivshmem]` or an ivshmem `[[device]]`.
    pub shm: Option<ShmPlan>,
    pub isolation: Isolation,
    /// The emulated IOMMU (a name of the machine profile), if any.
    pub iommu: Option<String>,
    /// `[[device]]`s, in slot order.
    pub devices: Vec<DevicePlan>,
    /// Checking the kernel does where it can (its command line is decided
    /// once the kernel is known).
    pub checks: Vec<crate::kernel::checks::Check>,
    /// A kernel that cannot do one of `checks` fails the run.
    pub strict_checks: bool,
    /// The NICs whose frames the host records (`capture = true`), by name.
    pub captures: Vec<String>,
    /// The Debian root, when `rootfs = "debian"`; else the busybox initramfs.
    pub rootfs: Option<RootfsPlan>,
    /// 2 MiB hugepages reserved before the first step.
    pub hugepages: u32,
}

/// `rootfs = "debian"`: a Debian root of the kernel's own suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsPlan {
    /// Packages besides minbase, as written (sorted, without repeats); a
    /// name with a pattern character is matched against the suite's.
    pub packages: Vec<String>,
}

impl GuestPlan {
    /// The PCI slot of the shared memory device.
    pub fn shm_slot(&self) -> u8 {
        self.devices.iter().find(|d| d.is_shm()).map_or(SHM_SLOT, |d| d.slot)
    }

    /// Does any device bind to vfio-pci?
    pub fn uses_vfio(&self) -> bool {
        self.devices.iter().any(|d| d.bind == Bind::VfioPci)
    }
}

/// A named group of checks.
#[derive(Debug, Clone)]
pub struct TestGroup {
    pub name: String,
    pub checks: Vec<Check>,
}

/// A validated configuration: what `rig run -c` executes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the file was (relative paths resolve against its directory).
    pub source: PathBuf,
    /// Catalog names; empty means the default kernel.
    pub kernels: Vec<String>,
    pub modules: Vec<ModulePlan>,
    pub intree: Vec<String>,
    pub guest: GuestPlan,
    pub setup: Vec<Check>,
    pub teardown: Vec<Check>,
    pub tests: Vec<TestGroup>,
}

/// Default per-step timeout.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
