//! In-tree modules a test needs (`intree = ["vfio-pci"]`), taken from the
//! kernel package with their dependencies. Debian's packages ship no
//! modules.dep (depmod makes it at install time), so dependencies are read
//! from each module's own `.modinfo` (`depends=`). Compressed modules
//! (`.ko.xz`, 6.12 onwards) are unpacked with xz on the host, so the guest's
//! busybox insmod never has to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors finding or unpacking in-tree modules.
#[derive(Debug, thiserror::Error)]
pub enum IntreeError {
    /// The kernel package carries no modules directory.
    #[error("kernel {release} has no modules directory in its package, so in-tree modules cannot be loaded")]
    NoModules { release: String },
    /// No such module in the package.
    #[error("in-tree module `{name}` is not in kernel {release}'s package{}", not_found_hint(release))]
    NotFound { name: String, release: String },
    /// Reading or unpacking failed.
    #[error("cannot read in-tree module {path}: {detail}")]
    Read { path: PathBuf, detail: String },
}

/// Debian's cloud kernels leave most drivers out; their generic flavour has them.
fn not_found_hint(release: &str) -> &'static str {
    if release.contains("-cloud-") {
        ": Debian's cloud kernels leave most hardware subsystems out; name the generic kernel of the same suite as SUITE/amd64 (e.g. --kernel bookworm/amd64, docs/config.md)"
    } else {
        " (nor built in): check its name against the kernel's modules.dep"
    }
}

/// A module ready for the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InTreeModule {
    /// Module name (`vfio_pci`).
    pub name: String,
    /// The uncompressed object.
    pub data: Vec<u8>,
}

/// `vfio-pci` and `vfio_pci` are the same module.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name_of(file: &Path) -> Option<String> {
    let n = file.file_name()?.to_str()?;
    let stem = n.strip_suffix(".ko").or_else(|| n.strip_suffix(".ko.xz")).or_else(|| n.strip_suffix(".ko.zst"))?;
    Some(normalize(stem))
}

/// Every module file under `dir/kernel`, by normalized name.
fn index(dir: &Path) -> HashMap<String, PathBuf> {
    let mut map = HashMap::new();
    let mut stack = vec![dir.join("kernel")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(name) = module_name_of(&p) {
                map.insert(name, p);
            }
        }
    }
    map
}

/// The `depends=` list of a module's `.modinfo` (comma separated).
pub fn depends_of(ko: &[u8]) -> Vec<String> {
    ko.split(|&b| b == 0)
        .find_map(|s| s.strip_prefix(b"depends="))
        .map(|d| String::from_utf8_lossy(d).split(',').filter(|s| !s.is_empty()).map(normalize).collect())
        .unwrap_or_default()
}

fn read_module(path: &Path) -> Result<Vec<u8>, IntreeError> {
    let err = |detail: String| IntreeError::Read { path: path.to_path_buf(), detail };
    let name = path.to_string_lossy();
    if name.ends_with(".xz") || name.ends_with(".zst") {
        let tool = if name.ends_with(".xz") { "xz" } else { "zstd" };
        let out = Command::new(tool)
            .args(["-dc"])
            .arg(path)
            .output()
            .map_err(|e| err(format!("{tool} -dc: {e} (install xz-utils / zstd)")))?;
        if !out.status.success() {
            return Err(err(String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        Ok(out.stdout)
    } else {
        std::fs::read(path).map_err(|e| err(e.to_string()))
    }
}

/// Resolves `names` and their dependencies into load order (dependencies first).
pub fn resolve(modules_dir: Option<&Path>, release: &str, names: &[String]) -> Result<Vec<InTreeModule>, IntreeError> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    let dir = modules_dir.ok_or_else(|| IntreeError::NoModules { release: release.to_string() })?;
    let idx = index(dir);
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let is_builtin = |n: &str| builtin.lines().any(|l| module_name_of(Path::new(l)).as_deref() == Some(n));
    let mut order: Vec<InTreeModule> = Vec::new();
    let mut visiting: Vec<String> = Vec::new();
    fn visit(
        name: &str,
        idx: &HashMap<String, PathBuf>,
        is_builtin: &dyn Fn(&str) -> bool,
        release: &str,
        order: &mut Vec<InTreeModule>,
        visiting: &mut Vec<String>,
    ) -> Result<(), IntreeError> {
        if order.iter().any(|m| m.name == name) || visiting.iter().any(|v| v == name) {
            return Ok(());
        }
        let Some(path) = idx.get(name) else {
            if is_builtin(name) {
                return Ok(());
            }
            return Err(IntreeError::NotFound { name: name.to_string(), release: release.to_string() });
        };
        visiting.push(name.to_string());
        let data = read_module(path)?;
        for dep in depends_of(&data) {
            visit(&dep, idx, is_builtin, release, order, visiting)?;
        }
        visiting.pop();
        order.push(InTreeModule { name: name.to_string(), data });
        Ok(())
    }
    for n in names {
        visit(&normalize(n), &idx, &is_builtin, release, &mut order, &mut visiting)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_ko(depends: &str) -> Vec<u8> {
        let mut v = b"\x7fELF....\0license=GPL\0".to_vec();
        v.extend_from_slice(format!("depends={depends}\0vermagic=6.1.0 SMP\0").as_bytes());
        v
    }

    #[test]
    fn resolves_dependencies_first_and_unpacks_xz() {
        let d = tempfile::tempdir().expect("tempdir");
        let k = d.path().join("kernel/drivers/vfio");
        std::fs::create_dir_all(&k).expect("mkdir");
        std::fs::write(k.join("vfio.ko"), fake_ko("")).expect("w");
        std::fs::write(k.join("vfio_iommu_type1.ko"), fake_ko("vfio")).expect("w");
        let pci = k.join("vfio-pci.ko");
        std::fs::write(&pci, fake_ko("vfio,vfio_iommu_type1,irqbypass")).expect("w");
        // Compressed like 6.12+ (skip the xz part if xz is missing).
        let compressed = Command::new("xz").arg(&pci).status().map(|s| s.success()).unwrap_or(false);
        std::fs::write(d.path().join("modules.builtin"), "kernel/virt/lib/irqbypass.ko\n").expect("w");
        let mods = resolve(Some(d.path()), "6.1.0", &["vfio-pci".into()]).expect("resolve");
        let names: Vec<_> = mods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["vfio", "vfio_iommu_type1", "vfio_pci"]);
        if compressed {
            assert_eq!(mods[2].data, fake_ko("vfio,vfio_iommu_type1,irqbypass"));
        }
    }

    #[test]
    fn unknown_module_is_named() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("kernel")).expect("mkdir");
        let e = resolve(Some(d.path()), "6.1.0", &["nope".into()]).expect_err("missing");
        assert!(e.to_string().contains("`nope`"));
        assert!(matches!(resolve(None, "6.1.0", &["x".into()]), Err(IntreeError::NoModules { .. })));
        assert_eq!(resolve(None, "6.1.0", &[]).expect("empty").len(), 0);
    }
}
