//! The QEMU command line, built from small pure functions (one per concern)
//! so each flag has one place and one reason, and tests can read the argv.
//! The machine profile and the device arguments are data (`qemu/`).

use super::devices::{DeviceError, DeviceTable};
use super::machine::{Iommu, Machine};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The accelerator QEMU runs the guest with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's software emulator.
    Tcg,
}

impl Accel {
    /// The name QEMU and the CLI use.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Shared memory exposed as an ivshmem-plain PCI device (1af4:1110, BAR2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ivshmem {
    /// Host file backing the region (in the run's private directory).
    pub mem_path: PathBuf,
    /// Region size in bytes (a power of two, as ivshmem requires).
    pub size: u64,
}

/// The shared-memory PCI device (both are 1af4:1110 with the memory in BAR2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedMemoryDevice {
    /// ivshmem-plain over a memory-backend-file: memory only.
    Plain(Ivshmem),
    /// ivshmem-doorbell: memory and MSI-X doorbells, served over `socket`
    /// by the rig's ivshmem server (which also hands QEMU the memory).
    Doorbell {
        /// The server's unix socket.
        socket: PathBuf,
        /// MSI-X vectors.
        vectors: u32,
    },
}

/// Where a serial port of the guest is connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialBackend {
    /// A unix socket the rig listens on; QEMU connects to it.
    Socket(PathBuf),
    /// QEMU's stdin/stdout (the bare-QEMU baseline of `rig bench`).
    Stdio,
    /// Nowhere (a bare-QEMU baseline that does not read the kernel).
    Null,
}

/// Everything that decides the QEMU command line of one guest.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// `qemu-system-x86_64` or a path to it.
    pub binary: PathBuf,
    /// The machine profile (`qemu/machine.toml`).
    pub machine: Machine,
    /// Accelerator, already chosen by [`crate::vm::accel`].
    pub accel: Accel,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub cpus: u32,
    /// CPU model; `None` means `host` under KVM and QEMU's default under TCG.
    pub cpu_model: Option<String>,
    /// The kernel to boot directly (no firmware disk, no bootloader): an
    /// uncompressed vmlinux (PVH entry) or a bzImage.
    pub kernel: PathBuf,
    /// initramfs (newc cpio).
    pub initrd: PathBuf,
    /// Kernel command line words.
    pub cmdline: Vec<String>,
    /// The first serial port: the kernel's console, nothing else.
    pub console: SerialBackend,
    /// The second serial port: the shell that runs the steps.
    pub shell: SerialBackend,
    /// Unix socket for QMP (the rig asks it whether the guest is paused).
    pub qmp_socket: Option<PathBuf>,
    /// The ivshmem device, if any (the host side needs its socket).
    pub ivshmem: Option<SharedMemoryDevice>,
    /// The emulated IOMMU, if any (from the machine profile).
    pub iommu: Option<Iommu>,
    /// Every device's QEMU arguments, rendered from the device table.
    pub devices: Vec<Vec<String>>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The profile's base arguments (no defaults, no display, no reboot).
pub fn base_args(m: &Machine) -> Vec<String> {
    m.base.clone()
}

/// Machine type (with the IOMMU's options), accelerator, CPU model, memory and vCPUs.
pub fn machine_args(
    m: &Machine,
    iommu: Option<&Iommu>,
    accel: Accel,
    cpu_model: Option<&str>,
    memory_mib: u32,
    cpus: u32,
) -> Vec<String> {
    let mut v = vec!["-machine".to_string(), m.machine_value(iommu), "-accel".into(), accel.name().into()];
    match (cpu_model, accel) {
        (Some(model), _) => v.extend(["-cpu".to_string(), model.to_string()]),
        // `host` passes the real CPU through; only valid with KVM.
        (None, Accel::Kvm) => v.extend(strings(&["-cpu", "host"])),
        (None, Accel::Tcg) => {}
    }
    v.extend(["-m".into(), memory_mib.to_string(), "-smp".into(), cpus.to_string()]);
    v
}

/// Direct kernel boot: the fastest path, no firmware disk.
pub fn kernel_args(kernel: &Path, initrd: &Path, cmdline: &[String]) -> Vec<String> {
    vec![
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        cmdline.join(" "),
    ]
}

/// Two serial ports: ttyS0 the kernel's console, ttyS1 the shell, so step
/// output never carries kernel messages and the kernel's log is read whole.
/// Each goes to a socket the rig already listens on, so no byte is lost
/// before the rig attaches (server=on,wait=off would drop them).
pub fn console_args(kernel: &SerialBackend, shell: &SerialBackend) -> Vec<String> {
    let port = |b: &SerialBackend, id: &str| match b {
        SerialBackend::Socket(socket) => vec![
            "-chardev".into(),
            format!("socket,id={id},path={}", socket.display()),
            "-serial".into(),
            format!("chardev:{id}"),
        ],
        SerialBackend::Stdio => vec!["-serial".into(), "stdio".into()],
        SerialBackend::Null => vec!["-serial".into(), "null".into()],
    };
    let mut v = port(kernel, "con0");
    v.extend(port(shell, "sh0"));
    v
}

/// QMP lets the watchdog see a guest QEMU has paused (KVM internal error).
pub fn qmp_args(socket: &Path) -> Vec<String> {
    vec!["-qmp".into(), format!("unix:{},server=on,wait=off", socket.display())]
}

/// The emulated IOMMU's device; it must come before the devices it translates.
pub fn iommu_args(iommu: &Iommu) -> Vec<String> {
    iommu.args.clone()
}

/// ivshmem over a shared file mapping (what the guest writes to BAR2 is in
/// the file at once, and the reverse), or served by the rig's server; `id`
/// names it in QEMU, `slot` is its PCI slot.
pub fn ivshmem_args(
    table: &DeviceTable,
    dev: &SharedMemoryDevice,
    id: &str,
    slot: u8,
) -> Result<Vec<String>, DeviceError> {
    match dev {
        SharedMemoryDevice::Plain(shm) => table.render(
            "ivshmem-plain",
            id,
            slot,
            &[("mem_path", shm.mem_path.display().to_string()), ("size", shm.size.to_string())],
        ),
        SharedMemoryDevice::Doorbell { socket, vectors } => table.render(
            "ivshmem-doorbell",
            id,
            slot,
            &[("socket", socket.display().to_string()), ("vectors", vectors.to_string())],
        ),
    }
}

/// The full argv (without the binary), composed in a fixed order.
pub fn argv(cfg: &QemuConfig) -> Vec<String> {
    let mut v = base_args(&cfg.machine);
    let iommu = cfg.iommu.as_ref();
    v.extend(machine_args(&cfg.machine, iommu, cfg.accel, cfg.cpu_model.as_deref(), cfg.memory_mib, cfg.cpus));
    v.extend(kernel_args(&cfg.kernel, &cfg.initrd, &cfg.cmdline));
    v.extend(console_args(&cfg.console, &cfg.shell));
    if let Some(q) = &cfg.qmp_socket {
        v.extend(qmp_args(q));
    }
    if let Some(i) = iommu {
        v.extend(iommu_args(i));
    }
    for d in &cfg.devices {
        v.extend(d.iter().cloned());
    }
    v
}

/// The kernel command line the rig boots with, before user extras.
pub fn default_cmdline(m: &Machine, console: &str) -> Vec<String> {
    std::iter::once(format!("console={console}")).chain(m.cmdline.iter().cloned()).collect()
}

/// Renders argv as one shell-quoted line (saved as `qemu.cmdline` in the run dir).
pub fn shell_line(binary: &Path, argv: &[String]) -> String {
    let quote = |s: &str| {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:+".contains(c)) {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    std::iter::once(binary.display().to_string()).chain(argv.iter().map(|a| quote(a))).collect::<Vec<_>>().join(" ")
}

/// Errors finding or identifying the QEMU binary.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The binary is not installed.
    #[error("`{0}` not found: install QEMU (`sudo apt-get install qemu-system-x86`, or run `make setup`)")]
    NotFound(String),
    /// It ran but did not print a version.
    #[error("cannot read the version of `{binary}`: {detail}")]
    Version { binary: String, detail: String },
    /// The machine profile is broken.
    #[error(transparent)]
    Machine(#[from] super::machine::MachineError),
    /// The device table is broken or a device lacks a value.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// A QEMU version as (major, minor, micro).
pub type Version = (u32, u32, u32);

/// Parses the first line of `qemu-system-x86_64 --version`.
pub fn parse_version(text: &str) -> Option<Version> {
    let rest = text.split("version ").nth(1)?;
    let word = rest.split_whitespace().next()?;
    let mut nums = word.split('.').map(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u32>());
    Some((nums.next()?.ok()?, nums.next()?.ok()?, nums.next().and_then(|r| r.ok()).unwrap_or(0)))
}

/// Runs `binary --version`.
pub fn version(binary: &Path) -> Result<Version, QemuError> {
    let out = Command::new(binary).arg("--version").output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            QemuError::NotFound(binary.display().to_string())
        } else {
            QemuError::Version { binary: binary.display().to_string(), detail: e.to_string() }
        }
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| QemuError::Version {
        binary: binary.display().to_string(),
        detail: format!("unexpected output `{}`", text.lines().next().unwrap_or("")),
    })
}

/// QEMU releases older than this double-fault 6.12 guests under TCG now and then.
pub const RECOMMENDED_MAJOR: u32 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QemuConfig {
        let machine = Machine::builtin().expect("machine");
        let shm = SharedMemoryDevice::Plain(Ivshmem { mem_path: "/run/x/shm".into(), size: 4 << 20 });
        let table = DeviceTable::builtin().expect("devices");
        QemuConfig {
            binary: "qemu-system-x86_64".into(),
            cmdline: default_cmdline(&machine, "ttyS0"),
            machine,
            accel: Accel::Tcg,
            memory_mib: 256,
            cpus: 1,
            cpu_model: None,
            kernel: "/k/vmlinuz".into(),
            initrd: "/k/initrd.cpio".into(),
            console: SerialBackend::Socket("/run/x/console.sock".into()),
            shell: SerialBackend::Socket("/run/x/shell.sock".into()),
            qmp_socket: Some("/run/x/qmp.sock".into()),
            devices: vec![ivshmem_args(&table, &shm, "shm0", 3).expect("render")],
            ivshmem: Some(shm),
            iommu: None,
        }
    }

    fn has_pair(v: &[String], a: &str, b: &str) -> bool {
        v.windows(2).any(|w| w[0] == a && w[1] == b)
    }

    #[test]
    fn argv_has_each_concern() {
        let v = argv(&config());
        assert!(v.contains(&"-no-reboot".to_string()));
        assert!(v.contains(&"-nodefaults".to_string()));
        assert!(has_pair(&v, "-accel", "tcg"));
        assert!(has_pair(&v, "-m", "256"));
        assert!(has_pair(&v, "-kernel", "/k/vmlinuz"));
        assert!(has_pair(&v, "-initrd", "/k/initrd.cpio"));
        assert!(has_pair(&v, "-chardev", "socket,id=con0,path=/run/x/console.sock"));
        assert!(has_pair(&v, "-serial", "chardev:con0"));
        assert!(has_pair(&v, "-chardev", "socket,id=sh0,path=/run/x/shell.sock"));
        // The kernel's console is the first port, the shell's the second.
        let first = v.iter().position(|a| a == "chardev:con0");
        assert!(first < v.iter().position(|a| a == "chardev:sh0"));
        assert!(has_pair(&v, "-qmp", "unix:/run/x/qmp.sock,server=on,wait=off"));
        assert!(has_pair(&v, "-object", "memory-backend-file,id=shm0,mem-path=/run/x/shm,size=4194304,share=on"));
        assert!(has_pair(&v, "-device", "ivshmem-plain,memdev=shm0,addr=03.0,master=on"));
        assert!(has_pair(&v, "-machine", "q35"));
        assert!(!v.iter().any(|a| a.contains("iommu")));
        let append = v.iter().position(|a| a == "-append").map(|i| v[i + 1].clone());
        let append = append.unwrap_or_default();
        assert!(append.contains("console=ttyS0") && append.contains("panic=-1"));
        // No -cpu host under TCG: it aborts there.
        assert!(!v.contains(&"host".to_string()));
    }

    #[test]
    fn kvm_uses_host_cpu() {
        let mut c = config();
        c.accel = Accel::Kvm;
        let v = argv(&c);
        assert!(has_pair(&v, "-accel", "kvm"));
        assert!(has_pair(&v, "-cpu", "host"));
        c.cpu_model = Some("qemu64,-cx16".into());
        assert!(has_pair(&argv(&c), "-cpu", "qemu64,-cx16"));
    }

    #[test]
    fn no_ivshmem_no_device() {
        let mut c = config();
        c.ivshmem = None;
        c.devices.clear();
        c.qmp_socket = None;
        c.console = SerialBackend::Null;
        c.shell = SerialBackend::Stdio;
        let v = argv(&c);
        assert!(!v.iter().any(|a| a.contains("ivshmem") || a == "-qmp" || a == "-chardev"));
        assert!(has_pair(&v, "-serial", "stdio"));
    }

    #[test]
    fn doorbell_device_uses_the_server_socket() {
        let mut c = config();
        let dev = SharedMemoryDevice::Doorbell { socket: "/run/x/ivshmem.sock".into(), vectors: 2 };
        c.devices = vec![ivshmem_args(&DeviceTable::builtin().expect("devices"), &dev, "ivsh0", 3).expect("render")];
        c.ivshmem = Some(dev);
        let v = argv(&c);
        assert!(has_pair(&v, "-chardev", "socket,id=ivsh0,path=/run/x/ivshmem.sock"));
        assert!(has_pair(&v, "-device", "ivshmem-doorbell,chardev=ivsh0,vectors=2,addr=03.0,master=on"));
        assert!(!v.iter().any(|a| a.contains("memory-backend-file")));
    }

    #[test]
    fn the_iommu_comes_before_the_devices_it_translates() {
        let mut c = config();
        let table = DeviceTable::builtin().expect("devices");
        c.iommu = Some(c.machine.iommu("intel").expect("intel").clone());
        c.devices.push(table.render("edu", "edu0", 4, &[]).expect("edu"));
        let v = argv(&c);
        assert!(has_pair(&v, "-machine", "q35,kernel-irqchip=split"));
        let iommu = v.iter().position(|a| a == "intel-iommu,intremap=on");
        let first_device = v.iter().position(|a| a.starts_with("ivshmem-plain") || a.starts_with("edu,"));
        assert!(iommu.is_some() && iommu < first_device, "{v:?}");
        assert!(has_pair(&v, "-device", "edu,id=edu0,addr=04.0"));
    }

    #[test]
    fn shell_line_quotes() {
        let line = shell_line(Path::new("qemu"), &["-append".into(), "console=ttyS0 panic=-1".into()]);
        assert_eq!(line, "qemu -append 'console=ttyS0 panic=-1'");
    }

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)"), Some((10, 0, 2)));
        assert_eq!(parse_version("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u7)"), Some((7, 2, 15)));
        assert_eq!(parse_version("garbage"), None);
    }
}
