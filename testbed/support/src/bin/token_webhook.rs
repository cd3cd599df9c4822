//! The bed's token authenticator for the managed clusters' tokens: kube-apiserver asks it about
//! every bearer token it does not know itself (`--authentication-token-webhook-config-file`,
//! TokenReview authentication.k8s.io/v1).
//!
//! GKE and AKS (`--cloud-token-key-file`): what the local Google and Microsoft token stand-ins
//! (tests/common/cloud_standin.rs) issued with the key this file holds, as GKE and AKS accept
//! only what Google and Entra ID issued: `ya29.standin.<claims>.<HMAC-SHA256>` (the username its
//! `sub`, a service account's email), or an HS256 JWT for the AKS server application
//! `6dae42f8-…` (the username its `oid`); each refused once its `exp` has passed.
//!
//! EKS: it does what aws-iam-authenticator's server and STS do together:
//! the token must be `k8s-aws-v1.` + base64url of an STS GetCallerIdentity URL on an STS host,
//! presigned (AWS4-HMAC-SHA256) no more than 15 minutes ago for this cluster (the signed
//! `x-k8s-aws-id` header), by an access key it knows, its signature recomputed with that key's
//! secret. A known key maps to a username; anything else is refused with why.
//!
//! `token_webhook --listen 127.0.0.1:0 --port-file F --cluster-id ID --key AKID=SECRET=USERNAME…
//! [--cloud-token-key-file F]`
//! Endpoints: `POST /authenticate` (TokenReview), `GET /reviews` (every verdict given, for the
//! tests), `GET /healthz`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};

/// How long after its signing STS takes a presigned GetCallerIdentity URL.
const MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// Clock skew tolerated for a URL signed in the future.
const SKEW: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Debug)]
struct Key {
    id: String,
    secret: String,
    username: String,
}

/// The AKS server application, the audience of every AKS token.
const AKS_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

#[derive(Clone)]
struct App {
    /// The GKE/AKS stand-ins' token key (trimmed file text).
    cloud_key: Arc<Option<Vec<u8>>>,
    keys: Arc<Vec<Key>>,
    cluster: Arc<String>,
    reviews: Arc<Mutex<Vec<Value>>>,
}

/// The query of a URL, percent-decoded, in order.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let d = |x: &str| {
                percent_encoding::percent_decode_str(x)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect()
}

/// The region an STS host serves: `sts.amazonaws.com` is us-east-1's global endpoint.
fn sts_region(host: &str) -> Option<&str> {
    if host == "sts.amazonaws.com" {
        return Some("us-east-1");
    }
    let rest = host.strip_prefix("sts.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    (!region.is_empty() && !region.contains('.')).then_some(region)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn mac(key: &[u8], data: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    b64url(ring::hmac::sign(&k, data.as_bytes()).as_ref())
}

fn claims_of(b64: &str) -> Result<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .context("not base64url")?;
    serde_json::from_slice(&bytes).context("not JSON")
}

fn unexpired(claims: &Value, now: SystemTime) -> Result<()> {
    let exp = claims["exp"].as_u64().context("no exp")?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if exp <= now {
        bail!("the token expired {}s ago", now - exp);
    }
    Ok(())
}

/// The username a GKE (`ya29.standin.`) or AKS (HS256 JWT) stand-in token proves.
fn review_cloud(
    token: &str,
    now: SystemTime,
    key: Option<&[u8]>,
) -> Result<(&'static str, String)> {
    let key = key.context("no cloud token key (--cloud-token-key-file)")?;
    if let Some(rest) = token.strip_prefix("ya29.standin.") {
        let (payload, sig) = rest.split_once('.').context("no signature")?;
        if mac(key, payload) != sig {
            bail!("the Google token's signature is not the issuer's");
        }
        let claims = claims_of(payload)?;
        unexpired(&claims, now)?;
        let sub = claims["sub"].as_str().context("no sub")?;
        return Ok(("gke", sub.to_string()));
    }
    let (input, sig) = token.rsplit_once('.').context("not a JWT")?;
    let (header, payload) = input.split_once('.').context("not a JWT")?;
    if claims_of(header)?["alg"] != "HS256" || mac(key, input) != sig {
        bail!("the Entra ID token's signature is not the issuer's");
    }
    let claims = claims_of(payload)?;
    if claims["aud"] != AKS_SERVER_ID {
        bail!(
            "the token's audience {} is not the AKS server {AKS_SERVER_ID}",
            claims["aud"]
        );
    }
    unexpired(&claims, now)?;
    Ok(("aks", claims["oid"].as_str().context("no oid")?.to_string()))
}

/// The username the token proves, or why it proves nothing.
fn review(token: &str, now: SystemTime, keys: &[Key], cluster: &str) -> Result<String> {
    let b64 = token
        .strip_prefix("k8s-aws-v1.")
        .context("not an EKS token (no k8s-aws-v1. prefix)")?;
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .context("not base64url")?,
    )
    .context("not UTF-8")?;
    let rest = url.strip_prefix("https://").context("not an https URL")?;
    let (host, query) = rest.split_once("/?").context("no query on /")?;
    let region = sts_region(host).with_context(|| format!("{host} is not an STS host"))?;
    let params = query_pairs(query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for (k, want) in [
        ("Action", "GetCallerIdentity"),
        ("Version", "2011-06-15"),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    ] {
        if get(k) != Some(want) {
            bail!("{k} is {:?}, not {want}", get(k));
        }
    }
    let signed = get("X-Amz-SignedHeaders").context("no X-Amz-SignedHeaders")?;
    if !signed.split(';').any(|h| h == "x-k8s-aws-id") {
        bail!("x-k8s-aws-id is not signed");
    }
    let expires: u64 = get("X-Amz-Expires")
        .context("no X-Amz-Expires")?
        .parse()
        .context("X-Amz-Expires is not a number")?;
    if expires == 0 || expires > 900 {
        bail!("X-Amz-Expires {expires} is out of range");
    }
    let credential = get("X-Amz-Credential").context("no X-Amz-Credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, day, scope_region, "sts", "aws4_request"] = scope[..] else {
        bail!("credential scope {credential:?} is not an STS one");
    };
    if scope_region != region {
        bail!("signed for {scope_region}, sent to {host}");
    }
    let date = get("X-Amz-Date").context("no X-Amz-Date")?;
    let signed_at: SystemTime = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", date)
        .and_then(|t| t.to_datetime())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp().into())
        .map_err(|e| anyhow::anyhow!("X-Amz-Date {date:?}: {e}"))?;
    if !date.starts_with(day) {
        bail!("the scope's day {day} is not the date's");
    }
    match now.duration_since(signed_at) {
        Ok(age) if age > MAX_AGE => bail!("the token expired: signed {}s ago", age.as_secs()),
        Err(e) if e.duration() > SKEW => bail!("the token is signed in the future"),
        _ => {}
    }
    let key = keys
        .iter()
        .find(|k| k.id == key_id)
        .with_context(|| format!("the access key {key_id} is not known"))?;
    // STS's side: the same request signed with the key's secret, the cluster as this
    // authenticator knows it in x-k8s-aws-id.
    let creds = aws_credential_types::Credentials::new(
        &key.id,
        &key.secret,
        get("X-Amz-Security-Token").map(str::to_string),
        None,
        "bed",
    );
    let identity = creds.into();
    let mut settings = aws_sigv4::http_request::SigningSettings::default();
    settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(expires));
    let params_v4 = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(signed_at)
        .settings(settings)
        .build()?
        .into();
    let base = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let request = aws_sigv4::http_request::SignableRequest::new(
        "GET",
        &base,
        [("host", host), ("x-k8s-aws-id", cluster)].into_iter(),
        aws_sigv4::http_request::SignableBody::Bytes(b""),
    )?;
    let (_, signature) = aws_sigv4::http_request::sign(request, &params_v4)?.into_parts();
    if get("X-Amz-Signature") != Some(signature.as_str()) {
        bail!("SignatureDoesNotMatch: the signature is not the key's for cluster {cluster:?}");
    }
    Ok(key.username.clone())
}

async fn authenticate(State(app): State<App>, Json(body): Json<Value>) -> Json<Value> {
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    let now = SystemTime::now();
    let eks = token.starts_with("k8s-aws-v1.");
    let (kind, verdict) = if eks {
        ("eks", review(token, now, &app.keys, &app.cluster))
    } else {
        match review_cloud(token, now, app.cloud_key.as_deref()) {
            Ok((kind, user)) => (kind, Ok(user)),
            Err(e) => ("other", Err(e)),
        }
    };
    let status = match &verdict {
        Ok(user) => json!({
            "authenticated": true,
            "user": {"username": user, "uid": format!("{kind}:{user}"),
                     "groups": ["system:authenticated"]},
        }),
        Err(e) => json!({"authenticated": false, "error": format!("{e:#}")}),
    };
    app.reviews.lock().unwrap().push(json!({
        "at_ms": SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
        "eks": eks,
        "kind": kind,
        "status": status.clone(),
    }));
    Json(json!({
        "apiVersion": body["apiVersion"].as_str().unwrap_or("authentication.k8s.io/v1"),
        "kind": "TokenReview",
        "status": status,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut port_file = None;
    let mut cluster = String::new();
    let mut keys = Vec::new();
    let mut cloud_key = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = value()?.parse()?,
            "--port-file" => port_file = Some(value()?),
            "--cloud-token-key-file" => {
                let f = value()?;
                let text = std::fs::read_to_string(&f).with_context(|| format!("reading {f}"))?;
                cloud_key = Some(text.trim().as_bytes().to_vec());
            }
            "--cluster-id" => cluster = value()?,
            "--key" => {
                let v = value()?;
                let mut parts = v.splitn(3, '=');
                let (Some(id), Some(secret), Some(username)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    bail!("--key takes AKID=SECRET=USERNAME");
                };
                keys.push(Key {
                    id: id.into(),
                    secret: secret.into(),
                    username: username.into(),
                });
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if cluster.is_empty() || keys.is_empty() {
        bail!("give --cluster-id and at least one --key");
    }
    let app = App {
        cloud_key: Arc::new(cloud_key),
        keys: Arc::new(keys),
        cluster: Arc::new(cluster),
        reviews: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let port = listener.local_addr()?.port();
    if let Some(f) = port_file {
        std::fs::write(&f, format!("{port}\n")).with_context(|| format!("writing {f}"))?;
    }
    let reviews = app.reviews.clone();
    let router = Router::new()
        .route("/authenticate", post(authenticate))
        .route(
            "/reviews",
            get(move || {
                let r = reviews.lock().unwrap().clone();
                async move { Json(Value::Array(r)) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app);
    eprintln!("token_webhook listening on 127.0.0.1:{port}");
    axum::serve(listener, router).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `aws eks get-token --cluster-name prod --region us-east-1` (awscli 1.46.2) at
    /// 2026-03-04T05:06:07Z with AWS's documented example key.
    const AWS_CLI_URL: &str = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&\
        Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE\
        %2F20260304%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20260304T050607Z&X-Amz-Expires=60&\
        X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=d577b414d08228f188dde677f692ee3b8f\
        bb24b15a7f6734a88d3f3711beb048";
    /// The same with a session token, in us-west-2.
    const AWS_CLI_URL_SESSION: &str = "https://sts.us-west-2.amazonaws.com/?Action=\
        GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=\
        AKIAIOSFODNN7EXAMPLE%2F20260304%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=\
        20260304T050607Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&\
        X-Amz-Security-Token=FwoGZXIvYXdzEBYaDH%2B%2F%3Dabc&X-Amz-Signature=608fe263e53934beac794\
        b8b08ad7dabb7f7b37d72f5de768ba58bae24c4be1d";

    fn token(url: &str) -> String {
        format!(
            "k8s-aws-v1.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
        )
    }

    fn keys(secret: &str) -> Vec<Key> {
        vec![Key {
            id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: secret.into(),
            username: "deployer".into(),
        }]
    }

    fn at(offset_secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_772_600_767 + offset_secs)
    }

    #[test]
    fn the_stand_ins_tokens_pass_until_they_expire_and_no_other() {
        let key = b"k".as_slice();
        let payload = b64url(br#"{"sub":"d@p.iam.gserviceaccount.com","exp":1772601000}"#);
        let gke = format!("ya29.standin.{payload}.{}", mac(key, &payload));
        assert_eq!(
            review_cloud(&gke, at(60), Some(key)).unwrap(),
            ("gke", "d@p.iam.gserviceaccount.com".to_string())
        );
        assert!(
            format!("{:#}", review_cloud(&gke, at(300), Some(key)).unwrap_err())
                .contains("expired")
        );
        assert!(review_cloud(&gke, at(60), Some(b"other")).is_err());
        assert!(review_cloud(&gke, at(60), None).is_err());
        let jwt = |aud: &str| {
            let input = format!(
                "{}.{}",
                b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
                b64url(format!(r#"{{"aud":"{aud}","oid":"o1","exp":1772601000}}"#).as_bytes())
            );
            format!("{input}.{}", mac(key, &input))
        };
        assert_eq!(
            review_cloud(&jwt(AKS_SERVER_ID), at(60), Some(key)).unwrap(),
            ("aks", "o1".to_string())
        );
        assert!(
            format!(
                "{:#}",
                review_cloud(&jwt("https://graph.microsoft.com"), at(60), Some(key)).unwrap_err()
            )
            .contains("audience")
        );
        let forged = jwt(AKS_SERVER_ID).replace(".eyJ", ".eyK");
        assert!(review_cloud(&forged, at(60), Some(key)).is_err());
    }

    #[test]
    fn the_aws_clis_tokens_pass_and_everything_else_is_refused() {
        let good = keys("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        for url in [AWS_CLI_URL, AWS_CLI_URL_SESSION] {
            assert_eq!(
                review(&token(url), at(60), &good, "prod").unwrap(),
                "deployer"
            );
            assert_eq!(
                review(&token(url), at(899), &good, "prod").unwrap(),
                "deployer"
            );
        }
        let refuse = |t: &str, now, k: &[Key], cluster: &str| {
            format!("{:#}", review(t, now, k, cluster).unwrap_err())
        };
        let t = token(AWS_CLI_URL);
        assert!(refuse(&t, at(901), &good, "prod").contains("expired"));
        assert!(
            refuse(&t, at(60), &keys("another-secret"), "prod").contains("SignatureDoesNotMatch")
        );
        assert!(refuse(&t, at(60), &good, "staging").contains("SignatureDoesNotMatch"));
        assert!(refuse(&t, at(60), &[], "prod").contains("not known"));
        let elsewhere =
            token(&AWS_CLI_URL.replace("sts.us-east-1.amazonaws.com", "sts.evil.example"));
        assert!(refuse(&elsewhere, at(60), &good, "prod").contains("not an STS host"));
        let other_action = token(&AWS_CLI_URL.replace("GetCallerIdentity", "AssumeRole"));
        assert!(refuse(&other_action, at(60), &good, "prod").contains("Action"));
        assert!(refuse("abc", at(60), &good, "prod").contains("k8s-aws-v1."));
    }
}
