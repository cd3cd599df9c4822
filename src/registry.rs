//! Image verification before the upgrade: every resolved image reference is looked up in its
//! registry through the OCI distribution API (HEAD on the manifest), with bearer-token auth as
//! ghcr.io and Docker Hub do it, Basic from optional credentials, anonymous otherwise; and the
//! digests found, for reporting and optional pinning (`repository@sha256:…`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::http::{Backoff, Retry};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, WWW_AUTHENTICATE};

use crate::inputs::{Config, ImageSetting};
use crate::runner::Runner;
use crate::secret::Secret;

/// Docker Hub's registry host, where short names (`acme/x`, `x`) live.
pub(crate) const DOCKER_HUB: &str = "registry-1.docker.io";

/// The manifest media types asked for: OCI and Docker, single-platform and multi-platform.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per image when the registry fails transiently.
pub(crate) const ATTEMPTS: u32 = 3;
/// The pause before attempt n+1 is n × this.
pub(crate) const RETRY_DELAY: Duration = Duration::from_millis(500);

/// A failure to verify an image. Every message names the image reference.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("image reference {reference:?} is not valid: {message}")]
    BadReference { reference: String, message: String },
    #[error(
        "image {reference} does not exist: registry {registry} has no manifest for tag {tag:?} \
         (HEAD {url} answered 404)"
    )]
    NotFound {
        reference: String,
        registry: String,
        tag: String,
        url: String,
    },
    #[error(
        "failed to verify image {reference}: registry {registry} denied access (HTTP {status}); \
         the repository may not exist or may need registry_username/registry_password{detail}"
    )]
    Denied {
        reference: String,
        registry: String,
        status: u16,
        detail: String,
    },
    #[error("failed to verify image {reference}: request to {url} failed: {source}")]
    Request {
        reference: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("failed to verify image {reference}: {url} answered HTTP {status}{detail}")]
    Status {
        reference: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("failed to get a registry token for image {reference} from {realm}: {message}")]
    Token {
        reference: String,
        realm: String,
        message: String,
    },
    #[error(
        "failed to verify image {reference}: {url} asks for authentication this program does not \
         speak ({challenge:?})"
    )]
    Challenge {
        reference: String,
        url: String,
        challenge: String,
    },
    #[error(
        "failed to verify image {reference}: {url} reported no usable Docker-Content-Digest \
         ({got:?})"
    )]
    NoDigest {
        reference: String,
        url: String,
        got: String,
    },
    #[error("failed to build the registry HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("{} of {total} images failed verification:\n{}", .errors.len(), list(.errors))]
    Several {
        total: usize,
        errors: Vec<RegistryError>,
    },
}

fn list(errors: &[RegistryError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl RegistryError {
    /// True for failures worth another attempt: the network, timeouts, 429 and 5xx.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Request { .. } => true,
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// True when the failure is an image that does not exist (as opposed to an access problem).
    pub fn is_not_found(&self) -> bool {
        match self {
            RegistryError::NotFound { .. } => true,
            RegistryError::Several { errors, .. } => errors.iter().all(|e| e.is_not_found()),
            _ => false,
        }
    }
}

/// An image reference split the way the distribution API needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `repository:tag` as the user wrote it (the name in every message).
    pub(crate) reference: String,
    /// The repository as written, without tag (what a pinned reference keeps).
    pub(crate) repository: String,
    /// Registry host[:port] (Docker Hub short names → registry-1.docker.io).
    pub(crate) registry: String,
    /// Repository name inside the registry (`acme/x`; Docker Hub `x` → `library/x`).
    pub(crate) name: String,
    pub(crate) tag: String,
}

impl ImageRef {
    /// Parses a repository (as in the `images` input) and a tag.
    pub fn parse(repository: &str, tag: &str) -> Result<ImageRef, RegistryError> {
        let reference = format!("{repository}:{tag}");
        let bad = |message: &str| RegistryError::BadReference {
            reference: reference.clone(),
            message: message.to_string(),
        };
        if repository.is_empty() || repository.contains('@') || repository.contains("//") {
            return Err(bad("expected [host[:port]/]path without a digest"));
        }
        if !crate::names::is_image_tag(tag) {
            return Err(bad(
                "the tag is not a valid OCI tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})",
            ));
        }
        let (registry, name) = match crate::names::split_registry_host(repository) {
            Some((first, rest)) => {
                let host = match first {
                    "docker.io" | "index.docker.io" => DOCKER_HUB,
                    h => h,
                };
                let name = if host == DOCKER_HUB && !rest.contains('/') {
                    format!("library/{rest}")
                } else {
                    rest.to_string()
                };
                (host.to_string(), name)
            }
            None if repository.contains('/') => (DOCKER_HUB.to_string(), repository.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{repository}")),
        };
        if name.is_empty() || name.split('/').any(str::is_empty) {
            return Err(bad("the repository path is empty"));
        }
        Ok(ImageRef {
            reference,
            repository: repository.to_string(),
            registry,
            name,
            tag: tag.to_string(),
        })
    }

    /// `http` for a loopback registry (a local test registry), `https` for every other one.
    pub(crate) fn scheme(&self) -> &'static str {
        if is_loopback(&self.registry) {
            "http"
        } else {
            "https"
        }
    }

    /// The manifest URL: `<scheme>://<registry>/v2/<name>/manifests/<tag>`.
    pub(crate) fn manifest_url(&self) -> String {
        format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme(),
            self.registry,
            self.name,
            self.tag
        )
    }

    /// The reference pinned to a digest: `repository@sha256:…`.
    pub(crate) fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository)
    }
}

/// True for `localhost`, `127.x.y.z` and `[::1]`, with or without a port.
fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-cased scheme: `bearer`, `basic`.
    pub(crate) scheme: String,
    /// Parameters with lower-cased names (`realm`, `service`, `scope`, `error`).
    pub(crate) params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` value (RFC 7235: one or more challenges, by `http-auth`) such as
/// `Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"` and
/// picks the one to answer: Bearer when offered (it works without credentials), else the first.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let challenges = http_auth::parse_challenges(header.trim()).ok()?;
    let pick = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .or_else(|| challenges.first())?;
    Some(Challenge {
        scheme: pick.scheme.to_ascii_lowercase(),
        params: pick
            .params
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_unescaped()))
            .collect(),
    })
}

/// Registry credentials (the `registry_username` and `registry_password` inputs).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// The result of verifying one `images` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedImage {
    /// The helm key it is set to.
    pub(crate) key: String,
    /// `repository:tag`.
    pub reference: String,
    /// The manifest digest the registry reported (`sha256:…`).
    pub digest: String,
    /// What is deployed: `repository@digest` when pinning, else `repository:tag`.
    pub deploy: String,
}

/// A distribution-API client: one HTTP client, optional credentials, a token cache.
pub struct Registry {
    http: reqwest::Client,
    credentials: Option<Credentials>,
    runner: Runner,
    /// Bearer tokens by (registry, pull scope).
    tokens: Mutex<HashMap<(String, String), Secret>>,
}

impl Registry {
    /// A client; tokens it obtains are masked through `runner` before anything could log them.
    pub fn new(
        credentials: Option<Credentials>,
        runner: &Runner,
    ) -> Result<Registry, RegistryError> {
        let http = crate::http::client(Some(REQUEST_TIMEOUT)).map_err(RegistryError::Client)?;
        Ok(Registry {
            http,
            credentials,
            runner: runner.clone(),
            tokens: Mutex::default(),
        })
    }

    fn accept() -> String {
        MANIFEST_MEDIA_TYPES.join(", ")
    }

    /// HEAD the manifest of `image`; returns its digest, or why it cannot be had. Transient
    /// failures (connection errors, timeouts, 429 and 5xx answers) are tried again, at most
    /// [`ATTEMPTS`] times in all, [`RETRY_DELAY`] × the attempt number apart.
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
                    let Some(wait) = retry.next_wait(started, attempt, None) else {
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
                Some("basic") if self.credentials.is_some() => {
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
                detail: if self.credentials.is_some() {
                    " (credentials were sent)".into()
                } else {
                    String::new()
                },
            }),
            s => Err(RegistryError::Status {
                reference: image.reference.clone(),
                url,
                status: s.as_u16(),
                detail: String::new(),
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
                if let Some(c) = &self.credentials {
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

    fn cached_token(&self, image: &ImageRef) -> Option<Secret> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(&(image.registry.clone(), pull_scope(image)))
            .cloned()
    }

    /// Gets a bearer token for the challenge (with Basic credentials when configured).
    async fn token(&self, image: &ImageRef, ch: &Challenge) -> Result<Secret, RegistryError> {
        let realm = ch.params.get("realm").cloned().unwrap_or_default();
        let err = |message: String| RegistryError::Token {
            reference: image.reference.clone(),
            realm: realm.clone(),
            message,
        };
        let mut url = reqwest::Url::parse(&realm)
            .map_err(|e| err(format!("the challenge's realm is not a URL ({e})")))?;
        if url.scheme() != "https"
            && !(url.scheme() == "http" && url.host_str().is_some_and(is_loopback))
        {
            return Err(err(
                "the realm is not https (plain http only for loopback registries)".into(),
            ));
        }
        let service = ch.params.get("service").cloned().unwrap_or_default();
        let scope = ch
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| pull_scope(image));
        {
            let mut q = url.query_pairs_mut();
            if !service.is_empty() {
                q.append_pair("service", &service);
            }
            q.append_pair("scope", &scope);
        }
        let mut req = self.http.get(url);
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.username, Some(c.password.expose()));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| err(format!("request failed: {}", e.without_url())))?;
        let status = resp.status();
        if !status.is_success() {
            let hint = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                if self.credentials.is_some() {
                    ": the registry credentials were refused"
                } else {
                    ": anonymous access refused; set registry_username/registry_password"
                }
            } else {
                ""
            };
            return Err(err(format!("HTTP {}{hint}", status.as_u16())));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| err(format!("the answer is not JSON: {}", e.without_url())))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("the answer has no `token` or `access_token`".into()))?;
        self.runner.mask(token);
        let token = Secret::new(token);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((image.registry.clone(), pull_scope(image)), token.clone());
        Ok(token)
    }
}

enum Auth<'a> {
    Bearer(&'a Secret),
    Basic,
}

fn pull_scope(image: &ImageRef) -> String {
    format!("repository:{}:pull", image.name)
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

/// Verifies every image of `settings` at once (concurrently) and reports all failures together.
pub async fn verify(
    registry: &Registry,
    settings: &[ImageSetting],
    version: &str,
    pin: bool,
) -> Result<Vec<VerifiedImage>, RegistryError> {
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for s in settings {
        match ImageRef::parse(&s.repository, version) {
            Ok(r) => parsed.push((s, r)),
            Err(e) => errors.push(e),
        }
    }
    let results =
        futures::future::join_all(parsed.iter().map(|(_, r)| registry.manifest_digest(r))).await;
    let mut out = Vec::new();
    for ((s, r), res) in parsed.iter().zip(results) {
        match res {
            Ok(digest) => out.push(VerifiedImage {
                key: s.key.clone(),
                reference: r.reference.clone(),
                deploy: if pin {
                    r.pinned(&digest)
                } else {
                    r.reference.clone()
                },
                digest,
            }),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(out),
        1 if settings.len() == 1 => Err(errors.remove(0)),
        _ => Err(RegistryError::Several {
            total: settings.len(),
            errors,
        }),
    }
}

/// The pipeline's step: verifies the configured images (when `verify_images` or `pin_digests`
/// is on), logs each, and returns them (empty when verification is off or there are no images).
pub(crate) async fn verify_config(
    config: &Config,
    runner: &Runner,
) -> Result<Vec<VerifiedImage>, RegistryError> {
    if config.images.is_empty() || !(config.verify_images || config.pin_digests) {
        return Ok(Vec::new());
    }
    let credentials = config
        .registry_username
        .as_ref()
        .zip(config.registry_password.as_ref())
        .map(|(u, p)| Credentials {
            username: u.clone(),
            password: p.clone(),
        });
    let registry = Registry::new(credentials, runner)?;
    let verified = verify(
        &registry,
        &config.images,
        &config.version,
        config.pin_digests,
    )
    .await?;
    for v in &verified {
        runner.info(&format!("{} = {} ({})", v.key, v.deploy, v.digest));
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_registry_and_name() {
        let r = ImageRef::parse("ghcr.io/acme/python-orch", "v1.2.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str(), r.tag.as_str()),
            ("ghcr.io", "acme/python-orch", "v1.2.0")
        );
        assert_eq!(
            r.manifest_url(),
            "https://ghcr.io/v2/acme/python-orch/manifests/v1.2.0"
        );
        assert_eq!(r.reference, "ghcr.io/acme/python-orch:v1.2.0");
        assert_eq!(
            r.pinned("sha256:abc"),
            "ghcr.io/acme/python-orch@sha256:abc"
        );

        let r = ImageRef::parse("acme/x", "v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            (DOCKER_HUB, "acme/x")
        );
        let r = ImageRef::parse("nginx", "1.27").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            (DOCKER_HUB, "library/nginx")
        );
        assert_eq!(
            r.manifest_url(),
            "https://registry-1.docker.io/v2/library/nginx/manifests/1.27"
        );
        let r = ImageRef::parse("docker.io/nginx", "1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            (DOCKER_HUB, "library/nginx")
        );
        let r = ImageRef::parse("index.docker.io/acme/y", "1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            (DOCKER_HUB, "acme/y")
        );
        assert_eq!(r.repository, "index.docker.io/acme/y");

        let r = ImageRef::parse("127.0.0.1:45000/acme/go-scanner", "sha-0123abcd").unwrap();
        assert_eq!(r.registry, "127.0.0.1:45000");
        assert_eq!(
            r.manifest_url(),
            "http://127.0.0.1:45000/v2/acme/go-scanner/manifests/sha-0123abcd"
        );
        let r = ImageRef::parse("localhost/a/b/c", "x").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            ("localhost", "a/b/c")
        );
        assert_eq!(r.scheme(), "http");
        let r = ImageRef::parse("my.registry:5000/a", "x").unwrap();
        assert_eq!(r.scheme(), "https");
    }

    #[test]
    fn bad_references_are_refused_with_the_reference() {
        for (repo, tag) in [
            ("", "v1"),
            ("ghcr.io/a@sha256:00", "v1"),
            ("ghcr.io/a", ""),
            ("ghcr.io/a", "-v1"),
            ("ghcr.io/a", "v1/2"),
            ("ghcr.io//a", "v1"),
            ("ghcr.io/", "v1"),
        ] {
            let e = ImageRef::parse(repo, tag).unwrap_err();
            assert!(
                e.to_string().contains(&format!("{repo}:{tag}")),
                "{e} should name {repo}:{tag}"
            );
        }
    }

    #[test]
    fn only_loopback_registries_get_plain_http() {
        for h in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "localhost.evil.com",
            "ghcr.io",
            "127.0.0.1.nip.io",
            "0.0.0.0",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn bearer_challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/x:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://ghcr.io/token");
        assert_eq!(c.params["service"], "ghcr.io");
        assert_eq!(c.params["scope"], "repository:acme/x:pull");

        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token", service="registry.docker.io", scope="repository:library/nginx:pull,push", error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/nginx:pull,push");
        assert_eq!(c.params["error"], "insufficient_scope");

        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");

        // Parameter names in any case, spaces around `=`, escapes. (A URL must be quoted: `/`
        // and `:` are not token characters, RFC 7235.)
        let c = parse_challenge(r#"Bearer Realm="https://x/token", Service = "a\"b""#).unwrap();
        assert_eq!(c.params["realm"], "https://x/token");
        assert_eq!(c.params["service"], "a\"b");

        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge("\"quoted\" x=y").is_none());
    }

    #[test]
    fn several_challenges_in_one_header_are_told_apart() {
        // Two challenges: the Bearer one is answered, with its own realm and service.
        let c = parse_challenge(r#"Basic realm="a", Bearer realm="https://t/token",service="s""#)
            .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://t/token");
        assert_eq!(c.params["service"], "s");
        let c = parse_challenge(r#"Basic realm="a", Digest realm="b", nonce="n""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params.len(), 1);
        assert_eq!(c.params["realm"], "a");
    }

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

    #[test]
    fn several_failures_list_every_reference() {
        let e = RegistryError::Several {
            total: 2,
            errors: vec![
                RegistryError::NotFound {
                    reference: "r/a:v9".into(),
                    registry: "r".into(),
                    tag: "v9".into(),
                    url: "http://r/v2/a/manifests/v9".into(),
                },
                RegistryError::NotFound {
                    reference: "r/b:v9".into(),
                    registry: "r".into(),
                    tag: "v9".into(),
                    url: "http://r/v2/b/manifests/v9".into(),
                },
            ],
        };
        let s = e.to_string();
        assert!(s.starts_with("2 of 2 images failed verification"), "{s}");
        assert!(
            s.contains("image r/a:v9 does not exist") && s.contains("r/b:v9"),
            "{s}"
        );
        assert!(e.is_not_found());
    }

    /// A loopback stand-in for a token-authenticated registry (ghcr.io and Docker Hub do not run
    /// here): the challenge → token → retry protocol, as the distribution spec describes it.
    mod auth_flow {
        use super::*;
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        const DIGEST: &str =
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        /// base64("user:pass")
        const BASIC: &str = "Basic dXNlcjpwYXNz";

        #[derive(Debug, Clone)]
        struct Seen {
            method: String,
            target: String,
            authorization: Option<String>,
            accept: Option<String>,
        }

        async fn serve() -> (String, Arc<Mutex<Vec<Seen>>>) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let host = listener.local_addr().unwrap().to_string();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (h, log) = (host.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut sock, _)) = listener.accept().await else {
                        return;
                    };
                    let (h, log) = (h.clone(), log.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let text = String::from_utf8_lossy(&buf).to_string();
                        let mut lines = text.lines();
                        let mut first = lines.next().unwrap_or("").split_whitespace();
                        let method = first.next().unwrap_or("").to_string();
                        let target = first.next().unwrap_or("").to_string();
                        let header = |name: &str| {
                            text.lines().skip(1).find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                        };
                        let req = Seen {
                            method,
                            target: target.clone(),
                            authorization: header("authorization"),
                            accept: header("accept"),
                        };
                        log.lock().unwrap().push(req.clone());
                        let auth = req.authorization.as_deref();
                        let (status, headers, body) = match target.as_str() {
                            t if t.starts_with("/token?") => {
                                if auth == Some(BASIC) {
                                    (
                                        200,
                                        String::new(),
                                        r#"{"token":"tok-123456789"}"#.to_string(),
                                    )
                                } else {
                                    (401, String::new(), r#"{"errors":[]}"#.to_string())
                                }
                            }
                            t if t.starts_with("/v2/flaky/") => {
                                let n =
                                    log.lock().unwrap().iter().filter(|s| s.target == t).count();
                                if n <= 2 {
                                    (503, String::new(), String::new())
                                } else {
                                    (
                                        200,
                                        format!("Docker-Content-Digest: {DIGEST}\r\n"),
                                        String::new(),
                                    )
                                }
                            }
                            t if t.starts_with("/v2/down/") => (503, String::new(), String::new()),
                            t if t.starts_with("/v2/basic/") => {
                                if auth == Some(BASIC) {
                                    (
                                        200,
                                        format!("Docker-Content-Digest: {DIGEST}\r\n"),
                                        String::new(),
                                    )
                                } else {
                                    (
                                        401,
                                        "WWW-Authenticate: Basic realm=\"test\"\r\n".to_string(),
                                        String::new(),
                                    )
                                }
                            }
                            t => {
                                if auth == Some("Bearer tok-123456789") {
                                    if t == "/v2/acme/x/manifests/v1" {
                                        (
                                            200,
                                            format!("Docker-Content-Digest: {DIGEST}\r\n"),
                                            String::new(),
                                        )
                                    } else {
                                        (404, String::new(), String::new())
                                    }
                                } else {
                                    let name = t
                                        .trim_start_matches("/v2/")
                                        .split("/manifests/")
                                        .next()
                                        .unwrap_or("");
                                    (
                                        401,
                                        format!(
                                            "WWW-Authenticate: Bearer realm=\"http://{h}/token\",service=\"test-registry\",scope=\"repository:{name}:pull\"\r\n"
                                        ),
                                        String::new(),
                                    )
                                }
                            }
                        };
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                            body.len(),
                            if req.method == "HEAD" {
                                ""
                            } else {
                                body.as_str()
                            }
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    });
                }
            });
            (host, seen)
        }

        fn creds() -> Option<Credentials> {
            Some(Credentials {
                username: "user".into(),
                password: Secret::new("pass"),
            })
        }

        #[tokio::test]
        async fn bearer_challenge_token_and_retry() {
            let (host, seen) = serve().await;
            let (runner, out) = crate::runner::capture(true);
            let reg = Registry::new(creds(), &runner).unwrap();
            let image = ImageRef::parse(&format!("{host}/acme/x"), "v1").unwrap();
            assert_eq!(reg.manifest_digest(&image).await.unwrap(), DIGEST);
            // A second image of the same repository reuses the token.
            assert_eq!(reg.manifest_digest(&image).await.unwrap(), DIGEST);
            let seen = seen.lock().unwrap().clone();
            let flow: Vec<String> = seen
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {}",
                        s.method,
                        s.target,
                        s.authorization.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            assert_eq!(
                flow,
                [
                    "HEAD /v2/acme/x/manifests/v1 -".to_string(),
                    format!(
                        "GET /token?service=test-registry&scope=repository%3Aacme%2Fx%3Apull {BASIC}"
                    ),
                    "HEAD /v2/acme/x/manifests/v1 Bearer tok-123456789".to_string(),
                    "HEAD /v2/acme/x/manifests/v1 Bearer tok-123456789".to_string(),
                ]
            );
            let accept = seen[0].accept.clone().unwrap();
            for mt in MANIFEST_MEDIA_TYPES {
                assert!(accept.contains(mt), "{accept}");
            }
            let log = String::from_utf8(out.lock().unwrap().clone()).unwrap();
            assert!(
                log.contains("::add-mask::tok-123456789"),
                "the token is masked: {log}"
            );
        }

        #[tokio::test]
        async fn a_missing_tag_behind_a_token_is_not_found() {
            let (host, _) = serve().await;
            let runner = Runner::new(false, None, None);
            let reg = Registry::new(creds(), &runner).unwrap();
            let settings = [ImageSetting {
                key: "image.ref".into(),
                repository: format!("{host}/acme/x"),
                reference: format!("{host}/acme/x:v9.9.9"),
            }];
            let e = verify(&reg, &settings, "v9.9.9", false).await.unwrap_err();
            assert!(e.is_not_found());
            assert_eq!(
                e.to_string(),
                format!(
                    "image {host}/acme/x:v9.9.9 does not exist: registry {host} has no manifest \
                     for tag \"v9.9.9\" (HEAD http://{host}/v2/acme/x/manifests/v9.9.9 answered 404)"
                )
            );
        }

        #[tokio::test]
        async fn anonymous_token_refusal_says_to_set_credentials() {
            let (host, _) = serve().await;
            let runner = Runner::new(false, None, None);
            let reg = Registry::new(None, &runner).unwrap();
            let image = ImageRef::parse(&format!("{host}/acme/x"), "v1").unwrap();
            let e = reg.manifest_digest(&image).await.unwrap_err().to_string();
            assert!(e.starts_with(&format!("failed to get a registry token for image {host}/acme/x:v1 from http://{host}/token: HTTP 401")), "{e}");
            assert!(e.contains("registry_username/registry_password"), "{e}");
        }

        #[tokio::test]
        async fn transient_failures_are_tried_again_up_to_the_limit() {
            let (host, seen) = serve().await;
            let (runner, out) = crate::runner::capture(false);
            let reg = Registry::new(None, &runner).unwrap();
            let calls = |t: &str| {
                seen.lock()
                    .unwrap()
                    .iter()
                    .filter(|s| s.target.contains(t))
                    .count()
            };
            // Two 503s, then 200: the third attempt succeeds.
            let flaky = ImageRef::parse(&format!("{host}/flaky/app"), "v1").unwrap();
            assert_eq!(reg.manifest_digest(&flaky).await.unwrap(), DIGEST);
            assert_eq!(calls("/flaky/app"), 3);
            // Always 503: the error after the last attempt names the image and the status.
            let down = ImageRef::parse(&format!("{host}/down/app"), "v1").unwrap();
            let e = reg.manifest_digest(&down).await.unwrap_err().to_string();
            assert_eq!(calls("/down/app"), ATTEMPTS as usize);
            assert_eq!(
                e,
                format!(
                    "failed to verify image {host}/down/app:v1: \
                     http://{host}/v2/down/app/manifests/v1 answered HTTP 503"
                )
            );
            // A 404 is final: one request.
            let creds = Registry::new(creds(), &runner).unwrap();
            let missing = ImageRef::parse(&format!("{host}/acme/x"), "v9").unwrap();
            assert!(
                creds
                    .manifest_digest(&missing)
                    .await
                    .unwrap_err()
                    .is_not_found()
            );
            assert_eq!(
                calls("/acme/x/manifests/v9"),
                2,
                "the challenge, then the 404"
            );
            let log = String::from_utf8(out.lock().unwrap().clone()).unwrap();
            assert_eq!(log.matches("failed, trying again").count(), 4, "{log}");
        }

        #[tokio::test]
        async fn basic_challenge_uses_the_credentials() {
            let (host, seen) = serve().await;
            let runner = Runner::new(false, None, None);
            let reg = Registry::new(creds(), &runner).unwrap();
            let settings = [ImageSetting {
                key: "image".into(),
                repository: format!("{host}/basic/app"),
                reference: format!("{host}/basic/app:v1"),
            }];
            let v = verify(&reg, &settings, "v1", true).await.unwrap();
            assert_eq!(v[0].digest, DIGEST);
            assert_eq!(v[0].deploy, format!("{host}/basic/app@{DIGEST}"));
            let auths: Vec<_> = seen
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.authorization.clone())
                .collect();
            assert_eq!(auths, [None, Some(BASIC.to_string())]);
            // Without credentials a Basic registry denies access, naming the image.
            let anon = Registry::new(None, &runner).unwrap();
            let e = verify(&anon, &settings, "v1", false)
                .await
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("failed to verify image {host}/basic/app:v1: registry {host} denied access (HTTP 401)")), "{e}");
        }
    }
}
