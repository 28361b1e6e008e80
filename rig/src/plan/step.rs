//! The steps of a plan: a command in the guest shell or a check the host
//! makes, with what its result must be. Pure data, built by validation.

use crate::host::net::{FrameFilter, FrameSource};
use crate::verdict::Class;
use regex::Regex;
use std::path::PathBuf;
use std::time::Duration;

/// What a guest command's output must contain.
#[derive(Clone, Debug)]
pub enum Expect {
    /// A substring.
    Contains(String),
    /// A regular expression.
    Matches(Regex),
}

impl Expect {
    /// As saved in a run's record: `contains:TEXT` or `matches:REGEX`.
    pub fn to_record(&self) -> String {
        match self {
            Expect::Contains(s) => format!("contains:{s}"),
            Expect::Matches(re) => format!("matches:{re}"),
        }
    }

    /// Back from [`Expect::to_record`].
    pub fn from_record(s: &str) -> Result<Expect, String> {
        if let Some(t) = s.strip_prefix("contains:") {
            return Ok(Expect::Contains(t.to_owned()));
        }
        let re = s.strip_prefix("matches:").ok_or_else(|| format!("`{s}` is not an expectation"))?;
        Regex::new(re).map(Expect::Matches).map_err(|e| e.to_string())
    }

    pub fn check(&self, output: &str) -> Result<(), String> {
        match self {
            Expect::Contains(s) if output.contains(s.as_str()) => Ok(()),
            Expect::Contains(s) => Err(format!("output does not contain `{s}`")),
            Expect::Matches(re) if re.is_match(output) => Ok(()),
            Expect::Matches(re) => Err(format!("output does not match /{re}/")),
        }
    }
}

/// The memory a host check reads or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Memory {
    /// The ivshmem region's backing file.
    Shm,
    /// The backing image of the `[[device]]` with this name (an NVMe namespace).
    Image(String),
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Memory::Shm => f.write_str("the shared memory"),
            Memory::Image(name) => write!(f, "{name}'s image"),
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
        /// A kernel report the step must cause; it passes the step instead
        /// of failing it (other reports still fail it).
        report: Option<Class>,
    },
    /// The host reads the header the module wrote at probe time.
    HostHeader {
        /// Expected `state` field.
        state: u32,
    },
    /// The host writes the seeded pattern into the region.
    HostFill { memory: Memory, offset: u64, len: u64, seed: u32 },
    /// The host checks the seeded pattern in the region.
    HostVerify { memory: Memory, offset: u64, len: u64, seed: u32 },
    /// The host checks exact bytes (or a string) at an offset.
    HostBytes { memory: Memory, offset: u64, bytes: Vec<u8> },
    /// The host writes bytes at an offset (e.g. a buffer, then a ring index).
    HostWrite { memory: Memory, offset: u64, bytes: Vec<u8> },
    /// The host produces buffers into the reference module's host ring
    /// (`rig_abi::host::produce`: payloads, headers, then a store-release of `prod`).
    HostProduce { count: u32, len: u32, seed: u32 },
    /// A host command; `{shm}` is the backing file, `{dir}` the run directory.
    HostCommand {
        /// Shell command line (run with `sh -c`).
        command: String,
        /// Expected exit status.
        status: i32,
        /// Expected output.
        expect: Option<Expect>,
        /// Kill it after this long.
        timeout: Duration,
        /// Working directory (the config file's directory).
        cwd: std::path::PathBuf,
    },
    /// The host peer rings the guest (ivshmem-doorbell).
    HostRing { vector: u32 },
    /// The host waits for the guest to ring it.
    HostWaitRing { vector: u32, timeout: Duration },
    /// The host writes seeded garbage into the module's ring
    /// (`crate::host::ring_fuzz`) for a time or a number of writes.
    HostFuzzRing { seed: u64, writes: u64, duration: Duration },
    /// The host counts the frames a NIC sent since the previous check of it
    /// (its capture).
    HostPcap {
        /// The `[[device]]` NIC.
        device: String,
        /// Which frames count.
        filter: FrameFilter,
        /// At least this many.
        min: u64,
        /// At most this many.
        max: Option<u64>,
        /// A number in the previous guest step's output (the regex's first
        /// group, its last match) the count must agree with, within `slack`.
        same_as: Option<Regex>,
        slack: u64,
    },
    /// The host sends frames to a NIC.
    HostSend {
        /// The `[[device]]` NIC.
        device: String,
        frames: FrameSource,
        /// Frames per second; 0: as fast as QEMU takes them.
        rate: u64,
        timeout: Duration,
    },
}

/// Where a step is written: annotations and summaries point at it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    /// The config file, absolute (canonical when it exists).
    pub file: PathBuf,
    /// 1-based line of the step's `[[test.step]]` header (or its inline table).
    pub line: usize,
}

/// A named check.
#[derive(Clone, Debug)]
pub struct Check {
    /// The name printed after `ok N -`.
    pub name: String,
    /// What it does.
    pub action: Action,
    /// Where the config has it; `None` for the rig's own checks (boot, kernel log).
    pub source: Option<Source>,
}

impl Check {
    /// A check the rig decides itself (a module loaded, the boot clean, a
    /// device bound): no command, no place in the config.
    pub fn rig(name: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            action: Action::Guest {
                command: String::new(),
                status: 0,
                expect: None,
                timeout: std::time::Duration::ZERO,
                report: None,
            },
            source: None,
        }
    }

    /// A guest command of the rig's own (not from a config).
    pub fn command(name: impl Into<String>, command: impl Into<String>, timeout: std::time::Duration) -> Check {
        let mut c = Check::rig(name);
        if let Action::Guest { command: c_cmd, timeout: c_t, .. } = &mut c.action {
            *c_cmd = command.into();
            *c_t = timeout;
        }
        c
    }
}
