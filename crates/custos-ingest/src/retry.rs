//! Retrying store requests with exponential backoff.
//!
//! A request is retried only when the failure may go away by itself (a
//! connection refused, a timeout, a 5xx): never a refusal (permission,
//! precondition, a missing upload) that would fail the same way again.
//! This module must never produce a request payload itself: callers pass a
//! closure that resends the buffer they kept.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::options::RetryPolicy;

/// Whether `e` may succeed if the same request is sent again later.
pub(crate) fn is_transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        // HTTP failures after object_store's own retries, I/O on local files
        // and task join errors land here.
        E::Generic { .. } | E::JoinError { .. } => true,
        E::NotFound { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::NotImplemented { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. } => false,
        // object_store's error enum is non-exhaustive: an unknown kind is
        // treated as transient, the cautious choice for a retry budget that
        // is bounded anyway.
        _ => true,
    }
}

/// The wait before retry number `retry` (1-based): exponential, capped,
/// with up to 25 % random jitter so that many docks do not retry in step.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let shift = retry.saturating_sub(1).min(20);
    let base = policy
        .initial_backoff
        .saturating_mul(1u32 << shift)
        .min(policy.max_backoff);
    // Jitter from the standard library's per-process random hash keys: no
    // extra dependency, and the quality needed here is low.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(retry);
    let jitter_permille = h.finish() % 250;
    base + base.mul_f64(jitter_permille as f64 / 1000.0)
}

/// Run `attempt` until it succeeds, fails with a non-transient error, or
/// the policy's attempts are used up; returns the last error.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<T, object_store::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, object_store::Error>>,
{
    let mut tries = 0u32;
    loop {
        tries += 1;
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if tries < policy.max_attempts && is_transient(&e) => {
                let wait = backoff(policy, tries);
                tracing::warn!(%what, attempt = tries, ?wait, error = %e, "store request failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn generic() -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: "connection refused".into(),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_secs(1));
        let b1 = backoff(&p, 1);
        let b3 = backoff(&p, 3);
        let b9 = backoff(&p, 9);
        assert!(b1 >= Duration::from_millis(100) && b1 < Duration::from_millis(126));
        assert!(b3 >= Duration::from_millis(400) && b3 < Duration::from_millis(501));
        assert!(b9 >= Duration::from_secs(1) && b9 < Duration::from_millis(1251));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy::new(4, Duration::from_millis(10), Duration::from_millis(40));
        let r = with_retry(&p, "test", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(generic())
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_not_retried_and_budget_is_bounded() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy::new(4, Duration::from_millis(10), Duration::from_millis(40));
        let r: Result<(), _> = with_retry(&p, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(object_store::Error::NotImplemented {
                operation: "test".into(),
                implementer: "test".into(),
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = with_retry(&p, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(generic())
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
