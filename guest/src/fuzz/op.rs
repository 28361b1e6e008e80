//! The operations, and how a seeded generator draws them. An operation is
//! pure data: what to call with which arguments. Where it needs state (an
//! open file, a live mapping) it names a slot or an index that the
//! executor resolves, so a seed always draws the same operations.
//!
//! Long on purpose: the operation type and its generator side by side, one
//! drawing function per interface, so adding an operation touches one file.

use super::rng::Rng;
use super::target::{ioc_size, mutate_ioctl, Env, Target, KNOWN_IOCTLS};
use rig_abi as abi;
use std::fmt;
use std::mem::size_of;

/// The interfaces of the module, as the summary counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// open/close/dup/poll races on every node.
    Files,
    /// ioctl numbers, sizes, directions and arguments.
    Ioctl,
    /// mmap offsets, lengths, flags; munmap/mremap/mprotect/madvise/fork.
    Mmap,
    /// read/write/lseek/readv/writev with odd sizes, offsets and pointers.
    Rw,
    /// Malformed netlink messages.
    Netlink,
    /// get/setsockopt with every length.
    Sockopt,
    /// /proc/rig_kmod reads at random offsets, writes, splice.
    Procfs,
    /// The buffer pool as a consumer (the host ring's other end).
    Pool,
    /// Unbinding and binding the PCI device under all of the above.
    Pci,
}

impl Class {
    /// Every class, in summary order.
    pub const ALL: [Class; 9] = [
        Class::Files,
        Class::Ioctl,
        Class::Mmap,
        Class::Rw,
        Class::Netlink,
        Class::Sockopt,
        Class::Procfs,
        Class::Pool,
        Class::Pci,
    ];

    /// Position in [`Class::ALL`].
    pub fn index(self) -> usize {
        Class::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }

    /// Its name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Class::Files => "files",
            Class::Ioctl => "ioctl",
            Class::Mmap => "mmap",
            Class::Rw => "rw",
            Class::Netlink => "netlink",
            Class::Sockopt => "sockopt",
            Class::Procfs => "procfs",
            Class::Pool => "pool",
            Class::Pci => "pci",
        }
    }
}

/// A user pointer handed to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ptr {
    /// Offset into the thread's scratch area (a guard page follows it).
    Scratch(usize),
    /// The last `n` bytes before the guard page: the rest faults.
    Straddle(usize),
    /// Offset into a read-only page.
    ReadOnly(usize),
    /// Offset into a PROT_NONE page.
    ProtNone(usize),
    /// Live mapping `k` (modulo their number) at an offset.
    Mapping(usize, usize),
    Null,
    /// Below mmap_min_addr: never mapped.
    Low(usize),
    /// A kernel address.
    Kernel(u64),
    /// A non-canonical address.
    NonCanonical,
    /// A buffer that runs past the end of user space.
    EndOfUser,
}

/// What an ioctl gets as its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A pointer; the bytes there come from `seed`, shaped like the
    /// command's struct when `valid`.
    Ptr { ptr: Ptr, seed: u64, valid: bool },
    /// A plain number.
    Value(u64),
}

/// How a file is waited on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    Poll,
    Select,
    Epoll,
}

/// A socket that get/setsockopt act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockKind {
    Udp,
    Tcp,
    Raw,
    Udp6,
}

/// What is put at the module's kfile_path (the file behind
/// /proc/rig_kmod/kfile), in /tmp where anyone may put anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KfileKind {
    /// A regular file of up to 4096 bytes.
    Regular,
    /// A regular file larger than the module reads.
    Big,
    /// A FIFO: opening it waits for the other end.
    Fifo,
    Dir,
    Missing,
    /// A symlink to a regular file (the module must not write through it).
    SymlinkFile,
    SymlinkDev,
    /// A symlink to /proc/rig_kmod/kfile itself.
    SymlinkProc,
}

/// A netlink message, as bytes, and what kind of malformed it is.
#[derive(Clone, PartialEq, Eq)]
pub struct NlMsg {
    pub kind: &'static str,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for NlMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: Vec<String> = self.bytes.iter().take(20).map(|b| format!("{b:02x}")).collect();
        write!(f, "{} ({} bytes: {})", self.kind, self.bytes.len(), head.join(""))
    }
}

/// One operation. Slots name one of a few open files per target, shared
/// by every thread; maps and sockets are the thread's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Open { target: Target, slot: usize, flags: i32 },
    Close { target: Target, slot: usize },
    Dup { target: Target, slot: usize },
    Poll { fds: [(Target, usize); 3], events: i16, timeout_ms: i32, how: Wait },

    Ioctl { target: Target, slot: usize, cmd: u32, arg: Arg },

    Mmap { target: Target, slot: usize, off: u64, len: u64, prot: i32, flags: i32, fixed: bool, touch: bool },
    Munmap { map: usize, first_page: u64, pages: u64 },
    Mremap { map: usize, new_len: u64, may_move: bool },
    Mprotect { map: usize, prot: i32 },
    Madvise { map: usize, advice: i32 },
    Msync { map: usize, flags: i32 },
    Mlock { map: usize, lock: bool },
    Touch { map: usize, off: u64, len: u64, write: bool, seed: u64 },
    Fork { touches: usize, write: bool, seed: u64 },

    Read { target: Target, slot: usize, len: u64, buf: Ptr, at: Option<i64> },
    Write { target: Target, slot: usize, len: u64, buf: Ptr, at: Option<i64>, seed: u64 },
    Vector { target: Target, slot: usize, write: bool, parts: Vec<(Ptr, u64)>, at: Option<i64>, seed: u64 },
    Seek { target: Target, slot: usize, off: i64, whence: i32 },

    NlOpen { sock: usize, dgram: bool, bind_pid: Option<u32>, rcvbuf: Option<i32>, ext_ack: bool },
    NlSend { sock: usize, msg: NlMsg, to_pid: u32, groups: u32, dontwait: bool },
    NlRecv { sock: usize, peek: bool },
    NlClose { sock: usize },
    NlUnprivileged,

    Sockopt(Sockopt),

    ProcRead { target: Target, slot: usize, off: Option<i64>, len: u64, buf: Ptr },
    ProcWrite { target: Target, slot: usize, len: u64, buf: Ptr, seed: u64 },
    ProcSplice { target: Target, slot: usize, len: u64 },
    ProcDir,
    KfileSwap { kind: KfileKind, size: u64, seed: u64 },

    PoolTake { slot: usize, wait: bool, hold: bool, peek: bool },
    PoolRelease { slot: usize, index: u32 },
    PoolStart { slot: usize, count: u32, len: u32, seed: u32, interval_us: u32 },
    PoolInfo { slot: usize },

    Rebind,
}

/// One get/setsockopt: its own struct so the executor takes it whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sockopt {
    pub kind: SockKind,
    pub set: bool,
    pub level: i32,
    pub name: i32,
    pub len: i64,
    pub buf: Ptr,
    pub bad_lenptr: bool,
    pub seed: u64,
    pub valid: bool,
}

impl Op {
    /// The interface it drives.
    pub fn class(&self) -> Class {
        match self {
            Op::Open { .. } | Op::Close { .. } | Op::Dup { .. } | Op::Poll { .. } => Class::Files,
            Op::Ioctl { .. } => Class::Ioctl,
            Op::Mmap { .. }
            | Op::Munmap { .. }
            | Op::Mremap { .. }
            | Op::Mprotect { .. }
            | Op::Madvise { .. }
            | Op::Msync { .. }
            | Op::Mlock { .. }
            | Op::Touch { .. }
            | Op::Fork { .. } => Class::Mmap,
            Op::Read { .. } | Op::Write { .. } | Op::Vector { .. } | Op::Seek { .. } => Class::Rw,
            Op::NlOpen { .. } | Op::NlSend { .. } | Op::NlRecv { .. } | Op::NlClose { .. } | Op::NlUnprivileged => {
                Class::Netlink
            }
            Op::Sockopt(_) => Class::Sockopt,
            Op::ProcRead { .. } | Op::ProcWrite { .. } | Op::ProcSplice { .. } | Op::ProcDir | Op::KfileSwap { .. } => {
                Class::Procfs
            }
            Op::PoolTake { .. } | Op::PoolRelease { .. } | Op::PoolStart { .. } | Op::PoolInfo { .. } => Class::Pool,
            Op::Rebind => Class::Pci,
        }
    }
}

/// Open files kept per target (shared by the threads).
pub const SLOTS: usize = 3;
/// Netlink sockets per thread.
pub const NL_SOCKS: usize = 3;
/// The scratch area's size; a guard page follows it.
pub const SCRATCH: usize = 0x1_0000;
/// Largest length a get/setsockopt walks through one by one.
pub const SOCKOPT_LENS: u64 = 80;

/// What the generator is allowed to do.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub env: Env,
    /// Unbind and bind the PCI device now and then.
    pub rebind: bool,
    /// One operation in this many is an unbind/bind (when allowed).
    pub rebind_every: u64,
}

const PAGE: u64 = 4096;

fn ptr(r: &mut Rng, len: u64) -> Ptr {
    let fits = (SCRATCH as u64).saturating_sub(len.min(SCRATCH as u64));
    match r.weighted(&[60, 10, 8, 6, 4, 3, 3, 3, 2, 1]) {
        0 => Ptr::Scratch(if r.chance(3, 4) { 0 } else { r.below(fits + 1) as usize }),
        1 => Ptr::Mapping(r.index(64), r.below(1 << 20) as usize),
        2 => Ptr::Straddle(r.below(len.clamp(1, 4096)) as usize),
        3 => Ptr::ReadOnly(r.below(4096) as usize),
        4 => Ptr::Null,
        5 => Ptr::ProtNone(r.below(4096) as usize),
        6 => Ptr::Low(r.range(1, 0xffff) as usize),
        7 => Ptr::Kernel(r.pick(&[0xffff_8880_0000_0000, 0xffff_ffff_8100_0000, 0xffff_ffff_ffff_f000, u64::MAX - 7])),
        8 => Ptr::NonCanonical,
        _ => Ptr::EndOfUser,
    }
}

fn slot(r: &mut Rng) -> usize {
    r.index(SLOTS)
}

fn file_pos(r: &mut Rng) -> Option<i64> {
    match r.below(10) {
        0..=5 => None,
        6 | 7 => Some(r.offset_around(4096, 1) as i64),
        8 => Some(r.below(8192) as i64),
        _ => Some(r.pick(&[-1, i64::MIN, i64::MAX, 1 << 40, 4095, 4096, 4097])),
    }
}

fn open_flags(r: &mut Rng) -> i32 {
    let acc = r.pick(&[libc::O_RDONLY, libc::O_WRONLY, libc::O_RDWR, libc::O_RDWR]);
    let mut f = acc;
    for (bit, n) in [(libc::O_NONBLOCK, 4), (libc::O_TRUNC, 6), (libc::O_APPEND, 8), (libc::O_PATH, 20)] {
        if r.chance(1, n) {
            f |= bit;
        }
    }
    f
}

fn files(r: &mut Rng) -> Op {
    let target = r.pick(&Target::ALL);
    match r.weighted(&[30, 25, 10, 35]) {
        0 => Op::Open { target, slot: slot(r), flags: open_flags(r) },
        1 => Op::Close { target, slot: slot(r) },
        2 => Op::Dup { target, slot: slot(r) },
        _ => {
            let mut fd = || (r.pick(&Target::ALL), r.index(SLOTS));
            let fds = [fd(), fd(), fd()];
            let events = r.pick(&[libc::POLLIN, libc::POLLOUT, libc::POLLIN | libc::POLLOUT, libc::POLLPRI, -1]);
            let timeout_ms = r.pick(&[0, 0, 1, 5, 20]);
            let how = r.pick(&[Wait::Poll, Wait::Poll, Wait::Select, Wait::Epoll]);
            Op::Poll { fds, events, timeout_ms, how }
        }
    }
}

/// The ioctl numbers the target itself answers.
fn own_ioctls(t: Target) -> &'static [u32] {
    const CONFIG: [u32; 4] = [abi::IOC_GET_CONFIG, abi::IOC_SET_CONFIG, abi::IOC_XCHG_CONFIG, abi::IOC_RESET_CONFIG];
    const POOL: [u32; 5] =
        [abi::IOC_POOL_INFO, abi::IOC_POOL_START, abi::IOC_POOL_TAKE, abi::IOC_POOL_TAKE_WAIT, abi::IOC_POOL_RELEASE];
    const DB: [u32; 3] = [abi::IOC_DB_INFO, abi::IOC_DB_RING, abi::IOC_DB_WAIT];
    match t {
        Target::Shm => &[abi::IOC_SHM_INFO],
        Target::Ioctl => &CONFIG,
        Target::Pool => &POOL,
        Target::Doorbell => &DB,
        Target::Kmalloc | Target::Vmalloc | Target::VmallocUser | Target::Fault | Target::Reserved => {
            &[abi::IOC_REGION_INFO]
        }
        _ => &KNOWN_IOCTLS,
    }
}

fn ioctl(r: &mut Rng) -> Op {
    const WITH_IOCTL: [Target; 9] = [
        Target::Shm,
        Target::Kmalloc,
        Target::Vmalloc,
        Target::VmallocUser,
        Target::Fault,
        Target::Ioctl,
        Target::Reserved,
        Target::Pool,
        Target::Doorbell,
    ];
    let target = if r.chance(17, 20) { r.pick(&WITH_IOCTL) } else { r.pick(&Target::ALL) };
    let (cmd, known) = match r.weighted(&[40, 20, 20, 10, 10]) {
        0 => (r.pick(own_ioctls(target)), true),
        1 => (r.pick(&KNOWN_IOCTLS), true),
        2 => (mutate_ioctl(r.pick(&KNOWN_IOCTLS), r.next_u32()), false),
        3 => {
            let nr = r.below(0x60) as u32;
            let any = r.below(0x4000) as u32;
            let size = r.pick(&[0, 1, 8, 16, 24, 48, 64, 88, any]);
            let dir = r.below(4) as u32;
            (abi::ioc::ioc(dir, abi::IOC_MAGIC, nr as u8, size as usize), false)
        }
        _ => (r.next_u32(), false),
    };
    let arg = if r.chance(1, 10) {
        let high = 0x8000_0000_0000_0000 | r.next_u64();
        Arg::Value(r.pick(&[0, 1, 0x1000, u64::MAX, high]))
    } else {
        let size = ioc_size(cmd).max(8) as u64;
        Arg::Ptr { ptr: ptr(r, size), seed: r.next_u64(), valid: known && r.chance(1, 2) }
    };
    let slot = slot(r);
    Op::Ioctl { target, slot, cmd, arg }
}

fn mmap_op(r: &mut Rng, env: &Env) -> Op {
    match r.weighted(&[30, 12, 6, 5, 6, 3, 3, 30, 5]) {
        0 => {
            let target = r.pick(&Target::MAPPABLE);
            let bar = r.chance(1, 2);
            let size = if target == Target::Mem && bar { env.shm_size.max(PAGE) } else { env.map_size(target) };
            let base = env.map_base(target, bar);
            let off = match r.below(10) {
                0 => base.wrapping_sub(PAGE),
                1 => r.next_u64() & !(PAGE - 1),
                _ => base.wrapping_add(r.offset_around(size, PAGE)),
            };
            let len = match r.below(4) {
                0 => r.len_around(size),
                _ => r.range(1, (size / PAGE).clamp(1, 64)) * PAGE,
            };
            let prot = r.pick(&[
                libc::PROT_READ,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::PROT_WRITE,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::PROT_NONE,
            ]);
            let mut flags = if r.chance(4, 5) { libc::MAP_SHARED } else { libc::MAP_PRIVATE };
            for (bit, n) in [
                (libc::MAP_LOCKED, 10),
                (libc::MAP_POPULATE, 7),
                (libc::MAP_NORESERVE, 20),
                (libc::MAP_FIXED_NOREPLACE, 30),
            ] {
                if r.chance(1, n) {
                    flags |= bit;
                }
            }
            if r.chance(1, 30) {
                // MAP_SHARED_VALIDATE with a flag it does not know.
                flags = 0x03 | 0x0800_0000;
            }
            let fixed = r.chance(1, 20);
            Op::Mmap { target, slot: slot(r), off, len, prot, flags, fixed, touch: r.chance(1, 2) }
        }
        1 => Op::Munmap { map: r.index(64), first_page: r.below(16), pages: r.range(1, 16) },
        2 => {
            let old = r.range(1, 16) * PAGE;
            Op::Mremap { map: r.index(64), new_len: r.len_around(old), may_move: r.chance(1, 2) }
        }
        3 => Op::Mprotect {
            map: r.index(64),
            prot: r.pick(&[libc::PROT_NONE, libc::PROT_READ, libc::PROT_READ | libc::PROT_WRITE, libc::PROT_EXEC]),
        },
        4 => Op::Madvise {
            map: r.index(64),
            advice: r.pick(&[
                libc::MADV_DONTNEED,
                libc::MADV_WILLNEED,
                libc::MADV_NORMAL,
                libc::MADV_RANDOM,
                libc::MADV_SEQUENTIAL,
                libc::MADV_DONTFORK,
                libc::MADV_DOFORK,
                libc::MADV_DONTDUMP,
                20, // MADV_COLD
                21, // MADV_PAGEOUT
                22, // MADV_POPULATE_READ
                23, // MADV_POPULATE_WRITE
            ]),
        },
        5 => Op::Msync { map: r.index(64), flags: r.pick(&[libc::MS_SYNC, libc::MS_ASYNC, libc::MS_INVALIDATE, 0, 7]) },
        6 => Op::Mlock { map: r.index(64), lock: r.chance(1, 2) },
        7 => Op::Touch {
            map: r.index(64),
            off: r.below(1 << 20),
            len: {
                let any = r.range(1, 8192);
                r.pick(&[1, 8, 64, 4096, any])
            },
            write: r.chance(1, 2),
            seed: r.next_u64(),
        },
        _ => Op::Fork { touches: r.range(1, 8) as usize, write: r.chance(1, 3), seed: r.next_u64() },
    }
}

fn rw(r: &mut Rng) -> Op {
    let target = if r.chance(1, 2) { Target::Rw } else { r.pick(&Target::READABLE) };
    let slot = slot(r);
    match r.weighted(&[35, 35, 15, 15]) {
        0 => {
            let len = r.len_around(4096);
            Op::Read { target, slot, len, buf: ptr(r, len), at: file_pos(r) }
        }
        1 => {
            let len = r.len_around(4096);
            let target = if r.chance(9, 10) { Target::Rw } else { r.pick(Target::DEVICES) };
            Op::Write { target, slot, len, buf: ptr(r, len), at: file_pos(r), seed: r.next_u64() }
        }
        2 => {
            let n = r.range(1, 4) as usize;
            let parts = (0..n)
                .map(|_| {
                    let len = r.len_around(1024);
                    (ptr(r, len), len)
                })
                .collect();
            Op::Vector { target, slot, write: r.chance(1, 2), parts, at: file_pos(r), seed: r.next_u64() }
        }
        _ => {
            let whence = r.pick(&[libc::SEEK_SET, libc::SEEK_CUR, libc::SEEK_END, libc::SEEK_DATA, libc::SEEK_HOLE, 5]);
            let any = r.below(8192) as i64;
            let off = r.pick(&[0, 1, -1, 4095, 4096, 4097, i64::MAX, i64::MIN, any]);
            Op::Seek { target, slot, off, whence }
        }
    }
}

/// A netlink header: length, type, flags, seq, pid.
fn nlmsghdr(len: u32, ty: u16, flags: u16, seq: u32, pid: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&pid.to_ne_bytes());
    b
}

/// A netlink message: right, or wrong in one of the ways netlink can be.
pub fn nl_msg(r: &mut Rng) -> NlMsg {
    const REQ: u16 = libc::NLM_F_REQUEST as u16;
    let flags = if r.chance(1, 3) { REQ | libc::NLM_F_ACK as u16 } else { REQ };
    let seq = r.next_u32();
    let (kind, bytes) = match r.below(11) {
        0 | 1 => ("get", nlmsghdr(16, abi::NL_MSG_GET, flags, seq, 0)),
        2 => {
            let n = r.below(16) as usize;
            let mut b = nlmsghdr(16, abi::NL_MSG_GET, flags, seq, 0);
            b.truncate(n);
            ("short", b)
        }
        3 => ("len below header", nlmsghdr(r.below(16) as u32, abi::NL_MSG_GET, flags, seq, 0)),
        4 => ("len beyond data", nlmsghdr(r.range(17, 0x1_0000) as u32, abi::NL_MSG_GET, flags, seq, 0)),
        5 => {
            let any = r.next_u32() as u16;
            let ty = r.pick(&[0, 1, 2, 3, 4, 0xf, abi::NL_MSG_SHARED, 0x12, 0xffff, any]);
            ("wrong type", nlmsghdr(16, ty, flags, seq, 0))
        }
        6 => {
            let any = r.next_u32() as u16;
            let f = r.pick(&[0, libc::NLM_F_DUMP as u16, 0xffff, any]);
            ("odd flags", nlmsghdr(16, abi::NL_MSG_GET, f, seq, 0))
        }
        7 => {
            let any = r.next_u32();
            ("wrong pid", nlmsghdr(16, abi::NL_MSG_GET, flags, seq, r.pick(&[1, 0xffff_ffff, any])))
        }
        8 => {
            // Many requests in one datagram: as many answers at once.
            let n = r.range(2, 64) as usize;
            let mut b = Vec::new();
            for i in 0..n {
                b.extend(nlmsghdr(16, abi::NL_MSG_GET, flags, seq.wrapping_add(i as u32), 0));
            }
            ("batch", b)
        }
        9 => {
            // A request with a payload, then junk.
            let extra = r.range(1, 256) as usize;
            let mut b = nlmsghdr((16 + extra) as u32, abi::NL_MSG_GET, flags, seq, 0);
            let mut junk = vec![0u8; extra + r.below(64) as usize];
            r.fill(&mut junk);
            b.extend(junk);
            ("payload", b)
        }
        _ => {
            let mut b = vec![0u8; r.pick(&[17, 100, 4096, 0x8000, 0x1_0000]) as usize];
            r.fill(&mut b);
            if r.chance(1, 2) {
                let hdr = nlmsghdr(b.len() as u32, abi::NL_MSG_GET, flags, seq, 0);
                b[..16].copy_from_slice(&hdr);
            }
            ("oversized", b)
        }
    };
    NlMsg { kind, bytes }
}

fn netlink(r: &mut Rng) -> Op {
    let sock = r.index(NL_SOCKS);
    match r.weighted(&[60, 20, 8, 5, 2]) {
        0 => {
            let msg = nl_msg(r);
            let any = r.next_u32();
            let to_pid = if r.chance(9, 10) { 0 } else { r.pick(&[1, 0xffff_ffff, any]) };
            let groups = if r.chance(19, 20) { 0 } else { r.next_u32() };
            Op::NlSend { sock, msg, to_pid, groups, dontwait: r.chance(1, 2) }
        }
        1 => Op::NlRecv { sock, peek: r.chance(1, 5) },
        2 => Op::NlOpen {
            sock,
            dgram: r.chance(1, 3),
            bind_pid: r.chance(1, 4).then(|| {
                let any = r.next_u32();
                r.pick(&[0, 1, 2, any])
            }),
            rcvbuf: r.chance(1, 4).then(|| r.pick(&[0, 1, 256, 4096])),
            ext_ack: r.chance(1, 2),
        },
        3 => Op::NlClose { sock },
        _ => Op::NlUnprivileged,
    }
}

fn sockopt(r: &mut Rng, n: u64) -> Op {
    let kind = r.pick(&[SockKind::Udp, SockKind::Udp, SockKind::Tcp, SockKind::Raw, SockKind::Udp6]);
    let name = match r.below(10) {
        0..=3 => r.pick(&[abi::SO_MSG, abi::SO_STATS]),
        4..=8 => abi::SO_BASE - 2 + r.below((abi::SO_MAX - abi::SO_BASE + 4) as u64) as i32,
        // Netfilter's own ranges (ip_tables, ebtables): nobody owns them here.
        _ => r.pick(&[64, 65, 66, 67, 128, 0x5000, i32::MAX]),
    };
    // Every length in turn, so each meets every option; often the right
    // one (else nothing would ever succeed); now and then an edge.
    let len = match r.below(12) {
        0..=6 => (n % (SOCKOPT_LENS + 1)) as i64,
        7..=9 => r.pick(&[size_of::<abi::SoMsg>() as i64, size_of::<abi::SoStats>() as i64]),
        _ => r.pick(&[-1, i64::from(i32::MIN), 0x7fff_ffff, 0xffff_ffff, 4096, 0x1_0000]),
    };
    let level = if r.chance(19, 20) { libc::SOL_IP } else { r.pick(&[libc::SOL_SOCKET, libc::IPPROTO_TCP, 0]) };
    let buf = ptr(r, len.clamp(0, 4096) as u64);
    Op::Sockopt(Sockopt {
        kind,
        set: r.chance(1, 2),
        level,
        name,
        len,
        buf,
        bad_lenptr: r.chance(1, 30),
        seed: r.next_u64(),
        valid: r.chance(1, 2),
    })
}

fn procfs(r: &mut Rng) -> Op {
    let target = r.pick(&Target::PROC);
    let slot = slot(r);
    match r.weighted(&[55, 20, 15, 5, 5]) {
        0 => {
            let any = r.range(1, 3000);
            let len = r.pick(&[1, 2, 7, 64, 100, 4095, 4096, 4097, 8192, any]);
            let off = match r.below(3) {
                0 => None,
                _ => {
                    let any = r.below(2000) as i64;
                    Some(r.pick(&[0, 1, 5, 40, 100, 1000, 4096, 1 << 20, i64::MAX, -1, any]))
                }
            };
            Op::ProcRead { target, slot, off, len, buf: ptr(r, len) }
        }
        1 => {
            let target = if r.chance(4, 5) { Target::ProcKfile } else { target };
            let any = r.range(1, 4096);
            let len = r.pick(&[0, 1, 10, 100, 4095, 4096, 4097, 5000, any]);
            Op::ProcWrite { target, slot, len, buf: ptr(r, len), seed: r.next_u64() }
        }
        2 => Op::ProcSplice { target, slot, len: r.pick(&[1, 10, 4096, 0x1_0000]) },
        3 => Op::ProcDir,
        _ => {
            let kind = r.pick(&[
                KfileKind::Regular,
                KfileKind::Regular,
                KfileKind::Big,
                KfileKind::Fifo,
                KfileKind::Dir,
                KfileKind::Missing,
                KfileKind::SymlinkFile,
                KfileKind::SymlinkDev,
                KfileKind::SymlinkProc,
            ]);
            Op::KfileSwap { kind, size: r.below(4097), seed: r.next_u64() }
        }
    }
}

fn pool(r: &mut Rng) -> Op {
    let slot = slot(r);
    match r.weighted(&[50, 25, 8, 17]) {
        0 => Op::PoolTake { slot, wait: r.chance(1, 6), hold: r.chance(1, 5), peek: r.chance(1, 2) },
        1 => Op::PoolRelease {
            slot,
            index: if r.chance(1, 5) { r.edge_u32() } else { r.below(u64::from(abi::POOL_NBUF)) as u32 },
        },
        2 => {
            let count = if r.chance(9, 10) { r.range(1, 64) as u32 } else { r.edge_u32() };
            let len = if r.chance(4, 5) { r.range(1, u64::from(abi::POOL_PAYLOAD_MAX)) as u32 } else { r.edge_u32() };
            let interval_us = r.pick(&[0, 0, 0, 10, 100, 1000, 1_000_000, 1_000_001, u32::MAX]);
            Op::PoolStart { slot, count, len, seed: r.next_u32(), interval_us }
        }
        _ => Op::PoolInfo { slot },
    }
}

/// Operation number `n` of a thread.
pub fn generate(r: &mut Rng, cfg: &GenConfig, n: u64) -> Op {
    if cfg.rebind && cfg.env.bdf.is_some() && cfg.rebind_every > 0 && r.below(cfg.rebind_every) == 0 {
        return Op::Rebind;
    }
    match r.weighted(&[8, 20, 18, 12, 10, 10, 8, 14]) {
        0 => files(r),
        1 => ioctl(r),
        2 => mmap_op(r, &cfg.env),
        3 => rw(r),
        4 => netlink(r),
        5 => sockopt(r, n),
        6 => procfs(r),
        _ => pool(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GenConfig {
        let env = Env {
            shm_phys: 0xfe00_0000,
            shm_size: 4 << 20,
            nl_phys: 0x100_0000,
            reserved_size: 1 << 20,
            bdf: Some("0000:00:02.0".into()),
            vectors: 2,
            kfile_path: Some("/tmp/rig_kfile".into()),
        };
        GenConfig { env, rebind: true, rebind_every: 500 }
    }

    #[test]
    fn a_seed_draws_the_same_operations() {
        let c = cfg();
        let draw = |seed| {
            let mut r = Rng::new(seed, 3);
            (0..500).map(|n| generate(&mut r, &c, n)).collect::<Vec<Op>>()
        };
        assert_eq!(draw(11), draw(11));
        assert_ne!(draw(11), draw(12));
    }

    #[test]
    fn every_interface_is_drawn() {
        let c = cfg();
        let mut r = Rng::new(1, 0);
        let mut seen = [0u64; Class::ALL.len()];
        let mut lens = std::collections::BTreeSet::new();
        for n in 0..200_000 {
            let op = generate(&mut r, &c, n);
            seen[op.class().index()] += 1;
            if let Op::Sockopt(s) = op {
                lens.insert(s.len);
            }
        }
        for c in Class::ALL {
            assert!(seen[c.index()] > 0, "{} never drawn: {seen:?}", c.name());
        }
        // get/setsockopt meets every length from 0 to the largest walked.
        for l in 0..=SOCKOPT_LENS as i64 {
            assert!(lens.contains(&l), "sockopt length {l} never drawn");
        }
        // Without the PCI address (or when told not to) there is no rebind.
        let mut quiet = c.clone();
        quiet.rebind = false;
        assert!((0..50_000).all(|n| generate(&mut r, &quiet, n) != Op::Rebind));
    }

    #[test]
    fn malformed_netlink_covers_every_kind() {
        let mut r = Rng::new(5, 0);
        let kinds: std::collections::BTreeSet<&str> = (0..2000).map(|_| nl_msg(&mut r).kind).collect();
        for k in [
            "get",
            "short",
            "len below header",
            "len beyond data",
            "wrong type",
            "odd flags",
            "wrong pid",
            "batch",
            "payload",
            "oversized",
        ] {
            assert!(kinds.contains(k), "{k} never drawn");
        }
        let get = nlmsghdr(16, abi::NL_MSG_GET, 1, 7, 0);
        assert_eq!(get.len(), 16);
        assert_eq!(u16::from_ne_bytes([get[4], get[5]]), abi::NL_MSG_GET);
    }
}
