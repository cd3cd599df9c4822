//! The crate's one HTTP stack: the client every caller builds (user agent, timeouts, rustls) and
//! the retry rule they share (bounded attempts and time, exponential or linear backoff,
//! `Retry-After` and `x-ratelimit-reset`); each caller keeps its own rules on top.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

/// The user agent of every request the action sends.
pub(crate) const USER_AGENT: &str = concat!("trader-deploy/", env!("CARGO_PKG_VERSION"));

/// How long establishing a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client with the crate's user agent, connect timeout and rustls; `request_timeout` bounds
/// one whole exchange (None: the caller bounds it).
pub(crate) fn client(request_timeout: Option<Duration>) -> reqwest::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(t) = request_timeout {
        b = b.timeout(t);
    }
    b.build()
}

/// [`client`], also trusting the certificates of `extra_roots_pem` (a PEM bundle, e.g. the file
/// `SSL_CERT_FILE` names) besides the bundled roots.
pub(crate) fn client_trusting(
    request_timeout: Option<Duration>,
    extra_roots_pem: Option<&[u8]>,
) -> reqwest::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(t) = request_timeout {
        b = b.timeout(t);
    }
    if let Some(pem) = extra_roots_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem)? {
            b = b.add_root_certificate(cert);
        }
    }
    b.build()
}

/// How the pause between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backoff {
    /// base × 2^(n-1) before attempt n+1.
    Exponential,
    /// base × n before attempt n+1.
    Linear,
}

/// How hard to try one request: attempts, wall time, and the pause between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Attempts, the first included.
    pub(crate) max_attempts: u32,
    /// Wall time all attempts may take, waits included.
    pub(crate) max_total: Duration,
    /// The first pause.
    pub(crate) base: Duration,
    pub(crate) backoff: Backoff,
    /// No pause is longer than this.
    pub(crate) cap: Duration,
}

impl Retry {
    /// The pause after failed attempt `attempt` (1-based).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        let d = match self.backoff {
            Backoff::Exponential => self.base * (1u32 << (n - 1).min(6)),
            Backoff::Linear => self.base * n,
        };
        d.min(self.cap)
    }

    /// The wait before the next attempt (`wait`, or the backoff when None), or None when the
    /// attempts or the time are spent.
    pub(crate) fn next_wait(
        &self,
        started: Instant,
        attempt: u32,
        wait: Option<Duration>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let wait = wait.unwrap_or_else(|| self.delay(attempt));
        let left = self.max_total.checked_sub(started.elapsed())?;
        (wait < left).then_some(wait)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Retry-After`: delay-seconds or an HTTP-date, as a wait from `now`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    parse_retry_after(header(headers, "retry-after")?, now)
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110), as a wait from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// With `x-ratelimit-remaining: 0`, the wait until `x-ratelimit-reset` (epoch seconds) plus a
/// second; a minute when the reset is not given.
pub(crate) fn rate_limit_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if header(headers, "x-ratelimit-remaining") != Some("0") {
        return None;
    }
    let reset = header(headers, "x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok());
    Some(match reset {
        Some(reset) => {
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            Duration::from_secs(reset.saturating_sub(now) + 1)
        }
        None => Duration::from_secs(60),
    })
}

/// An error and its sources, `: `-joined (reqwest's and hyper's Display stop at the outermost).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// A one-shot HTTP server for unit tests of the callers of this stack.
#[cfg(test)]
pub(crate) mod test_server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Listens on 127.0.0.1, answers the first request (read to its Content-Length) with `status`
    /// and the JSON `body`, and hands back that request, head and body, as text. Returns the
    /// server's base URL (`http://127.0.0.1:<port>`).
    pub(crate) async fn once(
        status: u16,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, got)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if got.len() >= len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf).to_string()
        });
        (url, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    const NOW: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now()),
            None
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", " 3 ")]), now()),
            Some(Duration::from_secs(3))
        );
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any value: no panic.
        #[test]
        fn retry_after_never_panics(value in "\\PC{0,40}", at in 0u64..4_000_000_000) {
            let _ = parse_retry_after(&value, UNIX_EPOCH + Duration::from_secs(at));
        }

        /// delay-seconds read back as themselves, whatever the spaces around them.
        #[test]
        fn seconds_round_trip(secs in any::<u64>(), pad in " {0,3}") {
            prop_assert_eq!(
                parse_retry_after(&format!("{pad}{secs}{pad}"), now()),
                Some(Duration::from_secs(secs))
            );
        }

        /// An HTTP-date (IMF-fixdate) in the future is the wait until it; in the past, none.
        #[test]
        fn dates_round_trip(offset in -1_000_000i64..1_000_000) {
            let at = UNIX_EPOCH + Duration::from_secs(NOW.saturating_add_signed(offset));
            let want = Duration::from_secs(offset.max(0) as u64);
            prop_assert_eq!(parse_retry_after(&httpdate::fmt_http_date(at), now()), Some(want));
        }
    }

    #[test]
    fn rate_limit_waits_for_the_reset() {
        let reset = (NOW + 9).to_string();
        assert_eq!(
            rate_limit_wait(
                &headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset)
                ]),
                now()
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            rate_limit_wait(&headers(&[("x-ratelimit-remaining", "0")]), now()),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(&headers(&[("x-ratelimit-remaining", "7")]), now()),
            None
        );
    }

    #[test]
    fn backoff_is_bounded_and_the_budget_stops_retries() {
        let r = Retry {
            max_attempts: 3,
            max_total: Duration::from_secs(5),
            base: Duration::from_millis(500),
            backoff: Backoff::Exponential,
            cap: Duration::from_secs(30),
        };
        assert_eq!(r.delay(1), Duration::from_millis(500));
        assert_eq!(r.delay(3), Duration::from_secs(2));
        assert_eq!(r.delay(40), Duration::from_secs(30));
        let lin = Retry {
            backoff: Backoff::Linear,
            ..r
        };
        assert_eq!(lin.delay(3), Duration::from_millis(1500));
        let t = Instant::now();
        assert_eq!(
            r.next_wait(t, 1, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(r.next_wait(t, 1, None), Some(Duration::from_millis(500)));
        assert_eq!(r.next_wait(t, 3, Some(Duration::from_secs(1))), None);
        assert_eq!(r.next_wait(t, 1, Some(Duration::from_secs(60))), None);
    }
}
