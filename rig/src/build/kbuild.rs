//! Building an out-of-tree kernel module against a fetched kernel tree.
//!
//! The module source is copied into a separate build directory (the source
//! tree stays clean) and built with
//! `make -C <headers_common> O=<headers_flavour> M=<out_dir> CC=<cc> modules`,
//! using the compiler the kernel was built with: on the host when the host
//! has it (and can run the kernel's prebuilt kbuild tools), else in a
//! debootstrap chroot of the kernel's own suite ([`crate::build::chroot`]). Compiler
//! flags are never stripped to make another gcc pass. The packaged headers
//! are never modified. A hash of the inputs lets unchanged rebuilds be
//! skipped, and a lock on the build directory keeps concurrent runs for the
//! same kernel from colliding.

// Errors carry the tail of a build or debootstrap log: large, but only on
// the cold path, once per run.
#![allow(clippy::result_large_err)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::{debug, info};

use crate::build::chroot::{self, Bind, ChrootError, ChrootSpec};
use crate::kernel::fetch::{find_program, hex, tail_lines, KernelTree};

/// Environment variable choosing where modules are built: `auto` (the
/// default: the host when it has the kernel's compiler, else a chroot),
/// `host` or `chroot`.
pub const BUILD_ENV_VAR: &str = "RIG_BUILD_ENV";

/// File in the build directory holding the hash of the last good build.
pub const BUILD_HASH_FILE: &str = ".rig-build-hash";

/// Lines of make output kept in error messages.
const ERROR_TAIL_LINES: usize = 40;

/// Make variables rig sets itself; overriding them would break the build.
const RESERVED_VARS: &[&str] = &["M", "O", "KBUILD_EXTMOD", "KBUILD_OUTPUT"];

/// Errors from building a module.
#[derive(Debug, Error)]
pub enum KbuildError {
    /// The compiler the kernel was built with is not on this host (and
    /// `RIG_BUILD_ENV=host` forbids the chroot).
    #[error("kernel `{kernel}` was built with {needed}, which is not on this host: unset RIG_BUILD_ENV (or set it to `chroot`) to build in a chroot of its Debian suite, or install {needed} on the host")]
    CompilerUnavailable {
        /// Compiler command needed, e.g. `gcc-14`.
        needed: String,
        /// Catalog name of the kernel.
        kernel: String,
    },
    /// The host has the compiler but cannot run the kernel's prebuilt kbuild
    /// tools (and `RIG_BUILD_ENV=host` forbids the chroot).
    #[error("kernel `{kernel}`'s kbuild tools do not run on this host ({detail}): unset RIG_BUILD_ENV (or set it to `chroot`) to build in a chroot of its Debian suite")]
    HostToolsUnusable {
        /// Catalog name of the kernel.
        kernel: String,
        /// The loader's message.
        detail: String,
    },
    /// `RIG_BUILD_ENV` has an unknown value.
    #[error("RIG_BUILD_ENV=`{value}` is not one of auto, host, chroot")]
    BadBuildEnv {
        /// The value.
        value: String,
    },
    /// The build chroot could not be made or entered.
    #[error("kernel `{kernel}` needs a build chroot of `{suite}` (for {cc} and its kbuild tools): {source}")]
    Chroot {
        /// Catalog name of the kernel.
        kernel: String,
        /// The suite.
        suite: String,
        /// The compiler.
        cc: String,
        /// What went wrong.
        #[source]
        source: ChrootError,
    },
    /// Taking the build directory's lock failed.
    #[error("cannot lock {}: {source}; keep the cache on a local filesystem that supports flock (set RIG_CACHE_DIR)", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// The kernel config does not say which compiler built it.
    #[error("cannot tell which compiler built `{kernel}`: no usable CONFIG_CC_VERSION_TEXT in {}; the headers may be damaged, fetch the kernel again with --refresh", config.display())]
    CompilerUnknown {
        /// Catalog name of the kernel.
        kernel: String,
        /// The config file read.
        config: PathBuf,
    },
    /// The kernel was built with a compiler rig does not drive (clang).
    #[error("kernel `{kernel}` was built with `{text}`: rig builds modules only for gcc-built kernels; pick a Debian kernel from the catalog")]
    UnsupportedCompiler {
        /// Catalog name of the kernel.
        kernel: String,
        /// CONFIG_CC_VERSION_TEXT.
        text: String,
    },
    /// `make` is not installed.
    #[error("`make` is not on PATH: install the `make` package")]
    MakeMissing,
    /// The source directory is unusable.
    #[error("module source {} has no Kbuild or Makefile: pass the directory holding the module's Kbuild file", path.display())]
    SourceMissing {
        /// The source directory.
        path: PathBuf,
    },
    /// The build directory would overwrite the source.
    #[error("build directory {} is the module source directory: pass a separate output directory so the source tree stays clean", path.display())]
    OutIsSource {
        /// The directory.
        path: PathBuf,
    },
    /// A make variable rig must control, or a malformed name.
    #[error("make variable `{name}` cannot be passed: names are letters, digits and `_`, and M, O, KBUILD_EXTMOD and KBUILD_OUTPUT are set by rig")]
    InvalidMakeVar {
        /// The variable name.
        name: String,
    },
    /// make failed.
    #[error("building the module for `{kernel}` failed ({status}); fix the errors below (full log: {}):\n{tail}", log_path.display())]
    BuildFailed {
        /// Catalog name of the kernel.
        kernel: String,
        /// make's exit status.
        status: String,
        /// Where the full log was written.
        log_path: PathBuf,
        /// The last lines of make's output.
        tail: String,
    },
    /// make succeeded but there is no module.
    #[error("make succeeded but produced no .ko in {}: check `obj-m` in the module's Kbuild", out_dir.display())]
    NoModules {
        /// The build directory.
        out_dir: PathBuf,
    },
    /// A module's vermagic does not name the kernel.
    #[error("{} has vermagic `{found}` but the kernel release is `{expected}`: it was built against other headers; delete {} and build again", ko.display(), hash_file.display())]
    VermagicMismatch {
        /// The module file.
        ko: PathBuf,
        /// First word of its vermagic.
        found: String,
        /// The kernel release.
        expected: String,
        /// The build-hash file to delete.
        hash_file: PathBuf,
    },
    /// A module has no vermagic.
    #[error("{} has no `vermagic=` in its .modinfo section: it is not a module built by kbuild; clean the build directory and build again", ko.display())]
    NoVermagic {
        /// The module file.
        ko: PathBuf,
    },
    /// A filesystem or process operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What to build and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// Module source directory (holds the Kbuild file). Never written to.
    pub src_dir: PathBuf,
    /// Build directory; the source is copied here and built.
    pub out_dir: PathBuf,
    /// Extra `NAME=value` arguments for make.
    pub make_vars: Vec<(String, String)>,
    /// Pass `W=1` (extra compiler warnings).
    pub extra_cflags_w1: bool,
}

/// A successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltModule {
    /// The built modules, in `modules.order` order.
    pub ko_files: Vec<PathBuf>,
    /// The full vermagic string of the (first) module.
    pub vermagic: String,
    /// make's combined output; empty-ish when the build was up to date.
    pub log: String,
    /// Where it was built ([`BuildEnv::describe`]): `host (gcc-12)`,
    /// `chroot trixie-gcc-14 (x86_64-linux-gnu-gcc-14)`.
    pub env: String,
}

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
enum EnvChoice {
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
struct NeededCompiler {
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
    fn hash_id(&self) -> String {
        match self {
            BuildEnv::Host { cc } => format!("host:{cc}"),
            BuildEnv::Chroot { cc, spec } => format!("chroot:{}:{cc}", spec.dir_name()),
        }
    }
}

/// The compiler named by the kernel's `CONFIG_CC_VERSION_TEXT`.
fn needed_compiler(tree: &KernelTree) -> Result<NeededCompiler, KbuildError> {
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
fn versioned_command(text: &str, major: u32) -> String {
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
fn host_runs_kbuild_tools(tree: &KernelTree) -> Result<(), String> {
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

fn is_loader_error(line: &str) -> bool {
    line.contains("version `GLIBC_") || line.contains("error while loading shared libraries")
}

/// Builds the module in `req.src_dir` for `tree`, or returns the previous
/// build if its inputs have not changed. Builds in a chroot of the kernel's
/// suite (creating it once) when the host lacks the kernel's compiler.
///
/// Holds an exclusive lock on `<out_dir>.lock` throughout, so two runs for
/// the same kernel and module wait for each other (the second finds the
/// first's build up to date).
pub fn build_module(tree: &KernelTree, req: &BuildRequest) -> Result<BuiltModule, KbuildError> {
    validate_request(req)?;
    let env = BuildEnv::for_tree(tree)?;
    let _lock = lock_out_dir(&req.out_dir)?;
    let files = source_files(&req.src_dir, &req.out_dir)?;
    let hash = build_hash(&req.src_dir, &files, tree, req, &env.hash_id())?;
    let hash_file = req.out_dir.join(BUILD_HASH_FILE);

    if fs::read_to_string(&hash_file).is_ok_and(|h| h.trim() == hash) {
        if let Ok(ko_files) = built_modules(&req.out_dir) {
            if let Ok(vermagic) = check_vermagic(&ko_files, tree, &hash_file) {
                info!(kernel = %tree.name, out = %req.out_dir.display(), "module is up to date");
                return Ok(BuiltModule {
                    ko_files,
                    vermagic,
                    log: format!("up to date (build hash {hash})\n"),
                    env: env.describe(),
                });
            }
        }
    }

    // A failed or interrupted build must not look up to date.
    remove_if_exists(&hash_file)?;
    copy_sources(&req.src_dir, &req.out_dir, &files)?;

    let mut args = vec![
        "-C".to_owned(),
        tree.headers_common.display().to_string(),
        format!("O={}", tree.headers_flavour.display()),
        format!("M={}", req.out_dir.display()),
        format!("CC={}", env.cc()),
        format!("-j{}", std::thread::available_parallelism().map_or(1, |n| n.get())),
    ];
    if req.extra_cflags_w1 {
        args.push("W=1".to_owned());
    }
    for (k, v) in &req.make_vars {
        args.push(format!("{k}={v}"));
    }
    args.push("modules".to_owned());

    // Held (shared) while make runs, so the chroot is not replaced under it.
    let mut _chroot = None;
    let cmd = match &env {
        BuildEnv::Host { .. } => {
            if find_program("make").is_none() {
                return Err(KbuildError::MakeMissing);
            }
            let mut cmd = Command::new("make");
            // Compiler messages in plain ASCII, as in the chroot. The
            // kernel's Makefile unexports LC_ALL, so LANG and the LC_
            // categories gcc reads are set too.
            cmd.args(&args).env("LC_ALL", "C").env("LANG", "C").env_remove("LC_CTYPE").env_remove("LC_MESSAGES");
            cmd.env_remove("LANGUAGE");
            cmd
        }
        BuildEnv::Chroot { cc, spec } => {
            let chroot_err = |source| KbuildError::Chroot {
                kernel: tree.name.clone(),
                suite: spec.suite.clone(),
                cc: cc.clone(),
                source,
            };
            chroot::preflight(&spec.suite).map_err(chroot_err)?;
            let started = Instant::now();
            let c = chroot::ensure(spec, &tree.cache_dir).map_err(chroot_err)?;
            if c.created {
                info!(chroot = %c.root.display(), secs = started.elapsed().as_secs_f32(), "build chroot created");
            }
            if !c.has_program(cc) {
                let missing = format!("the compiler `{cc}`");
                return Err(chroot_err(ChrootError::Incomplete { root: c.root.clone(), missing }));
            }
            // Host programs kbuild may build must use the chroot's compiler too.
            args.insert(args.len() - 1, format!("HOSTCC={cc}"));
            let binds = [Bind::rw(&req.out_dir), Bind::ro(&tree.root)];
            let cmd = c.command(&binds, "make", &args);
            _chroot = Some(c);
            cmd
        }
    };
    info!(kernel = %tree.name, env = %env.describe(), out = %req.out_dir.display(), "building module");
    let started = Instant::now();
    let (status, log) = run_captured(cmd)?;
    drop(_chroot);
    let log_path = req.out_dir.join("rig-build.log");
    fs::write(&log_path, &log).map_err(io_err("write", &log_path))?;
    if !status.success() {
        return Err(KbuildError::BuildFailed {
            kernel: tree.name.clone(),
            status: status.to_string(),
            log_path,
            tail: tail_lines(&log, ERROR_TAIL_LINES),
        });
    }
    let ko_files = built_modules(&req.out_dir)?;
    let vermagic = check_vermagic(&ko_files, tree, &hash_file)?;
    fs::write(&hash_file, format!("{hash}\n")).map_err(io_err("write", &hash_file))?;
    info!(kernel = %tree.name, modules = ko_files.len(), secs = started.elapsed().as_secs_f32(), "module built");
    Ok(BuiltModule { ko_files, vermagic, log, env: env.describe() })
}

/// Exclusive lock on `<out_dir>.lock` (next to the build directory).
fn lock_out_dir(out_dir: &Path) -> Result<Flock<File>, KbuildError> {
    let name = out_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "build".into());
    let parent = out_dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
    let path = parent.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open lock file", &path))?;
    let lock_err = |source| KbuildError::Lock { path: path.clone(), source };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(l),
        Err((file, Errno::EWOULDBLOCK)) => {
            info!(lock = %path.display(), "another rig is building this module for this kernel; waiting for it");
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| lock_err(e))
        }
        Err((_, e)) => Err(lock_err(e)),
    }
}

fn validate_request(req: &BuildRequest) -> Result<(), KbuildError> {
    let has_build_file = ["Kbuild", "Makefile"].iter().any(|f| req.src_dir.join(f).is_file());
    if !has_build_file {
        return Err(KbuildError::SourceMissing { path: req.src_dir.clone() });
    }
    if same_dir(&req.src_dir, &req.out_dir) {
        return Err(KbuildError::OutIsSource { path: req.out_dir.clone() });
    }
    for (name, _) in &req.make_vars {
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || RESERVED_VARS.contains(&name.as_str()) {
            return Err(KbuildError::InvalidMakeVar { name: name.clone() });
        }
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------
// Compiler selection

/// The compiler family and major version that built a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compiler {
    Gcc(u32),
    Clang,
}

/// The unquoted `CONFIG_CC_VERSION_TEXT` from a kernel `.config`.
fn cc_version_text(config: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let v = l.strip_prefix("CONFIG_CC_VERSION_TEXT=")?.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        (!v.is_empty()).then(|| v.replace("\\\"", "\""))
    })
}

/// Reads e.g. `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0` or
/// `gcc (Debian 10.2.1-6) 10.2.1 20210110`.
fn compiler_of(text: &str) -> Option<Compiler> {
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
fn version_major(s: &str) -> Option<u32> {
    let major = s.trim().split('.').next()?;
    if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    major.parse().ok()
}

/// The command the config names (`x86_64-linux-gnu-gcc-14`) if present,
/// else `gcc-<major>` if present, else plain `gcc` if it is that major.
fn choose_compiler(
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

fn host_gcc_major() -> Option<u32> {
    find_program("gcc")?;
    let out = Command::new("gcc").arg("-dumpversion").output().ok()?;
    version_major(&String::from_utf8_lossy(&out.stdout))
}

// ---------------------------------------------------------------------------
// Sources, hashing and copying

/// Kbuild outputs and editor/VCS droppings: never copied or hashed.
fn is_build_product(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[".o", ".ko", ".mod", ".mod.c", ".cmd", ".a", ".order", ".symvers", ".dwo", ".log", "~"];
    name.starts_with('.') || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Source files under `src` (relative, sorted), skipping build products,
/// hidden entries, symlinked directories and `exclude` (a build directory
/// that may live inside the source).
fn source_files(src: &Path, exclude: &Path) -> Result<Vec<PathBuf>, KbuildError> {
    let exclude = exclude.canonicalize().ok();
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        if exclude.is_some() && dir.canonicalize().ok() == exclude {
            continue;
        }
        let entries = fs::read_dir(&dir).map_err(io_err("read directory", &dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let name = entry.file_name();
            let Some(name_str) = name.to_str() else {
                debug!(path = %entry.path().display(), "skipping non-UTF-8 name");
                continue;
            };
            if is_build_product(name_str) {
                continue;
            }
            let ty = entry.file_type().map_err(io_err("stat", &entry.path()))?;
            if ty.is_dir() {
                stack.push(rel.join(&name));
            } else if ty.is_file() || (ty.is_symlink() && entry.path().is_file()) {
                files.push(rel.join(&name));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Hash of everything that affects the build output.
fn build_hash(
    src: &Path,
    files: &[PathBuf],
    tree: &KernelTree,
    req: &BuildRequest,
    env_id: &str,
) -> Result<String, KbuildError> {
    let mut contents = Vec::with_capacity(files.len());
    for f in files {
        let path = src.join(f);
        contents.push((f.to_string_lossy().into_owned(), fs::read(&path).map_err(io_err("read", &path))?));
    }
    let params = [
        ("release", tree.release.as_str()),
        ("package_version", tree.package_version.as_str()),
        ("env", env_id),
        ("w1", if req.extra_cflags_w1 { "1" } else { "0" }),
    ];
    Ok(hash_inputs(&contents, &params, &req.make_vars))
}

/// Pure part of the build hash; every item is length-prefixed so that no
/// two different input sets serialise the same.
fn hash_inputs(files: &[(String, Vec<u8>)], params: &[(&str, &str)], make_vars: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    let mut put = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    put(b"rig-build-hash-v1");
    for (k, v) in params {
        put(k.as_bytes());
        put(v.as_bytes());
    }
    put(b"make_vars");
    for (k, v) in make_vars {
        put(k.as_bytes());
        put(v.as_bytes());
    }
    put(b"files");
    for (name, data) in files {
        put(name.as_bytes());
        put(data);
    }
    hex(&h.finalize())
}

/// Copies `files` from `src` to `out`, leaving identical files alone so
/// their mtimes (and kbuild's incremental build) survive.
fn copy_sources(src: &Path, out: &Path, files: &[PathBuf]) -> Result<(), KbuildError> {
    for f in files {
        let from = src.join(f);
        let to = out.join(f);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        let data = fs::read(&from).map_err(io_err("read", &from))?;
        if fs::read(&to).is_ok_and(|old| old == data) {
            continue;
        }
        fs::write(&to, &data).map_err(io_err("write", &to))?;
    }
    fs::create_dir_all(out).map_err(io_err("create directory", out))
}

// ---------------------------------------------------------------------------
// Results

/// The built modules listed in `out/modules.order` (lines are `foo.ko`, or
/// `foo.o` on newer kernels; relative to `out` or absolute).
fn built_modules(out: &Path) -> Result<Vec<PathBuf>, KbuildError> {
    let order = out.join("modules.order");
    let text = fs::read_to_string(&order).unwrap_or_default();
    let kos = ko_paths_from_order(&text, out);
    if kos.is_empty() || !kos.iter().all(|k| k.is_file()) {
        return Err(KbuildError::NoModules { out_dir: out.to_owned() });
    }
    Ok(kos)
}

fn ko_paths_from_order(text: &str, out: &Path) -> Vec<PathBuf> {
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
fn check_vermagic(kos: &[PathBuf], tree: &KernelTree, hash_file: &Path) -> Result<String, KbuildError> {
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
fn vermagic_of(ko: &[u8]) -> Option<String> {
    let haystack = elf64_section(ko, ".modinfo").unwrap_or(ko);
    haystack
        .split(|&b| b == 0)
        .find_map(|s| s.windows(9).position(|w| w == b"vermagic=").map(|i| &s[i + 9..]))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The contents of section `name` in a little-endian ELF64 image.
fn elf64_section<'a>(data: &'a [u8], name: &str) -> Option<&'a [u8]> {
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

// ---------------------------------------------------------------------------
// Helpers

/// Runs `cmd` with stdout and stderr interleaved into one log.
fn run_captured(mut cmd: Command) -> Result<(std::process::ExitStatus, String), KbuildError> {
    let spawn_err = |source| KbuildError::Io { action: "run", path: PathBuf::from("make"), source };
    let (mut reader, writer) = io::pipe().map_err(spawn_err)?;
    let writer2 = writer.try_clone().map_err(spawn_err)?;
    cmd.stdout(writer).stderr(writer2).stdin(std::process::Stdio::null());
    debug!(command = ?cmd, "running");
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // The Command holds our write ends; drop it or the read never sees EOF.
    drop(cmd);
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw).map_err(spawn_err)?;
    let status = child.wait().map_err(spawn_err)?;
    Ok((status, String::from_utf8_lossy(&raw).into_owned()))
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> KbuildError + 'a {
    move |source| KbuildError::Io { action, path: path.to_owned(), source }
}

fn remove_if_exists(path: &Path) -> Result<(), KbuildError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(release: &str) -> KernelTree {
        KernelTree {
            name: "k".into(),
            release: release.into(),
            package_version: "1-1".into(),
            root: "/nonexistent".into(),
            vmlinuz: "/nonexistent/vmlinuz".into(),
            headers_common: "/nonexistent/c".into(),
            headers_flavour: "/nonexistent/f".into(),
            modules_dir: None,
            config: "/nonexistent/config".into(),
            suite: "bookworm".into(),
            arch: "amd64".into(),
            archive_uri: "http://m.example/debian".into(),
            cache_dir: "/nonexistent".into(),
        }
    }

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

    #[test]
    fn out_dir_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("build/6.1/guest-kmod");
        let held = lock_out_dir(&out).unwrap();
        assert!(tmp.path().join("build/6.1/guest-kmod.lock").is_file());
        let file = OpenOptions::new().write(true).open(tmp.path().join("build/6.1/guest-kmod.lock")).unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        let _again = lock_out_dir(&out).unwrap();
    }

    #[test]
    fn compiler_unavailable_message_names_the_fix() {
        let err = KbuildError::CompilerUnavailable { needed: "gcc-14".into(), kernel: "trixie-6.12".into() };
        let msg = err.to_string();
        assert!(msg.contains("gcc-14") && msg.contains("trixie-6.12") && msg.contains("chroot"), "{msg}");
    }

    #[test]
    fn hash_changes_with_each_input() {
        let files = vec![("main.c".to_owned(), b"int x;".to_vec())];
        let vars = vec![("KCFLAGS".to_owned(), "-g".to_owned())];
        let params = [("release", "6.1.0-50-cloud-amd64"), ("cc", "gcc-12")];
        let base = hash_inputs(&files, &params, &vars);
        assert_eq!(base, hash_inputs(&files, &params, &vars));
        assert_eq!(base.len(), 64);
        let other_file = vec![("main.c".to_owned(), b"int y;".to_vec())];
        assert_ne!(base, hash_inputs(&other_file, &params, &vars));
        assert_ne!(base, hash_inputs(&files, &[("release", "6.1.0-51-cloud-amd64"), ("cc", "gcc-12")], &vars));
        assert_ne!(base, hash_inputs(&files, &params, &[]));
        // Length prefixes: moving bytes between name and content changes it.
        let shifted = vec![("main.ci".to_owned(), b"nt x;".to_vec())];
        assert_ne!(base, hash_inputs(&shifted, &params, &vars));
    }

    #[test]
    fn sources_skip_products_and_nested_out_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let out = src.join("build");
        for f in [
            "Kbuild",
            "main.c",
            "include/uapi/x.h",
            "main.o",
            "m.ko",
            "m.mod.c",
            ".main.o.cmd",
            "modules.order",
            ".git/HEAD",
            "build/Kbuild",
        ] {
            let p = src.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        let files = source_files(&src, &out).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["Kbuild", "include/uapi/x.h", "main.c"]);

        let t = tree("6.1.0-50-cloud-amd64");
        let req =
            BuildRequest { src_dir: src.clone(), out_dir: out.clone(), make_vars: vec![], extra_cflags_w1: false };
        let h1 = build_hash(&src, &files, &t, &req, "host:gcc-12").unwrap();
        // Build products do not affect the hash...
        fs::write(src.join("main.o"), "changed").unwrap();
        assert_eq!(h1, build_hash(&src, &source_files(&src, &out).unwrap(), &t, &req, "host:gcc-12").unwrap());
        // ...sources and W=1 do.
        fs::write(src.join("main.c"), "changed").unwrap();
        let h2 = build_hash(&src, &files, &t, &req, "host:gcc-12").unwrap();
        assert_ne!(h1, h2);
        let w1 = BuildRequest { extra_cflags_w1: true, ..req.clone() };
        assert_ne!(h2, build_hash(&src, &files, &t, &w1, "host:gcc-12").unwrap());

        copy_sources(&src, &out, &files).unwrap();
        assert_eq!(fs::read_to_string(out.join("include/uapi/x.h")).unwrap(), "include/uapi/x.h");
        assert!(!out.join("main.o").exists());
    }

    #[test]
    fn request_validation() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().to_owned();
        let mut req =
            BuildRequest { src_dir: src.clone(), out_dir: src.join("out"), make_vars: vec![], extra_cflags_w1: false };
        assert!(matches!(validate_request(&req), Err(KbuildError::SourceMissing { .. })));
        fs::write(src.join("Kbuild"), "obj-m := m.o\n").unwrap();
        assert!(validate_request(&req).is_ok());
        req.make_vars = vec![("M".into(), "/x".into())];
        assert!(matches!(validate_request(&req), Err(KbuildError::InvalidMakeVar { .. })));
        req.make_vars = vec![("A B".into(), "x".into())];
        assert!(matches!(validate_request(&req), Err(KbuildError::InvalidMakeVar { .. })));
        req.make_vars = vec![("KCFLAGS".into(), "-g".into())];
        assert!(validate_request(&req).is_ok());
        req.out_dir = src.clone();
        assert!(matches!(validate_request(&req), Err(KbuildError::OutIsSource { .. })));
    }

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
