//! Named checks: commands run in the guest shell and assertions the host
//! makes on the shared memory, each turned into one result line.

use crate::console::{Console, ConsoleError, StepOutput};
use crate::shm::SharedMemory;
use regex::Regex;
use std::time::{Duration, Instant};

/// What a guest command's output must contain.
#[derive(Clone, Debug)]
pub enum Expect {
    /// A substring.
    Contains(String),
    /// A regular expression.
    Matches(Regex),
}

impl Expect {
    fn check(&self, output: &str) -> Result<(), String> {
        match self {
            Expect::Contains(s) if output.contains(s.as_str()) => Ok(()),
            Expect::Contains(s) => Err(format!("output does not contain `{s}`")),
            Expect::Matches(re) if re.is_match(output) => Ok(()),
            Expect::Matches(re) => Err(format!("output does not match /{re}/")),
        }
    }
}

/// One step of a suite.
#[derive(Clone, Debug)]
pub enum Action {
    /// A shell command in the guest.
    Guest {
        /// The command line.
        command: String,
        /// Expected `$?`.
        status: i32,
        /// Expected output, if any.
        expect: Option<Expect>,
        /// Per-step timeout.
        timeout: Duration,
    },
    /// The host reads the header the module wrote at probe time.
    HostHeader {
        /// Expected `state` field.
        state: u32,
    },
    /// The host writes the seeded pattern into the region.
    HostFill { offset: u64, len: u64, seed: u32 },
    /// The host checks the seeded pattern in the region.
    HostVerify { offset: u64, len: u64, seed: u32 },
}

/// A named check.
#[derive(Clone, Debug)]
pub struct Check {
    /// The name printed after `ok N -`.
    pub name: String,
    /// What it does.
    pub action: Action,
}

/// How a check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed, with the reason.
    Fail(String),
    /// Not run because an earlier failure made it meaningless.
    NotRun(String),
}

/// The result of one check.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Verdict.
    pub outcome: Outcome,
    /// Output of a guest command, or the host's finding.
    pub output: String,
    /// Wall time.
    pub elapsed: Duration,
    /// Made by the host on the shared memory (not in the guest).
    pub host_side: bool,
}

impl CheckResult {
    /// A guest-side result with no output (the rig's own verdicts).
    pub fn verdict(name: &str, outcome: Outcome) -> CheckResult {
        CheckResult { name: name.into(), outcome, output: String::new(), elapsed: Duration::ZERO, host_side: false }
    }

    /// True when it passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// Why a run of checks stopped before the end.
#[derive(Debug)]
pub enum Abort {
    /// The guest crashed, closed the console or the user interrupted.
    Console(ConsoleError),
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
pub fn run_check(check: &Check, console: &mut Console, shm: Option<&SharedMemory>) -> (CheckResult, Option<Abort>) {
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
            Ok(out) => (result(guest_verdict(&out, *status, expect), out.output, false), None),
            Err(ConsoleError::Timeout { waited, tail, .. }) => (
                result(Outcome::Fail(format!("timed out after {waited:?}")), crate::console::clean(&tail), false),
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
    }
}

/// The reference module's own suite (the spine: shared pages both ways).
pub fn reference_suite(seed_g2h: u32, seed_h2g: u32) -> Vec<Check> {
    use rig_abi::{SHM_AREA_SIZE as LEN, SHM_G2H_OFFSET as G2H, SHM_H2G_OFFSET as H2G};
    let guest = |name: &str, command: String, expect: Option<Expect>| Check {
        name: name.into(),
        action: Action::Guest { command, status: 0, expect, timeout: Duration::from_secs(30) },
    };
    let dev = rig_abi::SHM_DEV_NAME;
    vec![
        guest(
            "ivshmem device is bound to rig_kmod",
            format!("ls /sys/bus/pci/drivers/rig_kmod/ | grep -c ':' && stat -c '%a %F' /dev/{dev}"),
            Some(Expect::Matches(
                Regex::new(r"(?m)^1\n600 character special file$").unwrap_or_else(|_| unreachable!()),
            )),
        ),
        Check {
            name: "host reads the module's header in the shared pages".into(),
            action: Action::HostHeader { state: rig_abi::STATE_PROBED },
        },
        guest(
            "guest: RIG_IOC_SHM_INFO reports the region",
            "rig-guest shm-info".to_string(),
            Some(Expect::Contains("abi_version=1".into())),
        ),
        guest(
            "guest writes a pattern through the /dev/rig_shm mapping",
            format!("rig-guest shm-fill --seed {seed_g2h} --offset {G2H:#x} --len {LEN:#x}"),
            None,
        ),
        Check {
            name: "host sees the guest's pattern in the backing file (vm-memory)".into(),
            action: Action::HostVerify { offset: G2H, len: LEN, seed: seed_g2h },
        },
        Check {
            name: "host writes a pattern into the backing file (vm-memory)".into(),
            action: Action::HostFill { offset: H2G, len: LEN, seed: seed_h2g },
        },
        guest(
            "guest reads the host's pattern through the /dev/rig_shm mapping",
            format!("rig-guest shm-verify --seed {seed_h2g} --offset {H2G:#x} --len {LEN:#x}"),
            None,
        ),
        guest("rmmod rig_kmod unloads cleanly", "rmmod rig_kmod && ! test -e /dev/rig_shm".into(), None),
        Check {
            name: "host sees the module mark the region removed".into(),
            action: Action::HostHeader { state: rig_abi::STATE_REMOVED },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(status: i32, output: &str) -> StepOutput {
        StepOutput { status, output: output.into(), elapsed: Duration::ZERO }
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
    fn suite_checks_both_directions_from_the_host() {
        let s = reference_suite(1, 2);
        let host: Vec<_> = s.iter().filter(|c| !matches!(c.action, Action::Guest { .. })).collect();
        assert!(host.iter().any(|c| matches!(c.action, Action::HostVerify { seed: 1, .. })));
        assert!(host.iter().any(|c| matches!(c.action, Action::HostFill { seed: 2, .. })));
    }

    #[test]
    fn host_check_without_shm_fails_cleanly() {
        // The console is not touched by host checks; build one over a socketpair.
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Console::attach(a, &dir.path().join("log"), Default::default()).expect("attach");
        let check = Check { name: "h".into(), action: Action::HostVerify { offset: 0, len: 1, seed: 0 } };
        let (r, abort) = run_check(&check, &mut c, None);
        assert!(matches!(r.outcome, Outcome::Fail(_)));
        assert!(abort.is_none());
    }
}
