//! Host commands of a test (`host.command`): run with `sh -c` in a process
//! group of their own, output captured. Nothing outlives its step: at the
//! timeout, on Ctrl-C, and when the shell exits with children still
//! running in the background, the whole group is killed.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a host command did not produce a status.
#[derive(Debug, thiserror::Error)]
pub enum HostCmdError {
    /// It could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    /// It ran past its timeout and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed; output so far:\n{output}")]
    Timeout { command: String, timeout: Duration, output: String },
    /// Ctrl-C or SIGTERM: it was killed.
    #[error("`{command}` was interrupted")]
    Interrupted { command: String },
}

/// `s` quoted for `sh` (substituted paths may hold spaces or quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Exit status and combined output.
#[derive(Debug, Clone)]
pub struct Done {
    pub status: i32,
    pub output: String,
}

/// Runs `command` in `cwd` with `sh -c`, with `env` added.
pub fn run(
    command: &str,
    cwd: &Path,
    env: &[(&str, String)],
    timeout: Duration,
    interrupt: &AtomicBool,
) -> Result<Done, HostCmdError> {
    let spawn = |source| HostCmdError::Spawn { command: command.to_string(), source };
    // stderr joins stdout so the report shows both in order.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1; {command}"))
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(spawn)?;
    let group = Pid::from_raw(child.id() as i32);
    // Whatever is left of the group, background jobs included.
    let kill_group = || {
        let _ = killpg(group, Signal::SIGKILL);
    };
    let mut stdout = child.stdout.take().ok_or_else(|| spawn(std::io::Error::other("no stdout")))?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Ok(s);
        }
        let stop = if interrupt.load(Ordering::Relaxed) {
            Some(false)
        } else if start.elapsed() > timeout {
            Some(true)
        } else {
            None
        };
        if let Some(timed_out) = stop {
            kill_group();
            let _ = child.wait();
            break Err(timed_out);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    kill_group();
    let output = String::from_utf8_lossy(&reader.join().unwrap_or_default()).trim_end().to_string();
    match status {
        Ok(s) => Ok(Done { status: s.code().unwrap_or(128 + nix_signal(&s)), output }),
        Err(true) => Err(HostCmdError::Timeout { command: command.to_string(), timeout, output }),
        Err(false) => Err(HostCmdError::Interrupted { command: command.to_string() }),
    }
}

fn nix_signal(s: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.signal().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_for(command: &str, timeout: Duration) -> Result<Done, HostCmdError> {
        run(command, Path::new("/"), &[("RIG_X", "a b".into())], timeout, &AtomicBool::new(false))
    }

    #[test]
    fn status_and_output() {
        let d = run_for("echo out; echo err >&2; echo \"$RIG_X\"; exit 3", Duration::from_secs(5)).expect("run");
        assert_eq!(d.status, 3);
        assert_eq!(d.output, "out\nerr\na b");
    }

    #[test]
    fn timeout_kills() {
        let e = run_for("echo started; sleep 10", Duration::from_millis(300));
        assert!(matches!(e, Err(HostCmdError::Timeout { ref output, .. }) if output == "started"), "{e:?}");
    }

    #[test]
    fn grandchildren_die_with_the_step() {
        // A grandchild holding the output pipe must not hold the step.
        let start = Instant::now();
        let e = run_for("sh -c 'sleep 12; echo late' & sleep 30", Duration::from_secs(1));
        assert!(matches!(e, Err(HostCmdError::Timeout { .. })), "{e:?}");
        assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
        // A background job left running when the command ends dies too.
        let start = Instant::now();
        let d = run_for("sleep 12 & echo done", Duration::from_secs(20)).expect("run");
        assert_eq!(d.output, "done");
        assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    }

    #[test]
    fn an_interrupt_kills_the_command() {
        let flag = AtomicBool::new(true);
        let e = run("sleep 10", Path::new("/"), &[], Duration::from_secs(20), &flag);
        assert!(matches!(e, Err(HostCmdError::Interrupted { .. })), "{e:?}");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/rig-abc/ivshmem"), "/tmp/rig-abc/ivshmem");
        assert_eq!(shell_quote("/tmp/a b/it's"), "'/tmp/a b/it'\\''s'");
    }
}
