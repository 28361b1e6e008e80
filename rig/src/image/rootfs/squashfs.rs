//! The squashfs superblock, read to verify a cached root before a guest
//! mounts it: the magic, version 4, and a filesystem that fits in the file
//! (a copy cut short, or another file under the name, fails).

use std::io::Read;
use std::path::Path;

/// `hsqs`, little-endian.
const MAGIC: u32 = 0x7371_7368;
/// Bytes of the superblock the rig reads.
const SUPERBLOCK: usize = 96;

/// What the superblock says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Inodes in the filesystem.
    pub inodes: u32,
    /// Bytes the filesystem uses (the file is padded beyond).
    pub bytes_used: u64,
    /// The compressor (4: lz4 ... see squashfs's `*_COMPRESSION`).
    pub compression: u16,
}

/// Parses a superblock.
pub fn parse(b: &[u8]) -> Result<Superblock, String> {
    let u16_at = |o: usize| b.get(o..o + 2).map(|x| u16::from_le_bytes([x[0], x[1]]));
    let u32_at = |o: usize| b.get(o..o + 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
    let u64_at = |o: usize| b.get(o..o + 8).and_then(|x| <[u8; 8]>::try_from(x).ok()).map(u64::from_le_bytes);
    if u32_at(0) != Some(MAGIC) {
        return Err("no squashfs magic".into());
    }
    match u16_at(28) {
        Some(4) => {}
        v => return Err(format!("squashfs version {v:?}, not 4")),
    }
    let (Some(inodes), Some(compression), Some(bytes_used)) = (u32_at(4), u16_at(20), u64_at(40)) else {
        return Err("superblock cut short".into());
    };
    Ok(Superblock { inodes, bytes_used, compression })
}

/// Reads and checks the superblock of `path`: its filesystem must fit in
/// the file, which must be `len` bytes.
pub fn verify(path: &Path, len: u64) -> Result<Superblock, String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let actual = f.metadata().map_err(|e| e.to_string())?.len();
    if actual != len {
        return Err(format!("{actual} bytes, the stamp says {len}"));
    }
    let mut b = [0u8; SUPERBLOCK];
    f.read_exact(&mut b).map_err(|e| e.to_string())?;
    let sb = parse(&b)?;
    if sb.bytes_used > actual || sb.inodes == 0 {
        return Err(format!("the filesystem claims {} bytes in a {actual}-byte file", sb.bytes_used));
    }
    Ok(sb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock(bytes_used: u64) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&1234u32.to_le_bytes());
        b[20..22].copy_from_slice(&5u16.to_le_bytes());
        b[28..30].copy_from_slice(&4u16.to_le_bytes());
        b[40..48].copy_from_slice(&bytes_used.to_le_bytes());
        b
    }

    #[test]
    fn parses_and_verifies() {
        assert_eq!(parse(&superblock(4096)), Ok(Superblock { inodes: 1234, bytes_used: 4096, compression: 5 }));
        assert!(parse(&[0u8; 96]).is_err());
        let mut v3 = superblock(1);
        v3[28] = 3;
        assert!(parse(&v3).is_err_and(|e| e.contains("not 4")));
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("root.squashfs");
        let mut img = superblock(4000);
        img.resize(4096, 0);
        std::fs::write(&p, &img).expect("write");
        assert!(verify(&p, 4096).is_ok());
        assert!(verify(&p, 8192).is_err_and(|e| e.contains("stamp says 8192")));
        img.splice(0..SUPERBLOCK, superblock(9000));
        std::fs::write(&p, &img).expect("write");
        assert!(verify(&p, 4096).is_err_and(|e| e.contains("claims 9000")));
    }
}
