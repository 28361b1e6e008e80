//! The table of virtual devices (`qemu/devices.toml`): what each kind is
//! called, how the guest sees it, and its QEMU arguments as templates. The
//! argv builder renders a device from here; no device flag is written in code.

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
    /// Values the templates use besides `{id}`.
    #[serde(default)]
    pub params: Vec<String>,
    /// QEMU arguments, with `{id}` and `{param}` placeholders.
    pub args: Vec<String>,
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
                if p != "id" && !k.params.iter().any(|q| q == p) {
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

    /// The QEMU arguments of device `kind` with id `id` and `values`.
    pub fn render(&self, kind: &str, id: &str, values: &[(&str, String)]) -> Result<Vec<String>, DeviceError> {
        let k = self.get(kind)?;
        for p in &k.params {
            if !values.iter().any(|(n, _)| n == p) {
                return Err(DeviceError::Missing { kind: kind.to_owned(), param: p.clone() });
            }
        }
        Ok(k.args
            .iter()
            .map(|a| {
                let a = a.replace("{id}", id);
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
            .render("ivshmem-plain", "shm0", &[("mem_path", "/p/shm".into()), ("size", "4194304".into())])
            .expect("render");
        assert_eq!(
            a,
            [
                "-object",
                "memory-backend-file,id=shm0,mem-path=/p/shm,size=4194304,share=on",
                "-device",
                "ivshmem-plain,memdev=shm0,master=on"
            ]
        );
        assert_eq!(t.get("ivshmem-doorbell").map(|k| (k.vendor, k.device)).ok(), Some((0x1af4, 0x1110)));
    }

    #[test]
    fn errors_name_the_problem() {
        let t = DeviceTable::builtin().expect("table");
        let e = t.get("edu2").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("edu2") && e.contains("ivshmem-plain"), "{e}");
        let e = t.render("ivshmem-doorbell", "x", &[("socket", "/s".into())]).unwrap_err().to_string();
        assert!(e.contains("vectors"), "{e}");
        let bad = "[[device]]\nkind=\"a\"\nvendor=1\ndevice=2\ndescription=\"\"\nargs=[\"-device\",\"a,x={x}\"]\n";
        assert!(DeviceTable::parse(bad).is_err());
        let dup = "[[device]]\nkind=\"a\"\nvendor=1\ndevice=2\ndescription=\"\"\nargs=[]\n".repeat(2);
        assert!(DeviceTable::parse(&dup).is_err());
    }
}
