//! Unbinding the PCI device while processes map its BAR2.
//!
//! /dev/rig_shm, /dev/rig_pool and /dev/rig_mem (at BAR2's address) are
//! mapped and touched; then the device is unbound from the driver through
//! sysfs. The module must revoke those mappings: a touch afterwards gets
//! SIGBUS and nothing else (no read of memory the BAR no longer owns, no
//! kernel warning), while the /dev/rig_mem mapping of the module's own
//! netlink pages keeps working, and the open files answer ENODEV. Then the
//! device is bound again: the old mappings stay revoked, new ones see the
//! shared memory with the header of a second probe, the pool is back,
//! and (with a doorbell) the interrupt counters start again from zero.

use crate::args::Failure;
use crate::doorbell::{db_info, read_hring, ring, wait};
use crate::kernel::{bad_lines, Kmsg};
use crate::netlink::{ask, Answer};
use crate::pool::{info as pool_info, poll_in};
use crate::report::{Report, SysChecks};
use crate::sys::{c_str, dev_path, ename, in_child, stats, tainted, ChildEnd, Fd, Map, RW, TAINT_DIE, TAINT_WARN};
use rig_abi::{ShmHeader, ShmInfo, DB_VEC_PRODUCED, IOC_SHM_INFO, NL_GREETING, POOL_BUF_SIZE, POOL_KBUFS, POOL_NBUF};
use rig_abi::{SHM_MAGIC, STATE_PROBED};

const DRIVER: &str = "/sys/bus/pci/drivers/rig_kmod";
const PAGE: usize = 4096;

/// The PCI addresses bound to the driver ("0000:00:03.0").
fn bound_devices() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(DRIVER)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| is_pci_address(n)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// "dddd:bb:dd.f"
fn is_pci_address(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && b.iter().enumerate().all(|(i, c)| [4, 7, 10].contains(&i) || c.is_ascii_hexdigit())
}

fn driver_write(file: &str, bdf: &str) -> Result<(), String> {
    let path = format!("{DRIVER}/{file}");
    std::fs::write(&path, bdf).map_err(|e| format!("write {bdf} to {path}: {e}"))
}

/// How a forked child ended after touching `addr` (reading, or writing).
fn touch(addr: usize, write: bool) -> Result<ChildEnd, String> {
    in_child(|| {
        // Rust's runtime catches SIGBUS (stack overflow detection) and
        // retries the access once; take the default action at once.
        // SAFETY: resetting a signal disposition in the child.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        if write {
            // SAFETY: inside a live shared mapping; the kernel decides what a touch does.
            unsafe { std::ptr::write_volatile(addr as *mut u8, 0) };
            println!("note: the write went through");
        } else {
            // SAFETY: as above.
            let b = unsafe { std::ptr::read_volatile(addr as *const u8) };
            println!("note: the read returned {b:#04x}");
        }
        0
    })
}

fn shm_info(fd: &Fd) -> Result<ShmInfo, i32> {
    let mut info = ShmInfo::default();
    fd.ioctl(IOC_SHM_INFO, &mut info).map(|_| info)
}

/// The module's header through a fresh mapping of /dev/rig_shm.
fn fresh_header() -> Result<ShmHeader, String> {
    let fd = Fd::open(&dev_path(rig_abi::SHM_DEV_NAME), libc::O_RDWR)
        .map_err(|e| format!("open /dev/rig_shm: {}", ename(e)))?;
    let m = Map::new(&fd, PAGE, libc::PROT_READ, libc::MAP_SHARED, 0)
        .map_err(|e| format!("map /dev/rig_shm: {}", ename(e)))?;
    Ok(m.read_obj(0))
}

fn stat_text(name: &str) -> Option<String> {
    stats().ok()?.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A mapping under test: what it is, and the mapping itself.
struct Target {
    what: String,
    map: Map,
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("unbind-while-mapped");
    let devices = bound_devices();
    let [bdf] = devices.as_slice() else {
        return r.abort(format!("one device bound to rig_kmod expected in {DRIVER}, found {devices:?}"));
    };
    let bdf = bdf.clone();
    r.note(format!("the device is {bdf}"));

    let shm_path = dev_path(rig_abi::SHM_DEV_NAME);
    let Some(shm) = r.success(format!("open {shm_path}"), Fd::open(&shm_path, libc::O_RDWR)) else {
        return r.finish();
    };
    let Some(info) = r.success("RIG_IOC_SHM_INFO", shm_info(&shm)) else {
        return r.finish();
    };
    let Some(header) = r.must("read the module's header", fresh_header()) else {
        return r.finish();
    };
    let pool = Fd::open(&dev_path(rig_abi::dev::POOL), libc::O_RDWR);
    let mem = Fd::open(&dev_path(rig_abi::dev::MEM), libc::O_RDWR);
    let (Some(pool), Some(mem)) = (r.success("open /dev/rig_pool", pool), r.success("open /dev/rig_mem", mem)) else {
        return r.finish();
    };
    let pages_phys = match ask() {
        Ok(Answer::Shared(s)) => s.pages_phys,
        other => return r.abort(format!("netlink: no addresses ({other:?})")),
    };
    let db = Fd::open(&dev_path(rig_abi::dev::DOORBELL), libc::O_RDWR).ok();
    let doorbell = db.as_ref().and_then(|d| db_info(d).ok()).is_some_and(|i| i.doorbell == 1);

    // The mappings of BAR2, each touched once so its pages are in place.
    let pool_len = (POOL_NBUF * POOL_BUF_SIZE) as usize;
    let maps = [
        ("/dev/rig_shm", Map::new(&shm, 2 * PAGE, RW, libc::MAP_SHARED, 0)),
        ("/dev/rig_pool", Map::new(&pool, pool_len, libc::PROT_READ, libc::MAP_SHARED, 0)),
        ("/dev/rig_mem at BAR2", Map::new(&mem, 2 * PAGE, RW, libc::MAP_SHARED, info.phys_addr)),
    ];
    let mut targets = Vec::new();
    for (what, m) in maps {
        if let Some(map) = r.success(format!("map {what}"), m) {
            let _ = map.read(0, 1);
            targets.push(Target { what: what.to_string(), map });
        }
    }
    if let Some(t) = targets.iter().find(|t| t.what == "/dev/rig_mem at BAR2") {
        r.eq("/dev/rig_mem at BAR2 shows the header", SHM_MAGIC, t.map.read_obj::<u32>(0));
    }
    let pages = r.success(
        "map the netlink pages through /dev/rig_mem",
        Map::new(&mem, PAGE, libc::PROT_READ, libc::MAP_SHARED, pages_phys),
    );
    if targets.len() != 3 || pages.is_none() {
        return r.finish();
    }
    let taint_before = tainted().unwrap_or(0);
    let log = r.must("start reading the kernel log from here", Kmsg::from_now());

    // Unbind. Whatever fails below, the device is bound again at the end.
    let unbound = r.must(format!("unbind {bdf} through sysfs"), driver_write("unbind", &bdf)).is_some();
    if unbound {
        r.eq("the driver has no device left", Vec::<String>::new(), bound_devices());
        for t in &targets {
            let addr = t.map.ptr() as usize;
            r.eq(
                format!("{}: a read of the touched page gets SIGBUS", t.what),
                Ok(ChildEnd::Signaled(libc::SIGBUS)),
                touch(addr, false),
            );
            r.eq(
                format!("{}: a read of a page not touched before gets SIGBUS", t.what),
                Ok(ChildEnd::Signaled(libc::SIGBUS)),
                touch(addr + PAGE, false),
            );
        }
        r.eq(
            "/dev/rig_shm: a write gets SIGBUS",
            Ok(ChildEnd::Signaled(libc::SIGBUS)),
            touch(targets[0].map.ptr() as usize, true),
        );
        if let Some(p) = &pages {
            r.eq("the netlink pages stay mapped: the greeting reads", NL_GREETING.to_string(), c_str(&p.read(0, 64)));
        }
        r.errno("RIG_IOC_SHM_INFO on the open file fails", libc::ENODEV, &shm_info(&shm));
        let again = Map::new(&shm, PAGE, RW, libc::MAP_SHARED, 0);
        r.errno("a new mmap() of /dev/rig_shm fails", libc::ENODEV, &again.map(|_| ()));
        r.errno("opening /dev/rig_shm fails", libc::ENODEV, &Fd::open(&shm_path, libc::O_RDWR).map(|_| ()));
        let again = Map::new(&mem, PAGE, RW, libc::MAP_SHARED, info.phys_addr);
        r.errno("/dev/rig_mem refuses BAR2's address", libc::EPERM, &again.map(|_| ()));
        r.errno("RIG_IOC_POOL_INFO fails", libc::ENODEV, &pool_info(&pool));
        r.check(
            matches!(poll_in(&pool, 0), Ok(ev) if ev & libc::POLLHUP != 0),
            "poll() on /dev/rig_pool reports POLLHUP",
            "POLLHUP",
            format!("{:?}", poll_in(&pool, 0)),
        );
        r.eq(
            "the stats show the pool detached and no device for the doorbell",
            (Some("detached".to_string()), Some("no device".to_string())),
            (stat_text("pool"), stat_text("doorbell")),
        );
    }

    let bound = r.must(format!("bind {bdf} again through sysfs"), driver_write("bind", &bdf)).is_some();
    if bound {
        r.eq("the driver has the device again", vec![bdf.clone()], bound_devices());
        for t in &targets {
            r.eq(
                format!("{}: the old mapping stays revoked (SIGBUS)", t.what),
                Ok(ChildEnd::Signaled(libc::SIGBUS)),
                touch(t.map.ptr() as usize, false),
            );
        }
        match fresh_header() {
            Ok(h) => {
                r.eq(
                    "a new mapping shows the header of a second probe (magic, state, probe_count)",
                    (SHM_MAGIC, STATE_PROBED, header.probe_count + 1),
                    (h.magic, h.state, h.probe_count),
                );
            }
            Err(e) => {
                r.check(false, "map /dev/rig_shm again", "success", e);
            }
        }
        r.eq("RIG_IOC_SHM_INFO on the file opened before works again", Ok(info), shm_info(&shm));
        match pool_info(&pool) {
            Ok(p) => {
                r.eq(
                    "the pool is back, full and idle: free, ready, taken, pending",
                    (POOL_KBUFS, 0, 0, 0),
                    (p.free, p.ready, p.taken, p.pending),
                );
            }
            Err(e) => {
                r.check(false, "RIG_IOC_POOL_INFO", "success", ename(e));
            }
        }
        if let (true, Some(db)) = (doorbell, &db) {
            check_doorbell_again(&mut r, db);
        }
    }

    if let Some(log) = log {
        match log.read() {
            Ok(lines) => {
                for l in lines.iter().filter(|l| l.contains("rig_kmod")) {
                    r.note(format!("kernel: {l}"));
                }
                let bad = bad_lines(&lines);
                r.check(
                    bad.is_empty(),
                    "the kernel logged no WARNING, BUG, Oops or call trace",
                    "none",
                    format!("{bad:?}"),
                );
            }
            Err(e) => {
                r.check(false, "read the kernel log", "success", e);
            }
        }
    }
    let taint = tainted().unwrap_or(0);
    r.eq(
        "no new warning or oops taint (W, D)",
        taint_before & (TAINT_WARN | TAINT_DIE),
        taint & (TAINT_WARN | TAINT_DIE),
    );
    r.finish()
}

/// After a rebind the doorbell counts again from zero, in the kernel and in
/// the ring, and one interrupt counts once.
fn check_doorbell_again(r: &mut Report, db: &Fd) {
    let Some(i) = r.success("RIG_IOC_DB_INFO after the rebind", db_info(db)) else {
        return;
    };
    r.eq("the doorbell is back", 1, i.doorbell);
    let v = DB_VEC_PRODUCED as usize;
    r.eq("the kernel's interrupt counts start from zero", [0u64; 2], [i.irqs[0], i.irqs[1]]);
    match read_hring() {
        Ok(h) => {
            r.eq("the ring's interrupt count starts from zero", 0, h.irqs);
        }
        Err(e) => {
            r.check(false, "read the ring", "success", e);
        }
    }
    r.success(format!("ring our own peer id on vector {v}"), ring(db, i.own_peer, v as u32));
    r.eq("the interrupt arrives, counted once", Ok(1), wait(db, v as u32, 0, 5000));
    match read_hring() {
        Ok(h) => {
            r.eq("the ring counts it once too", 1, h.irqs);
        }
        Err(e) => {
            r.check(false, "read the ring", "success", e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:00:03.0"));
        assert!(is_pci_address("0000:0a:1f.7"));
        assert!(!is_pci_address("new_id"));
        assert!(!is_pci_address("module"));
        assert!(!is_pci_address("0000:00:03"));
        assert!(!is_pci_address("0000-00:03.0"));
    }
}
