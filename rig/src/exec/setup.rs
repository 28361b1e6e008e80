//! The host side of one guest before QEMU starts: a private directory, the
//! shared memory, the devices' backing images, the accelerator, QEMU's
//! configuration and, for ivshmem-doorbell, the server (it must listen
//! before QEMU connects).

use super::prepare::Prepared;
use super::run::{Event, RunError, RunOptions};
use crate::host::doorbell::DoorbellServer;
use crate::host::net::Wire;
use crate::host::shm::SharedMemory;
use crate::plan::{Plan, ShmPlan};
use crate::vm::accel;
use crate::vm::devices::{self, DeviceTable, IMAGE_PARAM, MAC_PARAM, WIRE_PARAM};
use crate::vm::machine::{Machine, MachineError};
use crate::vm::qemu::{self, Ivshmem, QemuConfig, QemuError, SharedMemoryDevice};
use std::path::{Path, PathBuf};

/// A 0700 temporary directory under `$TMPDIR`, removed on drop.
pub fn private_dir(prefix: &str) -> Result<tempfile::TempDir, RunError> {
    crate::support::private_tempdir(prefix).map_err(|source| RunError::TempDir { dir: std::env::temp_dir(), source })
}

/// The one decision of ivshmem-plain or ivshmem-doorbell for a guest.
pub fn shm_device(plan: ShmPlan, private: &Path, shm: &SharedMemory) -> SharedMemoryDevice {
    if plan.doorbell {
        SharedMemoryDevice::Doorbell { socket: private.join("ivshmem.sock"), vectors: plan.vectors }
    } else {
        SharedMemoryDevice::Plain(Ivshmem { mem_path: shm.path().to_path_buf(), size: shm.size() })
    }
}

/// Where device `name`'s backing image lives.
pub fn image_path(private: &Path, name: &str) -> PathBuf {
    private.join(format!("{name}.img"))
}

/// Where NIC `name`'s netdev listens (the far end of its cable).
pub fn wire_path(private: &Path, name: &str) -> PathBuf {
    private.join(format!("{name}.wire"))
}

/// The first `[[device]]` that is a NIC (its cable's far end is the rig).
pub fn first_nic(guest: &crate::plan::GuestPlan) -> Option<&str> {
    let table = DeviceTable::builtin().ok()?;
    guest.devices.iter().find(|d| table.get(&d.kind).is_ok_and(|k| k.is_nic())).map(|d| d.name.as_str())
}

/// The far end of every NIC's cable: a capturing NIC's frames go to
/// `<run_dir>/<name>.pcap`. Started before QEMU: each wire connects once
/// QEMU listens.
pub fn start_wires(opts: &RunOptions, private: &Path, run_dir: &Path) -> Result<Vec<Wire>, RunError> {
    let table = DeviceTable::builtin().map_err(QemuError::from)?;
    let guest = &opts.plan.guest;
    let mut out = Vec::new();
    for d in &guest.devices {
        if table.get(&d.kind).is_ok_and(|k| k.is_nic()) {
            let pcap = guest.captures.contains(&d.name).then(|| run_dir.join(format!("{}.pcap", d.name)));
            out.push(Wire::start(&d.name, &wire_path(private, &d.name), pcap)?);
        }
    }
    Ok(out)
}

/// A device's backing image, mapped for the host's checks.
pub struct DeviceImage {
    /// The `[[device]]` name.
    pub name: String,
    /// The image.
    pub mem: SharedMemory,
}

/// Creates the backing image (zeros) of every device that has one, in `private`.
pub fn create_images(plan: &Plan, private: &Path) -> Result<Vec<DeviceImage>, RunError> {
    let mut out = Vec::new();
    for d in &plan.guest.devices {
        if let Some(size) = d.image_size {
            out.push(DeviceImage {
                name: d.name.clone(),
                mem: SharedMemory::create_image(&image_path(private, &d.name), size)?,
            });
        }
    }
    Ok(out)
}

/// The QEMU configuration of one guest; sockets and images live in `private`.
pub fn guest_config(
    opts: &RunOptions,
    p: &Prepared,
    accel: qemu::Accel,
    private: &Path,
    shm: Option<&SharedMemory>,
) -> Result<QemuConfig, RunError> {
    let guest = &opts.plan.guest;
    let machine = Machine::builtin().map_err(QemuError::from)?;
    let table = DeviceTable::builtin().map_err(QemuError::from)?;
    let iommu = match &guest.iommu {
        Some(name) => Some(machine.iommu(name).map_err(QemuError::from)?.clone()),
        None => None,
    };
    // The catalog's console and extras, the machine's words, the IOMMU's,
    // then the user's (last, so they can override).
    let mut cmdline = p.entry.cmdline_args();
    cmdline.extend(qemu::default_cmdline(&machine, "ttyS0").into_iter().filter(|a| !a.starts_with("console=")));
    cmdline.extend(iommu.iter().flat_map(|i| i.cmdline.iter().cloned()));
    cmdline.extend(guest.cmdline.iter().cloned());
    // A check may say what [guest] oops_panic or panic_on_warn said already.
    for a in &p.check_args {
        if !cmdline.contains(a) {
            cmdline.push(a.clone());
        }
    }
    let ivshmem = match (shm, guest.shm) {
        (Some(m), Some(plan)) => Some(shm_device(plan, private, m)),
        _ => None,
    };
    let mut devices = Vec::new();
    if let Some(d) = &ivshmem {
        // An ivshmem [[device]] is named by the user; else the rig's own names.
        let named = guest.devices.iter().find(|d| d.is_shm()).map(|d| d.name.as_str());
        let id = named.unwrap_or(match d {
            SharedMemoryDevice::Plain(_) => "shm0",
            SharedMemoryDevice::Doorbell { .. } => "ivsh0",
        });
        devices.push(qemu::ivshmem_args(&table, d, id, guest.shm_slot()).map_err(QemuError::from)?);
    }
    for d in guest.devices.iter().filter(|d| !d.is_shm()) {
        let values = [
            (IMAGE_PARAM, image_path(private, &d.name).display().to_string()),
            (WIRE_PARAM, wire_path(private, &d.name).display().to_string()),
            (MAC_PARAM, devices::mac(d.slot)),
        ];
        devices.push(table.render(&d.kind, &d.name, d.slot, &values).map_err(QemuError::from)?);
    }
    if let Some(r) = &p.root {
        let disk = machine.rootfs.as_ref().ok_or_else(|| QemuError::Machine(MachineError::missing("rootfs")))?;
        devices.push(disk.render(&r.image, crate::plan::ROOT_SLOT));
    }
    let cpu_model = super::rootfs::cpu_model(opts.cpu_model.clone(), accel, p.root.is_some(), machine.rootfs.as_ref());
    Ok(QemuConfig {
        binary: opts.qemu.clone(),
        machine,
        accel,
        memory_mib: opts.plan.guest.memory_mib,
        cpus: opts.plan.guest.cpus,
        cpu_model,
        kernel: p.kernel.path().to_path_buf(),
        initrd: p.initrd.clone(),
        cmdline,
        console: qemu::SerialBackend::Socket(private.join("console.sock")),
        shell: qemu::SerialBackend::Socket(private.join("shell.sock")),
        qmp_socket: Some(private.join("qmp.sock")),
        ivshmem,
        iommu,
        devices,
    })
}

/// What one guest needs on the host before QEMU starts. Fields drop in
/// order: the server, then the memory, then the private directory.
pub struct HostSetup {
    /// The ivshmem server, when the guest has ivshmem-doorbell.
    pub server: Option<DoorbellServer>,
    /// The ivshmem backing file, mapped.
    pub shm: Option<SharedMemory>,
    /// The devices' backing images, mapped.
    pub images: Vec<DeviceImage>,
    /// QEMU's configuration.
    pub cfg: QemuConfig,
    /// The accelerator and why.
    pub choice: accel::AccelChoice,
    /// 0700 directory of the sockets and the backing file.
    pub private: tempfile::TempDir,
}

/// Private directory, shared memory, device images, accelerator
/// (announced), QEMU configuration and, for ivshmem-doorbell, the server
/// (it must listen before QEMU starts).
pub fn host_setup(opts: &RunOptions, p: &Prepared, emit: &mut dyn FnMut(Event)) -> Result<HostSetup, RunError> {
    let private = private_dir("rig-")?;
    let shm = match opts.plan.guest.shm {
        Some(s) => Some(SharedMemory::create(&private.path().join("ivshmem"), s.size)?),
        None => None,
    };
    let images = create_images(&opts.plan, private.path())?;
    let choice = accel::decide(opts.accel, &accel::probe());
    emit(Event::Note(format!("accelerator: {} ({})", choice.accel.name(), choice.reason)));
    let cfg = guest_config(opts, p, choice.accel, private.path(), shm.as_ref())?;
    let server = match (&cfg.ivshmem, &shm) {
        (Some(SharedMemoryDevice::Doorbell { socket, vectors }), Some(m)) => {
            Some(DoorbellServer::start(socket, m.path(), *vectors)?)
        }
        _ => None,
    };
    Ok(HostSetup { server, shm, images, cfg, choice, private })
}
