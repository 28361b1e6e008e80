//! The pcap format (classic libpcap, Ethernet link type): writing the
//! capture of a NIC, reading a capture or a user's pcap file back, and
//! counting the frames a filter matches. Pure but for the file reader.

use super::frames::FrameFilter;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::frames::Burst;

    fn burst() -> Burst {
        Burst { count: 3, len: 64, src: [2, 0, 0, 0, 0, 1], dst: [0xff; 6], ethertype: 0x88b5 }
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
}
