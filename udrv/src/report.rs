//! The ok/FAIL report the rig reads (shared with `rig-guest`).

pub use rig_guest_util::{Failure, Report};
