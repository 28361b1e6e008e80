//! A minimal QMP client: just enough to ask QEMU whether the guest runs.
//! A guest that KVM cannot run is paused by QEMU, not ended, and only QMP
//! tells the difference between "paused" and "slow".

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// QMP failures (all mean "could not ask", not "the guest is broken").
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Socket trouble.
    #[error("QMP I/O: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU answered something unexpected.
    #[error("QMP protocol: {0}")]
    Protocol(String),
}

/// `query-status` result, e.g. `running`, `paused`, `internal-error`, `guest-panicked`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// QEMU's RunState name.
    pub status: String,
    /// Whether vCPUs run.
    pub running: bool,
}

impl Status {
    /// States from which the guest will not make progress by itself.
    pub fn is_stuck(&self) -> bool {
        matches!(self.status.as_str(), "internal-error" | "guest-panicked" | "shutdown" | "io-error")
            || (!self.running && self.status == "paused")
    }
}

fn read_reply(r: &mut impl BufRead) -> Result<Value, QmpError> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(QmpError::Protocol("QEMU closed the QMP socket".into()));
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| QmpError::Protocol(format!("{e}: {line}")))?;
        // Skip asynchronous events; wait for the command's answer.
        if v.get("return").is_some() || v.get("error").is_some() || v.get("QMP").is_some() {
            return Ok(v);
        }
    }
}

/// Parses a `query-status` reply.
pub fn parse_status(v: &Value) -> Result<Status, QmpError> {
    let ret = v.get("return").ok_or_else(|| QmpError::Protocol(format!("no return in {v}")))?;
    Ok(Status {
        status: ret.get("status").and_then(Value::as_str).unwrap_or("unknown").to_string(),
        running: ret.get("running").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Connects, negotiates and runs `query-status`.
pub fn query_status(socket: &Path) -> Result<Status, QmpError> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    read_reply(&mut r)?; // greeting
    w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    read_reply(&mut r)?;
    w.write_all(b"{\"execute\":\"query-status\"}\n")?;
    parse_status(&read_reply(&mut r)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_running_and_stuck() {
        let v: Value =
            serde_json::from_str(r#"{"return": {"status": "running", "singlestep": false, "running": true}}"#)
                .expect("json");
        let s = parse_status(&v).expect("status");
        assert!(!s.is_stuck());
        let v: Value =
            serde_json::from_str(r#"{"return": {"status": "internal-error", "running": false}}"#).expect("json");
        assert!(parse_status(&v).expect("status").is_stuck());
    }

    #[test]
    fn talks_to_a_fake_qemu() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("qmp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().expect("accept");
            let mut w = s.try_clone().expect("clone");
            let mut r = BufReader::new(s);
            let _ = w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n");
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = w.write_all(b"{\"return\": {}}\n");
            line.clear();
            let _ = r.read_line(&mut line);
            let _ = w.write_all(b"{\"event\": \"STOP\"}\n{\"return\": {\"status\": \"paused\", \"running\": false}}\n");
        });
        let s = query_status(&path).expect("status");
        assert_eq!(s.status, "paused");
        assert!(s.is_stuck());
        let _ = t.join();
    }
}
