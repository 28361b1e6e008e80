//! A small seeded generator (xoshiro256**, seeded through splitmix64), so
//! the same seed gives the same operations on every machine, and the
//! choices the fuzzer makes over and over: lengths at the edges of a size,
//! offsets around a boundary, integers at the edges of their type.

/// One stream of random numbers.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// splitmix64: spreads a seed over the generator's state.
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// Stream `stream` (a thread, say) of seed `seed`.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut x = seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03);
        let s = [splitmix(&mut x), splitmix(&mut x), splitmix(&mut x), splitmix(&mut x)];
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a collection of `n` items (0 when n is 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// An index drawn with the given weights (which must not all be 0).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < u64::from(w) {
                return i;
            }
            r -= u64::from(w);
        }
        weights.len() - 1
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// A length for something of `size` bytes: often at its edges (0, 1,
    /// size - 1, size, size + 1, a page either side), sometimes anything
    /// up to twice its size, now and then absurd.
    pub fn len_around(&mut self, size: u64) -> u64 {
        match self.below(10) {
            0 => self.pick(&[0, 1, 2, 3, 7, 8]),
            1..=3 => {
                let d = self.pick(&[-1i64, 0, 0, 1]);
                size.saturating_add_signed(d)
            }
            4 => {
                let d = self.pick(&[-4096i64, 4096, -8, 8]);
                size.saturating_add_signed(d)
            }
            5..=7 => self.below(size.saturating_mul(2).max(2)),
            8 => self.range(1, 64),
            _ => self.pick(&[4095, 4097, 0x1_0000, 0x10_0000, 0x7fff_ffff, 0xffff_ffff, u64::MAX]),
        }
    }

    /// An offset for something of `size` bytes, in `align` steps mostly:
    /// 0, the last step, the end, just past it, anywhere, now and then absurd.
    pub fn offset_around(&mut self, size: u64, align: u64) -> u64 {
        let steps = (size / align).max(1);
        match self.below(8) {
            0 | 1 => 0,
            2 => (steps - 1) * align,
            3 => size,
            4 => size + align,
            5 | 6 => self.below(steps) * align,
            _ => self.pick(&[1, align - 1, align + 1, 1 << 31, 1 << 32, 1 << 47, !(align - 1)]),
        }
    }

    /// A 32-bit value at the edges of its type, or random.
    pub fn edge_u32(&mut self) -> u32 {
        match self.below(4) {
            0 => self.pick(&[0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff]),
            1 => self.below(64) as u32,
            _ => self.next_u32(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_reproducible_and_streams_differ() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(42, 0);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(42, 0);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(42, 1);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(Rng::new(1, 0).next_u64(), Rng::new(2, 0).next_u64());
    }

    #[test]
    fn bounded_draws_stay_in_bounds() {
        let mut r = Rng::new(7, 0);
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
            assert!(r.index(3) < 3);
        }
        assert_eq!(r.below(0), 0);
        // Weights of zero are never drawn.
        for _ in 0..1000 {
            assert_ne!(r.weighted(&[3, 0, 5]), 1);
        }
    }

    #[test]
    fn lengths_and_offsets_hit_the_edges() {
        let mut r = Rng::new(9, 0);
        let lens: Vec<u64> = (0..5000).map(|_| r.len_around(4096)).collect();
        for edge in [0, 1, 4095, 4096, 4097, 8192, u64::MAX] {
            assert!(lens.contains(&edge), "no length {edge}");
        }
        let offs: Vec<u64> = (0..5000).map(|_| r.offset_around(0x4000, 4096)).collect();
        for edge in [0, 0x3000, 0x4000, 0x5000, 1] {
            assert!(offs.contains(&edge), "no offset {edge:#x}");
        }
        assert!(offs.iter().filter(|&&o| o < 0x4000).all(|o| o % 4096 == 0 || [1, 4095, 4097].contains(o)));
        let mut filled = [0u8; 13];
        r.fill(&mut filled);
        assert!(filled.iter().any(|&b| b != 0));
    }
}
