//! A mapping that a device reads or writes behind the program's back: a BAR
//! mapped from the VFIO device fd, or memory mapped for DMA. Every access
//! is volatile or atomic through raw pointers and bounds-checked; no Rust
//! reference into the mapping is ever made (the device may change it at
//! any time, see `VfioOps::vfio_dma_map`'s safety contract).

use std::sync::atomic::{AtomicU32, Ordering};

/// An access outside the mapping or misaligned for its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{len}-byte access at {offset:#x} of a {size:#x}-byte mapping is out of bounds or misaligned")]
pub struct AccessError {
    /// Offset asked for.
    pub offset: u64,
    /// Bytes asked for.
    pub len: u64,
    /// Size of the mapping.
    pub size: u64,
}

/// Checks `[offset, offset + len)` against `size`, and alignment to `align`.
pub fn check_access(offset: u64, len: u64, size: u64, align: u64) -> Result<usize, AccessError> {
    let err = AccessError { offset, len, size };
    let end = offset.checked_add(len).ok_or(err)?;
    if end > size || !offset.is_multiple_of(align) {
        return Err(err);
    }
    usize::try_from(offset).map_err(|_| err)
}

/// The page size of this machine.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// `len` rounded up to whole pages.
pub fn page_round(len: usize) -> usize {
    let p = page_size();
    len.div_ceil(p) * p
}

/// An mmap()ed range, unmapped on drop.
pub struct Mmio {
    ptr: *mut u8,
    /// What the accessors allow (may be less than the mapping).
    size: u64,
    /// What munmap() gets back.
    map_len: usize,
}

// SAFETY: the mapping is plain memory or device memory accessed only through
// volatile/atomic operations; moving the owner between threads is fine.
unsafe impl Send for Mmio {}

impl Mmio {
    /// Maps `size` bytes of `fd` at `offset` (MAP_SHARED, read/write).
    pub fn map_fd(fd: i32, offset: u64, size: u64) -> std::io::Result<Mmio> {
        let len = usize::try_from(size).map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        let map_len = page_round(len);
        let off = libc::off_t::try_from(offset).map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: a new mapping at an address the kernel picks; checked below.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, off)
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mmio { ptr: ptr.cast(), size, map_len })
    }

    /// Anonymous, populated memory of `len` bytes rounded up to pages.
    pub fn anonymous(len: usize) -> std::io::Result<Mmio> {
        let map_len = page_round(len.max(1));
        // SAFETY: as above.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mmio { ptr: ptr.cast(), size: map_len as u64, map_len })
    }

    /// Bytes the accessors reach.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Start of the mapping, for handing to the kernel (DMA map).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// A 32-bit volatile load.
    pub fn read32(&self, offset: u64) -> Result<u32, AccessError> {
        let at = check_access(offset, 4, self.size, 4)?;
        // SAFETY: in bounds and aligned (checked); volatile because a device owns it.
        Ok(unsafe { std::ptr::read_volatile(self.ptr.add(at).cast::<u32>()) })
    }

    /// A 32-bit volatile store.
    pub fn write32(&self, offset: u64, value: u32) -> Result<(), AccessError> {
        let at = check_access(offset, 4, self.size, 4)?;
        // SAFETY: as in read32.
        unsafe { std::ptr::write_volatile(self.ptr.add(at).cast::<u32>(), value) };
        Ok(())
    }

    /// A 32-bit load-acquire, for memory shared with another agent.
    pub fn load_acquire(&self, offset: u64) -> Result<u32, AccessError> {
        let at = check_access(offset, 4, self.size, 4)?;
        // SAFETY: aligned and in bounds; AtomicU32 has u32's layout and is
        // made for memory others write concurrently.
        Ok(unsafe { (*self.ptr.add(at).cast::<AtomicU32>()).load(Ordering::Acquire) })
    }

    /// A 32-bit store-release.
    pub fn store_release(&self, offset: u64, value: u32) -> Result<(), AccessError> {
        let at = check_access(offset, 4, self.size, 4)?;
        // SAFETY: as in load_acquire.
        unsafe { (*self.ptr.add(at).cast::<AtomicU32>()).store(value, Ordering::Release) };
        Ok(())
    }

    /// Copies bytes out, one volatile load each.
    pub fn read_bytes(&self, offset: u64, buf: &mut [u8]) -> Result<(), AccessError> {
        let at = check_access(offset, buf.len() as u64, self.size, 1)?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: in bounds (checked for the whole range).
            *b = unsafe { std::ptr::read_volatile(self.ptr.add(at + i)) };
        }
        Ok(())
    }

    /// Copies bytes in, one volatile store each.
    pub fn write_bytes(&self, offset: u64, buf: &[u8]) -> Result<(), AccessError> {
        let at = check_access(offset, buf.len() as u64, self.size, 1)?;
        for (i, &b) in buf.iter().enumerate() {
            // SAFETY: as in read_bytes.
            unsafe { std::ptr::write_volatile(self.ptr.add(at + i), b) };
        }
        Ok(())
    }

    /// Sets `len` bytes to `byte`.
    pub fn fill(&self, offset: u64, len: u64, byte: u8) -> Result<(), AccessError> {
        let at = check_access(offset, len, self.size, 1)?;
        for i in 0..len as usize {
            // SAFETY: as in read_bytes.
            unsafe { std::ptr::write_volatile(self.ptr.add(at + i), byte) };
        }
        Ok(())
    }
}

impl Drop for Mmio {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_alignment() {
        assert_eq!(check_access(0, 4, 4, 4), Ok(0));
        assert_eq!(check_access(8, 4, 16, 4), Ok(8));
        assert!(check_access(13, 4, 16, 4).is_err());
        assert!(check_access(6, 4, 16, 4).is_err());
        assert!(check_access(u64::MAX, 2, u64::MAX, 1).is_err());
        assert_eq!(check_access(3, 0, 3, 1), Ok(3));
    }

    #[test]
    fn anonymous_memory_round_trips() {
        let m = Mmio::anonymous(100).expect("mmap");
        assert_eq!(m.size() as usize, page_size());
        m.write32(4, 0xdead_beef).expect("write");
        assert_eq!(m.read32(4), Ok(0xdead_beef));
        assert_eq!(m.read32(0), Ok(0));
        m.store_release(8, 7).expect("store");
        assert_eq!(m.load_acquire(8), Ok(7));
        m.fill(16, 8, 0xa5).expect("fill");
        let mut b = [0u8; 10];
        m.read_bytes(15, &mut b).expect("read");
        assert_eq!(b, [0, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0]);
        m.write_bytes(100, b"abc").expect("write bytes");
        let mut c = [0u8; 3];
        m.read_bytes(100, &mut c).expect("read");
        assert_eq!(&c, b"abc");
        assert!(m.read32(m.size()).is_err());
        assert!(m.write32(2, 0).is_err());
    }
}
