//! Small helpers every stage may use: the one shape of an I/O error, cache
//! locks that say when they wait, the cache's use stamps, log tails, hex,
//! and `$PATH` lookup.
//! Depends on nothing else of the rig.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A filesystem or process operation that failed, with what and where.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct IoError {
    /// What was being done ("create directory", "run", ...).
    pub action: &'static str,
    /// The path involved (or the program run).
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// `map_err(io_err("write", &path))`.
pub fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IoError + 'a {
    move |source| IoError { action, path: path.to_owned(), source }
}

/// Taking a lock in the cache failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened.
    #[error(transparent)]
    Open(#[from] IoError),
    /// flock itself failed.
    #[error("cannot lock {}: {source}; keep the cache on a local filesystem that supports flock (set RIG_CACHE_DIR)", path.display())]
    Flock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Errno,
    },
}

/// Shared (readers) or exclusive (a writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

impl LockMode {
    fn args(self) -> (FlockArg, FlockArg) {
        match self {
            LockMode::Shared => (FlockArg::LockSharedNonblock, FlockArg::LockShared),
            LockMode::Exclusive => (FlockArg::LockExclusiveNonblock, FlockArg::LockExclusive),
        }
    }
}

/// flock on `path` (created if missing). When another process holds it,
/// logs `waiting` once and blocks until it is free.
pub fn lock_file(path: &Path, mode: LockMode, waiting: &str) -> Result<Flock<File>, LockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open lock file", path))?;
    let (try_arg, wait_arg) = mode.args();
    let flock_err = |source| LockError::Flock { path: path.to_owned(), source };
    match Flock::lock(file, try_arg) {
        Ok(l) => Ok(l),
        Err((file, Errno::EWOULDBLOCK)) => {
            tracing::info!(lock = %path.display(), "{waiting}");
            Flock::lock(file, wait_arg).map_err(|(_, e)| flock_err(e))
        }
        Err((_, e)) => Err(flock_err(e)),
    }
}

/// flock on `path` (created if missing) without waiting: `None` when
/// another process holds it.
pub fn try_lock_file(path: &Path, mode: LockMode) -> Result<Option<Flock<File>>, LockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open lock file", path))?;
    match Flock::lock(file, mode.args().0) {
        Ok(l) => Ok(Some(l)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, source)) => Err(LockError::Flock { path: path.to_owned(), source }),
    }
}

/// Changes a held lock's mode, logging `waiting` if that has to wait.
pub fn relock(lock: &Flock<File>, path: &Path, mode: LockMode, waiting: &str) -> Result<(), LockError> {
    let (try_arg, wait_arg) = mode.args();
    if lock.relock(try_arg).is_ok() {
        return Ok(());
    }
    tracing::info!(lock = %path.display(), "{waiting}");
    lock.relock(wait_arg).map_err(|source| LockError::Flock { path: path.to_owned(), source })
}

/// The file in a cached directory whose modification time says when a run
/// last used it (`rig cache` prunes by it).
pub const USED_FILE: &str = ".rig-used";

/// Records that a run uses the cache item `item` now: a directory gets
/// [`USED_FILE`] rewritten, a file its modification time set. Best effort:
/// a cache the user cannot write still works, it just looks unused.
pub fn mark_used(item: &Path) {
    let result = if item.is_dir() {
        // Written, not just touched: writing needs only write permission,
        // so a stamp made writable in a root-owned chroot works too.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        std::fs::write(item.join(USED_FILE), format!("{}\n", now.as_secs()))
    } else {
        OpenOptions::new().write(true).open(item).and_then(|f| f.set_modified(std::time::SystemTime::now()))
    };
    if let Err(e) = result {
        tracing::debug!(item = %item.display(), error = %e, "cannot record the use of a cache item");
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `"52 49 47 53"`, `"52494753"` or `"0x5249"` into bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = digits.trim_start_matches("0x");
    if !digits.is_ascii() {
        return Err(format!("`{s}` is not hex"));
    }
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(format!("`{s}` is not an even number of hex digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| format!("`{s}` is not hex")))
        .collect()
}

/// The last `n` lines of `text`, with a marker if lines were dropped.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines ...]\n"));
    }
    out.push_str(&lines[start..].join("\n"));
    out
}

/// The first `head` and the last `tail` lines of `text`, with a marker for
/// what is left out (a report's head says what happened, its tail where).
pub fn head_and_tail(text: &str, head: usize, tail: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= head + tail {
        return lines.join("\n");
    }
    let cut = lines.len() - head - tail;
    format!("{}\n[... {cut} lines ...]\n{}", lines[..head].join("\n"), lines[lines.len() - tail..].join("\n"))
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Full path of `program` if it is an executable file on `$PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail_lines("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(tail_lines("a\nb\nc", 2), "[... 1 earlier lines ...]\nb\nc");
        assert_eq!(tail_bytes("abcdef", 3), "def");
        assert_eq!(tail_bytes("aé", 1), "");
        assert_eq!(head_and_tail("a\nb\nc\nd\ne", 1, 2), "a\n[... 2 lines ...]\nd\ne");
        assert_eq!(head_and_tail("a\nb", 1, 1), "a\nb");
    }

    #[test]
    fn hex_both_ways() {
        assert_eq!(hex(&[0, 0xab]), "00ab");
        assert_eq!(parse_hex("0a ff"), Ok(vec![10, 255]));
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("a\u{e9}b").is_err());
    }

    #[test]
    fn mark_used_stamps_dirs_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        mark_used(dir.path());
        let stamp = dir.path().join(USED_FILE);
        assert!(std::fs::read_to_string(&stamp).expect("stamp").trim().parse::<u64>().is_ok());
        let file = dir.path().join("image.cpio");
        std::fs::write(&file, b"x").expect("write");
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        File::options().write(true).open(&file).and_then(|f| f.set_modified(old)).expect("set mtime");
        mark_used(&file);
        let mtime = std::fs::metadata(&file).and_then(|m| m.modified()).expect("mtime");
        assert!(mtime > old + std::time::Duration::from_secs(3600), "{mtime:?}");
        // A missing item is not an error.
        mark_used(&dir.path().join("gone"));
    }

    #[test]
    fn exclusive_lock_excludes_and_relock_shares() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("l");
        let held = lock_file(&path, LockMode::Exclusive, "waiting").expect("lock");
        let other = File::open(&path).expect("open");
        assert!(Flock::lock(other, FlockArg::LockSharedNonblock).is_err());
        assert!(try_lock_file(&path, LockMode::Shared).expect("try").is_none());
        relock(&held, &path, LockMode::Shared, "waiting").expect("relock");
        assert!(try_lock_file(&path, LockMode::Shared).expect("try").is_some());
        assert!(try_lock_file(&path, LockMode::Exclusive).expect("try").is_none());
        let other = File::open(&path).expect("open");
        assert!(Flock::lock(other, FlockArg::LockSharedNonblock).is_ok());
    }
}
