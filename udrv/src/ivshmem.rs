//! `ivshmem --device BDF [--count N] [--seed N] [--timeout S] [--ready-file PATH]`: the
//! ivshmem-doorbell device (1af4:1110) that guest-kmod drives, driven from
//! userspace instead, against the rig's ivshmem server on the host.
//!
//! Asserts: the IDs and BARs (BAR0 registers, BAR1 the MSI-X table, BAR2
//! the shared memory, a power of two of at least 1 MiB and mappable); bus
//! mastering; MSI-X with one eventfd per vector (at least 2); IVPosition
//! is a peer id; ringing our own peer on vector 1 interrupts us; then the
//! host ring: `count` host buffers arrive, woken by the host's interrupts on
//! vector 0, in order, with good headers and payloads (payload seed
//! `seed + seq`, as `rig_abi::host::produce` makes them); after each batch
//! the guest rings the host on vector 1. Before the last ring it writes the
//! pattern with seed `!seed` into the guest-to-host area (SHM_G2H_OFFSET,
//! SHM_AREA_SIZE bytes) and the region header, for the host to check.
//!
//! The host may only produce once the ring is ready: with `--ready-file`,
//! the driver creates PATH at that moment, so a suite that starts it in the
//! background can wait for the file before its host steps.

use crate::args::Opts;
use crate::hring::{encode_header, host_peer, Consumer, Taken};
use crate::pci::{cfg, find_capability, le16, memory_bar_address};
use crate::report::{Failure, Report};
use crate::vfio::{Device, VfioError, VFIO_PCI_MSIX_IRQ_INDEX};
use rig_abi::{fill_pattern, ShmHeader, ABI_VERSION, DB_MAX_VECTORS, DB_VEC_CONSUMED, DB_VEC_PRODUCED};
use rig_abi::{IVSHMEM_DEVICE, IVSHMEM_VENDOR, SHM_AREA_SIZE, SHM_G2H_OFFSET, SHM_HEADER_OFFSET, SHM_MAGIC};
use rig_abi::{SHM_MIN_SIZE, STATE_PROBED, STATE_REMOVED};
use std::time::{Duration, Instant};

/// BAR0 registers (QEMU docs/specs/ivshmem-spec.rst).
pub mod reg {
    /// Our peer id.
    pub const IVPOSITION: u64 = 0x08;
    /// Write `(peer << 16) | vector` to interrupt a peer.
    pub const DOORBELL: u64 = 0x0c;
    /// Size of the register BAR.
    pub const BAR0_SIZE: u64 = 0x100;
}

/// The doorbell word that interrupts `peer` on `vector`.
pub fn doorbell_word(peer: u32, vector: u32) -> Option<u32> {
    (peer <= 0xffff && vector <= 0xffff).then_some((peer << 16) | vector)
}

/// Problems in what arrived: sequence gaps and payload errors.
pub fn arrival_problems(taken: &[Taken], first_seq: u64) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in taken.iter().enumerate() {
        let want = first_seq + i as u64;
        if t.seq != want {
            out.push(format!("seq {} where {want} was due", t.seq));
        }
        if let Some(e) = &t.payload_error {
            out.push(format!("seq {}: {e}", t.seq));
        }
    }
    out
}

fn kernel_release() -> [u8; 64] {
    let mut out = [0u8; 64];
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::uname(&mut u) } == 0 {
        for (o, &c) in out.iter_mut().take(63).zip(u.release.iter().take_while(|&&c| c != 0)) {
            *o = c as u8;
        }
    }
    out
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let o = Opts::parse(args, &["--device", "--count", "--seed", "--timeout", "--ready-file"])?;
    let bdf = crate::args::device(&o)?;
    let count = o.num("--count", 24)? as usize;
    let seed = o.num32("--seed", 0x1234)?;
    let timeout = Duration::from_secs(o.num("--timeout", 60)?);
    let ready_file = o.text("--ready-file");
    let mut r = Report::new("ivshmem");

    let Some(dev) = r.must(format!("open {bdf} through VFIO (type1 container)"), Device::open(bdf)) else {
        return r.finish();
    };
    r.note(format!("IOMMU group {}", dev.group()));
    let ids = (dev.config16(cfg::VENDOR).ok(), dev.config16(cfg::DEVICE).ok());
    r.eq("PCI IDs are ivshmem's (1af4:1110)", (Some(IVSHMEM_VENDOR), Some(IVSHMEM_DEVICE)), ids);
    let (bar0, bar1, bar2) = (dev.region(0), dev.region(1), dev.region(2));
    r.eq("BAR0 holds the 256 bytes of registers", reg::BAR0_SIZE, bar0.size);
    r.check(bar1.size > 0, "BAR1 (the MSI-X table) is there: a doorbell device", "> 0 bytes", bar1.size);
    r.check(
        bar2.size.is_power_of_two() && bar2.size >= SHM_MIN_SIZE,
        "BAR2 (the shared memory) is a power of two of at least 1 MiB",
        format!(">= {SHM_MIN_SIZE:#x}"),
        format!("{:#x}", bar2.size),
    );
    r.check(bar2.mmap(), "VFIO lets BAR2 be mmap()ed", "MMAP flag", format!("flags {:#x}", bar2.flags));
    if let Some((before, after)) = r.must("turn on memory decoding and bus mastering", dev.enable_bus_master()) {
        r.note(format!("command register {before:#06x} -> {after:#06x}"));
    }
    let Some(regs) = r.must("open BAR0", dev.bar(0, reg::BAR0_SIZE)) else {
        return r.finish();
    };
    r.note(format!("BAR0 through {}", regs.mode()));
    let Some(shm_bar) = r.must("open BAR2", dev.bar(2, SHM_MIN_SIZE)) else {
        return r.finish();
    };
    let Some(shm) = shm_bar.mapped() else {
        r.check(false, "BAR2 is mapped", "an mmap", shm_bar.mode());
        return r.finish();
    };

    // MSI-X: one eventfd per vector.
    let vectors = dev.irq_count(VFIO_PCI_MSIX_IRQ_INDEX).min(DB_MAX_VECTORS as u32);
    r.check(vectors >= 2, "MSI-X has the two vectors of the ring protocol", ">= 2", vectors);
    let Some(irqs) =
        r.must(format!("route {vectors} MSI-X vectors to eventfds"), dev.enable_irqs(VFIO_PCI_MSIX_IRQ_INDEX, vectors))
    else {
        return r.finish();
    };
    // vfio-pci virtualizes this bit: it shows what the user wrote into config
    // space, not what VFIO_DEVICE_SET_IRQS did. The interrupts below are the proof.
    let msix_on = dev.config_image().ok().and_then(|c| {
        let at = find_capability(&c, cfg::CAP_MSIX)?;
        Some(le16(&c, at + 2)? & cfg::MSIX_ENABLE != 0)
    });
    r.check(msix_on.is_some(), "config space lists the MSI-X capability", "present", "absent");
    r.note(format!("MSI-X enable bit in the config space VFIO shows: {msix_on:?}"));

    let own = regs.read32(reg::IVPOSITION);
    let Some(own) = r.must("read IVPosition", own) else {
        return r.finish();
    };
    r.check(own <= 0xffff, "IVPosition is a peer id", "0..=0xffff", format!("{own:#x}"));
    r.note(format!("own peer id {own}"));

    // Our own vector 1, rung by ourselves: the interrupt path end to end.
    let self_ring = doorbell_word(own, DB_VEC_CONSUMED)
        .ok_or_else(|| "no doorbell word for our peer id".to_string())
        .and_then(|w| regs.write32(reg::DOORBELL, w).map_err(|e| e.to_string()))
        .and_then(|_| irqs.wait(DB_VEC_CONSUMED, Duration::from_secs(5)).map_err(|e| e.to_string()));
    r.must(format!("ringing our own peer on vector {DB_VEC_CONSUMED} interrupts us"), self_ring);

    // The region header, as the module writes it at probe.
    let bar_phys = match (dev.config32(cfg::BAR0 + 8), dev.config32(cfg::BAR0 + 12)) {
        (Ok(lo), Ok(hi)) => memory_bar_address(lo, hi).unwrap_or(0),
        _ => 0,
    };
    let mut header = ShmHeader {
        magic: SHM_MAGIC,
        abi_version: ABI_VERSION,
        size: bar2.size,
        state: STATE_PROBED,
        probe_count: 1,
        bar_phys,
        kernel_release: kernel_release(),
    };
    r.must("write the region header", shm.write_bytes(SHM_HEADER_OFFSET, &encode_header(&header)));

    let Some(mut ring) = r.must("publish the guest half of the host ring (ready)", Consumer::attach(shm, own)) else {
        return r.finish();
    };
    let first_seq = u64::from(ring.next()) + 1;
    if let Some(path) = ready_file {
        r.must(format!("create {path}: the host may produce"), std::fs::write(&path, b"ready\n"));
    }
    r.note(format!(
        "waiting up to {}s for {count} host buffers (interrupts on vector {DB_VEC_PRODUCED})",
        timeout.as_secs()
    ));

    let deadline = Instant::now() + timeout;
    let (mut taken, mut refused) = (Vec::new(), Vec::new());
    let (mut irq_total, mut batches, mut rings) = (0u64, 0u32, 0u32);
    let mut trouble: Option<String> = None;
    let mut host = None;
    // Refused entries count as seen: their slots go back too, and the host
    // is rung so that both sides end (and fail) promptly.
    while taken.len() + refused.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let fired = match irqs.wait(DB_VEC_PRODUCED, left) {
            Ok(n) => n,
            Err(VfioError::Timeout { .. }) => {
                trouble = Some(format!("timed out with {} of {count} buffers", taken.len()));
                break;
            }
            Err(e) => {
                trouble = Some(e.to_string());
                break;
            }
        };
        irq_total += fired;
        let looked = ring.count_irqs(shm, fired).and_then(|_| ring.take(shm, Some(seed)));
        let batch = match looked {
            Ok(b) => b,
            Err(e) => {
                trouble = Some(e.to_string());
                break;
            }
        };
        if batch.overrun {
            trouble = Some("the host overran the ring".into());
            break;
        }
        if batch.taken.is_empty() && batch.refused.is_empty() {
            continue;
        }
        batches += 1;
        taken.extend(batch.taken);
        refused.extend(batch.refused);
        if taken.len() + refused.len() >= count {
            // Everything for the host to check goes in before the last ring.
            let mut g2h = vec![0u8; SHM_AREA_SIZE as usize];
            fill_pattern(!seed, 0, &mut g2h);
            if let Err(e) = shm.write_bytes(SHM_G2H_OFFSET, &g2h) {
                trouble = Some(format!("writing the guest-to-host pattern: {e}"));
                break;
            }
        }
        host = match host_peer(shm) {
            Ok(p) => p,
            Err(e) => {
                trouble = Some(e.to_string());
                break;
            }
        };
        let Some(word) = host.and_then(|p| doorbell_word(p, DB_VEC_CONSUMED)) else {
            trouble = Some("the host left no peer id in the ring".into());
            break;
        };
        if let Err(e) = regs.write32(reg::DOORBELL, word) {
            trouble = Some(e.to_string());
            break;
        }
        rings += 1;
    }
    if let Some(t) = &trouble {
        r.note(t);
    }
    r.note(format!(
        "{} buffers in {batches} batches, {irq_total} interrupts on vector {DB_VEC_PRODUCED}, {rings} rings to host peer {host:?}",
        taken.len()
    ));
    r.eq("every host buffer arrived", count, taken.len());
    let mut shown: Vec<String> = refused.iter().take(3).map(|(pos, why)| format!("position {pos}: {why}")).collect();
    if refused.len() > 3 {
        shown.push(format!("{} refused in all", refused.len()));
    }
    r.check(refused.is_empty(), "no ring entry was refused", "none", shown.join("; "));
    let problems = arrival_problems(&taken, first_seq);
    r.check(
        problems.is_empty(),
        "in ring order from the first seq, every payload the pattern",
        "no problems",
        problems.join("; "),
    );
    r.eq("the host was rung back after every batch", batches, rings);
    r.check(trouble.is_none(), "the exchange ended cleanly", "no error", trouble.as_deref().unwrap_or(""));

    r.must("disable MSI-X", dev.disable_irqs(VFIO_PCI_MSIX_IRQ_INDEX));
    header.state = STATE_REMOVED;
    let gone = ring.detach(shm).and_then(|_| shm.write_bytes(SHM_HEADER_OFFSET, &encode_header(&header)));
    r.must("mark the ring and the header gone", gone);
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doorbell_words() {
        assert_eq!(doorbell_word(0, 1), Some(0x0000_0001));
        assert_eq!(doorbell_word(1, 0), Some(0x0001_0000));
        assert_eq!(doorbell_word(0xffff, 0xffff), Some(0xffff_ffff));
        assert_eq!(doorbell_word(0x10000, 0), None);
    }

    #[test]
    fn arrival_problems_name_gaps_and_payloads() {
        let t = |seq, e: Option<&str>| Taken { seq, index: 16, len: 1, payload_error: e.map(String::from) };
        assert!(arrival_problems(&[t(1, None), t(2, None)], 1).is_empty());
        assert_eq!(arrival_problems(&[t(1, None), t(3, None)], 1), vec!["seq 3 where 2 was due".to_string()]);
        assert_eq!(arrival_problems(&[t(5, Some("bad"))], 5), vec!["seq 5: bad".to_string()]);
    }
}
