//! A booted guest saved to a file, and new guests started from it: QMP
//! `migrate` of the stopped guest to a `file:` URI, then a new QEMU with
//! `-incoming defer` that loads the file (`migrate-incoming`) and runs on
//! from where the saved one stopped. Every RAM block travels in the file,
//! the ivshmem region's too (the device needs `master=on`), zero pages as
//! zero: a restored guest's shared memory is the saved one whatever the
//! backing file held before. The plain stream is used, not `mapped-ram`:
//! mapped-ram leaves zero pages out and trusts the target's memory to be
//! zero, which a reused ivshmem file is not.

use super::qemu::Version;
use super::qmp::{Qmp, QmpError};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Saving or loading failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// QMP failed (QEMU refused, went away, or did not answer).
    #[error("{what}: {source}")]
    Qmp { what: &'static str, source: QmpError },
    /// The migration ran and failed.
    #[error("{what}: QEMU says: {desc}")]
    Failed { what: &'static str, desc: String },
}

fn qmp(what: &'static str) -> impl FnOnce(QmpError) -> SnapshotError {
    move |source| SnapshotError::Qmp { what, source }
}

/// QEMU releases that migrate to a `file:` URI.
pub const MIN_QEMU: Version = (8, 2, 0);

/// How long QEMU may take to create its QMP socket after starting.
const QMP_PATIENCE: Duration = Duration::from_secs(20);

/// The arguments that make QEMU wait for a snapshot instead of booting;
/// `paused`: stay paused once it is loaded (until [`go_on`]).
pub fn incoming_args(paused: bool) -> Vec<String> {
    let mut v = vec!["-incoming".to_string(), "defer".into()];
    if paused {
        v.push("-S".into());
    }
    v
}

/// Why a guest with this command line cannot be saved, if it cannot.
/// QEMU would refuse too, but later and in its own words.
pub fn unmigratable(argv: &[String]) -> Option<String> {
    let devices = argv.windows(2).filter(|w| w[0] == "-device").map(|w| w[1].as_str());
    for d in devices {
        let driver = d.split(',').next().unwrap_or("");
        if driver.starts_with("vfio-") {
            return Some(format!("a device assigned through VFIO ({driver}) cannot be saved and restored"));
        }
        if driver.starts_with("ivshmem") && !d.split(',').any(|p| p == "master=on") {
            return Some(format!("{driver} without master=on is a peer and cannot be saved"));
        }
    }
    None
}

/// Whether `version` can save and restore guests through a file.
pub fn qemu_supports(version: Version) -> bool {
    version >= MIN_QEMU
}

/// Saves the running guest behind `socket` to `state`: stops it and
/// writes every device and every RAM page. The guest stays stopped; [`go_on`]
/// continues it.
pub fn save(socket: &Path, state: &Path, timeout: Duration) -> Result<Duration, SnapshotError> {
    let start = Instant::now();
    let mut q = Qmp::connect(socket, QMP_PATIENCE).map_err(qmp("connecting to QMP to save the guest"))?;
    q.execute("stop", None).map_err(qmp("stopping the guest"))?;
    let uri = format!("file:{}", state.display());
    q.execute("migrate", Some(json!({ "uri": uri }))).map_err(qmp("saving the guest"))?;
    let m = q.wait_migration(timeout).map_err(qmp("saving the guest"))?;
    if m.status != "completed" {
        return Err(SnapshotError::Failed {
            what: "saving the guest",
            desc: m.error.unwrap_or_else(|| format!("the migration ended {}", m.status)),
        });
    }
    Ok(start.elapsed())
}

/// Continues a guest that a save (or `-S`) left stopped.
pub fn go_on(socket: &Path) -> Result<(), SnapshotError> {
    let mut q = Qmp::connect(socket, QMP_PATIENCE).map_err(qmp("connecting to QMP"))?;
    q.execute("cont", None).map_err(qmp("continuing the guest"))?;
    Ok(())
}

/// Loads `state` into the QEMU behind `socket`, started with
/// [`incoming_args`]; returns once the guest is loaded, and running unless
/// `paused`. A QEMU that fails to load exits, and the caller has its stderr.
pub fn load(socket: &Path, state: &Path, timeout: Duration, paused: bool) -> Result<Duration, SnapshotError> {
    let start = Instant::now();
    let mut q = Qmp::connect(socket, QMP_PATIENCE).map_err(qmp("connecting to QMP to restore the guest"))?;
    let uri = format!("file:{}", state.display());
    q.execute("migrate-incoming", Some(json!({ "uri": uri }))).map_err(qmp("restoring the guest"))?;
    let st = q
        .wait_status("the restored guest", timeout, |s| s.status != "inmigrate")
        .map_err(qmp("restoring the guest"))?;
    let m = q.migration().map_err(qmp("restoring the guest"))?;
    if m.status == "failed" {
        return Err(SnapshotError::Failed {
            what: "restoring the guest",
            desc: m.error.unwrap_or_else(|| "the migration failed".into()),
        });
    }
    // The guest was saved stopped, and QEMU keeps the saved run state.
    if !paused && !st.running {
        q.execute("cont", None).map_err(qmp("starting the restored guest"))?;
    }
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vfio_and_peer_ivshmem_cannot_be_saved() {
        let ok = args(&["-m", "256", "-device", "ivshmem-doorbell,chardev=ivsh0,vectors=2,master=on"]);
        assert_eq!(unmigratable(&ok), None);
        let vfio = args(&["-device", "ivshmem-plain,memdev=shm0,master=on", "-device", "vfio-pci,host=0000:01:00.0"]);
        assert!(unmigratable(&vfio).is_some_and(|w| w.contains("vfio-pci")));
        let peer = args(&["-device", "ivshmem-plain,memdev=shm0"]);
        assert!(unmigratable(&peer).is_some_and(|w| w.contains("master=on")));
        // `-device` values only: a path that mentions vfio is not a device.
        assert_eq!(unmigratable(&args(&["-kernel", "/vfio-pci/vmlinuz"])), None);
    }

    #[test]
    fn file_migration_needs_qemu_8_2() {
        assert!(qemu_supports((10, 0, 2)) && qemu_supports((8, 2, 0)));
        assert!(!qemu_supports((7, 2, 15)) && !qemu_supports((8, 1, 5)));
    }

    #[test]
    fn incoming_waits_paused_only_when_asked() {
        assert_eq!(incoming_args(false), args(&["-incoming", "defer"]));
        assert_eq!(incoming_args(true), args(&["-incoming", "defer", "-S"]));
    }
}
