//! The bed's real node (testbed/node/): containerd, runc and a kubelet running real containers
//! of the real test app (testbed/support/testapp). The node is Ready with runtime containerd; a
//! pod's `kubectl logs` and `kubectl port-forward` reach its container; the action (the built
//! `trader-deploy`, run as a GitHub Action) deploys to it: healthy with smoke tests through a
//! real port-forward, and a broken pull, a crash loop, a never-ready and an unready app each
//! caught from real container states and rolled back (verified), the crashed container's real
//! last log lines in the diagnostics, SIGTERM mid-rollout; and an extra node's teardown leaves no
//! process, mount, network namespace, veth, bridge or cgroup behind. Needs a running bed with its
//! real node (`make testbed-up`).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::case::{Case, Finished, Running, assert_success};
use common::{
    Bed, create_namespace, delete_namespace, repo_root, run_with_deadline, smoke_spec, wait_for,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};

use common::case::RUN_DEADLINE;
/// The real node's label and taint (testbed/node/up.sh).
const NODE_LABEL: &str = "trader-deploy.test/node";

/// The name of the bed's real node (`TD_REAL_NODE` in the env file).
fn real_node(bed: &Bed) -> String {
    bed.vars.get("TD_REAL_NODE").cloned().unwrap_or_else(|| {
        panic!(
            "the bed in {} runs without its real node (TD_BED_REAL_NODE=0?)",
            bed.env_file.display()
        )
    })
}

fn kubectl(bed: &Bed) -> Command {
    let mut c = Command::new("kubectl");
    c.env("KUBECONFIG", &bed.kubeconfig);
    c
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pod of the test image `acme/python-orch:<tag>` placed on the node labelled `node_value`.
fn pod_on_node(bed: &Bed, name: &str, tag: &str, node_value: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "nodeSelector": {NODE_LABEL: node_value},
            "tolerations": [{"key": NODE_LABEL, "operator": "Equal", "value": node_value,
                             "effect": "NoSchedule"}],
            "containers": [{
                "name": "app",
                "image": bed.image("acme/python-orch", tag),
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"},
                                   "periodSeconds": 1},
            }],
        },
    }))
    .unwrap()
}

async fn wait_pod_ready(client: &kube::Client, ns: &str, name: &str) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("pod {ns}/{name} Ready"),
        Duration::from_secs(120),
        || {
            let api = api.clone();
            async move {
                let p = api.get(name).await.map_err(|e| e.to_string())?;
                let ready = p
                    .status
                    .iter()
                    .flat_map(|s| s.conditions.iter().flatten())
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready {
                    Ok(p)
                } else {
                    Err(format!("{:?}", p.status))
                }
            }
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// The node itself

#[test]
fn the_real_node_is_ready_with_containerd_next_to_the_kwok_nodes() {
    let bed = Bed::load();
    let node = real_node(&bed);
    let out = bed.run(
        kubectl(&bed).args(["get", "nodes", "-o", "wide", "--no-headers"]),
        Duration::from_secs(30),
    );
    let table = text(&out);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(node.as_str()))
        .unwrap_or_else(|| panic!("no node {node} in:\n{table}"))
        .split_whitespace()
        .collect();
    // NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE... KERNEL CONTAINER-RUNTIME
    assert_eq!(row[1], "Ready", "{table}");
    assert_eq!(
        row[4], "v1.36.3",
        "the kubelet is the control plane's version: {table}"
    );
    let runtime = row.last().unwrap();
    assert!(runtime.starts_with("containerd://"), "{table}");
    // The kwok nodes are still there and Ready, played by kwok (annotated), the real one is not.
    let kwok_ready = table
        .lines()
        .filter(|l| l.ends_with("kwok-v0.8.0") && l.split_whitespace().nth(1) == Some("Ready"))
        .count();
    assert!(kwok_ready >= 2, "{table}");
    let annotations = bed.run(
        kubectl(&bed).args([
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.metadata.annotations}|{.spec.taints}",
        ]),
        Duration::from_secs(30),
    );
    let a = text(&annotations);
    assert!(!a.contains("kwok.x-k8s.io/node"), "{a}");
    assert!(a.contains(NODE_LABEL) && a.contains("NoSchedule"), "{a}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_app_pod_runs_there_and_kubectl_logs_and_port_forward_reach_it() {
    let bed = Bed::load();
    let node = real_node(&bed);
    let client = bed.client().await;
    let ns = create_namespace(&client, "node-pod").await;
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &pod_on_node(&bed, "app", "v1.2.0", "real"),
    )
    .await
    .unwrap();
    let pod = wait_pod_ready(&client, &ns, "app").await;
    let spec = pod.spec.unwrap();
    let status = pod.status.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node.as_str()));
    let cid = status.container_statuses.as_ref().unwrap()[0]
        .container_id
        .clone()
        .unwrap_or_default();
    assert!(cid.starts_with("containerd://"), "{cid}");
    // A real pod address, on the bed's own bridge.
    let ip = status.pod_ip.unwrap_or_default();
    assert!(ip.starts_with("10.244."), "pod IP {ip}");

    // kubectl port-forward to the container's port: the app answers with its version.
    let mut pf = kubectl(&bed)
        .args(["port-forward", "-n", &ns, "pod/app", ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = BufReader::new(pf.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_line(&mut first);
        (first, stdout)
    });
    let started = Instant::now();
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !reader.is_finished() {
        let _ = pf.kill();
        panic!("kubectl port-forward printed nothing in 30 s");
    }
    let (first, _keep_open) = reader.join().unwrap();
    // "Forwarding from 127.0.0.1:PORT -> 8080"
    let port: u16 = first
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no local port in {first:?}"));
    let get = |path: &str| -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bed-node-test\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let status_body = get("/api/v1/status");
    let ready = get("/ready");
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(status_body.starts_with("HTTP/1.1 200"), "{status_body}");
    // The version comes from the image's own config (APP_VERSION), not from any controller.
    assert!(
        status_body.contains(r#"{"status":"ok","version":"v1.2.0","#),
        "{status_body}"
    );
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    // kubectl logs: the app's start lines and the request this test just made.
    let logs = text(&bed.run(
        kubectl(&bed).args(["logs", "-n", &ns, "app"]),
        Duration::from_secs(30),
    ));
    assert!(
        logs.contains("testapp v1.2.0: listening on port 8080"),
        "{logs}"
    );
    assert!(
        logs.contains("GET /api/v1/status -> 200 (bed-node-test)"),
        "{logs}"
    );
    delete_namespace(&client, &ns).await;
}

// ---------------------------------------------------------------------------------------------
// The action on the real node

/// A workspace: the bed's test chart at `chart/` and the smoke spec at `smoke.yaml`.
/// One test's release on the real node: the shared release case (tests/common/case.rs) with
/// the real node's chart values and the smoke tests.
struct NodeCase {
    case: Case,
    node: String,
}

impl std::ops::Deref for NodeCase {
    type Target = Case;
    fn deref(&self) -> &Case {
        &self.case
    }
}

impl NodeCase {
    async fn new(name: &str, major: u8) -> NodeCase {
        let case = Case::new(&format!("node-{name}"), major).await;
        std::fs::write(case.ws.path().join("smoke.yaml"), smoke_spec("30s")).unwrap();
        let node = real_node(&case.bed);
        NodeCase { case, node }
    }

    /// The action with the inputs of a dev deploy of `tag` (both images) on the real node, with
    /// the smoke tests; `extra` adds or replaces inputs, `set` adds helm settings.
    fn action(&self, tag: &str, set: &str, extra: &[(&str, &str)]) -> Command {
        let reg = &self.bed.registry;
        let mut sets = format!(
            "image.repository={reg}/acme/python-orch\nimage.tag={tag}\n\
             scanner.image.repository={reg}/acme/go-scanner\nscanner.image.tag={tag}\n\
             realNode=true\nreplicas=1"
        );
        if !set.is_empty() {
            sets = format!("{sets}\n{set}");
        }
        let mut inputs: Vec<(&str, &str)> = vec![
            ("set", &sets),
            ("smoke_tests", "smoke.yaml"),
            ("timeout", "150s"),
        ];
        inputs.extend_from_slice(extra);
        self.case.action(tag, &inputs)
    }

    fn run(&self, tag: &str, set: &str) -> Finished {
        Running::start(self.action(tag, set, &[]), self.ws.path()).wait()
    }

    fn no_pending_revision(&self) {
        let h = self.helm_json(&["history"]);
        assert!(
            h.as_array()
                .unwrap()
                .iter()
                .all(|r| !r["status"].as_str().unwrap().starts_with("pending")),
            "{h}"
        );
    }

    /// The rollback verified for real: the orch Deployment back at `tag`, fully ready, and every
    /// one of its pods a running, ready container of that image on the real node.
    async fn verify_back_at(&self, tag: &str) {
        assert_eq!(self.ready_orch_tag().await, tag);
        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/instance={},app.kubernetes.io/component=orch",
                self.release
            )))
            .await
            .unwrap()
            .items;
        let ready: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .iter()
                        .flat_map(|s| s.conditions.iter().flatten())
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
            .collect();
        assert!(!ready.is_empty(), "no ready orch pod: {pods:?}");
        for p in ready {
            self.assert_runs_here(p, tag);
        }
    }

    /// `pod` runs `tag` on the real node: its first container running, in containerd.
    fn assert_runs_here(&self, pod: &Pod, tag: &str) {
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some(self.node.as_str())
        );
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref());
        let c = &statuses.expect("container statuses")[0];
        assert!(c.image.ends_with(&format!(":{tag}")), "{c:?}");
        assert!(c.state.as_ref().unwrap().running.is_some(), "{c:?}");
        let id = c.container_id.as_deref().unwrap_or("");
        assert!(id.starts_with("containerd://"), "{c:?}");
    }

    async fn done(self) {
        self.case.done().await;
    }
}

fn assert_rolled_back(f: &Finished) {
    assert_eq!(f.code, Some(1), "{}", f.log());
    assert_eq!(f.out("status"), "rolled_back", "{}", f.log());
    assert_eq!(f.out("rolled_back"), "true");
    assert_eq!(f.out("previous_revision"), "1");
    assert_eq!(f.out("revision"), "3", "the rollback is revision 3");
    assert!(f.log().contains("Rollback verified"), "{}", f.log());
}

async fn watch_pods_until(
    case: &Case,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Pod) -> bool,
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(case.client.clone(), &case.ns);
    let cfg =
        watcher::Config::default().labels(&format!("app.kubernetes.io/instance={}", case.release));
    let stream = watcher::watcher(pods, cfg).applied_objects();
    tokio::time::timeout(timeout, async {
        futures::pin_mut!(stream);
        while let Some(p) = stream.next().await {
            let Ok(p) = p else { continue };
            if pred(&p) {
                return p;
            }
        }
        panic!("the pod watch ended");
    })
    .await
    .unwrap_or_else(|_| panic!("no pod {what} within {timeout:?}"))
}

fn waiting_reason(p: &Pod) -> Vec<(String, String)> {
    p.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .map(|w| {
            (
                w.reason.clone().unwrap_or_default(),
                w.message.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_deploy_with_smoke_tests_through_a_real_port_forward() {
    let case = NodeCase::new("healthy", 4).await;
    let first = case.run("v1.0.0", "");
    assert_success(&first);
    let second = case.run("v1.1.0", "");
    assert_success(&second);
    assert_eq!(second.out("revision"), "2");
    for check in ["healthz", "ready", "metrics", "api-status"] {
        assert!(
            second
                .log()
                .contains(&format!("smoke check {check:?} (GET service/")),
            "{}",
            second.log()
        );
    }
    assert!(
        !second.log().contains("FAILED"),
        "every smoke check passed: {}",
        second.log()
    );
    assert_eq!(case.status(), ("deployed".to_string(), 2));
    case.verify_back_at("v1.1.0").await;
    // The smoke tests' requests reached the real container: its own log has them.
    let logs = text(&case.bed.run(
        kubectl(&case.bed).args([
            "logs",
            "-n",
            &case.ns,
            &format!("deployment/{}-orch", case.release),
        ]),
        Duration::from_secs(30),
    ));
    assert!(logs.contains("GET /api/v1/status -> 200"), "{logs}");
    case.done().await;
}

/// Deploys `tag` over a good v1.0.0 on the real node: `seen` is what this test's own pod watch
/// must see first (a real container state), then the run must have rolled back, verified.
async fn failing_tag_rolled_back(
    name: &str,
    major: u8,
    tag: &str,
    set: &str,
    seen: impl Fn(&Pod) -> bool,
) -> (NodeCase, Finished, Pod) {
    let case = NodeCase::new(name, major).await;
    assert_success(&case.run("v1.0.0", ""));
    let running = Running::start(case.action(tag, set, &[]), case.ws.path());
    let pod = watch_pods_until(&case, &format!("in the {tag} state"), RUN_DEADLINE, seen).await;
    let f = running.wait();
    assert_rolled_back(&f);
    assert_eq!(case.status(), ("deployed".to_string(), 3));
    case.no_pending_revision();
    case.verify_back_at("v1.0.0").await;
    (case, f, pod)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_broken_pull_is_caught_and_rolled_back() {
    let (case, f, pod) = failing_tag_rolled_back("pull", 3, "broken-pull", "", |p| {
        waiting_reason(p)
            .iter()
            .any(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await;
    // containerd's own pull error: the registry lost the image's layer.
    let why = waiting_reason(&pod);
    assert!(
        why.iter()
            .any(|(_, m)| m.contains("broken-pull") && m.to_lowercase().contains("not found")),
        "{why:?}"
    );
    assert!(
        f.log().contains("ImagePullBackOff") || f.log().contains("ErrImagePull"),
        "{}",
        f.log()
    );
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_never_pushed_tag_fails_the_pull_for_real() {
    let (case, _f, pod) = failing_tag_rolled_back("missing", 4, "v9.9.9", "", |p| {
        waiting_reason(p)
            .iter()
            .any(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await;
    let why = waiting_reason(&pod);
    assert!(why.iter().any(|(_, m)| m.contains("v9.9.9")), "{why:?}");
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_crash_loop_is_caught_with_its_last_log_lines() {
    let (case, f, pod) = failing_tag_rolled_back("crash", 4, "crashloop", "", |p| {
        waiting_reason(p)
            .iter()
            .any(|(r, _)| r == "CrashLoopBackOff")
    })
    .await;
    // The container really ran and exited 1.
    let c = &pod.status.unwrap().container_statuses.unwrap()[0];
    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    assert_eq!(last.map(|t| t.exit_code), Some(1), "{c:?}");
    assert!(c.restart_count >= 1, "{c:?}");
    assert!(f.log().contains("CrashLoopBackOff"), "{}", f.log());
    // The diagnostics carry the crashed container's own last lines (from the kubelet's log).
    assert!(f.summary.contains("Rollout diagnostics"), "{}", f.summary);
    assert!(
        f.summary
            .contains("testapp crashloop: FATAL: cannot reach the broker gateway"),
        "{}",
        f.summary
    );
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_failing_readiness_probe_hits_the_progress_deadline() {
    let (case, f, _pod) = failing_tag_rolled_back("never-ready", 3, "never-ready", "", |p| {
        // Running, its container started, and not ready.
        p.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .any(|c| c.image.ends_with(":never-ready") && c.started == Some(true) && !c.ready)
    })
    .await;
    assert!(f.log().contains("ProgressDeadlineExceeded"), "{}", f.log());
    // The kubelet's real probe said why.
    let events = Api::<Event>::namespaced(case.client.clone(), &case.ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Unhealthy")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("Readiness probe failed") && m.contains("503"))),
        "{events:?}"
    );
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_ready_in_kubernetes_but_not_on_its_own_ready_fails_the_smoke_tests() {
    let (case, f, _pod) = failing_tag_rolled_back("unready", 4, "unready-app", "", |p| {
        p.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .any(|c| c.image.ends_with(":unready-app") && c.ready)
    })
    .await;
    assert!(
        f.log()
            .contains("got status 503 (body \"not ready\"), expected 200"),
        "{}",
        f.log()
    );
    assert!(
        f.log().contains("1 of 4 smoke checks failed"),
        "{}",
        f.log()
    );
    case.done().await;
}

/// The StatefulSet forced rollback (issue 11) with real containers: an unpullable image in both
/// the Deployment and the OrderedReady StatefulSet is rolled back, the StatefulSet's broken pod
/// deleted and recreated from the old image (running in containerd, Ready from its real probe),
/// and the next good deploy succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_statefulset_is_restored_on_the_real_node() {
    let case = NodeCase::new("sts", 3).await;
    assert_success(&case.run("v1.0.0", ""));
    let f = case.run("broken-pull", "");
    assert_rolled_back(&f);
    let pod = format!("{}-scanner-0", case.release);
    assert!(
        f.log().contains(&format!("deleting pod {pod} (revision")),
        "{}",
        f.log()
    );
    let p = Api::<Pod>::namespaced(case.client.clone(), &case.ns)
        .get(&pod)
        .await
        .unwrap();
    case.assert_runs_here(&p, "v1.0.0");
    let ready = p
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten());
    assert!(ready.clone().all(|c| c.ready), "{:?}", p.status);
    assert_success(&case.run("v1.1.0", ""));
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_rollout_rolls_back_on_the_real_node() {
    let case = NodeCase::new("sigterm", 3).await;
    assert_success(&case.run("v1.0.0", ""));
    // slow-start: the container runs but is not ready for 10 s; the deadline is not the limit.
    let running = Running::start(
        case.action("slow-start", "progressDeadlineSeconds=120", &[]),
        case.ws.path(),
    );
    watch_pods_until(&case, "slow-start running", Duration::from_secs(120), |p| {
        p.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .any(|c| c.image.ends_with(":slow-start") && c.started == Some(true) && !c.ready)
    })
    .await;
    // SAFETY: kill(2) on the child this test spawned.
    unsafe {
        libc::kill(running.pid() as libc::pid_t, libc::SIGTERM);
    }
    let f = running.wait();
    assert_eq!(f.code, Some(1), "{}", f.log());
    assert!(f.log().contains("cancelled by SIGTERM"), "{}", f.log());
    assert!(
        f.log().contains("::error title=Deploy cancelled::"),
        "{}",
        f.log()
    );
    assert_eq!(f.out("status"), "rolled_back");
    case.no_pending_revision();
    let (status, revision) = case.status();
    assert_eq!(status, "deployed");
    assert_eq!(f.out("revision"), revision.to_string());
    case.verify_back_at("v1.0.0").await;
    case.done().await;
}

/// Lines a pod writes to its log, its termination message and an event about its workload:
/// each forges workflow commands. The chart sets them through the app's own version string
/// (printed at start, unescaped) when `forge=true`, and the log becomes the termination
/// message (`FallbackToLogsOnError`).
const FORGED_APP_VERSION: &str = "crashloop\\n::error::forged-by-pod\\n##[set-output name=x;]forged-by-pod\\n::stop-commands::forged-by-pod";

fn forge_in_chart(case: &Case) {
    let helpers = case.ws.path().join("chart/templates/_helpers.tpl");
    let text = std::fs::read_to_string(&helpers).unwrap();
    let env = "env:\n- name: POD_NAMESPACE";
    assert!(text.contains(env), "{text}");
    let forged = format!(
        "{{{{- if .Values.forge }}}}\nterminationMessagePolicy: FallbackToLogsOnError\n{{{{- end }}}}\n\
         env:\n{{{{- if .Values.forge }}}}\n- name: APP_VERSION\n  value: \"{FORGED_APP_VERSION}\"\n\
         {{{{- end }}}}\n- name: POD_NAMESPACE"
    );
    std::fs::write(&helpers, text.replace(env, &forged)).unwrap();
}

/// Issue #17, finding 2: a crash-looping pod whose log, termination message and events carry
/// `::error::`, `##[set-output …]` and `::stop-commands::` lines. The diagnostics show them, but
/// on the raw stdout the runner (modelled by tests/common/commands.rs) reads no command other
/// than the action's own. Then finding 7: `pod_log_lines: 0` leaves the app's log out.
#[tokio::test(flavor = "multi_thread")]
async fn forged_commands_in_pod_logs_and_events_never_reach_the_runner() {
    let case = NodeCase::new("forge", 3).await;
    forge_in_chart(&case);
    assert_success(&case.run("v1.0.0", ""));
    // An event about the orch Deployment, as any pod or controller with events access can write.
    let event: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{}-forged", case.release)},
        "involvedObject": {"kind": "Deployment", "apiVersion": "apps/v1",
                           "name": format!("{}-orch", case.release), "namespace": case.ns},
        "reason": "Forged",
        "type": "Warning",
        "message": "::error::forged-by-event\n##[set-output name=x;]forged-by-event",
    }))
    .unwrap();
    Api::<Event>::namespaced(case.client.clone(), &case.ns)
        .create(&PostParams::default(), &event)
        .await
        .unwrap();
    let f = case.run("crashloop", "forge=true");
    assert_rolled_back(&f);
    let out = f.log();
    // The forged lines are in the log as text (verbatim inside stop-commands blocks)...
    for shown in [
        "::error::forged-by-pod",
        "##[set-output name=x;]forged-by-pod",
        "forged-by-event",
    ] {
        assert!(out.contains(shown), "{shown:?} not shown:\n{out}");
    }
    // ...and never read as commands.
    common::commands::assert_only_own_commands(&out, "forged");

    // pod_log_lines: 0: the diagnostics without the app's log.
    let running = Running::start(
        case.action("crashloop", "", &[("pod_log_lines", "0")]),
        case.ws.path(),
    );
    let f = running.wait();
    assert_eq!(f.out("status"), "rolled_back", "{}", f.log());
    assert!(f.summary.contains("Rollout diagnostics"), "{}", f.summary);
    for text in [f.log(), f.summary.clone()] {
        assert!(!text.contains("Last log lines"), "{text}");
        assert!(!text.contains("FATAL: cannot reach the broker"), "{text}");
    }
    case.done().await;
}

// ---------------------------------------------------------------------------------------------
// Teardown

/// `KEY=VALUE` lines of the node's info file (testbed/node/up.sh writes it to the bed's logs).
fn node_info(bed: &Bed, id: &str) -> BTreeMap<String, String> {
    let dir = PathBuf::from(&bed.vars["TD_BED_DIR"]);
    let f = dir.join(format!("logs/{id}-node.info"));
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The node scripts for an extra node `id` of this bed.
fn node_script(bed: &Bed, script: &str, id: &str) -> Command {
    let mut c = Command::new(repo_root().join(format!("testbed/node/{script}")));
    c.env("TD_BED_DIR", &bed.vars["TD_BED_DIR"])
        .env("TD_BED_CLUSTER", &bed.vars["TD_BED_CLUSTER"])
        .env(
            "TD_BED_REGISTRY_PORT",
            bed.registry.rsplit(':').next().unwrap(),
        )
        .env("TD_BED_NODE", id)
        .env("TD_BED_NODE_SLOT", "1");
    c
}

fn mounts_under(dir: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

fn links_of_bridge(bridge: &str) -> Option<Vec<String>> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .unwrap();
    out.status.success().then(|| {
        text(&out)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    })
}

fn cgroup_dirs(cgroup: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join(cgroup))
        .filter(|p| p.is_dir())
        .collect()
}

/// Every pid under a cgroup dir (recursively).
fn cgroup_pids(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(t) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(t.lines().filter_map(|l| l.parse::<u32>().ok()));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            cgroup_pids(&e.path(), out);
        }
    }
}

/// Pids whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// The network namespaces (nsfs mounts of `net:[…]`) mounted under `dir`.
fn netns_mounts_under(dir: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|r| r.starts_with("net:["))
        })
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_torn_down_leaves_no_process_mount_netns_veth_bridge_or_cgroup() {
    let bed = Bed::load();
    let id = "teardown";
    // An extra node of this bed (its own dir, bridge, subnet, cgroup, ports), so the bed's real
    // node keeps serving the other tests.
    let up = run_with_deadline(
        &mut node_script(&bed, "up.sh", id),
        Duration::from_secs(180),
    );
    assert!(
        up.status.success(),
        "node up failed:\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let info = node_info(&bed, id);
    let (dir, bridge, cgroup, sock) = (
        info["DIR"].clone(),
        info["BRIDGE"].clone(),
        info["CGROUP"].clone(),
        info["SOCK"].clone(),
    );
    let client = bed.client().await;
    let ns = create_namespace(&client, "node-teardown").await;
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &pod_on_node(&bed, "app", "v1.2.0", id),
    )
    .await
    .unwrap();
    let pod = wait_pod_ready(&client, &ns, "app").await;
    assert_eq!(
        pod.spec.unwrap().node_name.as_deref(),
        Some(info["NAME"].as_str())
    );

    // Everything the test will want gone is there now.
    let mut pids = pids_mentioning(&dir);
    pids.extend(pids_mentioning(&sock));
    let cgroups = cgroup_dirs(&cgroup);
    assert!(!cgroups.is_empty());
    let mut in_cgroups = Vec::new();
    for c in &cgroups {
        cgroup_pids(c, &mut in_cgroups);
    }
    assert!(
        !in_cgroups.is_empty(),
        "the pod's processes are in {cgroups:?}"
    );
    pids.extend(&in_cgroups);
    let host_netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(
        in_cgroups
            .iter()
            .filter_map(|p| std::fs::read_link(format!("/proc/{p}/ns/net")).ok())
            .any(|n| n != host_netns),
        "the pod has a network namespace of its own"
    );
    // containerd keeps the pod's network namespace mounted under the node's state dir.
    assert!(
        !netns_mounts_under(&dir).is_empty(),
        "no netns mount under {dir}"
    );
    assert!(!mounts_under(&dir).is_empty());
    let veths = links_of_bridge(&bridge).expect("the node's bridge");
    assert!(!veths.is_empty(), "the pod's veth is on {bridge}");

    let down = run_with_deadline(
        &mut node_script(&bed, "down.sh", id),
        Duration::from_secs(120),
    );
    assert!(
        down.status.success(),
        "node down failed:\n{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let alive: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(alive.is_empty(), "processes left: {alive:?}");
    assert!(pids_mentioning(&dir).is_empty() && pids_mentioning(&sock).is_empty());
    // The network namespace is gone with its last process and its mount.
    assert_eq!(netns_mounts_under(&dir), Vec::<String>::new(), "netns left");
    assert_eq!(mounts_under(&dir), Vec::<String>::new(), "mounts left");
    assert!(links_of_bridge(&bridge).is_none(), "bridge {bridge} left");
    for v in &veths {
        let out = Command::new("ip")
            .args(["link", "show", v])
            .output()
            .unwrap();
        assert!(!out.status.success(), "veth {v} left");
    }
    assert_eq!(cgroup_dirs(&cgroup), Vec::<PathBuf>::new(), "cgroups left");
    assert!(!Path::new(&dir).exists(), "{dir} left");
    delete_namespace(&client, &ns).await;
}
