//! The guest machine as data (`qemu/machine.toml`): QEMU's base arguments,
//! the machine type and the kernel command line the rig always boots with.

use serde::Deserialize;

const BUILTIN: &str = include_str!("../../../qemu/machine.toml");

/// `qemu/machine.toml` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("qemu/machine.toml: {0}")]
pub struct MachineError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineFile {
    machine: Machine,
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
}

impl Machine {
    /// The profile embedded in the binary.
    pub fn builtin() -> Result<Machine, MachineError> {
        Machine::parse(BUILTIN)
    }

    /// Parses and checks a profile.
    pub fn parse(text: &str) -> Result<Machine, MachineError> {
        let f: MachineFile = toml::from_str(text).map_err(|e| MachineError(e.message().to_string()))?;
        let m = f.machine;
        if m.kind.is_empty() || m.base.iter().chain(&m.cmdline).any(|a| a.is_empty()) {
            return Err(MachineError("empty machine type or argument".into()));
        }
        if m.cmdline.iter().any(|w| w.starts_with("console=")) {
            return Err(MachineError("the console comes from the kernel catalog, not the machine".into()));
        }
        Ok(m)
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
    }

    #[test]
    fn rejects_bad_profiles() {
        assert!(Machine::parse("[machine]\nbase=[]\ntype=\"q35\"\ncmdline=[\"console=ttyS0\"]\n").is_err());
        assert!(Machine::parse("[machine]\nbase=[\"\"]\ntype=\"q35\"\ncmdline=[]\n").is_err());
        assert!(Machine::parse("[machine]\nbase=[]\ntype=\"q35\"\ncmdline=[]\nextra=1\n").is_err());
    }
}
