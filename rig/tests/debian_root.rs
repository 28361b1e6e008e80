//! A Debian root in the guest, through the `rig` binary: udrv/debian.toml
//! boots the default kernel into its own suite's root (built once into the
//! cache, then reused and verified), runs rig-udrv dynamically linked
//! against that root's glibc, and counts on the host the frames the
//! guest's NIC sent and received. One boot; the default kernel unless
//! `RIG_TEST_KERNELS=a,b` names others. Needs QEMU, squashfs-tools, root
//! or password-less sudo (debootstrap, the first time) and `make guest`
//! (target/release/rig-udrv).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The KTAP line of the result whose description contains `needle`.
fn result_line<'a>(ktap: &'a str, needle: &str) -> Option<&'a str> {
    ktap.lines().map(str::trim_start).find(|l| (l.starts_with("ok ") || l.starts_with("not ok ")) && l.contains(needle))
}

#[test]
fn a_dynamically_linked_driver_runs_and_the_host_counts_frames() {
    let dynamic = root().join("target/release/rig-udrv");
    assert!(dynamic.is_file(), "{} is missing: run `make guest` first", dynamic.display());
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("debian.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rig"));
    cmd.env("RIG_LOG", "warn").args(["run", "-c"]).arg(root().join("udrv/debian.toml")).arg("--json").arg(&json);
    match std::env::var("RIG_TEST_KERNELS").ok().filter(|k| !k.is_empty()) {
        Some(k) => cmd.args(["--kernel", &k]),
        None => cmd.args(["--kernel", "bookworm-6.1"]),
    };
    let out = cmd.output().expect("start rig");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "udrv/debian.toml failed:\n{stdout}\n{stderr}");
    for needle in [
        "Debian root mounted (squashfs under a tmpfs overlay), its shell answers",
        "device edu0 (edu) at 0000:00:04.0 bound to vfio-pci",
        "rig-udrv-dyn is dynamically linked against the root's glibc",
        "and DMA both ways through the IOMMU",
        "the host captured exactly those 20 frames [host]",
        "the kernel received all 1000 frames the host sent",
    ] {
        let line = result_line(&stdout, needle);
        assert!(line.is_some_and(|l| l.starts_with("ok ")), "{needle}: {line:?}\n{stdout}");
    }
    // The root is the kernel's suite's, and it says which packages it holds.
    assert!(stderr.contains("Debian root ") && stderr.contains("iproute2 "), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(v["passed"], true);
    let text = v.to_string();
    // What the host counted, as the check says it: 20 of 98 bytes matched.
    assert!(text.contains("20 matching"), "{text}");
    assert!(text.contains("sent 1000 frames (64000 bytes) to nic0"), "{text}");
}
