//! Every kernel report the catalog kernels can print, made on purpose by
//! rig_faulty (tests/fixtures/reports/capture/*.toml) and run through the
//! rig on every kernel: the run must fail, and a failing check must name the
//! report's title. The kernels the guest survives go on to the next step;
//! the ones that panic skip it. `RIG_TEST_KERNELS=a,b` narrows the kernels.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{failures, in_parallel, producible, CATALOG, EXPECT};

/// Reports after which the kernel is gone.
const FATAL: &[&str] = &["bug_timer", "panic", "stack_overflow"];

/// Capture configs and the fixture (report) each makes.
const CONFIGS: &[(&str, &str)] = &[
    ("warning", "warning"),
    ("kernel_bug", "kernel_bug"),
    ("bug_work", "bug_work"),
    ("bug_timer", "bug_timer"),
    ("invalid_opcode", "invalid_opcode"),
    ("null_deref", "null_deref"),
    ("gpf", "gpf"),
    ("page_fault", "page_fault"),
    ("list_del", "list_del"),
    ("slab_oob", "slab_oob"),
    ("slab_uaf", "slab_uaf"),
    ("fortify", "fortify"),
    ("kfence", "kfence"),
    ("soft_lockup", "soft_lockup"),
    ("rcu_stall", "rcu_stall"),
    ("hung_task", "hung_task"),
    ("stack_overflow", "stack_overflow"),
    ("panic", "panic"),
];

fn kernels() -> Vec<String> {
    match std::env::var("RIG_TEST_KERNELS") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => CATALOG.iter().map(|s| s.to_string()).collect(),
    }
}

fn capture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports/capture")
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn rig_run(config: &Path, kernel: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["run", "--accel", "tcg", "--kernel", kernel, "-c"])
        .arg(config)
        .env("RIG_LOG", "warn")
        .output()
        .expect("run rig");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn every_report_fails_the_run_with_its_title_on_every_kernel() {
    let mut jobs = vec![];
    for k in kernels() {
        for (config, fixture) in CONFIGS {
            if producible(&k).contains(fixture) {
                jobs.push((k.clone(), *config, *fixture));
            }
        }
    }
    let problems = in_parallel(jobs, |(kernel, config, fixture)| {
        let title = EXPECT.iter().find(|e| e.0 == *fixture).map(|e| e.2).expect("title");
        let r = rig_run(&capture_dir().join(format!("{config}.toml")), kernel);
        let fails = failures(&r.stdout);
        let named = fails.iter().any(|f| f.contains(&format!("reported {title}")) || f.contains(&format!(", {title}")));
        let after = r.stdout.lines().find(|l| l.contains("sleep 2; echo after")).unwrap_or("").trim_start();
        let after_ok = if FATAL.contains(fixture) {
            // A timer's BUG lands in the next step, which it fails and ends.
            after.contains("# SKIP not run: the guest kernel crashed") || after.starts_with("not ok ")
        } else {
            // A report that lands in the next step fails that step instead.
            after.starts_with("ok ") || fixture == &"bug_work"
        };
        if r.code == Some(1) && named && after_ok {
            None
        } else {
            Some(format!(
                "{kernel} {config}: exit {:?}, title named: {named}, after-step as expected: {after_ok}\n{}\n{}",
                r.code, r.stdout, r.stderr
            ))
        }
    });
    assert!(problems.is_empty(), "{} of the runs went wrong:\n{}", problems.len(), problems.join("\n\n"));
}

#[test]
fn output_that_mimics_reports_passes_and_a_report_after_the_last_step_fails_the_run() {
    let kernel = kernels().into_iter().next().unwrap_or_else(|| "bookworm-6.1".into());
    let mimic = rig_run(&capture_dir().join("mimic.toml"), &kernel);
    assert_eq!(mimic.code, Some(0), "{}\n{}", mimic.stdout, mimic.stderr);
    let after =
        rig_run(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inject/after_last_step.toml"), &kernel);
    assert_eq!(after.code, Some(1), "{}\n{}", after.stdout, after.stderr);
    // The step passed; the run's last check names the late report.
    assert!(after.stdout.contains("ok 1 queue a warning for later"), "{}", after.stdout);
    let fails = failures(&after.stdout);
    let check = fails.iter().find(|f| f.contains("no kernel report outside the steps")).expect("the last check failed");
    assert!(check.contains("WARNING in rig_warn_later_work"), "{check}");
}
