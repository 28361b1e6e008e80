//! 3. Fault-driven mapping.
//!
//! A three-page mapping of /dev/rig_fault: touching pages 0 and 1 faults in
//! the module's two pages ("1234567890", "abcdefghij"); touching page 2
//! kills the toucher with SIGBUS, and the kernel does not warn (taint W).

use crate::args::Failure;
use crate::report::{Report, SysChecks};
use crate::sys::{c_str, dev_path, in_child, stat, tainted, ChildEnd, Fd, Map, TAINT_WARN};
use rig_abi::{RegionInfo, FAULT_PAGES, FAULT_STR0, FAULT_STR1, IOC_REGION_INFO, REGION_FAULT};

const PAGE: usize = 4096;

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("fault");
    let path = dev_path(rig_abi::dev::FAULT);
    let taint_before = r.must("read /proc/sys/kernel/tainted", tainted());
    let Some(fd) = r.success(format!("open {path}"), Fd::open(&path, libc::O_RDWR)) else {
        return r.finish();
    };
    let mut info = RegionInfo::default();
    if r.success("RIG_IOC_REGION_INFO", fd.ioctl(IOC_REGION_INFO, &mut info)).is_some() {
        r.eq("two pages back the device", (REGION_FAULT, FAULT_PAGES * PAGE as u64), (info.kind, info.size));
    }

    let faults_before = stat("faults");
    let len = (FAULT_PAGES as usize + 1) * PAGE;
    let Some(m) = r.success(
        "mmap three pages, one more than the device has (nothing is mapped yet)",
        Map::new(&fd, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, 0),
    ) else {
        return r.finish();
    };
    r.eq("page 0 faults in \"1234567890\"", FAULT_STR0.to_string(), c_str(&m.read(0, 16)));
    r.eq("page 1 faults in \"abcdefghij\"", FAULT_STR1.to_string(), c_str(&m.read(PAGE, 16)));
    if let (Ok(before), Ok(after)) = (faults_before, stat("faults")) {
        r.check(after >= before + 2, "the .fault handler ran for both pages", format!(">= {}", before + 2), after);
    }

    // Shared: a second mapping reaches the same pages.
    if let Ok(m2) = Map::new(&fd, 2 * PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, 0) {
        m.write(PAGE + 10, b"!");
        r.eq("a write to page 1 shows through a second mapping", b"abcdefghij!".to_vec(), m2.read(PAGE, 11));
        m.write(PAGE + 10, b"\0");
    }

    let sigbus_before = stat("sigbus");
    let ptr = m.ptr() as usize;
    let end = in_child(|| {
        // Rust's runtime catches SIGBUS (stack overflow detection) and
        // retries the access once; take the default action at once.
        // SAFETY: resetting a signal disposition in the child.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        // SAFETY: inside the mapping; the kernel answers this touch with SIGBUS.
        let b = unsafe { std::ptr::read_volatile((ptr + 2 * PAGE) as *const u8) };
        println!("note: touching page 2 read {b:#x} instead of dying");
        0
    });
    r.eq("touching page 2 kills the toucher with SIGBUS", Ok(ChildEnd::Signaled(libc::SIGBUS)), end);
    if let (Ok(before), Ok(after)) = (sigbus_before, stat("sigbus")) {
        r.eq("the handler answered VM_FAULT_SIGBUS once", before + 1, after);
    }
    if let (Some(before), Ok(after)) = (taint_before, tainted()) {
        r.check(
            after & TAINT_WARN == 0,
            "the kernel did not warn (taint flag W stays clear)",
            format!("taint without W (before: {before:#x})"),
            format!("{after:#x}"),
        );
    }
    r.finish()
}
