//! What to do, before anything runs: `rig.toml` parsed and validated into a
//! [`Plan`] of pure types (steps are [`step::Check`]s). Uses
//! [`crate::kernel::catalog`] to check kernel names; nothing else.

pub mod config;
pub mod step;

pub use config::Plan;
