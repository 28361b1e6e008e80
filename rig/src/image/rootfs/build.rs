//! Building a Debian root: the build chroots' debootstrap
//! ([`crate::build::chroot::debootstrap`]) into a temporary directory, apt
//! in it (in private mount and pid namespaces: nothing is mounted on the
//! host), the kernel's modules and depmod, the rig's `poweroff`, then
//! mksquashfs; stamped and renamed into place, so an interrupted build is
//! simply redone. Needs root, or password-less sudo, as the build chroots do.

use super::packages::{resolve, BASE_PACKAGES};
use super::{squashfs, RootfsError, RootfsSpec, RootfsStamp, FORMAT, IMAGE_FILE, STAMP_FILE, TAIL_LINES};
use crate::build::chroot::{
    command_as_root, debootstrap, debootstrap_args, preflight, privileged, remove_leftover, tree_bytes,
};
use crate::support::{find_program, io_err, tail_lines, ChildError};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Before apt: no maintainer script may start a daemon in the build.
const NO_DAEMONS: &str = "printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d";

/// After apt: the rig's `poweroff` (minbase has none; the rig powers the
/// guest off with `poweroff -f`, which sysrq does at once), no policy-rc.d,
/// no .debs or package lists (the guest has no network to use them).
const FINISH: &str = r#"set -e
mkdir -p /usr/local/sbin
cat >/usr/local/sbin/poweroff <<'EOF'
#!/bin/sh
# The rig's: Debian's minbase has no poweroff. Power off at once, as -f does.
sync
echo o >/proc/sysrq-trigger
sleep 10
EOF
chmod 755 /usr/local/sbin/poweroff
rm -f /usr/sbin/policy-rc.d
apt-get clean
rm -rf /var/lib/apt/lists/*
"#;

/// The kernel's files the root gets (`build` and `source` point at the
/// headers, `vmlinuz` is booted from outside).
const MODULE_FILES: [&str; 4] = ["kernel", "modules.builtin", "modules.builtin.modinfo", "modules.order"];

/// A command in the root being built, as root; apt never asks.
fn in_root(tree: &Path, args: &[&str]) -> Command {
    let mut all = vec!["DEBIAN_FRONTEND=noninteractive"];
    all.extend_from_slice(args);
    command_as_root(tree, "env", &all)
}

/// One build: where it logs, what it builds, what stops it.
struct Build<'a> {
    spec: &'a RootfsSpec,
    log: PathBuf,
    interrupt: &'a AtomicBool,
}

impl Build<'_> {
    /// Runs `cmd`, its output appended to the log; `Err((status, output))`
    /// when it fails. Ctrl-C stops it (its whole process group).
    fn run(&self, what: &str, cmd: &mut Command) -> Result<Result<String, (String, String)>, RootfsError> {
        tracing::debug!(command = ?cmd, "running");
        let out = match crate::support::output(cmd, self.interrupt) {
            Ok(o) => o,
            Err(ChildError::Interrupted { .. }) => return Err(RootfsError::Interrupted),
            Err(ChildError::Io(e)) => return Err(e.into()),
        };
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let mut f = OpenOptions::new().append(true).create(true).open(&self.log).map_err(io_err("write", &self.log))?;
        let _ = writeln!(f, "==> {what}: {}\n{text}", out.status);
        Ok(if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err((out.status.to_string(), text))
        })
    }

    /// Runs a step that must succeed.
    fn step(&self, what: &str, cmd: &mut Command) -> Result<String, RootfsError> {
        self.run(what, cmd)?.map_err(|(status, text)| RootfsError::Step {
            suite: self.spec.suite.clone(),
            step: what.into(),
            status,
            log: self.log.clone(),
            tail: tail_lines(&text, TAIL_LINES),
        })
    }

    /// An apt step: a failure becomes [`apt_error`].
    fn apt(&self, what: &str, tree: &Path, args: &[&str]) -> Result<String, RootfsError> {
        self.run(what, &mut in_root(tree, args))?
            .map_err(|(status, text)| apt_error(&self.spec.suite, what, status, &text, &self.log))
    }
}

/// apt's `E:` lines (or its tail) make the error; a package apt cannot
/// find is the config's problem.
fn apt_error(suite: &str, what: &str, status: String, text: &str, log: &Path) -> RootfsError {
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E: ")).collect();
    let message = if errors.is_empty() { tail_lines(text, TAIL_LINES) } else { errors.join("\n") };
    let missing: Vec<&str> = errors
        .iter()
        .filter_map(|l| {
            l.strip_prefix("E: Unable to locate package ")
                .or_else(|| l.strip_prefix("E: Package '").and_then(|r| r.split('\'').next()))
        })
        .collect();
    if missing.is_empty() {
        RootfsError::Apt { suite: suite.into(), step: what.into(), status, message, log: log.into() }
    } else {
        RootfsError::PackageMissing { suite: suite.into(), packages: missing.join(", "), message, log: log.into() }
    }
}

/// Builds the root `name` under `root` (the caller holds its lock
/// exclusively); a pattern that matches nothing is stamped as a skip.
pub(super) fn build(
    spec: &RootfsSpec,
    root: &Path,
    name: &str,
    log: &mut dyn FnMut(&str),
    interrupt: &AtomicBool,
) -> Result<(), RootfsError> {
    preflight(&spec.suite)?;
    if find_program("mksquashfs").is_none() {
        return Err(RootfsError::ToolMissing {
            tool: "mksquashfs",
            package: "squashfs-tools",
            purpose: "pack the guest's Debian root",
        });
    }
    let modules = spec
        .modules_dir
        .clone()
        .filter(|d| d.join("kernel").is_dir())
        .ok_or_else(|| RootfsError::NoModules { release: spec.release.clone() })?;
    let tmp = root.join(format!(".{name}.tmp"));
    remove_leftover(&tmp)?;
    fs::create_dir_all(&tmp).map_err(io_err("create directory", &tmp))?;
    let b = Build { spec, log: root.join(format!("{name}.log")), interrupt };
    let result = fill(&b, &tmp, &modules, log);
    if result.is_err() {
        let _ = remove_leftover(&tmp);
        return result.map(|_| ());
    }
    let stamp = result?;
    fs::write(tmp.join(STAMP_FILE), serde_json::to_string_pretty(&stamp).unwrap_or_default() + "\n")
        .map_err(io_err("write", &tmp.join(STAMP_FILE)))?;
    let target = root.join(name);
    if target.exists() {
        let old = root.join(format!(".{name}.old"));
        remove_leftover(&old)?;
        fs::rename(&target, &old).map_err(io_err("rename", &target))?;
        remove_leftover(&old)?;
    }
    fs::rename(&tmp, &target).map_err(io_err("rename", &tmp))?;
    tracing::info!(root = %target.display(), secs = format!("{:.1}", stamp.build_secs), "Debian root ready");
    Ok(())
}

/// Does the tree have apt's package lists (`*_Packages`)?
fn has_package_lists(tree: &Path) -> bool {
    fs::read_dir(tree.join("var/lib/apt/lists"))
        .is_ok_and(|rd| rd.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().ends_with("_Packages")))
}

/// debootstrap, apt, modules, the rig's files, mksquashfs: the stamp of
/// what came out (or of why the suite cannot have it).
fn fill(b: &Build, tmp: &Path, modules: &Path, log: &mut dyn FnMut(&str)) -> Result<RootfsStamp, RootfsError> {
    let spec = b.spec;
    let started = Instant::now();
    let tree = tmp.join("tree");
    log(&format!("debootstrap of a {} root (minbase, once for these packages)", spec.suite));
    let base: Vec<String> = BASE_PACKAGES.iter().map(|p| p.to_string()).collect();
    let args = debootstrap_args(&spec.suite, &spec.arch, &base, &tree, &spec.archive_uri);
    debootstrap(&spec.suite, &spec.archive_uri, &args, &tree, &b.log, b.interrupt)?;
    b.step("policy-rc.d", &mut in_root(&tree, &["sh", "-c", NO_DAEMONS]))?;
    // debootstrap leaves the package lists it checked against the keyring;
    // apt uses them as they are. An `apt-get update` would fetch them again
    // and refuse a mirror whose Release is past its Valid-Until (a frozen
    // snapshot), which the kernels themselves came from.
    if !has_package_lists(&tree) {
        b.apt("update", &tree, &["apt-get", "update"])?;
    }
    let names = b.apt("pkgnames", &tree, &["apt-cache", "pkgnames"])?;
    let available: Vec<String> = names.lines().map(str::to_owned).collect();
    let stamp = |installed, image_bytes, bytes_used, tree_bytes, skip| RootfsStamp {
        format: FORMAT,
        key: spec.key(),
        suite: spec.suite.clone(),
        arch: spec.arch.clone(),
        archive_uri: spec.archive_uri.clone(),
        packages: spec.packages.clone(),
        installed,
        release: spec.release.clone(),
        kernel_version: spec.kernel_version.clone(),
        image_bytes,
        bytes_used,
        tree_bytes,
        created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        build_secs: started.elapsed().as_secs_f64(),
        skip,
    };
    let wanted = match resolve(&spec.packages, &available) {
        Ok(w) => w,
        Err(unmatched) => {
            let reason = format!(
                "`{}` has no package matching {}: this kernel's Debian root cannot have it",
                spec.suite,
                unmatched.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
            );
            remove_leftover(&tree)?;
            return Ok(stamp(vec![], 0, 0, 0, Some(reason)));
        }
    };
    let mut installed = vec![];
    if !wanted.is_empty() {
        log(&format!("apt-get install in the {} root: {}", spec.suite, wanted.join(" ")));
        let mut args = vec!["apt-get", "install", "-y", "--no-install-recommends", "-o", "Dpkg::Use-Pty=0"];
        args.extend(wanted.iter().map(String::as_str));
        b.apt("install", &tree, &args)?;
        let mut query = vec!["dpkg-query", "-W", "-f", "${Package} ${Version}\\n"];
        query.extend(wanted.iter().map(String::as_str));
        installed = b.step("dpkg-query", &mut in_root(&tree, &query))?.lines().map(str::to_owned).collect();
    }
    // The kernel's modules, with their dependency lists: modprobe works.
    let dest = tree.join("lib/modules").join(&spec.release);
    b.step("mkdir modules", privileged("mkdir").arg("-p").arg(&dest))?;
    for f in MODULE_FILES {
        let src = modules.join(f);
        if src.exists() {
            b.step("copy the kernel's modules", privileged("cp").args(["-a", "--"]).arg(&src).arg(&dest))?;
        }
    }
    b.step("depmod", &mut in_root(&tree, &["depmod", "-a", &spec.release]))?;
    b.step("the rig's files", &mut in_root(&tree, &["sh", "-c", FINISH]))?;
    let tree_bytes = tree_bytes(&tree);
    log(&format!("packing the {} root ({} MiB, mksquashfs lz4)", spec.suite, tree_bytes >> 20));
    let image = tmp.join(IMAGE_FILE);
    b.step(
        "mksquashfs",
        privileged("mksquashfs").arg(&tree).arg(&image).args(["-comp", "lz4", "-noappend", "-no-progress", "-quiet"]),
    )?;
    remove_leftover(&tree)?;
    let image_bytes = fs::metadata(&image).map_err(io_err("read", &image))?.len();
    let sb = squashfs::verify(&image, image_bytes).map_err(|why| RootfsError::Step {
        suite: spec.suite.clone(),
        step: "mksquashfs".into(),
        status: "an unreadable image".into(),
        log: b.log.clone(),
        tail: why,
    })?;
    Ok(stamp(installed, image_bytes, sb.bytes_used, tree_bytes, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_are_valid_sh() {
        for script in [NO_DAEMONS, FINISH] {
            let status = Command::new("sh").arg("-n").arg("-c").arg(script).status().expect("sh");
            assert!(status.success(), "{script}");
        }
    }

    #[test]
    fn debootstraps_lists_are_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!has_package_lists(dir.path()));
        let lists = dir.path().join("var/lib/apt/lists");
        fs::create_dir_all(&lists).expect("mkdir");
        fs::write(lists.join("lock"), "").expect("lock");
        assert!(!has_package_lists(dir.path()));
        fs::write(lists.join("mirror.example_debian_dists_sid_main_binary-amd64_Packages"), "").expect("list");
        assert!(has_package_lists(dir.path()));
    }

    #[test]
    fn apt_errors_name_the_missing_package() {
        let log = Path::new("/c/rootfs/trixie-x.log");
        let apt_says = "Reading package lists...\nE: Unable to locate package dpdk-devv\nE: Package 'foo' has no installation candidate\n";
        let e = apt_error("trixie", "install", "exit status: 100".into(), apt_says, log);
        assert!(e.is_config(), "{e}");
        let m = e.to_string();
        assert!(m.contains("cannot have dpdk-devv, foo") && m.contains("E: Unable to locate package dpdk-devv"), "{m}");
        assert!(!m.contains("Reading package lists"), "{m}");
        let e = apt_error("trixie", "update", "exit status: 100".into(), "W: x\nE: Failed to fetch http://x\n", log);
        assert!(!e.is_config() && e.to_string().contains("E: Failed to fetch"), "{e}");
        let e = apt_error("trixie", "install", "exit status: 1".into(), "dpkg: error processing\n", log);
        assert!(e.to_string().contains("dpkg: error processing"), "{e}");
    }

    #[test]
    fn steps_log_their_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = RootfsSpec {
            suite: "trixie".into(),
            arch: "amd64".into(),
            archive_uri: "http://x/debian".into(),
            packages: vec![],
            release: "r".into(),
            kernel_version: "v".into(),
            modules_dir: None,
        };
        let flag = AtomicBool::new(false);
        let b = Build { spec: &spec, log: dir.path().join("log"), interrupt: &flag };
        assert_eq!(b.step("echo", Command::new("sh").args(["-c", "echo hi"])).expect("ok"), "hi\n");
        let e = b.step("fails", Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).expect_err("fails");
        assert!(e.to_string().contains("fails failed") && e.to_string().contains("oops"), "{e}");
        let text = fs::read_to_string(dir.path().join("log")).expect("log");
        assert!(text.contains("==> echo") && text.contains("==> fails"), "{text}");
    }
}
