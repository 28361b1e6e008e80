//! The guest's serial console, driven with rexpect.
//!
//! rexpect's own wait loop sleeps 100 ms whenever its needle is not yet in
//! the buffer, which would add up to 100 ms to every step. So the session is
//! built with a zero timeout (each `exp` is a single non-blocking look) and
//! this module sleeps on a condition variable that the reader thread signals
//! whenever bytes arrive. A step then costs about the console's round trip.

use super::protocol::{self, PROMPT_CHAR};
use crate::support::tail_bytes as tail_of;
use regex::Regex;
use rexpect::session::{Options, StreamSession};
use rexpect::ReadUntil;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Kernel messages that mean the guest is broken, whatever the step does.
pub const CRASH_PATTERN: &str = r"(Kernel panic - not syncing|BUG: [A-Za-z]|Oops: [0-9a-fx]|WARNING: CPU: \d+|general protection fault|watchdog: BUG: soft lockup|rcu: INFO: rcu_\w+ self-detected stall|INFO: task \S+ blocked for more than|KASAN: |KFENCE: |traps: PANIC: double fault)";

/// How a console wait ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The needle did not show up in time.
    #[error("timed out after {waited:?} waiting for {what}; console tail:\n{tail}")]
    Timeout { what: String, waited: Duration, tail: String },
    /// QEMU closed the console (the guest powered off or QEMU died).
    #[error("the console closed while waiting for {what} (QEMU exited); console tail:\n{tail}")]
    Eof { what: String, tail: String },
    /// The kernel reported a crash (oops, panic, warning, lockup).
    #[error("the guest kernel reported a crash while waiting for {what}:\n{excerpt}")]
    Crash { what: String, excerpt: String },
    /// The user pressed Ctrl-C or the rig got SIGTERM.
    #[error("interrupted")]
    Interrupted,
    /// Writing to the console or the transcript failed.
    #[error("console I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// rexpect reported something else.
    #[error("console error: {0}")]
    Expect(String),
}

/// Bytes seen so far, signalled to the waiter.
#[derive(Default)]
struct Arrivals {
    count: Mutex<u64>,
    cond: Condvar,
}

impl Arrivals {
    fn bump(&self, n: usize) {
        if let Ok(mut c) = self.count.lock() {
            *c += n as u64;
        }
        self.cond.notify_all();
    }

    /// Waits until the count moves past `seen` or `max` elapses.
    fn wait_past(&self, seen: u64, max: Duration) -> u64 {
        let Ok(guard) = self.count.lock() else { return seen };
        match self.cond.wait_timeout_while(guard, max, |c| *c == seen) {
            Ok((g, _)) => *g,
            Err(_) => seen,
        }
    }

    fn current(&self) -> u64 {
        self.count.lock().map(|c| *c).unwrap_or(0)
    }
}

/// Copies every byte into the transcript and wakes the waiter.
///
/// rexpect's reader thread pulls bytes one at a time through a `BufReader`
/// and pushes each into a channel; the `BufReader` calls this `read` again
/// only once all earlier bytes have gone into that channel. So the waiter is
/// woken for a chunk at the start of the next `read` (before it blocks):
/// by then `exp` is sure to see the chunk, and no wake-up is early.
struct TeeReader {
    inner: UnixStream,
    transcript: File,
    arrivals: Arc<Arrivals>,
    /// Bytes handed out by the last `read`, not yet announced.
    pending: usize,
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending > 0 {
            self.arrivals.bump(self.pending);
            self.pending = 0;
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            // A transcript write error must not stop the console.
            let _ = self.transcript.write_all(&buf[..n]);
            self.pending = n;
        } else {
            // EOF: wake the waiter now, rexpect will report it.
            self.arrivals.bump(1);
        }
        Ok(n)
    }
}

/// Exit status and output of one command run in the guest shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepOutput {
    /// `$?` of the command.
    pub status: i32,
    /// What it printed (stdout and stderr, `\r` removed).
    pub output: String,
    /// Wall time from sending to the end marker.
    pub elapsed: Duration,
}

/// Driver of one guest console.
pub struct Console {
    session: StreamSession<UnixStream>,
    arrivals: Arc<Arrivals>,
    interrupt: Arc<AtomicBool>,
    crash: Regex,
    steps: u64,
}

/// Nap when nothing new arrived; bounds how late an interrupt is noticed.
/// Arrivals wake the waiter at once (see [`TeeReader`]).
const IDLE_NAP: Duration = Duration::from_millis(50);

impl Console {
    /// Wraps a connected console socket; every byte read is appended to `transcript`.
    pub fn attach(stream: UnixStream, transcript: &Path, interrupt: Arc<AtomicBool>) -> Result<Console, ConsoleError> {
        let arrivals = Arc::new(Arrivals::default());
        let reader = TeeReader {
            inner: stream.try_clone()?,
            transcript: File::create(transcript)?,
            arrivals: arrivals.clone(),
            pending: 0,
        };
        // Zero timeout: every exp() is one look; waiting is done here.
        let session = StreamSession::new(reader, stream, Options::new().timeout_ms(Some(0)));
        let crash = Regex::new(CRASH_PATTERN).map_err(|e| ConsoleError::Expect(e.to_string()))?;
        Ok(Console { session, arrivals, interrupt, crash, steps: 0 })
    }

    /// Waits for `re`; returns (text before, matched text).
    pub fn wait_regex(&mut self, re: &Regex, what: &str, timeout: Duration) -> Result<(String, String), ConsoleError> {
        let start = Instant::now();
        let needles = || vec![ReadUntil::Regex(re.clone()), ReadUntil::Regex(self.crash.clone())];
        loop {
            let seen = self.arrivals.current();
            match self.session.exp_any(needles()) {
                Ok((before, matched)) => {
                    if self.crash.is_match(&matched) && !re.is_match(&matched) {
                        return Err(self.collect_crash(what, before, matched));
                    }
                    return Ok((before, matched));
                }
                Err(rexpect::error::Error::Timeout { got, .. }) => {
                    if start.elapsed() >= timeout {
                        return Err(ConsoleError::Timeout {
                            what: what.into(),
                            waited: timeout,
                            tail: tail_of(&got, 2000),
                        });
                    }
                    if self.interrupt.load(Ordering::Relaxed) {
                        return Err(ConsoleError::Interrupted);
                    }
                    // `seen` was read before the look: anything newer wakes us at once.
                    let left = timeout.saturating_sub(start.elapsed());
                    self.arrivals.wait_past(seen, left.min(IDLE_NAP));
                }
                Err(rexpect::error::Error::EOF { got, .. }) => {
                    if let Some(m) = self.crash.find(&got) {
                        return Err(ConsoleError::Crash { what: what.into(), excerpt: excerpt_from(&got, m.start()) });
                    }
                    return Err(ConsoleError::Eof { what: what.into(), tail: tail_of(&got, 2000) });
                }
                Err(e) => return Err(ConsoleError::Expect(e.to_string())),
            }
        }
    }

    /// After a crash line, keeps reading briefly so the report is complete.
    fn collect_crash(&mut self, what: &str, before: String, matched: String) -> ConsoleError {
        let mut report = format!("{}{matched}", tail_of(&before, 300));
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            let seen = self.arrivals.current();
            match self.session.exp_any(vec![ReadUntil::EOF]) {
                Ok((_, rest)) => {
                    report.push_str(&rest);
                    break;
                }
                Err(rexpect::error::Error::Timeout { .. }) => {}
                Err(_) => break,
            }
            while let Some(c) = self.session.try_read() {
                report.push(c);
            }
            self.arrivals.wait_past(seen, Duration::from_millis(50));
        }
        // The head of the report says what happened; keep that.
        ConsoleError::Crash { what: what.into(), excerpt: clean(&report.chars().take(4000).collect::<String>()) }
    }

    /// Waits for a literal string.
    pub fn wait_str(&mut self, needle: &str, timeout: Duration) -> Result<String, ConsoleError> {
        let re = Regex::new(&regex::escape(needle)).map_err(|e| ConsoleError::Expect(e.to_string()))?;
        self.wait_regex(&re, &format!("`{needle}`"), timeout).map(|(before, _)| before)
    }

    /// Sends raw text (no newline added).
    pub fn send(&mut self, text: &str) -> Result<(), ConsoleError> {
        let closed = |e: rexpect::error::Error| match e {
            // QEMU closed its end: the guest is gone.
            rexpect::error::Error::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
                ConsoleError::Eof { what: format!("sending `{}`", short(text)), tail: String::new() }
            }
            other => ConsoleError::Expect(other.to_string()),
        };
        self.session.send(text).map_err(closed)?;
        self.session.flush().map_err(closed)
    }

    /// Sends Ctrl-C (ends a step that overran its timeout).
    pub fn interrupt_step(&mut self) -> Result<(), ConsoleError> {
        self.session.send_control('c').map_err(|e| ConsoleError::Expect(e.to_string()))
    }

    /// Makes the shell scriptable: no echo, one-byte prompts.
    /// Waits for the shell to confirm with a marker.
    pub fn prepare_shell(&mut self, timeout: Duration) -> Result<(), ConsoleError> {
        self.send(&protocol::shell_setup_line())?;
        self.wait_str(protocol::SHELL_OK_MARKER, timeout)?;
        Ok(())
    }

    /// Runs one shell command and returns its status and output.
    ///
    /// The end marker carries the step number and `$?`; the command text sent
    /// only contains `%s` placeholders, so an echoed command never matches.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<StepOutput, ConsoleError> {
        self.steps += 1;
        let n = self.steps;
        let start = Instant::now();
        self.send(&protocol::step_line(n, command))?;
        let re = Regex::new(&protocol::end_marker_pattern(n)).map_err(|e| ConsoleError::Expect(e.to_string()))?;
        let result = self.wait_regex(&re, &format!("the end of `{}`", short(command)), timeout);
        let (before, matched) = match result {
            Ok(v) => v,
            Err(ConsoleError::Timeout { what, waited, tail }) => {
                // Stop the command so the shell is usable for the next step.
                let _ = self.interrupt_step();
                return Err(ConsoleError::Timeout { what, waited, tail });
            }
            Err(e) => return Err(e),
        };
        let status = re.captures(&matched).and_then(|c| c.get(1)).and_then(|m| m.as_str().parse().ok()).unwrap_or(-1);
        Ok(StepOutput { status, output: clean(&before), elapsed: start.elapsed() })
    }

    /// Takes whatever output has arrived so far (interactive use).
    pub fn take_output(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.session.try_read() {
            s.push(c);
        }
        s
    }

    /// Sleeps until more output arrives or `max` passes.
    pub fn wait_output(&self, max: Duration) {
        let seen = self.arrivals.current();
        self.arrivals.wait_past(seen, max);
    }
}

/// Removes `\r` and the terminal's cursor queries, trims trailing newlines.
pub fn clean(text: &str) -> String {
    let esc = Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").map(|re| re.replace_all(text, "").into_owned());
    let text = esc.unwrap_or_else(|_| text.to_string());
    text.replace(['\r', PROMPT_CHAR], "").trim_matches('\n').to_string()
}

fn excerpt_from(text: &str, at: usize) -> String {
    let begin = text[..at].rfind('\n').unwrap_or(0);
    clean(&text[begin..].chars().take(4000).collect::<String>())
}

fn short(command: &str) -> String {
    let one_line = command.lines().next().unwrap_or("");
    if one_line.len() > 60 {
        format!("{}...", one_line.chars().take(60).collect::<String>())
    } else {
        one_line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::thread;

    /// A fake guest: a thread that answers like `sh` would, over a socketpair.
    fn fake_guest(
        script: impl FnOnce(std::io::BufReader<UnixStream>, UnixStream) + Send + 'static,
    ) -> (Console, tempfile::TempDir) {
        let (host, guest) = UnixStream::pair().expect("socketpair");
        let reader = std::io::BufReader::new(guest.try_clone().expect("clone"));
        thread::spawn(move || script(reader, guest));
        let dir = tempfile::tempdir().expect("tempdir");
        let console =
            Console::attach(host, &dir.path().join("console.log"), Arc::new(AtomicBool::new(false))).expect("attach");
        (console, dir)
    }

    /// Reads the command group and end-marker line, answers with `out` and `status`.
    fn answer(reader: &mut std::io::BufReader<UnixStream>, w: &mut UnixStream, out: &str, status: i32) {
        let mut line = String::new();
        let mut printf = String::new();
        let _ = reader.read_line(&mut line);
        let _ = reader.read_line(&mut printf);
        let n: String = printf.split_whitespace().rev().nth(1).unwrap_or("0").to_string();
        let n: u64 = n.parse().unwrap_or(0);
        let _ = write!(w, "{out}\r\n\r\n{}\r\n", protocol::end_marker(n, status));
    }

    #[test]
    fn runs_steps_and_reads_status() {
        let (mut c, dir) = fake_guest(|mut r, mut w| {
            answer(&mut r, &mut w, "hello", 0);
            answer(&mut r, &mut w, "boom", 3);
        });
        let a = c.run("echo hello", Duration::from_secs(5)).expect("step 1");
        assert_eq!((a.status, a.output.as_str()), (0, "hello"));
        let b = c.run("false", Duration::from_secs(5)).expect("step 2");
        assert_eq!((b.status, b.output.as_str()), (3, "boom"));
        let log = std::fs::read_to_string(dir.path().join("console.log")).expect("log");
        assert!(log.contains("<RIG-END:2:3>"));
    }

    #[test]
    fn step_overhead_is_not_rexpects_100ms_poll() {
        let (mut c, _dir) = fake_guest(|mut r, mut w| {
            for _ in 0..20 {
                answer(&mut r, &mut w, "x", 0);
            }
        });
        let start = Instant::now();
        for _ in 0..20 {
            c.run("true", Duration::from_secs(5)).expect("step");
        }
        // 20 steps at rexpect's poll would take about 2 s.
        assert!(start.elapsed() < Duration::from_millis(800), "{:?}", start.elapsed());
    }

    #[test]
    fn timeout_reports_tail() {
        let (mut c, _dir) = fake_guest(|_r, mut w| {
            let _ = w.write_all(b"still working\r\n");
            thread::sleep(Duration::from_secs(3));
        });
        match c.run("sleep 100", Duration::from_millis(300)) {
            Err(ConsoleError::Timeout { tail, .. }) => assert!(tail.contains("still working")),
            other => panic!("expected timeout, got {other:?}"),
        }
    }

    #[test]
    fn crash_is_reported_with_excerpt() {
        let (mut c, _dir) = fake_guest(|_r, mut w| {
            let _ = w.write_all(b"[   3.1] BUG: kernel NULL pointer dereference, address: 0000000000000000\r\n[   3.1] RIP: 0010:rig_bad+0x5\r\n");
            thread::sleep(Duration::from_secs(2));
        });
        match c.run("echo c > /proc/sysrq-trigger", Duration::from_secs(3)) {
            Err(ConsoleError::Crash { excerpt, .. }) => {
                assert!(excerpt.contains("NULL pointer dereference"), "{excerpt}");
                assert!(excerpt.contains("RIP"), "{excerpt}");
            }
            other => panic!("expected crash, got {other:?}"),
        }
    }

    #[test]
    fn eof_is_reported() {
        let (mut c, _dir) = fake_guest(|_r, w| {
            let _ = (&w).write_all(b"reboot: Power down\r\n");
            drop(w);
        });
        assert!(matches!(c.run("poweroff -f", Duration::from_secs(3)), Err(ConsoleError::Eof { .. })));
    }

    #[test]
    fn clean_strips_cursor_queries() {
        assert_eq!(clean("\x1b[6nabc\r\n"), "abc");
        assert_eq!(clean("\u{1e}\x1b[6n\u{1e}out\r\n"), "out");
    }
}
