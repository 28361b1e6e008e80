//! A PCI device owned through VFIO's type1 container, with vfio-ioctls:
//! container, group and device, region info, interrupts into eventfds and
//! DMA mappings. What the crate leaves out is done here on the device fd
//! without ioctls: BAR mmap (the crate has no helper) and checked region
//! reads and writes (its `region_read`/`region_write` only log failures).

use crate::mmio::{check_access, AccessError, Mmio};
use crate::pci::{cfg, Bdf};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vfio_bindings::bindings::vfio::{
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioRegionInfoCap};
use vmm_sys_util::eventfd::EventFd;

pub use vfio_bindings::bindings::vfio::{VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX};

/// Failures of the VFIO layer.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// The device is not bound to vfio-pci.
    #[error("{bdf} is bound to `{driver}`, not vfio-pci: write vfio-pci into its driver_override, unbind it and write it to drivers_probe")]
    NotVfio { bdf: Bdf, driver: String },
    /// No IOMMU group: VFIO cannot own the device.
    #[error("{bdf} has no IOMMU group: boot with an IOMMU (QEMU -device intel-iommu, guest intel_iommu=on)")]
    NoGroup { bdf: Bdf },
    /// A vfio-ioctls call failed.
    #[error("{what}: {source}")]
    Vfio { what: String, source: vfio_ioctls::VfioError },
    /// A system call failed.
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// A region is missing or smaller than needed.
    #[error("region {index}: {problem}")]
    Region { index: u32, problem: String },
    /// An access outside a region or mapping.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Waiting for an interrupt timed out.
    #[error("no interrupt on vector {vector} within {timeout:?}")]
    Timeout { vector: u32, timeout: Duration },
}

type Result<T> = std::result::Result<T, VfioError>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VfioError {
    let what = what.into();
    move |source| VfioError::Io { what, source }
}

fn vfio(what: impl Into<String>) -> impl FnOnce(vfio_ioctls::VfioError) -> VfioError {
    let what = what.into();
    move |source| VfioError::Vfio { what, source }
}

/// What VFIO says about one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// VFIO region index (BAR n is n, config space 7).
    pub index: u32,
    /// Bytes.
    pub size: u64,
    /// Where it starts in the device fd.
    pub offset: u64,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// The parts that may be mmap()ed, when the kernel restricts them.
    pub sparse: Option<Vec<(u64, u64)>>,
}

impl Region {
    /// The kernel allows mmap() of (part of) the region.
    pub fn mmap(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_MMAP != 0
    }

    /// Readable and writable.
    pub fn read_write(&self) -> bool {
        let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        self.flags & rw == rw
    }

    /// The length to mmap() from the region's start so that `[0, need)` is
    /// covered, or None when that part may not be mapped.
    pub fn mappable_prefix(&self, need: u64) -> Option<u64> {
        if !self.mmap() || need > self.size {
            return None;
        }
        match &self.sparse {
            None => Some(self.size),
            Some(areas) => areas.iter().find(|&&(off, len)| off == 0 && len >= need).map(|&(_, len)| len),
        }
    }
}

/// How a BAR is reached.
pub enum Access {
    /// mmap() of the device fd at the region's offset.
    Mapped(Mmio),
    /// pread()/pwrite() on the device fd (the kernel did not allow mmap).
    Fd { fd: i32, offset: u64 },
}

/// One BAR of an open device.
pub struct Bar<'d> {
    region: Region,
    access: Access,
    _device: std::marker::PhantomData<&'d Device>,
}

impl Bar<'_> {
    /// The mapping, when the BAR is mapped.
    pub fn mapped(&self) -> Option<&Mmio> {
        match &self.access {
            Access::Mapped(m) => Some(m),
            Access::Fd { .. } => None,
        }
    }

    /// How it is reached, for the log.
    pub fn mode(&self) -> &'static str {
        match self.access {
            Access::Mapped(_) => "mmap of the device fd",
            Access::Fd { .. } => "pread/pwrite on the device fd (no mmap)",
        }
    }

    /// A 32-bit register read.
    pub fn read32(&self, offset: u64) -> Result<u32> {
        match &self.access {
            Access::Mapped(m) => Ok(m.read32(offset)?),
            Access::Fd { fd, offset: base } => {
                check_access(offset, 4, self.region.size, 4)?;
                let mut b = [0u8; 4];
                pread_exact(*fd, &mut b, base + offset)
                    .map_err(io(format!("read BAR {} at {offset:#x}", self.region.index)))?;
                Ok(u32::from_le_bytes(b))
            }
        }
    }

    /// A 32-bit register write.
    pub fn write32(&self, offset: u64, value: u32) -> Result<()> {
        match &self.access {
            Access::Mapped(m) => Ok(m.write32(offset, value)?),
            Access::Fd { fd, offset: base } => {
                check_access(offset, 4, self.region.size, 4)?;
                pwrite_all(*fd, &value.to_le_bytes(), base + offset)
                    .map_err(io(format!("write BAR {} at {offset:#x}", self.region.index)))
            }
        }
    }

    /// A 64-bit register as two 32-bit reads, low half first (the order
    /// NVMe and most devices allow; VFIO's read path splits wider accesses
    /// on some kernels anyway).
    pub fn read64_split(&self, offset: u64) -> Result<u64> {
        let lo = self.read32(offset)?;
        let hi = self.read32(offset + 4)?;
        Ok(u64::from(lo) | (u64::from(hi) << 32))
    }
}

fn pread_exact(fd: i32, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let off = libc::off_t::try_from(offset).map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off) };
    match usize::try_from(n) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(n) => Err(std::io::Error::other(format!("short read: {n} of {} bytes", buf.len()))),
        Err(_) => Err(std::io::Error::last_os_error()),
    }
}

fn pwrite_all(fd: i32, buf: &[u8], offset: u64) -> std::io::Result<()> {
    let off = libc::off_t::try_from(offset).map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: buf is valid for reads of its length.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off) };
    match usize::try_from(n) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(n) => Err(std::io::Error::other(format!("short write: {n} of {} bytes", buf.len()))),
        Err(_) => Err(std::io::Error::last_os_error()),
    }
}

/// The driver `path/driver` points to, or "none".
fn bound_driver(sysfs: &Path) -> String {
    std::fs::read_link(sysfs.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "none".to_string())
}

/// A device opened through a type1 container.
pub struct Device {
    group: u32,
    // Dropped before the container: closing the device fd first lets the
    // group leave the container.
    dev: VfioDevice,
    container: Arc<VfioContainer>,
}

impl Device {
    /// Opens `bdf`, which must be bound to vfio-pci: a new container
    /// (API version and TYPE1v2 checked by the crate), the device's group
    /// (viable), TYPE1v2 set, and the device fd.
    pub fn open(bdf: Bdf) -> Result<Device> {
        let sysfs = bdf.sysfs_path();
        let driver = bound_driver(&sysfs);
        if driver != "vfio-pci" {
            return Err(VfioError::NotVfio { bdf, driver });
        }
        let group = std::fs::read_link(sysfs.join("iommu_group"))
            .ok()
            .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
            .ok_or(VfioError::NoGroup { bdf })?;
        let container = Arc::new(VfioContainer::new(None).map_err(vfio("open the VFIO container"))?);
        let dev =
            VfioDevice::new(&sysfs, container.clone(), false).map_err(vfio(format!("open {bdf} in group {group}")))?;
        Ok(Device { group, dev, container })
    }

    /// Its IOMMU group.
    pub fn group(&self) -> u32 {
        self.group
    }

    /// What VFIO reported for region `index`.
    pub fn region(&self, index: u32) -> Region {
        let sparse = self.dev.get_region_caps(index).into_iter().find_map(|c| match c {
            VfioRegionInfoCap::SparseMmap(s) => Some(s.areas.iter().map(|a| (a.offset, a.size)).collect()),
            _ => None,
        });
        Region {
            index,
            size: self.dev.get_region_size(index),
            offset: self.dev.get_region_offset(index),
            flags: self.dev.get_region_flags(index),
            sparse,
        }
    }

    /// Reads config space at `offset` into `buf`.
    pub fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let r = self.region(VFIO_PCI_CONFIG_REGION_INDEX);
        check_access(offset, buf.len() as u64, r.size, 1)?;
        pread_exact(self.dev.as_raw_fd(), buf, r.offset + offset).map_err(io(format!("read config at {offset:#x}")))
    }

    /// Writes `buf` into config space at `offset`.
    pub fn config_write(&self, offset: u64, buf: &[u8]) -> Result<()> {
        let r = self.region(VFIO_PCI_CONFIG_REGION_INDEX);
        check_access(offset, buf.len() as u64, r.size, 1)?;
        pwrite_all(self.dev.as_raw_fd(), buf, r.offset + offset).map_err(io(format!("write config at {offset:#x}")))
    }

    /// A 16-bit config register.
    pub fn config16(&self, offset: u64) -> Result<u16> {
        let mut b = [0u8; 2];
        self.config_read(offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// A 32-bit config register.
    pub fn config32(&self, offset: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.config_read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Conventional config space (256 bytes), as VFIO virtualizes it.
    pub fn config_image(&self) -> Result<Vec<u8>> {
        let mut b = vec![0u8; cfg::SIZE];
        self.config_read(0, &mut b)?;
        Ok(b)
    }

    /// Turns on memory decoding and bus mastering. vfio-pci leaves bus
    /// mastering off after binding; without it DMA reads zeros, writes
    /// vanish and MSI messages (memory writes too) never arrive. Returns
    /// the command register before and after.
    pub fn enable_bus_master(&self) -> Result<(u16, u16)> {
        let before = self.config16(cfg::COMMAND)?;
        let want = before | cfg::COMMAND_MEMORY | cfg::COMMAND_MASTER;
        self.config_write(cfg::COMMAND, &want.to_le_bytes())?;
        Ok((before, self.config16(cfg::COMMAND)?))
    }

    /// Opens BAR `index`, which must have at least `need` bytes: mapped
    /// when VFIO sets the MMAP flag and lets `[0, need)` be mapped (with
    /// no BAR helper in vfio-ioctls, this maps the device fd at the region
    /// offset), else reached with pread/pwrite.
    pub fn bar(&self, index: u32, need: u64) -> Result<Bar<'_>> {
        let region = self.region(index);
        if region.size < need || region.size == 0 {
            return Err(VfioError::Region { index, problem: format!("{:#x} bytes, {need:#x} needed", region.size) });
        }
        let fd = self.dev.as_raw_fd();
        let access = match region.mappable_prefix(need) {
            Some(len) => Access::Mapped(
                Mmio::map_fd(fd, region.offset, len).map_err(io(format!("mmap BAR {index} ({len:#x} bytes)")))?,
            ),
            None => Access::Fd { fd, offset: region.offset },
        };
        Ok(Bar { region, access, _device: std::marker::PhantomData })
    }

    /// Opens BAR `index` for pread/pwrite only, as when mmap is not allowed.
    pub fn bar_unmapped(&self, index: u32, need: u64) -> Result<Bar<'_>> {
        let region = self.region(index);
        if region.size < need || region.size == 0 {
            return Err(VfioError::Region { index, problem: format!("{:#x} bytes, {need:#x} needed", region.size) });
        }
        let access = Access::Fd { fd: self.dev.as_raw_fd(), offset: region.offset };
        Ok(Bar { region, access, _device: std::marker::PhantomData })
    }

    /// The number of vectors of interrupt `index` (INTx, MSI, MSI-X).
    pub fn irq_count(&self, index: u32) -> u32 {
        self.dev.get_irq_info(index).map_or(0, |i| i.count)
    }

    /// Routes `count` vectors of interrupt `index` into new eventfds.
    pub fn enable_irqs(&self, index: u32, count: u32) -> Result<Irqs> {
        let fds = (0..count)
            .map(|_| EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(io("create an eventfd")))
            .collect::<Result<Vec<_>>>()?;
        self.dev
            .enable_irq(index, fds.iter().collect())
            .map_err(vfio(format!("route {count} vectors of interrupt index {index} to eventfds")))?;
        Ok(Irqs { fds })
    }

    /// Stops interrupt `index`.
    pub fn disable_irqs(&self, index: u32) -> Result<()> {
        self.dev.disable_irq(index).map_err(vfio(format!("disable interrupt index {index}")))
    }

    /// Anonymous memory of `len` bytes mapped for the device at `iova`.
    pub fn dma_buffer(&self, iova: u64, len: usize) -> Result<DmaBuffer<'_>> {
        let mem = Mmio::anonymous(len).map_err(io("allocate DMA memory"))?;
        let size = mem.size() as usize;
        // SAFETY: the memory is ours, lives until the mapping is undone
        // (DmaBuffer's drop unmaps before munmap), and is only touched
        // through Mmio's volatile accessors, never through references.
        unsafe { self.container.vfio_dma_map(iova, size, mem.as_ptr()) }
            .map_err(vfio(format!("map {size:#x} bytes at IOVA {iova:#x}")))?;
        Ok(DmaBuffer { mem, iova, mapped: true, container: &self.container })
    }
}

/// Memory the device reaches at an IOVA.
pub struct DmaBuffer<'d> {
    mem: Mmio,
    iova: u64,
    mapped: bool,
    container: &'d VfioContainer,
}

impl DmaBuffer<'_> {
    /// Its IOVA.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// The memory, as the program sees it.
    pub fn mem(&self) -> &Mmio {
        &self.mem
    }

    /// Removes the IOMMU mapping; the memory stays readable here, so a
    /// test can see that a later DMA to the IOVA did not reach it.
    pub fn unmap_iova(&mut self) -> Result<()> {
        if self.mapped {
            self.container
                .vfio_dma_unmap(self.iova, self.mem.size() as usize)
                .map_err(vfio(format!("unmap IOVA {:#x}", self.iova)))?;
            self.mapped = false;
        }
        Ok(())
    }
}

impl Drop for DmaBuffer<'_> {
    fn drop(&mut self) {
        // The device must not reach the pages once they go back to the kernel.
        if self.mapped {
            let _ = self.container.vfio_dma_unmap(self.iova, self.mem.size() as usize);
        }
    }
}

/// The eventfds of one interrupt index, one per vector.
pub struct Irqs {
    fds: Vec<EventFd>,
}

impl Irqs {
    /// Interrupts on `vector` since the last look, without waiting.
    pub fn take(&self, vector: u32) -> Result<u64> {
        let fd = self.fd(vector)?;
        match fd.read() {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(io(format!("read the eventfd of vector {vector}"))(e)),
        }
    }

    /// Waits up to `timeout` for interrupts on `vector`; returns how many
    /// arrived (the eventfd's count) and clears them.
    pub fn wait(&self, vector: u32, timeout: Duration) -> Result<u64> {
        let fd = self.fd(vector)?;
        let until = Instant::now() + timeout;
        loop {
            let n = self.take(vector)?;
            if n > 0 {
                return Ok(n);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(VfioError::Timeout { vector, timeout });
            }
            let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, ms) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(io("poll an eventfd")(e));
                }
            }
        }
    }

    fn fd(&self, vector: u32) -> Result<&EventFd> {
        self.fds.get(vector as usize).ok_or(VfioError::Region {
            index: vector,
            problem: format!("vector {vector} was not routed ({} were)", self.fds.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(flags: u32, size: u64, sparse: Option<Vec<(u64, u64)>>) -> Region {
        Region { index: 0, size, offset: 0, flags, sparse }
    }

    #[test]
    fn decides_what_may_be_mapped() {
        let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        let m = rw | VFIO_REGION_INFO_FLAG_MMAP;
        assert_eq!(region(m, 0x10_0000, None).mappable_prefix(0x1000), Some(0x10_0000));
        assert_eq!(region(rw, 0x10_0000, None).mappable_prefix(0x1000), None);
        assert_eq!(region(m, 0x100, None).mappable_prefix(0x200), None);
        // MSI-X table carved out: the registers before it stay mappable.
        let sparse = Some(vec![(0, 0x2000), (0x3000, 0x1000)]);
        assert_eq!(region(m, 0x4000, sparse.clone()).mappable_prefix(0x1000), Some(0x2000));
        assert_eq!(region(m, 0x4000, sparse).mappable_prefix(0x2800), None);
        assert_eq!(region(m, 0x4000, Some(vec![(0x1000, 0x3000)])).mappable_prefix(0x10), None);
        assert!(region(rw, 1, None).read_write());
        assert!(!region(VFIO_REGION_INFO_FLAG_READ, 1, None).read_write());
    }
}
