//! The files of a live guest belong to the user alone: the private
//! directory and the run directory are 0700, the ivshmem backing file and
//! the logs 0600 whatever the umask, and another user (`nobody`, as root)
//! can read none of them while the guest runs. A boot that fails under
//! `rig shell` or `rig bench` keeps the run directory it names. A full
//! TMPDIR is a clear error naming TMPDIR, not SIGBUS. Needs the default
//! kernel (fetched once), QEMU, busybox-static and make; the `nobody` and
//! TMPDIR parts need root (setpriv, a tmpfs in a private mount namespace).
//! `RIG_TEST_BIN` runs them against another rig binary.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Boots are heavy on 2 cores: one at a time.
static ONE_GUEST: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The rig under test (`RIG_TEST_BIN` names another binary).
fn rig_bin() -> PathBuf {
    std::env::var_os("RIG_TEST_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rig")))
}

/// The rig with the usual umask (022), so modes come from the rig alone.
fn rig() -> Command {
    let mut c = Command::new(rig_bin());
    c.env("RIG_LOG", "warn");
    // SAFETY: umask(2) is async-signal-safe and cannot fail.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    c
}

fn text(out: &Output) -> String {
    format!("{}\n{}\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A config: the hello module, 4 MiB of ivshmem, and `steps` (TOML).
fn config(dir: &Path, steps: &str) -> PathBuf {
    let path = dir.join("rig.toml");
    let toml = format!(
        "kernels = [\"bookworm-6.1\"]\n\n[[module]]\npath = \"{}\"\n\n[guest.ivshmem]\nsize_mib = 4\n\n[[test]]\nname = \"private\"\n{steps}",
        repo().join("examples/hello").display()
    );
    std::fs::write(&path, toml).expect("config");
    path
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// What the steps check while the guest runs: the modes of the backing
/// file, its directory, the run directory and its logs; as root, that
/// `nobody` can read or list none of them.
const LIVE_STEPS: &str = r#"
  [[test.step]]
  name = "modes of the live guest's files"
  host.command = 'stat -c %a "$RIG_SHM" "$(dirname "$RIG_SHM")" "$RIG_RUN_DIR" "$RIG_RUN_DIR/console.log" "$RIG_RUN_DIR/shell.log" "$RIG_RUN_DIR/qemu.cmdline" "$RIG_RUN_DIR/qemu.stderr"'
  expect_regex = '\A600\n700\n700\n600\n600\n600\n600\z'
"#;

const NOBODY_STEP: &str = r#"
  [[test.step]]
  name = "nobody reads nothing of the live guest"
  host.command = 'as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@" >/dev/null 2>&1; }; for f in "$RIG_SHM" "$RIG_RUN_DIR/console.log" "$RIG_RUN_DIR/shell.log" "$RIG_RUN_DIR/qemu.cmdline"; do as_nobody cat "$f" && echo "nobody read $f"; done; for d in "$(dirname "$RIG_SHM")" "$RIG_RUN_DIR"; do as_nobody ls "$d" && echo "nobody listed $d"; done; echo checked'
  expect_regex = '\Achecked\z'
"#;

#[test]
fn a_live_guests_files_are_the_users_alone() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tempdir");
    let steps = if is_root() { format!("{LIVE_STEPS}{NOBODY_STEP}") } else { LIVE_STEPS.to_owned() };
    let out =
        rig().args(["run", "--keep", "--accel", "tcg", "-c"]).arg(config(tmp.path(), &steps)).output().expect("rig");
    assert!(out.status.success(), "{}", text(&out));
    if !is_root() {
        eprintln!("not root: checked the modes only, not what `nobody` can read");
    }
    // The kept run directory and what is written at the end.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir: PathBuf =
        stderr.lines().find_map(|l| l.strip_prefix("rig: run directory: ")).expect("run directory printed").into();
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for f in ["console.log", "shell.log", "kernel.log", "run.json", "qemu.cmdline", "qemu.stderr"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The run directory a failed boot names, from `rig: ... (run directory kept: DIR)`.
fn kept_dir(out: &Output) -> PathBuf {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("run directory kept: ")).unwrap_or_else(|| panic!("{}", text(out)));
    PathBuf::from(line.split("run directory kept: ").nth(1).expect("path").trim_end_matches(')'))
}

#[test]
fn a_failed_boot_under_shell_or_bench_keeps_the_run_directory_it_names() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let hello = repo().join("examples/hello/rig.toml");
    let tmp = tempfile::tempdir().expect("tempdir");
    // A one-second watchdog: no kernel boots that fast under TCG.
    let shell = rig()
        .args(["shell", "--accel", "tcg", "--boot-timeout", "1", "-c"])
        .arg(&hello)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("rig shell");
    let bench = rig()
        .args(["bench", "--accel", "tcg", "--boot-timeout", "1", "--boots", "1", "--steps", "1", "-c"])
        .arg(&hello)
        .arg("--out")
        .arg(tmp.path().join("bench.json"))
        .output()
        .expect("rig bench");
    for (what, out) in [("rig shell", shell), ("rig bench", bench)] {
        assert_eq!(out.status.code(), Some(3), "{what}: {}", text(&out));
        let dir = kept_dir(&out);
        assert!(dir.join("console.log").is_file(), "{what} named {} but removed it", dir.display());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_full_tmpdir_is_a_clear_error_not_sigbus() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tempdir");
    let steps = "\n  [[test.step]]\n  host.fill_pattern = { offset = 0, len = 0x400000, seed = 1 }\n";
    let cfg = config(tmp.path(), steps);
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).expect("mkdir");
    // 1 MiB of TMPDIR for a 4 MiB backing file, in a mount namespace of
    // the test's own (nothing stays mounted).
    let script = r#"mount -t tmpfs -o size=1m tmpfs "$1" && TMPDIR="$1" exec "$2" run --accel tcg -c "$3""#;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"])
        .arg(&small)
        .arg(rig_bin())
        .arg(&cfg)
        .env("RIG_LOG", "warn")
        .output()
        .expect("unshare");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no room") && stderr.contains("TMPDIR"), "{}", text(&out));
}
