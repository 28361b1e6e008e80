//! A minimal QMP client: whether the guest runs (a guest that KVM cannot
//! run is paused by QEMU, not ended, and only QMP tells the difference
//! between "paused" and "slow"), and the few commands that save a guest to
//! a file and start another QEMU from it ([`crate::vm::snapshot`]).

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// QMP failures (all mean "could not ask", not "the guest is broken").
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Socket trouble.
    #[error("QMP I/O: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU answered something unexpected.
    #[error("QMP protocol: {0}")]
    Protocol(String),
    /// QEMU refused a command.
    #[error("QEMU refused `{command}`: {desc}")]
    Refused { command: String, desc: String },
    /// What was waited for did not happen in time.
    #[error("QMP: no {what} within {waited:?}")]
    Timeout { what: String, waited: Duration },
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
    Qmp::connect(socket, Duration::ZERO)?.status()
}

/// A `query-migrate` status: `active`, `completed`, `failed`, ...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    /// QEMU's MigrationStatus name (`none` before any migration).
    pub status: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Migration {
    /// It ended, well or not.
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }
}

/// Parses a `query-migrate` reply.
pub fn parse_migration(v: &Value) -> Result<Migration, QmpError> {
    let ret = v.get("return").ok_or_else(|| QmpError::Protocol(format!("no return in {v}")))?;
    Ok(Migration {
        status: ret.get("status").and_then(Value::as_str).unwrap_or("none").to_string(),
        error: ret.get("error-desc").and_then(Value::as_str).map(str::to_string),
    })
}

/// One QMP session (QEMU serves one client at a time: close it soon).
pub struct Qmp {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Qmp {
    /// Connects (retrying for `patience`: QEMU creates the socket while it
    /// starts) and negotiates capabilities.
    pub fn connect(socket: &Path, patience: Duration) -> Result<Qmp, QmpError> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if start.elapsed() >= patience => return Err(e.into()),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut q = Qmp { writer: stream.try_clone()?, reader: BufReader::new(stream) };
        read_reply(&mut q.reader)?; // greeting
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    /// Runs `command` with `arguments`; its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = serde_json::json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        self.writer.write_all(format!("{msg}\n").as_bytes())?;
        let reply = read_reply(&mut self.reader)?;
        if let Some(err) = reply.get("error") {
            let desc = err.get("desc").and_then(Value::as_str).unwrap_or("no reason given").to_string();
            return Err(QmpError::Refused { command: command.into(), desc });
        }
        Ok(reply)
    }

    /// `query-status`.
    pub fn status(&mut self) -> Result<Status, QmpError> {
        parse_status(&self.execute("query-status", None)?)
    }

    /// `query-migrate`.
    pub fn migration(&mut self) -> Result<Migration, QmpError> {
        parse_migration(&self.execute("query-migrate", None)?)
    }

    /// Polls until `done` holds for the status, or `timeout` passes.
    pub fn wait_status(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Status) -> bool,
    ) -> Result<Status, QmpError> {
        let start = Instant::now();
        loop {
            let s = self.status()?;
            if done(&s) {
                return Ok(s);
            }
            if start.elapsed() >= timeout {
                return Err(QmpError::Timeout { what: what.into(), waited: timeout });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Polls `query-migrate` until the migration ends (or `timeout`).
    pub fn wait_migration(&mut self, timeout: Duration) -> Result<Migration, QmpError> {
        let start = Instant::now();
        loop {
            let m = self.migration()?;
            if m.finished() {
                return Ok(m);
            }
            if start.elapsed() >= timeout {
                return Err(QmpError::Timeout { what: "end of the migration".into(), waited: timeout });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
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
    fn parses_migrations() {
        let v: Value = serde_json::from_str(r#"{"return": {"status": "active"}}"#).expect("json");
        assert!(!parse_migration(&v).expect("parse").finished());
        let v: Value =
            serde_json::from_str(r#"{"return": {"status": "failed", "error-desc": "peer mode"}}"#).expect("json");
        let m = parse_migration(&v).expect("parse");
        assert!(m.finished());
        assert_eq!(m.error.as_deref(), Some("peer mode"));
        let v: Value = serde_json::from_str(r#"{"return": {}}"#).expect("json");
        assert_eq!(parse_migration(&v).expect("parse").status, "none");
    }

    /// A fake QEMU on `path`: greets, accepts the capabilities, then answers
    /// the one command that follows with `reply`; returns that command.
    fn fake_qemu(path: &std::path::Path, reply: &'static [u8]) -> std::thread::JoinHandle<String> {
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
        std::thread::spawn(move || {
            let (s, _) = listener.accept().expect("accept");
            let mut w = s.try_clone().expect("clone");
            let mut r = BufReader::new(s);
            let _ = w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n");
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = w.write_all(b"{\"return\": {}}\n");
            line.clear();
            let _ = r.read_line(&mut line);
            let _ = w.write_all(reply);
            line
        })
    }

    #[test]
    fn a_refused_command_is_an_error_with_qemus_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("qmp.sock");
        let t = fake_qemu(&path, b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no migration\"}}\n");
        let mut q = Qmp::connect(&path, Duration::from_secs(1)).expect("connect");
        let e = q.execute("migrate", Some(serde_json::json!({"uri": "file:/x"}))).expect_err("refused");
        assert!(e.to_string().contains("no migration") && e.to_string().contains("`migrate`"), "{e}");
        let sent = t.join().expect("join");
        assert!(sent.contains("\"uri\":\"file:/x\""), "{sent}");
    }

    #[test]
    fn talks_to_a_fake_qemu() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("qmp.sock");
        let t =
            fake_qemu(&path, b"{\"event\": \"STOP\"}\n{\"return\": {\"status\": \"paused\", \"running\": false}}\n");
        let s = query_status(&path).expect("status");
        assert_eq!(s.status, "paused");
        assert!(s.is_stuck());
        let _ = t.join();
    }
}
