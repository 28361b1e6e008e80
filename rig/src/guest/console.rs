//! The guest's shell console (the second serial port), driven with
//! rexpect, with the kernel's console (the first port) read beside it by
//! [`KernelConsole`]: a step ends at its end marker, and the kernel reports
//! made during it come with its output.
//!
//! rexpect's own wait loop sleeps 100 ms whenever its needle is not yet in
//! the buffer, which would add up to 100 ms to every step. So the session is
//! built with a zero timeout (each `exp` is a single non-blocking look) and
//! this module sleeps on a condition variable that either reader signals
//! whenever bytes arrive. A step then costs about the console's round trip.
//! rexpect hands out bytes as Latin-1 chars; [`utf8`] turns them back.

use super::kernel_console::{Attributed, KernelConsole, KernelMark, Wake};
use super::protocol::{self, Nonce, PROMPT_CHAR};
use crate::support::tail_bytes as tail_of;
use crate::verdict::Severity;
use regex::Regex;
use rexpect::session::{Options, StreamSession};
use rexpect::ReadUntil;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a console wait ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The needle did not show up in time (`reports`: what the kernel
    /// reported meanwhile).
    #[error("timed out after {waited:?} waiting for {what}; console tail:\n{tail}")]
    Timeout { what: String, waited: Duration, tail: String, reports: Vec<Attributed> },
    /// QEMU closed the console (the guest powered off or QEMU died).
    #[error("the console closed while waiting for {what} (QEMU exited); kernel console tail:\n{tail}")]
    Eof { what: String, tail: String },
    /// The kernel reported a crash the step did not come back from.
    #[error("the guest kernel reported {} while waiting for {what}:\n{}", titles(reports), excerpts(reports))]
    Crash { what: String, reports: Vec<Attributed> },
    /// The shell exited (`exit`, `exec`, an oops that killed it); /init
    /// started a new one, which is not set up yet.
    #[error("the guest shell exited while waiting for {what}{}", if reports.is_empty() { String::new() } else { format!("; the kernel reported {}:\n{}", titles(reports), excerpts(reports)) })]
    ShellExited { what: String, reports: Vec<Attributed> },
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

/// `kernel BUG in f, WARNING in g`.
pub fn titles(reports: &[Attributed]) -> String {
    reports.iter().map(|a| a.report.title.as_str()).collect::<Vec<_>>().join(", ")
}

/// Every report's excerpt, one after the other.
pub fn excerpts(reports: &[Attributed]) -> String {
    reports.iter().map(|a| a.report.excerpt.as_str()).collect::<Vec<_>>().join("\n")
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
    wake: Arc<Wake>,
    /// Bytes handed out by the last `read`, not yet announced.
    pending: usize,
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending > 0 {
            self.wake.bump(self.pending);
            self.pending = 0;
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            // A transcript write error must not stop the console.
            let _ = self.transcript.write_all(&buf[..n]);
            self.pending = n;
        } else {
            // EOF: wake the waiter now, rexpect will report it.
            self.wake.bump(1);
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
    /// Kernel reports made during the step.
    pub reports: Vec<Attributed>,
}

/// Driver of one guest's consoles.
pub struct Console {
    session: StreamSession<UnixStream>,
    wake: Arc<Wake>,
    interrupt: Arc<AtomicBool>,
    kernel: KernelConsole,
    nonce: Nonce,
    respawn: Regex,
    steps: u64,
}

/// Nap when nothing new arrived; bounds how late an interrupt is noticed.
/// Arrivals wake the waiter at once (see [`TeeReader`]).
const IDLE_NAP: Duration = Duration::from_millis(50);

/// After an oops, how long a step may still take to end on its own before
/// the oops counts as a crash of the step (the task it killed may have been
/// the step's, leaving the shell waiting). Warnings, stalls and corruption
/// reports let the step run to its own end or timeout.
const AFTER_OOPS: Duration = Duration::from_secs(2);

/// How long a new shell gets to print a prompt or answer its set-up line
/// before it is interrupted and asked again.
const SHELL_SETTLE: Duration = Duration::from_secs(5);

/// How long the kernel console may lag the shell's: the kernel prints its
/// console from a thread on recent kernels.
const KERNEL_LAG: Duration = Duration::from_secs(2);

/// The two consoles of a guest and where their transcripts go.
pub struct Ports<'a> {
    /// The shell's port.
    pub shell: UnixStream,
    /// Its transcript (`shell.log`).
    pub shell_log: &'a Path,
    /// The kernel console's port.
    pub kernel: UnixStream,
    /// Its transcript (`console.log`).
    pub kernel_log: &'a Path,
    /// A guest restored from a snapshot goes on where the run's earlier
    /// guests left the transcripts and the step numbers.
    pub resume: Option<Resume>,
}

/// Where an earlier guest of the run left off: steps sent, and lines in
/// `console.log` (its restore mark included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    pub steps: u64,
    pub lines: usize,
}

impl Console {
    /// Starts reading both consoles; `nonce` is the run's marker secret.
    pub fn attach(ports: Ports, nonce: Nonce, interrupt: Arc<AtomicBool>) -> Result<Console, ConsoleError> {
        let wake = Arc::new(Wake::default());
        let after = ports.resume.map(|r| r.lines);
        let kernel = KernelConsole::spawn_after(ports.kernel, ports.kernel_log, nonce.clone(), wake.clone(), after)?;
        let transcript = match ports.resume {
            None => crate::support::create_private_file(ports.shell_log)?,
            Some(_) => crate::support::append_private_file(ports.shell_log)?,
        };
        let reader = TeeReader { inner: ports.shell.try_clone()?, transcript, wake: wake.clone(), pending: 0 };
        // Zero timeout: every exp() is one look; waiting is done here.
        let session = StreamSession::new(reader, ports.shell, Options::new().timeout_ms(Some(0)));
        let respawn =
            Regex::new(&regex::escape(protocol::RESPAWN_MARKER)).map_err(|e| ConsoleError::Expect(e.to_string()))?;
        let steps = ports.resume.map_or(0, |r| r.steps);
        Ok(Console { session, wake, interrupt, kernel, nonce, respawn, steps })
    }

    /// Where this guest leaves off, for the next one of the run; complete
    /// once the kernel console reached its end.
    pub fn resume_point(&self) -> Resume {
        Resume { steps: self.steps, lines: self.kernel.lines() }
    }

    /// The kernel console beside the shell.
    pub fn kernel(&self) -> &KernelConsole {
        &self.kernel
    }

    /// The number of the last step sent.
    pub fn last_step(&self) -> u64 {
        self.steps
    }

    /// The run's marker secret.
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    /// Waits for `re` on the shell's console; returns (text before, matched
    /// text). Fails early when the shell exits, when QEMU goes away, or when
    /// the kernel reported something and the wait did not end within
    /// [`AFTER_REPORT`] of it.
    pub fn wait_regex(&mut self, re: &Regex, what: &str, timeout: Duration) -> Result<(String, String), ConsoleError> {
        let start = Instant::now();
        let from = self.kernel.mark();
        let mut oops_done: Option<Instant> = None;
        let needles = || vec![ReadUntil::Regex(re.clone()), ReadUntil::Regex(self.respawn.clone())];
        loop {
            let seen = self.wake.current();
            match self.session.exp_any(needles()) {
                Ok((before, matched)) => {
                    if self.respawn.is_match(&matched) && !re.is_match(&matched) {
                        self.settle_kernel();
                        return Err(ConsoleError::ShellExited {
                            what: what.into(),
                            reports: self.kernel.reports_since(from),
                        });
                    }
                    return Ok((utf8(&before), utf8(&matched)));
                }
                Err(rexpect::error::Error::Timeout { got, .. }) => {
                    if self.kernel.started_since(from) && !self.kernel.open() {
                        let reports = self.kernel.reports_since(from);
                        // A panic ends the guest; an oops may have killed the
                        // step's task; anything else lets the step go on.
                        if reports.iter().any(|a| a.report.panicked) {
                            self.settle_kernel();
                            return Err(ConsoleError::Crash {
                                what: what.into(),
                                reports: self.kernel.reports_since(from),
                            });
                        }
                        if reports.iter().any(|a| a.report.class.severity() == Severity::Oops) {
                            let done = *oops_done.get_or_insert_with(Instant::now);
                            if done.elapsed() >= AFTER_OOPS {
                                return Err(ConsoleError::Crash { what: what.into(), reports });
                            }
                        }
                    }
                    if start.elapsed() >= timeout {
                        return Err(ConsoleError::Timeout {
                            what: what.into(),
                            waited: timeout,
                            tail: tail_of(&utf8(&got), 2000),
                            reports: self.kernel.reports_since(from),
                        });
                    }
                    if self.interrupt.load(Ordering::Relaxed) {
                        return Err(ConsoleError::Interrupted);
                    }
                    // `seen` was read before the look: anything newer wakes us at once.
                    let left = timeout.saturating_sub(start.elapsed());
                    self.wake.wait_past(seen, left.min(IDLE_NAP));
                }
                Err(rexpect::error::Error::EOF { .. }) => {
                    self.settle_kernel();
                    let reports = self.kernel.reports_since(from);
                    if !reports.is_empty() {
                        return Err(ConsoleError::Crash { what: what.into(), reports });
                    }
                    return Err(ConsoleError::Eof { what: what.into(), tail: tail_of(&self.kernel.tail(), 2000) });
                }
                Err(e) => return Err(ConsoleError::Expect(e.to_string())),
            }
        }
    }

    /// Lets the kernel console finish the report it is printing.
    fn settle_kernel(&self) {
        self.kernel.wait_until(KERNEL_LAG, |k| !k.open() || k.eof());
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

    /// Takes over the shell /init started after the last one exited: waits
    /// for its prompt (what is typed while the old shell's tty hangs up is
    /// lost or garbled), discards any half line with Ctrl-C, waits for the
    /// prompt that follows (a line typed while the shell handles the
    /// interrupt can be dropped), then sets it up like the first. Tries
    /// again until `timeout` if the set-up line is lost all the same.
    pub fn take_new_shell(&mut self, timeout: Duration) -> Result<(), ConsoleError> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        self.ignore_timeout(protocol::FRESH_PROMPT, left())?;
        loop {
            self.interrupt_step()?;
            self.ignore_timeout(protocol::FRESH_PROMPT, left().min(SHELL_SETTLE))?;
            self.send(&protocol::shell_setup_line())?;
            match self.wait_str(protocol::SHELL_OK_MARKER, left().min(SHELL_SETTLE)) {
                Ok(_) => return Ok(()),
                Err(ConsoleError::Timeout { .. }) if !left().is_zero() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for `needle`; not seeing it in time is not an error.
    fn ignore_timeout(&mut self, needle: &str, timeout: Duration) -> Result<(), ConsoleError> {
        match self.wait_str(needle, timeout) {
            Ok(_) | Err(ConsoleError::Timeout { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs one shell command and returns its status, output and the kernel
    /// reports made while it ran.
    ///
    /// The end marker carries the run's nonce, the step number and `$?`; the
    /// command text sent only contains `%s` placeholders, so an echoed
    /// command never matches.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<StepOutput, ConsoleError> {
        self.steps += 1;
        let n = self.steps;
        let start = Instant::now();
        self.send(&protocol::step_line(&self.nonce, n, command))?;
        let re = Regex::new(&protocol::end_marker_pattern(&self.nonce, n))
            .map_err(|e| ConsoleError::Expect(e.to_string()))?;
        let result = self.wait_regex(&re, &format!("the end of `{}`", short(command)), timeout);
        let (before, matched) = match result {
            Ok(v) => v,
            Err(e @ ConsoleError::Timeout { .. }) => {
                // Stop the command so the shell is usable for the next step.
                let _ = self.interrupt_step();
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let status = re.captures(&matched).and_then(|c| c.get(1)).and_then(|m| m.as_str().parse().ok()).unwrap_or(-1);
        let elapsed = start.elapsed();
        // The kernel's own timeline says which reports belong to this step.
        self.kernel.wait_until(KERNEL_LAG, |k| k.eof() || (k.step_ended(n) && !k.open()));
        let reports = self.kernel.reports().into_iter().filter(|a| a.step == Some(n)).collect();
        Ok(StepOutput { status, output: clean(&before), elapsed, reports })
    }

    /// Takes whatever shell output has arrived so far (interactive use).
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut s = Vec::new();
        while let Some(c) = self.session.try_read() {
            s.push(c as u32 as u8);
        }
        s
    }

    /// Sleeps until more output arrives or `max` passes.
    pub fn wait_output(&self, max: Duration) {
        let seen = self.wake.current();
        self.wake.wait_past(seen, max);
    }
}

/// rexpect's chars (one per byte) back to the UTF-8 the guest sent.
pub fn utf8(latin1: &str) -> String {
    let bytes: Vec<u8> = latin1.chars().map(|c| c as u32 as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Removes `\r` and the terminal's cursor queries, trims trailing newlines.
pub fn clean(text: &str) -> String {
    let esc = Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").map(|re| re.replace_all(text, "").into_owned());
    let text = esc.unwrap_or_else(|_| text.to_string());
    text.replace(['\r', PROMPT_CHAR], "").trim_matches('\n').to_string()
}

fn short(command: &str) -> String {
    let one_line = command.lines().next().unwrap_or("");
    if one_line.len() > 60 {
        format!("{}...", one_line.chars().take(60).collect::<String>())
    } else {
        one_line.to_string()
    }
}

/// A mark for callers that watch the kernel console across several waits.
pub fn kernel_mark(c: &Console) -> KernelMark {
    c.kernel.mark()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::thread;

    const NONCE: &str = "5eed";

    /// The guest side of a fake guest: the shell's port (read and write)
    /// and the kernel console's port.
    struct Guest {
        shell: std::io::BufReader<UnixStream>,
        out: UnixStream,
        kernel: UnixStream,
    }

    impl Guest {
        /// Reads one step line; answers with `out`, `status`, after writing
        /// the step's marks (and `kernel_lines` between them) to the kernel port.
        fn answer(&mut self, out: &str, status: i32, kernel_lines: &[&str]) {
            let mut line = String::new();
            let mut rest = String::new();
            let _ = self.shell.read_line(&mut line);
            let _ = self.shell.read_line(&mut rest);
            let n: u64 = rest.split_whitespace().rev().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            let _ = write!(self.kernel, "[    1.000000] rig-step:{NONCE}:{n}:begin\r\n");
            for l in kernel_lines {
                let _ = write!(self.kernel, "{l}\r\n");
            }
            let _ = write!(self.kernel, "[    1.000002] rig-step:{NONCE}:{n}:end\r\n");
            let _ = write!(self.out, "{out}\r\n\r\n{}\r\n", protocol::end_marker(&Nonce::fixed(NONCE), n, status));
        }
    }

    /// A fake guest: a thread that answers like `sh` would, over socketpairs.
    fn fake_guest(script: impl FnOnce(Guest) + Send + 'static) -> (Console, tempfile::TempDir) {
        let (host, guest) = UnixStream::pair().expect("socketpair");
        let (khost, kguest) = UnixStream::pair().expect("socketpair");
        let g = Guest { shell: std::io::BufReader::new(guest.try_clone().expect("clone")), out: guest, kernel: kguest };
        thread::spawn(move || script(g));
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = Ports {
            shell: host,
            shell_log: &dir.path().join("shell.log"),
            kernel: khost,
            kernel_log: &dir.path().join("console.log"),
            resume: None,
        };
        let console = Console::attach(ports, Nonce::fixed(NONCE), Arc::new(AtomicBool::new(false))).expect("attach");
        (console, dir)
    }

    /// Reads up to and including `end` from the shell port.
    fn read_until(g: &mut Guest, end: u8) -> Vec<u8> {
        let mut buf = vec![];
        let _ = g.shell.read_until(end, &mut buf);
        buf
    }

    #[test]
    fn a_new_shell_that_loses_its_setup_line_is_asked_again() {
        let (mut c, _dir) = fake_guest(|mut g| {
            // The step's two lines kill the shell; a new one starts.
            read_until(&mut g, b'\n');
            read_until(&mut g, b'\n');
            let _ = write!(g.out, "{}\r\n\r\nrig# ", protocol::RESPAWN_MARKER);
            // The Ctrl-C, a prompt, then a set-up line that is lost.
            assert_eq!(read_until(&mut g, 0x03), vec![0x03]);
            let _ = write!(g.out, "\r\nrig# ");
            read_until(&mut g, b'\n');
            // Asked again after an interrupt: this time it answers.
            let again = read_until(&mut g, 0x03);
            assert_eq!(again.last(), Some(&0x03), "{again:?}");
            let _ = write!(g.out, "\r\nrig# ");
            let line = read_until(&mut g, b'\n');
            assert_eq!(String::from_utf8_lossy(&line).trim_end(), protocol::shell_setup_line().trim_end());
            let _ = write!(g.out, "{}\r\n", protocol::SHELL_OK_MARKER);
            g.answer("", 0, &[]);
        });
        match c.run("echo oops > /proc/x", Duration::from_secs(5)) {
            Err(ConsoleError::ShellExited { .. }) => {}
            other => panic!("expected the shell to exit, got {other:?}"),
        }
        c.take_new_shell(Duration::from_secs(20)).expect("the second set-up line is answered");
        assert_eq!(c.run("true", Duration::from_secs(5)).expect("the new shell runs steps").status, 0);
    }

    #[test]
    fn runs_steps_and_reads_status() {
        let (mut c, dir) = fake_guest(|mut g| {
            g.answer("hello", 0, &[]);
            g.answer("boom", 3, &[]);
        });
        let a = c.run("echo hello", Duration::from_secs(5)).expect("step 1");
        assert_eq!((a.status, a.output.as_str()), (0, "hello"));
        let b = c.run("false", Duration::from_secs(5)).expect("step 2");
        assert_eq!((b.status, b.output.as_str()), (3, "boom"));
        assert!(a.reports.is_empty() && b.reports.is_empty());
        let log = std::fs::read_to_string(dir.path().join("shell.log")).expect("log");
        assert!(log.contains("<RIG-END:5eed:2:3>"));
        let klog = std::fs::read_to_string(dir.path().join("console.log")).expect("log");
        assert!(klog.contains("rig-step:5eed:2:end"));
    }

    #[test]
    fn step_overhead_is_not_rexpects_100ms_poll() {
        let (mut c, _dir) = fake_guest(|mut g| {
            for _ in 0..20 {
                g.answer("x", 0, &[]);
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
        let (mut c, _dir) = fake_guest(|mut g| {
            let _ = g.out.write_all(b"still working\r\n");
            thread::sleep(Duration::from_secs(3));
        });
        match c.run("sleep 100", Duration::from_millis(300)) {
            Err(ConsoleError::Timeout { tail, .. }) => assert!(tail.contains("still working")),
            other => panic!("expected timeout, got {other:?}"),
        }
    }

    const WARNING: &[&str] = &[
        "[    1.000001] ------------[ cut here ]------------",
        "[    1.000001] WARNING: CPU: 0 PID: 9 at x.c:1 rig_faulty_write+0x5/0x9 [rig_faulty]",
        "[    1.000001] Call Trace:",
        "[    1.000001]  rig_faulty_write+0x5/0x9 [rig_faulty]",
        "[    1.000001] ---[ end trace 0000000000000000 ]---",
    ];

    #[test]
    fn a_report_during_a_step_comes_with_its_output() {
        let (mut c, _dir) = fake_guest(|mut g| {
            g.answer("done", 0, WARNING);
            g.answer("next", 0, &[]);
        });
        let a = c.run("echo warn > /proc/rig_faulty", Duration::from_secs(5)).expect("step");
        assert_eq!(a.reports.len(), 1, "{a:?}");
        assert!(a.reports[0].report.title.contains("rig_faulty_write"), "{:?}", a.reports[0]);
        let b = c.run("echo next", Duration::from_secs(5)).expect("step");
        assert!(b.reports.is_empty());
    }

    #[test]
    fn crash_is_reported_with_excerpt() {
        let (mut c, _dir) = fake_guest(|mut g| {
            let mut line = String::new();
            let _ = g.shell.read_line(&mut line);
            let _ = g.kernel.write_all(b"[    3.100000] BUG: kernel NULL pointer dereference, address: 0000000000000000\r\n[    3.100000] RIP: 0010:rig_bad+0x5/0x9\r\n[    3.100000] Call Trace:\r\n[    3.100000]  rig_bad+0x5/0x9\r\n[    3.200000] Kernel panic - not syncing: Fatal exception\r\n");
            thread::sleep(Duration::from_millis(600));
            drop(g);
        });
        match c.run("echo c > /proc/sysrq-trigger", Duration::from_secs(10)) {
            Err(ConsoleError::Crash { reports, .. }) => {
                let e = excerpts(&reports);
                assert!(e.contains("NULL pointer dereference"), "{e}");
                assert!(e.contains("RIP"), "{e}");
            }
            other => panic!("expected crash, got {other:?}"),
        }
    }

    #[test]
    fn a_shell_that_exits_is_noticed_at_once() {
        let (mut c, _dir) = fake_guest(|mut g| {
            let mut line = String::new();
            let _ = g.shell.read_line(&mut line);
            let _ = write!(g.out, "{}\r\n", protocol::RESPAWN_MARKER);
            thread::sleep(Duration::from_secs(2));
        });
        let start = Instant::now();
        assert!(matches!(c.run("exit", Duration::from_secs(10)), Err(ConsoleError::ShellExited { .. })));
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn eof_is_reported() {
        let (mut c, _dir) = fake_guest(|g| {
            let _ = (&g.kernel).write_all(b"[    9.0] reboot: Power down\r\n");
            drop(g);
        });
        assert!(matches!(c.run("poweroff -f", Duration::from_secs(3)), Err(ConsoleError::Eof { .. })));
    }

    #[test]
    fn output_is_utf8() {
        let (mut c, _dir) = fake_guest(|mut g| g.answer("gr\u{fc}\u{df}e \u{2713}", 0, &[]));
        assert_eq!(c.run("echo", Duration::from_secs(5)).expect("step").output, "gr\u{fc}\u{df}e \u{2713}");
    }

    #[test]
    fn clean_strips_cursor_queries() {
        assert_eq!(clean("\x1b[6nabc\r\n"), "abc");
        assert_eq!(clean("\u{1e}\x1b[6n\u{1e}out\r\n"), "out");
    }
}
