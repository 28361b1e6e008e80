//! Runs operations against the module: resolves slots, maps and pointers,
//! makes the calls, counts what came back, and holds the module to what
//! its uapi header promises (the oracles: a wrong answer is a bug even
//! when the kernel stays quiet).
//!
//! Long on purpose: one arm per operation of [`super::op::Op`], each next to
//! its oracle, over the one state (slots, maps, sockets) they all share.

use super::mem::{forget_range, page_up, Arena, MapEntry};
use super::op::{Arg, Class, KfileKind, NlMsg, Op, Ptr, SockKind, Sockopt, Wait, NL_SOCKS, SCRATCH, SLOTS};
use super::rng::Rng;
use super::target::{ioc_size, Env, Target};
use crate::sys::errno;
use rig_abi as abi;
use std::ffi::CString;
use std::mem::size_of;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;

/// Errno values counted one by one; larger ones share the last counter.
pub const MAX_ERRNO: usize = 134;
/// Live mappings a thread keeps at most.
const MAX_MAPS: usize = 24;
const PAGE: usize = 4096;

/// What a call returned: its value, or the errno.
type R = Result<i64, i32>;

fn rc(v: i64) -> R {
    if v < 0 {
        Err(errno())
    } else {
        Ok(v)
    }
}

/// Outcomes per interface.
#[derive(Clone)]
pub struct Stats {
    pub ops: [u64; Class::ALL.len()],
    pub ok: [u64; Class::ALL.len()],
    pub errs: Vec<[u64; MAX_ERRNO]>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats { ops: [0; Class::ALL.len()], ok: [0; Class::ALL.len()], errs: vec![[0; MAX_ERRNO]; Class::ALL.len()] }
    }
}

impl Stats {
    /// Counts one outcome of class `c`.
    pub fn record(&mut self, c: Class, r: &R) {
        let i = c.index();
        self.ops[i] += 1;
        match r {
            Ok(_) => self.ok[i] += 1,
            Err(e) => self.errs[i][(*e as usize).min(MAX_ERRNO - 1)] += 1,
        }
    }

    /// Adds `o` into this.
    pub fn merge(&mut self, o: &Stats) {
        for i in 0..Class::ALL.len() {
            self.ops[i] += o.ops[i];
            self.ok[i] += o.ok[i];
            for e in 0..MAX_ERRNO {
                self.errs[i][e] += o.errs[i][e];
            }
        }
    }

    /// Every operation counted.
    pub fn total(&self) -> u64 {
        self.ops.iter().sum()
    }
}

/// What the threads share.
pub struct Shared {
    /// Open files, SLOTS per target; -1 when empty.
    pub slots: Vec<AtomicI32>,
    /// (st_dev, st_ino) of each target, to tell a file from a stale number.
    pub ident: Vec<(u64, u64)>,
    pub env: Env,
    /// Oracle failures, and the first few of them in words.
    pub oracle_fails: AtomicU64,
    pub oracle_msgs: Mutex<Vec<String>>,
    /// One unbind/bind at a time.
    pub rebind: Mutex<()>,
}

fn stat_ident(path: &str) -> (u64, u64) {
    let Ok(c) = CString::new(path) else { return (0, 0) };
    // SAFETY: zeroed stat is valid; c is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::stat(c.as_ptr(), &mut st) } < 0 {
        return (0, 0);
    }
    (st.st_dev, st.st_ino)
}

impl Shared {
    pub fn new(env: Env) -> Shared {
        Shared {
            slots: (0..Target::ALL.len() * SLOTS).map(|_| AtomicI32::new(-1)).collect(),
            ident: Target::ALL.iter().map(|t| stat_ident(&t.path())).collect(),
            env,
            oracle_fails: AtomicU64::new(0),
            oracle_msgs: Mutex::new(Vec::new()),
            rebind: Mutex::new(()),
        }
    }

    fn slot(&self, t: Target, s: usize) -> &AtomicI32 {
        &self.slots[t.index() * SLOTS + s % SLOTS]
    }

    /// Closes every slot (at the end).
    pub fn close_all(&self) {
        for s in &self.slots {
            let fd = s.swap(-1, Ordering::AcqRel);
            if fd >= 0 {
                // SAFETY: the slot owned this descriptor.
                unsafe { libc::close(fd) };
            }
        }
    }
}

fn open_path(path: &str, flags: i32) -> R {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: c is NUL-terminated.
    rc(i64::from(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) }))
}

fn close(fd: i32) -> R {
    // SAFETY: the caller owns fd.
    rc(i64::from(unsafe { libc::close(fd) }))
}

/// One fuzzing thread's state.
pub struct Worker<'a> {
    pub id: usize,
    sh: &'a Shared,
    arena: Arena,
    maps: Vec<MapEntry>,
    /// Non-blocking pipe: the kernel touches mappings by copying through it.
    pipe: [i32; 2],
    nl: [i32; NL_SOCKS],
    socks: [i32; 4],
    epoll: i32,
    /// This thread's mapping of the pool, to read buffers it took.
    pool_view: Option<MapEntry>,
    pub stats: Stats,
    /// Number of the operation running.
    pub n: u64,
    /// Print each operation and its result.
    pub trace: bool,
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        for m in self.maps.drain(..).chain(self.pool_view.take()) {
            // SAFETY: our own mapping.
            unsafe { libc::munmap(m.addr as *mut libc::c_void, m.len) };
        }
        for fd in self.pipe.iter().chain(&self.nl).chain(&self.socks).chain(std::iter::once(&self.epoll)) {
            if *fd >= 0 {
                let _ = close(*fd);
            }
        }
    }
}

impl<'a> Worker<'a> {
    pub fn new(id: usize, sh: &'a Shared, trace: bool) -> Result<Worker<'a>, String> {
        let arena = Arena::new().map_err(|e| format!("scratch area: {}", crate::sys::ename(e)))?;
        let mut pipe = [-1; 2];
        // SAFETY: pipe has room for two descriptors.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(format!("pipe: {}", crate::sys::ename(errno())));
        }
        // SAFETY: plain system call.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        Ok(Worker {
            id,
            sh,
            arena,
            maps: Vec::new(),
            pipe,
            nl: [-1; NL_SOCKS],
            socks: [-1; 4],
            epoll,
            pool_view: None,
            stats: Stats::default(),
            n: 0,
            trace,
        })
    }

    fn oracle(&self, op: &Op, what: String) {
        let total = self.sh.oracle_fails.fetch_add(1, Ordering::Relaxed);
        if total < 20 {
            let msg = format!("thread {} op #{}: {what}; op {op:?}", self.id, self.n);
            if let Ok(mut v) = self.sh.oracle_msgs.lock() {
                v.push(msg);
            }
        }
    }

    /// The file in slot `s` of `t`, opening it when the slot is empty. The
    /// number may be stale by the time it is used: another thread may
    /// close it. That is one of the races being fuzzed.
    fn fd(&self, t: Target, s: usize) -> i32 {
        let slot = self.sh.slot(t, s);
        let fd = slot.load(Ordering::Acquire);
        if fd >= 0 {
            return fd;
        }
        let path = t.path();
        let fresh = match open_path(&path, libc::O_RDWR) {
            Ok(fd) => fd as i32,
            Err(_) => match open_path(&path, libc::O_RDONLY) {
                Ok(fd) => fd as i32,
                Err(_) => return -1,
            },
        };
        match slot.compare_exchange(-1, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fresh,
            Err(theirs) => {
                let _ = close(fresh);
                theirs
            }
        }
    }

    /// Whether `fd` is (still) the file of `t`.
    fn is(&self, fd: i32, t: Target) -> bool {
        // SAFETY: zeroed stat is valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above; a bad fd just fails.
        if unsafe { libc::fstat(fd, &mut st) } < 0 {
            return false;
        }
        let want = self.sh.ident[t.index()];
        want != (0, 0) && (st.st_dev, st.st_ino) == want
    }

    /// Address and length for a buffer of `len` bytes the kernel may write
    /// through `p`, with the bytes of ours there filled from `seed`.
    fn buf(&mut self, p: Ptr, len: u64, seed: Option<u64>) -> (usize, usize) {
        let len = len.min(1 << 40) as usize;
        let p = if self.arena.kernel_may_write(p, len, &self.maps) { p } else { Ptr::Scratch(0) };
        let (addr, ours) = self.arena.resolve(p, len, &self.maps);
        if let (Some(seed), true) = (seed, ours > 0) {
            let off = addr - self.arena.scratch();
            let n = ours.min(len);
            Rng::new(seed, 0).fill(&mut self.arena.scratch_mut()[off..off + n]);
        }
        (addr, len)
    }

    /// Whether `p` points into the scratch area (results can be read back).
    fn in_scratch(p: &Ptr) -> bool {
        matches!(p, Ptr::Scratch(_))
    }

    /// Runs `op`; counts and returns what it returned.
    pub fn run(&mut self, op: &Op) -> R {
        let r = self.exec(op);
        if let (Err(libc::EINTR), true) = (r, kfile_io(op)) {
            // Nothing in the module's /proc files may wait: a signal cut a
            // wait short, so the module waited on what is at kfile_path.
            self.oracle(op, "a read or write of /proc/rig_kmod/kfile waited until a signal came".into());
        }
        self.stats.record(op.class(), &r);
        if self.trace {
            println!("trace: thread {} op #{}: {op:?} -> {}", self.id, self.n, show(&r));
        }
        r
    }

    fn exec(&mut self, op: &Op) -> R {
        match op {
            Op::Open { target, slot, flags } => {
                let fd = open_path(&target.path(), *flags)?;
                let old = self.sh.slot(*target, *slot).swap(fd as i32, Ordering::AcqRel);
                if old >= 0 {
                    let _ = close(old);
                }
                Ok(fd)
            }
            Op::Close { target, slot } => {
                let old = self.sh.slot(*target, *slot).swap(-1, Ordering::AcqRel);
                if old < 0 {
                    return Err(libc::EBADF);
                }
                close(old)
            }
            Op::Dup { target, slot } => {
                let fd = self.fd(*target, *slot);
                // SAFETY: plain system call; fd may be stale.
                let new = rc(i64::from(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) }))?;
                let old = self.sh.slot(*target, slot + 1).swap(new as i32, Ordering::AcqRel);
                if old >= 0 {
                    let _ = close(old);
                }
                Ok(new)
            }
            Op::Poll { fds, events, timeout_ms, how } => {
                let fds: Vec<i32> = fds.iter().map(|(t, s)| self.fd(*t, *s)).collect();
                self.wait(&fds, *events, *timeout_ms, *how)
            }
            Op::Ioctl { target, slot, cmd, arg } => self.ioctl(op, *target, *slot, *cmd, *arg),
            Op::Mmap { target, slot, off, len, prot, flags, fixed, touch } => {
                self.mmap(op, *target, *slot, *off, *len, *prot, *flags, *fixed, *touch)
            }
            Op::Munmap { map, first_page, pages } => {
                let Some(m) = self.map(*map) else { return Err(libc::ENOENT) };
                let np = m.len / PAGE;
                let first = (*first_page as usize) % np;
                let count = (*pages as usize).min(np - first);
                let (addr, len) = (m.addr + first * PAGE, count * PAGE);
                // SAFETY: inside one of our own mappings.
                let r = rc(i64::from(unsafe { libc::munmap(addr as *mut libc::c_void, len) }));
                if r.is_ok() {
                    forget_range(&mut self.maps, addr, len);
                }
                r
            }
            Op::Mremap { map, new_len, may_move } => {
                let Some(m) = self.map(*map) else { return Err(libc::ENOENT) };
                let new_len = page_up(*new_len).min(1 << 40) as usize;
                let flags = if *may_move { libc::MREMAP_MAYMOVE } else { 0 };
                // SAFETY: remaps one of our own mappings; the kernel picks
                // any new place, growing in place only into free space.
                let p = unsafe { libc::mremap(m.addr as *mut libc::c_void, m.len, new_len, flags) };
                if p == libc::MAP_FAILED {
                    return Err(errno());
                }
                forget_range(&mut self.maps, m.addr, m.len);
                if new_len > 0 {
                    self.maps.push(MapEntry { addr: p as usize, len: new_len, prot: m.prot });
                }
                Ok(p as i64)
            }
            Op::Mprotect { map, prot } => {
                let Some(m) = self.map(*map) else { return Err(libc::ENOENT) };
                // SAFETY: one of our own mappings.
                let r = rc(i64::from(unsafe { libc::mprotect(m.addr as *mut libc::c_void, m.len, *prot) }));
                if r.is_ok() {
                    if let Some(e) = self.maps.iter_mut().find(|e| e.addr == m.addr) {
                        e.prot = *prot;
                    }
                }
                r
            }
            Op::Madvise { map, advice } => {
                let Some(m) = self.map(*map) else { return Err(libc::ENOENT) };
                // SAFETY: one of our own mappings.
                rc(i64::from(unsafe { libc::madvise(m.addr as *mut libc::c_void, m.len, *advice) }))
            }
            Op::Msync { map, flags } => {
                let Some(m) = self.map(*map) else { return Err(libc::ENOENT) };
                // SAFETY: one of our own mappings.
                rc(i64::from(unsafe { libc::msync(m.addr as *mut libc::c_void, m.len, *flags) }))
            }
            Op::Mlock { map, lock } => {
                let Some(m) = self.map(*map) else { return Err(libc::ENOENT) };
                // SAFETY: one of our own mappings.
                let r = unsafe {
                    if *lock {
                        libc::mlock(m.addr as *const libc::c_void, m.len)
                    } else {
                        libc::munlock(m.addr as *const libc::c_void, m.len)
                    }
                };
                rc(i64::from(r))
            }
            Op::Touch { map, off, len, write, seed } => {
                let Some(m) = self.map(*map) else { return Err(libc::ENOENT) };
                let off = (*off as usize) % m.len;
                let len = (*len as usize).clamp(1, m.len - off);
                self.touch(m.addr + off, len, *write, *seed)
            }
            Op::Fork { touches, write, seed } => self.fork_touch(*touches, *write, *seed),
            Op::Read { target, slot, len, buf, at } => {
                let fd = self.fd(*target, *slot);
                let (addr, len) = self.buf(*buf, *len, None);
                // SAFETY: the kernel checks addr; see Arena::resolve.
                let r = rc(unsafe {
                    match at {
                        None => libc::read(fd, addr as *mut libc::c_void, len) as i64,
                        Some(off) => libc::pread(fd, addr as *mut libc::c_void, len, *off) as i64,
                    }
                });
                if let Ok(n) = r {
                    let cap = match target {
                        Target::Rw => abi::RW_BUF_SIZE,
                        Target::Kmalloc => abi::KMALLOC_SIZE,
                        Target::Vmalloc => abi::VMALLOC_SIZE,
                        Target::VmallocUser => abi::VMALLOC_USER_SIZE,
                        _ => u64::MAX,
                    };
                    if n as u64 > len as u64 || (n as u64 > cap && self.is(fd, *target)) {
                        self.oracle(op, format!("read returned {n} bytes for a count of {len}"));
                    }
                }
                r
            }
            Op::Write { target, slot, len, buf, at, seed } => {
                let fd = self.fd(*target, *slot);
                let (addr, len) = self.buf(*buf, *len, Some(*seed));
                // SAFETY: the kernel only reads from addr.
                let r = rc(unsafe {
                    match at {
                        None => libc::write(fd, addr as *const libc::c_void, len) as i64,
                        Some(off) => libc::pwrite(fd, addr as *const libc::c_void, len, *off) as i64,
                    }
                });
                if let Ok(n) = r {
                    if n as u64 > len as u64 || (n as u64 > abi::RW_BUF_SIZE && self.is(fd, Target::Rw)) {
                        self.oracle(op, format!("write stored {n} bytes of {len}"));
                    }
                }
                r
            }
            Op::Vector { target, slot, write, parts, at, seed } => {
                let fd = self.fd(*target, *slot);
                let mut iov = Vec::with_capacity(parts.len());
                for (i, (p, len)) in parts.iter().enumerate() {
                    let (addr, len) = self.buf(*p, *len, write.then_some(seed.wrapping_add(i as u64)));
                    iov.push(libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len });
                }
                let n = iov.len() as i32;
                // SAFETY: the kernel checks every iovec; see Arena::resolve.
                rc(unsafe {
                    match (write, at) {
                        (false, None) => libc::readv(fd, iov.as_ptr(), n) as i64,
                        (true, None) => libc::writev(fd, iov.as_ptr(), n) as i64,
                        (false, Some(off)) => libc::preadv(fd, iov.as_ptr(), n, *off) as i64,
                        (true, Some(off)) => libc::pwritev(fd, iov.as_ptr(), n, *off) as i64,
                    }
                })
            }
            Op::Seek { target, slot, off, whence } => {
                let fd = self.fd(*target, *slot);
                // SAFETY: plain system call.
                let r = rc(unsafe { libc::lseek(fd, *off, *whence) });
                if let (Ok(pos), Target::Rw) = (r, target) {
                    if pos as u64 > abi::RW_BUF_SIZE && self.is(fd, Target::Rw) {
                        self.oracle(op, format!("lseek put /dev/rig_rw at {pos}, past its buffer"));
                    }
                }
                r
            }
            Op::NlOpen { sock, dgram, bind_pid, rcvbuf, ext_ack } => {
                self.nl_open(*sock, *dgram, *bind_pid, *rcvbuf, *ext_ack)
            }
            Op::NlSend { sock, msg, to_pid, groups, dontwait } => self.nl_send(*sock, msg, *to_pid, *groups, *dontwait),
            Op::NlRecv { sock, peek } => self.nl_recv(op, *sock, *peek),
            Op::NlClose { sock } => {
                let fd = std::mem::replace(&mut self.nl[*sock % NL_SOCKS], -1);
                if fd < 0 {
                    return Err(libc::EBADF);
                }
                close(fd)
            }
            Op::NlUnprivileged => self.nl_unprivileged(op),
            Op::Sockopt(s) => self.sockopt(op, s),
            Op::ProcRead { target, slot, off, len, buf } => {
                let fd = self.fd(*target, *slot);
                let (addr, len) = self.buf(*buf, *len, None);
                // SAFETY: the kernel checks addr.
                let r = rc(unsafe {
                    match off {
                        None => libc::read(fd, addr as *mut libc::c_void, len) as i64,
                        Some(o) => libc::pread(fd, addr as *mut libc::c_void, len, *o) as i64,
                    }
                });
                if let Ok(n) = r {
                    if n as usize > len {
                        self.oracle(op, format!("read of {len} bytes returned {n}"));
                    } else if Self::in_scratch(buf) && *target != Target::ProcKfile {
                        let off = addr - self.arena.scratch();
                        let text = self.arena.scratch_slice(off, n as usize);
                        if text.contains(&0) && self.is(fd, *target) {
                            self.oracle(op, "a NUL byte in the text of a /proc file".into());
                        }
                    }
                }
                r
            }
            Op::ProcWrite { target, slot, len, buf, seed } => {
                let fd = self.fd(*target, *slot);
                let (addr, len) = self.buf(*buf, *len, Some(*seed));
                // SAFETY: the kernel only reads from addr.
                let r = rc(unsafe { libc::write(fd, addr as *const libc::c_void, len) as i64 });
                if *target == Target::ProcKfile {
                    match r {
                        Ok(n) if n as usize != len && self.is(fd, *target) => {
                            self.oracle(op, format!("a write of {len} bytes to kfile returned {n}"));
                        }
                        Ok(_) if len > 4096 && self.is(fd, *target) => {
                            self.oracle(op, format!("kfile took {len} bytes, more than it can hold"));
                        }
                        _ => {}
                    }
                }
                r
            }
            Op::ProcSplice { target, slot, len } => {
                let fd = self.fd(*target, *slot);
                // SAFETY: plain system call into our own pipe.
                let r = rc(unsafe {
                    libc::splice(
                        fd,
                        std::ptr::null_mut(),
                        self.pipe[1],
                        std::ptr::null_mut(),
                        *len as usize,
                        libc::SPLICE_F_NONBLOCK,
                    ) as i64
                });
                self.drain();
                r
            }
            Op::ProcDir => self.proc_dir(),
            Op::KfileSwap { kind, size, seed } => self.kfile_swap(op, *kind, *size, *seed),
            Op::PoolTake { slot, wait, hold, peek } => self.pool_take(op, *slot, *wait, *hold, *peek),
            Op::PoolRelease { slot, index } => {
                let fd = self.fd(Target::Pool, *slot);
                let mut rel = abi::PoolRelease { index: *index, reserved: 0 };
                // SAFETY: rel is valid for its size.
                rc(i64::from(unsafe { libc::ioctl(fd, abi::IOC_POOL_RELEASE as libc::c_ulong, &mut rel) }))
            }
            Op::PoolStart { slot, count, len, seed, interval_us } => {
                let fd = self.fd(Target::Pool, *slot);
                let mut s = abi::PoolStart { count: *count, len: *len, seed: *seed, interval_us: *interval_us };
                // SAFETY: s is valid for its size.
                let r = rc(i64::from(unsafe { libc::ioctl(fd, abi::IOC_POOL_START as libc::c_ulong, &mut s) }));
                let valid = *count >= 1 && *len >= 1 && *len <= abi::POOL_PAYLOAD_MAX && *interval_us <= 1_000_000;
                if r.is_ok() && !valid && self.is(fd, Target::Pool) {
                    self.oracle(op, "RIG_IOC_POOL_START took an invalid job".into());
                }
                r
            }
            Op::PoolInfo { slot } => {
                let fd = self.fd(Target::Pool, *slot);
                let mut info = abi::PoolInfo::default();
                // SAFETY: info is valid for its size.
                let r = rc(i64::from(unsafe { libc::ioctl(fd, abi::IOC_POOL_INFO as libc::c_ulong, &mut info) }));
                if r.is_ok() {
                    if let Some(why) = pool_info_wrong(&info) {
                        self.oracle(op, why);
                    }
                }
                r
            }
            Op::Rebind => self.rebind(),
        }
    }

    fn map(&self, k: usize) -> Option<MapEntry> {
        (!self.maps.is_empty()).then(|| self.maps[k % self.maps.len()])
    }

    /// Empties the pipe.
    fn drain(&mut self) {
        let base = self.arena.scratch();
        for _ in 0..32 {
            // SAFETY: reads into the scratch area.
            let n = unsafe { libc::read(self.pipe[0], base as *mut libc::c_void, SCRATCH) };
            if n <= 0 {
                break;
            }
        }
    }

    /// Makes the kernel read (or write) `len` bytes at `addr` of a mapping:
    /// a copy through the pipe faults the pages in from kernel mode, so a
    /// page that would be SIGBUS to a direct touch is EFAULT here.
    fn touch(&mut self, addr: usize, len: usize, write: bool, seed: u64) -> R {
        let len = len.min(SCRATCH);
        let r = if write {
            let src = self.arena.scratch();
            Rng::new(seed, 1).fill(&mut self.arena.scratch_mut()[..len]);
            // SAFETY: from the scratch area into the pipe, then from the pipe
            // into our own mapping (bounded to it by the caller).
            unsafe {
                let n = libc::write(self.pipe[1], src as *const libc::c_void, len);
                if n < 0 {
                    Err(errno())
                } else {
                    rc(libc::read(self.pipe[0], addr as *mut libc::c_void, n as usize) as i64)
                }
            }
        } else {
            // SAFETY: the kernel reads our own mapping into the pipe.
            rc(unsafe { libc::write(self.pipe[1], addr as *const libc::c_void, len) as i64 })
        };
        self.drain();
        r
    }

    fn wait(&mut self, fds: &[i32], events: i16, timeout_ms: i32, how: Wait) -> R {
        match how {
            Wait::Poll => {
                let mut p: Vec<libc::pollfd> = fds.iter().map(|&fd| libc::pollfd { fd, events, revents: 0 }).collect();
                // SAFETY: p is valid for its length.
                rc(i64::from(unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) }))
            }
            Wait::Select => {
                // SAFETY: fd_set is plain data, set up by the libc macros.
                unsafe {
                    let mut rd: libc::fd_set = std::mem::zeroed();
                    let mut wr: libc::fd_set = std::mem::zeroed();
                    libc::FD_ZERO(&mut rd);
                    libc::FD_ZERO(&mut wr);
                    let mut max = -1;
                    for &fd in fds.iter().filter(|&&fd| (0..libc::FD_SETSIZE as i32).contains(&fd)) {
                        libc::FD_SET(fd, &mut rd);
                        if events & libc::POLLOUT != 0 {
                            libc::FD_SET(fd, &mut wr);
                        }
                        max = max.max(fd);
                    }
                    let mut tv = libc::timeval { tv_sec: 0, tv_usec: libc::suseconds_t::from(timeout_ms) * 1000 };
                    rc(i64::from(libc::select(max + 1, &mut rd, &mut wr, std::ptr::null_mut(), &mut tv)))
                }
            }
            Wait::Epoll => {
                for &fd in fds {
                    let mut ev = libc::epoll_event { events: events as u16 as u32, u64: fd as u64 };
                    // SAFETY: ev is valid; fd may be stale or unpollable.
                    unsafe {
                        if libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) < 0 {
                            libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_MOD, fd, &mut ev);
                        }
                    }
                }
                let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
                // SAFETY: out is valid for 4 events.
                let r = rc(i64::from(unsafe { libc::epoll_wait(self.epoll, out.as_mut_ptr(), 4, timeout_ms) }));
                if self.n.is_multiple_of(3) {
                    for &fd in fds {
                        // SAFETY: plain system call.
                        unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
                    }
                }
                r
            }
        }
    }

    fn ioctl(&mut self, op: &Op, target: Target, slot: usize, cmd: u32, arg: Arg) -> R {
        let fd = self.fd(target, slot);
        let (value, scratch_off) = match arg {
            Arg::Value(v) => (v as usize, None),
            Arg::Ptr { ptr, seed, valid } => {
                let size = ioc_size(cmd).max(8);
                let (addr, _) = self.buf(ptr, size as u64, Some(seed));
                let off = Self::in_scratch(&ptr).then(|| addr - self.arena.scratch());
                if let (true, Some(off)) = (valid, off) {
                    shape_arg(cmd, seed, self.sh.env.vectors, &mut self.arena.scratch_mut()[off..]);
                }
                (addr, off)
            }
        };
        let before = self.is(fd, target);
        // SAFETY: the kernel checks the argument; see Arena::resolve.
        let r = rc(i64::from(unsafe { libc::ioctl(fd, cmd as libc::c_ulong, value) }));
        let known = self.is(fd, target) && before;
        if known {
            if let Some(why) = self.ioctl_wrong(target, cmd, &r, scratch_off) {
                self.oracle(op, why);
            }
        }
        r
    }

    /// What an ioctl answer the module gave breaks, if anything.
    fn ioctl_wrong(&self, t: Target, cmd: u32, r: &R, off: Option<usize>) -> Option<String> {
        let answers = |k: &[u32]| k.contains(&cmd);
        let config = [abi::IOC_GET_CONFIG, abi::IOC_SET_CONFIG, abi::IOC_XCHG_CONFIG, abi::IOC_RESET_CONFIG];
        let own: &[u32] = match t {
            Target::Ioctl => &config,
            Target::Shm => &[abi::IOC_SHM_INFO],
            Target::Kmalloc | Target::Vmalloc | Target::VmallocUser | Target::Fault | Target::Reserved => {
                &[abi::IOC_REGION_INFO]
            }
            Target::Pool => &[
                abi::IOC_POOL_INFO,
                abi::IOC_POOL_START,
                abi::IOC_POOL_TAKE,
                abi::IOC_POOL_TAKE_WAIT,
                abi::IOC_POOL_RELEASE,
            ],
            Target::Doorbell => &[abi::IOC_DB_INFO, abi::IOC_DB_RING, abi::IOC_DB_WAIT],
            _ => return None,
        };
        // Numbers of other types may be the VFS's own (FIONBIO, FIGETBSZ,
        // ...); the module's type is the module's alone.
        let ours = abi::ioc::decode(cmd).1 == abi::IOC_MAGIC;
        if r.is_ok() && ours && !answers(own) {
            return Some(format!("ioctl {cmd:#010x}, not one of the node's, succeeded"));
        }
        if let Err(e) = r {
            // EBADF: an O_PATH file, or a number closed under us: the VFS's.
            if ours && !answers(own) && *e != libc::ENOTTY && *e != libc::EBADF {
                return Some(format!("ioctl {cmd:#010x}, not one of the node's, failed with errno {e}, not ENOTTY"));
            }
        }
        let (Ok(_), Some(off)) = (r, off) else { return None };
        let out = self.arena.scratch_slice(off, 128);
        match cmd {
            c if c == abi::IOC_GET_CONFIG || c == abi::IOC_XCHG_CONFIG => {
                let cfg: abi::Config = read_struct(out);
                let ok =
                    cfg.flags & !abi::CONFIG_F_ALL == 0 && cfg.level <= abi::CONFIG_LEVEL_MAX && cfg.name.contains(&0);
                (!ok).then(|| format!("the module handed out an invalid config {cfg:?}"))
            }
            c if c == abi::IOC_POOL_INFO => pool_info_wrong(&read_struct(out)),
            c if c == abi::IOC_REGION_INFO => {
                let info: abi::RegionInfo = read_struct(out);
                (!(1..=5).contains(&info.kind) || info.size == 0 || !info.size.is_multiple_of(4096))
                    .then(|| format!("odd region info {info:?}"))
            }
            c if c == abi::IOC_SHM_INFO => {
                let info: abi::ShmInfo = read_struct(out);
                (info.abi_version != abi::ABI_VERSION || info.size != self.sh.env.shm_size)
                    .then(|| format!("odd shm info {info:?}"))
            }
            c if c == abi::IOC_DB_INFO => {
                let info: abi::DbInfo = read_struct(out);
                (info.vectors as usize > abi::DB_MAX_VECTORS).then(|| format!("odd doorbell info {info:?}"))
            }
            c if c == abi::IOC_POOL_TAKE || c == abi::IOC_POOL_TAKE_WAIT => desc_wrong(&read_struct(out)),
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn mmap(
        &mut self,
        op: &Op,
        target: Target,
        slot: usize,
        off: u64,
        len: u64,
        prot: i32,
        flags: i32,
        fixed: bool,
        touch: bool,
    ) -> R {
        if self.maps.len() >= MAX_MAPS {
            let m = self.maps.swap_remove(self.n as usize % self.maps.len());
            // SAFETY: our own mapping.
            unsafe { libc::munmap(m.addr as *mut libc::c_void, m.len) };
        }
        let fd = self.fd(target, slot);
        let mut flags = flags;
        let mut len = len.min(1 << 40) as usize;
        let mut hint = 0usize;
        if let (true, Some(m)) = (fixed, self.map(self.n as usize)) {
            // Over a mapping of ours, never beyond it.
            hint = m.addr;
            len = len.clamp(1, m.len);
            flags |= libc::MAP_FIXED;
        } else if flags & libc::MAP_FIXED_NOREPLACE != 0 {
            hint = self.map(self.n as usize).map_or(0, |m| m.addr);
        }
        let before = self.is(fd, target);
        // SAFETY: MAP_FIXED only over our own mapping, bounded to it.
        let p = unsafe { libc::mmap(hint as *mut libc::c_void, len, prot, flags, fd, off as libc::off_t) };
        if flags & libc::MAP_FIXED != 0 {
            // Replaced, or (on failure) maybe unmapped: forget it either way.
            let l = page_up(len as u64) as usize;
            forget_range(&mut self.maps, hint, l);
            if p == libc::MAP_FAILED {
                // SAFETY: the range was ours.
                unsafe { libc::munmap(hint as *mut libc::c_void, l) };
            }
        }
        if p == libc::MAP_FAILED {
            return Err(errno());
        }
        let entry = MapEntry { addr: p as usize, len: page_up(len as u64) as usize, prot };
        self.maps.push(entry);
        if before && self.is(fd, target) {
            if let Some(why) = mmap_wrong(&self.sh.env, target, off, len as u64, flags) {
                self.oracle(op, why);
            }
        }
        if touch && prot & libc::PROT_READ != 0 {
            let last = entry.len - PAGE;
            let _ = self.touch(entry.addr, 64, false, 0);
            let _ =
                self.touch(entry.addr + (self.n as usize * PAGE) % (last + PAGE), 64, prot & libc::PROT_WRITE != 0, 1);
        }
        Ok(p as i64)
    }

    /// Forks; the child reads (and writes) pages of the mappings directly,
    /// unmaps one and exits. A SIGBUS or SIGSEGV ends it: that is what a
    /// revoked or out-of-range page does to a process.
    fn fork_touch(&mut self, touches: usize, write: bool, seed: u64) -> R {
        let spots: Vec<(usize, usize, bool)> = {
            let mut r = Rng::new(seed, 2);
            (0..touches)
                .filter_map(|_| {
                    let m = self.map(r.index(64))?;
                    let at = m.addr + r.index(m.len / PAGE) * PAGE + r.index(PAGE);
                    Some((at, m.prot, write && m.prot & libc::PROT_WRITE != 0))
                })
                .map(|(at, prot, w)| (at, prot as usize, w))
                .collect()
        };
        let unmap = self.map(seed as usize);
        // SAFETY: the child only reads and writes memory, unmaps and exits:
        // no allocation, no lock.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(errno());
        }
        if pid == 0 {
            // SAFETY: in the child; the addresses are our own mappings. The
            // handlers end it quietly (the kernel logs unhandled faults).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = quiet_exit as extern "C" fn(libc::c_int) as usize;
                libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut());
                libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
                for &(at, prot, w) in &spots {
                    if prot as i32 & libc::PROT_READ != 0 {
                        std::ptr::read_volatile(at as *const u8);
                    }
                    if w {
                        std::ptr::write_volatile(at as *mut u8, 0xa5);
                    }
                }
                if let Some(m) = unmap {
                    libc::munmap(m.addr as *mut libc::c_void, m.len);
                }
                libc::_exit(0);
            }
        }
        reap(pid)
    }

    fn nl_open(&mut self, sock: usize, dgram: bool, bind_pid: Option<u32>, rcvbuf: Option<i32>, ext_ack: bool) -> R {
        let slot = sock % NL_SOCKS;
        if self.nl[slot] >= 0 {
            let _ = close(self.nl[slot]);
            self.nl[slot] = -1;
        }
        let ty = if dgram { libc::SOCK_DGRAM } else { libc::SOCK_RAW };
        // SAFETY: plain system call.
        let fd = rc(i64::from(unsafe { libc::socket(libc::AF_NETLINK, ty | libc::SOCK_CLOEXEC, abi::NETLINK_PROTO) }))?
            as i32;
        self.nl[slot] = fd;
        let set = |level, name, v: i32| {
            // SAFETY: v is a valid int for the option.
            unsafe { libc::setsockopt(fd, level, name, (&v as *const i32).cast(), 4) }
        };
        if let Some(b) = rcvbuf {
            set(libc::SOL_SOCKET, libc::SO_RCVBUF, b);
        }
        if ext_ack {
            set(libc::SOL_NETLINK, 11 /* NETLINK_EXT_ACK */, 1);
            set(libc::SOL_NETLINK, 10 /* NETLINK_CAP_ACK */, 1);
        }
        match bind_pid {
            None => Ok(i64::from(fd)),
            Some(pid) => {
                // SAFETY: zero is a valid sockaddr_nl.
                let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
                a.nl_family = libc::AF_NETLINK as u16;
                a.nl_pid = pid;
                // SAFETY: a is valid for its size.
                rc(i64::from(unsafe {
                    libc::bind(fd, (&a as *const libc::sockaddr_nl).cast(), size_of::<libc::sockaddr_nl>() as u32)
                }))
            }
        }
    }

    fn nl_send(&mut self, sock: usize, msg: &NlMsg, to_pid: u32, groups: u32, dontwait: bool) -> R {
        let slot = sock % NL_SOCKS;
        if self.nl[slot] < 0 {
            self.nl_open(slot, false, None, None, false)?;
        }
        // SAFETY: zero is a valid sockaddr_nl.
        let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        a.nl_family = libc::AF_NETLINK as u16;
        a.nl_pid = to_pid;
        a.nl_groups = groups;
        let flags = if dontwait { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: msg and a are valid for their sizes.
        rc(unsafe {
            libc::sendto(
                self.nl[slot],
                msg.bytes.as_ptr().cast(),
                msg.bytes.len(),
                flags,
                (&a as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            ) as i64
        })
    }

    fn nl_recv(&mut self, op: &Op, sock: usize, peek: bool) -> R {
        let fd = self.nl[sock % NL_SOCKS];
        if fd < 0 {
            return Err(libc::EBADF);
        }
        let base = self.arena.scratch();
        let mut last = Err(libc::EAGAIN);
        for i in 0..16 {
            // SAFETY: zero is a valid sockaddr_nl.
            let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            let mut alen = size_of::<libc::sockaddr_nl>() as u32;
            let flags = libc::MSG_DONTWAIT | if peek && i == 0 { libc::MSG_PEEK } else { 0 };
            // SAFETY: reads into the scratch area; from is valid for alen.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    base as *mut libc::c_void,
                    SCRATCH,
                    flags,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut alen,
                )
            };
            if n < 0 {
                let e = errno();
                if i == 0 {
                    last = Err(e);
                }
                break;
            }
            last = Ok(n as i64);
            // Only the kernel's answers are the module's (threads may send
            // each other junk).
            if from.nl_pid == 0 {
                if let Some(why) = nl_answer_wrong(self.arena.scratch_slice(0, n as usize)) {
                    self.oracle(op, why);
                }
            }
        }
        last
    }

    /// A child without root asks: it must get -EPERM, never the addresses.
    fn nl_unprivileged(&mut self, op: &Op) -> R {
        // SAFETY: the child makes system calls only and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(errno());
        }
        if pid == 0 {
            // SAFETY: in the child.
            unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(65534, 65534, 65534) != 0
                    || libc::setresuid(65534, 65534, 65534) != 0
                {
                    libc::_exit(3);
                }
                let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, abi::NETLINK_PROTO);
                if fd < 0 {
                    libc::_exit(3);
                }
                let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), 16);
                let req: [u32; 4] = [16, u32::from(abi::NL_MSG_GET) | (libc::NLM_F_REQUEST as u32) << 16, 1, 0];
                let mut a: libc::sockaddr_nl = std::mem::zeroed();
                a.nl_family = libc::AF_NETLINK as u16;
                libc::sendto(fd, req.as_ptr().cast(), 16, 0, (&a as *const libc::sockaddr_nl).cast(), 12);
                let mut buf = [0u32; 64];
                let n = libc::recv(fd, buf.as_mut_ptr().cast(), 256, 0);
                let ty = (buf[1] & 0xffff) as u16;
                if n >= 20 && ty == libc::NLMSG_ERROR as u16 && buf[4] as i32 == -libc::EPERM {
                    libc::_exit(0);
                }
                libc::_exit(if n >= 16 && ty == abi::NL_MSG_SHARED { 1 } else { 2 });
            }
        }
        let r = reap(pid);
        if r == Ok(1) {
            self.oracle(op, "a caller without CAP_SYS_ADMIN got the addresses".into());
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn sockopt(&mut self, op: &Op, s: &Sockopt) -> R {
        let Sockopt { kind, set, level, name, len, buf, bad_lenptr, seed, valid } = *s;
        let k = kind as usize;
        if self.socks[k] < 0 {
            let (dom, ty, proto) = match kind {
                SockKind::Udp => (libc::AF_INET, libc::SOCK_DGRAM, 0),
                SockKind::Tcp => (libc::AF_INET, libc::SOCK_STREAM, 0),
                SockKind::Raw => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
                SockKind::Udp6 => (libc::AF_INET6, libc::SOCK_DGRAM, 0),
            };
            // SAFETY: plain system call.
            self.socks[k] = rc(i64::from(unsafe { libc::socket(dom, ty | libc::SOCK_CLOEXEC, proto) }))? as i32;
        }
        let fd = self.socks[k];
        let (addr, _) = self.buf(buf, len.clamp(0, 1 << 20) as u64, Some(seed));
        let scratch = Self::in_scratch(&buf);
        // The module's options, which its uapi header makes promises about.
        let ours = (abi::SO_BASE..abi::SO_MAX).contains(&name) && level == libc::SOL_IP && kind != SockKind::Udp6;
        if set {
            if let (true, true) = (valid, scratch) {
                let off = addr - self.arena.scratch();
                let mut m = abi::SoMsg { len: (seed % 57) as u32, seq: seed as u32, data: [0; abi::SO_MSG_MAX] };
                m.data[..8].copy_from_slice(&seed.to_le_bytes());
                write_struct(&mut self.arena.scratch_mut()[off..], &m);
            }
            // SAFETY: the kernel reads at most len bytes from addr.
            let r =
                rc(i64::from(unsafe { libc::setsockopt(fd, level, name, addr as *const libc::c_void, len as u32) }));
            let wrong = name != abi::SO_MSG || len != size_of::<abi::SoMsg>() as i64;
            if r.is_ok() && wrong && ours {
                self.oracle(op, format!("setsockopt({name:#x}) of {len} bytes succeeded"));
            }
            return r;
        }
        let mut optlen = len as i32;
        let lenptr: *mut u32 = if bad_lenptr { 0x10 as *mut u32 } else { (&mut optlen as *mut i32).cast() };
        // SAFETY: the kernel writes at most *optlen bytes at addr (bounded by
        // buf()), and checks lenptr.
        let r = rc(i64::from(unsafe { libc::getsockopt(fd, level, name, addr as *mut libc::c_void, lenptr) }));
        if r.is_ok() && ours {
            let want = match name {
                n if n == abi::SO_MSG => size_of::<abi::SoMsg>() as i64,
                n if n == abi::SO_STATS => size_of::<abi::SoStats>() as i64,
                _ => -1,
            };
            if want < 0 || len != want || i64::from(optlen) != want {
                self.oracle(op, format!("getsockopt({name:#x}) with {len} bytes succeeded, length now {optlen}"));
            } else if name == abi::SO_MSG && scratch {
                let off = addr - self.arena.scratch();
                let m: abi::SoMsg = read_struct(self.arena.scratch_slice(off, 64));
                if m.len as usize > abi::SO_MSG_MAX {
                    self.oracle(op, format!("RIG_SO_MSG says {} bytes, more than it holds", m.len));
                }
            }
        }
        r
    }

    /// Lists /proc/rig_kmod. (What it lists is not checked: another
    /// thread's seek on a stale number may move this file's position.)
    fn proc_dir(&mut self) -> R {
        let fd = open_path(&format!("/proc/{}", abi::PROC_DIR), libc::O_RDONLY | libc::O_DIRECTORY)? as i32;
        let base = self.arena.scratch();
        // SAFETY: reads directory entries into the scratch area.
        let r = rc(unsafe { libc::syscall(libc::SYS_getdents64, fd, base, SCRATCH) });
        let _ = close(fd);
        r
    }

    fn pool_take(&mut self, op: &Op, slot: usize, wait: bool, hold: bool, peek: bool) -> R {
        let fd = self.fd(Target::Pool, slot);
        let mut d = abi::PoolDesc::default();
        let cmd = if wait { abi::IOC_POOL_TAKE_WAIT } else { abi::IOC_POOL_TAKE };
        // SAFETY: d is valid for its size.
        let r = rc(i64::from(unsafe { libc::ioctl(fd, cmd as libc::c_ulong, &mut d) }));
        let taken = r?;
        if let Some(why) = desc_wrong(&d) {
            self.oracle(op, why);
        }
        if peek {
            if self.pool_view.is_none() {
                let len = (abi::POOL_NBUF * abi::POOL_BUF_SIZE) as usize;
                // SAFETY: a fresh shared mapping of the pool.
                let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd, 0) };
                if p != libc::MAP_FAILED {
                    self.pool_view = Some(MapEntry { addr: p as usize, len, prot: libc::PROT_READ });
                }
            }
            if let Some(v) = self.pool_view {
                let at = v.addr + (d.index % abi::POOL_NBUF) as usize * abi::POOL_BUF_SIZE as usize;
                let _ = self.touch(at, abi::POOL_HDR_SIZE as usize, false, 0);
            }
        }
        if !hold {
            let mut rel = abi::PoolRelease { index: d.index, reserved: 0 };
            // SAFETY: rel is valid for its size.
            unsafe { libc::ioctl(fd, abi::IOC_POOL_RELEASE as libc::c_ulong, &mut rel) };
        }
        Ok(taken)
    }

    /// Puts something else at kfile_path. For a symlink to a file, the
    /// module is made to write at once: the file must stay as it was. The
    /// threads never write through what another put there (a new file
    /// only, no symlink followed), and each has a target of its own, so
    /// only the module can have changed it.
    fn kfile_swap(&mut self, op: &Op, kind: KfileKind, size: u64, seed: u64) -> R {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = self.sh.env.kfile_path.clone() else { return Err(libc::ENOENT) };
        let io = |r: std::io::Result<()>| r.map(|_| 0).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
        let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir(&path));
        let mut data = vec![0u8; if kind == KfileKind::Big { 4097 + size as usize } else { size as usize }];
        Rng::new(seed, 4).fill(&mut data);
        let target = format!("{path}.target{}", self.id);
        match kind {
            KfileKind::Regular | KfileKind::Big => io(std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .and_then(|mut f| f.write_all(&data))),
            KfileKind::Fifo => {
                let c = CString::new(path.as_str()).map_err(|_| libc::EINVAL)?;
                // SAFETY: c is NUL-terminated.
                rc(i64::from(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }))
            }
            KfileKind::Dir => io(std::fs::create_dir(&path)),
            KfileKind::Missing => Ok(0),
            KfileKind::SymlinkDev => io(std::os::unix::fs::symlink("/dev/zero", &path)),
            KfileKind::SymlinkProc => io(std::os::unix::fs::symlink(Target::ProcKfile.path(), &path)),
            KfileKind::SymlinkFile => {
                let before = b"untouched\n";
                io(std::fs::write(&target, before))?;
                io(std::os::unix::fs::symlink(&target, &path))?;
                let _ = std::fs::write(Target::ProcKfile.path(), b"through a symlink?\n");
                let after = std::fs::read(&target).unwrap_or_default();
                if after != before {
                    self.oracle(op, format!("the module wrote through a symlink at {path} into {target}"));
                }
                Ok(0)
            }
        }
    }

    fn rebind(&mut self) -> R {
        let Some(bdf) = self.sh.env.bdf.clone() else { return Err(libc::ENODEV) };
        let _one = self.sh.rebind.lock().unwrap_or_else(|e| e.into_inner());
        let dir = "/sys/bus/pci/drivers/rig_kmod";
        let _ = std::fs::write(format!("{dir}/unbind"), &bdf);
        std::fs::write(format!("{dir}/bind"), &bdf).map(|_| 0).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Whether `op` reads or writes /proc/rig_kmod/kfile.
fn kfile_io(op: &Op) -> bool {
    matches!(
        op,
        Op::ProcRead { target: Target::ProcKfile, .. }
            | Op::ProcWrite { target: Target::ProcKfile, .. }
            | Op::ProcSplice { target: Target::ProcKfile, .. }
    )
}

/// A fault in a forked child: exit with 128 + the signal, as a death by it reads.
extern "C" fn quiet_exit(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) };
}

/// Waits for child `pid`: its exit status, or 128 + the signal that ended it.
fn reap(pid: i32) -> R {
    let mut status = 0;
    loop {
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if errno() != libc::EINTR {
            return Err(errno());
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(128 + i64::from(libc::WTERMSIG(status)))
    } else {
        Ok(i64::from(libc::WEXITSTATUS(status)))
    }
}

/// Fills the start of `out` with an argument shaped like `cmd`'s struct.
fn shape_arg(cmd: u32, seed: u64, vectors: u32, out: &mut [u8]) {
    let mut r = Rng::new(seed, 3);
    match cmd {
        c if c == abi::IOC_SET_CONFIG || c == abi::IOC_XCHG_CONFIG => {
            let mut cfg = abi::Config {
                flags: r.below(4) as u32,
                level: r.below(8) as u32,
                cookie: r.next_u64(),
                ..abi::Config::default()
            };
            cfg.name[..4].copy_from_slice(b"fuzz");
            write_struct(out, &cfg);
        }
        c if c == abi::IOC_POOL_START => write_struct(
            out,
            &abi::PoolStart {
                count: r.range(1, 16) as u32,
                len: r.range(1, u64::from(abi::POOL_PAYLOAD_MAX)) as u32,
                seed: r.next_u32(),
                interval_us: r.pick(&[0, 0, 100]),
            },
        ),
        c if c == abi::IOC_POOL_RELEASE => {
            write_struct(out, &abi::PoolRelease { index: r.below(u64::from(abi::POOL_NBUF)) as u32, reserved: 0 })
        }
        c if c == abi::IOC_DB_RING => write_struct(
            out,
            &abi::DbRing { peer: r.below(2) as u32, vector: r.below(u64::from(vectors.max(1))) as u32 },
        ),
        c if c == abi::IOC_DB_WAIT => write_struct(
            out,
            &abi::DbWait {
                vector: r.below(u64::from(vectors.max(1))) as u32,
                timeout_ms: r.pick(&[0, 1, 10]),
                count: r.below(4),
            },
        ),
        _ => {}
    }
}

fn write_struct<T: Copy>(out: &mut [u8], v: &T) {
    let n = size_of::<T>().min(out.len());
    // SAFETY: T is a plain repr(C) integer struct; n bytes fit in out.
    unsafe { std::ptr::copy_nonoverlapping((v as *const T).cast::<u8>(), out.as_mut_ptr(), n) };
}

fn read_struct<T: Copy + Default>(b: &[u8]) -> T {
    let mut v = T::default();
    let n = size_of::<T>().min(b.len());
    // SAFETY: T is a plain repr(C) integer struct; every bit pattern is valid.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), (&mut v as *mut T).cast::<u8>(), n) };
    v
}

/// What is inconsistent in a pool snapshot, if anything.
pub fn pool_info_wrong(i: &abi::PoolInfo) -> Option<String> {
    let ok = i.nbuf == abi::POOL_NBUF
        && i.buf_size == abi::POOL_BUF_SIZE
        && i.kbufs == abi::POOL_KBUFS
        && i.free <= abi::POOL_KBUFS
        && i.ready <= abi::POOL_NBUF
        && i.taken <= abi::POOL_NBUF
        && i.free + i.ready + i.taken <= abi::POOL_NBUF
        && i.consumed <= i.produced
        && i.host_consumed <= i.host_queued;
    (!ok).then(|| format!("inconsistent pool info {i:?}"))
}

/// What is wrong with a buffer the pool handed out, if anything.
pub fn desc_wrong(d: &abi::PoolDesc) -> Option<String> {
    let ok = match d.source {
        abi::POOL_SRC_KERNEL => d.index < abi::POOL_KBUFS && (1..=abi::POOL_PAYLOAD_MAX).contains(&d.len),
        abi::POOL_SRC_HOST => {
            (abi::HRING_FIRST_BUF..abi::HRING_FIRST_BUF + abi::HRING_SLOTS).contains(&d.index)
                && d.len <= abi::POOL_PAYLOAD_MAX
        }
        _ => false,
    };
    (!ok).then(|| format!("the pool handed out {d:?}"))
}

/// What is wrong with a datagram of netlink answers from the kernel.
pub fn nl_answer_wrong(b: &[u8]) -> Option<String> {
    let mut at = 0;
    while at + 16 <= b.len() {
        let word = |o: usize| u32::from_ne_bytes([b[at + o], b[at + o + 1], b[at + o + 2], b[at + o + 3]]);
        let len = word(0) as usize;
        let ty = (word(4) & 0xffff) as u16;
        if len < 16 || at + len > b.len() {
            return Some(format!("an answer with nlmsg_len {len} in {} bytes", b.len() - at));
        }
        match ty {
            t if t == libc::NLMSG_ERROR as u16 => {
                let err = word(16) as i32;
                if len < 20 || !(-4095..=0).contains(&err) {
                    return Some(format!("an NLMSG_ERROR of {len} bytes with error {err}"));
                }
            }
            t if t == abi::NL_MSG_SHARED => {
                let s: abi::NlShared = read_struct(&b[at + 16..at + len]);
                if len != 16 + size_of::<abi::NlShared>()
                    || s.abi_version != abi::ABI_VERSION
                    || s.pages_size != abi::NL_PAGES_SIZE
                    || s.greeting_len as usize != abi::NL_GREETING.len()
                {
                    return Some(format!("an answer of {len} bytes: {s:?}"));
                }
            }
            t => return Some(format!("an answer of type {t:#x}")),
        }
        at += (len + 3) & !3;
    }
    None
}

/// Whether a mapping the module accepted breaks its rules.
pub fn mmap_wrong(env: &Env, t: Target, off: u64, len: u64, flags: i32) -> Option<String> {
    let shared = flags & 0x03 != libc::MAP_PRIVATE;
    if !shared && t != Target::Fault {
        return Some(format!("{} accepted a private mapping", t.path()));
    }
    let size = match t {
        Target::Kmalloc | Target::Vmalloc | Target::VmallocUser | Target::Pool | Target::Reserved => env.map_size(t),
        Target::Shm => env.shm_size,
        _ => return None,
    };
    let end = off.checked_add(page_up(len));
    (end.is_none_or(|e| e > size))
        .then(|| format!("{} mapped {len:#x} bytes at {off:#x}, past its {size:#x}", t.path()))
}

/// `R` for a trace line.
fn show(r: &R) -> String {
    match r {
        Ok(v) => format!("{v}"),
        Err(e) => crate::sys::ename(*e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_snapshots_are_checked() {
        let good = abi::PoolInfo {
            nbuf: 32,
            buf_size: 4096,
            kbufs: 16,
            free: 10,
            ready: 4,
            taken: 2,
            produced: 20,
            consumed: 14,
            ..abi::PoolInfo::default()
        };
        assert_eq!(pool_info_wrong(&good), None);
        assert!(pool_info_wrong(&abi::PoolInfo { free: 17, ..good }).is_some());
        assert!(pool_info_wrong(&abi::PoolInfo { ready: 20, taken: 20, ..good }).is_some());
        assert!(pool_info_wrong(&abi::PoolInfo { consumed: 21, ..good }).is_some());
    }

    #[test]
    fn descriptors_are_checked() {
        let k = abi::PoolDesc { index: 3, source: abi::POOL_SRC_KERNEL, seq: 1, len: 100, seed: 0 };
        assert_eq!(desc_wrong(&k), None);
        assert!(desc_wrong(&abi::PoolDesc { index: 16, ..k }).is_some());
        assert!(desc_wrong(&abi::PoolDesc { len: 0, ..k }).is_some());
        let h = abi::PoolDesc { index: 31, source: abi::POOL_SRC_HOST, seq: 9, len: 0, seed: 0 };
        assert_eq!(desc_wrong(&h), None);
        assert!(desc_wrong(&abi::PoolDesc { index: 32, ..h }).is_some());
        assert!(desc_wrong(&abi::PoolDesc { len: 4033, ..h }).is_some());
        assert!(desc_wrong(&abi::PoolDesc { source: 3, ..h }).is_some());
    }

    fn msg(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = ((16 + payload.len()) as u32).to_ne_bytes().to_vec();
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn netlink_answers_are_checked() {
        let mut err = (-libc::EPERM).to_ne_bytes().to_vec();
        err.extend_from_slice(&[0; 16]);
        assert_eq!(nl_answer_wrong(&msg(libc::NLMSG_ERROR as u16, &err)), None);
        let shared = abi::NlShared {
            pages_phys: 0x1000,
            pages_size: abi::NL_PAGES_SIZE,
            shm_phys: 0,
            shm_size: 0,
            abi_version: 1,
            greeting_len: abi::NL_GREETING.len() as u32,
        };
        let mut payload = vec![0u8; size_of::<abi::NlShared>()];
        write_struct(&mut payload, &shared);
        let mut two = msg(abi::NL_MSG_SHARED, &payload);
        two.extend(msg(libc::NLMSG_ERROR as u16, &err));
        assert_eq!(nl_answer_wrong(&two), None);
        assert!(nl_answer_wrong(&msg(0x42, &[])).is_some());
        assert!(nl_answer_wrong(&msg(abi::NL_MSG_SHARED, &payload[..8])).is_some());
        let mut bad = (5i32).to_ne_bytes().to_vec();
        bad.extend_from_slice(&[0; 16]);
        assert!(nl_answer_wrong(&msg(libc::NLMSG_ERROR as u16, &bad)).is_some());
    }

    #[test]
    fn mappings_past_the_end_or_private_are_caught() {
        let env = Env { shm_size: 4 << 20, ..Env::default() };
        assert_eq!(mmap_wrong(&env, Target::Kmalloc, 0, 0x4000, libc::MAP_SHARED), None);
        assert!(mmap_wrong(&env, Target::Kmalloc, 0x1000, 0x4000, libc::MAP_SHARED).is_some());
        assert!(mmap_wrong(&env, Target::Kmalloc, 0, 0x1000, libc::MAP_PRIVATE).is_some());
        assert_eq!(mmap_wrong(&env, Target::Fault, 1 << 30, 1 << 20, libc::MAP_PRIVATE), None);
        assert!(mmap_wrong(&env, Target::Shm, !4095, 4096, libc::MAP_SHARED).is_some());
    }

    #[test]
    fn stats_count_and_merge() {
        let mut a = Stats::default();
        a.record(Class::Ioctl, &Ok(0));
        a.record(Class::Ioctl, &Err(libc::ENOTTY));
        a.record(Class::Mmap, &Err(9999));
        let mut b = Stats::default();
        b.merge(&a);
        b.merge(&a);
        assert_eq!(b.total(), 6);
        assert_eq!(b.ok[Class::Ioctl.index()], 2);
        assert_eq!(b.errs[Class::Ioctl.index()][libc::ENOTTY as usize], 2);
        assert_eq!(b.errs[Class::Mmap.index()][MAX_ERRNO - 1], 2);
    }
}
