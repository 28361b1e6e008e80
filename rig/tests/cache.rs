//! `rig cache` on a real cache: a run records what it uses, pruning to a
//! size bound removes the least recently used (and skips what another rig
//! holds), and the next run is still warm: `--offline`, the module up to
//! date and the initramfs cached. The cache is a private copy (hard links
//! into the user's cache for the default kernel), so the user's own cache
//! is never pruned. Needs the default kernel once (network), QEMU and
//! busybox-static.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use rig::cache::{inventory, Kind};

const DAY: u64 = 86_400;

fn rig(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rig"));
    c.env("RIG_LOG", "warn").env("RIG_CACHE_DIR", cache);
    c
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn user_cache() -> PathBuf {
    rig::kernel::fetch::default_cache_dir()
}

/// A cache item no run has used for `days`, of `mib` MiB of real blocks.
fn stale(path: &Path, mib: usize, days: u64) {
    fs::create_dir_all(path).expect("mkdir");
    fs::write(path.join("blob"), vec![0x5au8; mib << 20]).expect("write");
    let when = SystemTime::now() - Duration::from_secs(days * DAY);
    let stamp = path.join(rig::support::USED_FILE);
    fs::write(&stamp, "0\n").expect("stamp");
    File::options().write(true).open(&stamp).and_then(|f| f.set_modified(when)).expect("mtime");
}

fn run_hello(cache: &Path) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    rig(cache)
        .args(["run", "--offline", "--accel", "tcg", "--kernel", "bookworm-6.1", "-c"])
        .arg(root.join("examples/hello/rig.toml"))
        .output()
        .expect("start rig")
}

#[test]
fn pruned_to_a_size_bound_the_next_run_is_still_warm() {
    // The default kernel in the user's cache (downloaded once).
    let out = Command::new(env!("CARGO_BIN_EXE_rig")).args(["fetch", "bookworm-6.1"]).output().expect("rig fetch");
    assert!(out.status.success(), "{}", text(&out));
    let user = user_cache();
    // Beside the user's cache, so hard links work.
    let tmp = tempfile::Builder::new().prefix(".rig-cache-test-").tempdir_in(&user).expect("tempdir");
    let cache = tmp.path();
    fs::create_dir_all(cache.join("kernels")).expect("mkdir");
    let cp = Command::new("cp")
        .arg("-al")
        .arg(user.join("kernels/bookworm-6.1"))
        .arg(cache.join("kernels/bookworm-6.1"))
        .status()
        .expect("cp");
    assert!(cp.success());
    stale(&cache.join("kernels/stale-kernel"), 24, 30);
    stale(&cache.join("build/0.0.0-stale/old-module-00000000"), 6, 20);
    stale(&cache.join("apt/stale-suite"), 4, 12);
    stale(&cache.join("kernels/busy"), 8, 40);
    let busy_lock = File::create(cache.join("kernels/busy.lock")).expect("lock file");
    let held = Flock::lock(busy_lock, FlockArg::LockShared).map_err(|(_, e)| e).expect("flock");

    let first = run_hello(cache);
    assert!(first.status.success(), "first run:\n{}", text(&first));

    let items = inventory(cache).expect("inventory");
    let kinds: Vec<Kind> = items.iter().map(|i| i.kind).collect();
    for k in [Kind::Kernel, Kind::Build, Kind::Initramfs, Kind::Apt] {
        assert!(kinds.contains(&k), "no {k} in {items:#?}");
    }
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let kernel = items.iter().find(|i| i.name == "bookworm-6.1").expect("kernel listed");
    assert!(kernel.last_used > hour_ago, "the run did not mark the kernel used");
    let recent: u64 = items.iter().filter(|i| i.last_used > hour_ago).map(|i| i.bytes).sum();
    let before: u64 = items.iter().map(|i| i.bytes).sum();
    // Room for what the run used, the held item and 1 MiB: the held item is
    // the oldest, so the plan removes it first; skipped, the next goes instead.
    let bound = recent + (9 << 20);
    assert!(before > bound + (30 << 20), "before {before}, bound {bound}");

    let listing = rig(cache).arg("cache").output().expect("rig cache");
    assert!(listing.status.success(), "{}", text(&listing));
    let listing = text(&listing);
    for needle in ["kernel", "bookworm-6.1 (6.1.0-", "stale-kernel", "initramfs-", "total "] {
        assert!(listing.contains(needle), "{needle} missing:\n{listing}");
    }

    let prune = rig(cache).args(["cache", "--keep-recent", "0", "--max-size"]).arg(bound.to_string()).output();
    let prune = prune.expect("rig cache --max-size");
    let said = text(&prune);
    assert!(prune.status.success(), "{said}");
    for gone in ["stale-kernel", "old-module-00000000", "stale-suite"] {
        assert!(said.lines().any(|l| l.starts_with("removed") && l.contains(gone)), "{gone} not removed:\n{said}");
    }
    assert!(said.contains("busy    kernel     busy"), "the held item is not reported busy:\n{said}");
    assert!(cache.join("kernels/busy/blob").is_file(), "an item another rig holds was removed");
    drop(held);
    for gone in ["kernels/stale-kernel", "build/0.0.0-stale/old-module-00000000", "apt/stale-suite"] {
        assert!(!cache.join(gone).exists(), "{gone} still there");
    }
    let after: u64 = inventory(cache).expect("inventory").iter().map(|i| i.bytes).sum();
    assert!(after <= bound, "after {after}, bound {bound}:\n{said}");
    assert!(!said.lines().any(|l| l.starts_with("removed") && l.contains("bookworm-6.1")), "{said}");
    assert!(after < before);
    eprintln!("cache: {} MiB before, bound {} MiB, {} MiB after", before >> 20, bound >> 20, after >> 20);

    let second = run_hello(cache);
    let said = text(&second);
    assert!(second.status.success(), "second run after pruning:\n{said}");
    assert!(said.contains("(cached)"), "the initramfs was rebuilt:\n{said}");
}
