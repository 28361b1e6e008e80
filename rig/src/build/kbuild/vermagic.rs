//! What came out: the modules `modules.order` lists, each checked to carry
//! the kernel's vermagic (read from its ELF `.modinfo` section).

use std::fs;
use std::path::{Path, PathBuf};

use super::KbuildError;
use crate::kernel::fetch::KernelTree;
use crate::support::io_err;

/// The built modules listed in `out/modules.order` (lines are `foo.ko`, or
/// `foo.o` on newer kernels; relative to `out` or absolute).
pub(super) fn built_modules(out: &Path) -> Result<Vec<PathBuf>, KbuildError> {
    let order = out.join("modules.order");
    let text = fs::read_to_string(&order).unwrap_or_default();
    let kos = ko_paths_from_order(&text, out);
    if kos.is_empty() || !kos.iter().all(|k| k.is_file()) {
        return Err(KbuildError::NoModules { out_dir: out.to_owned() });
    }
    Ok(kos)
}

pub(super) fn ko_paths_from_order(text: &str, out: &Path) -> Vec<PathBuf> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.strip_prefix("kernel/").unwrap_or(l);
            let ko = match l.strip_suffix(".o") {
                Some(stem) => format!("{stem}.ko"),
                None => l.to_owned(),
            };
            out.join(ko)
        })
        .collect()
}

/// Checks every module's vermagic against the tree; returns the first.
pub(super) fn check_vermagic(kos: &[PathBuf], tree: &KernelTree, hash_file: &Path) -> Result<String, KbuildError> {
    let mut first = None;
    for ko in kos {
        let data = fs::read(ko).map_err(io_err("read", ko))?;
        let vermagic = vermagic_of(&data).ok_or_else(|| KbuildError::NoVermagic { ko: ko.clone() })?;
        let found = vermagic.split_whitespace().next().unwrap_or_default();
        if found != tree.release {
            return Err(KbuildError::VermagicMismatch {
                ko: ko.clone(),
                found: found.to_owned(),
                expected: tree.release.clone(),
                hash_file: hash_file.to_owned(),
            });
        }
        first.get_or_insert(vermagic);
    }
    first.ok_or_else(|| KbuildError::NoModules { out_dir: hash_file.parent().map(Path::to_owned).unwrap_or_default() })
}

/// `vermagic=` from a module's `.modinfo` section; falls back to a byte
/// search if the file is not a little-endian ELF64.
pub(super) fn vermagic_of(ko: &[u8]) -> Option<String> {
    let haystack = elf64_section(ko, ".modinfo").unwrap_or(ko);
    haystack
        .split(|&b| b == 0)
        .find_map(|s| s.windows(9).position(|w| w == b"vermagic=").map(|i| &s[i + 9..]))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The contents of section `name` in a little-endian ELF64 image.
pub(super) fn elf64_section<'a>(data: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| data.get(o..o + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let u64_at = |o: usize| data.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    // ELFCLASS64, ELFDATA2LSB.
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    if shentsize < 64 {
        return None;
    }
    let section = |i: usize| -> Option<(u32, &'a [u8])> {
        let base = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = u32_at(base)?;
        let off = usize::try_from(u64_at(base + 24)?).ok()?;
        let size = usize::try_from(u64_at(base + 32)?).ok()?;
        Some((name, data.get(off..off.checked_add(size)?)?))
    };
    let (_, strtab) = section(shstrndx)?;
    (0..shnum).find_map(|i| {
        let (name_off, body) = section(i)?;
        let rest = strtab.get(usize::try_from(name_off).ok()?..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        (&rest[..end] == name.as_bytes()).then_some(body)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::kbuild::fixtures::tree;
    use crate::build::kbuild::BUILD_HASH_FILE;

    #[test]
    fn modules_order_forms() {
        let out = Path::new("/b");
        assert_eq!(ko_paths_from_order("hello.ko\n", out), [PathBuf::from("/b/hello.ko")]);
        assert_eq!(ko_paths_from_order("sub/hello.o\n\n", out), [PathBuf::from("/b/sub/hello.ko")]);
        assert_eq!(ko_paths_from_order("/b/x.o\n", out), [PathBuf::from("/b/x.ko")]);
        assert!(ko_paths_from_order("", out).is_empty());
    }

    /// A minimal ELF64 with a `.modinfo` section, and a decoy string outside it.
    fn fake_ko(vermagic: &str) -> Vec<u8> {
        let modinfo = format!("license=GPL\0vermagic={vermagic}\0name=hello\0");
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let decoy = b"vermagic=decoy\0";
        let mut data = vec![0u8; 64];
        data[..6].copy_from_slice(b"\x7fELF\x02\x01");
        data.extend_from_slice(decoy);
        let modinfo_off = data.len();
        data.extend_from_slice(modinfo.as_bytes());
        let strtab_off = data.len();
        data.extend_from_slice(shstrtab);
        let shoff = data.len();
        let mut sh = |name: u32, off: usize, size: usize| {
            let mut s = vec![0u8; 64];
            s[0..4].copy_from_slice(&name.to_le_bytes());
            s[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            s[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            data.extend_from_slice(&s);
        };
        sh(0, 0, 0);
        sh(1, modinfo_off, modinfo.len());
        sh(10, strtab_off, shstrtab.len());
        data[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        data[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        data[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        data[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        data
    }

    #[test]
    fn vermagic_from_modinfo_section() {
        let ko = fake_ko("6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions ");
        assert_eq!(elf64_section(&ko, ".nothere"), None);
        assert_eq!(vermagic_of(&ko).as_deref(), Some("6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions "));
        // Not ELF: byte search.
        assert_eq!(vermagic_of(b"junk\0vermagic=5.10.0 SMP\0").as_deref(), Some("5.10.0 SMP"));
        assert_eq!(vermagic_of(b"nothing"), None);
        // Truncated ELF must not panic.
        assert_eq!(elf64_section(&ko[..70], ".modinfo"), None);
    }

    #[test]
    fn vermagic_check_against_release() {
        let tmp = tempfile::tempdir().unwrap();
        let ko = tmp.path().join("hello.ko");
        let hash = tmp.path().join(BUILD_HASH_FILE);
        fs::write(&ko, fake_ko("6.1.0-50-cloud-amd64 SMP mod_unload ")).unwrap();
        let v = check_vermagic(std::slice::from_ref(&ko), &tree("6.1.0-50-cloud-amd64"), &hash).unwrap();
        assert!(v.starts_with("6.1.0-50-cloud-amd64 "));
        let err = check_vermagic(&[ko], &tree("6.1.0-51-cloud-amd64"), &hash).unwrap_err();
        assert!(matches!(err, KbuildError::VermagicMismatch { .. }));
        assert!(err.to_string().contains(".rig-build-hash"), "{err}");
    }
}
