//! `db-pong --count N [--ready-file PATH] [--timeout-ms N] [--peer P]`: the
//! guest half of the doorbell round trip `rig bench` measures through the
//! reference module. Each time the host rings vector 0
//! (RIG_IOC_DB_WAIT wakes on its interrupt count), ring peer P (default
//! the host, peer 1) back on vector 1 (RIG_IOC_DB_RING), `count` times. The host times
//! each round trip; this side checks every ring arrived once and was
//! answered. The same loop as `rig-udrv pong`, through the kernel driver.

use crate::args::{Failure, Opts};
use crate::doorbell::{db_info, ring, wait};
use crate::report::{Report, SysChecks};
use crate::sys::{dev_path, ename, Fd};
use rig_abi::{DB_VEC_CONSUMED, DB_VEC_PRODUCED};
use std::time::Instant;

pub fn run(args: &[String]) -> Result<(), Failure> {
    let o = Opts::parse(args, &["--count", "--ready-file", "--timeout-ms", "--peer"])?;
    let count = o.num("--count", 100)?;
    let timeout_ms = u32::try_from(o.num("--timeout-ms", 10_000)?)
        .map_err(|_| Failure::Usage("--timeout-ms must fit in 32 bits".into()))?;
    let peer = u32::try_from(o.num("--peer", 1)?).map_err(|_| Failure::Usage("--peer must fit in 32 bits".into()))?;
    let ready_file = o.text_or("--ready-file", "");
    let mut r = Report::new("db-pong");
    let path = dev_path(rig_abi::dev::DOORBELL);
    let Some(fd) = r.success(format!("open {path}"), Fd::open(&path, libc::O_RDWR)) else {
        return r.finish();
    };
    let Some(info) = r.success("RIG_IOC_DB_INFO", db_info(&fd)) else {
        return r.finish();
    };
    r.check(
        info.doorbell == 1 && info.vectors >= 2,
        "ivshmem-doorbell with two vectors",
        "doorbell, >= 2",
        format!("{} {}", info.doorbell, info.vectors),
    );
    // The count now is the baseline: a ring after it is seen, even one
    // that comes before the first wait.
    let mut seen = info.irqs[DB_VEC_PRODUCED as usize];
    if !ready_file.is_empty() {
        r.must(
            format!("create {ready_file}: the host may ring"),
            std::fs::write(&ready_file, b"ready\n").map_err(|e| e.to_string()),
        );
    }
    let start = Instant::now();
    let (mut answered, mut interrupts, mut trouble) = (0u64, 0u64, None);
    while answered < count {
        match wait(&fd, DB_VEC_PRODUCED, seen, timeout_ms) {
            Ok(now) if now != seen => {
                interrupts += now - seen;
                seen = now;
            }
            Ok(_) => {
                trouble = Some(format!("woken without a ring after {answered} round trips (the device went away?)"));
                break;
            }
            Err(libc::ETIMEDOUT) => {
                trouble = Some(format!("no ring within {timeout_ms} ms after {answered} round trips"));
                break;
            }
            Err(e) => {
                trouble = Some(format!("RIG_IOC_DB_WAIT: {}", ename(e)));
                break;
            }
        }
        if let Err(e) = ring(&fd, peer, DB_VEC_CONSUMED) {
            trouble = Some(format!("RIG_IOC_DB_RING: {}", ename(e)));
            break;
        }
        answered += 1;
    }
    r.note(format!("{answered} round trips in {:.1} ms", start.elapsed().as_secs_f64() * 1000.0));
    r.eq("every ring was answered", count, answered);
    r.eq("one interrupt per ring (the host waits for each answer)", answered, interrupts);
    r.check(trouble.is_none(), "the loop ended cleanly", "no error", trouble.as_deref().unwrap_or(""));
    r.finish()
}
