//! What goes into the guest image: `/init`, busybox, the guest programs
//! (rig-guest, and rig-udrv when the steps use it), the modules (in-tree
//! ones first) and the user's files.

use super::init::{init_script, DeviceInit, MODULE_DIR};
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

/// The files of the guest image: /init (loading `modules`, binding
/// `devices`), busybox, the guest programs (rig-guest when built, rig-udrv
/// when given), modules, user files.
pub fn guest_image(
    busybox: &Path,
    guest_bin: &Path,
    udrv_bin: Option<&Path>,
    modules: &[LoadedModule],
    devices: &[DeviceInit],
    user_files: &[FilePlan],
) -> Result<InitramfsSpec, InitramfsError> {
    let load: Vec<(String, String)> =
        modules.iter().filter(|m| m.load).map(|m| (m.file.clone(), m.params.clone())).collect();
    let mut files = vec![
        GuestFile { guest_path: "/init".into(), data: init_script(&load, devices).into_bytes(), mode: 0o755 },
        GuestFile { guest_path: "/bin/busybox".into(), data: read_input(busybox)?, mode: 0o755 },
    ];
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
    Ok(InitramfsSpec { files })
}
