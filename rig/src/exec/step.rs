//! Runs one step: a guest command over the console, or a host check on the
//! shared memory, the doorbell or a host command; turns it into a result.

use crate::guest::console::{excerpts, titles, Console, ConsoleError, StepOutput};
use crate::guest::kernel_console::{report_time, Attributed};
use crate::host::doorbell::Doorbell;
use crate::host::shm::SharedMemory;
use crate::plan::step::{Action, Check, Expect};
use crate::results::{CheckResult, Outcome};
use std::time::{Duration, Instant};

/// What host-side checks can reach.
pub struct HostSide<'a> {
    /// The ivshmem backing file, if the guest has one.
    pub shm: Option<&'a SharedMemory>,
    /// The run directory (for `{dir}`).
    pub run_dir: &'a std::path::Path,
    /// The host's doorbell peer, if the guest has ivshmem-doorbell.
    pub doorbell: Option<&'a mut dyn Doorbell>,
}

/// Why a run of checks stopped before the end.
#[derive(Debug)]
pub enum Abort {
    /// The guest crashed, closed the console or the user interrupted.
    Console(ConsoleError),
}

/// Kernel time within which a report with the key of one already charged
/// is its repeat (a soft lockup or hung task reports every few seconds).
const REPEAT_WINDOW_SECS: f64 = 30.0;

/// Kernel reports already charged to a check: a report and its repeats
/// count once, so a guest that recovers is not failed again and again.
#[derive(Debug, Default)]
pub struct Charged {
    seen: Vec<(String, Option<f64>)>,
}

impl Charged {
    /// The reports of `found` that are not repeats of charged ones; they
    /// are charged now.
    pub fn fresh(&mut self, found: Vec<Attributed>) -> Vec<Attributed> {
        let mut out = vec![];
        for a in found {
            let t = report_time(&a.report);
            let repeat = self.seen.iter().any(|(k, seen_at)| {
                *k == a.report.key
                    && match (t, seen_at) {
                        (Some(t), Some(s)) => (t - s).abs() <= REPEAT_WINDOW_SECS,
                        _ => true,
                    }
            });
            self.seen.push((a.report.key.clone(), t));
            if !repeat {
                out.push(a);
            }
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

/// Runs one check. A console failure that leaves the guest unusable comes
/// back as `Some(Abort)` so the caller reports the rest as not run.
pub fn run_check(
    check: &Check,
    console: &mut Console,
    side: &mut HostSide,
    charged: &mut Charged,
) -> (CheckResult, Option<Abort>) {
    let shm = side.shm;
    let start = Instant::now();
    let result = |outcome, output: String, host_side| CheckResult {
        name: check.name.clone(),
        outcome,
        output,
        elapsed: start.elapsed(),
        host_side,
    };
    let host = |f: &dyn Fn(&SharedMemory) -> Result<String, String>| match shm {
        None => (Outcome::Fail("this guest has no ivshmem region".into()), String::new()),
        Some(m) => match f(m) {
            Ok(found) => (Outcome::Pass, found),
            Err(why) => (Outcome::Fail(why.clone()), why),
        },
    };
    match &check.action {
        Action::Guest { command, status, expect, timeout } => match console.run(command, *timeout) {
            Ok(out) => {
                let reports = charged.fresh(out.reports.clone());
                match report_outcome(&reports) {
                    // A report fails the step whatever the command said.
                    Some((o, excerpt)) => (result(o, format!("{}\n{excerpt}", out.output).trim().into(), false), None),
                    None => (result(guest_verdict(&out, *status, expect), out.output, false), None),
                }
            }
            Err(ConsoleError::Crash { what, reports }) => {
                let fresh = charged.fresh(reports.clone());
                let (o, excerpt) = report_outcome(&fresh).unwrap_or((
                    Outcome::Fail(format!("the kernel crashed while waiting for {what}")),
                    excerpts(&reports),
                ));
                (result(o, excerpt, false), Some(Abort::Console(ConsoleError::Crash { what, reports })))
            }
            Err(ConsoleError::ShellExited { what, reports }) => {
                let fresh = charged.fresh(reports.clone());
                let (o, excerpt) = match report_outcome(&fresh) {
                    Some((Outcome::Fail(why), ex)) => (Outcome::Fail(format!("the guest shell exited; {why}")), ex),
                    _ => (Outcome::Fail("the guest shell exited (exit, exec or a killed shell)".into()), String::new()),
                };
                (result(o, excerpt, false), Some(Abort::Console(ConsoleError::ShellExited { what, reports })))
            }
            Err(ConsoleError::Timeout { waited, tail, .. }) => (
                result(
                    Outcome::Fail(format!("timed out after {waited:?}")),
                    crate::guest::console::clean(&tail),
                    false,
                ),
                None,
            ),
            Err(e) => (result(Outcome::Fail(e.to_string()), String::new(), false), Some(Abort::Console(e))),
        },
        Action::HostHeader { state } => {
            let (o, out) = host(&|m| {
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
            (result(o, out, true), None)
        }
        Action::HostFill { offset, len, seed } => {
            let (o, out) = host(&|m| {
                m.fill_pattern(*offset, *len, *seed).map_err(|e| e.to_string())?;
                Ok(format!("wrote {len:#x} bytes at {offset:#x} (seed {seed})"))
            });
            (result(o, out, true), None)
        }
        Action::HostVerify { offset, len, seed } => {
            let (o, out) = host(&|m| match m.verify_pattern(*offset, *len, *seed).map_err(|e| e.to_string())? {
                None => Ok(format!("{len:#x} bytes at {offset:#x} match (seed {seed})")),
                Some(why) => Err(why),
            });
            (result(o, out, true), None)
        }
        Action::HostBytes { offset, bytes } => {
            let (o, out) = host(&|m| {
                let found = m.read(*offset, bytes.len() as u64).map_err(|e| e.to_string())?;
                if found == *bytes {
                    Ok(format!("{} bytes at {offset:#x} as expected", bytes.len()))
                } else {
                    Err(format!("at {offset:#x}: expected {}, found {}", show_bytes(bytes), show_bytes(&found)))
                }
            });
            (result(o, out, true), None)
        }
        Action::HostWrite { offset, bytes } => {
            let (o, out) = host(&|m| {
                m.write(*offset, bytes).map_err(|e| e.to_string())?;
                // Later steps (a ring index, a doorbell) must not pass this write.
                std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                Ok(format!("wrote {} bytes at {offset:#x}", bytes.len()))
            });
            (result(o, out, true), None)
        }
        Action::HostProduce { count, len, seed } => {
            let (o, out) = host(&|m| {
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
            (result(o, out, true), None)
        }
        Action::HostCommand { command, status, expect, timeout, cwd } => {
            let line = command
                .replace("{shm}", &shm.map(|m| m.path().display().to_string()).unwrap_or_default())
                .replace("{dir}", &side.run_dir.display().to_string());
            let (o, out) = match crate::host::command::run(&line, cwd, *timeout) {
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
            (result(o, out, true), None)
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
            (result(o, out, true), None)
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
            (result(o, out, true), None)
        }
    }
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
        };
        let nonce = crate::guest::protocol::Nonce::fixed("0");
        let mut c = Console::attach(ports, nonce, Default::default()).expect("attach");
        let check = Check { name: "h".into(), action: Action::HostVerify { offset: 0, len: 1, seed: 0 } };
        let mut side = HostSide { shm: None, run_dir: dir.path(), doorbell: None };
        let (r, abort) = run_check(&check, &mut c, &mut side, &mut Charged::default());
        assert!(matches!(r.outcome, Outcome::Fail(_)));
        assert!(abort.is_none());
    }
}
