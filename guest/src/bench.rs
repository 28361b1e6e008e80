//! `bench`: how fast each mechanism of the reference module goes, for
//! `rig bench`. Not a check: each figure is one line
//! `BENCH name=<mechanism> ops=<n> bytes=<n> secs=<s>` (the host turns it
//! into operations and megabytes per second), and a mechanism that fails
//! prints `BENCH name=<mechanism> error=<why, to the end of the line>`
//! and the rest go on.
//!
//! `bench mechanisms [--ms N]`   each mechanism for about N ms (default 300)

use crate::args::{Failure, Opts};
use crate::sys::{dev_path, ename, Fd, Map, Sys, RW};
use rig_abi::{Config, PoolDesc, PoolRelease, PoolStart, SoMsg};
use std::mem::size_of;
use std::time::{Duration, Instant};

/// A mechanism's measurement, run when its turn comes.
type Measure<'a> = Box<dyn Fn() -> Result<Tally, String> + 'a>;

/// What one mechanism did in its time.
struct Tally {
    ops: u64,
    bytes: u64,
    secs: f64,
}

/// Repeats `op` (which returns the bytes it moved) for about `budget`.
fn repeat(budget: Duration, mut op: impl FnMut() -> Result<u64, String>) -> Result<Tally, String> {
    let start = Instant::now();
    let (mut ops, mut bytes) = (0u64, 0u64);
    // Check the clock every few operations: reading it costs a syscall under TCG.
    while start.elapsed() < budget {
        for _ in 0..8 {
            bytes += op()?;
            ops += 1;
        }
    }
    Ok(Tally { ops, bytes, secs: start.elapsed().as_secs_f64() })
}

fn open(name: &str) -> Result<Fd, String> {
    let path = dev_path(name);
    Fd::open(&path, libc::O_RDWR).map_err(|e| format!("open {path}: {}", ename(e)))
}

fn sys<T>(what: &str, r: Sys<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {}", ename(e)))
}

fn netlink(budget: Duration) -> Result<Tally, String> {
    repeat(budget, || crate::netlink::ask().map(|_| 0))
}

fn sockopt(budget: Duration) -> Result<Tally, String> {
    let s = sys("socket(AF_INET)", Fd::socket(libc::AF_INET, libc::SOCK_DGRAM, 0))?;
    let mut msg = SoMsg { len: 5, ..SoMsg::default() };
    msg.data[..5].copy_from_slice(b"bench");
    let size = size_of::<SoMsg>();
    let mut set = true;
    repeat(budget, || {
        let mut len = size as libc::socklen_t;
        let p = (&mut msg as *mut SoMsg).cast::<libc::c_void>();
        // SAFETY: msg is a plain struct of `size` bytes, len its size.
        let rc = unsafe {
            if set {
                libc::setsockopt(s.0, libc::SOL_IP, rig_abi::SO_MSG, p, len)
            } else {
                libc::getsockopt(s.0, libc::SOL_IP, rig_abi::SO_MSG, p, &mut len)
            }
        };
        set = !set;
        if rc < 0 {
            return Err(format!("get/setsockopt: {}", ename(crate::sys::errno())));
        }
        Ok(size as u64)
    })
}

fn ioctl(budget: Duration) -> Result<Tally, String> {
    let fd = open(rig_abi::dev::IOCTL)?;
    let mut c = Config::default();
    repeat(budget, || {
        sys("RIG_IOC_GET_CONFIG", fd.ioctl(rig_abi::IOC_GET_CONFIG, &mut c)).map(|_| size_of::<Config>() as u64)
    })
}

fn read_write(budget: Duration) -> Result<Tally, String> {
    let fd = open(rig_abi::dev::RW)?;
    let mut buf = vec![0x5au8; rig_abi::RW_BUF_SIZE as usize];
    let mut write = true;
    repeat(budget, || {
        let n = if write { fd.pwrite(&buf, 0) } else { fd.pread(&mut buf, 0) };
        write = !write;
        sys("pread/pwrite /dev/rig_rw", n).map(|n| n as u64)
    })
}

fn procfs(budget: Duration) -> Result<Tally, String> {
    // The seq_file of counters (`stats`), read whole each time.
    let path = format!("/proc/{}/stats", rig_abi::PROC_DIR);
    repeat(budget, || std::fs::read(&path).map(|b| b.len() as u64).map_err(|e| format!("read {path}: {e}")))
}

/// Copies a buffer into a mapping of `dev` of `len` bytes, again and again.
fn mapped(budget: Duration, dev: &str, len: usize, offset: usize) -> Result<Tally, String> {
    let fd = open(dev)?;
    let map = sys(&format!("mmap {dev}"), Map::new(&fd, offset + len, RW, libc::MAP_SHARED, 0))?;
    let src = vec![0xa5u8; len];
    repeat(budget, || {
        // SAFETY: [offset, offset + len) lies in the live, writable mapping.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), map.ptr().add(offset), len) };
        Ok(len as u64)
    })
}

/// The buffer pool's ioctl-per-buffer path: the kernel produces, this
/// takes and releases each buffer with one ioctl each.
fn pool(budget: Duration) -> Result<Tally, String> {
    let fd = open(rig_abi::dev::POOL)?;
    let len = rig_abi::POOL_PAYLOAD_MAX;
    let start = Instant::now();
    let (mut ops, mut bytes) = (0u64, 0u64);
    while start.elapsed() < budget {
        let batch = rig_abi::POOL_KBUFS;
        let mut req = PoolStart { count: batch, len, seed: 1, interval_us: 0 };
        sys("RIG_IOC_POOL_START", fd.ioctl(rig_abi::IOC_POOL_START, &mut req))?;
        for _ in 0..batch {
            let mut d = PoolDesc::default();
            sys("RIG_IOC_POOL_TAKE_WAIT", fd.ioctl(rig_abi::IOC_POOL_TAKE_WAIT, &mut d))?;
            let mut r = PoolRelease { index: d.index, reserved: 0 };
            sys("RIG_IOC_POOL_RELEASE", fd.ioctl(rig_abi::IOC_POOL_RELEASE, &mut r))?;
            ops += 1;
            bytes += u64::from(d.len);
        }
    }
    Ok(Tally { ops, bytes, secs: start.elapsed().as_secs_f64() })
}

/// `bench mechanisms [--ms N]`.
pub fn mechanisms(args: &[String]) -> Result<(), Failure> {
    let opts = Opts::parse(args, &["--ms"])?;
    let budget = Duration::from_millis(opts.num("--ms", 300)?);
    // The ivshmem region past what the module uses (the host reads it back).
    let shm_free = rig_abi::SHM_USED_END as usize;
    let shm_len = (1 << 20) - shm_free % (1 << 20);
    let all: [(&str, Measure); 9] = [
        ("netlink", Box::new(|| netlink(budget))),
        ("sockopt", Box::new(|| sockopt(budget))),
        ("ioctl", Box::new(|| ioctl(budget))),
        ("read-write", Box::new(|| read_write(budget))),
        ("procfs", Box::new(|| procfs(budget))),
        ("mmap-kmalloc", Box::new(|| mapped(budget, rig_abi::dev::KMALLOC, rig_abi::KMALLOC_SIZE as usize, 0))),
        ("mmap-vmalloc", Box::new(|| mapped(budget, rig_abi::dev::VMALLOC, rig_abi::VMALLOC_SIZE as usize, 0))),
        ("pool-ioctl", Box::new(|| pool(budget))),
        ("ivshmem-write", Box::new(move || mapped(budget, rig_abi::SHM_DEV_NAME, shm_len, shm_free))),
    ];
    for (name, run) in all {
        match run() {
            Ok(t) => println!("BENCH name={name} ops={} bytes={} secs={:.6}", t.ops, t.bytes, t.secs),
            Err(e) => println!("BENCH name={name} error={e}"),
        }
    }
    Ok(())
}
