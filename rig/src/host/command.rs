//! Host commands of a test (`host.command`): run with `sh -c`, output
//! captured, killed at the step's timeout.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
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
}

/// Exit status and combined output.
#[derive(Debug, Clone)]
pub struct Done {
    pub status: i32,
    pub output: String,
}

/// Runs `command` in `cwd` with `sh -c`.
pub fn run(command: &str, cwd: &Path, timeout: Duration) -> Result<Done, HostCmdError> {
    let spawn = |source| HostCmdError::Spawn { command: command.to_string(), source };
    // stderr joins stdout so the report shows both in order.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1; {command}"))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    let mut stdout = child.stdout.take().ok_or_else(|| spawn(std::io::Error::other("no stdout")))?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = String::from_utf8_lossy(&reader.join().unwrap_or_default()).trim_end().to_string();
    match status {
        Some(s) => Ok(Done { status: s.code().unwrap_or(128 + nix_signal(&s)), output }),
        None => Err(HostCmdError::Timeout { command: command.to_string(), timeout, output }),
    }
}

fn nix_signal(s: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.signal().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_output() {
        let d = run("echo out; echo err >&2; exit 3", Path::new("/"), Duration::from_secs(5)).expect("run");
        assert_eq!(d.status, 3);
        assert_eq!(d.output, "out\nerr");
    }

    #[test]
    fn timeout_kills() {
        let e = run("echo started; sleep 10", Path::new("/"), Duration::from_millis(300));
        assert!(matches!(e, Err(HostCmdError::Timeout { ref output, .. }) if output == "started"), "{e:?}");
    }
}
