//! The kernel stayed healthy: no warning or oops taint, and no WARNING, BUG
//! or Oops in its log.

use crate::args::Failure;
use crate::report::Report;
use crate::sys::{tainted, Fd, TAINT_DIE, TAINT_WARN};

/// Every record of /dev/kmsg (non-blocking, from the start).
fn kmsg() -> Result<Vec<String>, String> {
    let fd = Fd::open("/dev/kmsg", libc::O_RDONLY | libc::O_NONBLOCK)
        .map_err(|e| format!("open /dev/kmsg: {}", crate::sys::ename(e)))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match fd.read(&mut buf) {
            Ok(0) | Err(libc::EAGAIN) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                // "prio,seq,ts,flags;message"
                out.push(rec.split_once(';').map(|(_, m)| m.trim_end().to_string()).unwrap_or_default());
            }
            Err(libc::EPIPE) => continue, // overwritten record: skip
            Err(e) => return Err(format!("read /dev/kmsg: {}", crate::sys::ename(e))),
        }
    }
    Ok(out)
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("kernel-clean");
    if let Some(t) = r.must("read /proc/sys/kernel/tainted", tainted()) {
        r.check(t & TAINT_WARN == 0, "no kernel warning (taint W)", "W clear", format!("{t:#x}"));
        r.check(t & TAINT_DIE == 0, "no oops (taint D)", "D clear", format!("{t:#x}"));
    }
    if let Some(log) = r.must("read the kernel log", kmsg()) {
        let bad: Vec<&String> = log
            .iter()
            .filter(|l| l.contains("WARNING:") || l.contains("BUG:") || l.contains("Oops") || l.contains("Call Trace"))
            .collect();
        r.check(bad.is_empty(), "no WARNING, BUG, Oops or call trace in the log", "none", format!("{bad:?}"));
    }
    r.finish()
}
