//! Creating a chroot: debootstrap into a temporary directory in a private
//! mount namespace, cleaned, stamped, then renamed into place (so an
//! interrupted creation is simply redone).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use super::enter::has_program;
use super::{preflight, privileged, ChrootError, ChrootSpec, ChrootStamp, ERROR_TAIL_LINES, STAMP_FILE, STAMP_FORMAT};
use crate::support::{io_err, mark_used, tail_lines, ChildError, GroupChild, IoError, USED_FILE};

/// debootstraps into `.<name>.tmp`, cleans it, stamps it and renames it to
/// `<name>` (replacing a stale one). Called with the exclusive lock held.
/// `interrupt` stops debootstrap (its whole process group).
pub(super) fn create(spec: &ChrootSpec, dir: &Path, name: &str, interrupt: &AtomicBool) -> Result<(), ChrootError> {
    preflight(&spec.suite)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let log_path = dir.join(format!("{name}.log"));
    remove_tree(&tmp)?;
    info!(suite = %spec.suite, compiler = %spec.compiler, uri = %spec.archive_uri, "creating the build chroot (debootstrap, once)");
    let started = Instant::now();
    debootstrap(&spec.suite, &spec.archive_uri, &spec.debootstrap_args(&tmp), &tmp, &log_path, interrupt)?;
    // The .debs and package lists are not needed to build (about a third).
    for sub in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_dir(&tmp.join(sub))?;
    }
    for program in [spec.compiler.as_str(), "make"] {
        if !has_program(&tmp, program) {
            let _ = remove_tree(&tmp);
            return Err(ChrootError::Incomplete { root: target, missing: format!("/usr/bin/{program}") });
        }
    }
    let bytes = tree_bytes(&tmp);
    let create_secs = started.elapsed().as_secs_f64();
    let stamp = ChrootStamp {
        format: STAMP_FORMAT,
        spec: spec.clone(),
        packages: spec.packages(),
        created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        create_secs,
        bytes,
    };
    write_stamp(&tmp, &stamp)?;
    open_used_stamp(&tmp)?;
    if target.exists() {
        let old = dir.join(format!(".{name}.old"));
        remove_tree(&old)?;
        rename(&target, &old)?;
        remove_tree(&old)?;
    }
    rename(&tmp, &target)?;
    info!(
        chroot = %target.display(),
        secs = format!("{create_secs:.1}"),
        mib = bytes / (1 << 20),
        "build chroot ready"
    );
    Ok(())
}

#[cfg(test)]
pub(super) fn placeholder_stamp(spec: &ChrootSpec) -> ChrootStamp {
    ChrootStamp {
        format: STAMP_FORMAT,
        spec: spec.clone(),
        packages: spec.packages(),
        created_unix: 0,
        create_secs: 0.0,
        bytes: 0,
    }
}

/// Runs `debootstrap ARGS` (made by [`super::debootstrap_args`]) into
/// `target` in a private mount namespace (the /proc it mounts there
/// disappears with it, even if debootstrap is killed), its output in
/// `log_path`. On failure or `interrupt` the target is removed; the error
/// says what to do. The Debian roots of `rootfs = "debian"` start here too.
pub fn debootstrap(
    suite: &str,
    archive_uri: &str,
    args: &[String],
    target: &Path,
    log_path: &Path,
    interrupt: &AtomicBool,
) -> Result<(), ChrootError> {
    let log = File::create(log_path).map_err(io_err("create", log_path))?;
    let log2 = log.try_clone().map_err(io_err("open", log_path))?;
    let mut cmd = privileged("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "debootstrap"])
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let mut child = GroupChild::spawn(&mut cmd).map_err(|e| IoError {
        action: "run debootstrap for",
        path: target.to_owned(),
        ..e
    })?;
    let status = match child.wait(interrupt) {
        Ok(s) => s,
        Err(ChildError::Interrupted { .. }) => {
            // Best effort: a leftover temporary tree is removed next time.
            let _ = remove_tree(target);
            return Err(ChrootError::Interrupted);
        }
        Err(ChildError::Io(e)) => return Err(e.into()),
    };
    if !status.success() {
        let text = fs::read_to_string(log_path).unwrap_or_default();
        let _ = remove_tree(target);
        return Err(debootstrap_error(suite, archive_uri, &status.to_string(), &text, log_path.to_owned()));
    }
    Ok(())
}

/// Turns debootstrap's log into an error that says what to do.
pub(super) fn debootstrap_error(suite: &str, uri: &str, status: &str, log: &str, log_path: PathBuf) -> ChrootError {
    // debootstrap: "E: Couldn't find these debs: gcc-16"
    if let Some(missing) = log.lines().find_map(|l| l.split("Couldn't find these debs:").nth(1)) {
        return ChrootError::PackageMissing {
            suite: suite.to_owned(),
            uri: uri.to_owned(),
            packages: missing.trim().to_owned(),
            log: log_path,
        };
    }
    let hint = if log.contains("Release signed by unknown key") || log.contains("Invalid Release signature") {
        "the archive's signature did not verify: upgrade `debian-archive-keyring`".to_owned()
    } else if log.contains("Failed getting release file") || log.contains("Couldn't download") {
        "the archive could not be reached or lacks the suite: check the network, or pass --archive / RIG_DEBIAN_ARCHIVE"
            .to_owned()
    } else if log.contains("No such script") {
        format!("this debootstrap does not know `{suite}`: install a newer debootstrap (bookworm-backports)")
    } else {
        "see debootstrap's messages below".to_owned()
    };
    ChrootError::Debootstrap {
        suite: suite.to_owned(),
        uri: uri.to_owned(),
        status: status.to_owned(),
        hint,
        log: log_path,
        tail: tail_lines(log, ERROR_TAIL_LINES),
    }
}

/// Creates the use stamp (`rig cache`) writable by everyone: the tree is
/// root's, but the runs that mark it used may not be.
fn open_used_stamp(root: &Path) -> Result<(), ChrootError> {
    let path = root.join(USED_FILE);
    run_privileged(privileged("install").args(["-m", "0666", "/dev/null"]).arg(&path), &path)?;
    mark_used(root);
    Ok(())
}

/// Removes the complete chroot `dir/name` (the caller holds its lock
/// exclusively): renamed away first, so a removal cut short never leaves a
/// stamped but incomplete tree, then removed like a failed creation.
pub fn remove_chroot(dir: &Path, name: &str) -> Result<(), ChrootError> {
    let target = dir.join(name);
    let old = dir.join(format!(".{name}.old"));
    remove_tree(&old)?;
    if fs::symlink_metadata(&target).is_ok() {
        rename(&target, &old)?;
    }
    remove_tree(&old)
}

/// Removes a leftover of a creation (`.<name>.tmp`, `.<name>.old`).
pub fn remove_leftover(path: &Path) -> Result<(), ChrootError> {
    remove_tree(path)
}

fn rename(from: &Path, to: &Path) -> Result<(), ChrootError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            run_privileged(privileged("mv").arg("-T").arg(from).arg(to), from)
        }
        Err(e) => Err(io_err("rename", from)(e).into()),
    }
}

pub(super) fn write_stamp(root: &Path, stamp: &ChrootStamp) -> Result<(), ChrootError> {
    let path = root.join(STAMP_FILE);
    let json = serde_json::to_string_pretty(stamp).map_err(|e| io_err("serialise", &path)(io::Error::other(e)))?;
    match fs::write(&path, json.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            // The tree is root's: write through `sudo tee`.
            let mut child = privileged("tee")
                .arg(&path)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .map_err(io_err("write", &path))?;
            if let Some(mut stdin) = child.stdin.take() {
                io::Write::write_all(&mut stdin, json.as_bytes()).map_err(io_err("write", &path))?;
            }
            let status = child.wait().map_err(io_err("write", &path))?;
            if status.success() {
                Ok(())
            } else {
                Err(io_err("write", &path)(io::Error::other(format!("sudo tee: {status}"))).into())
            }
        }
        Err(e) => Err(io_err("write", &path)(e).into()),
    }
}

fn run_privileged(cmd: &mut Command, path: &Path) -> Result<(), ChrootError> {
    debug!(command = ?cmd, "running");
    let out = cmd.stdin(Stdio::null()).output().map_err(io_err("run a command on", path))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        Err(io_err("change", path)(io::Error::other(msg)).into())
    }
}

/// Mount points at or below `path` (from /proc/self/mountinfo).
fn mounts_under(path: &Path) -> Vec<String> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return vec![];
    };
    mounts_under_in(&info, path)
}

fn mounts_under_in(mountinfo: &str, path: &Path) -> Vec<String> {
    let p = path.to_string_lossy();
    let prefix = format!("{}/", p.trim_end_matches('/'));
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        // Spaces in mount points are written as \040.
        .map(|m| m.replace("\\040", " "))
        .filter(|m| *m == p || m.starts_with(&prefix))
        .collect()
}

/// Removes a (possibly root-owned) tree without crossing filesystems; refuses
/// if anything is mounted below it.
fn remove_tree(path: &Path) -> Result<(), ChrootError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if let Some(mount) = mounts_under(path).into_iter().next() {
        return Err(ChrootError::Mounted { path: path.to_owned(), mount });
    }
    debug!(path = %path.display(), "removing");
    run_privileged(privileged("rm").args(["-rf", "--one-file-system", "--"]).arg(path), path)
}

/// Empties a directory, keeping it.
fn clear_dir(path: &Path) -> Result<(), ChrootError> {
    let Ok(entries) = fs::read_dir(path) else {
        return Ok(());
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let res = if is_dir { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        if let Err(err) = res {
            if err.kind() == io::ErrorKind::PermissionDenied {
                remove_tree(&p)?;
            } else {
                warn!(path = %p.display(), error = %err, "cannot remove");
            }
        }
    }
    Ok(())
}

/// Disk usage of a tree in bytes (allocated blocks, hard links once).
pub fn tree_bytes(root: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.filter_map(Result::ok) {
            let Ok(md) = e.path().symlink_metadata() else { continue };
            if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
                continue;
            }
            total += md.blocks() * 512;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChrootSpec {
        ChrootSpec::new("trixie", "amd64", 14, "http://mirror.example/debian/")
    }

    #[test]
    fn debootstrap_errors_say_what_to_do() {
        let s = spec();
        let e = debootstrap_error(
            &s.suite,
            &s.archive_uri,
            "exit status: 1",
            "I: x\nE: Couldn't find these debs: gcc-14\n",
            "/l".into(),
        );
        assert!(matches!(&e, ChrootError::PackageMissing { packages, .. } if packages == "gcc-14"), "{e}");
        let e = debootstrap_error(
            &s.suite,
            &s.archive_uri,
            "exit status: 1",
            "E: Failed getting release file http://x/Release\n",
            "/l".into(),
        );
        assert!(e.to_string().contains("--archive"), "{e}");
        let e = debootstrap_error(
            &s.suite,
            &s.archive_uri,
            "exit status: 1",
            "E: Release signed by unknown key (key id 123)\n",
            "/l".into(),
        );
        assert!(e.to_string().contains("debian-archive-keyring"), "{e}");
    }

    #[test]
    fn mountinfo_parsing() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:5 / /c/chroots/.sid-gcc-16.tmp/proc rw - proc proc rw
41 22 0:6 / /c/chroots/sid-gcc-16x rw - tmpfs t rw
42 22 0:7 / /c/my\\040dir/x rw - tmpfs t rw
";
        assert_eq!(mounts_under_in(info, Path::new("/c/chroots/.sid-gcc-16.tmp")), ["/c/chroots/.sid-gcc-16.tmp/proc"]);
        assert!(mounts_under_in(info, Path::new("/c/chroots/sid-gcc-16")).is_empty());
        assert_eq!(mounts_under_in(info, Path::new("/c/my dir")), ["/c/my dir/x"]);
    }

    #[test]
    fn tree_bytes_counts_files() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a"), vec![1u8; 10000]).unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        fs::write(tmp.path().join("d/b"), vec![1u8; 10000]).unwrap();
        fs::hard_link(tmp.path().join("a"), tmp.path().join("d/a2")).unwrap();
        let b = tree_bytes(tmp.path());
        assert!((20000..40000).contains(&b), "{b}");
    }
}
