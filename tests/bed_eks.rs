//! An EKS-shaped kubeconfig on the bed (issue #15): its user runs `aws eks get-token`, which the
//! image does not have; the action answers it with its own `kube-token`, and kube-apiserver
//! accepts the token only through the bed's token webhook (testbed/support token_webhook: the
//! presigned URL's host, action, age, signed x-k8s-aws-id and signature recomputed with the bed's
//! test key). A deploy goes through helm and the watch; a wrong secret is refused by the
//! apiserver and leaves the cluster untouched; an expired token is refused.

mod common;

use common::case::{Case, Running, assert_success};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, PostParams};

/// The bed's kubeconfig with its user replaced by an `aws eks get-token` exec plugin.
fn eks_kubeconfig(case: &Case) -> String {
    let text = std::fs::read_to_string(&case.bed.kubeconfig).unwrap();
    let mut kc: serde_json::Value =
        serde_json::to_value(kube::config::Kubeconfig::from_yaml(&text).unwrap()).unwrap();
    let cluster = case.bed.vars["TD_BED_CLUSTER"].clone();
    for user in kc["users"].as_array_mut().unwrap() {
        user["user"] = serde_json::json!({
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["--region", "eu-west-1", "eks", "get-token", "--cluster-name", cluster,
                         "--output", "json"],
                "interactiveMode": "Never",
            }
        });
    }
    serde_json::to_string(&kc).unwrap()
}

/// The bed's AWS user may administer the case's namespace (an EKS access entry's equivalent).
async fn grant(case: &Case) {
    let rb: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bed-deployer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": case.bed.vars["TD_BED_AWS_USER"]}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(case.client.clone(), &case.ns)
        .create(&PostParams::default(), &rb)
        .await
        .unwrap();
}

/// The webhook's verdicts on EKS tokens so far.
async fn reviews(case: &Case) -> Vec<serde_json::Value> {
    let url = format!("{}/reviews", case.bed.vars["TD_TOKEN_WEBHOOK_URL"]);
    let all: Vec<serde_json::Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    all.into_iter().filter(|r| r["eks"] == true).collect()
}

fn run_with(case: &Case, tag: &str, secret: Option<&str>) -> common::case::Finished {
    let mut cmd = case.action(tag, &[("kubeconfig", &eks_kubeconfig(case))]);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    if let Some(secret) = secret {
        cmd.env(
            "AWS_ACCESS_KEY_ID",
            &case.bed.vars["TD_BED_AWS_ACCESS_KEY_ID"],
        )
        .env("AWS_SECRET_ACCESS_KEY", secret);
    }
    Running::start(cmd, case.ws.path()).wait()
}

async fn eks_deploy(major: u8) {
    let case = Case::new("eks", major).await;
    grant(&case).await;
    let before = reviews(&case).await.len();
    let secret = case.bed.vars["TD_BED_AWS_SECRET_ACCESS_KEY"].clone();
    let run = run_with(&case, "v1.1.0", Some(&secret));
    assert_success(&run);
    assert_eq!(case.status(), ("deployed".to_string(), 1));
    assert_eq!(case.ready_orch_tag().await, "v1.1.0");
    // The kubeconfig holds no credential but the plugin: helm and the watch both authenticated
    // with tokens kube-token minted, which only the webhook accepts (tokens minted in the same
    // second are the same, and the apiserver may ask about each once).
    let seen = reviews(&case).await;
    let ours = &seen[before..];
    assert!(!ours.is_empty(), "the webhook was never asked");
    assert!(
        ours.iter().all(|r| r["status"]["authenticated"] == true),
        "{ours:?}"
    );
    // The secret is masked first (its add-mask line), and in no other line; no token anywhere.
    let log = run.log();
    assert!(log.starts_with(&format!("::add-mask::{secret}\n")), "{log}");
    assert!(!log.contains("k8s-aws-v1."), "{log}");
    assert_eq!(log.matches(&secret).count(), 1, "{log}");
    case.done().await;
}

/// One test, its cases in turn: they read the webhook's one list of verdicts.
#[tokio::test(flavor = "multi_thread")]
async fn eks_kubeconfigs_on_the_bed() {
    eks_deploy(3).await;
    eks_deploy(4).await;
    a_wrong_secret_is_refused_and_the_cluster_untouched().await;
    no_credentials_is_one_line_naming_them().await;
    an_expired_token_is_refused().await;
}

async fn a_wrong_secret_is_refused_and_the_cluster_untouched() {
    let case = Case::new("eks-wrong", 3).await;
    grant(&case).await;
    let before = reviews(&case).await.len();
    let wrong = "wrongSecret/Example+Key0123456789abcdefghij";
    let run = run_with(&case, "v1.1.0", Some(wrong));
    assert_eq!(run.code, Some(1), "{}", run.log());
    assert_eq!(run.out("status"), "failed");
    let log = run.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains(
            "the cluster refused the token `trader-deploy kube-token` made for the kubeconfig's \
             `aws eks get-token` (401 Unauthorized): check AWS_ACCESS_KEY_ID"
        ),
        "{log}"
    );
    // Refused when connecting, before the lock: nothing was written.
    assert!(!log.contains("::group::Lock the release"), "{log}");
    assert_eq!(
        log.matches(wrong).count(),
        1,
        "only its add-mask line: {log}"
    );
    let seen = reviews(&case).await;
    let ours = &seen[before..];
    assert!(!ours.is_empty());
    assert!(
        ours.iter().all(|r| r["status"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("SignatureDoesNotMatch")),
        "{ours:?}"
    );
    // Untouched: no release, no lease.
    let mut helm = case.bed.helm(3);
    helm.args(["history", &case.release, "-n", &case.ns]);
    let out = helm.output().unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not found"),
        "a release exists: {out:?}"
    );
    assert!(case.lease_gone().await);
    case.done().await;
}

async fn no_credentials_is_one_line_naming_them() {
    let case = Case::new("eks-nocreds", 3).await;
    let run = run_with(&case, "v1.1.0", None);
    assert_eq!(run.code, Some(1), "{}", run.log());
    let log = run.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains(
            "`trader-deploy kube-token` could not make a token for the kubeconfig's \
             `aws eks get-token`"
        ) && errors[0]
            .contains("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{log}"
    );
    assert!(!log.contains("::group::Lock the release"), "{log}");
    case.done().await;
}

async fn an_expired_token_is_refused() {
    let case = Case::new("eks-expired", 3).await;
    let Some(lib) = common::tools::libfaketime() else {
        return case.done().await;
    };
    // A token minted 20 minutes ago: kube-token's clock set back by libfaketime.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trader-deploy"))
        .args([
            "kube-token",
            "aws",
            "eks",
            "get-token",
            "--region",
            "eu-west-1",
        ])
        .args(["--cluster-name", &case.bed.vars["TD_BED_CLUSTER"]])
        .env_clear()
        .env("LD_PRELOAD", lib)
        .env("FAKETIME", "-20m")
        .env(
            "AWS_ACCESS_KEY_ID",
            &case.bed.vars["TD_BED_AWS_ACCESS_KEY_ID"],
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            &case.bed.vars["TD_BED_AWS_SECRET_ACCESS_KEY"],
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = answer["status"]["token"].as_str().unwrap();
    let text = std::fs::read_to_string(&case.bed.kubeconfig).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let server = kc.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..Default::default()
    };
    let client = kube::Client::try_from(cfg).unwrap();
    let err = client
        .apiserver_version()
        .await
        .expect_err(&format!("{server} took a token minted 20 minutes ago"));
    assert!(
        err.to_string().contains("401") || err.to_string().contains("Unauthorized"),
        "{err}"
    );
    let seen = reviews(&case).await;
    let last = seen.last().unwrap();
    assert!(
        last["status"]["error"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{last}"
    );
    case.done().await;
}
