//! Per-token rate limits on write calls: a token bucket per token (`[limits]
//! writes_per_minute`, the bucket holding as many), so a runaway script or a leaked token
//! cannot flood the queue. In memory, per process: behind several `serve` processes each
//! allows the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The buckets of every token seen.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Takes one call of `token`'s allowance of `per_minute`; `Err(wait)` when there is
    /// none left (how long until there is).
    pub fn take(&self, token: &str, per_minute: u32) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock (a panic elsewhere) must not lock everyone out.
            return Ok(());
        };
        let bucket = buckets.entry(token.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refilled = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second)
            .min(capacity);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_rate_then_one_call_per_interval() {
        let limiter = RateLimiter::default();
        for _ in 0..3 {
            assert!(limiter.take("a", 3).is_ok());
        }
        let wait = limiter.take("a", 3).unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another token has its own bucket; 0 means no limit.
        assert!(limiter.take("b", 3).is_ok());
        for _ in 0..1000 {
            assert!(limiter.take("c", 0).is_ok());
        }
    }
}
