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
    for_each_line(start as usize, length, |address| {
        // SAFETY: a prefetch reads and writes no memory and cannot fault, on any address.
        // (Written out because `_mm_prefetch` gives a read prefetch without the `prfchw`
        // target feature.)
        unsafe {
            std::arch::asm!("prefetchw [{0}]", in(reg) address, options(nostack, preserves_flags))
        };
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, length);
}

/// Hints that the cache lines of `bytes` will not be needed soon: `cldemote` moves them from
/// this core's L1 and L2 to the shared L3.
#[inline(always)]
pub(crate) fn demote(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for_each_line(bytes.as_ptr() as usize, bytes.len(), |address| {
        // SAFETY: `cldemote` only moves a line between caches: it changes no memory and cannot
        // fault, on any address.
        unsafe {
            std::arch::asm!("cldemote [{0}]", in(reg) address, options(nostack, preserves_flags))
        };
    });
}

/// Calls `hint` with an address in each 64-byte cache line that the `length` bytes from
/// `start` touch (a line may get two): the first and the last byte, the one 64 bytes on when
/// there are more than 64, and beyond 128 every 64 bytes up to the last line. A history record
/// spans two or three lines, so this is a few instructions a hint, where a loop over aligned
/// line addresses first has to count them. Wrapping arithmetic, for any address; the lines in
/// between are bounded by what `length` bytes can touch.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn for_each_line(start: usize, length: usize, mut hint: impl FnMut(usize)) {
    let Some(last_byte) = length.checked_sub(1) else {
        return;
    };
    let last = start.wrapping_add(last_byte);
    hint(start);
    hint(last);
    if length > 64 {
        // In the line after the first: the last's, or the one between (up to 128 bytes).
        hint(start.wrapping_add(64));
        if length > 128 {
            let last_line = last & !63;
            let mut between = start.wrapping_add(128);
            for _ in 0..length / 64 {
                if between & !63 >= last_line {
                    break;
                }
                hint(between);
                between = between.wrapping_add(64);
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn lines_hinted(start: usize, length: usize) -> Vec<usize> {
        let mut lines = Vec::new();
        for_each_line(start, length, |address| lines.push(address & !63));
        lines.sort_unstable();
        lines.dedup();
        lines
    }

    #[test]
    fn every_line_touched_gets_a_hint_and_no_other() {
        for start in 4096..4096 + 64 {
            for length in 1..=300 {
                let touched: Vec<usize> = ((start & !63)..start + length).step_by(64).collect();
                assert_eq!(lines_hinted(start, length), touched, "{start} + {length}");
            }
        }
        assert!(lines_hinted(4096, 0).is_empty());
        // Addresses that wrap around stay within the lines the length can touch.
        assert!(lines_hinted(usize::MAX - 10, 100).len() <= 3);
        assert!(lines_hinted(usize::MAX - 10, 0).is_empty());
        // The hints themselves have no effect to observe but must not fault.
        let buffer = [0u8; 256];
        prefetch_range_for_write(buffer.as_ptr(), buffer.len());
        prefetch_range_for_write(buffer.as_ptr().wrapping_add(1 << 40), 128);
        demote(&buffer);
    }
}
