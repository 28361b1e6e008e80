//! udrv-edu: a userspace driver for QEMU's edu device (PCI 1234:11e8) over
//! VFIO, the way DPDK or SPDK own their devices: no kernel driver, just a
//! process with the device's VFIO group.
//!
//! usage: udrv-edu --device 0000:00:04.0
//!
//! The device must be bound to vfio-pci first (the rig does it for a
//! `[[device]]` with `bind = "vfio-pci"`). It checks the ID register, turns
//! on bus mastering, computes a factorial with its MSI delivered to an
//! eventfd, and copies a page through the device by DMA both ways, through
//! memory mapped with the IOMMU. One `ok:` line per check; exit status 1
//! with an `Error:` line on the first failure.

use anyhow::{bail, ensure, Context, Result};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vfio_bindings::bindings::vfio::{VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_INFO_FLAG_MMAP};
use vfio_ioctls::{VfioContainer, VfioDevice};
use vmm_sys_util::eventfd::EventFd;

// edu's registers (QEMU docs/specs/edu.rst).
const ID: usize = 0x00;
const LIVENESS: usize = 0x04;
const FACTORIAL: usize = 0x08;
const STATUS: usize = 0x20;
const IRQ_STATUS: usize = 0x24;
const IRQ_ACK: usize = 0x64;
const DMA_SRC: usize = 0x80;
const DMA_DST: usize = 0x88;
const DMA_COUNT: usize = 0x90;
const DMA_CMD: usize = 0x98;

const STATUS_IRQ_FACT: u32 = 0x80;
const IRQ_FACT: u32 = 0x1;
const IRQ_DMA: u32 = 0x100;
const DMA_START: u32 = 0x1;
const DMA_TO_RAM: u32 = 0x2;
const DMA_IRQ: u32 = 0x4;
/// The device's own 4 KiB buffer, as its DMA engine addresses it.
const DEV_BUF: u32 = 0x40000;
/// Where the device sees our buffer: any page-aligned address below edu's
/// 28-bit DMA mask will do.
const IOVA: u64 = 0x10_0000;

/// BAR0, mapped from the device fd. vfio-ioctls has no BAR helper: the
/// region's offset in the device fd is where mmap() finds it, when VFIO
/// sets the MMAP flag.
struct Bar0 {
    ptr: *mut u8,
    len: usize,
}

impl Bar0 {
    fn map(dev: &VfioDevice) -> Result<Bar0> {
        ensure!(dev.get_region_flags(0) & VFIO_REGION_INFO_FLAG_MMAP != 0, "VFIO does not let BAR0 be mapped");
        let len = dev.get_region_size(0) as usize;
        let offset = dev.get_region_offset(0) as libc::off_t;
        // SAFETY: a new shared mapping of the device fd; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                dev.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!("mmap BAR0: {}", std::io::Error::last_os_error());
        }
        Ok(Bar0 { ptr: ptr.cast(), len })
    }

    fn read(&self, reg: usize) -> u32 {
        assert!(reg + 4 <= self.len && reg.is_multiple_of(4));
        // SAFETY: in bounds and aligned; volatile because it is a device register.
        unsafe { std::ptr::read_volatile(self.ptr.add(reg).cast::<u32>()) }
    }

    fn write(&self, reg: usize, value: u32) {
        assert!(reg + 4 <= self.len && reg.is_multiple_of(4));
        // SAFETY: as in read.
        unsafe { std::ptr::write_volatile(self.ptr.add(reg).cast::<u32>(), value) }
    }
}

impl Drop for Bar0 {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Memory the device reaches at IOVA, mapped with VFIO_IOMMU_MAP_DMA.
struct DmaBuf<'c> {
    ptr: *mut u8,
    len: usize,
    container: &'c VfioContainer,
}

impl<'c> DmaBuf<'c> {
    fn new(container: &'c VfioContainer, len: usize) -> Result<DmaBuf<'c>> {
        // SAFETY: fresh anonymous memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!("allocate DMA memory: {}", std::io::Error::last_os_error());
        }
        // SAFETY: the memory stays mapped until drop, which unmaps the IOVA
        // first, and is only accessed with volatile reads and writes.
        unsafe { container.vfio_dma_map(IOVA, len, ptr.cast()) }.context("VFIO_IOMMU_MAP_DMA")?;
        Ok(DmaBuf { ptr: ptr.cast(), len, container })
    }

    fn set(&self, i: usize, b: u8) {
        assert!(i < self.len);
        // SAFETY: in bounds; the device may write this memory, so volatile.
        unsafe { std::ptr::write_volatile(self.ptr.add(i), b) }
    }

    fn get(&self, i: usize) -> u8 {
        assert!(i < self.len);
        // SAFETY: as in set.
        unsafe { std::ptr::read_volatile(self.ptr.add(i)) }
    }
}

impl Drop for DmaBuf<'_> {
    fn drop(&mut self) {
        let _ = self.container.vfio_dma_unmap(IOVA, self.len);
        // SAFETY: our mapping, no longer reachable by the device.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Waits for the MSI on `irq`, then acknowledges `bit` in the device.
fn wait_irq(bar: &Bar0, irq: &EventFd, bit: u32) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(10);
    while irq.read().is_err() {
        ensure!(Instant::now() < until, "no interrupt within 10 s");
        let mut p = libc::pollfd { fd: irq.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 100) };
    }
    let status = bar.read(IRQ_STATUS);
    ensure!(status & bit != 0, "interrupt status {status:#x} lacks {bit:#x}");
    bar.write(IRQ_ACK, status);
    Ok(())
}

fn dma(bar: &Bar0, irq: &EventFd, src: u64, dst: u64, to_ram: bool) -> Result<()> {
    // 32-bit writes: VFIO may split wider ones, and both addresses are low.
    bar.write(DMA_SRC, src as u32);
    bar.write(DMA_DST, dst as u32);
    bar.write(DMA_COUNT, 4096);
    bar.write(DMA_CMD, DMA_START | DMA_IRQ | if to_ram { DMA_TO_RAM } else { 0 });
    wait_irq(bar, irq, IRQ_DMA)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bdf = match args.as_slice() {
        [_, flag, bdf] if flag == "--device" => bdf.clone(),
        _ => bail!("usage: udrv-edu --device <BDF, e.g. 0000:00:04.0>"),
    };

    // Container, group, device: the group comes from the device's sysfs node.
    let sysfs = PathBuf::from(format!("/sys/bus/pci/devices/{bdf}"));
    let container = Arc::new(VfioContainer::new(None).context("open /dev/vfio/vfio")?);
    let dev = VfioDevice::new(&sysfs, container.clone(), false).with_context(|| format!("open {bdf} through VFIO"))?;

    let mut cfg = [0u8; 8];
    dev.region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut cfg, 0);
    let ids = (u16::from_le_bytes([cfg[0], cfg[1]]), u16::from_le_bytes([cfg[2], cfg[3]]));
    ensure!(ids == (0x1234, 0x11e8), "{bdf} is {:04x}:{:04x}, not edu", ids.0, ids.1);
    println!("ok: {bdf} is edu (1234:11e8)");

    // vfio-pci leaves bus mastering off: without it no DMA and no MSI.
    let command = u16::from_le_bytes([cfg[4], cfg[5]]) | 0x6;
    dev.region_write(VFIO_PCI_CONFIG_REGION_INDEX, &command.to_le_bytes(), 4);
    dev.region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut cfg, 0);
    ensure!(u16::from_le_bytes([cfg[4], cfg[5]]) & 0x6 == 0x6, "bus mastering did not turn on");
    println!("ok: memory decoding and bus mastering on");

    let bar = Bar0::map(&dev)?;
    let id = bar.read(ID);
    ensure!(id == 0x0100_00ed, "ID register {id:#x}");
    println!("ok: ID register {id:#010x}");
    bar.write(LIVENESS, 0x1234_5678);
    ensure!(bar.read(LIVENESS) == !0x1234_5678, "liveness register did not invert");
    println!("ok: liveness register inverts");

    let irq = EventFd::new(libc::EFD_NONBLOCK).context("eventfd")?;
    dev.enable_msi(vec![&irq]).context("route MSI to an eventfd")?;
    bar.write(STATUS, STATUS_IRQ_FACT);
    bar.write(FACTORIAL, 10);
    wait_irq(&bar, &irq, IRQ_FACT).context("factorial interrupt")?;
    let fact = bar.read(FACTORIAL);
    ensure!(fact == 3_628_800, "10! = {fact}");
    println!("ok: 10! = {fact}, completion by MSI");

    // Two pages at IOVA: the device copies the first into its buffer and
    // back out into the second.
    let buf = DmaBuf::new(&container, 8192)?;
    for i in 0..4096 {
        buf.set(i, (i * 7 + 3) as u8);
        buf.set(4096 + i, 0);
    }
    dma(&bar, &irq, IOVA, u64::from(DEV_BUF), false).context("DMA to the device")?;
    dma(&bar, &irq, u64::from(DEV_BUF), IOVA + 4096, true).context("DMA from the device")?;
    if let Some(i) = (0..4096).find(|&i| buf.get(4096 + i) != buf.get(i)) {
        bail!("byte {i} came back as {:#x}, sent {:#x}", buf.get(4096 + i), buf.get(i));
    }
    println!("ok: 4096 bytes through the device by DMA, both ways, byte for byte");

    dev.disable_msi().context("disable MSI")?;
    println!("udrv-edu: all checks passed");
    Ok(())
}
