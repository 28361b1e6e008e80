//! A boot kept across runs: the guest a run saved after boot and setup
//! (for its isolated groups), stored in the cache with the logs and the
//! record of its boot and setup groups, so the next run with the same
//! inputs restores it instead of booting. The boot and setup verdicts are
//! read back from the stored logs the way `rig parse` reads a run directory
//! ([`super::replay`]), and the run's logs start with the stored ones.
//!
//! The key is everything that decides the saved guest: this rig binary,
//! the QEMU binary, QEMU's command line (with the run's own directories
//! replaced by placeholders), the identity of every file it names (kernel,
//! initramfs, Debian root), the kernel package's version, the setup steps
//! and, under KVM, the host CPU. Only a boot whose checks all passed and
//! whose kernel reported nothing is stored, and none whose setup ran a host
//! command. Layout: `boots/<release>/<key>/`.

use super::record::{self, RunRecord};
use crate::guest::console::Resume;
use crate::guest::protocol::Nonce;
use crate::plan::step::{Action, Check};
use crate::results::TestResult;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The cache folder of saved boots.
pub const DIR: &str = "boots";
/// The saved guest in an entry.
const STATE: &str = "guest.state";
/// The entry's own description.
const META: &str = "saved.json";
/// The logs an entry keeps, as the run directory names them.
const LOGS: [&str; 3] = ["console.log", "shell.log", "kernel.log"];
/// Bumped when what an entry holds changes meaning.
const FORMAT: u32 = 1;
/// Saved boots kept per kernel release (about 65 MB each for 256 MiB of
/// guest memory); storing one more drops the least recently used.
const KEEP_PER_RELEASE: usize = 4;

/// What the key is made of, besides the files the command line names.
pub struct KeyInputs<'a> {
    /// QEMU's arguments.
    pub argv: &'a [String],
    /// This run's directories (replaced by placeholders in `argv`).
    pub run_paths: &'a [&'a Path],
    /// The QEMU binary.
    pub qemu: &'a Path,
    /// The rest: the kernel's version, the setup group's checks, as text.
    pub other: String,
}

/// `argv` with each of `paths` replaced by `<dir0>`, `<dir1>`, ...: the
/// parts of the command line that name this run alone (pure).
pub fn normalized_argv(argv: &[String], paths: &[&Path]) -> Vec<String> {
    argv.iter()
        .map(|a| {
            let mut a = a.clone();
            for (i, p) in paths.iter().enumerate() {
                let p = p.to_string_lossy();
                if !p.is_empty() {
                    a = a.replace(p.as_ref(), &format!("<dir{i}>"));
                }
            }
            a
        })
        .collect()
}

/// The absolute paths a command line names (`-kernel X`, `file=X` inside an
/// option), in order, outside the placeholders (pure).
pub fn named_files(normalized: &[String]) -> Vec<String> {
    let mut out = vec![];
    for arg in normalized {
        for part in arg.split(',') {
            let value = part.rsplit_once('=').map_or(part, |(_, v)| v);
            if value.starts_with('/') && !out.iter().any(|o| o == value) {
                out.push(value.to_owned());
            }
        }
    }
    out
}

/// A file's identity without reading it: device, inode and size. Not its
/// time: the cache sets an item's time each time a run uses it; a file
/// the cache writes anew is renamed into place, so it gets a new inode.
fn identity(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(md) => format!("{} {} {} {}", path.display(), md.dev(), md.ino(), md.len()),
        Err(_) => format!("{} missing", path.display()),
    }
}

/// The host CPU as KVM shows it to a guest with `-cpu host`.
fn host_cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("model name") || l.starts_with("flags"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a boot with this setup can be kept: not when a setup step runs a
/// host command, whose effects (files on the host) a restore would not
/// bring back (pure).
pub fn setup_keeps(setup: &[Check]) -> bool {
    !setup.iter().any(|c| matches!(c.action, Action::HostCommand { .. }))
}

/// The key of the guest these inputs boot to.
pub fn key(inputs: &KeyInputs) -> String {
    let argv = normalized_argv(inputs.argv, inputs.run_paths);
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update(s.as_bytes());
        h.update([0]);
    };
    put(&format!("saved boot {FORMAT}"));
    put(&std::env::current_exe().map(|p| identity(&p)).unwrap_or_default());
    put(&identity(inputs.qemu));
    for a in &argv {
        put(a);
    }
    for f in named_files(&argv) {
        put(&identity(Path::new(&f)));
    }
    put(&inputs.other);
    if argv.iter().any(|a| a.contains("kvm")) {
        put(&host_cpu());
    }
    crate::support::hex(&h.finalize()[..12])
}

/// What an entry says of itself besides its record (`run.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: u32,
    steps: u64,
    lines: usize,
    /// How long the boot and setup took when they ran.
    boot_ms: u64,
}

/// A stored boot, found for a run.
#[derive(Debug)]
pub struct SavedBoot {
    dir: PathBuf,
    meta: Meta,
    /// Its boot and setup groups as the run that saved it recorded them.
    record: RunRecord,
}

/// The entry's folder for `release` and `key`.
fn entry_dir(cache_dir: &Path, release: &str, key: &str) -> PathBuf {
    cache_dir.join(DIR).join(release).join(key)
}

impl SavedBoot {
    /// The stored boot for `key`, if there is a whole one.
    pub fn find(cache_dir: &Path, release: &str, key: &str) -> Option<SavedBoot> {
        let dir = entry_dir(cache_dir, release, key);
        let meta: Meta = serde_json::from_str(&std::fs::read_to_string(dir.join(META)).ok()?).ok()?;
        let whole = meta.format == FORMAT
            && std::fs::metadata(dir.join(STATE)).is_ok_and(|m| m.len() > 0)
            && LOGS.iter().chain(&[record::FILE]).all(|f| dir.join(f).is_file());
        if !whole {
            return None;
        }
        let record = super::replay::read_record(&dir).ok()?;
        crate::support::mark_used(&dir);
        Some(SavedBoot { dir, meta, record })
    }

    /// The saved guest.
    pub fn state(&self) -> PathBuf {
        self.dir.join(STATE)
    }

    /// The nonce of the run that saved it: the step marks in its logs carry it.
    pub fn nonce(&self) -> Nonce {
        Nonce::fixed(&self.record.nonce)
    }

    /// How long its boot and setup took.
    pub fn boot_time(&self) -> Duration {
        Duration::from_millis(self.meta.boot_ms)
    }

    /// Its boot and setup groups, their verdicts read back from its logs.
    pub fn groups(&self) -> Result<Vec<TestResult>, String> {
        let report = super::replay::replay_record(&self.dir, &self.record).map_err(|e| e.to_string())?;
        Ok(report.tests)
    }

    /// The record of its boot and setup groups: how each check got its verdict.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Starts `run_dir`'s logs with the stored ones; returns where the
    /// restored guest goes on (before its restore mark).
    pub fn prime(&self, run_dir: &Path) -> std::io::Result<Resume> {
        for name in LOGS {
            let text = std::fs::read(self.dir.join(name))?;
            crate::support::write_private(&run_dir.join(name), text)?;
        }
        Ok(Resume { steps: self.meta.steps, lines: self.meta.lines })
    }

    /// Forgets an entry that could not be restored.
    pub fn forget(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a run hands over to store its boot.
pub struct ToStore<'a> {
    pub cache_dir: &'a Path,
    pub key: &'a str,
    /// The saved guest (in the run's private directory).
    pub state: &'a Path,
    pub run_dir: &'a Path,
    /// Where the saved guest left the logs.
    pub resume: Resume,
    /// `shell.log`'s length at the save.
    pub shell_bytes: u64,
    pub boot: Duration,
    /// The run's record, its boot and setup groups only (its release and
    /// nonce name the entry's folder and its logs' marks).
    pub record: RunRecord,
}

/// The first `lines` lines of `text` (pure).
fn first_lines(text: &[u8], lines: usize) -> &[u8] {
    let mut seen = 0;
    for (i, b) in text.iter().enumerate() {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return &text[..=i];
            }
        }
    }
    text
}

/// Stores a boot: written under a temporary name, then renamed into place;
/// an entry that is already there (another run's) stays.
pub fn store(s: &ToStore) -> std::io::Result<()> {
    let dir = entry_dir(s.cache_dir, &s.record.release, s.key);
    if dir.exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(s.cache_dir);
    std::fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new().prefix(&format!(".{}.tmp", s.key)).tempdir_in(parent)?;
    // A link when the run's directory is on the same filesystem: no copy.
    let state = tmp.path().join(STATE);
    std::fs::hard_link(s.state, &state).or_else(|_| std::fs::copy(s.state, &state).map(drop))?;
    let console = std::fs::read(s.run_dir.join("console.log"))?;
    std::fs::write(tmp.path().join("console.log"), first_lines(&console, s.resume.lines))?;
    let shell = std::fs::read(s.run_dir.join("shell.log"))?;
    let end = usize::try_from(s.shell_bytes).unwrap_or(usize::MAX).min(shell.len());
    std::fs::write(tmp.path().join("shell.log"), &shell[..end])?;
    std::fs::copy(s.run_dir.join("kernel.log"), tmp.path().join("kernel.log"))?;
    let rec = serde_json::to_string_pretty(&s.record).map_err(std::io::Error::other)?;
    std::fs::write(tmp.path().join(record::FILE), rec)?;
    let meta = Meta {
        format: FORMAT,
        steps: s.resume.steps,
        lines: s.resume.lines,
        boot_ms: u64::try_from(s.boot.as_millis()).unwrap_or(u64::MAX),
    };
    std::fs::write(tmp.path().join(META), serde_json::to_string_pretty(&meta).map_err(std::io::Error::other)?)?;
    crate::support::mark_used(tmp.path());
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another run stored the same boot first.
        if !dir.exists() {
            return Err(e);
        }
    }
    // A run that uses an entry has its own link to the state: removing is safe.
    for old in beyond_bound(&entries(parent), KEEP_PER_RELEASE) {
        let _ = std::fs::remove_dir_all(parent.join(old));
    }
    Ok(())
}

/// The whole entries in `parent`, each with its last use.
fn entries(parent: &Path) -> Vec<(SystemTime, String)> {
    let Ok(rd) = std::fs::read_dir(parent) else { return vec![] };
    rd.filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .map(|name| {
            let dir = parent.join(&name);
            let used = crate::support::used_stamp(&dir)
                .or_else(|| std::fs::metadata(&dir).and_then(|m| m.modified()).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (used, name)
        })
        .collect()
}

/// The entries to drop so `keep` remain, the most recently used kept (pure).
fn beyond_bound(entries: &[(SystemTime, String)], keep: usize) -> Vec<String> {
    let mut by_use: Vec<&(SystemTime, String)> = entries.iter().collect();
    by_use.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    by_use.into_iter().skip(keep).map(|(_, name)| name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_runs_own_directories_leave_the_key() {
        let a = args(&["-kernel", "/c/vmlinux", "-chardev", "socket,id=con0,path=/tmp/rig-abc/console.sock"]);
        let b = args(&["-kernel", "/c/vmlinux", "-chardev", "socket,id=con0,path=/tmp/rig-xyz/console.sock"]);
        let na = normalized_argv(&a, &[Path::new("/tmp/rig-abc")]);
        assert_eq!(na, normalized_argv(&b, &[Path::new("/tmp/rig-xyz")]));
        assert_eq!(na[3], "socket,id=con0,path=<dir0>/console.sock");
        // The files that decide the guest stay, the run's own do not.
        assert_eq!(named_files(&na), vec!["/c/vmlinux".to_string()]);
    }

    #[test]
    fn files_inside_options_are_named_once() {
        let a = args(&[
            "-initrd",
            "/c/i.cpio",
            "-drive",
            "file=/c/root.sqfs,format=raw,readonly=on",
            "-initrd",
            "/c/i.cpio",
        ]);
        assert_eq!(named_files(&a), vec!["/c/i.cpio".to_string(), "/c/root.sqfs".to_string()]);
    }

    #[test]
    fn the_least_recently_used_boots_go_beyond_the_bound() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let e = vec![(t(5), "b".to_string()), (t(9), "a".into()), (t(1), "c".into()), (t(7), "d".into())];
        assert_eq!(beyond_bound(&e, 2), vec!["b".to_string(), "c".into()]);
        assert!(beyond_bound(&e, 4).is_empty());
    }

    #[test]
    fn a_setup_with_a_host_command_is_not_kept() {
        let guest = Check::rig("insmod");
        assert!(setup_keeps(std::slice::from_ref(&guest)));
        let host = Check {
            action: Action::HostCommand {
                command: "touch /tmp/x".into(),
                status: 0,
                expect: None,
                timeout: Duration::from_secs(1),
                cwd: "/".into(),
            },
            ..guest.clone()
        };
        assert!(!setup_keeps(&[guest, host]));
    }

    #[test]
    fn first_lines_cuts_after_the_nth_newline() {
        assert_eq!(first_lines(b"a\nb\nc\n", 2), b"a\nb\n");
        assert_eq!(first_lines(b"a\nb", 5), b"a\nb");
        assert_eq!(first_lines(b"a\nb\n", 0), b"a\nb\n");
    }

    #[test]
    fn a_stored_boot_is_found_whole_or_not_at_all() {
        let cache = tempfile::tempdir().expect("cache");
        let run = tempfile::tempdir().expect("run");
        for (name, text) in [("console.log", "l1\nl2\nl3\n"), ("shell.log", "rig# true\nlater"), ("kernel.log", "k\n")]
        {
            std::fs::write(run.path().join(name), text).expect("log");
        }
        let state = run.path().join("state");
        std::fs::write(&state, b"QEVM").expect("state");
        let s = ToStore {
            cache_dir: cache.path(),
            key: "k1",
            state: &state,
            run_dir: run.path(),
            resume: Resume { steps: 3, lines: 2 },
            shell_bytes: 10,
            boot: Duration::from_millis(1500),
            record: RunRecord::new("bookworm-6.1", "6.1.0-x", "0123abcd"),
        };
        store(&s).expect("store");
        store(&s).expect("a second store keeps the first");
        let found = SavedBoot::find(cache.path(), "6.1.0-x", "k1").expect("found");
        assert_eq!(found.nonce().as_str(), "0123abcd");
        assert_eq!(found.record().kernel, "bookworm-6.1");
        assert_eq!(found.boot_time(), Duration::from_millis(1500));
        let into = tempfile::tempdir().expect("into");
        assert_eq!(found.prime(into.path()).expect("prime"), Resume { steps: 3, lines: 2 });
        assert_eq!(std::fs::read_to_string(into.path().join("console.log")).expect("log"), "l1\nl2\n");
        assert_eq!(std::fs::read_to_string(into.path().join("shell.log")).expect("log"), "rig# true\n");
        assert!(SavedBoot::find(cache.path(), "6.1.0-x", "other").is_none());
        std::fs::write(entry_dir(cache.path(), "6.1.0-x", "k1").join(STATE), b"").expect("truncate");
        assert!(SavedBoot::find(cache.path(), "6.1.0-x", "k1").is_none(), "an empty state is not a boot");
    }
}
