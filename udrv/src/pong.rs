//! `pong --device BDF --count N [--ready-file PATH] [--timeout S] [--peer P]`:
//! the guest half of the doorbell round trip `rig bench` measures through
//! VFIO. ivshmem-doorbell's MSI-X vector 0 goes to an eventfd; each time the
//! host rings it, the driver rings peer P (the host, 1) back on vector 1
//! through the Doorbell register, `count` times. The host times each round
//! trip; this side checks that every ring arrived once and was answered.

use crate::args::Opts;
use crate::ivshmem::{doorbell_word, reg};
use crate::pci::cfg;
use crate::report::{Failure, Report};
use crate::vfio::{Device, VfioError, VFIO_PCI_MSIX_IRQ_INDEX};
use rig_abi::{DB_VEC_CONSUMED, DB_VEC_PRODUCED, IVSHMEM_DEVICE, IVSHMEM_VENDOR};
use std::time::{Duration, Instant};

/// What came of the loop.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Rings answered.
    pub answered: u64,
    /// Interrupts seen (more than `answered` when two rings merged).
    pub interrupts: u64,
    /// Why it stopped early.
    pub trouble: Option<String>,
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let o = Opts::parse(args, &["--device", "--count", "--ready-file", "--timeout", "--peer"])?;
    let bdf = crate::args::device(&o)?;
    let count = o.num("--count", 100)?;
    let timeout = Duration::from_secs(o.num("--timeout", 10)?);
    let peer = o.num32("--peer", 1)?;
    let ready_file = o.text("--ready-file");
    let Some(back) = doorbell_word(peer, DB_VEC_CONSUMED) else {
        return Err(Failure::Usage("--peer must be 0..=0xffff".into()));
    };
    let mut r = Report::new("pong");

    let Some(dev) = r.must(format!("open {bdf} through VFIO (type1 container)"), Device::open(bdf)) else {
        return r.finish();
    };
    let ids = (dev.config16(cfg::VENDOR).ok(), dev.config16(cfg::DEVICE).ok());
    r.eq("PCI IDs are ivshmem's (1af4:1110)", (Some(IVSHMEM_VENDOR), Some(IVSHMEM_DEVICE)), ids);
    r.must("turn on memory decoding and bus mastering", dev.enable_bus_master());
    let Some(regs) = r.must("open BAR0", dev.bar(0, reg::BAR0_SIZE)) else {
        return r.finish();
    };
    r.note(format!("BAR0 through {}", regs.mode()));
    let vectors = dev.irq_count(VFIO_PCI_MSIX_IRQ_INDEX);
    r.check(vectors >= 2, "MSI-X has two vectors", ">= 2", vectors);
    let Some(irqs) = r.must("route MSI-X vectors 0 and 1 to eventfds", dev.enable_irqs(VFIO_PCI_MSIX_IRQ_INDEX, 2))
    else {
        return r.finish();
    };
    // Rings from now on count in the eventfd: none is lost before the loop.
    if let Some(path) = ready_file {
        r.must(format!("create {path}: the host may ring"), std::fs::write(&path, b"ready\n"));
    }

    let start = Instant::now();
    let mut t = Tally::default();
    while t.answered < count {
        match irqs.wait(DB_VEC_PRODUCED, timeout) {
            Ok(n) => t.interrupts += n,
            Err(VfioError::Timeout { .. }) => {
                t.trouble = Some(format!("no ring within {timeout:?} after {} round trips", t.answered));
                break;
            }
            Err(e) => {
                t.trouble = Some(e.to_string());
                break;
            }
        }
        if let Err(e) = regs.write32(reg::DOORBELL, back) {
            t.trouble = Some(e.to_string());
            break;
        }
        t.answered += 1;
    }
    let took = start.elapsed();
    r.note(format!("{} round trips in {:.1} ms", t.answered, took.as_secs_f64() * 1000.0));
    r.eq("every ring was answered", count, t.answered);
    r.eq("one interrupt per ring (the host waits for each answer)", t.answered, t.interrupts);
    r.check(t.trouble.is_none(), "the loop ended cleanly", "no error", t.trouble.as_deref().unwrap_or(""));
    r.must("disable MSI-X", dev.disable_irqs(VFIO_PCI_MSIX_IRQ_INDEX));
    r.finish()
}
