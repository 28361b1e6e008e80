//! Small helpers every stage may use: the one shape of an I/O error, cache
//! locks that say when they wait (and give up on Ctrl-C), child processes
//! in process groups of their own that Ctrl-C kills, private files and
//! directories, the cache's use stamps, log tails, hex, and `$PATH` lookup.
//! Depends on nothing else of the rig.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

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

/// Removes a file; one that is not there is no error.
pub fn remove_file_if_exists(path: &Path) -> Result<(), IoError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
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
    /// Ctrl-C or SIGTERM while waiting for another rig to let go.
    #[error("interrupted while waiting for the lock {}", path.display())]
    Interrupted {
        /// The lock file.
        path: PathBuf,
    },
}

/// Shared (readers) or exclusive (a writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

impl LockMode {
    fn nonblocking(self) -> FlockArg {
        match self {
            LockMode::Shared => FlockArg::LockSharedNonblock,
            LockMode::Exclusive => FlockArg::LockExclusiveNonblock,
        }
    }
}

/// How often a lock wait looks at the interrupt flag.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// flock on `path` (created if missing). When another process holds it,
/// logs `waiting` once and waits until it is free, or until `interrupt` is
/// set (flock itself cannot be interrupted, so the wait polls).
pub fn lock_file(path: &Path, mode: LockMode, waiting: &str, interrupt: &AtomicBool) -> Result<Flock<File>, LockError> {
    let mut file = open_lock(path)?;
    let mut logged = false;
    loop {
        match Flock::lock(file, mode.nonblocking()) {
            Ok(l) => return Ok(l),
            Err((f, Errno::EWOULDBLOCK)) => file = f,
            Err((_, source)) => return Err(LockError::Flock { path: path.to_owned(), source }),
        }
        wait_for_lock(path, waiting, &mut logged, interrupt)?;
    }
}

fn open_lock(path: &Path) -> Result<File, LockError> {
    Ok(OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open lock file", path))?)
}

/// One poll interval of a lock wait: logs once, fails on an interrupt.
fn wait_for_lock(path: &Path, waiting: &str, logged: &mut bool, interrupt: &AtomicBool) -> Result<(), LockError> {
    if !*logged {
        tracing::info!(lock = %path.display(), "{waiting}");
        *logged = true;
    }
    if interrupt.load(Ordering::Relaxed) {
        return Err(LockError::Interrupted { path: path.to_owned() });
    }
    std::thread::sleep(LOCK_POLL);
    Ok(())
}

/// flock on `path` (created if missing) without waiting: `None` when
/// another process holds it.
pub fn try_lock_file(path: &Path, mode: LockMode) -> Result<Option<Flock<File>>, LockError> {
    let file = open_lock(path)?;
    match Flock::lock(file, mode.nonblocking()) {
        Ok(l) => Ok(Some(l)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, source)) => Err(LockError::Flock { path: path.to_owned(), source }),
    }
}

/// Changes a held lock's mode, logging `waiting` if that has to wait, and
/// giving up when `interrupt` is set.
pub fn relock(
    lock: &Flock<File>,
    path: &Path,
    mode: LockMode,
    waiting: &str,
    interrupt: &AtomicBool,
) -> Result<(), LockError> {
    let mut logged = false;
    loop {
        match lock.relock(mode.nonblocking()) {
            Ok(()) => return Ok(()),
            Err(Errno::EWOULDBLOCK) => {}
            Err(source) => return Err(LockError::Flock { path: path.to_owned(), source }),
        }
        wait_for_lock(path, waiting, &mut logged, interrupt)?;
    }
}

// ---------------------------------------------------------------------------
// Child processes

/// Process groups of the children running now (0: a free slot), so that a
/// second Ctrl-C, which ends the rig at once, can kill them from the signal
/// handler ([`kill_child_groups`]).
static CHILD_GROUPS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];

/// How long a child's group has after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(500);

/// How often a wait looks at the interrupt flag.
const CHILD_POLL: Duration = Duration::from_millis(20);

/// Sends SIGKILL to the process group of every child running now. Only
/// atomics and kill(2): safe in a signal handler.
pub fn kill_child_groups() {
    for slot in &CHILD_GROUPS {
        let group = slot.load(Ordering::SeqCst);
        if group > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

/// A child process stopped by Ctrl-C, or one that could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// Spawning or waiting failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Ctrl-C or SIGTERM: the child's process group was killed.
    #[error("`{program}` was interrupted and stopped")]
    Interrupted {
        /// What ran.
        program: String,
    },
}

/// A child in a process group of its own (a terminal's Ctrl-C reaches only
/// the rig, which stops the whole group: make and its compilers, apt and
/// its download methods). The group is killed when this is dropped, and
/// the child gets SIGKILL should the rig die first (PDEATHSIG).
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    program: String,
    slot: Option<usize>,
    reaped: bool,
}

impl GroupChild {
    /// Spawns `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut Command) -> Result<GroupChild, IoError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe; between fork and exec it only
        // sets the signal the child gets when the spawning thread dies.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        tracing::debug!(command = ?cmd, "running");
        let child = cmd.spawn().map_err(|source| IoError { action: "run", path: PathBuf::from(&program), source })?;
        let group = child.id() as i32;
        let slot =
            CHILD_GROUPS.iter().position(|s| s.compare_exchange(0, group, Ordering::SeqCst, Ordering::SeqCst).is_ok());
        Ok(GroupChild { child, program, slot, reaped: false })
    }

    /// The child's process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child, for its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for the child to exit; when `interrupt` is set first, stops
    /// the group (SIGTERM, then SIGKILL after a short grace) and returns
    /// [`ChildError::Interrupted`].
    pub fn wait(&mut self, interrupt: &AtomicBool) -> Result<ExitStatus, ChildError> {
        let wait_err = |source| IoError { action: "wait for", path: PathBuf::from(&self.program), source };
        loop {
            if let Some(status) = self.child.try_wait().map_err(wait_err)? {
                // Background processes it left behind go with it.
                self.kill_group(libc::SIGKILL);
                self.set_reaped();
                return Ok(status);
            }
            if interrupt.load(Ordering::Relaxed) {
                self.stop();
                return Err(ChildError::Interrupted { program: self.program.clone() });
            }
            std::thread::sleep(CHILD_POLL);
        }
    }

    /// SIGTERM to the group (make removes the target it was writing), then
    /// SIGKILL to whatever is left; the child is reaped.
    fn stop(&mut self) {
        if self.reaped {
            return;
        }
        self.kill_group(libc::SIGTERM);
        let until = Instant::now() + TERM_GRACE;
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_group(libc::SIGKILL);
        let _ = self.child.wait();
        self.set_reaped();
    }

    /// The leader is gone: its group id may be reused, so the signal
    /// handler must not see it any more.
    fn set_reaped(&mut self) {
        self.reaped = true;
        if let Some(slot) = self.slot.take() {
            CHILD_GROUPS[slot].store(0, Ordering::SeqCst);
        }
    }

    fn kill_group(&self, signal: libc::c_int) {
        // SAFETY: kill(2) has no memory-safety preconditions; the group
        // is ours (its leader is our child, or was until just reaped).
        unsafe { libc::kill(-(self.child.id() as i32), signal) };
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group(libc::SIGKILL);
            let _ = self.child.wait();
            self.set_reaped();
        }
    }
}

/// Runs `cmd` to the end in a process group of its own, stdin from
/// /dev/null, stdout and stderr captured (like [`Command::output`]), and
/// stops it when `interrupt` is set.
pub fn output(cmd: &mut Command, interrupt: &AtomicBool) -> Result<Output, ChildError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = GroupChild::spawn(cmd)?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.child_mut().stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.child_mut().stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    // On an interrupt the readers are left behind: a process that escaped
    // the group could hold the pipes open.
    let status = child.wait(interrupt)?;
    Ok(Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

// ---------------------------------------------------------------------------
// Private files and directories

/// A temporary directory under `$TMPDIR` that only the user can enter
/// (0700 whatever the umask), removed on drop.
pub fn private_tempdir(prefix: &str) -> io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(prefix).permissions(Permissions::from_mode(0o700)).tempdir()?;
    // The umask can only have narrowed it; make it exactly 0700.
    std::fs::set_permissions(dir.path(), Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Creates (or truncates) `path` readable and writable by the user only.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // An existing file keeps its mode through open(2): set it.
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Opens `path` to append to it, as a file only the user can read (a
/// transcript that a restored guest goes on writing).
pub fn append_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Writes `data` to `path` as a file only the user can read.
pub fn write_private(path: &Path, data: impl AsRef<[u8]>) -> io::Result<()> {
    io::Write::write_all(&mut create_private_file(path)?, data.as_ref())
}

/// The file in a cached directory whose modification time says when a run
/// last used it (`rig cache` prunes by it).
pub const USED_FILE: &str = ".rig-used";

/// When a run last used the cache directory `dir`, by its [`USED_FILE`].
pub fn used_stamp(dir: &Path) -> Option<std::time::SystemTime> {
    dir.join(USED_FILE).symlink_metadata().and_then(|m| m.modified()).ok()
}

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
        let never = AtomicBool::new(false);
        let held = lock_file(&path, LockMode::Exclusive, "waiting", &never).expect("lock");
        let other = File::open(&path).expect("open");
        assert!(Flock::lock(other, FlockArg::LockSharedNonblock).is_err());
        assert!(try_lock_file(&path, LockMode::Shared).expect("try").is_none());
        relock(&held, &path, LockMode::Shared, "waiting", &never).expect("relock");
        assert!(try_lock_file(&path, LockMode::Shared).expect("try").is_some());
        assert!(try_lock_file(&path, LockMode::Exclusive).expect("try").is_none());
        let other = File::open(&path).expect("open");
        assert!(Flock::lock(other, FlockArg::LockSharedNonblock).is_ok());
    }

    #[test]
    fn lock_waits_end_on_an_interrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("l");
        let never = AtomicBool::new(false);
        let held = lock_file(&path, LockMode::Exclusive, "waiting", &never).expect("lock");
        let interrupt = std::sync::Arc::new(AtomicBool::new(false));
        let setter = {
            let i = interrupt.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                i.store(true, Ordering::Relaxed);
            })
        };
        let start = Instant::now();
        let e = lock_file(&path, LockMode::Shared, "waiting", &interrupt).expect_err("held elsewhere");
        assert!(matches!(e, LockError::Interrupted { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        setter.join().expect("setter");
        // A shared holder keeps an upgrade waiting until the interrupt too.
        drop(held);
        let a = lock_file(&path, LockMode::Shared, "waiting", &never).expect("shared");
        let _b = lock_file(&path, LockMode::Shared, "waiting", &never).expect("shared too");
        let e = relock(&a, &path, LockMode::Exclusive, "waiting", &interrupt).expect_err("upgrade");
        assert!(matches!(e, LockError::Interrupted { .. }), "{e}");
    }

    /// The tests that kill process groups run one at a time:
    /// `kill_child_groups` reaches every child of this process.
    static GROUPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A process of `group` that is not a zombie (an orphan killed with its
    /// group stays one until init reaps it).
    /// The group's processes die within a second of SIGKILL (signals land
    /// asynchronously; a loaded machine can take a while).
    fn group_gone(group: u32) -> bool {
        let until = Instant::now() + Duration::from_secs(1);
        while group_alive(group) {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    fn group_alive(group: u32) -> bool {
        let Ok(procs) = std::fs::read_dir("/proc") else { return false };
        procs.filter_map(Result::ok).any(|p| {
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid pgrp ...
            let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
            fields.len() > 2 && fields[2] == group.to_string() && fields[0] != "Z"
        })
    }

    #[test]
    fn output_is_captured_in_a_group_of_its_own() {
        let _one = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; ps -o pgid= -p $$; exit 3"]);
        let out = output(&mut cmd, &AtomicBool::new(false)).expect("run");
        assert_eq!(out.status.code(), Some(3));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some("out"));
        let pgid: i32 = lines.next().expect("pgid").trim().parse().expect("number");
        assert_ne!(pgid, nix::unistd::getpgrp().as_raw(), "the child shares the rig's process group");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        let e = output(&mut Command::new("/nonexistent/tool"), &AtomicBool::new(false)).expect_err("no such tool");
        assert!(matches!(e, ChildError::Io(_)), "{e}");
    }

    #[test]
    fn an_interrupt_stops_the_whole_group() {
        let _one = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        // A grandchild that ignores SIGTERM still dies (SIGKILL after the grace).
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sh -c 'trap \"\" TERM; sleep 30' & sleep 30"]).stdin(Stdio::null());
        let mut child = GroupChild::spawn(&mut cmd).expect("spawn");
        let group = child.id();
        let interrupt = std::sync::Arc::new(AtomicBool::new(false));
        let setter = {
            let i = interrupt.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                i.store(true, Ordering::Relaxed);
            })
        };
        let start = Instant::now();
        let e = child.wait(&interrupt).expect_err("interrupted");
        assert!(matches!(e, ChildError::Interrupted { ref program } if program == "sh"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        assert!(group_gone(group), "processes of group {group} still run");
        setter.join().expect("setter");
        // Dropping a child that runs kills its group too.
        let child = GroupChild::spawn(Command::new("sh").args(["-c", "sleep 30 & sleep 30"])).expect("spawn");
        let group = child.id();
        drop(child);
        assert!(group_gone(group), "processes of group {group} still run");
    }

    #[test]
    fn the_signal_path_kills_every_running_group() {
        let _one = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let mut a = GroupChild::spawn(Command::new("sh").args(["-c", "sleep 30 & sleep 30"])).expect("spawn");
        let mut b = GroupChild::spawn(Command::new("sleep").arg("30")).expect("spawn");
        let groups = [a.id(), b.id()];
        kill_child_groups();
        let never = AtomicBool::new(false);
        for child in [&mut a, &mut b] {
            let status = child.wait(&never).expect("wait");
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGKILL));
        }
        std::thread::sleep(Duration::from_millis(50));
        for g in groups {
            assert!(group_gone(g), "processes of group {g} still run");
        }
        // Reaped children leave the table.
        assert!(CHILD_GROUPS.iter().all(|s| !groups.contains(&(s.load(Ordering::SeqCst) as u32))));
    }

    #[test]
    fn private_dirs_and_files_are_the_users_alone() {
        let dir = private_tempdir("rig-test-").expect("tempdir");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode(dir.path()), 0o700);
        let f = dir.path().join("console.log");
        std::fs::write(&f, "old").expect("write");
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).expect("chmod");
        write_private(&f, "new").expect("write");
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "new");
        write_private(&dir.path().join("run.json"), "{}").expect("write");
        assert_eq!(mode(&dir.path().join("run.json")), 0o600);
    }
}
