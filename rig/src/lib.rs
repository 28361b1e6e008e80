//! The rig: boots QEMU guests on Debian kernels, loads a module, drives the
//! guest over its serial console and checks from the host what the device saw.
//!
//! One folder per stage; data flows one way (docs/architecture.md):
//! [`plan`] (rig.toml) -> [`kernel`] (catalog, fetch) -> [`build`] (modules)
//! -> [`image`] (initramfs) -> [`vm`] (QEMU) -> [`guest`] (console protocol)
//! -> [`host`] (shared memory, doorbell, host commands) -> [`exec`] (the run
//! recipe and its steps) -> [`results`] (KTAP, JUnit, JSON). [`suites`] runs
//! many of those (matrix, boots, bench, apidiff). [`verdict`] turns kernel
//! console lines into classified reports. [`support`] holds the small
//! helpers every stage may use. The binary (`main.rs`, `cli/`) is the only
//! place that prints and picks exit codes.

pub mod build;
pub mod cache;
pub mod exec;
pub mod guest;
pub mod host;
pub mod image;
pub mod kernel;
pub mod plan;
pub mod results;
pub mod suites;
pub mod support;
pub mod verdict;
pub mod vm;
