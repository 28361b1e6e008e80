//! PCI facts a userspace driver needs without any I/O: device addresses,
//! config-space offsets and the capability list.

use std::fmt;

/// Config-space offsets and bits (PCI Local Bus 3.0, 6.2).
pub mod cfg {
    /// Vendor ID (16 bits).
    pub const VENDOR: u64 = 0x00;
    /// Device ID (16 bits).
    pub const DEVICE: u64 = 0x02;
    /// Command register (16 bits).
    pub const COMMAND: u64 = 0x04;
    /// Status register (16 bits).
    pub const STATUS: u64 = 0x06;
    /// Base address register 0; BAR n is at `BAR0 + 4 * n`.
    pub const BAR0: u64 = 0x10;
    /// Pointer to the first capability.
    pub const CAP_PTR: u64 = 0x34;
    /// Command: memory space decoding.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// Command: the device may master the bus (DMA, and MSI writes).
    pub const COMMAND_MASTER: u16 = 1 << 2;
    /// Status: a capability list is present.
    pub const STATUS_CAP_LIST: u16 = 1 << 4;
    /// Capability ID of MSI.
    pub const CAP_MSI: u8 = 0x05;
    /// Capability ID of MSI-X.
    pub const CAP_MSIX: u8 = 0x11;
    /// MSI message control: enable.
    pub const MSI_ENABLE: u16 = 1 << 0;
    /// MSI-X message control: enable.
    pub const MSIX_ENABLE: u16 = 1 << 15;
    /// Size of the standard header (capabilities live after it).
    pub const HEADER_SIZE: usize = 0x40;
    /// Size of conventional config space.
    pub const SIZE: usize = 0x100;
}

/// Why a device address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a PCI address like 0000:00:03.0 (domain:bus:device.function, hex)")]
pub struct BdfError(pub String);

/// A PCI device address, `domain:bus:device.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bdf {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..32.
    pub device: u8,
    /// Function number, 0..8.
    pub function: u8,
}

impl Bdf {
    /// Parses `0000:00:03.0`; the domain may be left out (`00:03.0`), as
    /// lspci does.
    pub fn parse(s: &str) -> Result<Bdf, BdfError> {
        let err = || BdfError(s.to_string());
        let hex = |t: &str, max_len: usize| {
            if t.is_empty() || t.len() > max_len || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u32::from_str_radix(t, 16).map_err(|_| err())
        };
        let (head, function) = s.rsplit_once('.').ok_or_else(err)?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, dev] => (hex(d, 4)?, hex(b, 2)?, hex(dev, 2)?),
            [b, dev] => (0, hex(b, 2)?, hex(dev, 2)?),
            _ => return Err(err()),
        };
        let function = hex(function, 1)?;
        if device >= 32 || function >= 8 {
            return Err(err());
        }
        Ok(Bdf { domain: domain as u16, bus: bus as u8, device: device as u8, function: function as u8 })
    }

    /// `/sys/bus/pci/devices/<bdf>`.
    pub fn sysfs_path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/sys/bus/pci/devices/{self}"))
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.domain, self.bus, self.device, self.function)
    }
}

/// A little-endian 16-bit value at `off` of a config-space image.
pub fn le16(cfg: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*cfg.get(off)?, *cfg.get(off + 1)?]))
}

/// Offset of the first capability with `id` in a config-space image, walking
/// the list from 0x34; a list that loops or points into the header ends the
/// walk.
pub fn find_capability(cfg: &[u8], id: u8) -> Option<usize> {
    let status = le16(cfg, cfg::STATUS as usize)?;
    if status & cfg::STATUS_CAP_LIST == 0 {
        return None;
    }
    let mut at = usize::from(*cfg.get(cfg::CAP_PTR as usize)? & !3);
    // 48 capabilities of 4 bytes fill the space after the header.
    for _ in 0..48 {
        if at < cfg::HEADER_SIZE || at + 2 > cfg.len() {
            return None;
        }
        if cfg[at] == id {
            return Some(at);
        }
        at = usize::from(cfg[at + 1] & !3);
    }
    None
}

/// The bus address a memory BAR decodes, from its config registers (`hi` is
/// the next BAR, used only by a 64-bit BAR). None for an I/O BAR.
pub fn memory_bar_address(lo: u32, hi: u32) -> Option<u64> {
    if lo & 1 != 0 {
        return None;
    }
    let base = u64::from(lo & !0xf);
    match (lo >> 1) & 3 {
        0b10 => Some(base | (u64::from(hi) << 32)),
        _ => Some(base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_addresses() {
        let b = Bdf::parse("0000:00:03.0").expect("bdf");
        assert_eq!(b, Bdf { domain: 0, bus: 0, device: 3, function: 0 });
        assert_eq!(b.to_string(), "0000:00:03.0");
        assert_eq!(Bdf::parse("00:1f.7").expect("short").to_string(), "0000:00:1f.7");
        assert_eq!(Bdf::parse("abcd:ff:1F.7").expect("upper").to_string(), "abcd:ff:1f.7");
        assert_eq!(b.sysfs_path().to_str(), Some("/sys/bus/pci/devices/0000:00:03.0"));
        for bad in
            ["", "0000:00:03", "0000:00:20.0", "0000:00:03.8", "00000:00:03.0", "0:0:0:3.0", "zz:00.0", "00:+3.0"]
        {
            assert!(Bdf::parse(bad).is_err(), "{bad} parsed");
        }
    }

    fn image(caps: &[(usize, u8, u8)]) -> Vec<u8> {
        let mut c = vec![0u8; cfg::SIZE];
        c[cfg::STATUS as usize] = cfg::STATUS_CAP_LIST as u8;
        c[cfg::CAP_PTR as usize] = caps.first().map_or(0, |c| c.0 as u8);
        for &(at, id, next) in caps {
            c[at] = id;
            c[at + 1] = next;
        }
        c
    }

    #[test]
    fn walks_the_capability_list() {
        let c = image(&[(0x40, 0x01, 0x50), (0x50, cfg::CAP_MSI, 0x60), (0x60, cfg::CAP_MSIX, 0)]);
        assert_eq!(find_capability(&c, cfg::CAP_MSI), Some(0x50));
        assert_eq!(find_capability(&c, cfg::CAP_MSIX), Some(0x60));
        assert_eq!(find_capability(&c, 0x10), None);
        // A loop ends the walk.
        let looped = image(&[(0x40, 0x01, 0x50), (0x50, 0x09, 0x40)]);
        assert_eq!(find_capability(&looped, cfg::CAP_MSIX), None);
        // No list at all.
        let mut none = image(&[(0x40, cfg::CAP_MSI, 0)]);
        none[cfg::STATUS as usize] = 0;
        assert_eq!(find_capability(&none, cfg::CAP_MSI), None);
        // A truncated image.
        assert_eq!(find_capability(&c[..0x20], cfg::CAP_MSI), None);
    }

    #[test]
    fn decodes_memory_bars() {
        assert_eq!(memory_bar_address(0xfe00_0000, 0), Some(0xfe00_0000));
        // 64-bit prefetchable.
        assert_eq!(memory_bar_address(0xc000_000c, 0x1), Some(0x1_c000_0000));
        // A 32-bit BAR ignores the next register.
        assert_eq!(memory_bar_address(0xfe00_0008, 0x55), Some(0xfe00_0000));
        assert_eq!(memory_bar_address(0xc001, 0), None);
        assert_eq!(le16(&[1, 2], 0), Some(0x0201));
        assert_eq!(le16(&[1], 0), None);
    }
}
