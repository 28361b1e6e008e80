//! The guest's half of the host ring (rig_abi, "11. the host ring"), the
//! same protocol guest-kmod/pool.c speaks, for a driver that reaches BAR2
//! from userspace: publish the ring as ready, take what the host
//! published (load-acquire of `prod`), check each header and payload, and
//! give the slots back (store-release of `cons`).

use crate::mmio::{AccessError, Mmio};
use rig_abi::{first_mismatch, hring_buf, hring_field, pool_buf_offset, Hring, PoolBuf, ShmHeader};
use rig_abi::{HRING_FIRST_BUF, HRING_GONE, HRING_HOST_MAGIC, HRING_MAGIC, HRING_OFFSET, HRING_READY, HRING_SLOTS};
use rig_abi::{POOL_BUF_MAGIC, POOL_HDR_SIZE, POOL_PAYLOAD_MAX, POOL_SRC_HOST};

/// Memory both sides see: BAR2 here, the backing file on the host.
pub trait Shared {
    /// 32-bit load-acquire.
    fn load_acquire(&self, off: u64) -> Result<u32, AccessError>;
    /// 32-bit store-release.
    fn store_release(&self, off: u64, v: u32) -> Result<(), AccessError>;
    /// Copies bytes out.
    fn read_bytes(&self, off: u64, buf: &mut [u8]) -> Result<(), AccessError>;
    /// Copies bytes in.
    fn write_bytes(&self, off: u64, buf: &[u8]) -> Result<(), AccessError>;
}

impl Shared for Mmio {
    fn load_acquire(&self, off: u64) -> Result<u32, AccessError> {
        Mmio::load_acquire(self, off)
    }
    fn store_release(&self, off: u64, v: u32) -> Result<(), AccessError> {
        Mmio::store_release(self, off, v)
    }
    fn read_bytes(&self, off: u64, buf: &mut [u8]) -> Result<(), AccessError> {
        Mmio::read_bytes(self, off, buf)
    }
    fn write_bytes(&self, off: u64, buf: &[u8]) -> Result<(), AccessError> {
        Mmio::write_bytes(self, off, buf)
    }
}

/// A buffer header from its little-endian bytes.
pub fn decode_buf(b: &[u8; POOL_HDR_SIZE as usize]) -> PoolBuf {
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let seq = u64::from(u32_at(8)) | (u64::from(u32_at(12)) << 32);
    let mut reserved = [0u32; 9];
    for (i, r) in reserved.iter_mut().enumerate() {
        *r = u32_at(28 + 4 * i);
    }
    PoolBuf { magic: u32_at(0), source: u32_at(4), seq, len: u32_at(16), seed: u32_at(20), index: u32_at(24), reserved }
}

/// The region header as the module writes it at probe, in its byte layout.
pub fn encode_header(h: &ShmHeader) -> [u8; 96] {
    let mut b = [0u8; 96];
    b[0..4].copy_from_slice(&h.magic.to_le_bytes());
    b[4..8].copy_from_slice(&h.abi_version.to_le_bytes());
    b[8..16].copy_from_slice(&h.size.to_le_bytes());
    b[16..20].copy_from_slice(&h.state.to_le_bytes());
    b[20..24].copy_from_slice(&h.probe_count.to_le_bytes());
    b[24..32].copy_from_slice(&h.bar_phys.to_le_bytes());
    b[32..96].copy_from_slice(&h.kernel_release);
    b
}

/// Why the entry at ring position `pos` is refused; the module's rules,
/// plus the seed rule of `rig_abi::host::produce` when the seed is known.
pub fn check_entry(hdr: &PoolBuf, pos: u32, host_seed: Option<u32>) -> Result<(), String> {
    let index = hring_buf(pos);
    if hdr.magic != POOL_BUF_MAGIC {
        return Err(format!("magic {:#x}", hdr.magic));
    }
    if hdr.index != index {
        return Err(format!("index {} in slot {index}", hdr.index));
    }
    if hdr.source != POOL_SRC_HOST {
        return Err(format!("source {}", hdr.source));
    }
    if hdr.seq as u32 != pos.wrapping_add(1) {
        return Err(format!("seq {} at position {pos}", hdr.seq));
    }
    if hdr.len == 0 || hdr.len > POOL_PAYLOAD_MAX {
        return Err(format!("length {}", hdr.len));
    }
    if let Some(s) = host_seed {
        let want = s.wrapping_add(hdr.seq as u32);
        if hdr.seed != want {
            return Err(format!("payload seed {:#x}, expected {want:#x}", hdr.seed));
        }
    }
    Ok(())
}

/// A buffer taken from the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// Its seq.
    pub seq: u64,
    /// Pool buffer index.
    pub index: u32,
    /// Payload bytes.
    pub len: u32,
    /// Why its payload is wrong, if it is.
    pub payload_error: Option<String>,
}

/// What one look at the ring found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Accepted entries, in ring order.
    pub taken: Vec<Taken>,
    /// Refused entries: (position, why).
    pub refused: Vec<(u32, String)>,
    /// The host wrote more than the ring holds.
    pub overrun: bool,
}

/// The guest's consumer state.
#[derive(Debug)]
pub struct Consumer {
    next: u32,
}

const NSLOTS: u64 = HRING_OFFSET + std::mem::offset_of!(Hring, nslots) as u64;
const FIRST_BUF: u64 = HRING_OFFSET + std::mem::offset_of!(Hring, first_buf) as u64;
const GUEST_RESERVED: u64 = HRING_OFFSET + std::mem::offset_of!(Hring, guest_reserved) as u64;

impl Consumer {
    /// Publishes the guest half of the ring (what pool.c does at probe) and
    /// marks it ready; whatever the host produced before is dropped.
    pub fn attach(m: &impl Shared, own_peer: u32) -> Result<Consumer, AccessError> {
        let prod = m.load_acquire(hring_field::PROD)?;
        m.store_release(hring_field::CONS, prod)?;
        m.store_release(hring_field::GUEST_PEER, own_peer)?;
        m.store_release(hring_field::GUEST_MAGIC, HRING_MAGIC)?;
        m.store_release(NSLOTS, HRING_SLOTS)?;
        m.store_release(FIRST_BUF, HRING_FIRST_BUF)?;
        m.store_release(hring_field::IRQS, 0)?;
        m.store_release(hring_field::BAD, 0)?;
        m.write_bytes(GUEST_RESERVED, &[0u8; 32])?;
        // Last: the host reads the rest only once it sees READY.
        m.store_release(hring_field::GUEST_STATE, HRING_READY)?;
        Ok(Consumer { next: prod })
    }

    /// The next ring position to take.
    pub fn next(&self) -> u32 {
        self.next
    }

    /// Takes everything the host published, checks it, gives it back.
    pub fn take(&mut self, m: &impl Shared, host_seed: Option<u32>) -> Result<Batch, AccessError> {
        let prod = m.load_acquire(hring_field::PROD)?;
        let mut batch = Batch::default();
        if prod.wrapping_sub(self.next) > HRING_SLOTS {
            // Slots we had not given back were written over: refuse all.
            batch.overrun = true;
            self.bad(m)?;
            return Ok(batch);
        }
        while self.next != prod {
            let pos = self.next;
            let base = pool_buf_offset(hring_buf(pos));
            let mut raw = [0u8; POOL_HDR_SIZE as usize];
            m.read_bytes(base, &mut raw)?;
            let hdr = decode_buf(&raw);
            match check_entry(&hdr, pos, host_seed) {
                Ok(()) => {
                    let mut payload = vec![0u8; hdr.len as usize];
                    m.read_bytes(base + u64::from(POOL_HDR_SIZE), &mut payload)?;
                    let payload_error = first_mismatch(hdr.seed, 0, &payload)
                        .map(|i| format!("payload byte {i} differs from the pattern"));
                    batch.taken.push(Taken { seq: hdr.seq, index: hdr.index, len: hdr.len, payload_error });
                }
                Err(why) => {
                    self.bad(m)?;
                    batch.refused.push((pos, why));
                }
            }
            self.next = self.next.wrapping_add(1);
        }
        // Our reads of the slots happen before the host may reuse them.
        m.store_release(hring_field::CONS, self.next)?;
        Ok(batch)
    }

    fn bad(&self, m: &impl Shared) -> Result<(), AccessError> {
        let n = m.load_acquire(hring_field::BAD)?;
        m.store_release(hring_field::BAD, n.wrapping_add(1))
    }

    /// Counts `n` interrupts on the "produced" vector where the host sees them.
    pub fn count_irqs(&self, m: &impl Shared, n: u64) -> Result<(), AccessError> {
        let old = m.load_acquire(hring_field::IRQS)?;
        m.store_release(hring_field::IRQS, old.wrapping_add(n as u32))
    }

    /// Marks the ring gone (the driver lets go of the device).
    pub fn detach(self, m: &impl Shared) -> Result<(), AccessError> {
        m.store_release(hring_field::GUEST_STATE, HRING_GONE)
    }
}

/// The host's peer id once the host has written it into the ring.
pub fn host_peer(m: &impl Shared) -> Result<Option<u32>, AccessError> {
    if m.load_acquire(hring_field::HOST_MAGIC)? != HRING_HOST_MAGIC {
        return Ok(None);
    }
    Ok(Some(m.load_acquire(hring_field::HOST_PEER)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig_abi::SHM_MIN_SIZE;
    use std::sync::atomic::Ordering;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    /// The host's view: the backing file as vm-memory maps it.
    struct HostMem(GuestMemoryMmap<()>);

    fn acc(off: u64, len: u64) -> AccessError {
        AccessError { offset: off, len, size: SHM_MIN_SIZE }
    }

    impl Shared for HostMem {
        fn load_acquire(&self, off: u64) -> Result<u32, AccessError> {
            self.0.load(GuestAddress(off), Ordering::Acquire).map_err(|_| acc(off, 4))
        }
        fn store_release(&self, off: u64, v: u32) -> Result<(), AccessError> {
            self.0.store(v, GuestAddress(off), Ordering::Release).map_err(|_| acc(off, 4))
        }
        fn read_bytes(&self, off: u64, buf: &mut [u8]) -> Result<(), AccessError> {
            self.0.read_slice(buf, GuestAddress(off)).map_err(|_| acc(off, buf.len() as u64))
        }
        fn write_bytes(&self, off: u64, buf: &[u8]) -> Result<(), AccessError> {
            self.0.write_slice(buf, GuestAddress(off)).map_err(|_| acc(off, buf.len() as u64))
        }
    }

    fn mem() -> HostMem {
        HostMem(GuestMemoryMmap::from_ranges(&[(GuestAddress(0), SHM_MIN_SIZE as usize)]).expect("anonymous region"))
    }

    #[test]
    fn consumes_what_the_host_produces() {
        let m = mem();
        // Nothing is ready before attach: the host must wait.
        assert!(matches!(
            rig_abi::host::produce(&m.0, 0, 1, 10, 1),
            Err(rig_abi::host::ProduceError::GuestNotReady { state: 0 })
        ));
        let mut c = Consumer::attach(&m, 1).expect("attach");
        let ring: Hring = m.0.read_obj(GuestAddress(HRING_OFFSET)).expect("ring");
        assert_eq!(
            (ring.guest_state, ring.guest_magic, ring.guest_peer, ring.nslots, ring.first_buf),
            (HRING_READY, HRING_MAGIC, 1, HRING_SLOTS, HRING_FIRST_BUF)
        );
        assert_eq!(host_peer(&m), Ok(None));

        // Three rounds of 8 wrap the 16 slots.
        let mut seqs = Vec::new();
        for round in 0..3 {
            let p = rig_abi::host::produce(&m.0, 0, 8, 100 + round, 0x77).expect("produce");
            assert_eq!(p.guest_peer, 1);
            let b = c.take(&m, Some(0x77)).expect("take");
            assert!(b.refused.is_empty() && !b.overrun, "{b:?}");
            assert!(b.taken.iter().all(|t| t.payload_error.is_none() && t.len == 100 + round));
            seqs.extend(b.taken.iter().map(|t| t.seq));
            assert_eq!(m.load_acquire(hring_field::CONS), Ok(p.prod));
        }
        assert_eq!(seqs, (1..=24).collect::<Vec<u64>>());
        assert_eq!(host_peer(&m), Ok(Some(0)));
        c.count_irqs(&m, 3).expect("irqs");
        assert_eq!(m.load_acquire(hring_field::IRQS), Ok(3));
        // A look with nothing new takes nothing.
        assert_eq!(c.take(&m, Some(0x77)).expect("take"), Batch::default());
        c.detach(&m).expect("detach");
        assert_eq!(m.load_acquire(hring_field::GUEST_STATE), Ok(HRING_GONE));
    }

    #[test]
    fn refuses_bad_entries_and_payloads() {
        let m = mem();
        let mut c = Consumer::attach(&m, 1).expect("attach");
        rig_abi::host::produce(&m.0, 0, 3, 64, 5).expect("produce");
        // Break entry 0's magic and one payload byte of entry 1 (seq 2).
        m.write_bytes(pool_buf_offset(hring_buf(0)), &0u32.to_le_bytes()).expect("write");
        let flipped = !rig_abi::pattern_byte(rig_abi::host::payload_seed(5, 2), 10);
        m.write_bytes(pool_buf_offset(hring_buf(1)) + u64::from(POOL_HDR_SIZE) + 10, &[flipped]).expect("write");
        let b = c.take(&m, Some(5)).expect("take");
        assert_eq!(b.refused.len(), 1, "{b:?}");
        assert!(b.refused[0].1.contains("magic"));
        assert_eq!(b.taken.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(b.taken[0].payload_error.as_deref(), Some("payload byte 10 differs from the pattern"));
        assert_eq!(b.taken[1].payload_error, None);
        assert_eq!(m.load_acquire(hring_field::BAD), Ok(1));
        assert_eq!(m.load_acquire(hring_field::CONS), Ok(3));

        // A host that used another seed is caught by the header.
        rig_abi::host::produce(&m.0, 0, 1, 64, 6).expect("produce");
        let b = c.take(&m, Some(5)).expect("take");
        assert!(b.taken.is_empty() && b.refused[0].1.contains("payload seed"), "{b:?}");
        assert_eq!(m.load_acquire(hring_field::BAD), Ok(2));
    }

    #[test]
    fn sees_an_overrun() {
        let m = mem();
        let mut c = Consumer::attach(&m, 1).expect("attach");
        // A host that ignores cons.
        m.store_release(hring_field::PROD, HRING_SLOTS + 1).expect("prod");
        let b = c.take(&m, None).expect("take");
        assert!(b.overrun && b.taken.is_empty());
        assert_eq!(c.next(), 0);
    }

    #[test]
    fn header_codecs_match_the_layout() {
        let hdr = PoolBuf {
            magic: POOL_BUF_MAGIC,
            source: 2,
            seq: 0x1_0000_0002,
            len: 7,
            seed: 9,
            index: 17,
            reserved: [0; 9],
        };
        let m = mem();
        m.0.write_obj(hdr, GuestAddress(0)).expect("write");
        let mut raw = [0u8; 64];
        m.read_bytes(0, &mut raw).expect("read");
        assert_eq!(decode_buf(&raw), hdr);

        let mut h = ShmHeader {
            magic: 1,
            abi_version: 2,
            size: 3,
            state: 4,
            probe_count: 5,
            bar_phys: 6,
            ..Default::default()
        };
        h.kernel_release[..3].copy_from_slice(b"6.1");
        m.write_bytes(0x100, &encode_header(&h)).expect("write");
        let back: ShmHeader = m.0.read_obj(GuestAddress(0x100)).expect("read");
        assert_eq!(back, h);
    }

    #[test]
    fn entry_rules() {
        let good = PoolBuf {
            magic: POOL_BUF_MAGIC,
            source: POOL_SRC_HOST,
            seq: 5,
            len: 10,
            seed: 12,
            index: hring_buf(4),
            reserved: [0; 9],
        };
        assert_eq!(check_entry(&good, 4, Some(7)), Ok(()));
        assert_eq!(check_entry(&good, 4, None), Ok(()));
        assert!(check_entry(&good, 5, None).is_err());
        assert!(check_entry(&PoolBuf { len: 0, ..good }, 4, None).is_err());
        assert!(check_entry(&PoolBuf { len: POOL_PAYLOAD_MAX + 1, ..good }, 4, None).is_err());
        assert!(check_entry(&PoolBuf { source: 1, ..good }, 4, None).is_err());
        assert!(check_entry(&PoolBuf { index: 3, ..good }, 4, None).is_err());
        assert!(check_entry(&good, 4, Some(8)).is_err());
    }
}
