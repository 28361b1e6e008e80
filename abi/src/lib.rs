//! Rust mirror of `guest-kmod/include/uapi/rig_kmod.h`.
//!
//! The C header is the definition; this file restates it for the host rig and
//! the guest programs. `rig/tests/abi_agrees.rs` compiles the header with the
//! host C compiler and checks every size, offset and number below against it.

#![no_std]

/// Version of the ABI; the module writes it into the shared header.
pub const ABI_VERSION: u32 = 1;

/// PCI ids of QEMU's ivshmem device.
pub const IVSHMEM_VENDOR: u16 = 0x1af4;
/// PCI device id of ivshmem (plain and doorbell).
pub const IVSHMEM_DEVICE: u16 = 0x1110;

/// Name under /dev of the char device that maps ivshmem BAR2.
pub const SHM_DEV_NAME: &str = "rig_shm";

/// "RIGS" little-endian: the module has probed the device.
pub const SHM_MAGIC: u32 = 0x5347_4952;
/// Offset of [`ShmHeader`] in the region.
pub const SHM_HEADER_OFFSET: u64 = 0x0000;
/// Area the guest writes and the host checks.
pub const SHM_G2H_OFFSET: u64 = 0x1000;
/// Area the host writes and the guest checks.
pub const SHM_H2G_OFFSET: u64 = 0x11000;
/// Size of each pattern area.
pub const SHM_AREA_SIZE: u64 = 0x10000;
/// First byte free for later users of the region.
pub const SHM_FREE_OFFSET: u64 = 0x21000;
/// The module refuses a smaller BAR2.
pub const SHM_MIN_SIZE: u64 = 0x10_0000;

// The areas of the region must not overlap: checked at compile time.
const _: () = assert!(SHM_G2H_OFFSET + SHM_AREA_SIZE <= SHM_H2G_OFFSET);
const _: () = assert!(SHM_H2G_OFFSET + SHM_AREA_SIZE <= SHM_FREE_OFFSET);
const _: () = assert!(SHM_FREE_OFFSET <= SHM_MIN_SIZE);

/// `rig_shm_header.state` after probe.
pub const STATE_PROBED: u32 = 1;
/// `rig_shm_header.state` after remove.
pub const STATE_REMOVED: u32 = 2;

/// Header the module writes at the start of the ivshmem region.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmHeader {
    /// [`SHM_MAGIC`] once probed.
    pub magic: u32,
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// BAR2 length as the guest sees it.
    pub size: u64,
    /// `STATE_*`.
    pub state: u32,
    /// Incremented at every probe.
    pub probe_count: u32,
    /// BAR2 bus address in the guest.
    pub bar_phys: u64,
    /// `utsname()->release`, NUL-terminated.
    pub kernel_release: [u8; 64],
}

impl Default for ShmHeader {
    fn default() -> Self {
        ShmHeader { magic: 0, abi_version: 0, size: 0, state: 0, probe_count: 0, bar_phys: 0, kernel_release: [0; 64] }
    }
}

impl ShmHeader {
    /// The kernel release string up to its NUL.
    pub fn release(&self) -> &str {
        let end = self.kernel_release.iter().position(|&b| b == 0).unwrap_or(self.kernel_release.len());
        core::str::from_utf8(&self.kernel_release[..end]).unwrap_or("<not utf-8>")
    }
}

const _: () = assert!(SHM_HEADER_OFFSET + core::mem::size_of::<ShmHeader>() as u64 <= SHM_G2H_OFFSET);

/// Answer of `RIG_IOC_SHM_INFO`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShmInfo {
    /// BAR2 bus address.
    pub phys_addr: u64,
    /// BAR2 length.
    pub size: u64,
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// Zero.
    pub reserved: u32,
}

/// ioctl type byte of the module.
pub const IOC_MAGIC: u8 = b'r';

/// `_IOC` encoding as in `include/uapi/asm-generic/ioctl.h` (x86).
pub mod ioc {
    /// Transfer direction bits.
    pub const NONE: u32 = 0;
    /// Userspace writes.
    pub const WRITE: u32 = 1;
    /// Userspace reads.
    pub const READ: u32 = 2;
    const NRSHIFT: u32 = 0;
    const TYPESHIFT: u32 = 8;
    const SIZESHIFT: u32 = 16;
    const DIRSHIFT: u32 = 30;

    /// `_IOC(dir, type, nr, size)`.
    pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
        (dir << DIRSHIFT) | ((ty as u32) << TYPESHIFT) | ((nr as u32) << NRSHIFT) | ((size as u32) << SIZESHIFT)
    }
    /// `_IOR(type, nr, T)`.
    pub const fn ior<T>(ty: u8, nr: u8) -> u32 {
        ioc(READ, ty, nr, core::mem::size_of::<T>())
    }
    /// `_IOW(type, nr, T)`.
    pub const fn iow<T>(ty: u8, nr: u8) -> u32 {
        ioc(WRITE, ty, nr, core::mem::size_of::<T>())
    }
    /// `_IOWR(type, nr, T)`.
    pub const fn iowr<T>(ty: u8, nr: u8) -> u32 {
        ioc(READ | WRITE, ty, nr, core::mem::size_of::<T>())
    }
    /// Splits a number into (dir, type, nr, size).
    pub const fn decode(cmd: u32) -> (u32, u8, u8, u32) {
        (cmd >> DIRSHIFT, (cmd >> TYPESHIFT) as u8, (cmd >> NRSHIFT) as u8, (cmd >> SIZESHIFT) & 0x3fff)
    }
}

/// `RIG_IOC_SHM_INFO`.
pub const IOC_SHM_INFO: u32 = ioc::ior::<ShmInfo>(IOC_MAGIC, 0x01);

/// The byte pattern both sides write and verify: position-dependent so that a
/// shifted, truncated or stale copy is caught, seeded so runs differ.
pub fn pattern_byte(seed: u32, index: u64) -> u8 {
    let x = (index as u32).wrapping_mul(0x9E37_79B1) ^ seed ^ ((index >> 32) as u32);
    (x ^ (x >> 15) ^ (x >> 24)) as u8
}

/// Fills `buf` with the pattern starting at pattern position `start`.
pub fn fill_pattern(seed: u32, start: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, start + i as u64);
    }
}

/// First position where `buf` differs from the pattern, if any.
pub fn first_mismatch(seed: u32, start: u64, buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().position(|(i, &b)| b != pattern_byte(seed, start + i as u64))
}

// ---------------------------------------------------------------------------
// The reference mechanisms (issue 3): appended, the items above are unchanged.
// ---------------------------------------------------------------------------

/// Char devices of the mechanisms, under /dev, all mode 0600.
pub mod dev {
    /// 1: maps the netlink pages and BAR2 by physical address.
    pub const MEM: &str = "rig_mem";
    /// 2: a kmalloc'd buffer.
    pub const KMALLOC: &str = "rig_kmalloc";
    /// 2: a vmalloc'd buffer.
    pub const VMALLOC: &str = "rig_vmalloc";
    /// 2: a vmalloc_user() buffer mapped with remap_vmalloc_range().
    pub const VMALLOC_USER: &str = "rig_vmalloc_user";
    /// 3: pages handed out by `.fault`.
    pub const FAULT: &str = "rig_fault";
    /// 6: read/write.
    pub const RW: &str = "rig_rw";
    /// 7: ioctl.
    pub const IOCTL: &str = "rig_ioctl";
    /// 9: memory reserved at boot.
    pub const RESERVED: &str = "rig_reserved";
    /// 10: the buffer pool.
    pub const POOL: &str = "rig_pool";
    /// 11: the ivshmem doorbell.
    pub const DOORBELL: &str = "rig_doorbell";
}

/// `/proc/<PROC_DIR>/{regions,stats,kfile}`.
pub const PROC_DIR: &str = "rig_kmod";

/// The pool's state in the region, written by the guest.
pub const POOL_STATUS_OFFSET: u64 = 0x21000;
/// The host ring's control block.
pub const HRING_OFFSET: u64 = 0x22000;
/// Buffer 0 of the pool.
pub const POOL_OFFSET: u64 = 0x23000;
/// Buffers in the pool.
pub const POOL_NBUF: u32 = 32;
/// Bytes per buffer, header included.
pub const POOL_BUF_SIZE: u32 = 0x1000;
/// Buffers 0..POOL_KBUFS belong to the kernel producer.
pub const POOL_KBUFS: u32 = 16;
/// First buffer of the host ring's slots.
pub const HRING_FIRST_BUF: u32 = 16;
/// Slots of the host ring.
pub const HRING_SLOTS: u32 = 16;
/// Where the guest writes [`NL_GREETING`] through /dev/rig_mem.
pub const SHM_NETLINK_OFFSET: u64 = 0x43000;
/// End of what the module uses in the region.
pub const SHM_USED_END: u64 = 0x44000;

const _: () = assert!(POOL_STATUS_OFFSET == SHM_FREE_OFFSET);
const _: () = assert!(POOL_OFFSET + (POOL_NBUF * POOL_BUF_SIZE) as u64 <= SHM_NETLINK_OFFSET);
const _: () = assert!(SHM_USED_END <= SHM_MIN_SIZE);
const _: () = assert!(POOL_KBUFS <= HRING_FIRST_BUF && HRING_FIRST_BUF + HRING_SLOTS <= POOL_NBUF);

/// Region offset of pool buffer `index` (its header).
pub const fn pool_buf_offset(index: u32) -> u64 {
    POOL_OFFSET + index as u64 * POOL_BUF_SIZE as u64
}

/// Pool buffer holding position `pos` of the host ring.
pub const fn hring_buf(pos: u32) -> u32 {
    HRING_FIRST_BUF + pos % HRING_SLOTS
}

// 1. netlink

/// The module's netlink protocol number.
pub const NETLINK_PROTO: i32 = 30;
/// Request type (empty payload).
pub const NL_MSG_GET: u16 = 0x10;
/// Answer type ([`NlShared`]).
pub const NL_MSG_SHARED: u16 = 0x11;
/// `__get_free_pages` order of the netlink pages.
pub const NL_PAGES_ORDER: u32 = 1;
/// Their size.
pub const NL_PAGES_SIZE: u64 = 0x2000;
/// What the module writes at their start.
pub const NL_GREETING: &str = "hello, use share memory with netlink";

/// Answer to [`NL_MSG_GET`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NlShared {
    /// Physical address of the pages.
    pub pages_phys: u64,
    /// [`NL_PAGES_SIZE`].
    pub pages_size: u64,
    /// ivshmem BAR2 bus address, 0 without a device.
    pub shm_phys: u64,
    /// BAR2 length, 0 without a device.
    pub shm_size: u64,
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// Length of [`NL_GREETING`].
    pub greeting_len: u32,
}

// 2, 3, 9. mapped regions

/// Size of the kmalloc'd buffer.
pub const KMALLOC_SIZE: u64 = 0x4000;
/// Size of the vmalloc'd buffer.
pub const VMALLOC_SIZE: u64 = 0x10000;
/// Size of the vmalloc_user() buffer.
pub const VMALLOC_USER_SIZE: u64 = 0x4000;
/// Pages behind /dev/rig_fault.
pub const FAULT_PAGES: u64 = 2;
/// Start of fault page 0.
pub const FAULT_STR0: &str = "1234567890";
/// Start of fault page 1.
pub const FAULT_STR1: &str = "abcdefghij";
/// Start of the kmalloc'd buffer after load.
pub const KMALLOC_GREETING: &str = "rig kmalloc buffer";
/// Start of the vmalloc'd buffer after load.
pub const VMALLOC_GREETING: &str = "rig vmalloc buffer";
/// Start of the vmalloc_user() buffer after load.
pub const VMALLOC_USER_GREETING: &str = "rig vmalloc_user buffer";
/// Start of the memory reserved at boot after load.
pub const RESERVED_GREETING: &str = "rig reserved memory";
/// [`RegionInfo::kind`] of /dev/rig_kmalloc.
pub const REGION_KMALLOC: u32 = 1;
/// [`RegionInfo::kind`] of /dev/rig_vmalloc.
pub const REGION_VMALLOC: u32 = 2;
/// [`RegionInfo::kind`] of /dev/rig_fault.
pub const REGION_FAULT: u32 = 3;
/// [`RegionInfo::kind`] of /dev/rig_reserved.
pub const REGION_RESERVED: u32 = 4;
/// [`RegionInfo::kind`] of /dev/rig_vmalloc_user.
pub const REGION_VMALLOC_USER: u32 = 5;

/// Answer of `RIG_IOC_REGION_INFO`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionInfo {
    /// Physical start; 0 when not contiguous.
    pub phys: u64,
    /// Bytes mmap() may cover.
    pub size: u64,
    /// `REGION_*`.
    pub kind: u32,
    /// Zero.
    pub reserved: u32,
}

// 4. sockopt

/// First option number of the module (level SOL_IP).
pub const SO_BASE: i32 = 0x5200;
/// Set and get a [`SoMsg`].
pub const SO_MSG: i32 = SO_BASE;
/// Get [`SoStats`].
pub const SO_STATS: i32 = SO_BASE + 1;
/// End of the module's range (exclusive).
pub const SO_MAX: i32 = SO_BASE + 4;
/// Bytes of [`SoMsg::data`].
pub const SO_MSG_MAX: usize = 56;

/// `RIG_SO_MSG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoMsg {
    /// Bytes used in `data`.
    pub len: u32,
    /// On get: number of sets so far.
    pub seq: u32,
    /// The message.
    pub data: [u8; SO_MSG_MAX],
}

impl Default for SoMsg {
    fn default() -> Self {
        SoMsg { len: 0, seq: 0, data: [0; SO_MSG_MAX] }
    }
}

/// `RIG_SO_STATS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoStats {
    /// Successful sets.
    pub sets: u64,
    /// Gets.
    pub gets: u64,
}

// 6. read/write

/// The bounded buffer of /dev/rig_rw.
pub const RW_BUF_SIZE: u64 = 4096;

// 7. ioctl

/// Bytes of [`Config::name`].
pub const CONFIG_NAME_LEN: usize = 32;
/// A [`Config::flags`] bit.
pub const CONFIG_F_VERBOSE: u32 = 0x1;
/// A [`Config::flags`] bit.
pub const CONFIG_F_FAST: u32 = 0x2;
/// Every valid flag.
pub const CONFIG_F_ALL: u32 = 0x3;
/// Highest valid [`Config::level`].
pub const CONFIG_LEVEL_MAX: u32 = 7;

/// The struct /dev/rig_ioctl keeps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// `CONFIG_F_*`.
    pub flags: u32,
    /// 0..=[`CONFIG_LEVEL_MAX`].
    pub level: u32,
    /// Any value.
    pub cookie: u64,
    /// NUL-terminated.
    pub name: [u8; CONFIG_NAME_LEN],
}

impl Default for Config {
    fn default() -> Self {
        Config { flags: 0, level: 0, cookie: 0, name: [0; CONFIG_NAME_LEN] }
    }
}

// 8. kfile

/// Default of the module's `kfile_path` parameter.
pub const KFILE_DEFAULT_PATH: &str = "/tmp/rig_kfile";
/// First line the module writes into that file at load.
pub const KFILE_GREETING: &str = "written by rig_kmod with kernel_write";

// 10. pool

/// [`PoolStatus::magic`]: "RIGP".
pub const POOL_MAGIC: u32 = 0x5047_4952;
/// [`PoolBuf::magic`]: "RIGB".
pub const POOL_BUF_MAGIC: u32 = 0x4247_4952;
/// [`PoolStatus::state`] while attached.
pub const POOL_READY: u32 = 1;
/// [`PoolStatus::state`] after remove.
pub const POOL_GONE: u32 = 2;
/// [`PoolBuf::source`]: the kernel thread.
pub const POOL_SRC_KERNEL: u32 = 1;
/// [`PoolBuf::source`]: the host.
pub const POOL_SRC_HOST: u32 = 2;
/// Size of [`PoolBuf`]; the payload follows it.
pub const POOL_HDR_SIZE: u32 = 64;
/// Largest payload.
pub const POOL_PAYLOAD_MAX: u32 = POOL_BUF_SIZE - POOL_HDR_SIZE;

/// Start of every pool buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolBuf {
    /// [`POOL_BUF_MAGIC`].
    pub magic: u32,
    /// `POOL_SRC_*`.
    pub source: u32,
    /// 1, 2, ... per producer.
    pub seq: u64,
    /// Payload bytes.
    pub len: u32,
    /// Payload byte i is `pattern_byte(seed, i)`.
    pub seed: u32,
    /// The buffer's own index.
    pub index: u32,
    /// Zero.
    pub reserved: [u32; 9],
}

/// The pool's state, at [`POOL_STATUS_OFFSET`], written by the guest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// [`POOL_MAGIC`].
    pub magic: u32,
    /// [`POOL_READY`] or [`POOL_GONE`].
    pub state: u32,
    /// [`POOL_NBUF`].
    pub nbuf: u32,
    /// [`POOL_KBUFS`].
    pub kbufs: u32,
    /// Kernel buffers filled.
    pub produced: u64,
    /// Kernel buffers taken and released.
    pub consumed: u64,
    /// Host buffers taken and released.
    pub host_consumed: u64,
    /// Kernel buffers free now.
    pub free: u32,
    /// Buffers queued for userspace now.
    pub ready: u32,
    /// Seq of the last kernel buffer filled.
    pub last_seq: u64,
}

// 11. the host ring and the doorbell

/// [`Hring::guest_magic`]: "RIGH".
pub const HRING_MAGIC: u32 = 0x4847_4952;
/// [`Hring::host_magic`]: "HOST".
pub const HRING_HOST_MAGIC: u32 = 0x5453_4f48;
/// [`Hring::guest_state`] once the guest takes buffers.
pub const HRING_READY: u32 = 1;
/// [`Hring::guest_state`] after remove.
pub const HRING_GONE: u32 = 2;
/// A peer id that is none (ivshmem-plain).
pub const PEER_NONE: u32 = 0xffff_ffff;
/// Vector the host rings after producing.
pub const DB_VEC_PRODUCED: u32 = 0;
/// Vector the guest rings after consuming.
pub const DB_VEC_CONSUMED: u32 = 1;
/// The module uses at most this many vectors.
pub const DB_MAX_VECTORS: usize = 8;

/// The host ring's control block at [`HRING_OFFSET`]; the protocol is in
/// the uapi header and in [`host`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hring {
    /// Host: buffers produced, free-running.
    pub prod: u32,
    /// Host: its peer id.
    pub host_peer: u32,
    /// Host: [`HRING_HOST_MAGIC`] once `host_peer` is set.
    pub host_magic: u32,
    /// Host: zero.
    pub host_reserved: [u32; 13],
    /// Guest: buffers released, free-running.
    pub cons: u32,
    /// Guest: its peer id (IVPosition) or [`PEER_NONE`].
    pub guest_peer: u32,
    /// Guest: [`HRING_READY`] or [`HRING_GONE`].
    pub guest_state: u32,
    /// Guest: [`HRING_MAGIC`].
    pub guest_magic: u32,
    /// Guest: [`HRING_SLOTS`].
    pub nslots: u32,
    /// Guest: [`HRING_FIRST_BUF`].
    pub first_buf: u32,
    /// Guest: interrupts on [`DB_VEC_PRODUCED`].
    pub irqs: u32,
    /// Guest: host entries refused.
    pub bad: u32,
    /// Guest: zero.
    pub guest_reserved: [u32; 8],
}

/// Region offsets of the [`Hring`] fields both sides touch atomically.
pub mod hring_field {
    use super::HRING_OFFSET;
    /// `prod`.
    pub const PROD: u64 = HRING_OFFSET;
    /// `host_peer`.
    pub const HOST_PEER: u64 = HRING_OFFSET + 4;
    /// `host_magic`.
    pub const HOST_MAGIC: u64 = HRING_OFFSET + 8;
    /// `cons`.
    pub const CONS: u64 = HRING_OFFSET + 0x40;
    /// `guest_peer`.
    pub const GUEST_PEER: u64 = HRING_OFFSET + 0x44;
    /// `guest_state`.
    pub const GUEST_STATE: u64 = HRING_OFFSET + 0x48;
    /// `guest_magic`.
    pub const GUEST_MAGIC: u64 = HRING_OFFSET + 0x4c;
    /// `irqs`.
    pub const IRQS: u64 = HRING_OFFSET + 0x58;
    /// `bad`.
    pub const BAD: u64 = HRING_OFFSET + 0x5c;
}

/// `RIG_IOC_POOL_INFO`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolInfo {
    /// [`POOL_NBUF`].
    pub nbuf: u32,
    /// [`POOL_BUF_SIZE`].
    pub buf_size: u32,
    /// [`POOL_KBUFS`].
    pub kbufs: u32,
    /// Kernel buffers free.
    pub free: u32,
    /// Buffers queued for userspace.
    pub ready: u32,
    /// Buffers userspace holds.
    pub taken: u32,
    /// Kernel buffers filled so far.
    pub produced: u64,
    /// Kernel buffers released so far.
    pub consumed: u64,
    /// Host buffers queued so far.
    pub host_queued: u64,
    /// Host buffers released so far.
    pub host_consumed: u64,
    /// Kernel buffers still to produce.
    pub pending: u32,
    /// Zero.
    pub reserved: u32,
}

/// `RIG_IOC_POOL_START`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStart {
    /// Buffers to produce.
    pub count: u32,
    /// Payload bytes, 1..=[`POOL_PAYLOAD_MAX`].
    pub len: u32,
    /// The buffer with seq s gets payload seed `seed + s`.
    pub seed: u32,
    /// Pause after each buffer, at most one second.
    pub interval_us: u32,
}

/// `RIG_IOC_POOL_TAKE(_WAIT)`: a buffer now owned by the caller.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolDesc {
    /// Pool buffer index.
    pub index: u32,
    /// `POOL_SRC_*`.
    pub source: u32,
    /// As in the header.
    pub seq: u64,
    /// Payload bytes.
    pub len: u32,
    /// Payload seed.
    pub seed: u32,
}

/// `RIG_IOC_POOL_RELEASE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolRelease {
    /// A buffer this file took.
    pub index: u32,
    /// Zero.
    pub reserved: u32,
}

/// `RIG_IOC_DB_INFO`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbInfo {
    /// 1: ivshmem-doorbell, 0: plain.
    pub doorbell: u32,
    /// IVPosition or [`PEER_NONE`].
    pub own_peer: u32,
    /// MSI-X vectors requested.
    pub vectors: u32,
    /// The host's peer id, or [`PEER_NONE`].
    pub host_peer: u32,
    /// Interrupts per vector.
    pub irqs: [u64; DB_MAX_VECTORS],
    /// Doorbell writes by this guest.
    pub rings: u64,
}

/// `RIG_IOC_DB_RING`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbRing {
    /// 0..=0xffff.
    pub peer: u32,
    /// 0..=0xffff.
    pub vector: u32,
}

/// `RIG_IOC_DB_WAIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbWait {
    /// Below the vectors requested.
    pub vector: u32,
    /// 0: do not sleep.
    pub timeout_ms: u32,
    /// In: last count seen; out: count now.
    pub count: u64,
}

/// `RIG_IOC_GET_CONFIG`.
pub const IOC_GET_CONFIG: u32 = ioc::ior::<Config>(IOC_MAGIC, 0x10);
/// `RIG_IOC_SET_CONFIG`.
pub const IOC_SET_CONFIG: u32 = ioc::iow::<Config>(IOC_MAGIC, 0x11);
/// `RIG_IOC_XCHG_CONFIG`.
pub const IOC_XCHG_CONFIG: u32 = ioc::iowr::<Config>(IOC_MAGIC, 0x12);
/// `RIG_IOC_RESET_CONFIG`.
pub const IOC_RESET_CONFIG: u32 = ioc::ioc(ioc::NONE, IOC_MAGIC, 0x13, 0);
/// Highest config ioctl number.
pub const IOC_CONFIG_MAXNR: u8 = 0x13;
/// `RIG_IOC_REGION_INFO`.
pub const IOC_REGION_INFO: u32 = ioc::ior::<RegionInfo>(IOC_MAGIC, 0x20);
/// `RIG_IOC_POOL_INFO`.
pub const IOC_POOL_INFO: u32 = ioc::ior::<PoolInfo>(IOC_MAGIC, 0x30);
/// `RIG_IOC_POOL_START`.
pub const IOC_POOL_START: u32 = ioc::iow::<PoolStart>(IOC_MAGIC, 0x31);
/// `RIG_IOC_POOL_TAKE`.
pub const IOC_POOL_TAKE: u32 = ioc::ior::<PoolDesc>(IOC_MAGIC, 0x32);
/// `RIG_IOC_POOL_TAKE_WAIT`.
pub const IOC_POOL_TAKE_WAIT: u32 = ioc::ior::<PoolDesc>(IOC_MAGIC, 0x33);
/// `RIG_IOC_POOL_RELEASE`.
pub const IOC_POOL_RELEASE: u32 = ioc::iow::<PoolRelease>(IOC_MAGIC, 0x34);
/// `RIG_IOC_DB_INFO`.
pub const IOC_DB_INFO: u32 = ioc::ior::<DbInfo>(IOC_MAGIC, 0x40);
/// `RIG_IOC_DB_RING`.
pub const IOC_DB_RING: u32 = ioc::iow::<DbRing>(IOC_MAGIC, 0x41);
/// `RIG_IOC_DB_WAIT`.
pub const IOC_DB_WAIT: u32 = ioc::iowr::<DbWait>(IOC_MAGIC, 0x42);

/// The host's side of the ring protocol (see the uapi header), over the
/// ivshmem backing file mapped with vm-memory at `GuestAddress(0)`.
///
/// [`host::produce`] does steps 1-4 of "the host produces N buffers"; the
/// caller then rings [`host::Produced::guest_peer`] on
/// [`DB_VEC_PRODUCED`]. Nothing here sleeps: a full ring or a guest not
/// ready comes back as an error for the caller to wait on and retry.
#[cfg(feature = "vm-memory")]
pub mod host {
    use super::*;
    use core::sync::atomic::Ordering;
    use vm_memory::{Bytes, GuestAddress};

    /// Why nothing was produced.
    #[derive(Debug)]
    pub enum ProduceError<E> {
        /// A vm-memory access failed.
        Memory(E),
        /// `guest_state` is not [`HRING_READY`] (module not bound, or removed).
        GuestNotReady {
            /// What `guest_state` holds.
            state: u32,
        },
        /// Fewer than `count` slots are free: wait for `cons` to move.
        Full {
            /// The host's `prod`.
            prod: u32,
            /// The guest's `cons`.
            cons: u32,
        },
        /// `len` is 0 or above [`POOL_PAYLOAD_MAX`], or `count` above [`HRING_SLOTS`].
        BadRequest,
    }

    /// What [`produce`] published.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Produced {
        /// Seq of the first buffer.
        pub first_seq: u64,
        /// Buffers published.
        pub count: u32,
        /// `prod` after publishing.
        pub prod: u32,
        /// The peer to ring on [`DB_VEC_PRODUCED`].
        pub guest_peer: u32,
    }

    /// Seed of the payload of the host buffer with `seq`, from the `seed`
    /// given to [`produce`] (the same rule as the kernel producer's).
    pub fn payload_seed(seed: u32, seq: u64) -> u32 {
        seed.wrapping_add(seq as u32)
    }

    /// Writes `count` buffers of `len` payload bytes into the ring and
    /// publishes them with a store-release of `prod`.
    pub fn produce<M: Bytes<GuestAddress>>(
        mem: &M,
        host_peer: u32,
        count: u32,
        len: u32,
        seed: u32,
    ) -> Result<Produced, ProduceError<M::E>> {
        if len == 0 || len > POOL_PAYLOAD_MAX || count > HRING_SLOTS {
            return Err(ProduceError::BadRequest);
        }
        let at = GuestAddress;
        let state: u32 = mem.load(at(hring_field::GUEST_STATE), Ordering::Acquire).map_err(ProduceError::Memory)?;
        if state != HRING_READY {
            return Err(ProduceError::GuestNotReady { state });
        }
        mem.store(host_peer, at(hring_field::HOST_PEER), Ordering::Relaxed).map_err(ProduceError::Memory)?;
        mem.store(HRING_HOST_MAGIC, at(hring_field::HOST_MAGIC), Ordering::Relaxed).map_err(ProduceError::Memory)?;

        // The host is the only writer of prod: its own value.
        let prod: u32 = mem.load(at(hring_field::PROD), Ordering::Relaxed).map_err(ProduceError::Memory)?;
        let cons: u32 = mem.load(at(hring_field::CONS), Ordering::Acquire).map_err(ProduceError::Memory)?;
        if prod.wrapping_sub(cons) > HRING_SLOTS - count {
            return Err(ProduceError::Full { prod, cons });
        }

        for i in 0..count {
            let pos = prod.wrapping_add(i);
            let index = hring_buf(pos);
            let seq = pos as u64 + 1;
            let seed = payload_seed(seed, seq);
            let base = pool_buf_offset(index);
            let mut chunk = [0u8; 256];
            let mut done = 0u32;
            while done < len {
                let n = (len - done).min(chunk.len() as u32);
                fill_pattern(seed, done as u64, &mut chunk[..n as usize]);
                mem.write_slice(&chunk[..n as usize], at(base + (POOL_HDR_SIZE + done) as u64))
                    .map_err(ProduceError::Memory)?;
                done += n;
            }
            let hdr = PoolBuf { magic: POOL_BUF_MAGIC, source: POOL_SRC_HOST, seq, len, seed, index, reserved: [0; 9] };
            mem.write_obj(hdr, at(base)).map_err(ProduceError::Memory)?;
        }

        // Publish: every write above happens before the new prod.
        let new_prod = prod.wrapping_add(count);
        mem.store(new_prod, at(hring_field::PROD), Ordering::Release).map_err(ProduceError::Memory)?;
        let guest_peer: u32 = mem.load(at(hring_field::GUEST_PEER), Ordering::Relaxed).map_err(ProduceError::Memory)?;
        Ok(Produced { first_seq: prod as u64 + 1, count, prod: new_prod, guest_peer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_are_padding_free() {
        assert_eq!(core::mem::size_of::<ShmHeader>(), 96);
        assert_eq!(core::mem::size_of::<ShmInfo>(), 24);
    }

    #[test]
    fn new_struct_sizes_are_padding_free() {
        use core::mem::size_of;
        assert_eq!(size_of::<NlShared>(), 40);
        assert_eq!(size_of::<RegionInfo>(), 24);
        assert_eq!(size_of::<SoMsg>(), 64);
        assert_eq!(size_of::<SoStats>(), 16);
        assert_eq!(size_of::<Config>(), 48);
        assert_eq!(size_of::<PoolBuf>(), POOL_HDR_SIZE as usize);
        assert_eq!(size_of::<PoolStatus>(), 56);
        assert_eq!(size_of::<Hring>(), 128);
        assert_eq!(size_of::<PoolInfo>(), 64);
        assert_eq!(size_of::<PoolStart>(), 16);
        assert_eq!(size_of::<PoolDesc>(), 24);
        assert_eq!(size_of::<PoolRelease>(), 8);
        assert_eq!(size_of::<DbInfo>(), 88);
        assert_eq!(size_of::<DbRing>(), 8);
        assert_eq!(size_of::<DbWait>(), 16);
    }

    #[test]
    fn hring_field_offsets() {
        use core::mem::offset_of;
        assert_eq!(hring_field::PROD, HRING_OFFSET + offset_of!(Hring, prod) as u64);
        assert_eq!(hring_field::HOST_PEER, HRING_OFFSET + offset_of!(Hring, host_peer) as u64);
        assert_eq!(hring_field::HOST_MAGIC, HRING_OFFSET + offset_of!(Hring, host_magic) as u64);
        assert_eq!(hring_field::CONS, HRING_OFFSET + offset_of!(Hring, cons) as u64);
        assert_eq!(hring_field::GUEST_PEER, HRING_OFFSET + offset_of!(Hring, guest_peer) as u64);
        assert_eq!(hring_field::GUEST_STATE, HRING_OFFSET + offset_of!(Hring, guest_state) as u64);
        assert_eq!(hring_field::GUEST_MAGIC, HRING_OFFSET + offset_of!(Hring, guest_magic) as u64);
        assert_eq!(hring_field::IRQS, HRING_OFFSET + offset_of!(Hring, irqs) as u64);
        assert_eq!(hring_field::BAD, HRING_OFFSET + offset_of!(Hring, bad) as u64);
    }

    #[test]
    fn ring_positions_map_to_host_buffers() {
        assert_eq!(hring_buf(0), HRING_FIRST_BUF);
        assert_eq!(hring_buf(HRING_SLOTS - 1), HRING_FIRST_BUF + HRING_SLOTS - 1);
        assert_eq!(hring_buf(HRING_SLOTS), HRING_FIRST_BUF);
        assert_eq!(hring_buf(u32::MAX), HRING_FIRST_BUF + u32::MAX % HRING_SLOTS);
        assert_eq!(pool_buf_offset(0), POOL_OFFSET);
        assert_eq!(pool_buf_offset(POOL_NBUF), SHM_NETLINK_OFFSET);
    }

    #[test]
    fn config_ioctls_decode() {
        assert_eq!(ioc::decode(IOC_GET_CONFIG), (ioc::READ, b'r', 0x10, 48));
        assert_eq!(ioc::decode(IOC_SET_CONFIG), (ioc::WRITE, b'r', 0x11, 48));
        assert_eq!(ioc::decode(IOC_XCHG_CONFIG), (ioc::READ | ioc::WRITE, b'r', 0x12, 48));
        assert_eq!(ioc::decode(IOC_RESET_CONFIG), (ioc::NONE, b'r', IOC_CONFIG_MAXNR, 0));
    }

    #[test]
    fn ioctl_number_decodes() {
        let (dir, ty, nr, size) = ioc::decode(IOC_SHM_INFO);
        assert_eq!((dir, ty, nr, size), (ioc::READ, b'r', 1, 24));
    }

    #[test]
    fn pattern_detects_shift_and_seed() {
        let mut a = [0u8; 4096];
        fill_pattern(7, 0, &mut a);
        assert_eq!(first_mismatch(7, 0, &a), None);
        assert!(first_mismatch(8, 0, &a).is_some());
        assert!(first_mismatch(7, 1, &a).is_some());
        // Not a constant or a short period.
        assert!(a.windows(2).any(|w| w[0] != w[1]));
        assert_ne!(a[..256], a[256..512]);
    }
}

#[cfg(feature = "vm-memory")]
mod byte_valued {
    use super::{Hring, PoolBuf, PoolStatus, ShmHeader, ShmInfo};
    // SAFETY: repr(C), only integer fields and byte arrays, no padding (the
    // size tests above and the C comparison test prove it): every bit
    // pattern is a valid value.
    unsafe impl vm_memory::ByteValued for ShmHeader {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for ShmInfo {}
    // SAFETY: as above (the structs the host reads or writes in the region).
    unsafe impl vm_memory::ByteValued for PoolBuf {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for PoolStatus {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for Hring {}
}

#[cfg(all(test, feature = "vm-memory"))]
mod host_tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    fn region() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), SHM_MIN_SIZE as usize)]).expect("anonymous region")
    }

    #[test]
    fn produce_follows_the_protocol() {
        let mem = region();
        let not_ready = host::produce(&mem, 1, 1, 100, 5);
        assert!(matches!(not_ready, Err(host::ProduceError::GuestNotReady { state: 0 })));

        // What the module does at probe.
        mem.store(3u32, GuestAddress(hring_field::GUEST_PEER), Ordering::Relaxed).expect("store");
        mem.store(HRING_READY, GuestAddress(hring_field::GUEST_STATE), Ordering::Release).expect("store");

        let p = host::produce(&mem, 1, 3, 100, 5).expect("produce");
        assert_eq!(p, host::Produced { first_seq: 1, count: 3, prod: 3, guest_peer: 3 });
        let ring: Hring = mem.read_obj(GuestAddress(HRING_OFFSET)).expect("ring");
        assert_eq!((ring.prod, ring.host_peer, ring.host_magic), (3, 1, HRING_HOST_MAGIC));
        for pos in 0..3u32 {
            let index = hring_buf(pos);
            let hdr: PoolBuf = mem.read_obj(GuestAddress(pool_buf_offset(index))).expect("hdr");
            let seq = pos as u64 + 1;
            assert_eq!(
                (hdr.magic, hdr.source, hdr.seq, hdr.len, hdr.index),
                (POOL_BUF_MAGIC, POOL_SRC_HOST, seq, 100, index)
            );
            assert_eq!(hdr.seed, host::payload_seed(5, seq));
            let mut payload = [0u8; 100];
            mem.read_slice(&mut payload, GuestAddress(pool_buf_offset(index) + POOL_HDR_SIZE as u64)).expect("payload");
            assert_eq!(first_mismatch(hdr.seed, 0, &payload), None);
        }

        // 13 slots left: 14 do not fit until the guest moves cons.
        assert!(matches!(host::produce(&mem, 1, 14, 1, 0), Err(host::ProduceError::Full { prod: 3, cons: 0 })));
        mem.store(3u32, GuestAddress(hring_field::CONS), Ordering::Release).expect("store");
        let p = host::produce(&mem, 1, 16, 1, 0).expect("a full ring");
        assert_eq!((p.first_seq, p.prod), (4, 19));
        assert!(matches!(host::produce(&mem, 1, 0, 0, 0), Err(host::ProduceError::BadRequest)));
    }
}
