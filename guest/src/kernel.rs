//! The kernel stayed healthy: no warning or oops taint, and no WARNING, BUG
//! or Oops in its log.

use crate::args::Failure;
use crate::report::Report;
use crate::sys::{ename, tainted, Fd, TAINT_DIE, TAINT_WARN};

/// A reader of /dev/kmsg: from the start, or from the end at some moment.
pub struct Kmsg(Fd);

impl Kmsg {
    fn open() -> Result<Kmsg, String> {
        Fd::open("/dev/kmsg", libc::O_RDONLY | libc::O_NONBLOCK)
            .map(Kmsg)
            .map_err(|e| format!("open /dev/kmsg: {}", ename(e)))
    }

    /// Every record from the start of the log on.
    pub fn from_start() -> Result<Kmsg, String> {
        Kmsg::open()
    }

    /// Only records logged from now on.
    pub fn from_now() -> Result<Kmsg, String> {
        let k = Kmsg::open()?;
        k.0.seek(0, libc::SEEK_END).map_err(|e| format!("seek /dev/kmsg: {}", ename(e)))?;
        Ok(k)
    }

    /// The messages of the records not read yet.
    pub fn read(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) | Err(libc::EAGAIN) => break,
                Ok(n) => out.push(record_message(&String::from_utf8_lossy(&buf[..n]))),
                Err(libc::EPIPE) => continue, // overwritten record: skip
                Err(e) => return Err(format!("read /dev/kmsg: {}", ename(e))),
            }
        }
        Ok(out)
    }
}

/// The message of a /dev/kmsg record, "prio,seq,ts,flags;message\n"
/// (continuation lines " KEY=value" of dev_printk() records dropped).
fn record_message(rec: &str) -> String {
    rec.split_once(';').and_then(|(_, m)| m.lines().next()).unwrap_or_default().trim_end().to_string()
}

/// Lines that mean the kernel warned, oopsed or hit a BUG.
pub fn bad_lines(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|l| l.contains("WARNING:") || l.contains("BUG:") || l.contains("Oops") || l.contains("Call Trace"))
        .collect()
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("kernel-clean");
    if let Some(t) = r.must("read /proc/sys/kernel/tainted", tainted()) {
        r.check(t & TAINT_WARN == 0, "no kernel warning (taint W)", "W clear", format!("{t:#x}"));
        r.check(t & TAINT_DIE == 0, "no oops (taint D)", "D clear", format!("{t:#x}"));
    }
    if let Some(log) = r.must("read the kernel log", Kmsg::from_start().and_then(|k| k.read())) {
        let bad = bad_lines(&log);
        r.check(bad.is_empty(), "no WARNING, BUG, Oops or call trace in the log", "none", format!("{bad:?}"));
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_spots_trouble() {
        assert_eq!(record_message("6,1234,5678,-;rig_kmod: hello\n"), "rig_kmod: hello");
        assert_eq!(record_message("no separator"), "");
        assert_eq!(
            record_message("6,9,9,-;rig_kmod 0000:00:01.0: up\n SUBSYSTEM=pci\n DEVICE=+pci:0\n"),
            "rig_kmod 0000:00:01.0: up"
        );
        let log: Vec<String> = ["ok", "WARNING: CPU: 0 PID: 1 at mm/x.c:1", "BUG: unable to handle page fault"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(bad_lines(&log).len(), 2);
    }
}
