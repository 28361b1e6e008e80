//! Which compiler built the kernel (its `CONFIG_CC_VERSION_TEXT`) and which
//! host command gives the same one.

use std::process::Command;

use crate::support::find_program;

/// The compiler family and major version that built a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compiler {
    Gcc(u32),
    Clang,
}

/// The unquoted `CONFIG_CC_VERSION_TEXT` from a kernel `.config`.
pub(super) fn cc_version_text(config: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let v = l.strip_prefix("CONFIG_CC_VERSION_TEXT=")?.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        (!v.is_empty()).then(|| v.replace("\\\"", "\""))
    })
}

/// Reads e.g. `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0` or
/// `gcc (Debian 10.2.1-6) 10.2.1 20210110`.
pub(super) fn compiler_of(text: &str) -> Option<Compiler> {
    let first = text.split_whitespace().next()?;
    if text.contains("clang") {
        return Some(Compiler::Clang);
    }
    if !first.contains("gcc") {
        return None;
    }
    // `gcc-12`, `x86_64-linux-gnu-gcc-12`: the suffix is the major.
    if let Some(major) = first.rsplit_once("gcc-").and_then(|(_, m)| m.parse().ok()) {
        return Some(Compiler::Gcc(major));
    }
    // Else the version after the package description: `(...) 10.2.1`.
    let after = text.rsplit_once(')').map_or(text, |(_, rest)| rest);
    after.split_whitespace().find_map(version_major).map(Compiler::Gcc)
}

/// Major version from `12`, `12.2.0`.
pub(super) fn version_major(s: &str) -> Option<u32> {
    let major = s.trim().split('.').next()?;
    if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    major.parse().ok()
}

/// The command the config names (`x86_64-linux-gnu-gcc-14`) if present,
/// else `gcc-<major>` if present, else plain `gcc` if it is that major.
pub(super) fn choose_compiler(
    major: u32,
    named_on_path: Option<&str>,
    versioned_on_path: bool,
    host_gcc_major: Option<u32>,
) -> Option<String> {
    if let Some(named) = named_on_path {
        Some(named.to_owned())
    } else if versioned_on_path {
        Some(format!("gcc-{major}"))
    } else if host_gcc_major == Some(major) {
        Some("gcc".to_owned())
    } else {
        None
    }
}

pub(super) fn host_gcc_major() -> Option<u32> {
    find_program("gcc")?;
    let out = Command::new("gcc").arg("-dumpversion").output().ok()?;
    version_major(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_from_config_text() {
        let cfg =
            "# comment\nCONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\"\nCONFIG_CC_IS_GCC=y\n";
        let text = cc_version_text(cfg).unwrap();
        assert_eq!(text, "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0");
        assert_eq!(compiler_of(&text), Some(Compiler::Gcc(12)));
        let cases = [
            ("gcc (Debian 10.2.1-6) 10.2.1 20210110", Some(Compiler::Gcc(10))),
            ("gcc-14 (Debian 14.2.0-19) 14.2.0", Some(Compiler::Gcc(14))),
            ("x86_64-linux-gnu-gcc-16 (Debian 16.1.0-2) 16.1.0", Some(Compiler::Gcc(16))),
            ("Debian clang version 19.1.7 (3)", Some(Compiler::Clang)),
            ("tcc 0.9", None),
        ];
        for (text, want) in cases {
            assert_eq!(compiler_of(text), want, "{text}");
        }
        assert_eq!(cc_version_text("CONFIG_CC_IS_GCC=y\n"), None);
        assert_eq!(cc_version_text("CONFIG_CC_VERSION_TEXT=\"\"\n"), None);
    }

    #[test]
    fn compiler_choice() {
        let named = Some("x86_64-linux-gnu-gcc-14");
        assert_eq!(choose_compiler(14, named, true, Some(12)).as_deref(), named);
        assert_eq!(choose_compiler(12, None, true, Some(12)).as_deref(), Some("gcc-12"));
        assert_eq!(choose_compiler(12, None, false, Some(12)).as_deref(), Some("gcc"));
        assert_eq!(choose_compiler(14, None, false, Some(12)), None);
        assert_eq!(choose_compiler(14, None, false, None), None);
        assert_eq!(version_major("12\n"), Some(12));
        assert_eq!(version_major("12.2.0"), Some(12));
        assert_eq!(version_major("x"), None);
    }
}
