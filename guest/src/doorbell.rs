//! 11. ivshmem-doorbell: the host as producer.
//!
//! `doorbell --expect plain|doorbell` checks the mode the module chose. On
//! ivshmem-plain: no peer id, no vectors, ringing fails with EOPNOTSUPP. On
//! ivshmem-doorbell: a peer id, the vectors requested (/proc/interrupts),
//! the guest's half of the ring control block in BAR2, and the interrupt
//! path end to end: the guest rings itself and sees its own interrupt.
//!
//! `hring --count N` consumes N buffers the host produced into its ring
//! (protocol in the uapi header), woken by the host's doorbell, checks
//! them, gives them back, and rings the host on RIG_DB_VEC_CONSUMED.

use crate::args::{Failure, Opts};
use crate::pool::{info as pool_info, poll_in, release, take, verify_buffer};
use crate::report::{Report, SysChecks};
use crate::sys::{collect, detach, dev_path, ename, read_text, Fd, Map, Sys};
use rig_abi::{DbInfo, DbRing, DbWait, Hring, IOC_DB_INFO, IOC_DB_RING, IOC_DB_WAIT};
use rig_abi::{DB_VEC_CONSUMED, DB_VEC_PRODUCED, HRING_FIRST_BUF, HRING_MAGIC, HRING_OFFSET, HRING_READY, HRING_SLOTS};
use rig_abi::{PEER_NONE, POOL_BUF_SIZE, POOL_NBUF, POOL_SRC_HOST};
use std::time::{Duration, Instant};

pub fn db_info(fd: &Fd) -> Sys<DbInfo> {
    let mut i = DbInfo::default();
    fd.ioctl(IOC_DB_INFO, &mut i).map(|_| i)
}

pub fn ring(fd: &Fd, peer: u32, vector: u32) -> Sys<()> {
    let mut r = DbRing { peer, vector };
    fd.ioctl(IOC_DB_RING, &mut r).map(|_| ())
}

pub fn wait(fd: &Fd, vector: u32, count: u64, timeout_ms: u32) -> Sys<u64> {
    let mut w = DbWait { vector, timeout_ms, count };
    fd.ioctl(IOC_DB_WAIT, &mut w).map(|_| w.count)
}

/// The ring control block, read through /dev/rig_shm.
pub fn read_hring() -> Result<Hring, String> {
    let shm = Fd::open(&dev_path(rig_abi::SHM_DEV_NAME), libc::O_RDWR)
        .map_err(|e| format!("open /dev/rig_shm: {}", ename(e)))?;
    let len = (HRING_OFFSET + 4096) as usize;
    let m = Map::new(&shm, len, libc::PROT_READ, libc::MAP_SHARED, 0)
        .map_err(|e| format!("map /dev/rig_shm: {}", ename(e)))?;
    Ok(m.read_obj(HRING_OFFSET as usize))
}

fn irq_lines() -> Vec<String> {
    read_text("/proc/interrupts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("rig_kmod-db"))
        .map(|l| l.to_string())
        .collect()
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let opts = Opts::parse(args, &["--expect"])?;
    let expect = opts.text_or("--expect", "doorbell");
    if expect != "plain" && expect != "doorbell" {
        return Err(Failure::Usage("--expect is plain or doorbell".into()));
    }
    let mut r = Report::new("doorbell");
    let path = dev_path(rig_abi::dev::DOORBELL);
    let Some(fd) = r.success(format!("open {path}"), Fd::open(&path, libc::O_RDWR)) else {
        return r.finish();
    };
    let Some(i) = r.success("RIG_IOC_DB_INFO", db_info(&fd)) else {
        return r.finish();
    };
    r.note(format!(
        "doorbell {}, own peer {:#x}, {} vectors, host peer {:#x}, irqs {:?}",
        i.doorbell,
        i.own_peer,
        i.vectors,
        i.host_peer,
        &i.irqs[..]
    ));
    let ring_state = read_hring();

    if expect == "plain" {
        r.eq("ivshmem-plain: the module stays in plain mode", 0, i.doorbell);
        r.eq("no peer id", PEER_NONE, i.own_peer);
        r.eq("no vectors", 0, i.vectors);
        r.errno("ringing a peer is not supported", libc::EOPNOTSUPP, &ring(&fd, 0, 0));
        r.errno("waiting for a vector is not supported", libc::EOPNOTSUPP, &wait(&fd, 0, 0, 10));
        r.eq("no doorbell interrupts in /proc/interrupts", 0, irq_lines().len());
        if let Some(h) = r.must("read the ring control block in BAR2", ring_state) {
            r.eq("the ring's guest_peer says none", PEER_NONE, h.guest_peer);
        }
        return r.finish();
    }

    r.eq("ivshmem-doorbell: the module uses the doorbell", 1, i.doorbell);
    r.check(i.own_peer <= 0xffff, "the guest has a peer id (IVPosition)", "0..=0xffff", format!("{:#x}", i.own_peer));
    r.check(i.vectors >= 2, "at least two MSI-X vectors are requested", ">= 2", i.vectors);
    let lines = irq_lines();
    for l in &lines {
        r.note(l.trim());
    }
    r.eq("/proc/interrupts has one line per vector", i.vectors as usize, lines.len());
    if let Some(h) = r.must("read the ring control block in BAR2", ring_state) {
        r.eq("the ring carries the guest's peer id", i.own_peer, h.guest_peer);
        r.eq(
            "the ring is ready for the host (state, magic, slots, first buffer)",
            (HRING_READY, HRING_MAGIC, HRING_SLOTS, HRING_FIRST_BUF),
            (h.guest_state, h.guest_magic, h.nslots, h.first_buf),
        );
    }
    r.errno("a peer id above 0xffff is refused", libc::EINVAL, &ring(&fd, 0x10000, 0));
    r.errno("a vector the guest does not have cannot be waited on", libc::EINVAL, &wait(&fd, i.vectors, 0, 10));
    let v = DB_VEC_CONSUMED;
    r.errno("with nobody ringing, a wait times out", libc::ETIMEDOUT, &wait(&fd, v, i.irqs[v as usize], 50));
    // The guest's own vectors are connected too: ring ourselves.
    r.success(format!("ring our own peer id on vector {v}"), ring(&fd, i.own_peer, v));
    let got = wait(&fd, v, i.irqs[v as usize], 5000);
    r.check(
        matches!(got, Ok(n) if n > i.irqs[v as usize]),
        "our own interrupt arrives on that vector",
        format!("count above {}", i.irqs[v as usize]),
        format!("{got:?}"),
    );
    r.finish()
}

/// `hring [--count N] [--timeout S] [--detach PREFIX]`: consumes `count`
/// host-produced buffers; with --detach in the background (see
/// `sys::detach`), returning once it is about to wait in poll().
pub fn hring(args: &[String]) -> Result<(), Failure> {
    let opts = Opts::parse(args, &["--count", "--timeout", "--detach"])?;
    let count = opts.num("--count", 8)? as u32;
    let timeout = Duration::from_secs(opts.num("--timeout", 60)?);
    let prefix = opts.text_or("--detach", "");
    if prefix.is_empty() {
        return hring_consume(count, timeout, &|| {});
    }
    let run = |ready: &dyn Fn()| match hring_consume(count, timeout, ready) {
        Ok(()) => 0,
        Err(e) => {
            println!("FAIL: {e}");
            1
        }
    };
    match detach(&prefix, run) {
        Ok(pid) => {
            println!("consumer {pid} is waiting in poll(); `rig-guest collect {prefix}` waits for its verdict");
            Ok(())
        }
        Err(e) => Err(Failure::Check(e)),
    }
}

/// `collect PREFIX [--timeout S]`: the verdict of a detached program.
pub fn collect_cmd(args: &[String]) -> Result<(), Failure> {
    let Some((prefix, rest)) = args.split_first() else {
        return Err(Failure::Usage("collect needs the prefix given to --detach".into()));
    };
    let opts = Opts::parse(rest, &["--timeout"])?;
    let timeout = Duration::from_secs(opts.num("--timeout", 60)?);
    match collect(prefix, timeout) {
        Ok(0) => Ok(()),
        Ok(code) => Err(Failure::Check(format!("the detached program exited with {code}"))),
        Err(e) => Err(Failure::Check(e)),
    }
}

/// Consumes `count` host-produced buffers; calls `ready` before waiting.
fn hring_consume(count: u32, timeout: Duration, ready: &dyn Fn()) -> Result<(), Failure> {
    let mut r = Report::new("hring");
    let pool_path = dev_path(rig_abi::dev::POOL);
    let Some(pool) = r.success(format!("open {pool_path}"), Fd::open(&pool_path, libc::O_RDWR)) else {
        return r.finish();
    };
    let Some(db) = r.success("open /dev/rig_doorbell", Fd::open(&dev_path(rig_abi::dev::DOORBELL), libc::O_RDWR))
    else {
        return r.finish();
    };
    let Some(before) = r.success("RIG_IOC_DB_INFO", db_info(&db)) else {
        return r.finish();
    };
    if !r.eq("the guest has a doorbell", 1, before.doorbell) {
        return r.finish();
    }
    let pool_before = pool_info(&pool).unwrap_or_default();
    let Some(map) = r.success(
        "map the pool",
        Map::new(&pool, (POOL_NBUF * POOL_BUF_SIZE) as usize, libc::PROT_READ, libc::MAP_SHARED, 0),
    ) else {
        return r.finish();
    };
    // Nothing may be there yet: then only the doorbell can end the first poll().
    let early = matches!(poll_in(&pool, 0), Ok(ev) if ev & libc::POLLIN != 0);
    println!(
        "note: waiting up to {}s for {count} host buffers (vector {DB_VEC_PRODUCED} wakes poll)",
        timeout.as_secs()
    );
    ready();
    let started = Instant::now();
    let mut woken_after = None;

    let deadline = Instant::now() + timeout;
    let mut seqs = Vec::new();
    let mut problems = Vec::new();
    while seqs.len() < count as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            problems.push(format!("timed out after {} of {count} buffers", seqs.len()));
            break;
        }
        // Only an interrupt (or a timeout) ends this sleep.
        match poll_in(&pool, left.as_millis().min(i32::MAX as u128) as i32) {
            Ok(ev) if ev & libc::POLLIN != 0 => {
                woken_after.get_or_insert(started.elapsed());
            }
            Ok(_) => continue,
            Err(e) => {
                problems.push(format!("poll: {}", ename(e)));
                break;
            }
        }
        while let Ok(d) = take(&pool, false) {
            if d.source != POOL_SRC_HOST {
                problems.push(format!("buffer {} came from source {}", d.index, d.source));
            }
            if !(HRING_FIRST_BUF..HRING_FIRST_BUF + HRING_SLOTS).contains(&d.index) {
                problems.push(format!("host buffer in pool buffer {}", d.index));
            }
            if let Err(why) = verify_buffer(&map, &d) {
                problems.push(format!("seq {}: {why}", d.seq));
            }
            seqs.push(d.seq);
            if let Err(e) = release(&pool, d.index) {
                problems.push(format!("release {}: {}", d.index, ename(e)));
            }
        }
    }
    r.eq("the host's buffers arrived", count as usize, seqs.len());
    let consecutive = seqs.windows(2).all(|w| w[1] == w[0] + 1);
    r.check(consecutive, "in ring order, none lost or duplicated", "consecutive seq", format!("{seqs:?}"));
    r.check(problems.is_empty(), "every header and payload was right", "no problems", problems.join("; "));

    match (early, woken_after) {
        (false, Some(t)) => r.note(format!("poll() slept {} ms until the host's buffers came", t.as_millis())),
        _ => r.note("the host's buffers were there before the first poll(): no sleep to wake"),
    }
    // poll() also looks at prod, so the buffers can be seen before the host
    // rings (it publishes first, then rings): wait for the interrupt itself.
    let v = DB_VEC_PRODUCED;
    let got = wait(&db, v, before.irqs[v as usize], 10_000);
    r.check(
        matches!(got, Ok(n) if n > before.irqs[v as usize]),
        format!("the host's doorbell arrived on vector {v}"),
        format!("more than {} interrupts", before.irqs[v as usize]),
        format!("{got:?}"),
    );
    let after = db_info(&db).unwrap_or_default();
    if let Ok(p) = pool_info(&pool) {
        r.eq("the pool counted them consumed", pool_before.host_consumed + seqs.len() as u64, p.host_consumed);
    }
    if let Ok(h) = read_hring() {
        r.eq("cons caught up with prod in the ring", h.prod, h.cons);
    }
    let host = after.host_peer;
    if r.check(host != PEER_NONE, "the host told its peer id", "a peer id", format!("{host:#x}")) {
        r.success(format!("ring the host (peer {host}) on vector {DB_VEC_CONSUMED}"), ring(&db, host, DB_VEC_CONSUMED));
    }
    r.finish()
}
