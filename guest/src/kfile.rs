//! 8. File I/O from the kernel.
//!
//! The module wrote its file at load with kernel_write (and checked it with
//! kernel_read); userspace reads it here. Then both directions on demand:
//! what userspace writes to the file the kernel reads (through
//! /proc/rig_kmod/kfile), and what userspace hands the kernel through that
//! proc file the kernel writes to the file.

use crate::args::Failure;
use crate::report::Report;
use crate::sys::{module_param, read_text, stats};
use rig_abi::{KFILE_DEFAULT_PATH, KFILE_GREETING};
use std::os::unix::fs::PermissionsExt;

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("kfile");
    let path = module_param("kfile_path").unwrap_or_else(|| KFILE_DEFAULT_PATH.to_string());
    r.note(format!("kfile_path = {path}"));
    let release = read_text("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();

    if let Some(text) = r.must(format!("userspace reads {path}, written by the module at load"), read_text(&path)) {
        let lines: Vec<&str> = text.lines().collect();
        r.eq("its first line is the module's greeting", Some(KFILE_GREETING), lines.first().copied());
        r.eq(
            "its second line names the running kernel",
            Some(format!("kernel {release}")),
            lines.get(1).map(|s| s.to_string()),
        );
    }
    if let Ok(meta) = std::fs::metadata(&path) {
        r.eq("the module created it with mode 0600", 0o600, meta.permissions().mode() & 0o777);
    }
    let loadcheck = stats().ok().and_then(|s| s.into_iter().find(|(k, _)| k == "kfile_loadcheck")).map(|(_, v)| v);
    r.eq("the module read back what it wrote (kfile_loadcheck)", Some("ok".to_string()), loadcheck);

    let proc_path = format!("/proc/{}/kfile", rig_abi::PROC_DIR);
    let token = format!("{:x}", std::process::id() as u64 * 2654435761 % 0xffff_ffff);
    let from_user = format!("written by userspace, token {token}\n");
    if r.must(format!("userspace writes {path}"), std::fs::write(&path, &from_user).map_err(|e| e.to_string()))
        .is_some()
    {
        r.eq(
            format!("the kernel reads it back with kernel_read ({proc_path})"),
            Ok(from_user.clone()),
            read_text(&proc_path),
        );
    }
    let via_kernel = format!("handed to the kernel, token {token}\n");
    if r.must(
        format!("userspace hands text to {proc_path}"),
        std::fs::write(&proc_path, &via_kernel).map_err(|e| e.to_string()),
    )
    .is_some()
    {
        r.eq(format!("the kernel wrote it to {path} with kernel_write"), Ok(via_kernel), read_text(&path));
    }
    r.finish()
}
