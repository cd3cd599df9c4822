//! The distribution-API client: HEAD on a manifest for its digest, through the crate's HTTP
//! client, answering the registry's challenge, and retrying transient failures (the network,
//! 429 and 5xx) with the shared `crate::http::Retry`, waiting as `Retry-After` asks on 429/503.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, WWW_AUTHENTICATE};

use super::auth::{Auth, parse_challenge};
use super::reference::ImageRef;
use super::{HostCredentials, RegistryError};
use crate::http::{Backoff, Retry};
use crate::runner::Runner;
use crate::secret::Secret;

/// The manifest media types asked for: OCI and Docker, single-platform and multi-platform.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per image when the registry fails transiently.
pub(crate) const ATTEMPTS: u32 = 3;
/// The pause before attempt n+1 is n × this (unless the registry says how long in `Retry-After`).
pub(crate) const RETRY_DELAY: Duration = Duration::from_millis(500);

/// A distribution-API client: one HTTP client, credentials per registry host, a token cache.
pub struct Registry {
    pub(super) http: reqwest::Client,
    pub(super) credentials: HostCredentials,
    pub(super) runner: Runner,
    /// Bearer tokens by (registry, pull scope).
    pub(super) tokens: Mutex<HashMap<(String, String), Secret>>,
    /// (registry, realm host) pairs already warned about: credentials withheld from the realm.
    pub(super) warned: Mutex<HashSet<(String, String)>>,
}

impl Registry {
    /// A client; tokens it obtains are masked through `runner` before anything could log them.
    pub fn new(credentials: HostCredentials, runner: &Runner) -> Result<Registry, RegistryError> {
        let http = crate::http::client(Some(REQUEST_TIMEOUT)).map_err(RegistryError::Client)?;
        Ok(Registry {
            http,
            credentials,
            runner: runner.clone(),
            tokens: Mutex::default(),
            warned: Mutex::default(),
        })
    }

    fn accept() -> String {
        MANIFEST_MEDIA_TYPES.join(", ")
    }

    /// HEAD the manifest of `image`; returns its digest, or why it cannot be had. Transient
    /// failures (connection errors, timeouts, 429 and 5xx answers) are tried again, at most
    /// [`ATTEMPTS`] times in all, [`RETRY_DELAY`] × the attempt number apart, or as long as a
    /// 429 or 503 asked in `Retry-After` (when that fits in the time budget).
    pub async fn manifest_digest(&self, image: &ImageRef) -> Result<String, RegistryError> {
        let retry = Retry {
            max_attempts: ATTEMPTS,
            max_total: REQUEST_TIMEOUT * ATTEMPTS * 2,
            base: RETRY_DELAY,
            backoff: Backoff::Linear,
            cap: RETRY_DELAY * ATTEMPTS,
        };
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match self.manifest_digest_once(image).await {
                Err(e) if e.is_transient() => {
                    let Some(wait) = retry.next_wait(started, attempt, e.retry_after()) else {
                        return Err(e);
                    };
                    self.runner.info(&format!(
                        "attempt {attempt} of {ATTEMPTS} failed, trying again: {e}"
                    ));
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn manifest_digest_once(&self, image: &ImageRef) -> Result<String, RegistryError> {
        let url = image.manifest_url();
        let cached = self.cached_token(image);
        let resp = self
            .head(image, &url, cached.as_ref().map(Auth::Bearer))
            .await?;
        let resp = if resp.status() == StatusCode::UNAUTHORIZED {
            let header = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let challenge = parse_challenge(&header);
            match challenge.as_ref().map(|c| c.scheme.as_str()) {
                Some("bearer") => {
                    let challenge = challenge.expect("matched Some");
                    let token = self.token(image, &challenge).await?;
                    self.head(image, &url, Some(Auth::Bearer(&token))).await?
                }
                Some("basic") if self.credentials.get(&image.registry).is_some() => {
                    self.head(image, &url, Some(Auth::Basic)).await?
                }
                Some("basic") => resp,
                _ => {
                    return Err(RegistryError::Challenge {
                        reference: image.reference.clone(),
                        url,
                        challenge: header,
                    });
                }
            }
        } else {
            resp
        };
        let status = resp.status();
        match status {
            s if s.is_success() => {
                digest_of(resp.headers()).ok_or_else(|| RegistryError::NoDigest {
                    reference: image.reference.clone(),
                    url,
                    got: resp
                        .headers()
                        .get("docker-content-digest")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                })
            }
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                reference: image.reference.clone(),
                registry: image.registry.clone(),
                tag: image.tag.clone(),
                url,
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Denied {
                reference: image.reference.clone(),
                registry: image.registry.clone(),
                status: status.as_u16(),
                detail: if self.credentials.get(&image.registry).is_some() {
                    format!(" (credentials for {} were given)", image.registry)
                } else {
                    String::new()
                },
            }),
            s => Err(RegistryError::Status {
                reference: image.reference.clone(),
                url,
                status: s.as_u16(),
                detail: String::new(),
                // A registry that is rate limiting or briefly down may say when to come back.
                retry_after: matches!(
                    s,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                )
                .then(|| crate::http::retry_after(resp.headers(), SystemTime::now()))
                .flatten(),
            }),
        }
    }

    async fn head(
        &self,
        image: &ImageRef,
        url: &str,
        auth: Option<Auth<'_>>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut req = self.http.head(url).header(ACCEPT, Self::accept());
        match auth {
            Some(Auth::Bearer(t)) => req = req.bearer_auth(t.expose()),
            Some(Auth::Basic) => {
                if let Some(c) = self.credentials.get(&image.registry) {
                    req = req.basic_auth(&c.username, Some(c.password.expose()));
                }
            }
            None => {}
        }
        req.send().await.map_err(|source| RegistryError::Request {
            reference: image.reference.clone(),
            url: url.to_string(),
            source: source.without_url(),
        })
    }
}

/// The `Docker-Content-Digest` header, when it is a well-formed `algorithm:hex` digest.
fn digest_of(headers: &HeaderMap) -> Option<String> {
    let d = headers.get("docker-content-digest")?.to_str().ok()?.trim();
    let (alg, hex) = d.split_once(':')?;
    let ok = matches!(alg, "sha256" | "sha512")
        && hex.len() >= 32
        && hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    ok.then(|| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_must_be_well_formed() {
        let mut h = HeaderMap::new();
        assert_eq!(digest_of(&h), None);
        let good = format!("sha256:{}", "ab12".repeat(16));
        h.insert("docker-content-digest", good.parse().unwrap());
        assert_eq!(digest_of(&h), Some(good));
        h.insert("docker-content-digest", "sha256:xyz".parse().unwrap());
        assert_eq!(digest_of(&h), None);
        h.insert(
            "docker-content-digest",
            "md5:0123456789abcdef0123456789abcdef".parse().unwrap(),
        );
        assert_eq!(digest_of(&h), None);
    }
}
