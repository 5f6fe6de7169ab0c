//! `Scorer::score` makes no heap allocation: a counting global allocator (this test binary's own)
//! watches a varied corpus being scored, including hostile inputs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use emotibot::emotion::{Emotion, Scorer};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
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
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for text in &corpus {
        let scores = scorer.score(text);
        dominants[scores.dominant().index()] += 1;
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(allocations, 0, "score() allocated {allocations} times");
    // The corpus really was scored, with more than one outcome.
    assert_eq!(dominants.iter().sum::<usize>(), corpus.len());
    assert!(dominants[Emotion::Neutral.index()] < corpus.len());
}
