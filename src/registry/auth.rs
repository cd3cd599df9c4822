//! Registry authentication: the `WWW-Authenticate` challenge (RFC 7235, by `http-auth`), Basic
//! credentials, and the bearer-token exchange ghcr.io and Docker Hub use, with the tokens cached
//! per registry and pull scope and masked before anything could log them.

use std::collections::BTreeMap;

use reqwest::StatusCode;

use super::RegistryError;
use super::client::Registry;
use super::reference::{ImageRef, is_loopback};
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

/// Registry credentials (the `registry_username` and `registry_password` inputs).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
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
