//! The ivshmem region through /dev/rig_shm: the module maps BAR2 into this
//! process; what is written here is what the host sees in the backing file.

use crate::args::{os_failure, Failure, Region};
use rig_abi::{ShmInfo, IOC_SHM_INFO, SHM_DEV_NAME};
use std::ffi::CString;

/// An open /dev/rig_shm and one MAP_SHARED mapping of part of it.
struct ShmMapping {
    fd: libc::c_int,
    addr: *mut u8,
    len: usize,
}

impl ShmMapping {
    fn open() -> Result<libc::c_int, Failure> {
        let path = CString::new(format!("/dev/{SHM_DEV_NAME}")).map_err(|_| Failure::Usage("bad path".into()))?;
        // SAFETY: path is a valid NUL-terminated string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(os_failure(&format!("open /dev/{SHM_DEV_NAME}")));
        }
        Ok(fd)
    }

    /// Maps `[0, len)` of the region.
    fn map(len: usize) -> Result<ShmMapping, Failure> {
        let fd = Self::open()?;
        // SAFETY: a fresh shared mapping of a device fd; the kernel checks bounds.
        let addr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if addr == libc::MAP_FAILED {
            let err = os_failure(&format!("mmap {len} bytes of /dev/{SHM_DEV_NAME}"));
            // SAFETY: fd is ours.
            unsafe { libc::close(fd) };
            return Err(err);
        }
        Ok(ShmMapping { fd, addr: addr.cast(), len })
    }

    fn slice(&mut self, offset: u64, len: u64) -> Result<&mut [u8], Failure> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len as u64);
        if end.is_none() {
            return Err(Failure::Usage(format!("{offset:#x}+{len:#x} is outside the mapping")));
        }
        // SAFETY: bounds checked above; the mapping lives as long as self.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.addr.add(offset as usize), len as usize) })
    }
}

impl Drop for ShmMapping {
    fn drop(&mut self) {
        // SAFETY: addr/len come from a successful mmap; fd is ours.
        unsafe {
            libc::munmap(self.addr.cast(), self.len);
            libc::close(self.fd);
        }
    }
}

fn query_info() -> Result<ShmInfo, Failure> {
    let fd = ShmMapping::open()?;
    let mut info = ShmInfo::default();
    // SAFETY: IOC_SHM_INFO writes exactly one ShmInfo.
    let rc = unsafe { libc::ioctl(fd, IOC_SHM_INFO as libc::c_ulong, &mut info as *mut ShmInfo) };
    let err = os_failure("ioctl RIG_IOC_SHM_INFO");
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(err);
    }
    Ok(info)
}

pub fn info() -> Result<(), Failure> {
    let info = query_info()?;
    println!("phys_addr={:#x} size={:#x} abi_version={}", info.phys_addr, info.size, info.abi_version);
    Ok(())
}

fn map_region(r: &Region) -> Result<ShmMapping, Failure> {
    let end = r.offset.checked_add(r.len).ok_or_else(|| Failure::Usage("region overflows".into()))?;
    let page = 4096u64;
    ShmMapping::map(end.div_ceil(page).saturating_mul(page) as usize)
}

pub fn fill(r: &Region) -> Result<(), Failure> {
    let mut map = map_region(r)?;
    let mut buf = vec![0u8; r.len as usize];
    rig_abi::fill_pattern(r.seed, 0, &mut buf);
    map.slice(r.offset, r.len)?.copy_from_slice(&buf);
    println!("filled {:#x} bytes at {:#x} with seed {}", r.len, r.offset, r.seed);
    Ok(())
}

pub fn verify(r: &Region) -> Result<(), Failure> {
    let mut map = map_region(r)?;
    let data = map.slice(r.offset, r.len)?.to_vec();
    match rig_abi::first_mismatch(r.seed, 0, &data) {
        None => {
            println!("verified {:#x} bytes at {:#x} with seed {}", r.len, r.offset, r.seed);
            Ok(())
        }
        Some(i) => Err(Failure::Check(format!(
            "byte {:#x} is {:#04x}, expected {:#04x} (seed {})",
            r.offset + i as u64,
            data[i],
            rig_abi::pattern_byte(r.seed, i as u64),
            r.seed
        ))),
    }
}
