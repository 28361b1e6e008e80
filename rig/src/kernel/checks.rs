//! Checking guests: the debugging a Debian kernel can do without a rebuild,
//! switched on from its command line, and which kernel can do which. The
//! decision reads the kernel's own config (`KernelTree::config`) and is
//! pure: [`support`] for one check, [`resolve`] for a list, [`table`] for
//! `rig kernels --checks`.

use std::collections::BTreeMap;
use std::fmt;

/// One kind of checking a guest can be booted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// SLUB debugging on every cache: sanity checks, red zones, poison,
    /// owner tracking (`slub_debug=FZPU`). Catches slab overflows and
    /// use-after-free when the object is freed or handed out again.
    Slub,
    /// KFENCE sampling (`kfence.sample_interval=`): guard pages around
    /// sampled objects, a report at the faulting access.
    Kfence,
    /// Freed memory is zeroed (`init_on_free=1`).
    InitOnFree,
    /// Allocated memory is zeroed (`init_on_alloc=1`).
    InitOnAlloc,
    /// Freed pages are poisoned and checked (`page_poison=1`).
    PagePoison,
    /// A WARNING panics (`panic_on_warn=1`).
    PanicOnWarn,
    /// An oops panics (`oops=panic`).
    OopsPanic,
    /// A soft lockup panics (`softlockup_panic=1`).
    SoftlockupPanic,
    /// Hung tasks are reported after [`HUNG_TASK_SECS`] instead of 120 s.
    HungTask,
}

/// `kfence.sample_interval` in ms (Debian builds it in with 0: off).
pub const KFENCE_SAMPLE_MS: u32 = 10;
/// The lowered `hung_task_timeout_secs`: below the default step timeout
/// (30 s), so a task stuck in a step is reported while the step runs.
pub const HUNG_TASK_SECS: u32 = 20;

impl Check {
    /// Every check, in the order tables list them.
    pub const ALL: [Check; 9] = [
        Check::Slub,
        Check::Kfence,
        Check::InitOnFree,
        Check::InitOnAlloc,
        Check::PagePoison,
        Check::PanicOnWarn,
        Check::OopsPanic,
        Check::SoftlockupPanic,
        Check::HungTask,
    ];

    /// Its name in `[guest] checks` and `--checks`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Slub => "slub",
            Check::Kfence => "kfence",
            Check::InitOnFree => "init_on_free",
            Check::InitOnAlloc => "init_on_alloc",
            Check::PagePoison => "page_poison",
            Check::PanicOnWarn => "panic_on_warn",
            Check::OopsPanic => "oops_panic",
            Check::SoftlockupPanic => "softlockup_panic",
            Check::HungTask => "hung_task",
        }
    }

    /// The check called `name`.
    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The command-line words that turn it on.
    pub fn args(self) -> Vec<String> {
        match self {
            Check::Slub => vec!["slub_debug=FZPU".into()],
            Check::Kfence => vec![format!("kfence.sample_interval={KFENCE_SAMPLE_MS}")],
            Check::InitOnFree => vec!["init_on_free=1".into()],
            Check::InitOnAlloc => vec!["init_on_alloc=1".into()],
            Check::PagePoison => vec!["page_poison=1".into()],
            Check::PanicOnWarn => vec!["panic_on_warn=1".into()],
            Check::OopsPanic => vec!["oops=panic".into()],
            Check::SoftlockupPanic => vec!["softlockup_panic=1".into()],
            Check::HungTask => vec![format!("sysctl.kernel.hung_task_timeout_secs={HUNG_TASK_SECS}")],
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every check name, for messages.
pub fn known_names() -> String {
    let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
    format!("{} (or all)", names.join(", "))
}

/// Names as the user wrote them (`all` stands for every check), in the
/// order of [`Check::ALL`], each once. The error names the first unknown.
pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Vec<Check>, String> {
    let mut out = Vec::new();
    for n in names {
        let n = n.as_ref().trim();
        if n == "all" {
            out.extend(Check::ALL);
        } else if let Some(c) = Check::from_name(n) {
            out.push(c);
        } else {
            return Err(format!("unknown check `{n}`: the checks are {}", known_names()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A kernel's config file: its options and the version in its header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// (major, minor) from `# Linux/x86 5.10.223 Kernel Configuration`.
    pub version: Option<(u32, u32)>,
    /// `CONFIG_X` -> its value; `n` for `# CONFIG_X is not set`.
    options: BTreeMap<String, String>,
}

impl KernelConfig {
    /// Reads the text of a `config-<release>` file.
    pub fn parse(text: &str) -> KernelConfig {
        let mut c = KernelConfig::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# Linux/") {
                let ver = rest.split_whitespace().nth(1).unwrap_or("");
                let mut it = ver.split('.').map(|p| p.parse::<u32>().ok());
                if let (Some(Some(a)), Some(Some(b))) = (it.next(), it.next()) {
                    c.version = Some((a, b));
                }
            } else if let Some(name) = line.strip_prefix("# ").and_then(|l| l.strip_suffix(" is not set")) {
                c.options.insert(name.to_string(), "n".into());
            } else if let Some((k, v)) = line.split_once('=').filter(|(k, _)| k.starts_with("CONFIG_")) {
                c.options.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        c
    }

    /// The option's value (`y`, `m`, a number...), `n` if not set, None if
    /// the kernel does not know it.
    pub fn get(&self, opt: &str) -> Option<&str> {
        self.options.get(opt).map(String::as_str)
    }

    fn on(&self, opt: &str) -> bool {
        self.get(opt) == Some("y")
    }

    fn at_least(&self, v: (u32, u32)) -> bool {
        self.version.is_some_and(|have| have >= v)
    }
}

/// Whether a kernel can do a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// Yes, with these command-line words; `default` when it is on anyway.
    Yes { args: Vec<String>, default: bool },
    /// No, and why (the config option it lacks).
    No { why: String },
}

fn needs(c: &KernelConfig, opt: &str) -> Option<String> {
    match c.get(opt) {
        Some("y") => None,
        Some(_) => Some(format!("{opt} is not set")),
        None => Some(format!("{opt} is not in this kernel's config")),
    }
}

/// Whether the kernel of `cfg` can do `check`, decided from its config.
pub fn support(cfg: &KernelConfig, check: Check) -> Support {
    let why = match check {
        Check::Slub => needs(cfg, "CONFIG_SLUB").or_else(|| needs(cfg, "CONFIG_SLUB_DEBUG")),
        Check::Kfence => needs(cfg, "CONFIG_KFENCE"),
        // The parameters came with the options (5.3): known means there.
        Check::InitOnFree | Check::InitOnAlloc => {
            let opt = if check == Check::InitOnFree {
                "CONFIG_INIT_ON_FREE_DEFAULT_ON"
            } else {
                "CONFIG_INIT_ON_ALLOC_DEFAULT_ON"
            };
            cfg.get(opt).is_none().then(|| format!("{opt} is not in this kernel's config (before 5.3)"))
        }
        Check::PagePoison => needs(cfg, "CONFIG_PAGE_POISONING"),
        Check::PanicOnWarn | Check::OopsPanic => None,
        Check::SoftlockupPanic => match cfg.get("CONFIG_SOFTLOCKUP_DETECTOR") {
            // Before 4.15 the soft lockup detector was CONFIG_LOCKUP_DETECTOR.
            None => needs(cfg, "CONFIG_LOCKUP_DETECTOR"),
            Some(_) => needs(cfg, "CONFIG_SOFTLOCKUP_DETECTOR"),
        },
        Check::HungTask => needs(cfg, "CONFIG_DETECT_HUNG_TASK")
            .or_else(|| needs(cfg, "CONFIG_PROC_SYSCTL"))
            .or_else(|| (!cfg.at_least((5, 8))).then(|| "sysctl.* on the command line needs 5.8 or later".to_string())),
    };
    if let Some(why) = why {
        return Support::No { why };
    }
    let default = match check {
        Check::Slub => cfg.on("CONFIG_SLUB_DEBUG_ON"),
        Check::InitOnFree => cfg.on("CONFIG_INIT_ON_FREE_DEFAULT_ON"),
        Check::InitOnAlloc => cfg.on("CONFIG_INIT_ON_ALLOC_DEFAULT_ON"),
        Check::PanicOnWarn => cfg.get("CONFIG_PANIC_ON_WARN_DEFAULT_ENABLE") == Some("y"),
        Check::OopsPanic => cfg.on("CONFIG_PANIC_ON_OOPS"),
        Check::SoftlockupPanic => {
            cfg.on("CONFIG_BOOTPARAM_SOFTLOCKUP_PANIC") || cfg.get("CONFIG_BOOTPARAM_SOFTLOCKUP_PANIC") == Some("1")
        }
        _ => false,
    };
    Support::Yes { args: check.args(), default }
}

/// What a list of checks comes to on one kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The command-line words, in the order of the checks.
    pub args: Vec<String>,
    /// The checks it does, with whether each is on by default anyway.
    pub on: Vec<(Check, bool)>,
    /// The checks it cannot do, and why.
    pub off: Vec<(Check, String)>,
}

/// The checks of `wanted` the kernel of `cfg` can do, and their words.
pub fn resolve(cfg: &KernelConfig, wanted: &[Check]) -> Resolved {
    let mut r = Resolved::default();
    for &c in wanted {
        match support(cfg, c) {
            Support::Yes { args, default } => {
                r.args.extend(args);
                r.on.push((c, default));
            }
            Support::No { why } => r.off.push((c, why)),
        }
    }
    r
}

impl Resolved {
    /// One line for the run's notes.
    pub fn summary(&self, kernel: &str) -> String {
        let on: Vec<String> = self
            .on
            .iter()
            .map(|(c, default)| if *default { format!("{c} (on by default)") } else { c.to_string() })
            .collect();
        let mut s = format!("checks on {kernel}: {}", if on.is_empty() { "none".into() } else { on.join(", ") });
        if !self.off.is_empty() {
            let off: Vec<String> = self.off.iter().map(|(c, why)| format!("{c} ({why})")).collect();
            s.push_str(&format!("; not on this kernel, left out: {}", off.join(", ")));
        }
        s
    }
}

/// The `rig kernels --checks` table: a row per check, a column per kernel
/// (`yes`, `default` when on anyway, `-` when it cannot, `?` when its
/// config is not at hand), the words it adds, then why each `-` is.
pub fn table(kernels: &[(String, Option<KernelConfig>)]) -> String {
    let mut cols: Vec<Vec<String>> = vec![];
    let mut whys: BTreeMap<(Check, String), Vec<String>> = BTreeMap::new();
    for (name, cfg) in kernels {
        let mut col = vec![name.clone()];
        for c in Check::ALL {
            col.push(match cfg.as_ref().map(|cfg| support(cfg, c)) {
                None => "?".into(),
                Some(Support::Yes { default: true, .. }) => "default".into(),
                Some(Support::Yes { .. }) => "yes".into(),
                Some(Support::No { why }) => {
                    whys.entry((c, why)).or_default().push(name.clone());
                    "-".into()
                }
            });
        }
        cols.push(col);
    }
    let mut rows: Vec<Vec<String>> = vec![];
    let mut head = vec!["check".to_string()];
    head.extend(cols.iter().map(|c| c[0].clone()));
    head.push("turns on".into());
    rows.push(head);
    for (i, c) in Check::ALL.iter().enumerate() {
        let mut row = vec![c.name().to_string()];
        row.extend(cols.iter().map(|col| col[i + 1].clone()));
        row.push(c.args().join(" "));
        rows.push(row);
    }
    let ncols = rows[0].len();
    let widths: Vec<usize> = (0..ncols).map(|j| rows.iter().map(|r| r[j].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(j, cell)| if j + 1 == ncols { cell.clone() } else { format!("{cell:<w$}", w = widths[j]) })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for ((c, why), names) in &whys {
        out.push_str(&format!("-: {c} on {}: {why}\n", names.join(", ")));
    }
    let missing: Vec<&str> = kernels.iter().filter(|(_, c)| c.is_none()).map(|(n, _)| n.as_str()).collect();
    if !missing.is_empty() {
        out.push_str(&format!("?: not cached: {} (`rig fetch NAME` downloads one)\n", missing.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines that matter of the catalog kernels' configs.
    const BULLSEYE: &str =
        "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 5.10.223 Kernel Configuration\n#\n\
        CONFIG_SLUB_DEBUG=y\n# CONFIG_SLAB is not set\nCONFIG_SLUB=y\nCONFIG_PROC_SYSCTL=y\n\
        CONFIG_INIT_ON_ALLOC_DEFAULT_ON=y\n# CONFIG_INIT_ON_FREE_DEFAULT_ON is not set\n\
        # CONFIG_PAGE_POISONING is not set\n# CONFIG_SLUB_DEBUG_ON is not set\n# CONFIG_PANIC_ON_OOPS is not set\n\
        CONFIG_LOCKUP_DETECTOR=y\nCONFIG_SOFTLOCKUP_DETECTOR=y\n# CONFIG_BOOTPARAM_SOFTLOCKUP_PANIC is not set\n\
        CONFIG_DETECT_HUNG_TASK=y\nCONFIG_DEFAULT_HUNG_TASK_TIMEOUT=120\n";
    const SID: &str = "# Linux/x86 7.2.13 Kernel Configuration\nCONFIG_SLUB=y\nCONFIG_SLUB_DEBUG=y\n\
        CONFIG_PROC_SYSCTL=y\nCONFIG_INIT_ON_ALLOC_DEFAULT_ON=y\n# CONFIG_INIT_ON_FREE_DEFAULT_ON is not set\n\
        # CONFIG_PAGE_POISONING is not set\nCONFIG_KFENCE=y\nCONFIG_KFENCE_SAMPLE_INTERVAL=0\n\
        CONFIG_SOFTLOCKUP_DETECTOR=y\nCONFIG_BOOTPARAM_SOFTLOCKUP_PANIC=0\nCONFIG_DETECT_HUNG_TASK=y\n";

    #[test]
    fn names_parse_with_all_and_unknowns_are_named() {
        assert_eq!(parse_names(&["kfence", "slub", "slub"]), Ok(vec![Check::Slub, Check::Kfence]));
        assert_eq!(parse_names(&["all"]).map(|v| v.len()), Ok(Check::ALL.len()));
        let e = parse_names(&["slub", "kasan"]).expect_err("kasan is no check");
        assert!(e.contains("`kasan`") && e.contains("init_on_free"), "{e}");
        for c in Check::ALL {
            assert_eq!(Check::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn configs_parse() {
        let c = KernelConfig::parse(BULLSEYE);
        assert_eq!(c.version, Some((5, 10)));
        assert_eq!(c.get("CONFIG_SLUB"), Some("y"));
        assert_eq!(c.get("CONFIG_PAGE_POISONING"), Some("n"));
        assert_eq!(c.get("CONFIG_KFENCE"), None);
        assert_eq!(c.get("CONFIG_DEFAULT_HUNG_TASK_TIMEOUT"), Some("120"));
        assert_eq!(KernelConfig::parse("CONFIG_X=\"a b\"\n").get("CONFIG_X"), Some("a b"));
    }

    #[test]
    fn what_each_catalog_kernel_can_do() {
        let old = KernelConfig::parse(BULLSEYE);
        let new = KernelConfig::parse(SID);
        assert_eq!(support(&old, Check::Slub), Support::Yes { args: vec!["slub_debug=FZPU".into()], default: false });
        assert!(matches!(support(&old, Check::Kfence), Support::No { why } if why.contains("CONFIG_KFENCE")));
        assert!(matches!(support(&new, Check::Kfence), Support::Yes { .. }));
        assert!(
            matches!(support(&new, Check::PagePoison), Support::No { why } if why == "CONFIG_PAGE_POISONING is not set")
        );
        assert!(matches!(support(&old, Check::InitOnAlloc), Support::Yes { default: true, .. }));
        assert!(matches!(support(&old, Check::InitOnFree), Support::Yes { default: false, .. }));
        assert!(matches!(support(&new, Check::SoftlockupPanic), Support::Yes { default: false, .. }));
        assert!(matches!(support(&new, Check::HungTask), Support::Yes { .. }));
        assert!(matches!(support(&old, Check::PanicOnWarn), Support::Yes { .. }));
        // A config that lacks an option, and one from before 5.8.
        let bare = KernelConfig::parse(
            "# Linux/x86 5.4.0 Kernel Configuration\nCONFIG_DETECT_HUNG_TASK=y\nCONFIG_PROC_SYSCTL=y\n",
        );
        assert!(matches!(support(&bare, Check::HungTask), Support::No { why } if why.contains("5.8")));
        assert!(matches!(support(&bare, Check::InitOnFree), Support::No { why } if why.contains("5.3")));
        assert!(matches!(support(&bare, Check::SoftlockupPanic), Support::No { .. }));
    }

    #[test]
    fn resolving_keeps_order_and_says_what_is_left_out() {
        let old = KernelConfig::parse(BULLSEYE);
        let r = resolve(&old, &[Check::Slub, Check::Kfence, Check::InitOnAlloc, Check::HungTask]);
        assert_eq!(
            r.args,
            vec![
                "slub_debug=FZPU",
                "init_on_alloc=1",
                &format!("sysctl.kernel.hung_task_timeout_secs={HUNG_TASK_SECS}")
            ]
        );
        assert_eq!(r.off.len(), 1);
        let line = r.summary("bullseye-5.10");
        assert_eq!(
            line,
            "checks on bullseye-5.10: slub, init_on_alloc (on by default), hung_task; not on this kernel, left out: kfence (CONFIG_KFENCE is not in this kernel's config)"
        );
        assert!(!line.contains('\n'));
        assert_eq!(resolve(&old, &[]).summary("x"), "checks on x: none");
    }

    #[test]
    fn the_table_has_a_row_per_check_and_says_why() {
        let t = table(&[
            ("bullseye-5.10".into(), Some(KernelConfig::parse(BULLSEYE))),
            ("sid-7".into(), Some(KernelConfig::parse(SID))),
            ("trixie-6.12".into(), None),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("check") && lines[0].contains("sid-7") && lines[0].ends_with("turns on"));
        let row =
            |name: &str| lines.iter().find(|l| l.starts_with(name)).map(|l| l.split_whitespace().collect::<Vec<_>>());
        assert_eq!(row("kfence").expect("row")[..4], ["kfence", "-", "yes", "?"]);
        assert_eq!(row("init_on_alloc").expect("row")[..4], ["init_on_alloc", "default", "default", "?"]);
        assert!(t.contains("-: kfence on bullseye-5.10: CONFIG_KFENCE is not in this kernel's config"));
        assert!(t.contains("-: page_poison on bullseye-5.10, sid-7: CONFIG_PAGE_POISONING is not set"));
        assert!(t.contains("?: not cached: trixie-6.12"));
        assert_eq!(lines.iter().filter(|l| !l.starts_with('-') && !l.starts_with('?')).count(), Check::ALL.len() + 1);
    }
}
