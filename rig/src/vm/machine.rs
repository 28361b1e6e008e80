//! The guest machine as data (`qemu/machine.toml`): QEMU's base arguments,
//! the machine type, the kernel command line the rig always boots with, and
//! the emulated IOMMUs a guest may get.

use serde::Deserialize;
use std::collections::BTreeMap;

const BUILTIN: &str = include_str!("../../../qemu/machine.toml");

/// `qemu/machine.toml` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("qemu/machine.toml: {0}")]
pub struct MachineError(String);

impl MachineError {
    /// The profile lacks a section a guest needs.
    pub fn missing(section: &str) -> MachineError {
        MachineError(format!("no [{section}] section"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineFile {
    machine: Machine,
    #[serde(default)]
    iommu: BTreeMap<String, Iommu>,
    rootfs: Option<RootDisk>,
}

/// The Debian root's disk: its QEMU arguments (`{image}`, `{addr}`), the
/// modules that mount it, and the CPU model its packages need under TCG.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RootDisk {
    pub args: Vec<String>,
    pub modules: Vec<String>,
    pub tcg_cpu: String,
}

impl RootDisk {
    /// The arguments for `image` in PCI slot `slot`.
    pub fn render(&self, image: &std::path::Path, slot: u8) -> Vec<String> {
        let addr = super::devices::addr(slot);
        self.args.iter().map(|a| a.replace("{image}", &image.display().to_string()).replace("{addr}", &addr)).collect()
    }
}

/// An emulated IOMMU: what it adds to the machine, the argv and the kernel
/// command line.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Iommu {
    /// The name users write (`iommu = "intel"`); the table key.
    #[serde(skip)]
    pub name: String,
    /// Options appended to `-machine <type>`.
    #[serde(default)]
    pub machine: Vec<String>,
    /// QEMU arguments, placed before every device.
    pub args: Vec<String>,
    /// Kernel command-line words.
    #[serde(default)]
    pub cmdline: Vec<String>,
}

/// One machine profile.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Arguments every QEMU gets first.
    pub base: Vec<String>,
    /// `-machine` type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Kernel command-line words after the console.
    pub cmdline: Vec<String>,
    /// The IOMMUs a guest may ask for, by name.
    #[serde(skip)]
    pub iommus: BTreeMap<String, Iommu>,
    /// The Debian root's disk.
    #[serde(skip)]
    pub rootfs: Option<RootDisk>,
}

impl Machine {
    /// The profile embedded in the binary.
    pub fn builtin() -> Result<Machine, MachineError> {
        Machine::parse(BUILTIN)
    }

    /// Parses and checks a profile.
    pub fn parse(text: &str) -> Result<Machine, MachineError> {
        let f: MachineFile = toml::from_str(text).map_err(|e| MachineError(e.message().to_string()))?;
        let mut m = f.machine;
        if m.kind.is_empty() || m.base.iter().chain(&m.cmdline).any(|a| a.is_empty()) {
            return Err(MachineError("empty machine type or argument".into()));
        }
        if m.cmdline.iter().any(|w| w.starts_with("console=")) {
            return Err(MachineError("the console comes from the kernel catalog, not the machine".into()));
        }
        for (name, mut i) in f.iommu {
            if i.args.is_empty() || i.args.iter().chain(&i.machine).chain(&i.cmdline).any(|a| a.is_empty()) {
                return Err(MachineError(format!("iommu `{name}` has no arguments or an empty one")));
            }
            i.name = name.clone();
            m.iommus.insert(name, i);
        }
        if let Some(r) = &f.rootfs {
            if !r.args.iter().any(|a| a.contains("{image}")) || r.modules.is_empty() || r.tcg_cpu.is_empty() {
                return Err(MachineError("[rootfs] needs args with {image}, modules and tcg_cpu".into()));
            }
        }
        m.rootfs = f.rootfs;
        Ok(m)
    }

    /// The IOMMU called `name`.
    pub fn iommu(&self, name: &str) -> Result<&Iommu, MachineError> {
        self.iommus.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.iommus.keys().map(String::as_str).collect();
            MachineError(format!("no iommu `{name}`; known: {}", known.join(", ")))
        })
    }

    /// The `-machine` value: the type, then the IOMMU's options.
    pub fn machine_value(&self, iommu: Option<&Iommu>) -> String {
        std::iter::once(self.kind.as_str())
            .chain(iommu.into_iter().flat_map(|i| i.machine.iter().map(String::as_str)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profile() {
        let m = Machine::builtin().expect("builtin");
        assert_eq!(m.kind, "q35");
        assert!(m.base.contains(&"-no-reboot".to_string()));
        assert!(m.cmdline.contains(&"panic=-1".to_string()));
        assert_eq!(m.machine_value(None), "q35");
    }

    #[test]
    fn intel_iommu_profile() {
        let m = Machine::builtin().expect("builtin");
        let i = m.iommu("intel").expect("intel");
        assert_eq!(i.name, "intel");
        assert_eq!(i.args, ["-device", "intel-iommu,intremap=on"]);
        assert_eq!(i.cmdline, ["intel_iommu=on", "no_timer_check"]);
        assert_eq!(m.machine_value(Some(i)), "q35,kernel-irqchip=split");
        let e = m.iommu("amd").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("amd") && e.contains("intel"), "{e}");
        let bad = "[machine]\nbase=[]\ntype=\"q35\"\ncmdline=[]\n[iommu.x]\nargs=[]\n";
        assert!(Machine::parse(bad).is_err());
    }

    #[test]
    fn the_debian_roots_disk() {
        let m = Machine::builtin().expect("builtin");
        let r = m.rootfs.as_ref().expect("[rootfs]");
        assert_eq!(
            r.render(std::path::Path::new("/c/rootfs/t/root.squashfs"), 2),
            [
                "-drive",
                "file=/c/rootfs/t/root.squashfs,if=none,id=rootfs,format=raw,readonly=on",
                "-device",
                "virtio-blk-pci,drive=rootfs,addr=02.0"
            ]
        );
        assert_eq!(r.modules, ["virtio_pci", "virtio_blk", "squashfs", "overlay"]);
        assert_eq!(r.tcg_cpu, "max");
        let bad = "[machine]\nbase=[]\ntype=\"q35\"\ncmdline=[]\n[rootfs]\nargs=[\"-drive\"]\nmodules=[\"x\"]\ntcg_cpu=\"max\"\n";
        assert!(Machine::parse(bad).is_err());
    }

    #[test]
    fn rejects_bad_profiles() {
        assert!(Machine::parse("[machine]\nbase=[]\ntype=\"q35\"\ncmdline=[\"console=ttyS0\"]\n").is_err());
        assert!(Machine::parse("[machine]\nbase=[\"\"]\ntype=\"q35\"\ncmdline=[]\n").is_err());
        assert!(Machine::parse("[machine]\nbase=[]\ntype=\"q35\"\ncmdline=[]\nextra=1\n").is_err());
    }
}
