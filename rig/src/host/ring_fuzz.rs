//! The host as a hostile producer: seeded garbage into the reference
//! module's ring (`rig_abi::Hring`, its slots and the pool around them)
//! while the guest consumes, with doorbell rings in between. What to write
//! is drawn by a pure function ([`next_write`]) from the seed and what the
//! ring holds now; [`run`] applies the writes for a time or a count.
//!
//! The guest must refuse what breaks the protocol (count it in
//! `hring.bad`), never trust a header it checked after the host changed
//! it, and stay responsive whatever `prod` says.

use super::doorbell::Doorbell;
use super::shm::SharedMemory;
use rig_abi as abi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

/// What a [`run`] is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFuzz {
    pub seed: u64,
    /// At most this many writes.
    pub writes: u64,
    /// For at most this long.
    pub duration: Duration,
}

/// One thing the host does to the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingWrite {
    /// Publishes `prod` (store-release), whatever it says.
    Prod(u32),
    /// A 64-byte header into pool buffer `index`.
    Header { index: u32, bytes: [u8; 64] },
    /// Random bytes at a region offset (ring, status, buffers).
    Bytes { offset: u64, bytes: Vec<u8> },
    /// Buffers by the protocol, as `host.produce` writes them.
    Produce { count: u32, len: u32, seed: u32 },
    /// `host_peer` and `host_magic`.
    HostFields { peer: u32, magic: u32 },
    /// A word of the guest's half of the ring, which only the guest writes.
    GuestField { offset: u64, value: u32 },
    /// Rings the guest on a doorbell vector.
    Ring { vector: u32 },
}

impl RingWrite {
    fn kind(&self) -> usize {
        match self {
            RingWrite::Prod(_) => 0,
            RingWrite::Header { .. } => 1,
            RingWrite::Bytes { .. } => 2,
            RingWrite::Produce { .. } => 3,
            RingWrite::HostFields { .. } => 4,
            RingWrite::GuestField { .. } => 5,
            RingWrite::Ring { .. } => 6,
        }
    }
}

const KINDS: [&str; 7] = ["prod", "headers", "bytes", "produce", "host fields", "guest fields", "rings"];

/// splitmix64: small, seeded, the same on every host.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5249_4746_555a_5a00)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// The ring as the host sees it before a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingView {
    pub prod: u32,
    pub cons: u32,
}

/// A header for ring position `pos`, right, or wrong in one field.
fn header(r: &mut Rng, pos: u32) -> (u32, [u8; 64]) {
    let index = abi::hring_buf(pos);
    let mut h = abi::PoolBuf {
        magic: abi::POOL_BUF_MAGIC,
        source: abi::POOL_SRC_HOST,
        seq: u64::from(pos) + 1,
        len: 1 + r.below(u64::from(abi::POOL_PAYLOAD_MAX)) as u32,
        seed: r.u32(),
        index,
        reserved: [0; 9],
    };
    match r.below(10) {
        0 => {
            let any = r.u32();
            h.magic = r.pick(&[0, abi::POOL_BUF_MAGIC ^ 1, any]);
        }
        1 => h.source = r.pick(&[0, abi::POOL_SRC_KERNEL, 3, u32::MAX]),
        2 => {
            let any = r.next_u64();
            h.seq = r.pick(&[0, u64::from(pos), u64::from(pos) + 2, u64::MAX, any]);
        }
        3 => h.len = r.pick(&[0, abi::POOL_PAYLOAD_MAX, abi::POOL_PAYLOAD_MAX + 1, u32::MAX]),
        4 => h.index = r.pick(&[0, index ^ 1, abi::POOL_NBUF, u32::MAX]),
        5 => {
            let i = r.below(9) as usize;
            h.reserved[i] = r.u32();
        }
        6 => {
            let mut b = [0u8; 64];
            for c in b.chunks_mut(8) {
                c.copy_from_slice(&r.next_u64().to_le_bytes());
            }
            return (index, b);
        }
        _ => {}
    }
    let mut b = [0u8; 64];
    // SAFETY: PoolBuf is 64 bytes of plain integers (asserted in rig_abi).
    let raw = unsafe { std::slice::from_raw_parts((&h as *const abi::PoolBuf).cast::<u8>(), 64) };
    b.copy_from_slice(raw);
    (index, b)
}

/// The next write, from the generator and what the ring holds.
pub fn next_write(r: &mut Rng, v: RingView) -> RingWrite {
    match r.below(100) {
        0..=29 => {
            let k = match r.below(10) {
                0..=4 => r.below(u64::from(abi::HRING_SLOTS) + 1) as u32,
                5 => abi::HRING_SLOTS + 1,
                6 => 0x8000_0000,
                7 => u32::MAX,
                _ => r.u32(),
            };
            RingWrite::Prod(v.cons.wrapping_add(k))
        }
        30..=59 => {
            let pos = v.prod.wrapping_add(r.below(u64::from(abi::HRING_SLOTS)) as u32);
            let (index, bytes) = header(r, pos);
            RingWrite::Header { index, bytes }
        }
        60..=69 => {
            // Anywhere from the pool status to the last buffer.
            let span = abi::pool_buf_offset(abi::POOL_NBUF) - abi::POOL_STATUS_OFFSET;
            let offset = abi::POOL_STATUS_OFFSET + r.below(span);
            let len = r.pick(&[1, 4, 8, 64, 256]).min(abi::pool_buf_offset(abi::POOL_NBUF) - offset);
            let bytes = (0..len).map(|_| r.next_u64() as u8).collect();
            RingWrite::Bytes { offset, bytes }
        }
        70..=79 => RingWrite::Produce {
            count: 1 + r.below(4) as u32,
            len: 1 + r.below(u64::from(abi::POOL_PAYLOAD_MAX)) as u32,
            seed: r.u32(),
        },
        80..=83 => {
            let (p, m) = (r.u32(), r.u32());
            RingWrite::HostFields {
                peer: r.pick(&[0, 1, abi::PEER_NONE, p]),
                magic: r.pick(&[abi::HRING_HOST_MAGIC, 0, m]),
            }
        }
        84..=86 => {
            let offset = abi::hring_field::CONS + 4 * r.below(16);
            let any = r.u32();
            RingWrite::GuestField { offset, value: r.pick(&[0, 1, u32::MAX, any]) }
        }
        // Mostly "produced"; now and then a vector the guest may lack.
        _ => RingWrite::Ring { vector: r.pick(&[0, 0, 0, 1, 2]) },
    }
}

/// What a [`run`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingFuzzReport {
    pub writes: u64,
    /// Per kind, in the order of `KINDS`.
    pub by_kind: [u64; 7],
    /// Doorbell rings that failed (a vector the guest lacks, no doorbell).
    pub ring_errors: u64,
    /// `hring.bad` and `cons` at the end.
    pub bad: u32,
    pub cons: u32,
    pub elapsed: Duration,
}

impl std::fmt::Display for RingFuzzReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = KINDS.iter().zip(self.by_kind).map(|(k, n)| format!("{k} {n}")).collect();
        write!(
            f,
            "{} writes in {:.1} s ({}; {} rings failed); at the end hring.bad reads {} and cons {} (guest words the host scribbled on too)",
            self.writes,
            self.elapsed.as_secs_f64(),
            parts.join(", "),
            self.ring_errors,
            self.bad,
            self.cons
        )
    }
}

fn load(m: &SharedMemory, offset: u64, order: Ordering) -> Result<u32, String> {
    m.memory().load(GuestAddress(offset), order).map_err(|e| format!("read at {offset:#x}: {e}"))
}

fn store(m: &SharedMemory, offset: u64, v: u32, order: Ordering) -> Result<(), String> {
    m.memory().store(v, GuestAddress(offset), order).map_err(|e| format!("write at {offset:#x}: {e}"))
}

/// Applies writes until the count or the time runs out (or `stop`).
pub fn run<'d>(
    m: &SharedMemory,
    mut doorbell: Option<&mut (dyn Doorbell + 'd)>,
    spec: RingFuzz,
    stop: &AtomicBool,
) -> Result<RingFuzzReport, String> {
    let mut r = Rng::new(spec.seed);
    let mut rep = RingFuzzReport::default();
    let start = Instant::now();
    while rep.writes < spec.writes && start.elapsed() < spec.duration && !stop.load(Ordering::Relaxed) {
        let view = RingView {
            prod: load(m, abi::hring_field::PROD, Ordering::Relaxed)?,
            cons: load(m, abi::hring_field::CONS, Ordering::Acquire)?,
        };
        let w = next_write(&mut r, view);
        match &w {
            RingWrite::Prod(p) => store(m, abi::hring_field::PROD, *p, Ordering::Release)?,
            RingWrite::Header { index, bytes } => {
                m.write(abi::pool_buf_offset(*index), bytes).map_err(|e| e.to_string())?;
            }
            RingWrite::Bytes { offset, bytes } => m.write(*offset, bytes).map_err(|e| e.to_string())?,
            RingWrite::Produce { count, len, seed } => {
                // A full ring or a guest not ready is an answer, not a failure.
                let _ = abi::host::produce(m.memory(), super::doorbell::HOST_PEER_ID as u32, *count, *len, *seed);
            }
            RingWrite::HostFields { peer, magic } => {
                store(m, abi::hring_field::HOST_PEER, *peer, Ordering::Relaxed)?;
                store(m, abi::hring_field::HOST_MAGIC, *magic, Ordering::Release)?;
            }
            RingWrite::GuestField { offset, value } => store(m, *offset, *value, Ordering::Relaxed)?,
            RingWrite::Ring { vector } => {
                let ok = doorbell.as_deref_mut().map(|d| d.ring_guest(*vector).is_ok()).unwrap_or(false);
                if !ok {
                    rep.ring_errors += 1;
                }
            }
        }
        rep.by_kind[w.kind()] += 1;
        rep.writes += 1;
        // About 5000 writes a second: a hostile host, not a busy loop
        // that starves the guest's vCPUs of the host's cores.
        std::thread::sleep(Duration::from_micros(200));
    }
    rep.bad = load(m, abi::hring_field::BAD, Ordering::Relaxed)?;
    rep.cons = load(m, abi::hring_field::CONS, Ordering::Relaxed)?;
    rep.elapsed = start.elapsed();
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_writes() {
        let draw = |seed| {
            let mut r = Rng::new(seed);
            (0..200).map(|i| next_write(&mut r, RingView { prod: i, cons: i / 2 })).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn every_kind_of_garbage_is_drawn() {
        let mut r = Rng::new(3);
        let mut seen = [0u64; 7];
        let mut far = false;
        let mut wrong_headers = 0;
        for i in 0..20_000u32 {
            let v = RingView { prod: i, cons: i.wrapping_sub(3) };
            let w = next_write(&mut r, v);
            seen[w.kind()] += 1;
            match w {
                RingWrite::Prod(p) => far |= p.wrapping_sub(v.cons) > abi::HRING_SLOTS,
                RingWrite::Header { index, bytes } => {
                    assert!((abi::HRING_FIRST_BUF..abi::POOL_NBUF).contains(&index));
                    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                    if magic != abi::POOL_BUF_MAGIC {
                        wrong_headers += 1;
                    }
                }
                RingWrite::Bytes { offset, bytes } => {
                    assert!(offset >= abi::POOL_STATUS_OFFSET);
                    assert!(offset + bytes.len() as u64 <= abi::pool_buf_offset(abi::POOL_NBUF));
                }
                RingWrite::GuestField { offset, .. } => {
                    assert!((abi::hring_field::CONS..abi::HRING_OFFSET + 128).contains(&offset));
                }
                RingWrite::Ring { vector } => assert!(vector <= 2),
                _ => {}
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        assert!(far, "prod never ran more than a ring ahead");
        assert!(wrong_headers > 0);
    }

    #[test]
    fn run_writes_into_the_region_and_stops_at_the_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = SharedMemory::create(&dir.path().join("shm"), 1 << 20).expect("map");
        let stop = AtomicBool::new(false);
        let spec = RingFuzz { seed: 9, writes: 300, duration: Duration::from_secs(30) };
        let rep = run(&m, None, spec, &stop).expect("run");
        assert_eq!(rep.writes, 300);
        assert_eq!(rep.by_kind.iter().sum::<u64>(), 300);
        // No doorbell: every ring failed, and the rest reached the file.
        assert_eq!(rep.ring_errors, rep.by_kind[6]);
        assert!(m.read(abi::POOL_OFFSET, 0x2_0000).expect("read").iter().any(|&b| b != 0));
        let text = rep.to_string();
        assert!(text.starts_with("300 writes in"), "{text}");
    }
}
