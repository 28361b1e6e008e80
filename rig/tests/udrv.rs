//! Userspace drivers through VFIO, through the `rig` binary: the reference
//! suite (udrv/rig.toml) and the standalone example (examples/udrv-edu),
//! what the rig makes of an IOMMU fault, and the clear errors for bad
//! devices. One boot per kernel for the suite; the default kernel unless
//! `RIG_TEST_KERNELS=a,b` (or `all`) names others. Needs QEMU,
//! busybox-static, `make guest` (rig-udrv) and the network once (the
//! example's crates, the kernels).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Boots are heavy on a 2-core machine: one at a time.
static ONE_GUEST: Mutex<()> = Mutex::new(());

fn rig() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rig"));
    c.env("RIG_LOG", "warn");
    c
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The kernels to run the suite on: the default one unless asked.
fn kernels() -> Option<String> {
    std::env::var("RIG_TEST_KERNELS").ok().filter(|k| !k.is_empty())
}

fn need_udrv() {
    let bin = root().join("target/x86_64-unknown-linux-gnu/release/rig-udrv");
    assert!(bin.is_file(), "{} is missing: run `make guest` first", bin.display());
}

/// The line of a KTAP result whose description contains `needle`.
fn result_line<'a>(ktap: &'a str, needle: &str) -> Option<&'a str> {
    ktap.lines().map(str::trim_start).find(|l| (l.starts_with("ok ") || l.starts_with("not ok ")) && l.contains(needle))
}

#[test]
fn the_reference_suite_passes() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    need_udrv();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("udrv.json");
    let mut cmd = rig();
    cmd.args(["run", "-c"]).arg(root().join("udrv/rig.toml")).arg("--json").arg(&json);
    if let Some(k) = kernels() {
        cmd.args(["--kernel", &k]);
    }
    let out = cmd.output().expect("start rig");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "udrv suite failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("not ok"), "{stdout}");
    // Devices driven through VFIO are not saved and restored: one guest for
    // all groups, and a line says why.
    let why = stderr.lines().filter(|l| l.contains("isolation:")).collect::<Vec<_>>();
    assert!(
        why.len() == 1 && why[0].contains("share one guest") && why[0].contains("edu0 is bound to vfio-pci"),
        "{stderr}"
    );
    for needle in [
        "device edu0 (edu) at 0000:00:04.0 bound to vfio-pci",
        "device ivsh0 (ivshmem-doorbell) at 0000:00:05.0 bound to vfio-pci",
        "device nvme0 (nvme) at 0000:00:06.0 bound to vfio-pci",
        "insmod vfio_iommu_type1.ko",
        "DMA both ways through buffers mapped with VFIO_IOMMU_MAP_DMA",
        "the kernel logs a DMAR fault naming it",
        "the driver took all 24 buffers in order",
        "host finds the driver's 4 KiB (seed 0x5752) at 1 MiB in the image [host]",
        "no kernel report outside the steps",
    ] {
        let line = result_line(&stdout, needle);
        assert!(line.is_some_and(|l| l.starts_with("ok ")), "{needle}: {line:?}\n{stdout}");
    }
    // The expected IOMMU fault is in the step's output, as the kernel printed it.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(v["passed"], true);
    for k in v["kernels"].as_array().expect("kernels") {
        let group = k["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["name"] == "edu: a DMA to an unmapped IOVA is blocked by the IOMMU"))
            .unwrap_or_else(|| panic!("no negative group: {k}"));
        let output = group["steps"][0]["output"].as_str().unwrap_or_default();
        assert!(output.contains("DMAR: [DMA Write") && output.contains("PASS edu"), "{}: {output}", k["kernel"]);
    }
}

#[test]
fn the_standalone_example_passes() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    // Built the way its README says, into its own target directory.
    let example = root().join("examples/udrv-edu");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .current_dir(&example)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_TARGET_DIR")
        .args(["build", "--release", "--target", "x86_64-unknown-linux-gnu"])
        .output()
        .expect("start cargo");
    assert!(build.status.success(), "building examples/udrv-edu failed:\n{}", text(&build).1);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("example.json");
    let out =
        rig().args(["run", "-c"]).arg(example.join("rig.toml")).arg("--json").arg(&json).output().expect("start rig");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = result_line(&stdout, "udrv-edu --device $RIG_DEV_EDU0");
    assert!(line.is_some_and(|l| l.starts_with("ok ")), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let output = v["kernels"][0]["groups"][1]["steps"][0]["output"].as_str().unwrap_or_default();
    assert!(output.ends_with("udrv-edu: all checks passed"), "{output}");
}

/// A DMAR fault fails the step it happened in, with the kernel's lines; a
/// step that expects one and gets none fails; the guest goes on.
#[test]
fn an_iommu_fault_fails_its_step_unless_expected() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    need_udrv();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rig.toml");
    std::fs::write(
        &config,
        r#"[guest.ivshmem]
size_mib = 0
[[device]]
name = "edu0"
kind = "edu"
bind = "vfio-pci"
[[test]]
name = "faults"
  [[test.step]]
  name = "a blocked DMA, not expected"
  run = "rig-udrv edu --device $RIG_DEV_EDU0 --only unmapped"
  [[test.step]]
  name = "a fault expected, none comes"
  run = "rig-udrv edu --device $RIG_DEV_EDU0 --only ids"
  expect_report = "IOMMU fault"
  [[test.step]]
  name = "the guest goes on"
  run = "rig-udrv edu --device $RIG_DEV_EDU0 --only liveness"
"#,
    )
    .expect("config");
    let out = rig().args(["run", "-c"]).arg(&config).output().expect("start rig");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let fault = result_line(&stdout, "a blocked DMA, not expected").unwrap_or_default();
    assert!(fault.starts_with("not ok "), "{stdout}");
    let after: String =
        stdout.split("a blocked DMA, not expected").nth(1).unwrap_or_default().chars().take(4000).collect();
    assert!(after.contains("# the kernel reported IOMMU fault: DMA Write by"), "{after}");
    assert!(after.contains("DMAR: [DMA Write"), "{after}");
    let none = result_line(&stdout, "a fault expected, none comes").unwrap_or_default();
    assert!(none.starts_with("not ok "), "{stdout}");
    assert!(stdout.contains("expected the kernel to report iommu_fault during the step; it reported none"), "{stdout}");
    assert!(result_line(&stdout, "the guest goes on").is_some_and(|l| l.starts_with("ok ")), "{stdout}");
    assert!(result_line(&stdout, "no kernel report outside the steps").is_some_and(|l| l.starts_with("ok ")));
}

/// Bad devices: one clear line naming the problem and the fix, before
/// anything boots; exit 2.
#[test]
fn bad_devices_are_config_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dev =
        |name: &str, kind: &str, extra: &str| format!("[[device]]\nname = \"{name}\"\nkind = \"{kind}\"\n{extra}");
    for (config_text, needles) in [
        (dev("d0", "edu3", ""), vec!["device[0].kind", "unknown device kind `edu3`", "edu"]),
        (dev("d0", "edu", "") + &dev("d0", "nvme", ""), vec!["device[1].name", "two devices are called `d0`"]),
        (dev("my-dev", "edu", ""), vec!["device[0].name", "$RIG_DEV_MY-DEV", "lower-case letters"]),
        (
            "[guest]\niommu = \"none\"\n".to_string() + &dev("d0", "edu", "bind = \"vfio-pci\"\n"),
            vec!["device[0].bind", "needs an IOMMU", "VFIO_NOIOMMU"],
        ),
    ] {
        let config = dir.path().join("rig.toml");
        std::fs::write(&config, &config_text).expect("config");
        let start = std::time::Instant::now();
        let out = rig().args(["run", "-c"]).arg(&config).output().expect("start rig");
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{config_text}\n{stdout}\n{stderr}");
        let msg: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(msg.len(), 1, "one line:\n{stderr}");
        for n in needles {
            assert!(msg[0].contains(n), "{n} not in: {}", msg[0]);
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "nothing boots");
    }
}

/// A kernel without the driver a device asks for (Debian's cloud kernels
/// have no igb) is named with the device, before boot; exit 2.
#[test]
fn a_kernel_without_the_driver_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rig.toml");
    std::fs::write(&config, "[[device]]\nname = \"nic0\"\nkind = \"igb\"\n").expect("config");
    let out = rig().args(["run", "-c"]).arg(&config).output().expect("start rig");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("device `nic0` (igb) needs the in-tree module `igb`"), "{stderr}");
    assert!(stderr.contains("bind = \"vfio-pci\""), "{stderr}");
    assert!(!stderr.contains("booting"), "{stderr}");
}
