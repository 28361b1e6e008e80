//! `rig kernels` and `rig fetch`: the catalog and the cache of kernels.

use super::{install_signal_handlers, GlobalArgs, EXIT_INTERRUPTED, EXIT_RIG};
use rig::kernel::catalog::Catalog;

#[derive(clap::Args)]
pub struct FetchCmd {
    /// Catalog name (see `rig kernels`) or SUITE/FLAVOUR.
    pub kernel: Option<String>,
    /// Download and unpack again even if the kernel is cached.
    #[arg(long)]
    pub refresh: bool,
    /// Ask the archive for a newer version; download and unpack only if there is one.
    #[arg(long, conflicts_with = "refresh")]
    pub update: bool,
}

pub fn fetch(g: &GlobalArgs, cmd: &FetchCmd) -> anyhow::Result<u8> {
    let catalog = Catalog::builtin()?;
    let entry = catalog.entry_or_default(cmd.kernel.as_deref()).map_err(|e| super::UsageError(e.to_string()))?;
    let opts = rig::kernel::fetch::FetchOptions {
        cache_dir: g.cache_dir(),
        archive_uri: g.archive.clone(),
        refresh: cmd.refresh,
        update: cmd.update,
        offline: false,
    };
    let interrupt = install_signal_handlers()?;
    match rig::kernel::fetch::fetch(&entry, &opts, &interrupt) {
        Ok(tree) => {
            println!("{} {} {} {}", tree.name, tree.release, tree.package_version, tree.root.display());
            Ok(0)
        }
        Err(e) => {
            eprintln!("rig: error: {e}");
            Ok(if matches!(e, rig::kernel::fetch::FetchError::Interrupted) { EXIT_INTERRUPTED } else { EXIT_RIG })
        }
    }
}

pub fn list() -> anyhow::Result<u8> {
    let catalog = Catalog::builtin()?;
    let default = catalog.default_entry().name.clone();
    for e in catalog.entries() {
        let mark = if e.name == default { " (default)" } else { "" };
        println!("{:<16} {:<20} {}{mark}", e.name, format!("{} {}", e.suite, e.flavour), e.description);
    }
    Ok(0)
}
