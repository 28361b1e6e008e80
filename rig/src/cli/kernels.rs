//! `rig kernels` and `rig fetch`: the catalog, the cache of kernels, and
//! which checks each kernel can do.

use super::{install_signal_handlers, GlobalArgs, EXIT_INTERRUPTED, EXIT_RIG};
use rig::kernel::catalog::Catalog;
use rig::kernel::checks::{table, KernelConfig};

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

#[derive(clap::Args)]
pub struct KernelsCmd {
    /// A table of which checks ([guest] checks, --checks) each kernel can do,
    /// from its config (fetching the kernels not cached yet).
    #[arg(long)]
    pub checks: bool,
    /// With --checks: never download; kernels not cached show `?`.
    #[arg(long)]
    pub offline: bool,
}

pub fn list(g: &GlobalArgs, cmd: &KernelsCmd) -> anyhow::Result<u8> {
    if cmd.checks {
        return checks_table(g, cmd.offline);
    }
    let catalog = Catalog::builtin()?;
    let default = catalog.default_entry().name.clone();
    for e in catalog.entries() {
        let mark = if e.name == default { " (default)" } else { "" };
        println!("{:<16} {:<20} {}{mark}", e.name, format!("{} {}", e.suite, e.flavour), e.description);
    }
    Ok(0)
}

/// `rig kernels --checks`: the config of every catalog kernel, then the table.
fn checks_table(g: &GlobalArgs, offline: bool) -> anyhow::Result<u8> {
    let catalog = Catalog::builtin()?;
    let opts = rig::kernel::fetch::FetchOptions {
        cache_dir: g.cache_dir(),
        archive_uri: g.archive.clone(),
        refresh: false,
        update: false,
        offline,
    };
    let interrupt = install_signal_handlers()?;
    let mut worst = 0;
    let mut cols = Vec::new();
    for e in catalog.entries() {
        let cfg = match rig::kernel::fetch::fetch(e, &opts, &interrupt) {
            Ok(tree) => match std::fs::read_to_string(&tree.config) {
                Ok(text) => Some(KernelConfig::parse(&text)),
                Err(err) => {
                    eprintln!("rig: {}: cannot read {}: {err}", e.name, tree.config.display());
                    worst = EXIT_RIG;
                    None
                }
            },
            Err(rig::kernel::fetch::FetchError::NotCached { .. }) => None,
            Err(err) => {
                eprintln!("rig: {}: {err}", e.name);
                worst = EXIT_RIG;
                None
            }
        };
        cols.push((e.name.clone(), cfg));
    }
    print!("{}", table(&cols));
    Ok(worst)
}
