//! What the fuzzer aims at: every file the reference module makes (its
//! device nodes and /proc/rig_kmod), the ioctl numbers of its uapi header,
//! and what the guest learns at the start (where BAR2 and the netlink
//! pages are, the PCI address to unbind).

use rig_abi as abi;

/// A file of the module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Shm,
    Mem,
    Kmalloc,
    Vmalloc,
    VmallocUser,
    Fault,
    Rw,
    Ioctl,
    Reserved,
    Pool,
    Doorbell,
    ProcRegions,
    ProcStats,
    ProcKfile,
}

impl Target {
    /// Every target, in slot order.
    pub const ALL: [Target; 14] = [
        Target::Shm,
        Target::Mem,
        Target::Kmalloc,
        Target::Vmalloc,
        Target::VmallocUser,
        Target::Fault,
        Target::Rw,
        Target::Ioctl,
        Target::Reserved,
        Target::Pool,
        Target::Doorbell,
        Target::ProcRegions,
        Target::ProcStats,
        Target::ProcKfile,
    ];

    /// The device nodes: [`Target::ALL`] before the proc files.
    pub const DEVICES: &'static [Target] = Target::ALL.split_at(11).0;

    /// The nodes with an mmap() handler.
    pub const MAPPABLE: [Target; 8] = [
        Target::Shm,
        Target::Mem,
        Target::Kmalloc,
        Target::Vmalloc,
        Target::VmallocUser,
        Target::Fault,
        Target::Reserved,
        Target::Pool,
    ];

    /// The files with a read() handler.
    pub const READABLE: [Target; 8] = [
        Target::Rw,
        Target::Kmalloc,
        Target::Vmalloc,
        Target::VmallocUser,
        Target::Reserved,
        Target::ProcRegions,
        Target::ProcStats,
        Target::ProcKfile,
    ];

    /// The /proc files.
    pub const PROC: [Target; 3] = [Target::ProcRegions, Target::ProcStats, Target::ProcKfile];

    /// Position in [`Target::ALL`].
    pub fn index(self) -> usize {
        Target::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }

    /// Where the file is.
    pub fn path(self) -> String {
        let dev = |n: &str| format!("/dev/{n}");
        let proc = |n: &str| format!("/proc/{}/{n}", abi::PROC_DIR);
        match self {
            Target::Shm => dev(abi::SHM_DEV_NAME),
            Target::Mem => dev(abi::dev::MEM),
            Target::Kmalloc => dev(abi::dev::KMALLOC),
            Target::Vmalloc => dev(abi::dev::VMALLOC),
            Target::VmallocUser => dev(abi::dev::VMALLOC_USER),
            Target::Fault => dev(abi::dev::FAULT),
            Target::Rw => dev(abi::dev::RW),
            Target::Ioctl => dev(abi::dev::IOCTL),
            Target::Reserved => dev(abi::dev::RESERVED),
            Target::Pool => dev(abi::dev::POOL),
            Target::Doorbell => dev(abi::dev::DOORBELL),
            Target::ProcRegions => proc("regions"),
            Target::ProcStats => proc("stats"),
            Target::ProcKfile => proc("kfile"),
        }
    }
}

/// What the guest found out before fuzzing; zero where it could not.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// BAR2 bus address and length (RIG_IOC_SHM_INFO).
    pub shm_phys: u64,
    pub shm_size: u64,
    /// The netlink pages' physical address (the netlink answer).
    pub nl_phys: u64,
    /// The memory reserved at boot (RIG_IOC_REGION_INFO of rig_reserved).
    pub reserved_size: u64,
    /// The PCI address of the bound ivshmem device, for unbind and bind.
    pub bdf: Option<String>,
    /// Doorbell vectors (0: plain ivshmem).
    pub vectors: u32,
    /// The module's kfile_path parameter.
    pub kfile_path: Option<String>,
}

impl Env {
    /// The size a mapping of `t` can cover (for lengths at its edges).
    pub fn map_size(&self, t: Target) -> u64 {
        match t {
            Target::Shm => self.shm_size.max(abi::SHM_MIN_SIZE),
            Target::Mem => abi::NL_PAGES_SIZE,
            Target::Kmalloc => abi::KMALLOC_SIZE,
            Target::Vmalloc => abi::VMALLOC_SIZE,
            Target::VmallocUser => abi::VMALLOC_USER_SIZE,
            Target::Fault => abi::FAULT_PAGES * 4096,
            Target::Reserved => self.reserved_size.max(4096),
            Target::Pool => u64::from(abi::POOL_NBUF * abi::POOL_BUF_SIZE),
            _ => 4096,
        }
    }

    /// Where a mapping of `t` starts in the file: rig_mem is addressed by
    /// physical address (the netlink pages or BAR2), the others from 0.
    pub fn map_base(&self, t: Target, bar: bool) -> u64 {
        match t {
            Target::Mem if bar => self.shm_phys,
            Target::Mem => self.nl_phys,
            _ => 0,
        }
    }
}

/// Every ioctl number of the uapi header, with the size of its argument.
pub const KNOWN_IOCTLS: [u32; 16] = [
    abi::IOC_SHM_INFO,
    abi::IOC_GET_CONFIG,
    abi::IOC_SET_CONFIG,
    abi::IOC_XCHG_CONFIG,
    abi::IOC_RESET_CONFIG,
    abi::IOC_REGION_INFO,
    abi::IOC_POOL_INFO,
    abi::IOC_POOL_START,
    abi::IOC_POOL_TAKE,
    abi::IOC_POOL_TAKE_WAIT,
    abi::IOC_POOL_RELEASE,
    abi::IOC_DB_INFO,
    abi::IOC_DB_RING,
    abi::IOC_DB_WAIT,
    // Generic ones every file meets: FIONREAD, FIONBIO.
    0x541b,
    0x5421,
];

/// The size an ioctl number encodes.
pub fn ioc_size(cmd: u32) -> usize {
    abi::ioc::decode(cmd).3 as usize
}

/// `cmd` with one of its fields changed: direction, size (by one, to 0,
/// to the largest), type or number (by one).
pub fn mutate_ioctl(cmd: u32, how: u32) -> u32 {
    const NR: u32 = 0xff;
    const TYPE: u32 = 0xff << 8;
    const SIZE: u32 = 0x3fff << 16;
    const DIR: u32 = 0x3 << 30;
    let size = (cmd & SIZE) >> 16;
    match how % 8 {
        0 => cmd ^ (1 << 30),
        1 => cmd ^ (1 << 31),
        2 => (cmd & !SIZE) | ((size.wrapping_add(1) & 0x3fff) << 16),
        3 => (cmd & !SIZE) | ((size.wrapping_sub(1) & 0x3fff) << 16),
        4 => cmd & !SIZE,
        5 => cmd | SIZE,
        6 => (cmd & !TYPE) | ((((cmd & TYPE) >> 8) + 1) & 0xff) << 8,
        _ => (cmd & !(NR | DIR)) | (((cmd & NR) + 1) & 0xff) | (cmd & DIR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_distinct_and_indexed() {
        for (i, t) in Target::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
        let paths: std::collections::BTreeSet<String> = Target::ALL.iter().map(|t| t.path()).collect();
        assert_eq!(paths.len(), Target::ALL.len());
        assert_eq!(Target::Shm.path(), "/dev/rig_shm");
        assert_eq!(Target::ProcKfile.path(), "/proc/rig_kmod/kfile");
        // DEVICES is ALL's head: every device node, then only proc files.
        assert!(Target::DEVICES.iter().all(|t| t.path().starts_with("/dev/")));
        assert!(Target::ALL[Target::DEVICES.len()..].iter().all(|t| t.path().starts_with("/proc/")));
    }

    #[test]
    fn every_mutation_changes_the_number() {
        for cmd in KNOWN_IOCTLS {
            for how in 0..8 {
                let m = mutate_ioctl(cmd, how);
                // Size 0 or the largest size may already be the number's own.
                let noop = how == 4 && ioc_size(cmd) == 0 || how == 5 && ioc_size(cmd) == 0x3fff;
                if !noop {
                    assert_ne!(m, cmd, "mutation {how} of {cmd:#x}");
                }
            }
        }
        assert_eq!(ioc_size(mutate_ioctl(abi::IOC_GET_CONFIG, 2)), 49);
        assert_eq!(ioc_size(mutate_ioctl(abi::IOC_GET_CONFIG, 3)), 47);
        assert_eq!(abi::ioc::decode(mutate_ioctl(abi::IOC_GET_CONFIG, 0)).0, abi::ioc::READ | abi::ioc::WRITE);
    }
}
