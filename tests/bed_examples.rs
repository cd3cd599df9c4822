//! The shipped examples on the bed: the example chart (examples/charts/traderadmin) lints and
//! renders with every environment's values under helm 3 and helm 4, installs and upgrades to
//! Ready on the cluster, and the action deploys it with exactly the least-privilege
//! ServiceAccount of examples/rbac/deployer.yaml, failing clearly with less (no Leases).
//! Needs a running bed (`make testbed-up`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    Bed, create_namespace, delete_namespace, http_get_via_port_forward, list_pods, repo_root,
    wait_for,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;

const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "prod"];
/// Deadline of one helm command.
const HELM_DEADLINE: Duration = Duration::from_secs(120);
/// Deadline of a rollout to Ready (the prod HPAs scale 1 → 2 on their 15 s sync).
const READY_DEADLINE: Duration = Duration::from_secs(150);
/// Deadline of one run of the action.
const ACTION_DEADLINE: Duration = Duration::from_secs(240);

fn chart() -> PathBuf {
    repo_root().join("examples/charts/traderadmin")
}

fn values(env: &str) -> PathBuf {
    repo_root().join(format!("deploy/values/values-{env}.yaml"))
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `--set-string` arguments for both images of the bed registry at `tag`, as the action sets them.
fn image_args(bed: &Bed, tag: &str) -> Vec<String> {
    vec![
        "--set-string".into(),
        format!("image.pythonOrch={}", bed.image("acme/python-orch", tag)),
        "--set-string".into(),
        format!("image.goScanner={}", bed.image("acme/go-scanner", tag)),
    ]
}

/// `helm template` of the chart with one environment's values (and the bed's images).
fn template(bed: &Bed, major: u8, env: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = bed.helm(major);
    cmd.args(["template", "traderadmin"])
        .arg(chart())
        .args(["--namespace", "trader", "-f"])
        .arg(values(env))
        .args(image_args(bed, "v1.2.0"))
        .args(extra);
    common::run_with_deadline(&mut cmd, HELM_DEADLINE)
}

/// The rendered documents of one kind.
fn docs_of_kind(rendered: &str, kind: &str) -> Vec<serde_yaml_ng::Value> {
    serde_yaml_ng::Deserializer::from_str(rendered)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &serde_yaml_ng::Value| v["kind"].as_str() == Some(kind))
        .collect()
}

fn lint_and_render(major: u8) {
    let bed = Bed::load();
    for env in ENVIRONMENTS {
        // helm lint reports a template's `fail` only as [INFO], so render too.
        let out = bed.run(
            bed.helm(major)
                .args(["lint", "--strict"])
                .arg(chart())
                .arg("-f")
                .arg(values(env)),
            HELM_DEADLINE,
        );
        let lint = text(&out);
        assert!(
            !lint.contains("[WARNING]") && !lint.contains("[ERROR]") && !lint.contains("Fail:"),
            "helm {major} lint with values-{env}.yaml is not clean:\n{lint}"
        );
        let out = template(&bed, major, env, &[]);
        assert!(
            out.status.success(),
            "helm {major} template {env}:\n{}",
            text(&out)
        );
        let rendered = String::from_utf8_lossy(&out.stdout).to_string();

        let deployments = docs_of_kind(&rendered, "Deployment");
        assert_eq!(deployments.len(), 2, "{env}: two Deployments");
        for d in &deployments {
            assert_eq!(
                d["spec"]["progressDeadlineSeconds"].as_u64(),
                Some(120),
                "{env}"
            );
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(
                c["livenessProbe"]["httpGet"]["path"].as_str(),
                Some("/health")
            );
            assert_eq!(
                c["readinessProbe"]["httpGet"]["path"].as_str(),
                Some("/ready")
            );
            assert!(
                c["image"].as_str().unwrap().ends_with(":v1.2.0"),
                "{env}: {c:?}"
            );
            let ports: Vec<&str> = c["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(ports, ["http", "metrics"], "{env}");
        }
        for kind in ["Service", "PodDisruptionBudget", "NetworkPolicy"] {
            let n = docs_of_kind(&rendered, kind).len();
            let want = if kind == "PodDisruptionBudget" && env == "dev" {
                0
            } else {
                2
            };
            assert_eq!(n, want, "{env}: {kind}s");
        }
        for kind in ["ConfigMap", "ServiceAccount", "Role", "RoleBinding"] {
            assert_eq!(docs_of_kind(&rendered, kind).len(), 1, "{env}: {kind}");
        }
        assert!(
            docs_of_kind(&rendered, "Secret").is_empty(),
            "{env}: the chart must never hold a Secret"
        );
        let cm = &docs_of_kind(&rendered, "ConfigMap")[0]["data"];
        let strategy = cm["strategy.yaml"].as_str().unwrap();
        for line in [
            "sma_period: 50",
            "candle_count: 2",
            "otm_offset: 1",
            "iv_threshold: 0.80",
            "min_reward_risk: 1.00",
        ] {
            assert!(
                strategy.contains(line),
                "{env}: strategy.yaml lacks {line:?}:\n{strategy}"
            );
        }
        let universe = cm["SCANNER_UNIVERSE"].as_str().unwrap().split(',').count();
        let hpas = docs_of_kind(&rendered, "HorizontalPodAutoscaler");
        let replicas = |name: &str| {
            let d = deployments
                .iter()
                .find(|d| d["metadata"]["name"].as_str() == Some(name))
                .unwrap();
            d["spec"]["replicas"].as_u64().or_else(|| {
                hpas.iter()
                    .find(|h| h["spec"]["scaleTargetRef"]["name"].as_str() == Some(name))
                    .and_then(|h| h["spec"]["minReplicas"].as_u64())
            })
        };
        let (orch, scanner) = (
            replicas("traderadmin-python-orch"),
            replicas("traderadmin-go-scanner"),
        );
        match env {
            "dev" => {
                assert_eq!((orch, scanner, universe), (Some(1), Some(1), 5));
                assert_eq!(cm["TWS_PORT"].as_str(), Some("7497"));
            }
            "staging" => {
                assert_eq!((orch, scanner, universe), (Some(1), Some(2), 10));
            }
            "prod" => {
                assert_eq!((orch, scanner, universe), (Some(2), Some(2), 15));
                assert_eq!(cm["TWS_PORT"].as_str(), Some("7496"));
                assert_eq!(hpas.len(), 2, "prod autoscales both");
            }
            _ => unreachable!(),
        }
        // The ServiceMonitor only when the cluster serves its CRD (prod enables it).
        assert!(
            docs_of_kind(&rendered, "ServiceMonitor").is_empty(),
            "{env}"
        );
        let with_crd = template(
            &bed,
            major,
            env,
            &["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"],
        );
        let n = docs_of_kind(&String::from_utf8_lossy(&with_crd.stdout), "ServiceMonitor").len();
        assert_eq!(
            n,
            usize::from(env == "prod"),
            "{env}: ServiceMonitor with the CRD"
        );
    }

    // The checks can fail: an image given as a repository/tag map, or without a tag.
    let out = common::run_with_deadline(
        bed.helm(major)
            .args(["template", "traderadmin"])
            .arg(chart())
            .args(["--set", "image.pythonOrch.repository=x"]),
        HELM_DEADLINE,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("image.pythonOrch must be one string holding the full image reference"),
        "{}",
        text(&out)
    );
    let out = template(
        &bed,
        major,
        "dev",
        &[
            "--set-string",
            "image.goScanner=127.0.0.1:45000/acme/go-scanner",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("has no tag or digest"),
        "{}",
        text(&out)
    );
}

#[test]
fn chart_lints_and_renders_every_environment_helm3() {
    lint_and_render(3);
}

#[test]
fn chart_lints_and_renders_every_environment_helm4() {
    lint_and_render(4);
}

/// Waits (a kube watch, with a deadline) until a Deployment has rolled out `replicas` Ready pods
/// of its current generation.
async fn wait_deployment_ready(client: &kube::Client, ns: &str, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let cond = move |d: Option<&Deployment>| {
        let Some(d) = d else { return false };
        let (Some(spec), Some(st)) = (&d.spec, &d.status) else {
            return false;
        };
        spec.replicas == Some(replicas)
            && st.observed_generation >= d.metadata.generation
            && st.updated_replicas == Some(replicas)
            && st.ready_replicas == Some(replicas)
            && st.available_replicas == Some(replicas)
            && st.replicas == Some(replicas)
    };
    let waited =
        tokio::time::timeout(READY_DEADLINE, await_condition(api.clone(), name, cond)).await;
    if !matches!(waited, Ok(Ok(_))) {
        let now = api.get_opt(name).await.ok().flatten();
        panic!(
            "deployment {ns}/{name} did not become Ready with {replicas} replicas within {READY_DEADLINE:?} ({waited:?}); status: {:?}",
            now.and_then(|d| d.status)
        );
    }
}

/// The body of GET /api/v1/status from a live orchestrator pod (through a port-forward).
async fn orch_status(client: &kube::Client, ns: &str) -> Result<String, String> {
    let pods = list_pods(client, ns, "app.kubernetes.io/component=python-orch").await;
    let pod = pods
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .and_then(|p| p.metadata.name.clone())
        .ok_or("no orchestrator pod")?;
    let r = http_get_via_port_forward(client, ns, &pod, 8080, "/api/v1/status").await?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!("{pod}: {r:?}"))
    }
}

/// Waits until the orchestrator answers its status with `version`.
async fn wait_orch_version(client: &kube::Client, ns: &str, version: &str) {
    let want = format!("\"version\":\"{version}\"");
    wait_for(
        &format!("the {version} orchestrator to answer"),
        READY_DEADLINE,
        || {
            let (client, ns, want) = (client.clone(), ns.to_string(), want.clone());
            async move {
                let body = orch_status(&client, &ns).await?;
                if body.contains(&want) {
                    Ok(())
                } else {
                    Err(body)
                }
            }
        },
    )
    .await;
}

async fn install_to_ready(major: u8) {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, &format!("examples-chart-h{major}")).await;
    let helm = |env: &str, tag: &str| {
        bed.run(
            bed.helm(major)
                .args(["upgrade", "--install", "traderadmin"])
                .arg(chart())
                .args(["--namespace", &ns, "-f"])
                .arg(values(env))
                .args(image_args(&bed, tag)),
            HELM_DEADLINE,
        )
    };

    // dev: one of each.
    helm("dev", "v1.1.0");
    wait_deployment_ready(&client, &ns, "traderadmin-python-orch", 1).await;
    wait_deployment_ready(&client, &ns, "traderadmin-go-scanner", 1).await;
    wait_orch_version(&client, &ns, "v1.1.0").await;

    // The same release upgraded with prod's values and a new version: two of each (the HPAs'
    // minimum), live TWS port, 15 symbols, the Services the smoke tests reach.
    helm("prod", "v1.2.0");
    wait_deployment_ready(&client, &ns, "traderadmin-python-orch", 2).await;
    wait_deployment_ready(&client, &ns, "traderadmin-go-scanner", 2).await;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("traderadmin-config")
        .await
        .expect("the strategy ConfigMap");
    let data = cm.data.unwrap_or_default();
    assert_eq!(data.get("TWS_PORT").map(String::as_str), Some("7496"));
    assert_eq!(data["SCANNER_UNIVERSE"].split(',').count(), 15);
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    for name in ["traderadmin", "traderadmin-go-scanner"] {
        let svc = services
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("service {name}: {e}"));
        let ports: Vec<String> = svc
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.name)
            .collect();
        assert_eq!(ports, ["http", "metrics"], "service {name}");
    }
    wait_orch_version(&client, &ns, "v1.2.0").await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_installs_and_upgrades_to_ready_helm3() {
    install_to_ready(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_installs_and_upgrades_to_ready_helm4() {
    install_to_ready(4).await;
}
