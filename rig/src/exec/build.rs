//! `rig build`: the plan's modules built for one kernel, in the build
//! directories `rig run` uses, with nothing booted.

use super::prepare::{build_dir_for, fetch_kernel};
use super::run::{Event, RunError, RunOptions};
use crate::build::kbuild::{self, BuildRequest};
use crate::kernel::fetch::KernelTree;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// One module built.
#[derive(Clone, Debug)]
pub struct Built {
    /// The module's source directory.
    pub module: PathBuf,
    /// The `.ko` files, in `modules.order` order.
    pub ko_files: Vec<PathBuf>,
    /// Where it was built (`host (gcc-12)`, `chroot trixie-gcc-14 (...)`).
    pub env: String,
}

/// Fetches the kernel `opts` names and builds every module of the plan
/// for it (`w1`: with `W=1`). `interrupt` stops a download or a build.
pub fn build(
    opts: &RunOptions,
    w1: bool,
    interrupt: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<(KernelTree, Vec<Built>), RunError> {
    emit(Event::Progress(format!(
        "fetching kernel {}",
        if opts.kernel.is_empty() { "(default)" } else { &opts.kernel }
    )));
    let (_, tree) = fetch_kernel(opts, interrupt)?;
    let mut built = Vec::new();
    for m in &opts.plan.modules {
        emit(Event::Progress(format!("building {} for {}", m.dir.display(), tree.release)));
        let req = BuildRequest {
            src_dir: m.dir.clone(),
            out_dir: build_dir_for(&opts.cache_dir, &tree.release, m),
            make_vars: m.make_vars.clone(),
            extra_cflags_w1: w1,
        };
        let b = kbuild::build_module(&tree, &req, interrupt)?;
        emit(Event::Note(format!("built {} against {} in {} ({})", m.dir.display(), tree.release, b.env, b.vermagic)));
        built.push(Built { module: m.dir.clone(), ko_files: b.ko_files, env: b.env });
    }
    Ok((tree, built))
}
