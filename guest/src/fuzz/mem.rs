//! The memory a thread hands to the kernel: a scratch area followed by a
//! guard page, a read-only page and another guard, and the thread's live
//! mappings of the module's nodes. A pointer the kernel may write through
//! only ever lands in memory of the thread's own or faults: the Rust heap
//! and the stacks are never in reach, whatever the length.

use super::op::{Ptr, SCRATCH};

const PAGE: usize = 4096;

/// A live mapping made by this thread.
#[derive(Clone, Copy, Debug)]
pub struct MapEntry {
    pub addr: usize,
    /// Page multiple.
    pub len: usize,
    pub prot: i32,
}

/// Rounds up to a page.
pub fn page_up(n: u64) -> u64 {
    n.saturating_add(PAGE as u64 - 1) & !(PAGE as u64 - 1)
}

/// The scratch area and its guard pages (one anonymous mapping).
pub struct Arena {
    base: *mut u8,
    len: usize,
}

// SAFETY: the arena is a plain memory region owned by one thread at a
// time; the pointer is only an address.
unsafe impl Send for Arena {}

impl Arena {
    /// Maps [scratch][PROT_NONE][read-only][PROT_NONE].
    pub fn new() -> Result<Arena, i32> {
        let len = SCRATCH + 3 * PAGE;
        // SAFETY: a fresh anonymous mapping chosen by the kernel.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(crate::sys::errno());
        }
        let base = base.cast::<u8>();
        // SAFETY: all three pages lie inside the mapping made above.
        unsafe {
            std::ptr::write_bytes(base.add(SCRATCH + PAGE), 0x5a, PAGE);
            libc::mprotect(base.add(SCRATCH).cast(), PAGE, libc::PROT_NONE);
            libc::mprotect(base.add(SCRATCH + PAGE).cast(), PAGE, libc::PROT_READ);
            libc::mprotect(base.add(SCRATCH + 2 * PAGE).cast(), PAGE, libc::PROT_NONE);
        }
        Ok(Arena { base, len })
    }

    /// Start of the scratch area.
    pub fn scratch(&self) -> usize {
        self.base as usize
    }

    /// The scratch area as bytes.
    pub fn scratch_mut(&mut self) -> &mut [u8] {
        // SAFETY: the first SCRATCH bytes are readable and writable, and
        // only this thread uses them.
        unsafe { std::slice::from_raw_parts_mut(self.base, SCRATCH) }
    }

    /// Bytes `[off, off + len)` of the scratch area (clamped to it).
    pub fn scratch_slice(&self, off: usize, len: usize) -> &[u8] {
        let off = off.min(SCRATCH);
        let len = len.min(SCRATCH - off);
        // SAFETY: inside the readable scratch area.
        unsafe { std::slice::from_raw_parts(self.base.add(off), len) }
    }

    /// Where `p` points for a buffer of `len` bytes the kernel may write:
    /// the address and, for memory of ours, how many bytes from there are
    /// writable by us before the call (the rest faults, or is not ours to
    /// fill). Mapping pointers are bounded by the caller.
    pub fn resolve(&self, p: Ptr, len: usize, maps: &[MapEntry]) -> (usize, usize) {
        let b = self.base as usize;
        match p {
            Ptr::Scratch(off) => {
                let off = off.min(SCRATCH);
                (b + off, SCRATCH - off)
            }
            Ptr::Straddle(n) => (b + SCRATCH - n.min(PAGE), n.min(PAGE)),
            Ptr::ReadOnly(off) => (b + SCRATCH + PAGE + off % PAGE, 0),
            Ptr::ProtNone(off) => (b + SCRATCH + off % PAGE, 0),
            Ptr::Mapping(k, off) => match maps.get(k % maps.len().max(1)) {
                Some(m) => {
                    let off = off % m.len;
                    (m.addr + off, 0)
                }
                None => (b, SCRATCH),
            },
            Ptr::Null => (0, 0),
            Ptr::Low(a) => (a, 0),
            Ptr::Kernel(a) => (a as usize, 0),
            Ptr::NonCanonical => (0x8000_0000_0000_0000, 0),
            // Crosses TASK_SIZE_MAX: access_ok() refuses it before any access.
            Ptr::EndOfUser if len >= 16 => (0x7fff_ffff_f000 - 8, 0),
            Ptr::EndOfUser => (b + SCRATCH, 0),
        }
    }

    /// Whether the kernel may be asked to write `len` bytes at `p`: only
    /// where nothing but the fuzzer's own memory (or a fault) can be hit.
    pub fn kernel_may_write(&self, p: Ptr, len: usize, maps: &[MapEntry]) -> bool {
        match p {
            Ptr::Mapping(k, off) => maps.get(k % maps.len().max(1)).is_some_and(|m| off % m.len + len <= m.len),
            _ => true,
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: base/len come from the mmap above.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Removes pages `[addr, addr + len)` from the registry, splitting entries.
pub fn forget_range(maps: &mut Vec<MapEntry>, addr: usize, len: usize) {
    let end = addr + len;
    let mut out = Vec::with_capacity(maps.len() + 1);
    for m in maps.drain(..) {
        let mend = m.addr + m.len;
        if mend <= addr || m.addr >= end {
            out.push(m);
            continue;
        }
        if m.addr < addr {
            out.push(MapEntry { addr: m.addr, len: addr - m.addr, prot: m.prot });
        }
        if mend > end {
            out.push(MapEntry { addr: end, len: mend - end, prot: m.prot });
        }
    }
    *maps = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_a_range_splits_entries() {
        let mut maps =
            vec![MapEntry { addr: 0x10000, len: 0x4000, prot: 3 }, MapEntry { addr: 0x20000, len: 0x1000, prot: 1 }];
        forget_range(&mut maps, 0x11000, 0x1000);
        let spans: Vec<(usize, usize)> = maps.iter().map(|m| (m.addr, m.len)).collect();
        assert_eq!(spans, vec![(0x10000, 0x1000), (0x12000, 0x2000), (0x20000, 0x1000)]);
        forget_range(&mut maps, 0x0, 0x12000 + 0x1000);
        let spans: Vec<(usize, usize)> = maps.iter().map(|m| (m.addr, m.len)).collect();
        assert_eq!(spans, vec![(0x13000, 0x1000), (0x20000, 0x1000)]);
        assert_eq!(page_up(1), 4096);
        assert_eq!(page_up(4096), 4096);
        assert_eq!(page_up(u64::MAX), !4095);
    }

    #[test]
    fn pointers_stay_in_the_arena_or_fault() {
        let a = Arena::new().expect("arena");
        let base = a.scratch();
        let maps = [MapEntry { addr: 0x7000_0000, len: 0x2000, prot: 3 }];
        assert_eq!(a.resolve(Ptr::Scratch(16), 100, &maps), (base + 16, SCRATCH - 16));
        assert_eq!(a.resolve(Ptr::Straddle(5), 100, &maps), (base + SCRATCH - 5, 5));
        assert_eq!(a.resolve(Ptr::Mapping(3, 0x2001), 8, &maps).0, 0x7000_0001);
        assert!(a.kernel_may_write(Ptr::Mapping(0, 0x1ff8), 8, &maps));
        assert!(!a.kernel_may_write(Ptr::Mapping(0, 0x1ff8), 9, &maps));
        assert_eq!(a.resolve(Ptr::EndOfUser, 16, &maps).0 + 16, 0x7fff_ffff_f008);
        // The read-only page holds what was written before it was sealed.
        let ro = a.resolve(Ptr::ReadOnly(0), 1, &maps).0;
        // SAFETY: the read-only page is readable.
        assert_eq!(unsafe { std::ptr::read_volatile(ro as *const u8) }, 0x5a);
    }
}
