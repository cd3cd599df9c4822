//! The bed's fake trading app: answers /health, /ready, /metrics and /api/v1/status for every
//! pod in the kwok cluster, healthy or failing per (namespace, version), through kwok port-forwards.
//!
//! kwok runs no containers, so a port-forward to a pod goes wherever kwok's PortForward rules say.
//! This program watches the cluster's pods and, for each one, creates a `PortForward` object
//! (kwok.x-k8s.io/v1alpha1, owned by the pod) whose target is a port of its own, one port per
//! (namespace, version). The version is the pod's `trader-deploy.test/version` annotation, else
//! the tag of its first container's image. Each such port serves the app for that version. The
//! cluster-wide fallback port (kwok's ClusterPortForward in testbed/kwok/port-forward.yaml)
//! answers 503 "no route" so a pod this program has not seen yet never looks healthy.
//!
//! Control API (TD_APP_URL): `GET /healthz`; `GET /control` (rules and routes); `POST /control`
//! with `{"version": "v1.2.0", "namespace": "ns" (optional), "health": 200, "ready": 503,
//! "fail_next": 3}` sets the behaviour of a version (`fail_next`: the next N app requests answer
//! 503, then the rule's codes: a cutover blip); `DELETE /control` clears all rules;
//! `GET /requests?namespace=ns` lists the app requests served. Default behaviour without a rule:
//! everything 200, except tag `unready-app` whose /ready answers 503.
//!
//! A trading desk's drain endpoints (issue #18): `GET /api/v1/orders/open` answers
//! `{"count": N}`, N being the rule's `open_orders` (default 0; a later POST /control changes it,
//! as a bot finishing its orders would); `POST /admin/pause-new-orders` and `POST /admin/resume`
//! answer 200 `{"paused": …}`. Every one of them is in the request log, in order.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};
use serde_json::json;

const VERSION_ANNOTATION: &str = "trader-deploy.test/version";
const FIELD_MANAGER: &str = "trader-bed-fake-app";
const LOG_CAP: usize = 20_000;

/// Behaviour of one version (optionally in one namespace).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Rule {
    #[serde(default)]
    namespace: Option<String>,
    version: String,
    #[serde(default = "ok")]
    health: u16,
    #[serde(default = "ok")]
    ready: u16,
    /// The next N app requests (any endpoint but /metrics) answer 503, then the codes above.
    #[serde(default)]
    fail_next: u32,
    /// What `GET /api/v1/orders/open` counts.
    #[serde(default)]
    open_orders: u32,
}

fn ok() -> u16 {
    200
}

#[derive(Clone, Debug, Serialize)]
struct LogEntry {
    at_ms: u128,
    namespace: String,
    version: String,
    path: String,
    status: u16,
}

#[derive(Debug, Serialize)]
struct RouteView {
    namespace: String,
    version: String,
    port: u16,
    pods: Vec<String>,
}

struct Route {
    port: u16,
    pods: HashSet<String>,
    server: tokio::task::JoinHandle<()>,
}

type Key = (String, String); // (namespace, version)

#[derive(Default)]
struct Inner {
    rules: HashMap<(Option<String>, String), Rule>,
    routes: HashMap<Key, Route>,
    pod_keys: HashMap<(String, String), Key>, // (namespace, pod) -> key
    counters: HashMap<Key, HashMap<(String, u16), u64>>,
    log: Vec<LogEntry>,
}

struct Shared {
    inner: Mutex<Inner>,
    pool: Vec<u16>,
}

type AppState = Arc<Shared>;

#[derive(Clone)]
struct RouteState {
    shared: AppState,
    key: Key,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The tag of an image reference: the part after the last ':' of the last path segment.
fn image_tag(image: &str) -> String {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag.to_string(),
        None => "latest".to_string(),
    }
}

fn pod_version(pod: &Pod) -> Option<String> {
    if let Some(v) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(VERSION_ANNOTATION))
    {
        return Some(v.clone());
    }
    let image = pod.spec.as_ref()?.containers.first()?.image.clone()?;
    Some(image_tag(&image))
}

impl Shared {
    fn rule_for(inner: &Inner, key: &Key) -> Rule {
        inner
            .rules
            .get(&(Some(key.0.clone()), key.1.clone()))
            .or_else(|| inner.rules.get(&(None, key.1.clone())))
            .cloned()
            .unwrap_or_else(|| Rule {
                namespace: None,
                version: key.1.clone(),
                health: 200,
                ready: if key.1 == "unready-app" { 503 } else { 200 },
                fail_next: 0,
                open_orders: 0,
            })
    }

    /// Decides the status of one app request and records it.
    fn answer(&self, key: &Key, path: &str) -> u16 {
        let mut inner = self.inner.lock().unwrap();
        let rule = Self::rule_for(&inner, key);
        let mut status = match path {
            "/health" => rule.health,
            "/ready" => rule.ready,
            _ => 200,
        };
        if path != "/metrics" && rule.fail_next > 0 {
            status = 503;
            let rk = (rule.namespace.clone(), rule.version.clone());
            if let Some(r) = inner.rules.get_mut(&rk) {
                r.fail_next -= 1;
            }
        }
        *inner
            .counters
            .entry(key.clone())
            .or_default()
            .entry((path.to_string(), status))
            .or_default() += 1;
        if inner.log.len() >= LOG_CAP {
            inner.log.drain(..LOG_CAP / 2);
        }
        inner.log.push(LogEntry {
            at_ms: now_ms(),
            namespace: key.0.clone(),
            version: key.1.clone(),
            path: path.to_string(),
            status,
        });
        status
    }
}

fn code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn app_health(State(s): State<RouteState>) -> Response {
    let st = s.shared.answer(&s.key, "/health");
    let body = if st == 200 { "ok\n" } else { "unhealthy\n" };
    (code(st), body).into_response()
}

async fn app_ready(State(s): State<RouteState>) -> Response {
    let st = s.shared.answer(&s.key, "/ready");
    let body = if st == 200 { "ready\n" } else { "not ready\n" };
    (code(st), body).into_response()
}

async fn app_status(State(s): State<RouteState>) -> Response {
    let st = s.shared.answer(&s.key, "/api/v1/status");
    let status = if st == 200 { "ok" } else { "error" };
    let body = json!({"status": status, "version": s.key.1, "namespace": s.key.0});
    (code(st), Json(body)).into_response()
}

async fn app_metrics(State(s): State<RouteState>) -> Response {
    s.shared.answer(&s.key, "/metrics");
    let inner = s.shared.inner.lock().unwrap();
    let mut out = String::new();
    out.push_str("# HELP http_requests_total HTTP requests served by the fake trading app.\n");
    out.push_str("# TYPE http_requests_total counter\n");
    let mut rows: Vec<_> = inner
        .counters
        .get(&s.key)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    rows.sort();
    for ((path, st), n) in rows {
        out.push_str(&format!(
            "http_requests_total{{path=\"{path}\",code=\"{st}\"}} {n}\n"
        ));
    }
    out.push_str("# HELP app_info Version of the fake trading app.\n# TYPE app_info gauge\n");
    out.push_str(&format!("app_info{{version=\"{}\"}} 1\n", s.key.1));
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}

async fn app_open_orders(State(s): State<RouteState>) -> Response {
    let st = s.shared.answer(&s.key, "/api/v1/orders/open");
    let count = {
        let inner = s.shared.inner.lock().unwrap();
        Shared::rule_for(&inner, &s.key).open_orders
    };
    (code(st), Json(json!({"count": count}))).into_response()
}

async fn app_pause(State(s): State<RouteState>) -> Response {
    let st = s.shared.answer(&s.key, "/admin/pause-new-orders");
    (code(st), Json(json!({"paused": true}))).into_response()
}

async fn app_resume(State(s): State<RouteState>) -> Response {
    let st = s.shared.answer(&s.key, "/admin/resume");
    (code(st), Json(json!({"paused": false}))).into_response()
}

fn app_router(state: RouteState) -> Router {
    Router::new()
        .route("/api/v1/orders/open", get(app_open_orders))
        .route("/admin/pause-new-orders", axum::routing::post(app_pause))
        .route("/admin/resume", axum::routing::post(app_resume))
        .route("/health", get(app_health))
        .route("/healthz", get(app_health))
        .route("/ready", get(app_ready))
        .route("/readyz", get(app_ready))
        .route("/metrics", get(app_metrics))
        .route("/api/v1/status", get(app_status))
        .with_state(state)
}

async fn fallback_handler() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "fake_app: no port-forward route for this pod yet (its PortForward is not created)\n",
    )
        .into_response()
}

// ---- control API ----

async fn control_get(State(s): State<AppState>) -> Json<serde_json::Value> {
    let inner = s.inner.lock().unwrap();
    let rules: Vec<&Rule> = inner.rules.values().collect();
    let mut routes: Vec<RouteView> = inner
        .routes
        .iter()
        .map(|((ns, v), r)| {
            let mut pods: Vec<String> = r.pods.iter().cloned().collect();
            pods.sort();
            RouteView {
                namespace: ns.clone(),
                version: v.clone(),
                port: r.port,
                pods,
            }
        })
        .collect();
    routes.sort_by(|a, b| (&a.namespace, &a.version).cmp(&(&b.namespace, &b.version)));
    Json(json!({"rules": rules, "routes": routes}))
}

async fn control_post(State(s): State<AppState>, Json(rule): Json<Rule>) -> Json<Rule> {
    let mut inner = s.inner.lock().unwrap();
    inner
        .rules
        .insert((rule.namespace.clone(), rule.version.clone()), rule.clone());
    Json(rule)
}

async fn control_delete(State(s): State<AppState>) -> StatusCode {
    s.inner.lock().unwrap().rules.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct LogQuery {
    namespace: Option<String>,
}

async fn requests_get(State(s): State<AppState>, Query(q): Query<LogQuery>) -> Json<Vec<LogEntry>> {
    let inner = s.inner.lock().unwrap();
    Json(
        inner
            .log
            .iter()
            .filter(|e| q.namespace.as_ref().is_none_or(|ns| &e.namespace == ns))
            .cloned()
            .collect(),
    )
}

fn control_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/control",
            get(control_get).post(control_post).delete(control_delete),
        )
        .route("/requests", get(requests_get))
        .with_state(state)
}

// ---- routes and the pod watcher ----

/// Returns the port serving `key`, starting a listener from the pool if needed.
async fn ensure_route(shared: &AppState, key: &Key) -> Result<u16> {
    if let Some(r) = shared.inner.lock().unwrap().routes.get(key) {
        return Ok(r.port);
    }
    let used: HashSet<u16> = shared
        .inner
        .lock()
        .unwrap()
        .routes
        .values()
        .map(|r| r.port)
        .collect();
    for &port in shared.pool.iter().filter(|p| !used.contains(p)) {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(_) => continue,
        };
        let router = app_router(RouteState {
            shared: shared.clone(),
            key: key.clone(),
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        shared.inner.lock().unwrap().routes.insert(
            key.clone(),
            Route {
                port,
                pods: HashSet::new(),
                server,
            },
        );
        eprintln!("fake_app: route {}/{} -> 127.0.0.1:{port}", key.0, key.1);
        return Ok(port);
    }
    anyhow::bail!("no free port left in the fake app's pool")
}

fn forget_pod(shared: &AppState, ns: &str, pod: &str) {
    let mut inner = shared.inner.lock().unwrap();
    let Some(key) = inner.pod_keys.remove(&(ns.to_string(), pod.to_string())) else {
        return;
    };
    let empty = match inner.routes.get_mut(&key) {
        Some(r) => {
            r.pods.remove(pod);
            r.pods.is_empty()
        }
        None => false,
    };
    if empty && let Some(r) = inner.routes.remove(&key) {
        r.server.abort();
        eprintln!("fake_app: route {}/{} released", key.0, key.1);
    }
}

async fn on_pod(shared: &AppState, client: &kube::Client, pod: &Pod) -> Result<()> {
    let (Some(ns), Some(name), Some(uid)) = (
        pod.metadata.namespace.clone(),
        pod.metadata.name.clone(),
        pod.metadata.uid.clone(),
    ) else {
        return Ok(());
    };
    if ns == "kube-system" {
        return Ok(());
    }
    let Some(version) = pod_version(pod) else {
        return Ok(());
    };
    let key = (ns.clone(), version);
    let pk = (ns.clone(), name.clone());
    if shared.inner.lock().unwrap().pod_keys.get(&pk) == Some(&key) {
        return Ok(());
    }
    forget_pod(shared, &ns, &name);
    let port = ensure_route(shared, &key).await?;
    {
        let mut inner = shared.inner.lock().unwrap();
        if let Some(r) = inner.routes.get_mut(&key) {
            r.pods.insert(name.clone());
        }
        inner.pod_keys.insert(pk, key.clone());
    }
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "PortForward");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "portforwards");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let obj = json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "PortForward",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}],
        },
        "spec": {"forwards": [{"target": {"address": "127.0.0.1", "port": port}}]},
    });
    let res = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await;
    if let Err(e) = res {
        // Forget it so the pod's next event retries.
        forget_pod(shared, &ns, &name);
        return Err(e).with_context(|| format!("apply PortForward {ns}/{name}"));
    }
    Ok(())
}

async fn watch_pods(shared: AppState) {
    loop {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fake_app: no kubernetes client yet: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let pods: Api<Pod> = Api::all(client.clone());
        let mut stream = watcher(pods, watcher::Config::default()).boxed();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Init) => seen.clear(),
                Ok(watcher::Event::InitApply(p)) | Ok(watcher::Event::Apply(p)) => {
                    if let (Some(ns), Some(n)) = (&p.metadata.namespace, &p.metadata.name) {
                        seen.insert((ns.clone(), n.clone()));
                    }
                    if let Err(e) = on_pod(&shared, &client, &p).await {
                        eprintln!("fake_app: {e:#}");
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let stale: Vec<(String, String)> = shared
                        .inner
                        .lock()
                        .unwrap()
                        .pod_keys
                        .keys()
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect();
                    for (ns, n) in stale {
                        forget_pod(&shared, &ns, &n);
                    }
                }
                Ok(watcher::Event::Delete(p)) => {
                    if let (Some(ns), Some(n)) = (&p.metadata.namespace, &p.metadata.name) {
                        forget_pod(&shared, ns, n);
                    }
                }
                Err(e) => {
                    eprintln!("fake_app: pod watch: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

struct Args {
    control: SocketAddr,
    fallback: SocketAddr,
    pool: Vec<u16>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        control: "127.0.0.1:45020".parse()?,
        fallback: "127.0.0.1:45021".parse()?,
        pool: (45030..=45079).collect(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--control" => a.control = val.parse()?,
            "--fallback" => a.fallback = val.parse()?,
            "--pool" => {
                let (lo, hi) = val.split_once('-').context("--pool LO-HI")?;
                a.pool = (lo.parse()?..=hi.parse()?).collect();
            }
            _ => anyhow::bail!(
                "usage: fake_app [--control ADDR] [--fallback ADDR] [--pool LO-HI] (KUBECONFIG from env)"
            ),
        }
    }
    for addr in [a.control, a.fallback] {
        anyhow::ensure!(addr.ip().is_loopback(), "{addr}: bind loopback only");
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let shared: AppState = Arc::new(Shared {
        inner: Mutex::new(Inner::default()),
        pool: args.pool,
    });
    let control = tokio::net::TcpListener::bind(args.control)
        .await
        .with_context(|| format!("bind {}", args.control))?;
    let fallback = tokio::net::TcpListener::bind(args.fallback)
        .await
        .with_context(|| format!("bind {}", args.fallback))?;
    tokio::spawn(async move {
        let _ = axum::serve(fallback, Router::new().fallback(fallback_handler)).await;
    });
    tokio::spawn(watch_pods(shared.clone()));
    eprintln!(
        "fake_app: control on http://{}, fallback on {}",
        args.control, args.fallback
    );
    axum::serve(control, control_router(shared))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
