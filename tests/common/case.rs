//! The deploy engine's test harness: one release per test on the bed (its own namespace and a
//! workspace with the test chart), the real binary run as a GitHub Action (INPUT_* variables,
//! GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files), and its log lines with the instant each arrived.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use super::{Bed, create_namespace, delete_namespace, parse_outputs, testapp_chart, wait_for};

/// Deadline of one run of the action (its own `timeout` input is shorter).
pub const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// A workspace: the bed's test chart copied to `chart/`, plus a pre-upgrade hook Pod that never
/// completes when `slowHook=true` (helm then waits on it with the release in pending-upgrade).
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("workspace");
        copy_dir(&testapp_chart(), &dir.path().join("chart"));
        std::fs::write(
            dir.path().join("chart/templates/slow-hook.yaml"),
            r#"{{- if .Values.slowHook }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-slow-hook
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-delete-policy": before-hook-creation
spec:
  containers:
  - name: wait
    image: "{{ .Values.image.repository }}:v1.0.0"
{{- end }}
"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("chart/templates/db-secret.yaml"),
            r#"{{- if .Values.dbPassword }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
stringData:
  password: {{ .Values.dbPassword | quote }}
{{- end }}
"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("chart/templates/extra-workloads.yaml"),
            r#"{{- if .Values.extraWorkloads }}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-agent
spec:
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
      app.kubernetes.io/component: agent
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: {{ .Release.Name }}
        app.kubernetes.io/component: agent
    spec:
      containers:
      - name: agent
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate-{{ .Values.image.tag }}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
{{- end }}
"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("helm")).unwrap();
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// One test's release on the bed: namespace, release name, helm major version.
pub struct Case {
    pub bed: Bed,
    pub client: kube::Client,
    pub ws: Workspace,
    pub ns: String,
    pub release: String,
    pub major: u8,
}

impl Case {
    pub async fn new(name: &str, major: u8) -> Case {
        let bed = Bed::load();
        let client = bed.client().await;
        let ns = create_namespace(&client, &format!("deploy-{name}-h{major}")).await;
        Case {
            bed,
            client,
            ws: Workspace::new(),
            ns,
            release: format!("app-h{major}"),
            major,
        }
    }

    /// The action with the inputs of a dev deploy of `tag` (both images), plus `extra`.
    pub fn action(&self, tag: &str, extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
        for (k, _) in std::env::vars() {
            if k.starts_with("INPUT_") || k.starts_with("GITHUB_") || k == "KUBECONFIG" {
                cmd.env_remove(k);
            }
        }
        let kubeconfig = std::fs::read_to_string(&self.bed.kubeconfig).unwrap();
        let home = self.ws.path().join("helm");
        let set = format!("image.tag={tag}\nscanner.image.tag={tag}");
        let mut inputs: BTreeMap<&str, String> = [
            ("chart", "chart".to_string()),
            ("release", self.release.clone()),
            ("namespace", self.ns.clone()),
            ("environment", "dev".into()),
            ("version", tag.to_string()),
            ("set", set),
            ("verify_images", "false".into()),
            ("timeout", "120s".into()),
            ("kubeconfig", kubeconfig),
            ("helm", self.bed.helm_path(self.major).display().to_string()),
        ]
        .into();
        for (k, v) in extra {
            inputs.insert(k, v.to_string());
        }
        for (k, v) in inputs {
            cmd.env(format!("INPUT_{}", k.to_uppercase()), v);
        }
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", self.ws.path())
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            // The private kubeconfig directory goes here, so a test can see it removed.
            .env("TMPDIR", self.tmp());
        cmd
    }

    /// The action's temporary directory.
    pub fn tmp(&self) -> PathBuf {
        let t = self.ws.path().join("tmp");
        std::fs::create_dir_all(&t).unwrap();
        t
    }

    /// Runs the action to its end.
    pub fn run(&self, tag: &str, extra: &[(&str, &str)]) -> Finished {
        Running::start(self.action(tag, extra), self.ws.path()).wait()
    }

    pub fn helm_json(&self, args: &[&str]) -> serde_json::Value {
        let mut cmd = self.bed.helm(self.major);
        cmd.args(args)
            .args([self.release.as_str(), "-n", &self.ns, "-o", "json"]);
        let out = self.bed.run(&mut cmd, Duration::from_secs(60));
        serde_json::from_slice(&out.stdout).expect("helm json")
    }

    /// (revision, status) of every revision.
    pub fn history(&self) -> Vec<(u64, String)> {
        self.helm_json(&["history"])
            .as_array()
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

    pub fn status(&self) -> (String, u64) {
        let v = self.helm_json(&["status"]);
        (
            v["info"]["status"].as_str().unwrap().to_string(),
            v["version"].as_u64().unwrap(),
        )
    }

    /// The orch Deployment's image tag, once it is fully rolled out and ready.
    pub async fn ready_orch_tag(&self) -> String {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        let d = api.get(&format!("{}-orch", self.release)).await.unwrap();
        let st = d.status.clone().unwrap();
        let want = d.spec.as_ref().unwrap().replicas.unwrap();
        assert!(
            st.observed_generation >= d.metadata.generation
                && st.updated_replicas == Some(want)
                && st.ready_replicas == Some(want)
                && st.available_replicas == Some(want),
            "orch not ready: {st:?}"
        );
        let image = d.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap();
        image.rsplit(':').next().unwrap().to_string()
    }

    pub async fn lease_gone(&self) -> bool {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.ns);
        api.get_opt(&format!("trader-deploy-{}", self.release))
            .await
            .unwrap()
            .is_none()
    }

    pub async fn done(self) {
        delete_namespace(&self.client, &self.ns).await;
    }
}

/// A running action whose stdout lines are recorded with the instant they arrived.
pub struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: std::thread::JoinHandle<()>,
    output: PathBuf,
    summary: PathBuf,
}

impl Running {
    pub fn start(mut cmd: Command, ws: &Path) -> Running {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let output = ws.join(format!("output-{n}"));
        let summary = ws.join(format!("summary-{n}"));
        cmd.env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn trader-deploy");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Running {
            child,
            lines,
            reader,
            output,
            summary,
        }
    }

    pub fn has_line(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|(_, l)| l.contains(needle))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(mut self) -> Finished {
        let deadline = Instant::now() + RUN_DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "trader-deploy still running after {RUN_DEADLINE:?}; log:\n{}",
                    self.lines
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|l| l.1.clone())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.reader.join().unwrap();
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        let outputs = parse_outputs(&std::fs::read_to_string(&self.output).unwrap_or_default());
        let summary = std::fs::read_to_string(&self.summary).unwrap_or_default();
        let f = Finished {
            code: status.code(),
            lines,
            outputs,
            summary,
        };
        eprintln!(
            "---- trader-deploy exited {:?}; log:\n{}\n---- outputs: {:?}",
            f.code,
            f.log(),
            f.outputs
        );
        f
    }
}

pub struct Finished {
    pub code: Option<i32>,
    pub lines: Vec<(Instant, String)>,
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
}

impl Finished {
    pub fn log(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.1.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
    pub fn out(&self, name: &str) -> &str {
        self.outputs.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn line_at(&self, needle: &str) -> Option<Instant> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }
}

pub fn assert_success(f: &Finished) {
    assert_eq!(f.code, Some(0), "the run failed:\n{}", f.log());
    assert_eq!(f.out("status"), "success");
    assert_eq!(f.out("rolled_back"), "false");
}

/// Waits until helm reports the release in `status`.
pub async fn wait_for_status(case: &Case, want: &str) {
    wait_for(
        &format!("release {} in {want}", case.release),
        Duration::from_secs(90),
        || async {
            let mut cmd = case.bed.helm(case.major);
            cmd.args(["status", &case.release, "-n", &case.ns, "-o", "json"]);
            let out = cmd.output().map_err(|e| e.to_string())?;
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
            let s = v["info"]["status"].as_str().unwrap_or_default().to_string();
            if s == want { Ok(()) } else { Err(s) }
        },
    )
    .await;
}

/// The test chart with one change: the orchestrator's image can be given whole (`image.ref`),
/// as the action's `images` input sets it (`repository:tag` or `repository@sha256:…`).
pub fn chart_with_image_ref(dir: &Path) -> PathBuf {
    let chart = dir.join("testapp");
    copy_dir(&testapp_chart(), &chart);
    let dep = chart.join("templates/deployment.yaml");
    let text = std::fs::read_to_string(&dep).unwrap();
    let old = r#"image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}""#;
    assert!(text.contains(old), "the test chart's image line changed");
    std::fs::write(
        &dep,
        text.replace(
            old,
            r#"image: {{ .Values.image.ref | default (printf "%s:%s" .Values.image.repository .Values.image.tag) | quote }}"#,
        ),
    )
    .unwrap();
    // `image.ref` and `scanner.image.ref` are values of the chart, as `images` requires.
    let values = chart.join("values.yaml");
    let text = std::fs::read_to_string(&values).unwrap();
    let text = text
        .replacen("image:\n", "image:\n  ref: \"\"\n", 1)
        .replacen("  image:\n", "  image:\n    ref: \"\"\n", 1);
    assert!(text.matches("ref: \"\"").count() == 2, "{text}");
    std::fs::write(&values, text).unwrap();
    chart
}
