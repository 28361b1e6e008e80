//! Injected failures and their verdicts (issue: crash and hang detection).
//! Each boots the default kernel under the rig with a small faulty module
//! (tests/fixtures/faulty) and asserts the KTAP lines and the exit status.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_GUEST: Mutex<()> = Mutex::new(());

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn run_fixture(name: &str, extra: &[&str]) -> Outcome {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let config = format!("{}/tests/fixtures/inject/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let start = Instant::now();
    let out =
        Command::new(env!("CARGO_BIN_EXE_rig")).args(["run", "-c", &config]).args(extra).output().expect("run rig");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

fn line<'a>(o: &'a Outcome, needle: &str) -> &'a str {
    o.stdout.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?}:\n{}", o.stdout))
}

#[test]
fn kernel_crash_fails_the_step_and_skips_the_rest() {
    let o = run_fixture("crash", &[]);
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(line(&o, "sysrq crash").trim_start().starts_with("not ok 2"));
    assert!(o.stdout.contains("Kernel panic") || o.stdout.contains("sysrq"), "{}", o.stdout);
    assert!(line(&o, "echo after").contains("# SKIP not run: the guest kernel crashed"));
    assert!(o.took < Duration::from_secs(60));
}

#[test]
fn hung_steps_time_out_and_an_unresponsive_guest_ends_the_run() {
    let o = run_fixture("hang", &[]);
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(line(&o, "never returns").trim_start().starts_with("not ok 1"));
    assert!(line(&o, "shell is back").trim_start().starts_with("ok 2"), "Ctrl-C must bring the shell back");
    assert!(line(&o, "ignores Ctrl-C").trim_start().starts_with("not ok 3"));
    assert!(line(&o, "echo after").contains("SKIP not run: the guest stopped answering"));
    assert!(o.took < Duration::from_secs(60), "took {:?}", o.took);
}

#[test]
fn warning_fails_its_step_but_the_guest_goes_on() {
    let o = run_fixture("warn", &[]);
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(line(&o, "trigger a warning").trim_start().starts_with("not ok 1"));
    assert!(o.stdout.contains("WARNING") && o.stdout.contains("rig_faulty: warning on request"), "{}", o.stdout);
    assert!(line(&o, "echo after").trim_start().starts_with("ok 2"));
}

#[test]
fn panic_on_warn_turns_the_warning_into_a_crash() {
    let o = run_fixture("warn", &["--panic-on-warn"]);
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(line(&o, "echo after").contains("SKIP not run"), "{}", o.stdout);
}

#[test]
fn failing_module_init_fails_the_insmod_check() {
    let o = run_fixture("initfail", &[]);
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    let l = line(&o, "insmod rig_faulty.ko");
    assert!(l.trim_start().starts_with("not ok"), "{l}");
    assert!(o.stdout.contains("Invalid argument"));
    assert!(line(&o, "test -e /proc/rig_faulty").trim_start().starts_with("ok"));
}

#[test]
fn config_errors_exit_2_with_file_line_and_key() {
    let o = run_fixture("bad", &[]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("bad.toml:3") && o.stderr.contains("unknown field `cpu`"), "{}", o.stderr);
}

#[test]
fn background_jobs_do_not_end_the_console() {
    let o = run_fixture("background", &[]);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    assert!(!o.stdout.contains("not ok"), "{}", o.stdout);
}

#[test]
fn qemu_killed_under_the_rig_is_the_rigs_failure_and_names_it() {
    use std::io::{BufRead, BufReader};
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let config = format!("{}/tests/fixtures/inject/long.toml", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["run", "--accel", "tcg", "-c", &config])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rig");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let pid: u32 = loop {
        let line = lines.next().expect("rig says QEMU's pid").expect("line");
        seen.push_str(&line);
        seen.push('\n');
        if let Some(p) = line.split("QEMU pid ").nth(1).and_then(|s| s.split_whitespace().next()) {
            break p.parse().expect("pid");
        }
    };
    // Let the long step start, then kill QEMU from outside.
    loop {
        let line = lines.next().expect("rig goes on").expect("line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("guest ready") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    for line in lines.map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(3), "{seen}");
    assert!(seen.contains("QEMU was killed by signal 9"), "{seen}");
}

#[test]
fn a_module_that_does_not_build_is_a_failed_test_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("r.xml");
    let json = dir.path().join("r.json");
    let j = junit.display().to_string();
    let js = json.display().to_string();
    let o = run_fixture("broken", &["--junit", &j, "--json", &js]);
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("not ok 1 bookworm-6.1"), "{}", o.stdout);
    assert!(o.stdout.contains("undeclared_symbol_of_the_test"), "{}", o.stdout);
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("name=\"the modules build\"") && xml.contains("<failure"), "{xml}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(v["passed"], false);
    assert_eq!(v["kernels"][0]["groups"][0]["steps"][0]["outcome"], "fail");
}

#[test]
fn rig_parse_of_a_kept_run_gives_the_runs_verdicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live.json");
    let l = live.display().to_string();
    let o = run_fixture("mixed", &["--keep", "--json", &l]);
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    for (step, needle) in [
        ("echo hello", "ok 1 echo hello"),
        ("echo nope", "not ok 2 echo nope"),
        ("a warning", "not ok 3 a warning"),
        ("the shell exits", "not ok 4 the shell exits"),
        ("too slow", "not ok 5 too slow"),
        ("utf-8", "ok 6 utf-8"),
    ] {
        assert!(o.stdout.contains(needle), "{step}: {}", o.stdout);
    }
    assert!(o.stdout.contains("the guest shell exited"), "{}", o.stdout);
    assert!(o.stdout.contains("timed out after 1s"), "{}", o.stdout);
    let run_dir = o.stderr.lines().find_map(|l| l.strip_prefix("rig: run directory: ")).expect("kept").to_owned();
    let parsed = dir.path().join("parsed.json");
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["parse", &run_dir, "--json"])
        .arg(&parsed)
        .output()
        .expect("rig parse");
    assert_eq!(out.status.code(), Some(1));
    // The same KTAP, line for line.
    assert_eq!(String::from_utf8_lossy(&out.stdout), o.stdout);
    let load = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).expect("json")).expect("parse json")
    };
    let (a, b) = (load(&live), load(&parsed));
    let verdicts = |v: &serde_json::Value| -> Vec<(String, String, String, String)> {
        v["kernels"][0]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["steps"].as_array().cloned().unwrap_or_default())
            .map(|s| {
                let f = |k: &str| s[k].as_str().unwrap_or("").to_owned();
                (f("name"), f("outcome"), f("message"), f("output"))
            })
            .collect()
    };
    assert_eq!(verdicts(&a), verdicts(&b));
    let _ = std::fs::remove_dir_all(&run_dir);
}
