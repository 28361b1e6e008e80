//! The kernel matrix through the `rig` binary: the reference suite on every
//! catalog kernel (modules for 5.10, 6.12 and 7.x built in debootstrap
//! chroots of their suites, created on first use), the per-kernel KTAP,
//! JUnit XML and console logs, a short repeated-boot run, and two runs for
//! one kernel at once. Needs the network once (kernels and chroots are then
//! cached), root (or password-less sudo) for the chroots, QEMU and
//! `make guest`.
//!
//! `RIG_TEST_KERNELS=a,b` narrows the kernels (default: all).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Each test runs two guests or two builds at once: one test at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn rig() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rig"));
    c.env("RIG_LOG", "warn");
    c
}

fn kernels() -> String {
    std::env::var("RIG_TEST_KERNELS").ok().filter(|k| !k.is_empty()).unwrap_or_else(|| "all".into())
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn catalog_names() -> Vec<String> {
    let out = rig().args(["matrix", "--list", "--kernel", &kernels()]).output().expect("rig matrix --list");
    assert!(out.status.success(), "{:?}", text(&out));
    text(&out).0.lines().map(str::to_owned).collect()
}

#[test]
fn list_json_is_the_catalog_for_a_ci_matrix() {
    let out = rig().args(["matrix", "--list", "--json"]).output().expect("start rig");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON document");
    let entries = v.as_array().expect("an array");
    let names: Vec<&str> = entries.iter().map(|e| e["kernel"].as_str().expect("kernel")).collect();
    assert_eq!(names, ["bullseye-5.10", "bookworm-6.1", "trixie-6.12", "sid-7"]);
    let suites: Vec<&str> = entries.iter().map(|e| e["suite"].as_str().expect("suite")).collect();
    assert_eq!(suites, ["bullseye", "bookworm", "trixie", "sid"]);
    // A bad name is a usage error that lists the known ones.
    let out = rig().args(["matrix", "--list", "--kernel", "bookworm-6.1,nope"]).output().expect("start rig");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("unknown kernel `nope`"));
}

/// Mount points under `dir` in this (the host's) mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

fn cache_dir() -> PathBuf {
    std::env::var_os("RIG_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
        home.join("rig")
    })
}

#[test]
fn matrix_passes_the_reference_suite_on_every_kernel() {
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let names = catalog_names();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out =
        rig().args(["matrix", "--kernel", &kernels(), "--out-dir"]).arg(out_dir.path()).output().expect("start rig");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "matrix failed:\n{stdout}\n{stderr}");

    // The table: a header with every kernel, one row per check, all PASS.
    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header[0], "check");
    assert_eq!(&header[1..], names.iter().map(String::as_str).collect::<Vec<_>>().as_slice(), "{stdout}");
    let result = lines.iter().find(|l| l.starts_with("result ")).expect("result row");
    assert_eq!(result.split_whitespace().skip(1).filter(|c| *c == "PASS").count(), names.len(), "{stdout}");
    for row in lines.iter().filter(|l| l.starts_with("insmod ") || l.starts_with("unload: ")) {
        assert!(!row.contains("FAIL") && !row.contains(" - "), "{row}");
    }
    assert!(stderr.contains("rig: matrix PASS"), "{stderr}");

    for k in &names {
        // JUnit XML: well-formed, one testcase per table row, no failure.
        let xml = std::fs::read_to_string(out_dir.path().join(format!("{k}.junit.xml"))).expect("junit file");
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{k}.junit.xml is not XML: {e}\n{xml}"));
        let cases = doc.descendants().filter(|n| n.has_tag_name("testcase")).count();
        let checks = lines.len() - 3; // header, result, wall time
        assert_eq!(cases, checks, "{k}: {xml}");
        assert_eq!(doc.descendants().filter(|n| n.has_tag_name("failure")).count(), 0, "{xml}");
        // KTAP: the kernel passed.
        let ktap = std::fs::read_to_string(out_dir.path().join(format!("{k}.tap"))).expect("tap file");
        assert!(ktap.starts_with("KTAP version 1\n1..1\n"), "{ktap}");
        assert!(ktap.lines().any(|l| l == format!("ok 1 {k}")), "{ktap}");
        // The logs of the run: the shell's and the kernel's console.
        let shell = std::fs::read_to_string(out_dir.path().join(k).join("shell.log")).expect("shell.log");
        assert!(shell.contains("RIG-READY"), "{k}");
        let console = std::fs::read_to_string(out_dir.path().join(k).join("console.log")).expect("console.log");
        assert!(console.contains("rig-step:"), "{k}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.path().join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["passed"], true);

    // Chroot builds mount nothing on the host.
    assert!(mounts_under(&cache_dir()).is_empty(), "{:?}", mounts_under(&cache_dir()));
    let chroots = cache_dir().join("chroots");
    if chroots.is_dir() {
        for e in std::fs::read_dir(&chroots).expect("chroots").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "a temporary chroot was left behind: {name}");
        }
    }
}

#[test]
fn repeated_boots_have_no_spurious_failure() {
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("boots.json");
    let out = rig()
        .args(["boots", "--boots", "5", "--parallel", "2", "--kernel", &kernels(), "--out"])
        .arg(&json)
        .output()
        .expect("start rig");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("boots.json")).expect("json");
    assert_eq!(v["parallel"], 2);
    let ks = v["kernels"].as_array().expect("kernels");
    assert_eq!(ks.len(), catalog_names().len());
    for k in ks {
        assert_eq!(k["boots"], 5, "{k}");
        assert_eq!(k["failures"], 0, "{k}");
        assert!(k["boot"]["median_ms"].as_f64().expect("median") > 0.0);
    }
    assert!(stdout.contains("0 failed boots"), "{stdout}");
}

#[test]
fn two_runs_for_one_kernel_build_once_and_both_pass() {
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    // A private copy of the module with a unique comment: not built yet, so
    // both runs reach the build and one must wait for the other.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kmod");
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("guest-kmod");
    copy_dir(&root, &src);
    let stamp = format!("/* {} */\n", std::process::id() as u64 * 1_000_003 + rand_ish());
    let main_c = src.join("main.c");
    let text_c = std::fs::read_to_string(&main_c).expect("main.c");
    std::fs::write(&main_c, stamp + &text_c).expect("write main.c");
    // A one-step config: this test is about building, not about the suite.
    let config = src.join("rig-build-once.toml");
    std::fs::write(
        &config,
        "[[module]]\npath = \".\"\n\n[[test]]\nname = \"loaded\"\n\n  [[test.step]]\n  name = \"the module is loaded\"\n  run = \"grep -q '^rig_kmod ' /proc/modules\"\n",
    )
    .expect("write config");
    // The kernel: one that builds in a chroot when the catalog has it.
    let names = catalog_names();
    let kernel = names.iter().find(|n| n.as_str() == "trixie-6.12").unwrap_or(&names[0]).clone();
    let spawn = || {
        rig()
            .env("RIG_LOG", "info")
            .args(["run", "--kernel", &kernel, "-c"])
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start rig")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().expect("wait"), b.wait_with_output().expect("wait"));
    let (ta, tb) = (text(&a), text(&b));
    assert!(a.status.success(), "first run:\n{}\n{}", ta.0, ta.1);
    assert!(b.status.success(), "second run:\n{}\n{}", tb.0, tb.1);
    let built = |t: &(String, String)| t.1.contains("module built");
    let waited = |t: &(String, String)| t.1.contains("module is up to date");
    assert!(built(&ta) ^ built(&tb), "exactly one run builds:\n{}\n----\n{}", ta.1, tb.1);
    assert!(waited(&ta) || waited(&tb), "the other finds the build done:\n{}\n----\n{}", ta.1, tb.1);
}

fn rand_ish() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n.starts_with('.')
            || [".o", ".ko", ".mod", ".mod.c", ".cmd", ".order", ".symvers"].iter().any(|s| n.ends_with(s))
        {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).expect("copy");
        }
    }
}
