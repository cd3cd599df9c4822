//! Smoke tests through the action, on the bed: checks reach the release's Service through
//! port-forwards via the Kubernetes API (kwok sends them to the fake app, which answers per
//! deployed version). A healthy version passes; a version whose /ready fails is rolled back; a
//! transient 503 then 200 passes. Needs a running bed (`make testbed-up`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    Bed, create_namespace, delete_namespace, run_with_deadline, smoke_spec, testapp_chart,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

const ACTION_TIMEOUT: Duration = Duration::from_secs(240);

struct ActionRun {
    success: bool,
    stdout: String,
    stderr: String,
    outputs: BTreeMap<String, String>,
}

impl ActionRun {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `trader-deploy deploy` (plain CLI, no GitHub) with helm 3 and the given flags.
fn run_action(bed: &Bed, workspace: &Path, flags: &[(&str, String)]) -> ActionRun {
    let mut cmd = action_command(bed, workspace, flags);
    let out = run_with_deadline(&mut cmd, ACTION_TIMEOUT);
    action_run(out)
}

fn action_run(out: std::process::Output) -> ActionRun {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let outputs = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("output "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ActionRun {
        success: out.status.success(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        outputs,
    }
}

/// The `trader-deploy deploy` command with the bed's kubeconfig and helm homes.
fn action_command(bed: &Bed, workspace: &Path, flags: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
    cmd.arg("deploy").current_dir(workspace);
    for (k, v) in flags {
        cmd.arg(format!("--{k}")).arg(v);
    }
    cmd.arg("--kubeconfig")
        .arg(std::fs::read_to_string(&bed.kubeconfig).unwrap());
    if !flags.iter().any(|(k, _)| *k == "helm") {
        cmd.arg("--helm").arg(&bed.helm3);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("GITHUB_") || k.starts_with("INPUT_") || k == "KUBECONFIG" {
            cmd.env_remove(k);
        }
    }
    let home = common::repo_root().join("target/testbed/helm3-home");
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// A workspace with the test chart and the smoke spec; returns (workspace guard, chart path).
fn workspace(spec: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smoke.yaml"), spec).unwrap();
    (dir, testapp_chart())
}

/// Replaces the workspace's smoke spec between two runs.
fn set_spec(ws: &tempfile::TempDir, spec: &str) {
    std::fs::write(ws.path().join("smoke.yaml"), spec).unwrap();
}

fn deploy_flags(bed: &Bed, chart: &Path, ns: &str, version: &str) -> Vec<(&'static str, String)> {
    vec![
        ("chart", chart.display().to_string()),
        ("release", "app".into()),
        ("namespace", ns.into()),
        ("environment", "dev".into()),
        ("version", version.into()),
        (
            "set",
            format!(
                "image.repository={}/acme/python-orch\nimage.tag={version}\nscanner.enabled=false",
                bed.registry
            ),
        ),
        ("smoke-tests", "smoke.yaml".into()),
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

/// `(revision, status)` of every revision of release `app`.
fn helm_history(bed: &Bed, ns: &str) -> Vec<(u64, String)> {
    let out = bed.run(
        bed.helm(3)
            .args(["history", "app", "--namespace", ns, "-o", "json"]),
        Duration::from_secs(60),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The fake app's log of requests served in `ns`: (path, status).
async fn app_requests(bed: &Bed, ns: &str) -> Vec<(String, u16)> {
    let v: serde_json::Value = reqwest::get(format!("{}/requests?namespace={ns}", bed.app_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = v
        .as_array()
        .or_else(|| v["requests"].as_array())
        .cloned()
        .unwrap_or_default();
    list.iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().unwrap_or(0) as u16,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_healthy_version_passes_every_check() {
    healthy_version_passes(3).await;
}

#[tokio::test]
async fn a_healthy_version_passes_every_check_with_helm4() {
    healthy_version_passes(4).await;
}

async fn healthy_version_passes(helm_major: u8) {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, &format!("smoke-ok-h{helm_major}")).await;
    let (ws, chart) = workspace(&smoke_spec("20s"));
    let mut flags = deploy_flags(&bed, &chart, &ns, "v1.2.0");
    flags.push(("helm", bed.helm_path(helm_major).display().to_string()));
    let run = run_action(&bed, ws.path(), &flags);
    assert!(run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "success");
    for check in ["healthz", "ready", "metrics", "api-status"] {
        assert!(
            run.stdout.contains(&format!(
                "smoke check {check:?} (GET service/app-orch:http/"
            )),
            "{}",
            run.stdout
        );
    }
    // The summary table has every check, passed.
    assert_eq!(
        run.stdout.matches("| ✅ passed |").count(),
        4,
        "{}",
        run.stdout
    );
    // The requests really reached the app through the port-forward, each check twice in a row.
    let served = app_requests(&bed, &ns).await;
    for path in ["/health", "/ready", "/metrics", "/api/v1/status"] {
        let n = served
            .iter()
            .filter(|(p, s)| p == path && *s == 200)
            .count();
        assert!(n >= 2, "{path} served {n} times: {served:?}");
    }
    assert_eq!(helm_history(&bed, &ns), [(1, "deployed".to_string())]);
    delete_namespace(&client, &ns).await;
}

/// The error line names check "ready" and its request, then what it got against what it
/// expected: the 503 itself, or (when the very last attempt timed out under load) the 503 as
/// the earlier answer.
fn failure_names_ready_and_503(all: &str) -> bool {
    all.lines().any(|l| {
        l.contains("check \"ready\" (GET service/app-orch:http/ready): ")
            && l.contains("got status 503 (body \"not ready\"), expected 200")
    })
}

#[tokio::test]
async fn a_version_whose_ready_fails_is_rolled_back() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "smoke-unready").await;
    // The healthy first deploy gets the full budget (the fake app may still be routing the new
    // version on a loaded machine); the failing one a short budget, so the test stays quick.
    let (ws, chart) = workspace(&smoke_spec("20s"));
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(first.success, "{}", first.all());
    set_spec(&ws, &smoke_spec("6s"));

    // Tag unready-app: Ready in Kubernetes, but the app's /ready answers 503.
    let run = run_action(
        &bed,
        ws.path(),
        &deploy_flags(&bed, &chart, &ns, "unready-app"),
    );
    assert!(!run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "rolled_back", "{}", run.all());
    assert_eq!(run.outputs["rolled_back"], "true");
    let all = run.all();
    assert!(
        all.contains("1 of 4 smoke checks failed"),
        "the failure names the count: {all}"
    );
    assert!(
        failure_names_ready_and_503(&all),
        "the failure names the check, what it got and what it expected: {all}"
    );
    assert!(run.stdout.contains("| ❌ failed |"), "{}", run.stdout);
    // Back at the good version: a third revision (the rollback) is deployed, with v1.2.0.
    let history = helm_history(&bed, &ns);
    assert_eq!(
        history.last().unwrap(),
        &(3, "deployed".to_string()),
        "{history:?}"
    );
    assert_eq!(
        orch_image(&bed, &ns).await,
        format!("{}/acme/python-orch:v1.2.0", bed.registry)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_transient_503_then_200_passes() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "smoke-blip").await;
    let spec = r#"
checks:
  - name: ready
    service: ${release}-orch
    port: http
    path: /ready
    expect: {status: 200}
    timeout: 20s
    interval: 300ms
    successes: 2
"#;
    let (ws, chart) = workspace(spec);
    // The next 3 app requests of this version in this namespace answer 503: a cutover blip.
    let resp = reqwest::Client::new()
        .post(format!("{}/control", bed.app_url))
        .json(&serde_json::json!({"version": "v1.1.0", "namespace": ns, "fail_next": 3}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let run = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.1.0"));
    assert!(run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "success");
    assert!(
        run.stdout
            .contains("smoke check \"ready\" attempt 1 failed: got status 503"),
        "{}",
        run.stdout
    );
    // At least the three blips failed (a pod the fake app had not routed yet would add one).
    let passed_after = run
        .stdout
        .split("; passed after ")
        .nth(1)
        .and_then(|rest| rest.split_once(" failed attempt"))
        .and_then(|(n, _)| n.parse::<u32>().ok());
    assert!(
        passed_after.is_some_and(|n| n >= 3),
        "{passed_after:?}: {}",
        run.stdout
    );
    let served: Vec<u16> = app_requests(&bed, &ns)
        .await
        .into_iter()
        .filter(|(p, _)| p == "/ready")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(served, [503, 503, 503, 200, 200], "{served:?}");
    assert_eq!(helm_history(&bed, &ns), [(1, "deployed".to_string())]);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn without_rollback_on_failure_a_failing_check_leaves_the_new_revision() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "smoke-keep").await;
    let spec = r#"
checks:
  - name: ready
    service: ${release}-orch
    port: http
    path: /ready
    expect: {status: 200}
    timeout: 3s
    interval: 500ms
"#;
    // As above: a full budget for the healthy first deploy, the short one for the failing one.
    let (ws, chart) = workspace(&spec.replace("timeout: 3s", "timeout: 30s"));
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(first.success, "{}", first.all());
    set_spec(&ws, spec);
    let mut flags = deploy_flags(&bed, &chart, &ns, "unready-app");
    flags.push(("rollback-on-failure", "false".into()));
    let run = run_action(&bed, ws.path(), &flags);
    assert!(!run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "failed", "{}", run.all());
    assert_eq!(run.outputs["rolled_back"], "false");
    assert!(failure_names_ready_and_503(&run.all()), "{}", run.all());
    let history = helm_history(&bed, &ns);
    assert_eq!(
        history.last().unwrap(),
        &(2, "deployed".to_string()),
        "{history:?}"
    );
    assert_eq!(
        orch_image(&bed, &ns).await,
        format!("{}/acme/python-orch:unready-app", bed.registry)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn sigterm_during_the_smoke_tests_rolls_back() {
    use std::io::{BufRead as _, BufReader};
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "smoke-term").await;
    // A long budget: only the signal ends this check early.
    let spec = r#"
checks:
  - name: ready
    service: ${release}-orch
    port: http
    path: /ready
    expect: {status: 200}
    timeout: 120s
    interval: 500ms
"#;
    let (ws, chart) = workspace(spec);
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(first.success, "{}", first.all());

    let mut cmd = action_command(
        &bed,
        ws.path(),
        &deploy_flags(&bed, &chart, &ns, "unready-app"),
    );
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    // Once the first smoke attempt has failed, send SIGTERM (as the runner does on cancel).
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut signalled = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if !signalled && line.contains("smoke check \"ready\" attempt 1 failed") {
                let ok = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "kill -TERM {pid}");
                signalled = true;
            }
            lines.push(line);
        }
        (signalled, lines.join("\n"))
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the action did not stop within 90 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (signalled, out) = reader.join().unwrap();
    let err = err_reader.join().unwrap();
    assert!(
        signalled,
        "never saw the first smoke failure:\n{out}\n{err}"
    );
    let run = action_run(std::process::Output {
        status,
        stdout: out.into_bytes(),
        stderr: err.into_bytes(),
    });
    assert!(!run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "rolled_back", "{}", run.all());
    assert!(
        run.all()
            .contains("cancelled by SIGTERM during the smoke tests"),
        "{}",
        run.all()
    );
    let history = helm_history(&bed, &ns);
    assert_eq!(
        history.last().unwrap(),
        &(3, "deployed".to_string()),
        "{history:?}"
    );
    assert_eq!(
        orch_image(&bed, &ns).await,
        format!("{}/acme/python-orch:v1.2.0", bed.registry)
    );
    delete_namespace(&client, &ns).await;
}
