//! The kernel log as /dev/kmsg hands it out, read from "now" on: how a
//! driver test sees what the kernel reported about its device (an IOMMU
//! fault) without the console.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

/// A DMA the IOMMU refused, as the Intel IOMMU driver logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarFault {
    /// A write by the device (else a read).
    pub write: bool,
    /// The requester, as printed (`00:01.0` or `0000:00:01.0`).
    pub device: String,
    /// The IOVA it used.
    pub addr: u64,
}

/// The message of one /dev/kmsg record (`prio,seq,usec,flags;text\n`
/// then ` KEY=value` lines).
pub fn record_message(record: &str) -> Option<&str> {
    let (_, rest) = record.split_once(';')?;
    Some(rest.split('\n').next().unwrap_or(rest))
}

fn hex(s: &str) -> Option<u64> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

/// Parses a DMAR fault line. The format moved between kernels:
/// 5.10 `[DMA Write] Request device [00:01.0] PASID ffffffff fault addr 900000 [fault reason 05] ...`,
/// 6.1 and 6.12 `[DMA Write NO_PASID] Request device [00:01.0] fault addr 0x900000 [fault reason 0x05] ...`,
/// 7.2 names the device `[0000:00:01.0]`.
pub fn dmar_fault(msg: &str) -> Option<DmarFault> {
    let kind = msg.split_once("[DMA ")?.1;
    let write = kind.starts_with("Write");
    if !write && !kind.starts_with("Read") {
        return None;
    }
    let device = msg.split_once("Request device [")?.1.split_once(']')?.0.to_string();
    let addr = hex(msg.split_once("fault addr ")?.1.split_whitespace().next()?)?;
    Some(DmarFault { write, device, addr })
}

/// /dev/kmsg opened at its end.
pub struct Kmsg {
    file: File,
}

impl Kmsg {
    /// Opens the log; records already there are skipped.
    pub fn open_at_end() -> std::io::Result<Kmsg> {
        let mut file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg")?;
        file.seek(SeekFrom::End(0))?;
        Ok(Kmsg { file })
    }

    /// Messages logged since the last call, waiting up to `timeout` for one
    /// that `want` accepts; returns everything read.
    pub fn wait_for(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> Vec<String> {
        let until = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    if let Some(m) = record_message(&rec) {
                        let hit = want(m);
                        seen.push(m.to_string());
                        if hit {
                            return seen;
                        }
                    }
                    continue;
                }
                // EPIPE: records were overwritten before we read them; go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                _ => {}
            }
            if Instant::now() >= until {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_records() {
        assert_eq!(record_message("3,1234,5678,-;DMAR: hello\n SUBSYSTEM=pci\n"), Some("DMAR: hello"));
        assert_eq!(record_message("6,1,2,-;plain"), Some("plain"));
        assert_eq!(record_message("no separator"), None);
    }

    #[test]
    fn parses_the_fault_line_of_every_kernel() {
        let k510 = "DMAR: [DMA Write] Request device [00:01.0] PASID ffffffff fault addr 900000 [fault reason 05] PTE Write access is not set";
        let k61 = "DMAR: [DMA Write NO_PASID] Request device [00:01.0] fault addr 0x900000 [fault reason 0x05] PTE Write access is not set";
        let k72 = "DMAR: [DMA Write NO_PASID] Request device [0000:00:01.0] fault addr 0x900000 [fault reason 0x05] PTE Write access is not set";
        let want = |device: &str| Some(DmarFault { write: true, device: device.into(), addr: 0x900000 });
        assert_eq!(dmar_fault(k510), want("00:01.0"));
        assert_eq!(dmar_fault(k61), want("00:01.0"));
        assert_eq!(dmar_fault(k72), want("0000:00:01.0"));
        let read = "DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set";
        assert_eq!(dmar_fault(read), Some(DmarFault { write: false, device: "00:02.0".into(), addr: 0x1000 }));
        assert_eq!(dmar_fault("DMAR: DRHD: handling fault status reg 2"), None);
        assert_eq!(dmar_fault("DMAR: [DMA Write] Request device [00:01.0] fault addr zz"), None);
    }
}
