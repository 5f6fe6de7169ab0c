//! `Scorer::score` makes no heap allocation: a counting global allocator (this test binary's own)
//! watches a varied corpus being scored, including hostile inputs.
//!
//! The count is per thread, so that the test harness allocating on its own threads at the same
//! moment is not mistaken for the scorer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use emotibot::emotion::{Emotion, Scorer};

struct CountingAllocator;

thread_local! {
    // A const-initialised `Cell` needs no allocation to set up, so the allocator may touch it.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: during thread teardown the slot may be gone; such allocations are not ours.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations_so_far() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn scoring_never_allocates() {
    // Built before counting starts: the inputs themselves may allocate.
    let huge_letter = "a".repeat(100_000);
    let huge_words = "so very happy but not sad ".repeat(4_000);
    let huge_emoji = "😂".repeat(25_000);
    let huge_joiners = "👩\u{200d}".repeat(10_000);
    let huge_bangs = "!".repeat(100_000);
    let corpus: Vec<&str> = vec![
        "",
        " ",
        "I love this so much!",
        "I'm not happy about this at all :(",
        "WHY would you DO that?!?!",
        "sooo goooood",
        "never been so scared in my life",
        "It was good, but the ending made me sad",
        "#BestDayEver #blessed",
        "ok 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 \u{200d}\u{200d} ❤️ 😡",
        ":) :'( >:( :D <3 :-/",
        "I’m fine, don’t worry",
        "ça va très bien, merci 日本語 тест",
        "\u{feff}\u{0}\t\r\n",
        &huge_letter,
        &huge_words,
        &huge_emoji,
        &huge_joiners,
        &huge_bangs,
    ];
    let scorer = Scorer::new();
    let mut dominants = [0usize; 7];
    let before = allocations_so_far();
    for text in &corpus {
        let scores = scorer.score(text);
        dominants[scores.dominant().index()] += 1;
    }
    let allocations = allocations_so_far() - before;
    assert_eq!(allocations, 0, "score() allocated {allocations} times");
    // The counter does see allocations made on this thread.
    let probe = std::hint::black_box(vec![1u8; 16]);
    assert!(
        allocations_so_far() > before,
        "allocator not counting ({})",
        probe.len()
    );
    // The corpus really was scored, with more than one outcome.
    assert_eq!(dominants.iter().sum::<usize>(), corpus.len());
    assert!(dominants[Emotion::Neutral.index()] < corpus.len());
}
