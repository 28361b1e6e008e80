//! What goes into the guest image: `/init`, busybox, the guest programs
//! (rig-guest, and rig-udrv when the steps use it), the modules (in-tree
//! ones first) and the user's files; with a Debian root, its init too (and
//! `/init` copies everything but itself and busybox onto the root).

use super::init::{init_script_with, root_init_script, DeviceInit, InitExtras, MODULE_DIR, ROOT_INIT};
use super::initramfs::{read_input, GuestFile, InitramfsError, InitramfsSpec};
use crate::plan::FilePlan;
use std::path::Path;

/// A module built for the kernel, with how to load it.
#[derive(Clone, Debug)]
pub struct LoadedModule {
    /// File name in the guest's module directory.
    pub file: String,
    /// The object.
    pub data: Vec<u8>,
    /// insmod parameters.
    pub params: String,
    /// Loaded by /init.
    pub load: bool,
}

/// Where the reference userspace driver goes in the guest.
pub const UDRV_PATH: &str = "/bin/rig-udrv";

/// What the guest's userspace is beyond the initramfs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Userspace {
    /// 2 MiB hugepages `/init` reserves.
    pub hugepages: u32,
    /// `/init` switches to the Debian root on the guest's disk.
    pub debian_root: bool,
}

/// The files of the guest image: /init (loading `modules`, binding
/// `devices`, reserving hugepages, maybe switching to the Debian root),
/// busybox, the guest programs (rig-guest when built, rig-udrv when
/// given), modules, user files.
pub fn guest_image(
    busybox: &Path,
    guest_bin: &Path,
    udrv_bin: Option<&Path>,
    modules: &[LoadedModule],
    devices: &[DeviceInit],
    user_files: &[FilePlan],
    userspace: Userspace,
) -> Result<InitramfsSpec, InitramfsError> {
    let load: Vec<(String, String)> =
        modules.iter().filter(|m| m.load).map(|m| (m.file.clone(), m.params.clone())).collect();
    let mut files = vec![GuestFile { guest_path: "/bin/busybox".into(), data: read_input(busybox)?, mode: 0o755 }];
    if guest_bin.is_file() {
        files.push(GuestFile { guest_path: "/bin/rig-guest".into(), data: read_input(guest_bin)?, mode: 0o755 });
    }
    if let Some(udrv) = udrv_bin {
        files.push(GuestFile { guest_path: UDRV_PATH.into(), data: read_input(udrv)?, mode: 0o755 });
    }
    for m in modules {
        files.push(GuestFile { guest_path: format!("{MODULE_DIR}/{}", m.file), data: m.data.clone(), mode: 0o644 });
    }
    for f in user_files {
        let data = read_input(&f.src)?;
        let exec = data.starts_with(b"\x7fELF") || data.starts_with(b"#!");
        files.push(GuestFile {
            guest_path: f.dest.clone(),
            data,
            mode: f.mode.unwrap_or(if exec { 0o755 } else { 0o644 }),
        });
    }
    // Onto the root: everything the rig's own busybox guest would have.
    let root = userspace.debian_root.then(|| files.iter().skip(1).map(|f| f.guest_path.clone()).collect());
    if root.is_some() {
        files.push(GuestFile { guest_path: ROOT_INIT.into(), data: root_init_script().into_bytes(), mode: 0o755 });
    }
    let extras = InitExtras { hugepages: userspace.hugepages, root };
    let init = init_script_with(&load, devices, &extras);
    files.insert(0, GuestFile { guest_path: "/init".into(), data: init.into_bytes(), mode: 0o755 });
    Ok(InitramfsSpec { files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debian_root_gets_its_init_and_the_rigs_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bb = dir.path().join("busybox");
        std::fs::write(&bb, b"bb").expect("busybox");
        let tool = dir.path().join("tool");
        std::fs::write(&tool, b"#!/bin/sh\n").expect("tool");
        let modules =
            [LoadedModule { file: "squashfs.ko".into(), data: b"ko".to_vec(), params: String::new(), load: true }];
        let user = [FilePlan { src: tool, dest: "/usr/bin/tool".into(), mode: None }];
        let missing = dir.path().join("no-rig-guest");
        let plain = guest_image(&bb, &missing, None, &modules, &[], &user, Userspace::default()).expect("image");
        let names: Vec<&str> = plain.files.iter().map(|f| f.guest_path.as_str()).collect();
        assert_eq!(names, ["/init", "/bin/busybox", "/lib/rig/modules/squashfs.ko", "/usr/bin/tool"]);
        let deb = Userspace { hugepages: 64, debian_root: true };
        let root = guest_image(&bb, &missing, None, &modules, &[], &user, deb).expect("image");
        let init = String::from_utf8_lossy(&root.files[0].data).into_owned();
        assert!(init.contains("echo 64 >/proc/sys/vm/nr_hugepages"), "{init}");
        assert!(
            init.contains("if rig_root /lib/rig/root-init '/lib/rig/modules/squashfs.ko' '/usr/bin/tool'; then"),
            "{init}"
        );
        assert!(root.files.iter().any(|f| f.guest_path == ROOT_INIT && f.mode == 0o755));
        assert_eq!(root.files[3].mode, 0o755, "a script is executable");
    }
}
