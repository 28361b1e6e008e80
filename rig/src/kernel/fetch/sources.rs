//! The Debian archive named by the host's apt sources (never a mirror of
//! our own choosing): deb822 `*.sources` first, then one-line lists.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::deb822::parse_stanzas;
use super::FetchError;

/// Suite names and aliases of the Debian archive, used to tell a Debian
/// entry in the host's apt sources from third-party repositories.
const DEBIAN_SUITES: &[&str] = &[
    "jessie",
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "experimental",
];

/// `/etc/apt/sources.list.d/*.sources` first, then `/etc/apt/sources.list`
/// and `/etc/apt/sources.list.d/*.list`. Security archives are skipped.
pub fn archive_uri_from_system() -> Result<String, FetchError> {
    let etc = Path::new("/etc/apt");
    let parts = etc.join("sources.list.d");
    let mut deb822 = Vec::new();
    let mut one_line = vec![etc.join("sources.list")];
    if let Ok(dir) = fs::read_dir(&parts) {
        let mut names: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for p in names {
            match p.extension().and_then(OsStr::to_str) {
                Some("sources") => deb822.push(p),
                Some("list") => one_line.push(p),
                _ => {}
            }
        }
    }
    let read = |p: &PathBuf| fs::read_to_string(p).ok();
    let found = deb822
        .iter()
        .filter_map(read)
        .find_map(|text| debian_uri_from_deb822(&text))
        .or_else(|| one_line.iter().filter_map(read).find_map(|text| debian_uri_from_one_line(&text)));
    match found {
        Some(uri) => {
            debug!(%uri, "archive URI from the host's apt sources");
            Ok(normalize_uri(&uri))
        }
        None => Err(FetchError::NoArchive {
            searched: format!(
                "{}/*.sources, {}, {}/*.list",
                parts.display(),
                etc.join("sources.list").display(),
                parts.display()
            ),
        }),
    }
}

/// First Debian archive URI in deb822 text (`*.sources`).
fn debian_uri_from_deb822(text: &str) -> Option<String> {
    parse_stanzas(text).into_iter().find_map(|s| {
        let enabled = s.get("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        let is_deb = s.get("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let suites: Vec<&str> = s.get("Suites")?.split_whitespace().collect();
        let uri = s.get("URIs")?.split_whitespace().next()?.to_owned();
        (enabled && is_deb && is_debian_source(&uri, &suites)).then_some(uri)
    })
}

/// First Debian archive URI in one-line text (`sources.list`).
fn debian_uri_from_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let rest = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t"))?.trim_start();
        // Skip an `[ options ]` block.
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']')?.1,
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let uri = words.next()?.to_owned();
        let suite = words.next()?;
        is_debian_source(&uri, &[suite]).then_some(uri)
    })
}

/// A source is the Debian archive if it serves Debian suites and is not
/// the security archive (which has no kernels of its own flavour lists).
fn is_debian_source(uri: &str, suites: &[&str]) -> bool {
    if uri.starts_with("cdrom:") || uri.contains("debian-security") || suites.is_empty() {
        return false;
    }
    suites.iter().all(|s| {
        let base = s.split(['-', '/']).next().unwrap_or(s);
        !s.ends_with("-security") && !s.contains("/updates") && DEBIAN_SUITES.contains(&base)
    })
}

pub(super) fn normalize_uri(uri: &str) -> String {
    uri.trim().trim_end_matches('/').to_owned()
}

pub(super) fn is_plausible_uri(uri: &str) -> bool {
    !uri.is_empty() && uri.contains(':') && !uri.contains(char::is_whitespace) && !uri.contains(['[', ']'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_from_deb822_skips_security_and_third_party() {
        let text = "\
Types: deb
URIs: https://repo.example/node_20.x
Suites: nodistro
Components: main

Types: deb
# a comment
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm

Types: deb deb-src
URIs: http://mirror.example/debian http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";
        assert_eq!(debian_uri_from_deb822(text).as_deref(), Some("http://mirror.example/debian"));
        assert_eq!(debian_uri_from_deb822("Types: deb\nURIs: http://x.example/ubuntu\nSuites: jammy\n"), None);
    }

    #[test]
    fn uri_from_one_line_sources() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb https://repo.example/apt cloud-sdk-bookworm main
deb http://security.example/debian-security bookworm-security main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian/ trixie main contrib
";
        assert_eq!(
            debian_uri_from_one_line(text).map(|u| normalize_uri(&u)).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(debian_uri_from_one_line("deb http://old.example/debian buster/updates main"), None);
    }

    #[test]
    fn uri_checks() {
        assert!(is_plausible_uri("http://mirror.example/debian"));
        assert!(is_plausible_uri("file:/srv/mirror/debian"));
        assert!(!is_plausible_uri("mirror.example"));
        assert!(!is_plausible_uri("http://a b"));
        assert!(!is_plausible_uri(""));
        assert_eq!(normalize_uri(" http://m.example/debian/ "), "http://m.example/debian");
    }
}
