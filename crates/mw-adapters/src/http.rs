//! What every vendor client shares: timeouts, retries with full-jitter exponential
//! backoff (via `backon`) that honour `Retry-After` within an overall deadline, and
//! the mapping of HTTP outcomes to [`PortError`]s.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use http::HeaderMap;
use mw_core::PortError;

/// Timeouts and retries of one vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    /// Attempts in all, the first included (1 = no retry).
    pub attempts: usize,
    /// First backoff step (the wait is a random fraction of the step: full jitter).
    pub base_delay: Duration,
    /// Largest backoff step (`Retry-After` may ask for more, within the deadline).
    pub max_delay: Duration,
    /// No retry starts after this much time since the first attempt.
    pub deadline: Duration,
}

impl RetryPolicy {
    /// Richpanel defaults (SPEC §8): 10 s per attempt, 3 attempts, 0.5–4 s backoff,
    /// 30 s overall.
    pub const RICHPANEL: RetryPolicy = RetryPolicy {
        timeout: Duration::from_secs(10),
        attempts: 3,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(4),
        deadline: Duration::from_secs(30),
    };

    /// OpenAI defaults (SPEC §8): 30 s overall, retries within it.
    pub const OPENAI: RetryPolicy = RetryPolicy {
        timeout: Duration::from_secs(20),
        attempts: 3,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(4),
        deadline: Duration::from_secs(30),
    };
}

/// The HTTP client of a vendor: per-attempt timeout (connecting takes at most
/// 5 s of it), rustls, our user agent.
pub(crate) fn client(policy: &RetryPolicy) -> Result<reqwest::Client, PortError> {
    reqwest::Client::builder()
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("mw/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| PortError::Invalid(format!("HTTP client: {error}")))
}

/// One failed attempt: the error, and whether and when another attempt may follow.
#[derive(Debug)]
pub(crate) struct Failed {
    pub error: PortError,
    pub retry: bool,
    pub retry_after: Option<Duration>,
}

impl Failed {
    /// A failure that must not be retried.
    pub fn stop(error: PortError) -> Failed {
        Failed {
            error,
            retry: false,
            retry_after: None,
        }
    }

    /// A failure worth another attempt, after `retry_after` when the server said so.
    pub fn retry(error: PortError, retry_after: Option<Duration>) -> Failed {
        Failed {
            error,
            retry: true,
            retry_after,
        }
    }
}

/// A uniformly random fraction of `step` (full jitter).
fn full_jitter(step: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return step;
    }
    let fraction = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    step.mul_f64(fraction)
}

/// Runs `attempt` until it succeeds, fails for good, runs out of attempts, or the
/// next wait would end past the deadline.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    attempt: F,
) -> Result<T, PortError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failed>>,
{
    let started = Instant::now();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.base_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.attempts.saturating_sub(1));
    attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|failed: &Failed| failed.retry)
        .adjust(|failed: &Failed, step: Option<Duration>| {
            let jittered = full_jitter(step?);
            let wait = failed
                .retry_after
                .map_or(jittered, |after| after.max(jittered));
            (started.elapsed() + wait <= policy.deadline).then_some(wait)
        })
        .await
        .map_err(|failed| failed.error)
}

/// `Retry-After` as seconds or an HTTP date; `retry-after-ms` (OpenAI) first.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(millis) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && millis.is_finite()
        && millis >= 0.0
    {
        return Some(Duration::from_secs_f64(millis / 1000.0));
    }
    let value = text("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The error of a request that got no answer. `idempotent` says whether sending it
/// again is harmless; a request that may have reached the server is otherwise not
/// repeated.
pub(crate) fn transport_failure(vendor: &str, error: &reqwest::Error, idempotent: bool) -> Failed {
    if error.is_connect() {
        // Never reached the server: safe to repeat, whatever the request.
        return Failed::retry(
            PortError::Unavailable(format!("{vendor}: cannot connect")),
            None,
        );
    }
    let port_error = if error.is_timeout() {
        PortError::Timeout(format!("{vendor}: no answer within the timeout"))
    } else {
        PortError::Unavailable(format!("{vendor}: the connection failed before an answer"))
    };
    if idempotent {
        Failed::retry(port_error, None)
    } else {
        Failed::stop(port_error)
    }
}

/// The error of a request answered with a non-success status. 429 and 5xx are
/// retried (5xx only when `idempotent`); everything else is final.
pub(crate) fn status_failure(
    vendor: &str,
    status: u16,
    headers: &HeaderMap,
    what_to_do_401: &str,
    idempotent: bool,
) -> Failed {
    let after = retry_after(headers);
    match status {
        429 => Failed::retry(
            PortError::RateLimited {
                retry_after_secs: after.map(|d| d.as_secs()),
            },
            after,
        ),
        401 | 403 => Failed::stop(PortError::Unauthorized(format!(
            "{vendor} answered {status}; {what_to_do_401}"
        ))),
        404 => Failed::stop(PortError::NotFound(format!("{vendor} answered 404"))),
        409 => Failed::stop(PortError::Conflict(format!("{vendor} answered 409"))),
        500..=599 => {
            let error = PortError::Unavailable(format!("{vendor} answered {status}"));
            if idempotent {
                Failed::retry(error, after)
            } else {
                Failed::stop(error)
            }
        }
        _ => Failed::stop(PortError::Invalid(format!(
            "{vendor} rejected the request with {status}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn retry_after_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(20);
        headers.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let parsed = retry_after(&headers).unwrap();
        assert!(parsed > Duration::from_secs(17) && parsed <= Duration::from_secs(20));
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        headers.remove("retry-after-ms");
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn full_jitter_stays_within_the_step() {
        for _ in 0..100 {
            assert!(full_jitter(Duration::from_millis(80)) <= Duration::from_millis(80));
        }
    }

    #[tokio::test]
    async fn retries_stop_at_the_attempt_limit_and_on_final_errors() {
        let policy = RetryPolicy {
            timeout: Duration::from_secs(1),
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            deadline: Duration::from_secs(5),
        };
        let calls = AtomicUsize::new(0);
        let result: Result<(), PortError> = with_retries(&policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failed::retry(PortError::Unavailable("x".into()), None))
        })
        .await;
        assert!(matches!(result, Err(PortError::Unavailable(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let result: Result<(), PortError> = with_retries(&policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failed::stop(PortError::Invalid("x".into())))
        })
        .await;
        assert!(matches!(result, Err(PortError::Invalid(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_deadline_is_not_waited_for() {
        let policy = RetryPolicy {
            deadline: Duration::from_millis(100),
            ..RetryPolicy::RICHPANEL
        };
        let calls = AtomicUsize::new(0);
        let started = Instant::now();
        let result: Result<(), PortError> = with_retries(&policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failed::retry(
                PortError::RateLimited {
                    retry_after_secs: Some(5),
                },
                Some(Duration::from_secs(5)),
            ))
        })
        .await;
        assert!(matches!(result, Err(PortError::RateLimited { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
