//! The hasher states are fingerprinted with: XXH3 (64-bit; it passes
//! SMHasher's collision tests) fed through a small buffer, so that the many
//! integers a state's `Hash` writes cost a store each rather than a call.

use std::hash::Hasher;

/// Bytes gathered before they go to XXH3 in one update.
const BUF: usize = 256;

/// A [`Hasher`] computing XXH3-64 of everything written, in order.
pub(super) struct Fingerprinter {
    xxh3: xxhash_rust::xxh3::Xxh3,
    buf: [u8; BUF],
    len: usize,
}

impl Fingerprinter {
    /// An empty fingerprint.
    pub(super) fn new() -> Self {
        Fingerprinter {
            xxh3: xxhash_rust::xxh3::Xxh3::new(),
            buf: [0; BUF],
            len: 0,
        }
    }

    /// Appends `N` bytes: a fixed-size copy, which compiles to a store.
    #[inline]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) {
        if self.len + N > BUF {
            self.flush();
        }
        self.buf[self.len..self.len + N].copy_from_slice(&bytes);
        self.len += N;
    }

    fn flush(&mut self) {
        self.xxh3.update(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Hasher for Fingerprinter {
    fn finish(&self) -> u64 {
        let mut x = self.xxh3.clone();
        x.update(&self.buf[..self.len]);
        x.digest()
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() <= BUF {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            self.flush();
            self.xxh3.update(bytes);
        }
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.put(v.to_le_bytes());
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.put(v.to_le_bytes());
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.put(v.to_le_bytes());
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.put(v.to_le_bytes());
    }

    #[inline]
    fn write_i32(&mut self, v: i32) {
        self.put(v.to_le_bytes());
    }

    #[inline]
    fn write_i64(&mut self, v: i64) {
        self.put(v.to_le_bytes());
    }

    #[inline]
    fn write_isize(&mut self, v: isize) {
        self.put(v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buffering changes nothing: the fingerprint is XXH3 of the bytes
    /// written, in order, however they were split.
    #[test]
    fn the_fingerprint_is_xxh3_of_the_bytes_written() {
        let mut f = Fingerprinter::new();
        let mut expected = Vec::new();
        for (i, b) in (0..200u64).zip(0u8..) {
            f.write_u64(i);
            expected.extend_from_slice(&i.to_le_bytes());
            f.write_u8(b);
            expected.push(b);
            let long: Vec<u8> = std::iter::repeat_n(b, usize::from(b) * 7 % 300).collect();
            f.write(&long);
            expected.extend_from_slice(&long);
        }
        assert_eq!(f.finish(), xxhash_rust::xxh3::xxh3_64(&expected));
        assert_ne!(Fingerprinter::new().finish(), f.finish());
    }
}
