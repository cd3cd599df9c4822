//! Registry credentials per host (issue #17, finding 1): the `registry_auth` input in the form
//! docker's `config.json` holds them (`{"auths": {"ghcr.io": {"auth": "<base64 user:pass>"}}}`,
//! raw JSON or base64 of it), and the `registry_username`/`registry_password` shorthand for the
//! one host `registry_host` names. No error shows a value: they are secrets.

use base64::Engine as _;

use super::{InputError, bad};
use crate::registry::{Credentials, HostCredentials, registry_host};
use crate::secret::{Secret, secret_fragments};

/// Parses `registry_auth`.
pub(super) fn parse_registry_auth(text: &str) -> Result<HostCredentials, InputError> {
    parse_host_auth("registry_auth", text)
}

/// Parses a per-host credentials input in docker's config.json form (`registry_auth`,
/// `chart_auth`).
pub(super) fn parse_host_auth(
    input: &'static str,
    text: &str,
) -> Result<HostCredentials, InputError> {
    let err = |m: String| bad(input, m);
    let doc = document(text).ok_or_else(|| {
        err(
            "is neither docker config.json JSON ({\"auths\": {…}}) nor base64 of it \
             (value not shown: it is a secret)"
                .into(),
        )
    })?;
    let auths = doc
        .get("auths")
        .and_then(|a| a.as_object())
        .ok_or_else(|| err("has no `auths` object (docker config.json: {\"auths\": {\"ghcr.io\": {\"auth\": \"…\"}}})".into()))?;
    if auths.is_empty() {
        return Err(err("`auths` names no registry".into()));
    }
    let mut out = HostCredentials::default();
    for (name, entry) in auths {
        let host = registry_host(name)
            .ok_or_else(|| err(format!("{name:?} is not a registry host[:port]")))?;
        let creds =
            entry_credentials(entry).map_err(|why| err(format!("the entry for {name:?} {why}")))?;
        if out.insert(&host, creds).is_some() {
            return Err(err(format!(
                "registry {host} is given twice (as {name:?} and another name of it)"
            )));
        }
    }
    Ok(out)
}

/// The JSON document: as given, or decoded from base64.
fn document(text: &str) -> Option<serde_json::Value> {
    let text = text.trim();
    if text.starts_with('{') {
        return serde_json::from_str(text).ok();
    }
    let compact: String = text.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One `auths` entry: `auth` (base64 of `user:password`) or `username` and `password`.
fn entry_credentials(entry: &serde_json::Value) -> Result<Credentials, String> {
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    if field("identitytoken").is_some() || field("registrytoken").is_some() {
        return Err(
            "holds an identity or registry token, which is not supported (give `auth`)".into(),
        );
    }
    let (username, password) = match (field("auth"), field("username"), field("password")) {
        (Some(auth), _, _) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or("has an `auth` that is not base64 of user:password")?;
            let (u, p) = decoded
                .split_once(':')
                .ok_or("has an `auth` that is not base64 of user:password")?;
            (u.to_string(), p.to_string())
        }
        (None, Some(u), Some(p)) => (u.to_string(), p.to_string()),
        _ => return Err("has neither `auth` nor `username` and `password`".into()),
    };
    check_username(&username)?;
    if password.is_empty() || password.chars().any(char::is_control) {
        return Err("has an empty password or one with control characters".into());
    }
    Ok(Credentials {
        username,
        password: Secret::new(password),
    })
}

fn check_username(u: &str) -> Result<(), String> {
    if u.is_empty() || u.contains(':') || u.chars().any(char::is_control) {
        Err("has a username that is empty or contains ':' or control characters".into())
    } else {
        Ok(())
    }
}

/// The `registry_username`/`registry_password` pair, for the one host `registry_host` names.
pub(super) fn parse_registry_pair(
    username: Option<&str>,
    password: Option<&str>,
    host: Option<&str>,
) -> Result<Option<(String, Credentials)>, InputError> {
    let (username, password, host) = (
        username.map(str::trim),
        password.map(str::trim),
        host.map(str::trim),
    );
    let (u, p) = match (username, password) {
        (None, None) if host.is_some() => {
            return Err(bad(
                "registry_host",
                "is given without registry_username/registry_password",
            ));
        }
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(bad(
                "registry_password",
                "is required with registry_username",
            ));
        }
        (None, Some(_)) => {
            return Err(bad(
                "registry_username",
                "is required with registry_password",
            ));
        }
        (Some(u), Some(p)) => (u, p),
    };
    if check_username(u).is_err() {
        return Err(bad(
            "registry_username",
            format!("{u:?} may not contain ':' or control characters"),
        ));
    }
    let host = host.ok_or_else(|| {
        bad(
            "registry_host",
            "is required with registry_username/registry_password: name the one registry host \
             they are for (e.g. ghcr.io); for several hosts use registry_auth",
        )
    })?;
    let host = registry_host(host).ok_or_else(|| {
        bad(
            "registry_host",
            format!("{host:?} is not a registry host[:port] (e.g. ghcr.io, 127.0.0.1:5000)"),
        )
    })?;
    Ok(Some((
        host,
        Credentials {
            username: u.to_string(),
            password: Secret::new(p),
        },
    )))
}

/// What to mask of a `registry_auth` value, readable or not: the value, its lines, and each
/// entry's `auth`, password and decoded `auth`.
pub(super) fn registry_auth_masks(text: &str) -> Vec<String> {
    let mut out = secret_fragments(text);
    if let Some(doc) = document(text) {
        if !text.trim().starts_with('{') {
            out.extend(secret_fragments(&doc.to_string()));
        }
        if let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) {
            for entry in auths.values() {
                for k in ["auth", "password", "identitytoken", "registrytoken"] {
                    if let Some(v) = entry.get(k).and_then(|v| v.as_str()) {
                        out.extend(secret_fragments(v));
                    }
                }
                if let Some(auth) = entry.get("auth").and_then(|v| v.as_str())
                    && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(auth.trim())
                {
                    let decoded = String::from_utf8_lossy(&bytes).into_owned();
                    if let Some((_, p)) = decoded.split_once(':') {
                        out.extend(secret_fragments(p));
                    }
                    out.extend(secret_fragments(&decoded));
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn docker_config_json_per_host() {
        let text = format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}, "https://index.docker.io/v1/": {{"username": "hub", "password": "hub-pw"}}, "127.0.0.1:5000": {{"auth": "{}"}}}}}}"#,
            b64("bot:ghcr-token"),
            b64("u:p:with:colons")
        );
        for t in [text.clone(), b64(&text)] {
            let c = parse_registry_auth(&t).unwrap();
            assert_eq!(
                c.hosts(),
                ["127.0.0.1:5000", "ghcr.io", "registry-1.docker.io"]
            );
            let g = c.get("ghcr.io").unwrap();
            assert_eq!(
                (g.username.as_str(), g.password.expose()),
                ("bot", "ghcr-token")
            );
            assert_eq!(c.get("registry-1.docker.io").unwrap().username, "hub");
            assert_eq!(
                c.get("127.0.0.1:5000").unwrap().password.expose(),
                "p:with:colons"
            );
            assert!(c.get("127.0.0.1:5001").is_none());
            assert!(c.get("quay.io").is_none());
        }
        let masks = registry_auth_masks(&text);
        for s in [
            "ghcr-token",
            "hub-pw",
            "p:with:colons",
            &b64("bot:ghcr-token"),
        ] {
            assert!(masks.iter().any(|m| m == s), "{s} masked: {masks:?}");
        }
    }

    #[test]
    fn bad_registry_auth_is_refused_without_showing_it() {
        let e = |t: &str| parse_registry_auth(t).unwrap_err().to_string();
        assert_eq!(
            e("secret-canary-value"),
            "input `registry_auth`: is neither docker config.json JSON ({\"auths\": {…}}) nor \
             base64 of it (value not shown: it is a secret)"
        );
        assert!(e(r#"{"credsStore": "desktop"}"#).contains("has no `auths` object"));
        assert!(e(r#"{"auths": {}}"#).contains("`auths` names no registry"));
        assert!(
            e(r#"{"auths": {"ghcr.io:99999": {"auth": "eDp5"}}}"#)
                .contains("\"ghcr.io:99999\" is not a registry host")
        );
        let m = e(r#"{"auths": {"ghcr.io": {"auth": "not-base64-canary!"}}}"#);
        assert!(
            m.contains("the entry for \"ghcr.io\" has an `auth` that is not base64"),
            "{m}"
        );
        assert!(!m.contains("canary"), "{m}");
        assert!(e(r#"{"auths": {"ghcr.io": {}}}"#).contains("has neither `auth` nor"));
        assert!(e(r#"{"auths": {"ghcr.io": {"identitytoken": "t"}}}"#).contains("not supported"));
        let twice = format!(
            r#"{{"auths": {{"docker.io": {{"auth": "{0}"}}, "index.docker.io": {{"auth": "{0}"}}}}}}"#,
            b64("a:b")
        );
        assert!(
            e(&twice).contains("registry registry-1.docker.io is given twice"),
            "{}",
            e(&twice)
        );
    }

    #[test]
    fn the_pair_needs_its_host() {
        let e = parse_registry_pair(Some("bot"), Some("pw"), None).unwrap_err();
        assert_eq!(e.input, "registry_host");
        assert!(
            e.message
                .starts_with("is required with registry_username/registry_password")
        );
        let e = parse_registry_pair(None, None, Some("ghcr.io")).unwrap_err();
        assert_eq!(e.input, "registry_host");
        let e = parse_registry_pair(Some("bot"), Some("pw"), Some("https://x y")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `registry_host`: \"https://x y\" is not a registry host[:port] (e.g. ghcr.io, 127.0.0.1:5000)"
        );
        let (h, c) = parse_registry_pair(Some("bot"), Some("pw"), Some(" GHCR.io "))
            .unwrap()
            .unwrap();
        assert_eq!((h.as_str(), c.username.as_str()), ("ghcr.io", "bot"));
        assert!(parse_registry_pair(None, None, None).unwrap().is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text: no panic; an error names the input, is one line and never echoes a
        /// secret-looking part of the value.
        #[test]
        fn never_panics_nor_echoes(text in "\\PC{0,80}") {
            if let Err(e) = parse_registry_auth(&text) {
                prop_assert_eq!(e.input, "registry_auth");
                prop_assert!(!e.message.contains('\n'));
            }
            let _ = registry_auth_masks(&text);
        }

        /// Credentials written as docker writes them read back per host, each decoded password
        /// among the masks.
        #[test]
        fn round_trip(entries in prop::collection::btree_map(
            "[a-z]{1,8}\\.(io|com|example)(:[1-9][0-9]{0,3})?",
            ("[a-zA-Z0-9_.@-]{1,10}", "[!-~]{1,20}"),
            1..4,
        )) {
            let auths: serde_json::Map<String, serde_json::Value> = entries
                .iter()
                .map(|(h, (u, p))| (h.clone(), serde_json::json!({"auth": b64(&format!("{u}:{p}"))})))
                .collect();
            let text = serde_json::json!({"auths": auths}).to_string();
            let c = parse_registry_auth(&text).unwrap();
            let masks = registry_auth_masks(&text);
            for (h, (u, p)) in &entries {
                let got = c.get(h).unwrap();
                prop_assert_eq!(&got.username, u);
                prop_assert_eq!(got.password.expose(), p.as_str());
                prop_assert!(masks.iter().any(|m| m == p));
            }
        }
    }
}
