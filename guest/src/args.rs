//! Option parsing shared by the subcommands (hand-written: the guest binary
//! stays small and has no dependencies beyond libc).

use std::fmt;

/// Why a subcommand did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Bad command line: exit 2.
    Usage(String),
    /// The check ran and failed: exit 1.
    Check(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Check(m) => f.write_str(m),
        }
    }
}

/// Builds a [`Failure::Check`] from an OS error with context.
pub fn os_failure(what: &str) -> Failure {
    Failure::Check(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A pattern region: `--seed N --offset N --len N` (decimal or 0x hex).
#[derive(Debug, PartialEq, Eq)]
pub struct Region {
    pub seed: u32,
    pub offset: u64,
    pub len: u64,
}

/// Parses `123` or `0x7b`.
pub fn parse_num(s: &str) -> Result<u64, Failure> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| Failure::Usage(format!("`{s}` is not a number")))
}

impl Region {
    pub fn parse(args: &[String]) -> Result<Region, Failure> {
        let (mut seed, mut offset, mut len) = (None, None, None);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))?;
            let n = parse_num(value)?;
            match flag.as_str() {
                "--seed" => seed = Some(u32::try_from(n).map_err(|_| Failure::Usage("--seed is 32-bit".into()))?),
                "--offset" => offset = Some(n),
                "--len" => len = Some(n),
                other => return Err(Failure::Usage(format!("unknown option `{other}`"))),
            }
        }
        let missing = |name: &str| Failure::Usage(format!("missing {name}"));
        Ok(Region {
            seed: seed.ok_or_else(|| missing("--seed"))?,
            offset: offset.ok_or_else(|| missing("--offset"))?,
            len: len.ok_or_else(|| missing("--len"))?,
        })
    }
}

/// `--name value` options, each optional; numbers decimal or 0x hex.
#[derive(Debug, Default)]
pub struct Opts(Vec<(String, String)>);

impl Opts {
    /// Parses `args`, accepting only the option names in `allowed`.
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

    /// A number option, or `default`.
    pub fn num(&self, name: &str, default: u64) -> Result<u64, Failure> {
        self.get(name).map_or(Ok(default), parse_num)
    }

    /// A string option, or `default`.
    pub fn text(&self, name: &str, default: &str) -> String {
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
    fn parses_region() {
        let r = Region::parse(&strings(&["--seed", "5", "--offset", "0x1000", "--len", "16"]));
        assert_eq!(r.ok(), Some(Region { seed: 5, offset: 0x1000, len: 16 }));
    }

    #[test]
    fn parses_opts() {
        let o = Opts::parse(&strings(&["--count", "0x10", "--expect", "plain"]), &["--count", "--expect"]);
        let o = o.ok().unwrap_or_default();
        assert_eq!(o.num("--count", 1).ok(), Some(16));
        assert_eq!(o.num("--seed", 7).ok(), Some(7));
        assert_eq!(o.text("--expect", "doorbell"), "plain");
        assert!(matches!(Opts::parse(&strings(&["--bogus", "1"]), &["--count"]), Err(Failure::Usage(_))));
        assert!(matches!(Opts::parse(&strings(&["--count"]), &["--count"]), Err(Failure::Usage(_))));
    }

    #[test]
    fn rejects_missing_and_unknown() {
        assert!(matches!(Region::parse(&strings(&["--seed", "5"])), Err(Failure::Usage(_))));
        assert!(matches!(Region::parse(&strings(&["--bogus", "5"])), Err(Failure::Usage(_))));
        assert!(matches!(Region::parse(&strings(&["--seed"])), Err(Failure::Usage(_))));
        assert!(matches!(parse_num("zz"), Err(Failure::Usage(_))));
    }
}
