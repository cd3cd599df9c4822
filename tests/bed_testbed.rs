//! Proves the test bed is real: helm 3 and 4 install the test chart into the kwok cluster and it
//! becomes Ready, failure tags fail the way real clusters fail, port-forwards reach the fake app,
//! and the registry serves the pushed tags. Needs a running bed: `make testbed-up`, or
//! `testbed/with-bed.sh cargo test --features bed --test bed_testbed`.

mod common;

use std::time::Duration;

use common::{
    Bed, create_namespace, delete_namespace, http_get_via_port_forward, list_pods, testapp_chart,
    wait_for,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::Api;

const HELM_TIMEOUT: Duration = Duration::from_secs(150);
const ORCH: &str = "app.kubernetes.io/component=orch";
const SCANNER: &str = "app.kubernetes.io/component=scanner";

/// `helm upgrade --install` of the test chart with `--set` values; `wait` adds `--wait`.
fn helm_install(bed: &Bed, major: u8, ns: &str, release: &str, sets: &[String], wait: bool) {
    let mut cmd = bed.helm(major);
    cmd.args(["upgrade", "--install", release])
        .arg(testapp_chart())
        .args(["--namespace", ns, "--timeout", "120s"]);
    if wait {
        cmd.arg("--wait");
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    bed.run(&mut cmd, HELM_TIMEOUT);
}

fn images(bed: &Bed, orch_tag: &str, scanner_tag: &str) -> Vec<String> {
    vec![
        format!(
            "image.repository={}/acme/python-orch",
            bed.registry.as_str()
        ),
        format!("image.tag={orch_tag}"),
        format!(
            "scanner.image.repository={}/acme/go-scanner",
            bed.registry.as_str()
        ),
        format!("scanner.image.tag={scanner_tag}"),
    ]
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn container_statuses(p: &Pod) -> Vec<ContainerStatus> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
}

fn waiting_reason(cs: &ContainerStatus) -> Option<String> {
    cs.state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
}

fn describe(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let cs: Vec<String> = container_statuses(p)
                .iter()
                .map(|c| {
                    format!(
                        "{}(ready={} restarts={} waiting={:?})",
                        c.name,
                        c.ready,
                        c.restart_count,
                        waiting_reason(c)
                    )
                })
                .collect();
            format!(
                "{} phase={} ready={} {}",
                p.metadata.name.clone().unwrap_or_default(),
                phase(p),
                is_ready(p),
                cs.join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Installs v1.0.0 with helm `major`, checks it Ready, upgrades to v1.1.0 and checks the rollout.
async fn chart_becomes_ready(major: u8) {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, &format!("helm{major}-ready")).await;
    helm_install(
        &bed,
        major,
        &ns,
        "app",
        &images(&bed, "v1.0.0", "v1.0.0"),
        true,
    );

    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let check = |version: &'static str| {
        let deps = deps.clone();
        let sts = sts.clone();
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let d = deps.get("app-orch").await.map_err(|e| e.to_string())?;
            let ds = d.status.clone().unwrap_or_default();
            let available = ds
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            if ds.ready_replicas != Some(2)
                || ds.updated_replicas != Some(2)
                || ds.replicas != Some(2)
                || !available
            {
                return Err(format!("deployment status {:?}", d.status));
            }
            let s = sts.get("app-scanner").await.map_err(|e| e.to_string())?;
            let ss = s.status.clone().unwrap_or_default();
            if ss.ready_replicas != Some(1) || ss.current_revision != ss.update_revision {
                return Err(format!("statefulset status {:?}", s.status));
            }
            let pods = list_pods(&client, &ns, "app.kubernetes.io/instance=app").await;
            let want = [
                format!("acme/python-orch:{version}"),
                format!("acme/go-scanner:{version}"),
            ];
            let ok = pods.len() == 3
                && pods.iter().all(|p| {
                    is_ready(p)
                        && phase(p) == "Running"
                        && container_statuses(p)
                            .iter()
                            .all(|c| c.ready && want.iter().any(|w| c.image.ends_with(w)))
                });
            if !ok {
                return Err(format!("pods: {}", describe(&pods)));
            }
            Ok(())
        }
    };
    wait_for(
        &format!("helm {major} release v1.0.0 Ready in {ns}"),
        Duration::from_secs(60),
        || check("v1.0.0"),
    )
    .await;

    helm_install(
        &bed,
        major,
        &ns,
        "app",
        &images(&bed, "v1.1.0", "v1.1.0"),
        true,
    );
    wait_for(
        &format!("helm {major} upgrade to v1.1.0 rolled out in {ns}"),
        Duration::from_secs(60),
        || check("v1.1.0"),
    )
    .await;
    // The controller-manager really rolled the Deployment: a second ReplicaSet, the old one at 0.
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let sets = rs
        .list(&kube::api::ListParams::default().labels(ORCH))
        .await
        .expect("list replicasets")
        .items;
    assert_eq!(sets.len(), 2, "two ReplicaSets after one upgrade");
    assert!(
        sets.iter()
            .any(|r| r.spec.as_ref().and_then(|s| s.replicas) == Some(0)),
        "the old ReplicaSet is scaled to 0"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn helm3_installs_testapp_and_it_becomes_ready() {
    chart_becomes_ready(3).await;
}

#[tokio::test]
async fn helm4_installs_testapp_and_it_becomes_ready() {
    chart_becomes_ready(4).await;
}

#[tokio::test]
async fn broken_pull_and_missing_tags_stay_in_image_pull_backoff() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "broken-pull").await;
    // broken-pull on the Deployment, the never-pushed v9.9.9 on the StatefulSet.
    helm_install(
        &bed,
        3,
        &ns,
        "app",
        &images(&bed, "broken-pull", "v9.9.9"),
        false,
    );
    for selector in [ORCH, SCANNER] {
        let pods = wait_for(
            &format!("{selector} pods in ImagePullBackOff in {ns}"),
            Duration::from_secs(60),
            || {
                let client = client.clone();
                let ns = ns.clone();
                async move {
                    let pods = list_pods(&client, &ns, selector).await;
                    let all = !pods.is_empty()
                        && pods.iter().all(|p| {
                            phase(p) == "Pending"
                                && !is_ready(p)
                                && container_statuses(p).iter().any(|c| {
                                    waiting_reason(c).as_deref() == Some("ImagePullBackOff")
                                })
                        });
                    if all { Ok(pods) } else { Err(describe(&pods)) }
                }
            },
        )
        .await;
        assert!(pods.iter().all(|p| {
            container_statuses(p)
                .iter()
                .all(|c| !c.ready && c.restart_count == 0)
        }));
    }
    // And it stays that way: no stage turns them Ready later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pods = list_pods(&client, &ns, "app.kubernetes.io/instance=app").await;
    assert!(
        pods.iter().all(|p| !is_ready(p) && phase(p) == "Pending"),
        "{}",
        describe(&pods)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn crashloop_tag_gives_crashloopbackoff_with_growing_restarts() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "crashloop").await;
    let mut sets = images(&bed, "crashloop", "v1.0.0");
    sets.push("scanner.enabled=false".into());
    sets.push("replicas=1".into());
    helm_install(&bed, 4, &ns, "app", &sets, false);
    let crashing = |min_restarts: i32| {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let pods = list_pods(&client, &ns, ORCH).await;
            let restarts = pods
                .iter()
                .filter(|p| phase(p) == "Running" && !is_ready(p))
                .flat_map(container_statuses)
                .filter(|c| waiting_reason(c).as_deref() == Some("CrashLoopBackOff") && !c.ready)
                .map(|c| c.restart_count)
                .min();
            match restarts {
                Some(r) if pods.len() == 1 && r >= min_restarts => Ok(r),
                _ => Err(describe(&pods)),
            }
        }
    };
    let first = wait_for(
        "crashloop pod in CrashLoopBackOff with restarts",
        Duration::from_secs(60),
        || crashing(1),
    )
    .await;
    let later = wait_for(
        "crashloop pod restarting again",
        Duration::from_secs(30),
        || crashing(first + 1),
    )
    .await;
    assert!(later > first);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn never_ready_deployment_hits_progress_deadline_exceeded() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "never-ready").await;
    let mut sets = images(&bed, "never-ready", "v1.0.0");
    sets.push("scanner.enabled=false".into());
    sets.push("progressDeadlineSeconds=10".into());
    helm_install(&bed, 3, &ns, "app", &sets, false);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for(
        "Progressing=False ProgressDeadlineExceeded",
        Duration::from_secs(90),
        || {
            let deps = deps.clone();
            async move {
                let d = deps.get("app-orch").await.map_err(|e| e.to_string())?;
                let conds = d
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.clone())
                    .unwrap_or_default();
                if conds.iter().any(|c| {
                    c.type_ == "Progressing"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                }) {
                    Ok(())
                } else {
                    Err(format!("conditions {conds:?}"))
                }
            }
        },
    )
    .await;
    let pods = list_pods(&client, &ns, ORCH).await;
    assert!(!pods.is_empty());
    assert!(
        pods.iter().all(|p| phase(p) == "Running" && !is_ready(p)),
        "never-ready pods are Running and not Ready: {}",
        describe(&pods)
    );
    delete_namespace(&client, &ns).await;
}

async fn ready_pod(client: &kube::Client, ns: &str, selector: &str) -> String {
    wait_for(
        &format!("a Ready pod {selector} in {ns}"),
        Duration::from_secs(60),
        || {
            let client = client.clone();
            async move {
                let pods = list_pods(&client, ns, selector).await;
                pods.iter()
                    .find(|p| is_ready(p))
                    .and_then(|p| p.metadata.name.clone())
                    .ok_or_else(|| describe(&pods))
            }
        },
    )
    .await
}

#[tokio::test]
async fn port_forward_reaches_the_fake_app_per_version() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "port-forward").await;
    // The orchestrator healthy at v1.2.0, the scanner at unready-app.
    helm_install(
        &bed,
        4,
        &ns,
        "app",
        &images(&bed, "v1.2.0", "unready-app"),
        false,
    );
    let orch = ready_pod(&client, &ns, ORCH).await;
    let health = http_get_via_port_forward(&client, &ns, &orch, 8080, "/health")
        .await
        .expect("GET /health through the port-forward");
    assert_eq!(health.status, 200, "{health:?}");
    let status = http_get_via_port_forward(&client, &ns, &orch, 8080, "/api/v1/status")
        .await
        .expect("GET /api/v1/status");
    let json: serde_json::Value = serde_json::from_str(&status.body).expect("status JSON");
    assert_eq!(json["status"], "ok");
    assert_eq!(json["version"], "v1.2.0");
    let metrics = http_get_via_port_forward(&client, &ns, &orch, 8080, "/metrics")
        .await
        .expect("GET /metrics");
    assert!(
        metrics
            .body
            .contains("http_requests_total{path=\"/health\",code=\"200\"} 1"),
        "{}",
        metrics.body
    );

    // unready-app: Kubernetes says Ready (kwok runs no probes), the app says 503 on /ready.
    let scanner = ready_pod(&client, &ns, SCANNER).await;
    let ready = http_get_via_port_forward(&client, &ns, &scanner, 8080, "/ready")
        .await
        .expect("GET /ready on unready-app");
    assert_eq!(ready.status, 503, "{ready:?}");
    let health = http_get_via_port_forward(&client, &ns, &scanner, 8080, "/health")
        .await
        .expect("GET /health on unready-app");
    assert_eq!(health.status, 200, "{health:?}");

    // The control endpoint: a cutover blip of two 503s for v1.2.0 in this namespace.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/control", bed.app_url))
        .json(&serde_json::json!({"namespace": ns, "version": "v1.2.0", "fail_next": 2}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("POST /control");
    assert!(resp.status().is_success(), "{resp:?}");
    let mut codes = Vec::new();
    for _ in 0..3 {
        let r = http_get_via_port_forward(&client, &ns, &orch, 8080, "/ready")
            .await
            .expect("GET /ready");
        codes.push(r.status);
    }
    assert_eq!(codes, vec![503, 503, 200]);

    // The request log of the namespace shows what went through.
    let log: Vec<serde_json::Value> = http
        .get(format!("{}/requests", bed.app_url))
        .query(&[("namespace", ns.as_str())])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("GET /requests")
        .json()
        .await
        .expect("request log JSON");
    assert!(
        log.iter()
            .any(|e| e["version"] == "unready-app" && e["path"] == "/ready" && e["status"] == 503),
        "{log:?}"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn registry_serves_pushed_tags_and_404s_the_missing_one() {
    let bed = Bed::load();
    let http = reqwest::Client::new();
    let head = |repo: &'static str, tag: &'static str| {
        http.head(format!("http://{}/v2/{repo}/manifests/{tag}", bed.registry))
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            )
            .timeout(Duration::from_secs(10))
            .send()
    };
    let tags = [
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
    let mut digests = std::collections::HashSet::new();
    for repo in ["acme/python-orch", "acme/go-scanner"] {
        for tag in tags {
            let r = head(repo, tag).await.expect("HEAD manifest");
            assert_eq!(r.status(), 200, "{repo}:{tag}");
            let digest = r
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(
                digest.starts_with("sha256:"),
                "{repo}:{tag} digest {digest:?}"
            );
            digests.insert(digest);
        }
        let r = head(repo, "v9.9.9").await.expect("HEAD missing manifest");
        assert_eq!(r.status(), 404, "{repo}:v9.9.9 must be missing");
    }
    assert_eq!(
        digests.len(),
        2 * tags.len(),
        "every image has its own digest"
    );
}
