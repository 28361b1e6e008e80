//! Checking guests ([guest] checks, --checks) through the `rig` binary:
//! `rig kernels --checks` says which kernel can do which check; rig_slabbug
//! (tests/fixtures/slabbug) corrupts its slab objects, which an ordinary
//! guest does not notice and a guest with `checks = ["slub"]` fails with
//! the kernel's report; and in a guest with every check, each one the
//! table promises is in effect. `RIG_TEST_KERNELS=a,b` narrows the kernels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

mod common;
use common::{failures, in_parallel, CATALOG};

/// Two guests at a time at most, whichever test runs them.
static HEAVY: Mutex<()> = Mutex::new(());

fn kernels() -> Vec<String> {
    match std::env::var("RIG_TEST_KERNELS") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => CATALOG.iter().map(|s| s.to_string()).collect(),
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checks").join(name)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn rig(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_rig")).args(args).env("RIG_LOG", "warn").output().expect("run rig");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_config(config: &Path, kernel: &str, extra: &[&str]) -> Run {
    let config = config.to_string_lossy().into_owned();
    let mut args = vec!["run", "--kernel", kernel, "-c", &config];
    args.extend(extra);
    rig(&args)
}

/// `rig kernels --checks`: check -> kernel -> `yes`, `default`, `-` or `?`.
fn support_table() -> BTreeMap<String, BTreeMap<String, String>> {
    let r = rig(&["kernels", "--checks"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(head[0], "check", "{}", r.stdout);
    let names = &head[1..head.len() - 2]; // "turns on" is two words
    assert_eq!(names, CATALOG.as_slice(), "{}", r.stdout);
    let mut t = BTreeMap::new();
    for l in lines[1..].iter().take_while(|l| !l.starts_with("-:") && !l.starts_with("?:")) {
        let cells: Vec<&str> = l.split_whitespace().collect();
        let row = names.iter().zip(&cells[1..]).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        t.insert(cells[0].to_owned(), row);
    }
    assert_eq!(t.len(), 9, "{}", r.stdout);
    t
}

fn supports(t: &BTreeMap<String, BTreeMap<String, String>>, check: &str, kernel: &str) -> bool {
    matches!(t[check][kernel].as_str(), "yes" | "default")
}

#[test]
fn the_table_matches_what_the_catalog_kernels_were_built_with() {
    let t = support_table();
    for k in CATALOG {
        // SLUB debugging, the lockup and hung-task detectors: all four.
        for c in ["slub", "init_on_free", "panic_on_warn", "oops_panic", "softlockup_panic", "hung_task"] {
            assert_eq!(t[c][k], "yes", "{c} on {k}");
        }
        // Debian turns init_on_alloc on by default; nobody builds page poisoning in.
        assert_eq!(t["init_on_alloc"][k], "default", "{k}");
        assert_eq!(t["page_poison"][k], "-", "{k}");
    }
    // KFENCE from 6.12 on.
    let kfence: Vec<&str> = CATALOG.iter().copied().filter(|k| supports(&t, "kfence", k)).collect();
    assert_eq!(kfence, ["trixie-6.12", "sid-7"]);
}

#[test]
fn slab_corruption_goes_unnoticed_without_slub_and_fails_the_run_with_it() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let t = support_table();
    let mut jobs = vec![];
    for (i, k) in kernels().into_iter().enumerate() {
        jobs.push((k.clone(), "plain"));
        jobs.push((k.clone(), "config"));
        if i == 0 {
            jobs.push((k, "flag"));
        }
    }
    let problems = in_parallel(jobs, |(kernel, how)| {
        let r = match *how {
            "plain" => run_config(&fixture("slabbug.toml"), kernel, &[]),
            "config" => run_config(&fixture("slabbug-slub.toml"), kernel, &[]),
            _ => run_config(&fixture("slabbug.toml"), kernel, &["--checks", "slub"]),
        };
        let fails = failures(&r.stdout);
        let ok = if *how == "plain" {
            // Nothing sees the bugs: every step passes.
            r.code == Some(0) && fails.is_empty()
        } else if !supports(&t, "slub", kernel) {
            // strict_checks in the config; --checks alone leaves it out.
            if *how == "config" {
                r.code == Some(2) && r.stderr.contains("cannot do the checks slub")
            } else {
                r.code == Some(0)
            }
        } else {
            let named = |step: &str, title: &str| {
                fails.iter().any(|f| f.contains(step) && f.contains(&format!("the kernel reported {title}")))
            };
            r.code == Some(1)
                && r.stderr.contains(&format!("checks on {kernel}: slub"))
                && named(
                    "a write past the end of a slab object",
                    "BUG rig_slabbug_oob: Right Redzone overwritten in rig_slab_overflow",
                )
                && named(
                    "a write to a freed slab object",
                    "BUG rig_slabbug_uaf: Poison overwritten in rig_slab_use_after_free",
                )
                // Those two steps and nothing else (the group and the kernel fail with them).
                && fails.iter().filter(|f| !f.contains("slab bugs") && !f.contains(kernel.as_str())).count() == 2
                && r.stdout.contains("ok 3 the guest lives on")
        };
        (!ok).then(|| format!("{kernel} ({how}): exit {:?}\n{}\n{}", r.code, r.stdout, r.stderr))
    });
    assert!(problems.is_empty(), "{} runs went wrong:\n{}", problems.len(), problems.join("\n\n"));
}

/// What the guest shows for a check that is on (a substring of the step's output).
fn evidence(check: &str) -> &'static [&'static str] {
    match check {
        "slub" => {
            &["kmalloc-64/sanity_checks=1", "kmalloc-64/red_zone=1", "kmalloc-64/poison=1", "kmalloc-64/store_user=1"]
        }
        "kfence" => &["sample_interval=10\n"],
        "init_on_free" => &["heap free:on"],
        "init_on_alloc" => &["heap alloc:on"],
        "panic_on_warn" => &["kernel/panic_on_warn=1"],
        "oops_panic" => &["kernel/panic_on_oops=1"],
        "softlockup_panic" => &["kernel/softlockup_panic=1"],
        "hung_task" => &["kernel/hung_task_timeout_secs=20"],
        _ => &[],
    }
}

#[test]
fn every_check_the_table_promises_is_in_effect() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let t = support_table();
    let dir = tempfile::tempdir().expect("tempdir");
    let problems = in_parallel(kernels(), |kernel| {
        let json = dir.path().join(format!("{kernel}.json"));
        let r = run_config(&fixture("all.toml"), kernel, &["--json", &json.to_string_lossy()]);
        if r.code != Some(0) {
            return Some(format!("{kernel}: exit {:?}\n{}\n{}", r.code, r.stdout, r.stderr));
        }
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
        let out = v["kernels"][0]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["steps"].as_array().into_iter().flatten())
            .find(|s| s["name"] == "the settings the checks change")
            .and_then(|s| s["output"].as_str())
            .unwrap_or_default()
            .to_owned();
        let mut wrong = vec![];
        for (check, row) in &t {
            let on = matches!(row[kernel].as_str(), "yes" | "default");
            for e in evidence(check) {
                if on != out.contains(e) {
                    wrong.push(format!("{check} is {} but the guest shows {e:?}: {}", row[kernel], out.contains(e)));
                }
            }
        }
        // The run said in one line what it left out.
        let left_out = r.stderr.lines().filter(|l| l.contains("not on this kernel, left out:")).count();
        if left_out != 1 || !r.stderr.contains("page_poison (CONFIG_PAGE_POISONING is not set)") {
            wrong.push(format!("no one-line note of the checks left out:\n{}", r.stderr));
        }
        (!wrong.is_empty()).then(|| format!("{kernel}:\n{}\n{out}", wrong.join("\n")))
    });
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // Insisting on a check no kernel has is a usage error, before any boot.
    let k = kernels().into_iter().next().expect("a kernel");
    let r = run_config(&fixture("all.toml"), &k, &["--strict-checks"]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("cannot do the checks") && r.stderr.contains("page_poison"), "{}", r.stderr);
    assert!(!r.stderr.contains("booting"), "{}", r.stderr);
}
