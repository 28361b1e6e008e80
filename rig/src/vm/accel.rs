//! Choosing KVM or TCG. `/dev/kvm` existing is not enough: some hosts (the
//! PVM backend) expose it without hardware virtualisation, and QEMU then
//! pauses a Debian guest forever. So KVM is used only when every probe passes.

use crate::vm::qemu::Accel;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

/// What the user asked for on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AccelRequest {
    /// KVM when usable, TCG otherwise.
    #[default]
    Auto,
    /// KVM even if a probe failed (the boot watchdog still guards it).
    Kvm,
    /// Software emulation.
    Tcg,
}

/// The facts the decision is made from (gathered by [`probe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmProbe {
    /// `/dev/kvm` opened read-write and answered KVM_GET_API_VERSION with 12.
    pub dev_usable: Result<(), String>,
    /// /proc/cpuinfo lists vmx or svm.
    pub hw_virt: bool,
    /// The paravirtual PVM backend is loaded (kvm_pvm).
    pub pvm_backend: bool,
}

/// The accelerator chosen and the one-line reason shown to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccelChoice {
    /// What QEMU will use.
    pub accel: Accel,
    /// Why, in words.
    pub reason: String,
}

/// Pure decision from a probe and a request.
pub fn decide(req: AccelRequest, p: &KvmProbe) -> AccelChoice {
    let kvm_problem = if let Err(e) = &p.dev_usable {
        Some(e.clone())
    } else if p.pvm_backend {
        Some("/dev/kvm is the PVM backend (kvm_pvm), which cannot run stock Debian kernels".into())
    } else if !p.hw_virt {
        Some("the CPU shows no vmx/svm, so /dev/kvm cannot run a full guest".into())
    } else {
        None
    };
    match (req, kvm_problem) {
        (AccelRequest::Tcg, _) => AccelChoice { accel: Accel::Tcg, reason: "tcg requested with --accel tcg".into() },
        (AccelRequest::Kvm, None) => AccelChoice { accel: Accel::Kvm, reason: "kvm requested and usable".into() },
        (AccelRequest::Kvm, Some(why)) => AccelChoice {
            accel: Accel::Kvm,
            reason: format!("kvm forced with --accel kvm although {why}; the boot watchdog ends a paused guest"),
        },
        (AccelRequest::Auto, None) => AccelChoice { accel: Accel::Kvm, reason: "/dev/kvm is usable".into() },
        (AccelRequest::Auto, Some(why)) => {
            AccelChoice { accel: Accel::Tcg, reason: format!("falling back to tcg: {why}") }
        }
    }
}

nix::ioctl_none!(kvm_get_api_version, 0xAE, 0x00);

fn probe_dev(path: &Path) -> Result<(), String> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns a number.
    let v = unsafe { kvm_get_api_version(f.as_raw_fd()) }.map_err(|e| format!("KVM_GET_API_VERSION failed: {e}"))?;
    if v != 12 {
        return Err(format!("KVM API version {v}, expected 12"));
    }
    Ok(())
}

/// Reads the host's facts.
pub fn probe() -> KvmProbe {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    KvmProbe {
        dev_usable: probe_dev(Path::new("/dev/kvm")),
        hw_virt,
        pvm_backend: Path::new("/sys/module/kvm_pvm").exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> KvmProbe {
        KvmProbe { dev_usable: Ok(()), hw_virt: true, pvm_backend: false }
    }

    #[test]
    fn auto_uses_real_kvm() {
        assert_eq!(decide(AccelRequest::Auto, &good()).accel, Accel::Kvm);
    }

    #[test]
    fn auto_refuses_pvm_and_says_why() {
        let p = KvmProbe { pvm_backend: true, hw_virt: false, ..good() };
        let c = decide(AccelRequest::Auto, &p);
        assert_eq!(c.accel, Accel::Tcg);
        assert!(c.reason.contains("PVM"), "{}", c.reason);
    }

    #[test]
    fn auto_without_device_falls_back() {
        let p = KvmProbe { dev_usable: Err("cannot open /dev/kvm: No such file".into()), ..good() };
        let c = decide(AccelRequest::Auto, &p);
        assert_eq!(c.accel, Accel::Tcg);
        assert!(c.reason.contains("/dev/kvm"));
    }

    #[test]
    fn forced_choices_win() {
        assert_eq!(decide(AccelRequest::Tcg, &good()).accel, Accel::Tcg);
        let bad = KvmProbe { hw_virt: false, ..good() };
        let c = decide(AccelRequest::Kvm, &bad);
        assert_eq!(c.accel, Accel::Kvm);
        assert!(c.reason.contains("forced"));
    }
}
