//! The fuzz suite through the `rig` binary: guest-kmod/fuzz-short.toml on
//! every catalog kernel, one guest at a time (each has two vCPUs): 20 s of
//! `rig-guest fuzz` from four threads while the host writes garbage into
//! the ring, in a guest booted with every check the kernel can do. No
//! kernel report, no oracle failure, every interface exercised, the module
//! still works and unloads. `make fuzz` runs the 1,000,000-operation suite
//! (guest-kmod/fuzz.toml). `RIG_TEST_KERNELS=a,b` narrows the kernels.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod common;
use common::CATALOG;

fn kernels() -> Vec<String> {
    match std::env::var("RIG_TEST_KERNELS") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => CATALOG.iter().map(|s| s.to_string()).collect(),
    }
}

/// The output of the step named `name`, from `rig run --json`.
fn step_output(json: &serde_json::Value, name: &str) -> String {
    json["kernels"][0]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["steps"].as_array().into_iter().flatten())
        .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .and_then(|s| s["output"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_short_fuzz_leaves_every_kernel_clean() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kmod/fuzz-short.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut problems = vec![];
    for k in kernels() {
        let json = dir.path().join(format!("{k}.json"));
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_rig"))
            .args(["run", "--kernel", &k, "--json"])
            .arg(&json)
            .arg("-c")
            .arg(&suite)
            .env("RIG_LOG", "warn")
            .output()
            .expect("run rig");
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        let v: serde_json::Value = std::fs::read_to_string(&json)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        let verdict = step_output(&v, "guest: no oracle failed");
        let ring = step_output(&v, "host: garbage into the ring");
        let total = verdict.lines().find(|l| l.starts_with("total ")).unwrap_or("").to_owned();
        eprintln!("{k}: {} in {:.0} s; host: {ring}", total.trim(), start.elapsed().as_secs_f64());
        let good = out.status.code() == Some(0)
            && verdict.contains("PASS fuzz")
            && verdict.contains("ok: every interface was exercised")
            && verdict.contains("ok: the module's answers kept every promise of its header (oracles)")
            && ring.contains(" writes in ");
        if !good {
            problems.push(format!("{k}: exit {:?}\n{stdout}\n{stderr}", out.status.code()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
