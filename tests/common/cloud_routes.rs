//! What the cloud stand-in (`cloud_standin`) answers, and the checks each request must pass, as
//! the services document them:
//! - Google OAuth 2.0 token endpoint, JWT-bearer grant ("Using OAuth 2.0 for server to server
//!   applications"; RFC 7523): exactly `grant_type` and `assertion`, an RS256 JWT with the key's
//!   `kid`, signed by a key the service account has, `iss` the account, `aud`
//!   `https://oauth2.googleapis.com/token`, a `scope`, `iat` now, `exp` at most an hour later.
//! - Google STS `v1/token` (RFC 8693 as Google's STS reference gives it): the token-exchange
//!   grant, `requested_token_type` an access token, a known pool `audience`, a `scope`, the
//!   subject token a valid OIDC token of the pool's issuer for the provider's audience.
//! - IAM Credentials `generateAccessToken`: a bearer token this stand-in issued, JSON with a
//!   non-empty `scope` list and a `lifetime` of at most 3600s, a service account the caller may
//!   impersonate.
//! - Microsoft identity platform v2.0 token endpoint, client credentials grant: a known
//!   `client_id`, `scope` one `<resource>/.default`, either `client_secret` or a
//!   `client_assertion` of type jwt-bearer matching the app's federated credential (issuer,
//!   subject, audience `api://AzureADTokenExchange`), never both; its OpenID configuration.
//! - AWS STS AssumeRoleWithWebIdentity (Query API 2011-06-15): unsigned (no Authorization),
//!   exactly Action, Version, RoleArn, RoleSessionName (2–64 of `[\w+=,.@-]`) and
//!   WebIdentityToken, a GitHub OIDC token for `sts.amazonaws.com` and a known role; the answer
//!   in STS's XML.
//! - GitHub's OIDC token service: the request token as bearer, an `audience`.

use serde_json::{Value, json};

use super::cloud_standin::{
    Recorded, Refusal, google_claims, google_error, google_token, hs256, hs256_claims, jwt_parts,
    now, oauth_error,
};

pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";
const GOOGLE_AUD: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A service account and the public key of its one key.
#[derive(Clone, Debug)]
pub struct ServiceAccount {
    pub email: String,
    pub key_id: String,
    pub public_key: Vec<u8>,
}

/// An Entra ID application: its secret, and its federated credential's subject.
#[derive(Clone, Debug)]
pub struct App {
    pub client_id: String,
    pub secret: Option<String>,
    pub federated_subject: Option<String>,
}

/// What the stand-in knows.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The stand-in's own URL (set when it starts).
    pub base: String,
    /// The key of every token it issues (the bed's webhook has it too).
    pub key: Vec<u8>,
    /// Every access token's expiry (epoch seconds): the same token for the same grant.
    pub expires_at: i64,
    pub service_accounts: Vec<ServiceAccount>,
    /// The workload identity pool provider, `projects/…/providers/…`.
    pub pool_provider: String,
    /// Who the pool's tokens may impersonate.
    pub impersonable: Vec<String>,
    pub tenant: String,
    pub apps: Vec<App>,
    /// The IAM role AssumeRoleWithWebIdentity may assume, and the credentials it gives.
    pub aws_role_arn: String,
    pub aws_role_credentials: (String, String, String),
    /// GitHub's request token, and the subject of the OIDC tokens it gives.
    pub oidc_request_token: String,
    pub oidc_subject: String,
}

type Answer = Result<Value, Refusal>;

/// Answers one request.
pub fn route(c: &Config, r: &Recorded) -> Answer {
    let p = r.path.as_str();
    let tenant_prefix = format!("/{}/", c.tenant);
    match (r.method.as_str(), p) {
        ("GET", "/_github/oidc") => github_oidc(c, r),
        ("POST", "/") => aws_web_identity(c, r),
        ("POST", "/token") => google_oauth(c, r),
        ("POST", "/v1/token") => google_sts(c, r),
        ("POST", _) if p.starts_with("/v1/projects/-/serviceAccounts/") => google_iam(c, r),
        ("GET", _) if p == format!("/{}/v2.0/.well-known/openid-configuration", c.tenant) => {
            Ok(openid_configuration(c))
        }
        ("POST", _) if p.starts_with(&tenant_prefix) && p.ends_with("/oauth2/v2.0/token") => {
            microsoft_token(c, r)
        }
        ("POST", _) if p.ends_with("/oauth2/v2.0/token") => Err(oauth_error(
            400,
            "invalid_request",
            "AADSTS90002: Tenant not found.",
        )),
        _ => Err(Refusal {
            status: 404,
            why: format!("no route {} {p}", r.method),
            body: json!({"error": "not_found"}),
        }),
    }
}

fn form_post(r: &Recorded) -> Result<std::collections::BTreeMap<String, String>, Refusal> {
    let ct = r.headers.get("content-type").cloned().unwrap_or_default();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(oauth_error(
            400,
            "invalid_request",
            &format!("content-type {ct:?}"),
        ));
    }
    Ok(r.form())
}

/// Fields a form may hold: `required` all present and non-empty, nothing outside `allowed`.
fn fields(
    f: &std::collections::BTreeMap<String, String>,
    required: &[&str],
    allowed: &[&str],
) -> Result<(), Refusal> {
    for k in required {
        if f.get(*k).is_none_or(|v| v.is_empty()) {
            return Err(oauth_error(400, "invalid_request", &format!("missing {k}")));
        }
    }
    if let Some(k) = f
        .keys()
        .find(|k| !required.contains(&k.as_str()) && !allowed.contains(&k.as_str()))
    {
        return Err(oauth_error(
            400,
            "invalid_request",
            &format!("unexpected parameter {k}"),
        ));
    }
    Ok(())
}

/// A GitHub OIDC token this stand-in issued, for `audience`, not expired.
fn github_token_claims(c: &Config, jwt: &str, audience: &str) -> Result<Value, String> {
    let claims = hs256_claims(&c.key, jwt).ok_or("the token's signature is not the issuer's")?;
    if claims["iss"] != GITHUB_ISSUER {
        return Err(format!("issuer {} is not {GITHUB_ISSUER}", claims["iss"]));
    }
    if claims["aud"] != audience {
        return Err(format!("audience {} is not {audience}", claims["aud"]));
    }
    if claims["exp"].as_i64().unwrap_or(0) <= now() {
        return Err("the token has expired".into());
    }
    Ok(claims)
}

fn github_oidc(c: &Config, r: &Recorded) -> Answer {
    let unauthorized = || Refusal {
        status: 401,
        why: "no valid request token".into(),
        body: json!({"message": "Bad credentials"}),
    };
    if r.headers.get("authorization") != Some(&format!("Bearer {}", c.oidc_request_token)) {
        return Err(unauthorized());
    }
    let q = super::cloud_standin::form_fields(&r.query);
    if q.get("api-version").map(String::as_str) != Some("2.0") {
        return Err(oauth_error(400, "invalid_request", "api-version"));
    }
    let aud = q
        .get("audience")
        .cloned()
        .unwrap_or_else(|| "https://github.com/acme".into());
    let t = now();
    Ok(json!({"count": 1, "value": hs256(&c.key, &json!({
        "iss": GITHUB_ISSUER, "sub": c.oidc_subject, "aud": aud,
        "repository": "acme/trader", "iat": t, "nbf": t - 5, "exp": t + 300,
    }))}))
}

fn google_oauth(c: &Config, r: &Recorded) -> Answer {
    let f = form_post(r)?;
    fields(&f, &["grant_type", "assertion"], &[])?;
    if f["grant_type"] != JWT_BEARER {
        return Err(oauth_error(
            400,
            "unsupported_grant_type",
            "Invalid grant_type",
        ));
    }
    let invalid = |d: &str| oauth_error(400, "invalid_grant", d);
    let jwt = &f["assertion"];
    let (header, claims) = jwt_parts(jwt).ok_or_else(|| invalid("Invalid JWT: not a JWT"))?;
    if header["alg"] != "RS256" || header["typ"] != "JWT" {
        return Err(invalid("Invalid JWT: alg must be RS256"));
    }
    let iss = claims["iss"].as_str().unwrap_or_default();
    let sa = c
        .service_accounts
        .iter()
        .find(|s| s.email == iss)
        .ok_or_else(|| invalid("Invalid JWT: the account does not exist"))?;
    if header["kid"] != sa.key_id.as_str() {
        return Err(invalid("Invalid JWT Signature."));
    }
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let sig = super::cloud_standin::unb64(sig).unwrap_or_default();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &sa.public_key,
    )
    .verify(input.as_bytes(), &sig)
    .map_err(|_| invalid("Invalid JWT Signature."))?;
    if claims["aud"] != GOOGLE_AUD {
        return Err(invalid("Invalid JWT: aud is not the token endpoint"));
    }
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    if (iat - now()).abs() > 300 || exp <= iat || exp - iat > 3600 {
        return Err(invalid(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        ));
    }
    let scope = claims["scope"].as_str().unwrap_or_default();
    if scope.is_empty() {
        return Err(oauth_error(
            400,
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ));
    }
    Ok(json!({
        "access_token": google_token(&c.key, &json!({"sub": sa.email, "scope": scope, "exp": c.expires_at})),
        "expires_in": c.expires_at - now(),
        "token_type": "Bearer",
    }))
}

fn google_sts(c: &Config, r: &Recorded) -> Answer {
    let f = form_post(r)?;
    fields(
        &f,
        &[
            "grant_type",
            "audience",
            "requested_token_type",
            "subject_token",
            "subject_token_type",
            "scope",
        ],
        &["options", "resource", "actor_token", "actor_token_type"],
    )?;
    if f["grant_type"] != TOKEN_EXCHANGE {
        return Err(oauth_error(400, "unsupported_grant_type", "grant_type"));
    }
    if f["requested_token_type"] != ACCESS_TOKEN_TYPE {
        return Err(oauth_error(400, "invalid_request", "requested_token_type"));
    }
    let provider_aud = format!("//iam.googleapis.com/{}", c.pool_provider);
    if f["audience"] != provider_aud {
        return Err(oauth_error(
            400,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        ));
    }
    if ![
        "urn:ietf:params:oauth:token-type:jwt",
        "urn:ietf:params:oauth:token-type:id_token",
    ]
    .contains(&f["subject_token_type"].as_str())
    {
        return Err(oauth_error(400, "invalid_request", "subject_token_type"));
    }
    let oidc_aud = format!("https://iam.googleapis.com/{}", c.pool_provider);
    let claims = github_token_claims(c, &f["subject_token"], &oidc_aud)
        .map_err(|d| oauth_error(400, "invalid_grant", &d))?;
    let principal = format!(
        "principal://iam.googleapis.com/{}/subject/{}",
        c.pool_provider
            .split("/providers/")
            .next()
            .unwrap_or_default(),
        claims["sub"].as_str().unwrap_or_default()
    );
    Ok(json!({
        "access_token": google_token(&c.key, &json!({"sub": principal, "scope": f["scope"], "exp": c.expires_at})),
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": c.expires_at - now(),
    }))
}

fn google_iam(c: &Config, r: &Recorded) -> Answer {
    let rest = r.path.trim_start_matches("/v1/projects/-/serviceAccounts/");
    let Some(email) = rest.strip_suffix(":generateAccessToken") else {
        return Err(google_error(404, "NOT_FOUND", "Method not found."));
    };
    let email = percent_encoding::percent_decode_str(email)
        .decode_utf8_lossy()
        .into_owned();
    let bearer = r
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "));
    let Some(caller) = bearer.and_then(|t| google_claims(&c.key, t)) else {
        return Err(google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        ));
    };
    if caller["exp"].as_i64().unwrap_or(0) <= now() {
        return Err(google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        ));
    }
    if !r
        .headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        return Err(google_error(400, "INVALID_ARGUMENT", "content-type"));
    }
    let body: Value = serde_json::from_str(&r.body)
        .map_err(|_| google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))?;
    if let Some(k) = body.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["delegates", "scope", "lifetime"].contains(&k.as_str()))
    }) {
        return Err(google_error(
            400,
            "INVALID_ARGUMENT",
            &format!("Invalid JSON payload received. Unknown name \"{k}\""),
        ));
    }
    let scopes: Vec<&str> = body["scope"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if scopes.is_empty() {
        return Err(google_error(400, "INVALID_ARGUMENT", "Scope required."));
    }
    let lifetime = body["lifetime"].as_str().unwrap_or("3600s");
    let secs: Option<i64> = lifetime.strip_suffix('s').and_then(|s| s.parse().ok());
    if !secs.is_some_and(|s| (1..=3600).contains(&s)) {
        return Err(google_error(
            400,
            "INVALID_ARGUMENT",
            "The lifetime is out of range.",
        ));
    }
    if !(body["delegates"].is_null() || body["delegates"].is_array()) {
        return Err(google_error(400, "INVALID_ARGUMENT", "delegates"));
    }
    if !c.impersonable.contains(&email) {
        return Err(google_error(
            403,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        ));
    }
    let expire = jiff::Timestamp::from_second(c.expires_at).unwrap();
    Ok(json!({
        "accessToken": google_token(&c.key, &json!({"sub": email, "scope": scopes.join(" "), "exp": c.expires_at})),
        "expireTime": expire.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }))
}

fn openid_configuration(c: &Config) -> Value {
    let t = format!("{}/{}", c.base, c.tenant);
    json!({
        "token_endpoint": format!("{t}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{}/{}/discovery/v2.0/keys", c.base, c.tenant),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{t}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{t}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{t}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{t}/oauth2/v2.0/logout"),
        "tenant_region_scope": "EU",
    })
}

fn microsoft_token(c: &Config, r: &Recorded) -> Answer {
    let f = form_post(r)?;
    let secret = f.contains_key("client_secret");
    let assertion = f.contains_key("client_assertion");
    if secret == assertion {
        return Err(oauth_error(
            401,
            "invalid_client",
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let proof: &[&str] = if secret {
        &["client_secret"]
    } else {
        &["client_assertion", "client_assertion_type"]
    };
    let mut required = vec!["client_id", "grant_type", "scope"];
    required.extend(proof);
    // MSAL's own telemetry and client-info fields are documented optional parameters.
    fields(&f, &required, &["client_info", "claims"])?;
    if f["grant_type"] != "client_credentials" {
        return Err(oauth_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        ));
    }
    let app = c.apps.iter().find(|a| a.client_id == f["client_id"]).ok_or_else(|| {
        oauth_error(400, "unauthorized_client", &format!("AADSTS700016: Application with identifier '{}' was not found in the directory.", f["client_id"]))
    })?;
    let scope = f["scope"].as_str();
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    let [resource_scope] = scopes[..] else {
        return Err(oauth_error(
            400,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        ));
    };
    let Some(resource) = resource_scope.strip_suffix("/.default") else {
        return Err(oauth_error(
            400,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        ));
    };
    if secret {
        if app.secret.as_deref() != Some(f["client_secret"].as_str()) {
            return Err(oauth_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            ));
        }
    } else {
        if f["client_assertion_type"] != ASSERTION_TYPE {
            return Err(oauth_error(
                400,
                "invalid_request",
                "AADSTS50027: client_assertion_type",
            ));
        }
        let claims = github_token_claims(c, &f["client_assertion"], AZURE_AUDIENCE)
            .map_err(|d| oauth_error(400, "invalid_client", &format!("AADSTS700213: No matching federated identity record found for presented assertion ({d}).")))?;
        if app.federated_subject.as_deref() != claims["sub"].as_str() {
            return Err(oauth_error(
                400,
                "invalid_client",
                &format!(
                    "AADSTS700213: No matching federated identity record found for presented assertion subject '{}'.",
                    claims["sub"].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    let t = now();
    let token = hs256(
        &c.key,
        &json!({
            "aud": resource, "iss": format!("https://sts.windows.net/{}/", c.tenant),
            "iat": c.expires_at - 3600, "nbf": c.expires_at - 3600, "exp": c.expires_at,
            "appid": app.client_id, "oid": format!("oid-{}", app.client_id), "sub": format!("oid-{}", app.client_id),
            "tid": c.tenant, "ver": "1.0",
        }),
    );
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": c.expires_at - t,
        "ext_expires_in": c.expires_at - t,
        "access_token": token,
    }))
}

/// STS's error answer, in its XML (a string answer is sent as the document itself).
fn sts_refusal(code: &str, message: &str) -> Refusal {
    Refusal {
        status: 400,
        why: format!("{code}: {message}"),
        body: Value::String(format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}\
             </Message></Error></ErrorResponse>"
        )),
    }
}

fn aws_web_identity(c: &Config, r: &Recorded) -> Answer {
    if r.headers.contains_key("authorization") {
        return Err(sts_refusal(
            "InvalidAction",
            "AssumeRoleWithWebIdentity is not signed",
        ));
    }
    let f = r.form();
    let keys = [
        "Action",
        "Version",
        "RoleArn",
        "RoleSessionName",
        "WebIdentityToken",
    ];
    if f.len() != keys.len() || keys.iter().any(|k| f.get(*k).is_none_or(|v| v.is_empty())) {
        return Err(sts_refusal(
            "MissingParameter",
            &format!("fields {:?}", f.keys()),
        ));
    }
    if f["Action"] != "AssumeRoleWithWebIdentity" || f["Version"] != "2011-06-15" {
        return Err(sts_refusal("InvalidAction", "Action/Version"));
    }
    let name = &f["RoleSessionName"];
    let ok = |ch: char| ch.is_ascii_alphanumeric() || "_+=,.@-".contains(ch);
    if !(2..=64).contains(&name.len()) || !name.chars().all(ok) {
        return Err(sts_refusal("ValidationError", "RoleSessionName"));
    }
    github_token_claims(c, &f["WebIdentityToken"], "sts.amazonaws.com")
        .map_err(|d| sts_refusal("InvalidIdentityToken", &d))?;
    if f["RoleArn"] != c.aws_role_arn {
        return Err(sts_refusal(
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ));
    }
    let (id, secret, session) = &c.aws_role_credentials;
    Ok(Value::String(format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{id}</AccessKeyId>\
         <SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{session}</SessionToken>\
         <Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>\
         </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
    )))
}
