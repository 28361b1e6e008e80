//! 2. mmap over kmalloc'd and vmalloc'd pages (and, with the same checks,
//! 9. the memory reserved at boot).
//!
//! Through one mapping: the module's greeting, then a seeded pattern written
//! over the whole buffer; a second mapping and the kernel's own view
//! (read()) must show the same bytes. A mapping larger than the buffer, past
//! its end or private fails with EINVAL; MAP_LOCKED works.

use crate::args::{Failure, Opts};
use crate::report::Report;
use crate::sys::{c_str, dev_path, Fd, Map, RW};
use rig_abi::{RegionInfo, IOC_REGION_INFO};

const PAGE: usize = 4096;

/// The device under test.
pub struct Buffer {
    /// Name under /dev.
    pub dev: &'static str,
    /// Expected `RegionInfo::kind`.
    pub kind: u32,
    /// Expected size; None: any page multiple.
    pub size: Option<u64>,
    /// What the module wrote at the start.
    pub greeting: &'static str,
}

/// Runs the checks on `b` into `r`; returns the region info.
pub fn check_buffer(r: &mut Report, b: &Buffer, seed: u32) -> Option<RegionInfo> {
    let path = dev_path(b.dev);
    let fd = r.success(format!("open {path}"), Fd::open(&path, libc::O_RDWR))?;
    let mut info = RegionInfo::default();
    r.success("RIG_IOC_REGION_INFO", fd.ioctl(IOC_REGION_INFO, &mut info))?;
    r.eq("the region's kind", b.kind, info.kind);
    match b.size {
        Some(size) => {
            r.eq("the region's size", size, info.size);
        }
        None => {
            r.check(
                info.size >= PAGE as u64 && info.size % PAGE as u64 == 0,
                "the region's size is a page multiple",
                "a page multiple",
                format!("{:#x}", info.size),
            );
        }
    }
    let size = info.size as usize;
    r.note(format!("{path}: {size:#x} bytes at physical {:#x} (0: not contiguous)", info.phys));

    let a = r.success("map the whole buffer shared", Map::new(&fd, size, RW, libc::MAP_SHARED, 0))?;
    r.eq("it starts with the module's greeting", b.greeting.to_string(), c_str(&a.read(0, 64)));

    a.fill_pattern(seed, 0, size);
    let fd2 = r.success(format!("open {path} again"), Fd::open(&path, libc::O_RDWR))?;
    if let Some(b2) = r.success("map it a second time", Map::new(&fd2, size, RW, libc::MAP_SHARED, 0)) {
        r.eq(
            format!("the second mapping shows the pattern (seed {seed}) written through the first"),
            None,
            rig_abi::first_mismatch(seed, 0, &b2.read(0, size)),
        );
        b2.write(size - 16, b"second mapping\0\0");
        r.eq(
            "a write through the second mapping shows in the first",
            b"second mapping\0\0".to_vec(),
            a.read(size - 16, 16),
        );
        a.fill_pattern(seed, 0, size);
    }
    let mut kview = vec![0u8; size];
    if let Some(n) = r.success("read() the kernel's view of the buffer", fd.pread(&mut kview, 0)) {
        r.eq("read() returns the whole buffer", size, n);
        r.eq("the kernel sees the pattern userspace wrote", None, rig_abi::first_mismatch(seed, 0, &kview));
    }

    let big = Map::new(&fd, size + PAGE, RW, libc::MAP_SHARED, 0);
    r.errno("a mapping one page larger than the buffer fails", libc::EINVAL, &big.map(|_| ()));
    let past = Map::new(&fd, PAGE, RW, libc::MAP_SHARED, size as u64);
    r.errno("a mapping at the buffer's end fails", libc::EINVAL, &past.map(|_| ()));
    let across = Map::new(&fd, 2 * PAGE, RW, libc::MAP_SHARED, (size - PAGE) as u64);
    r.errno("a mapping across the buffer's end fails", libc::EINVAL, &across.map(|_| ()));
    let private = Map::new(&fd, PAGE, RW, libc::MAP_PRIVATE, 0);
    r.errno("a private mapping fails (it would never reach the buffer)", libc::EINVAL, &private.map(|_| ()));

    if size >= 2 * PAGE {
        let locked = Map::new(&fd, PAGE, RW, libc::MAP_SHARED | libc::MAP_LOCKED, PAGE as u64);
        if let Some(l) = r.success("MAP_LOCKED of the second page works", locked) {
            r.eq("it shows that page of the pattern", a.read(PAGE, 64), l.read(0, 64));
            l.write(0, b"locked");
            r.eq("a write through it shows in the first mapping", b"locked".to_vec(), a.read(PAGE, 6));
        }
    }
    // Leave the buffer as the module made it, so the check can run again.
    let mut greeting = b.greeting.as_bytes().to_vec();
    greeting.push(0);
    a.write(0, &greeting);
    Some(info)
}

pub fn run(args: &[String], which: &str) -> Result<(), Failure> {
    let opts = Opts::parse(args, &["--seed"])?;
    let seed = opts.num("--seed", 0x6d6d6170)? as u32;
    let (name, b) = match which {
        "kmalloc" => (
            "mmap-kmalloc",
            Buffer {
                dev: rig_abi::dev::KMALLOC,
                kind: rig_abi::REGION_KMALLOC,
                size: Some(rig_abi::KMALLOC_SIZE),
                greeting: rig_abi::KMALLOC_GREETING,
            },
        ),
        _ => (
            "mmap-vmalloc",
            Buffer {
                dev: rig_abi::dev::VMALLOC,
                kind: rig_abi::REGION_VMALLOC,
                size: Some(rig_abi::VMALLOC_SIZE),
                greeting: rig_abi::VMALLOC_GREETING,
            },
        ),
    };
    let mut r = Report::new(name);
    if let Some(info) = check_buffer(&mut r, &b, seed) {
        if which == "kmalloc" {
            r.check(
                info.phys != 0 && info.phys % PAGE as u64 == 0,
                "a kmalloc'd buffer is physically contiguous, page-aligned",
                "a page-aligned address",
                format!("{:#x}", info.phys),
            );
        } else {
            r.eq("a vmalloc'd buffer reports no physical address", 0, info.phys);
        }
    }
    r.finish()
}
