//! Image verification against the bed's real registry (Debian's docker-registry): every pushed
//! tag is found with the registry's digest, a missing tag is refused naming the reference — and
//! through the action, before any helm call (the release's revision unchanged) — and digest
//! pinning deploys `repository@sha256:…`. Needs a running bed (`make testbed-up`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::case::chart_with_image_ref;
use common::cli_run::{ACTION_TIMEOUT, run_action};
use common::{Bed, create_namespace, delete_namespace, manifest_sha256, run_with_deadline};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use trader_deploy::inputs::ImageSetting;
use trader_deploy::registry::{self, ImageRef, Registry};
use trader_deploy::runner::Runner;

const TAGS: &[&str] = &[
    "v1.0.0",
    "v1.1.0",
    "v1.2.0",
    "v1.3.0-rc.1",
    "broken-pull",
    "crashloop",
    "never-ready",
    "unready-app",
    "sha-0123abcd",
];
const REPOS: &[&str] = &["acme/python-orch", "acme/go-scanner"];

#[tokio::test]
async fn every_pushed_tag_is_found_with_its_digest() {
    let bed = Bed::load();
    let runner = Runner::new(false, None, None);
    let reg = Registry::new(registry::HostCredentials::default(), &runner).unwrap();
    let mut seen = BTreeMap::new();
    for repo in REPOS {
        for tag in TAGS {
            let image = ImageRef::parse(&format!("{}/{repo}", bed.registry), tag).unwrap();
            let digest = reg
                .manifest_digest(&image)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                digest,
                manifest_sha256(&bed, repo, tag).await,
                "{repo}:{tag}"
            );
            assert!(
                seen.insert(digest.clone(), format!("{repo}:{tag}"))
                    .is_none(),
                "{repo}:{tag} shares digest {digest} with {:?}",
                seen.get(&digest)
            );
        }
    }
}

fn setting(bed: &Bed, key: &str, repo: &str, version: &str) -> ImageSetting {
    let repository = format!("{}/{repo}", bed.registry);
    ImageSetting {
        key: key.into(),
        reference: format!("{repository}:{version}"),
        repository,
        tag: version.into(),
        shape: Default::default(),
    }
}

#[tokio::test]
async fn a_missing_tag_is_refused_naming_every_missing_reference() {
    let bed = Bed::load();
    let runner = Runner::new(false, None, None);
    let reg = Registry::new(registry::HostCredentials::default(), &runner).unwrap();
    let one = [setting(&bed, "image.ref", "acme/python-orch", "v9.9.9")];
    let e = registry::verify(&reg, &one, "v9.9.9", false)
        .await
        .unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(
        e.to_string(),
        format!(
            "image {r}/acme/python-orch:v9.9.9 does not exist: registry {r} has no manifest for \
             tag \"v9.9.9\" (HEAD http://{r}/v2/acme/python-orch/manifests/v9.9.9 answered 404)",
            r = bed.registry
        )
    );

    let two = [
        setting(&bed, "a", "acme/python-orch", "v9.9.9"),
        setting(&bed, "b", "acme/go-scanner", "v9.9.9"),
        setting(&bed, "c", "acme/no-such-repo", "v9.9.9"),
    ];
    let e = registry::verify(&reg, &two, "v9.9.9", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("3 of 3 images failed verification:"), "{e}");
    for name in ["acme/python-orch", "acme/go-scanner", "acme/no-such-repo"] {
        assert!(
            e.contains(&format!(
                "image {}/{name}:v9.9.9 does not exist",
                bed.registry
            )),
            "{e}"
        );
    }
}

#[tokio::test]
async fn pinning_gives_repository_at_digest() {
    let bed = Bed::load();
    let runner = Runner::new(false, None, None);
    let reg = Registry::new(registry::HostCredentials::default(), &runner).unwrap();
    let images = [
        setting(&bed, "image.ref", "acme/python-orch", "v1.2.0"),
        setting(&bed, "scanner.ref", "acme/go-scanner", "v1.2.0"),
    ];
    let v = registry::verify(&reg, &images, "v1.2.0", true)
        .await
        .unwrap();
    for (v, repo) in v.iter().zip(["acme/python-orch", "acme/go-scanner"]) {
        let digest = manifest_sha256(&bed, repo, "v1.2.0").await;
        assert_eq!(v.digest, digest);
        assert_eq!(v.deploy, format!("{}/{repo}@{digest}", bed.registry));
        assert_eq!(v.reference, format!("{}/{repo}:v1.2.0", bed.registry));
    }
    let unpinned = registry::verify(&reg, &images, "v1.2.0", false)
        .await
        .unwrap();
    assert_eq!(unpinned[0].deploy, images[0].reference);
}

// ---------------------------------------------------------------------------------------------
// Through the action.

/// A helm that records every invocation in `log`, then runs the bed's helm 3.
fn recording_helm(bed: &Bed, dir: &Path, log: &Path) -> PathBuf {
    let path = dir.join("helm");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            bed.helm3.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn deploy_flags(bed: &Bed, chart: &Path, ns: &str, version: &str) -> Vec<(&'static str, String)> {
    vec![
        ("chart", chart.display().to_string()),
        ("release", "app".into()),
        ("namespace", ns.into()),
        ("environment", "dev".into()),
        ("version", version.into()),
        (
            "images",
            format!("image.ref={}/acme/python-orch", bed.registry),
        ),
        ("set", format!("image.tag={version}\nscanner.enabled=false")),
        ("timeout", "90s".into()),
    ]
}

async fn orch_image(bed: &Bed, ns: &str) -> String {
    let d = Api::<Deployment>::namespaced(bed.client().await, ns)
        .get("app-orch")
        .await
        .unwrap();
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

fn helm_revision(bed: &Bed, ns: &str) -> String {
    let out = bed.run(
        bed.helm(3).args([
            "history",
            "app",
            "--namespace",
            ns,
            "--max",
            "1",
            "-o",
            "json",
        ]),
        Duration::from_secs(60),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    format!("{} {}", v[0]["revision"], v[0]["status"])
}

#[tokio::test]
async fn the_action_refuses_a_missing_tag_before_any_helm_call() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "reg-missing").await;
    let dir = tempfile::tempdir().unwrap();
    let chart = chart_with_image_ref(dir.path());

    // A good release first: revision 1 at v1.2.0.
    let first = run_action(&bed, dir.path(), &{
        let mut f = deploy_flags(&bed, &chart, &ns, "v1.2.0");
        f.push(("helm", bed.helm3.display().to_string()));
        f
    });
    assert!(first.success, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(helm_revision(&bed, &ns), "1 \"deployed\"");

    // v9.9.9 is not in the registry: refused, and helm never runs.
    let log = dir.path().join("helm-calls.log");
    let helm = recording_helm(&bed, dir.path(), &log);
    let mut flags = deploy_flags(&bed, &chart, &ns, "v9.9.9");
    flags.push(("helm", helm.display().to_string()));
    let run = run_action(&bed, dir.path(), &flags);
    assert!(!run.success, "{}\n{}", run.stdout, run.stderr);
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        all.contains(&format!(
            "image {}/acme/python-orch:v9.9.9 does not exist",
            bed.registry
        )),
        "{all}"
    );
    assert_eq!(
        run.outputs.get("status").map(String::as_str),
        Some("failed")
    );
    assert!(
        !log.exists(),
        "helm was called: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(helm_revision(&bed, &ns), "1 \"deployed\"");
    assert_eq!(
        orch_image(&bed, &ns).await,
        format!("{}/acme/python-orch:v1.2.0", bed.registry)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn digest_pinning_deploys_the_digest() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "reg-pin").await;
    let dir = tempfile::tempdir().unwrap();
    let chart = chart_with_image_ref(dir.path());
    let mut flags = deploy_flags(&bed, &chart, &ns, "v1.2.0");
    flags.push(("helm", bed.helm3.display().to_string()));
    flags.push(("pin-digests", "true".into()));
    let run = run_action(&bed, dir.path(), &flags);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);

    let digest = manifest_sha256(&bed, "acme/python-orch", "v1.2.0").await;
    let pinned = format!("{}/acme/python-orch@{digest}", bed.registry);
    assert_eq!(orch_image(&bed, &ns).await, pinned);
    let images: BTreeMap<String, String> = serde_json::from_str(&run.outputs["images"]).unwrap();
    assert_eq!(images["image.ref"], pinned);
    let digests: BTreeMap<String, String> = serde_json::from_str(&run.outputs["digests"]).unwrap();
    assert_eq!(digests["image.ref"], digest);
    assert_eq!(run.outputs["status"], "success");
    // The job summary's Images row shows the digest too.
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("| Images |"))
        .unwrap_or_else(|| panic!("no Images row in the summary: {}", run.stdout));
    assert!(row.contains(&format!("(`{digest}`)")), "{row}");
    delete_namespace(&client, &ns).await;
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens against a real token-authenticated registry (tests/common/token_registry.rs):
// acme/python-orch is public (anonymous tokens), acme/go-scanner private (user:pass only).

mod token_registry {
    pub(super) use super::common::token_registry::*;
    use super::*;

    #[tokio::test]
    async fn bearer_tokens_from_a_real_token_registry() {
        let bed = Bed::load();
        let TokenRegistry {
            host,
            token_port,
            tokens,
            ..
        } = &token_registry(&bed, "127.0.0.1").await;
        let (host, token_port) = (host.clone(), *token_port);
        let runner = Runner::new(false, None, None);
        let anonymous = Registry::new(registry::HostCredentials::default(), &runner).unwrap();
        let authed = Registry::new(creds_for(&host), &runner).unwrap();
        let public = ImageRef::parse(&format!("{host}/acme/python-orch"), "v1.2.0").unwrap();
        let private = ImageRef::parse(&format!("{host}/acme/go-scanner"), "v1.2.0").unwrap();

        // Public image, anonymous token: found, with the same digest as the bed's registry.
        let d = anonymous.manifest_digest(&public).await.unwrap();
        assert_eq!(d, manifest_sha256(&bed, "acme/python-orch", "v1.2.0").await);
        // Private image: anonymous is refused at the token service, naming the image.
        let e = anonymous
            .manifest_digest(&private)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "failed to get a registry token for image {host}/acme/go-scanner:v1.2.0 from \
                 http://127.0.0.1:{token_port}/token: HTTP 401"
            )),
            "{e}"
        );
        // With credentials: the token service gets Basic, the registry accepts its token.
        let d = authed.manifest_digest(&private).await.unwrap();
        assert_eq!(d, manifest_sha256(&bed, "acme/go-scanner", "v1.2.0").await);
        // A missing tag behind a valid token is a 404: does not exist.
        let missing = ImageRef::parse(&format!("{host}/acme/go-scanner"), "v9.9.9").unwrap();
        let e = authed.manifest_digest(&missing).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");

        let seen = tokens.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                ("repository:acme/python-orch:pull".to_string(), None),
                ("repository:acme/go-scanner:pull".to_string(), None),
                (
                    "repository:acme/go-scanner:pull".to_string(),
                    Some(BASIC.to_string())
                ),
            ],
            "one token per repository, reused for the second tag"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Issue #17, finding 1: the real token registry, its token realm on another host (127.0.0.2 is
// not 127.0.0.1): the credentials for the registry never reach the realm.

mod foreign_realm {
    use super::token_registry::*;
    use super::*;

    #[tokio::test]
    async fn a_token_realm_on_another_host_gets_no_credentials() {
        let bed = Bed::load();
        let reg = token_registry(&bed, "127.0.0.2").await;
        let host = reg.host.clone();
        let runner = Runner::new(false, None, None);
        let client = Registry::new(creds_for(&host), &runner).unwrap();
        // The public image: an anonymous token from the foreign realm is enough.
        let public = ImageRef::parse(&format!("{host}/acme/python-orch"), "v1.2.0").unwrap();
        let d = client.manifest_digest(&public).await.unwrap();
        assert_eq!(d, manifest_sha256(&bed, "acme/python-orch", "v1.2.0").await);
        // The private one: refused, saying the credentials were kept from that host.
        let private = ImageRef::parse(&format!("{host}/acme/go-scanner"), "v1.2.0").unwrap();
        let e = client
            .manifest_digest(&private)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "failed to get a registry token for image {host}/acme/go-scanner:v1.2.0 from \
                 http://127.0.0.2:{}/token: HTTP 401: anonymous access refused (the credentials \
                 for {host} are not sent to 127.0.0.2, another host)",
                reg.token_port
            )
        );
        let seen = reg.tokens.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen.iter().all(|(_, auth)| auth.is_none()),
            "the realm on 127.0.0.2 received credentials: {seen:?}"
        );
    }

    /// As a docker action runs it (INPUT_* only), with the `registry_username`/
    /// `registry_password` pair for the registry's host: the realm on 127.0.0.2 gets nothing, so
    /// the private image cannot be verified and the run stops before helm.
    // Multi-threaded: the token server must answer while the test waits for the binary.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_action_keeps_the_pair_from_a_foreign_realm() {
        let bed = Bed::load();
        let reg = token_registry(&bed, "127.0.0.2").await;
        let host = reg.host.clone();
        let dir = tempfile::tempdir().unwrap();
        let chart = chart_with_image_ref(dir.path());
        let log = dir.path().join("helm-calls.log");
        let helm = recording_helm(&bed, dir.path(), &log);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
        cmd.env_clear().current_dir(dir.path());
        for k in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        let ns = common::unique_name("reg-foreign");
        for (k, v) in [
            ("GITHUB_ACTIONS", "true".to_string()),
            ("GITHUB_EVENT_NAME", "push".into()),
            ("GITHUB_REF", "refs/heads/feature".into()),
            (
                "GITHUB_SHA",
                "0123456789abcdef0123456789abcdef01234567".into(),
            ),
            ("GITHUB_WORKSPACE", dir.path().display().to_string()),
            ("INPUT_CHART", chart.display().to_string()),
            ("INPUT_RELEASE", "app".into()),
            ("INPUT_NAMESPACE", ns.clone()),
            ("INPUT_ENVIRONMENT", "dev".into()),
            ("INPUT_VERSION", "v1.2.0".into()),
            (
                "INPUT_IMAGES",
                format!("scanner.image.ref={host}/acme/go-scanner"),
            ),
            ("INPUT_HELM", helm.display().to_string()),
            (
                "INPUT_KUBECONFIG",
                std::fs::read_to_string(&bed.kubeconfig).unwrap(),
            ),
            ("INPUT_REGISTRY_USERNAME", "user".into()),
            ("INPUT_REGISTRY_PASSWORD", "pass".into()),
            ("INPUT_REGISTRY_HOST", host.clone()),
        ] {
            cmd.env(k, v);
        }
        let out = run_with_deadline(&mut cmd, ACTION_TIMEOUT);
        let all = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let seen = reg.tokens.lock().unwrap().clone();
        assert!(
            !seen.is_empty() && seen.iter().all(|(_, a)| a.is_none()),
            "the realm on 127.0.0.2 received credentials: {seen:?}"
        );
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(
            all.contains(&format!(
                "::warning title=Registry credentials withheld::registry {host} asks for its \
                 token at 127.0.0.2, another host: the credentials for {host} are not sent there"
            )),
            "{all}"
        );
        assert!(!log.exists(), "helm was called");
    }

    /// Through the CLI: `registry_auth` for the registry, the realm elsewhere: the run fails on
    /// the private image before any helm call, the warning names both hosts, the realm got no
    /// credentials.
    // Multi-threaded: the token server must answer while the test waits for the binary.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_action_keeps_credentials_from_a_foreign_realm() {
        use base64::Engine as _;
        let bed = Bed::load();
        let reg = token_registry(&bed, "127.0.0.2").await;
        let host = reg.host.clone();
        let dir = tempfile::tempdir().unwrap();
        let chart = chart_with_image_ref(dir.path());
        let log = dir.path().join("helm-calls.log");
        let helm = recording_helm(&bed, dir.path(), &log);
        let auth = base64::engine::general_purpose::STANDARD.encode("user:pass");
        let mut flags = deploy_flags(&bed, &chart, "reg-foreign", "v1.2.0");
        flags.retain(|(k, _)| *k != "images");
        flags.push((
            "images",
            format!("scanner.image.ref={host}/acme/go-scanner"),
        ));
        flags.push(("helm", helm.display().to_string()));
        flags.push((
            "registry-auth",
            format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
        ));
        let run = run_action(&bed, dir.path(), &flags);
        assert!(!run.success, "{}\n{}", run.stdout, run.stderr);
        let all = format!("{}\n{}", run.stdout, run.stderr);
        assert!(
            all.contains(&format!(
                "registry {host} asks for its token at 127.0.0.2, another host: the credentials \
                 for {host} are not sent there"
            )),
            "{all}"
        );
        assert!(
            all.contains("anonymous access refused (the credentials"),
            "{all}"
        );
        let seen = reg.tokens.lock().unwrap().clone();
        assert!(
            !seen.is_empty() && seen.iter().all(|(_, a)| a.is_none()),
            "{seen:?}"
        );
        assert!(!log.exists(), "helm was called");
        assert!(!all.contains(&auth), "the auth was shown: {all}");
    }
}
