//! 2. mmap over kmalloc'd and vmalloc'd pages.
//!
//! The articles' way, and the modern vmalloc_user() + remap_vmalloc_range().
//! The same checks serve the memory reserved at boot (9).
//!
//! Through one mapping: the module's greeting, then a seeded pattern written
//! over the whole buffer; a second mapping and the kernel's own view
//! (read()) must show the same bytes. A mapping larger than the buffer, past
//! its end or private fails with EINVAL; MAP_LOCKED works. Then the pages
//! behind the mapping (/proc/self/pagemap, /proc/kpageflags) show how each
//! device maps: no kmalloc'd page is marked reserved while it is part of a
//! compound page (what CONFIG_DEBUG_VM_PGFLAGS kernels trap), remap_pfn_range()
//! leaves the pages unmapped as far as their struct page knows, and
//! remap_vmalloc_range() maps them like any other page.

use crate::args::{Failure, Opts};
use crate::report::{Report, SysChecks};
use crate::sys::{c_str, dev_path, kpf, page_flags, pagemap_pfn, stat, Fd, Map, RW};
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

/// One page behind a mapping: its pfn and its /proc/kpageflags.
#[derive(Debug, Clone, Copy)]
pub struct PageInfo {
    pub pfn: u64,
    pub flags: u64,
}

/// The pages behind the first `size` bytes of `m` as /proc/self/pagemap
/// finds them: None for a VM_PFNMAP mapping, which it does not walk.
fn mapped_pages(m: &Map, size: usize) -> Result<Option<Vec<PageInfo>>, String> {
    let mut pages = Vec::new();
    for i in 0..size / PAGE {
        match pagemap_pfn(m.ptr() as usize + i * PAGE)? {
            Some(pfn) => pages.push(PageInfo { pfn, flags: page_flags(pfn)? }),
            None if i == 0 => return Ok(None),
            None => return Err(format!("page {i} is not present, page 0 is")),
        }
    }
    Ok(Some(pages))
}

/// Pages `pfn`, `pfn + 1`, ... `count` of them, with their flags.
fn pages_at(pfn: u64, count: usize) -> Result<Vec<PageInfo>, String> {
    (pfn..pfn + count as u64).map(|pfn| Ok(PageInfo { pfn, flags: page_flags(pfn)? })).collect()
}

/// How many pages show each combination of flags, in order of appearance.
fn flag_summary(pages: &[PageInfo]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for p in pages {
        let names = kpf::names(p.flags);
        match out.iter_mut().find(|(n, _)| *n == names) {
            Some((_, c)) => *c += 1,
            None => out.push((names, 1)),
        }
    }
    out
}

/// What [`check_buffer`] leaves for device-specific checks.
pub struct Checked {
    pub info: RegionInfo,
    /// The pages behind the whole-buffer mapping (pagemap); None for VM_PFNMAP.
    pub mapped: Option<Vec<PageInfo>>,
}

/// Runs the checks on `b` into `r`.
pub fn check_buffer(r: &mut Report, b: &Buffer, seed: u32) -> Option<Checked> {
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
    let mmaps_before = stat("mmaps");
    let mut mapped = 0u64;

    let a = r.success("map the whole buffer shared", Map::new(&fd, size, RW, libc::MAP_SHARED, 0))?;
    mapped += 1;
    r.eq("it starts with the module's greeting", b.greeting.to_string(), c_str(&a.read(0, 64)));

    a.fill_pattern(seed, 0, size);
    let fd2 = r.success(format!("open {path} again"), Fd::open(&path, libc::O_RDWR))?;
    if let Some(b2) = r.success("map it a second time", Map::new(&fd2, size, RW, libc::MAP_SHARED, 0)) {
        mapped += 1;
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
            mapped += 1;
            r.eq("it shows that page of the pattern", a.read(PAGE, 64), l.read(0, 64));
            l.write(0, b"locked");
            r.eq("a write through it shows in the first mapping", b"locked".to_vec(), a.read(PAGE, 6));
        }
    }
    // Leave the buffer as the module made it, so the check can run again.
    let mut greeting = b.greeting.as_bytes().to_vec();
    greeting.push(0);
    a.write(0, &greeting);
    match (mmaps_before, stat("mmaps")) {
        (Ok(before), Ok(after)) => {
            r.eq("`mmaps` counts each mmap() that succeeded, none that failed", before + mapped, after);
        }
        (b, a) => {
            r.check(false, "read the `mmaps` counter", "a number", format!("{b:?} / {a:?}"));
        }
    }
    // Every page was written above, so every page is present.
    let mapped = r.must("look up the mapping in /proc/self/pagemap", mapped_pages(&a, size))?;
    Some(Checked { info, mapped })
}

/// The three buffers of /dev/rig_kmalloc, /dev/rig_vmalloc and /dev/rig_vmalloc_user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Kmalloc,
    Vmalloc,
    VmallocUser,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Kmalloc => "mmap-kmalloc",
            Which::Vmalloc => "mmap-vmalloc",
            Which::VmallocUser => "mmap-vmalloc-user",
        }
    }

    fn buffer(self) -> Buffer {
        match self {
            Which::Kmalloc => Buffer {
                dev: rig_abi::dev::KMALLOC,
                kind: rig_abi::REGION_KMALLOC,
                size: Some(rig_abi::KMALLOC_SIZE),
                greeting: rig_abi::KMALLOC_GREETING,
            },
            Which::Vmalloc => Buffer {
                dev: rig_abi::dev::VMALLOC,
                kind: rig_abi::REGION_VMALLOC,
                size: Some(rig_abi::VMALLOC_SIZE),
                greeting: rig_abi::VMALLOC_GREETING,
            },
            Which::VmallocUser => Buffer {
                dev: rig_abi::dev::VMALLOC_USER,
                kind: rig_abi::REGION_VMALLOC_USER,
                size: Some(rig_abi::VMALLOC_USER_SIZE),
                greeting: rig_abi::VMALLOC_USER_GREETING,
            },
        }
    }
}

/// Pages of `pages` with bit `bit` set, as indices.
fn with_flag(pages: &[PageInfo], bit: u32) -> Vec<usize> {
    pages.iter().enumerate().filter(|(_, p)| kpf::has(p.flags, bit)).map(|(i, _)| i).collect()
}

/// Pages marked reserved while part of a compound page.
fn reserved_compound(pages: &[PageInfo]) -> Vec<usize> {
    pages
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            kpf::has(p.flags, kpf::RESERVED)
                && (kpf::has(p.flags, kpf::COMPOUND_HEAD) || kpf::has(p.flags, kpf::COMPOUND_TAIL))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Notes how many pages show each combination of flags.
fn note_flags(r: &Report, what: &str, pages: &[PageInfo]) {
    let pfns: Vec<String> = pages.iter().map(|p| format!("{:#x}", p.pfn)).collect();
    r.note(format!("{what}: pfns {}", pfns.join(" ")));
    for (flags, count) in flag_summary(pages) {
        r.note(format!("{what}: {count} page(s) {flags}"));
    }
}

pub fn run(args: &[String], which: Which) -> Result<(), Failure> {
    let opts = Opts::parse(args, &["--seed"])?;
    let seed = opts.num("--seed", 0x6d6d6170)? as u32;
    let mut r = Report::new(which.name());
    let Some(Checked { info, mapped }) = check_buffer(&mut r, &which.buffer(), seed) else {
        return r.finish();
    };
    let none: Vec<usize> = Vec::new();
    let pfnmap = "remap_pfn_range() makes a VM_PFNMAP mapping, which /proc/self/pagemap does not walk";
    match which {
        Which::Kmalloc => {
            r.check(
                info.phys != 0 && info.phys % PAGE as u64 == 0,
                "a kmalloc'd buffer is physically contiguous, page-aligned",
                "a page-aligned address",
                format!("{:#x}", info.phys),
            );
            r.check(mapped.is_none(), pfnmap, "no pages", format!("{mapped:?}"));
            let count = info.size as usize / PAGE;
            if let Some(pages) =
                r.must("read the buffer's pages in /proc/kpageflags", pages_at(info.phys / PAGE as u64, count))
            {
                note_flags(&r, "kmalloc buffer", &pages);
                r.eq(
                    "no page is marked reserved while part of a compound page (PF_NO_COMPOUND)",
                    none.clone(),
                    reserved_compound(&pages),
                );
                r.eq(
                    "no page counts as mapped: VM_PFNMAP takes no page references",
                    none,
                    with_flag(&pages, kpf::MMAP),
                );
            }
        }
        Which::Vmalloc => {
            r.eq("a vmalloc'd buffer reports no physical address", 0, info.phys);
            r.check(mapped.is_none(), pfnmap, "no pages", format!("{mapped:?}"));
        }
        Which::VmallocUser => {
            r.eq("a vmalloc'd buffer reports no physical address", 0, info.phys);
            let Some(pages) = mapped else {
                return r.abort("remap_vmalloc_range() maps the pages themselves: pagemap should find them");
            };
            note_flags(&r, "vmalloc_user buffer", &pages);
            let all: Vec<usize> = (0..pages.len()).collect();
            r.eq(
                "remap_vmalloc_range() maps the pages themselves: pagemap finds them, each counts as mapped",
                all,
                with_flag(&pages, kpf::MMAP),
            );
            let odd: Vec<usize> = pages
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    [kpf::RESERVED, kpf::SLAB, kpf::COMPOUND_HEAD, kpf::COMPOUND_TAIL]
                        .iter()
                        .any(|&b| kpf::has(p.flags, b))
                })
                .map(|(i, _)| i)
                .collect();
            r.eq("ordinary pages: none reserved, slab or compound", none, odd);
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(flags: &[u32]) -> PageInfo {
        PageInfo { pfn: 1, flags: flags.iter().fold(0, |f, &b| f | 1 << b) }
    }

    #[test]
    fn finds_reserved_compound_pages() {
        let pages = [
            page(&[kpf::COMPOUND_HEAD]),
            page(&[kpf::COMPOUND_TAIL, kpf::RESERVED]),
            page(&[kpf::RESERVED]),
            page(&[kpf::COMPOUND_HEAD, kpf::RESERVED]),
        ];
        assert_eq!(reserved_compound(&pages), vec![1, 3]);
        assert_eq!(with_flag(&pages, kpf::RESERVED), vec![1, 2, 3]);
        assert!(with_flag(&pages, kpf::MMAP).is_empty());
        let summary = flag_summary(&pages);
        assert_eq!(summary.len(), 4);
        assert_eq!(flag_summary(&[pages[2], pages[2]]), vec![("reserved".to_string(), 2)]);
    }
}
