//! The guest image: the initramfs (cpio) and its `/init` script.
//! Uses [`crate::guest`] for the protocol markers /init prints.

pub mod initramfs;
