//! What to prune, decided from the inventory alone (pure): everything with
//! `clean`; what no run used for `older_than`; then the least recently used
//! until the cache fits `max_bytes`. Items used within `keep_recent` stay,
//! and so do items found busy (another rig held them).

use std::time::{Duration, SystemTime};

use super::{Item, Kind};

/// How to prune.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Remove everything (not recently used).
    pub clean: bool,
    /// Remove what no run used for this long.
    pub older_than: Option<Duration>,
    /// Then remove the least recently used until the cache is at most this.
    pub max_bytes: Option<u64>,
    /// Items used this recently may be in use: they stay.
    pub keep_recent: Duration,
}

impl Policy {
    /// True when the policy removes anything at all.
    pub fn prunes(&self) -> bool {
        self.clean || self.older_than.is_some() || self.max_bytes.is_some()
    }
}

/// Why an item is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `--clean`.
    Clean,
    /// Unused for longer than `--older-than`.
    Age,
    /// Least recently used while the cache is over `--max-size`.
    Size,
    /// Left behind by an interrupted creation or removal.
    Leftover,
}

impl Reason {
    /// A few words for listings.
    pub fn words(self) -> &'static str {
        match self {
            Reason::Clean => "clean",
            Reason::Age => "unused too long",
            Reason::Size => "least recently used",
            Reason::Leftover => "leftover",
        }
    }
}

/// The decision: indices into the inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// What to remove, in order, and why.
    pub remove: Vec<(usize, Reason)>,
    /// What would have gone but was used within `keep_recent` (or is busy).
    pub kept_recent: Vec<usize>,
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after, if every removal succeeds.
    pub bytes_after: u64,
}

impl PrunePlan {
    /// The plan still leaves the cache above `max_bytes`.
    pub fn over_bound(&self, policy: &Policy) -> bool {
        policy.max_bytes.is_some_and(|m| self.bytes_after > m)
    }
}

/// Decides what to remove from `items` under `policy` at time `now`.
pub fn plan(items: &[Item], policy: &Policy, now: SystemTime) -> PrunePlan {
    let age = |i: usize| now.duration_since(items[i].last_used).unwrap_or(Duration::ZERO);
    let recent = |i: usize| items[i].busy || age(i) < policy.keep_recent;
    let bytes_before: u64 = items.iter().map(|i| i.bytes).sum();
    let mut out = PrunePlan { bytes_before, bytes_after: bytes_before, ..PrunePlan::default() };
    let mut removed = vec![false; items.len()];
    let take = |out: &mut PrunePlan, removed: &mut [bool], i: usize, reason: Reason| {
        removed[i] = true;
        out.bytes_after -= items[i].bytes;
        out.remove.push((i, reason));
    };
    for (i, item) in items.iter().enumerate() {
        let reason = if policy.clean {
            Some(Reason::Clean)
        } else if item.kind == Kind::Leftover && policy.prunes() {
            Some(Reason::Leftover)
        } else if policy.older_than.is_some_and(|a| age(i) > a) {
            Some(Reason::Age)
        } else {
            None
        };
        match reason {
            Some(_) if recent(i) => out.kept_recent.push(i),
            Some(r) => take(&mut out, &mut removed, i, r),
            None => {}
        }
    }
    if let Some(max) = policy.max_bytes {
        let mut lru: Vec<usize> = (0..items.len()).filter(|&i| !removed[i]).collect();
        // Oldest use first; among equals the biggest, then by name.
        lru.sort_by(|&a, &b| {
            (items[a].last_used, std::cmp::Reverse(items[a].bytes), &items[a].name).cmp(&(
                items[b].last_used,
                std::cmp::Reverse(items[b].bytes),
                &items[b].name,
            ))
        });
        for i in lru {
            if out.bytes_after <= max {
                break;
            }
            if recent(i) {
                out.kept_recent.push(i);
            } else {
                take(&mut out, &mut removed, i, Reason::Size);
            }
        }
    }
    out
}

/// `2G`, `500M`, `1.5GiB`, `300k`, `1024` (bytes): binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not a size: use e.g. 2G, 500M or 1024"))?;
    let shift = match unit.trim().to_ascii_lowercase().trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use K, M, G or T (powers of 1024)")),
    };
    Ok((value * (1u64 << shift) as f64).round() as u64)
}

/// `7d`, `12h`, `30m`, `90s`, `2w`, `0`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration: use e.g. 7d, 12h or 30m"))?;
    let secs = match unit {
        "" if n == 0 => 0,
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{s}`: give a unit: s, m, h, d or w (e.g. 7d)")),
    };
    Ok(Duration::from_secs(n * secs))
}

/// `1.2 GiB`, `340 MiB`, `12 KiB`, `512 B`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const DAY: u64 = 86_400;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 * DAY)
    }

    fn item(kind: Kind, name: &str, mib: u64, days_ago: u64) -> Item {
        Item {
            kind,
            name: name.into(),
            detail: String::new(),
            path: PathBuf::from(name),
            bytes: mib << 20,
            last_used: now() - Duration::from_secs(days_ago * DAY),
            lock: None,
            companions: vec![],
            busy: false,
        }
    }

    fn inventory() -> Vec<Item> {
        vec![
            item(Kind::Kernel, "bookworm-6.1", 300, 0),
            item(Kind::Kernel, "sid-7", 400, 20),
            item(Kind::Chroot, "sid-gcc-16", 450, 20),
            item(Kind::Chroot, "trixie-gcc-14", 400, 3),
            item(Kind::Build, "6.1/guest-kmod", 20, 0),
            item(Kind::Initramfs, "6.1/initramfs-a.cpio", 50, 1),
            item(Kind::Initramfs, "6.1/initramfs-b.cpio", 50, 9),
            item(Kind::Leftover, ".sid-gcc-16.tmp", 10, 2),
        ]
    }

    fn removed(p: &PrunePlan, items: &[Item]) -> Vec<(String, Reason)> {
        p.remove.iter().map(|&(i, r)| (items[i].name.clone(), r)).collect()
    }

    #[test]
    fn nothing_without_a_policy() {
        let items = inventory();
        let p = plan(&items, &Policy::default(), now());
        assert!(p.remove.is_empty());
        assert_eq!(p.bytes_before, p.bytes_after);
        assert_eq!(p.bytes_before, 1680 << 20);
    }

    #[test]
    fn by_age_and_leftovers() {
        let items = inventory();
        let policy = Policy { older_than: Some(Duration::from_secs(7 * DAY)), ..Policy::default() };
        let p = plan(&items, &policy, now());
        assert_eq!(
            removed(&p, &items),
            [
                ("sid-7".into(), Reason::Age),
                ("sid-gcc-16".into(), Reason::Age),
                ("6.1/initramfs-b.cpio".into(), Reason::Age),
                (".sid-gcc-16.tmp".into(), Reason::Leftover),
            ]
        );
        assert_eq!(p.bytes_after, (1680 - 400 - 450 - 50 - 10) << 20);
    }

    #[test]
    fn by_size_least_recently_used_first() {
        let items = inventory();
        let policy = Policy { max_bytes: Some(800 << 20), ..Policy::default() };
        let p = plan(&items, &policy, now());
        // 20 days ago: sid-gcc-16 (bigger) before sid-7; then 9 days ago,
        // which brings it under the bound.
        assert_eq!(
            removed(&p, &items),
            [
                (".sid-gcc-16.tmp".into(), Reason::Leftover),
                ("sid-gcc-16".into(), Reason::Size),
                ("sid-7".into(), Reason::Size),
                ("6.1/initramfs-b.cpio".into(), Reason::Size),
            ]
        );
        assert_eq!(p.bytes_after, 770 << 20);
        assert!(!p.over_bound(&policy));
    }

    #[test]
    fn age_then_size() {
        let items = inventory();
        let policy =
            Policy { older_than: Some(Duration::from_secs(10 * DAY)), max_bytes: Some(1 << 30), ..Policy::default() };
        let p = plan(&items, &policy, now());
        let names: Vec<String> = removed(&p, &items).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["sid-7", "sid-gcc-16", ".sid-gcc-16.tmp"]);
        assert_eq!(p.bytes_after, 820 << 20);
    }

    #[test]
    fn recent_items_stay_even_over_the_bound() {
        let items = inventory();
        let policy = Policy { max_bytes: Some(100 << 20), keep_recent: Duration::from_secs(3600), ..Policy::default() };
        let p = plan(&items, &policy, now());
        let kept: Vec<&str> = p.kept_recent.iter().map(|&i| items[i].name.as_str()).collect();
        assert_eq!(kept, ["bookworm-6.1", "6.1/guest-kmod"]);
        assert_eq!(p.bytes_after, 320 << 20);
        assert!(p.over_bound(&policy));
        // Without the grace the bound wins.
        let p = plan(&items, &Policy { keep_recent: Duration::ZERO, ..policy.clone() }, now());
        assert!(!p.over_bound(&policy), "{}", p.bytes_after);
    }

    #[test]
    fn busy_items_stay_and_the_next_oldest_goes() {
        let mut items = inventory();
        let policy = Policy { max_bytes: Some(800 << 20), ..Policy::default() };
        items[2].busy = true; // sid-gcc-16, the oldest
        let p = plan(&items, &policy, now());
        let names: Vec<String> = removed(&p, &items).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [".sid-gcc-16.tmp", "sid-7", "6.1/initramfs-b.cpio", "trixie-gcc-14", "6.1/initramfs-a.cpio"]
        );
        assert_eq!(p.kept_recent, [2]);
        assert_eq!(p.bytes_after, 770 << 20);
    }

    #[test]
    fn clean_takes_everything_not_recent() {
        let items = inventory();
        let policy = Policy { clean: true, keep_recent: Duration::from_secs(DAY / 2), ..Policy::default() };
        let p = plan(&items, &policy, now());
        assert_eq!(p.remove.len(), items.len() - 2);
        assert!(p.remove.iter().all(|&(_, r)| r == Reason::Clean));
        assert_eq!(p.bytes_after, 320 << 20);
    }

    #[test]
    fn sizes_and_ages_parse() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("300k"), Ok(300 << 10));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size(" 2 GB "), Ok(2 << 30));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("G").is_err());
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * DAY)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * DAY)));
        assert_eq!(parse_age("0"), Ok(Duration::ZERO));
        assert!(parse_age("7").is_err());
        assert!(parse_age("d").is_err());
        assert!(parse_age("-1d").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(340 << 20), "340 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
