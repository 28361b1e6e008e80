//! `rig.toml` as written: serde structs (`deny_unknown_fields`, spans kept
//! for messages), with the defaults documented on each field. Validation
//! turns them into a [`super::Plan`].

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// `kernels = "all"` or a list of names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KernelsSpec {
    /// `"all"` or `"default"` or one name.
    One(String),
    /// Several names.
    Many(Vec<String>),
}

/// `[[module]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    /// Source directory (Kbuild or Makefile).
    pub path: Spanned<String>,
    /// Extra make variables.
    #[serde(default)]
    pub make: BTreeMap<String, String>,
    /// insmod parameters.
    #[serde(default)]
    pub params: String,
    /// Load at boot (default true).
    #[serde(default = "yes")]
    pub load: bool,
}

fn yes() -> bool {
    true
}

/// `guest.files` entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Host path.
    pub src: Spanned<String>,
    /// Guest path (absolute).
    pub dest: Spanned<String>,
    /// Octal permission bits, default "0644" ("0755" for ELF executables).
    pub mode: Option<Spanned<String>>,
}

/// `[guest.ivshmem]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvshmemSpec {
    /// Size in MiB; 0 means no device.
    #[serde(default = "default_shm_mib")]
    pub size_mib: Spanned<u64>,
    /// ivshmem-doorbell served by the rig instead of ivshmem-plain.
    #[serde(default)]
    pub doorbell: bool,
    /// Doorbell MSI-X vectors.
    #[serde(default = "default_vectors")]
    pub vectors: Spanned<u32>,
}

fn default_shm_mib() -> Spanned<u64> {
    Spanned::new(0..0, 4)
}
fn default_vectors() -> Spanned<u32> {
    Spanned::new(0..0, DEFAULT_VECTORS)
}

/// Doorbell vectors when `[guest.ivshmem]` does not say.
pub(super) const DEFAULT_VECTORS: u32 = 2;

/// `[guest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSpec {
    /// RAM in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: Spanned<u32>,
    /// vCPUs.
    #[serde(default = "default_cpus")]
    pub cpus: Spanned<u32>,
    /// Kernel command-line extras.
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// Boot with `oops=panic`.
    #[serde(default)]
    pub oops_panic: bool,
    /// Boot with `panic_on_warn=1`.
    #[serde(default)]
    pub panic_on_warn: bool,
    /// Checking the kernel does (`crate::kernel::checks`), where it can.
    #[serde(default)]
    pub checks: Vec<Spanned<String>>,
    /// Fail the run when the kernel cannot do one of `checks`.
    #[serde(default)]
    pub strict_checks: bool,
    /// Files to copy into the guest.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Shared memory; default 4 MiB ivshmem-plain.
    pub ivshmem: Option<IvshmemSpec>,
    /// `"group"` (default): each test group on a guest restored from a
    /// snapshot; `"none"`: all groups on one guest.
    #[serde(default)]
    pub isolation: super::Isolation,
    /// Emulated IOMMU: a name from `qemu/machine.toml` ("intel") or "none";
    /// default "intel" when a device binds to vfio-pci, else none.
    pub iommu: Option<Spanned<String>>,
}

fn default_memory() -> Spanned<u32> {
    Spanned::new(0..0, 256)
}
fn default_cpus() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

impl Default for GuestSpec {
    fn default() -> Self {
        GuestSpec {
            memory_mib: default_memory(),
            cpus: default_cpus(),
            cmdline: vec![],
            oops_panic: false,
            panic_on_warn: false,
            checks: vec![],
            strict_checks: false,
            files: vec![],
            ivshmem: None,
            isolation: super::Isolation::default(),
            iommu: None,
        }
    }
}

/// `host.verify_pattern` / `host.fill_pattern`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    pub offset: u64,
    pub len: u64,
    pub seed: u32,
    /// A `[[device]]` with a backing image (nvme): its image, not the shared memory.
    pub device: Option<String>,
}

/// `host.expect_bytes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BytesSpec {
    pub offset: u64,
    pub hex: String,
    /// As in [`PatternSpec::device`].
    pub device: Option<String>,
}

/// `host.expect_string`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringSpec {
    pub offset: u64,
    pub string: String,
    /// As in [`PatternSpec::device`].
    pub device: Option<String>,
}

/// `host.header`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    pub state: u32,
}

/// `host = { ... }`: exactly one kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub verify_pattern: Option<PatternSpec>,
    pub fill_pattern: Option<PatternSpec>,
    pub expect_bytes: Option<BytesSpec>,
    pub expect_string: Option<StringSpec>,
    pub header: Option<HeaderSpec>,
    pub write_bytes: Option<BytesSpec>,
    pub produce: Option<ProduceSpec>,
    pub write_string: Option<StringSpec>,
    pub command: Option<String>,
    pub doorbell: Option<DoorbellSpec>,
    pub fuzz_ring: Option<FuzzRingSpec>,
}

/// `host.fuzz_ring`: seeded garbage into the reference module's ring, with
/// doorbell rings, while the guest consumes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuzzRingSpec {
    pub seed: u64,
    /// For this many seconds (default 10).
    pub secs: Option<u64>,
    /// At most this many writes (default: no limit).
    pub writes: Option<u64>,
}

/// `host.produce`: the host puts buffers into the reference module's ring.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceSpec {
    pub count: u32,
    pub len: u32,
    pub seed: u32,
}

/// `host.doorbell`: the host peer as producer through ivshmem-doorbell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorbellSpec {
    /// Ring the guest on this vector.
    pub ring_vector: Option<u32>,
    /// Wait for the guest to ring the host on this vector.
    pub wait_vector: Option<u32>,
    /// Timeout in seconds for `wait_vector`.
    pub timeout: Option<u64>,
}

/// A step: `run` (guest) or `host`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: Option<String>,
    pub run: Option<String>,
    pub host: Option<HostSpec>,
    pub status: Option<i32>,
    pub expect: Option<String>,
    pub expect_regex: Option<Spanned<String>>,
    pub timeout: Option<u64>,
    /// A kernel report the step must cause (`"iommu_fault"`, `"IOMMU fault"`):
    /// reports of that class pass it instead of failing it.
    pub expect_report: Option<Spanned<String>>,
}

/// `bind` of a `[[device]]`: who drives it once the guest is up.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BindSpec {
    /// The kernel's own driver (or the user's module), as the guest boots.
    Kernel,
    /// vfio-pci, for a userspace driver.
    VfioPci,
    /// No driver at all.
    None,
}

/// `[[device]]`: a virtual PCI device of the device table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Names it in `$RIG_DEV_<NAME>`, so letters, digits and `_`.
    pub name: Spanned<String>,
    /// A kind of `qemu/devices.toml` (`edu`, `nvme`, ...).
    pub kind: Spanned<String>,
    /// Default `kernel`.
    pub bind: Option<BindSpec>,
    /// nvme: the namespace image (default 16); ivshmem: the region (default 4).
    pub size_mib: Option<Spanned<u64>>,
    /// ivshmem-doorbell: MSI-X vectors (default 2).
    pub vectors: Option<Spanned<u32>>,
}

/// `[[test]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub name: String,
    #[serde(default)]
    pub step: Vec<Spanned<StepSpec>>,
}

/// The whole file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub kernels: Option<Spanned<KernelsSpec>>,
    #[serde(default)]
    pub module: Vec<ModuleSpec>,
    #[serde(default)]
    pub intree: Vec<String>,
    #[serde(default)]
    pub guest: GuestSpec,
    #[serde(default)]
    pub device: Vec<Spanned<DeviceSpec>>,
    #[serde(default)]
    pub setup: Vec<Spanned<StepSpec>>,
    #[serde(default)]
    pub teardown: Vec<Spanned<StepSpec>>,
    #[serde(default)]
    pub test: Vec<TestSpec>,
}
