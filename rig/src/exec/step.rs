//! Runs one step: a guest command over the console, or a host check on the
//! shared memory, the doorbell or a host command; turns it into a result.
//!
//! About 510 lines: one arm per step kind, each a few lines, over the
//! host's side of the run.

use super::setup::DeviceImage;
use crate::guest::console::{excerpts, titles, Console, ConsoleError, StepOutput};
use crate::guest::kernel_console::{report_time, Attributed};
use crate::host::command::shell_quote;
use crate::host::doorbell::Doorbell;
use crate::host::net::{read_pcap_file, FrameSource, Wire};
use crate::host::shm::SharedMemory;
use crate::plan::step::{Action, Check, Expect, Memory};
use crate::results::{CheckResult, Outcome};
use crate::verdict::Class;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// What host-side checks can reach.
pub struct HostSide<'a> {
    /// The ivshmem backing file, if the guest has one.
    pub shm: Option<&'a SharedMemory>,
    /// The devices' backing images (`host.* = { device = ... }`).
    pub images: &'a [DeviceImage],
    /// The run directory (for `{dir}`).
    pub run_dir: &'a std::path::Path,
    /// The host's doorbell peer, if the guest has ivshmem-doorbell.
    pub doorbell: Option<&'a mut dyn Doorbell>,
    /// Set by Ctrl-C or SIGTERM: host commands stop at once.
    pub interrupt: &'a AtomicBool,
    /// The far ends of the NICs' cables.
    pub wires: &'a [Wire],
    /// What the last guest step printed (`host.pcap`'s `same_count_as` reads it).
    pub last_output: String,
}

/// Why a run of checks stopped before the end.
#[derive(Debug)]
pub enum Abort {
    /// The guest crashed, closed the console or the user interrupted.
    Console(ConsoleError),
}

/// Kernel time within which an ongoing condition (a lockup, a stall, a
/// hung task) reporting again is the same condition.
const REPEAT_WINDOW_SECS: f64 = 30.0;

/// Conditions the kernel reports again and again while they last.
fn ongoing(c: Class) -> bool {
    matches!(c, Class::SoftLockup | Class::HardLockup | Class::RcuStall | Class::HungTask)
}

/// Kernel reports already charged to a check. Each report is charged once;
/// an ongoing condition's repeats are charged once too, so a guest that
/// recovers from a lockup is not failed again by its next report. A
/// WARNING or an oops that happens again is a new event and counts again.
#[derive(Debug, Default)]
pub struct Charged {
    /// (key, first line): the reports charged.
    ids: Vec<(String, usize)>,
    /// (key, kernel time) of charged ongoing conditions.
    ongoing: Vec<(String, Option<f64>)>,
}

impl Charged {
    /// The reports of `found` not charged yet (nor repeats of an ongoing
    /// condition charged within the window); they are charged now.
    pub fn fresh(&mut self, found: Vec<Attributed>) -> Vec<Attributed> {
        let mut out = vec![];
        for a in found {
            let id = (a.report.key.clone(), *a.report.lines.start());
            if self.ids.contains(&id) {
                continue;
            }
            self.ids.push(id);
            let t = report_time(&a.report);
            if ongoing(a.report.class) {
                let repeat = self.ongoing.iter().any(|(k, at)| {
                    *k == a.report.key
                        && match (t, at) {
                            (Some(t), Some(s)) => (t - s).abs() <= REPEAT_WINDOW_SECS,
                            _ => true,
                        }
                });
                self.ongoing.push((a.report.key.clone(), t));
                if repeat {
                    continue;
                }
            }
            out.push(a);
        }
        out
    }
}

/// The outcome of reports that happened during a check (`None`: none).
pub fn report_outcome(reports: &[Attributed]) -> Option<(Outcome, String)> {
    if reports.is_empty() {
        return None;
    }
    Some((Outcome::Fail(format!("the kernel reported {}", titles(reports))), excerpts(reports)))
}

fn guest_verdict(out: &StepOutput, status: i32, expect: &Option<Expect>) -> Outcome {
    if out.status != status {
        return Outcome::Fail(format!("exit status {} (expected {status})", out.status));
    }
    match expect.as_ref().map(|e| e.check(&out.output)) {
        Some(Err(why)) => Outcome::Fail(why),
        _ => Outcome::Pass,
    }
}

/// How a guest step's wait ended: what `rig parse` needs, besides the logs,
/// to give the step the verdict the run gave it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The end marker came: the command's status and output.
    Marker { status: i32, output: String },
    /// No end marker within the timeout; the console's tail then.
    Timeout { secs: f64, tail: String },
    /// The shell exited (a new one took over).
    ShellExited,
    /// The kernel crashed under the step.
    Crash { what: String },
    /// Something else ended the wait (QEMU gone, an interrupt).
    Other { message: String },
}

/// What the record of a run keeps of a guest step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GuestRecord {
    /// The shell's step number (its marks in the kernel log carry it).
    pub step: u64,
    pub ending: Ending,
    /// Expected `$?`.
    pub status: i32,
    /// Expected output: `contains:` or `matches:` and the text.
    pub expect: Option<String>,
    /// The class of kernel report the step expects (`expect_report`).
    #[serde(default)]
    pub report: Option<String>,
}

impl Ending {
    /// The ending of a live wait, the kernel reports made during it, and
    /// whether the run must stop or recover.
    pub fn of(waited: Result<StepOutput, ConsoleError>) -> (Ending, Vec<Attributed>, Option<ConsoleError>) {
        match waited {
            Ok(out) => (Ending::Marker { status: out.status, output: out.output }, out.reports, None),
            Err(ConsoleError::Timeout { waited, tail, reports, .. }) => (
                Ending::Timeout { secs: waited.as_secs_f64(), tail: crate::guest::console::clean(&tail) },
                reports,
                None,
            ),
            Err(ConsoleError::ShellExited { what, reports }) => {
                (Ending::ShellExited, reports.clone(), Some(ConsoleError::ShellExited { what, reports }))
            }
            Err(ConsoleError::Crash { what, reports }) => {
                (Ending::Crash { what: what.clone() }, reports.clone(), Some(ConsoleError::Crash { what, reports }))
            }
            Err(e) => (Ending::Other { message: e.to_string() }, vec![], Some(e)),
        }
    }
}

/// The verdict of a guest step from how its wait ended and the kernel
/// reports made during it: a report fails the step whatever the command
/// said. Pure: `rig parse` gives a saved run's steps their verdicts with it.
pub fn guest_outcome(
    ending: &Ending,
    reports: &[Attributed],
    status: i32,
    expect: &Option<Expect>,
    expected_report: Option<Class>,
    charged: &mut Charged,
) -> (Outcome, String) {
    // Reports of the class the step expects are its outcome, not a failure.
    let (wanted, fresh): (Vec<_>, Vec<_>) =
        charged.fresh(reports.to_vec()).into_iter().partition(|a| Some(a.report.class) == expected_report);
    let reported = report_outcome(&fresh);
    match ending {
        Ending::Marker { status: got, output } => match reported {
            Some((o, excerpt)) => (o, format!("{output}\n{excerpt}").trim().into()),
            None => {
                let out = StepOutput { status: *got, output: output.clone(), elapsed: Duration::ZERO, reports: vec![] };
                let o = missing_report(expected_report, &wanted).unwrap_or_else(|| guest_verdict(&out, status, expect));
                (o, format!("{output}\n{}", excerpts(&wanted)).trim().to_string())
            }
        },
        Ending::Timeout { secs, tail } => {
            let waited = Duration::from_secs_f64(*secs);
            match reported {
                Some((o, ex)) => {
                    let why = o.message().unwrap_or_default().to_owned();
                    (Outcome::Fail(format!("timed out after {waited:?}; {why}")), format!("{tail}\n{ex}"))
                }
                None => (Outcome::Fail(format!("timed out after {waited:?}")), tail.clone()),
            }
        }
        Ending::ShellExited => match reported {
            Some((o, ex)) => {
                let why = o.message().unwrap_or_default().to_owned();
                (Outcome::Fail(format!("the guest shell exited; {why}")), ex)
            }
            None => (Outcome::Fail("the guest shell exited (exit, exec or a killed shell)".into()), String::new()),
        },
        Ending::Crash { what } => reported.unwrap_or_else(|| {
            (Outcome::Fail(format!("the kernel crashed while waiting for {what}")), excerpts(reports))
        }),
        Ending::Other { message } => (Outcome::Fail(message.clone()), String::new()),
    }
}

/// A step that `expect_report`s a class must have caused one: `None` when
/// it did (or expects none), else its failure.
fn missing_report(expected: Option<Class>, seen: &[Attributed]) -> Option<Outcome> {
    let class = expected?;
    seen.is_empty().then(|| {
        Outcome::Fail(format!("expected the kernel to report {} during the step; it reported none", class.name()))
    })
}

/// Runs one check. A console failure that leaves the guest unusable comes
/// back as `Some(Abort)` so the caller reports the rest as not run; a guest
/// step comes back with its record (for the run directory's `run.json`).
pub fn run_check(
    check: &Check,
    console: &mut Console,
    side: &mut HostSide,
    charged: &mut Charged,
) -> (CheckResult, Option<Abort>, Option<GuestRecord>) {
    let (shm, images) = (side.shm, side.images);
    let start = Instant::now();
    let result = |outcome, output: String, host_side| CheckResult {
        name: check.name.clone(),
        outcome,
        output,
        elapsed: start.elapsed(),
        host_side,
        source: check.source.clone(),
    };
    let host = |memory: &Memory, f: &dyn Fn(&SharedMemory) -> Result<String, String>| {
        match memory {
            Memory::Shm => shm,
            Memory::Image(name) => images.iter().find(|i| i.name == *name).map(|i| &i.mem),
        }
        .map_or_else(
            || match memory {
                Memory::Shm => (Outcome::Fail("this guest has no ivshmem region".into()), String::new()),
                Memory::Image(name) => {
                    (Outcome::Fail(format!("this guest has no device {name} with an image")), String::new())
                }
            },
            |m| match f(m) {
                Ok(found) => (Outcome::Pass, found),
                Err(why) => (Outcome::Fail(why.clone()), why),
            },
        )
    };
    match &check.action {
        Action::Guest { command, status, expect, timeout, report } => {
            let waited = console.run(command, *timeout);
            let step = console.last_step();
            let (ending, reports, abort) = Ending::of(waited);
            // The kernel's timeline says which reports are this step's.
            let reports: Vec<Attributed> = reports.into_iter().filter(|a| a.step == Some(step)).collect();
            let (o, output) = guest_outcome(&ending, &reports, *status, expect, *report, charged);
            side.last_output = match &ending {
                Ending::Marker { output, .. } => output.clone(),
                Ending::Timeout { tail, .. } => tail.clone(),
                _ => String::new(),
            };
            let record = GuestRecord {
                step,
                ending,
                status: *status,
                expect: expect.as_ref().map(Expect::to_record),
                report: report.map(|c| c.name().to_owned()),
            };
            let r = result(o, output, false);
            (CheckResult { elapsed: start.elapsed(), ..r }, abort.map(Abort::Console), Some(record))
        }
        Action::HostHeader { state } => {
            let (o, out) = host(&Memory::Shm, &|m| {
                let h = m.header().map_err(|e| e.to_string())?;
                if h.magic != rig_abi::SHM_MAGIC {
                    return Err(format!(
                        "magic is {:#x}, expected {:#x}: the module never probed the device",
                        h.magic,
                        rig_abi::SHM_MAGIC
                    ));
                }
                if h.abi_version != rig_abi::ABI_VERSION {
                    return Err(format!("abi_version {} but the rig speaks {}", h.abi_version, rig_abi::ABI_VERSION));
                }
                if h.size != m.size() {
                    return Err(format!(
                        "guest saw a BAR2 of {:#x} bytes, the backing file has {:#x}",
                        h.size,
                        m.size()
                    ));
                }
                if h.state != *state {
                    return Err(format!("state is {}, expected {state}", h.state));
                }
                Ok(format!(
                    "magic ok, abi {}, size {:#x}, state {}, probes {}, bar {:#x}, kernel {}",
                    h.abi_version,
                    h.size,
                    h.state,
                    h.probe_count,
                    h.bar_phys,
                    h.release()
                ))
            });
            (result(o, out, true), None, None)
        }
        Action::HostFill { memory, offset, len, seed } => {
            let (o, out) = host(memory, &|m| {
                m.fill_pattern(*offset, *len, *seed).map_err(|e| e.to_string())?;
                Ok(format!("wrote {len:#x} bytes at {offset:#x} (seed {seed})"))
            });
            (result(o, out, true), None, None)
        }
        Action::HostVerify { memory, offset, len, seed } => {
            let (o, out) =
                host(memory, &|m| match m.verify_pattern(*offset, *len, *seed).map_err(|e| e.to_string())? {
                    None => Ok(format!("{len:#x} bytes at {offset:#x} match (seed {seed})")),
                    Some(why) => Err(why),
                });
            (result(o, out, true), None, None)
        }
        Action::HostBytes { memory, offset, bytes } => {
            let (o, out) = host(memory, &|m| {
                let found = m.read(*offset, bytes.len() as u64).map_err(|e| e.to_string())?;
                if found == *bytes {
                    Ok(format!("{} bytes at {offset:#x} as expected", bytes.len()))
                } else {
                    Err(format!("at {offset:#x}: expected {}, found {}", show_bytes(bytes), show_bytes(&found)))
                }
            });
            (result(o, out, true), None, None)
        }
        Action::HostWrite { memory, offset, bytes } => {
            let (o, out) = host(memory, &|m| {
                m.write(*offset, bytes).map_err(|e| e.to_string())?;
                // Later steps (a ring index, a doorbell) must not pass this write.
                std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                Ok(format!("wrote {} bytes at {offset:#x}", bytes.len()))
            });
            (result(o, out, true), None, None)
        }
        Action::HostProduce { count, len, seed } => {
            let (o, out) = host(&Memory::Shm, &|m| {
                let p = rig_abi::host::produce(m.memory(), rig_abi_host_peer(), *count, *len, *seed)
                    .map_err(|e| format!("{e:?}"))?;
                Ok(format!(
                    "published seq {}..={} (prod {}), for guest peer {}",
                    p.first_seq,
                    p.first_seq + u64::from(p.count) - 1,
                    p.prod,
                    p.guest_peer
                ))
            });
            (result(o, out, true), None, None)
        }
        Action::HostCommand { command, status, expect, timeout, cwd } => {
            let shm_path = shm.map(|m| m.path().display().to_string()).unwrap_or_default();
            let dir = side.run_dir.display().to_string();
            // Quoted: a path with a space or a quote stays one word.
            let line = command.replace("{shm}", &shell_quote(&shm_path)).replace("{dir}", &shell_quote(&dir));
            let env = [("RIG_SHM", shm_path), ("RIG_RUN_DIR", dir)];
            let (o, out) = match crate::host::command::run(&line, cwd, &env, *timeout, side.interrupt) {
                Ok(done) => {
                    let verdict = guest_verdict(
                        &StepOutput {
                            status: done.status,
                            output: done.output.clone(),
                            elapsed: Duration::ZERO,
                            reports: vec![],
                        },
                        *status,
                        expect,
                    );
                    (verdict, done.output)
                }
                Err(e) => (Outcome::Fail(e.to_string()), String::new()),
            };
            (result(o, out, true), None, None)
        }
        Action::HostRing { vector } => {
            let r = match side.doorbell.as_deref_mut() {
                None => Err("this guest has no ivshmem-doorbell (set [guest.ivshmem] doorbell = true)".to_string()),
                Some(d) => d.ring_guest(*vector),
            };
            let (o, out) = match r {
                Ok(()) => (Outcome::Pass, format!("rang vector {vector}")),
                Err(e) => (Outcome::Fail(e.clone()), e),
            };
            (result(o, out, true), None, None)
        }
        a @ Action::HostPcap { .. } => {
            let (o, out) = match pcap_check(side, a) {
                Ok(facts) => (Outcome::Pass, facts),
                Err(why) => (Outcome::Fail(why.clone()), why),
            };
            (result(o, out, true), None, None)
        }
        a @ Action::HostSend { .. } => {
            let (o, out) = match send_frames(side, a) {
                Ok(facts) => (Outcome::Pass, facts),
                Err(why) => (Outcome::Fail(why.clone()), why),
            };
            (result(o, out, true), None, None)
        }
        Action::HostFuzzRing { seed, writes, duration } => {
            let spec = crate::host::ring_fuzz::RingFuzz { seed: *seed, writes: *writes, duration: *duration };
            let (o, out) = match shm {
                None => (Outcome::Fail("this guest has no ivshmem region".into()), String::new()),
                Some(m) => match crate::host::ring_fuzz::run(m, side.doorbell.as_deref_mut(), spec, side.interrupt) {
                    Ok(rep) => (Outcome::Pass, format!("seed {seed}: {rep}")),
                    Err(e) => (Outcome::Fail(e.clone()), e),
                },
            };
            (result(o, out, true), None, None)
        }
        Action::HostWaitRing { vector, timeout } => {
            let r = match side.doorbell.as_deref_mut() {
                None => Err("this guest has no ivshmem-doorbell (set [guest.ivshmem] doorbell = true)".to_string()),
                Some(d) => d.wait_ring(*vector, *timeout),
            };
            let (o, out) = match r {
                Ok(()) => (Outcome::Pass, format!("the guest rang vector {vector}")),
                Err(e) => (Outcome::Fail(e.clone()), e),
            };
            (result(o, out, true), None, None)
        }
    }
}

/// `host.pcap`: what the NIC sent since the previous check against the
/// filter, the bounds and the guest's own count.
fn pcap_check(side: &HostSide, check: &Action) -> Result<String, String> {
    let Action::HostPcap { device, filter, min, max, same_as, slack } = check else {
        return Err("not a capture check".into());
    };
    let wire = side.wires.iter().find(|w| w.name == *device).ok_or_else(|| format!("no wire for {device}"))?;
    let scan = wire.check(filter)?;
    let rate = scan.rate().map_or(String::new(), |r| {
        format!(" over {:.1} s, {r:.0} frames/s", scan.last.unwrap_or(0.0) - scan.first.unwrap_or(0.0))
    });
    let others = if scan.others.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = scan.others.iter().map(|(l, n)| format!("{n} of {l} bytes")).collect();
        format!("; other frames: {}", list.join(", "))
    };
    let mut facts = format!("{device} sent {} frames, {} matching{rate}{others}", scan.frames, scan.matching);
    let n = scan.matching;
    if let Some(re) = same_as {
        let said = re
            .captures_iter(&side.last_output)
            .last()
            .and_then(|c| c.get(1))
            .and_then(|m| m.as_str().parse::<u64>().ok())
            .ok_or_else(|| format!("{facts}; the previous guest step's output has no number for /{re}/"))?;
        facts.push_str(&format!("; the guest counted {said}"));
        if n.abs_diff(said) > *slack {
            return Err(format!("{facts}: they differ by {}, more than {slack}", n.abs_diff(said)));
        }
    }
    if n < *min {
        return Err(format!("{facts}: fewer than {min}"));
    }
    if let Some(m) = max.filter(|m| n > *m) {
        return Err(format!("{facts}: more than {m}"));
    }
    Ok(facts)
}

/// `host.send`: frames to the guest through the NIC's cable.
fn send_frames(side: &HostSide, check: &Action) -> Result<String, String> {
    let Action::HostSend { device, frames, rate, timeout } = check else {
        return Err("not a send step".into());
    };
    let wire = side.wires.iter().find(|w| w.name == *device).ok_or_else(|| format!("no wire for {device}"))?;
    let sent = match frames {
        FrameSource::Burst(b) => wire.send(&mut (0..b.count).map(|i| b.frame(i)), *rate, *timeout, side.interrupt)?,
        FrameSource::Pcap(path) => {
            let list = read_pcap_file(path).map_err(|e| e.to_string())?;
            wire.send(&mut list.into_iter(), *rate, *timeout, side.interrupt)?
        }
    };
    let secs = sent.elapsed.as_secs_f64();
    let per_sec = if secs > 0.0 { format!(", {:.0} frames/s", sent.frames as f64 / secs) } else { String::new() };
    Ok(format!("sent {} frames ({} bytes) to {device} in {secs:.2} s{per_sec}", sent.frames, sent.bytes))
}

/// The host's doorbell peer ID as the ring protocol records it.
fn rig_abi_host_peer() -> u32 {
    crate::host::doorbell::HOST_PEER_ID as u32
}

fn show_bytes(b: &[u8]) -> String {
    let hex: Vec<String> = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
    let text: String =
        b.iter().take(32).map(|&c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '.' }).collect();
    format!("{} ({text:?}){}", hex.join(" "), if b.len() > 32 { " ..." } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn out(status: i32, output: &str) -> StepOutput {
        StepOutput { status, output: output.into(), elapsed: Duration::ZERO, reports: vec![] }
    }

    #[test]
    fn verdicts() {
        assert_eq!(guest_verdict(&out(0, "x"), 0, &None), Outcome::Pass);
        assert!(matches!(guest_verdict(&out(1, "x"), 0, &None), Outcome::Fail(_)));
        let want = Some(Expect::Contains("abc".into()));
        assert_eq!(guest_verdict(&out(0, "xxabcxx"), 0, &want), Outcome::Pass);
        assert!(matches!(guest_verdict(&out(0, "nope"), 0, &want), Outcome::Fail(_)));
        let re = Some(Expect::Matches(Regex::new(r"^\d+$").expect("re")));
        assert_eq!(guest_verdict(&out(0, "42"), 0, &re), Outcome::Pass);
    }

    fn report(title: &str, class: Class, first_line: usize, time: f64) -> Attributed {
        let report = crate::verdict::KernelReport {
            class,
            title: title.into(),
            key: format!("{}|{title}", class.name()),
            excerpt: format!("[{time:>12.6}] {title}"),
            lines: first_line..=first_line + 3,
            panicked: false,
            repeats: 1,
        };
        Attributed { report, step: Some(1) }
    }

    #[test]
    fn a_report_is_charged_once_and_a_lockup_with_its_repeats() {
        let mut c = Charged::default();
        let warn = report("WARNING in f", Class::Warning, 10, 5.0);
        let lock = report("soft lockup in g", Class::SoftLockup, 20, 6.0);
        assert_eq!(c.fresh(vec![warn.clone(), lock.clone()]).len(), 2);
        // The same reports again (the run's final sweep): nothing new.
        assert!(c.fresh(vec![warn.clone(), lock.clone()]).is_empty());
        // The lockup reporting again 4 s later is the same condition...
        assert!(c.fresh(vec![report("soft lockup in g", Class::SoftLockup, 40, 10.0)]).is_empty());
        // ...a minute later it is a new one; a WARNING again is a new event.
        assert_eq!(c.fresh(vec![report("soft lockup in g", Class::SoftLockup, 60, 70.0)]).len(), 1);
        assert_eq!(c.fresh(vec![report("WARNING in f", Class::Warning, 80, 7.0)]).len(), 1);
    }

    #[test]
    fn host_check_without_shm_fails_cleanly() {
        // The console is not touched by host checks; build one over a socketpair.
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (k, _kb) = std::os::unix::net::UnixStream::pair().expect("pair");
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = crate::guest::console::Ports {
            shell: a,
            shell_log: &dir.path().join("shell.log"),
            kernel: k,
            kernel_log: &dir.path().join("console.log"),
            resume: None,
        };
        let nonce = crate::guest::protocol::Nonce::fixed("0");
        let mut c = Console::attach(ports, nonce, Default::default()).expect("attach");
        let check = Check {
            name: "h".into(),
            action: Action::HostVerify { memory: Memory::Shm, offset: 0, len: 1, seed: 0 },
            source: None,
        };
        let flag = AtomicBool::new(false);
        let mut side = HostSide {
            shm: None,
            images: &[],
            run_dir: dir.path(),
            doorbell: None,
            interrupt: &flag,
            wires: &[],
            last_output: String::new(),
        };
        let (r, abort, _) = run_check(&check, &mut c, &mut side, &mut Charged::default());
        assert!(matches!(r.outcome, Outcome::Fail(_)));
        assert!(abort.is_none());
    }
}
