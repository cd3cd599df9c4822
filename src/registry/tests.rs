//! Verification end to end against a loopback stand-in registry, and the errors of several images.

use super::client::ATTEMPTS;
use super::*;
use crate::secret::Secret;

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

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
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
        serve_at("127.0.0.1", None).await
    }

    /// The stand-in on `ip`; its Bearer challenges name `realm` (default: its own /token).
    async fn serve_at(ip: &str, realm: Option<String>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let realm = realm.unwrap_or_else(|| format!("http://{host}/token"));
        let (h, log) = (realm, seen.clone());
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
                            let n = log.lock().unwrap().iter().filter(|s| s.target == t).count();
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
                        t if t.starts_with("/v2/limited/") => {
                            let n = log.lock().unwrap().iter().filter(|s| s.target == t).count();
                            if n <= 1 {
                                (429, "Retry-After: 2\r\n".to_string(), String::new())
                            } else {
                                (
                                    200,
                                    format!("Docker-Content-Digest: {DIGEST}\r\n"),
                                    String::new(),
                                )
                            }
                        }
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
                                        "WWW-Authenticate: Bearer realm=\"{h}\",service=\"test-registry\",scope=\"repository:{name}:pull\"\r\n"
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

    /// user:pass for the stand-in at `host`.
    fn creds(host: &str) -> HostCredentials {
        let mut c = HostCredentials::default();
        c.insert(
            host,
            Credentials {
                username: "user".into(),
                password: Secret::new("pass"),
            },
        );
        c
    }

    #[tokio::test]
    async fn bearer_challenge_token_and_retry() {
        let (host, seen) = serve().await;
        let (runner, out) = crate::runner::capture(true);
        let reg = Registry::new(creds(&host), &runner).unwrap();
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

    /// Issue #17: a registry whose challenge names a token realm on another host (127.0.0.2 is
    /// not 127.0.0.1) gets no credentials sent there; the warning names both hosts.
    #[tokio::test]
    async fn a_realm_on_another_host_gets_no_credentials() {
        let (realm_host, realm_seen) = serve_at("127.0.0.2", None).await;
        let (host, _) = serve_at("127.0.0.1", Some(format!("http://{realm_host}/token"))).await;
        let (runner, out) = crate::runner::capture(true);
        let reg = Registry::new(creds(&host), &runner).unwrap();
        let image = ImageRef::parse(&format!("{host}/acme/x"), "v1").unwrap();
        let e = reg.manifest_digest(&image).await.unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "failed to get a registry token for image {host}/acme/x:v1 from \
                 http://{realm_host}/token: HTTP 401: anonymous access refused (the credentials \
                 for {host} are not sent to 127.0.0.2, another host)"
            )
        );
        let seen = realm_seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(
            seen[0].authorization, None,
            "the foreign realm got credentials"
        );
        let log = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let warning = format!(
            "::warning title=Registry credentials withheld::registry {host} asks for its token \
             at 127.0.0.2, another host: the credentials for {host} are not sent there"
        );
        assert!(log.contains(&warning), "{log}");
        // Once per registry and realm, however many images.
        let _ = reg.manifest_digest(&image).await;
        let log = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("::warning").count(), 1, "{log}");
        // Credentials for another registry are never sent to this one, Basic or token.
        let (other, other_seen) = serve().await;
        let reg = Registry::new(creds(&host), &runner).unwrap();
        for repo in ["acme/x", "basic/app"] {
            let image = ImageRef::parse(&format!("{other}/{repo}"), "v1").unwrap();
            assert!(reg.manifest_digest(&image).await.is_err());
        }
        let auths: Vec<_> = other_seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.authorization.clone())
            .collect();
        assert_eq!(auths, [None, None, None], "requests to {other}");
    }

    #[tokio::test]
    async fn a_missing_tag_behind_a_token_is_not_found() {
        let (host, _) = serve().await;
        let runner = Runner::new(false, None, None);
        let reg = Registry::new(creds(&host), &runner).unwrap();
        let settings = [ImageSetting {
            key: "image.ref".into(),
            repository: format!("{host}/acme/x"),
            reference: format!("{host}/acme/x:v9.9.9"),
            tag: "v9.9.9".into(),
            shape: Default::default(),
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
        let reg = Registry::new(HostCredentials::default(), &runner).unwrap();
        let image = ImageRef::parse(&format!("{host}/acme/x"), "v1").unwrap();
        let e = reg.manifest_digest(&image).await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("failed to get a registry token for image {host}/acme/x:v1 from http://{host}/token: HTTP 401")), "{e}");
        assert!(
            e.ends_with(&format!(
                "anonymous access refused; give credentials for {host} in registry_auth"
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn transient_failures_are_tried_again_up_to_the_limit() {
        let (host, seen) = serve().await;
        let (runner, out) = crate::runner::capture(false);
        let reg = Registry::new(HostCredentials::default(), &runner).unwrap();
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
        let creds = Registry::new(creds(&host), &runner).unwrap();
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
    async fn a_429_waits_as_long_as_retry_after_asks() {
        let (host, seen) = serve().await;
        let runner = Runner::new(false, None, None);
        let reg = Registry::new(HostCredentials::default(), &runner).unwrap();
        let image = ImageRef::parse(&format!("{host}/limited/app"), "v1").unwrap();
        let started = std::time::Instant::now();
        assert_eq!(reg.manifest_digest(&image).await.unwrap(), DIGEST);
        let waited = started.elapsed();
        // The backoff alone would wait RETRY_DELAY (0.5 s); Retry-After asked for 2 s.
        assert!(waited >= std::time::Duration::from_secs(2), "{waited:?}");
        let calls = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target.contains("/limited/app"))
            .count();
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn basic_challenge_uses_the_credentials() {
        let (host, seen) = serve().await;
        let runner = Runner::new(false, None, None);
        let reg = Registry::new(creds(&host), &runner).unwrap();
        let settings = [ImageSetting {
            key: "image".into(),
            repository: format!("{host}/basic/app"),
            reference: format!("{host}/basic/app:v1"),
            tag: "v1".into(),
            shape: Default::default(),
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
        let anon = Registry::new(HostCredentials::default(), &runner).unwrap();
        let e = verify(&anon, &settings, "v1", false)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("failed to verify image {host}/basic/app:v1: registry {host} denied access (HTTP 401)")), "{e}");
    }
}
