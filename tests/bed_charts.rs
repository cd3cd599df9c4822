//! Charts as people write them (issue #16), deployed by the action on the bed: the chart `helm
//! create` makes (image `repository` + `tag`) with the bed's helm 3 and helm 4, and a chart in
//! Bitnami's image shape (`registry`/`repository`/`tag`/`digest`, tests/fixtures/charts), each
//! with image verification and digest pinning, and a broken tag rolled back, with no chart
//! edits. Needs a running bed (`make testbed-up`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::case::copy_dir;
use common::cli_run::{ActionRun, action_command, action_run};
use common::{Bed, delete_namespace, manifest_sha256, repo_root, run_with_deadline, unique_name};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

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

/// One chart of an image shape, deployed with helm `major` from workspace `ws` into `ns`.
struct ShapeCase<'a> {
    major: u8,
    ws: &'a Path,
    /// The chart, relative to `ws`.
    chart: &'a str,
    ns: &'a str,
    /// The Deployment that runs the image.
    deployment: &'a str,
    /// The fields the plan and the summary say were set.
    fields: &'a str,
}

/// Deploys `chart` (relative to `ws`) at v1.2.0 with verification and pinning, then the
/// `crashloop` tag unpinned (kwok picks a pod's behaviour by the tag after the last `:`, which a
/// pinned reference does not end with), which is rolled back to the pinned image. Returns the
/// pinned image the Deployment ran.
async fn deploy_then_roll_back(
    bed: &Bed,
    case: ShapeCase<'_>,
    expect_pinned: impl Fn(&str) -> String,
) {
    let ShapeCase {
        major,
        ws,
        chart,
        ns,
        deployment,
        fields,
    } = case;
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
        let case = ShapeCase {
            major,
            ws: ws.path(),
            chart: "web",
            ns: &ns,
            deployment: "app-web",
            fields: "image.repository, image.tag",
        };
        deploy_then_roll_back(&bed, case, |d| {
            format!("{registry}/acme/python-orch:v1.2.0@{d}")
        })
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
    let case = ShapeCase {
        major: 4,
        ws: ws.path(),
        chart: "chart",
        ns: &ns,
        deployment: "app-web",
        fields: "image.registry, image.repository, image.tag, image.digest",
    };
    deploy_then_roll_back(&bed, case, |d| format!("{registry}/acme/python-orch@{d}")).await;
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

// ---------------------------------------------------------------------------------------------
// Dependencies and chart sources: charts made here, packaged and pushed with the bed's helm.

/// Writes a chart `name` at `version` that renders one ConfigMap `<release>-<name>`, with
/// `dependencies` (Chart.yaml text, may be empty).
fn write_chart(dir: &Path, name: &str, version: &str, dependencies: &str) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\n{dependencies}"),
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "greeting: hello\n").unwrap();
    std::fs::write(
        dir.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  version: {{ .Chart.Version | quote }}\n",
    )
    .unwrap();
}

/// `helm package` of the chart in `dir` into `dest`; the package's path.
fn package(bed: &Bed, dir: &Path, dest: &Path) -> PathBuf {
    std::fs::create_dir_all(dest).unwrap();
    let out = bed.run(
        bed.helm(3).arg("package").arg(dir).arg("-d").arg(dest),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(text.trim().rsplit(": ").next().unwrap())
}

/// `helm push` of a package to `oci://<bed registry>/<repo>`.
fn push(bed: &Bed, tgz: &Path, repo: &str) {
    bed.run(
        bed.helm(3)
            .arg("push")
            .arg(tgz)
            .arg(format!("oci://{}/{repo}", bed.registry))
            .arg("--plain-http"),
        Duration::from_secs(30),
    );
}

/// The data of ConfigMap `name` in `ns`.
async fn config_map(bed: &Bed, ns: &str, name: &str) -> BTreeMap<String, String> {
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(bed.client().await, ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("ConfigMap {name} in {ns}: {e}"))
        .data
        .unwrap_or_default()
}

async fn namespace_exists(bed: &Bed, ns: &str) -> bool {
    Api::<k8s_openapi::api::core::v1::Namespace>::all(bed.client().await)
        .get_opt(ns)
        .await
        .unwrap()
        .is_some()
}

/// `{"auths": {host: {"auth": base64(user:pass)}}}`.
fn auths(host: &str, user: &str, pass: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#)
}

/// A chart whose dependency is in the bed's OCI registry (pushed with `helm push`), not
/// vendored, and another beside it in the workspace (`file://`): the action builds them in a
/// copy; the workspace is unchanged.
#[tokio::test]
async fn a_dependency_from_the_oci_registry() {
    let bed = Bed::load();
    let tmp = tempfile::tempdir().unwrap();
    let repo = unique_name("charts-dep");
    write_chart(&tmp.path().join("dep"), "dep", "0.1.0", "");
    push(
        &bed,
        &package(&bed, &tmp.path().join("dep"), &tmp.path().join("pkg")),
        &repo,
    );

    let ws = tempfile::tempdir().unwrap();
    // And a neighbour in the workspace (`file://../common`), which the copy still finds.
    write_chart(&ws.path().join("common"), "common", "0.3.0", "");
    write_chart(
        &ws.path().join("app"),
        "app",
        "1.0.0",
        &format!(
            "dependencies:\n- name: dep\n  version: 0.1.0\n  repository: oci://{}/{repo}\n\
             - name: common\n  version: 0.3.0\n  repository: file://../common\n",
            bed.registry
        ),
    );
    let before = snapshot(ws.path());
    let ns = unique_name("charts-ocidep");
    let r = run(&bed, 3, ws.path(), &flags("app", &ns, "v1.0.0", &[]));
    assert!(r.success, "{}", r.all());
    assert!(
        r.stdout.contains("Build chart dependencies"),
        "{}",
        r.stdout
    );
    assert_eq!(config_map(&bed, &ns, "app-dep").await["version"], "0.1.0");
    assert_eq!(config_map(&bed, &ns, "app-app").await["greeting"], "hello");
    assert_eq!(
        config_map(&bed, &ns, "app-common").await["version"],
        "0.3.0"
    );
    assert_eq!(snapshot(ws.path()), before, "the workspace changed");
    delete_namespace(&bed.client().await, &ns).await;
}

/// A static file server on loopback behind basic auth (`user:pass`), as a classic chart
/// repository is served; records (path, authorized) of every request.
async fn basic_auth_server(
    root: PathBuf,
    user: &str,
    pass: &str,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>) {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (root, log, want) = (root.clone(), log.clone(), want.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let authorized = text.lines().skip(1).any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == want
                    })
                });
                log.lock().unwrap().push((path.clone(), authorized));
                let file = root.join(path.trim_start_matches('/').split('?').next().unwrap());
                let (status, body) = if !authorized {
                    ("401 Unauthorized", b"unauthorized\n".to_vec())
                } else {
                    match std::fs::read(&file) {
                        Ok(b) if file.starts_with(&root) => ("200 OK", b),
                        _ => ("404 Not Found", b"not found\n".to_vec()),
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nWWW-Authenticate: Basic realm=\"charts\"\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, seen)
}

/// A classic chart repository (a directory with `helm repo index`'s index.yaml) behind basic
/// auth: a chart depending on it deploys with `chart_auth` (built in a copy, the workspace
/// unchanged), the repository's own chart deploys through `chart_repository` at a
/// `chart_version`, and without credentials the dependency build fails before the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn a_classic_repository_behind_basic_auth() {
    const PASS: &str = "chart-pass-canary-5e1f";
    let bed = Bed::load();
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("repo");
    for v in ["0.1.0", "0.2.0"] {
        write_chart(&tmp.path().join(format!("dep-{v}")), "dep", v, "");
        package(&bed, &tmp.path().join(format!("dep-{v}")), &served);
    }
    bed.run(
        bed.helm(4).args(["repo", "index"]).arg(&served),
        Duration::from_secs(30),
    );
    let (port, seen) = basic_auth_server(served.clone(), "chartuser", PASS).await;
    let host = format!("127.0.0.1:{port}");
    let auth = auths(&host, "chartuser", PASS);

    let ws = tempfile::tempdir().unwrap();
    write_chart(
        &ws.path().join("app"),
        "app",
        "1.0.0",
        &format!("dependencies:\n- name: dep\n  version: 0.1.0\n  repository: http://{host}\n"),
    );
    let before = snapshot(ws.path());
    // Without credentials: refused in the dependency group, the cluster untouched.
    let ns = unique_name("charts-repodep");
    let r = run(&bed, 4, ws.path(), &flags("app", &ns, "v1.0.0", &[]));
    assert!(!r.success, "{}", r.all());
    assert!(
        r.all()
            .contains("failed to build the dependencies of chart \"app\": dep 0.1.0"),
        "{}",
        r.all()
    );
    assert!(!namespace_exists(&bed, &ns).await);

    let r = run(
        &bed,
        4,
        ws.path(),
        &flags("app", &ns, "v1.0.0", &[("chart-auth", &auth)]),
    );
    assert!(r.success, "{}", r.all());
    assert_eq!(config_map(&bed, &ns, "app-dep").await["version"], "0.1.0");
    assert_eq!(snapshot(ws.path()), before, "the workspace changed");
    assert!(!r.all().contains(PASS), "the password was shown");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|(p, ok)| *ok && p.ends_with("dep-0.1.0.tgz")),
        "{:?}",
        seen.lock().unwrap()
    );

    // The repository's own chart, by name, at a version.
    let ns2 = unique_name("charts-repo");
    let r = run(
        &bed,
        3,
        ws.path(),
        &flags(
            "dep",
            &ns2,
            "v1.0.0",
            &[
                ("chart-repository", &format!("http://{host}")),
                ("chart-version", "0.1.0"),
                ("chart-auth", &auth),
            ],
        ),
    );
    assert!(r.success, "{}", r.all());
    assert_eq!(config_map(&bed, &ns2, "app-dep").await["version"], "0.1.0");
    for ns in [ns, ns2] {
        delete_namespace(&bed.client().await, &ns).await;
    }
}

/// An OCI chart at a `chart_version` from a registry that needs credentials (a token registry
/// on the bed's storage, tests/common/token_registry.rs): deployed with `chart_auth`; without
/// it refused with one line naming the host, before the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn an_oci_chart_at_a_version_from_a_registry_that_needs_credentials() {
    let bed = Bed::load();
    let tmp = tempfile::tempdir().unwrap();
    let repo = unique_name("charts-app");
    for v in ["0.1.0", "0.2.0"] {
        write_chart(&tmp.path().join(format!("app-{v}")), "web", v, "");
        push(
            &bed,
            &package(
                &bed,
                &tmp.path().join(format!("app-{v}")),
                &tmp.path().join("pkg"),
            ),
            &repo,
        );
    }
    let reg = common::token_registry::token_registry(&bed, "127.0.0.1").await;
    let chart = format!("oci://{}/{repo}/web", reg.host);
    let ws = tempfile::tempdir().unwrap();

    let ns = unique_name("charts-ociauth");
    let r = run(
        &bed,
        4,
        ws.path(),
        &flags(
            &chart,
            &ns,
            "v1.0.0",
            &[
                ("chart-version", "0.1.0"),
                ("chart-auth", &auths(&reg.host, "user", "pass")),
            ],
        ),
    );
    assert!(r.success, "{}", r.all());
    assert_eq!(config_map(&bed, &ns, "app-web").await["version"], "0.1.0");

    let ns2 = unique_name("charts-ocinoauth");
    let r = run(
        &bed,
        3,
        ws.path(),
        &flags(&chart, &ns2, "v1.0.0", &[("chart-version", "0.1.0")]),
    );
    assert!(!r.success, "{}", r.all());
    let want = format!(
        "failed to fetch chart {chart} version 0.1.0: {} refused access (no credentials for {} given: add them to chart_auth)",
        reg.host, reg.host
    );
    assert!(
        r.all().lines().any(|l| l.ends_with(&want)),
        "no line ending {want:?} in:\n{}",
        r.all()
    );
    assert!(!namespace_exists(&bed, &ns2).await);
    delete_namespace(&bed.client().await, &ns).await;
}
