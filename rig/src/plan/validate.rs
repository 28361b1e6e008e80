//! From the file as written to a [`Plan`]: paths resolved against the
//! config's directory, cross-field rules, one error per problem with its
//! line and key.

use super::devices::{devices, iommu, report_class, shm_of_device};
use super::file::DEFAULT_VECTORS;
use super::file::*;
use super::net::{self, Nics};
use super::rootfs;
use super::step::{Action, Check, Expect, Memory, Source};
use super::{
    is_shm_kind, ConfigError, FilePlan, GuestPlan, ModulePlan, Plan, ShmPlan, TestGroup, DEFAULT_STEP_TIMEOUT,
};
use crate::kernel::catalog::Catalog;
use crate::support::parse_hex;
use crate::verdict::Class;
use crate::vm::devices::DeviceTable;
use regex::Regex;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map(|s| s.matches('\n').count() + 1).unwrap_or(1)
}

pub(super) struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    dir: PathBuf,
    /// `path` made absolute, for the steps' [`Source`]s.
    absolute: PathBuf,
}

impl Ctx<'_> {
    pub(super) fn invalid(&self, span: std::ops::Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: line_of(self.text, span.start),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        let joined = if p.is_absolute() { p.to_path_buf() } else { self.dir.join(p) };
        // Canonical when it exists, so messages and cache keys are stable.
        std::fs::canonicalize(&joined).unwrap_or(joined)
    }
}

/// Guest RAM, MiB: a Debian kernel with its initramfs needs about 100.
const MEMORY_MIB: std::ops::RangeInclusive<u64> = 96..=65536;
/// vCPUs (QEMU's q35 limit is far above what a test guest wants).
const CPUS: std::ops::RangeInclusive<u64> = 1..=64;
/// ivshmem size, MiB (a power of two besides).
pub(super) const SHM_MIB: std::ops::RangeInclusive<u64> = 1..=16384;
/// ivshmem-doorbell MSI-X vectors.
pub(super) const VECTORS: std::ops::RangeInclusive<u64> = 1..=64;
/// Any timeout, in seconds: at most a day.
const TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=86_400;

fn range_message(v: u64, r: std::ops::RangeInclusive<u64>, unit: &str) -> String {
    format!("{v} is out of range: give {} to {} {unit}", r.start(), r.end())
}

pub(super) fn in_range<T: Copy + Into<u64>>(
    cx: &Ctx,
    v: &Spanned<T>,
    key: &str,
    r: std::ops::RangeInclusive<u64>,
) -> Result<(), ConfigError> {
    let n: u64 = (*v.get_ref()).into();
    if r.contains(&n) {
        return Ok(());
    }
    let unit = if key.ends_with("mib") { "MiB" } else { "" };
    Err(cx.invalid(v.span(), key, range_message(n, r, unit).trim_end().to_string()))
}

/// A guest path the user may put a file at: absolute, normal, and not one
/// the guest needs for itself.
fn guest_dest_ok(dest: &str) -> Result<(), String> {
    if !dest.starts_with('/') {
        return Err("must be an absolute guest path".into());
    }
    if dest.ends_with('/') || dest.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!("`{dest}` must name a file, without `.`, `..` or a trailing `/`"));
    }
    let reserved = ["/init", "/bin/busybox", crate::guest::protocol::MODULE_DIR];
    if dest == "/" || reserved.iter().any(|r| dest == *r || dest.starts_with(&format!("{r}/"))) {
        return Err(format!(
            "`{dest}` belongs to the rig's own guest (/init, busybox, the modules): put the file elsewhere"
        ));
    }
    Ok(())
}

/// Reads and validates a config file.
pub fn load(path: &Path, catalog: &Catalog) -> Result<Plan, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(path, &text, catalog)
}

/// Parses and validates config text (as if read from `path`).
pub fn parse(path: &Path, text: &str, catalog: &Catalog) -> Result<Plan, ConfigError> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: e.message().to_string(),
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    // Canonical when it exists, so a CI workspace prefix can be stripped from it.
    let absolute =
        std::fs::canonicalize(path).or_else(|_| std::path::absolute(path)).unwrap_or_else(|_| path.to_path_buf());
    let cx = Ctx { path, text, dir, absolute };
    validate(&cx, file, catalog)
}

fn validate(cx: &Ctx, f: ConfigFile, catalog: &Catalog) -> Result<Plan, ConfigError> {
    let kernels = match &f.kernels {
        None => vec![],
        Some(k) => {
            let words = match k.get_ref() {
                KernelsSpec::One(s) if s == "default" => vec![],
                KernelsSpec::One(s) => vec![s.clone()],
                KernelsSpec::Many(v) => v.clone(),
            };
            if matches!(k.get_ref(), KernelsSpec::Many(v) if v.is_empty()) {
                return Err(cx.invalid(
                    k.span(),
                    "kernels",
                    "an empty list names no kernel: leave `kernels` out for the default, or name some (`rig kernels`)",
                ));
            }
            if words.is_empty() {
                vec![]
            } else {
                catalog
                    .select(Some(&words.join(",")), &[])
                    .map_err(|e| cx.invalid(k.span(), "kernels", e.to_string()))?
            }
        }
    };

    let mut modules = Vec::new();
    for (i, m) in f.module.iter().enumerate() {
        let dir = cx.resolve(m.path.get_ref());
        let key = format!("module[{i}].path");
        if !dir.is_dir() {
            return Err(cx.invalid(m.path.span(), &key, format!("directory {} does not exist", dir.display())));
        }
        if !dir.join("Kbuild").is_file() && !dir.join("Makefile").is_file() {
            return Err(cx.invalid(m.path.span(), &key, format!("{} has no Kbuild or Makefile", dir.display())));
        }
        modules.push(ModulePlan {
            dir,
            make_vars: m.make.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            params: m.params.clone(),
            load: m.load,
        });
    }

    let g = &f.guest;
    let mut cmdline = g.cmdline.clone();
    if g.oops_panic {
        cmdline.push("oops=panic".into());
    }
    if g.panic_on_warn {
        cmdline.push("panic_on_warn=1".into());
    }
    let mut files = Vec::new();
    for (i, fs) in g.files.iter().enumerate() {
        let src = cx.resolve(fs.src.get_ref());
        if !src.is_file() {
            return Err(cx.invalid(
                fs.src.span(),
                &format!("guest.files[{i}].src"),
                format!("file {} does not exist", src.display()),
            ));
        }
        if let Err(why) = guest_dest_ok(fs.dest.get_ref()) {
            return Err(cx.invalid(fs.dest.span(), &format!("guest.files[{i}].dest"), why));
        }
        let mode = match &fs.mode {
            None => None,
            Some(m) => Some(u32::from_str_radix(m.get_ref().trim_start_matches("0o"), 8).map_err(|_| {
                cx.invalid(
                    m.span(),
                    &format!("guest.files[{i}].mode"),
                    format!("`{}` is not an octal mode like \"0755\"", m.get_ref()),
                )
            })?),
        };
        files.push(FilePlan { src, dest: fs.dest.get_ref().clone(), mode });
    }
    let table = DeviceTable::builtin().map_err(|e| cx.invalid(0..0, "device", e.to_string()))?;
    let devices = devices(cx, &f.device, &table)?;
    let shm_device = f.device.iter().find(|d| is_shm_kind(d.get_ref().kind.get_ref()));
    let shm = match (&g.ivshmem, shm_device) {
        (Some(_), Some(d)) => {
            return Err(cx.invalid(
                d.span(),
                "device",
                "the guest's shared memory is given twice, by [guest.ivshmem] and by this ivshmem [[device]]: keep one (the [[device]] names it, binds it and fixes its address)",
            ))
        }
        (None, Some(d)) => Some(shm_of_device(d.get_ref())),
        (None, None) => Some(ShmPlan { size: 4 << 20, doorbell: false, vectors: DEFAULT_VECTORS }),
        (Some(s), None) if *s.size_mib.get_ref() == 0 => None,
        (Some(s), None) => {
            let mib = *s.size_mib.get_ref();
            if !mib.is_power_of_two() {
                return Err(cx.invalid(
                    s.size_mib.span(),
                    "guest.ivshmem.size_mib",
                    "must be a power of two (1, 2, 4, ...)",
                ));
            }
            in_range(cx, &s.size_mib, "guest.ivshmem.size_mib", SHM_MIB)?;
            in_range(cx, &s.vectors, "guest.ivshmem.vectors", VECTORS)?;
            Some(ShmPlan { size: mib << 20, doorbell: s.doorbell, vectors: *s.vectors.get_ref() })
        }
    };
    in_range(cx, &g.memory_mib, "guest.memory_mib", MEMORY_MIB)?;
    in_range(cx, &g.cpus, "guest.cpus", CPUS)?;
    let iommu = iommu(cx, g.iommu.as_ref(), &f.device)?;
    let nics = net::nics(cx, &f.device, &table)?;
    let root = rootfs::rootfs(cx, g)?;
    let memory_mib = rootfs::memory(g, root.is_some());
    let hugepages = rootfs::hugepages(cx, g.hugepages_mib.as_ref(), memory_mib)?;
    let mut checks = Vec::new();
    for (i, name) in g.checks.iter().enumerate() {
        let c = crate::kernel::checks::parse_names(&[name.get_ref()])
            .map_err(|e| cx.invalid(name.span(), &format!("guest.checks[{i}]"), e))?;
        checks.extend(c);
    }
    checks.sort();
    checks.dedup();
    let guest = GuestPlan {
        memory_mib,
        cpus: *g.cpus.get_ref(),
        cmdline,
        files,
        shm,
        isolation: g.isolation,
        iommu,
        devices,
        checks,
        strict_checks: g.strict_checks,
        captures: nics.capturing.clone(),
        rootfs: root,
        hugepages,
    };

    let targets = Targets {
        shm: guest.shm.is_some(),
        images: guest.devices.iter().filter(|d| d.image_size.is_some()).map(|d| d.name.clone()).collect(),
        nics,
    };
    let steps = |list: &[Spanned<StepSpec>], key: &str| -> Result<Vec<Check>, ConfigError> {
        list.iter().enumerate().map(|(i, s)| step(cx, s, &format!("{key}[{i}]"), &targets)).collect()
    };
    let setup = steps(&f.setup, "setup")?;
    let teardown = steps(&f.teardown, "teardown")?;
    let mut tests = Vec::new();
    for (i, t) in f.test.iter().enumerate() {
        tests.push(TestGroup { name: t.name.clone(), checks: steps(&t.step, &format!("test[{i}].step"))? });
    }
    Ok(Plan { source: cx.path.to_path_buf(), kernels, modules, intree: f.intree, guest, setup, teardown, tests })
}

/// What host memory checks may address.
struct Targets {
    /// The guest has shared memory.
    shm: bool,
    /// Devices with a backing image.
    images: Vec<String>,
    /// The NICs, and the ones that capture.
    nics: Nics,
}

fn step(cx: &Ctx, s: &Spanned<StepSpec>, key: &str, targets: &Targets) -> Result<Check, ConfigError> {
    let span = s.span();
    let source = Source { file: cx.absolute.clone(), line: line_of(cx.text, span.start) };
    let st = s.get_ref();
    if let Some(t) = st.timeout.filter(|t| !TIMEOUT_SECS.contains(t)) {
        return Err(cx.invalid(span, &format!("{key}.timeout"), range_message(t, TIMEOUT_SECS, "seconds")));
    }
    let timeout = st.timeout.map(Duration::from_secs).unwrap_or(DEFAULT_STEP_TIMEOUT);
    let expect = match (&st.expect, &st.expect_regex) {
        (Some(_), Some(_)) => return Err(cx.invalid(span, key, "give `expect` or `expect_regex`, not both")),
        (Some(sub), None) => Some(Expect::Contains(sub.clone())),
        (None, Some(re)) => Some(Expect::Matches(
            Regex::new(&format!("(?m){}", re.get_ref()))
                .map_err(|e| cx.invalid(re.span(), &format!("{key}.expect_regex"), e.to_string()))?,
        )),
        (None, None) => None,
    };
    let report = match &st.expect_report {
        None => None,
        Some(r) => Some(report_class(r.get_ref()).ok_or_else(|| {
            let known: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
            cx.invalid(
                r.span(),
                &format!("{key}.expect_report"),
                format!("`{}` is not a kind of kernel report; give one of {}", r.get_ref(), known.join(", ")),
            )
        })?),
    };
    let (name, action) = match (&st.run, &st.host) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(cx.invalid(span, key, "a step has exactly one of `run` (guest command) or `host` (host check)"))
        }
        (Some(cmd), None) => (
            st.name.clone().unwrap_or_else(|| cmd.clone()),
            Action::Guest { command: cmd.clone(), status: st.status.unwrap_or(0), expect, timeout, report },
        ),
        (None, Some(h)) => {
            if expect.is_some() && h.command.is_none() {
                return Err(cx.invalid(span, key, "`expect` applies to `run` and `host.command` steps only"));
            }
            if report.is_some() {
                return Err(cx.invalid(
                    span,
                    &format!("{key}.expect_report"),
                    "`expect_report` applies to `run` steps only",
                ));
            }
            let (name, action) = host_action(cx, h, span, key, targets, (st.status.unwrap_or(0), expect, timeout))?;
            (st.name.clone().unwrap_or(name), action)
        }
    };
    Ok(Check { name, action, source: Some(source) })
}

fn host_action(
    cx: &Ctx,
    hs: &HostSpec,
    span: std::ops::Range<usize>,
    key: &str,
    targets: &Targets,
    // What a `host.command` is held to: status, output, time.
    (status, expect, timeout): (i32, Option<Expect>, Duration),
) -> Result<(String, Action), ConfigError> {
    let kinds = [
        hs.verify_pattern.is_some(),
        hs.fill_pattern.is_some(),
        hs.expect_bytes.is_some(),
        hs.expect_string.is_some(),
        hs.header.is_some(),
        hs.write_bytes.is_some(),
        hs.produce.is_some(),
        hs.write_string.is_some(),
        hs.command.is_some(),
        hs.doorbell.is_some(),
        hs.fuzz_ring.is_some(),
        hs.pcap.is_some(),
        hs.send.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(cx.invalid(
            span,
            &format!("{key}.host"),
            "give exactly one of verify_pattern, fill_pattern, expect_bytes, expect_string, write_bytes, write_string, produce, header, command, doorbell, fuzz_ring, pcap, send",
        ));
    }
    if let Some(p) = &hs.pcap {
        return net::pcap(cx, p, span, key, &targets.nics);
    }
    if let Some(s) = &hs.send {
        return net::send(cx, s, span, key, &targets.nics);
    }
    let needs_shm = || -> Result<(), ConfigError> {
        if targets.shm {
            Ok(())
        } else {
            Err(cx.invalid(
                span.clone(),
                &format!("{key}.host"),
                "host memory checks need [guest.ivshmem] (size_mib > 0)",
            ))
        }
    };
    // Which memory a pattern, bytes or string check works on, and how its name says so.
    let memory = |device: &Option<String>, which: &str| -> Result<(Memory, String), ConfigError> {
        match device {
            None => needs_shm().map(|_| (Memory::Shm, String::new())),
            Some(d) if targets.images.contains(d) => Ok((Memory::Image(d.clone()), format!(" of {d}'s image"))),
            Some(d) => Err(cx.invalid(
                span.clone(),
                &format!("{key}.host.{which}.device"),
                format!(
                    "no [[device]] `{d}` with a backing image; devices with one: {}",
                    if targets.images.is_empty() {
                        "none (give a kind = \"nvme\" device)".to_string()
                    } else {
                        targets.images.join(", ")
                    }
                ),
            )),
        }
    };
    if hs.header.is_some() || hs.produce.is_some() || hs.doorbell.is_some() {
        needs_shm()?;
    }
    let r = if let Some(p) = &hs.verify_pattern {
        let (memory, of) = memory(&p.device, "verify_pattern")?;
        (
            format!("host: pattern {} at {:#x}+{:#x}{of}", p.seed, p.offset, p.len),
            Action::HostVerify { memory, offset: p.offset, len: p.len, seed: p.seed },
        )
    } else if let Some(p) = &hs.fill_pattern {
        let (memory, of) = memory(&p.device, "fill_pattern")?;
        (
            format!("host: write pattern {} at {:#x}+{:#x}{of}", p.seed, p.offset, p.len),
            Action::HostFill { memory, offset: p.offset, len: p.len, seed: p.seed },
        )
    } else if let Some(b) = &hs.expect_bytes {
        let (memory, of) = memory(&b.device, "expect_bytes")?;
        let bytes =
            parse_hex(&b.hex).map_err(|m| cx.invalid(span.clone(), &format!("{key}.host.expect_bytes.hex"), m))?;
        (
            format!("host: bytes at {:#x}{of} are {}", b.offset, b.hex),
            Action::HostBytes { memory, offset: b.offset, bytes },
        )
    } else if let Some(s) = &hs.expect_string {
        let (memory, of) = memory(&s.device, "expect_string")?;
        (
            format!("host: string at {:#x}{of} is {:?}", s.offset, s.string),
            Action::HostBytes { memory, offset: s.offset, bytes: s.string.as_bytes().to_vec() },
        )
    } else if let Some(b) = &hs.write_bytes {
        let (memory, of) = memory(&b.device, "write_bytes")?;
        let bytes =
            parse_hex(&b.hex).map_err(|m| cx.invalid(span.clone(), &format!("{key}.host.write_bytes.hex"), m))?;
        (format!("host: write {} at {:#x}{of}", b.hex, b.offset), Action::HostWrite { memory, offset: b.offset, bytes })
    } else if let Some(p) = &hs.produce {
        (
            format!("host: produce {} buffers of {} bytes into the ring", p.count, p.len),
            Action::HostProduce { count: p.count, len: p.len, seed: p.seed },
        )
    } else if let Some(w) = &hs.write_string {
        let (memory, of) = memory(&w.device, "write_string")?;
        (
            format!("host: write {:?} at {:#x}{of}", w.string, w.offset),
            Action::HostWrite { memory, offset: w.offset, bytes: w.string.as_bytes().to_vec() },
        )
    } else if let Some(hd) = &hs.header {
        (format!("host: module header state {}", hd.state), Action::HostHeader { state: hd.state })
    } else if let Some(c) = &hs.command {
        (format!("host: {c}"), Action::HostCommand { command: c.clone(), status, expect, timeout, cwd: cx.dir.clone() })
    } else if let Some(d) = &hs.doorbell {
        if d.ring_vector.is_none() == d.wait_vector.is_none() {
            return Err(cx.invalid(
                span,
                &format!("{key}.host.doorbell"),
                "give exactly one of ring_vector or wait_vector",
            ));
        }
        if let Some(t) = d.timeout.filter(|t| !TIMEOUT_SECS.contains(t)) {
            let why = range_message(t, TIMEOUT_SECS, "seconds");
            return Err(cx.invalid(span, &format!("{key}.host.doorbell.timeout"), why));
        }
        let t = d.timeout.map(Duration::from_secs).unwrap_or(Duration::from_secs(10));
        match (d.ring_vector, d.wait_vector) {
            (Some(v), _) => (format!("host: ring the guest on vector {v}"), Action::HostRing { vector: v }),
            (_, Some(v)) => (format!("host: guest rings vector {v}"), Action::HostWaitRing { vector: v, timeout: t }),
            _ => unreachable!("checked above"),
        }
    } else if let Some(f) = &hs.fuzz_ring {
        let secs = f.secs.unwrap_or(10);
        if !TIMEOUT_SECS.contains(&secs) {
            let why = range_message(secs, TIMEOUT_SECS, "seconds");
            return Err(cx.invalid(span, &format!("{key}.host.fuzz_ring.secs"), why));
        }
        (
            format!("host: garbage into the ring for {secs} s (seed {})", f.seed),
            Action::HostFuzzRing {
                seed: f.seed,
                writes: f.writes.unwrap_or(u64::MAX),
                duration: Duration::from_secs(secs),
            },
        )
    } else {
        unreachable!("exactly one kind checked above")
    };
    Ok(r)
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        Catalog::builtin().expect("catalog")
    }

    fn parse_in(dir: &Path, text: &str) -> Result<Plan, ConfigError> {
        parse(&dir.join("rig.toml"), text, &cat())
    }

    fn module_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(d.path().join("m")).expect("mkdir");
        std::fs::write(d.path().join("m/Kbuild"), "obj-m := m.o\n").expect("kbuild");
        d
    }

    #[test]
    fn full_example_parses() {
        let d = module_dir();
        std::fs::write(d.path().join("tool"), "#!/bin/sh\n").expect("tool");
        let text = r#"
kernels = ["bookworm-6.1"]
intree = ["vfio-pci"]
[[module]]
path = "m"
make = { W = "1" }
params = "x=1"
[guest]
memory_mib = 512
cmdline = ["memmap=1M$0x30000000"]
panic_on_warn = true
files = [ { src = "tool", dest = "/usr/bin/tool", mode = "0755" } ]
[guest.ivshmem]
size_mib = 8
[[setup]]
run = "echo setup"
[[test]]
name = "t1"
  [[test.step]]
  run = "echo hi"
  expect = "hi"
  [[test.step]]
  name = "host side"
  host.verify_pattern = { offset = 0x1000, len = 16, seed = 7 }
  [[test.step]]
  host.expect_bytes = { offset = 0, hex = "52 49 47 53" }
  [[test.step]]
  host.command = "cmp {shm} {shm}"
  expect_regex = "^$"
"#;
        let p = parse_in(d.path(), text).expect("plan");
        assert_eq!(p.kernels, vec!["bookworm-6.1"]);
        assert_eq!(p.modules[0].make_vars, vec![("W".to_string(), "1".to_string())]);
        assert!(p.guest.cmdline.contains(&"panic_on_warn=1".to_string()));
        assert_eq!(p.guest.shm.map(|s| s.size), Some(8 << 20));
        assert_eq!(p.guest.files[0].mode, Some(0o755));
        assert_eq!(p.tests[0].checks.len(), 4);
        assert_eq!(p.tests[0].checks[0].name, "echo hi");
        assert_eq!(p.tests[0].checks[1].name, "host side");
        assert!(matches!(&p.tests[0].checks[2].action, Action::HostBytes { bytes, .. } if bytes == b"RIGS"));
    }

    #[test]
    fn steps_know_their_file_and_line() {
        let d = module_dir();
        let text = "[[setup]]\nrun = \"s\"\n\n[[test]]\nname = \"a\"\n\n  # why\n  [[test.step]]\n  name = \"x\"\n  run = \"y\"\n\n[[test]]\nname = \"b\"\nstep = [ { run = \"z\" },\n  { run = \"w\" } ]\n";
        std::fs::write(d.path().join("rig.toml"), text).expect("config");
        let p = parse_in(d.path(), text).expect("plan");
        let line = |c: &Check| c.source.as_ref().map(|s| s.line);
        assert_eq!(line(&p.setup[0]), Some(1));
        // The header's line, not the first key's.
        assert_eq!(line(&p.tests[0].checks[0]), Some(8));
        assert_eq!((line(&p.tests[1].checks[0]), line(&p.tests[1].checks[1])), (Some(14), Some(15)));
        let file = &p.tests[0].checks[0].source.as_ref().expect("source").file;
        assert!(file.is_absolute() && file.ends_with("rig.toml"), "{}", file.display());
        assert_eq!(*file, d.path().join("rig.toml").canonicalize().expect("canonical"));
    }

    fn err(text: &str) -> String {
        let d = module_dir();
        match parse_in(d.path(), text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn isolation_is_on_failure_unless_the_config_says_otherwise() {
        let d = module_dir();
        assert_eq!(parse_in(d.path(), "").expect("plan").guest.isolation, crate::plan::Isolation::OnFailure);
        for (word, isolation) in [("none", crate::plan::Isolation::None), ("group", crate::plan::Isolation::Group)] {
            let p = parse_in(d.path(), &format!("[guest]\nisolation = \"{word}\"\n")).expect("plan");
            assert_eq!(p.guest.isolation, isolation);
        }
        let e = err("[guest]\n\nisolation = \"test\"\n");
        assert!(e.contains("rig.toml:3") && e.contains("on-failure") && e.contains("none"), "{e}");
    }

    #[test]
    fn unknown_key_has_line() {
        let e = err("[guest]\nmemory_mib = 256\nmemroy = 3\n");
        assert!(e.contains("rig.toml:3") && e.contains("memroy"), "{e}");
    }

    #[test]
    fn wrong_type_has_line() {
        let e = err("[guest]\n\ncpus = \"two\"\n");
        assert!(e.contains("rig.toml:3"), "{e}");
    }

    #[test]
    fn missing_module_dir_and_file() {
        let e = err("[[module]]\npath = \"nope\"\n");
        assert!(e.contains("rig.toml:2") && e.contains("module[0].path") && e.contains("does not exist"), "{e}");
        let e = err("[guest]\nfiles = [ { src = \"missing\", dest = \"/x\" } ]\n");
        assert!(e.contains("guest.files[0].src") && e.contains("does not exist"), "{e}");
    }

    #[test]
    fn step_shapes() {
        let e = err("[[test]]\nname = \"a\"\n[[test.step]]\nrun = \"x\"\nhost.header = { state = 1 }\n");
        assert!(e.contains("test[0].step[0]") && e.contains("exactly one"), "{e}");
        let e = err("[[test]]\nname = \"a\"\n[[test.step]]\nrun = \"x\"\nexpect_regex = \"(\"\n");
        assert!(e.contains("expect_regex"), "{e}");
        let e =
            err("[guest.ivshmem]\nsize_mib = 0\n[[test]]\nname = \"a\"\n[[test.step]]\nhost.header = { state = 1 }\n");
        assert!(e.contains("need [guest.ivshmem]"), "{e}");
        let e = err("[guest.ivshmem]\nsize_mib = 3\n");
        assert!(e.contains("power of two") && e.contains("rig.toml:2"), "{e}");
    }

    #[test]
    fn values_out_of_range_are_named_before_anything_is_built() {
        for (text, key) in [
            ("[guest]\nmemory_mib = 16\n", "guest.memory_mib"),
            ("[guest]\ncpus = 0\n", "guest.cpus"),
            ("[guest]\ncpus = 1000\n", "guest.cpus"),
            ("[guest.ivshmem]\nsize_mib = 17592186044416\n", "guest.ivshmem.size_mib"),
            ("[guest.ivshmem]\nsize_mib = 4\nvectors = 0\n", "guest.ivshmem.vectors"),
            ("[[test]]\nname = \"a\"\n[[test.step]]\nrun = \"x\"\ntimeout = 0\n", "test[0].step[0].timeout"),
            (
                "[[test]]\nname = \"a\"\n[[test.step]]\nhost.doorbell = { wait_vector = 1, timeout = 9223372036854775807 }\n",
                "host.doorbell.timeout",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(key) && e.contains("out of range"), "{text}: {e}");
        }
        let e = err("kernels = []\n");
        assert!(e.contains("kernels") && e.contains("names no kernel"), "{e}");
    }

    #[test]
    fn guest_files_keep_off_the_rigs_own() {
        for dest in ["/init", "/", "/bin/busybox", "/lib/rig/modules/x.ko", "/tmp/../init", "/etc/"] {
            let d = module_dir();
            std::fs::write(d.path().join("f"), "x").expect("file");
            let text = format!("[guest]\nfiles = [ {{ src = \"f\", dest = \"{dest}\" }} ]\n");
            let e = parse_in(d.path(), &text).map(|_| ()).expect_err(dest).to_string();
            assert!(e.contains("guest.files[0].dest"), "{dest}: {e}");
        }
        assert!(guest_dest_ok("/usr/bin/tool").is_ok());
    }

    #[test]
    fn non_ascii_hex_is_an_error_not_a_panic() {
        let e = err("[[test]]\nname = \"a\"\n[[test.step]]\nhost.expect_bytes = { offset = 0, hex = \"a\u{e9}b\" }\n");
        assert!(e.contains("expect_bytes.hex"), "{e}");
    }

    #[test]
    fn checks_are_names_of_checks() {
        let d = module_dir();
        let p = parse_in(d.path(), "[guest]\nchecks = [\"kfence\", \"slub\", \"slub\"]\nstrict_checks = true\n")
            .expect("plan");
        use crate::kernel::checks::Check;
        assert_eq!(p.guest.checks, vec![Check::Slub, Check::Kfence]);
        assert!(p.guest.strict_checks);
        let p = parse_in(d.path(), "[guest]\nchecks = [\"all\"]\n").expect("plan");
        assert_eq!(p.guest.checks.len(), Check::ALL.len());
        assert!(!p.guest.strict_checks);
        let e = err("[guest]\ncpus = 1\nchecks = [\"slub\", \"kasan\"]\n");
        assert!(e.contains("rig.toml:3") && e.contains("guest.checks[1]") && e.contains("`kasan`"), "{e}");
    }

    #[test]
    fn fuzz_ring_steps() {
        let d = module_dir();
        let text = "[[test]]\nname = \"a\"\n[[test.step]]\nhost.fuzz_ring = { seed = 5, secs = 20, writes = 100 }\n";
        let p = parse_in(d.path(), text).expect("plan");
        assert!(matches!(
            p.tests[0].checks[0].action,
            Action::HostFuzzRing { seed: 5, writes: 100, duration } if duration == Duration::from_secs(20)
        ));
        let p =
            parse_in(d.path(), "[[test]]\nname = \"a\"\n[[test.step]]\nhost.fuzz_ring = { seed = 1 }\n").expect("plan");
        assert!(matches!(p.tests[0].checks[0].action, Action::HostFuzzRing { writes: u64::MAX, .. }));
        let e = err("[[test]]\nname = \"a\"\n[[test.step]]\nhost.fuzz_ring = { seed = 1, secs = 0 }\n");
        assert!(e.contains("host.fuzz_ring.secs") && e.contains("out of range"), "{e}");
    }

    #[test]
    fn unknown_kernel_named() {
        let e = err("kernels = [\"bogus-1.0\"]\n");
        assert!(e.contains("kernels") && e.contains("bogus-1.0"), "{e}");
    }

    #[test]
    fn all_kernels() {
        let d = module_dir();
        let p = parse_in(d.path(), "kernels = \"all\"\n").expect("plan");
        assert!(p.kernels.len() >= 4);
    }
}
