//! deb822 text (apt-cache output, `*.sources`): stanzas of fields and
//! relation fields as groups of alternatives.

use std::collections::BTreeMap;

/// Fields of one deb822 stanza (the first in `text`); continuation lines
/// are joined with newlines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Stanza(BTreeMap<String, String>);

impl Stanza {
    /// Field value, with case-insensitive names as in deb822.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }
}

pub(super) fn parse_stanza(text: &str) -> Stanza {
    parse_stanzas(text).into_iter().next().unwrap_or_default()
}

pub(super) fn parse_stanzas(text: &str) -> Vec<Stanza> {
    let mut stanzas = Vec::new();
    let mut cur = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                stanzas.push(Stanza(std::mem::take(&mut cur)));
            }
            last = None;
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| cur.get_mut(k)) {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let key = k.trim().to_ascii_lowercase();
            cur.insert(key.clone(), v.trim().to_owned());
            last = Some(key);
        }
    }
    if !cur.is_empty() {
        stanzas.push(Stanza(cur));
    }
    stanzas
}

/// A relation field (`Depends`) as groups of alternative package names,
/// without version constraints or architecture qualifiers.
pub(super) fn relations(stanza: &Stanza, field: &str) -> Vec<Vec<String>> {
    stanza.get(field).map(parse_relations).unwrap_or_default()
}

pub(super) fn parse_relations(value: &str) -> Vec<Vec<String>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let name = alt.trim().split([' ', '(', '[', ':', '<']).next()?.trim();
                    (!name.is_empty()).then(|| name.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    // Captured from `apt-cache show --no-all-versions` (bookworm, sid).
    pub(in crate::kernel::fetch) const META_BOOKWORM: &str = "\
Package: linux-headers-cloud-amd64
Source: linux-signed-amd64 (6.1.176+1)
Version: 6.1.176-1
Architecture: amd64
Depends: linux-headers-6.1.0-50-cloud-amd64 (= 6.1.176-1)
Description: Header files for Linux cloud-amd64 configuration (meta-package)
 This package depends on the architecture-specific header files for the
 latest Linux kernel cloud-amd64 configuration.
";
    pub(in crate::kernel::fetch) const META_SID: &str = "\
Package: linux-headers-cloud-amd64
Version: 7.2.13-1
Architecture: amd64
Depends: linux-base-cloud-amd64 (= 7.2.13-1), linux-headers-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)
";
    pub(in crate::kernel::fetch) const HEADERS_BOOKWORM: &str = "\
Package: linux-headers-6.1.0-50-cloud-amd64
Source: linux
Version: 6.1.176-1
Architecture: amd64
Depends: linux-headers-6.1.0-50-common (= 6.1.176-1), linux-kbuild-6.1 (>= 6.1.176-1), linux-compiler-gcc-12-x86
SHA256: 0123abcd
";
    pub(in crate::kernel::fetch) const HEADERS_SID: &str = "\
Package: linux-headers-7.2.13+deb14-cloud-amd64
Source: linux
Version: 7.2.13-1
Installed-Size: 8413
Architecture: amd64
Depends: gcc-16-for-host, linux-base (>= 4.12~), linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-headers-7.2.13+deb14-common (= 7.2.13-1), linux-kbuild-7.2.13+deb14
";
    pub(in crate::kernel::fetch) const HEADERS_TRIXIE: &str = "\
Package: linux-headers-6.12.117+deb13-cloud-amd64
Version: 6.12.117-1
Depends: linux-base (>= 4.12~), linux-headers-6.12.117+deb13-common (= 6.12.117-1), linux-image-6.12.117+deb13-cloud-amd64 (= 6.12.117-1) | linux-image-6.12.117+deb13-cloud-amd64-unsigned (= 6.12.117-1), linux-kbuild-6.12.117+deb13, gcc-14
";

    #[test]
    fn stanza_fields_and_continuations() {
        let s = parse_stanza(META_BOOKWORM);
        assert_eq!(s.get("package"), Some("linux-headers-cloud-amd64"));
        assert_eq!(s.get("VERSION"), Some("6.1.176-1"));
        let d = s.get("Description").unwrap();
        assert!(d.starts_with("Header files") && d.ends_with("configuration."), "{d}");
        assert_eq!(parse_stanza("").get("Package"), None);
    }

    #[test]
    fn relations_strip_versions_and_keep_alternatives() {
        let r = parse_relations("a (>= 1), b:any | c [amd64] (= 2),, d");
        assert_eq!(r, vec![vec!["a"], vec!["b", "c"], vec!["d"]]);
    }
}
