//! `edu --device BDF [--seed N] [--iova N] [--only PARTS]`: QEMU's
//! educational device (1234:11e8, docs/specs/edu.rst) driven from
//! userspace. `--only ids,liveness,msi,dma,unmapped` runs some parts (a
//! suite gives each its own step; `unmapped` makes the kernel log an IOMMU
//! fault, which the rig reports).
//!
//! Asserts: the IDs; BAR0 (1 MiB, mappable); bus mastering on; the ID and
//! liveness registers; MSI routed to an eventfd, raised by the interrupt
//! register and by the end of a factorial (the results, wrapping at 32
//! bits); DMA both ways through buffers mapped with the IOMMU, byte for
//! byte, with offsets and nothing written outside the range; a DMA to an
//! IOVA that was unmapped leaves the memory once behind it untouched, the
//! kernel logs a DMAR fault for that IOVA, and the device works after it.

use crate::args::Opts;
use crate::kmsg::{dmar_fault, Kmsg};
use crate::pci::{cfg, find_capability, le16, Bdf};
use crate::report::{Failure, Report};
use crate::vfio::{Bar, Device, DmaBuffer, Irqs, VFIO_PCI_MSI_IRQ_INDEX};
use rig_abi::{fill_pattern, first_mismatch};
use std::time::{Duration, Instant};

/// PCI IDs.
pub const VENDOR: u16 = 0x1234;
/// PCI device ID.
pub const DEVICE: u16 = 0x11e8;

/// BAR0 registers.
pub mod reg {
    /// Identification, 0xRRrr00ed (major, minor).
    pub const ID: u64 = 0x00;
    /// Reads back the bitwise inverse of what was written.
    pub const LIVENESS: u64 = 0x04;
    /// Write n to compute n!; read the result.
    pub const FACTORIAL: u64 = 0x08;
    /// Bit 0: computing; bit 7: interrupt when a factorial is done.
    pub const STATUS: u64 = 0x20;
    /// Raised interrupt bits.
    pub const IRQ_STATUS: u64 = 0x24;
    /// Write: OR bits into the interrupt status and raise the interrupt.
    pub const IRQ_RAISE: u64 = 0x60;
    /// Write: clear interrupt status bits.
    pub const IRQ_ACK: u64 = 0x64;
    /// DMA source address.
    pub const DMA_SRC: u64 = 0x80;
    /// DMA destination address.
    pub const DMA_DST: u64 = 0x88;
    /// DMA byte count.
    pub const DMA_COUNT: u64 = 0x90;
    /// DMA command.
    pub const DMA_CMD: u64 = 0x98;
}

/// The ID register of QEMU's edu (version 1.0).
pub const ID_VALUE: u32 = 0x0100_00ed;
/// BAR0 size.
pub const BAR0_SIZE: u64 = 1 << 20;
/// STATUS: a factorial is being computed.
pub const STATUS_COMPUTING: u32 = 0x01;
/// STATUS: raise an interrupt when it is done.
pub const STATUS_IRQ_FACT: u32 = 0x80;
/// IRQ_STATUS bit of a finished factorial.
pub const IRQ_FACT: u32 = 0x001;
/// IRQ_STATUS bit of a finished DMA.
pub const IRQ_DMA: u32 = 0x100;
/// DMA_CMD: start (reads 1 while running).
pub const DMA_START: u32 = 0x1;
/// DMA_CMD: device to RAM (else RAM to device).
pub const DMA_TO_RAM: u32 = 0x2;
/// DMA_CMD: raise IRQ_DMA when done.
pub const DMA_IRQ: u32 = 0x4;
/// The device's buffer as the DMA engine addresses it.
pub const DEV_BUF: u64 = 0x40000;
/// Its size; QEMU stops (hw_error) on a DMA outside it.
pub const DEV_BUF_SIZE: u64 = 4096;
/// edu masks DMA addresses to 28 bits by default (`dma_mask`).
pub const DMA_LIMIT: u64 = 1 << 28;

/// n! as edu computes it: 32-bit, wrapping.
pub fn factorial32(n: u32) -> u32 {
    (1..=n).fold(1u32, |acc, k| acc.wrapping_mul(k))
}

/// The command word of a DMA.
pub fn dma_cmd(to_ram: bool, irq: bool) -> u32 {
    DMA_START | if to_ram { DMA_TO_RAM } else { 0 } | if irq { DMA_IRQ } else { 0 }
}

/// Why a DMA request would be refused before it reaches the device (QEMU
/// aborts on a device-side range error, and clamps bus addresses to 28 bits).
pub fn dma_request_error(ram: u64, dev: u64, count: u64) -> Option<String> {
    if count == 0 || count > DEV_BUF_SIZE {
        return Some(format!("count {count:#x} is not 1..={DEV_BUF_SIZE:#x}"));
    }
    if dev < DEV_BUF || dev + count > DEV_BUF + DEV_BUF_SIZE {
        return Some(format!("device range {dev:#x}+{count:#x} leaves the buffer at {DEV_BUF:#x}"));
    }
    if ram.checked_add(count).is_none_or(|end| end > DMA_LIMIT) {
        return Some(format!("IOVA {ram:#x}+{count:#x} is beyond edu's 28-bit DMA mask"));
    }
    None
}

/// The printed requester ID matches the device (`00:01.0` or `0000:00:01.0`).
pub fn same_requester(printed: &str, bdf: Bdf) -> bool {
    let short = format!("{:02x}:{:02x}.{:x}", bdf.bus, bdf.device, bdf.function);
    printed == short || printed == bdf.to_string()
}

const IRQ_TIMEOUT: Duration = Duration::from_secs(10);

/// The device with its BAR and MSI vector.
struct Edu<'d> {
    bar: Bar<'d>,
    irqs: Irqs,
}

impl Edu<'_> {
    fn r(&self, off: u64) -> Result<u32, String> {
        self.bar.read32(off).map_err(|e| e.to_string())
    }

    fn w(&self, off: u64, v: u32) -> Result<(), String> {
        self.bar.write32(off, v).map_err(|e| e.to_string())
    }

    /// Waits for the MSI, then checks and acknowledges `bit` in IRQ_STATUS.
    fn wait_irq(&self, bit: u32) -> Result<Duration, String> {
        let t = Instant::now();
        self.irqs.wait(0, IRQ_TIMEOUT).map_err(|e| e.to_string())?;
        let status = self.r(reg::IRQ_STATUS)?;
        if status & bit == 0 {
            return Err(format!("interrupt status {status:#x} lacks {bit:#x}"));
        }
        self.w(reg::IRQ_ACK, status)?;
        let after = self.r(reg::IRQ_STATUS)?;
        if after != 0 {
            return Err(format!("interrupt status {after:#x} after acknowledging {status:#x}"));
        }
        Ok(t.elapsed())
    }

    /// n! with the completion interrupt.
    fn factorial(&self, n: u32) -> Result<(u32, Duration), String> {
        self.w(reg::FACTORIAL, n)?;
        let took = self.wait_irq(IRQ_FACT)?;
        let status = self.r(reg::STATUS)?;
        if status & STATUS_COMPUTING != 0 {
            return Err(format!("status {status:#x} still says computing after the interrupt"));
        }
        Ok((self.r(reg::FACTORIAL)?, took))
    }

    /// One DMA between `ram` (an IOVA) and the device buffer at `dev`.
    fn dma(&self, ram: u64, dev: u64, count: u64, to_ram: bool) -> Result<Duration, String> {
        if let Some(why) = dma_request_error(ram, dev, count) {
            return Err(why);
        }
        let (src, dst) = if to_ram { (dev, ram) } else { (ram, dev) };
        // 32-bit writes: VFIO's region path splits 8-byte writes, and edu
        // ignores the upper halves; both addresses are below 4 GiB here.
        self.w(reg::DMA_SRC, src as u32)?;
        self.w(reg::DMA_DST, dst as u32)?;
        self.w(reg::DMA_COUNT, count as u32)?;
        self.w(reg::DMA_CMD, dma_cmd(to_ram, true))?;
        let took = self.wait_irq(IRQ_DMA)?;
        let cmd = self.r(reg::DMA_CMD)?;
        if cmd & DMA_START != 0 {
            return Err(format!("command {cmd:#x} still running after the interrupt"));
        }
        Ok(took)
    }
}

fn show_mismatch(buf: &DmaBuffer<'_>, seed: u32, start: u64, off: u64, len: usize) -> Result<(), String> {
    let mut got = vec![0u8; len];
    buf.mem().read_bytes(off, &mut got).map_err(|e| e.to_string())?;
    match first_mismatch(seed, start, &got) {
        None => Ok(()),
        Some(i) => {
            let mut want = [0u8; 1];
            fill_pattern(seed, start + i as u64, &mut want);
            Err(format!("byte {i} is {:#04x}, the pattern has {:#04x}", got[i], want[0]))
        }
    }
}

fn all_equal(buf: &DmaBuffer<'_>, off: u64, len: usize, byte: u8) -> Result<(), String> {
    let mut got = vec![0u8; len];
    buf.mem().read_bytes(off, &mut got).map_err(|e| e.to_string())?;
    match got.iter().position(|&b| b != byte) {
        None => Ok(()),
        Some(i) => Err(format!("byte {} is {:#04x}, not {byte:#04x}", off + i as u64, got[i])),
    }
}

fn fill_pattern_in(buf: &DmaBuffer<'_>, seed: u32, len: usize) -> Result<(), String> {
    let mut p = vec![0u8; len];
    fill_pattern(seed, 0, &mut p);
    buf.mem().write_bytes(0, &p).map_err(|e| e.to_string())
}

/// The parts of the check, in the order they run; `--only` picks some.
pub const PARTS: [&str; 5] = ["ids", "liveness", "msi", "dma", "unmapped"];

/// Parses `--only a,b`: the parts to run (all when not given).
pub fn parse_parts(only: Option<&str>) -> Result<Vec<&'static str>, Failure> {
    let Some(list) = only else {
        return Ok(PARTS.to_vec());
    };
    let mut out = Vec::new();
    for w in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let Some(p) = PARTS.iter().find(|p| **p == w) else {
            return Err(Failure::Usage(format!("--only: unknown part `{w}` (parts: {})", PARTS.join(", "))));
        };
        if !out.contains(p) {
            out.push(*p);
        }
    }
    if out.is_empty() {
        return Err(Failure::Usage("--only names no part".into()));
    }
    Ok(out)
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let o = Opts::parse(args, &["--device", "--seed", "--iova", "--only"])?;
    let bdf = crate::args::device(&o)?;
    let seed = o.num32("--seed", 0x0ed0_5eed)?;
    let iova = o.num("--iova", 0x10_0000)?;
    if !iova.is_multiple_of(0x1000) || iova + 0x30_0000 > DMA_LIMIT {
        return Err(Failure::Usage(format!("--iova must be page-aligned and below {:#x}", DMA_LIMIT - 0x30_0000)));
    }
    let parts = parse_parts(o.text("--only").as_deref())?;
    let part = |p: &str| parts.contains(&p);
    let mut r = Report::new("edu");

    let Some(dev) = r.must(format!("open {bdf} through VFIO (type1 container)"), Device::open(bdf)) else {
        return r.finish();
    };
    r.note(format!("IOMMU group {}; parts: {}", dev.group(), parts.join(", ")));
    let region = dev.region(0);
    if part("ids") {
        let ids = (dev.config16(cfg::VENDOR), dev.config16(cfg::DEVICE));
        if let (Ok(v), Ok(d)) = ids {
            r.eq("PCI IDs are edu's (1234:11e8)", (VENDOR, DEVICE), (v, d));
        } else {
            r.check(false, "read the PCI IDs", "config space", format!("{ids:?}"));
        }
        r.eq("BAR0 is 1 MiB", BAR0_SIZE, region.size);
        r.check(
            region.read_write(),
            "BAR0 is readable and writable",
            "READ|WRITE",
            format!("flags {:#x}", region.flags),
        );
        r.check(region.mmap(), "VFIO lets BAR0 be mmap()ed", "MMAP flag", format!("flags {:#x}", region.flags));
    }
    if let Some((before, after)) = r.must("turn on memory decoding and bus mastering", dev.enable_bus_master()) {
        r.note(format!("command register {before:#06x} -> {after:#06x}"));
        let want = cfg::COMMAND_MEMORY | cfg::COMMAND_MASTER;
        r.check(
            after & want == want,
            "bus mastering reads back on",
            format!("bits {want:#x}"),
            format!("{after:#06x}"),
        );
    }
    let Some(bar) = r.must("open BAR0", dev.bar(0, 0x100)) else {
        return r.finish();
    };
    r.note(format!("BAR0 through {}", bar.mode()));

    // Registers.
    if part("ids") {
        let id = bar.read32(reg::ID).map_err(|e| e.to_string());
        r.eq("ID register", Ok(ID_VALUE), id);
    }
    if part("liveness") {
        for v in [0u32, 0xffff_ffff, 0x1234_5678, seed] {
            let back = bar.write32(reg::LIVENESS, v).and_then(|_| bar.read32(reg::LIVENESS)).map_err(|e| e.to_string());
            r.eq(format!("liveness register inverts {v:#010x}"), Ok(!v), back);
        }
    }
    if !(part("msi") || part("dma") || part("unmapped")) {
        return r.finish();
    }

    // Interrupts: MSI into an eventfd (DMA completions need it too).
    let vectors = dev.irq_count(VFIO_PCI_MSI_IRQ_INDEX);
    r.check(vectors >= 1, "the device has an MSI vector", ">= 1", vectors);
    let Some(irqs) = r.must("route MSI vector 0 to an eventfd", dev.enable_irqs(VFIO_PCI_MSI_IRQ_INDEX, 1)) else {
        return r.finish();
    };
    let edu = Edu { bar, irqs };
    if part("msi") {
        // vfio-pci virtualizes this bit: it shows what the user wrote into config
        // space, not what VFIO_DEVICE_SET_IRQS did. The interrupts below are the proof.
        let msi_on = dev.config_image().ok().and_then(|c| {
            let at = find_capability(&c, cfg::CAP_MSI)?;
            Some(le16(&c, at + 2)? & cfg::MSI_ENABLE != 0)
        });
        r.check(msi_on.is_some(), "config space lists the MSI capability", "present", "absent");
        r.note(format!("MSI enable bit in the config space VFIO shows: {msi_on:?}"));
        let raised = edu.w(reg::IRQ_RAISE, 0x2000).and_then(|_| edu.wait_irq(0x2000));
        r.must("writing the raise register delivers an MSI, acknowledged by the ack register", raised);
        if let Some(()) = r.must("ask for an interrupt when a factorial is done", edu.w(reg::STATUS, STATUS_IRQ_FACT)) {
            for n in [5u32, 12, 13] {
                match edu.factorial(n) {
                    Ok((got, took)) => {
                        r.eq(format!("{n}! arrives with its interrupt ({} ms)", took.as_millis()), factorial32(n), got);
                    }
                    Err(e) => {
                        r.check(false, format!("{n}! with its interrupt"), "the result", e);
                    }
                }
            }
        }
    }
    if part("dma") || part("unmapped") {
        dma_parts(&mut r, &dev, &edu, bdf, iova, seed, &parts);
    }
    r.must("disable MSI", dev.disable_irqs(VFIO_PCI_MSI_IRQ_INDEX).map_err(|e| e.to_string()));
    r.finish()
}

/// DMA through the IOMMU (`dma`), and a DMA to an IOVA that was unmapped
/// (`unmapped`): blocked, logged as a DMAR fault, the device fine after it.
fn dma_parts(r: &mut Report, dev: &Device, edu: &Edu<'_>, bdf: Bdf, iova: u64, seed: u32, parts: &[&str]) {
    let (dma, unmapped) = (parts.contains(&"dma"), parts.contains(&"unmapped"));
    let page = 4096usize;
    let map3 = || -> Result<_, crate::vfio::VfioError> {
        Ok((
            dev.dma_buffer(iova, page)?,
            dev.dma_buffer(iova + 0x10_0000, page)?,
            dev.dma_buffer(iova + 0x20_0000, page)?,
        ))
    };
    let Some((src, dst, mut probe)) = r.must("map three 4 KiB DMA buffers (VFIO_IOMMU_MAP_DMA)", map3()) else {
        return;
    };
    r.note(format!("DMA buffers at IOVA {:#x}, {:#x}, {:#x}", src.iova(), dst.iova(), probe.iova()));

    if dma {
        let setup = fill_pattern_in(&src, seed, page)
            .and_then(|_| dst.mem().fill(0, page as u64, 0x5a).map_err(|e| e.to_string()))
            .and_then(|_| probe.mem().fill(0, page as u64, 0x5a).map_err(|e| e.to_string()));
        r.must("fill the source with the pattern, the others with 0x5a", setup);
        if let Some(t) =
            r.must("DMA 4096 bytes RAM -> device, completion by MSI", edu.dma(src.iova(), DEV_BUF, 4096, false))
        {
            r.note(format!("took {} ms", t.as_millis()));
        }
        r.must("DMA 4096 bytes device -> RAM, completion by MSI", edu.dma(dst.iova(), DEV_BUF, 4096, true));
        r.must("what came back equals what went out, byte for byte", show_mismatch(&dst, seed, 0, 0, page));
        r.must(
            "DMA 0x200 bytes from device offset 0x100 to RAM offset 0x800",
            edu.dma(probe.iova() + 0x800, DEV_BUF + 0x100, 0x200, true),
        );
        r.must("those bytes are the pattern's 0x100..0x300", show_mismatch(&probe, seed, 0x100, 0x800, 0x200));
        r.must(
            "nothing before or after them was written",
            all_equal(&probe, 0, 0x800, 0x5a).and_then(|_| all_equal(&probe, 0xa00, page - 0xa00, 0x5a)),
        );
    }
    if !unmapped {
        return;
    }

    // Negative: the IOVA is unmapped, the memory that was there is kept.
    let stray = probe.iova();
    let unmap = probe.unmap_iova().map_err(|e| e.to_string());
    let unmap = unmap.and_then(|_| probe.mem().fill(0, page as u64, 0xc3).map_err(|e| e.to_string()));
    r.must(format!("unmap IOVA {stray:#x} (VFIO_IOMMU_UNMAP_DMA), fill its old memory with 0xc3"), unmap);
    let mut kmsg = Kmsg::open_at_end().map_err(|e| e.to_string());
    r.must(
        format!("the device completes a DMA to unmapped IOVA {stray:#x} (it cannot tell)"),
        edu.dma(stray, DEV_BUF, 4096, true),
    );
    r.must("the memory once at that IOVA is untouched", all_equal(&probe, 0, page, 0xc3));
    match kmsg.as_mut() {
        Ok(k) => {
            let seen = k.wait_for(Duration::from_secs(5), |m| dmar_fault(m).is_some_and(|f| f.addr == stray));
            let fault = seen.iter().find_map(|m| dmar_fault(m).filter(|f| f.addr == stray).map(|f| (f, m)));
            match fault {
                Some((f, line)) => {
                    r.note(format!("kernel: {line}"));
                    r.check(f.write, "the kernel logged a DMAR write fault at that IOVA", "a write", "a read");
                    r.check(
                        same_requester(&f.device, bdf),
                        "the fault names this device as the requester",
                        bdf,
                        &f.device,
                    );
                }
                None => {
                    r.check(
                        false,
                        "the kernel logged a DMAR fault at that IOVA",
                        format!("{stray:#x}"),
                        seen.join(" | "),
                    );
                }
            }
        }
        Err(e) => {
            r.check(false, "read /dev/kmsg", "it opens", e);
        }
    }
    let seed2 = seed.wrapping_add(1);
    let again = fill_pattern_in(&src, seed2, page)
        .and_then(|_| dst.mem().fill(0, page as u64, 0x5a).map_err(|e| e.to_string()))
        .and_then(|_| edu.dma(src.iova(), DEV_BUF, 4096, false))
        .and_then(|_| edu.dma(dst.iova(), DEV_BUF, 4096, true))
        .and_then(|_| show_mismatch(&dst, seed2, 0, 0, page));
    r.must("after the fault, DMA both ways still works byte for byte (new pattern)", again);
    drop((src, dst, probe));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factorials_wrap_like_the_device() {
        assert_eq!(factorial32(0), 1);
        assert_eq!(factorial32(5), 120);
        assert_eq!(factorial32(12), 479_001_600);
        // 13! = 6227020800 = 0x1_7328_CC00: the device keeps the low 32 bits.
        assert_eq!(factorial32(13), 0x7328_cc00);
    }

    #[test]
    fn dma_commands_and_limits() {
        assert_eq!(dma_cmd(false, true), 0x5);
        assert_eq!(dma_cmd(true, true), 0x7);
        assert_eq!(dma_cmd(true, false), 0x3);
        assert_eq!(dma_request_error(0x10_0000, DEV_BUF, 4096), None);
        assert_eq!(dma_request_error(0x10_0000, DEV_BUF + 0x100, 0x200), None);
        assert!(dma_request_error(0x10_0000, DEV_BUF + 1, 4096).is_some());
        assert!(dma_request_error(0x10_0000, DEV_BUF - 1, 16).is_some());
        assert!(dma_request_error(0x10_0000, DEV_BUF, 0).is_some());
        assert!(dma_request_error(DMA_LIMIT - 16, DEV_BUF, 32).is_some());
        assert!(dma_request_error(u64::MAX, DEV_BUF, 32).is_some());
    }

    #[test]
    fn parts_parse() {
        assert_eq!(parse_parts(None), Ok(PARTS.to_vec()));
        assert_eq!(parse_parts(Some("dma, ids,dma")), Ok(vec!["dma", "ids"]));
        assert!(matches!(parse_parts(Some("dma,bogus")), Err(Failure::Usage(m)) if m.contains("bogus")));
        assert!(matches!(parse_parts(Some(",")), Err(Failure::Usage(_))));
    }

    #[test]
    fn requester_matches_both_spellings() {
        let b = Bdf::parse("0000:00:01.0").expect("bdf");
        assert!(same_requester("00:01.0", b));
        assert!(same_requester("0000:00:01.0", b));
        assert!(!same_requester("00:02.0", b));
    }
}
