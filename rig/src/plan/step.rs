//! The steps of a plan: a command in the guest shell or a check the host
//! makes, with what its result must be. Pure data, built by validation.

use regex::Regex;
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
    pub fn check(&self, output: &str) -> Result<(), String> {
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
    /// The host checks exact bytes (or a string) at an offset.
    HostBytes { offset: u64, bytes: Vec<u8> },
    /// The host writes bytes at an offset (e.g. a buffer, then a ring index).
    HostWrite { offset: u64, bytes: Vec<u8> },
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
}

/// A named check.
#[derive(Clone, Debug)]
pub struct Check {
    /// The name printed after `ok N -`.
    pub name: String,
    /// What it does.
    pub action: Action,
}
