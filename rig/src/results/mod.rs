//! Results: the tree of verdicts (run -> group -> step) and the KTAP, JUnit
//! and JSON writers. Pure: builds text, never prints.

pub mod ktap;
pub mod json;
pub mod junit;
mod tree;

pub use tree::{CheckResult, Outcome, RunReport, TestResult, Timings};
