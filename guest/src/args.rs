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
    fn rejects_missing_and_unknown() {
        assert!(matches!(Region::parse(&strings(&["--seed", "5"])), Err(Failure::Usage(_))));
        assert!(matches!(Region::parse(&strings(&["--bogus", "5"])), Err(Failure::Usage(_))));
        assert!(matches!(Region::parse(&strings(&["--seed"])), Err(Failure::Usage(_))));
        assert!(matches!(parse_num("zz"), Err(Failure::Usage(_))));
    }
}
