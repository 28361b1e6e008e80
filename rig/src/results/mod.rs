//! Results: the tree of verdicts (run -> group -> step) and the KTAP, JUnit
//! and JSON writers. Pure: builds text, never prints.

pub mod json;
pub mod junit;
pub mod ktap;
mod tree;

pub use tree::{
    CheckResult, Counts, KernelError, KernelResult, Outcome, RunReport, Stage, Status, TestResult, Timings, Tree,
};
