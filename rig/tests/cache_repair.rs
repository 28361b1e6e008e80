//! The cache checks what it reuses: a truncated kernel image or initramfs
//! is repaired by the next run (offline, from the cached packages), `rig
//! fetch --refresh` downloads and unpacks again (`--update` only when the
//! archive has another version), and a module is built again when a
//! kernel header it was built against changes. Each test has
//! a private cache (hard links into the user's; files are replaced, never
//! written into). Needs the default kernel (fetched once), QEMU,
//! busybox-static, make and gcc-12; the refresh test downloads the default
//! kernel's packages (about 40 MB).

mod private_cache;

use private_cache::{replace, truncate_copy, with_kernels};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// Boots and builds are heavy on 2 cores: one at a time.
static ONE: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rig(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rig"));
    c.arg("--cache-dir").arg(cache).env("RIG_LOG", "warn");
    c
}

/// `rig run` of the hello example, offline, in `cache`: must pass.
fn run_hello(cache: &Path, what: &str) {
    let out = rig(cache)
        .args(["run", "--offline", "--accel", "tcg", "-c"])
        .arg(repo().join("examples/hello/rig.toml"))
        .output()
        .expect("rig run");
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tree_in(cache: &Path) -> rig::kernel::fetch::KernelTree {
    let catalog = rig::kernel::catalog::Catalog::builtin().expect("catalog");
    let entry = catalog.entry_or_default(Some("bookworm-6.1")).expect("entry").into_owned();
    let opts = rig::kernel::fetch::FetchOptions { cache_dir: cache.to_owned(), offline: true, ..Default::default() };
    rig::kernel::fetch::fetch(&entry, &opts, &AtomicBool::new(false)).expect("cached kernel")
}

/// The one initramfs in `cache`.
fn initramfs(cache: &Path) -> PathBuf {
    let mut found = vec![];
    for dir in std::fs::read_dir(cache.join("initramfs")).expect("initramfs dir").flatten() {
        found.extend(std::fs::read_dir(dir.path()).expect("read").flatten().map(|e| e.path()));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

#[test]
fn a_truncated_kernel_image_and_initramfs_are_repaired_by_the_next_run() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = with_kernels(&["bookworm-6.1"]);
    run_hello(cache.path(), "first run");
    let tree = tree_in(cache.path());
    let image = std::fs::read(&tree.vmlinuz).expect("vmlinuz");
    let cpio = initramfs(cache.path());
    let archive = std::fs::read(&cpio).expect("initramfs");
    // As a full disk or an interrupted cache restore leaves them.
    truncate_copy(&tree.vmlinuz, image.len() / 2);
    truncate_copy(&cpio, archive.len() / 3);
    run_hello(cache.path(), "run after truncating vmlinuz and the initramfs");
    assert!(std::fs::read(&tree.vmlinuz).expect("vmlinuz") == image, "vmlinuz not restored");
    assert!(std::fs::read(&cpio).expect("initramfs") == archive, "initramfs not restored");
}

#[test]
fn refresh_downloads_and_unpacks_again() {
    let cache = with_kernels(&["bookworm-6.1"]);
    let kdir = cache.path().join("kernels/bookworm-6.1");
    let tree = tree_in(cache.path());
    let inode = |p: &Path| std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).ino();
    let debs: Vec<(PathBuf, u64)> = std::fs::read_dir(kdir.join("debs"))
        .expect("debs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .map(|p| {
            let i = inode(&p);
            (p, i)
        })
        .collect();
    assert!(!debs.is_empty());
    let image_inode = inode(&tree.vmlinuz);
    std::fs::write(tree.root.join("rig-test-marker"), "stale").expect("marker");
    let out = rig(cache.path()).args(["fetch", "--refresh", "bookworm-6.1"]).output().expect("rig fetch");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (deb, old) in &debs {
        assert_ne!(inode(deb), *old, "{} was not downloaded again", deb.display());
    }
    assert_ne!(inode(&tree.vmlinuz), image_inode, "the tree was not unpacked again");
    assert!(!tree.root.join("rig-test-marker").exists(), "the old tree is still there");
}

#[test]
fn update_downloads_only_when_the_archive_has_another_version() {
    let cache = with_kernels(&["bookworm-6.1"]);
    let kdir = cache.path().join("kernels/bookworm-6.1");
    let before = tree_in(cache.path());
    let inodes = || -> Vec<u64> {
        let mut v: Vec<u64> = std::fs::read_dir(kdir.join("debs"))
            .expect("debs")
            .flatten()
            .map(|e| e.metadata().expect("stat").ino())
            .collect();
        v.push(std::fs::metadata(&before.vmlinuz).map(|m| m.ino()).unwrap_or(0));
        v.sort();
        v
    };
    let old = inodes();
    let out = rig(cache.path()).args(["fetch", "--update", "bookworm-6.1"]).output().expect("rig fetch");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = tree_in(cache.path());
    if after.package_version == before.package_version {
        assert_eq!(inodes(), old, "nothing newer, yet packages were downloaded or unpacked again");
    } else {
        assert_ne!(inodes(), old, "{} -> {} but nothing was downloaded", before.package_version, after.package_version);
    }
}

#[test]
fn a_changed_kernel_header_makes_the_module_build_again() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = with_kernels(&["bookworm-6.1"]);
    let tree = tree_in(cache.path());
    let req = rig::build::kbuild::BuildRequest {
        src_dir: repo().join("examples/hello"),
        out_dir: cache.path().join("build/hello"),
        make_vars: vec![],
        extra_cflags_w1: false,
    };
    let never = AtomicBool::new(false);
    let build = || rig::build::kbuild::build_module(&tree, &req, &never).expect("build");
    let up_to_date = |log: &str| log.starts_with("up to date");
    assert!(!up_to_date(&build().log));
    assert!(up_to_date(&build().log), "an unchanged build is reused");
    // Every compilation includes kconfig.h. The same size, other bytes: a
    // size check alone would miss it.
    let header = tree.headers_common.join("include/linux/kconfig.h");
    let text = std::fs::read_to_string(&header).expect("kconfig.h");
    assert!(text.starts_with("/* SPDX-License-Identifier: GPL-2.0 */"), "{text}");
    replace(&header, text.replacen("GPL-2.0", "GPL-2.X", 1).as_bytes());
    let again = build();
    assert!(!up_to_date(&again.log), "the module was not built again after a header changed");
    assert!(again.log.contains("hello_counter.o"), "{}", again.log);
    assert!(up_to_date(&build().log));
}
