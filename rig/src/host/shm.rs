//! The host's view of the ivshmem region: the backing file mapped with
//! vm-memory, read and written at region offsets (the guest's BAR2 offsets).
//! A device's backing image (an NVMe namespace) is mapped the same way.

use nix::fcntl::posix_fallocate;
use rig_abi::ShmHeader;
use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap};

/// Errors of the host-side inspector.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// Creating or opening the backing file failed.
    #[error("cannot open the ivshmem backing file {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    /// The backing file's blocks could not be allocated: a sparse file on
    /// a full filesystem would kill the rig with SIGBUS at the first write.
    #[error("no room for the {} MiB ivshmem backing file {}: {source}; the rig makes it under TMPDIR ({}): free space there or point TMPDIR at a filesystem with room", size >> 20, path.display(), tmpdir.display())]
    NoSpace { path: PathBuf, size: u64, tmpdir: PathBuf, source: std::io::Error },
    /// ivshmem wants a power-of-two size of at least 1 MiB for the module.
    #[error("ivshmem size {0:#x} is not a power of two of at least 1 MiB: pick e.g. 4M")]
    BadSize(u64),
    /// A backing image is whole pages.
    #[error("image size {0:#x} is not a positive multiple of 4 KiB")]
    BadImageSize(u64),
    /// vm-memory refused the mapping.
    #[error("cannot map {path}: {detail}")]
    Map { path: PathBuf, detail: String },
    /// An access beyond the region.
    #[error("access of {len:#x} bytes at {offset:#x} is outside the {size:#x}-byte region")]
    OutOfBounds { offset: u64, len: u64, size: u64 },
    /// vm-memory failed an access inside the region.
    #[error("access at {offset:#x} failed: {detail}")]
    Access { offset: u64, detail: String },
}

/// The ivshmem backing file, mapped MAP_SHARED into the rig.
pub struct SharedMemory {
    path: PathBuf,
    size: u64,
    mem: GuestMemoryMmap<()>,
}

impl SharedMemory {
    /// Creates (zero-filled) or reuses the backing file with `size` bytes,
    /// readable by the user only, with every block allocated, and maps it.
    pub fn create(path: &Path, size: u64) -> Result<SharedMemory, ShmError> {
        if !size.is_power_of_two() || size < rig_abi::SHM_MIN_SIZE {
            return Err(ShmError::BadSize(size));
        }
        let file = open_private_allocated(path, size)?;
        Self::map(path, file, size)
    }

    /// Creates a device's backing image of `size` bytes (zeros, private,
    /// allocated) and maps it: what QEMU writes into it is seen here, and
    /// the reverse.
    pub fn create_image(path: &Path, size: u64) -> Result<SharedMemory, ShmError> {
        if size == 0 || !size.is_multiple_of(4096) {
            return Err(ShmError::BadImageSize(size));
        }
        let file = open_private_allocated(path, size)?;
        Self::map(path, file, size)
    }

    fn map(path: &Path, file: File, size: u64) -> Result<SharedMemory, ShmError> {
        let len = usize::try_from(size).map_err(|_| ShmError::BadSize(size))?;
        let ranges = [(GuestAddress(0), len, Some(FileOffset::new(file, 0)))];
        let mem = GuestMemoryMmap::<()>::from_ranges_with_files(&ranges)
            .map_err(|e| ShmError::Map { path: path.to_path_buf(), detail: e.to_string() })?;
        Ok(SharedMemory { path: path.to_path_buf(), size, mem })
    }

    /// The mapping, for protocol code written against vm-memory's `Bytes`.
    pub fn memory(&self) -> &GuestMemoryMmap<()> {
        &self.mem
    }

    /// Path of the backing file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Region size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn check(&self, offset: u64, len: u64) -> Result<(), ShmError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(ShmError::OutOfBounds { offset, len, size: self.size }),
        }
    }

    /// Copies `len` bytes at `offset` out of the region.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ShmError> {
        self.check(offset, len)?;
        let mut buf = vec![0u8; len as usize];
        self.mem
            .read_slice(&mut buf, GuestAddress(offset))
            .map_err(|e| ShmError::Access { offset, detail: e.to_string() })?;
        Ok(buf)
    }

    /// Writes `data` at `offset`.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), ShmError> {
        self.check(offset, data.len() as u64)?;
        self.mem.write_slice(data, GuestAddress(offset)).map_err(|e| ShmError::Access { offset, detail: e.to_string() })
    }

    /// The header the module writes at probe time.
    pub fn header(&self) -> Result<ShmHeader, ShmError> {
        let offset = rig_abi::SHM_HEADER_OFFSET;
        self.check(offset, std::mem::size_of::<ShmHeader>() as u64)?;
        self.mem.read_obj(GuestAddress(offset)).map_err(|e| ShmError::Access { offset, detail: e.to_string() })
    }

    /// Writes the seeded pattern over `[offset, offset+len)`.
    pub fn fill_pattern(&self, offset: u64, len: u64, seed: u32) -> Result<(), ShmError> {
        self.check(offset, len)?;
        let mut buf = vec![0u8; len as usize];
        rig_abi::fill_pattern(seed, 0, &mut buf);
        self.write(offset, &buf)
    }

    /// Checks the seeded pattern; `Ok(None)` when it matches, else a description.
    pub fn verify_pattern(&self, offset: u64, len: u64, seed: u32) -> Result<Option<String>, ShmError> {
        let data = self.read(offset, len)?;
        Ok(rig_abi::first_mismatch(seed, 0, &data).map(|i| {
            format!(
                "byte at {:#x} is {:#04x}, expected {:#04x} (seed {seed}); {} of {len:#x} bytes differ",
                offset + i as u64,
                data[i],
                rig_abi::pattern_byte(seed, i as u64),
                data.iter().enumerate().filter(|(j, &b)| b != rig_abi::pattern_byte(seed, *j as u64)).count()
            )
        }))
    }
}

/// `path` opened (created if missing) for reading and writing, 0600
/// whatever the umask (a guest's memory or disk: nobody else reads it),
/// `size` bytes long with every block allocated: a sparse file on a full
/// filesystem would kill the rig or QEMU with SIGBUS at the first write.
fn open_private_allocated(path: &Path, size: u64) -> Result<File, ShmError> {
    let open_err = |source| ShmError::Open { path: path.to_path_buf(), source };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(open_err)?;
    file.set_permissions(Permissions::from_mode(0o600)).map_err(open_err)?;
    file.set_len(size).map_err(open_err)?;
    let len = i64::try_from(size).map_err(|_| ShmError::BadSize(size))?;
    posix_fallocate(&file, 0, len).map_err(|errno| ShmError::NoSpace {
        path: path.to_path_buf(),
        size,
        tmpdir: std::env::temp_dir(),
        source: errno.into(),
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_reach_the_file_and_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shm");
        let shm = SharedMemory::create(&path, 1 << 20).expect("map");
        shm.fill_pattern(0x1000, 256, 42).expect("fill");
        assert_eq!(shm.verify_pattern(0x1000, 256, 42).expect("verify"), None);
        assert!(shm.verify_pattern(0x1000, 256, 43).expect("verify").is_some());
        // The file itself holds the bytes (what QEMU shares with the guest).
        let mut f = File::open(&path).expect("open");
        f.seek(SeekFrom::Start(0x1000)).expect("seek");
        let mut b = [0u8; 4];
        f.read_exact(&mut b).expect("read");
        assert_eq!(b[0], rig_abi::pattern_byte(42, 0));
    }

    #[test]
    fn the_backing_file_is_private_and_allocated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shm");
        // A file left over with a wider mode is narrowed too.
        std::fs::write(&path, b"").expect("write");
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        let shm = SharedMemory::create(&path, 1 << 20).expect("map");
        let md = std::fs::metadata(shm.path()).expect("stat");
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        // Not sparse: every block is there before the guest or the host writes.
        assert!(md.blocks() * 512 >= 1 << 20, "{} blocks", md.blocks());
    }

    #[test]
    fn header_reads_what_a_guest_wrote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shm = SharedMemory::create(&dir.path().join("shm"), 1 << 20).expect("map");
        let mut raw = vec![0u8; std::mem::size_of::<ShmHeader>()];
        raw[0..4].copy_from_slice(&rig_abi::SHM_MAGIC.to_le_bytes());
        raw[4..8].copy_from_slice(&1u32.to_le_bytes());
        raw[32..38].copy_from_slice(b"6.1.0\0");
        shm.write(0, &raw).expect("write");
        let h = shm.header().expect("header");
        assert_eq!(h.magic, rig_abi::SHM_MAGIC);
        assert_eq!(h.release(), "6.1.0");
    }

    #[test]
    fn images_take_any_page_multiple() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = SharedMemory::create_image(&dir.path().join("nvme0.img"), 3 << 12).expect("image");
        assert_eq!(img.size(), 3 << 12);
        img.fill_pattern(0x1000, 0x1000, 9).expect("fill");
        assert_eq!(img.verify_pattern(0x1000, 0x1000, 9).expect("verify"), None);
        assert!(matches!(SharedMemory::create_image(&dir.path().join("x"), 100), Err(ShmError::BadImageSize(100))));
        assert!(matches!(SharedMemory::create_image(&dir.path().join("x"), 0), Err(ShmError::BadImageSize(0))));
    }

    #[test]
    fn rejects_bad_sizes_and_bounds() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(SharedMemory::create(&dir.path().join("a"), 3 << 20), Err(ShmError::BadSize(_))));
        let shm = SharedMemory::create(&dir.path().join("b"), 1 << 20).expect("map");
        assert!(matches!(shm.read((1 << 20) - 4, 8), Err(ShmError::OutOfBounds { .. })));
        assert!(matches!(shm.read(u64::MAX, 2), Err(ShmError::OutOfBounds { .. })));
    }
}
