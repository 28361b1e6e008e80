//! The host as the other end of a NIC's cable. QEMU's `stream` netdev
//! listens on a unix socket in the run's private directory and carries each
//! Ethernet frame (without its FCS) behind a 4-byte big-endian length; the
//! rig connects to it as soon as QEMU creates it. A [`Wire`] reads every
//! frame the guest's NIC sends (counted, and written to a pcap file when the
//! device has `capture = true`) and sends frames to the guest (a generated
//! [`Burst`] or a pcap file).
//!
//! The pcap format (classic libpcap, Ethernet link type), the frame filter
//! and the bursts are pure and tested here; the wire is the I/O around them.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A MAC address.
pub type Mac = [u8; 6];

/// `02:00:00:00:00:01` to bytes.
pub fn parse_mac(text: &str) -> Result<Mac, String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let bad = || format!("`{text}` is not a MAC address like 52:54:00:12:34:56");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

/// `52:54:00:12:34:56`.
pub fn format_mac(mac: &Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Which frames a capture check counts: every given field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameFilter {
    /// Length in bytes, without the FCS.
    pub len: Option<usize>,
    /// The EtherType (of an untagged frame; a VLAN tag's 0x8100 otherwise).
    pub ethertype: Option<u16>,
    pub src: Option<Mac>,
    pub dst: Option<Mac>,
}

impl FrameFilter {
    /// Does `frame` match?
    pub fn matches(&self, frame: &[u8]) -> bool {
        let field = |r: std::ops::Range<usize>| frame.get(r);
        self.len.is_none_or(|l| frame.len() == l)
            && self.dst.is_none_or(|m| field(0..6) == Some(&m[..]))
            && self.src.is_none_or(|m| field(6..12) == Some(&m[..]))
            && self.ethertype.is_none_or(|t| field(12..14) == Some(&t.to_be_bytes()[..]))
    }

    /// In words, for a check's name: `64-byte, ethertype 0x0800, from ...`.
    pub fn describe(&self) -> String {
        let mut words = vec![];
        if let Some(l) = self.len {
            words.push(format!("{l}-byte"));
        }
        if let Some(t) = self.ethertype {
            words.push(format!("ethertype {t:#06x}"));
        }
        if let Some(m) = &self.src {
            words.push(format!("from {}", format_mac(m)));
        }
        if let Some(m) = &self.dst {
            words.push(format!("to {}", format_mac(m)));
        }
        words.join(", ")
    }
}

/// Frames the host makes: `count` frames of `len` bytes, each carrying its
/// sequence number (32-bit big-endian) after the header, then bytes that
/// count up from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Burst {
    pub count: u64,
    pub len: usize,
    pub src: Mac,
    pub dst: Mac,
    pub ethertype: u16,
}

/// Ethernet without the FCS: a frame is at least 60 bytes on the wire
/// (the NICs pad shorter ones) and at most 1514 without jumbo frames.
pub const FRAME_LEN: std::ops::RangeInclusive<usize> = 60..=1514;

impl Burst {
    /// Frame `i` of the burst.
    pub fn frame(&self, i: u64) -> Vec<u8> {
        let mut f = Vec::with_capacity(self.len);
        f.extend_from_slice(&self.dst);
        f.extend_from_slice(&self.src);
        f.extend_from_slice(&self.ethertype.to_be_bytes());
        f.extend_from_slice(&(i as u32).to_be_bytes());
        let mut b = i as u8;
        while f.len() < self.len {
            f.push(b);
            b = b.wrapping_add(1);
        }
        f.truncate(self.len);
        f
    }
}

/// A pcap file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {why}")]
    Format { path: PathBuf, why: String },
}

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;
/// Bytes of the file header, and of each record's header.
pub const PCAP_HEADER: u64 = 24;
const RECORD_HEADER: usize = 16;
/// Larger than any frame a NIC sends.
const SNAPLEN: u32 = 262_144;

/// The classic pcap file header (microseconds, little-endian, Ethernet).
pub fn pcap_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&PCAP_MAGIC_US.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// One record: its header (time since the epoch) and the frame.
pub fn pcap_record(at: Duration, frame: &[u8], out: &mut Vec<u8>) {
    let len = frame.len() as u32;
    out.extend_from_slice(&(at.as_secs() as u32).to_le_bytes());
    out.extend_from_slice(&at.subsec_micros().to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(frame);
}

/// Reads records from a pcap stream (either byte order, micro- or
/// nanosecond stamps, Ethernet only).
pub struct PcapReader<R: Read> {
    r: R,
    big_endian: bool,
    nanos: bool,
    /// Byte offset of the next record.
    pub offset: u64,
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the file header.
    pub fn new(mut r: R) -> Result<PcapReader<R>, String> {
        let mut h = [0u8; 24];
        r.read_exact(&mut h).map_err(|_| "shorter than a pcap file header".to_string())?;
        let magic = [h[0], h[1], h[2], h[3]];
        let (big_endian, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (PCAP_MAGIC_US, _) => (false, false),
            (PCAP_MAGIC_NS, _) => (false, true),
            (_, PCAP_MAGIC_US) => (true, false),
            (_, PCAP_MAGIC_NS) => (true, true),
            _ => return Err("not a pcap file (pcapng is not read: convert it with `editcap -F pcap`)".into()),
        };
        let u32_at = |o: usize| {
            let b = [h[o], h[o + 1], h[o + 2], h[o + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let link = u32_at(20) & 0x0fff_ffff;
        if link != LINKTYPE_ETHERNET {
            return Err(format!("link type {link}, not Ethernet (1)"));
        }
        Ok(PcapReader { r, big_endian, nanos, offset: PCAP_HEADER })
    }

    /// A reader already past the header (`offset` in the same file), in the
    /// byte order and time unit of [`pcap_header`].
    pub fn resume(r: R, offset: u64) -> PcapReader<R> {
        PcapReader { r, big_endian: false, nanos: false, offset }
    }

    /// The next record into `frame`: its time in seconds, or `None` at the
    /// end (a record cut short by a writer still at work counts as the end).
    pub fn next_into(&mut self, frame: &mut Vec<u8>) -> Result<Option<f64>, String> {
        let mut h = [0u8; RECORD_HEADER];
        match read_full(&mut self.r, &mut h) {
            Ok(0) => return Ok(None),
            Ok(n) if n < RECORD_HEADER => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        let u32_at = |o: usize| {
            let b = [h[o], h[o + 1], h[o + 2], h[o + 3]];
            if self.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (secs, frac, incl) = (u32_at(0), u32_at(4), u32_at(8));
        if incl > SNAPLEN {
            return Err(format!("record at byte {} claims {incl} bytes", self.offset));
        }
        frame.resize(incl as usize, 0);
        match read_full(&mut self.r, frame) {
            Ok(n) if n < frame.len() => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        self.offset += (RECORD_HEADER + frame.len()) as u64;
        let unit = if self.nanos { 1e-9 } else { 1e-6 };
        Ok(Some(f64::from(secs) + f64::from(frac) * unit))
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a capture held from some offset on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// Frames seen.
    pub frames: u64,
    /// Of those, the ones the filter matched.
    pub matching: u64,
    /// Times of the first and last matching frame (seconds since the epoch).
    pub first: Option<f64>,
    pub last: Option<f64>,
    /// Lengths of the frames that did not match, with counts (a few).
    pub others: Vec<(usize, u64)>,
    /// Byte offset after the last whole record.
    pub end: u64,
}

impl Scan {
    /// Matching frames per second between the first and the last.
    pub fn rate(&self) -> Option<f64> {
        let span = self.last? - self.first?;
        (span > 0.0 && self.matching > 1).then(|| (self.matching - 1) as f64 / span)
    }
}

/// Counts the records of `reader` against `filter`.
pub fn scan<R: Read>(reader: &mut PcapReader<R>, filter: &FrameFilter) -> Result<Scan, String> {
    let mut s = Scan { end: reader.offset, ..Scan::default() };
    let mut frame = Vec::new();
    while let Some(t) = reader.next_into(&mut frame)? {
        s.frames += 1;
        if filter.matches(&frame) {
            s.matching += 1;
            s.first.get_or_insert(t);
            s.last = Some(t);
        } else if let Some(o) = s.others.iter_mut().find(|(l, _)| *l == frame.len()) {
            o.1 += 1;
        } else if s.others.len() < 8 {
            s.others.push((frame.len(), 1));
        }
        s.end = reader.offset;
    }
    Ok(s)
}

/// Every frame of a pcap file.
pub fn read_pcap_file(path: &Path) -> Result<Vec<Vec<u8>>, PcapError> {
    let f = File::open(path).map_err(|source| PcapError::Io { path: path.into(), source })?;
    let fmt = |why: String| PcapError::Format { path: path.into(), why };
    let mut r = PcapReader::new(BufReader::new(f)).map_err(fmt)?;
    let mut out = vec![];
    let mut frame = Vec::new();
    while r.next_into(&mut frame).map_err(fmt)?.is_some() {
        out.push(frame.clone());
    }
    Ok(out)
}

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

    #[test]
    fn macs_parse_and_print() {
        assert_eq!(parse_mac("52:54:00:12:34:0a"), Ok([0x52, 0x54, 0, 0x12, 0x34, 0x0a]));
        assert_eq!(parse_mac("ff-ff-ff-ff-ff-ff"), Ok([0xff; 6]));
        for bad in ["52:54:00:12:34", "52:54:00:12:34:5", "52:54:00:12:34:zz", ""] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        assert_eq!(format_mac(&[2, 0, 0, 0, 0, 1]), "02:00:00:00:00:01");
    }

    fn burst() -> Burst {
        Burst { count: 3, len: 64, src: [2, 0, 0, 0, 0, 1], dst: [0xff; 6], ethertype: 0x88b5 }
    }

    #[test]
    fn bursts_carry_their_sequence_number() {
        let f = burst().frame(0x0102_0304);
        assert_eq!(f.len(), 64);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x88, 0xb5]);
        assert_eq!(&f[14..18], &[1, 2, 3, 4]);
        assert_eq!((f[18], f[19]), (4, 5));
        assert_eq!(Burst { len: 60, ..burst() }.frame(7).len(), 60);
    }

    #[test]
    fn filters_match_every_given_field() {
        let f = burst().frame(1);
        assert!(FrameFilter::default().matches(&f));
        assert!(FrameFilter {
            len: Some(64),
            ethertype: Some(0x88b5),
            src: Some([2, 0, 0, 0, 0, 1]),
            dst: Some([0xff; 6])
        }
        .matches(&f));
        assert!(!FrameFilter { len: Some(60), ..Default::default() }.matches(&f));
        assert!(!FrameFilter { ethertype: Some(0x0800), ..Default::default() }.matches(&f));
        assert!(!FrameFilter { src: Some([0xff; 6]), ..Default::default() }.matches(&f));
        assert!(!FrameFilter { ethertype: Some(0x0800), ..Default::default() }.matches(&[0u8; 10]));
        let d = FrameFilter { len: Some(64), ethertype: Some(0x800), src: None, dst: Some([2, 0, 0, 0, 0, 0]) };
        assert_eq!(d.describe(), "64-byte, ethertype 0x0800, to 02:00:00:00:00:00");
    }

    fn pcap_of(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = pcap_header().to_vec();
        for (i, f) in frames.iter().enumerate() {
            pcap_record(Duration::from_millis(1_000_000 + 10 * i as u64), f, &mut out);
        }
        out
    }

    #[test]
    fn pcap_round_trip_and_scan() {
        let b = burst();
        let mut frames: Vec<Vec<u8>> = (0..3).map(|i| b.frame(i)).collect();
        frames.push(vec![0u8; 60]);
        let bytes = pcap_of(&frames);
        let mut r = PcapReader::new(&bytes[..]).expect("header");
        let s = scan(&mut r, &FrameFilter { len: Some(64), ..Default::default() }).expect("scan");
        assert_eq!((s.frames, s.matching, s.end), (4, 3, bytes.len() as u64));
        assert_eq!(s.others, [(60, 1)]);
        let (first, last) = (s.first.expect("first"), s.last.expect("last"));
        assert!((first - 1000.0).abs() < 1e-6 && (last - 1000.02).abs() < 1e-6, "{first} {last}");
        assert!((s.rate().expect("rate") - 100.0).abs() < 0.01);
        // A record cut short (a writer at work) ends the scan before it.
        let cut = &bytes[..bytes.len() - 10];
        let s = scan(&mut PcapReader::new(cut).expect("header"), &FrameFilter::default()).expect("scan");
        assert_eq!(s.frames, 3);
        // Resuming at a record boundary sees the rest.
        let at = PCAP_HEADER as usize + 2 * (16 + 64);
        let s = scan(&mut PcapReader::resume(&bytes[at..], at as u64), &FrameFilter::default()).expect("scan");
        assert_eq!((s.frames, s.end), (2, bytes.len() as u64));
    }

    #[test]
    fn pcap_other_byte_order_and_bad_files() {
        // A big-endian, nanosecond file with one 60-byte frame.
        let mut be = vec![];
        be.extend_from_slice(&PCAP_MAGIC_NS.to_be_bytes());
        be.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1]);
        be.extend_from_slice(&[0, 0, 0, 5, 0x1d, 0xcd, 0x65, 0, 0, 0, 0, 60, 0, 0, 0, 60]);
        be.extend_from_slice(&[7u8; 60]);
        let mut r = PcapReader::new(&be[..]).expect("header");
        let mut f = vec![];
        assert_eq!(r.next_into(&mut f), Ok(Some(5.5)));
        assert_eq!(f, vec![7u8; 60]);
        assert_eq!(r.next_into(&mut f), Ok(None));
        assert!(PcapReader::new(&b"\x0a\x0d\x0d\x0a"[..]).is_err());
        let mut other_link = pcap_header();
        other_link[20] = 113;
        assert!(PcapReader::new(&other_link[..]).err().is_some_and(|e| e.contains("link type 113")));
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
