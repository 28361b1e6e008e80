//! Kernels: the catalog (images/kernels.toml), fetching Debian's packages
//! into the cache, and the kernel's own (in-tree) modules.
//! Uses [`crate::support`].

pub mod catalog;
pub mod fetch;
pub mod intree;
