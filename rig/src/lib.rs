//! The rig: boots QEMU guests on Debian kernels, loads a module, drives the
//! guest over its serial console and checks the shared pages from the host.
//!
//! One module per job: the kernel catalog ([`catalog`]), downloads
//! ([`fetch`]), module builds ([`kbuild`]), the guest image ([`initramfs`]),
//! the QEMU command line ([`qemu`]), the accelerator choice ([`accel`]),
//! the guest process ([`vm`]) and its console ([`console`]), the host's view
//! of the ivshmem pages ([`shm`]), checks ([`checks`]) and TAP ([`tap`]).

pub mod accel;
pub mod apidiff;
pub mod bench;
pub mod boots;
pub mod catalog;
pub mod checks;
pub mod chroot;
pub mod config;
pub mod console;
pub mod doorbell;
pub mod fetch;
pub mod hostcmd;
pub mod initramfs;
pub mod intree;
pub mod kbuild;
pub mod ktap;
pub mod matrix;
pub mod qemu;
pub mod qmp;
pub mod report;
pub mod run;
pub mod shell;
pub mod shm;
pub mod verdict;
pub mod vm;
