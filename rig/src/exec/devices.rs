//! The `[[device]]`s of a run: what `/init` must do with each, the in-tree
//! modules they need (vfio-pci and the type1 IOMMU backend, or the kind's
//! own driver), and the boot check of each from what `/init` reported.

use crate::guest::protocol::{self, DeviceReport};
use crate::image::init::DeviceInit;
use crate::kernel::intree::{self, InTreeModule, IntreeError};
use crate::plan::step::Check;
use crate::plan::{Bind, DevicePlan};
use crate::results::{CheckResult, Outcome};
use crate::vm::devices::{DeviceError, DeviceTable};
use std::path::Path;

/// What vfio-pci needs besides its own dependencies: vfio asks for the
/// type1 backend with request_module when a container is set up, and the
/// guest has no modprobe.
pub const VFIO_MODULES: [&str; 2] = ["vfio_pci", "vfio_iommu_type1"];

/// A device the kernel cannot drive as asked.
#[derive(Debug, thiserror::Error)]
pub enum DeviceSetupError {
    /// vfio-pci or the kind's driver is not in the kernel package.
    #[error(
        "device `{device}` ({kind}) needs the in-tree module `{module}`, which kernel {release} does not have: {fix}"
    )]
    MissingModule { device: String, kind: String, module: String, release: String, fix: String },
    /// The in-tree modules could not be read.
    #[error(transparent)]
    Intree(#[from] IntreeError),
    /// The device table is broken.
    #[error(transparent)]
    Table(#[from] DeviceError),
}

/// A `[[device]]` with what the device table says about its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestDevice {
    /// As validated.
    pub plan: DevicePlan,
    /// `0x1234:0x11e8`.
    pub id: String,
    /// The in-tree driver of `bind = "kernel"`, if the table names one.
    pub driver: Option<String>,
    /// More in-tree modules `bind = "kernel"` needs (virtio-net's virtio_net).
    pub kernel_modules: Vec<String>,
}

/// The devices of `plan`, looked up in the table.
pub fn guest_devices(plan: &[DevicePlan], table: &DeviceTable) -> Result<Vec<GuestDevice>, DeviceError> {
    plan.iter()
        .map(|d| {
            let k = table.get(&d.kind)?;
            Ok(GuestDevice {
                plan: d.clone(),
                id: k.sysfs_id(),
                driver: k.driver.clone(),
                kernel_modules: k.modules.clone(),
            })
        })
        .collect()
}

impl GuestDevice {
    /// What `/init` needs to find, bind and export it.
    pub fn init(&self) -> DeviceInit {
        DeviceInit {
            name: self.plan.name.clone(),
            bdf: self.plan.bdf(),
            id: self.id.clone(),
            bind: self.plan.bind.name().into(),
            var: self.plan.env(),
        }
    }

    /// The in-tree modules it needs: vfio-pci's, or its kernel driver.
    pub fn modules(&self) -> Vec<String> {
        match (self.plan.bind, &self.driver) {
            (Bind::VfioPci, _) => VFIO_MODULES.iter().map(|m| m.to_string()).collect(),
            (Bind::Kernel, Some(d)) => std::iter::once(d).chain(&self.kernel_modules).cloned().collect(),
            _ => vec![],
        }
    }

    /// The name of its boot check.
    pub fn check_name(&self) -> String {
        let to = match (self.plan.bind, &self.driver) {
            (Bind::VfioPci, _) => "bound to vfio-pci".to_string(),
            (Bind::Kernel, Some(d)) => format!("taken by its kernel driver {d}"),
            (Bind::Kernel, None) => "taken by a kernel driver".to_string(),
            (Bind::None, _) => "left without a driver".to_string(),
        };
        format!("device {} ({}) at {} {to}", self.plan.name, self.plan.kind, self.plan.bdf())
    }

    /// Its boot check from what `/init` reported (`None`: nothing), with the
    /// facts as output.
    pub fn outcome(&self, report: Option<&DeviceReport>) -> (Outcome, String) {
        let (name, bdf) = (&self.plan.name, self.plan.bdf());
        let (driver, group, vfio_node) = match report {
            None => {
                return (
                    Outcome::Fail(format!("/init never reported device {name}: it stopped before the devices")),
                    String::new(),
                )
            }
            Some(DeviceReport::Missing { found }) => {
                let there = if found == "-" { "nothing".to_string() } else { format!("{found} instead") };
                return (
                    Outcome::Fail(format!(
                        "the guest never enumerated {name} ({} {}) at {bdf}: {there} there; see qemu.cmdline and the kernel's PCI messages in console.log",
                        self.plan.kind, self.id
                    )),
                    String::new(),
                );
            }
            Some(DeviceReport::Present { driver, group, vfio_node }) => {
                (driver.as_deref(), group.as_deref(), *vfio_node)
            }
        };
        let facts = format!("driver {}, IOMMU group {}", driver.unwrap_or("none"), group.unwrap_or("none"));
        let problem = match (self.plan.bind, &self.driver, driver) {
            (Bind::VfioPci, _, Some("vfio-pci")) if vfio_node => None,
            (Bind::VfioPci, _, Some("vfio-pci")) => Some(format!(
                "vfio-pci took {bdf} but /dev/vfio/{} is missing: the device has no usable IOMMU group",
                group.unwrap_or("<group>")
            )),
            (Bind::VfioPci, _, other) => Some(format!(
                "{bdf} is bound to {} after driver_override and drivers_probe, not vfio-pci (did vfio-pci load? see the insmod checks)",
                other.unwrap_or("no driver")
            )),
            (Bind::Kernel, Some(want), got) if got != Some(want.as_str()) => Some(format!(
                "{bdf} is bound to {}, not its kernel driver {want}",
                got.unwrap_or("no driver")
            )),
            (Bind::Kernel, None, None) => Some(format!(
                "no kernel driver took {bdf}: load one (a [[module]], or `intree`), or set bind = \"vfio-pci\" or \"none\""
            )),
            (Bind::None, _, Some(d)) => Some(format!("{bdf} is still bound to {d}")),
            _ => None,
        };
        match problem {
            Some(why) => (Outcome::Fail(why), facts),
            None => (Outcome::Pass, facts),
        }
    }
}

/// The boot group's check of each device (results come from [`boot_results`]).
pub fn boot_checks(devices: &[GuestDevice]) -> Vec<Check> {
    devices.iter().map(|d| Check::rig(d.check_name())).collect()
}

/// One result per device from `/init`'s `RIG-DEVICE` lines.
pub fn boot_results(boot_log: &str, devices: &[GuestDevice]) -> Vec<CheckResult> {
    devices
        .iter()
        .map(|d| {
            let (outcome, output) = d.outcome(protocol::device_report(boot_log, &d.plan.name).as_ref());
            CheckResult { output, ..CheckResult::verdict(&d.check_name(), outcome) }
        })
        .collect()
}

/// The in-tree modules the devices need, dependencies first. A module the
/// kernel does not have is the config's problem (another kernel, or
/// another `bind`), named with the device that wants it.
pub fn resolve_modules(
    modules_dir: Option<&Path>,
    release: &str,
    devices: &[GuestDevice],
) -> Result<Vec<InTreeModule>, DeviceSetupError> {
    let mut out: Vec<InTreeModule> = Vec::new();
    for d in devices {
        for m in d.modules() {
            let found = intree::resolve(modules_dir, release, std::slice::from_ref(&m)).map_err(|e| match e {
                IntreeError::NotFound { name, release } => missing(d, &name, &release),
                IntreeError::NoModules { release } => missing(d, &m, &release),
                other => DeviceSetupError::Intree(other),
            })?;
            for f in found {
                if !out.iter().any(|o| o.name == f.name) {
                    out.push(f);
                }
            }
        }
    }
    Ok(out)
}

fn missing(d: &GuestDevice, module: &str, release: &str) -> DeviceSetupError {
    let fix = match d.plan.bind {
        Bind::VfioPci => "use a kernel with VFIO as modules (every catalog kernel has it), or bind = \"kernel\" or \"none\"".to_string(),
        _ => format!(
            "the kernel has no driver for {} (Debian's cloud kernels leave most NICs out): set bind = \"vfio-pci\" or \"none\", or use a flavour that has it (e.g. --kernel bookworm/amd64)",
            d.plan.kind
        ),
    };
    DeviceSetupError::MissingModule {
        device: d.plan.name.clone(),
        kind: d.plan.kind.clone(),
        module: module.to_string(),
        release: release.to_string(),
        fix,
    }
}

/// Adds `extra` to `modules`, skipping the ones already there.
pub fn merge_modules(modules: &mut Vec<InTreeModule>, extra: Vec<InTreeModule>) {
    for m in extra {
        if !modules.iter().any(|o| o.name == m.name) {
            modules.push(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(kind: &str, bind: Bind) -> GuestDevice {
        let table = DeviceTable::builtin().expect("table");
        let plan = DevicePlan { name: "d0".into(), kind: kind.into(), bind, slot: 4, image_size: None };
        guest_devices(&[plan], &table).expect("kind").remove(0)
    }

    fn present(driver: Option<&str>, group: Option<&str>, node: bool) -> DeviceReport {
        DeviceReport::Present { driver: driver.map(String::from), group: group.map(String::from), vfio_node: node }
    }

    #[test]
    fn modules_per_bind() {
        assert_eq!(dev("edu", Bind::VfioPci).modules(), ["vfio_pci", "vfio_iommu_type1"]);
        assert_eq!(dev("nvme", Bind::Kernel).modules(), ["nvme"]);
        assert_eq!(dev("virtio-net", Bind::Kernel).modules(), ["virtio-pci", "virtio_net"]);
        assert!(dev("edu", Bind::Kernel).modules().is_empty());
        assert!(dev("igb", Bind::None).modules().is_empty());
        let i = dev("edu", Bind::VfioPci).init();
        assert_eq!(
            (i.bdf.as_str(), i.id.as_str(), i.bind.as_str(), i.var.as_str()),
            ("0000:00:04.0", "0x1234:0x11e8", "vfio-pci", "RIG_DEV_D0")
        );
    }

    #[test]
    fn outcomes_name_the_problem() {
        let vfio = dev("edu", Bind::VfioPci);
        assert_eq!(vfio.check_name(), "device d0 (edu) at 0000:00:04.0 bound to vfio-pci");
        let (o, facts) = vfio.outcome(Some(&present(Some("vfio-pci"), Some("3"), true)));
        assert_eq!((o, facts.as_str()), (Outcome::Pass, "driver vfio-pci, IOMMU group 3"));
        let fail = |d: &GuestDevice, r: Option<DeviceReport>| match d.outcome(r.as_ref()).0 {
            Outcome::Fail(m) => m,
            other => panic!("expected a failure, got {other:?}"),
        };
        let m = fail(&vfio, Some(DeviceReport::Missing { found: "-".into() }));
        assert!(m.contains("never enumerated d0 (edu 0x1234:0x11e8) at 0000:00:04.0: nothing there"), "{m}");
        let m = fail(&vfio, Some(DeviceReport::Missing { found: "0x8086:0x10d3".into() }));
        assert!(m.contains("0x8086:0x10d3 instead"), "{m}");
        assert!(fail(&vfio, None).contains("never reported"));
        assert!(fail(&vfio, Some(present(None, Some("3"), false))).contains("not vfio-pci"));
        assert!(fail(&vfio, Some(present(Some("vfio-pci"), None, false))).contains("/dev/vfio"));

        let nvme = dev("nvme", Bind::Kernel);
        assert_eq!(nvme.outcome(Some(&present(Some("nvme"), None, false))).0, Outcome::Pass);
        assert!(fail(&nvme, Some(present(None, None, false))).contains("not its kernel driver nvme"));
        let edu = dev("edu", Bind::Kernel);
        assert!(fail(&edu, Some(present(None, None, false))).contains("no kernel driver took"));
        assert_eq!(edu.outcome(Some(&present(Some("my_edu"), None, false))).0, Outcome::Pass);
        let none = dev("nvme", Bind::None);
        assert_eq!(none.outcome(Some(&present(None, Some("2"), false))).0, Outcome::Pass);
        assert!(fail(&none, Some(present(Some("nvme"), None, false))).contains("still bound to nvme"));
    }

    #[test]
    fn results_follow_the_boot_log() {
        let d = vec![dev("edu", Bind::VfioPci)];
        assert_eq!(boot_checks(&d)[0].name, d[0].check_name());
        let r = boot_results("RIG-DEVICE d0 present vfio-pci 1 yes\r\n", &d);
        assert_eq!(r[0].outcome, Outcome::Pass);
        assert_eq!(r[0].output, "driver vfio-pci, IOMMU group 1");
        assert!(!boot_results("", &d)[0].passed());
    }

    #[test]
    fn a_kernel_without_the_module_is_named_with_the_device() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("kernel")).expect("mkdir");
        let e = resolve_modules(Some(dir.path()), "6.1.0-x", &[dev("igb", Bind::Kernel)]).expect_err("no igb");
        let m = e.to_string();
        assert!(
            m.contains("`d0` (igb)") && m.contains("`igb`") && m.contains("6.1.0-x") && m.contains("vfio-pci"),
            "{m}"
        );
        let e = resolve_modules(Some(dir.path()), "6.1.0-x", &[dev("edu", Bind::VfioPci)]).expect_err("no vfio");
        assert!(matches!(e, DeviceSetupError::MissingModule { ref module, .. } if module == "vfio_pci"), "{e}");
        let e = resolve_modules(None, "6.1.0-x", &[dev("edu", Bind::VfioPci)]).expect_err("no modules");
        assert!(matches!(e, DeviceSetupError::MissingModule { .. }), "{e}");
        assert!(resolve_modules(None, "6.1.0-x", &[dev("edu", Bind::None)]).expect("nothing").is_empty());
    }
}
