//! apt with a private state directory under the cache: only the suite's
//! Packages index, signatures checked against the Debian keyring alone,
//! never the host's sources, pins or dpkg status.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;

use tracing::{debug, info};

use super::deb822::{parse_stanza, Stanza};
use super::resolve::DebPackage;
use super::{create_dir, file_has_sha256, run, FetchError, DEBIAN_KEYRING, ERROR_TAIL_LINES};
use crate::support::remove_file_if_exists;
use crate::support::{effective_uid, io_err, tail_lines};

pub(super) struct Apt<'a> {
    pub(super) dir: PathBuf,
    pub(super) uri: String,
    pub(super) suite: String,
    pub(super) arch: String,
    pub(super) name: String,
    pub(super) cache_note: String,
    /// Ctrl-C: stops apt's process group.
    pub(super) interrupt: &'a AtomicBool,
}

impl Apt<'_> {
    pub(super) fn prepare(&self) -> Result<(), FetchError> {
        for sub in ["state", "lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/trusted.gpg.d"] {
            create_dir(&self.dir.join(sub))?;
        }
        let list = self.dir.join("etc/sources.list");
        let line = sources_line(&self.uri, &self.suite, &self.arch, DEBIAN_KEYRING);
        fs::write(&list, line).map_err(io_err("write", &list))?;
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-q")
            .args(apt_options(&self.dir, &self.arch, effective_uid() == 0))
            // apt's messages are classified below; keep them in English.
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE");
        cmd
    }

    pub(super) fn update(&self) -> Result<(), FetchError> {
        let mut cmd = self.command("apt-get");
        cmd.arg("update");
        let out = run(&mut cmd, "apt-get update", self.interrupt)?;
        let text = apt_diagnostics(&out);
        match classify_update(out.status.success(), &text) {
            UpdateOutcome::Ok => Ok(()),
            failure => Err(self.update_error(failure, "apt-get update", &out, text)),
        }
    }

    fn update_error(&self, failure: UpdateOutcome, command: &str, out: &Output, text: String) -> FetchError {
        let output = tail_lines(&text, ERROR_TAIL_LINES);
        let (uri, suite) = (self.uri.clone(), self.suite.clone());
        match failure {
            UpdateOutcome::Unreachable => {
                FetchError::Unreachable { uri, name: self.name.clone(), cache_note: self.cache_note.clone(), output }
            }
            UpdateOutcome::SuiteMissing => FetchError::SuiteMissing { suite, uri, output },
            UpdateOutcome::Expired => FetchError::Expired { suite, uri, output },
            UpdateOutcome::Signature => FetchError::Signature { suite, uri, output },
            UpdateOutcome::Ok | UpdateOutcome::Other => FetchError::CommandFailed {
                command: command.to_owned(),
                status: out.status.to_string(),
                hint: format!(
                    "see apt's messages below; the private apt state is in {}, delete it to start over",
                    self.dir.display()
                ),
                output,
            },
        }
    }

    /// The candidate stanza of `package`, or `None` if the suite lacks it.
    pub(super) fn show(&self, package: &str) -> Result<Option<Stanza>, FetchError> {
        let mut cmd = self.command("apt-cache");
        cmd.args(["show", "--no-all-versions", package]);
        let out = run(&mut cmd, "apt-cache show", self.interrupt)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if is_not_found(&stderr) {
                return Ok(None);
            }
            return Err(FetchError::CommandFailed {
                command: format!("apt-cache show {package}"),
                status: out.status.to_string(),
                hint: format!("delete {} and retry to rebuild apt's cache", self.dir.display()),
                output: tail_lines(&stderr, ERROR_TAIL_LINES),
            });
        }
        let stanza = parse_stanza(&stdout);
        if stanza.get("Package").is_none() {
            return Ok(None);
        }
        Ok(Some(stanza))
    }

    pub(super) fn require(&self, package: &str, hint: impl FnOnce() -> String) -> Result<Stanza, FetchError> {
        self.show(package)?.ok_or_else(|| FetchError::PackageNotFound {
            package: package.to_owned(),
            suite: self.suite.clone(),
            uri: self.uri.clone(),
            hint: hint(),
        })
    }

    /// Downloads `packages` into `dest` (reusing files whose SHA256 matches)
    /// and returns the .deb paths in `packages` order.
    pub(super) fn download(&self, packages: &[DebPackage], dest: &Path) -> Result<Vec<PathBuf>, FetchError> {
        let files: Vec<PathBuf> = packages.iter().map(|p| dest.join(p.file_name())).collect();
        let missing: Vec<&DebPackage> =
            packages.iter().zip(&files).filter(|(p, f)| !file_has_sha256(f, &p.sha256)).map(|(p, _)| p).collect();
        if !missing.is_empty() {
            info!(kernel = %self.name, count = missing.len(), "downloading kernel packages");
            let mut cmd = self.command("apt-get");
            cmd.arg("download").args(missing.iter().map(|p| format!("{}={}", p.name, p.version))).current_dir(dest);
            let out = run(&mut cmd, "apt-get download", self.interrupt)?;
            let text = apt_diagnostics(&out);
            if !out.status.success() {
                let failure = match classify_update(false, &text) {
                    UpdateOutcome::Unreachable => UpdateOutcome::Unreachable,
                    _ => UpdateOutcome::Other,
                };
                return Err(self.update_error(failure, "apt-get download", &out, text));
            }
        }
        for (p, f) in packages.iter().zip(&files) {
            if !file_has_sha256(f, &p.sha256) {
                return Err(FetchError::UnexpectedOutput {
                    command: "apt-get download".into(),
                    detail: format!("{} is missing or does not match the SHA256 in the package list", f.display()),
                });
            }
        }
        // Old versions pile up otherwise.
        if let Ok(dir) = fs::read_dir(dest) {
            for e in dir.filter_map(|e| e.ok()) {
                let p = e.path();
                if p.extension() == Some(OsStr::new("deb")) && !files.contains(&p) {
                    debug!(file = %p.display(), "removing stale .deb");
                    remove_file_if_exists(&p)?;
                }
            }
        }
        Ok(files)
    }
}

/// The one-line sources.list for the private apt state: only the Packages
/// index, signatures checked against `keyring` alone.
fn sources_line(uri: &str, suite: &str, arch: &str, keyring: &str) -> String {
    format!("deb [arch={arch} target=Packages signed-by={keyring}] {uri} {suite} main\n")
}

/// `-o` options that point apt at the private state in `dir` and nowhere
/// else: no host sources, pins, trusted keys or dpkg status.
fn apt_options(dir: &Path, arch: &str, as_root: bool) -> Vec<String> {
    let d = dir.display();
    let mut opts = vec![
        format!("Dir::State={d}/state"),
        format!("Dir::State::Lists={d}/lists"),
        "Dir::State::status=/dev/null".to_owned(),
        format!("Dir::Cache={d}/cache"),
        format!("Dir::Etc::sourcelist={d}/etc/sources.list"),
        "Dir::Etc::sourceparts=-".to_owned(),
        format!("Dir::Etc::preferences={d}/etc/preferences"),
        format!("Dir::Etc::preferencesparts={d}/etc/preferences.d"),
        format!("Dir::Etc::trusted={d}/etc/trusted.gpg"),
        format!("Dir::Etc::trustedparts={d}/etc/trusted.gpg.d"),
        format!("APT::Architecture={arch}"),
        format!("APT::Architectures={arch}"),
        "Acquire::Languages=none".to_owned(),
    ];
    if as_root {
        // The _apt sandbox user cannot write into a root-owned cache.
        opts.push("APT::Sandbox::User=root".to_owned());
    }
    opts.into_iter().flat_map(|o| ["-o".to_owned(), o]).collect()
}

/// Result of an `apt-get update`, judged from its messages: apt exits 0
/// when an index merely failed to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateOutcome {
    Ok,
    Unreachable,
    SuiteMissing,
    Expired,
    Signature,
    Other,
}

fn classify_update(success: bool, text: &str) -> UpdateOutcome {
    const UNREACHABLE: &[&str] = &[
        "Could not resolve",
        "Temporary failure resolving",
        "Could not connect",
        "Connection failed",
        "Connection timed out",
        "Network is unreachable",
        "No route to host",
        "Unable to connect",
        "Could not handshake",
    ];
    const SIGNATURE: &[&str] =
        &["NO_PUBKEY", "GPG error", "is not signed", "BADSIG", "EXPKEYSIG", "signatures were invalid", "signature"];
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    let fetch_failed = text.contains("Failed to fetch");
    if has(UNREACHABLE) {
        UpdateOutcome::Unreachable
    } else if text.contains("does not have a Release file")
        || (fetch_failed && has(&[" 404 ", " 400 ", " 403 ", " 410 "]))
    {
        UpdateOutcome::SuiteMissing
    } else if text.contains("is expired") {
        UpdateOutcome::Expired
    } else if has(SIGNATURE) {
        UpdateOutcome::Signature
    } else if !success || fetch_failed || text.lines().any(|l| l.starts_with("E:")) {
        UpdateOutcome::Other
    } else {
        UpdateOutcome::Ok
    }
}

/// apt's error lines: `Err:` blocks from stdout and everything on stderr.
fn apt_diagnostics(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = Vec::new();
    let mut in_err = false;
    for line in stdout.lines() {
        if line.starts_with("Err:") {
            in_err = true;
        } else if !line.starts_with(' ') {
            in_err = false;
        }
        if in_err {
            lines.push(line);
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    lines.extend(stderr.lines());
    lines.join("\n")
}

fn is_not_found(stderr: &str) -> bool {
    stderr.contains("Unable to locate package")
        || stderr.contains("No packages found")
        || stderr.contains("purely virtual")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_update_messages() {
        use UpdateOutcome::*;
        let cases = [
            ("", true, Ok),
            (
                "Err:1 http://mirror.example/debian bookworm InRelease\n  Could not resolve 'mirror.example'\nW: Failed to fetch http://mirror.example/debian/dists/bookworm/InRelease  Could not resolve 'mirror.example'\nW: Some index files failed to download. They have been ignored, or old ones used instead.",
                true,
                Unreachable,
            ),
            (
                "W: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)",
                true,
                Unreachable,
            ),
            (
                "Err:2 http://mirror.example/debian nosuchsuite Release\n  404  Not Found [IP: 192.0.2.1 80]\nE: The repository 'http://mirror.example/debian nosuchsuite Release' does not have a Release file.",
                false,
                SuiteMissing,
            ),
            (
                "E: Failed to fetch http://mirror.example/nothere/dists/bookworm/InRelease  400  Bad Request [IP: 192.0.2.1 80]\nE: The repository 'http://mirror.example/nothere bookworm InRelease' is not signed.",
                false,
                SuiteMissing,
            ),
            (
                "W: GPG error: http://mirror.example/debian sid InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 6ED0E7B82643E131\nE: The repository 'http://mirror.example/debian sid InRelease' is not signed.",
                false,
                Signature,
            ),
            (
                "E: Release file for http://mirror.example/debian/dists/sid/InRelease is expired (invalid since 24d 2h). Updates for this repository will not be applied.",
                false,
                Expired,
            ),
            ("E: something odd", true, Other),
            ("", false, Other),
        ];
        for (text, ok, want) in cases {
            assert_eq!(classify_update(ok, text), want, "{text}");
        }
    }

    #[test]
    fn not_found_messages() {
        assert!(is_not_found("N: Unable to locate package foo\nE: No packages found"));
        assert!(is_not_found("N: Can't select versions from package 'x' as it is purely virtual"));
        assert!(!is_not_found("E: Could not open file"));
    }

    #[test]
    fn apt_options_are_private() {
        let opts = apt_options(Path::new("/c/apt/sid"), "amd64", false);
        let joined = opts.join(" ");
        for want in [
            "-o Dir::State::status=/dev/null",
            "-o Dir::Etc::sourceparts=-",
            "-o Dir::State::Lists=/c/apt/sid/lists",
            "-o Dir::Etc::sourcelist=/c/apt/sid/etc/sources.list",
            "-o Dir::Etc::trustedparts=/c/apt/sid/etc/trusted.gpg.d",
            "-o Dir::Cache=/c/apt/sid/cache",
        ] {
            assert!(joined.contains(want), "missing {want} in {joined}");
        }
        assert!(!joined.contains("Sandbox"));
        assert!(apt_options(Path::new("/c"), "amd64", true).join(" ").contains("APT::Sandbox::User=root"));
        // Every value follows its own -o.
        assert!(opts.chunks(2).all(|c| c[0] == "-o"));
    }

    #[test]
    fn sources_line_checks_signatures() {
        assert_eq!(
            sources_line("http://mirror.example/debian", "sid", "amd64", DEBIAN_KEYRING),
            "deb [arch=amd64 target=Packages signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian sid main\n"
        );
    }

    #[test]
    fn diagnostics_keep_err_blocks_and_stderr() {
        use std::os::unix::process::ExitStatusExt;
        let out = Output {
            status: std::process::ExitStatus::from_raw(0),
            stdout: b"Get:1 x\nErr:1 http://m.example/debian sid InRelease\n  Could not resolve 'm.example'\nReading package lists...\n".to_vec(),
            stderr: b"W: Failed to fetch\n".to_vec(),
        };
        assert_eq!(
            apt_diagnostics(&out),
            "Err:1 http://m.example/debian sid InRelease\n  Could not resolve 'm.example'\nW: Failed to fetch"
        );
    }
}
