//! A hashed timer wheel: O(1) insert and cancel, expiry in O(1) per tick plus the timers that fire.
//!
//! Time is plain `u64` milliseconds on a monotonic clock chosen by the caller, so tests drive the
//! wheel with a simulated clock. A timer with deadline `d` fires at the first tick boundary at or
//! after `d` (ticks are `tick_ms` wide), never early. Timers live in one entry arena threaded into
//! per-slot doubly linked lists; a [`TimerKey`] carries a generation so cancelling a timer that
//! already fired (or whose entry was reused) is a harmless no-op.
//!
//! Slots hold timers of every "round": a slot is visited once per revolution and only the entries
//! whose tick has come fire. With 4096 slots of 10 ms a revolution is ~41 s, so heartbeat and typing
//! timers fire on their first visit.

const NIL: u32 = u32::MAX;

/// Identifies one inserted timer, for [`TimerWheel::cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

struct Entry<T> {
    /// `Some` while the timer is armed; `None` on the free list.
    value: Option<T>,
    tick: u64,
    prev: u32,
    next: u32,
    generation: u32,
}

pub struct TimerWheel<T> {
    tick_ms: u64,
    mask: u64,
    /// Head entry of each slot's list.
    heads: Vec<u32>,
    /// One bit per slot: set while the slot's list is non-empty, so finding the next deadline
    /// scans 64 slots per word instead of every slot.
    occupied: Vec<u64>,
    entries: Vec<Entry<T>>,
    free_head: u32,
    /// The next tick that [`TimerWheel::expire`] has not processed yet.
    next_tick: u64,
    len: usize,
}

impl<T> TimerWheel<T> {
    /// A wheel with `slots` slots (rounded up to a power of two, at least 64) of `tick_ms`
    /// milliseconds each, starting at `now`.
    pub fn new(tick_ms: u64, slots: usize, now: u64) -> Self {
        let tick_ms = tick_ms.max(1);
        let slots = slots.max(64).next_power_of_two();
        TimerWheel {
            tick_ms,
            mask: slots as u64 - 1,
            heads: vec![NIL; slots],
            occupied: vec![0; slots / 64],
            entries: Vec::new(),
            free_head: NIL,
            next_tick: now / tick_ms,
            len: 0,
        }
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arms a timer that fires at the first tick boundary at or after `deadline` (a deadline in
    /// the past fires at the next tick boundary that has not been expired yet).
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let tick = deadline.div_ceil(self.tick_ms).max(self.next_tick);
        let index = if self.free_head != NIL {
            let index = self.free_head;
            let entry = &mut self.entries[index as usize];
            self.free_head = entry.next;
            entry.value = Some(value);
            entry.tick = tick;
            index
        } else {
            let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 timers");
            self.entries.push(Entry {
                value: Some(value),
                tick,
                prev: NIL,
                next: NIL,
                generation: 0,
            });
            index
        };
        self.link(index);
        self.len += 1;
        TimerKey {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Disarms a timer and returns its value; `None` if it already fired or was cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let entry = self.entries.get(key.index as usize)?;
        if entry.generation != key.generation || entry.value.is_none() {
            return None;
        }
        self.unlink(key.index);
        Some(self.release(key.index))
    }

    /// Whether `key` is still armed.
    pub fn is_armed(&self, key: TimerKey) -> bool {
        self.entries
            .get(key.index as usize)
            .is_some_and(|e| e.generation == key.generation && e.value.is_some())
    }

    /// Moves every timer whose tick is at or before `now` into `fired`, in no particular order
    /// within a tick but tick by tick.
    pub fn expire(&mut self, now: u64, fired: &mut Vec<T>) {
        let now_tick = now / self.tick_ms;
        if now_tick < self.next_tick {
            return;
        }
        let slots = self.mask + 1;
        // After a long pause visit each slot once instead of every missed tick.
        let first = if now_tick - self.next_tick >= slots {
            now_tick + 1 - slots
        } else {
            self.next_tick
        };
        for tick in first..=now_tick {
            if self.len == 0 {
                break;
            }
            let slot = (tick & self.mask) as usize;
            let mut cursor = self.heads[slot];
            while cursor != NIL {
                let next = self.entries[cursor as usize].next;
                if self.entries[cursor as usize].tick <= now_tick {
                    self.unlink(cursor);
                    fired.push(self.release(cursor));
                }
                cursor = next;
            }
        }
        self.next_tick = now_tick + 1;
    }

    /// A time at or before the earliest armed deadline (the boundary of the first non-empty slot
    /// ahead), or `None` when no timer is armed. Waking then and calling `expire` never misses a
    /// timer; a slot holding only later-round timers just causes an early wake-up.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let slots = self.mask + 1;
        let start = self.next_tick & self.mask;
        let first_word = (start / 64) as usize;
        let words = self.occupied.len();
        let below_start = !(u64::MAX << (start % 64));
        // Scan the bitmap from `start` round to just before it.
        let candidates = std::iter::once((first_word, self.occupied[first_word] & !below_start))
            .chain((1..words).map(|i| {
                let index = (first_word + i) % words;
                (index, self.occupied[index])
            }))
            .chain(std::iter::once((
                first_word,
                self.occupied[first_word] & below_start,
            )));
        for (index, word) in candidates {
            if word != 0 {
                let slot = index as u64 * 64 + u64::from(word.trailing_zeros());
                let ahead = (slot + slots - start) & self.mask;
                return Some((self.next_tick + ahead) * self.tick_ms);
            }
        }
        Some(self.next_tick * self.tick_ms)
    }

    fn link(&mut self, index: u32) {
        let slot = (self.entries[index as usize].tick & self.mask) as usize;
        let head = self.heads[slot];
        {
            let entry = &mut self.entries[index as usize];
            entry.prev = NIL;
            entry.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.heads[slot] = index;
        self.occupied[slot / 64] |= 1 << (slot % 64);
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, tick) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.tick)
        };
        let slot = (tick & self.mask) as usize;
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            self.heads[slot] = next;
            if next == NIL {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
            }
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    fn release(&mut self, index: u32) -> T {
        let free_head = self.free_head;
        let entry = &mut self.entries[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = free_head;
        entry.prev = NIL;
        self.free_head = index;
        self.len -= 1;
        entry.value.take().expect("released entries are armed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel() -> TimerWheel<u32> {
        TimerWheel::new(10, 64, 0)
    }

    fn fired_at(wheel: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
        let mut fired = Vec::new();
        wheel.expire(now, &mut fired);
        fired.sort_unstable();
        fired
    }

    #[test]
    fn fires_at_the_first_tick_boundary_not_before() {
        let mut w = wheel();
        w.insert(25, 1);
        assert_eq!(fired_at(&mut w, 29), Vec::<u32>::new());
        assert_eq!(fired_at(&mut w, 30), vec![1]);
        assert!(w.is_empty());
    }

    #[test]
    fn past_deadlines_fire_at_the_next_unexpired_tick() {
        let mut w = wheel();
        assert!(fired_at(&mut w, 100).is_empty());
        w.insert(5, 7);
        assert_eq!(w.next_deadline(), Some(110));
        assert!(fired_at(&mut w, 109).is_empty());
        assert_eq!(fired_at(&mut w, 110), vec![7]);
    }

    #[test]
    fn cancel_returns_the_value_once() {
        let mut w = wheel();
        let a = w.insert(50, 1);
        let b = w.insert(50, 2);
        assert!(w.is_armed(a));
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None);
        assert!(!w.is_armed(a));
        assert_eq!(fired_at(&mut w, 50), vec![2]);
        assert_eq!(w.cancel(b), None, "a fired timer cannot be cancelled");
    }

    #[test]
    fn stale_key_does_not_cancel_a_reused_entry() {
        let mut w = wheel();
        let old = w.insert(10, 1);
        assert_eq!(fired_at(&mut w, 10), vec![1]);
        let new = w.insert(20, 2);
        assert_eq!(w.cancel(old), None);
        assert!(w.is_armed(new));
        assert_eq!(fired_at(&mut w, 20), vec![2]);
    }

    #[test]
    fn timers_beyond_one_revolution_wait_for_their_round() {
        let mut w = wheel(); // 64 slots x 10 ms = 640 ms per revolution
        w.insert(100, 1);
        w.insert(100 + 640, 2);
        w.insert(100 + 3 * 640, 3);
        assert_eq!(fired_at(&mut w, 100), vec![1]);
        assert_eq!(fired_at(&mut w, 739), Vec::<u32>::new());
        assert_eq!(fired_at(&mut w, 740), vec![2]);
        assert_eq!(fired_at(&mut w, 2019), Vec::<u32>::new());
        assert_eq!(fired_at(&mut w, 2020), vec![3]);
    }

    #[test]
    fn a_long_pause_fires_everything_due_once() {
        let mut w = wheel();
        for i in 0..200 {
            w.insert(u64::from(i) * 37, i);
        }
        w.insert(1_000_000, 999);
        let fired = fired_at(&mut w, 100_000);
        assert_eq!(fired, (0..200).collect::<Vec<_>>());
        assert_eq!(w.len(), 1);
        assert_eq!(fired_at(&mut w, 1_000_000), vec![999]);
    }

    #[test]
    fn next_deadline_is_never_after_the_earliest_timer() {
        let mut w = wheel();
        assert_eq!(w.next_deadline(), None);
        w.insert(455, 1);
        assert_eq!(w.next_deadline(), Some(460));
        w.insert(95, 2);
        assert_eq!(w.next_deadline(), Some(100));
        assert_eq!(fired_at(&mut w, 100), vec![2]);
        assert_eq!(w.next_deadline(), Some(460));
        // Wrapping: a deadline whose slot lies before the current position.
        assert_eq!(fired_at(&mut w, 460), vec![1]);
        w.insert(470 + 600, 3); // slot index below next_tick's slot
        let next = w.next_deadline().unwrap();
        assert!(next <= 1070 && next > 460, "next={next}");
    }

    #[test]
    fn next_deadline_matches_a_brute_force_model() {
        // A small deterministic pseudo-random walk of inserts, cancels and expiries.
        let mut w = TimerWheel::new(10, 64, 0);
        let mut armed: Vec<(TimerKey, u64)> = Vec::new();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = 0;
        for step in 0..5_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            match state % 4 {
                0 | 1 => {
                    let deadline = now + state % 2_000;
                    armed.push((w.insert(deadline, step), deadline));
                }
                2 if !armed.is_empty() => {
                    let (key, _) = armed.swap_remove((state as usize / 4) % armed.len());
                    assert!(w.cancel(key).is_some());
                }
                _ => {
                    now += state % 50;
                    let mut fired = Vec::new();
                    w.expire(now, &mut fired);
                    let due = now / 10 * 10;
                    let (gone, kept): (Vec<_>, Vec<_>) =
                        armed.iter().partition(|(_, d)| d.div_ceil(10) * 10 <= due);
                    assert_eq!(fired.len(), gone.len());
                    armed = kept;
                }
            }
            assert_eq!(w.len(), armed.len());
            if let Some(earliest) = armed.iter().map(|(_, d)| d.div_ceil(10) * 10).min() {
                let next = w.next_deadline().unwrap();
                assert!(next <= earliest.max(now / 10 * 10 + 10), "step {step}");
            }
        }
    }
}
