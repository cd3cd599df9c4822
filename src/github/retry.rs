//! GitHub's retry rules on top of the shared HTTP retry: which answers are transient (5xx,
//! primary and secondary rate limits) and how long GitHub asked to wait.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::http::{Backoff, Retry, rate_limit_wait, retry_after};

/// How hard to try before giving up on one API call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Attempts per call, the first included.
    pub(crate) max_attempts: u32,
    /// Wall time one call may take, waits included.
    pub(crate) max_total: Duration,
    /// First backoff after a 5xx without Retry-After; doubles each time.
    pub(crate) base_backoff: Duration,
    /// Deadline of one HTTP exchange.
    pub(crate) request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_total: Duration::from_secs(90),
            base_backoff: Duration::from_millis(500),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The shared retry rule with this policy's numbers: exponential from `base_backoff`, at
    /// most 30 s a wait.
    pub(crate) fn retry(&self) -> Retry {
        Retry {
            max_attempts: self.max_attempts,
            max_total: self.max_total,
            base: self.base_backoff,
            backoff: Backoff::Exponential,
            cap: Duration::from_secs(30),
        }
    }
}

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Final: a success or an error to report.
    Done,
    /// Transient: retry, after the wait GitHub asked for when it asked.
    Retry(Option<Duration>),
}

/// Classifies an answer: 5xx and rate limits (secondary: 403/429 with Retry-After or a
/// "secondary rate limit" message; primary: `x-ratelimit-remaining: 0`) are retried.
pub(crate) fn classify(
    status: u16,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Verdict {
    let retry_after = retry_after(headers, now);
    match status {
        500..=599 => Verdict::Retry(retry_after),
        403 | 429 => {
            if retry_after.is_some() {
                return Verdict::Retry(retry_after);
            }
            if let Some(wait) = rate_limit_wait(headers, now) {
                return Verdict::Retry(Some(wait));
            }
            let lower = message.to_ascii_lowercase();
            if status == 429 || lower.contains("secondary rate limit") || lower.contains("abuse") {
                // GitHub: without a header, wait at least a minute.
                return Verdict::Retry(Some(Duration::from_secs(60)));
            }
            Verdict::Done
        }
        _ => Verdict::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_static(k),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const NOW: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn now() -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn classification() {
        let none = HeaderMap::new();
        assert_eq!(classify(200, &none, "", now()), Verdict::Done);
        assert_eq!(classify(404, &none, "Not Found", now()), Verdict::Done);
        assert_eq!(classify(502, &none, "", now()), Verdict::Retry(None));
        assert_eq!(
            classify(503, &headers(&[("retry-after", "3")]), "", now()),
            Verdict::Retry(Some(Duration::from_secs(3)))
        );
        // A missing permission is final.
        assert_eq!(
            classify(403, &none, "Resource not accessible by integration", now()),
            Verdict::Done
        );
        // Secondary rate limit with Retry-After.
        assert_eq!(
            classify(403, &headers(&[("retry-after", "1")]), "x", now()),
            Verdict::Retry(Some(Duration::from_secs(1)))
        );
        // Secondary without a header: at least a minute.
        assert_eq!(
            classify(
                403,
                &none,
                "You have exceeded a secondary rate limit. Please wait",
                now()
            ),
            Verdict::Retry(Some(Duration::from_secs(60)))
        );
        // Primary: until the reset.
        let reset = (NOW + 9).to_string();
        assert_eq!(
            classify(
                403,
                &headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset)
                ]),
                "API rate limit exceeded",
                now()
            ),
            Verdict::Retry(Some(Duration::from_secs(10)))
        );
        assert_eq!(
            classify(429, &none, "", now()),
            Verdict::Retry(Some(Duration::from_secs(60)))
        );
    }
}
