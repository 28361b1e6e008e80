//! Entering a chroot: `unshare --mount --pid --fork` as root (through
//! `sudo -n` when needed), bind mounts at the same paths, /proc, then
//! `chroot --userspec` back to the calling user. Nothing is mounted on
//! the host.

use std::path::Path;
use std::process::Command;

use super::{ids, Bind, Chroot, CHROOT_PATH};

/// the namespace.
const ENTER_SCRIPT: &str = r#"set -eu
root=$1 userspec=$2
shift 2
while [ "$1" != -- ]; do
    mode=$1 dir=$2
    shift 2
    mkdir -p "$root$dir"
    mount --bind "$dir" "$root$dir"
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$root$dir"; fi
done
shift
mount -t proc proc "$root/proc"
exec chroot ${userspec:+--userspec="$userspec"} "$root" "$@"
"#;

impl Chroot {
    /// A command running `program args` inside the chroot with `binds`
    /// mounted, as the calling user, with a clean environment
    /// (`PATH`, `HOME=/tmp`, `LC_ALL=C`).
    pub fn command(&self, binds: &[Bind], program: &str, args: &[String]) -> Command {
        let (mut cmd, userspec) = enter_command();
        cmd.args(["--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(ENTER_SCRIPT)
            .arg("sh")
            .arg(&self.root)
            .arg(userspec);
        for b in binds {
            cmd.arg(if b.writable { "rw" } else { "ro" }).arg(&b.path);
        }
        cmd.arg("--")
            .args(["/usr/bin/env", "-i", &format!("PATH={CHROOT_PATH}"), "HOME=/tmp", "LC_ALL=C"])
            .arg(program)
            .args(args);
        cmd
    }

    /// True if `/usr/bin/<program>` (or `/bin`, `/usr/sbin`) exists in the chroot.
    pub fn has_program(&self, program: &str) -> bool {
        has_program(&self.root, program)
    }
}

/// A command running `program args` as root inside the tree at `root` (one
/// being made: a guest's Debian root, before apt and depmod), in private
/// mount and pid namespaces with /proc mounted and a clean environment.
pub fn command_as_root(root: &Path, program: &str, args: &[&str]) -> Command {
    let mut cmd = super::privileged("unshare");
    cmd.args(["--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(ENTER_SCRIPT)
        .arg("sh")
        .arg(root)
        .arg("")
        .arg("--")
        .args(["/usr/bin/env", "-i", &format!("PATH={CHROOT_PATH}"), "HOME=/root", "LC_ALL=C"])
        .arg(program)
        .args(args);
    cmd
}

pub(super) fn has_program(root: &Path, program: &str) -> bool {
    !program.contains('/') && ["usr/bin", "bin", "usr/sbin"].iter().any(|d| root.join(d).join(program).is_file())
}

/// `unshare` (through `sudo -n` when not root) and the `--userspec` that
/// gives the calling user back inside (empty when root).
pub(super) fn enter_command() -> (Command, String) {
    let (uid, gid) = ids();
    if uid == 0 {
        (Command::new("unshare"), String::new())
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "--", "unshare"]);
        (c, format!("{uid}:{gid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::chroot::create::placeholder_stamp;
    use crate::build::chroot::tests::spec;

    #[test]
    fn enter_command_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Chroot {
            root: "/c/chroots/trixie-gcc-14".into(),
            stamp: placeholder_stamp(&spec()),
            created: false,
            _lock: crate::support::lock_file(
                &tmp.path().join("l"),
                crate::support::LockMode::Shared,
                "",
                &Default::default(),
            )
            .unwrap(),
        };
        let cmd = c.command(
            &[Bind::rw(Path::new("/b/out")), Bind::ro(Path::new("/k/root"))],
            "make",
            &["-C".into(), "/k/root/usr/src/x".into()],
        );
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        assert!(joined.contains("--mount --pid --fork --kill-child --propagation private -- /bin/sh -c"), "{joined}");
        let script_at = args.iter().position(|a| a == ENTER_SCRIPT).unwrap();
        assert_eq!(args[script_at + 1], "sh");
        assert_eq!(args[script_at + 2], "/c/chroots/trixie-gcc-14");
        let rest = &args[script_at + 4..];
        assert_eq!(
            rest,
            [
                "rw",
                "/b/out",
                "ro",
                "/k/root",
                "--",
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/tmp",
                "LC_ALL=C",
                "make",
                "-C",
                "/k/root/usr/src/x"
            ]
        );
    }

    #[test]
    fn root_commands_keep_root() {
        let c = command_as_root(Path::new("/c/rootfs/.t.tmp/tree"), "apt-get", &["update"]);
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let script_at = args.iter().position(|a| a == ENTER_SCRIPT).unwrap();
        // An empty userspec: chroot stays root.
        assert_eq!(&args[script_at + 1..script_at + 5], ["sh", "/c/rootfs/.t.tmp/tree", "", "--"]);
        assert_eq!(args.last().map(String::as_str), Some("update"));
    }

    #[test]
    fn enter_script_is_valid_sh() {
        let status = Command::new("sh").arg("-n").arg("-c").arg(ENTER_SCRIPT).status().unwrap();
        assert!(status.success());
    }
}
