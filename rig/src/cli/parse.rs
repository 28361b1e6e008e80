//! `rig parse`: the verdicts of saved run directories, as KTAP (and JSON,
//! JUnit or a Markdown summary if asked), without booting anything.

use super::{GlobalArgs, UsageError, EXIT_FAILED};
use anyhow::Context;
use rig::results::{json, junit, ktap, KernelResult, Tree};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ParseCmd {
    /// Run directories kept by `rig run --keep` (or a failing run).
    #[arg(required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary here (kernel x check table, failures folded).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

pub fn main(_g: &GlobalArgs, cmd: &ParseCmd) -> anyhow::Result<u8> {
    let mut tree = Tree::default();
    for dir in &cmd.run_dirs {
        // A file given instead of its directory (console.log, run.json) is fine.
        let dir = if dir.is_file() { dir.parent().map(PathBuf::from).unwrap_or_default() } else { dir.clone() };
        let report = rig::exec::replay::replay(&dir).map_err(|e| UsageError(e.to_string()))?;
        tree.kernels.push(KernelResult::Ran(report));
    }
    print!("{}", ktap::document(&tree));
    if let Some(path) = &cmd.json {
        let text = serde_json::to_string_pretty(&json::document(&tree))? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cmd.junit {
        std::fs::write(path, junit::junit(&tree)).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cmd.markdown {
        // Run directories keep no timings: the summary shows the verdicts.
        super::report::write_markdown(path, &tree, "rig parse", None)?;
    }
    Ok(if tree.passed() { 0 } else { EXIT_FAILED })
}
