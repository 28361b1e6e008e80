//! `rig-guest fuzz`: random and edge-case input to every interface of the
//! reference module, from several threads at once, until an operations
//! budget or a time budget runs out.
//!
//! Seeded: the seed is printed first, and `--seed` replays it. Thread t
//! draws its operations from stream t of the seed, so a seed gives every
//! thread the same sequence on every run; the interleaving of the threads
//! is the scheduler's. `--threads 1 --stream T --trace` replays thread T's
//! sequence alone, in order, printing each operation.
//!
//! A kernel report (oops, BUG, WARNING, KASAN, slab corruption, lockup...)
//! is the rig's to see on the console; this program checks what the
//! module answers (the oracles in `exec.rs`), that the kernel took no new
//! warning or oops taint, and that the module still works afterwards.

mod exec;
mod mem;
mod op;
mod rng;
mod target;

use crate::args::{Failure, Opts};
use crate::report::{Report, SysChecks};
use crate::sys::{dev_path, ename, errno, tainted, Fd, TAINT_DIE, TAINT_WARN};
use exec::{Shared, Stats, Worker, MAX_ERRNO};
use op::{generate, Class, GenConfig};
use rig_abi as abi;
use rng::Rng;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use target::Env;

/// What a fuzzing run is asked to do.
#[derive(Clone, Debug)]
struct Plan {
    seed: u64,
    threads: usize,
    stream: u64,
    ops: u64,
    secs: u64,
    rebind_every: u64,
    trace: bool,
    progress: u64,
}

fn parse(args: &[String]) -> Result<(Plan, String), Failure> {
    let opts = Opts::parse(
        args,
        &["--seed", "--threads", "--stream", "--ops", "--secs", "--rebind-every", "--trace", "--progress", "--detach"],
    )?;
    let seed = match opts.num("--seed", u64::MAX)? {
        u64::MAX => fresh_seed(),
        s => s,
    };
    let threads = opts.num("--threads", 4)?;
    if !(1..=64).contains(&threads) {
        return Err(Failure::Usage("--threads is 1 to 64".into()));
    }
    let plan = Plan {
        seed,
        threads: threads as usize,
        stream: opts.num("--stream", 0)?,
        ops: opts.num("--ops", 100_000)?,
        secs: opts.num("--secs", 600)?,
        rebind_every: opts.num("--rebind-every", 20_000)?,
        trace: opts.num("--trace", 0)? != 0,
        progress: opts.num("--progress", 30)?.max(1),
    };
    Ok((plan, opts.text_or("--detach", "")))
}

fn fresh_seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(f) = Fd::open("/dev/urandom", libc::O_RDONLY) {
        let _ = f.read(&mut b);
    }
    // Keep it short enough to type.
    u64::from_le_bytes(b) % 1_000_000_007
}

/// Where the guest's module is: BAR2, the netlink pages, the PCI device.
fn discover() -> Env {
    let mut env = Env::default();
    if let Ok(fd) = Fd::open(&dev_path(abi::SHM_DEV_NAME), libc::O_RDWR) {
        let mut info = abi::ShmInfo::default();
        if fd.ioctl(abi::IOC_SHM_INFO, &mut info).is_ok() {
            env.shm_phys = info.phys_addr;
            env.shm_size = info.size;
        }
    }
    if let Ok(crate::netlink::Answer::Shared(s)) = crate::netlink::ask() {
        env.nl_phys = s.pages_phys;
    }
    if let Ok(fd) = Fd::open(&dev_path(abi::dev::RESERVED), libc::O_RDWR) {
        let mut info = abi::RegionInfo::default();
        if fd.ioctl(abi::IOC_REGION_INFO, &mut info).is_ok() {
            env.reserved_size = info.size;
        }
    }
    if let Ok(fd) = Fd::open(&dev_path(abi::dev::DOORBELL), libc::O_RDWR) {
        let mut info = abi::DbInfo::default();
        if fd.ioctl(abi::IOC_DB_INFO, &mut info).is_ok() {
            env.vectors = info.vectors;
        }
    }
    env.bdf = bound_device();
    env.kfile_path = crate::sys::module_param("kfile_path").filter(|p| p.starts_with('/'));
    env
}

/// The PCI address rig_kmod is bound to.
fn bound_device() -> Option<String> {
    std::fs::read_dir("/sys/bus/pci/drivers/rig_kmod")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.contains(':'))
}

extern "C" fn on_kick(_: libc::c_int) {}

/// SIGUSR1 interrupts a blocked call (no SA_RESTART): the kicker sends it
/// to every thread now and then, so a wait that nothing would end does.
fn install_kick_handler() {
    // SAFETY: a handler that does nothing is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

fn gettid() -> i32 {
    // SAFETY: plain system call.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Per-thread progress the main thread watches.
struct Progress {
    done: AtomicU64,
    tid: AtomicI32,
}

/// Runs one thread's share; returns its counts.
fn worker(
    id: usize,
    plan: &Plan,
    cfg: &GenConfig,
    sh: &Shared,
    prog: &Progress,
    stop: &AtomicBool,
    quota: u64,
) -> Result<Stats, String> {
    prog.tid.store(gettid(), Ordering::Release);
    let mut w = Worker::new(id, sh, plan.trace)?;
    let mut rng = Rng::new(plan.seed, plan.stream + id as u64);
    for n in 0..quota {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        w.n = n;
        let op = generate(&mut rng, cfg, n);
        let _ = w.run(&op);
        prog.done.store(n + 1, Ordering::Release);
    }
    Ok(w.stats.clone())
}

/// Operation `n` of thread `id`, drawn again (for a stalled thread).
fn regenerate(plan: &Plan, cfg: &GenConfig, id: usize, n: u64) -> op::Op {
    let mut rng = Rng::new(plan.seed, plan.stream + id as u64);
    let mut op = generate(&mut rng, cfg, 0);
    for i in 1..=n {
        op = generate(&mut rng, cfg, i);
    }
    op
}

fn fuzz(plan: &Plan, ready: &dyn Fn()) -> Result<(), Failure> {
    println!(
        "fuzz: seed {}, {} threads (streams {}..{}), up to {} operations or {} s",
        plan.seed,
        plan.threads,
        plan.stream,
        plan.stream + plan.threads as u64 - 1,
        plan.ops,
        plan.secs
    );
    println!(
        "fuzz: replay: rig-guest fuzz --seed {} --threads {} --ops {} (one thread in order: --threads 1 --stream T --trace 1)",
        plan.seed, plan.threads, plan.ops
    );
    let env = discover();
    println!(
        "fuzz: BAR2 {:#x}+{:#x}, netlink pages {:#x}, reserved {:#x}, doorbell vectors {}, device {}, kfile {}",
        env.shm_phys,
        env.shm_size,
        env.nl_phys,
        env.reserved_size,
        env.vectors,
        env.bdf.as_deref().unwrap_or("none"),
        env.kfile_path.as_deref().unwrap_or("none")
    );
    let taint_before = tainted().unwrap_or(0);
    let cfg = GenConfig { env: env.clone(), rebind: plan.rebind_every > 0, rebind_every: plan.rebind_every };
    let sh = Shared::new(env);
    install_kick_handler();
    let stop = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let progress: Vec<Progress> =
        (0..plan.threads).map(|_| Progress { done: AtomicU64::new(0), tid: AtomicI32::new(0) }).collect();
    let quota = plan.ops.div_ceil(plan.threads as u64);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(plan.secs);
    ready();
    let results: Vec<Result<Stats, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..plan.threads)
            .map(|id| {
                let (sh, cfg, prog, stop) = (&sh, &cfg, &progress[id], &stop);
                std::thread::Builder::new()
                    .name(format!("fuzz{id}"))
                    .spawn_scoped(s, move || worker(id, plan, cfg, sh, prog, stop, quota))
            })
            .collect();
        let all_done = || progress.iter().all(|p| p.done.load(Ordering::Acquire) >= quota);
        let (finished, progress) = (&finished, &progress);
        // The kicker: SIGUSR1 to every thread every 20 ms.
        s.spawn(move || {
            // SAFETY: plain system call.
            let pid = unsafe { libc::getpid() };
            while !finished.load(Ordering::Acquire) {
                for p in progress {
                    let tid = p.tid.load(Ordering::Acquire);
                    if tid > 0 {
                        // SAFETY: signals our own threads.
                        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let mut last_report = Instant::now();
        let mut seen: Vec<(u64, Instant, bool)> = vec![(0, Instant::now(), false); plan.threads];
        while !all_done() && handles.iter().any(|h| h.as_ref().is_ok_and(|h| !h.is_finished())) {
            std::thread::sleep(Duration::from_millis(200));
            if Instant::now() >= deadline {
                stop.store(true, Ordering::Release);
            }
            let total: u64 = progress.iter().map(|p| p.done.load(Ordering::Acquire)).sum();
            if last_report.elapsed() >= Duration::from_secs(plan.progress) {
                last_report = Instant::now();
                let secs = start.elapsed().as_secs_f64();
                println!("fuzz: {total} operations in {secs:.0} s ({:.0} ops/s)", total as f64 / secs);
            }
            for (id, p) in progress.iter().enumerate() {
                let done = p.done.load(Ordering::Acquire);
                if done != seen[id].0 {
                    seen[id] = (done, Instant::now(), false);
                } else if !seen[id].2 && done < quota && seen[id].1.elapsed() > Duration::from_secs(60) {
                    seen[id].2 = true;
                    println!(
                        "fuzz: thread {id} has been in operation #{done} for 60 s: {:?}",
                        regenerate(plan, &cfg, id, done)
                    );
                }
            }
        }
        stop.store(true, Ordering::Release);
        let out = handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| Err("a fuzzing thread panicked".into())),
                Err(e) => Err(format!("cannot start a thread: {e}")),
            })
            .collect();
        finished.store(true, Ordering::Release);
        out
    });
    let elapsed = start.elapsed();
    sh.close_all();
    let rebound = rebind_if_unbound(&sh.env);
    if let Some(p) = &sh.env.kfile_path {
        // Whatever the threads left there: the module makes a new one.
        let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir(p));
        for id in 0..plan.threads {
            let _ = std::fs::remove_file(format!("{p}.target{id}"));
        }
    }

    let mut total = Stats::default();
    let mut r = Report::new("fuzz");
    for (id, res) in results.iter().enumerate() {
        match res {
            Ok(s) => total.merge(s),
            Err(e) => {
                r.check(false, format!("thread {id} ran"), "a running thread", e);
            }
        }
    }
    print_table(&total, elapsed);
    let n = total.total();
    let rate = n as f64 / elapsed.as_secs_f64().max(0.001);
    r.check(
        n > 0,
        format!("{n} operations in {:.1} s ({rate:.0} ops/s), seed {}", elapsed.as_secs_f64(), plan.seed),
        "some",
        n,
    );
    if n >= 2000 {
        let idle: Vec<&str> = Class::ALL
            .iter()
            .filter(|c| total.ops[c.index()] == 0 && (**c != Class::Pci || cfg.rebind && cfg.env.bdf.is_some()))
            .filter(|c| **c != Class::Pci || n >= 4 * plan.rebind_every)
            .map(|c| c.name())
            .collect();
        r.check(idle.is_empty(), "every interface was exercised", "none idle", format!("{idle:?}"));
    }
    let fails = sh.oracle_fails.load(Ordering::Relaxed);
    let msgs = sh.oracle_msgs.lock().map(|v| v.clone()).unwrap_or_default();
    for m in &msgs {
        println!("oracle: {m}");
    }
    r.eq("the module's answers kept every promise of its header (oracles)", 0, fails);
    if let Some(b) = &rebound {
        r.note(format!("device {b} was left unbound by an interrupted rebind: bound again"));
    }
    let taint_after = tainted().unwrap_or(0);
    let new = taint_after & !taint_before & (TAINT_WARN | TAINT_DIE);
    r.check(
        new == 0,
        "the kernel took no new warning or oops taint",
        "no new W or D",
        format!("{taint_after:#x} (was {taint_before:#x})"),
    );
    still_works(&mut r);
    r.finish()
}

/// Binds the device again if an unbind was the last thing that happened.
fn rebind_if_unbound(env: &Env) -> Option<String> {
    let bdf = env.bdf.as_ref()?;
    if bound_device().is_some() {
        return None;
    }
    let _ = std::fs::write("/sys/bus/pci/drivers/rig_kmod/bind", bdf);
    Some(bdf.clone())
}

/// After the storm: every mechanism still answers as it should.
fn still_works(r: &mut Report) {
    match Fd::open(&dev_path(abi::dev::IOCTL), libc::O_RDWR) {
        Ok(fd) => {
            let mut c = abi::Config::default();
            r.success("RIG_IOC_RESET_CONFIG still works", fd.ioctl_raw(abi::IOC_RESET_CONFIG, 0));
            r.success("RIG_IOC_GET_CONFIG still works", fd.ioctl(abi::IOC_GET_CONFIG, &mut c));
            r.eq("and gives the defaults back", (0, 1), (c.flags, c.level));
        }
        Err(e) => {
            r.check(false, "open /dev/rig_ioctl", "success", ename(e));
        }
    }
    match crate::netlink::ask() {
        Ok(crate::netlink::Answer::Shared(s)) => {
            r.eq("netlink still answers with the addresses", abi::ABI_VERSION, s.abi_version);
        }
        other => {
            r.check(false, "netlink still answers", "the addresses", format!("{other:?}"));
        }
    }
    match Fd::open(&dev_path(abi::dev::RW), libc::O_RDWR | libc::O_TRUNC) {
        Ok(fd) => {
            r.eq("/dev/rig_rw still stores what is written", Ok(5), fd.write(b"after"));
            let mut b = [0u8; 8];
            r.eq("and reads it back", Ok(5), fd.pread(&mut b, 0));
        }
        Err(e) => {
            r.check(false, "open /dev/rig_rw", "success", ename(e));
        }
    }
    let stats = crate::sys::stats();
    r.check(stats.is_ok(), "/proc/rig_kmod/stats still reads", "its counters", format!("{:?}", stats.err()));
    let shm = Fd::open(&dev_path(abi::SHM_DEV_NAME), libc::O_RDWR).and_then(|fd| {
        let mut info = abi::ShmInfo::default();
        fd.ioctl(abi::IOC_SHM_INFO, &mut info).map(|_| info.size)
    });
    r.check(shm.is_ok(), "/dev/rig_shm is attached to the device", "BAR2's size", crate::sys::show(&shm));
}

fn print_table(s: &Stats, elapsed: Duration) {
    println!("{:<8} {:>10} {:>6}  most frequent errors", "class", "ops", "ok");
    for c in Class::ALL {
        let i = c.index();
        let ops = s.ops[i];
        if ops == 0 {
            println!("{:<8} {:>10} {:>6}", c.name(), 0, "-");
            continue;
        }
        let mut errs: Vec<(usize, u64)> = (0..MAX_ERRNO).map(|e| (e, s.errs[i][e])).filter(|x| x.1 > 0).collect();
        errs.sort_by_key(|e| std::cmp::Reverse(e.1));
        let top: Vec<String> = errs
            .iter()
            .take(4)
            .map(|(e, n)| format!("{} {:.0}%", ename(*e as i32), *n as f64 * 100.0 / ops as f64))
            .collect();
        println!("{:<8} {:>10} {:>5.0}%  {}", c.name(), ops, s.ok[i] as f64 * 100.0 / ops as f64, top.join(", "));
    }
    let n = s.total();
    println!(
        "{:<8} {:>10}  in {:.1} s, {:.0} ops/s",
        "total",
        n,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}

/// `fuzz [--seed N] [--threads N] [--stream T] [--ops N] [--secs S]
/// [--rebind-every N] [--trace 1] [--progress S] [--detach PREFIX]`.
pub fn run(args: &[String]) -> Result<(), Failure> {
    let (plan, prefix) = parse(args)?;
    if prefix.is_empty() {
        return fuzz(&plan, &|| {});
    }
    // In the background: the host works on the ring meanwhile.
    let plan = Arc::new(plan);
    let p = plan.clone();
    match crate::sys::detach(&prefix, move |ready| match fuzz(&p, ready) {
        Ok(()) => 0,
        Err(Failure::Check(m)) => {
            println!("FAIL: {m}");
            1
        }
        Err(Failure::Usage(m)) => {
            println!("FAIL: {m}");
            2
        }
    }) {
        Ok(pid) => {
            println!(
                "fuzzing in the background (pid {pid}, seed {}); `rig-guest collect {prefix}` waits for it",
                plan.seed
            );
            Ok(())
        }
        Err(e) => Err(Failure::Check(format!("{e} ({})", ename(errno())))),
    }
}
