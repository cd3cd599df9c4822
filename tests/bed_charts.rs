//! Charts as people write them (issue #16), deployed by the action on the bed: the chart `helm
//! create` makes (image `repository` + `tag`) with the bed's helm 3 and helm 4, and a chart in
//! Bitnami's image shape (`registry`/`repository`/`tag`/`digest`, tests/fixtures/charts), each
//! with image verification and digest pinning, and a broken tag rolled back, with no chart
//! edits. Needs a running bed (`make testbed-up`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::case::copy_dir;
use common::cli_run::{ActionRun, action_command, action_run};
use common::{Bed, delete_namespace, repo_root, run_with_deadline, unique_name};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

/// sha256 of the manifest the bed registry serves for `repo:tag`, computed here.
async fn manifest_sha256(bed: &Bed, repo: &str, tag: &str) -> String {
    let bytes = reqwest::Client::new()
        .get(format!("http://{}/v2/{repo}/manifests/{tag}", bed.registry))
        .header(
            "Accept",
            trader_deploy::registry::MANIFEST_MEDIA_TYPES.join(", "),
        )
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("manifest");
    std::fs::write(&f, &bytes).unwrap();
    let out = Command::new("sha256sum").arg(&f).output().unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", hex.split_whitespace().next().unwrap())
}

/// Runs the action (plain CLI) with helm `major` and `flags`.
fn run(bed: &Bed, major: u8, ws: &Path, flags: &[(&str, String)]) -> ActionRun {
    let mut flags = flags.to_vec();
    flags.push(("helm", bed.helm_path(major).display().to_string()));
    let mut cmd = action_command(bed, ws, &flags);
    action_run(run_with_deadline(&mut cmd, Duration::from_secs(180)))
}

fn flags(
    chart: &str,
    ns: &str,
    version: &str,
    extra: &[(&str, &str)],
) -> Vec<(&'static str, String)> {
    let mut f: Vec<(&'static str, String)> = vec![
        ("chart", chart.into()),
        ("release", "app".into()),
        ("namespace", ns.into()),
        ("environment", "dev".into()),
        ("version", version.into()),
        ("timeout", "60s".into()),
    ];
    for (k, v) in extra {
        let k: &'static str = Box::leak(k.to_string().into_boxed_str());
        f.push((k, v.to_string()));
    }
    f
}

/// The image of the first container of Deployment `name` in `ns`.
async fn image_of(bed: &Bed, ns: &str, name: &str) -> String {
    let d = Api::<Deployment>::namespaced(bed.client().await, ns)
        .get(name)
        .await
        .unwrap();
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

/// Every file under `dir` with its bytes, to tell a workspace was left as it was.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), Vec::new());
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Deploys `chart` (relative to `ws`) at v1.2.0 with verification and pinning, then the
/// `crashloop` tag unpinned (kwok picks a pod's behaviour by the tag after the last `:`, which a
/// pinned reference does not end with), which is rolled back to the pinned image. Returns the
/// pinned image the Deployment ran.
async fn deploy_then_roll_back(
    bed: &Bed,
    major: u8,
    ws: &Path,
    chart: &str,
    ns: &str,
    deployment: &str,
    expect_pinned: impl Fn(&str) -> String,
    fields: &str,
) {
    let before = snapshot(ws);
    let images = format!("image={}/acme/python-orch", bed.registry);
    let good = run(
        bed,
        major,
        ws,
        &flags(
            chart,
            ns,
            "v1.2.0",
            &[
                ("images", &images),
                ("pin-digests", "true"),
                ("verify-images", "true"),
            ],
        ),
    );
    assert!(good.success, "{}", good.all());
    let digest = manifest_sha256(bed, "acme/python-orch", "v1.2.0").await;
    let pinned = expect_pinned(&digest);
    assert_eq!(image_of(bed, ns, deployment).await, pinned);
    let digests: BTreeMap<String, String> = serde_json::from_str(&good.outputs["digests"]).unwrap();
    assert_eq!(digests["image"], digest);
    // The plan and the summary say which fields were set.
    assert!(
        good.stdout.contains(&format!(
            "image = {}/acme/python-orch:v1.2.0 → {fields}",
            bed.registry
        )),
        "{}",
        good.stdout
    );
    let row = good
        .stdout
        .lines()
        .find(|l| l.starts_with("| Images |"))
        .unwrap_or_else(|| panic!("no Images row: {}", good.stdout));
    assert!(row.contains(&format!("→ {fields}")), "{row}");

    let bad = run(
        bed,
        major,
        ws,
        &flags(
            chart,
            ns,
            "crashloop",
            &[("images", &images), ("pin-digests", "false")],
        ),
    );
    assert!(!bad.success, "{}", bad.all());
    assert_eq!(bad.outputs["status"], "rolled_back", "{}", bad.all());
    assert_eq!(image_of(bed, ns, deployment).await, pinned);
    assert_eq!(snapshot(ws), before, "the workspace changed");
}

/// The chart `helm create` writes, made by the bed's helm 3 and helm 4, each deployed by the
/// same helm: `image.repository` and `image.tag` set, the digest in the tag
/// (`v1.2.0@sha256:…`: the chart has no digest field).
#[tokio::test]
async fn the_chart_helm_create_makes() {
    let bed = Bed::load();
    for major in [3u8, 4] {
        let ws = tempfile::tempdir().unwrap();
        bed.run(
            bed.helm(major)
                .arg("create")
                .arg("web")
                .current_dir(ws.path()),
            Duration::from_secs(30),
        );
        let ns = unique_name(&format!("charts-create-h{major}"));
        let registry = bed.registry.clone();
        deploy_then_roll_back(
            &bed,
            major,
            ws.path(),
            "web",
            &ns,
            "app-web",
            |d| format!("{registry}/acme/python-orch:v1.2.0@{d}"),
            "image.repository, image.tag",
        )
        .await;
        delete_namespace(&bed.client().await, &ns).await;
    }
}

/// Bitnami's shape: `image.registry` and `image.repository` apart, the digest in `image.digest`
/// (the chart then renders `registry/repository@digest`).
#[tokio::test]
async fn a_chart_in_bitnami_s_image_shape() {
    let bed = Bed::load();
    let ws = tempfile::tempdir().unwrap();
    copy_dir(
        &repo_root().join("tests/fixtures/charts/bitnami-shape"),
        &ws.path().join("chart"),
    );
    let ns = unique_name("charts-bitnami");
    let registry = bed.registry.clone();
    deploy_then_roll_back(
        &bed,
        4,
        ws.path(),
        "chart",
        &ns,
        "app-web",
        |d| format!("{registry}/acme/python-orch@{d}"),
        "image.registry, image.repository, image.tag, image.digest",
    )
    .await;
    delete_namespace(&bed.client().await, &ns).await;
}

/// A key the chart does not have: one line naming the key and the chart's image keys, before
/// anything (no registry, no cluster: the namespace is never made).
#[tokio::test]
async fn a_key_the_chart_lacks_is_refused_naming_its_image_keys() {
    let bed = Bed::load();
    let ws = tempfile::tempdir().unwrap();
    copy_dir(
        &repo_root().join("tests/fixtures/charts/bitnami-shape"),
        &ws.path().join("chart"),
    );
    let ns = unique_name("charts-refused");
    let images = format!("image.pythonOrch={}/acme/python-orch", bed.registry);
    let r = run(
        &bed,
        3,
        ws.path(),
        &flags("chart", &ns, "v1.2.0", &[("images", &images)]),
    );
    assert!(!r.success);
    assert!(
        r.all().lines().any(|l| l.contains(
            "input `images`: the chart has no value at key \"image.pythonOrch\"; image keys found: image"
        )),
        "{}",
        r.all()
    );
    let ns_api = Api::<k8s_openapi::api::core::v1::Namespace>::all(bed.client().await);
    assert!(ns_api.get_opt(&ns).await.unwrap().is_none());
}
