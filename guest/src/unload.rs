//! Unloading while regions are mapped must not crash: each mapping holds
//! its file, and the file holds the module (.owner), so rmmod is refused
//! until the mappings are gone; they keep working meanwhile.

use crate::args::Failure;
use crate::report::{Report, SysChecks};
use crate::sys::{c_str, dev_path, read_text, Fd, Map, RW};

fn module_line() -> Option<String> {
    read_text("/proc/modules").ok()?.lines().find(|l| l.starts_with("rig_kmod ")).map(|l| l.to_string())
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("unload-while-mapped");
    let mut maps = Vec::new();
    let targets = [
        (rig_abi::dev::KMALLOC, 4096usize),
        (rig_abi::dev::VMALLOC, 4096),
        (rig_abi::dev::VMALLOC_USER, 4096),
        (rig_abi::dev::FAULT, 4096),
        (rig_abi::dev::POOL, 4096),
        (rig_abi::SHM_DEV_NAME, 4096),
    ];
    for (dev, len) in targets {
        let path = dev_path(dev);
        // The descriptor is closed at the end of this block: only the mapping holds the file.
        let m = Fd::open(&path, libc::O_RDWR).and_then(|fd| Map::new(&fd, len, RW, libc::MAP_SHARED, 0));
        if let Some(m) = r.success(format!("map {path}, then close it"), m) {
            maps.push((path, m));
        }
    }
    let before = module_line();
    r.note(format!("/proc/modules: {}", before.clone().unwrap_or_default()));
    let refs: Option<u64> = before.as_ref().and_then(|l| l.split_whitespace().nth(2)?.parse().ok());
    r.check(
        refs.unwrap_or(0) >= maps.len() as u64,
        "each mapping holds a reference on the module",
        format!(">= {}", maps.len()),
        format!("{refs:?}"),
    );

    let out = std::process::Command::new("rmmod").arg("rig_kmod").output();
    match out {
        Ok(o) => {
            let msg = String::from_utf8_lossy(&o.stderr).trim().to_string();
            r.check(
                !o.status.success(),
                "rmmod rig_kmod is refused while they exist",
                "failure (module in use)",
                format!("{} {msg}", o.status),
            );
        }
        Err(e) => {
            r.check(false, "run rmmod", "rmmod to run", e);
        }
    }
    r.check(module_line().is_some(), "the module is still loaded", "rig_kmod in /proc/modules", "gone");
    for (path, m) in &maps {
        // Reading must not fault: every mapping is still backed.
        let head = m.read(0, 32);
        r.check(true, format!("{path}: the mapping still reads ({:?})", c_str(&head)), "", "");
    }
    drop(maps);
    let after: Option<u64> = module_line().and_then(|l| l.split_whitespace().nth(2)?.parse().ok());
    r.eq("after munmap the references are gone", Some(0), after);
    r.finish()
}
