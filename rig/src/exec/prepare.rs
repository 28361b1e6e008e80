//! Everything before QEMU starts: check the host tools, fetch the kernel,
//! build the modules (with the in-tree ones they and the devices need),
//! pack the image.

use super::devices::{self, GuestDevice};
use super::rootfs::{self, PreparedRoot};
use super::run::{Event, RunError, RunOptions};
use crate::build::kbuild::{self, BuildRequest};
use crate::image::contents::{guest_image, LoadedModule, Userspace};
use crate::image::initramfs;
use crate::kernel::catalog::{Catalog, KernelEntry};
use crate::kernel::checks;
use crate::kernel::fetch::{self, FetchOptions, KernelTree};
use crate::kernel::intree;
use crate::kernel::vmlinux::{self, BootImage};
use crate::plan::step::Action;
use crate::plan::{ModulePlan, Plan};
use crate::results::Timings;
use crate::vm::devices::DeviceTable;
use crate::vm::qemu::{self, QemuError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn require(path: &Path, what: &str, fix: &str) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|_| RunError::Missing { what: what.into(), path: path.to_path_buf(), fix: fix.into() })
}

/// Does a guest step run `program`?
pub fn uses_program(plan: &Plan, program: &str) -> bool {
    let all = plan.setup.iter().chain(&plan.teardown).chain(plan.tests.iter().flat_map(|t| &t.checks));
    all.into_iter().any(|c| matches!(&c.action, Action::Guest { command, .. } if command.contains(program)))
}

/// Checks the host tools before any long work, so a missing one fails fast.
pub fn preflight(opts: &RunOptions, emit: &mut dyn FnMut(Event)) -> Result<(), RunError> {
    let (major, minor, micro) = qemu::version(&opts.qemu)?;
    if major < qemu::RECOMMENDED_MAJOR {
        emit(Event::Note(format!(
            "warning: QEMU {major}.{minor}.{micro} is older than {}: it double-faults 6.12 guests under TCG now and then; `make setup` installs QEMU 10 from bookworm-backports",
            qemu::RECOMMENDED_MAJOR
        )));
    }
    let fix_bb = "install busybox-static (`sudo apt-get install busybox-static`) or pass --busybox";
    let bb = require(&opts.busybox, "busybox", fix_bb)?;
    initramfs::check_static(&opts.busybox, &bb, fix_bb)?;
    if uses_program(&opts.plan, "rig-guest") {
        let fix_guest = "build the guest programs with `make guest` or pass --guest-bin";
        let g = require(&opts.guest_bin, "the guest programs (rig-guest)", fix_guest)?;
        initramfs::check_static(&opts.guest_bin, &g, fix_guest)?;
    }
    if uses_program(&opts.plan, "rig-udrv") {
        let fix = "build the reference userspace driver with `make guest` or pass --udrv-bin";
        let g = require(&opts.udrv_bin, "the reference userspace driver (rig-udrv)", fix)?;
        initramfs::check_static(&opts.udrv_bin, &g, fix)?;
    }
    for m in &opts.plan.modules {
        if !m.dir.join("Kbuild").is_file() && !m.dir.join("Makefile").is_file() {
            return Err(RunError::Missing {
                what: "a module source directory (Kbuild or Makefile)".into(),
                path: m.dir.clone(),
                fix: "fix [[module]] path in the config, or pass --module-dir DIR".into(),
            });
        }
    }
    Ok(())
}

/// The catalog entry `opts` names (resolved once, here) and its fetched tree.
/// `interrupt` (Ctrl-C) stops a download or a wait for the cache.
pub fn fetch_kernel(opts: &RunOptions, interrupt: &AtomicBool) -> Result<(KernelEntry, KernelTree), RunError> {
    let catalog = Catalog::builtin()?;
    let entry = catalog.entry_or_default(Some(&opts.kernel))?.into_owned();
    let fo = FetchOptions {
        cache_dir: opts.cache_dir.clone(),
        archive_uri: opts.archive_uri.clone(),
        refresh: false,
        update: false,
        offline: opts.offline,
    };
    let tree = fetch::fetch(&entry, &fo, interrupt)?;
    Ok((entry, tree))
}

/// What the guest boots: the kernel, the modules and the image.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The catalog entry (its console and command line).
    pub entry: KernelEntry,
    /// The fetched kernel.
    pub tree: KernelTree,
    /// What QEMU boots: the vmlinux through PVH, else the bzImage.
    pub kernel: BootImage,
    /// In-tree modules (dependencies first), then the built ones.
    pub modules: Vec<LoadedModule>,
    /// The `[[device]]`s, with what the device table says of them.
    pub devices: Vec<GuestDevice>,
    /// The initramfs path.
    pub initrd: PathBuf,
    /// The Debian root, when the guest has one.
    pub root: Option<PreparedRoot>,
    /// The command-line words of the checks this kernel does.
    pub check_args: Vec<String>,
}

impl Prepared {
    /// The modules /init loads, in order.
    pub fn loaded(&self) -> impl Iterator<Item = &LoadedModule> {
        self.modules.iter().filter(|m| m.load)
    }
}

/// Where `m` is built for kernel `release` (`rig run` and `rig build` share it).
pub fn build_dir_for(cache: &Path, release: &str, m: &ModulePlan) -> PathBuf {
    // Two configs with same-named module directories must not share a build dir.
    let digest = Sha256::digest(m.dir.to_string_lossy().as_bytes());
    let tag: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let name = m.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "module".into());
    cache.join("build").join(release).join(format!("{name}-{tag}"))
}

/// Fetch, build and pack: everything before QEMU starts. `interrupt`
/// (Ctrl-C) stops a download, a build or a wait for the cache at once.
pub fn prepare(
    opts: &RunOptions,
    t: &mut Timings,
    interrupt: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<Prepared, RunError> {
    preflight(opts, emit)?;
    let phase = Instant::now();
    emit(Event::Progress(format!(
        "fetching kernel {}",
        if opts.kernel.is_empty() { "(default)" } else { &opts.kernel }
    )));
    let (entry, tree) = fetch_kernel(opts, interrupt)?;
    let kernel = boot_image(&opts.cache_dir, &entry, &tree, emit);
    t.fetch = phase.elapsed();
    emit(Event::Note(format!("kernel {} ({} {}) in {:.1?}", tree.name, tree.release, tree.package_version, t.fetch)));
    let check_args = checks_for(opts, &tree, emit)?;

    // The Debian root first: the kernel is skipped if its suite cannot have it.
    let phase = Instant::now();
    let root = rootfs::prepare_root(opts, &tree, interrupt, emit)?;
    t.initramfs = phase.elapsed();

    let phase = Instant::now();
    let table = DeviceTable::builtin().map_err(QemuError::from)?;
    let guest_devices = devices::guest_devices(&opts.plan.guest.devices, &table).map_err(QemuError::from)?;
    // The modules that mount the root come before everything else.
    let mut intree_modules = match &root {
        Some(_) => intree::resolve(tree.modules_dir.as_deref(), &tree.release, &rootfs::root_disk()?.modules)?,
        None => vec![],
    };
    let wanted = intree::resolve(tree.modules_dir.as_deref(), &tree.release, &opts.plan.intree)?;
    devices::merge_modules(&mut intree_modules, wanted);
    let for_devices = devices::resolve_modules(tree.modules_dir.as_deref(), &tree.release, &guest_devices)?;
    devices::merge_modules(&mut intree_modules, for_devices);
    let mut modules: Vec<LoadedModule> = intree_modules
        .into_iter()
        .map(|m| LoadedModule { file: format!("{}.ko", m.name), data: m.data, params: String::new(), load: true })
        .collect();
    for m in &opts.plan.modules {
        emit(Event::Progress(format!("building {} for {}", m.dir.display(), tree.release)));
        let built = kbuild::build_module(
            &tree,
            &BuildRequest {
                src_dir: m.dir.clone(),
                out_dir: build_dir_for(&opts.cache_dir, &tree.release, m),
                make_vars: m.make_vars.clone(),
                extra_cflags_w1: false,
            },
            interrupt,
        )?;
        emit(Event::Note(format!(
            "built {} against {} in {} ({})",
            m.dir.display(),
            tree.release,
            built.env,
            built.vermagic
        )));
        for ko in &built.ko_files {
            let file = ko.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "module.ko".into());
            modules.push(LoadedModule {
                file,
                data: initramfs::read_input(ko)?,
                params: m.params.clone(),
                load: m.load,
            });
        }
    }
    t.build = phase.elapsed();

    let phase = Instant::now();
    let udrv = uses_program(&opts.plan, "rig-udrv").then_some(opts.udrv_bin.as_path());
    let inits: Vec<_> = guest_devices.iter().map(GuestDevice::init).collect();
    let userspace = Userspace { hugepages: opts.plan.guest.hugepages, debian_root: root.is_some() };
    let spec = guest_image(&opts.busybox, &opts.guest_bin, udrv, &modules, &inits, &opts.plan.guest.files, userspace)?;
    let (initrd, fresh) = spec.build_cached(&opts.cache_dir.join("initramfs").join(&tree.release))?;
    t.initramfs += phase.elapsed();
    emit(Event::Note(format!("initramfs {} ({})", initrd.display(), if fresh { "built" } else { "cached" })));
    Ok(Prepared { entry, tree, kernel, modules, devices: guest_devices, initrd, root, check_args })
}

/// The kernel's vmlinux for PVH boot (extracted once, kept with the
/// kernel), or its bzImage with a note saying why.
fn boot_image(cache: &Path, entry: &KernelEntry, tree: &KernelTree, emit: &mut dyn FnMut(Event)) -> BootImage {
    let dir = cache.join("kernels").join(entry.cache_name()).join("pvh");
    if !dir.join("vmlinux").is_file() {
        emit(Event::Progress(format!("extracting the uncompressed kernel of {} for PVH boot", tree.release)));
    }
    let image = vmlinux::boot_image(&tree.vmlinuz, &dir);
    if let BootImage::BzImage { why, .. } = &image {
        emit(Event::Note(format!("booting the bzImage: {why}")));
    }
    image
}

/// The checks of the plan this kernel does (said in one line), from its
/// config; with `strict_checks` one it cannot do is an error.
fn checks_for(opts: &RunOptions, tree: &KernelTree, emit: &mut dyn FnMut(Event)) -> Result<Vec<String>, RunError> {
    let g = &opts.plan.guest;
    if g.checks.is_empty() {
        return Ok(vec![]);
    }
    let text = std::fs::read_to_string(&tree.config).map_err(|_| RunError::Missing {
        what: "the kernel's config (to decide its checks)".into(),
        path: tree.config.clone(),
        fix: "fetch the kernel again with `rig fetch NAME --refresh`".into(),
    })?;
    let r = checks::resolve(&checks::KernelConfig::parse(&text), &g.checks);
    emit(Event::Note(r.summary(&tree.name)));
    if g.strict_checks && !r.off.is_empty() {
        let missing: Vec<String> = r.off.iter().map(|(c, why)| format!("{c} ({why})")).collect();
        return Err(RunError::Checks { kernel: tree.name.clone(), missing: missing.join(", ") });
    }
    Ok(r.args)
}
