//! Retrying API requests: 429, 5xx and connection errors, with exponential backoff and jitter,
//! honouring the server's `retryAfterSeconds`.

use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base: Duration,
    /// Upper bound of one delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The pauses between restarts of a watch that failed: from a quarter second, doubling,
    /// up to ten seconds.
    pub const WATCH_RESTART: RetryPolicy = RetryPolicy {
        attempts: u32::MAX,
        base: Duration::from_millis(250),
        max: Duration::from_secs(10),
    };
}

/// Whether a failure may go away by itself, and after how long at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// Retrying cannot help (validation, not found, forbidden, ...).
    Permanent,
    /// Worth another try; the server may have said when.
    Transient {
        /// The server's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
}

impl RetryPolicy {
    /// Never retries.
    pub fn none() -> Self {
        RetryPolicy {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (1-based): full jitter over an exponential
    /// ceiling, but never shorter than what the server asked for.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1 << retry.saturating_sub(1).min(16))
            .min(self.max);
        let jittered = ceiling.mul_f64(0.5 + fastrand::f64() / 2.0);
        retry_after.map_or(jittered, |after| after.max(jittered))
    }

    /// Runs `operation` until it succeeds, fails permanently, or attempts run out. Returns the
    /// result and the number of attempts made.
    pub async fn run<T, E, F, Fut>(
        &self,
        classify: impl Fn(&E) -> Transience,
        mut operation: F,
    ) -> (Result<T, E>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match operation().await {
                Ok(value) => return (Ok(value), attempt),
                Err(error) => match classify(&error) {
                    Transience::Transient { retry_after } if attempt < self.attempts => {
                        tokio::time::sleep(self.delay(attempt, retry_after)).await;
                        attempt += 1;
                    }
                    _ => return (Err(error), attempt),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            max: Duration::from_millis(4),
        }
    }

    #[test]
    fn delays_grow_exponentially_within_bounds() {
        let policy = RetryPolicy::default();
        for retry in 1..10 {
            let ceiling = (policy.base * (1 << (retry - 1))).min(policy.max);
            let delay = policy.delay(retry, None);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{retry}: {delay:?}"
            );
        }
        let after = Duration::from_secs(7);
        assert_eq!(
            policy.delay(1, Some(after)),
            after,
            "Retry-After is honoured"
        );
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = Cell::new(0);
        let (result, attempts) = quick(5)
            .run(
                |_: &&str| Transience::Transient { retry_after: None },
                || {
                    calls.set(calls.get() + 1);
                    let n = calls.get();
                    async move { if n < 3 { Err("busy") } else { Ok(n) } }
                },
            )
            .await;
        assert_eq!((result, attempts), (Ok(3), 3));
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt_and_on_permanent_errors() {
        let (result, attempts) = quick(3)
            .run(
                |_: &&str| Transience::Transient { retry_after: None },
                || async { Err::<(), _>("down") },
            )
            .await;
        assert_eq!((result, attempts), (Err("down"), 3));
        let (result, attempts) = quick(3)
            .run(
                |_: &&str| Transience::Permanent,
                || async { Err::<(), _>("invalid") },
            )
            .await;
        assert_eq!((result, attempts), (Err("invalid"), 1));
    }
}
