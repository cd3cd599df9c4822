//! The GitHub REST client: GITHUB_API_URL (Enterprise Server too), the token (never logged),
//! bounded retries on 5xx and rate limits (honouring Retry-After and x-ratelimit-reset), and
//! errors that name the permission a token lacks.
//!
//! Built on reqwest rather than octocrab: octocrab's errors drop the response headers, so its
//! callers cannot honour `Retry-After` / `x-ratelimit-reset`, its retry layer retries blindly,
//! and it has no typed route for the run approvals endpoint. Every call here is a plain JSON
//! request, which reqwest does with the same rustls stack.

pub(crate) mod approval;
pub(crate) mod deployments;
pub(crate) mod session;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::secret::Secret;

/// REST API version sent with every request.
pub(crate) const API_VERSION: &str = "2022-11-28";

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

/// A failed GitHub API call. Every variant says what was being attempted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitHubError {
    #[error(
        "failed to {what}: the token lacks the `{permission}` permission (GitHub answered {status}: \
         {message}); grant it in the workflow: `permissions: {{ {permission} }}`"
    )]
    Permission {
        what: String,
        permission: &'static str,
        status: u16,
        message: String,
    },
    #[error(
        "failed to {what}: the token was rejected (GitHub answered 401: {message}); check the `github_token` input"
    )]
    Unauthorized { what: String, message: String },
    #[error("failed to {what}: GitHub answered {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error(
        "failed to {what}: gave up after {attempts} attempt(s) in {:.1}s; last answer: {last}",
        elapsed.as_secs_f64()
    )]
    Exhausted {
        what: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    // The reqwest error is in the message, not a `source`, so `{:#}` prints it once.
    #[error("failed to {what}: {message}")]
    Transport { what: String, message: String },
    #[error("failed to {what}: the answer is not the JSON GitHub documents: {message}")]
    Decode { what: String, message: String },
    #[error("failed to build the GitHub client for {api_url}: {message}")]
    Setup { api_url: String, message: String },
}

impl GitHubError {
    /// The HTTP status GitHub answered, when the call got one.
    /// GitHub may have acted although the call failed (a 5xx, a lost connection).
    pub(crate) fn maybe_done(&self) -> bool {
        match self {
            GitHubError::Status { status, .. } => *status >= 500,
            GitHubError::Transport { .. } | GitHubError::Exhausted { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            GitHubError::Permission { status, .. } | GitHubError::Status { status, .. } => {
                Some(*status)
            }
            GitHubError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub(crate) struct ApiResponse {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

/// A GitHub client bound to one repository.
pub(crate) struct GitHub {
    http: reqwest::Client,
    api_url: String,
    token: Secret,
    owner: String,
    repo: String,
    policy: RetryPolicy,
    calls: AtomicU32,
    retries: AtomicU32,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.api_url)
            .field("repository", &format!("{}/{}", self.owner, self.repo))
            .finish_non_exhaustive()
    }
}

impl GitHub {
    /// A client for `repository` (`owner/name`) at `api_url`.
    pub(crate) fn new(
        api_url: &str,
        token: Secret,
        repository: &str,
        policy: RetryPolicy,
    ) -> Result<Self, GitHubError> {
        let api_url = api_url.trim_end_matches('/').to_string();
        let (owner, repo) = repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| GitHubError::Setup {
                api_url: api_url.clone(),
                message: format!("repository {repository:?} is not owner/name"),
            })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("trader-deploy/", env!("CARGO_PKG_VERSION")))
            .timeout(policy.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| GitHubError::Setup {
                api_url: api_url.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            http,
            api_url,
            token,
            owner: owner.to_string(),
            repo: repo.to_string(),
            policy,
            calls: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        })
    }

    /// `owner/name`.
    pub(crate) fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    /// HTTP requests sent so far (retries included).
    pub(crate) fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Requests that were retries.
    pub(crate) fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// `{api}/repos/{owner}/{repo}{rest}`.
    fn repo_url(&self, rest: &str) -> String {
        format!(
            "{}/repos/{}/{}{rest}",
            self.api_url,
            encode(&self.owner),
            encode(&self.repo)
        )
    }

    /// GET a repository path (`/environments/prod`), with query pairs.
    pub(crate) async fn get(
        &self,
        rest: &str,
        query: &[(&str, String)],
        what: &str,
        permission: &'static str,
    ) -> Result<ApiResponse, GitHubError> {
        self.send(Method::GET, rest, query, None, what, permission, true)
            .await
    }

    /// POST JSON to a repository path.
    pub(crate) async fn post(
        &self,
        rest: &str,
        body: &Value,
        what: &str,
        permission: &'static str,
    ) -> Result<ApiResponse, GitHubError> {
        self.send(Method::POST, rest, &[], Some(body), what, permission, true)
            .await
    }

    /// POST that creates something: a 5xx or a timeout may hide a success, so they are not
    /// retried here (the caller checks before trying again); rate limits and refused connections
    /// are, as GitHub did not act on those.
    pub(crate) async fn create(
        &self,
        rest: &str,
        body: &Value,
        what: &str,
        permission: &'static str,
    ) -> Result<ApiResponse, GitHubError> {
        self.send(Method::POST, rest, &[], Some(body), what, permission, false)
            .await
    }

    /// One API call with bounded retries. `permission` is what a 403 means the token lacks;
    /// `idempotent` allows retrying 5xx answers and timeouts.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        method: Method,
        rest: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        what: &str,
        permission: &'static str,
        idempotent: bool,
    ) -> Result<ApiResponse, GitHubError> {
        let url = self.repo_url(rest);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.token.expose())
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", API_VERSION);
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            tracing::debug!(%method, %url, attempt, "GitHub API call");
            let (status, headers, text) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.text().await {
                        Ok(t) => (status, headers, t),
                        Err(e) => {
                            return Err(GitHubError::Transport {
                                what: what.to_string(),
                                message: chain(&e.without_url()),
                            });
                        }
                    }
                }
                Err(e) if e.is_connect() || (idempotent && e.is_timeout()) => {
                    // The network, not GitHub: retry like a 5xx.
                    let wait = backoff(self.policy.base_backoff, attempt);
                    if let Some(wait) = self.budget(started, attempt, wait) {
                        tracing::warn!("{what}: {e}; retrying in {wait:?}");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(GitHubError::Transport {
                        what: what.to_string(),
                        message: chain(&e.without_url()),
                    });
                }
                Err(e) => {
                    return Err(GitHubError::Transport {
                        what: what.to_string(),
                        message: chain(&e.without_url()),
                    });
                }
            };
            let message = error_message(&text);
            let verdict = match classify(status, &headers, &message, SystemTime::now()) {
                Verdict::Retry(_) if !idempotent && status >= 500 => Verdict::Done,
                v => v,
            };
            match verdict {
                Verdict::Done => {}
                Verdict::Retry(hint) => {
                    let wait = hint.unwrap_or_else(|| backoff(self.policy.base_backoff, attempt));
                    match self.budget(started, attempt, wait) {
                        Some(wait) => {
                            tracing::warn!(
                                "{what}: GitHub answered {status} ({message}); retrying in {wait:?}"
                            );
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        None => {
                            return Err(GitHubError::Exhausted {
                                what: what.to_string(),
                                attempts: attempt,
                                elapsed: started.elapsed(),
                                last: match hint {
                                    Some(h) => format!(
                                        "{status} {message} (asked to wait {}s, beyond the retry budget)",
                                        h.as_secs()
                                    ),
                                    None => format!("{status} {message}"),
                                },
                            });
                        }
                    }
                }
            }
            return match status {
                200..=299 => {
                    let body = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).map_err(|e| GitHubError::Decode {
                            what: what.to_string(),
                            message: e.to_string(),
                        })?
                    };
                    Ok(ApiResponse { status, body })
                }
                401 => Err(GitHubError::Unauthorized {
                    what: what.to_string(),
                    message,
                }),
                403 => Err(GitHubError::Permission {
                    what: what.to_string(),
                    permission,
                    status,
                    message,
                }),
                _ => Err(GitHubError::Status {
                    what: what.to_string(),
                    status,
                    message,
                }),
            };
        }
    }

    /// The wait to do before the next attempt, or None when the attempts or the time are spent.
    fn budget(&self, started: Instant, attempt: u32, wait: Duration) -> Option<Duration> {
        if attempt >= self.policy.max_attempts {
            return None;
        }
        let left = self.policy.max_total.checked_sub(started.elapsed())?;
        (wait < left).then_some(wait)
    }
}

/// An error and its sources, `: `-joined (reqwest's own Display stops at "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
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

/// Exponential backoff: base × 2^(attempt-1), at most 30 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(6);
    (base * factor).min(Duration::from_secs(30))
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
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let retry_after = header("retry-after").and_then(|v| parse_retry_after(v, now));
    match status {
        500..=599 => Verdict::Retry(retry_after),
        403 | 429 => {
            if retry_after.is_some() {
                return Verdict::Retry(retry_after);
            }
            if header("x-ratelimit-remaining").map(str::trim) == Some("0") {
                let reset = header("x-ratelimit-reset")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|reset| {
                        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                        Duration::from_secs(reset.saturating_sub(now) + 1)
                    });
                return Verdict::Retry(reset.or(Some(Duration::from_secs(60))));
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

/// `Retry-After`: delay-seconds or an HTTP-date (IMF-fixdate), as a wait from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo as i64 + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (*h * 3600 + *m * 60 + *sec) as i64;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// GitHub's error `message` (plus its first error detail), else the start of the body.
fn error_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let detail = v
                .pointer("/errors/0/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    v.pointer("/errors/0")
                        .filter(|e| e.is_object())
                        .map(|e| e.to_string())
                });
            match (msg.is_empty(), detail) {
                (false, Some(d)) => format!("{msg} ({d})"),
                (false, None) => msg,
                (true, _) => truncate(text, 200),
            }
        }
        Err(_) => truncate(text.trim(), 200),
    }
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Percent-encodes one path segment (environment names may hold spaces).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

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

    const NOW: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
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
    }

    #[test]
    fn http_date_matches_epoch_arithmetic() {
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Sun, 22 Nov 2026 19:29:30 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_795_375_770))
        );
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

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(
                r#"{"message":"Validation Failed","errors":[{"resource":"DeploymentStatus","field":"state","code":"invalid"}]}"#
            ),
            r#"Validation Failed ({"code":"invalid","field":"state","resource":"DeploymentStatus"})"#
        );
        assert_eq!(error_message(r#"{"message":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn backoff_is_bounded() {
        let b = Duration::from_millis(500);
        assert_eq!(backoff(b, 1), Duration::from_millis(500));
        assert_eq!(backoff(b, 3), Duration::from_secs(2));
        assert_eq!(backoff(b, 40), Duration::from_secs(30));
    }

    #[test]
    fn budget_stops_retries() {
        let gh = GitHub::new(
            "http://127.0.0.1:1/",
            Secret::new("t0ken"),
            "acme/trader",
            RetryPolicy {
                max_attempts: 3,
                max_total: Duration::from_secs(5),
                ..RetryPolicy::default()
            },
        )
        .unwrap();
        let t = Instant::now();
        assert_eq!(
            gh.budget(t, 1, Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(gh.budget(t, 3, Duration::from_secs(1)), None);
        assert_eq!(gh.budget(t, 1, Duration::from_secs(60)), None);
        assert_eq!(
            gh.repo_url("/environments/prod"),
            "http://127.0.0.1:1/repos/acme/trader/environments/prod"
        );
        assert!(!format!("{gh:?}").contains("t0ken"));
        assert!(GitHub::new("x", Secret::new("t"), "acme", RetryPolicy::default()).is_err());
    }

    #[test]
    fn enterprise_server_api_url_is_kept_whole() {
        let gh = GitHub::new(
            "https://ghe.example.com/api/v3/",
            Secret::new("t0ken"),
            "acme/trader",
            RetryPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            gh.repo_url("/actions/runs/7/approvals"),
            "https://ghe.example.com/api/v3/repos/acme/trader/actions/runs/7/approvals"
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("prod eu/1"), "prod%20eu%2F1");
        assert_eq!(encode("prod-1.a_b"), "prod-1.a_b");
    }
}
