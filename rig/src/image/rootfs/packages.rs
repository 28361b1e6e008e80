//! The packages of a Debian root: what every root gets, and the user's
//! list with its patterns matched against the suite's package names. Pure.

/// What every Debian root gets besides minbase: kmod (modprobe, depmod: the
/// kernel's modules are in the root with their dependency lists) and procps
/// (ps, pkill, free: what test steps reach for first).
pub const BASE_PACKAGES: [&str; 2] = ["kmod", "procps"];

/// Does `name` match `pattern` (`*` any run of characters, `?` one)?
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point for the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == '?' || c == n[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    p[i.min(p.len())..].iter().all(|&c| c == '*')
}

/// The packages to install: plain names as written (apt judges them), each
/// pattern replaced by every name of `available` it matches. `Err` lists
/// the patterns that match nothing in the suite.
pub fn resolve(wanted: &[String], available: &[String]) -> Result<Vec<String>, Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut unmatched = Vec::new();
    for w in wanted {
        if crate::plan::is_pattern(w) {
            let mut hits: Vec<&String> = available.iter().filter(|a| glob(w, a)).collect();
            if hits.is_empty() {
                unmatched.push(w.clone());
            }
            hits.sort();
            out.extend(hits.into_iter().cloned());
        } else {
            out.push(w.clone());
        }
    }
    if !unmatched.is_empty() {
        return Err(unmatched);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("librte-net-e1000-*", "librte-net-e1000-25"));
        assert!(!glob("librte-net-e1000-*", "librte-net-e1000"));
        assert!(glob("librte-mempool-ring*", "librte-mempool-ring25"));
        assert!(glob("lib?", "libc") && !glob("lib?", "lib") && !glob("lib?", "libcc"));
        assert!(glob("*", "x") && glob("a*b*c", "aXbYbZc") && !glob("a*b*c", "aXbYbZ"));
        assert!(glob("dpdk-dev", "dpdk-dev") && !glob("dpdk-dev", "dpdk-devel"));
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns_expand_and_an_unmatched_one_is_named() {
        let trixie = names(&["dpdk-dev", "librte-net-e1000-25", "librte-mempool-ring25", "librte-net-ixgbe25"]);
        let want = names(&["dpdk-dev", "librte-net-e1000-*", "librte-mempool-ring*"]);
        assert_eq!(resolve(&want, &trixie), Ok(names(&["dpdk-dev", "librte-mempool-ring25", "librte-net-e1000-25"])));
        // A plain name is apt's to judge, even when the suite lacks it.
        assert_eq!(resolve(&names(&["dpdk-devv"]), &trixie), Ok(names(&["dpdk-devv"])));
        assert_eq!(
            resolve(&names(&["dpdk-dev", "librte-net-ice*", "x-*"]), &trixie),
            Err(names(&["librte-net-ice*", "x-*"]))
        );
        assert_eq!(resolve(&[], &trixie), Ok(vec![]));
    }
}
