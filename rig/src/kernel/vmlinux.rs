//! The uncompressed kernel inside a bzImage, for QEMU's PVH entry: QEMU
//! loads the ELF and jumps to its 32-bit PVH entry point, so the guest
//! skips the real-mode setup and the decompressor (a quarter of a second
//! and more under TCG). Extracted once per bzImage and kept beside the
//! fetched kernel; a kernel without the PVH note (`CONFIG_PVH` unset), or
//! with a compression the rig does not read, boots from its bzImage.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why no vmlinux came out of a bzImage.
#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    /// Reading the bzImage or writing the vmlinux failed.
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    /// Not a bzImage this code understands.
    #[error("not a bzImage with a payload (boot protocol 2.08 or later): {0}")]
    NotBzImage(String),
    /// A compression the rig does not decompress.
    #[error("the kernel is compressed with {0}, which the rig does not decompress")]
    Unsupported(&'static str),
    /// The payload did not decompress to what its trailer says.
    #[error("the {format} payload does not decompress: {detail}")]
    Corrupt { format: &'static str, detail: String },
    /// The kernel has no PVH entry point.
    #[error("the kernel has no PVH entry point (the ELF note XEN_ELFNOTE_PHYS32_ENTRY; CONFIG_PVH unset)")]
    NoPvh,
}

/// What QEMU boots with `-kernel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootImage {
    /// The uncompressed ELF, entered through PVH.
    Pvh(PathBuf),
    /// The bzImage itself, and why not the vmlinux.
    BzImage { path: PathBuf, why: String },
}

impl BootImage {
    /// The file to pass to `-kernel`.
    pub fn path(&self) -> &Path {
        match self {
            BootImage::Pvh(p) => p,
            BootImage::BzImage { path, .. } => path,
        }
    }
}

/// The compressions of Debian's kernels (and the other ones, to name them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// LZ4's legacy frames (`lz4 -l`), as the kernel's build makes them.
    Lz4Legacy,
    Zstd,
    Xz,
    Gzip,
    /// bzip2, LZMA or LZO: possible in a kernel, not in Debian's.
    Other(&'static str),
}

impl Compression {
    /// Recognises the payload by its magic.
    pub fn of(payload: &[u8]) -> Option<Compression> {
        let m = |magic: &[u8]| payload.starts_with(magic);
        Some(if m(&[0x02, 0x21, 0x4c, 0x18]) {
            Compression::Lz4Legacy
        } else if m(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if m(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if m(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if m(b"BZh") {
            Compression::Other("bzip2")
        } else if m(&[0x5d, 0x00, 0x00]) {
            Compression::Other("LZMA")
        } else if m(&[0x89, b'L', b'Z', b'O']) {
            Compression::Other("LZO")
        } else {
            return None;
        })
    }

    fn name(self) -> &'static str {
        match self {
            Compression::Lz4Legacy => "LZ4",
            Compression::Zstd => "ZSTD",
            Compression::Xz => "XZ",
            Compression::Gzip => "gzip",
            Compression::Other(n) => n,
        }
    }
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The compressed kernel of a bzImage (boot protocol: `setup_sects` at
/// 0x1f1, `HdrS` at 0x202, the version at 0x206, `payload_offset` and
/// `payload_length` at 0x248 and 0x24c, from the protected-mode code).
pub fn payload(bz: &[u8]) -> Result<&[u8], VmlinuxError> {
    let bad = |why: &str| VmlinuxError::NotBzImage(why.to_owned());
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        return Err(bad("no HdrS signature"));
    }
    let version = u16::from_le_bytes([bz[0x206], bz[0x207]]);
    if version < 0x0208 {
        return Err(bad(&format!("boot protocol {}.{:02}", version >> 8, version & 0xff)));
    }
    let setup_sects = match bz.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err(bad("truncated header")),
    };
    let (offset, length) = match (le32(bz, 0x248), le32(bz, 0x24c)) {
        (Some(o), Some(l)) => (o as usize, l as usize),
        _ => return Err(bad("truncated header")),
    };
    let start = (setup_sects + 1) * 512 + offset;
    start.checked_add(length).and_then(|end| bz.get(start..end)).ok_or_else(|| bad("payload beyond the file"))
}

/// Decompresses a kernel payload. Its last four bytes are the
/// uncompressed size (the build appends it; gzip's own trailer is the same).
pub fn decompress(payload: &[u8]) -> Result<Vec<u8>, VmlinuxError> {
    let format = Compression::of(payload).ok_or(VmlinuxError::NotBzImage("unknown payload compression".into()))?;
    let corrupt = |detail: String| VmlinuxError::Corrupt { format: format.name(), detail };
    let size =
        payload.len().checked_sub(4).and_then(|at| le32(payload, at)).ok_or_else(|| corrupt("too short".into()))?;
    let size = size as usize;
    let body = &payload[..payload.len() - 4];
    let out = match format {
        Compression::Lz4Legacy => lz4_legacy(body, size).map_err(corrupt)?,
        Compression::Zstd => zstd::bulk::decompress(body, size).map_err(|e| corrupt(e.to_string()))?,
        Compression::Xz => {
            let mut out = Vec::with_capacity(size);
            xz2::read::XzDecoder::new(body).read_to_end(&mut out).map_err(|e| corrupt(e.to_string()))?;
            out
        }
        Compression::Gzip => {
            let mut out = Vec::with_capacity(size);
            flate2::read::GzDecoder::new(payload).read_to_end(&mut out).map_err(|e| corrupt(e.to_string()))?;
            out
        }
        Compression::Other(name) => return Err(VmlinuxError::Unsupported(name)),
    };
    if out.len() != size {
        return Err(corrupt(format!("{} bytes, the trailer says {size}", out.len())));
    }
    Ok(out)
}

/// LZ4 legacy frames: the magic, then blocks of at most 8 MiB output,
/// each behind its compressed length; a repeated magic starts a new frame.
fn lz4_legacy(body: &[u8], size: usize) -> Result<Vec<u8>, String> {
    const MAGIC: u32 = 0x184c_2102;
    const BLOCK: usize = 8 << 20;
    let mut out = vec![0u8; size];
    let (mut at, mut filled) = (4, 0);
    while at < body.len() {
        let len = le32(body, at).ok_or("truncated block length")? as usize;
        at += 4;
        if len == MAGIC as usize {
            continue;
        }
        let block = body.get(at..at + len).ok_or("block beyond the payload")?;
        let room = out.len() - filled;
        let dest = &mut out[filled..filled + room.min(BLOCK)];
        filled += lz4_flex::block::decompress_into(block, dest).map_err(|e| e.to_string())?;
        at += len;
    }
    out.truncate(filled);
    Ok(out)
}

/// Whether an ELF64 kernel has the PVH entry note (name `Xen`, type
/// XEN_ELFNOTE_PHYS32_ENTRY) in a PT_NOTE segment, where QEMU looks.
pub fn has_pvh_note(elf: &[u8]) -> bool {
    const PT_NOTE: u32 = 4;
    const PHYS32_ENTRY: u32 = 18;
    if elf.get(..5) != Some(b"\x7fELF\x02") || elf.get(5) != Some(&1) {
        return false;
    }
    let u64_at = |at: usize| elf.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])));
    let u16_at = |at: usize| elf.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    for i in 0..usize::from(phnum) {
        let ph = phoff as usize + i * usize::from(phentsize);
        if le32(elf, ph) != Some(PT_NOTE) {
            continue;
        }
        let (Some(off), Some(size)) = (u64_at(ph + 8), u64_at(ph + 32)) else { continue };
        let Some(notes) = elf.get(off as usize..(off + size) as usize) else { continue };
        let mut at = 0;
        while let (Some(namesz), Some(descsz), Some(kind)) = (le32(notes, at), le32(notes, at + 4), le32(notes, at + 8))
        {
            let name_at = at + 12;
            let pad = |n: u32| (n as usize + 3) & !3;
            if kind == PHYS32_ENTRY && notes.get(name_at..name_at + 4) == Some(b"Xen\0") {
                return true;
            }
            at = name_at + pad(namesz) + pad(descsz);
        }
    }
    false
}

/// Where a bzImage's vmlinux is kept, and what it was made from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Source {
    bzimage: PathBuf,
    len: u64,
    modified_ns: u128,
}

/// The stamp beside a kept vmlinux: its source, and its own size, so a
/// truncated file is made again rather than booted (the cache checks what
/// it reuses).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    source: Source,
    vmlinux_len: u64,
}

impl Source {
    fn of(bzimage: &Path) -> Result<Source, VmlinuxError> {
        let md = std::fs::metadata(bzimage).map_err(|source| VmlinuxError::Io {
            what: "cannot read",
            path: bzimage.to_path_buf(),
            source,
        })?;
        let modified_ns =
            md.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        Ok(Source { bzimage: bzimage.to_path_buf(), len: md.len(), modified_ns })
    }
}

/// The vmlinux of `bzimage`, kept in `dir` (made the first time; `made`
/// says whether it was). `dir` is the kernel's own folder of the cache, so
/// the vmlinux goes when the kernel goes.
pub fn extract_cached(bzimage: &Path, dir: &Path) -> Result<(PathBuf, bool), VmlinuxError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| VmlinuxError::Io { what, path, source }
    };
    let source = Source::of(bzimage)?;
    let (elf_path, stamp) = (dir.join("vmlinux"), dir.join("vmlinux.json"));
    let known: Option<Stamp> = std::fs::read_to_string(&stamp).ok().and_then(|t| serde_json::from_str(&t).ok());
    let kept_len = std::fs::metadata(&elf_path).ok().filter(|m| m.is_file()).map(|m| m.len());
    if known.as_ref().is_some_and(|k| k.source == source && Some(k.vmlinux_len) == kept_len) {
        return Ok((elf_path, false));
    }
    let bz = std::fs::read(bzimage).map_err(io("cannot read", bzimage))?;
    let elf = decompress(payload(&bz)?)?;
    if !has_pvh_note(&elf) {
        return Err(VmlinuxError::NoPvh);
    }
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    // Another rig may extract the same kernel: each writes its own file
    // and renames it into place, whole.
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io("cannot create a file in", dir))?;
    std::fs::write(tmp.path(), &elf).map_err(io("cannot write", tmp.path()))?;
    tmp.persist(&elf_path).map_err(|e| VmlinuxError::Io {
        what: "cannot write",
        path: elf_path.clone(),
        source: e.error,
    })?;
    let json = serde_json::to_string(&Stamp { source, vmlinux_len: elf.len() as u64 }).unwrap_or_default();
    std::fs::write(&stamp, json + "\n").map_err(io("cannot write", &stamp))?;
    Ok((elf_path, true))
}

/// The image to boot: the cached vmlinux when the kernel has a PVH entry,
/// else the bzImage, with the reason.
pub fn boot_image(bzimage: &Path, dir: &Path) -> BootImage {
    match extract_cached(bzimage, dir) {
        Ok((path, _)) => BootImage::Pvh(path),
        Err(e) => BootImage::BzImage { path: bzimage.to_path_buf(), why: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with one PT_NOTE segment holding `notes`.
    fn elf_with_notes(notes: &[(&[u8], u32)]) -> Vec<u8> {
        let mut note_bytes = vec![];
        for (name, kind) in notes {
            let pad = |v: &mut Vec<u8>| v.resize((v.len() + 3) & !3, 0);
            note_bytes.extend((name.len() as u32).to_le_bytes());
            note_bytes.extend(4u32.to_le_bytes());
            note_bytes.extend(kind.to_le_bytes());
            note_bytes.extend(*name);
            pad(&mut note_bytes);
            note_bytes.extend(0x0100_0000u32.to_le_bytes());
        }
        let mut e = vec![0u8; 0x40 + 56];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let ph = 0x40;
        e[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes());
        e[ph + 8..ph + 16].copy_from_slice(&((0x40 + 56) as u64).to_le_bytes());
        e[ph + 32..ph + 40].copy_from_slice(&(note_bytes.len() as u64).to_le_bytes());
        e.extend(note_bytes);
        e
    }

    #[test]
    fn finds_the_pvh_note_only() {
        assert!(has_pvh_note(&elf_with_notes(&[(b"Xen\0", 6), (b"Xen\0", 18)])));
        assert!(!has_pvh_note(&elf_with_notes(&[(b"Xen\0", 6), (b"GNU\0", 18)])));
        assert!(!has_pvh_note(b"\x7fELF\x01\x01"));
        assert!(!has_pvh_note(b"MZ"));
    }

    /// A bzImage header around `payload`, protocol 2.15, one setup sector.
    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[0x1f1] = 1;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        b[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend([0u8; 16]);
        b.extend(payload);
        b.extend(b"trailing setup data");
        b
    }

    fn with_size(mut compressed: Vec<u8>, size: usize) -> Vec<u8> {
        compressed.extend((size as u32).to_le_bytes());
        compressed
    }

    fn sample() -> Vec<u8> {
        elf_with_notes(&[(b"Xen\0", 18)]).into_iter().cycle().take(100_000).collect()
    }

    #[test]
    fn reads_each_compression_of_debians_kernels() {
        let data = sample();
        let mut lz4 = vec![0x02, 0x21, 0x4c, 0x18];
        // Two blocks, as the kernel's 8 MiB blocks would be, and a repeated magic.
        for (i, half) in data.chunks(60_000).enumerate() {
            if i == 1 {
                lz4.extend([0x02, 0x21, 0x4c, 0x18]);
            }
            let block = lz4_flex::block::compress(half);
            lz4.extend((block.len() as u32).to_le_bytes());
            lz4.extend(block);
        }
        let zst = zstd::bulk::compress(&data, 19).expect("zstd");
        let mut xz = vec![];
        xz2::read::XzEncoder::new(&data[..], 6).read_to_end(&mut xz).expect("xz");
        let mut gz = vec![];
        flate2::read::GzEncoder::new(&data[..], flate2::Compression::default()).read_to_end(&mut gz).expect("gz");
        for (name, payload) in [
            ("lz4", with_size(lz4, data.len())),
            ("zstd", with_size(zst, data.len())),
            ("xz", with_size(xz, data.len())),
            ("gzip", gz),
        ] {
            let bz = bzimage(&payload);
            let found = payload_of(&bz);
            assert_eq!(found, &payload[..], "{name}");
            assert_eq!(decompress(found).expect(name), data, "{name}");
        }
    }

    fn payload_of(bz: &[u8]) -> &[u8] {
        payload(bz).expect("payload")
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(payload(b"MZ not a kernel"), Err(VmlinuxError::NotBzImage(_))));
        let mut old = bzimage(b"x");
        old[0x206..0x208].copy_from_slice(&0x0204u16.to_le_bytes());
        assert!(matches!(payload(&old), Err(VmlinuxError::NotBzImage(m)) if m.contains("2.04")));
        assert!(matches!(decompress(b"BZh91AY&SY...."), Err(VmlinuxError::Unsupported("bzip2"))));
        let data = sample();
        let short = with_size(zstd::bulk::compress(&data, 3).expect("zstd"), data.len() + 1);
        assert!(matches!(decompress(&short), Err(VmlinuxError::Corrupt { .. })));
    }

    #[test]
    fn extracts_once_and_falls_back_without_pvh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = sample();
        let bz_path = dir.path().join("vmlinuz");
        std::fs::write(&bz_path, bzimage(&with_size(zstd::bulk::compress(&data, 3).expect("zstd"), data.len())))
            .expect("write");
        let cache = dir.path().join("kernel");
        let (elf, made) = extract_cached(&bz_path, &cache).expect("extract");
        assert!(made);
        assert_eq!(std::fs::read(&elf).expect("read"), data);
        assert_eq!(extract_cached(&bz_path, &cache).expect("cached"), (elf.clone(), false));
        // A truncated vmlinux is made again, not booted.
        std::fs::write(&elf, &data[..100]).expect("truncate");
        assert_eq!(extract_cached(&bz_path, &cache).expect("again"), (elf.clone(), true));
        assert_eq!(std::fs::read(&elf).expect("read"), data);
        assert_eq!(boot_image(&bz_path, &cache), BootImage::Pvh(elf));
        // No PVH note: the bzImage, and why.
        let plain = vec![7u8; 50_000];
        std::fs::write(&bz_path, bzimage(&with_size(zstd::bulk::compress(&plain, 3).expect("zstd"), plain.len())))
            .expect("write");
        match boot_image(&bz_path, &dir.path().join("other")) {
            BootImage::BzImage { path, why } => assert!(path == bz_path && why.contains("PVH"), "{why}"),
            other => panic!("expected the bzImage, got {other:?}"),
        }
    }
}
