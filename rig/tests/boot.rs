//! Real boots of the default kernel (bookworm 6.1) through the `rig` binary:
//! the checks both ways through the shared pages, clean-up after a run and
//! after SIGINT, and the clear errors for bad input. Needs the network once
//! (the kernel is then cached), QEMU, busybox-static and `make guest`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Boots are heavy on a 2-core machine: one at a time.
static ONE_GUEST: Mutex<()> = Mutex::new(());

fn rig() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rig"));
    c.env("RIG_LOG", "warn");
    c
}

fn qemu_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| String::from_utf8_lossy(&c).contains("qemu")).unwrap_or(false)
}

fn pid_from(stderr: &str) -> Option<u32> {
    stderr.lines().find_map(|l| l.split("QEMU pid ").nth(1)?.split_whitespace().next()?.parse().ok())
}

#[test]
fn run_default_kernel_checks_shared_pages_both_ways() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = tempfile::tempdir().expect("tempdir");
    for attempt in ["first", "second right after"] {
        let json = out_dir.path().join("results.json");
        let junit = out_dir.path().join("results.xml");
        let out =
            rig().args(["run", "--keep", "--json"]).arg(&json).arg("--junit").arg(&junit).output().expect("start rig");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{attempt} run failed:\n{stdout}\n{stderr}");
        assert!(stdout.starts_with("KTAP version 1\n1..1\n"), "{stdout}");
        for needle in [
            "ok 1 insmod rig_kmod.ko",
            " host reads the module's header in the shared pages [host]",
            " host sees the guest's pattern in the backing file (vm-memory) [host]",
            " guest reads the host's pattern through the /dev/rig_shm mapping",
            " host sees the module mark the region removed [host]",
        ] {
            let line = stdout.lines().find(|l| l.contains(needle));
            assert!(line.is_some_and(|l| l.trim_start().starts_with("ok ")), "{needle} missing or failed:\n{stdout}");
        }
        assert!(stdout.lines().any(|l| l == "ok 1 bookworm-6.1"), "{stdout}");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
        assert_eq!(v["passed"], true);
        assert_eq!(v["kernels"][0]["kernel"], "bookworm-6.1");
        let xml = std::fs::read_to_string(&junit).expect("junit");
        assert!(xml.contains("<testsuite name=\"bookworm-6.1.boot\"") && !xml.contains("<failure"), "{xml}");
        assert!(!stdout.contains("not ok"), "{stdout}");
        assert!(stderr.contains("accelerator: "), "{stderr}");
        let pid = pid_from(&stderr).expect("rig reports QEMU's pid");
        assert!(!qemu_alive(pid), "QEMU {pid} still runs after the rig exited");
        // The run directory holds both transcripts, the command line and the
        // kernel log. The kernel's console has no shell I/O, but the steps' marks.
        let dir: PathBuf =
            stderr.lines().find_map(|l| l.strip_prefix("rig: run directory: ")).expect("run directory printed").into();
        let shell = std::fs::read_to_string(dir.join("shell.log")).expect("shell.log");
        assert!(shell.contains("RIG-READY"));
        let console = std::fs::read_to_string(dir.join("console.log")).expect("console.log");
        assert!(!console.contains("RIG-READY") && console.contains("rig-step:"), "{console}");
        let cmdline = std::fs::read_to_string(dir.join("qemu.cmdline")).expect("qemu.cmdline");
        assert!(cmdline.contains("ivshmem-"), "{cmdline}");
        let klog = std::fs::read_to_string(dir.join("kernel.log")).expect("kernel.log");
        assert!(klog.contains("rig_kmod"), "{klog}");
        // The private directory (sockets, ivshmem backing file) is gone.
        let socket =
            cmdline.split("id=con0,path=").nth(1).and_then(|s| s.split([' ', ',']).next()).expect("console socket");
        let private = std::path::Path::new(socket).parent().expect("private dir");
        assert!(!private.exists(), "{} was left behind", private.display());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn sigint_stops_qemu_and_cleans_up() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = rig().args(["run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start rig");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut pid = None;
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        seen.push_str(&line);
        seen.push('\n');
        if pid.is_none() {
            pid = pid_from(&line);
        }
        if line.contains("guest ready") {
            break;
        }
    }
    let pid = pid.unwrap_or_else(|| panic!("no QEMU pid reported:\n{seen}"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "rig did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    for line in lines {
        seen.push_str(&line.unwrap_or_default());
        seen.push('\n');
    }
    assert!(!status.success());
    assert!(seen.contains("interrupted"), "{seen}");
    assert!(!qemu_alive(pid), "QEMU {pid} survived SIGINT");
}

#[test]
fn bad_input_gives_one_clear_line() {
    let out = rig().args(["run", "--kernel", "no-such-kernel"]).output().expect("rig");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-kernel") && err.contains("bookworm-6.1"), "{err}");

    let out = rig().args(["run", "--qemu", "/nonexistent/qemu-system-x86_64"]).output().expect("rig");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found") && err.contains("apt-get install qemu-system-x86"), "{err}");

    let out = rig().args(["run", "--busybox", "/nonexistent/busybox"]).output().expect("rig");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("busybox-static"), "{err}");
}

#[test]
fn empty_cache_without_network_says_so() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = rig()
        .args(["run", "--cache-dir"])
        .arg(cache.path())
        // A port nothing listens on: the archive is unreachable.
        .args(["--archive", "http://127.0.0.1:9/debian"])
        .output()
        .expect("rig");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:9") && err.to_lowercase().contains("network"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn shell_hands_the_console_to_the_terminal() {
    use std::io::{Read, Write};
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let config = format!("{}/../examples/hello/rig.toml", env!("CARGO_MANIFEST_DIR"));
    let mut child = rig()
        .args(["shell", "-c", &config])
        .stdin(slave.try_clone().expect("clone"))
        .stdout(slave.try_clone().expect("clone"))
        .stderr(slave)
        .spawn()
        .expect("start rig shell");
    let mut master = std::fs::File::from(pty.master);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut reader = master.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |needle: &str, secs: u64| {
        let until = Instant::now() + Duration::from_secs(secs);
        while !seen.contains(needle) {
            let left = until.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {needle:?} in:\n{seen}");
            if let Ok(chunk) = rx.recv_timeout(left) {
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
    };
    wait_for("Ctrl-] leaves", 120);
    master.write_all(b"cat /dev/hello_counter\n").expect("type");
    wait_for("hello 1", 20);
    master.write_all(b"\x1d").expect("Ctrl-]");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "rig shell did not leave on Ctrl-]");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}
