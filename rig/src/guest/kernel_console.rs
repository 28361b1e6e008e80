//! The kernel's console: the guest's first serial port carries the kernel's
//! messages and nothing else (the shell has its own port). Every byte goes
//! to `console.log`; every line goes through the report classifier
//! ([`crate::verdict`]); the step marks the shell writes to /dev/kmsg
//! ([`protocol::StepMark`]) put each report on the step it happened in.
//!
//! [`Timeline`] is the pure part and reads a live console or a saved log
//! alike; [`KernelConsole`] is the reader thread around it.

use super::protocol::{self, Nonce, StepMark};
use crate::verdict::{Classifier, Event, KernelReport};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A report and the step (the shell's step number) it happened in; `None`
/// for one outside any step (boot, between steps, after the last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributed {
    pub report: KernelReport,
    pub step: Option<u64>,
}

/// What a line of the kernel console meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimelineEvent {
    /// A report began (during `step`, if any).
    Started { step: Option<u64> },
    /// A report is complete.
    Report(Attributed),
    /// A step's begin or end mark.
    Mark(StepMark),
}

/// Kernel console lines in order: step marks and classified reports.
#[derive(Debug)]
pub struct Timeline {
    nonce: Nonce,
    classifier: Classifier,
    /// The step between its begin and end marks.
    current: Option<u64>,
    /// The step the open report started in.
    report_step: Option<u64>,
    /// Bytes after the last newline.
    partial: Vec<u8>,
}

/// The text after the printk time prefix `[    3.123456] `.
fn message(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(|c: char| c != '[').strip_prefix('[')?;
    let (time, text) = rest.split_once(']')?;
    time.trim().parse::<f64>().ok()?;
    Some(text.strip_prefix(' ').unwrap_or(text))
}

impl Timeline {
    /// A timeline for a run with `nonce`.
    pub fn new(nonce: Nonce) -> Timeline {
        Timeline::after(nonce, 0)
    }

    /// A timeline that goes on a log of `lines` lines (a restored guest's
    /// console after its restore mark): line numbers go on from there.
    pub fn after(nonce: Nonce, lines: usize) -> Timeline {
        Timeline { nonce, classifier: Classifier::after(lines), current: None, report_step: None, partial: vec![] }
    }

    /// Lines read so far, those before [`Timeline::after`] included.
    pub fn lines(&self) -> usize {
        self.classifier.lines()
    }

    /// Feeds raw console bytes; complete lines are read, the rest waits.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<TimelineEvent> {
        self.partial.extend_from_slice(bytes);
        let mut events = vec![];
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            events.extend(self.line(&String::from_utf8_lossy(&line[..nl])));
        }
        events
    }

    /// Reads one complete line.
    pub fn line(&mut self, raw: &str) -> Vec<TimelineEvent> {
        if protocol::is_restore_mark(&self.nonce, raw) {
            // Another guest from here on: what the last one left open is
            // complete, and no step of it goes on.
            let mut events = self.wrap_idle();
            let blank = self.classifier.line("");
            events.extend(self.wrap(blank));
            self.current = None;
            return events;
        }
        let mark = message(raw).and_then(|m| protocol::parse_step_mark(&self.nonce, m));
        if let Some(mark) = mark {
            // A blank line keeps the classifier's line numbers those of the log.
            let blank = self.classifier.line("");
            let mut events = self.wrap(blank);
            self.current = match mark {
                StepMark::Begin(n) => Some(n),
                StepMark::End(_) => None,
            };
            events.push(TimelineEvent::Mark(mark));
            return events;
        }
        let found = self.classifier.line(raw);
        self.wrap(found)
    }

    /// No line came for a while: the open report is complete.
    pub fn idle(&mut self) -> Vec<TimelineEvent> {
        self.wrap_idle()
    }

    fn wrap_idle(&mut self) -> Vec<TimelineEvent> {
        let found = self.classifier.idle();
        self.wrap(found)
    }

    /// End of the console: the last line and the open report.
    pub fn finish(&mut self) -> Vec<TimelineEvent> {
        let mut events = vec![];
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            events.extend(self.line(&String::from_utf8_lossy(&rest)));
        }
        let found = self.classifier.finish();
        events.extend(self.wrap(found));
        events
    }

    /// A report is being collected.
    pub fn report_open(&self) -> bool {
        self.classifier.current().is_some()
    }

    fn wrap(&mut self, found: Vec<Event>) -> Vec<TimelineEvent> {
        found
            .into_iter()
            .map(|e| match e {
                Event::Started { .. } => {
                    self.report_step = self.current;
                    TimelineEvent::Started { step: self.current }
                }
                Event::Completed(report) => TimelineEvent::Report(Attributed { report, step: self.report_step }),
            })
            .collect()
    }
}

/// The kernel time of a report's first line, if it has one.
pub fn report_time(r: &KernelReport) -> Option<f64> {
    let first = r.excerpt.lines().next()?;
    let rest = first.trim_start().strip_prefix('[')?;
    rest.split_once(']')?.0.trim().parse().ok()
}

/// Every report of a saved console log, attributed to steps.
pub fn read_log(text: &str, nonce: &Nonce) -> Vec<Attributed> {
    let mut t = Timeline::new(nonce.clone());
    let mut events = t.feed(text.as_bytes());
    events.extend(t.finish());
    events
        .into_iter()
        .filter_map(|e| match e {
            TimelineEvent::Report(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// Where a caller stands in the kernel console: what it has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelMark {
    started: u64,
    reports: usize,
}

#[derive(Debug, Default)]
struct State {
    started: u64,
    open: bool,
    reports: Vec<Attributed>,
    /// The highest step whose end mark was seen.
    last_end: Option<u64>,
    eof: bool,
    /// Lines of the log read (those of earlier guests included).
    lines: usize,
    /// The last bytes, for error messages.
    tail: VecDeque<u8>,
    /// Bytes not yet taken by [`KernelConsole::take_text`] (bounded).
    fresh: Vec<u8>,
}

/// Wakes whoever waits on the guest (the console driver shares it).
#[derive(Default)]
pub struct Wake {
    count: Mutex<u64>,
    cond: Condvar,
}

impl Wake {
    /// Something arrived.
    pub fn bump(&self, n: usize) {
        if let Ok(mut c) = self.count.lock() {
            *c += n as u64;
        }
        self.cond.notify_all();
    }

    /// Waits until the count moves past `seen` or `max` elapses.
    pub fn wait_past(&self, seen: u64, max: Duration) -> u64 {
        let Ok(guard) = self.count.lock() else { return seen };
        match self.cond.wait_timeout_while(guard, max, |c| *c == seen) {
            Ok((g, _)) => *g,
            Err(_) => seen,
        }
    }

    /// The count now.
    pub fn current(&self) -> u64 {
        self.count.lock().map(|c| *c).unwrap_or(0)
    }
}

/// Silence after which an open report counts as complete.
const IDLE: Duration = Duration::from_millis(500);
const TAIL_BYTES: usize = 4000;
/// What an interactive relay may lag behind, at most.
const FRESH_BYTES: usize = 1 << 16;

/// The reader of the kernel console: a thread that logs, classifies and
/// wakes the console driver; ends at EOF (QEMU gone).
pub struct KernelConsole {
    state: Arc<Mutex<State>>,
    wake: Arc<Wake>,
    reader: Option<JoinHandle<()>>,
}

impl KernelConsole {
    /// Starts reading `stream` into `log`.
    pub fn spawn(stream: UnixStream, log: &Path, nonce: Nonce, wake: Arc<Wake>) -> std::io::Result<KernelConsole> {
        Self::spawn_after(stream, log, nonce, wake, None)
    }

    /// Starts reading `stream`; with `after = Some(lines)`, appends to a
    /// `log` of that many lines (ending with a restore mark) and numbers
    /// lines on from there, as `rig parse` will read the whole log.
    pub fn spawn_after(
        stream: UnixStream,
        log: &Path,
        nonce: Nonce,
        wake: Arc<Wake>,
        after: Option<usize>,
    ) -> std::io::Result<KernelConsole> {
        let mut file = match after {
            None => crate::support::create_private_file(log)?,
            Some(_) => crate::support::append_private_file(log)?,
        };
        stream.set_read_timeout(Some(IDLE))?;
        let state = Arc::new(Mutex::new(State { lines: after.unwrap_or(0), ..State::default() }));
        let (st, wk) = (state.clone(), wake.clone());
        let reader = std::thread::spawn(move || {
            let mut timeline = Timeline::after(nonce, after.unwrap_or(0));
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            loop {
                let (events, eof) = match stream.read(&mut buf) {
                    Ok(0) => (timeline.finish(), true),
                    Ok(n) => {
                        // A log write error must not stop the reading.
                        let _ = file.write_all(&buf[..n]);
                        if let Ok(mut s) = st.lock() {
                            s.tail.extend(&buf[..n]);
                            let extra = s.tail.len().saturating_sub(TAIL_BYTES);
                            s.tail.drain(..extra);
                            if s.fresh.len() < FRESH_BYTES {
                                s.fresh.extend_from_slice(&buf[..n]);
                            }
                        }
                        (timeline.feed(&buf[..n]), false)
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        if !timeline.report_open() {
                            continue;
                        }
                        (timeline.idle(), false)
                    }
                    Err(_) => (timeline.finish(), true),
                };
                if let Ok(mut s) = st.lock() {
                    for e in events {
                        match e {
                            TimelineEvent::Started { .. } => s.started += 1,
                            TimelineEvent::Report(a) => s.reports.push(a),
                            TimelineEvent::Mark(StepMark::End(n)) => s.last_end = Some(n),
                            TimelineEvent::Mark(StepMark::Begin(_)) => {}
                        }
                    }
                    s.open = timeline.report_open();
                    s.eof = eof;
                    s.lines = timeline.lines();
                }
                wk.bump(1);
                if eof {
                    break;
                }
            }
        });
        Ok(KernelConsole { state, wake, reader: Some(reader) })
    }

    fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        match self.state.lock() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// What has been seen so far.
    pub fn mark(&self) -> KernelMark {
        self.with(|s| KernelMark { started: s.started, reports: s.reports.len() })
    }

    /// A report began after `m`.
    pub fn started_since(&self, m: KernelMark) -> bool {
        self.with(|s| s.started > m.started)
    }

    /// A report is being collected now.
    pub fn open(&self) -> bool {
        self.with(|s| s.open)
    }

    /// Reports completed after `m`.
    pub fn reports_since(&self, m: KernelMark) -> Vec<Attributed> {
        self.with(|s| s.reports.get(m.reports..).map(<[Attributed]>::to_vec).unwrap_or_default())
    }

    /// Every report so far.
    pub fn reports(&self) -> Vec<Attributed> {
        self.with(|s| s.reports.clone())
    }

    /// The end mark of step `n` (or a later one) was seen.
    pub fn step_ended(&self, n: u64) -> bool {
        self.with(|s| s.last_end.is_some_and(|e| e >= n))
    }

    /// QEMU closed the console.
    pub fn eof(&self) -> bool {
        self.with(|s| s.eof)
    }

    /// Lines of the log read so far; after [`KernelConsole::eof`], all of
    /// them (the last, unterminated one included).
    pub fn lines(&self) -> usize {
        self.with(|s| s.lines)
    }

    /// The kernel console's bytes since the last call (interactive relay).
    pub fn take_text(&self) -> Vec<u8> {
        match self.state.lock() {
            Ok(mut s) => std::mem::take(&mut s.fresh),
            Err(_) => vec![],
        }
    }

    /// The last bytes of the console, for messages.
    pub fn tail(&self) -> String {
        self.with(|s| String::from_utf8_lossy(&s.tail.iter().copied().collect::<Vec<u8>>()).into_owned())
    }

    /// Waits up to `max` until `done` holds (checked whenever the guest
    /// says something); returns whether it held.
    pub fn wait_until(&self, max: Duration, done: impl Fn(&KernelConsole) -> bool) -> bool {
        let until = Instant::now() + max;
        loop {
            let seen = self.wake.current();
            if done(self) {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.wake.wait_past(seen, left.min(Duration::from_millis(50)));
        }
    }
}

impl Drop for KernelConsole {
    fn drop(&mut self) {
        // The thread ends at EOF; QEMU's exit closes the socket. Do not
        // wait for a live QEMU here.
        if self.eof() {
            if let Some(h) = self.reader.take() {
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "c0ffee";

    fn log() -> String {
        [
            "[    1.000000] Linux version 6.1.0",
            "[    2.000000] rig-step:c0ffee:1:begin",
            "[    2.100000] ------------[ cut here ]------------",
            "[    2.100001] WARNING: CPU: 0 PID: 77 at drivers/x.c:5 rig_warn+0x1/0x2 [rig_faulty]",
            "[    2.100002] Call Trace:",
            "[    2.100003]  <TASK>",
            "[    2.100004]  rig_warn+0x1/0x2 [rig_faulty]",
            "[    2.100005]  </TASK>",
            "[    2.100006] ---[ end trace 0000000000000000 ]---",
            "[    2.200000] rig-step:c0ffee:1:end",
            "[    2.300000] rig-step:c0ffee:2:begin",
            "[    2.400000] rig-step:c0ffee:2:end",
            "[    3.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000",
            "[    3.000001] RIP: 0010:rig_work+0x5/0x10 [rig_faulty]",
            "[    3.000002] Call Trace:",
            "[    3.000003]  process_one_work+0x1/0x2",
            "",
        ]
        .join("\r\n")
    }

    #[test]
    fn reports_belong_to_the_step_they_started_in() {
        let reports = read_log(&log(), &Nonce::fixed(NONCE));
        assert_eq!(reports.len(), 2, "{reports:#?}");
        assert_eq!(reports[0].step, Some(1));
        assert!(reports[0].report.title.contains("WARNING"), "{:?}", reports[0].report.title);
        assert_eq!(reports[1].step, None);
        // The mark lines count: line numbers are those of the log.
        assert_eq!(*reports[0].report.lines.start(), 3);
    }

    #[test]
    fn a_restore_mark_ends_the_guest_before_it() {
        // The first guest dies in the middle of a report and of step 3.
        let first = [
            "[    2.000000] rig-step:c0ffee:3:begin",
            "[    2.100001] WARNING: CPU: 0 PID: 77 at drivers/x.c:5 rig_warn+0x1/0x2 [rig_faulty]",
            "[    2.100002] Call Trace:",
        ]
        .join("\r\n");
        let second =
            ["[    2.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000", ""].join("\r\n");
        let log = format!("{first}\nrig-restore:{NONCE}:1\n{second}");
        let reports = read_log(&log, &Nonce::fixed(NONCE));
        assert_eq!(reports.len(), 2, "{reports:#?}");
        assert_eq!(reports[0].step, Some(3));
        assert_eq!(*reports[0].report.lines.end(), 3);
        // Not a step of the first guest's, and numbered in the whole log.
        assert_eq!(reports[1].step, None);
        assert_eq!(*reports[1].report.lines.start(), 5);
        // The live reader of the second guest numbers its lines the same.
        let mut t = Timeline::after(Nonce::fixed(NONCE), 4);
        let mut events = t.feed(second.as_bytes());
        events.extend(t.finish());
        let live: Vec<_> = events
            .into_iter()
            .filter_map(|e| match e {
                TimelineEvent::Report(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(live, reports[1..].to_vec());
    }

    #[test]
    fn marks_of_another_run_are_kernel_lines_like_any() {
        let reports = read_log(&log().replace("c0ffee", "bad"), &Nonce::fixed(NONCE));
        assert!(reports.iter().all(|r| r.step.is_none()));
    }

    #[test]
    fn live_reader_logs_classifies_and_ends_at_eof() {
        let (host, guest) = UnixStream::pair().expect("pair");
        let dir = tempfile::tempdir().expect("tempdir");
        let wake = Arc::new(Wake::default());
        let k = KernelConsole::spawn(host, &dir.path().join("console.log"), Nonce::fixed(NONCE), wake).expect("spawn");
        let m = k.mark();
        (&guest).write_all(log().as_bytes()).expect("write");
        assert!(k.wait_until(Duration::from_secs(5), |k| k.step_ended(2)));
        assert!(k.started_since(m));
        // The open NULL-pointer report completes after a quiet spell.
        assert!(k.wait_until(Duration::from_secs(5), |k| k.reports_since(m).len() == 2 && !k.open()));
        drop(guest);
        assert!(k.wait_until(Duration::from_secs(5), KernelConsole::eof));
        let saved = std::fs::read_to_string(dir.path().join("console.log")).expect("log");
        assert_eq!(saved, log());
        assert!(k.tail().contains("process_one_work"));
        assert_eq!(k.lines(), log().matches('\n').count());
    }

    #[test]
    fn a_resumed_reader_appends_and_numbers_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        std::fs::write(&path, "one\ntwo\nrig-restore:c0ffee:1\n").expect("write");
        let (host, guest) = UnixStream::pair().expect("pair");
        let wake = Arc::new(Wake::default());
        let k = KernelConsole::spawn_after(host, &path, Nonce::fixed(NONCE), wake, Some(3)).expect("spawn");
        (&guest)
            .write_all(b"[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000\r\nlast")
            .expect("write");
        drop(guest);
        assert!(k.wait_until(Duration::from_secs(5), KernelConsole::eof));
        assert_eq!(k.lines(), 5);
        assert_eq!(k.reports().first().map(|a| *a.report.lines.start()), Some(4));
        let saved = std::fs::read_to_string(&path).expect("log");
        assert!(saved.starts_with("one\ntwo\nrig-restore:c0ffee:1\n[    1.000000] BUG:"), "{saved}");
    }
}
