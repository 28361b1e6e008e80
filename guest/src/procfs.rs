//! 5. procfs with seq_file.
//!
//! /proc/rig_kmod/regions lists the module's regions with the sizes of the
//! ABI; reading it a byte at a time gives the same text as in one go (the
//! seq_file iterator resumes mid-line); /proc/rig_kmod/stats shows counters
//! that move when the module is used, and the pool's state.

use crate::args::Failure;
use crate::report::Report;
use crate::sys::{dev_path, read_text, stat, stats, Fd};
use rig_abi::{Config, IOC_GET_CONFIG};

/// The whole file, read `chunk` bytes at a time.
fn read_in_chunks(path: &str, chunk: usize) -> Result<String, String> {
    let fd = Fd::open(path, libc::O_RDONLY).map_err(|e| format!("open {path}: {}", crate::sys::ename(e)))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match fd.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read {path}: {}", crate::sys::ename(e))),
        }
    }
    String::from_utf8(out).map_err(|_| format!("{path} is not text"))
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("procfs");
    let regions = format!("/proc/{}/regions", rig_abi::PROC_DIR);
    let Some(text) = r.must(format!("read {regions}"), read_text(&regions)) else {
        return r.finish();
    };
    for line in text.lines() {
        r.note(line);
    }
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    r.eq(
        "the first line names the columns",
        vec!["name", "kind", "phys", "size"],
        rows.first().cloned().unwrap_or_default(),
    );
    let size_of = |name: &str| -> Option<u64> {
        let row = rows.iter().find(|c| c.first() == Some(&name))?;
        u64::from_str_radix(row.get(3)?.trim_start_matches("0x"), 16).ok()
    };
    let expected = [
        ("netlink", rig_abi::NL_PAGES_SIZE),
        ("kmalloc", rig_abi::KMALLOC_SIZE),
        ("vmalloc", rig_abi::VMALLOC_SIZE),
        ("vmalloc_user", rig_abi::VMALLOC_USER_SIZE),
        ("fault", rig_abi::FAULT_PAGES * 4096),
        ("pool", (rig_abi::POOL_NBUF * rig_abi::POOL_BUF_SIZE) as u64),
    ];
    for (name, size) in expected {
        r.eq(format!("region `{name}` is listed with its size"), Some(size), size_of(name));
    }
    r.check(size_of("shm").is_some(), "region `shm` (ivshmem BAR2) is listed", "a row", "none");

    match read_in_chunks(&regions, 1) {
        Ok(bytewise) => {
            r.eq("reading it one byte at a time gives the same text", text.clone(), bytewise);
        }
        Err(e) => {
            r.check(false, "read it one byte at a time", "success", e);
        }
    }
    if let Ok(fd) = Fd::open(&regions, libc::O_RDONLY) {
        let mut first = vec![0u8; 10];
        let _ = fd.read(&mut first);
        let back = fd.seek(0, libc::SEEK_SET);
        let mut again = vec![0u8; 10];
        let _ = fd.read(&mut again);
        r.check(
            back == Ok(0) && first == again,
            "lseek back to 0 rereads the start",
            "the same 10 bytes",
            format!("{:?}", String::from_utf8_lossy(&again)),
        );
    }

    let stats_path = format!("/proc/{}/stats", rig_abi::PROC_DIR);
    let Some(all) = r.must(format!("read {stats_path}"), stats()) else {
        return r.finish();
    };
    for (k, v) in &all {
        r.note(format!("{k} {v}"));
    }
    let value = |k: &str| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    r.eq("the pool is attached to the ivshmem device", Some("attached".to_string()), value("pool"));
    r.eq("the load-time kfile check passed", Some("ok".to_string()), value("kfile_loadcheck"));
    r.check(
        value("pool_free").is_some() && value("doorbell").is_some(),
        "pool and doorbell state are shown",
        "pool_free and doorbell lines",
        "missing",
    );

    // A counter moves when the module is used.
    let before = stat("ioctls");
    if let Ok(fd) = Fd::open(&dev_path(rig_abi::dev::IOCTL), libc::O_RDWR) {
        let mut c = Config::default();
        let _ = fd.ioctl(IOC_GET_CONFIG, &mut c);
    }
    match (before, stat("ioctls")) {
        (Ok(b), Ok(a)) => {
            r.eq("one ioctl on /dev/rig_ioctl adds one to `ioctls`", b + 1, a);
        }
        (b, a) => {
            r.check(false, "read the `ioctls` counter", "a number", format!("{b:?} / {a:?}"));
        }
    }
    r.finish()
}
