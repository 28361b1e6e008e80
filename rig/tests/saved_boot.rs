//! A boot saved for later runs, and the default isolation (`on-failure`).
//! The first run boots, runs setup, saves the guest and stores it in the
//! cache; the second restores it instead of booting and gives the same
//! verdicts, its setup's effects in place; `--cold-boot` boots again. In
//! both, groups share a guest until one fails: the kernel panics in the
//! second group and the third starts on a clean guest. A setup of its own
//! (a token no other run has) makes the first run a miss.

use std::path::Path;
use std::process::Command;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn rig(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_rig")).args(args).output().expect("run rig");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn config(token: &str) -> String {
    let faulty = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty");
    format!(
        r#"[[module]]
path = "{}"

[guest.ivshmem]
size_mib = 0

[[setup]]
run = "echo {token} > /tmp/token"

[[test]]
name = "leaves a file behind"
  [[test.step]]
  run = "echo left > /tmp/left-behind"

[[test]]
name = "sees the file, then panics"
  [[test.step]]
  name = "the group before left its file"
  run = "cat /tmp/left-behind"
  expect = "left"
  [[test.step]]
  name = "the kernel panics"
  run = "echo panic > /proc/rig_faulty"

[[test]]
name = "after the panic"
  [[test.step]]
  name = "setup's file is there, the tests' gone"
  run = "cat /tmp/token; test -e /tmp/left-behind && echo dirty || echo clean"
  expect_regex = '^{token}\nclean$'
  [[test.step]]
  name = "the clock is the host's"
  run = "echo $(( $(date +%s) - {now} ))"
  expect_regex = '^([0-9]|[1-9][0-9]|[1-5][0-9][0-9])$'
"#,
        faulty.display(),
        now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs(),
    )
}

fn line<'a>(stdout: &'a str, needle: &str) -> &'a str {
    stdout.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?}:\n{stdout}"))
}

/// The KTAP lines without the numbers that change from run to run.
fn verdicts(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("ok ") || l.trim_start().starts_with("not ok "))
        .map(String::from)
        .collect()
}

fn check_run(r: &Out, restored_boot: bool) {
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.contains("a run saved with the same inputs"), restored_boot, "{}", r.stderr);
    assert_eq!(r.stderr.contains("booting"), !restored_boot, "{}", r.stderr);
    assert!(r.stderr.contains("share a guest until one fails"), "{}", r.stderr);
    let out = &r.stdout;
    assert!(line(out, "echo ").trim_start().starts_with("ok 1"), "{out}");
    assert!(line(out, "the group before left its file").trim_start().starts_with("ok 1"), "{out}");
    assert!(line(out, "the kernel panics").trim_start().starts_with("not ok 2"), "{out}");
    assert!(line(out, "setup's file is there").trim_start().starts_with("ok 1"), "{out}");
    assert!(line(out, "the clock is the host's").trim_start().starts_with("ok 2"), "{out}");
    assert!(line(out, "no kernel report outside the steps").trim_start().starts_with("ok"), "{out}");
}

#[test]
fn a_saved_boot_is_restored_with_its_verdicts_and_on_failure_restores_after_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = format!("token-{}-{}", std::process::id(), rand_suffix());
    let path = dir.path().join("rig.toml");
    std::fs::write(&path, config(&token)).expect("config");
    let cfg = path.to_string_lossy().into_owned();
    let base = ["run", "--accel", "tcg", "--keep", "-c", cfg.as_str()];

    let first = rig(&base);
    check_run(&first, false);
    let second = rig(&base);
    check_run(&second, true);
    assert_eq!(verdicts(&first.stdout), verdicts(&second.stdout));
    // The restored run's logs start with the saved ones: `rig parse` reads
    // the boot and setup verdicts back from them.
    let run_dir = second.stderr.lines().find_map(|l| l.strip_prefix("rig: run directory: ")).expect("kept");
    let parsed = rig(&["parse", run_dir]);
    assert_eq!(parsed.stdout, second.stdout);
    let console = std::fs::read_to_string(format!("{run_dir}/console.log")).expect("console.log");
    let marks: Vec<&str> = console.lines().filter(|l| l.starts_with("rig-restore:")).collect();
    assert!(marks.len() == 2 && marks[0].ends_with(":0") && marks[1].ends_with(":1"), "{console}");
    assert!(Path::new(&format!("{run_dir}/qemu.cmdline")).is_file());

    let cold = rig(&[&base[..], &["--cold-boot"]].concat());
    check_run(&cold, false);
    for r in [&first, &second, &cold] {
        if let Some(d) = r.stderr.lines().find_map(|l| l.strip_prefix("rig: run directory: ")) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}
