//! The guest image: the initramfs (cpio) and its `/init` script.
//! Uses [`crate::guest`] for the protocol markers /init prints.

pub mod contents;
pub mod init;
pub mod initramfs;
