//! From a catalog entry to the concrete packages: the suite's headers
//! metapackage names the ABI, whose headers name the common headers and
//! kbuild; the image packages follow the entry's packaging.

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::apt::Apt;
use super::deb822::{relations, Stanza};
use super::FetchError;
use crate::kernel::catalog::{KernelEntry, Packaging};

/// One package to download, with the index data needed to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DebPackage {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) arch: String,
    pub(super) sha256: String,
}

impl DebPackage {
    pub(super) fn from_stanza(stanza: &Stanza, command: &str) -> Result<DebPackage, FetchError> {
        let field = |k: &str| {
            stanza.get(k).map(str::to_owned).ok_or_else(|| FetchError::UnexpectedOutput {
                command: command.to_owned(),
                detail: format!("no `{k}` field"),
            })
        };
        Ok(DebPackage {
            name: field("Package")?,
            version: field("Version")?,
            arch: field("Architecture")?,
            sha256: field("SHA256")?,
        })
    }

    /// The name `apt-get download` gives the file.
    pub(super) fn file_name(&self) -> String {
        // apt escapes the epoch colon in file names.
        let version = self.version.replace(':', "%3a");
        format!("{}_{}_{}.deb", self.name, version, self.arch)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) release: String,
    pub(super) package_version: String,
    pub(super) common: String,
    pub(super) packages: Vec<DebPackage>,
}

pub(super) fn resolve(apt: &Apt, entry: &KernelEntry) -> Result<Plan, FetchError> {
    let flavour = &entry.flavour;
    let meta = format!("linux-headers-{flavour}");
    let meta_stanza = apt.require(&meta, || {
        format!(
            "there is no headers metapackage for flavour `{flavour}`; check `flavour` for `{}` in images/kernels.toml",
            entry.name
        )
    })?;
    let headers_name = abi_headers_package(&relations(&meta_stanza, "Depends"), flavour).ok_or_else(|| {
        FetchError::UnexpectedOutput {
            command: format!("apt-cache show {meta}"),
            detail: format!("no `linux-headers-<abi>-{flavour}` in Depends"),
        }
    })?;
    let release = headers_name.strip_prefix("linux-headers-").unwrap_or(&headers_name).to_owned();

    let headers =
        apt.require(&headers_name, || "the metapackage points at it; the mirror may be mid-sync, retry later".into())?;
    let headers_deps = relations(&headers, "Depends");
    let (common, kbuild) = common_and_kbuild(&headers_deps);
    let bad_deps = |what: &str| FetchError::UnexpectedOutput {
        command: format!("apt-cache show {headers_name}"),
        detail: format!("no {what} package in Depends"),
    };
    let common = common.ok_or_else(|| bad_deps("linux-headers-*-common"))?;
    let kbuild = kbuild.ok_or_else(|| bad_deps("linux-kbuild-*"))?;

    let headers_pkg = DebPackage::from_stanza(&headers, "apt-cache show")?;
    let mut packages = vec![headers_pkg.clone()];
    for name in [common.as_str(), kbuild.as_str()] {
        let stanza =
            apt.require(name, || format!("`{headers_name}` depends on it; the mirror may be mid-sync, retry later"))?;
        packages.push(DebPackage::from_stanza(&stanza, "apt-cache show")?);
    }
    for name in image_packages(entry.packaging, &release) {
        let stanza = match apt.show(&name)? {
            Some(s) => s,
            None => return Err(image_not_found(apt, entry, &release, name)?),
        };
        packages.push(DebPackage::from_stanza(&stanza, "apt-cache show")?);
    }
    for p in &packages {
        if p.version != headers_pkg.version && !p.name.starts_with("linux-kbuild-") {
            warn!(package = %p.name, version = %p.version, expected = %headers_pkg.version, "package version differs from the headers");
        }
    }
    Ok(Plan { release, package_version: headers_pkg.version, common, packages })
}

/// A missing image package: say whether the other packaging would work.
fn image_not_found(apt: &Apt, entry: &KernelEntry, release: &str, name: String) -> Result<FetchError, FetchError> {
    let other = match entry.packaging {
        Packaging::Classic => Packaging::Split,
        Packaging::Split => Packaging::Classic,
    };
    let other_first = image_packages(other, release).into_iter().next();
    let other_exists = match &other_first {
        Some(p) => apt.show(p)?.is_some(),
        None => false,
    };
    let hint = if other_exists {
        format!(
            "this suite packages the kernel the `{other}` way: set packaging = \"{other}\" for `{}` in images/kernels.toml",
            entry.name
        )
    } else {
        "the headers exist but no unsigned image does; the mirror may be mid-sync, retry later".to_owned()
    };
    Ok(FetchError::PackageNotFound { package: name, suite: apt.suite.clone(), uri: apt.uri.clone(), hint })
}

/// The packages carrying the kernel image, config and modules.
fn image_packages(packaging: Packaging, release: &str) -> Vec<String> {
    match packaging {
        Packaging::Classic => vec![format!("linux-image-{release}-unsigned")],
        Packaging::Split => vec![
            format!("linux-binary-unsigned-{release}"),
            format!("linux-base-{release}"),
            format!("linux-modules-{release}"),
        ],
    }
}

/// The concrete `linux-headers-<abi>-<flavour>` a metapackage depends on.
fn abi_headers_package(depends: &[Vec<String>], flavour: &str) -> Option<String> {
    let meta = format!("linux-headers-{flavour}");
    let suffix = format!("-{flavour}");
    depends.iter().flatten().find(|n| n.starts_with("linux-headers-") && n.ends_with(&suffix) && **n != meta).cloned()
}

/// The common headers and kbuild packages a flavour headers package needs.
fn common_and_kbuild(depends: &[Vec<String>]) -> (Option<String>, Option<String>) {
    let names = || depends.iter().flatten();
    let common = names()
        .find(|n| n.starts_with("linux-headers-") && (n.ends_with("-common") || n.contains("-common-")))
        .cloned();
    let kbuild = names().find(|n| n.starts_with("linux-kbuild-")).cloned();
    (common, kbuild)
}

#[cfg(test)]
mod tests {
    use super::super::deb822::tests::{HEADERS_BOOKWORM, HEADERS_SID, HEADERS_TRIXIE, META_BOOKWORM, META_SID};
    use super::super::deb822::{parse_relations, parse_stanza};
    use super::*;

    #[test]
    fn metapackage_resolves_abi_package() {
        let deps = relations(&parse_stanza(META_BOOKWORM), "Depends");
        assert_eq!(abi_headers_package(&deps, "cloud-amd64").as_deref(), Some("linux-headers-6.1.0-50-cloud-amd64"));
        // sid's metapackage also depends on linux-base-<flavour>.
        let deps = relations(&parse_stanza(META_SID), "Depends");
        assert_eq!(
            abi_headers_package(&deps, "cloud-amd64").as_deref(),
            Some("linux-headers-7.2.13+deb14-cloud-amd64")
        );
        assert_eq!(abi_headers_package(&deps, "rt-amd64"), None);
    }

    #[test]
    fn headers_give_common_and_kbuild() {
        let cases = [
            (HEADERS_BOOKWORM, "linux-headers-6.1.0-50-common", "linux-kbuild-6.1"),
            (HEADERS_SID, "linux-headers-7.2.13+deb14-common", "linux-kbuild-7.2.13+deb14"),
            (HEADERS_TRIXIE, "linux-headers-6.12.117+deb13-common", "linux-kbuild-6.12.117+deb13"),
        ];
        for (text, common, kbuild) in cases {
            let deps = relations(&parse_stanza(text), "Depends");
            let (c, k) = common_and_kbuild(&deps);
            assert_eq!(c.as_deref(), Some(common));
            assert_eq!(k.as_deref(), Some(kbuild));
        }
        let rt = parse_relations("linux-headers-6.1.0-50-common-rt (= 1), linux-kbuild-6.1");
        assert_eq!(common_and_kbuild(&rt).0.as_deref(), Some("linux-headers-6.1.0-50-common-rt"));
    }

    #[test]
    fn image_package_names() {
        assert_eq!(
            image_packages(Packaging::Classic, "6.1.0-50-cloud-amd64"),
            ["linux-image-6.1.0-50-cloud-amd64-unsigned"]
        );
        assert_eq!(
            image_packages(Packaging::Split, "7.2.13+deb14-cloud-amd64"),
            [
                "linux-binary-unsigned-7.2.13+deb14-cloud-amd64",
                "linux-base-7.2.13+deb14-cloud-amd64",
                "linux-modules-7.2.13+deb14-cloud-amd64"
            ]
        );
    }

    #[test]
    fn deb_package_from_stanza_and_file_name() {
        let p = DebPackage::from_stanza(&parse_stanza(HEADERS_BOOKWORM), "x").unwrap();
        assert_eq!(p.file_name(), "linux-headers-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb");
        let epoch = DebPackage { version: "1:2.0-1".into(), ..p };
        assert!(epoch.file_name().contains("_1%3a2.0-1_"));
        let err = DebPackage::from_stanza(&parse_stanza(META_SID), "apt-cache show").unwrap_err();
        assert!(err.to_string().contains("`SHA256`"), "{err}");
    }
}
