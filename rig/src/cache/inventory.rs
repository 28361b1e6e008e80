//! Reading the cache into [`Item`]s: the layout in the module docs, each
//! item's size on disk and the time a run last used it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{CacheError, Item, Kind};
use crate::build::chroot::{tree_bytes, ChrootStamp, STAMP_FILE as CHROOT_STAMP};
use crate::support::io_err;

/// The kernel's stamp in `kernels/<name>/` (crate::kernel::fetch).
const KERNEL_STAMP: &str = "tree.json";

/// Every item in `cache_dir`, kind by kind, by name. A missing cache is empty.
pub fn inventory(cache_dir: &Path) -> Result<Vec<Item>, CacheError> {
    let mut items = Vec::new();
    for (folder, kind) in [("kernels", Kind::Kernel), ("apt", Kind::Apt)] {
        for (name, path) in dirs(&cache_dir.join(folder))? {
            if let Some(item) = leftover(&path, &name, None) {
                items.push(item);
                continue;
            }
            let detail = if kind == Kind::Kernel { kernel_detail(&path) } else { String::new() };
            let lock = Some(cache_dir.join(folder).join(format!("{name}.lock")));
            items.push(dir_item(kind, name, detail, path, lock));
        }
    }
    let chroots = cache_dir.join("chroots");
    for (name, path) in dirs(&chroots)? {
        // `.<name>.tmp` and `.<name>.old` belong to `<name>`'s lock.
        let owner = name.trim_start_matches('.').trim_end_matches(".tmp").trim_end_matches(".old");
        if let Some(item) = leftover(&path, &name, Some(chroots.join(format!("{owner}.lock")))) {
            items.push(item);
            continue;
        }
        let stamp: Option<ChrootStamp> =
            fs::read_to_string(path.join(CHROOT_STAMP)).ok().and_then(|t| serde_json::from_str(&t).ok());
        let detail = stamp.as_ref().map(|s| s.spec.compiler.clone()).unwrap_or_else(|| "incomplete".into());
        let mut item = dir_item(Kind::Chroot, name.clone(), detail, path, Some(chroots.join(format!("{name}.lock"))));
        // Parts of a root-owned tree may be unreadable: trust the stamp then.
        item.bytes = item.bytes.max(stamp.map_or(0, |s| s.bytes));
        item.companions.push(chroots.join(format!("{name}.log")));
        items.push(item);
    }
    for (folder, kind) in
        [("build", Kind::Build), ("apidiff", Kind::Apidiff), (crate::exec::saved_boot::DIR, Kind::Boot)]
    {
        for (release, rdir) in dirs(&cache_dir.join(folder))? {
            for (name, path) in dirs(&rdir)? {
                let full = format!("{release}/{name}");
                if let Some(item) = leftover(&path, &full, None) {
                    items.push(item);
                    continue;
                }
                let lock = Some(rdir.join(format!("{name}.lock")));
                items.push(dir_item(kind, full, String::new(), path, lock));
            }
        }
    }
    for (release, rdir) in dirs(&cache_dir.join("initramfs"))? {
        for entry in read_dir(&rdir)? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(md) = path.symlink_metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            // A half-written image under a temporary name (tempfile's `.tmp*`).
            let kind = if name.starts_with('.') { Kind::Leftover } else { Kind::Initramfs };
            items.push(Item {
                kind,
                name: format!("{release}/{name}"),
                detail: String::new(),
                bytes: tree_bytes_of_file(&md),
                last_used: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
                lock: None,
                companions: vec![],
                busy: false,
            });
        }
    }
    let roots = cache_dir.join("rootfs");
    for (name, path) in dirs(&roots)? {
        let owner = name.trim_start_matches('.').trim_end_matches(".tmp").trim_end_matches(".old");
        if let Some(item) = leftover(&path, &name, Some(roots.join(format!("{owner}.lock")))) {
            items.push(item);
            continue;
        }
        let mut item =
            dir_item(Kind::Rootfs, name.clone(), rootfs_detail(&path), path, Some(roots.join(format!("{name}.lock"))));
        item.companions.push(roots.join(format!("{name}.log")));
        items.push(item);
    }
    Ok(items)
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, CacheError> {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<fs::DirEntry> = rd.filter_map(Result::ok).collect();
            v.sort_by_key(fs::DirEntry::file_name);
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(io_err("read directory", dir)(e).into()),
    }
}

/// The subdirectories of `dir` (not following links), by name.
fn dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, CacheError> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect())
}

/// A hidden directory is what a creation or a removal left behind.
fn leftover(path: &Path, name: &str, lock: Option<PathBuf>) -> Option<Item> {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.starts_with('.')
        .then(|| Item { lock, ..dir_item(Kind::Leftover, name.to_owned(), String::new(), path.to_owned(), None) })
}

fn dir_item(kind: Kind, name: String, detail: String, path: PathBuf, lock: Option<PathBuf>) -> Item {
    let (bytes, last_used) = (tree_bytes(&path), last_used(&path));
    Item { kind, name, detail, bytes, last_used, path, lock, companions: vec![], busy: false }
}

/// When a run last used `dir`: its use stamp, else (a cache from before use
/// stamps, or a tree its user cannot write) when it last changed.
fn last_used(dir: &Path) -> SystemTime {
    let mtime = |p: &Path| p.symlink_metadata().and_then(|m| m.modified()).ok();
    crate::support::used_stamp(dir)
        .or_else(|| {
            [dir.join(KERNEL_STAMP), dir.join(CHROOT_STAMP), dir.to_owned()].iter().filter_map(|p| mtime(p)).max()
        })
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn kernel_detail(dir: &Path) -> String {
    let stamp: Option<serde_json::Value> =
        fs::read_to_string(dir.join(KERNEL_STAMP)).ok().and_then(|t| serde_json::from_str(&t).ok());
    match stamp.as_ref().and_then(|s| s["release"].as_str()) {
        Some(release) => release.to_owned(),
        None => "incomplete".to_owned(),
    }
}

/// `trixie: dpdk-dev, ...` from a Debian root's stamp.
fn rootfs_detail(dir: &Path) -> String {
    let stamp: Option<serde_json::Value> =
        fs::read_to_string(dir.join(crate::image::rootfs::STAMP_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok());
    let Some(s) = stamp else { return "incomplete".to_owned() };
    let packages: Vec<&str> =
        s["packages"].as_array().map_or(vec![], |a| a.iter().filter_map(|p| p.as_str()).collect());
    let what = if packages.is_empty() { "minbase".to_owned() } else { packages.join(", ") };
    match s["skip"].as_str() {
        Some(_) => format!("{}: {what} (skipped: not in the suite)", s["suite"].as_str().unwrap_or("?")),
        None => format!("{}: {what}", s["suite"].as_str().unwrap_or("?")),
    }
}

fn tree_bytes_of_file(md: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    md.blocks() * 512
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::USED_FILE;
    use std::time::Duration;

    fn write(path: &Path, bytes: usize) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, vec![7u8; bytes]).expect("write");
    }

    #[test]
    fn reads_every_kind_with_sizes_and_use_times() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = tmp.path();
        write(&c.join("kernels/bookworm-6.1/root/boot/vmlinuz"), 100_000);
        fs::write(c.join("kernels/bookworm-6.1/tree.json"), r#"{"release": "6.1.0-50-cloud-amd64"}"#).expect("stamp");
        fs::write(c.join("kernels/bookworm-6.1.lock"), "").expect("lock");
        write(&c.join("kernels/bookworm_amd64/debs/x.deb"), 10_000);
        write(&c.join("apt/bookworm/lists/x"), 5_000);
        write(&c.join("chroots/trixie-gcc-14/usr/bin/gcc-14"), 50_000);
        write(&c.join("chroots/.sid-gcc-16.tmp/usr/bin/x"), 1_000);
        write(&c.join("build/6.1.0-50-cloud-amd64/guest-kmod-1a2b3c4d/rig_kmod.ko"), 20_000);
        write(&c.join("apidiff/6.1.0-50-cloud-amd64/ioctl/rig_kmod.ko"), 20_000);
        write(&c.join("initramfs/6.1.0-50-cloud-amd64/initramfs-abc.cpio"), 30_000);
        write(&c.join("initramfs/6.1.0-50-cloud-amd64/.tmpXYZ"), 3_000);
        write(&c.join("rootfs/trixie-0123456789ab/root.squashfs"), 40_000);
        fs::write(
            c.join("rootfs/trixie-0123456789ab/rootfs.json"),
            r#"{"suite": "trixie", "packages": ["dpdk-dev"], "skip": null}"#,
        )
        .expect("stamp");
        write(&c.join("rootfs/.sid-0123456789ab.tmp/tree/x"), 1_000);
        write(&c.join("unrelated/file"), 1_000);
        let long_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
        crate::support::mark_used(&c.join("kernels/bookworm-6.1"));
        let stamp = c.join("kernels/bookworm-6.1").join(USED_FILE);
        fs::File::options().write(true).open(&stamp).and_then(|f| f.set_modified(long_ago)).expect("mtime");

        let items = inventory(c).expect("inventory");
        let names: Vec<(Kind, &str)> = items.iter().map(|i| (i.kind, i.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (Kind::Kernel, "bookworm-6.1"),
                (Kind::Kernel, "bookworm_amd64"),
                (Kind::Apt, "bookworm"),
                (Kind::Leftover, ".sid-gcc-16.tmp"),
                (Kind::Chroot, "trixie-gcc-14"),
                (Kind::Build, "6.1.0-50-cloud-amd64/guest-kmod-1a2b3c4d"),
                (Kind::Apidiff, "6.1.0-50-cloud-amd64/ioctl"),
                (Kind::Leftover, "6.1.0-50-cloud-amd64/.tmpXYZ"),
                (Kind::Initramfs, "6.1.0-50-cloud-amd64/initramfs-abc.cpio"),
                (Kind::Leftover, ".sid-0123456789ab.tmp"),
                (Kind::Rootfs, "trixie-0123456789ab"),
            ]
        );
        let k = &items[0];
        assert_eq!(k.detail, "6.1.0-50-cloud-amd64");
        assert_eq!(k.last_used, long_ago);
        assert_eq!(k.lock.as_deref(), Some(c.join("kernels/bookworm-6.1.lock").as_path()));
        assert!(k.bytes >= 100_000, "{}", k.bytes);
        assert_eq!(items[1].detail, "incomplete");
        assert_eq!(items[3].lock.as_deref(), Some(c.join("chroots/sid-gcc-16.lock").as_path()));
        assert_eq!(items[4].detail, "incomplete");
        assert_eq!(
            items[5].lock.as_deref(),
            Some(c.join("build/6.1.0-50-cloud-amd64/guest-kmod-1a2b3c4d.lock").as_path())
        );
        assert!(items[8].lock.is_none() && items[8].bytes >= 30_000);
        assert_eq!(items[9].lock.as_deref(), Some(c.join("rootfs/sid-0123456789ab.lock").as_path()));
        assert_eq!(items[10].detail, "trixie: dpdk-dev");
        assert!(items[10].bytes >= 40_000);
        assert_eq!(items[10].companions, [c.join("rootfs/trixie-0123456789ab.log")]);
        assert!(inventory(&c.join("missing")).expect("empty").is_empty());
    }
}
