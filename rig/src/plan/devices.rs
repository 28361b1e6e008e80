//! `[[device]]` and `[guest] iommu` as written, validated: kinds from the
//! device table, names that make good variables, one name each, sizes that
//! fit the kind, a PCI slot each, and the IOMMU vfio-pci needs. Also the
//! report classes `expect_report` names.

use super::file::{BindSpec, DeviceSpec, DEFAULT_VECTORS};
use super::validate::{in_range, Ctx, SHM_MIB, VECTORS};
use super::{env_name, is_shm_kind, Bind, ConfigError, DevicePlan, ShmPlan, FIRST_DEVICE_SLOT, MAX_DEVICES};
use crate::verdict::Class;
use crate::vm::devices::DeviceTable;
use crate::vm::machine::Machine;
use toml::Spanned;

/// A device's backing image (an NVMe namespace), MiB; sparse on the host.
const IMAGE_MIB: std::ops::RangeInclusive<u64> = 1..=65536;
/// Default size of a backing image, MiB.
const DEFAULT_IMAGE_MIB: u64 = 16;
/// Default size of an ivshmem `[[device]]`, MiB.
const DEFAULT_SHM_MIB: u64 = 4;

/// The IOMMU a guest gets when a device binds to vfio-pci and `[guest] iommu` is not given.
pub const DEFAULT_IOMMU: &str = "intel";

/// A device name becomes `$RIG_DEV_<NAME>` and QEMU's id of the device.
fn device_name_ok(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok || name.len() > 32 || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(format!(
            "`{name}` cannot name a device: it becomes ${}, so use up to 32 lower-case letters, digits and `_`, starting with a letter (e.g. `edu0`)",
            env_name(name)
        ));
    }
    Ok(())
}

/// The variables a device sets in the guest.
fn env_names(name: &str) -> [String; 3] {
    let v = env_name(name);
    [v.clone(), format!("{v}_SYSFS"), format!("{v}_GROUP")]
}

/// `[[device]]`s: known kinds, good names, one name each, sizes that fit
/// the kind, and a PCI slot each in order.
pub(super) fn devices(
    cx: &Ctx,
    list: &[Spanned<DeviceSpec>],
    table: &DeviceTable,
) -> Result<Vec<DevicePlan>, ConfigError> {
    if list.len() > MAX_DEVICES {
        return Err(cx.invalid(
            list[MAX_DEVICES].span(),
            &format!("device[{MAX_DEVICES}]"),
            format!("a guest has at most {MAX_DEVICES} devices"),
        ));
    }
    let mut out: Vec<DevicePlan> = Vec::new();
    let mut vars: Vec<String> = Vec::new();
    let mut shm_seen = false;
    for (i, d) in list.iter().enumerate() {
        let spec = d.get_ref();
        let key = |k: &str| format!("device[{i}].{k}");
        let name = spec.name.get_ref();
        device_name_ok(name).map_err(|m| cx.invalid(spec.name.span(), &key("name"), m))?;
        if out.iter().any(|o| o.name == *name) {
            return Err(cx.invalid(
                spec.name.span(),
                &key("name"),
                format!("two devices are called `{name}`: give each its own name"),
            ));
        }
        for v in env_names(name) {
            if vars.contains(&v) {
                return Err(cx.invalid(
                    spec.name.span(),
                    &key("name"),
                    format!("`{name}` would set ${v}, which another device sets already: rename one"),
                ));
            }
            vars.push(v);
        }
        let kind = table
            .get(spec.kind.get_ref())
            .map_err(|e| cx.invalid(spec.kind.span(), &key("kind"), format!("{e} (qemu/devices.toml)")))?;
        let shm = is_shm_kind(&kind.kind);
        if shm && std::mem::replace(&mut shm_seen, true) {
            return Err(cx.invalid(
                spec.kind.span(),
                &key("kind"),
                "a guest has one shared-memory (ivshmem) device; the host's checks and doorbell serve one region",
            ));
        }
        if let Some(v) = &spec.vectors {
            if kind.kind != "ivshmem-doorbell" {
                return Err(cx.invalid(
                    v.span(),
                    &key("vectors"),
                    "`vectors` applies to kind \"ivshmem-doorbell\" only",
                ));
            }
            in_range(cx, v, &key("vectors"), VECTORS)?;
        }
        let image_size = match (&spec.size_mib, kind.has_image(), shm) {
            (Some(m), true, _) => {
                in_range(cx, m, &key("size_mib"), IMAGE_MIB)?;
                Some(*m.get_ref() << 20)
            }
            (None, true, _) => Some(DEFAULT_IMAGE_MIB << 20),
            (Some(m), false, true) => {
                if !m.get_ref().is_power_of_two() {
                    return Err(cx.invalid(m.span(), &key("size_mib"), "must be a power of two (1, 2, 4, ...)"));
                }
                in_range(cx, m, &key("size_mib"), SHM_MIB)?;
                None
            }
            (Some(m), false, false) => {
                return Err(cx.invalid(
                    m.span(),
                    &key("size_mib"),
                    format!(
                        "`size_mib` applies to devices with an image (nvme) or memory (ivshmem), not to {}",
                        kind.kind
                    ),
                ))
            }
            (None, false, _) => None,
        };
        let bind = match spec.bind.unwrap_or(BindSpec::Kernel) {
            BindSpec::Kernel => Bind::Kernel,
            BindSpec::VfioPci => Bind::VfioPci,
            BindSpec::None => Bind::None,
        };
        out.push(DevicePlan {
            name: name.clone(),
            kind: kind.kind.clone(),
            bind,
            slot: FIRST_DEVICE_SLOT + i as u8,
            image_size,
        });
    }
    Ok(out)
}

/// The shared memory an ivshmem `[[device]]` gives the guest.
pub(super) fn shm_of_device(d: &DeviceSpec) -> ShmPlan {
    let mib = d.size_mib.as_ref().map_or(DEFAULT_SHM_MIB, |m| *m.get_ref());
    ShmPlan {
        size: mib << 20,
        doorbell: d.kind.get_ref() == "ivshmem-doorbell",
        vectors: d.vectors.as_ref().map_or(DEFAULT_VECTORS, |v| *v.get_ref()),
    }
}

/// `[guest] iommu`: a profile of the machine, or none; the default is
/// the Intel IOMMU when a device binds to vfio-pci. vfio-pci without one
/// is refused here, before anything boots.
pub(super) fn iommu(
    cx: &Ctx,
    given: Option<&Spanned<String>>,
    devices: &[Spanned<DeviceSpec>],
) -> Result<Option<String>, ConfigError> {
    let vfio = devices.iter().enumerate().find(|(_, d)| d.get_ref().bind == Some(BindSpec::VfioPci));
    let chosen = match given {
        None => vfio.map(|_| DEFAULT_IOMMU.to_string()),
        Some(n) if n.get_ref() == "none" => None,
        Some(n) => {
            let machine = Machine::builtin().map_err(|e| cx.invalid(n.span(), "guest.iommu", e.to_string()))?;
            let known: Vec<String> = machine.iommus.keys().cloned().collect();
            if !known.contains(n.get_ref()) {
                return Err(cx.invalid(
                    n.span(),
                    "guest.iommu",
                    format!(
                        "unknown IOMMU `{}`: give {} or \"none\"",
                        n.get_ref(),
                        known.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            Some(n.get_ref().clone())
        }
    };
    if let (None, Some((i, d))) = (&chosen, vfio) {
        return Err(cx.invalid(
            d.span(),
            &format!("device[{i}].bind"),
            format!(
                "`{}` binds to vfio-pci, which needs an IOMMU, but [guest] iommu = \"none\": leave `iommu` out (the default is \"{DEFAULT_IOMMU}\"). VFIO's no-IOMMU mode is not supported (the type1 container needs an IOMMU, and Debian's kernels lack CONFIG_VFIO_NOIOMMU)",
                d.get_ref().name.get_ref()
            ),
        ));
    }
    Ok(chosen)
}

/// A kernel report class by its name (`iommu_fault`) or as people write it (`IOMMU fault`).
pub fn report_class(text: &str) -> Option<Class> {
    let name: String =
        text.trim().to_ascii_lowercase().chars().map(|c| if c == ' ' || c == '-' { '_' } else { c }).collect();
    Class::from_name(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::catalog::Catalog;
    use crate::plan::step::{Action, Memory};
    use crate::plan::{parse, Plan};
    use std::path::Path;

    fn parse_in(dir: &Path, text: &str) -> Result<Plan, ConfigError> {
        parse(&dir.join("rig.toml"), text, &Catalog::builtin().expect("catalog"))
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    fn err(text: &str) -> String {
        let d = dir();
        match parse_in(d.path(), text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn devices_get_slots_variables_and_an_iommu() {
        let d = dir();
        let text = r#"
[[device]]
name = "edu0"
kind = "edu"
bind = "vfio-pci"
[[device]]
name = "nvme0"
kind = "nvme"
size_mib = 32
[[device]]
name = "db"
kind = "ivshmem-doorbell"
bind = "vfio-pci"
vectors = 4
[[test]]
name = "t"
  [[test.step]]
  run = "rig-udrv edu --device $RIG_DEV_EDU0 --only unmapped"
  expect_report = "IOMMU fault"
  [[test.step]]
  host.verify_pattern = { device = "nvme0", offset = 0x100000, len = 4096, seed = 3 }
  [[test.step]]
  host.expect_bytes = { offset = 0, hex = "52" }
"#;
        let p = parse_in(d.path(), text).expect("plan");
        let g = &p.guest;
        assert_eq!(g.iommu.as_deref(), Some("intel"), "vfio-pci brings the default IOMMU");
        let slots: Vec<(&str, u8, Bind)> = g.devices.iter().map(|d| (d.name.as_str(), d.slot, d.bind)).collect();
        assert_eq!(slots, [("edu0", 4, Bind::VfioPci), ("nvme0", 5, Bind::Kernel), ("db", 6, Bind::VfioPci)]);
        assert_eq!(g.devices[1].image_size, Some(32 << 20));
        assert_eq!(g.devices[0].image_size, None);
        assert_eq!((g.devices[0].bdf(), g.devices[0].env()), ("0000:00:04.0".to_string(), "RIG_DEV_EDU0".to_string()));
        // The ivshmem device is the guest's shared memory, in its own slot.
        assert_eq!(g.shm, Some(ShmPlan { size: 4 << 20, doorbell: true, vectors: 4 }));
        assert_eq!(g.shm_slot(), 6);
        let c = &p.tests[0].checks;
        assert!(matches!(&c[0].action, Action::Guest { report: Some(Class::IommuFault), .. }));
        assert!(
            matches!(&c[1].action, Action::HostVerify { memory: Memory::Image(n), offset: 0x100000, .. } if n == "nvme0")
        );
        assert!(c[1].name.ends_with("of nvme0's image"), "{}", c[1].name);
        assert!(matches!(&c[2].action, Action::HostBytes { memory: Memory::Shm, .. }));

        // No device: no IOMMU unless asked for, and the shared memory keeps its slot.
        let p = parse_in(d.path(), "[guest]\niommu = \"intel\"\n").expect("plan");
        assert_eq!(p.guest.iommu.as_deref(), Some("intel"));
        assert_eq!(p.guest.shm_slot(), crate::plan::SHM_SLOT);
        let p = parse_in(d.path(), "[[device]]\nname = \"e\"\nkind = \"edu\"\nbind = \"none\"\n").expect("plan");
        assert_eq!(p.guest.iommu, None);
        assert_eq!(report_class("iommu_fault"), Some(Class::IommuFault));
        assert_eq!(report_class(" Soft lockup "), Some(Class::SoftLockup));
        assert_eq!(report_class("oops-ish"), None);
    }

    #[test]
    fn bad_devices_name_the_problem_and_the_fix() {
        let dev = |body: &str| format!("[[device]]\nname = \"edu0\"\nkind = \"edu\"\n{body}");
        for (text, key, needle) in [
            ("[[device]]\nname = \"x\"\nkind = \"edu2\"\n".to_string(), "device[0].kind", "unknown device kind `edu2`"),
            ("[[device]]\nname = \"Edu-0\"\nkind = \"edu\"\n".to_string(), "device[0].name", "$RIG_DEV_EDU-0"),
            ("[[device]]\nname = \"0edu\"\nkind = \"edu\"\n".to_string(), "device[0].name", "starting with a letter"),
            (dev("") + &dev(""), "device[1].name", "two devices are called `edu0`"),
            (
                dev("") + "[[device]]\nname = \"edu0_group\"\nkind = \"edu\"\n",
                "device[1].name",
                "$RIG_DEV_EDU0_GROUP",
            ),
            (dev("size_mib = 4\n"), "device[0].size_mib", "not to edu"),
            (dev("vectors = 4\n"), "device[0].vectors", "\"ivshmem-doorbell\" only"),
            (
                "[[device]]\nname = \"n\"\nkind = \"nvme\"\nsize_mib = 0\n".to_string(),
                "device[0].size_mib",
                "out of range",
            ),
            (
                "[[device]]\nname = \"s\"\nkind = \"ivshmem-plain\"\nsize_mib = 3\n".to_string(),
                "device[0].size_mib",
                "power of two",
            ),
            (
                "[guest.ivshmem]\nsize_mib = 4\n[[device]]\nname = \"s\"\nkind = \"ivshmem-plain\"\n".to_string(),
                "device",
                "given twice",
            ),
            (
                "[[device]]\nname = \"a\"\nkind = \"ivshmem-plain\"\n[[device]]\nname = \"b\"\nkind = \"ivshmem-doorbell\"\n"
                    .to_string(),
                "device[1].kind",
                "one shared-memory",
            ),
            (
                "[guest]\niommu = \"none\"\n".to_string() + &dev("bind = \"vfio-pci\"\n"),
                "device[0].bind",
                "needs an IOMMU",
            ),
            ("[guest]\niommu = \"amd\"\n".to_string(), "guest.iommu", "unknown IOMMU `amd`"),
            (
                "[[test]]\nname = \"t\"\n[[test.step]]\nrun = \"x\"\nexpect_report = \"boom\"\n".to_string(),
                "test[0].step[0].expect_report",
                "iommu_fault",
            ),
            (
                "[[test]]\nname = \"t\"\n[[test.step]]\nhost.command = \"x\"\nexpect_report = \"oops\"\n".to_string(),
                "expect_report",
                "`run` steps only",
            ),
            (
                dev("") + "[[test]]\nname = \"t\"\n[[test.step]]\nhost.verify_pattern = { device = \"edu0\", offset = 0, len = 1, seed = 1 }\n",
                "host.verify_pattern.device",
                "no [[device]] `edu0` with a backing image",
            ),
        ] {
            let e = err(&text);
            assert!(e.contains(key) && e.contains(needle), "{text}\n=> {e}");
        }
        let e = err(&dev("bind = \"vfio\"\n"));
        assert!(e.contains("rig.toml:4") && e.contains("vfio-pci"), "{e}");
        let many: String = (0..17).map(|i| format!("[[device]]\nname = \"e{i}\"\nkind = \"edu\"\n")).collect();
        assert!(err(&many).contains("at most 16"));
        // The message of vfio-pci without an IOMMU says why no-IOMMU mode is out.
        let e = err(&("[guest]\niommu = \"none\"\n".to_string() + &dev("bind = \"vfio-pci\"\n")));
        assert!(e.contains("VFIO_NOIOMMU") && e.contains("rig.toml:3"), "{e}");
    }
}
