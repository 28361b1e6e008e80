//! Where `make` runs: the host when it has the kernel's compiler and can
//! run the kernel's prebuilt kbuild tools, else a chroot of the kernel's
//! suite; `RIG_BUILD_ENV` forces either.

use std::fs;
use std::process::Command;

use tracing::debug;

use super::compiler::{cc_version_text, choose_compiler, compiler_of, host_gcc_major, Compiler};
use super::{KbuildError, BUILD_ENV_VAR};
use crate::build::chroot::ChrootSpec;
use crate::kernel::fetch::KernelTree;
use crate::support::{find_program, io_err};

/// Where `make` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEnv {
    /// Directly on this machine, with C compiler `cc` (e.g. `gcc-12`).
    Host {
        /// The compiler command passed as `CC=`.
        cc: String,
    },
    /// In a debootstrap chroot of the kernel's suite ([`crate::build::chroot`]).
    Chroot {
        /// The compiler command passed as `CC=` (and `HOSTCC=`).
        cc: String,
        /// Which chroot.
        spec: ChrootSpec,
    },
}

/// What `RIG_BUILD_ENV` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EnvChoice {
    Auto,
    Host,
    Chroot,
}

impl EnvChoice {
    fn from_env() -> Result<EnvChoice, KbuildError> {
        match std::env::var(BUILD_ENV_VAR).unwrap_or_default().as_str() {
            "" | "auto" => Ok(EnvChoice::Auto),
            "host" => Ok(EnvChoice::Host),
            "chroot" => Ok(EnvChoice::Chroot),
            other => Err(KbuildError::BadBuildEnv { value: other.to_owned() }),
        }
    }
}

/// The compiler a kernel's config names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NeededCompiler {
    /// gcc major version.
    major: u32,
    /// The command named in CONFIG_CC_VERSION_TEXT when it is a
    /// versioned gcc (`x86_64-linux-gnu-gcc-14`), else `gcc-<major>`.
    command: String,
}

impl BuildEnv {
    /// Picks where to build for `tree`: the host if it has the compiler the
    /// kernel was built with (`CONFIG_CC_VERSION_TEXT`) and can run the
    /// kernel's prebuilt kbuild tools (modpost, objtool: newer suites need a
    /// newer glibc), else a chroot of the kernel's suite. `RIG_BUILD_ENV`
    /// (`auto`, `host`, `chroot`) overrides the choice. Creates nothing.
    pub fn for_tree(tree: &KernelTree) -> Result<BuildEnv, KbuildError> {
        let need = needed_compiler(tree)?;
        let choice = EnvChoice::from_env()?;
        let chroot = || BuildEnv::Chroot {
            cc: need.command.clone(),
            spec: ChrootSpec::new(&tree.suite, &tree.arch, need.major, &tree.archive_uri),
        };
        if choice == EnvChoice::Chroot {
            return Ok(chroot());
        }
        let host_cc = choose_compiler(
            need.major,
            find_program(&need.command).is_some().then_some(need.command.as_str()),
            find_program(&format!("gcc-{}", need.major)).is_some(),
            host_gcc_major(),
        );
        let env = match (host_cc, choice) {
            (Some(cc), _) => match host_runs_kbuild_tools(tree) {
                Ok(()) => BuildEnv::Host { cc },
                Err(detail) if choice == EnvChoice::Host => {
                    return Err(KbuildError::HostToolsUnusable { kernel: tree.name.clone(), detail });
                }
                Err(detail) => {
                    debug!(kernel = %tree.name, %detail, "host cannot run the kernel's kbuild tools");
                    chroot()
                }
            },
            (None, EnvChoice::Host) => {
                return Err(KbuildError::CompilerUnavailable {
                    needed: format!("gcc-{}", need.major),
                    kernel: tree.name.clone(),
                });
            }
            (None, _) => chroot(),
        };
        debug!(kernel = %tree.name, env = %env.describe(), "build environment chosen");
        Ok(env)
    }

    /// The compiler command passed to make as `CC=`.
    pub fn cc(&self) -> &str {
        match self {
            BuildEnv::Host { cc } | BuildEnv::Chroot { cc, .. } => cc,
        }
    }

    /// One line for the user: `host (gcc-12)`, `chroot trixie-gcc-14 (x86_64-linux-gnu-gcc-14)`.
    pub fn describe(&self) -> String {
        match self {
            BuildEnv::Host { cc } => format!("host ({cc})"),
            BuildEnv::Chroot { cc, spec } => format!("chroot {} ({cc})", spec.dir_name()),
        }
    }

    /// What the build hash records about the environment.
    pub(super) fn hash_id(&self) -> String {
        match self {
            BuildEnv::Host { cc } => format!("host:{cc}"),
            BuildEnv::Chroot { cc, spec } => format!("chroot:{}:{cc}", spec.dir_name()),
        }
    }
}

/// The compiler named by the kernel's `CONFIG_CC_VERSION_TEXT`.
pub(super) fn needed_compiler(tree: &KernelTree) -> Result<NeededCompiler, KbuildError> {
    let config_path = tree.headers_flavour.join(".config");
    let config = fs::read_to_string(&config_path).map_err(io_err("read", &config_path))?;
    let unknown = || KbuildError::CompilerUnknown { kernel: tree.name.clone(), config: config_path.clone() };
    let text = cc_version_text(&config).ok_or_else(unknown)?;
    let major = match compiler_of(&text) {
        Some(Compiler::Gcc(major)) => major,
        Some(Compiler::Clang) => return Err(KbuildError::UnsupportedCompiler { kernel: tree.name.clone(), text }),
        None => return Err(unknown()),
    };
    Ok(NeededCompiler { major, command: versioned_command(&text, major) })
}

/// `x86_64-linux-gnu-gcc-14` when the version text starts with a gcc-`major`
/// command, else `gcc-<major>`.
pub(super) fn versioned_command(text: &str, major: u32) -> String {
    let first = text.split_whitespace().next().unwrap_or_default();
    let plain = format!("gcc-{major}");
    let ok = first.ends_with(&plain)
        && first.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (first == plain || first.ends_with(&format!("-{plain}")));
    if ok {
        first.to_owned()
    } else {
        plain
    }
}

/// Runs the kernel's prebuilt modpost and objtool (no arguments): `Err` with
/// the loader's message when they need a newer glibc than the host's.
pub(super) fn host_runs_kbuild_tools(tree: &KernelTree) -> Result<(), String> {
    let f = &tree.headers_flavour;
    let candidates = [
        [f.join("scripts/mod/modpost.real-lsb-64"), f.join("scripts/mod/modpost")],
        [f.join("tools/objtool/objtool.real-x86"), f.join("tools/objtool/objtool")],
    ];
    for tool in candidates.iter().filter_map(|c| c.iter().find(|p| p.is_file())) {
        let Ok(out) = Command::new(tool).stdin(std::process::Stdio::null()).output() else {
            return Err(format!("{} cannot be run", tool.display()));
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(line) = stderr.lines().find(|l| is_loader_error(l)) {
            return Err(line.trim().to_owned());
        }
    }
    Ok(())
}

pub(super) fn is_loader_error(line: &str) -> bool {
    line.contains("version `GLIBC_") || line.contains("error while loading shared libraries")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_command_from_text() {
        assert_eq!(
            versioned_command("x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0", 14),
            "x86_64-linux-gnu-gcc-14"
        );
        assert_eq!(versioned_command("gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0", 12), "gcc-12");
        // Unversioned `gcc` (bullseye) and odd names fall back to gcc-N.
        assert_eq!(versioned_command("gcc (Debian 10.2.1-6) 10.2.1 20210110", 10), "gcc-10");
        assert_eq!(versioned_command("mygcc-14 (x) 14.1", 14), "gcc-14");
        assert_eq!(versioned_command("/opt/x-gcc-14 (x) 14.1", 14), "gcc-14");
        assert_eq!(versioned_command("gcc-140 (x) 140.1", 14), "gcc-14");
    }

    #[test]
    fn loader_errors_are_recognised() {
        assert!(is_loader_error(
            "/x/modpost.real-lsb-64: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found (required by /x)"
        ));
        assert!(is_loader_error("objtool: error while loading shared libraries: libelf.so.1: cannot open"));
        assert!(!is_loader_error("objtool: SRCARCH variable not defined"));
    }

    #[test]
    fn build_env_descriptions() {
        let host = BuildEnv::Host { cc: "gcc-12".into() };
        let spec = ChrootSpec::new("trixie", "amd64", 14, "http://m.example/debian");
        let chroot = BuildEnv::Chroot { cc: "x86_64-linux-gnu-gcc-14".into(), spec };
        assert_eq!(host.describe(), "host (gcc-12)");
        assert_eq!(chroot.describe(), "chroot trixie-gcc-14 (x86_64-linux-gnu-gcc-14)");
        assert_eq!(chroot.cc(), "x86_64-linux-gnu-gcc-14");
        assert_ne!(host.hash_id(), chroot.hash_id());
    }
}
