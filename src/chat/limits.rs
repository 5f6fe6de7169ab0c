//! Per-connection message rate limiting: a token bucket in integer milli-tokens.

/// Starts full; refills at `rate` tokens per second up to `burst` tokens.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    milli_tokens: u32,
    updated_at: u64,
}

impl TokenBucket {
    pub fn full(burst: u32, now: u64) -> TokenBucket {
        TokenBucket {
            milli_tokens: capacity(burst),
            updated_at: now,
        }
    }

    /// Takes one token if there is one. `rate == 0` means unlimited.
    pub fn try_take(&mut self, now: u64, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let elapsed_ms = now.saturating_sub(self.updated_at);
        // `rate` tokens per second is `rate` milli-tokens per millisecond.
        let refill = elapsed_ms.saturating_mul(u64::from(rate));
        let refilled = u64::from(self.milli_tokens).saturating_add(refill);
        self.milli_tokens = refilled.min(u64::from(capacity(burst))) as u32;
        self.updated_at = self.updated_at.max(now);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

fn capacity(burst: u32) -> u32 {
    burst.max(1).saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let mut bucket = TokenBucket::full(3, 0);
        assert!(bucket.try_take(0, 2, 3));
        assert!(bucket.try_take(0, 2, 3));
        assert!(bucket.try_take(0, 2, 3));
        assert!(!bucket.try_take(0, 2, 3));
        // 2 tokens per second: one more after 500 ms, not before.
        assert!(!bucket.try_take(499, 2, 3));
        assert!(bucket.try_take(500, 2, 3));
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert!(bucket.try_take(60_000, 2, 3));
        }
        assert!(!bucket.try_take(60_000, 2, 3));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut bucket = TokenBucket::full(1, 0);
        for _ in 0..10_000 {
            assert!(bucket.try_take(0, 0, 1));
        }
    }

    #[test]
    fn clock_going_backwards_does_not_refill() {
        let mut bucket = TokenBucket::full(1, 1_000);
        assert!(bucket.try_take(1_000, 1, 1));
        assert!(!bucket.try_take(10, 1, 1));
        assert!(!bucket.try_take(1_500, 1, 1));
        assert!(bucket.try_take(2_000, 1, 1));
    }
}
