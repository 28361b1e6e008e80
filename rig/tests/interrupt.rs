//! Ctrl-C and SIGTERM stop the rig at once in each phase that runs long: a
//! download (apt), a module build (make and its compilers), a wait for
//! another rig's lock; a second Ctrl-C ends it even sooner. Each time the
//! rig exits 130 within two seconds and nothing it started keeps running,
//! and what was cut short is not taken as complete afterwards. Each test
//! has a private cache (hard links into the user's), so nothing the user
//! has cached is cut short. `RIG_TEST_BIN` runs these against another rig
//! binary. Needs the default kernel (fetched once), make and gcc-12, and
//! the network for the download.

mod private_cache;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use private_cache::{group_members, processes_with, with_kernels};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Builds are heavy on 2 cores: one at a time.
static ONE: Mutex<()> = Mutex::new(());

/// How long the rig may take to exit after the signal.
const PROMPT: Duration = Duration::from_secs(2);

fn rig_bin() -> PathBuf {
    std::env::var_os("RIG_TEST_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rig")))
}

/// The rig running with `args`, its stderr collected.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

fn start(cache: &Path, args: &[&str]) -> Running {
    let mut child = Command::new(rig_bin())
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env("RIG_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rig");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (mut pipe, sink) = (child.stderr.take().expect("stderr"), stderr.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Running { child, stderr }
}

impl Running {
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until `found` gives something, failing after `secs`.
    fn wait_for<T>(&mut self, secs: u64, what: &str, mut found: impl FnMut(&Running) -> Option<T>) -> T {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(t) = found(self) {
                return t;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rig exited ({status}) before {what}:\n{}", self.stderr());
            }
            assert!(Instant::now() < until, "no {what} within {secs} s:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signals` (20 ms apart) and waits for the exit: its status and
    /// how long it took after the first signal.
    fn stop(&mut self, signals: &[Signal]) -> (ExitStatus, Duration) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let start = Instant::now();
        for (i, &sig) in signals.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            kill(pid, sig).expect("signal");
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = self.child.kill();
                panic!("rig did not exit within 120 s of {signals:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Fails if anything still runs that names `cache` or belongs to `group`.
fn assert_nothing_left(cache: &Path, group: i32, what: &str) {
    // A process killed a moment ago may still be exiting.
    std::thread::sleep(Duration::from_millis(200));
    let left = processes_with(&cache.to_string_lossy());
    assert!(left.is_empty(), "still running after the rig exited ({what}): {left:#?}");
    let members = group_members(group);
    assert!(members.is_empty(), "{what}'s process group {group} still has {members:?}");
}

/// Every `.rig-build-hash` (a build's record of completion) under `dir`.
fn build_records(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == rig::build::kbuild::BUILD_HASH_FILE) {
                found.push(p);
            }
        }
    }
    found
}

/// Starts `rig run` on the reference module in a fresh cache, waits until
/// the compiler runs, sends `signals`; checks the exit and what is left.
fn interrupt_a_build(signals: &[Signal]) {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = with_kernels(&["bookworm-6.1"]);
    let needle = cache.path().to_string_lossy().into_owned();
    let mut rig = start(cache.path(), &["run", "--accel", "tcg"]);
    // A compiler working on the module (under make, in the build directory).
    let make_group = rig.wait_for(180, "a compiler in the build", |_| {
        let procs = processes_with(&needle);
        let compiling = procs.iter().any(|(_, _, c)| c.contains("cc1") || c.contains("gcc"));
        let make = procs.iter().find(|(_, _, c)| c.starts_with("make "));
        make.filter(|_| compiling).map(|(_, group, _)| *group)
    });
    let (status, took) = rig.stop(signals);
    assert_eq!(status.code(), Some(130), "{status}:\n{}", rig.stderr());
    assert!(took < PROMPT, "the rig took {took:?} to stop:\n{}", rig.stderr());
    assert_nothing_left(cache.path(), make_group, "make");
    // The half-done build is not recorded as done.
    let records = build_records(&cache.path().join("build"));
    assert!(records.is_empty(), "an interrupted build left {records:?}");
}

#[test]
fn sigint_during_a_module_build_stops_make_and_its_compilers() {
    interrupt_a_build(&[Signal::SIGINT]);
}

#[test]
fn a_second_sigint_ends_the_rig_and_its_build_at_once() {
    interrupt_a_build(&[Signal::SIGINT, Signal::SIGINT]);
}

#[test]
fn sigterm_during_a_download_stops_apt() {
    let cache = tempfile::Builder::new().prefix("rig-test-cache-").tempdir().expect("tempdir");
    let needle = cache.path().to_string_lossy().into_owned();
    let mut rig = start(cache.path(), &["fetch", "bookworm-6.1"]);
    let apt_group = rig.wait_for(60, "apt-get running", |_| {
        processes_with(&needle).into_iter().find(|(_, _, c)| c.contains("apt-get")).map(|(_, group, _)| group)
    });
    let (status, took) = rig.stop(&[Signal::SIGTERM]);
    assert_eq!(status.code(), Some(130), "{status}:\n{}", rig.stderr());
    assert!(took < PROMPT, "the rig took {took:?} to stop:\n{}", rig.stderr());
    assert_nothing_left(cache.path(), apt_group, "apt-get");
    assert!(!cache.path().join("kernels/bookworm-6.1/tree.json").exists());
}

#[test]
fn sigint_while_waiting_for_another_rigs_lock() {
    let cache = tempfile::Builder::new().prefix("rig-test-cache-").tempdir().expect("tempdir");
    std::fs::create_dir_all(cache.path().join("kernels")).expect("mkdir");
    // Another rig fetching the same kernel.
    let file = std::fs::File::create(cache.path().join("kernels/bookworm-6.1.lock")).expect("lock file");
    let _held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).expect("flock");
    let mut rig = start(cache.path(), &["fetch", "bookworm-6.1"]);
    rig.wait_for(30, "the rig waiting for the lock", |r| r.stderr().contains("waiting for it").then_some(()));
    let (status, took) = rig.stop(&[Signal::SIGINT]);
    assert_eq!(status.code(), Some(130), "{status}:\n{}", rig.stderr());
    assert!(took < PROMPT, "the rig took {took:?} to stop:\n{}", rig.stderr());
}
