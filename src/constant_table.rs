//! Tables of constants that hot vector code loads from memory on purpose.
//!
//! Code that uses a dozen vector constants, left to the compiler, gets each as a constant of
//! its own, which the linker merges with equal constants elsewhere in the binary: one cache
//! line apart each, all to be missed by a call that finds them cold. Kept in one aligned
//! table and reached through [`opaque`], they are loaded from the table instead, a few cache
//! lines together.

/// The table `*at` points to, through a read the compiler cannot see the value of (a volatile
/// read of the static that holds the table's address), so that it loads the constants from the
/// table rather than folding them into the code. One load, where `black_box` stored the
/// address to the stack and loaded it back, which also gave its callers a stack frame.
#[inline(always)]
pub(crate) fn opaque<T>(at: &'static &'static T) -> &'static T {
    // SAFETY: `at` is a reference, so valid and aligned for the read, and what it points to is
    // initialized (to a reference).
    unsafe { std::ptr::read_volatile(at) }
}
