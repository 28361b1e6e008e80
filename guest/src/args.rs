//! Options of the subcommands: the shared `--name value` parser and the
//! pattern region most of them take.

pub use rig_guest_util::{parse_num, Failure, Opts};

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
    }
}
