//! The guest image: the initramfs (cpio) and its `/init` script, and the
//! Debian root of `rootfs = "debian"` ([`rootfs`]). Uses [`crate::guest`]
//! for the protocol markers /init prints, and [`crate::build`]'s way into a
//! debootstrap of the kernel's suite.

pub mod contents;
pub mod init;
pub mod initramfs;
pub mod rootfs;
