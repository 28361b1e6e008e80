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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineFile {
    machine: Machine,
    #[serde(default)]
    iommu: BTreeMap<String, Iommu>,
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
    fn rejects_bad_profiles() {
        assert!(Machine::parse("[machine]\nbase=[]\ntype=\"q35\"\ncmdline=[\"console=ttyS0\"]\n").is_err());
        assert!(Machine::parse("[machine]\nbase=[\"\"]\ntype=\"q35\"\ncmdline=[]\n").is_err());
        assert!(Machine::parse("[machine]\nbase=[]\ntype=\"q35\"\ncmdline=[]\nextra=1\n").is_err());
    }
}
