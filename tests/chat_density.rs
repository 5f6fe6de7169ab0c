//! Heap retained per idle authenticated connection in the chat core, measured with a counting
//! global allocator. Its own test binary (one test) so that no other test allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use emotibot::chat::auth::{AuthConfig, Authenticator, Claims, KeyConfig};
use emotibot::chat::{ChatConfig, ChatCore, ConnId, Delivery, Outbox};

struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Discards everything: only the core's own memory is measured.
struct NullOutbox;

impl Outbox for NullOutbox {
    fn send(&mut self, _conn: ConnId, _json: &str, _delivery: Delivery) {}
    fn close(&mut self, _conn: ConnId, _code: u16, _reason: &str) {}
}

const SESSIONS: usize = 1000;
const UNIX_AT_ZERO: u64 = 1_800_000_000_000;
/// The budget for the chat core's share of an idle authenticated connection.
const MAX_BYTES_PER_SESSION: isize = 500;

fn live() -> (isize, isize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_BLOCKS.load(Ordering::Relaxed),
    )
}

fn new_core() -> ChatCore {
    let auth = Authenticator::new(AuthConfig {
        key: KeyConfig::Hs256(b"density".to_vec()),
        issuer: None,
        audience: None,
    })
    .unwrap();
    ChatCore::new(ChatConfig::default(), auth, UNIX_AT_ZERO)
}

fn claims(user: usize, name: bool) -> Claims {
    Claims {
        sub: format!("user{user:05}"),
        name: name.then(|| format!("User {user:05}")),
        exp: UNIX_AT_ZERO / 1000 + 3600,
    }
}

/// Opens `SESSIONS` connections (user of connection `i` is `user_of(i)`), optionally joining each
/// to a shared room; returns (bytes, blocks) retained per session.
fn retained_per_session(
    user_of: impl Fn(usize) -> usize,
    name: bool,
    shared_room: bool,
) -> (f64, f64) {
    let mut core = new_core();
    let mut out = NullOutbox;
    // Warm up: the first connection sizes fixed structures (timer wheel entries, maps).
    core.open(SESSIONS + 10, Some(claims(999_999, name)), 0, &mut out);
    let (bytes_before, blocks_before) = live();
    for conn in 0..SESSIONS {
        core.open(conn, Some(claims(user_of(conn), name)), 0, &mut out);
        if shared_room {
            core.text(conn, r#"{"type":"join","room":"lobby"}"#, 0, &mut out);
        }
    }
    let (bytes_after, blocks_after) = live();
    assert_eq!(core.stats().authenticated, SESSIONS + 1);
    let per_session = |after: isize, before: isize| (after - before) as f64 / SESSIONS as f64;
    let result = (
        per_session(bytes_after, bytes_before),
        per_session(blocks_after, blocks_before),
    );
    for conn in 0..SESSIONS {
        core.closed(conn, 0, &mut out);
    }
    assert_eq!(core.stats().authenticated, 1);
    result
}

#[test]
fn idle_authenticated_sessions_stay_small() {
    let (distinct, distinct_blocks) = retained_per_session(|i| i, false, false);
    let (named, _) = retained_per_session(|i| i, true, false);
    let (two_tabs, _) = retained_per_session(|i| i / 2, false, false);
    let (in_lobby, _) = retained_per_session(|i| i, false, true);
    println!(
        "chat core heap per idle authenticated session ({SESSIONS} sessions): \
         distinct users {distinct:.0} B in {distinct_blocks:.1} blocks; with display name \
         {named:.0} B; two tabs per user {two_tabs:.0} B; distinct users also in one shared \
         room {in_lobby:.0} B"
    );
    assert!(
        distinct <= MAX_BYTES_PER_SESSION as f64,
        "{distinct} bytes per session"
    );
    assert!(named <= MAX_BYTES_PER_SESSION as f64, "{named} bytes");
    assert!(two_tabs <= distinct, "a second tab shares the private room");
}
