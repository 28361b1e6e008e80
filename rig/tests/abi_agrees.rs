//! The C header is the ABI; the Rust mirror must agree with it. This test
//! compiles a probe against guest-kmod/include/uapi/rig_kmod.h with the host
//! C compiler and compares every size, offset and number.

use rig_abi::*;
use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

const PROBE: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include "uapi/rig_kmod.h"
#define P(name, value) printf("%s %llu\n", name, (unsigned long long)(value))
int main(void)
{
	P("RIG_ABI_VERSION", RIG_ABI_VERSION);
	P("RIG_IVSHMEM_VENDOR", RIG_IVSHMEM_VENDOR);
	P("RIG_IVSHMEM_DEVICE", RIG_IVSHMEM_DEVICE);
	P("RIG_SHM_MAGIC", RIG_SHM_MAGIC);
	P("RIG_SHM_HEADER_OFFSET", RIG_SHM_HEADER_OFFSET);
	P("RIG_SHM_G2H_OFFSET", RIG_SHM_G2H_OFFSET);
	P("RIG_SHM_H2G_OFFSET", RIG_SHM_H2G_OFFSET);
	P("RIG_SHM_AREA_SIZE", RIG_SHM_AREA_SIZE);
	P("RIG_SHM_FREE_OFFSET", RIG_SHM_FREE_OFFSET);
	P("RIG_SHM_MIN_SIZE", RIG_SHM_MIN_SIZE);
	P("RIG_STATE_PROBED", RIG_STATE_PROBED);
	P("RIG_STATE_REMOVED", RIG_STATE_REMOVED);
	P("RIG_IOC_MAGIC", RIG_IOC_MAGIC);
	P("RIG_IOC_SHM_INFO", RIG_IOC_SHM_INFO);
	P("sizeof(struct rig_shm_header)", sizeof(struct rig_shm_header));
	P("offsetof(rig_shm_header.magic)", offsetof(struct rig_shm_header, magic));
	P("offsetof(rig_shm_header.abi_version)", offsetof(struct rig_shm_header, abi_version));
	P("offsetof(rig_shm_header.size)", offsetof(struct rig_shm_header, size));
	P("offsetof(rig_shm_header.state)", offsetof(struct rig_shm_header, state));
	P("offsetof(rig_shm_header.probe_count)", offsetof(struct rig_shm_header, probe_count));
	P("offsetof(rig_shm_header.bar_phys)", offsetof(struct rig_shm_header, bar_phys));
	P("offsetof(rig_shm_header.kernel_release)", offsetof(struct rig_shm_header, kernel_release));
	P("sizeof(struct rig_shm_info)", sizeof(struct rig_shm_info));
	P("offsetof(rig_shm_info.phys_addr)", offsetof(struct rig_shm_info, phys_addr));
	P("offsetof(rig_shm_info.size)", offsetof(struct rig_shm_info, size));
	P("offsetof(rig_shm_info.abi_version)", offsetof(struct rig_shm_info, abi_version));
	P("offsetof(rig_shm_info.reserved)", offsetof(struct rig_shm_info, reserved));
	printf("RIG_SHM_DEV_NAME_STR %s\n", RIG_SHM_DEV_NAME);
	return 0;
}
"#;

fn c_values() -> (HashMap<String, u64>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("probe.c");
    let bin = dir.path().join("probe");
    std::fs::write(&src, PROBE).expect("write probe");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(root.join("guest-kmod/include"))
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .output()
        .expect("run the C compiler (install gcc)");
    assert!(out.status.success(), "probe did not compile: {}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&bin).output().expect("run probe");
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    let mut map = HashMap::new();
    let mut dev = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("RIG_SHM_DEV_NAME_STR ") {
            dev = name.to_string();
            continue;
        }
        let (k, v) = line.rsplit_once(' ').expect("key value");
        map.insert(k.to_string(), v.parse().expect("number"));
    }
    (map, dev)
}

#[test]
fn c_header_and_rust_mirror_agree() {
    let (c, dev) = c_values();
    let rust: Vec<(&str, u64)> = vec![
        ("RIG_ABI_VERSION", ABI_VERSION as u64),
        ("RIG_IVSHMEM_VENDOR", IVSHMEM_VENDOR as u64),
        ("RIG_IVSHMEM_DEVICE", IVSHMEM_DEVICE as u64),
        ("RIG_SHM_MAGIC", SHM_MAGIC as u64),
        ("RIG_SHM_HEADER_OFFSET", SHM_HEADER_OFFSET),
        ("RIG_SHM_G2H_OFFSET", SHM_G2H_OFFSET),
        ("RIG_SHM_H2G_OFFSET", SHM_H2G_OFFSET),
        ("RIG_SHM_AREA_SIZE", SHM_AREA_SIZE),
        ("RIG_SHM_FREE_OFFSET", SHM_FREE_OFFSET),
        ("RIG_SHM_MIN_SIZE", SHM_MIN_SIZE),
        ("RIG_STATE_PROBED", STATE_PROBED as u64),
        ("RIG_STATE_REMOVED", STATE_REMOVED as u64),
        ("RIG_IOC_MAGIC", IOC_MAGIC as u64),
        ("RIG_IOC_SHM_INFO", IOC_SHM_INFO as u64),
        ("sizeof(struct rig_shm_header)", size_of::<ShmHeader>() as u64),
        ("offsetof(rig_shm_header.magic)", offset_of!(ShmHeader, magic) as u64),
        ("offsetof(rig_shm_header.abi_version)", offset_of!(ShmHeader, abi_version) as u64),
        ("offsetof(rig_shm_header.size)", offset_of!(ShmHeader, size) as u64),
        ("offsetof(rig_shm_header.state)", offset_of!(ShmHeader, state) as u64),
        ("offsetof(rig_shm_header.probe_count)", offset_of!(ShmHeader, probe_count) as u64),
        ("offsetof(rig_shm_header.bar_phys)", offset_of!(ShmHeader, bar_phys) as u64),
        ("offsetof(rig_shm_header.kernel_release)", offset_of!(ShmHeader, kernel_release) as u64),
        ("sizeof(struct rig_shm_info)", size_of::<ShmInfo>() as u64),
        ("offsetof(rig_shm_info.phys_addr)", offset_of!(ShmInfo, phys_addr) as u64),
        ("offsetof(rig_shm_info.size)", offset_of!(ShmInfo, size) as u64),
        ("offsetof(rig_shm_info.abi_version)", offset_of!(ShmInfo, abi_version) as u64),
        ("offsetof(rig_shm_info.reserved)", offset_of!(ShmInfo, reserved) as u64),
    ];
    let mut wrong = Vec::new();
    for (name, value) in &rust {
        match c.get(*name) {
            Some(cv) if cv == value => {}
            other => wrong.push(format!("{name}: C {other:?}, Rust {value}")),
        }
    }
    assert!(wrong.is_empty(), "ABI mismatch:\n{}", wrong.join("\n"));
    // Every item the probe prints is compared: none may be forgotten.
    assert_eq!(c.len(), rust.len());
    assert_eq!(dev, SHM_DEV_NAME);
}
