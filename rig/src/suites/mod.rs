//! Runs of many guests or builds: the kernel matrix, repeated boots, the
//! benchmark and apidiff. Uses [`crate::exec`].

pub mod apidiff;
pub mod bench;
pub mod boots;
pub mod matrix;
