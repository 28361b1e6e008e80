//! Carrying out a [`PrunePlan`]: each item under its own lock, taken
//! without waiting (an item another rig holds is skipped), renamed away
//! before it is removed so a removal cut short never looks complete.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::{plan, CacheError, Item, Kind, Policy, PrunePlan, Reason};
use crate::build::chroot::{remove_chroot, remove_leftover};
use crate::support::{io_err, remove_file_if_exists, try_lock_file, LockMode};
use std::time::SystemTime;

/// What pruning did.
#[derive(Debug, Default)]
pub struct PruneOutcome {
    /// Removed, and why.
    pub removed: Vec<(Item, Reason)>,
    /// Skipped: another rig holds its lock.
    pub busy: Vec<Item>,
    /// Could not be removed, with the error.
    pub failed: Vec<(Item, String)>,
}

impl PruneOutcome {
    /// Bytes freed.
    pub fn freed(&self) -> u64 {
        self.removed.iter().map(|(i, _)| i.bytes).sum()
    }
}

/// Plans and prunes `items` under `policy`. An item another rig holds stays
/// and the plan is made again without it, so the next least recently used
/// goes instead. Returns the first plan (what `--dry-run` shows) and what
/// was done.
pub fn prune_with(items: &[Item], policy: &Policy, now: SystemTime) -> (PrunePlan, PruneOutcome) {
    let mut items = items.to_vec();
    let first = plan(&items, policy, now);
    let mut p = first.clone();
    let mut total = PruneOutcome::default();
    loop {
        let out = prune(&items, &p);
        let again = !out.busy.is_empty();
        let gone: Vec<PathBuf> = out.removed.iter().map(|(i, _)| i.path.clone()).collect();
        // Held by another rig, or failed: not tried again.
        let pinned: Vec<PathBuf> =
            out.busy.iter().chain(out.failed.iter().map(|(i, _)| i)).map(|i| i.path.clone()).collect();
        items.retain(|it| !gone.contains(&it.path));
        items.iter_mut().filter(|it| pinned.contains(&it.path)).for_each(|it| it.busy = true);
        total.removed.extend(out.removed);
        total.busy.extend(out.busy);
        total.failed.extend(out.failed);
        if !again {
            return (first, total);
        }
        p = plan(&items, policy, now);
    }
}

/// Removes what `plan` says from `items` (the inventory it was made from).
pub fn prune(items: &[Item], plan: &PrunePlan) -> PruneOutcome {
    let mut out = PruneOutcome::default();
    for &(i, reason) in &plan.remove {
        let item = &items[i];
        if item.busy {
            continue;
        }
        match remove(item) {
            Ok(true) => out.removed.push((item.clone(), reason)),
            Ok(false) => out.busy.push(item.clone()),
            Err(e) => out.failed.push((item.clone(), e.to_string())),
        }
    }
    out
}

/// Removes one item under its lock; `Ok(false)` when another rig holds it.
fn remove(item: &Item) -> Result<bool, CacheError> {
    let _lock = match &item.lock {
        Some(path) => match try_lock_file(path, LockMode::Exclusive)? {
            Some(l) => Some(l),
            None => return Ok(false),
        },
        None => None,
    };
    debug!(item = %item.path.display(), kind = %item.kind, "removing");
    // Trees debootstrap made are root's: removed as root.
    let in_chroots = item.path.parent().and_then(Path::file_name).is_some_and(|n| n == "chroots" || n == "rootfs");
    match item.kind {
        Kind::Chroot => {
            let (Some(dir), Some(name)) = (item.path.parent(), item.path.file_name()) else { return Ok(true) };
            remove_chroot(dir, &name.to_string_lossy())?;
        }
        Kind::Leftover if in_chroots => remove_leftover(&item.path)?,
        Kind::Initramfs => remove_file_if_exists(&item.path)?,
        Kind::Leftover if item.path.is_file() => remove_file_if_exists(&item.path)?,
        _ => remove_dir(&item.path)?,
    }
    for c in &item.companions {
        remove_file_if_exists(c)?;
    }
    Ok(true)
}

/// Renames `dir` to a hidden name beside it, then removes it.
fn remove_dir(dir: &Path) -> Result<(), CacheError> {
    let hidden = dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let doomed = if hidden {
        dir.to_owned()
    } else {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let to = dir.with_file_name(format!(".{name}.rig-prune"));
        fs::rename(dir, &to).map_err(io_err("rename", dir))?;
        to
    };
    match fs::remove_dir_all(&doomed) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // Something in it is root's (a tree unpacked by root): as root.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(remove_leftover(&doomed)?),
        Err(e) => Err(io_err("remove", &doomed)(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::inventory;
    use super::*;
    use crate::support::lock_file;

    #[test]
    fn removes_unlocked_items_and_skips_held_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = tmp.path();
        for k in ["old", "busy"] {
            fs::create_dir_all(c.join("kernels").join(k).join("root")).expect("mkdir");
            fs::write(c.join("kernels").join(k).join("root/vmlinuz"), vec![1u8; 8192]).expect("write");
        }
        fs::create_dir_all(c.join("initramfs/6.1")).expect("mkdir");
        fs::write(c.join("initramfs/6.1/initramfs-a.cpio"), b"cpio").expect("write");
        fs::create_dir_all(c.join("build/6.1/.m.rig-prune/x")).expect("mkdir");
        let held =
            lock_file(&c.join("kernels/busy.lock"), LockMode::Shared, "held", &Default::default()).expect("lock");

        let items = inventory(c).expect("inventory");
        let p = plan(&items, &Policy { clean: true, ..Policy::default() }, SystemTime::now());
        let out = prune(&items, &p);
        let removed: Vec<&str> = out.removed.iter().map(|(i, _)| i.name.as_str()).collect();
        assert_eq!(removed, ["old", "6.1/.m.rig-prune", "6.1/initramfs-a.cpio"]);
        assert_eq!(out.busy.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["busy"]);
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        assert!(out.freed() >= 8192);
        assert!(!c.join("kernels/old").exists() && !c.join("kernels/.old.rig-prune").exists());
        assert!(c.join("kernels/busy/root/vmlinuz").is_file());
        assert!(!c.join("initramfs/6.1/initramfs-a.cpio").exists());
        drop(held);
        let items = inventory(c).expect("inventory");
        assert_eq!(items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["busy"]);
    }
}
