//! A run's Debian root (`rootfs = "debian"`): the image of the kernel's
//! suite with the config's packages (built once, then cached), the modules
//! `/init` needs to mount it, the CPU model its packages need, its boot
//! checks (and the hugepages'), and the report of a kernel skipped because
//! its suite cannot have the packages.

use super::prepare::Prepared;
use super::run::{Event, RunError, RunOptions};
use crate::guest::protocol;
use crate::image::rootfs::{self, Rootfs, RootfsSpec, RootfsStamp};
use crate::kernel::fetch::KernelTree;
use crate::plan::step::Check;
use crate::plan::GuestPlan;
use crate::results::{CheckResult, Outcome, RunReport, TestResult, Timings};
use crate::vm::machine::{Machine, MachineError, RootDisk};
use crate::vm::qemu::{Accel, QemuError};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// The root a guest boots into.
#[derive(Clone, Debug)]
pub struct PreparedRoot {
    /// The squashfs image.
    pub image: PathBuf,
    /// What it holds.
    pub stamp: RootfsStamp,
    /// Its lock, held while the guest may use it.
    _held: Arc<Rootfs>,
}

/// The boot check of the root.
pub const ROOT_CHECK: &str = "Debian root mounted (squashfs under a tmpfs overlay), its shell answers";

/// The machine profile's root disk.
pub fn root_disk() -> Result<RootDisk, RunError> {
    let m = Machine::builtin().map_err(QemuError::from)?;
    m.rootfs.ok_or_else(|| RunError::Qemu(QemuError::Machine(MachineError::missing("rootfs"))))
}

/// The Debian root of `opts`'s plan for the fetched kernel `tree`: `None`
/// for the busybox initramfs, [`RunError::Skipped`] when the suite cannot
/// have the packages.
pub fn prepare_root(
    opts: &RunOptions,
    tree: &KernelTree,
    interrupt: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<Option<PreparedRoot>, RunError> {
    let Some(plan) = &opts.plan.guest.rootfs else { return Ok(None) };
    let spec = RootfsSpec {
        suite: tree.suite.clone(),
        arch: tree.arch.clone(),
        archive_uri: tree.archive_uri.clone(),
        packages: plan.packages.clone(),
        release: tree.release.clone(),
        kernel_version: tree.package_version.clone(),
        modules_dir: tree.modules_dir.clone(),
    };
    let start = Instant::now();
    let mut log = |step: &str| emit(Event::Progress(step.to_string()));
    let got = rootfs::ensure(&spec, &opts.cache_dir, opts.offline, &mut log, interrupt)?;
    match got {
        Rootfs::Skip { reason } => {
            Err(RunError::Skipped { kernel: tree.name.clone(), release: tree.release.clone(), reason })
        }
        Rootfs::Image { ref path, ref stamp, built, .. } => {
            let what = if stamp.installed.is_empty() { "minbase".to_string() } else { stamp.installed.join(", ") };
            let how = if built { format!("built in {:.0?}", start.elapsed()) } else { "cached".to_string() };
            emit(Event::Note(format!(
                "Debian root {} ({how}, {} MiB): {what}",
                path.display(),
                stamp.image_bytes >> 20
            )));
            let (image, stamp) = (path.clone(), (**stamp).clone());
            Ok(Some(PreparedRoot { image, stamp, _held: Arc::new(got) }))
        }
    }
}

/// The CPU model: the user's, else the host's under KVM, else the root
/// disk's (`max`) when the guest has a Debian root, else QEMU's default.
pub fn cpu_model(given: Option<String>, accel: Accel, debian: bool, disk: Option<&RootDisk>) -> Option<String> {
    match (given, accel, debian, disk) {
        (Some(m), _, _, _) => Some(m),
        (None, Accel::Tcg, true, Some(d)) => Some(d.tcg_cpu.clone()),
        _ => None,
    }
}

fn boot_check(name: &str) -> Check {
    Check::rig(name)
}

/// The hugepages' boot check.
pub fn hugepages_check(n: u32) -> String {
    format!("{n} hugepages of 2 MiB reserved, hugetlbfs at /dev/hugepages")
}

/// The boot checks of the guest's userspace: the root, the hugepages.
pub fn boot_checks(guest: &GuestPlan) -> Vec<Check> {
    let mut out = vec![];
    if guest.hugepages > 0 {
        out.push(boot_check(&hugepages_check(guest.hugepages)));
    }
    if guest.rootfs.is_some() {
        out.push(boot_check(ROOT_CHECK));
    }
    out
}

/// Their results, from what `/init` and the root's init printed.
pub fn boot_results(boot_log: &str, guest: &GuestPlan, p: &Prepared) -> Vec<CheckResult> {
    let mut out = vec![];
    if guest.hugepages > 0 {
        let want = guest.hugepages;
        let outcome = match protocol::hugepages_report(boot_log) {
            Some(n) if n == want => Outcome::Pass,
            Some(n) => Outcome::Fail(format!(
                "the kernel reserved {n} of {want} hugepages: the guest's memory is too fragmented or too small (memory_mib)"
            )),
            None => Outcome::Fail("/init never reported the hugepages".into()),
        };
        out.push(CheckResult::verdict(&hugepages_check(want), outcome));
    }
    if guest.rootfs.is_some() {
        let (outcome, output) = match protocol::root_report(boot_log) {
            Some(Ok(name)) => {
                let installed = p.root.as_ref().map(|r| r.stamp.installed.join(", ")).unwrap_or_default();
                (Outcome::Pass, format!("{name}; {installed}").trim_end_matches("; ").to_string())
            }
            Some(Err(why)) => {
                (Outcome::Fail(format!("/init could not switch to the Debian root: {why}")), String::new())
            }
            None => (Outcome::Fail("the Debian root's init never said it runs".into()), String::new()),
        };
        out.push(CheckResult { output, ..CheckResult::verdict(ROOT_CHECK, outcome) });
    }
    out
}

/// The group of a kernel skipped because its suite cannot have the packages.
pub const SKIP_GROUP: &str = "Debian root";
/// Its one check.
pub const SKIP_CHECK: &str = "the kernel's suite has the packages";

/// The report of a skipped kernel: one skipped check, with why, announced
/// as any run's are; the run directory holds `skipped.txt`.
pub fn skipped(
    opts: &RunOptions,
    kernel: &str,
    release: &str,
    reason: &str,
    mut t: Timings,
    total: Instant,
    emit: &mut dyn FnMut(Event),
) -> Result<RunReport, RunError> {
    let run_dir = super::setup::private_dir("rig-run-")?;
    let _ =
        crate::support::write_private(&run_dir.path().join("skipped.txt"), format!("{kernel} ({release}): {reason}\n"));
    emit(Event::Note(format!("{kernel}: skipped: {reason}")));
    emit(Event::Plan(vec![(SKIP_GROUP.to_string(), 1)]));
    let result = CheckResult::verdict(SKIP_CHECK, Outcome::Skip(reason.to_string()));
    emit(Event::Result { group: 0, result: result.clone() });
    t.total = total.elapsed();
    let run_dir = if opts.keep { run_dir.keep() } else { run_dir.path().to_path_buf() };
    Ok(RunReport {
        kernel: kernel.to_string(),
        release: release.to_string(),
        tests: vec![TestResult { name: SKIP_GROUP.into(), results: vec![result.clone()] }],
        results: vec![result],
        run_dir,
        kept: opts.keep,
        timings: t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_fits_the_root() {
        let disk = root_disk().expect("disk");
        assert_eq!(cpu_model(None, Accel::Tcg, true, Some(&disk)).as_deref(), Some("max"));
        assert_eq!(cpu_model(None, Accel::Kvm, true, Some(&disk)), None, "KVM: the host's CPU");
        assert_eq!(cpu_model(None, Accel::Tcg, false, Some(&disk)), None);
        assert_eq!(cpu_model(Some("qemu64".into()), Accel::Tcg, true, Some(&disk)).as_deref(), Some("qemu64"));
    }

    fn guest(rootfs: bool, hugepages: u32) -> GuestPlan {
        let plan = crate::plan::parse(
            std::path::Path::new("/nonexistent/rig.toml"),
            &format!(
                "[guest]\nrootfs = \"{}\"\n{}",
                if rootfs { "debian" } else { "busybox" },
                if hugepages > 0 { format!("hugepages_mib = {}\n", hugepages * 2) } else { String::new() }
            ),
            &crate::kernel::catalog::Catalog::builtin().expect("catalog"),
        )
        .expect("plan");
        plan.guest
    }

    fn prepared() -> Prepared {
        Prepared {
            entry: crate::kernel::catalog::Catalog::builtin().expect("catalog").entry_or_default(None).expect("default").into_owned(),
            tree: serde_json::from_str(
                r#"{"name":"k","release":"r","package_version":"v","root":"/k","vmlinuz":"/k/v","headers_common":"/k/c","headers_flavour":"/k/f","modules_dir":null,"config":"/k/config","suite":"trixie","arch":"amd64","archive_uri":"http://x","cache_dir":"/c"}"#,
            )
            .expect("tree"),
            modules: vec![],
            devices: vec![],
            kernel: crate::kernel::vmlinux::BootImage::Pvh("/k/vmlinux".into()),
            initrd: "/c/i.cpio".into(),
            root: None,
            check_args: vec![],
        }
    }

    #[test]
    fn boot_checks_follow_what_init_said() {
        let g = guest(true, 128);
        let names: Vec<String> = boot_checks(&g).into_iter().map(|c| c.name).collect();
        assert_eq!(names, [hugepages_check(128), ROOT_CHECK.to_string()]);
        let p = prepared();
        let ok = boot_results("RIG-HUGEPAGES 128\r\nRIG-ROOT ok Debian GNU/Linux 13 (trixie)\r\n", &g, &p);
        assert!(ok.iter().all(CheckResult::passed), "{ok:?}");
        assert_eq!(ok[1].output, "Debian GNU/Linux 13 (trixie)");
        let bad = boot_results("RIG-HUGEPAGES 60\r\nRIG-ROOT failed cannot mount /dev/vda (squashfs)\r\n", &g, &p);
        assert!(matches!(&bad[0].outcome, Outcome::Fail(m) if m.contains("60 of 128")), "{bad:?}");
        assert!(matches!(&bad[1].outcome, Outcome::Fail(m) if m.contains("cannot mount /dev/vda")), "{bad:?}");
        let none = boot_results("", &g, &p);
        assert!(none.iter().all(|r| !r.passed()));
        assert!(boot_checks(&guest(false, 0)).is_empty());
    }
}
