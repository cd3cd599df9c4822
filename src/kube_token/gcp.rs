//! GKE's token as `gke-gcloud-auth-plugin` gets it from Application Default Credentials: an
//! OAuth 2.0 access token for the cloud-platform and userinfo.email scopes, from
//! `GOOGLE_APPLICATION_CREDENTIALS` (or the action's `gcp_workload_identity_provider` input):
//! - a service-account key: a JWT (RS256, the key's `kid`) for the JWT-bearer grant at the
//!   key's `token_uri` (RFC 7523; Google's "OAuth 2.0 for server to server applications");
//! - an `external_account` file (workload identity federation): the subject token from its
//!   `credential_source` (a file, a URL with headers as google-github-actions/auth writes for
//!   GitHub's OIDC token, text or JSON), exchanged at its `token_url` (Google's STS, RFC 8693),
//!   then, with `service_account_impersonation_url`, IAM Credentials' `generateAccessToken`.
//!
//! The requests are google-auth's (the Python library the tests drive against the same
//! stand-ins): its claims, forms and JSON bodies, field for field.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use serde::Deserialize;

use super::oauth::{self, FORM, OAuthError, Token};
use super::{KubeTokenError, Plugin};
use crate::env::{Env, vars};
use crate::secret::Secret;

/// The scopes gke-gcloud-auth-plugin asks Application Default Credentials for.
pub(super) const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/userinfo.email",
];
/// What the federated token is asked for when it only impersonates (google-auth's
/// `_IAM_SCOPE`): calling IAM Credentials.
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";
/// Google's OAuth token endpoint: a key's default `token_uri`, and the `aud` of every
/// JWT-bearer assertion (google-auth writes it whatever the key's `token_uri`).
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_STS_URL: &str = "https://sts.googleapis.com/v1/token";
const IAM_CREDENTIALS: &str = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// An assertion's life, and the impersonated token's asked-for one.
const LIFETIME_SECS: i64 = 3600;

/// Why no GKE token was made. Never carries a key or a token.
#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    #[error(
        "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS (e.g. with \
         google-github-actions/auth) or give the `gcp_workload_identity_provider` input"
    )]
    NoCredentials,
    #[error("failed to read GOOGLE_APPLICATION_CREDENTIALS {path:?}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "GOOGLE_APPLICATION_CREDENTIALS {path:?} is not a credential file Google writes: {detail}"
    )]
    Parse { path: String, detail: String },
    #[error(
        "GOOGLE_APPLICATION_CREDENTIALS {path:?} holds `{kind}` credentials; kube-token takes a \
         service-account key or an `external_account` (workload identity federation) file"
    )]
    Kind { path: String, kind: String },
    #[error(
        "the service-account key of {email} holds no RSA private key (PKCS#8 PEM) ring can use"
    )]
    Key { email: String },
    #[error("failed to sign the assertion of {email}")]
    Sign { email: String },
    #[error("failed to read the subject token from {what}")]
    SubjectFile {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the subject token from {what} {detail}")]
    Subject { what: String, detail: String },
    #[error(transparent)]
    Oidc(#[from] crate::github::oidc::OidcError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

/// A service-account key file's fields that sign-in uses.
#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// An `external_account` file's fields that sign-in uses.
#[derive(Deserialize)]
pub(super) struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    #[serde(default)]
    service_account_impersonation: Impersonation,
    credential_source: CredentialSource,
}

#[derive(Deserialize, Default)]
struct Impersonation {
    token_lifetime_seconds: Option<i64>,
}

/// Where the subject token comes from.
#[derive(Deserialize, Default)]
struct CredentialSource {
    file: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    format: Option<Format>,
    environment_id: Option<String>,
    executable: Option<serde_json::Value>,
    /// Not Google's: the action's own inputs ask GitHub for its OIDC token for this audience.
    #[serde(skip)]
    github_oidc_audience: Option<String>,
}

#[derive(Deserialize)]
struct Format {
    #[serde(rename = "type")]
    kind: String,
    subject_token_field_name: Option<String>,
}

/// The `external_account` the action's `gcp_workload_identity_provider` input stands for, as
/// google-github-actions/auth would write it: GitHub's OIDC token for
/// `https://iam.googleapis.com/<provider>`, exchanged for the pool, then the service account
/// impersonated when one is given.
pub(super) fn from_inputs(provider: &str, service_account: Option<&str>) -> ExternalAccount {
    let provider = provider.trim().trim_start_matches("//iam.googleapis.com/");
    let provider = provider.trim_start_matches('/');
    ExternalAccount {
        audience: format!("//iam.googleapis.com/{provider}"),
        subject_token_type: JWT_TOKEN_TYPE.into(),
        token_url: None,
        service_account_impersonation_url: service_account
            .map(|sa| format!("{IAM_CREDENTIALS}/{}:generateAccessToken", sa.trim())),
        service_account_impersonation: Impersonation::default(),
        credential_source: CredentialSource {
            github_oidc_audience: Some(format!("https://iam.googleapis.com/{provider}")),
            ..Default::default()
        },
    }
}

/// The credentials `run` signs in with.
enum Credentials {
    ServiceAccount(ServiceAccountKey),
    External(Box<ExternalAccount>),
}

fn credentials(env: &Env) -> Result<Credentials, GcpError> {
    if let Some(provider) = env.get(vars::TRADER_DEPLOY_GCP_WORKLOAD_IDENTITY_PROVIDER) {
        let sa = env.get(vars::TRADER_DEPLOY_GCP_SERVICE_ACCOUNT);
        return Ok(Credentials::External(Box::new(from_inputs(provider, sa))));
    }
    let path = env
        .get(vars::GOOGLE_APPLICATION_CREDENTIALS)
        .ok_or(GcpError::NoCredentials)?
        .trim()
        .to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| GcpError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&path, &text)
}

fn parse(path: &str, text: &str) -> Result<Credentials, GcpError> {
    // serde_json's messages can quote a value (a key's, too): only a missing field's name or
    // where the syntax broke is said.
    let perr = |e: serde_json::Error| GcpError::Parse {
        path: path.into(),
        detail: match e.to_string() {
            m if m.starts_with("missing field") => m.split(" at line").next().unwrap_or("").into(),
            _ if e.line() > 0 && e.is_syntax() || e.is_eof() => {
                format!("not JSON (line {}, column {})", e.line(), e.column())
            }
            _ => "a field has an unexpected type".into(),
        },
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(perr)?;
    match v["type"].as_str() {
        Some("service_account") => Ok(Credentials::ServiceAccount(
            serde_json::from_value(v).map_err(perr)?,
        )),
        Some("external_account") => Ok(Credentials::External(Box::new(
            serde_json::from_value(v).map_err(perr)?,
        ))),
        Some(other) => Err(GcpError::Kind {
            path: path.into(),
            kind: other.into(),
        }),
        None => Err(GcpError::Parse {
            path: path.into(),
            detail: "no `type`".into(),
        }),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The DER inside a PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The JWT-bearer assertion of `key` for `scopes` at `iat` (google-auth's `jwt.encode`: header
/// `typ`, `alg`, `kid`; claims `iat`, `exp`, `iss`, `aud`, `scope`, in that order).
pub(super) fn assertion(
    email: &str,
    private_key_pem: &str,
    key_id: Option<&str>,
    scopes: &[&str],
    iat: i64,
) -> Result<Secret, GcpError> {
    let der = pem_der(private_key_pem).ok_or_else(|| GcpError::Key {
        email: email.into(),
    })?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|_| GcpError::Key {
        email: email.into(),
    })?;
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "JWT".into());
    header.insert("alg".into(), "RS256".into());
    if let Some(kid) = key_id {
        header.insert("kid".into(), kid.into());
    }
    let claims = serde_json::json!({
        "iat": iat,
        "exp": iat + LIFETIME_SECS,
        "iss": email,
        "aud": GOOGLE_TOKEN_URI,
        "scope": scopes.join(" "),
    });
    let signing_input = format!(
        "{}.{}",
        b64(serde_json::to_string(&header).expect("JSON").as_bytes()),
        b64(serde_json::to_string(&claims).expect("JSON").as_bytes())
    );
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| GcpError::Sign {
        email: email.into(),
    })?;
    Ok(Secret::new(format!("{signing_input}.{}", b64(&sig))))
}

/// The JWT-bearer grant at the key's `token_uri`.
async fn service_account(
    client: &reqwest::Client,
    key: &ServiceAccountKey,
    now: i64,
) -> Result<Token, GcpError> {
    let assertion = assertion(
        &key.client_email,
        &key.private_key,
        key.private_key_id.as_deref(),
        SCOPES,
        now,
    )?;
    let url = key.token_uri.as_deref().unwrap_or(GOOGLE_TOKEN_URI);
    let body = oauth::form(&[
        ("assertion", assertion.expose()),
        ("grant_type", JWT_BEARER),
    ]);
    let what = "the service-account JWT-bearer grant";
    let request = client.post(url).header("content-type", FORM).body(body);
    let text = oauth::exchange(what, url, request).await?;
    Ok(oauth::token_of(what, url, &text)?)
}

/// The subject token the file's `credential_source` gives.
async fn subject_token(
    client: &reqwest::Client,
    env: &Env,
    source: &CredentialSource,
) -> Result<Secret, GcpError> {
    if let Some(audience) = &source.github_oidc_audience {
        return Ok(crate::github::oidc::id_token(client, env, audience).await?);
    }
    let (what, raw) = if let Some(file) = &source.file {
        let what = format!("the file {file:?}");
        let raw = std::fs::read_to_string(file).map_err(|source| GcpError::SubjectFile {
            what: what.clone(),
            source,
        })?;
        (what, raw)
    } else if let Some(url) = &source.url {
        let what = "the credential source URL";
        let mut request = client.get(url);
        for (k, v) in &source.headers {
            request = request.header(k, v);
        }
        let raw = oauth::exchange(what, url.split('?').next().unwrap_or(url), request).await?;
        (what.to_string(), raw)
    } else {
        let kind = if source.environment_id.is_some() {
            "an AWS environment"
        } else if source.executable.is_some() {
            "an executable"
        } else {
            "nothing kube-token reads"
        };
        return Err(GcpError::Subject {
            what: "the credential_source".into(),
            detail: format!("names {kind}; kube-token reads a `file` or a `url`"),
        });
    };
    let token = match &source.format {
        Some(Format {
            kind,
            subject_token_field_name,
        }) if kind == "json" => {
            let field = subject_token_field_name.as_deref().unwrap_or_default();
            let v: serde_json::Value =
                serde_json::from_str(&raw).map_err(|_| GcpError::Subject {
                    what: what.clone(),
                    detail: "is not JSON".into(),
                })?;
            v[field]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| GcpError::Subject {
                    what: what.clone(),
                    detail: format!("has no string field {field:?}"),
                })?
        }
        _ => raw,
    };
    if token.trim().is_empty() {
        return Err(GcpError::Subject {
            what,
            detail: "is empty".into(),
        });
    }
    Ok(Secret::new(token))
}

/// STS's token exchange, then the impersonation when the file names one.
async fn external_account(
    client: &reqwest::Client,
    env: &Env,
    account: &ExternalAccount,
    now: i64,
) -> Result<(Token, i64), GcpError> {
    let subject = subject_token(client, env, &account.credential_source).await?;
    let url = account.token_url.as_deref().unwrap_or(GOOGLE_STS_URL);
    let impersonate = account.service_account_impersonation_url.as_deref();
    // Impersonation asks STS for IAM only; the target scopes go to IAM Credentials.
    let scope = match impersonate {
        Some(_) => IAM_SCOPE.to_string(),
        None => SCOPES.join(" "),
    };
    let body = oauth::form(&[
        ("grant_type", TOKEN_EXCHANGE),
        ("audience", &account.audience),
        ("scope", &scope),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", subject.expose()),
        ("subject_token_type", &account.subject_token_type),
    ]);
    let what = "the STS token exchange";
    let request = client.post(url).header("content-type", FORM).body(body);
    let text = oauth::exchange(what, url, request).await?;
    let federated = oauth::token_of(what, url, &text)?;
    let Some(iam_url) = impersonate else {
        let expiry = now + federated.expires_in;
        return Ok((federated, expiry));
    };
    let lifetime = account
        .service_account_impersonation
        .token_lifetime_seconds
        .unwrap_or(LIFETIME_SECS);
    let body = serde_json::json!({
        "delegates": null,
        "scope": SCOPES,
        "lifetime": format!("{lifetime}s"),
    });
    let what = "generateAccessToken";
    let request = client
        .post(iam_url)
        .bearer_auth(federated.access_token.expose())
        .header("content-type", "application/json")
        .body(body.to_string());
    let text = oauth::exchange(what, iam_url, request).await?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        access_token: Option<String>,
        expire_time: Option<String>,
    }
    let bad = |missing| OAuthError::BadAnswer {
        what,
        url: iam_url.to_string(),
        missing,
    };
    let a: Answer = serde_json::from_str(&text).map_err(|_| bad("a JSON body"))?;
    let token = a.access_token.ok_or_else(|| bad("accessToken"))?;
    let expiry = a
        .expire_time
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .ok_or_else(|| bad("expireTime"))?
        .as_second();
    Ok((
        Token {
            access_token: Secret::new(token),
            expires_in: expiry - now,
        },
        expiry,
    ))
}

/// Answers `gke-gcloud-auth-plugin` (its arguments change nothing: in CI it reads Application
/// Default Credentials).
pub(super) fn run(env: &Env, now: SystemTime) -> Result<String, KubeTokenError> {
    let plugin = Plugin::GkeGcloudAuthPlugin.as_str();
    let fail = |source: GcpError| KubeTokenError::Gcp { plugin, source };
    let creds = credentials(env).map_err(fail)?;
    let secs = jiff::Timestamp::try_from(now)
        .map_err(|_| KubeTokenError::Clock { plugin })?
        .as_second();
    let (token, expiry) = oauth::block_on(async {
        let client = oauth::client(env)?;
        let r = match &creds {
            Credentials::ServiceAccount(key) => {
                service_account(&client, key, secs).await.map(|t| {
                    let e = secs + t.expires_in;
                    (t, e)
                })
            }
            Credentials::External(account) => external_account(&client, env, account, secs).await,
        };
        Ok(r)
    })
    .map_err(|e| fail(e.into()))?
    .map_err(fail)?;
    super::exec_credential::bearer_until(env, plugin, expiry, token.access_token.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_apart_by_type() {
        let sa = r#"{"type":"service_account","client_email":"d@p.iam.gserviceaccount.com",
            "private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "private_key_id":"k1","token_uri":"http://127.0.0.1:1/token"}"#;
        assert!(matches!(parse("f", sa), Ok(Credentials::ServiceAccount(_))));
        let user = r#"{"type":"authorized_user","refresh_token":"secret-refresh"}"#;
        let e = parse("f", user).err().unwrap().to_string();
        assert!(e.contains("holds `authorized_user` credentials"), "{e}");
        let e = parse("f", r#"{"type":"service_account","private_key":"secret"}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("secret\""), "{e}");
        assert!(parse("f", "{").is_err());
    }

    #[test]
    fn the_inputs_stand_for_what_google_github_actions_auth_writes() {
        let p = "projects/123/locations/global/workloadIdentityPools/gh/providers/repo";
        let a = from_inputs(p, Some("deploy@prod.iam.gserviceaccount.com"));
        assert_eq!(a.audience, format!("//iam.googleapis.com/{p}"));
        assert_eq!(
            a.credential_source.github_oidc_audience.as_deref(),
            Some(format!("https://iam.googleapis.com/{p}").as_str())
        );
        assert_eq!(
            a.service_account_impersonation_url.as_deref(),
            Some(
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/\
                 deploy@prod.iam.gserviceaccount.com:generateAccessToken"
            )
        );
        assert_eq!(a.subject_token_type, JWT_TOKEN_TYPE);
        let b = from_inputs(&format!("//iam.googleapis.com/{p}"), None);
        assert_eq!(b.audience, a.audience);
        assert!(b.service_account_impersonation_url.is_none());
    }

    #[test]
    fn a_key_that_is_no_rsa_key_is_refused_by_name() {
        let e = assertion(
            "d@p",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            None,
            SCOPES,
            0,
        )
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            "the service-account key of d@p holds no RSA private key (PKCS#8 PEM) ring can use"
        );
    }
}
