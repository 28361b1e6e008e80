//! The table of virtual devices (`qemu/devices.toml`): what each kind is
//! called, how the guest sees it, which kernel driver takes it, and its QEMU
//! arguments as templates. The argv builder renders a device from here; no
//! device flag is written in code.

use serde::Deserialize;
use std::collections::BTreeSet;

const BUILTIN: &str = include_str!("../../../qemu/devices.toml");

/// A device table or a device's values are wrong.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The table does not parse or breaks a rule.
    #[error("qemu/devices.toml: {0}")]
    Table(String),
    /// No such kind.
    #[error("unknown device kind `{kind}`; known kinds: {known}")]
    UnknownKind { kind: String, known: String },
    /// A template needs a value that was not given.
    #[error("device `{kind}` needs a value for `{param}`")]
    Missing { kind: String, param: String },
}

/// One kind of device.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceKind {
    /// The name users write (`kind = "edu"`).
    pub kind: String,
    /// PCI vendor id the guest sees.
    pub vendor: u16,
    /// PCI device id the guest sees.
    pub device: u16,
    /// One line for humans.
    pub description: String,
    /// The in-tree driver (module name = driver name) that binds it by default.
    #[serde(default)]
    pub driver: Option<String>,
    /// In-tree modules `bind = "kernel"` needs besides the driver (virtio-net:
    /// the driver is the virtio-pci transport, virtio_net sits on it).
    #[serde(default)]
    pub modules: Vec<String>,
    /// Values the templates use besides `{id}` and `{addr}`.
    #[serde(default)]
    pub params: Vec<String>,
    /// QEMU arguments, with `{id}`, `{addr}` and `{param}` placeholders.
    pub args: Vec<String>,
}

/// The value that names a device's backing image in its templates.
pub const IMAGE_PARAM: &str = "image";

/// The value that names a NIC's netdev socket (the far end of its cable,
/// which the rig holds) in its templates.
pub const WIRE_PARAM: &str = "wire";

/// The value that gives a NIC its MAC address.
pub const MAC_PARAM: &str = "mac";

impl DeviceKind {
    /// The rig creates a backing file for it (an NVMe namespace, say).
    pub fn has_image(&self) -> bool {
        self.params.iter().any(|p| p == IMAGE_PARAM)
    }

    /// A NIC whose cable the rig holds (frames both ways, capture).
    pub fn is_nic(&self) -> bool {
        self.params.iter().any(|p| p == WIRE_PARAM)
    }

    /// `0x1234:0x11e8`, as sysfs prints the IDs.
    pub fn sysfs_id(&self) -> String {
        format!("{:#06x}:{:#06x}", self.vendor, self.device)
    }
}

/// `04.0`: the `addr=` of PCI slot `slot`, function 0.
pub fn addr(slot: u8) -> String {
    format!("{slot:02x}.0")
}

/// `0000:00:04.0`: what the guest calls the device in slot `slot` of the root bus.
pub fn bdf(slot: u8) -> String {
    format!("0000:00:{slot:02x}.0")
}

/// The MAC address of the NIC in slot `slot`: `52:54:00:12:34:04` for the
/// first `[[device]]`, so it is known before boot.
pub fn mac(slot: u8) -> String {
    format!("52:54:00:12:34:{slot:02x}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    device: Vec<DeviceKind>,
}

/// Every device kind the rig knows.
#[derive(Clone, Debug)]
pub struct DeviceTable {
    kinds: Vec<DeviceKind>,
}

/// The `{name}` placeholders of a template.
fn placeholders(template: &str) -> Vec<&str> {
    template.split('{').skip(1).filter_map(|s| s.split_once('}').map(|(name, _)| name)).collect()
}

impl DeviceTable {
    /// The table embedded in the binary.
    pub fn builtin() -> Result<DeviceTable, DeviceError> {
        DeviceTable::parse(BUILTIN)
    }

    /// Parses a table; every placeholder must be `id` or a declared param.
    pub fn parse(text: &str) -> Result<DeviceTable, DeviceError> {
        let f: TableFile = toml::from_str(text).map_err(|e| DeviceError::Table(e.message().to_string()))?;
        let mut seen = BTreeSet::new();
        for k in &f.device {
            if !seen.insert(k.kind.as_str()) {
                return Err(DeviceError::Table(format!("kind `{}` appears twice", k.kind)));
            }
            for p in k.args.iter().flat_map(|a| placeholders(a)) {
                if p != "id" && p != "addr" && !k.params.iter().any(|q| q == p) {
                    return Err(DeviceError::Table(format!(
                        "`{}` uses `{{{p}}}` but does not list it in params",
                        k.kind
                    )));
                }
            }
        }
        Ok(DeviceTable { kinds: f.device })
    }

    /// The kind called `kind`.
    pub fn get(&self, kind: &str) -> Result<&DeviceKind, DeviceError> {
        self.kinds.iter().find(|k| k.kind == kind).ok_or_else(|| DeviceError::UnknownKind {
            kind: kind.to_owned(),
            known: self.kinds.iter().map(|k| k.kind.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// All kinds, in table order.
    pub fn kinds(&self) -> impl Iterator<Item = &DeviceKind> {
        self.kinds.iter()
    }

    /// The QEMU arguments of device `kind` with id `id` in PCI slot `slot`, and `values`.
    pub fn render(
        &self,
        kind: &str,
        id: &str,
        slot: u8,
        values: &[(&str, String)],
    ) -> Result<Vec<String>, DeviceError> {
        let k = self.get(kind)?;
        for p in &k.params {
            if !values.iter().any(|(n, _)| n == p) {
                return Err(DeviceError::Missing { kind: kind.to_owned(), param: p.clone() });
            }
        }
        Ok(k.args
            .iter()
            .map(|a| {
                let a = a.replace("{id}", id).replace("{addr}", &addr(slot));
                values.iter().fold(a, |a, (n, v)| a.replace(&format!("{{{n}}}"), v))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_renders_ivshmem() {
        let t = DeviceTable::builtin().expect("table");
        let a = t
            .render("ivshmem-plain", "shm0", 3, &[("mem_path", "/p/shm".into()), ("size", "4194304".into())])
            .expect("render");
        assert_eq!(
            a,
            [
                "-object",
                "memory-backend-file,id=shm0,mem-path=/p/shm,size=4194304,share=on",
                "-device",
                "ivshmem-plain,memdev=shm0,addr=03.0,master=on"
            ]
        );
        assert_eq!(t.get("ivshmem-doorbell").map(|k| (k.vendor, k.device)).ok(), Some((0x1af4, 0x1110)));
    }

    #[test]
    fn errors_name_the_problem() {
        let t = DeviceTable::builtin().expect("table");
        let e = t.get("edu2").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("edu2") && e.contains("ivshmem-plain"), "{e}");
        let e = t.render("ivshmem-doorbell", "x", 4, &[("socket", "/s".into())]).unwrap_err().to_string();
        assert!(e.contains("vectors"), "{e}");
        let bad = "[[device]]\nkind=\"a\"\nvendor=1\ndevice=2\ndescription=\"\"\nargs=[\"-device\",\"a,x={x}\"]\n";
        assert!(DeviceTable::parse(bad).is_err());
        let dup = "[[device]]\nkind=\"a\"\nvendor=1\ndevice=2\ndescription=\"\"\nargs=[]\n".repeat(2);
        assert!(DeviceTable::parse(&dup).is_err());
    }

    #[test]
    fn every_kind_has_a_fixed_address_and_its_ids() {
        let t = DeviceTable::builtin().expect("table");
        let want = [
            ("ivshmem-plain", 0x1af4, 0x1110),
            ("ivshmem-doorbell", 0x1af4, 0x1110),
            ("edu", 0x1234, 0x11e8),
            ("nvme", 0x1b36, 0x0010),
            ("igb", 0x8086, 0x10c9),
            ("e1000e", 0x8086, 0x10d3),
            ("virtio-net", 0x1af4, 0x1000),
            ("pci-testdev", 0x1b36, 0x0005),
        ];
        for (kind, vendor, device) in want {
            let k = t.get(kind).expect(kind);
            assert_eq!((k.vendor, k.device), (vendor, device), "{kind}");
            // Every kind is placed: its BDF is known before boot.
            assert!(k.args.iter().any(|a| a.contains("addr={addr}")), "{kind}: {:?}", k.args);
        }
        assert_eq!(t.get("edu").map(DeviceKind::sysfs_id).ok(), Some("0x1234:0x11e8".to_string()));
        assert!(t.get("nvme").is_ok_and(DeviceKind::has_image));
        assert!(!t.get("edu").is_ok_and(DeviceKind::has_image));
        assert_eq!(t.get("igb").ok().and_then(|k| k.driver.clone()), Some("igb".to_string()));
        let a = t.render("nvme", "nvme0", 5, &[("image", "/p/nvme0.img".into())]).expect("nvme");
        assert_eq!(
            a,
            [
                "-drive",
                "file=/p/nvme0.img,if=none,id=nvme0,format=raw",
                "-device",
                "nvme,serial=rig-nvme0,drive=nvme0,addr=05.0"
            ]
        );
        assert_eq!(t.render("edu", "edu0", 4, &[]).expect("edu"), ["-device", "edu,id=edu0,addr=04.0"]);
        // The NICs' cables end at a socket the rig holds.
        for nic in ["igb", "e1000e", "virtio-net"] {
            assert!(t.get(nic).is_ok_and(DeviceKind::is_nic), "{nic}");
        }
        assert!(!t.get("nvme").is_ok_and(DeviceKind::is_nic));
        let a = t.render("igb", "nic0", 4, &[(WIRE_PARAM, "/p/nic0.wire".into()), (MAC_PARAM, mac(4))]).expect("igb");
        assert_eq!(
            a,
            [
                "-netdev",
                "stream,id=nic0,server=on,addr.type=unix,addr.path=/p/nic0.wire",
                "-device",
                "igb,netdev=nic0,mac=52:54:00:12:34:04,addr=04.0"
            ]
        );
        let v = t.get("virtio-net").expect("virtio-net");
        assert_eq!((v.driver.as_deref(), v.modules.as_slice()), (Some("virtio-pci"), &["virtio_net".to_string()][..]));
        assert_eq!((addr(0x1e), bdf(4)), ("1e.0".to_string(), "0000:00:04.0".to_string()));
    }
}
