//! `trader-deploy kube-token gke-gcloud-auth-plugin` against Google's own auth library
//! (google-auth, in `make deps`' venv-cloudauth), issue #15: the same credential files (a
//! service-account key; `external_account` files whose subject token comes from GitHub's OIDC
//! service by URL, or from a file; with and without service-account impersonation) driven by both
//! against one local stand-in for Google's OAuth token endpoint, STS and IAM Credentials
//! (tests/common/cloud_routes.rs checks every request as Google documents it). Both must send
//! equivalent requests, none refused, and come back with the same access token; a key Google
//! does not know is refused for both.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use common::cloud_routes::{Config, ServiceAccount};
use common::cloud_standin::{
    Recorded, Standin, hs256, jwt_parts, now, public_key_of, service_account_key,
};

const EMAIL: &str = "deployer@prod.iam.gserviceaccount.com";
const TARGET: &str = "gke-deploy@prod.iam.gserviceaccount.com";
const PROVIDER: &str =
    "projects/123456/locations/global/workloadIdentityPools/github/providers/trader";
const REQUEST_TOKEN: &str = "gh-request-token-canary-7781";
const SCOPES: &str =
    "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email";

const PYTHON: &str = r#"
import json, sys
import google.auth.transport.requests
from google.auth import identity_pool
from google.oauth2 import service_account
# The credential classes `load_credentials_from_file` picks, without its project id look-up
# (a call to Cloud Resource Manager, which is no part of signing in).
scopes = sys.argv[2].split(" ")
kind = json.load(open(sys.argv[1]))["type"]
cls = {"service_account": service_account.Credentials.from_service_account_file,
       "external_account": identity_pool.Credentials.from_file}[kind]
creds = cls(sys.argv[1], scopes=scopes)
creds.refresh(google.auth.transport.requests.Request())
print(json.dumps({"token": creds.token}))
"#;

fn standin(dir: &Path) -> (Standin, std::path::PathBuf) {
    // The key file names the stand-in's URL, which is known once it listens: a placeholder
    // first, rewritten after.
    let key = service_account_key(dir, EMAIL, "1f2e3d4c5b6a", "http://placeholder/token");
    let config = Config {
        key: b"gcp-standin-test-key".to_vec(),
        expires_at: now() + 3600,
        service_accounts: vec![ServiceAccount {
            email: EMAIL.into(),
            key_id: "1f2e3d4c5b6a".into(),
            public_key: public_key_of(&key),
        }],
        pool_provider: PROVIDER.into(),
        impersonable: vec![TARGET.into()],
        oidc_request_token: REQUEST_TOKEN.into(),
        oidc_subject: "repo:acme/trader:environment:production".into(),
        ..Default::default()
    };
    let s = Standin::start(config, None);
    let text = std::fs::read_to_string(&key)
        .unwrap()
        .replace("http://placeholder", &s.url);
    std::fs::write(&key, text).unwrap();
    (s, key)
}

/// An `external_account` file as google-github-actions/auth writes it (GitHub's OIDC token by
/// URL), or with the subject token in a file.
fn external_account(
    s: &Standin,
    dir: &Path,
    impersonate: bool,
    from_file: bool,
) -> std::path::PathBuf {
    let audience = format!("https://iam.googleapis.com/{PROVIDER}");
    let source = if from_file {
        let token_file = dir.join("oidc-token");
        // The OIDC token as GitHub's service gives it (the stand-in's own minting).
        let t = now();
        let jwt = hs256(
            &s.config.key,
            &json!({
                "iss": common::cloud_routes::GITHUB_ISSUER, "sub": s.config.oidc_subject,
                "aud": audience, "iat": t, "nbf": t - 5, "exp": t + 300,
            }),
        );
        std::fs::write(&token_file, jwt).unwrap();
        json!({"file": token_file, "format": {"type": "text"}})
    } else {
        json!({
            "url": format!("{}/_github/oidc?api-version=2.0&audience={audience}", s.url),
            "headers": {"Authorization": format!("Bearer {REQUEST_TOKEN}")},
            "format": {"type": "json", "subject_token_field_name": "value"},
        })
    };
    let mut v = json!({
        "type": "external_account",
        "audience": format!("//iam.googleapis.com/{PROVIDER}"),
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", s.url),
        "credential_source": source,
    });
    if impersonate {
        v["service_account_impersonation_url"] = json!(format!(
            "{}/v1/projects/-/serviceAccounts/{TARGET}:generateAccessToken",
            s.url
        ));
    }
    let path = dir.join(format!("ext-{impersonate}-{from_file}.json"));
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

fn python_token(python: &Path, file: &Path) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", PYTHON])
        .arg(file)
        .arg(SCOPES)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(v["token"].as_str().unwrap().to_string())
}

fn action_token(file: &Path) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_trader-deploy"))
        .args([
            "kube-token",
            "gke-gcloud-auth-plugin",
            "--use_application_default_credentials",
        ])
        .env_clear()
        .env("GOOGLE_APPLICATION_CREDENTIALS", file)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "ExecCredential");
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1beta1");
    let exp = v["status"]["expirationTimestamp"].as_str().unwrap();
    assert!(exp.ends_with('Z') && exp.len() == 20, "{exp}");
    Ok(v["status"]["token"].as_str().unwrap().to_string())
}

/// A request with what differs by nature between two clients taken out: the assertion's
/// signature and instants (its other header fields and claims are kept), transport headers.
fn normalised(r: &Recorded) -> Value {
    let mut body = match r.headers.get("content-type").map(String::as_str) {
        Some(t) if t.starts_with("application/json") => serde_json::from_str(&r.body).unwrap(),
        _ => json!(r.form()),
    };
    if let Some(a) = body.get("assertion").and_then(Value::as_str) {
        let (header, mut claims) = jwt_parts(a).unwrap();
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert!((iat - now()).abs() < 120);
        claims["lifetime"] = json!(exp - iat);
        claims.as_object_mut().unwrap().remove("iat");
        claims.as_object_mut().unwrap().remove("exp");
        body["assertion"] = json!({"header": header, "claims": claims});
    }
    let auth = r
        .headers
        .get("authorization")
        .map(|a| a.split_once(' ').map_or(a.clone(), |(k, _)| k.to_string()));
    json!({
        "method": r.method, "path": r.path, "query": r.query, "body": body,
        "content_type": r.headers.get("content-type").map(|t| t.split(';').next().unwrap().trim().to_string()),
        "authorization": auth, "status": r.status, "refusal": r.refusal,
    })
}

/// Both clients on `file`: the same token, equivalent requests, none refused.
fn compare(s: &Standin, python: &Path, file: &Path, expect: &[&str]) {
    s.clear();
    let theirs = python_token(python, file).unwrap();
    let their_requests: Vec<Value> = s.requests().iter().map(normalised).collect();
    s.clear();
    let ours = action_token(file).unwrap();
    let our_requests: Vec<Value> = s.requests().iter().map(normalised).collect();
    assert_eq!(ours, theirs, "not the same token");
    assert!(ours.starts_with("ya29.standin."));
    assert_eq!(
        serde_json::to_string_pretty(&our_requests).unwrap(),
        serde_json::to_string_pretty(&their_requests).unwrap(),
        "the requests differ"
    );
    let paths: Vec<&str> = our_requests
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, expect);
    assert!(
        our_requests.iter().all(|r| r["status"] == 200),
        "{our_requests:#?}"
    );
}

#[test]
fn google_auth_and_kube_token_sign_in_alike() {
    let Some(python) = common::tools::cloud_auth_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (s, key) = standin(dir.path());
    compare(&s, &python, &key, &["/token"]);
    // The assertion as Google documents it: RS256 with the key's kid, aud the token endpoint.
    let a = s.requests()[0].form()["assertion"].clone();
    let (header, claims) = jwt_parts(&a).unwrap();
    assert_eq!(
        header,
        json!({"typ": "JWT", "alg": "RS256", "kid": "1f2e3d4c5b6a"})
    );
    assert_eq!(claims["scope"], SCOPES);
    assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");

    let iam = format!("/v1/projects/-/serviceAccounts/{TARGET}:generateAccessToken");
    for (impersonate, from_file) in [(false, false), (true, false), (true, true)] {
        let file = external_account(&s, dir.path(), impersonate, from_file);
        let mut expect = vec![];
        if !from_file {
            expect.push("/_github/oidc");
        }
        expect.push("/v1/token");
        if impersonate {
            expect.push(iam.as_str());
        }
        compare(&s, &python, &file, &expect);
    }
}

#[test]
fn a_key_google_does_not_know_is_refused_for_both() {
    let Some(python) = common::tools::cloud_auth_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (s, _key) = standin(dir.path());
    // Another key under the same account and key id: its signature is not the account's.
    let other = tempfile::tempdir().unwrap();
    let wrong = service_account_key(
        other.path(),
        EMAIL,
        "1f2e3d4c5b6a",
        &format!("{}/token", s.url),
    );
    let theirs = python_token(&python, &wrong).unwrap_err();
    assert!(theirs.contains("Invalid JWT Signature"), "{theirs}");
    let ours = action_token(&wrong).unwrap_err();
    assert_eq!(ours.lines().count(), 1, "{ours}");
    assert!(
        ours.starts_with("kube-token `gke-gcloud-auth-plugin`: ")
            && ours.contains("refused the service-account JWT-bearer grant (400): invalid_grant: Invalid JWT Signature."),
        "{ours}"
    );
    let pem = std::fs::read_to_string(&wrong).unwrap();
    assert!(!ours.contains("PRIVATE KEY") && !ours.contains(&pem[200..260]));
    // A GitHub request token the service does not take: no token, one line, the token unsaid.
    let file = external_account(&s, dir.path(), true, false);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(REQUEST_TOKEN, "wrong-request-token");
    std::fs::write(&file, text).unwrap();
    let ours = action_token(&file).unwrap_err();
    assert!(
        ours.contains("refused the credential source URL (401)"),
        "{ours}"
    );
    assert!(!ours.contains("wrong-request-token"), "{ours}");
    assert!(python_token(&python, &file).is_err());
}
