//! 9. Memory reserved at boot (memmap=SIZE$START).
//!
//! The range the module got as parameters is claimed in /proc/iomem, is
//! not System RAM, and /dev/rig_reserved maps it with the checks of
//! mmap-kmalloc (greeting, pattern through two mappings and read()).
//! Unmapping and shrinking pieces of a mapping leave x86 PAT's bookkeeping
//! consistent.

use crate::args::{Failure, Opts};
use crate::kernel::Kmsg;
use crate::mmap::{check_buffer, Buffer};
use crate::report::{Report, SysChecks};
use crate::sys::{dev_path, ename, errno, module_param, read_text, stats, Fd, RW};

pub fn run(args: &[String]) -> Result<(), Failure> {
    let opts = Opts::parse(args, &["--seed"])?;
    let seed = opts.num("--seed", 0x72657376)? as u32;
    let mut r = Report::new("reserved");
    let phys: u64 = module_param("reserved_phys").and_then(|s| s.parse().ok()).unwrap_or(0);
    let size: u64 = module_param("reserved_size").and_then(|s| s.parse().ok()).unwrap_or(0);
    let cmdline = read_text("/proc/cmdline").unwrap_or_default();
    r.note(format!("reserved_phys={phys:#x} reserved_size={size:#x}; cmdline: {}", cmdline.trim()));
    let state = stats().ok().and_then(|s| s.into_iter().find(|(k, _)| k == "reserved")).map(|(_, v)| v);
    if !r.eq("the module mapped the range (stats: reserved)", Some("mapped".to_string()), state) {
        return r.abort(
            "nothing to check without the range: boot with memmap=SIZE$START and pass reserved_phys/reserved_size",
        );
    }
    r.check(
        cmdline.contains("memmap="),
        "the kernel was booted with memmap=",
        "memmap= on /proc/cmdline",
        cmdline.trim(),
    );

    let iomem = read_text("/proc/iomem").unwrap_or_default();
    let ours = iomem.lines().find(|l| l.contains("rig_kmod reserved")).map(|l| l.trim().to_string());
    let want = format!("{:08x}-{:08x} : rig_kmod reserved", phys, phys + size - 1);
    r.eq("/proc/iomem shows the range claimed by the module", Some(want), ours);
    let ram = iomem.lines().filter(|l| l.contains("System RAM")).any(|l| {
        let range = l.trim().split(' ').next().unwrap_or("");
        let mut it = range.split('-').filter_map(|x| u64::from_str_radix(x, 16).ok());
        matches!((it.next(), it.next()), (Some(a), Some(b)) if a < phys + size && phys <= b)
    });
    r.eq("no System RAM overlaps it", false, ram);

    let b = Buffer {
        dev: rig_abi::dev::RESERVED,
        kind: rig_abi::REGION_RESERVED,
        size: Some(size),
        greeting: rig_abi::RESERVED_GREETING,
    };
    if let Some(c) = check_buffer(&mut r, &b, seed) {
        r.eq("RIG_IOC_REGION_INFO reports the range of the parameters", phys, c.info.phys);
    }
    pieces(&mut r);
    r.finish()
}

/// Unmapping a piece of a mapping, or shrinking it, must leave the
/// kernel's bookkeeping of memory types alone: x86 PAT logs "freeing
/// invalid memtype" when it is asked to give back part of a type it
/// reserved for a whole remap_pfn_range() mapping (found by the fuzzer).
fn pieces(r: &mut Report) {
    const PAGE: usize = 4096;
    let Some(log) = r.must("read the kernel log from now on", Kmsg::from_now()) else { return };
    let Some(fd) = r.success("open /dev/rig_reserved", Fd::open(&dev_path(rig_abi::dev::RESERVED), libc::O_RDWR))
    else {
        return;
    };
    // SAFETY: a fresh shared mapping of the device; only unmapped below.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), 4 * PAGE, RW, libc::MAP_SHARED, fd.0, 0) };
    if addr == libc::MAP_FAILED {
        r.check(false, "map four pages", "success", ename(errno()));
        return;
    }
    let a = addr as usize;
    // SAFETY: every address below lies in the mapping made above; each
    // call unmaps or shrinks a piece of it, the last one what is left.
    let (hole, shrunk, rest) = unsafe {
        std::ptr::read_volatile((a + PAGE) as *const u8);
        let hole = libc::munmap((a + PAGE) as *mut libc::c_void, PAGE);
        let shrunk = libc::mremap((a + 2 * PAGE) as *mut libc::c_void, 2 * PAGE, PAGE, 0);
        let rest = libc::munmap(a as *mut libc::c_void, 4 * PAGE);
        (hole, shrunk, rest)
    };
    r.eq("munmap of the second page of four", 0, hole);
    r.check(shrunk != libc::MAP_FAILED, "mremap shrinks the last two pages to one", "success", ename(errno()));
    r.eq("munmap of the rest", 0, rest);
    let pat: Vec<String> =
        log.read().unwrap_or_default().into_iter().filter(|l| l.contains("memtype") || l.contains("x86/PAT")).collect();
    r.check(
        pat.is_empty(),
        "the kernel's memory types stay consistent (no x86/PAT complaint)",
        "no line",
        format!("{pat:?}"),
    );
}
