//! A DKMS source tree through the `rig` binary: dkms.conf's
//! BUILD_EXCLUSIVE_CONFIG stops a run on Debian's cloud kernel with the
//! option and the generic kernel named (before any build); its MAKE line's
//! variables build the module, which passes on `bookworm/amd64` (the name
//! shown as given); without dkms.conf, modpost's undefined symbols get the
//! same hint. Needs the default and the generic bookworm kernels (the
//! network once), QEMU and busybox-static.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One guest at a time.
static ONE: Mutex<()> = Mutex::new(());

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkms-v4l2")
}

fn rig(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rig"))
        .env("RIG_LOG", "warn")
        .args(["run", "--accel", "tcg", "-c"])
        .arg(config)
        .args(args)
        .output()
        .expect("start rig")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn the_cloud_kernel_is_refused_with_the_generic_one_named() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    // The fixture's own config: its in-tree videodev is what is missing first.
    let out = rig(&["--kernel", "bookworm-6.1"], &fixture().join("rig.toml"));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("in-tree module `videodev` is not in kernel 6.1.0-"), "{stderr}");
    assert!(stderr.contains("--kernel bookworm/amd64"), "{stderr}");
    // Without it, dkms.conf's BUILD_EXCLUSIVE_CONFIG speaks before any build.
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("rig.toml");
    let toml = format!(
        "[[module]]\npath = \"{}\"\n\n[guest.ivshmem]\nsize_mib = 0\n\n[[test]]\nname = \"t\"\n  [[test.step]]\n  run = \"true\"\n",
        fixture().display()
    );
    std::fs::write(&config, toml).expect("rig.toml");
    let out = rig(&["--kernel", "bookworm-6.1"], &config);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("needs CONFIG_VIDEO_DEV (BUILD_EXCLUSIVE_CONFIG)"), "{stderr}");
    assert!(stderr.contains("--kernel bookworm/amd64"), "{stderr}");
    assert!(!stderr.contains("modpost") && !stderr.contains("built "), "it built first:\n{stderr}");
}

#[test]
fn the_generic_kernel_builds_and_loads_it_under_the_name_given() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let out = rig(&[], &fixture().join("rig.toml"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l == "ok 1 bookworm/amd64"), "{stdout}");
    assert!(stdout.contains("ok 1 the module allocated a video device"), "{stdout}");
    assert!(stdout.contains("insmod rig_v4l2.ko"), "{stdout}");
    assert!(stderr.contains("kernel bookworm/amd64 (6.1."), "{stderr}");
    assert!(!stderr.contains("bookworm_amd64"), "the cache name leaked into the output:\n{stderr}");
}

#[test]
fn without_dkms_conf_modpost_undefined_symbols_get_the_hint() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tempdir");
    for f in ["Kbuild", "rig_v4l2.c"] {
        std::fs::copy(fixture().join(f), tmp.path().join(f)).expect("copy");
    }
    let config = tmp.path().join("rig.toml");
    let toml = "[[module]]\npath = \".\"\nmake = { CONFIG_RIG_V4L2 = \"m\" }\n\n[guest.ivshmem]\nsize_mib = 0\n\n[[test]]\nname = \"t\"\n  [[test.step]]\n  run = \"true\"\n";
    std::fs::write(&config, toml).expect("rig.toml");
    let out = rig(&["--kernel", "bookworm-6.1"], &config);
    let (stdout, stderr) = text(&out);
    // The user's module does not build: a failed test, exit 1.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("exports no video_device_alloc"), "{stderr}");
    assert!(stderr.contains("--kernel bookworm/amd64"), "{stderr}");
}
