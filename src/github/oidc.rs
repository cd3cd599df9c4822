//! GitHub's OIDC token for the job (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`, present when the
//! job has `permissions: id-token: write`): what the clouds' workload identity federation takes
//! as the job's proof of identity, for an audience. The request is the one `@actions/core`'s
//! `getIDToken` sends.

use crate::env::{Env, vars};
use crate::secret::Secret;

/// Why no OIDC token was had. Never carries the request token or the OIDC token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error(
        "no GitHub OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN \
         are not set (give the job `permissions: id-token: write`)"
    )]
    NotAvailable,
    #[error("failed to get GitHub's OIDC token for audience {audience:?}: {detail}")]
    Request { audience: String, detail: String },
}

/// Whether this environment can ask GitHub for an OIDC token.
pub(crate) fn available(env: &Env) -> bool {
    env.get(vars::ACTIONS_ID_TOKEN_REQUEST_URL).is_some()
        && env.get(vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN).is_some()
}

/// What JavaScript's `encodeURIComponent` leaves as it is (`@actions/core` encodes the audience
/// with it).
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The request URL for `audience`: GitHub's URL (which has a query already) with
/// `&audience=<encodeURIComponent(audience)>`.
pub(crate) fn request_url(base: &str, audience: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{sep}audience={}",
        percent_encoding::utf8_percent_encode(audience, URI_COMPONENT)
    )
}

/// The job's OIDC token for `audience` (GitHub answers `{"value": "<JWT>"}`).
pub(crate) async fn id_token(
    client: &reqwest::Client,
    env: &Env,
    audience: &str,
) -> Result<Secret, OidcError> {
    let (Some(base), Some(bearer)) = (
        env.get(vars::ACTIONS_ID_TOKEN_REQUEST_URL),
        env.get(vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN),
    ) else {
        return Err(OidcError::NotAvailable);
    };
    let fail = |detail: String| OidcError::Request {
        audience: audience.to_string(),
        detail,
    };
    let response = client
        .get(request_url(base.trim(), audience))
        .bearer_auth(bearer.trim())
        .header("accept", "application/json; api-version=2.0")
        .send()
        .await
        .map_err(|e| fail(crate::http::chain(&e.without_url())))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("GitHub answered {status}")));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        value: Option<String>,
    }
    let a: Answer = response
        .json()
        .await
        .map_err(|e| fail(crate::http::chain(&e.without_url())))?;
    a.value
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .ok_or_else(|| fail("GitHub answered without a token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_joins_githubs_query() {
        assert_eq!(
            request_url(
                "https://run.actions.example/idtoken/abc?api-version=2.0",
                "api://AzureADTokenExchange"
            ),
            "https://run.actions.example/idtoken/abc?api-version=2.0&audience=api%3A%2F%2FAzureADTokenExchange"
        );
        assert_eq!(
            request_url("http://x/t", "a b"),
            "http://x/t?audience=a%20b"
        );
    }

    #[tokio::test]
    async fn the_token_is_asked_with_the_request_token() {
        let (url, server) =
            crate::http::test_server::once(200, r#"{"count":1,"value":"eyJ.a.b"}"#).await;
        let env = Env::from_pairs([
            (
                vars::ACTIONS_ID_TOKEN_REQUEST_URL,
                format!("{url}/t?api-version=2.0"),
            ),
            (
                vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN,
                "req-token-1234".into(),
            ),
        ]);
        let client = crate::http::client(None).unwrap();
        let t = id_token(&client, &env, "sts.amazonaws.com").await.unwrap();
        assert_eq!(t.expose(), "eyJ.a.b");
        let req = server.await.unwrap();
        assert!(
            req.starts_with("GET /t?api-version=2.0&audience=sts.amazonaws.com HTTP/1.1"),
            "{req}"
        );
        assert!(
            req.contains("authorization: Bearer req-token-1234"),
            "{req}"
        );
        assert!(matches!(
            id_token(&client, &Env::default(), "x").await,
            Err(OidcError::NotAvailable)
        ));
    }
}
