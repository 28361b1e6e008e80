//! Runs of many guests or builds: the kernel matrix, repeated boots, the
//! benchmark and apidiff. Uses [`crate::exec`].

pub mod apidiff;
pub mod bench;
pub mod bench_plot;
pub mod boots;
pub mod matrix;
