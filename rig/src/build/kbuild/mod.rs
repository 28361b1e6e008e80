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
//!
//! A little over 500 lines: the build's sequence (lock, hash, make,
//! vermagic) stays in one place; environment, compiler, inputs and
//! vermagic parsing are their own files.

// Errors carry the tail of a build or debootstrap log: large, but only on
// the cold path, once per run.
#![allow(clippy::result_large_err)]

mod compiler;
mod env;
mod inputs;
mod vermagic;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use nix::fcntl::Flock;
use thiserror::Error;
use tracing::info;

use crate::build::chroot::{self, Bind, ChrootError};
use crate::build::dkms::{self, DkmsError, KernelFacts};
use crate::kernel::fetch::KernelTree;
use crate::support::{
    find_program, io_err, lock_file, mark_used, tail_lines, ChildError, GroupChild, IoError, LockError, LockMode,
};
pub use env::BuildEnv;
use inputs::{build_hash, copy_sources, file_sha256, headers_digest, kernel_deps, source_files, BuildRecord};
use vermagic::{built_modules, check_vermagic};

/// Environment variable choosing where modules are built: `auto` (the
/// default: the host when it has the kernel's compiler, else a chroot),
/// `host` or `chroot`.
pub const BUILD_ENV_VAR: &str = "RIG_BUILD_ENV";

/// File in the build directory recording the last good build (its inputs'
/// hash, the digest of the kernel headers it read, its modules' hashes).
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
    /// Taking a lock in the cache failed.
    #[error(transparent)]
    Lock(LockError),
    /// Ctrl-C or SIGTERM: make (or the chroot's creation, or a wait for
    /// another rig) was stopped; the build directory is left marked stale.
    #[error("interrupted; the module is built again next time")]
    Interrupted,
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
    #[error("building the module for `{kernel}` failed ({status}); fix the errors below{hint} (full log: {}):\n{tail}", log_path.display())]
    BuildFailed {
        /// Catalog name of the kernel.
        kernel: String,
        /// More to say, from the log (`; ...`), or empty.
        hint: String,
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
    /// The module's dkms.conf rules this kernel out, or names a module the
    /// build did not produce.
    #[error(transparent)]
    Dkms(#[from] DkmsError),
    /// A filesystem or process operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl From<LockError> for KbuildError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Interrupted { .. } => KbuildError::Interrupted,
            e => KbuildError::Lock(e),
        }
    }
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
/// Builds the module in `req.src_dir` for `tree`, or returns the previous
/// build if its inputs have not changed. Builds in a chroot of the kernel's
/// suite (creating it once) when the host lacks the kernel's compiler.
///
/// Holds an exclusive lock on `<out_dir>.lock` throughout, so two runs for
/// the same kernel and module wait for each other (the second finds the
/// first's build up to date). `interrupt` (Ctrl-C) stops make and its
/// compilers (their whole process group), debootstrap and the lock waits.
pub fn build_module(tree: &KernelTree, req: &BuildRequest, interrupt: &AtomicBool) -> Result<BuiltModule, KbuildError> {
    validate_request(req)?;
    // A DKMS tree: its kernel conditions first, its MAKE variables passed.
    let dkms = dkms::read(&req.src_dir)?;
    let with_dkms;
    let req = match &dkms {
        Some(conf) => {
            let config = fs::read_to_string(&tree.config).map_err(io_err("read", &tree.config))?;
            let facts = KernelFacts {
                name: &tree.name,
                release: &tree.release,
                suite: &tree.suite,
                arch: &tree.arch,
                config: &config,
            };
            conf.check_kernel(&facts)?;
            with_dkms = with_make_vars(req, &conf.make_vars);
            &with_dkms
        }
        None => req,
    };
    let env = BuildEnv::for_tree(tree)?;
    let _lock = lock_out_dir(&req.out_dir, interrupt)?;
    // The kernel's headers are used for the whole build, without its fetch lock.
    for used in [Some(req.out_dir.as_path()), tree.root.parent()].into_iter().flatten() {
        mark_used(used);
    }
    let files = source_files(&req.src_dir, &req.out_dir)?;
    let hash = build_hash(&req.src_dir, &files, tree, req, &env.hash_id())?;
    let hash_file = req.out_dir.join(BUILD_HASH_FILE);

    let record = fs::read_to_string(&hash_file).ok().and_then(|t| BuildRecord::parse(&t));
    if let Some(record) = record.filter(|r| r.inputs == hash) {
        if let Some((ko_files, vermagic)) = still_good(&record, tree, &req.out_dir, &env, &hash_file) {
            if let Some(conf) = &dkms {
                conf.check_built(&ko_files)?;
            }
            info!(kernel = %tree.name, out = %req.out_dir.display(), "module is up to date");
            return Ok(BuiltModule {
                ko_files,
                vermagic,
                log: format!("up to date (build hash {hash})\n"),
                env: env.describe(),
            });
        }
    }

    // A failed or interrupted build must not look up to date.
    crate::support::remove_file_if_exists(&hash_file)?;
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
            let chroot_err = |source| match source {
                ChrootError::Interrupted => KbuildError::Interrupted,
                source => {
                    KbuildError::Chroot { kernel: tree.name.clone(), suite: spec.suite.clone(), cc: cc.clone(), source }
                }
            };
            chroot::preflight(&spec.suite).map_err(chroot_err)?;
            let started = Instant::now();
            let c = chroot::ensure(spec, &tree.cache_dir, interrupt).map_err(chroot_err)?;
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
    let (status, log) = run_captured(cmd, interrupt)?;
    drop(_chroot);
    let log_path = req.out_dir.join("rig-build.log");
    fs::write(&log_path, &log).map_err(io_err("write", &log_path))?;
    if !status.success() {
        return Err(KbuildError::BuildFailed {
            kernel: tree.name.clone(),
            hint: undefined_symbols_hint(&log, tree),
            status: status.to_string(),
            log_path,
            tail: tail_lines(&log, ERROR_TAIL_LINES),
        });
    }
    let ko_files = built_modules(&req.out_dir)?;
    let vermagic = check_vermagic(&ko_files, tree, &hash_file)?;
    if let Some(conf) = &dkms {
        conf.check_built(&ko_files)?;
    }
    let record = BuildRecord {
        inputs: hash,
        headers: headers_digest(
            &kernel_deps(&req.out_dir, &tree.headers_flavour)?,
            host_path(tree, &req.out_dir, &env),
        ),
        modules: ko_files
            .iter()
            .map(|ko| Ok((relative(ko, &req.out_dir), file_sha256(ko)?)))
            .collect::<Result<_, KbuildError>>()?,
    };
    // Written last: its presence says the build is complete.
    fs::write(&hash_file, record.format()).map_err(io_err("write", &hash_file))?;
    mark_used(&req.out_dir);
    info!(kernel = %tree.name, modules = ko_files.len(), secs = started.elapsed().as_secs_f32(), "module built");
    Ok(BuiltModule { ko_files, vermagic, log, env: env.describe() })
}

/// The modules of the previous build in `out` and their vermagic, if that
/// build is still good: the kernel files it read are unchanged, its
/// modules are the ones it recorded, and they name the kernel.
fn still_good(
    record: &BuildRecord,
    tree: &KernelTree,
    out: &Path,
    env: &BuildEnv,
    hash_file: &Path,
) -> Option<(Vec<PathBuf>, String)> {
    let deps = kernel_deps(out, &tree.headers_flavour).ok()?;
    if headers_digest(&deps, host_path(tree, out, env)) != record.headers {
        info!(kernel = %tree.name, out = %out.display(), "the kernel headers changed since the last build; building again");
        return None;
    }
    let ko_files = built_modules(out).ok()?;
    let recorded: Vec<(String, String)> =
        ko_files.iter().map(|ko| Some((relative(ko, out), file_sha256(ko).ok()?))).collect::<Option<_>>()?;
    if recorded != record.modules {
        info!(kernel = %tree.name, out = %out.display(), "a built module changed or is missing; building again");
        return None;
    }
    let vermagic = check_vermagic(&ko_files, tree, hash_file).ok()?;
    Some((ko_files, vermagic))
}

/// Where a file the build read is on the host: the build directory and the
/// kernel tree are bound at their own paths; anything else a chroot build
/// read (the compiler's own headers) is under the chroot's root.
fn host_path<'a>(tree: &'a KernelTree, out: &'a Path, env: &BuildEnv) -> impl Fn(&Path) -> PathBuf + 'a {
    let chroot_root = match env {
        BuildEnv::Chroot { spec, .. } => Some(tree.cache_dir.join("chroots").join(spec.dir_name())),
        BuildEnv::Host { .. } => None,
    };
    move |p: &Path| match (&chroot_root, p.strip_prefix("/")) {
        (Some(root), Ok(rel)) if !p.starts_with(&tree.root) && !p.starts_with(out) => root.join(rel),
        _ => p.to_owned(),
    }
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).to_string_lossy().into_owned()
}

/// `req` with dkms.conf's MAKE variables first; the request's own override them.
fn with_make_vars(req: &BuildRequest, dkms_vars: &[(String, String)]) -> BuildRequest {
    let mut vars: Vec<(String, String)> =
        dkms_vars.iter().filter(|(k, _)| !req.make_vars.iter().any(|(o, _)| o == k)).cloned().collect();
    vars.extend(req.make_vars.iter().cloned());
    BuildRequest { make_vars: vars, ..req.clone() }
}

/// modpost's `"sym" [mod.ko] undefined!` on a cloud kernel usually means a
/// subsystem that flavour leaves out: say so (`; ...`), else nothing.
fn undefined_symbols_hint(log: &str, tree: &KernelTree) -> String {
    let symbols: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("modpost: \"") && l.trim_end().ends_with("undefined!"))
        .filter_map(|l| l.split('"').nth(1))
        .take(3)
        .collect();
    if symbols.is_empty() {
        return String::new();
    }
    let mut hint = format!("; kernel `{}` exports no {}", tree.name, symbols.join(", "));
    if tree.release.contains("-cloud-") {
        hint.push_str(&format!(
            ": Debian's cloud kernels leave most hardware subsystems out, try the generic kernel with --kernel {}/{}",
            tree.suite, tree.arch
        ));
    } else {
        hint.push_str(": its config lacks what exports them, or the module needs another module built first");
    }
    hint
}

/// Exclusive lock on `<out_dir>.lock` (next to the build directory).
fn lock_out_dir(out_dir: &Path, interrupt: &AtomicBool) -> Result<Flock<File>, KbuildError> {
    let name = out_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "build".into());
    let parent = out_dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
    let path = parent.join(format!("{name}.lock"));
    let waiting = "another rig is building this module for this kernel; waiting for it";
    Ok(lock_file(&path, LockMode::Exclusive, waiting, interrupt)?)
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

/// Runs `cmd` with stdout and stderr interleaved into one log, in a process
/// group of its own that `interrupt` stops.
fn run_captured(mut cmd: Command, interrupt: &AtomicBool) -> Result<(std::process::ExitStatus, String), KbuildError> {
    let spawn_err = |source| KbuildError::from(IoError { action: "run", path: PathBuf::from("make"), source });
    let (mut reader, writer) = io::pipe().map_err(spawn_err)?;
    let writer2 = writer.try_clone().map_err(spawn_err)?;
    cmd.stdout(writer).stderr(writer2).stdin(std::process::Stdio::null());
    let mut child = GroupChild::spawn(&mut cmd)?;
    // The Command holds our write ends; drop it or the read never sees EOF.
    drop(cmd);
    let log = std::thread::spawn(move || {
        let mut raw = Vec::new();
        let _ = reader.read_to_end(&mut raw);
        raw
    });
    let status = match child.wait(interrupt) {
        Ok(s) => s,
        // The reader is left behind: it ends with the last writer.
        Err(ChildError::Interrupted { .. }) => return Err(KbuildError::Interrupted),
        Err(ChildError::Io(e)) => return Err(e.into()),
    };
    let raw = log.join().unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&raw).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::FlockArg;
    use std::fs::OpenOptions;

    #[test]
    fn out_dir_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("build/6.1/guest-kmod");
        let never = AtomicBool::new(false);
        let held = lock_out_dir(&out, &never).unwrap();
        assert!(tmp.path().join("build/6.1/guest-kmod.lock").is_file());
        let file = OpenOptions::new().write(true).open(tmp.path().join("build/6.1/guest-kmod.lock")).unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        let _again = lock_out_dir(&out, &never).unwrap();
    }

    #[test]
    fn modpost_undefined_symbols_get_a_hint() {
        let mut tree = fixtures::tree("6.1.0-50-cloud-amd64");
        tree.suite = "bookworm".into();
        tree.arch = "amd64".into();
        let log = "  MODPOST /b/Module.symvers\nERROR: modpost: \"video_unregister_device\" [/b/cam.ko] undefined!\nERROR: modpost: \"video_device_alloc\" [/b/cam.ko] undefined!\n";
        let hint = undefined_symbols_hint(log, &tree);
        assert!(hint.contains("exports no video_unregister_device, video_device_alloc"), "{hint}");
        assert!(hint.contains("--kernel bookworm/amd64"), "{hint}");
        tree.release = "6.1.0-50-amd64".into();
        assert!(!undefined_symbols_hint(log, &tree).contains("--kernel"));
        assert_eq!(undefined_symbols_hint("error: foo.c:1: bad\n", &tree), "");
    }

    #[test]
    fn dkms_make_vars_come_first_and_yield() {
        let req = BuildRequest {
            src_dir: "/s".into(),
            out_dir: "/o".into(),
            make_vars: vec![("A".into(), "user".into())],
            extra_cflags_w1: false,
        };
        let merged = with_make_vars(&req, &[("A".into(), "dkms".into()), ("B".into(), "1".into())]);
        assert_eq!(merged.make_vars, [("B".to_owned(), "1".to_owned()), ("A".to_owned(), "user".to_owned())]);
    }

    #[test]
    fn compiler_unavailable_message_names_the_fix() {
        let err = KbuildError::CompilerUnavailable { needed: "gcc-14".into(), kernel: "trixie-6.12".into() };
        let msg = err.to_string();
        assert!(msg.contains("gcc-14") && msg.contains("trixie-6.12") && msg.contains("chroot"), "{msg}");
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
}

/// A kernel tree for the tests of inputs and vermagic.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::kernel::fetch::KernelTree;

    pub(crate) fn tree(release: &str) -> KernelTree {
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
}
