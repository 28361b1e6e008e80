//! `rig cache`: lists the cache (kernels, chroots, module builds, images,
//! apt state) with sizes and last use, and prunes it.

use super::GlobalArgs;
use rig::cache::{self, human_bytes, Item, Kind, Policy};
use std::time::{Duration, SystemTime};

#[derive(clap::Args)]
pub struct CacheCmd {
    /// Remove what no run has used for this long (e.g. 7d, 12h, 30m).
    #[arg(long, value_parser = cache::parse_age)]
    pub older_than: Option<Duration>,
    /// Then remove the least recently used until the cache fits (e.g. 2G, 500M; powers of 1024).
    #[arg(long, value_parser = cache::parse_size)]
    pub max_size: Option<u64>,
    /// Remove everything no rig is using.
    #[arg(long, conflicts_with_all = ["older_than", "max_size"])]
    pub clean: bool,
    /// What a run used this recently stays: a run does not hold its locks from fetch to power-off (0 after the last run).
    #[arg(long, default_value = "15m", value_parser = cache::parse_age)]
    pub keep_recent: Duration,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn main(g: &GlobalArgs, a: &CacheCmd) -> anyhow::Result<u8> {
    let dir = g.cache_dir();
    let items = cache::inventory(&dir)?;
    let now = SystemTime::now();
    let policy = Policy { clean: a.clean, older_than: a.older_than, max_bytes: a.max_size, keep_recent: a.keep_recent };
    if !policy.prunes() {
        println!("cache {}", dir.display());
        for line in table(&items, now) {
            println!("{line}");
        }
        println!("{}", totals(&items));
        return Ok(0);
    }
    let plan = cache::plan(&items, &policy, now);
    for &i in &plan.kept_recent {
        let it = &items[i];
        println!("keep   {:<10} {} (used {}; --keep-recent)", it.kind, it.name, ago(it, now));
    }
    if a.dry_run {
        for &(i, reason) in &plan.remove {
            let it = &items[i];
            println!("would remove {:<10} {} {} ({})", it.kind, it.name, human_bytes(it.bytes), reason.words());
        }
        println!(
            "cache {}: {} now, {} after removing {} item(s)",
            dir.display(),
            human_bytes(plan.bytes_before),
            human_bytes(plan.bytes_after),
            plan.remove.len()
        );
        return Ok(0);
    }
    let (_, out) = cache::prune_with(&items, &policy, now);
    for (it, reason) in &out.removed {
        println!("removed {:<10} {} {} ({})", it.kind, it.name, human_bytes(it.bytes), reason.words());
    }
    for it in &out.busy {
        println!("busy    {:<10} {} (another rig holds {})", it.kind, it.name, lock_name(it));
    }
    for (it, e) in &out.failed {
        eprintln!("rig: cannot remove {} {}: {e}", it.kind, it.name);
    }
    let after = cache::inventory(&dir)?;
    let total: u64 = after.iter().map(|i| i.bytes).sum();
    println!(
        "cache {}: {} before, {} after ({} freed in {} item(s))",
        dir.display(),
        human_bytes(plan.bytes_before),
        human_bytes(total),
        human_bytes(out.freed()),
        out.removed.len()
    );
    if let Some(max) = a.max_size.filter(|&m| total > m) {
        eprintln!(
            "rig: note: the cache is still above {} (what is in use or used within --keep-recent {} stays)",
            human_bytes(max),
            humantime(a.keep_recent)
        );
    }
    Ok(if out.failed.is_empty() { 0 } else { super::EXIT_RIG })
}

fn lock_name(it: &Item) -> String {
    it.lock.as_ref().and_then(|l| l.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn table(items: &[Item], now: SystemTime) -> Vec<String> {
    let rows: Vec<[String; 4]> = items
        .iter()
        .map(|it| {
            let name = if it.detail.is_empty() { it.name.clone() } else { format!("{} ({})", it.name, it.detail) };
            [it.kind.to_string(), name, human_bytes(it.bytes), ago(it, now)]
        })
        .collect();
    let head = ["kind", "item", "size", "last used"].map(String::from);
    let width = |c: usize| rows.iter().chain([&head]).map(|r| r[c].len()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    [&head]
        .into_iter()
        .chain(rows.iter())
        .map(|r| format!("{:<w0$}  {:<w1$}  {:>w2$}  {}", r[0], r[1], r[2], r[3]))
        .collect()
}

fn totals(items: &[Item]) -> String {
    let total: u64 = items.iter().map(|i| i.bytes).sum();
    let parts: Vec<String> = Kind::ALL
        .iter()
        .filter_map(|&k| {
            let of_kind: Vec<&Item> = items.iter().filter(|i| i.kind == k).collect();
            let bytes: u64 = of_kind.iter().map(|i| i.bytes).sum();
            (!of_kind.is_empty()).then(|| format!("{} {} ({})", of_kind.len(), k.plural(), human_bytes(bytes)))
        })
        .collect();
    let parts = if parts.is_empty() { "empty".to_owned() } else { parts.join(", ") };
    format!("total {}: {parts}", human_bytes(total))
}

fn ago(it: &Item, now: SystemTime) -> String {
    match now.duration_since(it.last_used) {
        Ok(d) => format!("{} ago", humantime(d)),
        Err(_) => "just now".into(),
    }
}

/// `3 d`, `5 h`, `12 min`, `40 s`.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}
