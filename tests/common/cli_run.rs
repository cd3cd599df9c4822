//! Running `trader-deploy deploy` as a plain CLI against the bed (no GitHub): the command with the
//! bed's kubeconfig and helm homes, a workspace holding a smoke spec, the flags of the test chart,
//! and what the bed says afterwards (helm history, the image running, the fake app's request log).
//! Used by bed_smoke.rs and bed_drain.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

use super::{Bed, run_with_deadline, testapp_chart};

pub const ACTION_TIMEOUT: Duration = Duration::from_secs(240);

pub struct ActionRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
}

impl ActionRun {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `trader-deploy deploy` (plain CLI, no GitHub) with helm 3 and the given flags.
pub fn run_action(bed: &Bed, workspace: &Path, flags: &[(&str, String)]) -> ActionRun {
    let mut cmd = action_command(bed, workspace, flags);
    let out = run_with_deadline(&mut cmd, ACTION_TIMEOUT);
    action_run(out)
}

pub fn action_run(out: std::process::Output) -> ActionRun {
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
pub fn action_command(bed: &Bed, workspace: &Path, flags: &[(&str, String)]) -> Command {
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
    let home = super::repo_root().join("target/testbed/helm3-home");
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// A workspace with the test chart and the smoke spec; returns (workspace guard, chart path).
pub fn workspace(spec: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smoke.yaml"), spec).unwrap();
    (dir, testapp_chart())
}

/// Replaces the workspace's smoke spec between two runs.
pub fn set_spec(ws: &tempfile::TempDir, spec: &str) {
    std::fs::write(ws.path().join("smoke.yaml"), spec).unwrap();
}

pub fn deploy_flags(
    bed: &Bed,
    chart: &Path,
    ns: &str,
    version: &str,
) -> Vec<(&'static str, String)> {
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

pub async fn orch_image(bed: &Bed, ns: &str) -> String {
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
pub fn helm_history(bed: &Bed, ns: &str) -> Vec<(u64, String)> {
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
pub async fn app_requests(bed: &Bed, ns: &str) -> Vec<(String, u16)> {
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

/// Runs `cmd` and sends it SIGTERM (as the runner does on a cancel) once a stdout line contains
/// `trigger`; waits up to 90 s for it to end. Returns whether the line was seen, and the run.
pub fn run_with_sigterm_on(cmd: &mut Command, trigger: &str) -> (bool, ActionRun) {
    use std::io::BufRead as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut s);
        s
    });
    let trigger = trigger.to_string();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut signalled = false;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if !signalled && line.contains(&trigger) {
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
            panic!("the action did not stop within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (signalled, out) = reader.join().unwrap();
    let err = err_reader.join().unwrap();
    let run = action_run(std::process::Output {
        status,
        stdout: out.into_bytes(),
        stderr: err.into_bytes(),
    });
    (signalled, run)
}
