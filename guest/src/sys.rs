//! Thin wrappers over the system calls the checks make: every call returns
//! `Sys<T>` (the value, or the errno) so a check can assert an exact error.

use std::ffi::CString;
use std::fmt::Debug;

/// An errno value.
pub type Errno = i32;

/// What a system call returned: its value, or the errno it failed with.
pub type Sys<T> = Result<T, Errno>;

/// The calling thread's errno.
pub fn errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `EINVAL` and the like, for messages.
pub fn ename(e: Errno) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ESRCH => "ESRCH",
        libc::E2BIG => "E2BIG",
        libc::EEXIST => "EEXIST",
        libc::EISDIR => "EISDIR",
        libc::EMFILE => "EMFILE",
        libc::EPIPE => "EPIPE",
        libc::ENODATA => "ENODATA",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOBUFS => "ENOBUFS",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ENOTCONN => "ENOTCONN",
        libc::EDESTADDRREQ => "EDESTADDRREQ",
        libc::ELOOP => "ELOOP",
        libc::ENOTDIR => "ENOTDIR",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

/// A result for messages: `success (value)` or `EINVAL`.
pub fn show<T: Debug>(r: &Sys<T>) -> String {
    match r {
        Ok(v) => format!("success ({v:?})"),
        Err(e) => format!("failure with {}", ename(*e)),
    }
}

fn check(rc: libc::c_long) -> Sys<libc::c_long> {
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

/// An open file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(pub libc::c_int);

impl Fd {
    /// `open(path, flags | O_CLOEXEC)`.
    pub fn open(path: &str, flags: libc::c_int) -> Sys<Fd> {
        let c = CString::new(path).map_err(|_| libc::EINVAL)?;
        // SAFETY: c is a valid NUL-terminated string.
        let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
        check(fd as libc::c_long).map(|_| Fd(fd))
    }

    /// `socket(domain, ty | SOCK_CLOEXEC, protocol)`.
    pub fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> Sys<Fd> {
        // SAFETY: plain system call.
        let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
        check(fd as libc::c_long).map(|_| Fd(fd))
    }

    /// `ioctl(fd, req, arg)` with a pointer to `T`.
    pub fn ioctl<T>(&self, req: u32, arg: &mut T) -> Sys<libc::c_int> {
        self.ioctl_raw(req, arg as *mut T as usize)
    }

    /// `ioctl(fd, req, arg)` with any argument (bad pointers included).
    pub fn ioctl_raw(&self, req: u32, arg: usize) -> Sys<libc::c_int> {
        // SAFETY: the kernel checks the argument; callers pass either a
        // valid pointer to a value of the size encoded in req, or a
        // deliberately bad one the kernel must refuse.
        let rc = unsafe { libc::ioctl(self.0, req as libc::c_ulong, arg) };
        check(rc as libc::c_long).map(|v| v as libc::c_int)
    }

    /// `read(fd, buf)`.
    pub fn read(&self, buf: &mut [u8]) -> Sys<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        check(n as libc::c_long).map(|v| v as usize)
    }

    /// `read(fd, ptr, len)` with any pointer (bad ones included).
    pub fn read_raw(&self, ptr: usize, len: usize) -> Sys<usize> {
        // SAFETY: the kernel checks the pointer; only bad ones that must
        // fail with EFAULT are passed here.
        let n = unsafe { libc::read(self.0, ptr as *mut libc::c_void, len) };
        check(n as libc::c_long).map(|v| v as usize)
    }

    /// `pread(fd, buf, off)`.
    pub fn pread(&self, buf: &mut [u8], off: u64) -> Sys<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::pread(self.0, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t) };
        check(n as libc::c_long).map(|v| v as usize)
    }

    /// `write(fd, buf)`.
    pub fn write(&self, buf: &[u8]) -> Sys<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
        check(n as libc::c_long).map(|v| v as usize)
    }

    /// `write(fd, ptr, len)` with any pointer (bad ones included).
    pub fn write_raw(&self, ptr: usize, len: usize) -> Sys<usize> {
        // SAFETY: see read_raw.
        let n = unsafe { libc::write(self.0, ptr as *const libc::c_void, len) };
        check(n as libc::c_long).map(|v| v as usize)
    }

    /// `pwrite(fd, buf, off)`.
    pub fn pwrite(&self, buf: &[u8], off: u64) -> Sys<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::pwrite(self.0, buf.as_ptr().cast(), buf.len(), off as libc::off_t) };
        check(n as libc::c_long).map(|v| v as usize)
    }

    /// `lseek(fd, off, whence)`.
    pub fn seek(&self, off: i64, whence: libc::c_int) -> Sys<i64> {
        // SAFETY: plain system call.
        let n = unsafe { libc::lseek(self.0, off as libc::off_t, whence) };
        check(n as libc::c_long)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours.
        unsafe { libc::close(self.0) };
    }
}

/// One mmap()ed range, unmapped on drop.
#[derive(Debug)]
pub struct Map {
    addr: *mut u8,
    len: usize,
}

/// PROT_READ | PROT_WRITE.
pub const RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;

impl Map {
    /// `mmap(NULL, len, prot, flags, fd, offset)`.
    pub fn new(fd: &Fd, len: usize, prot: libc::c_int, flags: libc::c_int, offset: u64) -> Sys<Map> {
        // SAFETY: a fresh mapping chosen by the kernel; nothing aliases it yet.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd.0, offset as libc::off_t) };
        if addr == libc::MAP_FAILED {
            return Err(errno());
        }
        Ok(Map { addr: addr.cast(), len })
    }

    /// Start address.
    pub fn ptr(&self) -> *mut u8 {
        self.addr
    }

    /// A copy of `[off, off + len)`.
    pub fn read(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= self.len, "read beyond the mapping");
        // The other side (kernel, host) writes concurrently: read volatile.
        // SAFETY: in bounds of a live mapping.
        (0..len).map(|i| unsafe { std::ptr::read_volatile(self.addr.add(off + i)) }).collect()
    }

    /// Writes `data` at `off`.
    pub fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len, "write beyond the mapping");
        for (i, b) in data.iter().enumerate() {
            // SAFETY: in bounds of a live, writable mapping.
            unsafe { std::ptr::write_volatile(self.addr.add(off + i), *b) };
        }
    }

    /// A `T` read (volatile) at `off`.
    pub fn read_obj<T: Copy>(&self, off: usize) -> T {
        assert!(off + std::mem::size_of::<T>() <= self.len, "read beyond the mapping");
        // SAFETY: in bounds; T is a plain repr(C) integer struct here.
        unsafe { std::ptr::read_volatile(self.addr.add(off).cast::<T>()) }
    }

    /// Writes the seeded pattern over `[off, off + len)` (pattern index from 0).
    pub fn fill_pattern(&self, seed: u32, off: usize, len: usize) {
        let mut buf = vec![0u8; len];
        rig_abi::fill_pattern(seed, 0, &mut buf);
        self.write(off, &buf);
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: addr/len come from a successful mmap.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// A file's content as text.
pub fn read_text(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// `/dev/<name>`.
pub fn dev_path(name: &str) -> String {
    format!("/dev/{name}")
}

/// A module parameter from /sys/module/rig_kmod/parameters.
pub fn module_param(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/module/rig_kmod/parameters/{name}")).ok().map(|s| s.trim().to_string())
}

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildEnd {
    /// exit(code)
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
}

/// Runs `f` in a forked child; its return value is the exit status.
pub fn in_child(f: impl FnOnce() -> i32) -> Result<ChildEnd, String> {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: the program is single-threaded, so the child may run anything.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", ename(errno())));
    }
    if pid == 0 {
        let code = f();
        let _ = std::io::stdout().flush();
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(format!("waitpid: {}", ename(errno())));
    }
    if libc::WIFSIGNALED(status) {
        Ok(ChildEnd::Signaled(libc::WTERMSIG(status)))
    } else {
        Ok(ChildEnd::Exited(libc::WEXITSTATUS(status)))
    }
}

/// `/proc/rig_kmod/stats` as (key, value) pairs.
pub fn stats() -> Result<Vec<(String, String)>, String> {
    let text = read_text(&format!("/proc/{}/stats", rig_abi::PROC_DIR))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(2, char::is_whitespace);
            Some((it.next()?.to_string(), it.next().unwrap_or("").trim().to_string()))
        })
        .collect())
}

/// One numeric counter of `/proc/rig_kmod/stats`.
pub fn stat(name: &str) -> Result<u64, String> {
    stats()?
        .into_iter()
        .find(|(k, _)| k == name)
        .ok_or_else(|| format!("no `{name}` in /proc/{}/stats", rig_abi::PROC_DIR))?
        .1
        .parse()
        .map_err(|_| format!("`{name}` in /proc/{}/stats is not a number", rig_abi::PROC_DIR))
}

/// /proc/sys/kernel/tainted.
pub fn tainted() -> Result<u64, String> {
    read_text("/proc/sys/kernel/tainted")?.trim().parse().map_err(|_| "bad /proc/sys/kernel/tainted".to_string())
}

/// Taint bit W: the kernel warned (WARN_ON and friends).
pub const TAINT_WARN: u64 = 1 << 9;
/// Taint bit D: the kernel died (oops).
pub const TAINT_DIE: u64 = 1 << 7;

/// Bits of /proc/kpageflags (Documentation/admin-guide/mm/pagemap.rst).
pub mod kpf {
    /// Part of the slab allocator.
    pub const SLAB: u32 = 7;
    /// Mapped into some process through its struct page (rmap).
    pub const MMAP: u32 = 11;
    /// First page of a compound page.
    pub const COMPOUND_HEAD: u32 = 15;
    /// Any other page of a compound page.
    pub const COMPOUND_TAIL: u32 = 16;
    /// PG_reserved.
    pub const RESERVED: u32 = 32;

    /// True when bit `bit` is set in `flags`.
    pub fn has(flags: u64, bit: u32) -> bool {
        flags & (1 << bit) != 0
    }

    /// The names of the bits above that are set, for messages.
    pub fn names(flags: u64) -> String {
        let known = [
            (SLAB, "slab"),
            (MMAP, "mmap"),
            (COMPOUND_HEAD, "compound_head"),
            (COMPOUND_TAIL, "compound_tail"),
            (RESERVED, "reserved"),
        ];
        let set: Vec<&str> = known.iter().filter(|(b, _)| has(flags, *b)).map(|(_, n)| *n).collect();
        if set.is_empty() {
            "none of slab/mmap/compound/reserved".to_string()
        } else {
            set.join("|")
        }
    }
}

/// The flags of physical page `pfn`, from /proc/kpageflags (root only).
pub fn page_flags(pfn: u64) -> Result<u64, String> {
    let fd =
        Fd::open("/proc/kpageflags", libc::O_RDONLY).map_err(|e| format!("open /proc/kpageflags: {}", ename(e)))?;
    let mut b = [0u8; 8];
    match fd.pread(&mut b, pfn * 8) {
        Ok(8) => Ok(u64::from_ne_bytes(b)),
        other => Err(format!("read /proc/kpageflags at pfn {pfn:#x}: {}", show(&other))),
    }
}

/// The pfn in a /proc/self/pagemap entry: None when the page is not present.
pub fn pagemap_entry_pfn(entry: u64) -> Option<u64> {
    (entry >> 63 == 1).then_some(entry & ((1 << 55) - 1))
}

/// The pfn behind address `addr` of this process (root sees real pfns).
pub fn pagemap_pfn(addr: usize) -> Result<Option<u64>, String> {
    let fd =
        Fd::open("/proc/self/pagemap", libc::O_RDONLY).map_err(|e| format!("open /proc/self/pagemap: {}", ename(e)))?;
    let mut b = [0u8; 8];
    match fd.pread(&mut b, (addr / 4096) as u64 * 8) {
        Ok(8) => Ok(pagemap_entry_pfn(u64::from_ne_bytes(b))),
        other => Err(format!("read /proc/self/pagemap at {addr:#x}: {}", show(&other))),
    }
}

/// The C string at the start of `bytes` (up to the first NUL).
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Runs `f` detached from the shell: in a grandchild with its own session,
/// stdin from /dev/null, output to `<prefix>.log` and, at the end, its exit
/// status to `<prefix>.status` (see [`collect`]). Returns the grandchild's
/// pid once `f` has called its `ready` argument (or ended).
///
/// The grandchild does not exit by itself after `f`: it waits for
/// [`collect`] to acknowledge the status, so that it ends while the console
/// shell runs a command. The rig's shell is PID 1; a child that ends while
/// it sits at its prompt (SIGCHLD during the line read) makes it exit, and
/// the kernel panics ("Attempted to kill init").
pub fn detach(prefix: &str, f: impl FnOnce(&dyn Fn()) -> i32) -> Result<i32, String> {
    use std::io::Write;
    let (log, status, ack, pidfile) =
        (format!("{prefix}.log"), format!("{prefix}.status"), format!("{prefix}.ack"), format!("{prefix}.pid"));
    for f in [&status, &ack, &pidfile] {
        let _ = std::fs::remove_file(f);
    }
    let logfile = std::fs::File::create(&log).map_err(|e| format!("create {log}: {e}"))?;
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("pipe: {}", ename(errno())));
    }
    let (rfd, wfd) = (Fd(fds[0]), Fd(fds[1]));
    let _ = std::io::stdout().flush();
    // SAFETY: single-threaded program; the children only run the code below.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", ename(errno())));
    }
    if pid == 0 {
        // SAFETY: in the child: a new session, then the grandchild does the work.
        unsafe {
            libc::setsid();
            let pid2 = libc::fork();
            if pid2 != 0 {
                libc::_exit(if pid2 < 0 { 1 } else { 0 });
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            libc::dup2(null, 0);
            libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&logfile), 1);
            libc::dup2(1, 2);
        }
        drop(rfd);
        let _ = std::fs::write(&pidfile, format!("{}\n", std::process::id()));
        let ready = || {
            let _ = std::io::stdout().flush();
            let _ = wfd.write(b"r");
        };
        let code = f(&ready);
        let _ = std::io::stdout().flush();
        let tmp = format!("{status}.tmp");
        if std::fs::write(&tmp, format!("{code}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &status);
        }
        // Wait (up to an hour) for collect() to take the status.
        for _ in 0..72_000 {
            if std::path::Path::new(&ack).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // SAFETY: leave without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    drop(wfd);
    let mut st = 0;
    // SAFETY: reaps the intermediate child at once.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    let mut b = [0u8; 1];
    // EOF instead of a byte: the grandchild ended before it was ready.
    match rfd.read(&mut b) {
        Ok(1) => Ok(read_text(&pidfile).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)),
        _ => Err(format!(
            "the detached program ended before it was ready; its output:\n{}",
            read_text(&log).unwrap_or_default()
        )),
    }
}

/// True while `pid` runs (not gone, not a zombie).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(s) => s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// Waits for a program started with [`detach`] to finish; prints its output,
/// lets it exit (while this command runs) and returns its exit status.
pub fn collect(prefix: &str, timeout: std::time::Duration) -> Result<i32, String> {
    let (log, status, ack, pidfile) =
        (format!("{prefix}.log"), format!("{prefix}.status"), format!("{prefix}.ack"), format!("{prefix}.pid"));
    let deadline = std::time::Instant::now() + timeout;
    let code = loop {
        if let Ok(s) = std::fs::read_to_string(&status) {
            print!("{}", read_text(&log).unwrap_or_default());
            break s.trim().parse().map_err(|_| format!("{status} holds `{}`", s.trim()))?;
        }
        if std::time::Instant::now() >= deadline {
            print!("{}", read_text(&log).unwrap_or_default());
            return Err(format!("no {status} after {}s: the program is still running", timeout.as_secs()));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = std::fs::write(&ack, "");
    if let Some(pid) = read_text(&pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
        for _ in 0..200 {
            if !running(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_entries() {
        assert_eq!(pagemap_entry_pfn(0), None);
        assert_eq!(pagemap_entry_pfn(1 << 63 | 0x1234), Some(0x1234));
        // Bits 55..62 are flags (soft-dirty, exclusive, file/shared), not pfn.
        assert_eq!(pagemap_entry_pfn(1 << 63 | 1 << 61 | 1 << 55 | 7), Some(7));
        // Swapped, not present: no pfn.
        assert_eq!(pagemap_entry_pfn(1 << 62 | 0x55), None);
    }

    #[test]
    fn page_flag_names() {
        let f = 1 << kpf::RESERVED | 1 << kpf::COMPOUND_TAIL;
        assert!(kpf::has(f, kpf::RESERVED) && !kpf::has(f, kpf::SLAB));
        assert_eq!(kpf::names(f), "compound_tail|reserved");
        assert_eq!(kpf::names(1 << 3), "none of slab/mmap/compound/reserved");
    }
}
