//! A DKMS source tree's `dkms.conf`, read for what matters to a test build:
//! `BUILD_EXCLUSIVE_CONFIG`, `_KERNEL` and `_ARCH` (checked against the
//! kernel before building, so a missing subsystem is named instead of
//! surfacing as undefined symbols at modpost), the `NAME=value` words of
//! `MAKE[0]` (passed to kbuild) and `BUILT_MODULE_NAME[N]` (each must come
//! out of the build).
//!
//! dkms.conf is shell that DKMS sources; only plain assignments are read
//! (`NAME=value`, `NAME[N]="value"`, quoted or not). Anything else (tests,
//! functions) is ignored.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use regex::Regex;

/// The file DKMS reads in a module source tree.
pub const DKMS_CONF: &str = "dkms.conf";

/// Variables of `MAKE[0]` that name paths or versions DKMS fills in: the rig
/// sets its own (M=, -C) and must not pass these.
const DKMS_PATH_VARS: &[&str] = &[
    "KERNELRELEASE",
    "KERNELVER",
    "KERNEL_VERSION",
    "KVER",
    "KVERSION",
    "KSRC",
    "KSRC_DIR",
    "KDIR",
    "KERNELDIR",
    "KERNEL_DIR",
    "KERNEL_SRC",
    "KERNEL_SOURCE_DIR",
    "KBUILD_DIR",
    "LINUX_DIR",
    "M",
    "O",
    "SUBDIRS",
    "KBUILD_EXTMOD",
    "KBUILD_OUTPUT",
    "INSTALL_MOD_PATH",
    "DESTDIR",
    "CC",
    "HOSTCC",
    "LD",
];

/// Why a DKMS tree cannot be built for a kernel, or was not built whole.
#[derive(Debug, thiserror::Error)]
pub enum DkmsError {
    /// dkms.conf could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel lacks (or has) a config option BUILD_EXCLUSIVE_CONFIG names.
    #[error("the module's dkms.conf needs {} (BUILD_EXCLUSIVE_CONFIG), which kernel `{kernel}` ({release}) does not satisfy: {hint}", options.join(", "))]
    Config {
        /// The kernel's name.
        kernel: String,
        /// Its release.
        release: String,
        /// The unmet options, as written (`CONFIG_X`, `!CONFIG_Y`).
        options: Vec<String>,
        /// What to do.
        hint: String,
    },
    /// The kernel release does not match BUILD_EXCLUSIVE_KERNEL (or the
    /// architecture BUILD_EXCLUSIVE_ARCH).
    #[error("the module's dkms.conf builds only for {what} matching `{pattern}` ({key}), and kernel `{kernel}` has `{value}`: pick another kernel, or widen {key}")]
    Excluded {
        /// The kernel's name.
        kernel: String,
        /// `kernel release` or `architecture`.
        what: &'static str,
        /// BUILD_EXCLUSIVE_KERNEL or BUILD_EXCLUSIVE_ARCH.
        key: &'static str,
        /// The regular expression.
        pattern: String,
        /// What the kernel has.
        value: String,
    },
    /// A BUILD_EXCLUSIVE pattern is not a regular expression.
    #[error("{key}=`{pattern}` in dkms.conf is not a regular expression: {error}")]
    Pattern {
        /// The key.
        key: &'static str,
        /// The pattern.
        pattern: String,
        /// The regex error.
        error: String,
    },
    /// A module BUILT_MODULE_NAME names did not come out of the build.
    #[error("dkms.conf names `{name}` (BUILT_MODULE_NAME[{index}]) but the build produced {}: check `obj-m` in the Kbuild file, or the MAKE line (its variables {} are passed to kbuild)", if built.is_empty() { "no module".to_owned() } else { built.join(", ") }, if make_vars.is_empty() { "(none)".to_owned() } else { make_vars.join(" ") })]
    ModuleMissing {
        /// The module name.
        name: String,
        /// Its index in dkms.conf.
        index: usize,
        /// The modules that were built.
        built: Vec<String>,
        /// The variables taken from MAKE.
        make_vars: Vec<String>,
    },
}

/// What the rig uses of a dkms.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DkmsConf {
    /// BUILT_MODULE_NAME[N], by N.
    pub module_names: Vec<(usize, String)>,
    /// `NAME=value` words of MAKE[0] that are not DKMS's paths.
    pub make_vars: Vec<(String, String)>,
    /// BUILD_EXCLUSIVE_CONFIG, word by word.
    pub exclusive_config: Vec<String>,
    /// BUILD_EXCLUSIVE_KERNEL.
    pub exclusive_kernel: Option<String>,
    /// BUILD_EXCLUSIVE_ARCH.
    pub exclusive_arch: Option<String>,
}

/// What a kernel offers for the checks: its name, release, Debian suite and
/// architecture, and its `.config` text.
#[derive(Clone, Copy, Debug)]
pub struct KernelFacts<'a> {
    /// The name the user gave.
    pub name: &'a str,
    /// `uname -r`.
    pub release: &'a str,
    /// Debian suite.
    pub suite: &'a str,
    /// Debian architecture (`amd64`).
    pub arch: &'a str,
    /// The kernel's config.
    pub config: &'a str,
}

/// Reads `dir/dkms.conf`; `None` when there is none.
pub fn read(dir: &Path) -> Result<Option<DkmsConf>, DkmsError> {
    let path = dir.join(DKMS_CONF);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse(&text))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DkmsError::Read { path, source }),
    }
}

/// Parses the plain assignments of a dkms.conf.
pub fn parse(text: &str) -> DkmsConf {
    let assign = Regex::new(r"^\s*([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?=(.*)$").expect("static regex");
    let mut values: BTreeMap<(String, usize), String> = BTreeMap::new();
    for line in text.lines() {
        let Some(c) = assign.captures(line) else { continue };
        let index = c.get(2).and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
        values.insert((c[1].to_owned(), index), unquote(&c[3]));
    }
    let get = |k: &str| values.get(&(k.to_owned(), 0)).cloned().filter(|v| !v.is_empty());
    let module_names =
        values.iter().filter(|((k, _), _)| k == "BUILT_MODULE_NAME").map(|((_, i), v)| (*i, v.clone())).collect();
    let make_vars = get("MAKE").map(|m| make_assignments(&m)).unwrap_or_default();
    DkmsConf {
        module_names,
        make_vars,
        exclusive_config: get("BUILD_EXCLUSIVE_CONFIG")
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        exclusive_kernel: get("BUILD_EXCLUSIVE_KERNEL"),
        exclusive_arch: get("BUILD_EXCLUSIVE_ARCH"),
    }
}

/// The value of a shell assignment: quotes removed, a trailing comment cut.
fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    for q in ['"', '\''] {
        if let Some(rest) = raw.strip_prefix(q) {
            return rest.split(q).next().unwrap_or_default().to_owned();
        }
    }
    raw.split(" #").next().unwrap_or_default().trim().to_owned()
}

/// `NAME=value` words of a MAKE line, without DKMS's paths and anything
/// that expands a variable (DKMS would fill it in; the rig cannot).
fn make_assignments(make: &str) -> Vec<(String, String)> {
    let name = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("static regex");
    make.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k, v.trim_matches(['"', '\''])))
        .filter(|(k, v)| name.is_match(k) && !DKMS_PATH_VARS.contains(k) && !v.contains('$') && !v.contains('`'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `y`, `m`, a value, or `None` (unset) for `option` in a kernel config.
pub fn config_value<'a>(config: &'a str, option: &str) -> Option<&'a str> {
    config.lines().find_map(|l| l.strip_prefix(option)?.strip_prefix('=')).map(str::trim)
}

impl DkmsConf {
    /// Checks BUILD_EXCLUSIVE_* against the kernel, before any build.
    pub fn check_kernel(&self, k: &KernelFacts<'_>) -> Result<(), DkmsError> {
        let unmet: Vec<String> = self
            .exclusive_config
            .iter()
            .filter(|opt| {
                let (negated, name) = match opt.strip_prefix('!') {
                    Some(n) => (true, n),
                    None => (false, opt.as_str()),
                };
                let set = config_value(k.config, name).is_some_and(|v| v != "n");
                set == negated
            })
            .cloned()
            .collect();
        if !unmet.is_empty() {
            return Err(DkmsError::Config {
                kernel: k.name.to_owned(),
                release: k.release.to_owned(),
                hint: config_hint(k, &unmet),
                options: unmet,
            });
        }
        let arch = uname_machine(k.arch);
        let checks = [
            ("BUILD_EXCLUSIVE_KERNEL", "kernel release", &self.exclusive_kernel, k.release),
            ("BUILD_EXCLUSIVE_ARCH", "architecture", &self.exclusive_arch, arch.as_str()),
        ];
        for (key, what, pattern, value) in checks {
            let Some(pattern) = pattern else { continue };
            let re = Regex::new(pattern).map_err(|e| DkmsError::Pattern {
                key,
                pattern: pattern.clone(),
                error: e.to_string(),
            })?;
            if !re.is_match(value) {
                return Err(DkmsError::Excluded {
                    kernel: k.name.to_owned(),
                    what,
                    key,
                    pattern: pattern.clone(),
                    value: value.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Checks that every BUILT_MODULE_NAME is among the built `.ko` files.
    pub fn check_built(&self, ko_files: &[PathBuf]) -> Result<(), DkmsError> {
        let built: Vec<String> = ko_files
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().trim_end_matches(".ko").to_owned())
            .collect();
        // Kbuild turns `-` into `_` in module names; either spelling counts.
        let norm = |s: &str| s.replace('-', "_");
        for (index, name) in &self.module_names {
            if !built.iter().any(|b| norm(b) == norm(name)) {
                return Err(DkmsError::ModuleMissing {
                    name: name.clone(),
                    index: *index,
                    built: built.iter().map(|b| format!("{b}.ko")).collect(),
                    make_vars: self.make_vars.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                });
            }
        }
        Ok(())
    }
}

/// What to tell a user whose kernel lacks options: Debian's cloud flavour
/// leaves most hardware subsystems out, its generic flavour has them.
fn config_hint(k: &KernelFacts<'_>, unmet: &[String]) -> String {
    let wants_on = unmet.iter().any(|o| !o.starts_with('!'));
    if wants_on && k.release.contains("-cloud-") {
        format!(
            "Debian's cloud kernels leave most hardware subsystems out; test on the generic kernel of the same suite with --kernel {}/{} (or kernels = [\"{}/{}\"] in rig.toml)",
            k.suite, k.arch, k.suite, k.arch
        )
    } else {
        "pick a kernel whose config has them (`rig kernels`, or any Debian kernel as SUITE/FLAVOUR)".to_owned()
    }
}

/// `uname -m` for a Debian architecture.
fn uname_machine(debian_arch: &str) -> String {
    match debian_arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "i386" => "i686",
        "armhf" | "armel" => "armv7l",
        "ppc64el" => "ppc64le",
        other => other,
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
PACKAGE_NAME="v4l2loop"
PACKAGE_VERSION=0.13
BUILT_MODULE_NAME[0]="v4l2-loop"
BUILT_MODULE_NAME[1]='v4l2loop_extra'
DEST_MODULE_LOCATION[0]="/updates/dkms"
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build KVER=${kernelver} CONFIG_V4L2LOOP=m EXTRA_DEBUG=1 V=$verbose modules"
CLEAN="make clean"
AUTOINSTALL=yes # comment
BUILD_EXCLUSIVE_CONFIG="CONFIG_VIDEO_DEV !CONFIG_RIG_NEVER"
BUILD_EXCLUSIVE_KERNEL="^6\."
if [ "$arch" = "x86_64" ]; then
  BUILD_EXCLUSIVE_ARCH="x86_64"
fi
"#;

    const CLOUD: &str = "CONFIG_MEDIA_SUPPORT=m\n# CONFIG_VIDEO_DEV is not set\nCONFIG_X=y\n";
    const GENERIC: &str = "CONFIG_MEDIA_SUPPORT=m\nCONFIG_VIDEO_DEV=m\nCONFIG_VIDEO_DEV_EXTRA=y\n";

    fn facts<'a>(release: &'a str, config: &'a str) -> KernelFacts<'a> {
        KernelFacts { name: "bookworm-6.1", release, suite: "bookworm", arch: "amd64", config }
    }

    #[test]
    fn reads_plain_assignments() {
        let c = parse(CONF);
        assert_eq!(c.module_names, [(0, "v4l2-loop".to_owned()), (1, "v4l2loop_extra".to_owned())]);
        assert_eq!(
            c.make_vars,
            [("CONFIG_V4L2LOOP".to_owned(), "m".to_owned()), ("EXTRA_DEBUG".to_owned(), "1".to_owned())]
        );
        assert_eq!(c.exclusive_config, ["CONFIG_VIDEO_DEV", "!CONFIG_RIG_NEVER"]);
        assert_eq!(c.exclusive_kernel.as_deref(), Some(r"^6\."));
        assert_eq!(c.exclusive_arch.as_deref(), Some("x86_64"));
        assert_eq!(parse("MAKE=\"make KVER=$kernelver\"\n"), DkmsConf::default());
    }

    #[test]
    fn config_values() {
        assert_eq!(config_value(GENERIC, "CONFIG_VIDEO_DEV"), Some("m"));
        assert_eq!(config_value(CLOUD, "CONFIG_VIDEO_DEV"), None);
        assert_eq!(config_value(CLOUD, "CONFIG_X"), Some("y"));
    }

    #[test]
    fn a_missing_option_is_named_with_the_generic_flavour() {
        let c = parse(CONF);
        let err = c.check_kernel(&facts("6.1.0-50-cloud-amd64", CLOUD)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(&err, DkmsError::Config { options, .. } if options == &["CONFIG_VIDEO_DEV"]), "{msg}");
        assert!(msg.contains("CONFIG_VIDEO_DEV (BUILD_EXCLUSIVE_CONFIG)"), "{msg}");
        assert!(msg.contains("--kernel bookworm/amd64"), "{msg}");
        c.check_kernel(&facts("6.1.0-50-amd64", GENERIC)).expect("the generic kernel has it");
        // A negated option that is set.
        let neg = parse("BUILD_EXCLUSIVE_CONFIG=\"!CONFIG_VIDEO_DEV\"\n");
        let msg = neg.check_kernel(&facts("6.1.0-50-amd64", GENERIC)).unwrap_err().to_string();
        assert!(msg.contains("!CONFIG_VIDEO_DEV") && msg.contains("pick a kernel"), "{msg}");
    }

    #[test]
    fn release_and_arch_patterns() {
        let c = parse(CONF);
        let err = c.check_kernel(&facts("5.10.0-32-amd64", GENERIC)).unwrap_err();
        assert!(matches!(err, DkmsError::Excluded { key: "BUILD_EXCLUSIVE_KERNEL", .. }), "{err}");
        let arm = KernelFacts { arch: "arm64", ..facts("6.1.0-50-arm64", GENERIC) };
        let err = c.check_kernel(&arm).unwrap_err();
        assert!(err.to_string().contains("`aarch64`"), "{err}");
        let bad = parse("BUILD_EXCLUSIVE_KERNEL=\"^(6\"\n");
        assert!(matches!(bad.check_kernel(&facts("6.1", "")), Err(DkmsError::Pattern { .. })));
    }

    #[test]
    fn built_module_names_must_come_out() {
        let c = parse(CONF);
        let ok = [PathBuf::from("/b/v4l2_loop.ko"), PathBuf::from("/b/v4l2loop_extra.ko")];
        c.check_built(&ok).expect("both built (- and _ are one)");
        let err = c.check_built(&ok[..1]).unwrap_err().to_string();
        assert!(err.contains("`v4l2loop_extra` (BUILT_MODULE_NAME[1])"), "{err}");
        assert!(err.contains("v4l2_loop.ko") && err.contains("CONFIG_V4L2LOOP=m"), "{err}");
    }

    #[test]
    fn reads_a_tree_or_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(tmp.path()).expect("no file"), None);
        fs::write(tmp.path().join(DKMS_CONF), CONF).expect("write");
        assert_eq!(read(tmp.path()).expect("read").map(|c| c.module_names.len()), Some(2));
    }
}
