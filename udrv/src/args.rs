//! The options of the subcommands: the shared `--name value` parser, and
//! `--device BDF`, which every driver takes.

use crate::pci::Bdf;
use rig_guest_util::Failure;
pub use rig_guest_util::Opts;

/// `--device BDF`, required.
pub fn device(o: &Opts) -> Result<Bdf, Failure> {
    let s = o.get("--device").ok_or_else(|| Failure::Usage("--device <BDF> is required".into()))?;
    Bdf::parse(s).map_err(|e| Failure::Usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn device_is_required_and_checked() {
        let o = Opts::parse(&strings(&["--device", "0000:00:03.0"]), &["--device"]).expect("parse");
        assert_eq!(device(&o).map(|b| b.to_string()), Ok("0000:00:03.0".to_string()));
        let none = Opts::parse(&[], &["--device"]).expect("empty");
        assert!(matches!(device(&none), Err(Failure::Usage(_))));
        let bad = Opts::parse(&strings(&["--device", "03.0"]), &["--device"]).expect("parse");
        assert!(matches!(device(&bad), Err(Failure::Usage(_))));
    }
}
