//! What to do, before anything runs: `rig.toml` (see docs/config.md)
//! parsed with serde ([`file`]) and validated ([`validate`]) into a [`Plan`]
//! of pure types; steps are [`step::Check`]s. Every error names the file,
//! the line and the key. Uses [`crate::kernel::catalog`] to check kernel
//! names and nothing else of the rig.

pub mod file;
pub mod step;
mod validate;

pub use validate::{load, parse};

use std::path::PathBuf;
use std::time::Duration;
use step::Check;

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// TOML syntax, an unknown key or a wrong type.
    #[error("{path}:{line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    /// A value that parses but cannot work.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid { path: PathBuf, line: usize, key: String, message: String },
}

/// A module to build and maybe load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePlan {
    pub dir: PathBuf,
    pub make_vars: Vec<(String, String)>,
    pub params: String,
    pub load: bool,
}

/// A file for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    pub src: PathBuf,
    pub dest: String,
    pub mode: Option<u32>,
}

/// Shared memory of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmPlan {
    pub size: u64,
    pub doorbell: bool,
    pub vectors: u32,
}

/// Guest settings after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlan {
    pub memory_mib: u32,
    pub cpus: u32,
    pub cmdline: Vec<String>,
    pub files: Vec<FilePlan>,
    pub shm: Option<ShmPlan>,
    /// Checking the kernel does where it can (its command line is decided
    /// once the kernel is known).
    pub checks: Vec<crate::kernel::checks::Check>,
    /// A kernel that cannot do one of `checks` fails the run.
    pub strict_checks: bool,
}

/// A named group of checks.
#[derive(Debug, Clone)]
pub struct TestGroup {
    pub name: String,
    pub checks: Vec<Check>,
}

/// A validated configuration: what `rig run -c` executes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the file was (relative paths resolve against its directory).
    pub source: PathBuf,
    /// Catalog names; empty means the default kernel.
    pub kernels: Vec<String>,
    pub modules: Vec<ModulePlan>,
    pub intree: Vec<String>,
    pub guest: GuestPlan,
    pub setup: Vec<Check>,
    pub teardown: Vec<Check>,
    pub tests: Vec<TestGroup>,
}

/// Default per-step timeout.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
