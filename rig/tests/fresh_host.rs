//! `ci/setup-host.sh` on a fresh Debian 12: `ci/fresh-host.sh` debootstraps
//! a minbase bookworm (cached as a tarball in `<cache>/fresh-host/`, with
//! apt's downloads), points its apt at this machine's mirror, and runs the
//! script in a chroot twice: plain, and with qemu-utils 10.x from
//! bookworm-backports already installed. Each time QEMU must be 10.x, the
//! host tools there, and a second run must install nothing. Needs root
//! and debootstrap (skipped otherwise, with a note); `RIG_SKIP_FRESH_HOST=1`
//! skips it. Measured here: 242 s the first time, 118 s after.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[test]
fn setup_host_installs_qemu_10_and_the_tools_on_a_fresh_debian_12() {
    if std::env::var_os("RIG_SKIP_FRESH_HOST").is_some_and(|v| v == "1") {
        eprintln!("skipped: RIG_SKIP_FRESH_HOST=1");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: debootstrap, chroot and mounts need root (CI runs this as root)");
        return;
    }
    if !Path::new("/usr/sbin/debootstrap").exists() && rig::support::find_program("debootstrap").is_none() {
        eprintln!("skipped: debootstrap is not installed (`make setup` installs it)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/fresh-host.sh");
    let started = Instant::now();
    let out = Command::new("bash").arg(&script).output().expect("run ci/fresh-host.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}ci/fresh-host.sh took {:.0?}", started.elapsed());
    assert!(out.status.success(), "ci/fresh-host.sh failed ({})", out.status);
    for case in ["plain", "qemu-utils"] {
        assert!(stdout.contains(&format!("fresh-host[{case}]: PASS")), "no PASS for {case}:\n{stdout}");
    }
}
