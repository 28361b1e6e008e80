//! Ethernet frames as the host sees them: MAC addresses, the filter a
//! capture check counts with, and the bursts the host sends. Pure.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
