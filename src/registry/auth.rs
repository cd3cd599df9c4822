//! Registry authentication: the `WWW-Authenticate` challenge (RFC 7235, by `http-auth`), the
//! credentials per registry host and the rule of which token realm may receive them, and the
//! bearer-token exchange ghcr.io and Docker Hub use, with the tokens cached per registry and pull
//! scope and masked before anything could log them.

use std::collections::BTreeMap;

use reqwest::StatusCode;

use super::RegistryError;
use super::client::Registry;
use super::reference::{DOCKER_HUB, ImageRef, is_loopback};
use crate::secret::Secret;

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

/// One registry's credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// Credentials by registry host (`registry_auth`, or the `registry_username`/`registry_password`
/// pair for `registry_host`): each is sent only to its own registry and to a token realm that
/// [`realm_may_receive`] allows.
#[derive(Debug, Clone, Default)]
pub struct HostCredentials {
    by_host: BTreeMap<String, Credentials>,
}

impl HostCredentials {
    /// Adds the credentials of `host` (any name [`registry_host`] reads); returns the ones it
    /// replaces.
    pub fn insert(&mut self, host: &str, credentials: Credentials) -> Option<Credentials> {
        let host = registry_host(host).unwrap_or_else(|| host.to_ascii_lowercase());
        self.by_host.insert(host, credentials)
    }

    /// The credentials of the registry at `registry` (`host[:port]` as in an image reference).
    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        let host = registry_host(registry).unwrap_or_else(|| registry.to_ascii_lowercase());
        self.by_host.get(&host)
    }

    /// The hosts that have credentials, sorted.
    pub fn hosts(&self) -> Vec<&str> {
        self.by_host.keys().map(String::as_str).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// Every password, for masking.
    pub(crate) fn passwords(&self) -> impl Iterator<Item = &Secret> {
        self.by_host.values().map(|c| &c.password)
    }
}

/// A registry name as docker's `config.json` or `docker login` write it (`ghcr.io`,
/// `https://index.docker.io/v1/`, `127.0.0.1:5000`) → the `host[:port]` image references use,
/// lower-cased, Docker Hub's names as `registry-1.docker.io`; `None` when it is not one.
pub fn registry_host(name: &str) -> Option<String> {
    let name = name.trim().to_ascii_lowercase();
    let rest = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .unwrap_or(&name);
    let host_port = rest.split('/').next().unwrap_or("");
    let (host, port) = match host_port.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with(['.', '-'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return None;
    }
    Some(match host_port {
        "docker.io" | "index.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.to_string(),
        other => other.to_string(),
    })
}

/// Docker Hub's token service, the one realm on another host that gets Docker Hub's credentials.
pub(crate) const DOCKER_HUB_AUTH: &str = "auth.docker.io";

/// True when the token realm at `realm_host` may receive the credentials of `registry`
/// (`host[:port]`): the registry's own host name (any port), or a documented pair: Docker Hub
/// (`registry-1.docker.io`) and its token service `auth.docker.io`. Any other realm host is
/// asked anonymously: a registry could otherwise send the credentials anywhere.
pub(crate) fn realm_may_receive(registry: &str, realm_host: &str) -> bool {
    let registry_name = host_name(registry);
    let realm = realm_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    registry_name.eq_ignore_ascii_case(&realm)
        || (registry_name.eq_ignore_ascii_case(DOCKER_HUB) && realm == DOCKER_HUB_AUTH)
}

/// `host[:port]` or `[v6]:port` → the host name alone.
fn host_name(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    }
}

/// How one request authenticates.
pub(crate) enum Auth<'a> {
    Bearer(&'a Secret),
    Basic,
}

pub(crate) fn pull_scope(image: &ImageRef) -> String {
    format!("repository:{}:pull", image.name)
}

impl Registry {
    pub(crate) fn cached_token(&self, image: &ImageRef) -> Option<Secret> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(&(image.registry.clone(), pull_scope(image)))
            .cloned()
    }

    /// Gets a bearer token for the challenge (with Basic credentials when configured).
    pub(crate) async fn token(
        &self,
        image: &ImageRef,
        ch: &Challenge,
    ) -> Result<Secret, RegistryError> {
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
        let realm_host = url.host_str().unwrap_or("").to_string();
        let credentials = match self.credentials.get(&image.registry) {
            Some(c) if realm_may_receive(&image.registry, &realm_host) => Some(c),
            Some(_) => {
                self.warn_foreign_realm(&image.registry, &realm_host);
                None
            }
            None => None,
        };
        let mut req = self.http.get(url);
        if let Some(c) = credentials {
            req = req.basic_auth(&c.username, Some(c.password.expose()));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| err(format!("request failed: {}", e.without_url())))?;
        let status = resp.status();
        if !status.is_success() {
            let hint = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                match (credentials, self.credentials.get(&image.registry)) {
                    (Some(_), _) => {
                        format!(": the credentials for {} were refused", image.registry)
                    }
                    (None, Some(_)) => format!(
                        ": anonymous access refused (the credentials for {} are not sent to \
                         {realm_host}, another host)",
                        image.registry
                    ),
                    (None, None) => format!(
                        ": anonymous access refused; give credentials for {} in registry_auth",
                        image.registry
                    ),
                }
            } else {
                String::new()
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

    /// Warns, once per registry and realm host, that a registry's credentials stay home.
    fn warn_foreign_realm(&self, registry: &str, realm_host: &str) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((registry.to_string(), realm_host.to_string()));
        if first {
            self.runner.warning(
                "Registry credentials withheld",
                &format!(
                    "registry {registry} asks for its token at {realm_host}, another host: the \
                     credentials for {registry} are not sent there (only to {registry} itself, \
                     or auth.docker.io for Docker Hub); asking {realm_host} anonymously"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn credentials_go_to_their_host_and_its_realm_only() {
        assert!(realm_may_receive("ghcr.io", "ghcr.io"));
        assert!(realm_may_receive("GHCR.io", "ghcr.IO"));
        assert!(realm_may_receive("127.0.0.1:5000", "127.0.0.1"));
        assert!(realm_may_receive("[::1]:5000", "[::1]"));
        assert!(realm_may_receive("registry-1.docker.io", "auth.docker.io"));
        assert!(!realm_may_receive("ghcr.io", "auth.docker.io"));
        assert!(!realm_may_receive("ghcr.io", "elsewhere.example"));
        assert!(!realm_may_receive("ghcr.io", "ghcr.io.elsewhere.example"));
        assert!(!realm_may_receive("127.0.0.1:5000", "127.0.0.2"));
        assert!(!realm_may_receive("auth.docker.io", "registry-1.docker.io"));
        assert!(!realm_may_receive("registry-1.docker.io", "docker.io"));

        for (name, host) in [
            ("ghcr.io", "ghcr.io"),
            ("https://index.docker.io/v1/", DOCKER_HUB),
            ("docker.io", DOCKER_HUB),
            ("https://GHCR.io/", "ghcr.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
        ] {
            assert_eq!(registry_host(name).as_deref(), Some(host), "{name}");
        }
        for bad in ["", "https://", "a b", "ghcr.io:x", "ghcr.io:70000", "-x.io"] {
            assert_eq!(registry_host(bad), None, "{bad:?}");
        }
        let mut c = HostCredentials::default();
        let cred = |u: &str| Credentials {
            username: u.into(),
            password: Secret::new("pw"),
        };
        c.insert("https://index.docker.io/v1/", cred("hub"));
        c.insert("ghcr.io", cred("gh"));
        assert_eq!(c.get("registry-1.docker.io").unwrap().username, "hub");
        assert_eq!(c.get("ghcr.io").unwrap().username, "gh");
        assert!(c.get("quay.io").is_none() && c.get("ghcr.io:443").is_none());
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any header: no panic; a challenge found has a lower-case scheme and parameter names.
        #[test]
        fn challenges_never_panic(header in "\\PC{0,80}") {
            if let Some(c) = parse_challenge(&header) {
                prop_assert_eq!(c.scheme.to_ascii_lowercase(), c.scheme.clone());
                for k in c.params.keys() {
                    prop_assert_eq!(&k.to_ascii_lowercase(), k);
                }
            }
        }

        /// A Bearer challenge written with quoted parameters reads back as written, whatever
        /// the values hold (quotes and backslashes escaped) and whichever Basic comes first.
        #[test]
        fn bearer_challenges_round_trip(
            realm in "[ -~]{0,30}",
            service in "[ -~]{0,20}",
            basic_first in any::<bool>(),
        ) {
            let q = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
            let bearer = format!(r#"Bearer realm="{}", service="{}""#, q(&realm), q(&service));
            let header = if basic_first { format!(r#"Basic realm="x", {bearer}"#) } else { bearer };
            let c = parse_challenge(&header).unwrap();
            prop_assert_eq!(c.scheme.as_str(), "bearer");
            prop_assert_eq!(&c.params["realm"], &realm);
            prop_assert_eq!(&c.params["service"], &service);
        }

        /// The realm rule: exactly the same host name, or Docker Hub's documented pair.
        #[test]
        fn realm_rule(a in "[a-z0-9.-]{1,12}", b in "[a-z0-9.-]{1,12}", port in 1u16..) {
            let with_port = format!("{a}:{port}");
            prop_assert_eq!(realm_may_receive(&with_port, &b), a == b);
            prop_assert!(realm_may_receive(&with_port, &a));
        }
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
}
