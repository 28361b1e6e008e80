//! `--name value` options (hand-written: the guest binary stays small).

use crate::pci::Bdf;
use crate::report::Failure;

/// Parsed options of one subcommand.
#[derive(Debug, Default)]
pub struct Opts(Vec<(String, String)>);

/// Parses `123` or `0x7b`.
pub fn parse_num(s: &str) -> Result<u64, Failure> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| Failure::Usage(format!("`{s}` is not a number")))
}

impl Opts {
    /// Parses `args`, accepting only the names in `allowed`.
    pub fn parse(args: &[String], allowed: &[&str]) -> Result<Opts, Failure> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !allowed.contains(&flag.as_str()) {
                return Err(Failure::Usage(format!("unknown option `{flag}`")));
            }
            let value = it.next().ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))?;
            out.push((flag.clone(), value.clone()));
        }
        Ok(Opts(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `--device BDF`, required.
    pub fn device(&self) -> Result<Bdf, Failure> {
        let s = self.get("--device").ok_or_else(|| Failure::Usage("--device <BDF> is required".into()))?;
        Bdf::parse(s).map_err(|e| Failure::Usage(e.to_string()))
    }

    /// A number option, or `default`.
    pub fn num(&self, name: &str, default: u64) -> Result<u64, Failure> {
        self.get(name).map_or(Ok(default), parse_num)
    }

    /// A 32-bit number option, or `default`.
    pub fn num32(&self, name: &str, default: u32) -> Result<u32, Failure> {
        let n = self.num(name, u64::from(default))?;
        u32::try_from(n).map_err(|_| Failure::Usage(format!("{name} must fit in 32 bits")))
    }

    /// An optional string.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// An optional number.
    pub fn opt_num(&self, name: &str) -> Result<Option<u64>, Failure> {
        self.get(name).map(parse_num).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        let o = Opts::parse(&strings(&["--device", "0000:00:03.0", "--seed", "0x10"]), &["--device", "--seed"])
            .expect("parse");
        assert_eq!(o.device().map(|b| b.to_string()), Ok("0000:00:03.0".to_string()));
        assert_eq!(o.num("--seed", 1), Ok(16));
        assert_eq!(o.num("--count", 7), Ok(7));
        assert_eq!(o.num32("--seed", 0), Ok(16));
        assert_eq!(o.opt_num("--size"), Ok(None));
        assert_eq!(o.text("--seed").as_deref(), Some("0x10"));
        assert_eq!(o.text("--ready-file"), None);
        assert!(matches!(Opts::parse(&strings(&["--bogus", "1"]), &["--device"]), Err(Failure::Usage(_))));
        assert!(matches!(Opts::parse(&strings(&["--device"]), &["--device"]), Err(Failure::Usage(_))));
        let none = Opts::parse(&[], &["--device"]).expect("empty");
        assert!(matches!(none.device(), Err(Failure::Usage(_))));
        let bad = Opts::parse(&strings(&["--device", "03.0", "--seed", "0x1_0000_0000"]), &["--device", "--seed"])
            .expect("parse");
        assert!(matches!(bad.device(), Err(Failure::Usage(_))));
        assert!(matches!(bad.num("--seed", 0), Err(Failure::Usage(_))));
        let big = Opts::parse(&strings(&["--seed", "0x100000000"]), &["--seed"]).expect("parse");
        assert!(matches!(big.num32("--seed", 0), Err(Failure::Usage(_))));
    }
}
