//! Spare output buffers, handed from connections whose output drained to connections about to
//! get some.
//!
//! A connection releases its output buffer once everything in it is written, so that an idle
//! connection holds none. Under load that meant one allocation per connection per loop turn,
//! and a reallocation (a copy) each time the turn's frames outgrew it: in a room broadcast, the
//! allocator was half of a delivery's instructions. The pool keeps a bounded number of drained
//! buffers for reuse instead, so a busy server stops allocating while an idle one still holds at
//! most [`MAX_POOL_BYTES`] beyond its connections.

/// Drained buffers smaller than this are freed, not kept: a buffer worth keeping holds at least
/// one chat frame (an `emotion` result is ~250 bytes).
const MIN_KEPT_BUFFER_BYTES: usize = 256;
/// Drained buffers larger than this (a static file, a long replay) are freed, not kept.
const MAX_KEPT_BUFFER_BYTES: usize = 16 * 1024;
/// Most bytes of capacity the pool keeps: under 0.06 KiB per connection at 19,000 connections.
pub const MAX_POOL_BYTES: usize = 1024 * 1024;

#[derive(Default)]
pub struct OutputPool {
    spare: Vec<Vec<u8>>,
    /// Capacity of the buffers in `spare`, summed.
    bytes: usize,
}

impl OutputPool {
    /// Gives `output` a buffer if it has none (it drained and was released), so that appending
    /// `needed` bytes to it seldom allocates. With the pool empty the new buffer is just large
    /// enough: when a broadcast reaches more connections than the pool holds, larger buffers
    /// only touched more memory (10,000 members with 2 KiB each cost more CPU per delivery
    /// than allocating to size).
    pub fn supply(&mut self, output: &mut Vec<u8>, needed: usize) {
        if output.capacity() == 0 {
            *output = match self.spare.pop() {
                Some(buffer) => {
                    self.bytes -= buffer.capacity();
                    buffer
                }
                None => Vec::with_capacity(needed),
            };
        }
    }

    /// Gives `output` a spare buffer if it has none and the pool holds one; never allocates.
    pub fn lend_spare(&mut self, output: &mut Vec<u8>) {
        if output.capacity() == 0 {
            if let Some(buffer) = self.spare.pop() {
                self.bytes -= buffer.capacity();
                *output = buffer;
            }
        }
    }

    /// Takes back a buffer whose contents are sent (or will never be), keeping it for the next
    /// [`OutputPool::supply`] if it is of a useful size and the pool has room; otherwise frees it.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        let useful = (MIN_KEPT_BUFFER_BYTES..=MAX_KEPT_BUFFER_BYTES).contains(&capacity);
        if useful && self.bytes + capacity <= MAX_POOL_BYTES {
            buffer.clear();
            self.bytes += capacity;
            self.spare.push(buffer);
        }
    }

    /// Bytes of capacity held for reuse.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drained_buffers_are_reused_without_their_contents() {
        let mut pool = OutputPool::default();
        let mut output = Vec::new();
        pool.supply(&mut output, 1000);
        assert_eq!(output.capacity(), 1000);
        output.extend_from_slice(b"sent bytes");
        let address = output.as_ptr();
        pool.recycle(std::mem::take(&mut output));
        assert_eq!(pool.bytes(), 1000);
        let mut next = Vec::new();
        pool.supply(&mut next, 10);
        assert_eq!(next.as_ptr(), address);
        assert!(next.is_empty());
        assert_eq!(pool.bytes(), 0);
        // An output that already has a buffer keeps it.
        let mut kept = Vec::with_capacity(10);
        kept.push(1u8);
        pool.supply(&mut kept, 100);
        assert_eq!(kept, [1]);
    }

    #[test]
    fn spare_buffers_are_lent_but_never_allocated() {
        let mut pool = OutputPool::default();
        let mut output = Vec::new();
        pool.lend_spare(&mut output);
        assert_eq!(output.capacity(), 0, "an empty pool lends nothing");
        pool.recycle(Vec::with_capacity(1000));
        pool.lend_spare(&mut output);
        assert_eq!(output.capacity(), 1000);
        assert_eq!(pool.bytes(), 0);
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut pool = OutputPool::default();
        pool.recycle(Vec::with_capacity(MIN_KEPT_BUFFER_BYTES - 1));
        pool.recycle(Vec::with_capacity(MAX_KEPT_BUFFER_BYTES + 1));
        assert_eq!(pool.bytes(), 0, "too small and too large buffers are freed");
        for _ in 0..2 * MAX_POOL_BYTES / 1000 {
            pool.recycle(Vec::with_capacity(1000));
        }
        assert!(pool.bytes() <= MAX_POOL_BYTES);
        assert!(pool.bytes() > MAX_POOL_BYTES - 1000);
    }
}
