//! The guest's initramfs: busybox, the guest programs, the modules and an
//! `/init` that mounts the pseudo filesystems, loads the modules, says it is
//! ready and hands the console to a shell. Written as a newc cpio with the
//! `cpio` crate, cached by a hash of everything that goes in.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors building the initramfs.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// An input file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Input { path: PathBuf, source: std::io::Error },
    /// A binary that must run without a libc in the guest is dynamic.
    #[error("{path} is dynamically linked, but the initramfs has no libc: {fix}")]
    NotStatic { path: PathBuf, fix: String },
    /// Writing the archive failed.
    #[error("cannot write the initramfs {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// One file to put into the guest.
#[derive(Clone, Debug)]
pub struct GuestFile {
    /// Absolute path in the guest, e.g. `/bin/rig-guest`.
    pub guest_path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// What goes into the initramfs.
#[derive(Clone, Debug, Default)]
pub struct InitramfsSpec {
    /// Files in the order they are written (directories are added as needed).
    pub files: Vec<GuestFile>,
}

/// Refuses an ELF executable that asks for a program interpreter.
pub fn check_static(path: &Path, data: &[u8], fix: &str) -> Result<(), InitramfsError> {
    if has_interpreter(data) {
        return Err(InitramfsError::NotStatic { path: path.to_path_buf(), fix: fix.to_string() });
    }
    Ok(())
}

/// True for a 64-bit ELF with a PT_INTERP program header.
fn has_interpreter(data: &[u8]) -> bool {
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at =
        |o: usize| data.get(o..o + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(|b| u64::from_le_bytes(b) as usize);
    if data.get(0..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == Some(3))
}

/// Reads a host file for the guest.
pub fn read_input(path: &Path) -> Result<Vec<u8>, InitramfsError> {
    fs::read(path).map_err(|source| InitramfsError::Input { path: path.to_path_buf(), source })
}

fn parents(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        cur = if cur.is_empty() { (*part).to_string() } else { format!("{cur}/{part}") };
        out.push(cur.clone());
    }
    out
}

impl InitramfsSpec {
    /// Content hash: the cache key.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for f in &self.files {
            h.update(f.guest_path.as_bytes());
            h.update(f.mode.to_le_bytes());
            h.update((f.data.len() as u64).to_le_bytes());
            h.update(&f.data);
        }
        h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    /// Writes the archive to `out`.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut dirs: Vec<String> = Vec::new();
        let mut ino = 1u32;
        for f in &self.files {
            for d in parents(&f.guest_path) {
                if !dirs.contains(&d) {
                    let w = cpio::newc::Builder::new(&d).ino(ino).mode(0o040755).nlink(2).write(&mut *out, 0);
                    w.finish()?;
                    ino += 1;
                    dirs.push(d);
                }
            }
            let name = f.guest_path.trim_start_matches('/');
            let size = u32::try_from(f.data.len())
                .map_err(|_| std::io::Error::other(format!("{name} is larger than 4 GiB")))?;
            let mut w = cpio::newc::Builder::new(name).ino(ino).mode(0o100000 | f.mode).nlink(1).write(&mut *out, size);
            w.write_all(&f.data)?;
            w.finish()?;
            ino += 1;
        }
        cpio::newc::trailer(&mut *out)?;
        Ok(())
    }

    /// Builds `<cache_dir>/initramfs-<digest>.cpio` unless it is already
    /// there with the right bytes; returns its path and whether it was
    /// (re)written. A cached file that differs (cut short by a full disk,
    /// damaged) is written again, never booted.
    pub fn build_cached(&self, cache_dir: &Path) -> Result<(PathBuf, bool), InitramfsError> {
        let path = cache_dir.join(format!("initramfs-{}.cpio", self.digest()));
        let werr = |source| InitramfsError::Write { path: path.clone(), source };
        // The archive is small and its inputs are in memory already:
        // making it is cheaper than trusting a file by its name.
        let mut archive = Vec::new();
        self.write_to(&mut archive).map_err(werr)?;
        let cached_len = fs::metadata(&path).ok().map(|m| m.len());
        if cached_len == Some(archive.len() as u64) && fs::read(&path).is_ok_and(|old| old == archive) {
            crate::support::mark_used(&path);
            return Ok((path, false));
        }
        if cached_len.is_some() {
            tracing::warn!(path = %path.display(), "the cached initramfs does not hold what it should; writing it again");
        }
        fs::create_dir_all(cache_dir).map_err(werr)?;
        // Write to a temporary name first: a concurrent or interrupted build
        // never leaves a half archive under the final name.
        let mut tmp = tempfile::NamedTempFile::new_in(cache_dir).map_err(werr)?;
        tmp.write_all(&archive).map_err(werr)?;
        tmp.as_file().sync_all().map_err(werr)?;
        tmp.persist(&path).map_err(|e| werr(e.error))?;
        Ok((path, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InitramfsSpec {
        InitramfsSpec {
            files: vec![
                GuestFile { guest_path: "/init".into(), data: b"#!/bin/busybox sh\n".to_vec(), mode: 0o755 },
                GuestFile { guest_path: "/lib/rig/modules/a.ko".into(), data: b"ko".to_vec(), mode: 0o644 },
            ],
        }
    }

    #[test]
    fn archive_lists_dirs_files_and_trailer() {
        let mut buf = Vec::new();
        spec().write_to(&mut buf).expect("write");
        let mut names = Vec::new();
        let mut cur = std::io::Cursor::new(buf);
        loop {
            let r = cpio::newc::Reader::new(&mut cur).expect("entry");
            if r.entry().is_trailer() {
                break;
            }
            names.push((r.entry().name().to_string(), r.entry().mode()));
            r.finish().expect("finish");
        }
        assert_eq!(names[0], ("init".to_string(), 0o100755));
        assert!(names.contains(&("lib".to_string(), 0o040755)));
        assert!(names.contains(&("lib/rig/modules".to_string(), 0o040755)));
        assert!(names.contains(&("lib/rig/modules/a.ko".to_string(), 0o100644)));
    }

    #[test]
    fn cache_is_reused_and_keyed_by_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, built) = spec().build_cached(dir.path()).expect("build");
        assert!(built);
        let (b, built_again) = spec().build_cached(dir.path()).expect("build");
        assert_eq!(a, b);
        assert!(!built_again);
        let mut other = spec();
        other.files[1].data = b"changed".to_vec();
        assert_ne!(other.build_cached(dir.path()).expect("build").0, a);
    }

    #[test]
    fn a_damaged_cached_image_is_written_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, _) = spec().build_cached(dir.path()).expect("build");
        let good = fs::read(&path).expect("read");
        // Cut short, as a full disk leaves it.
        fs::write(&path, &good[..good.len() / 2]).expect("truncate");
        let (again, rebuilt) = spec().build_cached(dir.path()).expect("build");
        assert_eq!((again.as_path(), rebuilt), (path.as_path(), true));
        assert_eq!(fs::read(&path).expect("read"), good);
        // Same size, other bytes.
        let mut bad = good.clone();
        bad[200] ^= 0xff;
        fs::write(&path, &bad).expect("write");
        assert!(spec().build_cached(dir.path()).expect("build").1);
        assert_eq!(fs::read(&path).expect("read"), good);
        assert!(!spec().build_cached(dir.path()).expect("build").1);
    }

    #[test]
    fn detects_dynamic_elf() {
        let ls = fs::read("/bin/ls").unwrap_or_default();
        if !ls.is_empty() {
            assert!(has_interpreter(&ls));
        }
        assert!(!has_interpreter(b"#!/bin/sh\n"));
    }
}
