//! One guest: QEMU spawned with a console the rig already listens on, a boot
//! watchdog that also notices a guest QEMU has paused, and clean-up in Drop
//! (QEMU killed, nothing left running, whatever path the run takes).

use crate::guest::console::{excerpts, titles, Console, ConsoleError, Ports, Resume};
use crate::guest::kernel_console::Attributed;
use crate::guest::protocol::Nonce;
use crate::guest::protocol::READY_MARKER;
use crate::vm::qemu::{self, QemuConfig};
use crate::vm::qmp;
use crate::vm::snapshot;
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
    #[error("QEMU exited ({status}) before the guest was ready; QEMU said:\n{stderr}\nkernel console tail:\n{tail}")]
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
    /// The kernel crashed before the guest was ready.
    #[error("the guest kernel crashed during boot ({titles}):\n{excerpt}")]
    Crashed { titles: String, excerpt: String },
    /// The console reported a crash, EOF, or an interrupt.
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// A new QEMU could not load the saved guest.
    #[error("cannot restore the saved guest: {detail}{}", if stderr.trim().is_empty() { String::new() } else { format!("; QEMU said:\n{stderr}") })]
    Restore { detail: String, stderr: String },
}

/// How a guest comes up.
#[derive(Clone, Copy, Debug)]
pub enum Launch<'a> {
    /// QEMU boots the kernel.
    Boot,
    /// QEMU loads a guest the run saved and goes on from there; its
    /// transcripts go on where `resume` says.
    Restore { state: &'a Path, resume: Resume },
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
    /// Kernel reports (warnings, oopses) made before the marker.
    pub reports: Vec<Attributed>,
}

fn read_tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    crate::support::tail_bytes(&text, max)
}

impl Vm {
    /// Spawns QEMU and attaches both consoles. Files go to `run_dir`:
    /// `console.log` (the kernel's console), `shell.log` (the steps'),
    /// `qemu.cmdline`, `qemu.stderr`.
    pub fn start(cfg: &QemuConfig, run_dir: &Path, nonce: Nonce, interrupt: Arc<AtomicBool>) -> Result<Vm, VmError> {
        Vm::launch(cfg, run_dir, nonce, interrupt, Launch::Boot)
    }

    /// Boots a guest, or restores one from a saved state: a new QEMU with
    /// the same command line waits for the state, connects its consoles
    /// to new listeners on the same paths, loads the state and runs. Its
    /// transcripts are appended to the run's; `qemu.stderr` collects every
    /// QEMU's.
    pub fn launch(
        cfg: &QemuConfig,
        run_dir: &Path,
        nonce: Nonce,
        interrupt: Arc<AtomicBool>,
        how: Launch,
    ) -> Result<Vm, VmError> {
        let rd = |path: PathBuf| move |source| VmError::RunDir { path, source };
        let (qemu::SerialBackend::Socket(kernel_sock), qemu::SerialBackend::Socket(shell_sock)) =
            (&cfg.console, &cfg.shell)
        else {
            return Err(VmError::RunDir {
                path: run_dir.to_path_buf(),
                source: std::io::Error::other("a driven guest needs both serial ports on sockets"),
            });
        };
        let restore = match how {
            Launch::Boot => None,
            Launch::Restore { state, resume } => Some((state, resume)),
        };
        if restore.is_some() {
            // The sockets of the guest before this one.
            for sock in [kernel_sock, shell_sock] {
                let _ = std::fs::remove_file(sock);
            }
        }
        let kernel_listener = UnixListener::bind(kernel_sock).map_err(rd(kernel_sock.clone()))?;
        let shell_listener = UnixListener::bind(shell_sock).map_err(rd(shell_sock.clone()))?;
        let mut argv = qemu::argv(cfg);
        let cmdline_name = if restore.is_some() {
            argv.extend(snapshot::incoming_args(false));
            "qemu-restore.cmdline"
        } else {
            "qemu.cmdline"
        };
        let cmdline_path = run_dir.join(cmdline_name);
        crate::support::write_private(&cmdline_path, qemu::shell_line(&cfg.binary, &argv) + "\n")
            .map_err(rd(cmdline_path))?;
        tracing::debug!(argv = ?argv, "starting QEMU");
        let stderr_path = run_dir.join("qemu.stderr");
        let stderr = match restore {
            None => crate::support::create_private_file(&stderr_path),
            Some(_) => crate::support::append_private_file(&stderr_path),
        }
        .map_err(rd(stderr_path.clone()))?;
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

        let accepted = accept_console(&kernel_listener, &mut child, &stderr_path, &interrupt)
            .and_then(|k| Ok((k, accept_console(&shell_listener, &mut child, &stderr_path, &interrupt)?)));
        let (kernel, shell) = match accepted {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let ports = Ports {
            shell,
            shell_log: &run_dir.join("shell.log"),
            kernel,
            kernel_log: &run_dir.join("console.log"),
            resume: restore.map(|(_, r)| r),
        };
        let console = match Console::attach(ports, nonce, interrupt.clone()) {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
        let mut vm = Vm { child, console, qmp_socket: cfg.qmp_socket.clone(), stderr_path, accel: cfg.accel };
        tracing::debug!(pid = vm.pid(), "QEMU started, consoles attached");
        if let Some((state, _)) = restore {
            vm.load(state)?;
        }
        Ok(vm)
    }

    /// Loads `state` into a QEMU waiting for it.
    fn load(&mut self, state: &Path) -> Result<(), VmError> {
        let Some(socket) = self.qmp_socket.clone() else {
            return Err(VmError::Restore { detail: "the guest has no QMP socket".into(), stderr: String::new() });
        };
        if let Err(e) = snapshot::load(&socket, state, Duration::from_secs(60), false) {
            // QEMU exits when it cannot load: give it a moment to say why.
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Err(VmError::Restore { detail: e.to_string(), stderr: read_tail(&self.stderr_path, 2000) });
        }
        Ok(())
    }

    /// The QMP socket, if the guest has one.
    pub fn qmp_socket(&self) -> Option<&Path> {
        self.qmp_socket.as_deref()
    }

    /// Ends QEMU at once (no power-off: the guest is thrown away) and
    /// waits until the kernel console has read the last byte, so what the
    /// guest printed is all in the transcript.
    pub fn discard(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.console.kernel().wait_until(Duration::from_secs(2), |k| k.eof());
    }

    /// Waits for the ready marker on the shell's port; checks every second
    /// that QEMU still runs the guest, so a paused or dead guest fails at
    /// once, not at the timeout. Reports made on the way (a warning at
    /// insmod) come with the result; a panic is an error.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Boot, VmError> {
        let start = Instant::now();
        let from = self.console.kernel().mark();
        let mut log = String::new();
        loop {
            let slice = timeout.saturating_sub(start.elapsed()).min(Duration::from_secs(1));
            match self.console.wait_str(READY_MARKER, slice) {
                Ok(before) => {
                    log.push_str(&before);
                    // Let a report that is still printing finish.
                    self.console.kernel().wait_until(Duration::from_millis(500), |k| !k.open());
                    let reports = self.console.kernel().reports_since(from);
                    return Ok(Boot { log, elapsed: start.elapsed(), reports });
                }
                // A warning during module init: keep booting; a panic ends it.
                Err(ConsoleError::Crash { reports, .. }) => {
                    if reports.iter().any(|a| a.report.panicked) {
                        return Err(VmError::Crashed { titles: titles(&reports), excerpt: excerpts(&reports) });
                    }
                }
                Err(ConsoleError::ShellExited { .. }) => {}
                Err(ConsoleError::Timeout { tail, .. }) => {
                    if let Some(e) = self.check_alive(&tail) {
                        return Err(e);
                    }
                    if start.elapsed() >= timeout {
                        let quiet = tail.trim().is_empty() && self.console.kernel().tail().trim().is_empty();
                        let hint = if quiet && self.accel == qemu::Accel::Kvm {
                            ": the kernel printed nothing, so it never left the decompressor; this KVM cannot run it, use --accel tcg".to_string()
                        } else {
                            String::new()
                        };
                        let tail = format!("{tail}\nkernel console:\n{}", self.console.kernel().tail());
                        return Err(VmError::BootTimeout { waited: timeout, tail, hint });
                    }
                }
                Err(ConsoleError::Eof { tail, .. }) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    let reports = self.console.kernel().reports_since(from);
                    if !reports.is_empty() {
                        return Err(VmError::Crashed { titles: titles(&reports), excerpt: excerpts(&reports) });
                    }
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
                tail: format!("{tail}\nkernel console:\n{}", self.console.kernel().tail()),
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

    /// Why QEMU exited, when it was not the guest powering off: killed by
    /// a signal or a non-zero status, with what QEMU said on stderr.
    pub fn died_unexpectedly(&mut self) -> Option<String> {
        use std::os::unix::process::ExitStatusExt;
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s,
            // Still running, or its console closed just before it exits.
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                self.child.try_wait().ok().flatten()?
            }
        };
        if status.success() {
            return None;
        }
        let how = match status.signal() {
            Some(sig) => format!("QEMU was killed by signal {sig}"),
            None => format!("QEMU exited with {status}"),
        };
        let stderr = read_tail(&self.stderr_path, 2000);
        Some(if stderr.trim().is_empty() { how } else { format!("{how}; QEMU said:\n{stderr}") })
    }

    /// True while QEMU runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time QEMU has used so far (user and system), if readable.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.child.id())
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

/// The CPU time (user + system) of process `pid` so far, from /proc.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_time_of_stat(&stat)
}

/// utime + stime of a /proc/PID/stat line (fields 14 and 15, after the
/// command name in parentheses, which may hold spaces).
pub fn cpu_time_of_stat(stat: &str) -> Option<Duration> {
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace().skip(11);
    let (utime, stime): (u64, u64) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(Duration::from_millis((utime + stime) * 1000 / hz))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_from_stat() {
        let line = "1234 (qemu-system (x86)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100";
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(cpu_time_of_stat(line), Some(Duration::from_millis(300 * 1000 / hz)));
        assert_eq!(cpu_time_of_stat("garbage"), None);
        assert!(cpu_time(std::process::id()).is_some());
    }
}
