//! One guest: QEMU spawned with a console the rig already listens on, a boot
//! watchdog that also notices a guest QEMU has paused, and clean-up in Drop
//! (QEMU killed, nothing left running, whatever path the run takes).

use crate::guest::console::{Console, ConsoleError};
use crate::guest::protocol::READY_MARKER;
use crate::vm::qemu::{self, QemuConfig};
use crate::vm::qmp;
use std::fs::File;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Errors starting, booting or stopping a guest.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// QEMU could not be started.
    #[error("cannot start {binary}: {source}; install QEMU (`sudo apt-get install qemu-system-x86`) or pass --qemu")]
    Spawn { binary: String, source: std::io::Error },
    /// A file of the run directory could not be made.
    #[error("cannot create {path}: {source}")]
    RunDir { path: PathBuf, source: std::io::Error },
    /// QEMU exited before or during boot.
    #[error("QEMU exited ({status}) before the guest was ready; QEMU said:\n{stderr}\nconsole tail:\n{tail}")]
    Exited { status: String, stderr: String, tail: String },
    /// QEMU did not connect to the console socket.
    #[error("QEMU did not connect to the console within {0:?}")]
    NoConsole(Duration),
    /// The guest stopped making progress and QEMU paused it.
    #[error("QEMU paused the guest (state `{state}`) during boot: with KVM this host cannot run this kernel, use --accel tcg; console tail:\n{tail}")]
    Paused { state: String, tail: String },
    /// No ready marker within the boot timeout.
    #[error("the guest did not reach `{READY_MARKER}` within {waited:?} (boot watchdog){hint}; console tail:\n{tail}")]
    BootTimeout { waited: Duration, tail: String, hint: String },
    /// The console reported a crash, EOF, or an interrupt.
    #[error(transparent)]
    Console(#[from] ConsoleError),
}

/// A running guest.
pub struct Vm {
    child: Child,
    /// The serial console.
    pub console: Console,
    qmp_socket: Option<PathBuf>,
    stderr_path: PathBuf,
    accel: qemu::Accel,
}

/// What the guest printed up to the ready marker.
#[derive(Clone, Debug)]
pub struct Boot {
    /// Console text before the marker.
    pub log: String,
    /// Time from spawn to the marker.
    pub elapsed: Duration,
    /// Kernel crash reports (warnings, oopses) seen before the marker.
    pub crashes: Vec<String>,
}

fn read_tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    crate::support::tail_bytes(&text, max)
}

impl Vm {
    /// Spawns QEMU and attaches the console. Files go to `run_dir`.
    pub fn start(cfg: &QemuConfig, run_dir: &Path, interrupt: Arc<AtomicBool>) -> Result<Vm, VmError> {
        let rd = |path: PathBuf| move |source| VmError::RunDir { path, source };
        let qemu::SerialBackend::Socket(socket) = &cfg.console else {
            return Err(VmError::RunDir {
                path: run_dir.to_path_buf(),
                source: std::io::Error::other("a driven guest needs its console on a socket"),
            });
        };
        let listener = UnixListener::bind(socket).map_err(rd(socket.clone()))?;
        let argv = qemu::argv(cfg);
        let cmdline_path = run_dir.join("qemu.cmdline");
        std::fs::write(&cmdline_path, qemu::shell_line(&cfg.binary, &argv) + "\n").map_err(rd(cmdline_path))?;
        tracing::debug!(argv = ?argv, "starting QEMU");
        let stderr_path = run_dir.join("qemu.stderr");
        let stderr = File::create(&stderr_path).map_err(rd(stderr_path.clone()))?;
        let mut cmd = Command::new(&cfg.binary);
        cmd.args(&argv).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        // SAFETY: prctl is async-signal-safe; it makes the kernel kill QEMU
        // if the rig dies without running its clean-up (SIGKILL, crash).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child =
            cmd.spawn().map_err(|source| VmError::Spawn { binary: cfg.binary.display().to_string(), source })?;

        let stream = match accept_console(&listener, &mut child, &stderr_path, &interrupt) {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let console = match Console::attach(stream, &run_dir.join("console.log"), interrupt.clone()) {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
        Ok(Vm { child, console, qmp_socket: cfg.qmp_socket.clone(), stderr_path, accel: cfg.accel })
    }

    /// Waits for the ready marker; checks every second that QEMU still runs
    /// the guest, so a paused or dead guest fails at once, not at the timeout.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Boot, VmError> {
        let start = Instant::now();
        let mut crashes = Vec::new();
        let mut log = String::new();
        loop {
            let slice = timeout.saturating_sub(start.elapsed()).min(Duration::from_secs(1));
            match self.console.wait_str(READY_MARKER, slice) {
                Ok(before) => {
                    log.push_str(&before);
                    return Ok(Boot { log, elapsed: start.elapsed(), crashes });
                }
                // A warning during module init: note it and keep booting; a
                // panic ends QEMU and shows up as Eof below.
                Err(ConsoleError::Crash { excerpt, .. }) => {
                    log.push_str(&excerpt);
                    log.push('\n');
                    crashes.push(excerpt);
                }
                Err(ConsoleError::Timeout { tail, .. }) => {
                    if let Some(e) = self.check_alive(&tail) {
                        return Err(e);
                    }
                    if start.elapsed() >= timeout {
                        let hint = if tail.trim().is_empty() && self.accel == qemu::Accel::Kvm {
                            ": the kernel printed nothing, so it never left the decompressor; this KVM cannot run it, use --accel tcg".to_string()
                        } else {
                            String::new()
                        };
                        return Err(VmError::BootTimeout { waited: timeout, tail, hint });
                    }
                }
                Err(ConsoleError::Eof { tail, .. }) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    let tail = crashes.iter().map(|c| format!("{c}\n")).collect::<String>() + &tail;
                    return Err(VmError::Exited { status, stderr: read_tail(&self.stderr_path, 2000), tail });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `Some(error)` when QEMU has exited or paused the guest.
    fn check_alive(&mut self, tail: &str) -> Option<VmError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(VmError::Exited {
                status: status.to_string(),
                stderr: read_tail(&self.stderr_path, 2000),
                tail: tail.to_string(),
            });
        }
        let socket = self.qmp_socket.as_ref()?;
        match qmp::query_status(socket) {
            Ok(s) if s.is_stuck() => Some(VmError::Paused { state: s.status, tail: tail.to_string() }),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!("QMP query failed: {e}");
                None
            }
        }
    }

    /// Powers the guest off and waits for QEMU; kills it after `grace`.
    pub fn shutdown(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(s)) = self.child.try_wait() {
            return Some(s);
        }
        let _ = self.console.send("poweroff -f\n");
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// True while QEMU runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn accept_console(
    listener: &UnixListener,
    child: &mut Child,
    stderr_path: &Path,
    interrupt: &AtomicBool,
) -> Result<std::os::unix::net::UnixStream, VmError> {
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
    let io = |source| VmError::RunDir { path: "console socket".into(), source };
    listener.set_nonblocking(true).map_err(io)?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).map_err(io)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io(e)),
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(VmError::Exited {
                status: status.to_string(),
                stderr: read_tail(stderr_path, 2000),
                tail: String::new(),
            });
        }
        if interrupt.load(Ordering::Relaxed) {
            return Err(VmError::Console(ConsoleError::Interrupted));
        }
        if start.elapsed() > CONNECT_TIMEOUT {
            return Err(VmError::NoConsole(CONNECT_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
