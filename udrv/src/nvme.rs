//! `nvme --device BDF [--size BYTES] [--seed N] [--write-seed N [--write-at BYTES]]`: an NVMe controller
//! (QEMU's nvme) owned through VFIO, SPDK-style: registers, then a polled
//! admin queue and one polled I/O queue pair.
//!
//! Asserts: BAR0 is there; CAP and VS read through VFIO and their fields
//! are sane (queue size, timeout, doorbell stride, NVM command set, page
//! sizes that include 4 KiB, version 1.x or later); the controller is
//! disabled after binding. Then: enable with an admin queue in DMA memory,
//! Identify Controller (PCI vendor, serial, model), Identify Namespace 1
//! (its size equals `--size`), create an I/O queue pair, read the first
//! 4 KiB and find the pattern the host wrote with `--seed`; with
//! `--write-seed`, write 4 KiB of that pattern at `--write-at` (default
//! 1 MiB), flush, and read it back (the host then finds it in the image);
//! and shut the controller down cleanly.

use crate::args::Opts;
use crate::pci::cfg;
use crate::report::{Failure, Report};
use crate::vfio::{Bar, Device, DmaBuffer};
use rig_abi::first_mismatch;
use std::time::{Duration, Instant};

/// Controller registers (NVMe base specification, 3.1).
pub mod reg {
    /// Capabilities (64-bit).
    pub const CAP: u64 = 0x00;
    /// Version.
    pub const VS: u64 = 0x08;
    /// Controller configuration.
    pub const CC: u64 = 0x14;
    /// Controller status.
    pub const CSTS: u64 = 0x1c;
    /// Admin queue attributes.
    pub const AQA: u64 = 0x24;
    /// Admin submission queue base (64-bit).
    pub const ASQ: u64 = 0x28;
    /// Admin completion queue base (64-bit).
    pub const ACQ: u64 = 0x30;
    /// First doorbell.
    pub const DOORBELLS: u64 = 0x1000;
}

/// CAP, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// Maximum queue entries (the register is 0-based; this is the count).
    pub mqes: u32,
    /// Queues must be physically contiguous.
    pub cqr: bool,
    /// Worst-case time to become ready, in 500 ms units.
    pub to: u8,
    /// Doorbell stride: 4 << dstrd bytes.
    pub dstrd: u8,
    /// Command sets supported (bit 0: NVM).
    pub css: u8,
    /// Smallest page size: 4 KiB << mpsmin.
    pub mpsmin: u8,
    /// Largest page size: 4 KiB << mpsmax.
    pub mpsmax: u8,
}

impl Cap {
    /// Splits the register.
    pub fn decode(v: u64) -> Cap {
        Cap {
            mqes: (v & 0xffff) as u32 + 1,
            cqr: v >> 16 & 1 == 1,
            to: (v >> 24) as u8,
            dstrd: (v >> 32 & 0xf) as u8,
            css: (v >> 37) as u8,
            mpsmin: (v >> 48 & 0xf) as u8,
            mpsmax: (v >> 52 & 0xf) as u8,
        }
    }

    /// What is wrong with it for a driver using `page`-byte pages.
    pub fn problems(&self, page: u64) -> Vec<String> {
        let mut p = Vec::new();
        if self.mqes < 2 {
            p.push(format!("MQES allows {} entries, a queue needs 2", self.mqes));
        }
        if self.to == 0 {
            p.push("TO is 0".into());
        }
        if self.css & 1 == 0 {
            p.push(format!("CSS {:#x} lacks the NVM command set", self.css));
        }
        if self.mpsmin > self.mpsmax {
            p.push(format!("MPSMIN {} above MPSMAX {}", self.mpsmin, self.mpsmax));
        }
        let (min, max) = (4096u64 << self.mpsmin, 4096u64 << self.mpsmax);
        if page < min || page > max {
            p.push(format!("page size {page} outside {min}..={max}"));
        }
        p
    }

    /// Bytes from one doorbell to the next.
    pub fn stride(&self) -> u64 {
        4 << self.dstrd
    }

    /// How long enabling or disabling may take.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_millis(500 * u64::from(self.to.max(1)))
    }
}

/// VS, decoded: (major, minor, tertiary).
pub fn version(v: u32) -> (u16, u8, u8) {
    ((v >> 16) as u16, (v >> 8) as u8, v as u8)
}

/// Submission tail doorbell of queue `qid`.
pub fn sq_doorbell(qid: u16, stride: u64) -> u64 {
    reg::DOORBELLS + 2 * u64::from(qid) * stride
}

/// Completion head doorbell of queue `qid`.
pub fn cq_doorbell(qid: u16, stride: u64) -> u64 {
    reg::DOORBELLS + (2 * u64::from(qid) + 1) * stride
}

/// CC that enables the controller: NVM command set, 4 KiB pages,
/// round-robin, 64-byte submission and 16-byte completion entries.
pub const CC_ENABLE: u32 = 1 | (6 << 16) | (4 << 20);
/// CC.SHN = normal shutdown.
pub const CC_SHUTDOWN: u32 = 1 << 14;
/// CSTS.RDY.
pub const CSTS_RDY: u32 = 1;
/// CSTS.CFS: fatal status.
pub const CSTS_CFS: u32 = 2;

/// CSTS.SHST.
pub fn shutdown_state(csts: u32) -> u32 {
    csts >> 2 & 3
}

/// A submission queue entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Command {
    /// Opcode.
    pub opcode: u8,
    /// Namespace.
    pub nsid: u32,
    /// First data page.
    pub prp1: u64,
    /// Command dwords 10..=12.
    pub cdw10: u32,
    /// Dword 11.
    pub cdw11: u32,
    /// Dword 12.
    pub cdw12: u32,
}

impl Command {
    /// Its 64 bytes with command id `cid`.
    pub fn encode(&self, cid: u16) -> [u8; 64] {
        let mut b = [0u8; 64];
        let cdw0 = u32::from(self.opcode) | (u32::from(cid) << 16);
        b[0..4].copy_from_slice(&cdw0.to_le_bytes());
        b[4..8].copy_from_slice(&self.nsid.to_le_bytes());
        b[24..32].copy_from_slice(&self.prp1.to_le_bytes());
        b[40..44].copy_from_slice(&self.cdw10.to_le_bytes());
        b[44..48].copy_from_slice(&self.cdw11.to_le_bytes());
        b[48..52].copy_from_slice(&self.cdw12.to_le_bytes());
        b
    }
}

/// Admin opcodes and the NVM read.
pub mod op {
    /// Create I/O submission queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Create I/O completion queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// NVM read.
    pub const READ: u8 = 0x02;
    /// NVM write.
    pub const WRITE: u8 = 0x01;
    /// NVM flush.
    pub const FLUSH: u8 = 0x00;
}

/// An NVM read or write of `blocks` blocks from `lba` into or from the page at `prp1`.
pub fn io_command(opcode: u8, lba: u64, blocks: u32, prp1: u64) -> Command {
    Command { opcode, nsid: 1, prp1, cdw10: lba as u32, cdw11: (lba >> 32) as u32, cdw12: blocks.saturating_sub(1) }
}

/// A completion queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Where the controller's submission head is.
    pub sq_head: u16,
    /// Command id.
    pub cid: u16,
    /// Phase tag.
    pub phase: bool,
    /// Status field (0: success), without the phase bit.
    pub status: u16,
}

impl Completion {
    /// From its 16 bytes.
    pub fn decode(b: &[u8; 16]) -> Completion {
        let dw2 = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        let dw3 = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        Completion { sq_head: dw2 as u16, cid: dw3 as u16, phase: dw3 >> 16 & 1 == 1, status: (dw3 >> 17) as u16 }
    }
}

/// Text of a space-padded ASCII identify field.
pub fn ascii_field(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end_matches([' ', '\0']).to_string()
}

/// From Identify Namespace: (size in blocks, block size).
pub fn namespace_geometry(id: &[u8]) -> Option<(u64, u64)> {
    let nsze = u64::from_le_bytes(id.get(0..8)?.try_into().ok()?);
    let fmt = usize::from(*id.get(26)? & 0xf);
    let lbaf = id.get(128 + 4 * fmt..132 + 4 * fmt)?;
    let lbads = lbaf[2];
    (9..=16).contains(&lbads).then_some((nsze, 1u64 << lbads))
}

const DEPTH: u16 = 16;

/// A polled queue pair in DMA memory.
struct Queue<'d> {
    qid: u16,
    sq: DmaBuffer<'d>,
    cq: DmaBuffer<'d>,
    tail: u16,
    head: u16,
    phase: bool,
    cid: u16,
}

impl Queue<'_> {
    /// Submits `cmd` and polls for its completion.
    fn run(&mut self, bar: &Bar<'_>, stride: u64, cmd: &Command) -> Result<Completion, String> {
        let cid = self.cid;
        self.cid = self.cid.wrapping_add(1);
        let slot = u64::from(self.tail) * 64;
        self.sq.mem().write_bytes(slot, &cmd.encode(cid)).map_err(|e| e.to_string())?;
        self.tail = (self.tail + 1) % DEPTH;
        bar.write32(sq_doorbell(self.qid, stride), u32::from(self.tail)).map_err(|e| e.to_string())?;

        let until = Instant::now() + Duration::from_secs(10);
        let at = u64::from(self.head) * 16;
        let done = loop {
            let mut raw = [0u8; 16];
            self.cq.mem().read_bytes(at, &mut raw).map_err(|e| e.to_string())?;
            let c = Completion::decode(&raw);
            if c.phase == self.phase {
                break c;
            }
            if Instant::now() > until {
                return Err(format!("no completion for opcode {:#04x} on queue {} in 10 s", cmd.opcode, self.qid));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        self.head = (self.head + 1) % DEPTH;
        if self.head == 0 {
            self.phase = !self.phase;
        }
        bar.write32(cq_doorbell(self.qid, stride), u32::from(self.head)).map_err(|e| e.to_string())?;
        if done.cid != cid {
            return Err(format!("completion for command {} while {cid} was due", done.cid));
        }
        if done.status != 0 {
            return Err(format!("opcode {:#04x} failed with status {:#x}", cmd.opcode, done.status));
        }
        Ok(done)
    }
}

fn wait_csts(bar: &Bar<'_>, timeout: Duration, done: impl Fn(u32) -> bool) -> Result<u32, String> {
    let until = Instant::now() + timeout;
    loop {
        let csts = bar.read32(reg::CSTS).map_err(|e| e.to_string())?;
        if done(csts) {
            return Ok(csts);
        }
        if csts & CSTS_CFS != 0 {
            return Err(format!("controller fatal status (CSTS {csts:#x})"));
        }
        if Instant::now() > until {
            return Err(format!("CSTS {csts:#x} after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn w64(bar: &Bar<'_>, off: u64, v: u64) -> Result<(), String> {
    bar.write32(off, v as u32).and_then(|_| bar.write32(off + 4, (v >> 32) as u32)).map_err(|e| e.to_string())
}

fn read_buf(buf: &DmaBuffer<'_>, len: usize) -> Result<Vec<u8>, String> {
    let mut v = vec![0u8; len];
    buf.mem().read_bytes(0, &mut v).map_err(|e| e.to_string())?;
    Ok(v)
}

/// Page of each DMA buffer, from the IOVA base.
const IOVA_PAGES: [&str; 7] = ["admin sq", "admin cq", "identify", "i/o sq", "i/o cq", "data", "namespace"];

pub fn run(args: &[String]) -> Result<(), Failure> {
    let o = Opts::parse(args, &["--device", "--size", "--seed", "--iova", "--write-seed", "--write-at"])?;
    let bdf = crate::args::device(&o)?;
    let size = o.opt_num("--size")?;
    let seed = o.num32("--seed", 0x4e56)?;
    let write_seed = o.opt_num("--write-seed")?.map(|n| n as u32);
    let write_at = o.num("--write-at", 0x10_0000)?;
    if !write_at.is_multiple_of(4096) || size.is_some_and(|s| write_at + 4096 > s) {
        return Err(Failure::Usage("--write-at must be 4 KiB-aligned and inside the namespace".into()));
    }
    let iova = o.num("--iova", 0x10_0000)?;
    if !iova.is_multiple_of(0x1000) {
        return Err(Failure::Usage("--iova must be page-aligned".into()));
    }
    let mut r = Report::new("nvme");

    let Some(dev) = r.must(format!("open {bdf} through VFIO (type1 container)"), Device::open(bdf)) else {
        return r.finish();
    };
    r.note(format!("IOMMU group {}", dev.group()));
    let class = dev.config32(0x08).map(|v| v >> 8);
    r.eq("class code is NVMe (01:08:02)", Ok(0x01_0802), class.map_err(|e| e.to_string()));
    let bar0 = dev.region(0);
    r.note(format!("BAR0: {:#x} bytes, flags {:#x}, sparse mmap {:?}", bar0.size, bar0.flags, bar0.sparse));
    r.check(bar0.size >= 0x2000, "BAR0 has registers and doorbells", ">= 0x2000 bytes", format!("{:#x}", bar0.size));
    let Some(bar) = r.must("open BAR0", dev.bar(0, reg::DOORBELLS + 0x100)) else {
        return r.finish();
    };
    r.note(format!("BAR0 through {}", bar.mode()));

    // Registers.
    let Some(cap_raw) = r.must("read CAP", bar.read64_split(reg::CAP)) else {
        return r.finish();
    };
    let cap = Cap::decode(cap_raw);
    r.note(format!("CAP {cap_raw:#018x}: {cap:?}"));
    let problems = cap.problems(crate::mmio::page_size() as u64);
    r.check(
        problems.is_empty(),
        "CAP is sane (MQES, TO, NVM command set, 4 KiB pages)",
        "no problems",
        problems.join("; "),
    );
    r.check(cap.dstrd <= 4, "the doorbell stride is small", "DSTRD <= 4", cap.dstrd);
    // The same registers through the device fd: both access paths agree.
    let by_fd = dev.bar_unmapped(0, 0x1000).and_then(|b| Ok((b.read64_split(reg::CAP)?, b.read32(reg::VS)?)));
    let by_map = bar.read32(reg::VS).map(|vs| (cap_raw, vs));
    r.eq(
        "CAP and VS read the same through pread on the device fd",
        by_map.map_err(|e| e.to_string()),
        by_fd.map_err(|e| e.to_string()),
    );
    let vs = bar.read32(reg::VS).map_err(|e| e.to_string());
    let ver = vs.as_ref().ok().map(|&v| version(v));
    r.note(format!("VS {vs:?} = {ver:?}"));
    r.check(
        matches!(ver, Some((major, minor, _)) if major >= 2 || (major == 1 && minor <= 9)),
        "VS is NVMe 1.x or later",
        ">= 1.0",
        format!("{ver:?}"),
    );
    let cc = bar.read32(reg::CC).map_err(|e| e.to_string());
    let csts = bar.read32(reg::CSTS).map_err(|e| e.to_string());
    r.note(format!("after binding: CC {cc:?}, CSTS {csts:?}"));
    r.check(
        matches!(csts, Ok(s) if s & CSTS_CFS == 0),
        "no controller fatal status",
        "CSTS.CFS clear",
        format!("{csts:?}"),
    );
    if !r.clean() {
        return r.finish();
    }

    // The controller: disabled, then enabled on our admin queue.
    if let Some((before, after)) = r.must("turn on memory decoding and bus mastering", dev.enable_bus_master()) {
        r.note(format!("command register {before:#06x} -> {after:#06x}"));
    }
    let stride = cap.stride();
    let off = bar.write32(reg::CC, 0).map_err(|e| e.to_string());
    let off = off.and_then(|_| wait_csts(&bar, cap.ready_timeout(), |s| s & CSTS_RDY == 0));
    r.must("the controller is disabled (CC.EN 0, CSTS.RDY 0)", off);

    let map =
        || (0..IOVA_PAGES.len() as u64).map(|i| dev.dma_buffer(iova + 0x1000 * i, 4096)).collect::<Result<Vec<_>, _>>();
    let what = format!("map {} pages for DMA from IOVA {iova:#x} ({})", IOVA_PAGES.len(), IOVA_PAGES.join(", "));
    let Some(pages) = r.must(what, map()) else {
        return r.finish();
    };
    let Ok([asq, acq, ident, iosq, iocq, data, nsid_page]) = <[DmaBuffer<'_>; 7]>::try_from(pages) else {
        return r.finish();
    };
    let aqa = (u32::from(DEPTH - 1) << 16) | u32::from(DEPTH - 1);
    let setup = bar
        .write32(reg::AQA, aqa)
        .map_err(|e| e.to_string())
        .and_then(|_| w64(&bar, reg::ASQ, asq.iova()))
        .and_then(|_| w64(&bar, reg::ACQ, acq.iova()))
        .and_then(|_| bar.write32(reg::CC, CC_ENABLE).map_err(|e| e.to_string()))
        .and_then(|_| wait_csts(&bar, cap.ready_timeout(), |s| s & CSTS_RDY != 0));
    if r.must("enable with a 16-entry admin queue in DMA memory (CSTS.RDY 1)", setup).is_none() {
        return r.finish();
    }
    let mut admin = Queue { qid: 0, sq: asq, cq: acq, tail: 0, head: 0, phase: true, cid: 1 };

    let identify = Command { opcode: op::IDENTIFY, prp1: ident.iova(), cdw10: 1, ..Default::default() };
    let ctrl = admin.run(&bar, stride, &identify).and_then(|_| read_buf(&ident, 4096));
    if let Some(id) = r.must("Identify Controller", ctrl) {
        let vid = u16::from_le_bytes([id[0], id[1]]);
        let pci_vendor = dev.config16(cfg::VENDOR).unwrap_or(0);
        let (sn, mn) = (ascii_field(&id[4..24]), ascii_field(&id[24..64]));
        let nn = u32::from_le_bytes([id[516], id[517], id[518], id[519]]);
        r.note(format!("serial {sn:?}, model {mn:?}, firmware {:?}, {nn} namespaces", ascii_field(&id[64..72])));
        r.eq("its PCI vendor is the config space's", pci_vendor, vid);
        r.check(
            !sn.is_empty() && !mn.is_empty(),
            "it has a serial number and a model",
            "both",
            format!("{sn:?} {mn:?}"),
        );
        r.check(nn >= 1, "it has a namespace", ">= 1", nn);
    }
    let identify_ns = Command { opcode: op::IDENTIFY, nsid: 1, prp1: nsid_page.iova(), cdw10: 0, ..Default::default() };
    let ns = admin.run(&bar, stride, &identify_ns).and_then(|_| read_buf(&nsid_page, 4096));
    let mut block = 512;
    if let Some(id) = r.must("Identify Namespace 1", ns) {
        match namespace_geometry(&id) {
            Some((blocks, bs)) => {
                block = bs;
                r.note(format!("{blocks} blocks of {bs} bytes"));
                if let Some(want) = size {
                    r.eq("the namespace is the size of the host's image", want, blocks * bs);
                }
            }
            None => {
                r.check(false, "the namespace has a block format", "LBADS 9..=16", "none");
            }
        }
    }

    let depth = u32::from(DEPTH - 1) << 16;
    let create_cq =
        Command { opcode: op::CREATE_CQ, prp1: iocq.iova(), cdw10: depth | 1, cdw11: 1, ..Default::default() };
    let create_sq = Command {
        opcode: op::CREATE_SQ,
        prp1: iosq.iova(),
        cdw10: depth | 1,
        cdw11: (1 << 16) | 1,
        ..Default::default()
    };
    let pair = admin.run(&bar, stride, &create_cq).and_then(|_| admin.run(&bar, stride, &create_sq));
    if r.must("create an I/O completion and submission queue (polled, no interrupts)", pair).is_some() {
        let mut io = Queue { qid: 1, sq: iosq, cq: iocq, tail: 0, head: 0, phase: true, cid: 1 };
        let blocks = (4096 / block) as u32;
        let read = io_command(op::READ, 0, blocks, data.iova());
        let got = io.run(&bar, stride, &read).and_then(|_| read_buf(&data, 4096));
        if let Some(bytes) = r.must(format!("read LBA 0..{blocks} (4 KiB) through the I/O queue"), got) {
            let bad = first_mismatch(seed, 0, &bytes);
            r.check(
                bad.is_none(),
                "the first 4 KiB are the host's pattern",
                format!("seed {seed:#x}"),
                format!("byte {bad:?} differs"),
            );
        }
        if let Some(wseed) = write_seed {
            let lba = write_at / block;
            let mut pattern = vec![0u8; 4096];
            rig_abi::fill_pattern(wseed, 0, &mut pattern);
            let write = data
                .mem()
                .write_bytes(0, &pattern)
                .map_err(|e| e.to_string())
                .and_then(|_| io.run(&bar, stride, &io_command(op::WRITE, lba, blocks, data.iova())))
                .and_then(|_| io.run(&bar, stride, &Command { opcode: op::FLUSH, nsid: 1, ..Default::default() }));
            let what = format!("write 4 KiB of pattern {wseed:#x} at byte {write_at:#x} (LBA {lba}), then flush");
            if r.must(what, write).is_some() {
                let back = data
                    .mem()
                    .fill(0, 4096, 0)
                    .map_err(|e| e.to_string())
                    .and_then(|_| io.run(&bar, stride, &io_command(op::READ, lba, blocks, data.iova())))
                    .and_then(|_| read_buf(&data, 4096));
                if let Some(bytes) = r.must("read it back", back) {
                    let bad = first_mismatch(wseed, 0, &bytes);
                    r.check(
                        bad.is_none(),
                        "what was written reads back",
                        "the pattern",
                        format!("byte {bad:?} differs"),
                    );
                }
            }
        }
    }

    let cc_now = bar.read32(reg::CC).map_err(|e| e.to_string());
    let shut = cc_now
        .and_then(|cc| bar.write32(reg::CC, cc | CC_SHUTDOWN).map_err(|e| e.to_string()))
        .and_then(|_| wait_csts(&bar, Duration::from_secs(5), |s| shutdown_state(s) == 2))
        .and_then(|_| bar.write32(reg::CC, 0).map_err(|e| e.to_string()))
        .and_then(|_| wait_csts(&bar, cap.ready_timeout(), |s| s & CSTS_RDY == 0));
    r.must("shut the controller down (CSTS.SHST complete) and disable it", shut);
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_commands_split_the_lba() {
        let c = io_command(op::WRITE, 0x1_0000_0100, 8, 0x5000);
        assert_eq!((c.opcode, c.nsid, c.prp1, c.cdw10, c.cdw11, c.cdw12), (0x01, 1, 0x5000, 0x100, 1, 7));
        let b = io_command(op::READ, 0, 1, 0).encode(9);
        assert_eq!((b[0], b[2], b[48]), (0x02, 9, 0));
    }

    #[test]
    fn decodes_qemu_cap_and_version() {
        // Read from QEMU 10.0.2's nvme through VFIO: MQES 0x7ff, CQR, TO 15,
        // DSTRD 0, CSS NVM + I/O command sets, MPSMIN 0, MPSMAX 4.
        let raw = 0x0040_0820_0f01_07ffu64;
        let cap = Cap::decode(raw);
        assert_eq!(cap.mqes, 0x800);
        assert!(cap.cqr);
        assert_eq!(cap.to, 0x0f);
        assert_eq!(cap.dstrd, 0);
        assert_eq!(cap.css, 0x41);
        assert_eq!((cap.mpsmin, cap.mpsmax), (0, 4));
        assert!(cap.problems(4096).is_empty(), "{:?}", cap.problems(4096));
        assert_eq!(cap.stride(), 4);
        assert_eq!(cap.ready_timeout(), Duration::from_millis(7500));
        assert_eq!(version(0x0001_0400), (1, 4, 0));
    }

    #[test]
    fn finds_bad_caps() {
        let cap = Cap::decode(0);
        let p = cap.problems(4096);
        assert_eq!(p.len(), 3, "{p:?}");
        let big_page = Cap { mpsmin: 1, ..Cap::decode(0x0000_0020_0f00_0003) };
        assert!(big_page.problems(4096).iter().any(|s| s.contains("page size")));
        assert!(Cap { mpsmin: 3, mpsmax: 2, ..big_page }.problems(4096).iter().any(|s| s.contains("MPSMIN")));
    }

    #[test]
    fn doorbells_follow_the_stride() {
        assert_eq!(sq_doorbell(0, 4), 0x1000);
        assert_eq!(cq_doorbell(0, 4), 0x1004);
        assert_eq!(sq_doorbell(1, 4), 0x1008);
        assert_eq!(cq_doorbell(1, 16), 0x1030);
    }

    #[test]
    fn commands_and_completions() {
        let c = Command { opcode: op::READ, nsid: 1, prp1: 0x10_5000, cdw10: 2, cdw11: 0, cdw12: 7 };
        let b = c.encode(0x1234);
        assert_eq!(&b[0..4], &[0x02, 0, 0x34, 0x12]);
        assert_eq!(&b[4..8], &[1, 0, 0, 0]);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().expect("8")), 0x10_5000);
        assert_eq!(&b[40..44], &[2, 0, 0, 0]);
        assert_eq!(&b[48..52], &[7, 0, 0, 0]);
        let mut raw = [0u8; 16];
        raw[8..10].copy_from_slice(&3u16.to_le_bytes());
        raw[12..16].copy_from_slice(&(0x1234u32 | 1 << 16 | 0x2 << 17).to_le_bytes());
        assert_eq!(Completion::decode(&raw), Completion { sq_head: 3, cid: 0x1234, phase: true, status: 2 });
        assert_eq!(CC_ENABLE, 0x0046_0001);
        assert_eq!(shutdown_state(0b1001), 2);
    }

    #[test]
    fn identify_fields() {
        assert_eq!(ascii_field(b"rigudrv0    "), "rigudrv0");
        let mut ns = vec![0u8; 4096];
        ns[0..8].copy_from_slice(&32768u64.to_le_bytes());
        ns[26] = 1;
        ns[128 + 4 + 2] = 12;
        assert_eq!(namespace_geometry(&ns), Some((32768, 4096)));
        ns[128 + 4 + 2] = 0;
        assert_eq!(namespace_geometry(&ns), None);
        assert_eq!(namespace_geometry(&ns[..64]), None);
    }
}
