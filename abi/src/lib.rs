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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_are_padding_free() {
        assert_eq!(core::mem::size_of::<ShmHeader>(), 96);
        assert_eq!(core::mem::size_of::<ShmInfo>(), 24);
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
    use super::{ShmHeader, ShmInfo};
    // SAFETY: repr(C), only integer fields and byte arrays, no padding (the
    // size tests above and the C comparison test prove it): every bit
    // pattern is a valid value.
    unsafe impl vm_memory::ByteValued for ShmHeader {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for ShmInfo {}
}
