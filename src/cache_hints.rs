//! Cache hints for data written now and read rarely, if ever: a room's history.
//!
//! A busy server appends every message to its room's history ring. With many rooms those rings
//! add up to megabytes, far more than a core's L2 cache, written in a stream and read back only
//! when a client resumes. Plain stores to them first fetch each line (a miss: the ring was
//! written long ago) while the message waits, and then keep the lines in L1 and L2, where they
//! push out the lexicon and the sockets' state that the next messages need. So the ring's next
//! lines are requested for writing as soon as the message's room is known, to arrive while the
//! message is scored, and the lines written are sent down to the shared L3 once the record is in.
//!
//! Both are hints: they change no memory and cannot fault. On x86-64 CPUs without the
//! instructions they execute as no-ops, and on other architectures they are left out.

/// Requests the cache lines of the `length` bytes from `start` for writing (`prefetchw`),
/// without waiting for them. Any address will do (memory about to be written need not be in a
/// slice yet): a prefetch cannot fault.
#[inline(always)]
pub(crate) fn prefetch_range_for_write(start: *const u8, length: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in lines_of(start as usize, length) {
        // SAFETY: a prefetch reads and writes no memory and cannot fault, on any address.
        // (Written out because `_mm_prefetch` gives a read prefetch without the `prfchw`
        // target feature.)
        unsafe {
            std::arch::asm!("prefetchw [{0}]", in(reg) line, options(nostack, preserves_flags))
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, length);
}

/// Hints that the cache lines of `bytes` will not be needed soon: `cldemote` moves them from
/// this core's L1 and L2 to the shared L3.
#[inline(always)]
pub(crate) fn demote(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in lines(bytes) {
        // SAFETY: `cldemote` only moves a line between caches: it changes no memory and cannot
        // fault, on any address.
        unsafe {
            std::arch::asm!("cldemote [{0}]", in(reg) line, options(nostack, preserves_flags))
        };
    }
}

/// The address of each 64-byte cache line that `bytes` touches.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lines(bytes: &[u8]) -> impl Iterator<Item = usize> {
    lines_of(bytes.as_ptr() as usize, bytes.len())
}

/// The address of each 64-byte cache line that the `length` bytes from `start` touch: a count
/// and a multiply, which cost half the instructions per hint of a `step_by` range or a loop
/// that checks for overflow. Wrapping arithmetic, for any address; the count is bounded by
/// the lines `length` bytes can touch.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lines_of(start: usize, length: usize) -> impl Iterator<Item = usize> {
    let first = start & !63;
    let count = match length.checked_sub(1) {
        None => 0,
        Some(last_byte) => {
            let last = start.wrapping_add(last_byte) & !63;
            (last.wrapping_sub(first) / 64 + 1).min(length / 64 + 2)
        }
    };
    (0..count).map(move |index| first.wrapping_add(index * 64))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn lines_cover_every_byte_once() {
        let buffer = [0u8; 256];
        for offset in 0..64 {
            for len in 1..=128 {
                let bytes = &buffer[offset..offset + len];
                let start = bytes.as_ptr() as usize;
                let lines: Vec<usize> = lines(bytes).collect();
                assert!(lines.iter().all(|line| line % 64 == 0));
                assert!(lines[0] <= start && start < lines[0] + 64);
                let last = *lines.last().unwrap();
                assert!(last < start + len && start + len <= last + 64);
                assert!(lines.windows(2).all(|pair| pair[1] == pair[0] + 64));
            }
        }
        assert_eq!(lines(&buffer[..0]).count(), 0);
        // Addresses that wrap around stay within the lines the length can touch.
        assert!(lines_of(usize::MAX - 10, 100).count() <= 3);
        assert_eq!(lines_of(usize::MAX - 10, 0).count(), 0);
        // The hints themselves have no effect to observe but must not fault.
        prefetch_range_for_write(buffer.as_ptr(), buffer.len());
        prefetch_range_for_write(buffer.as_ptr().wrapping_add(1 << 40), 128);
        demote(&buffer);
    }
}
