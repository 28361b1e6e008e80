//! Building modules against a fetched kernel: kbuild with the kernel's own
//! compiler, on the host or in a debootstrap chroot of the kernel's suite;
//! a DKMS tree's dkms.conf is read for what matters to that build.
//! Uses [`crate::kernel`] (the tree) and [`crate::support`].

pub mod chroot;
pub mod dkms;
pub mod kbuild;
