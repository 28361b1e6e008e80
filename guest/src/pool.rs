//! 10. Buffer pool, producer and consumer.
//!
//! With nothing produced, a non-blocking take gives EAGAIN, poll and select
//! report nothing, and a blocking take is interrupted by a signal (EINTR).
//! Then the kernel thread produces N buffers; they are taken in turn after
//! poll() (or select(), or by a blocking take), read in place through the
//! mapping and released: all N arrive, in order, none lost or duplicated,
//! each with the right header and payload, and the pool is full again.

use crate::args::{Failure, Opts};
use crate::report::{Report, SysChecks};
use crate::sys::{dev_path, ename, Fd, Map, Sys};
use rig_abi::{PoolBuf, PoolDesc, PoolInfo, PoolRelease, PoolStart};
use rig_abi::{IOC_POOL_INFO, IOC_POOL_RELEASE, IOC_POOL_START, IOC_POOL_TAKE, IOC_POOL_TAKE_WAIT};
use rig_abi::{POOL_BUF_MAGIC, POOL_BUF_SIZE, POOL_HDR_SIZE, POOL_KBUFS, POOL_NBUF, POOL_SRC_KERNEL};

pub fn info(fd: &Fd) -> Sys<PoolInfo> {
    let mut i = PoolInfo::default();
    fd.ioctl(IOC_POOL_INFO, &mut i).map(|_| i)
}

pub fn take(fd: &Fd, wait: bool) -> Sys<PoolDesc> {
    let mut d = PoolDesc::default();
    fd.ioctl(if wait { IOC_POOL_TAKE_WAIT } else { IOC_POOL_TAKE }, &mut d).map(|_| d)
}

pub fn release(fd: &Fd, index: u32) -> Sys<()> {
    let mut rel = PoolRelease { index, reserved: 0 };
    fd.ioctl(IOC_POOL_RELEASE, &mut rel).map(|_| ())
}

/// poll() for POLLIN with a timeout in ms; the revents.
pub fn poll_in(fd: &Fd, timeout_ms: i32) -> Sys<i16> {
    let mut p = libc::pollfd { fd: fd.0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if n < 0 {
        Err(crate::sys::errno())
    } else {
        Ok(p.revents)
    }
}

/// select() for readability with a timeout in ms.
fn select_readable(fd: &Fd, timeout_ms: i64) -> Sys<bool> {
    // SAFETY: an fd_set is plain data; FD_* work on the one we own.
    unsafe {
        let mut set: libc::fd_set = std::mem::zeroed();
        libc::FD_ZERO(&mut set);
        libc::FD_SET(fd.0, &mut set);
        let mut tv = libc::timeval { tv_sec: timeout_ms / 1000, tv_usec: (timeout_ms % 1000) * 1000 };
        let n = libc::select(fd.0 + 1, &mut set, std::ptr::null_mut(), std::ptr::null_mut(), &mut tv);
        if n < 0 {
            Err(crate::sys::errno())
        } else {
            Ok(libc::FD_ISSET(fd.0, &set))
        }
    }
}

/// Checks a taken buffer in place: header as the descriptor says, payload pattern.
pub fn verify_buffer(map: &Map, d: &PoolDesc) -> Result<(), String> {
    if d.index >= POOL_NBUF {
        return Err(format!("index {} is outside the pool", d.index));
    }
    let off = (d.index * POOL_BUF_SIZE) as usize;
    let hdr: PoolBuf = map.read_obj(off);
    let want = (POOL_BUF_MAGIC, d.source, d.seq, d.len, d.seed, d.index);
    let got = (hdr.magic, hdr.source, hdr.seq, hdr.len, hdr.seed, hdr.index);
    if want != got {
        return Err(format!(
            "header (magic, source, seq, len, seed, index) is {got:x?}, the descriptor says {want:x?}"
        ));
    }
    if d.len > rig_abi::POOL_PAYLOAD_MAX {
        return Err(format!("len {} is above the maximum", d.len));
    }
    let payload = map.read(off + POOL_HDR_SIZE as usize, d.len as usize);
    match rig_abi::first_mismatch(d.seed, 0, &payload) {
        None => Ok(()),
        Some(i) => Err(format!(
            "payload byte {i} is {:#04x}, the pattern (seed {}) says {:#04x}",
            payload[i],
            d.seed,
            rig_abi::pattern_byte(d.seed, i as u64)
        )),
    }
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// A blocking take that SIGALRM interrupts after `ms`.
fn take_interrupted(fd: &Fd, ms: i64) -> Sys<PoolDesc> {
    // SAFETY: installs a handler without SA_RESTART, arms a one-shot timer,
    // and restores both afterwards.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as *const () as usize;
        sa.sa_flags = 0;
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGALRM, &sa, &mut old);
        let t = libc::itimerval {
            it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
            it_value: libc::timeval { tv_sec: ms / 1000, tv_usec: (ms % 1000) * 1000 },
        };
        libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut());
        let r = take(fd, true);
        let off: libc::itimerval = std::mem::zeroed();
        libc::setitimer(libc::ITIMER_REAL, &off, std::ptr::null_mut());
        libc::sigaction(libc::SIGALRM, &old, std::ptr::null_mut());
        r
    }
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let opts = Opts::parse(args, &["--count", "--seed", "--len", "--interval-us"])?;
    let count = opts.num("--count", 64)? as u32;
    let seed = opts.num("--seed", 1000)? as u32;
    let len = opts.num("--len", rig_abi::POOL_PAYLOAD_MAX as u64)? as u32;
    let interval = opts.num("--interval-us", 500)? as u32;
    let mut r = Report::new("pool");
    let path = dev_path(rig_abi::dev::POOL);
    let Some(fd) = r.success(format!("open {path}"), Fd::open(&path, libc::O_RDWR)) else {
        return r.finish();
    };
    let Some(start) = r.success("RIG_IOC_POOL_INFO", info(&fd)) else {
        return r.finish();
    };
    r.eq("the pool's geometry", (POOL_NBUF, POOL_BUF_SIZE, POOL_KBUFS), (start.nbuf, start.buf_size, start.kbufs));
    r.eq(
        "the pool is full and idle: free, ready, taken, pending",
        (POOL_KBUFS, 0, 0, 0),
        (start.free, start.ready, start.taken, start.pending),
    );
    let Some(map) = r.success(
        "map the pool's buffers (in BAR2)",
        Map::new(&fd, (POOL_NBUF * POOL_BUF_SIZE) as usize, libc::PROT_READ, libc::MAP_SHARED, 0),
    ) else {
        return r.finish();
    };

    r.errno("a non-blocking take with nothing produced fails", libc::EAGAIN, &take(&fd, false));
    r.eq("poll() reports nothing to read", Ok(0), poll_in(&fd, 0));
    r.eq("select() reports nothing to read", Ok(false), select_readable(&fd, 0));
    r.errno("a blocking take is interrupted by a signal (no SA_RESTART)", libc::EINTR, &take_interrupted(&fd, 200));
    r.errno("releasing a buffer nobody took fails", libc::EINVAL, &release(&fd, 0));
    r.errno("releasing an index outside the pool fails", libc::EINVAL, &release(&fd, POOL_NBUF));

    let mut st = PoolStart { count, len, seed, interval_us: interval };
    if r.success(
        format!("start the producer: {count} buffers of {len} bytes, seed {seed}"),
        fd.ioctl(IOC_POOL_START, &mut st),
    )
    .is_none()
    {
        return r.finish();
    }
    let mut st2 = st;
    r.errno("a second start while producing fails", libc::EBUSY, &fd.ioctl(IOC_POOL_START, &mut st2));

    let first_seq = start.produced + 1;
    let mut seqs: Vec<u64> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let (mut by_poll, mut by_select, mut by_wait) = (0, 0, 0);
    for i in 0..count {
        // Take each buffer a different way: poll + take, select + take, or a blocking take.
        let d = match i % 3 {
            0 => match poll_in(&fd, 10_000) {
                Ok(ev) if ev & libc::POLLIN != 0 => {
                    by_poll += 1;
                    take(&fd, false)
                }
                other => Err(other.err().unwrap_or(libc::ETIMEDOUT)),
            },
            1 => match select_readable(&fd, 10_000) {
                Ok(true) => {
                    by_select += 1;
                    take(&fd, false)
                }
                other => Err(other.err().unwrap_or(libc::ETIMEDOUT)),
            },
            _ => {
                by_wait += 1;
                take(&fd, true)
            }
        };
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("buffer {} of {count}: {}", i + 1, ename(e)));
                break;
            }
        };
        if d.source != POOL_SRC_KERNEL {
            problems.push(format!("buffer {} came from source {}", i + 1, d.source));
        }
        if let Err(why) = verify_buffer(&map, &d) {
            problems.push(format!("seq {}: {why}", d.seq));
        }
        if d.seed != seed.wrapping_add(d.seq as u32) {
            problems.push(format!("seq {} has seed {}, expected {}", d.seq, d.seed, seed.wrapping_add(d.seq as u32)));
        }
        seqs.push(d.seq);
        if let Err(e) = release(&fd, d.index) {
            problems.push(format!("release of buffer {}: {}", d.index, ename(e)));
        }
    }
    r.eq(
        format!("{count} buffers taken (poll {by_poll}, select {by_select}, blocking {by_wait})"),
        count as usize,
        seqs.len(),
    );
    let want: Vec<u64> = (first_seq..first_seq + count as u64).collect();
    r.eq("in order, none lost or duplicated (seq)", want.clone(), seqs.clone());
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    r.eq("distinct sequence numbers", seqs.len(), sorted.len());
    r.check(
        problems.is_empty(),
        "every header and payload was right, read in place",
        "no problems",
        problems.join("; "),
    );

    if let Some(end) = r.success("RIG_IOC_POOL_INFO", info(&fd)) {
        r.eq(
            "the pool is full again: free, ready, taken, pending",
            (POOL_KBUFS, 0, 0, 0),
            (end.free, end.ready, end.taken, end.pending),
        );
        r.eq(
            "produced and consumed went up by the count",
            (start.produced + count as u64, start.consumed + count as u64),
            (end.produced, end.consumed),
        );
    }
    r.errno("after the last buffer a non-blocking take fails again", libc::EAGAIN, &take(&fd, false));
    r.note(format!(
        "the last buffer, seq {}, sits in buffer {} at region offset {:#x}",
        first_seq + count as u64 - 1,
        (first_seq + count as u64 - 2) % POOL_KBUFS as u64,
        rig_abi::pool_buf_offset(((first_seq + count as u64 - 2) % POOL_KBUFS as u64) as u32)
    ));
    r.finish()
}

/// `pool-info [--drain]`: the pool's state in one line (RIG_IOC_POOL_INFO,
/// which first looks at the host's ring) and the ring's counters; with
/// --drain, every buffer ready is taken and given back first.
pub fn info_cmd(args: &[String]) -> Result<(), Failure> {
    let opts = Opts::parse(args, &["--drain"])?;
    let drain = opts.num("--drain", 0)? != 0;
    let path = dev_path(rig_abi::dev::POOL);
    let fd = Fd::open(&path, libc::O_RDWR).map_err(|e| Failure::Check(format!("open {path}: {}", ename(e))))?;
    let start = std::time::Instant::now();
    let mut drained = 0;
    while let (true, Ok(d)) = (drain, take(&fd, false)) {
        release(&fd, d.index).map_err(|e| Failure::Check(format!("release {}: {}", d.index, ename(e))))?;
        drained += 1;
    }
    let i = info(&fd).map_err(|e| Failure::Check(format!("RIG_IOC_POOL_INFO: {}", ename(e))))?;
    let took = start.elapsed();
    if drain {
        println!("drained {drained}");
    }
    println!(
        "free {} ready {} taken {} host_queued {} host_consumed {} ({} ms)",
        i.free,
        i.ready,
        i.taken,
        i.host_queued,
        i.host_consumed,
        took.as_millis()
    );
    match crate::doorbell::read_hring() {
        Ok(h) => println!("ring prod {} cons {} bad {}", h.prod, h.cons, h.bad),
        Err(e) => println!("ring: {e}"),
    }
    Ok(())
}
