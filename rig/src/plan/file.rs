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
    /// The guest's userspace: "busybox" (default: the rig's initramfs) or
    /// "debian" (a Debian root of the kernel's own suite).
    pub rootfs: Option<Spanned<String>>,
    /// Debian packages for `rootfs = "debian"`; a name with `*` is a pattern.
    #[serde(default)]
    pub packages: Vec<Spanned<String>>,
    /// MiB of 2 MiB hugepages reserved before the first step (default 0).
    pub hugepages_mib: Option<Spanned<u32>>,
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
            rootfs: None,
            packages: vec![],
            hugepages_mib: None,
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
    pub pcap: Option<PcapSpec>,
    pub send: Option<SendSpec>,
    pub fuzz_ring: Option<FuzzRingSpec>,
}

/// `host.pcap`: what a NIC sent (its capture) since the previous check of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcapSpec {
    /// A `[[device]]` NIC with `capture = true`.
    pub device: String,
    /// At least this many matching frames (default 1).
    pub min_packets: Option<u64>,
    /// At most this many matching frames.
    pub max_packets: Option<u64>,
    /// Only frames of this length (bytes, without the FCS).
    pub frame_len: Option<u32>,
    /// Only frames of this EtherType.
    pub ethertype: Option<u16>,
    /// Only frames from this MAC address.
    pub src: Option<String>,
    /// Only frames to this MAC address.
    pub dst: Option<String>,
    /// A regex whose first group is a number in the previous guest step's
    /// output (its last match): the count must agree with it.
    pub same_count_as: Option<String>,
    /// How far the count may be from `same_count_as` (frames in flight; default 0).
    pub slack: Option<u64>,
}

/// `host.send`: the host sends frames to a NIC (a generated burst, or a pcap file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSpec {
    /// A `[[device]]` NIC.
    pub device: String,
    /// Frames from this pcap file (relative to the config) instead of a burst.
    pub pcap: Option<Spanned<String>>,
    /// Frames in the burst.
    pub count: Option<u64>,
    /// Bytes per frame, without the FCS (default 64).
    pub frame_len: Option<u32>,
    /// EtherType of the burst (default 0x88b5, local experimental).
    pub ethertype: Option<u16>,
    /// Source MAC of the burst (default 02:00:00:00:00:01).
    pub src: Option<String>,
    /// Destination MAC of the burst (default ff:ff:ff:ff:ff:ff).
    pub dst: Option<String>,
    /// Frames per second (default 10000; 0: as fast as the socket takes them).
    pub rate: Option<u64>,
    /// Give up after this many seconds (default 60).
    pub timeout: Option<u64>,
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
    /// NICs: record every frame the NIC sends to `<name>.pcap` in the run directory.
    pub capture: Option<Spanned<bool>>,
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
