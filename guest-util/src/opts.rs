//! `--name value` options (hand-written: the guest programs stay small).

use crate::Failure;

/// Parses `123` or `0x7b`.
pub fn parse_num(s: &str) -> Result<u64, Failure> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| Failure::Usage(format!("`{s}` is not a number")))
}

/// Parsed options of one subcommand, each optional; the last of a name wins.
#[derive(Debug, Default)]
pub struct Opts(Vec<(String, String)>);

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

    /// The raw value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
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

    /// An optional number.
    pub fn opt_num(&self, name: &str) -> Result<Option<u64>, Failure> {
        self.get(name).map(parse_num).transpose()
    }

    /// An optional string.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// A string option, or `default`.
    pub fn text_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
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
        let o =
            Opts::parse(&strings(&["--count", "0x10", "--expect", "plain", "--count", "3"]), &["--count", "--expect"])
                .expect("parse");
        assert_eq!(o.num("--count", 1), Ok(3));
        assert_eq!(o.num("--seed", 7), Ok(7));
        assert_eq!(o.num32("--count", 0), Ok(3));
        assert_eq!(o.opt_num("--size"), Ok(None));
        assert_eq!(o.text("--expect").as_deref(), Some("plain"));
        assert_eq!(o.text("--ready-file"), None);
        assert_eq!(o.text_or("--mode", "doorbell"), "doorbell");
        let big = Opts::parse(&strings(&["--seed", "0x100000000"]), &["--seed"]).expect("parse");
        assert!(matches!(big.num32("--seed", 0), Err(Failure::Usage(_))));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(Opts::parse(&strings(&["--bogus", "1"]), &["--count"]), Err(Failure::Usage(_))));
        assert!(matches!(Opts::parse(&strings(&["--count"]), &["--count"]), Err(Failure::Usage(_))));
        assert!(matches!(parse_num("zz"), Err(Failure::Usage(_))));
        assert!(matches!(parse_num("0x1_0000"), Err(Failure::Usage(_))));
        assert_eq!(parse_num("0x7b"), Ok(123));
    }
}
