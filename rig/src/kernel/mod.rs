//! Kernels: the catalog (images/kernels.toml), fetching Debian's packages
//! into the cache, the checking each kernel can do (its config), the
//! kernel's own (in-tree) modules, and the uncompressed kernel for PVH boot.
//! Uses [`crate::support`].

pub mod catalog;
pub mod checks;
pub mod fetch;
pub mod intree;
pub mod vmlinux;
