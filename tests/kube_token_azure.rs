//! `trader-deploy kube-token kubelogin get-token --login spn|workloadidentity` against
//! Microsoft's own identity library (azure-identity, in `make deps`' venv-cloudauth), issue #15:
//! a client secret, a federated token file and GitHub's OIDC token as client assertion, both
//! clients pointed at one local TLS stand-in for the Microsoft identity platform's v2.0 token
//! endpoint (azure-identity takes only https authorities; both trust the test CA, Python through
//! REQUESTS_CA_BUNDLE, the action through SSL_CERT_FILE) that checks every request as Microsoft
//! documents the client credentials grant. Both must send equivalent requests and get the same
//! token for `6dae42f8-4368-4678-94ff-3960e28e3630/.default`; a wrong secret is refused for both.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use common::cloud_routes::{App, Config, GITHUB_ISSUER};
use common::cloud_standin::{Pki, Recorded, Standin, hs256, hs256_claims, now};

const AKS: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SPN: &str = "0f6c4e2a-1111-4a5b-9c8d-5e6f7a8b9c0d";
const WI: &str = "9a8b7c6d-2222-4e5f-8a9b-0c1d2e3f4a5b";
const SECRET: &str = "Zx8Q~spn.secret-canary_5521";
const REQUEST_TOKEN: &str = "gh-request-token-canary-9913";
const SUBJECT: &str = "repo:acme/trader:environment:production";

const PYTHON: &str = r#"
import json, os, sys, urllib.request, ssl
from azure.identity import ClientSecretCredential, ClientAssertionCredential, WorkloadIdentityCredential
mode, tenant, client_id, scope = sys.argv[1:5]
# A private authority: no instance discovery (that would ask login.microsoftonline.com).
kw = dict(authority=os.environ["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True)
if mode == "secret":
    cred = ClientSecretCredential(tenant, client_id, os.environ["AZURE_CLIENT_SECRET"], **kw)
elif mode == "file":
    cred = WorkloadIdentityCredential(tenant_id=tenant, client_id=client_id,
        token_file_path=os.environ["AZURE_FEDERATED_TOKEN_FILE"], **kw)
else:
    def github_oidc():
        # What azure/login does with @actions/core's getIDToken.
        req = urllib.request.Request(os.environ["ACTIONS_ID_TOKEN_REQUEST_URL"]
            + "&audience=api%3A%2F%2FAzureADTokenExchange",
            headers={"Authorization": "Bearer " + os.environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]})
        ctx = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
        return json.load(urllib.request.urlopen(req, context=ctx))["value"]
    cred = ClientAssertionCredential(tenant, client_id, github_oidc, **kw)
print(json.dumps({"token": cred.get_token(scope).token}))
"#;

struct Bench {
    s: Standin,
    pki: Pki,
    dir: tempfile::TempDir,
}

fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let config = Config {
        key: b"azure-standin-test-key".to_vec(),
        expires_at: now() + 3599,
        tenant: TENANT.into(),
        apps: vec![
            App {
                client_id: SPN.into(),
                secret: Some(SECRET.into()),
                federated_subject: None,
            },
            App {
                client_id: WI.into(),
                secret: None,
                federated_subject: Some(SUBJECT.into()),
            },
        ],
        oidc_request_token: REQUEST_TOKEN.into(),
        oidc_subject: SUBJECT.into(),
        ..Default::default()
    };
    let s = Standin::start(config, Some(&pki));
    Bench { s, pki, dir }
}

/// The environment of one case: the authority, the CA, and the case's credentials.
fn env(b: &Bench, mode: &str) -> Vec<(String, String)> {
    let mut e = vec![
        ("AZURE_AUTHORITY_HOST".to_string(), b.s.url.clone()),
        ("AZURE_TENANT_ID".into(), TENANT.into()),
        (
            "REQUESTS_CA_BUNDLE".into(),
            b.pki.ca_pem.display().to_string(),
        ),
        ("SSL_CERT_FILE".into(), b.pki.ca_pem.display().to_string()),
    ];
    match mode {
        "secret" => {
            e.push(("AZURE_CLIENT_ID".into(), SPN.into()));
            e.push(("AZURE_CLIENT_SECRET".into(), SECRET.into()));
        }
        "file" => {
            let t = now();
            let jwt = hs256(
                &b.s.config.key,
                &json!({
                    "iss": GITHUB_ISSUER, "sub": SUBJECT, "aud": "api://AzureADTokenExchange",
                    "iat": t, "nbf": t - 5, "exp": t + 300,
                }),
            );
            let file = b.dir.path().join("azure-identity-token");
            std::fs::write(&file, jwt).unwrap();
            e.push(("AZURE_CLIENT_ID".into(), WI.into()));
            e.push((
                "AZURE_FEDERATED_TOKEN_FILE".into(),
                file.display().to_string(),
            ));
        }
        _ => {
            e.push(("AZURE_CLIENT_ID".into(), WI.into()));
            e.push((
                "ACTIONS_ID_TOKEN_REQUEST_URL".into(),
                format!("{}/_github/oidc?api-version=2.0", b.s.url),
            ));
            e.push((
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
                REQUEST_TOKEN.into(),
            ));
        }
    }
    e
}

fn python_token(
    python: &Path,
    b: &Bench,
    mode: &str,
    env: &[(String, String)],
) -> Result<String, String> {
    let client = env
        .iter()
        .find(|(k, _)| k == "AZURE_CLIENT_ID")
        .unwrap()
        .1
        .clone();
    let out = Command::new(python)
        .args([
            "-c",
            PYTHON,
            mode,
            TENANT,
            &client,
            &format!("{AKS}/.default"),
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", b.dir.path())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(v["token"].as_str().unwrap().to_string())
}

fn action_token(login: &str, env: &[(String, String)]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_trader-deploy"))
        .args([
            "kube-token",
            "kubelogin",
            "get-token",
            "--environment",
            "AzurePublicCloud",
        ])
        .args(["--server-id", AKS, "--login", login])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "ExecCredential");
    Ok(v["status"]["token"].as_str().unwrap().to_string())
}

/// The token requests, their forms (assertions compared by what they say), nothing else: MSAL's
/// OpenID configuration look-up is its own way to the same endpoint. The one field left out is
/// MSAL's `client_info=1` (the secret case goes through MSAL; the assertion cases through
/// azure-identity's own client, which does not send it): it asks for the signed-in account's
/// client info, which a client credentials grant has none of.
fn token_requests(rs: &[Recorded], key: &[u8]) -> Vec<Value> {
    rs.iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .map(|r| {
            let mut form = json!(r.form());
            form.as_object_mut().unwrap().remove("client_info");
            if let Some(a) = form.get("client_assertion").and_then(Value::as_str) {
                let c = hs256_claims(key, a).expect("an assertion the issuer signed");
                form["client_assertion"] =
                    json!({"iss": c["iss"], "sub": c["sub"], "aud": c["aud"]});
            }
            json!({"path": r.path, "form": form, "status": r.status, "refusal": r.refusal,
                   "content_type": r.headers.get("content-type")})
        })
        .collect()
}

#[test]
fn azure_identity_and_kube_token_sign_in_alike() {
    let Some(python) = common::tools::cloud_auth_python() else {
        return;
    };
    let b = bench();
    for (mode, login) in [
        ("secret", "spn"),
        ("file", "workloadidentity"),
        ("github", "workloadidentity"),
    ] {
        let env = env(&b, mode);
        b.s.clear();
        let theirs = python_token(&python, &b, mode, &env).unwrap();
        let their_requests = token_requests(&b.s.requests(), &b.s.config.key);
        b.s.clear();
        let ours = action_token(login, &env).unwrap();
        let all = b.s.requests();
        let our_requests = token_requests(&all, &b.s.config.key);
        assert_eq!(ours, theirs, "{mode}: not the same token");
        assert_eq!(our_requests, their_requests, "{mode}: the requests differ");
        assert_eq!(our_requests.len(), 1, "{mode}: {our_requests:#?}");
        assert!(all.iter().all(|r| r.status == 200), "{mode}: {all:#?}");
        let form = &our_requests[0]["form"];
        assert_eq!(form["scope"], format!("{AKS}/.default"));
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(
            our_requests[0]["path"],
            format!("/{TENANT}/oauth2/v2.0/token")
        );
        if mode == "github" {
            assert_eq!(all[0].path, "/_github/oidc", "{all:#?}");
        }
    }
}

#[test]
fn a_wrong_secret_is_refused_for_both_in_one_line() {
    let Some(python) = common::tools::cloud_auth_python() else {
        return;
    };
    let b = bench();
    let mut env_wrong = env(&b, "secret");
    let wrong = "Wr0ng~secret-canary_0042";
    env_wrong
        .iter_mut()
        .find(|(k, _)| k == "AZURE_CLIENT_SECRET")
        .unwrap()
        .1 = wrong.into();
    let theirs = python_token(&python, &b, "secret", &env_wrong).unwrap_err();
    assert!(theirs.contains("AADSTS7000215"), "{theirs}");
    let ours = action_token("spn", &env_wrong).unwrap_err();
    assert_eq!(ours.lines().count(), 1, "{ours}");
    assert!(
        ours.starts_with("kube-token `kubelogin get-token`: ")
            && ours.contains("refused the client credentials grant (401): invalid_client: AADSTS7000215: Invalid client secret provided."),
        "{ours}"
    );
    assert!(!ours.contains(wrong));
    // Without the test CA the stand-in's certificate is not trusted: the action says so.
    let no_ca: Vec<_> = env(&b, "secret")
        .into_iter()
        .filter(|(k, _)| k != "SSL_CERT_FILE")
        .collect();
    let e = action_token("spn", &no_ca).unwrap_err();
    assert!(
        e.contains("failed to send the client credentials grant"),
        "{e}"
    );
}
