//! GKE- and AKS-shaped kubeconfigs on the bed (issue #15), the siblings of bed_eks.rs: the user
//! runs `gke-gcloud-auth-plugin` or `kubelogin get-token`, which the image does not have; the
//! action answers with its own `kube-token`, which signs in at the local Google/Microsoft stand-in
//! (tests/common/cloud_standin.rs, TLS with a test CA the action trusts through SSL_CERT_FILE),
//! and kube-apiserver accepts the stand-in's tokens only through the bed's token webhook, which
//! shares the stand-in's signing key (TD_BED_CLOUD_TOKEN_KEY_FILE). One deploy per shape through
//! helm and the watch; a wrong secret, an expired token and an unsupported plugin each fail with
//! their one line and the cluster untouched.

mod common;

use common::case::{Case, Running, assert_success};
use common::cloud_routes::{App, Config, ServiceAccount};
use common::cloud_standin::{Pki, Standin, google_token, now, public_key_of, service_account_key};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, PostParams};
use serde_json::json;

const EMAIL: &str = "gke-deployer@prod.iam.gserviceaccount.com";
const AKS: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SPN: &str = "0f6c4e2a-1111-4a5b-9c8d-5e6f7a8b9c0d";
const WI: &str = "9a8b7c6d-2222-4e5f-8a9b-0c1d2e3f4a5b";
const SECRET: &str = "Zx8Q~bed.spn-secret_7731";
const REQUEST_TOKEN: &str = "gh-request-token-bed-4410";

/// The stand-in with the bed's key, its CA, and a service-account key file for it.
struct Clouds {
    s: Standin,
    pki: Pki,
    key_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn clouds(case: &Case) -> Clouds {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let key = std::fs::read_to_string(&case.bed.vars["TD_BED_CLOUD_TOKEN_KEY_FILE"]).unwrap();
    let key_file = service_account_key(dir.path(), EMAIL, "a1b2c3", "https://placeholder/token");
    let config = Config {
        key: key.trim().as_bytes().to_vec(),
        expires_at: now() + 3600,
        service_accounts: vec![ServiceAccount {
            email: EMAIL.into(),
            key_id: "a1b2c3".into(),
            public_key: public_key_of(&key_file),
        }],
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
                federated_subject: Some("repo:acme/trader:environment:dev".into()),
            },
        ],
        oidc_request_token: REQUEST_TOKEN.into(),
        oidc_subject: "repo:acme/trader:environment:dev".into(),
        ..Default::default()
    };
    let s = Standin::start(config, Some(&pki));
    let text = std::fs::read_to_string(&key_file)
        .unwrap()
        .replace("https://placeholder", &s.url);
    std::fs::write(&key_file, text).unwrap();
    Clouds {
        s,
        pki,
        key_file,
        _dir: dir,
    }
}

/// The bed's kubeconfig with its user replaced by `exec`.
fn kubeconfig(case: &Case, exec: serde_json::Value) -> String {
    let text = std::fs::read_to_string(&case.bed.kubeconfig).unwrap();
    let mut kc: serde_json::Value =
        serde_json::to_value(kube::config::Kubeconfig::from_yaml(&text).unwrap()).unwrap();
    for user in kc["users"].as_array_mut().unwrap() {
        user["user"] = json!({"exec": exec});
    }
    serde_json::to_string(&kc).unwrap()
}

/// As `gcloud container clusters get-credentials` writes it.
fn gke_exec() -> serde_json::Value {
    json!({
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "gke-gcloud-auth-plugin",
        "installHint": "Install gke-gcloud-auth-plugin for use with kubectl",
        "provideClusterInfo": true,
        "interactiveMode": "IfAvailable",
    })
}

/// As `kubelogin convert-kubeconfig -l <login>` writes it (workloadidentity: the application
/// and tenant left to the environment).
fn aks_exec(login: &str, client_id: Option<&str>) -> serde_json::Value {
    let mut args = vec![
        "get-token",
        "--environment",
        "AzurePublicCloud",
        "--server-id",
        AKS,
    ];
    if let Some(c) = client_id {
        args.extend(["--client-id", c, "--tenant-id", TENANT]);
    }
    args.extend(["--login", login]);
    json!({
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "kubelogin",
        "args": args,
        "interactiveMode": "IfAvailable",
    })
}

/// `user` may administer the case's namespace (GKE's IAM or AKS's Azure RBAC equivalent).
async fn grant(case: &Case, user: &str) {
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "cloud-deployer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(case.client.clone(), &case.ns)
        .create(&PostParams::default(), &rb)
        .await
        .unwrap();
}

/// The webhook's verdicts of `kind` so far.
async fn reviews(case: &Case, kind: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/reviews", case.bed.vars["TD_TOKEN_WEBHOOK_URL"]);
    let all: Vec<serde_json::Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    all.into_iter().filter(|r| r["kind"] == kind).collect()
}

fn run(
    case: &Case,
    c: &Clouds,
    exec: serde_json::Value,
    inputs: &[(&str, &str)],
    env: &[(&str, &str)],
) -> common::case::Finished {
    let kc = kubeconfig(case, exec);
    let mut all = vec![("kubeconfig", kc.as_str())];
    all.extend(inputs.iter().copied());
    let mut cmd = case.action("v1.1.0", &all);
    for (k, _) in std::env::vars() {
        if k.starts_with("AZURE_") || k.starts_with("GOOGLE_") || k.starts_with("ACTIONS_ID_TOKEN")
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("SSL_CERT_FILE", &c.pki.ca_pem)
        .envs(env.iter().copied());
    Running::start(cmd, case.ws.path()).wait()
}

async fn deployed(case: &Case, run: &common::case::Finished, kind: &str, before: usize) {
    assert_success(run);
    assert_eq!(case.status(), ("deployed".to_string(), 1));
    assert_eq!(case.ready_orch_tag().await, "v1.1.0");
    // The kubeconfig holds no credential: helm and the watch authenticated with the stand-in's
    // tokens, which only the webhook accepts.
    let seen = reviews(case, kind).await;
    let ours = &seen[before..];
    assert!(
        !ours.is_empty(),
        "the webhook was never asked about a {kind} token"
    );
    assert!(
        ours.iter().all(|r| r["status"]["authenticated"] == true),
        "{ours:?}"
    );
    let log = run.log();
    assert!(
        !log.contains("ya29.") && !log.contains("eyJ"),
        "a token in the log: {log}"
    );
}

/// Refused before the lock with one error line containing `want`; nothing written.
async fn refused(case: &Case, run: &common::case::Finished, want: &str, secret: &str) {
    assert_eq!(run.code, Some(1), "{}", run.log());
    let log = run.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains(want), "{log}");
    assert!(!log.contains("::group::Lock the release"), "{log}");
    assert!(
        log.matches(secret).count() <= 1,
        "beyond its add-mask line: {log}"
    );
    let mut helm = case.bed.helm(3);
    helm.args(["history", &case.release, "-n", &case.ns]);
    let out = helm.output().unwrap();
    assert!(!out.status.success(), "a release exists: {out:?}");
    assert!(case.lease_gone().await);
}

/// One test, its cases in turn: they read the webhook's one list of verdicts.
#[tokio::test(flavor = "multi_thread")]
async fn gke_and_aks_kubeconfigs_on_the_bed() {
    // GKE: a service-account key in GOOGLE_APPLICATION_CREDENTIALS, helm 3.
    let case = Case::new("gke", 3).await;
    let c = clouds(&case);
    grant(&case, EMAIL).await;
    let before = reviews(&case, "gke").await.len();
    let key = c.key_file.display().to_string();
    let r = run(
        &case,
        &c,
        gke_exec(),
        &[],
        &[("GOOGLE_APPLICATION_CREDENTIALS", &key)],
    );
    deployed(&case, &r, "gke", before).await;
    assert!(
        c.s.requests()
            .iter()
            .all(|q| q.path == "/token" && q.status == 200)
    );
    case.done().await;

    // AKS: workload identity with GitHub's OIDC token, the application and tenant in the
    // action's inputs, no setup step, helm 4.
    let case = Case::new("aks", 4).await;
    grant(&case, &format!("oid-{WI}")).await;
    let before = reviews(&case, "aks").await.len();
    let oidc = format!("{}/_github/oidc?api-version=2.0", c.s.url);
    let r = run(
        &case,
        &c,
        aks_exec("workloadidentity", None),
        &[("azure_client_id", WI), ("azure_tenant_id", TENANT)],
        &[
            ("AZURE_AUTHORITY_HOST", &c.s.url),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
        ],
    );
    deployed(&case, &r, "aks", before).await;
    assert!(
        r.log().contains(&format!("::add-mask::{REQUEST_TOKEN}\n")),
        "{}",
        r.log()
    );
    case.done().await;

    // A wrong client secret: Entra ID refuses it; one line, the cluster untouched.
    let case = Case::new("aks-wrong", 3).await;
    let wrong = "Wr0ng~bed-secret_0042";
    let r = run(
        &case,
        &c,
        aks_exec("spn", Some(SPN)),
        &[],
        &[
            ("AZURE_AUTHORITY_HOST", &c.s.url),
            ("AAD_SERVICE_PRINCIPAL_CLIENT_SECRET", wrong),
        ],
    );
    refused(
        &case,
        &r,
        "`trader-deploy kube-token` could not make a token for the kubeconfig's \
        `kubelogin get-token`: kube-token `kubelogin get-token`: ",
        wrong,
    )
    .await;
    assert!(
        r.log()
            .contains("AADSTS7000215: Invalid client secret provided."),
        "{}",
        r.log()
    );
    case.done().await;

    // An unsupported plugin: refused with the inputs, before anything reaches the cluster.
    let case = Case::new("aks-devicecode", 3).await;
    let r = run(&case, &c, aks_exec("devicecode", Some(SPN)), &[], &[]);
    refused(
        &case,
        &r,
        "the exec credential plugin `kubelogin get-token --environment \
        AzurePublicCloud --server-id 6dae42f8-4368-4678-94ff-3960e28e3630 --client-id \
        0f6c4e2a-1111-4a5b-9c8d-5e6f7a8b9c0d --tenant-id 72f988bf-86f1-41af-91ab-2d7cd011db47 \
        --login devicecode` is not supported",
        "no-secret",
    )
    .await;
    case.done().await;

    an_expired_token_is_refused(&c).await;
}

/// A token the stand-in issued, expired a minute ago: the apiserver refuses it (401), the
/// webhook says why.
async fn an_expired_token_is_refused(c: &Clouds) {
    let case = Case::new("gke-expired", 3).await;
    let before = reviews(&case, "other").await.len();
    let token = google_token(
        &c.s.config.key,
        &json!({"sub": EMAIL, "scope": "https://www.googleapis.com/auth/cloud-platform", "exp": now() - 60}),
    );
    let text = std::fs::read_to_string(&case.bed.kubeconfig).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let client = kube::Client::try_from(cfg).unwrap();
    let err = client
        .apiserver_version()
        .await
        .expect_err("an expired token was taken");
    assert!(
        err.to_string().contains("401") || err.to_string().contains("Unauthorized"),
        "{err}"
    );
    // Among the verdicts since (other suites may send the webhook tokens of their own).
    let seen = reviews(&case, "other").await;
    let ours = &seen[before..];
    assert!(
        ours.iter().any(|r| r["status"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("the token expired"))),
        "{ours:?}"
    );
    case.done().await;
}
