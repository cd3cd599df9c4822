//! The GitHub REST client: octocrab (its base URI for GITHUB_API_URL, Enterprise Server too; its
//! token auth; its request building), driven through its generic request methods with this
//! crate's retry policy, so every answer's status and headers (Retry-After,
//! x-ratelimit-reset) reach the policy before octocrab's error mapping could drop them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime};

use http::Method;
use http_body_util::BodyExt as _;
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::error::{GitHubError, error_message};
use super::retry::{RetryPolicy, Verdict, classify};
use crate::http::{CONNECT_TIMEOUT, USER_AGENT, chain};
use crate::redact::Redactor;
use crate::secret::Secret;

/// What a path segment or query value keeps unencoded: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment (environment names may hold spaces, refs slashes).
pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// A successful answer.
#[derive(Debug, Clone)]
pub(crate) struct ApiResponse {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

/// A GitHub client bound to one repository.
pub(crate) struct GitHub {
    octocrab: Octocrab,
    api_url: String,
    owner: String,
    repo: String,
    policy: RetryPolicy,
    calls: AtomicU32,
    retries: AtomicU32,
    /// Every request body passes through it on its way out (deployment payloads, statuses).
    redactor: Redactor,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.api_url)
            .field("repository", &format!("{}/{}", self.owner, self.repo))
            .finish_non_exhaustive()
    }
}

/// How a request failed before GitHub answered.
enum Failure {
    /// No connection was made: GitHub did not act.
    Connect(String),
    /// No answer in time: GitHub may have acted.
    Timeout(String),
    Other(String),
}

impl GitHub {
    /// A client for `repository` (`owner/name`) at `api_url`; every body it sends is redacted
    /// by `redactor` (the run's secrets).
    pub(crate) fn new(
        api_url: &str,
        token: Secret,
        repository: &str,
        policy: RetryPolicy,
        redactor: Redactor,
    ) -> Result<Self, GitHubError> {
        let api_url = api_url.trim_end_matches('/').to_string();
        let setup = |message: String| GitHubError::Setup {
            api_url: api_url.clone(),
            message,
        };
        let (owner, repo) = repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| setup(format!("repository {repository:?} is not owner/name")))?;
        let octocrab = Octocrab::builder()
            .base_uri(api_url.as_str())
            .map_err(|e| setup(chain(&e)))?
            .personal_token(token.expose().to_string())
            .add_header(http::header::USER_AGENT, USER_AGENT.to_string())
            .add_header(
                http::header::ACCEPT,
                "application/vnd.github+json".to_string(),
            )
            // Retries are this crate's: octocrab's own would retry blindly, creations included.
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(policy.request_timeout))
            .build()
            .map_err(|e| setup(chain(&e)))?;
        Ok(Self {
            octocrab,
            api_url,
            owner: owner.to_string(),
            repo: repo.to_string(),
            policy,
            calls: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            redactor,
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

    /// `/repos/{owner}/{repo}{rest}`, relative to the API URL (octocrab's base URI).
    fn repo_path(&self, rest: &str) -> String {
        format!(
            "/repos/{}/{}{rest}",
            encode(&self.owner),
            encode(&self.repo)
        )
    }

    /// The full URL a repository path is sent to.
    #[cfg(test)]
    fn repo_url(&self, rest: &str) -> String {
        format!("{}{}", self.api_url, self.repo_path(rest))
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

    /// PATCH JSON onto a repository path (an update: sending it twice is harmless).
    pub(crate) async fn patch(
        &self,
        rest: &str,
        body: &Value,
        what: &str,
        permission: &'static str,
    ) -> Result<ApiResponse, GitHubError> {
        self.send(Method::PATCH, rest, &[], Some(body), what, permission, true)
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

    /// One exchange through octocrab: status, headers and body text, within the request timeout.
    async fn exchange(
        &self,
        method: &Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<(u16, http::HeaderMap, String), Failure> {
        let request = self
            .octocrab
            .build_request(
                http::Request::builder().method(method.clone()).uri(uri),
                body,
            )
            .map_err(|e| Failure::Other(chain(&e)))?;
        let call = async {
            let resp = self.octocrab.execute(request).await.map_err(|e| {
                let message = chain(&e);
                if refused(&e) {
                    Failure::Connect(message)
                } else if timed_out(&e) {
                    Failure::Timeout(message)
                } else {
                    Failure::Other(message)
                }
            })?;
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| Failure::Other(chain(&e)))?
                .to_bytes();
            Ok((
                parts.status.as_u16(),
                parts.headers,
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        };
        match tokio::time::timeout(self.policy.request_timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout(format!(
                "no answer within {}",
                humantime::format_duration(self.policy.request_timeout)
            ))),
        }
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
        // The one place every request body leaves from: no secret goes with it.
        let body = body.map(|b| self.redactor.json(b));
        let body = body.as_ref();
        let mut uri = self.repo_path(rest);
        for (n, (k, v)) in query.iter().enumerate() {
            uri.push(if n == 0 { '?' } else { '&' });
            uri.push_str(&format!("{}={}", encode(k), encode(v)));
        }
        let retry = self.policy.retry();
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%method, url = %format!("{}{uri}", self.api_url), attempt, "GitHub API call");
            let transport = |message: String| GitHubError::Transport {
                what: what.to_string(),
                message,
            };
            let (status, headers, text) = match self.exchange(&method, &uri, body).await {
                Ok(answer) => answer,
                Err(failure) => {
                    // The network, not GitHub: retried like a 5xx when GitHub cannot have acted
                    // (no connection) or when acting twice is harmless.
                    let retryable = match failure {
                        Failure::Connect(_) => true,
                        Failure::Timeout(_) => idempotent,
                        Failure::Other(_) => false,
                    };
                    let (Failure::Connect(m) | Failure::Timeout(m) | Failure::Other(m)) = failure;
                    if retryable && let Some(wait) = retry.next_wait(started, attempt, None) {
                        tracing::warn!("{what}: {m}; retrying in {wait:?}");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(transport(m));
                }
            };
            let message = error_message(&text);
            let verdict = match classify(status, &headers, &message, SystemTime::now()) {
                Verdict::Retry(_) if !idempotent && status >= 500 => Verdict::Done,
                v => v,
            };
            if let Verdict::Retry(hint) = verdict {
                match retry.next_wait(started, attempt, hint) {
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
            return answer(status, &text, message, what, permission);
        }
    }
}

/// A final answer as a result.
fn answer(
    status: u16,
    text: &str,
    message: String,
    what: &str,
    permission: &'static str,
) -> Result<ApiResponse, GitHubError> {
    let what = what.to_string();
    match status {
        200..=299 => {
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(text).map_err(|e| GitHubError::Decode {
                    what,
                    message: e.to_string(),
                })?
            };
            Ok(ApiResponse { status, body })
        }
        401 => Err(GitHubError::Unauthorized { what, message }),
        403 => Err(GitHubError::Permission {
            what,
            permission,
            status,
            message,
        }),
        _ => Err(GitHubError::Status {
            what,
            status,
            message,
        }),
    }
}

/// The errors under `e`, outermost first.
fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// True when no connection was made (refused, unreachable, DNS): GitHub did not act.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    sources(e).any(|s| {
        s.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|h| h.is_connect())
            || s.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// True when the connection or the answer took too long.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    sources(e).any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || s.is::<tokio::time::error::Elapsed>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(api_url: &str) -> GitHub {
        GitHub::new(
            api_url,
            Secret::new("t0ken"),
            "acme/trader",
            RetryPolicy::default(),
            Redactor::default(),
        )
        .unwrap()
    }

    // octocrab's client spawns its buffer worker: it is built inside the runtime, as in a run.
    #[tokio::test]
    async fn repository_urls_and_secrets() {
        let gh = client("http://127.0.0.1:1/");
        assert_eq!(
            gh.repo_url("/environments/prod"),
            "http://127.0.0.1:1/repos/acme/trader/environments/prod"
        );
        assert!(!format!("{gh:?}").contains("t0ken"));
        let r = Redactor::default();
        assert!(GitHub::new("x", Secret::new("t"), "acme", RetryPolicy::default(), r).is_err());
    }

    #[tokio::test]
    async fn enterprise_server_api_url_is_kept_whole() {
        assert_eq!(
            client("https://ghe.example.com/api/v3/").repo_url("/actions/runs/7/approvals"),
            "https://ghe.example.com/api/v3/repos/acme/trader/actions/runs/7/approvals"
        );
    }

    /// Every body leaves through `send`, which redacts it: a status description quoting an
    /// error that quotes a secret reaches GitHub without the secret.
    #[tokio::test]
    async fn request_bodies_are_redacted_on_their_way_out() {
        let (api, got) = crate::http::test_server::once(201, "{\"id\":1}").await;
        let redactor = Redactor::default();
        redactor.add("canary-9f3a-secret");
        let gh = GitHub::new(
            &api,
            Secret::new("t0ken"),
            "acme/trader",
            RetryPolicy::default(),
            redactor,
        )
        .unwrap();
        let body = serde_json::json!({
            "state": "error",
            "description": "Deploying v1 failed: password canary-9f3a-secret rejected",
        });
        gh.post(
            "/deployments/1/statuses",
            &body,
            "report a status",
            "deployments: write",
        )
        .await
        .unwrap();
        let request = got.await.unwrap();
        let (_, body) = request.split_once("\r\n\r\n").unwrap();
        let sent: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            sent["description"],
            "Deploying v1 failed: password *** rejected"
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("prod eu/1"), "prod%20eu%2F1");
        assert_eq!(encode("prod-1.a_b~"), "prod-1.a_b~");
    }
}
