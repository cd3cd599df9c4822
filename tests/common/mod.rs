//! Shared helpers of the end-to-end tests against the test bed (testbed/up.sh): reading the bed's
//! env file, kube clients, helm commands, unique namespaces, deadlines, HTTP over port-forwards.
#![allow(dead_code)]

pub mod case;
pub mod cli_run;
pub mod cloud_routes;
pub mod cloud_standin;
pub mod commands;
pub mod docker_action;
pub mod mermaid;
pub mod token_registry;
pub mod tools;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The running bed, as described by its env file (`export KEY=VALUE` lines written by up.sh).
#[derive(Clone, Debug)]
pub struct Bed {
    pub env_file: PathBuf,
    pub kubeconfig: PathBuf,
    pub helm3: PathBuf,
    pub helm4: PathBuf,
    /// host:port of the OCI registry, e.g. 127.0.0.1:45000.
    pub registry: String,
    /// Control URL of the fake trading app (see testbed/README.md).
    pub app_url: String,
    /// GITHUB_API_URL for the action (Prism in front of the GitHub stand-in), when the bed has it.
    pub github_api_url: Option<String>,
    /// The GitHub stand-in's own URL (request log, fixtures), when the bed has it.
    pub github_standin_url: Option<String>,
    /// Every variable of the env file.
    pub vars: BTreeMap<String, String>,
}

/// The repository root (this crate's manifest dir).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bed's test chart, testbed/charts/testapp.
pub fn testapp_chart() -> PathBuf {
    repo_root().join("testbed/charts/testapp")
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

impl Bed {
    /// Reads the env file from `TD_BED_ENV`, else `target/testbed/env`. Panics with a clear
    /// message when the bed is not up.
    pub fn load() -> Bed {
        let env_file = std::env::var_os("TD_BED_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/testbed/env"));
        let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "the test bed is not up: cannot read {} ({e}). Run `make testbed-up` (or \
                 `testbed/with-bed.sh cargo test --features bed ...`) first.",
                env_file.display()
            )
        });
        let vars = parse_env(&text);
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("the bed's env file {} has no {k}", env_file.display()))
        };
        let bed = Bed {
            kubeconfig: PathBuf::from(get("KUBECONFIG")),
            helm3: PathBuf::from(get("TD_HELM3")),
            helm4: PathBuf::from(get("TD_HELM4")),
            registry: get("TD_REGISTRY"),
            app_url: get("TD_APP_URL"),
            github_api_url: vars.get("GITHUB_API_URL").cloned(),
            github_standin_url: vars.get("TD_GITHUB_STANDIN_URL").cloned(),
            env_file,
            vars: vars.clone(),
        };
        for p in [&bed.kubeconfig, &bed.helm3, &bed.helm4] {
            assert!(
                p.exists(),
                "the test bed is not up: {} is missing (env file {})",
                p.display(),
                bed.env_file.display()
            );
        }
        bed
    }

    /// A kube client for the bed's cluster (from its kubeconfig, not the ambient one).
    pub async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.kubeconfig.display()));
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kube config from the bed's kubeconfig");
        Client::try_from(config).expect("kube client")
    }

    /// The helm binary of a major version (3 or 4).
    pub fn helm_path(&self, major: u8) -> &Path {
        match major {
            3 => &self.helm3,
            4 => &self.helm4,
            _ => panic!("no helm {major} in the bed"),
        }
    }

    /// A helm command of that major version, pointed at the bed (KUBECONFIG, no user config).
    pub fn helm(&self, major: u8) -> Command {
        let mut c = Command::new(self.helm_path(major));
        let home = repo_root().join(format!("target/testbed/helm{major}-home"));
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"));
        c
    }

    /// `repo:tag` of a test image in the bed registry, e.g. image("acme/python-orch", "v1.2.0").
    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.registry)
    }

    /// Runs a command of the bed (helm, kubectl) with a deadline; panics with its output on
    /// failure or timeout.
    pub fn run(&self, cmd: &mut Command, timeout: Duration) -> Output {
        let out = run_with_deadline(cmd, timeout);
        assert!(
            out.status.success(),
            "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Runs `cmd` and kills it if it outlives `timeout` (then panics). Its stdout and stderr are
/// drained while it runs, so a chatty child never blocks on a full pipe.
pub fn run_with_deadline(cmd: &mut Command, timeout: Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{cmd:?} still running after {timeout:?}; killed.\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                    String::from_utf8_lossy(&stderr.join().unwrap_or_default())
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("wait {cmd:?}: {e}"),
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// A DNS-1123 name unique to this test process and call: `prefix-<pid>-<n>-<time>`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!("{prefix}-{}-{n}-{t}", std::process::id())
}

/// Creates a fresh namespace (labelled `trader-deploy.test/bed=true`) and returns its name.
pub async fn create_namespace(client: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"trader-deploy.test/bed": "true"}},
    }))
    .expect("namespace object");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    name
}

/// Deletes a namespace (does not wait). Call at the end of a passing test; a failing test
/// leaves its namespace for inspection until the bed goes down.
pub async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await;
}

/// Polls `probe` every 250 ms until it returns `Ok(value)` or `timeout` passes; then panics with
/// `what` and the last `Err` description.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match tokio::time::timeout(Duration::from_secs(10), probe()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) => e,
            Err(_) => "probe took over 10 s".to_string(),
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last state: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Pods of a namespace matching a label selector.
pub async fn list_pods(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// An HTTP/1.1 response read from a port-forward.
#[derive(Debug)]
pub struct PfResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// GET `path` on `port` of a pod through the API server's port-forward (what kwok sends to the
/// fake app). One connection per request; the whole exchange has a 20 s deadline.
pub async fn http_get_via_port_forward(
    client: &Client,
    ns: &str,
    pod: &str,
    port: u16,
    path: &str,
) -> Result<PfResponse, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let fut = async {
        let mut pf = pods
            .portforward(pod, &[port])
            .await
            .map_err(|e| format!("portforward {ns}/{pod}:{port}: {e}"))?;
        let mut stream = pf
            .take_stream(port)
            .ok_or_else(|| "port-forward gave no stream".to_string())?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: trader-deploy-bed-test\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        // Read until the headers and Content-Length bytes of body are in: the tunnel is not
        // closed by the far side, so reading to EOF would hang.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let (head, body) = loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {e}"))?;
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                });
                if n == 0 || len.is_some_and(|len| body.len() >= len) {
                    break (head.to_string(), body.to_string());
                }
            } else if n == 0 {
                return Err(format!(
                    "no HTTP response through the port-forward: {text:?}"
                ));
            }
        };
        drop(stream);
        let _ = pf.join().await;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        Ok(PfResponse {
            status,
            headers: head,
            body,
        })
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .map_err(|_| format!("port-forward GET {path} to {ns}/{pod} took over 20 s"))?
}

/// Parses `$GITHUB_OUTPUT` as the runner does (`name<<DELIMITER`, the value, `DELIMITER`).
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(head) = lines.next() {
        let (name, delim) = head
            .split_once("<<")
            .unwrap_or_else(|| panic!("not name<<DELIMITER: {head:?}"));
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delim {
                break;
            }
            value.push(l);
        }
        out.insert(name.to_string(), value.join("\n"));
    }
    out
}

/// One repository of a test's own in the GitHub stand-in (testbed/github/), so tests running at
/// once never see each other's deployments, faults or log entries.
pub struct StandinRepo {
    /// `acme/<unique>`.
    pub full: String,
    /// GITHUB_API_URL: the stand-in behind Prism.
    pub api: String,
    /// The stand-in itself, for its control endpoints.
    pub standin: String,
    http: reqwest::Client,
}

impl StandinRepo {
    /// Adds the default fixture under a unique repository name; `edit` may change it first.
    pub async fn add(
        api: String,
        standin: String,
        prefix: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> StandinRepo {
        let name = unique_name(prefix);
        let mut fx: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("tests/fixtures/github/default.json"))
                .unwrap(),
        )
        .unwrap();
        fx["repository"]["name"] = serde_json::json!(name);
        edit(&mut fx);
        let repo = StandinRepo {
            full: format!("acme/{name}"),
            api,
            standin,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        };
        let r = repo.control("POST", "/_standin/repos", Some(fx)).await;
        assert_eq!(r["repo"], serde_json::json!(repo.full), "{r}");
        repo
    }

    /// Calls a control endpoint of the stand-in; panics unless it succeeds.
    pub async fn control(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("{}{path}", self.standin);
        let mut req = self
            .http
            .request(method.parse().unwrap(), &url)
            .header("content-type", "application/json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        assert!(status.is_success(), "{method} {url}: {status} {v}");
        v
    }

    /// This repository's entries of the stand-in's request log, oldest first.
    pub async fn log(&self) -> Vec<serde_json::Value> {
        let prefix = format!("/repos/{}", self.full);
        let all = self
            .control("GET", &format!("/_standin/log?path_prefix={prefix}"), None)
            .await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["path"]
                    .as_str()
                    .is_some_and(|p| p == prefix || p.starts_with(&format!("{prefix}/")))
            })
            .cloned()
            .collect()
    }
}

/// The seeds' checks (examples/smoke-tests.yaml) pointed at the test chart's Service
/// `<release>-orch`, each with `timeout`.
pub fn smoke_spec(timeout: &str) -> String {
    SMOKE_SPEC.replace("{timeout}", timeout)
}

const SMOKE_SPEC: &str = r#"
defaults:
  service: ${release}-orch
  port: http
  timeout: {timeout}
  interval: 500ms
  request_timeout: 5s
  successes: 2
checks:
  - name: healthz
    path: /health
    expect: {status: 200}
  - name: ready
    path: /ready
    expect: {status: 200}
  - name: metrics
    path: /metrics
    expect:
      status: 200
      metrics: [http_requests_total]
  - name: api-status
    path: /api/v1/status
    headers: {Accept: application/json}
    expect:
      status: 200
      json:
        /status: ok
        /version: ${version}
        /namespace: ${namespace}
"#;

/// The sha256 of the manifest bytes, computed here (not taken from the registry's header).
pub async fn manifest_sha256(bed: &Bed, repo: &str, tag: &str) -> String {
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
