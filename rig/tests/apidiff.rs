//! The 2.6-era API breaks by real builds: `rig apidiff` builds the reference
//! module on every kernel with each compat item's old form forced, and the
//! table in docs/api-changes.md must say the same (the verdicts, and each
//! item's version agreeing with which kernels fail). Needs the kernels and
//! build chroots (made by the matrix test, or on first use here).
//!
//! `RIG_TEST_KERNELS=a,b` narrows the kernels (default: all).

use std::path::Path;
use std::process::Command;

#[test]
fn api_changes_doc_agrees_with_real_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = root.join("docs/api-changes.md");
    let kernels = std::env::var("RIG_TEST_KERNELS").ok().filter(|k| !k.is_empty()).unwrap_or_else(|| "all".into());
    let json = tempfile::NamedTempFile::new().expect("tempfile");
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .env("RIG_LOG", "warn")
        .args(["apidiff", "--kernel", &kernels, "--check-doc"])
        .arg(&doc)
        .arg("--json")
        .arg(json.path())
        .output()
        .expect("start rig");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rig apidiff disagrees with compat.h or {} (exit {:?}):\n{stdout}\n{stderr}",
        doc.display(),
        out.status.code()
    );
    assert!(stderr.contains("agrees with the builds"), "{stderr}");
    // Every item was really built on every kernel, and the module itself builds.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json.path()).expect("json")).expect("parse");
    let kernels = v["kernels"].as_array().expect("kernels");
    assert!(!kernels.is_empty());
    for k in kernels {
        assert_eq!(k["baseline"]["result"], "builds", "{k}");
    }
    for row in v["rows"].as_array().expect("rows") {
        for cell in row[1].as_array().expect("cells") {
            assert_ne!(cell["result"], "unknown", "{row}");
        }
    }
    // Items changed before the oldest kernel fail everywhere: at least one.
    assert!(v["rows"].as_array().expect("rows").iter().any(|r| r[1]
        .as_array()
        .expect("cells")
        .iter()
        .all(|c| c["result"] == "fails")));
}
