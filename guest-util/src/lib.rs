//! What the rig's guest programs (`rig-guest`, `rig-udrv`) share: the
//! `--name value` options they take and the `ok:`/`FAIL:` report the rig
//! reads from their output. No dependencies: the programs link statically.

mod opts;
mod report;

pub use opts::{parse_num, Opts};
pub use report::{Failure, Report};
