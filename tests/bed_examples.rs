//! The shipped examples on the bed: the example chart (examples/charts/traderadmin) lints and
//! renders with every environment's values under helm 3 and helm 4, installs and upgrades to
//! Ready on the cluster, and the action deploys it with exactly the least-privilege
//! ServiceAccount of examples/rbac/deployer.yaml (its short-lived TokenRequest token), failing
//! clearly with less (no Leases).
//! Needs a running bed (`make testbed-up`).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{
    Bed, create_namespace, delete_namespace, http_get_via_port_forward, list_pods, parse_outputs,
    repo_root, wait_for,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
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
fn docs_of_kind(rendered: &str, kind: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(rendered)
        .expect("helm renders YAML")
        .into_iter()
        .filter(|v| v["kind"].as_str() == Some(kind))
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
            for labels in [
                &d["metadata"]["labels"],
                &d["spec"]["template"]["metadata"]["labels"],
            ] {
                assert_eq!(
                    labels["app.kubernetes.io/version"].as_str(),
                    Some("v1.2.0"),
                    "{env}: the version label is the image's tag"
                );
            }
            let ports: Vec<&str> = c["ports"]
                .as_array()
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

    // The checks can fail. An image given as a repository/tag map: values.schema.json refuses
    // it, in `helm lint` as in `helm template`.
    for cmd in ["lint", "template"] {
        let mut c = bed.helm(major);
        if cmd == "template" {
            c.args(["template", "traderadmin"]);
        } else {
            c.arg("lint");
        }
        let out = common::run_with_deadline(
            c.arg(chart())
                .args(["--set", "image.pythonOrch.repository=x"]),
            HELM_DEADLINE,
        );
        assert!(
            !out.status.success(),
            "helm {major} {cmd} took an image map"
        );
        assert!(
            text(&out).contains("/image/pythonOrch") && text(&out).contains("want string"),
            "helm {major} {cmd}: {}",
            text(&out)
        );
    }
    // A secret value where only a Secret's name belongs.
    let out = common::run_with_deadline(
        bed.helm(major).arg("lint").arg(chart()).args([
            "--set-json",
            r#"secretRefs.pythonOrch=[{"name":"ibkr","value":"hunter2"}]"#,
        ]),
        HELM_DEADLINE,
    );
    assert!(
        !out.status.success(),
        "helm {major} lint took a secret value"
    );
    assert!(text(&out).contains("'value' not allowed"), "{}", text(&out));
    // An image without a tag: the template's own check (the schema cannot see it).
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

    // What the HPA chose survives an upgrade: scale the scanner to 3 (as the HPA would under
    // load), upgrade again, and it stays at 3 instead of dropping to the chart's 2.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .patch_scale(
            "traderadmin-go-scanner",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale the scanner to 3");
    wait_deployment_ready(&client, &ns, "traderadmin-go-scanner", 3).await;
    helm("prod", "v1.2.0");
    wait_deployment_ready(&client, &ns, "traderadmin-go-scanner", 3).await;
    wait_deployment_ready(&client, &ns, "traderadmin-python-orch", 2).await;
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

// ---------------------------------------------------------------------------------------------
// The action with exactly the deploying ServiceAccount of examples/rbac/deployer.yaml.

/// examples/rbac/deployer.yaml with its namespace `trader` replaced by `ns`, as JSON documents.
fn deployer_docs(ns: &str) -> Vec<serde_json::Value> {
    let path = repo_root().join("examples/rbac/deployer.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = regex::Regex::new(r"(?m)namespace: trader$")
        .unwrap()
        .replace_all(&text, format!("namespace: {ns}"))
        .replace("resourceNames: [trader]", &format!("resourceNames: [{ns}]"));
    assert!(!text.contains(": trader\n"), "a `trader` left in {text}");
    serde_saphyr::from_multiple(&text).expect("YAML documents")
}

fn doc_of<T: serde::de::DeserializeOwned>(docs: &[serde_json::Value], kind: &str) -> T {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in examples/rbac/deployer.yaml"));
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// Applies the deployer's objects (as the cluster admin) and returns a kubeconfig that holds
/// only the ServiceAccount's token.
async fn deployer_kubeconfig(bed: &Bed, client: &kube::Client, ns: &str) -> String {
    let docs = deployer_docs(ns);
    let pp = PostParams::default();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&pp, &doc_of(&docs, "ServiceAccount"))
        .await
        .expect("create the deployer ServiceAccount");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&pp, &doc_of(&docs, "Role"))
        .await
        .expect("create the deployer Role");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&pp, &doc_of(&docs, "RoleBinding"))
        .await
        .expect("create the deployer RoleBinding");
    assert!(
        docs.iter().all(|d| d["kind"] != "Secret"),
        "the example creates no long-lived token Secret"
    );
    // The short-lived token deployer.yaml's header makes (`kubectl create token`: a TokenRequest).
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }))
    .unwrap();
    let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request("trader-deploy", &pp, &request)
        .await
        .expect("a TokenRequest for the deployer ServiceAccount")
        .status
        .expect("the token")
        .token;

    let admin = kube::config::Kubeconfig::read_from(&bed.kubeconfig).expect("bed kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("a cluster");
    let ca = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => data.clone(),
        (None, Some(file)) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(file).unwrap())
        }
        (None, None) => panic!("the bed's kubeconfig has no CA"),
    };
    serde_json::to_string(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bed", "cluster": {
            "server": cluster.server.expect("a server"),
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": "trader-deploy", "user": {"token": token}}],
        "contexts": [{"name": "deployer", "context": {
            "cluster": "bed", "user": "trader-deploy", "namespace": ns,
        }}],
        "current-context": "deployer",
    }))
    .unwrap()
}

/// One run of the action on the example chart, as the examples/workflows run it.
struct Run {
    code: Option<i32>,
    log: String,
    outputs: BTreeMap<String, String>,
}

fn run_action(bed: &Bed, major: u8, ns: &str, kubeconfig: &str, version: &str) -> Run {
    run_action_in(bed, major, ns, kubeconfig, version, "dev")
}

/// The action's run as deploy-manual.yml does it for `environment` (its values file by default).
fn run_action_in(
    bed: &Bed,
    major: u8,
    ns: &str,
    kubeconfig: &str,
    version: &str,
    environment: &str,
) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
    for (k, _) in std::env::vars() {
        if k.starts_with("INPUT_") || k.starts_with("GITHUB_") || k == "KUBECONFIG" {
            cmd.env_remove(k);
        }
    }
    let images = format!(
        "image.pythonOrch={}/acme/python-orch\nimage.goScanner={}/acme/go-scanner",
        bed.registry, bed.registry
    );
    let inputs = [
        ("chart", "examples/charts/traderadmin"),
        ("namespace", ns),
        ("environment", environment),
        ("version", version),
        ("images", &images),
        ("kubeconfig", kubeconfig),
        ("smoke_tests", "examples/smoke-tests.yaml"),
        ("timeout", "150s"),
        ("helm", &bed.helm_path(major).display().to_string()),
    ];
    for (k, v) in inputs {
        cmd.env(format!("INPUT_{}", k.to_uppercase()), v);
    }
    let output = tmp.path().join("output");
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", repo_root())
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", tmp.path().join("summary"))
        .env("HELM_CONFIG_HOME", tmp.path().join("helm/config"))
        .env("HELM_CACHE_HOME", tmp.path().join("helm/cache"))
        .env("HELM_DATA_HOME", tmp.path().join("helm/data"));
    let out = common::run_with_deadline(&mut cmd, ACTION_DEADLINE);
    let run = Run {
        code: out.status.code(),
        log: text(&out),
        outputs: parse_outputs(&std::fs::read_to_string(&output).unwrap_or_default()),
    };
    eprintln!(
        "---- trader-deploy {version} exited {:?}:\n{}\n---- outputs {:?}",
        run.code, run.log, run.outputs
    );
    run
}

/// (revision, status) of the release's newest revision, read as the cluster admin. (`helm
/// history`, not `helm status -o json`: helm 4's status includes every resource, over the 64 KiB
/// a pipe holds before `run_with_deadline` reads it.)
fn release_state(bed: &Bed, major: u8, ns: &str) -> (u64, String) {
    let out = bed.run(
        bed.helm(major).args([
            "history",
            "traderadmin",
            "-n",
            ns,
            "--max",
            "1",
            "-o",
            "json",
        ]),
        HELM_DEADLINE,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = &v[0];
    (
        last["revision"].as_u64().unwrap(),
        last["status"].as_str().unwrap().to_string(),
    )
}

/// Takes the Lease rules out of the deployer's Role (the "fewer permissions" case).
async fn drop_lease_rules(client: &kube::Client, ns: &str) {
    let roles = Api::<Role>::namespaced(client.clone(), ns);
    let mut role = roles.get("trader-deploy").await.unwrap();
    let rules = role.rules.take().unwrap_or_default();
    let before = rules.len();
    role.rules = Some(
        rules
            .into_iter()
            .filter(|r| {
                !r.api_groups
                    .iter()
                    .flatten()
                    .any(|g| g == "coordination.k8s.io")
            })
            .collect(),
    );
    assert_eq!(role.rules.as_ref().unwrap().len(), before - 2);
    roles
        .replace("trader-deploy", &PostParams::default(), &role)
        .await
        .unwrap();
}

/// The action with exactly the example deployer's permissions: a whole deploy works; without
/// Leases it fails clearly.
async fn least_privilege_deploy(major: u8) {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, &format!("examples-rbac-h{major}")).await;
    let kubeconfig = deployer_kubeconfig(&bed, &client, &ns).await;

    // Exactly the example's permissions: the whole deploy works (lock, upgrade, rollout watch,
    // smoke tests through port-forwards, unlock).
    let run = run_action(&bed, major, &ns, &kubeconfig, "v1.2.0");
    assert_eq!(
        run.code,
        Some(0),
        "the deploy failed with the example's RBAC:\n{}",
        run.log
    );
    assert_eq!(
        run.outputs.get("status").map(String::as_str),
        Some("success")
    );
    assert_eq!(run.outputs.get("revision").map(String::as_str), Some("1"));
    wait_deployment_ready(&client, &ns, "traderadmin-python-orch", 1).await;
    wait_deployment_ready(&client, &ns, "traderadmin-go-scanner", 1).await;
    wait_orch_version(&client, &ns, "v1.2.0").await;

    // Fewer: the same Role without Leases. The run stops at the release lock, says which
    // permission is missing, and leaves the release as it was.
    drop_lease_rules(&client, &ns).await;
    let run = run_action(&bed, major, &ns, &kubeconfig, "v1.1.0");
    assert_eq!(
        run.code,
        Some(1),
        "a deploy without Lease permissions must fail:\n{}",
        run.log
    );
    assert_eq!(
        run.outputs.get("status").map(String::as_str),
        Some("failed")
    );
    let lower = run.log.to_lowercase();
    assert!(
        lower.contains("lease \"trader-deploy-traderadmin\"") && lower.contains("forbidden"),
        "the failure does not name the lease and the refusal:\n{}",
        run.log
    );
    assert_eq!(release_state(&bed, major, &ns), (1, "deployed".to_string()));
    wait_orch_version(&client, &ns, "v1.2.0").await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_deploys_with_exactly_the_example_rbac_helm3() {
    least_privilege_deploy(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_deploys_with_exactly_the_example_rbac_helm4() {
    least_privilege_deploy(4).await;
}

// ---------------------------------------------------------------------------------------------
// The same permissions exercised with helm and kube directly, step by step as the action uses
// them: helm's install, upgrade, history and rollback; the release lock's Lease; the rollout's
// watches and events; a port-forward to a pod.

async fn deployer_client(kubeconfig: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("the deployer kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config from the deployer kubeconfig");
    kube::Client::try_from(config).expect("deployer client")
}

fn is_forbidden<T: std::fmt::Debug>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403)
}

async fn least_privilege_with_helm(major: u8) {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
    use kube::api::{DeleteParams, ListParams};

    let bed = Bed::load();
    let admin = bed.client().await;
    let ns = create_namespace(&admin, &format!("examples-rbac-helm-h{major}")).await;
    let kubeconfig = deployer_kubeconfig(&bed, &admin, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    let kc_path = dir.path().join("kubeconfig");
    std::fs::write(&kc_path, &kubeconfig).unwrap();
    let sa = deployer_client(&kubeconfig).await;

    // Only this namespace: the namespace object is readable, nothing cluster-wide.
    Api::<Namespace>::all(sa.clone())
        .get(&ns)
        .await
        .expect("get its own namespace");
    assert!(is_forbidden(
        &Api::<Namespace>::all(sa.clone()).get("kube-system").await
    ));
    assert!(is_forbidden(
        &Api::<Pod>::namespaced(sa.clone(), "kube-system")
            .list(&ListParams::default())
            .await
    ));

    // The release lock's Lease: create, read, take over, give back.
    let leases = Api::<Lease>::namespaced(sa.clone(), &ns);
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "trader-deploy-traderadmin"},
        "spec": {"holderIdentity": "bed test", "leaseDurationSeconds": 30},
    }))
    .unwrap();
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create the lock");
    let mut held = leases
        .get("trader-deploy-traderadmin")
        .await
        .expect("read the lock");
    held.spec.as_mut().unwrap().holder_identity = Some("another run".into());
    leases
        .replace("trader-deploy-traderadmin", &PostParams::default(), &held)
        .await
        .expect("take the lock over");
    leases
        .delete("trader-deploy-traderadmin", &DeleteParams::default())
        .await
        .expect("give the lock back");

    // helm as the deployer: install, upgrade, history, rollback.
    let helm = |args: &[&str]| {
        let mut cmd = bed.helm(major);
        cmd.env("KUBECONFIG", &kc_path).args(args);
        cmd
    };
    let upgrade = |tag: &str| {
        let mut cmd = helm(&[
            "upgrade",
            "--install",
            "traderadmin",
            "--namespace",
            &ns,
            "--history-max",
            "10",
        ]);
        cmd.arg(chart())
            .arg("-f")
            .arg(values("dev"))
            .args(image_args(&bed, tag));
        bed.run(&mut cmd, HELM_DEADLINE);
    };
    upgrade("v1.1.0");
    wait_deployment_ready(&sa, &ns, "traderadmin-python-orch", 1).await;
    upgrade("v1.2.0");
    wait_deployment_ready(&sa, &ns, "traderadmin-python-orch", 1).await;
    bed.run(
        &mut helm(&["history", "traderadmin", "--namespace", &ns]),
        HELM_DEADLINE,
    );
    bed.run(
        &mut helm(&["get", "manifest", "traderadmin", "--namespace", &ns]),
        HELM_DEADLINE,
    );
    bed.run(
        &mut helm(&["rollback", "traderadmin", "1", "--namespace", &ns]),
        HELM_DEADLINE,
    );
    assert_eq!(release_state(&bed, major, &ns), (3, "deployed".to_string()));
    wait_deployment_ready(&sa, &ns, "traderadmin-go-scanner", 1).await;

    // The rollout's diagnostics and the smoke tests' reach, as the deployer.
    Api::<Event>::namespaced(sa.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("list events");
    wait_orch_version(&sa, &ns, "v1.1.0").await;

    // Fewer permissions: no Leases → the lock is refused with 403.
    drop_lease_rules(&admin, &ns).await;
    let refused = wait_for(
        "the Role change to take effect",
        Duration::from_secs(30),
        || {
            let leases = leases.clone();
            let lease = lease.clone();
            async move {
                let r = leases.create(&PostParams::default(), &lease).await;
                if is_forbidden(&r) {
                    Ok(())
                } else {
                    Err(format!("{r:?}"))
                }
            }
        },
    );
    refused.await;
    delete_namespace(&admin, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_rbac_is_enough_for_helm_and_the_lock_helm3() {
    least_privilege_with_helm(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_rbac_is_enough_for_helm_and_the_lock_helm4() {
    least_privilege_with_helm(4).await;
}

// ---------------------------------------------------------------------------------------------
// The action deploys the example chart with the example smoke tests (as the cluster admin).

async fn action_deploys_the_example(major: u8) {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, &format!("examples-action-h{major}")).await;
    let admin = std::fs::read_to_string(&bed.kubeconfig).unwrap();

    // staging's values: 1 orchestrator, 2 scanners under an HPA, PDBs; all four smoke checks.
    let run = run_action_in(&bed, major, &ns, &admin, "v1.1.0", "staging");
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(run.outputs["status"], "success");
    assert!(
        run.log
            .contains("values files  deploy/values/values-staging.yaml"),
        "the environment's values file was not picked:\n{}",
        run.log
    );
    for check in ["healthz", "ready", "metrics", "api-status"] {
        assert!(
            run.log.contains(&format!("smoke check \"{check}\"")) && !run.log.contains("FAILED"),
            "smoke check {check} did not pass:\n{}",
            run.log
        );
    }
    wait_deployment_ready(&client, &ns, "traderadmin-go-scanner", 2).await;

    // A crash-looping release of the same chart: caught, rolled back to v1.1.0, verified.
    let run = run_action_in(&bed, major, &ns, &admin, "crashloop", "staging");
    assert_eq!(run.code, Some(1), "{}", run.log);
    assert_eq!(run.outputs["status"], "rolled_back", "{}", run.log);
    // The example spec drained the live v1.1.0 first, and resumed after the rollback.
    for (what, name) in [
        ("preflight", "no-open-orders"),
        ("hook", "pause-new-orders"),
        ("hook", "resume"),
    ] {
        assert!(
            run.log
                .lines()
                .any(|l| l.contains(&format!("{what} check \"{name}\" ("))
                    && l.contains("passed after")),
            "{what} {name} did not pass:\n{}",
            run.log
        );
    }
    let pause = run.log.find("hook check \"pause-new-orders\" (").unwrap();
    let resume = run.log.find("hook check \"resume\" (").unwrap();
    assert!(pause < resume, "pause before resume:\n{}", run.log);
    assert_eq!(release_state(&bed, major, &ns), (3, "deployed".to_string()));
    wait_deployment_ready(&client, &ns, "traderadmin-python-orch", 1).await;
    wait_deployment_ready(&client, &ns, "traderadmin-go-scanner", 2).await;
    wait_orch_version(&client, &ns, "v1.1.0").await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_deploys_the_example_chart_and_rolls_back_a_crashloop_helm3() {
    action_deploys_the_example(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_deploys_the_example_chart_and_rolls_back_a_crashloop_helm4() {
    action_deploys_the_example(4).await;
}
