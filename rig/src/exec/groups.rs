//! The test groups of a run: one group's checks on a guest, bringing the
//! shell back after a report, and the guests the groups run on (one shared
//! guest, or one restored from the saved guest per group).

use super::record::{Fixed, How, RunRecord};
use super::run::Event;
use crate::exec::step::{self as checks, Charged, HostSide};
use crate::guest::console::{ConsoleError, Resume};
use crate::guest::kernel_console::Attributed;
use crate::guest::protocol::{self, Nonce};
use crate::plan::step::Check;
use crate::plan::{Bind, GuestPlan, Isolation};
use crate::results::{CheckResult, Outcome, TestResult};
use crate::vm::qemu::{QemuConfig, Version};
use crate::vm::snapshot;
use crate::vm::{Launch, Vm, VmError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Brings the shell back after a step the kernel or the shell's own exit
/// cut short: stops what runs, sets up a new shell if one took over, and
/// checks it answers. The error says, in a few words, what did not come.
/// Generous waits: they are only spent on a guest that is in trouble, and a
/// loaded runner can take seconds to start a shell after an oops.
fn recover(console: &mut crate::guest::console::Console, shell_exited: bool) -> Result<(), String> {
    let take_new = |console: &mut crate::guest::console::Console| {
        console.take_new_shell(RECOVER_WAIT).map_err(|e| {
            tracing::warn!("taking over the new guest shell: {e}");
            format!("no new shell answered within {}s", RECOVER_WAIT.as_secs())
        })
    };
    if shell_exited {
        take_new(console)?;
    } else {
        let _ = console.interrupt_step();
    }
    for _ in 0..2 {
        match console.run("true", RECOVER_WAIT) {
            Ok(_) => return Ok(()),
            Err(ConsoleError::ShellExited { .. }) => take_new(console)?,
            Err(e) => {
                tracing::warn!("the guest shell after a failed step: {e}");
                return Err(format!("the shell did not answer `true` within {}s", RECOVER_WAIT.as_secs()));
            }
        }
    }
    Err("each new shell exited at once".into())
}

/// How long recovery waits for each thing it needs from the guest.
const RECOVER_WAIT: Duration = Duration::from_secs(30);

/// Collects results by group, emits them, and keeps the run's record.
pub(super) struct Recorder<'a> {
    pub(super) tests: Vec<TestResult>,
    pub(super) record: RunRecord,
    pub(super) emit: &'a mut dyn FnMut(Event),
}

impl Recorder<'_> {
    pub(super) fn push(&mut self, group: usize, result: CheckResult, how: How) {
        (self.emit)(Event::Result { group, result: result.clone() });
        let name = self.tests[group].name.clone();
        self.record.push(group, &name, &result, how);
        self.tests[group].results.push(result);
    }

    /// A check whose verdict the logs cannot re-derive.
    pub(super) fn fixed(&mut self, group: usize, result: CheckResult) {
        let how = How::Fixed(Fixed::of(&result));
        self.push(group, result, how);
    }

    /// Every check of `checks` as not run, for `why`.
    pub(super) fn not_run(&mut self, group: usize, checks: &[Check], why: &str) {
        for check in checks {
            let not_run = CheckResult::verdict(&check.name, Outcome::NotRun(why.to_owned()));
            self.fixed(group, CheckResult { source: check.source.clone(), ..not_run });
        }
    }
}

pub(super) fn abort_reason(e: &ConsoleError) -> String {
    match e {
        ConsoleError::Crash { .. } => "the guest kernel crashed".into(),
        ConsoleError::ShellExited { .. } => "the guest shell could not be brought back".into(),
        ConsoleError::Eof { .. } => "QEMU exited".into(),
        ConsoleError::Interrupted => "interrupted".into(),
        other => other.to_string(),
    }
}

/// How the test groups of a run share guests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// The guest is saved after boot and setup, and each group after that
    /// runs on a guest restored from the save.
    Isolated,
    /// Every group on the one guest; `why`, when isolation was asked for
    /// and this guest cannot have it.
    Shared { why: Option<String> },
}

/// Whether the groups after setup (`groups` of them) get a guest each:
/// asked for, more than one group, no device driven from userspace, and a
/// QEMU and devices that can save and restore the guest (`argv`: the
/// guest's command line).
pub fn sharing(guest: &GuestPlan, groups: usize, qemu: Version, argv: &[String]) -> Sharing {
    if guest.isolation == Isolation::None || groups < 2 {
        return Sharing::Shared { why: None };
    }
    if let Some(d) = guest.devices.iter().find(|d| d.bind == Bind::VfioPci) {
        return Sharing::Shared {
            why: Some(format!(
                "[[device]] {} is bound to vfio-pci: a restored guest would not have its userspace driver's IOMMU mappings and interrupts as the device left them",
                d.name
            )),
        };
    }
    if let Some(nic) = super::setup::first_nic(guest) {
        return Sharing::Shared {
            why: Some(format!(
                "[[device]] {nic} is a NIC whose cable the rig holds: a restored QEMU opens a new netdev socket, so the capture and the frames in flight would not carry over"
            )),
        };
    }
    if !snapshot::qemu_supports(qemu) {
        let (a, b, c) = qemu;
        let (x, y, _) = snapshot::MIN_QEMU;
        return Sharing::Shared { why: Some(format!("QEMU {a}.{b}.{c} cannot save a guest to a file ({x}.{y} can)")) };
    }
    match snapshot::unmigratable(argv) {
        Some(why) => Sharing::Shared { why: Some(why) },
        None => Sharing::Isolated,
    }
}

/// How a group left its guest.
pub(super) enum After {
    /// It answers: the next group may run on it.
    Usable,
    /// It crashed or stopped answering (why); the rest of the group did not run.
    Lost(String),
}

/// Why a run stops in the middle of a group.
pub(super) enum Stop {
    Interrupted,
    /// QEMU went away with no kernel report: the rig's failure.
    QemuDied(String),
}

/// What running a group's checks needs besides the guest.
pub(super) struct GroupCtx<'a, 'b> {
    pub(super) side: HostSide<'b>,
    pub(super) charged: &'a mut Charged,
    pub(super) interrupt: &'a AtomicBool,
}

/// Runs the checks of group `gi` on `vm`. A kernel report or a dead shell
/// fails its step; when the guest does not survive it, the rest of the
/// group is not run. `stop_on_failure`: any failure ends the group (setup).
pub(super) fn run_group(
    rec: &mut Recorder,
    gi: usize,
    group: &[Check],
    vm: &mut Vm,
    cx: &mut GroupCtx,
    stop_on_failure: bool,
) -> Result<After, Stop> {
    for (ci, check) in group.iter().enumerate() {
        let (mut r, abort, guest) = checks::run_check(check, &mut vm.console, &mut cx.side, cx.charged);
        let how = match guest {
            Some(g) => How::Guest(g),
            None => How::Fixed(Fixed::of(&r)),
        };
        let timed_out = matches!(&r.outcome, Outcome::Fail(m) if m.starts_with("timed out"));
        let failed = !r.passed();
        let mut lost = None;
        if let Some(checks::Abort::Console(e)) = abort {
            if let ConsoleError::Eof { .. } = e {
                // QEMU went away without the kernel saying why: killed,
                // or QEMU itself failed. Not the test's verdict.
                if let Some(died) = vm.died_unexpectedly() {
                    return Err(Stop::QemuDied(died));
                }
            }
            // A report or a dead shell fails the step; the group goes on
            // only if the guest still answers (a panic or hang ends it).
            let panicked =
                matches!(&e, ConsoleError::Crash { reports, .. } if reports.iter().any(|a| a.report.panicked));
            let survivable = matches!(e, ConsoleError::Crash { .. } | ConsoleError::ShellExited { .. });
            let shell_exited = matches!(e, ConsoleError::ShellExited { .. });
            lost = if panicked || !survivable {
                Some(abort_reason(&e))
            } else {
                recover(&mut vm.console, shell_exited).err().map(|why| format!("{}: {why}", abort_reason(&e)))
            };
            if lost.is_some() && matches!(e, ConsoleError::Crash { .. }) {
                // The step did not fail: the kernel under it died.
                r.outcome = Outcome::Crash(r.outcome.message().unwrap_or("the guest kernel crashed").into());
            }
        } else if timed_out && vm.console.run("true", Duration::from_secs(5)).is_err() {
            // Ctrl-C did not bring the shell back: the guest is hung.
            lost = Some("the guest stopped answering after a step timed out".into());
        } else if failed && stop_on_failure {
            lost = Some("a setup step failed".into());
        }
        rec.push(gi, r, how);
        if cx.interrupt.load(Ordering::Relaxed) {
            return Err(Stop::Interrupted);
        }
        if let Some(why) = lost {
            rec.not_run(gi, &group[ci + 1..], &why);
            return Ok(After::Lost(why));
        }
    }
    Ok(After::Usable)
}

/// The guest the groups run on, and the saved one each isolated group
/// starts from.
pub(super) struct Guests<'a> {
    pub(super) vm: Vm,
    /// Where a restored guest runs and writes.
    pub(super) restored: &'a Restored<'a>,
    /// The saved guest, once there is one.
    pub(super) state: Option<PathBuf>,
    pub(super) restores: u64,
    /// Reports of the guests already thrown away.
    pub(super) gone: Vec<Attributed>,
}

impl Guests<'_> {
    /// Saves the guest into `state` and lets it go on (it runs the first
    /// group after the save: it is the saved guest).
    pub(super) fn save(&mut self, state: PathBuf) -> Result<Duration, String> {
        let socket = self.vm.qmp_socket().ok_or("the guest has no QMP socket")?.to_path_buf();
        let saved = snapshot::save(&socket, &state, Duration::from_secs(120));
        // Stopped for the save, failed or not: it goes on either way.
        let resumed = snapshot::go_on(&socket);
        let took = saved.map_err(|e| e.to_string())?;
        resumed.map_err(|e| e.to_string())?;
        self.state = Some(state);
        Ok(took)
    }

    /// Throws the guest away and restores a new one from the save; its
    /// console transcript goes on after a restore mark.
    pub(super) fn fresh(&mut self) -> Result<Duration, VmError> {
        let Some(state) = self.state.clone() else {
            return Err(VmError::Restore { detail: "no saved guest".into(), stderr: String::new() });
        };
        let start = Instant::now();
        self.vm.discard();
        tracing::debug!(took = ?start.elapsed(), "guest discarded");
        self.gone.extend(self.vm.console.kernel().reports());
        let resume = self.vm.console.resume_point();
        self.restores += 1;
        self.vm = self.restored.launch(&state, resume, self.restores)?;
        set_clock(&mut self.vm);
        tracing::debug!(pid = self.vm.pid(), took = ?start.elapsed(), "guest restored");
        Ok(start.elapsed())
    }

    /// Every report of every guest of the run.
    pub(super) fn reports(&self) -> Vec<Attributed> {
        let mut all = self.gone.clone();
        all.extend(self.vm.console.kernel().reports());
        all
    }
}

/// Where a restored guest runs and writes.
pub(super) struct Restored<'a> {
    pub(super) cfg: &'a QemuConfig,
    pub(super) run_dir: &'a std::path::Path,
    pub(super) nonce: &'a Nonce,
    pub(super) interrupt: &'a Arc<AtomicBool>,
}

impl Restored<'_> {
    /// A new QEMU loading `state`, its transcript going on from `resume`
    /// after restore mark `n`.
    pub(super) fn launch(&self, state: &std::path::Path, mut resume: Resume, n: u64) -> Result<Vm, VmError> {
        let mark = protocol::restore_mark(self.nonce, n);
        let log = self.run_dir.join("console.log");
        append_line(&log, &mark).map_err(|source| VmError::RunDir { path: log.clone(), source })?;
        resume.lines += 1;
        let how = Launch::Restore { state, resume };
        Vm::launch(self.cfg, self.run_dir, self.nonce.clone(), self.interrupt.clone(), how)
    }
}

/// Sets a restored guest's clock to the host's (a failure is only logged:
/// the next step finds out whether the guest answers).
pub(super) fn set_clock(vm: &mut Vm) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    if let Err(e) = vm.console.run(&protocol::set_clock_line(now.as_secs()), Duration::from_secs(10)) {
        tracing::warn!("setting the restored guest's clock: {e}");
    }
}

/// Whether group `gi` starts on a guest restored from the save: not the
/// first group after the save (it runs on the saved guest itself), every
/// other one under `group`, and under `on-failure` the one after a group
/// that failed (pure).
pub(super) fn starts_fresh(isolation: Isolation, gi: usize, first: usize, previous_failed: bool) -> bool {
    gi > first
        && match isolation {
            Isolation::Group => true,
            Isolation::OnFailure => previous_failed,
            Isolation::None => false,
        }
}

/// Appends `line` to `log` on a line of its own.
pub(super) fn append_line(log: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::File::options().read(true).append(true).create(true).open(log)?;
    let mut last = [0u8; 1];
    let ends_open = f.seek(SeekFrom::End(-1)).is_ok() && f.read(&mut last)? == 1 && last[0] != b'\n';
    let text = if ends_open { format!("\n{line}\n") } else { format!("{line}\n") };
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_get_a_guest_each_when_they_can() {
        let guest = |isolation, bind: Option<Bind>| GuestPlan {
            memory_mib: 256,
            cpus: 1,
            cmdline: vec![],
            files: vec![],
            shm: None,
            isolation,
            iommu: None,
            devices: bind
                .map(|bind| crate::plan::DevicePlan {
                    name: "edu0".into(),
                    kind: "edu".into(),
                    bind,
                    slot: crate::plan::FIRST_DEVICE_SLOT,
                    image_size: None,
                })
                .into_iter()
                .collect(),
            checks: vec![],
            strict_checks: false,
            captures: vec![],
            rootfs: None,
            hugepages: 0,
        };
        let g = guest(Isolation::Group, None);
        let argv: Vec<String> = ["-device", "ivshmem-plain,memdev=shm0,master=on"].map(String::from).to_vec();
        assert_eq!(sharing(&g, 3, (10, 0, 2), &argv), Sharing::Isolated);
        // Asked not to, or nothing to isolate: no note either.
        assert_eq!(sharing(&guest(Isolation::None, None), 3, (10, 0, 2), &argv), Sharing::Shared { why: None });
        assert_eq!(sharing(&g, 1, (10, 0, 2), &argv), Sharing::Shared { why: None });
        let old = sharing(&g, 3, (7, 2, 15), &argv);
        assert!(matches!(old, Sharing::Shared { why: Some(w) } if w.contains("7.2.15") && w.contains("8.2")));
        let vfio: Vec<String> = ["-device", "vfio-pci,host=01:00.0"].map(String::from).to_vec();
        assert!(matches!(sharing(&g, 3, (10, 0, 2), &vfio), Sharing::Shared { why: Some(w) } if w.contains("VFIO")));
        // A device the guest binds to vfio-pci: one guest, and the note names it.
        let udrv = sharing(&guest(Isolation::Group, Some(Bind::VfioPci)), 3, (10, 0, 2), &argv);
        assert!(matches!(udrv, Sharing::Shared { why: Some(w) } if w.contains("edu0") && w.contains("vfio-pci")));
        assert_eq!(sharing(&guest(Isolation::Group, Some(Bind::Kernel)), 3, (10, 0, 2), &argv), Sharing::Isolated);
        // A NIC: its cable's far end (and capture) would not survive a restore.
        let mut nic = guest(Isolation::Group, Some(Bind::Kernel));
        nic.devices[0].kind = "virtio-net".into();
        nic.devices[0].name = "nic0".into();
        let shared = sharing(&nic, 3, (10, 0, 2), &argv);
        assert!(matches!(shared, Sharing::Shared { why: Some(w) } if w.contains("nic0") && w.contains("NIC")));
    }

    #[test]
    fn on_failure_restores_only_after_a_failed_group() {
        // Group 2 is the first after the save: it runs on the saved guest.
        assert!(!starts_fresh(Isolation::Group, 2, 2, true));
        assert!(starts_fresh(Isolation::Group, 3, 2, false));
        assert!(!starts_fresh(Isolation::OnFailure, 3, 2, false));
        assert!(starts_fresh(Isolation::OnFailure, 3, 2, true));
        assert!(!starts_fresh(Isolation::None, 3, 2, true));
    }

    #[test]
    fn restore_marks_go_on_a_line_of_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("console.log");
        append_line(&log, "first").expect("append");
        std::fs::write(&log, "a\nunfinished").expect("write");
        append_line(&log, "mark").expect("append");
        append_line(&log, "mark2").expect("append");
        assert_eq!(std::fs::read_to_string(&log).expect("read"), "a\nunfinished\nmark\nmark2\n");
    }
}
