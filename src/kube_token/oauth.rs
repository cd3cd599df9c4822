//! What the GKE and AKS sign-ins share: their HTTP client (the crate's, trusting `SSL_CERT_FILE`'s
//! extra roots as the clouds' own tools do), the form and JSON exchanges with a token endpoint,
//! the token answers read, refusals read as the services write them (OAuth 2.0's
//! `error`/`error_description`, Google's `{"error": {"message"}}`), and the runtime a one-shot
//! `kube-token` process runs them on. Nothing here holds a credential in an error.

use std::time::Duration;

use serde::Deserialize;

use crate::env::{Env, vars};

/// How long one exchange with a token service may take.
pub(super) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an exchange with a token service gave no token.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("failed to read the CA certificates in SSL_CERT_FILE {path:?}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to build the HTTP client: {0}")]
    Client(String),
    #[error("failed to send {what} to {url}: {detail}")]
    Send {
        what: &'static str,
        url: String,
        detail: String,
    },
    #[error("{url} refused {what} ({status}): {reason}")]
    Refused {
        what: &'static str,
        url: String,
        status: u16,
        reason: String,
    },
    #[error("{url} answered {what} without {missing}")]
    BadAnswer {
        what: &'static str,
        url: String,
        missing: &'static str,
    },
}

/// A one-shot runtime for a `kube-token` process.
pub(super) fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, OAuthError>>,
) -> Result<T, OAuthError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(OAuthError::Runtime)?
        .block_on(f)
}

/// The crate's client, also trusting the certificates of `SSL_CERT_FILE` (a PEM bundle), as
/// Google's and Azure's own tools do through their TLS stacks.
pub(super) fn client(env: &Env) -> Result<reqwest::Client, OAuthError> {
    let extra = match env.get(vars::SSL_CERT_FILE) {
        Some(path) => Some(
            std::fs::read(path.trim()).map_err(|source| OAuthError::CaFile {
                path: path.trim().to_string(),
                source,
            })?,
        ),
        None => None,
    };
    crate::http::client_trusting(Some(EXCHANGE_TIMEOUT), extra.as_deref())
        .map_err(|e| OAuthError::Client(crate::http::chain(&e)))
}

/// A bearer token and how long it lives.
#[derive(Debug)]
pub(super) struct Token {
    pub(super) access_token: crate::secret::Secret,
    pub(super) expires_in: i64,
}

/// An OAuth 2.0 token answer (RFC 6749 §5.1): `access_token` and `expires_in` (a number, or a
/// number in a string as some services send it).
pub(super) fn token_of(what: &'static str, url: &str, body: &str) -> Result<Token, OAuthError> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<String>,
        expires_in: Option<serde_json::Value>,
    }
    let bad = |missing| OAuthError::BadAnswer {
        what,
        url: url.to_string(),
        missing,
    };
    let a: Answer = serde_json::from_str(body).map_err(|_| bad("a JSON body"))?;
    let access_token = a
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("access_token"))?;
    let expires_in = match a.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad("expires_in"))?;
    Ok(Token {
        access_token: crate::secret::Secret::new(access_token),
        expires_in,
    })
}

/// Why a service refused: OAuth 2.0's `error` and `error_description`, Google's
/// `{"error": {"status", "message"}}`, else the status alone (a body is not quoted: it could
/// echo what was sent).
pub(super) fn reason(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    match &v["error"] {
        serde_json::Value::String(code) => match s(&v["error_description"]) {
            Some(d) => format!("{code}: {}", d.lines().next().unwrap_or_default()),
            None => code.clone(),
        },
        serde_json::Value::Object(_) => {
            let e = &v["error"];
            match (s(&e["status"]), s(&e["message"])) {
                (Some(st), Some(m)) => format!("{st}: {m}"),
                (None, Some(m)) => m,
                (Some(st), None) => st,
                (None, None) => "no reason given".into(),
            }
        }
        _ => "no reason given".into(),
    }
}

/// Sends `request` (`what`, to `url`) and reads the answer's body; a status other than 2xx is a
/// refusal with the service's reason.
pub(super) async fn exchange(
    what: &'static str,
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<String, OAuthError> {
    let send = |e: reqwest::Error| OAuthError::Send {
        what,
        url: url.to_string(),
        detail: crate::http::chain(&e.without_url()),
    };
    let response = request.send().await.map_err(send)?;
    let status = response.status();
    let body = response.text().await.map_err(send)?;
    if !status.is_success() {
        return Err(OAuthError::Refused {
            what,
            url: url.to_string(),
            status: status.as_u16(),
            reason: reason(&body),
        });
    }
    Ok(body)
}

/// `application/x-www-form-urlencoded` of `pairs`, in order (the WHATWG encoding: space as `+`).
pub(super) fn form(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'*')
        .remove(b' ');
    pairs
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| utf8_percent_encode(s, SET).to_string().replace(' ', "+");
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) const FORM: &str = "application/x-www-form-urlencoded";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_encode_as_browsers_and_python_do() {
        assert_eq!(
            form(&[("scope", "a/b .default"), ("x", "é&=+~")]),
            "scope=a%2Fb+.default&x=%C3%A9%26%3D%2B%7E"
        );
    }

    #[test]
    fn refusals_read_as_the_services_write_them() {
        assert_eq!(
            reason(
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}"#
            ),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            reason(
                r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#
            ),
            "PERMISSION_DENIED: Permission denied"
        );
        assert_eq!(reason(r#"{"error":"invalid_grant"}"#), "invalid_grant");
        assert_eq!(reason("<html>secret echo</html>"), "no reason given");
    }

    #[test]
    fn token_answers() {
        let t = token_of("x", "u", r#"{"access_token":"ya29.a","expires_in":"3599"}"#).unwrap();
        assert_eq!((t.access_token.expose(), t.expires_in), ("ya29.a", 3599));
        let e = token_of("x", "u", r#"{"expires_in":1}"#).unwrap_err();
        assert_eq!(e.to_string(), "u answered x without access_token");
    }
}
