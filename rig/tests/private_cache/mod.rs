//! A rig cache of a test's own, for tests that interrupt, damage or refetch
//! what is cached: the kernel trees are hard links into the user's cache
//! (fetched there first when missing), so making one costs no copy and the
//! user's cache is never changed. A test must replace a file (write a new
//! one and rename it over), never write into one: that would write through
//! the link.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

/// The user's cache (`RIG_CACHE_DIR`, else `~/.cache/rig`).
pub fn user_cache() -> PathBuf {
    rig::kernel::fetch::default_cache_dir()
}

/// A private cache holding `kernels` (catalog names), fetched into the
/// user's cache first if need be.
pub fn with_kernels(kernels: &[&str]) -> tempfile::TempDir {
    let user = user_cache();
    let catalog = rig::kernel::catalog::Catalog::builtin().expect("catalog");
    let dir = tempfile::Builder::new().prefix("rig-test-cache-").tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("kernels")).expect("mkdir");
    for name in kernels {
        let entry = catalog.entry_or_default(Some(name)).expect("catalog name").into_owned();
        let opts = rig::kernel::fetch::FetchOptions { cache_dir: user.clone(), ..Default::default() };
        rig::kernel::fetch::fetch(&entry, &opts, &AtomicBool::new(false))
            .unwrap_or_else(|e| panic!("fetching {name} into {}: {e}", user.display()));
        let from = user.join("kernels").join(entry.cache_name());
        let status = Command::new("cp").arg("-al").arg(&from).arg(dir.path().join("kernels")).status().expect("cp");
        assert!(status.success(), "cp -al {}", from.display());
    }
    dir
}

/// Replaces `path` by its first `len` bytes, as a new file (the old one
/// may be a hard link into the user's cache).
pub fn truncate_copy(path: &Path, len: usize) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() > len, "{} has only {} bytes", path.display(), data.len());
    replace(path, &data[..len]);
}

/// Replaces `path` by a new file holding `data`.
pub fn replace(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("rig-test-tmp");
    std::fs::write(&tmp, data).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Processes whose command line contains `needle`: (pid, process group, command line).
pub fn processes_with(needle: &str) -> Vec<(i32, i32, String)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return found };
    for e in dir.filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && pid != std::process::id() as i32 {
            if let Some((pgrp, state)) = stat_of(pid) {
                if state != "Z" {
                    found.push((pid, pgrp, cmdline));
                }
            }
        }
    }
    found
}

/// Live (not zombie) processes in process group `group`.
pub fn group_members(group: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| stat_of(pid).is_some_and(|(pgrp, state)| pgrp == group && state != "Z"))
        .collect()
}

/// Process group and state of `pid`.
fn stat_of(pid: i32) -> Option<(i32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    Some((fields.get(2)?.parse().ok()?, fields.first()?.to_string()))
}
