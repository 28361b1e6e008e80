//! The host as the other end of a NIC's cable. QEMU's `stream` netdev
//! listens on a unix socket in the run's private directory and carries each
//! Ethernet frame (without its FCS) behind a 4-byte big-endian length; the
//! rig connects to it as soon as QEMU creates it. A [`Wire`] reads every
//! frame the guest's NIC sends (counted, and written to a pcap file when the
//! device has `capture = true`) and sends frames to the guest (a generated
//! [`Burst`] or a pcap file).
//!
//! The frames ([`super::frames`]) and the pcap format ([`super::pcap`]) are
//! pure and tested there; the wire is the I/O around them.

pub use super::frames::{format_mac, parse_mac, Burst, FrameFilter, Mac, FRAME_LEN};
pub use super::pcap::{pcap_header, pcap_record, read_pcap_file, scan, PcapError, PcapReader, Scan, PCAP_HEADER};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Frames for the guest: a burst or the frames of a pcap file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameSource {
    Burst(Burst),
    Pcap(PathBuf),
}

/// A finished send.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    pub frames: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// What the reader thread and the wire's users share.
#[derive(Default)]
struct State {
    /// The socket's write half, once connected.
    writer: Option<UnixStream>,
    /// Frames and bytes the NIC sent (all written to the pcap, if any).
    frames: u64,
    bytes: u64,
    /// When the last frame came.
    last_frame: Option<Instant>,
    /// Where the next capture check starts in the pcap file.
    window: u64,
    /// The reader stopped on an error.
    error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

/// One NIC's cable, its far end held by the rig. Dropping it stops the
/// reader (the pcap file is complete by then).
pub struct Wire {
    /// The `[[device]]` name.
    pub name: String,
    /// The pcap file, when the device captures.
    pub pcap: Option<PathBuf>,
    /// The pcap file opened for the checks when it was created: they read
    /// what was written even if something removes the path meanwhile.
    capture: Option<File>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// How often the reader looks at the stop flag, and how long it may hold
/// frames before the pcap file has them.
const READ_SLICE: Duration = Duration::from_millis(100);

impl Wire {
    /// Starts the reader for the NIC whose netdev listens at `socket`
    /// (QEMU creates it when it starts: the reader keeps trying until
    /// then), writing every frame to `pcap` if given.
    pub fn start(name: &str, socket: &Path, pcap: Option<PathBuf>) -> Result<Wire, PcapError> {
        let (file, capture) = match &pcap {
            Some(p) => {
                let io = |source| PcapError::Io { path: p.clone(), source };
                let mut f = crate::support::create_private_file(p).map_err(io)?;
                f.write_all(&pcap_header()).map_err(io)?;
                let read = File::open(p).map_err(io)?;
                (Some(BufWriter::with_capacity(1 << 20, f)), Some(read))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State { window: PCAP_HEADER, ..State::default() }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let (s, path) = (shared.clone(), socket.to_path_buf());
        let thread = std::thread::Builder::new()
            .name(format!("wire-{name}"))
            .spawn(move || reader(&s, &path, file))
            .map_err(|source| PcapError::Io { path: socket.into(), source })?;
        Ok(Wire { name: name.into(), pcap, capture, shared, thread: Some(thread) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frames the NIC sent so far.
    pub fn frames(&self) -> u64 {
        self.lock().frames
    }

    /// Waits until no frame came for `quiet` since the call (at most
    /// `max`): frames still in the socket are read, the guest's sender has
    /// stopped, and the pcap file has everything.
    pub fn settle(&self, quiet: Duration, max: Duration) {
        let start = Instant::now();
        let mut st = self.lock();
        loop {
            let idle = st.last_frame.map_or(start, |t| t.max(start)).elapsed() >= quiet;
            if idle || start.elapsed() >= max {
                return;
            }
            let (g, _) = self.shared.changed.wait_timeout(st, quiet).unwrap_or_else(|e| e.into_inner());
            st = g;
        }
    }

    /// Counts what the NIC sent since the previous check against `filter`,
    /// from the pcap file; the next check starts after it.
    pub fn check(&self, filter: &FrameFilter) -> Result<Scan, String> {
        let (Some(path), Some(f)) = (&self.pcap, &self.capture) else {
            return Err(format!("{} does not capture (capture = true)", self.name));
        };
        self.settle(Duration::from_millis(300), Duration::from_secs(5));
        let mut st = self.lock();
        if let Some(e) = &st.error {
            return Err(format!("the capture of {} stopped: {e}", self.name));
        }
        let mut file = BufReader::with_capacity(1 << 20, f);
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(st.window))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut r = PcapReader::resume(file, st.window);
        let s = scan(&mut r, filter)?;
        st.window = s.end;
        Ok(s)
    }

    /// Sends `frames` to the guest, `rate` frames a second (0: as fast as
    /// QEMU takes them), giving up after `timeout` or on `interrupt`.
    pub fn send(
        &self,
        frames: &mut dyn Iterator<Item = Vec<u8>>,
        rate: u64,
        timeout: Duration,
        interrupt: &AtomicBool,
    ) -> Result<Sent, String> {
        let start = Instant::now();
        let stream = {
            let mut st = self.lock();
            loop {
                if let Some(w) = &st.writer {
                    break w.try_clone().map_err(|e| format!("the socket of {}: {e}", self.name))?;
                }
                if let Some(e) = &st.error {
                    return Err(format!("the wire of {} is down: {e}", self.name));
                }
                if start.elapsed() >= timeout {
                    return Err(format!("QEMU never opened the netdev socket of {}", self.name));
                }
                st = self.shared.changed.wait_timeout(st, READ_SLICE).unwrap_or_else(|e| e.into_inner()).0;
            }
        };
        let mut out = BufWriter::with_capacity(1 << 16, &stream);
        let mut sent = Sent { frames: 0, bytes: 0, elapsed: Duration::ZERO };
        let broken = |sent: &Sent, e: std::io::Error| {
            format!("the guest's side took {} frames, then: {e} (is the NIC's receive path running?)", sent.frames)
        };
        for frame in frames {
            if rate > 0 {
                // Frame i leaves at start + i/rate: paced in small batches.
                let due = start + Duration::from_secs_f64(sent.frames as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    out.flush().map_err(|e| broken(&sent, e))?;
                    std::thread::sleep(due - now);
                }
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() || interrupt.load(Ordering::Relaxed) {
                let why = if left.is_zero() { "timed out" } else { "interrupted" };
                return Err(format!("{why} after {} frames", sent.frames));
            }
            stream.set_write_timeout(Some(left)).map_err(|e| broken(&sent, e))?;
            out.write_all(&(frame.len() as u32).to_be_bytes()).map_err(|e| broken(&sent, e))?;
            out.write_all(&frame).map_err(|e| broken(&sent, e))?;
            sent.frames += 1;
            sent.bytes += frame.len() as u64;
        }
        out.flush().map_err(|e| broken(&sent, e))?;
        sent.elapsed = start.elapsed();
        Ok(sent)
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(w) = &self.lock().writer {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reader thread: connect (QEMU may not have created the socket yet),
/// then split the stream into frames, write them to the pcap file, count.
fn reader(shared: &Shared, socket: &Path, mut pcap: Option<BufWriter<File>>) {
    let set_error = |e: String| {
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.error = Some(e);
        shared.changed.notify_all();
    };
    let stream = loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let setup = stream.set_read_timeout(Some(READ_SLICE)).and_then(|_| stream.try_clone());
    match setup {
        Ok(w) => {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.writer = Some(w);
            shared.changed.notify_all();
        }
        Err(e) => return set_error(e.to_string()),
    }
    let mut stream = stream;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    let mut chunk = vec![0u8; 1 << 16];
    let mut records = Vec::with_capacity(1 << 17);
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return set_error(e.to_string()),
        };
        buf.extend_from_slice(&chunk[..n]);
        let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let (mut frames, mut bytes, mut used) = (0u64, 0u64, 0usize);
        records.clear();
        while let Some(len) = buf.get(used..used + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize) {
            let Some(frame) = buf.get(used + 4..used + 4 + len) else { break };
            if pcap.is_some() {
                pcap_record(at, frame, &mut records);
            }
            frames += 1;
            bytes += len as u64;
            used += 4 + len;
        }
        buf.drain(..used);
        if let Some(w) = pcap.as_mut() {
            // Flushed with every read: a check finds every counted frame in the file.
            if let Err(e) = w.write_all(&records).and_then(|_| w.flush()) {
                return set_error(format!("writing the pcap file: {e}"));
            }
        }
        if frames > 0 {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.frames += frames;
            st.bytes += bytes;
            st.last_frame = Some(Instant::now());
            shared.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn burst() -> Burst {
        Burst { count: 3, len: 64, src: [2, 0, 0, 0, 0, 1], dst: [0xff; 6], ethertype: 0x88b5 }
    }

    /// The reader against a fake QEMU: frames both ways over a unix socket.
    #[test]
    fn the_wire_captures_and_sends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("nic0.wire");
        let pcap = dir.path().join("nic0.pcap");
        // The wire may start before QEMU listens.
        let wire = Wire::start("nic0", &sock, Some(pcap.clone())).expect("start");
        std::thread::sleep(Duration::from_millis(30));
        let listener = UnixListener::bind(&sock).expect("bind");
        let (mut qemu, _) = listener.accept().expect("accept");
        let b = burst();
        let mut bytes = vec![];
        for i in 0..1000 {
            let f = b.frame(i);
            bytes.extend_from_slice(&(f.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&f);
        }
        // Split anywhere: frames are put back together.
        for piece in bytes.chunks(777) {
            qemu.write_all(piece).expect("write");
        }
        let want = FrameFilter { len: Some(64), ethertype: Some(0x88b5), ..Default::default() };
        let s = wire.check(&want).expect("check");
        assert_eq!((s.frames, s.matching), (1000, 1000));
        assert_eq!(wire.frames(), 1000);
        // The next check starts where this one ended.
        qemu.write_all(&bytes[..(4 + 64) * 5]).expect("write");
        assert_eq!(wire.check(&FrameFilter::default()).expect("check").frames, 5);

        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; 3 * (4 + 64)];
            qemu.read_exact(&mut got).expect("read");
            got
        });
        let flag = AtomicBool::new(false);
        let mut frames = (0..3).map(|i| b.frame(i));
        let sent = wire.send(&mut frames, 1000, Duration::from_secs(5), &flag).expect("send");
        assert_eq!((sent.frames, sent.bytes), (3, 192));
        assert!(sent.elapsed >= Duration::from_millis(2), "paced: {:?}", sent.elapsed);
        let got = reader.join().expect("reader");
        assert_eq!(&got[..4], &64u32.to_be_bytes());
        assert_eq!(&got[4..68], &b.frame(0)[..]);
        drop(wire);
        assert_eq!(read_pcap_file(&pcap).expect("pcap").len(), 1005);
    }

    #[test]
    fn a_wire_without_capture_refuses_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wire = Wire::start("nic1", &dir.path().join("s"), None).expect("start");
        assert!(wire.check(&FrameFilter::default()).is_err_and(|e| e.contains("capture = true")));
        let flag = AtomicBool::new(false);
        let e = wire.send(&mut std::iter::empty(), 0, Duration::from_millis(50), &flag).expect_err("no QEMU");
        assert!(e.contains("never opened"), "{e}");
    }
}
