//! Reliability on the bed, the long part (`make soak`, feature `soak`): the kube-apiserver is
//! killed (SIGKILL) while the action watches a rollout and started again a few seconds later with
//! the same command line; the action's outcome is still right (a healthy upgrade succeeds, a
//! never-ready one is rolled back and verified) and the bed is healthy afterwards.
//!
//! These tests stop the bed's API server, so `make soak` runs them one at a time on a bed of
//! their own (target/testbed-soak), never on the shared one; a file lock in the bed's state dir
//! serializes them even when started by hand.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::case::copy_dir;
use common::{Bed, create_namespace, delete_namespace, parse_outputs, testapp_chart, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

const RUN_DEADLINE: Duration = Duration::from_secs(300);
/// How long the API server stays down.
const DOWNTIME: Duration = Duration::from_secs(4);

/// An exclusive lock on a file of the bed's state dir, held for the test's life.
struct BedLock {
    _file: std::fs::File,
}

impl BedLock {
    fn take(bed: &Bed) -> BedLock {
        let dir = bed.env_file.parent().unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("apiserver-restart.lock"))
            .unwrap();
        use std::os::fd::AsRawFd as _;
        // SAFETY: flock(2) on a file descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        BedLock { _file: file }
    }
}

/// The bed's kube-apiserver process, as kwokctl started it (binary runtime).
struct ApiServer {
    cluster_dir: PathBuf,
    argv: Vec<String>,
    pid: i32,
}

impl ApiServer {
    /// Finds the apiserver serving the bed's kubeconfig: the kwokctl cluster dir whose pid file
    /// names a live kube-apiserver listening on the kubeconfig's port.
    fn find(bed: &Bed) -> ApiServer {
        let kubeconfig = std::fs::read_to_string(&bed.kubeconfig).unwrap();
        let port = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .and_then(|s| s.rsplit(':').next())
            .expect("server in the kubeconfig")
            .trim()
            .to_string();
        let clusters = bed.env_file.parent().unwrap().join("kwok/clusters");
        for e in
            std::fs::read_dir(&clusters).unwrap_or_else(|e| panic!("{}: {e}", clusters.display()))
        {
            let dir = e.unwrap().path();
            let Ok(pid) = std::fs::read_to_string(dir.join("pids/kube-apiserver.pid")) else {
                continue;
            };
            let pid: i32 = pid.trim().parse().unwrap();
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let argv: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if argv.first().is_some_and(|a| a.ends_with("kube-apiserver"))
                && argv.iter().any(|a| a == &format!("--secure-port={port}"))
            {
                return ApiServer {
                    cluster_dir: dir,
                    argv,
                    pid,
                };
            }
        }
        panic!(
            "no running kube-apiserver on port {port} under {}",
            clusters.display()
        );
    }

    /// SIGKILL, and wait until the process is gone.
    fn kill(&self) {
        // SAFETY: kill(2) on the bed's apiserver pid, read from its own pid file just now.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{}/cmdline", self.pid)).exists()
            && std::fs::read(format!("/proc/{}/cmdline", self.pid)).is_ok_and(|c| !c.is_empty())
        {
            assert!(Instant::now() < deadline, "the apiserver did not die");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the same command line again from the cluster dir, detached (its own process
    /// group, output appended to kwokctl's log), and records the new pid where kwokctl keeps it.
    fn start(&mut self) {
        use std::os::unix::process::CommandExt as _;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cluster_dir.join("logs/kube-apiserver.log"))
            .unwrap();
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .current_dir(&self.cluster_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("restart kube-apiserver");
        self.pid = child.id() as i32;
        std::fs::write(
            self.cluster_dir.join("pids/kube-apiserver.pid"),
            self.pid.to_string(),
        )
        .unwrap();
        // Not waited for: it outlives this test, like the one kwokctl started.
        std::mem::forget(child);
    }
}

/// Restarts the apiserver if a test stops between kill and start, so the bed stays usable.
struct RestartGuard<'a> {
    api: &'a mut ApiServer,
    down: bool,
}

impl RestartGuard<'_> {
    fn kill(&mut self) {
        self.api.kill();
        self.down = true;
    }
    fn start(&mut self) {
        self.api.start();
        self.down = false;
    }
}

impl Drop for RestartGuard<'_> {
    fn drop(&mut self) {
        if self.down {
            self.api.start();
        }
    }
}

async fn wait_ready(bed: &Bed) {
    let client = bed.client().await;
    wait_for(
        "the kube-apiserver /readyz",
        Duration::from_secs(90),
        || {
            let client = client.clone();
            async move {
                let req = http::Request::get("/readyz")
                    .body(Vec::new())
                    .map_err(|e| e.to_string())?;
                client
                    .request_text(req)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;
}

/// A workspace with the bed's chart whose Deployment waits `minReadySeconds` before a Ready pod
/// counts as available, so a rollout lasts long enough to restart the API server inside it.
fn workspace(min_ready: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&testapp_chart(), &dir.path().join("chart"));
    let dep = dir.path().join("chart/templates/deployment.yaml");
    let text = std::fs::read_to_string(&dep).unwrap();
    assert!(text.contains("minReadySeconds: 0"), "{text}");
    std::fs::write(
        &dep,
        text.replace(
            "minReadySeconds: 0",
            &format!("minReadySeconds: {min_ready}"),
        ),
    )
    .unwrap();
    dir
}

fn action(bed: &Bed, ws: &Path, ns: &str, tag: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
    cmd.env_clear();
    for k in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    let home = ws.join("helm");
    let inputs: BTreeMap<&str, String> = [
        ("chart", "chart".to_string()),
        ("release", "app".into()),
        ("namespace", ns.into()),
        ("environment", "dev".into()),
        ("version", tag.into()),
        // The failing case keeps the chart's 15 s progress deadline; the healthy one gets room
        // for two pods at minReadySeconds each plus the downtime.
        (
            "set",
            format!(
                "image.tag={tag}\nscanner.image.tag={tag}\nprogressDeadlineSeconds={}",
                if tag == "never-ready" { 15 } else { 90 }
            ),
        ),
        ("verify_images", "false".into()),
        ("timeout", "180s".into()),
        (
            "kubeconfig",
            std::fs::read_to_string(&bed.kubeconfig).unwrap(),
        ),
        ("helm", bed.helm3.display().to_string()),
    ]
    .into();
    for (k, v) in inputs {
        cmd.env(format!("INPUT_{}", k.to_uppercase()), v);
    }
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", ws)
        .env("GITHUB_OUTPUT", ws.join("output"))
        .env("GITHUB_STEP_SUMMARY", ws.join("summary"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .current_dir(ws);
    let _ = std::fs::remove_file(ws.join("output"));
    cmd
}

/// A running action whose stdout lines are collected as they come.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn trader-deploy");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                sink.lock().unwrap().push(l);
            }
        });
        Running {
            child,
            lines,
            reader,
        }
    }

    fn has_line(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// (exit code, log, outputs)
    fn wait(mut self, ws: &Path) -> (Option<i32>, String, BTreeMap<String, String>) {
        let deadline = Instant::now() + RUN_DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "trader-deploy still running after {RUN_DEADLINE:?}:\n{}",
                    self.lines.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.reader.join().unwrap();
        let log = self.lines.lock().unwrap().join("\n");
        eprintln!("---- trader-deploy exited {:?}:\n{log}", status.code());
        let outputs =
            parse_outputs(&std::fs::read_to_string(ws.join("output")).unwrap_or_default());
        (status.code(), log, outputs)
    }
}

fn helm_status(bed: &Bed, ns: &str) -> (String, u64) {
    let mut cmd = bed.helm(3);
    cmd.args(["status", "app", "-n", ns, "-o", "json"]);
    let out = bed.run(&mut cmd, Duration::from_secs(60));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["info"]["status"].as_str().unwrap().to_string(),
        v["version"].as_u64().unwrap(),
    )
}

async fn orch_tag_ready(client: &kube::Client, ns: &str) -> String {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("app-orch")
        .await
        .unwrap();
    let st = d.status.clone().unwrap();
    let want = d.spec.as_ref().unwrap().replicas.unwrap();
    assert!(
        st.updated_replicas == Some(want)
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

/// v1.0.0 deployed, then `tag` deployed; the API server is killed once the action watches the
/// rollout, and started again after DOWNTIME. Returns the second run's (code, log, outputs).
async fn restart_mid_rollout(
    prefix: &str,
    tag: &str,
) -> (
    Bed,
    kube::Client,
    String,
    Option<i32>,
    String,
    BTreeMap<String, String>,
) {
    let bed = Bed::load();
    let _lock = BedLock::take(&bed);
    wait_ready(&bed).await;
    let client = bed.client().await;
    let ns = create_namespace(&client, prefix).await;
    let ws = workspace(12);
    let (code, log, _) = Running::start(action(&bed, ws.path(), &ns, "v1.0.0")).wait(ws.path());
    assert_eq!(code, Some(0), "{log}");

    let mut api = ApiServer::find(&bed);
    let running = Running::start(action(&bed, ws.path(), &ns, tag));
    wait_for(
        "the action to watch revision 2",
        Duration::from_secs(120),
        || {
            let seen = running.has_line("::group::Watch the rollout of revision 2");
            async move { if seen { Ok(()) } else { Err("not yet".into()) } }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    {
        let mut guard = RestartGuard {
            api: &mut api,
            down: false,
        };
        guard.kill();
        eprintln!("---- kube-apiserver killed (pid {})", guard.api.pid);
        tokio::time::sleep(DOWNTIME).await;
        guard.start();
        eprintln!("---- kube-apiserver started again (pid {})", guard.api.pid);
    }
    wait_ready(&bed).await;
    let (code, log, outputs) = running.wait(ws.path());
    let client = bed.client().await;
    (bed, client, ns, code, log, outputs)
}

#[tokio::test(flavor = "multi_thread")]
async fn apiserver_restart_mid_rollout_healthy_upgrade_succeeds() {
    let (bed, client, ns, code, log, outputs) = restart_mid_rollout("soak-ok", "v1.1.0").await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(outputs.get("status").map(String::as_str), Some("success"));
    assert_eq!(outputs.get("revision").map(String::as_str), Some("2"));
    assert_eq!(helm_status(&bed, &ns), ("deployed".to_string(), 2));
    assert_eq!(orch_tag_ready(&client, &ns).await, "v1.1.0");
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apiserver_restart_mid_rollout_failure_is_rolled_back() {
    let (bed, client, ns, code, log, outputs) =
        restart_mid_rollout("soak-bad", "never-ready").await;
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(
        outputs.get("status").map(String::as_str),
        Some("rolled_back"),
        "{log}"
    );
    assert!(log.contains("ProgressDeadlineExceeded"), "{log}");
    assert_eq!(helm_status(&bed, &ns), ("deployed".to_string(), 3));
    assert_eq!(orch_tag_ready(&client, &ns).await, "v1.0.0");
    delete_namespace(&client, &ns).await;
}
