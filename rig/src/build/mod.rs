//! Building modules against a fetched kernel: kbuild with the kernel's own
//! compiler, on the host or in a debootstrap chroot of the kernel's suite.
//! Uses [`crate::kernel`] (the tree) and [`crate::support`].

pub mod chroot;
pub mod kbuild;
