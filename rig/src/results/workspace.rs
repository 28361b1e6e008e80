//! Where a step is written, as a reader of CI output wants to see it: the
//! config path relative to the checkout (GitHub's `GITHUB_WORKSPACE`, which
//! annotations need) and, given the repository's URL and commit, a link to
//! the step's line. Pure: the caller reads the environment.

use crate::plan::step::Source;
use std::path::{Path, PathBuf};

/// The checkout the config files live in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workspace {
    /// The checkout, canonical; files inside it are shown relative to it.
    pub root: Option<PathBuf>,
    /// URL prefix of the checkout's files at this commit, ending in `/`
    /// (`https://github.com/OWNER/REPO/blob/SHA/`).
    pub blob_url: Option<String>,
}

impl Workspace {
    /// A checkout at `root` (canonical) of `repository` (`OWNER/REPO`) on
    /// `server` (`https://github.com`) at commit `sha`; links only when all
    /// three are known.
    pub fn new(root: Option<PathBuf>, server: Option<&str>, repository: Option<&str>, sha: Option<&str>) -> Workspace {
        let blob_url = match (server, repository, sha) {
            (Some(s), Some(r), Some(c)) if !s.is_empty() && !r.is_empty() && !c.is_empty() => {
                Some(format!("{}/{r}/blob/{c}/", s.trim_end_matches('/')))
            }
            _ => None,
        };
        Workspace { root, blob_url }
    }

    /// `file` relative to the checkout, with `/` separators; `None` when it
    /// is outside (or there is no checkout).
    pub fn relative(&self, file: &Path) -> Option<String> {
        let rel = file.strip_prefix(self.root.as_ref()?).ok()?;
        let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// `path:line`, the path relative to the checkout when inside it.
    pub fn show(&self, s: &Source) -> String {
        let path = self.relative(&s.file).unwrap_or_else(|| s.file.display().to_string());
        format!("{path}:{}", s.line)
    }

    /// A link to the step's line, when the file is in the checkout and the
    /// repository is known.
    pub fn link(&self, s: &Source) -> Option<String> {
        let rel = self.relative(&s.file)?;
        Some(format!("{}{}#L{}", self.blob_url.as_ref()?, url_path(&rel), s.line))
    }
}

/// Percent-encodes a relative path for a URL (keeps `/` and unreserved characters).
fn url_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(file: &str, line: usize) -> Source {
        Source { file: PathBuf::from(file), line }
    }

    #[test]
    fn paths_inside_the_checkout_are_relative_and_linked() {
        let ws = Workspace::new(Some("/w/repo".into()), Some("https://github.com/"), Some("o/r"), Some("abc"));
        assert_eq!(ws.relative(Path::new("/w/repo/ci/rig.toml")).as_deref(), Some("ci/rig.toml"));
        assert_eq!(ws.show(&src("/w/repo/rig.toml", 7)), "rig.toml:7");
        assert_eq!(
            ws.link(&src("/w/repo/my tests/rig.toml", 7)).as_deref(),
            Some("https://github.com/o/r/blob/abc/my%20tests/rig.toml#L7")
        );
        // Outside the checkout (or the checkout itself): the full path, no link.
        assert_eq!(ws.show(&src("/w/repository/rig.toml", 3)), "/w/repository/rig.toml:3");
        assert_eq!(ws.link(&src("/elsewhere/rig.toml", 3)), None);
        assert_eq!(ws.relative(Path::new("/w/repo")), None);
    }

    #[test]
    fn no_links_without_the_repository() {
        let ws = Workspace::new(Some("/w".into()), Some("https://github.com"), None, Some("abc"));
        assert_eq!(ws.link(&src("/w/rig.toml", 1)), None);
        assert_eq!(ws.show(&src("/w/rig.toml", 1)), "rig.toml:1");
        assert_eq!(Workspace::default().show(&src("/w/rig.toml", 1)), "/w/rig.toml:1");
    }
}
