//! `[guest] rootfs`, `packages`, `hugepages_mib` and the memory they need,
//! validated: a userspace the rig knows, package names apt can take (or
//! patterns of them), hugepages that fit in the guest's RAM.

use super::file::GuestSpec;
use super::validate::Ctx;
use super::{ConfigError, RootfsPlan};
use toml::Spanned;

/// What `rootfs` may be: the rig's busybox initramfs, or a Debian root of
/// the kernel's own suite.
const ROOTFS: [&str; 2] = ["busybox", "debian"];

/// Characters that make a package name a pattern (`librte-net-e1000-*`).
pub const PACKAGE_PATTERN_CHARS: [char; 2] = ['*', '?'];

/// Is `name` a pattern rather than a package name?
pub fn is_pattern(name: &str) -> bool {
    name.contains(PACKAGE_PATTERN_CHARS)
}

/// A Debian package name (policy 5.6.1: lower-case letters, digits, `+`,
/// `-`, `.`, at least two, starting with a letter or digit), or a pattern
/// of one.
fn package_ok(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first =
        chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || is_pattern(&c.to_string()));
    let rest =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c) || is_pattern(&c.to_string()));
    if first && rest && name.len() >= 2 {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a Debian package name (lower-case letters, digits, `+`, `-`, `.`) or a pattern of one with `*` and `?`; versions and suites (`=`, `/`) are not taken: the root is of the kernel's own suite"
        ))
    }
}

/// Guest RAM a Debian root needs besides its hugepages, MiB (its page cache
/// and the programs the tests run), when `memory_mib` is not given.
pub const DEBIAN_MEMORY_MIB: u32 = 512;
/// The RAM the kernel and a busybox guest need besides hugepages, MiB.
const MIN_LEFT_MIB: u32 = 128;

/// `rootfs` and `packages`: `None` for the busybox initramfs.
pub(super) fn rootfs(cx: &Ctx, g: &GuestSpec) -> Result<Option<RootfsPlan>, ConfigError> {
    let debian = match &g.rootfs {
        None => false,
        Some(r) if ROOTFS.contains(&r.get_ref().as_str()) => r.get_ref() == "debian",
        Some(r) => {
            return Err(cx.invalid(
                r.span(),
                "guest.rootfs",
                format!(
                    "unknown rootfs `{}`: give \"busybox\" (the rig's initramfs, the default) or \"debian\" (a Debian root of the kernel's own suite)",
                    r.get_ref()
                ),
            ))
        }
    };
    if !debian {
        if let Some(p) = g.packages.first() {
            return Err(cx.invalid(
                p.span(),
                "guest.packages",
                "packages go into a Debian root: set [guest] rootfs = \"debian\"",
            ));
        }
        return Ok(None);
    }
    let mut packages: Vec<String> = Vec::new();
    for (i, p) in g.packages.iter().enumerate() {
        package_ok(p.get_ref()).map_err(|m| cx.invalid(p.span(), &format!("guest.packages[{i}]"), m))?;
        packages.push(p.get_ref().clone());
    }
    packages.sort();
    packages.dedup();
    Ok(Some(RootfsPlan { packages }))
}

/// The guest's RAM: as given, else the default of its userspace plus the
/// hugepages.
pub(super) fn memory(g: &GuestSpec, debian: bool) -> u32 {
    let given = g.memory_mib.span() != (0..0);
    let huge = g.hugepages_mib.as_ref().map_or(0, |h| *h.get_ref());
    match (given, debian) {
        (true, _) => *g.memory_mib.get_ref(),
        (false, true) => DEBIAN_MEMORY_MIB.saturating_add(huge),
        (false, false) => g.memory_mib.get_ref().saturating_add(huge),
    }
}

/// `hugepages_mib`: 2 MiB pages that leave the guest enough RAM.
pub(super) fn hugepages(cx: &Ctx, h: Option<&Spanned<u32>>, memory_mib: u32) -> Result<u32, ConfigError> {
    let Some(h) = h else { return Ok(0) };
    let mib = *h.get_ref();
    if mib % 2 != 0 {
        return Err(cx.invalid(
            h.span(),
            "guest.hugepages_mib",
            format!("{mib} MiB is not a whole number of 2 MiB pages"),
        ));
    }
    if mib.saturating_add(MIN_LEFT_MIB) > memory_mib {
        return Err(cx.invalid(
            h.span(),
            "guest.hugepages_mib",
            format!(
                "{mib} MiB of hugepages leave the guest less than {MIN_LEFT_MIB} MiB of its {memory_mib} MiB: raise memory_mib to at least {}",
                mib + MIN_LEFT_MIB
            ),
        ));
    }
    Ok(mib / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::catalog::Catalog;
    use crate::plan::{parse, Plan};
    use std::path::Path;

    fn parse_in(dir: &Path, text: &str) -> Result<Plan, ConfigError> {
        parse(&dir.join("rig.toml"), text, &Catalog::builtin().expect("catalog"))
    }

    fn err(text: &str) -> String {
        let d = tempfile::tempdir().expect("tempdir");
        match parse_in(d.path(), text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_debian_root_with_packages_and_hugepages() {
        let d = tempfile::tempdir().expect("tempdir");
        let text = "[guest]\nrootfs = \"debian\"\npackages = [\"python3\", \"librte-net-e1000-*\", \"python3\"]\nhugepages_mib = 256\n";
        let p = parse_in(d.path(), text).expect("plan");
        let r = p.guest.rootfs.expect("debian");
        assert_eq!(r.packages, ["librte-net-e1000-*", "python3"]);
        assert_eq!(p.guest.hugepages, 128);
        // Not given: the Debian root's default RAM plus the hugepages.
        assert_eq!(p.guest.memory_mib, DEBIAN_MEMORY_MIB + 256);
        let p = parse_in(d.path(), "[guest]\nrootfs = \"debian\"\nmemory_mib = 1024\n").expect("plan");
        assert_eq!((p.guest.memory_mib, p.guest.hugepages), (1024, 0));
        let p = parse_in(d.path(), "[guest]\nhugepages_mib = 64\n").expect("plan");
        assert_eq!((p.guest.rootfs, p.guest.memory_mib, p.guest.hugepages), (None, 256 + 64, 32));
        let p = parse_in(d.path(), "[guest]\nrootfs = \"busybox\"\n").expect("plan");
        assert_eq!(p.guest.rootfs, None);
        assert!(is_pattern("librte-net-e1000-*") && is_pattern("lib?") && !is_pattern("dpdk-dev"));
    }

    #[test]
    fn bad_roots_packages_and_hugepages_are_named() {
        for (text, key, needle) in [
            ("[guest]\nrootfs = \"alpine\"\n", "guest.rootfs", "\"debian\""),
            ("[guest]\npackages = [\"python3\"]\n", "guest.packages", "rootfs = \"debian\""),
            ("[guest]\nrootfs = \"debian\"\npackages = [\"Python3\"]\n", "guest.packages[0]", "not a Debian package"),
            ("[guest]\nrootfs = \"debian\"\npackages = [\"ok\", \"dpdk=24.11\"]\n", "guest.packages[1]", "versions"),
            ("[guest]\nrootfs = \"debian\"\npackages = [\"x\"]\n", "guest.packages[0]", "not a Debian package"),
            ("[guest]\nhugepages_mib = 3\n", "guest.hugepages_mib", "2 MiB pages"),
            ("[guest]\nmemory_mib = 256\nhugepages_mib = 256\n", "guest.hugepages_mib", "at least 384"),
        ] {
            let e = err(text);
            assert!(e.contains(key) && e.contains(needle), "{text}\n=> {e}");
        }
        assert!(err("[guest]\nrootfs = \"alpine\"\n").contains("rig.toml:2"));
    }
}
