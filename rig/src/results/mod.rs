//! Results: the tree of verdicts (run -> group -> step) and its writers:
//! KTAP, JUnit and JSON, the Markdown summary and GitHub's annotations.
//! Pure: builds text, never prints.

pub mod annotations;
pub mod json;
pub mod junit;
pub mod ktap;
pub mod markdown;
mod text;
mod tree;
pub mod workspace;

pub use tree::{
    CheckResult, Counts, Failure, KernelError, KernelResult, Outcome, RunReport, Stage, Status, TestResult, Timings,
    Tree,
};
pub use workspace::Workspace;
