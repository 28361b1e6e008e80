//! Crash isolation: with `isolation = "group"` each test group runs on a
//! guest restored from the one saved after boot, so a kernel panic costs
//! its group alone. Boots the default kernel with the faulty module
//! (tests/fixtures/faulty). `saved_boot.rs` has the default, `on-failure`.

use std::process::Command;

fn rig(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rig")).args(args).output().expect("run rig");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line<'a>(stdout: &'a str, needle: &str) -> &'a str {
    stdout.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?}:\n{stdout}"))
}

#[test]
fn a_panic_costs_its_group_alone_and_the_next_runs_on_a_clean_kernel() {
    let config = format!("{}/tests/fixtures/inject/isolated.toml", env!("CARGO_MANIFEST_DIR"));
    let (code, stdout, stderr) = rig(&["run", "--accel", "tcg", "--keep", "-c", &config]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("isolation: each of the 3 groups on a guest restored"), "{stderr}");
    assert!(line(&stdout, "the kernel panics").trim_start().starts_with("not ok 1"), "{stdout}");
    assert!(stdout.contains("Kernel panic"), "{stdout}");
    assert!(line(&stdout, "echo after the panic").contains("SKIP not run: the guest kernel crashed"), "{stdout}");
    assert!(line(&stdout, "nothing of the groups before is left").trim_start().starts_with("ok 1"), "{stdout}");
    assert!(line(&stdout, "the module is loaded").trim_start().starts_with("ok 2"), "{stdout}");
    assert!(stdout.contains("\n    ok 4 runs on a clean kernel\n"), "{stdout}");
    // The panic was charged to its step, not again to the kernel log.
    assert!(line(&stdout, "no kernel report outside the steps").trim_start().starts_with("ok"), "{stdout}");
    let run_dir = stderr.lines().find_map(|l| l.strip_prefix("rig: run directory: ")).expect("kept").to_owned();
    let console = std::fs::read_to_string(format!("{run_dir}/console.log")).expect("console.log");
    // Two restores for the groups after the first (and mark 0 when the
    // run started from a boot an earlier run saved).
    let marks = console.lines().filter(|l| l.starts_with("rig-restore:") && !l.ends_with(":0")).count();
    assert_eq!(marks, 2, "{console}");
    // The logs of all three guests give the same verdicts again.
    let (parsed, again, _) = rig(&["parse", &run_dir]);
    assert_eq!(parsed, Some(1));
    assert_eq!(again, stdout);
    let _ = std::fs::remove_dir_all(&run_dir);
}
