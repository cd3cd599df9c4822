//! Rollout tracking: the release's workloads (from its manifest) and their pods watched with
//! kube-rs watchers; live progress lines; success only when every workload is fully updated and
//! ready; fail fast on a failing pod status; diagnostics for the job summary on failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant, SystemTime};

use futures::stream::{BoxStream, StreamExt as _};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};

use crate::pipeline::Cancel;
use crate::runner::Runner;

/// Container waiting reasons that fail a rollout at once.
pub const FAILING_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A workload kind the watcher tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "Deployment" => Some(Kind::Deployment),
            "StatefulSet" => Some(Kind::StatefulSet),
            "DaemonSet" => Some(Kind::DaemonSet),
            "Job" => Some(Kind::Job),
            _ => None,
        }
    }
}

/// One workload of the release.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{}", self.kind, self.name)
    }
}

/// The Deployments, StatefulSets, DaemonSets and Jobs of a rendered manifest (multi-document
/// YAML, as `helm get manifest` prints it). Helm hooks are not part of the release manifest.
pub fn workloads_from_manifest(manifest: &str, default_namespace: &str) -> Vec<Workload> {
    let mut out = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(manifest) {
        let Ok(v) = serde_yaml_ng::Value::deserialize(doc) else {
            continue;
        };
        let Some(kind) = v.get("kind").and_then(|k| k.as_str()).and_then(Kind::parse) else {
            continue;
        };
        let meta = v.get("metadata");
        let Some(name) = meta.and_then(|m| m.get("name")).and_then(|n| n.as_str()) else {
            continue;
        };
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(|n| n.as_str())
            .unwrap_or(default_namespace);
        out.insert(Workload {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }
    out.into_iter().collect()
}

use serde::Deserialize as _;

/// Where one workload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Ready(String),
    Waiting(String),
    Failed(String),
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

fn observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    match (generation, observed) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// updated = ready = available = desired, and nothing old left.
fn counts(
    desired: i32,
    total: i32,
    updated: i32,
    ready: i32,
    available: i32,
    extra: Option<String>,
) -> Progress {
    let line = format!(
        "{updated}/{desired} updated, {ready}/{desired} ready, {available}/{desired} available"
    );
    let old = total - updated;
    if updated == desired && ready == desired && available == desired && old <= 0 {
        if let Some(e) = extra {
            return Progress::Waiting(format!("{line}, {e}"));
        }
        Progress::Ready(line)
    } else if old > 0 && updated == desired {
        Progress::Waiting(format!("{line}, {old} old pod(s) terminating"))
    } else {
        Progress::Waiting(line)
    }
}

pub fn deployment_progress(d: &Deployment) -> Progress {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = &d.status else {
        return Progress::Waiting("no status yet".into());
    };
    // First: a condition of an older generation (a stale ProgressDeadlineExceeded) says nothing
    // about this one.
    if !observed(d.metadata.generation, st.observed_generation) {
        return Progress::Waiting("waiting for the controller to observe the new spec".into());
    }
    if let Some(c) = st.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Progress::Failed(format!(
            "ProgressDeadlineExceeded: {}",
            c.message
                .as_deref()
                .unwrap_or("the rollout made no progress")
        ));
    }
    counts(
        desired,
        n(st.replicas),
        n(st.updated_replicas),
        n(st.ready_replicas),
        n(st.available_replicas),
        None,
    )
}

pub fn statefulset_progress(s: &StatefulSet) -> Progress {
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = &s.status else {
        return Progress::Waiting("no status yet".into());
    };
    if !observed(s.metadata.generation, st.observed_generation) {
        return Progress::Waiting("waiting for the controller to observe the new spec".into());
    }
    let extra = match (&st.current_revision, &st.update_revision) {
        (Some(c), Some(u)) if c != u => Some(format!("revision {u} not yet current")),
        _ => None,
    };
    counts(
        desired,
        st.replicas,
        n(st.updated_replicas),
        n(st.ready_replicas),
        n(st.available_replicas),
        extra,
    )
}

pub fn daemonset_progress(d: &DaemonSet) -> Progress {
    let Some(st) = &d.status else {
        return Progress::Waiting("no status yet".into());
    };
    if !observed(d.metadata.generation, st.observed_generation) {
        return Progress::Waiting("waiting for the controller to observe the new spec".into());
    }
    let desired = st.desired_number_scheduled;
    counts(
        desired,
        st.current_number_scheduled,
        n(st.updated_number_scheduled),
        st.number_ready,
        n(st.number_available),
        None,
    )
}

pub fn job_progress(j: &Job) -> Progress {
    let Some(st) = &j.status else {
        return Progress::Waiting("no status yet".into());
    };
    for c in st.conditions.iter().flatten() {
        if c.status == "True" && c.type_ == "Complete" {
            return Progress::Ready(format!("complete, {} succeeded", n(st.succeeded)));
        }
        if c.status == "True" && c.type_ == "Failed" {
            return Progress::Failed(format!(
                "job failed: {}",
                c.message
                    .as_deref()
                    .or(c.reason.as_deref())
                    .unwrap_or("no reason given")
            ));
        }
    }
    Progress::Waiting(format!(
        "{} active, {} succeeded, {} failed",
        n(st.active),
        n(st.succeeded),
        n(st.failed)
    ))
}

/// A pod status that fails the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFailure {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub reason: String,
    pub message: String,
}

impl fmt::Display for PodFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pod {} container {}: {}",
            self.pod, self.container, self.reason
        )?;
        if !self.message.is_empty() {
            write!(f, " ({})", self.message)?;
        }
        Ok(())
    }
}

/// The first failing container of a pod, if any (init containers first).
pub fn pod_failure(pod: &Pod) -> Option<PodFailure> {
    let st = pod.status.as_ref()?;
    let all = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten());
    for cs in all {
        let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = w.reason.as_deref().unwrap_or_default();
        if FAILING_REASONS.contains(&reason) {
            return Some(PodFailure {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                container: cs.name.clone(),
                reason: reason.to_string(),
                message: w.message.clone().unwrap_or_default(),
            });
        }
    }
    None
}

/// Does a label selector (matchLabels and matchExpressions) select these labels?
pub fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let ml = sel.match_labels.as_ref();
    if ml.is_none_or(|m| m.is_empty()) && sel.match_expressions.as_ref().is_none_or(Vec::is_empty) {
        return false;
    }
    if let Some(m) = ml
        && m.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.clone().unwrap_or_default();
        let have = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|v| vals.contains(v)),
            "NotIn" => have.is_none_or(|v| !vals.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// What a workload's pods must look like to count as its current revision.
#[derive(Debug, Clone, Default)]
struct PodShape {
    selector: Option<LabelSelector>,
    /// The images of the pod template (a pod of an older revision has other images).
    images: BTreeSet<String>,
    /// StatefulSet: the `controller-revision-hash` of the update revision.
    revision_hash: Option<String>,
}

fn template_images(t: Option<&PodTemplateSpec>) -> BTreeSet<String> {
    t.and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn pod_images(pod: &Pod) -> BTreeSet<String> {
    pod.spec
        .as_ref()
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

impl PodShape {
    /// Is `pod` one of this workload's pods at its current revision (not terminating)?
    fn current(&self, pod: &Pod) -> bool {
        if pod.metadata.deletion_timestamp.is_some() {
            return false;
        }
        let Some(sel) = &self.selector else {
            return false;
        };
        let empty = BTreeMap::new();
        if !selects(sel, pod.metadata.labels.as_ref().unwrap_or(&empty)) {
            return false;
        }
        if let (Some(want), Some(have)) = (
            &self.revision_hash,
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("controller-revision-hash")),
        ) {
            return want == have;
        }
        self.images.is_empty() || pod_images(pod) == self.images
    }
}

/// A watched workload object, reduced to what the watcher needs.
#[derive(Debug, Clone)]
struct Seen {
    progress: Progress,
    shape: PodShape,
}

fn seen_deployment(d: &Deployment) -> Seen {
    let spec = d.spec.as_ref();
    Seen {
        progress: deployment_progress(d),
        shape: PodShape {
            selector: spec.map(|s| s.selector.clone()),
            images: template_images(spec.map(|s| &s.template)),
            revision_hash: None,
        },
    }
}

fn seen_statefulset(s: &StatefulSet) -> Seen {
    let spec = s.spec.as_ref();
    Seen {
        progress: statefulset_progress(s),
        shape: PodShape {
            selector: spec.map(|s| s.selector.clone()),
            images: template_images(spec.map(|s| &s.template)),
            revision_hash: s.status.as_ref().and_then(|st| st.update_revision.clone()),
        },
    }
}

fn seen_daemonset(d: &DaemonSet) -> Seen {
    let spec = d.spec.as_ref();
    Seen {
        progress: daemonset_progress(d),
        shape: PodShape {
            selector: spec.map(|s| s.selector.clone()),
            images: template_images(spec.map(|s| &s.template)),
            revision_hash: None,
        },
    }
}

fn seen_job(j: &Job) -> Seen {
    let spec = j.spec.as_ref();
    Seen {
        progress: job_progress(j),
        shape: PodShape {
            selector: spec.and_then(|s| s.selector.clone()),
            images: template_images(spec.map(|s| &s.template)),
            revision_hash: None,
        },
    }
}

/// Why a rollout did not become ready.
#[derive(Debug, Clone)]
pub enum Cause {
    /// A pod of the new revision reached a failing status.
    Pod(PodFailure),
    /// A workload reported failure (ProgressDeadlineExceeded, a failed Job).
    Workload { workload: Workload, message: String },
    /// The deadline passed first (with the watch's last error, if it had trouble).
    Deadline(Duration, Option<String>),
    /// SIGTERM/SIGINT.
    Cancelled(&'static str),
    /// The watch itself broke down.
    Watch(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Pod(p) => write!(f, "{p}"),
            Cause::Workload { workload, message } => write!(f, "{workload}: {message}"),
            Cause::Deadline(d, None) => write!(
                f,
                "not ready within the timeout of {}",
                humantime::format_duration(*d)
            ),
            Cause::Deadline(d, Some(e)) => write!(
                f,
                "not ready within the timeout of {} (the watch's last error: {e})",
                humantime::format_duration(*d)
            ),
            Cause::Cancelled(s) => write!(f, "cancelled by {s}"),
            Cause::Watch(e) => write!(f, "the watch failed: {e}"),
        }
    }
}

/// A rollout that did not become ready.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {cause}")]
pub struct RolloutError {
    /// What was being watched, e.g. `the rollout of release "x" in namespace "y"`.
    pub what: String,
    pub cause: Cause,
    /// When the failure was seen (wall clock), for the time to rollback.
    pub detected_at: SystemTime,
    pub detected: Instant,
    /// Each workload's last progress line.
    pub last_progress: Vec<(Workload, String)>,
    /// Pods of the workloads (current revision) as last seen, for the diagnostics.
    pub pods: Vec<Pod>,
}

impl RolloutError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self.cause, Cause::Cancelled(_))
    }
}

enum Update {
    Workload(Workload, Event<Seen>),
    Pods(String, Box<Event<Pod>>),
    Error(String),
}

fn map_event<K, T>(e: Event<K>, f: impl Fn(&K) -> T) -> Event<T> {
    match e {
        Event::Apply(k) => Event::Apply(f(&k)),
        Event::Delete(k) => Event::Delete(f(&k)),
        Event::Init => Event::Init,
        Event::InitApply(k) => Event::InitApply(f(&k)),
        Event::InitDone => Event::InitDone,
    }
}

fn workload_stream(client: &kube::Client, w: &Workload) -> BoxStream<'static, Update> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={}", w.name));
    let key = w.clone();
    macro_rules! stream {
        ($ty:ty, $f:expr) => {{
            let api: Api<$ty> = Api::namespaced(client.clone(), &w.namespace);
            watcher(api, cfg)
                .default_backoff()
                .map(move |r| match r {
                    Ok(e) => Update::Workload(key.clone(), map_event(e, $f)),
                    Err(e) => Update::Error(e.to_string()),
                })
                .boxed()
        }};
    }
    use kube::runtime::watcher::watcher;
    match w.kind {
        Kind::Deployment => stream!(Deployment, seen_deployment),
        Kind::StatefulSet => stream!(StatefulSet, seen_statefulset),
        Kind::DaemonSet => stream!(DaemonSet, seen_daemonset),
        Kind::Job => stream!(Job, seen_job),
    }
}

fn pod_stream(client: &kube::Client, namespace: &str) -> BoxStream<'static, Update> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let ns = namespace.to_string();
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .map(move |r| match r {
            Ok(e) => Update::Pods(ns.clone(), Box::new(e)),
            Err(e) => Update::Error(e.to_string()),
        })
        .boxed()
}

/// A store of one watch: the objects, rebuilt atomically on a re-list.
struct Store<T> {
    items: HashMap<String, T>,
    pending: Option<HashMap<String, T>>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Self {
            items: HashMap::new(),
            pending: None,
        }
    }
}

impl<T> Store<T> {
    fn apply(&mut self, e: Event<T>, key: impl Fn(&T) -> String) {
        match e {
            Event::Apply(t) => {
                self.items.insert(key(&t), t);
            }
            Event::Delete(t) => {
                self.items.remove(&key(&t));
            }
            Event::Init => self.pending = Some(HashMap::new()),
            Event::InitApply(t) => {
                let k = key(&t);
                self.pending.get_or_insert_with(HashMap::new).insert(k, t);
            }
            Event::InitDone => {
                if let Some(p) = self.pending.take() {
                    self.items = p;
                }
            }
        }
    }
}

fn pod_key(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// Watches `workloads` until every one is ready (Ok), or fails fast with the cause. The deadline
/// is `timeout` counted from `since` (the start of the upgrade: the timeout covers the whole
/// rollout).
pub async fn watch(
    client: &kube::Client,
    runner: &Runner,
    what: &str,
    workloads: &[Workload],
    timeout: Duration,
    since: Instant,
    cancel: &Cancel,
) -> Result<(), Box<RolloutError>> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(since + timeout);
    if workloads.is_empty() {
        runner.info(
            "No Deployments, StatefulSets, DaemonSets or Jobs in the release: nothing to wait for.",
        );
        return Ok(());
    }
    let mut streams: Vec<BoxStream<'static, Update>> = workloads
        .iter()
        .map(|w| workload_stream(client, w))
        .collect();
    let namespaces: BTreeSet<&str> = workloads.iter().map(|w| w.namespace.as_str()).collect();
    for ns in &namespaces {
        streams.push(pod_stream(client, ns));
    }
    let mut updates = futures::stream::select_all(streams);

    let mut objects: HashMap<Workload, Store<Seen>> = HashMap::new();
    let mut pods: HashMap<String, Store<Pod>> = HashMap::new();
    let mut last_lines: HashMap<Workload, String> = HashMap::new();
    let mut last_error = String::new();

    let fail = |cause: Cause,
                objects: &HashMap<Workload, Store<Seen>>,
                pods: &HashMap<String, Store<Pod>>,
                last_lines: &HashMap<Workload, String>| {
        let mut current = Vec::new();
        for w in workloads {
            if let Some(seen) = objects.get(w).and_then(|s| s.items.values().next()) {
                for p in pods.get(&w.namespace).iter().flat_map(|s| s.items.values()) {
                    if seen.shape.current(p) {
                        current.push(p.clone());
                    }
                }
            }
        }
        Box::new(RolloutError {
            what: what.to_string(),
            cause,
            detected_at: SystemTime::now(),
            detected: Instant::now(),
            last_progress: workloads
                .iter()
                .map(|w| {
                    let now = objects
                        .get(w)
                        .and_then(|s| s.items.values().next())
                        .map(|seen| match &seen.progress {
                            Progress::Ready(m) => format!("{m} ✓"),
                            Progress::Waiting(m) | Progress::Failed(m) => m.clone(),
                        });
                    let line = now
                        .or_else(|| last_lines.get(w).cloned())
                        .unwrap_or_else(|| "not seen".into());
                    (w.clone(), line)
                })
                .collect(),
            pods: current,
        })
    };

    loop {
        let update = tokio::select! {
            u = updates.next() => u,
            _ = tokio::time::sleep_until(deadline) => {
                let trouble = (!last_error.is_empty()).then(|| last_error.clone());
                return Err(fail(Cause::Deadline(timeout, trouble), &objects, &pods, &last_lines));
            }
            s = cancel.cancelled() => {
                return Err(fail(Cause::Cancelled(s), &objects, &pods, &last_lines));
            }
        };
        match update {
            None => {
                return Err(fail(
                    Cause::Watch(format!("the watch streams ended ({last_error})")),
                    &objects,
                    &pods,
                    &last_lines,
                ));
            }
            Some(Update::Error(e)) => {
                tracing::debug!("watch error (retried): {e}");
                last_error = e;
                continue;
            }
            Some(Update::Workload(w, e)) => {
                let name = w.name.clone();
                objects.entry(w).or_default().apply(e, |_| name.clone());
            }
            Some(Update::Pods(ns, e)) => pods.entry(ns).or_default().apply(*e, pod_key),
        }

        // Fail fast: a failing pod of a workload's current revision, or a failed workload.
        let mut all_ready = true;
        for w in workloads {
            let Some(seen) = objects.get(w).and_then(|s| s.items.values().next()) else {
                all_ready = false;
                continue;
            };
            if let Some(p) = pods
                .get(&w.namespace)
                .into_iter()
                .flat_map(|s| s.items.values())
                .filter(|p| seen.shape.current(p))
                .find_map(pod_failure)
            {
                runner.info(&format!("  {w}: {p}"));
                return Err(fail(Cause::Pod(p), &objects, &pods, &last_lines));
            }
            let line = match &seen.progress {
                Progress::Failed(m) => {
                    runner.info(&format!("  {w}: {m}"));
                    return Err(fail(
                        Cause::Workload {
                            workload: w.clone(),
                            message: m.clone(),
                        },
                        &objects,
                        &pods,
                        &last_lines,
                    ));
                }
                Progress::Waiting(m) => {
                    all_ready = false;
                    m.clone()
                }
                Progress::Ready(m) => format!("{m} ✓"),
            };
            if last_lines.get(w) != Some(&line) {
                runner.info(&format!(
                    "  [{:>4.1}s] {w}: {line}",
                    started.elapsed().as_secs_f64()
                ));
                last_lines.insert(w.clone(), line);
            }
        }
        if all_ready {
            return Ok(());
        }
    }
}

/// Diagnostics of a failed rollout, as markdown: the failing pods' container states, the
/// events of those pods and of the workloads, and the last log lines where the API has them.
pub async fn diagnostics(client: &kube::Client, err: &RolloutError) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#### Rollout diagnostics\n\n**Cause:** {}\n", err.cause);
    let _ = writeln!(s, "| workload | last state |\n|---|---|");
    for (w, line) in &err.last_progress {
        let _ = writeln!(s, "| `{w}` | {} |", line.replace('|', "\\|"));
    }
    // The failing pod first, then the other pods that are not ready; at most five.
    let mut pods: Vec<&Pod> = err.pods.iter().collect();
    pods.sort_by_key(|p| (pod_failure(p).is_none(), pod_key(p)));
    let pods: Vec<&Pod> = pods
        .into_iter()
        .filter(|p| pod_failure(p).is_some() || !pod_ready(p))
        .take(5)
        .collect();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod_key(pod);
        let _ = writeln!(s, "\n**Pod `{name}`** (phase {})\n", pod_phase(pod));
        let _ = writeln!(s, "```");
        for line in container_states(pod) {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s, "```");
        let events = events_of(client, &ns, &name).await;
        if !events.is_empty() {
            let _ = writeln!(s, "Events:\n```\n{}\n```", events.join("\n"));
        }
        for c in pod.spec.iter().flat_map(|sp| sp.containers.iter()) {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let lp = LogParams {
                container: Some(c.name.clone()),
                tail_lines: Some(20),
                ..LogParams::default()
            };
            match tokio::time::timeout(Duration::from_secs(10), api.logs(&name, &lp)).await {
                Ok(Ok(logs)) if !logs.trim().is_empty() => {
                    let _ = writeln!(
                        s,
                        "Last log lines of `{}`:\n```\n{}\n```",
                        c.name,
                        logs.trim_end()
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(kube::Error::Api(status))) => {
                    let _ = writeln!(
                        s,
                        "Logs of `{}`: not available ({})",
                        c.name, status.message
                    );
                }
                Ok(Err(e)) => {
                    let _ = writeln!(s, "Logs of `{}`: not available ({e})", c.name);
                }
                Err(_) => {
                    let _ = writeln!(s, "Logs of `{}`: not available (timed out)", c.name);
                }
            }
        }
    }
    for (w, _) in &err.last_progress {
        let events = events_of(client, &w.namespace, &w.name).await;
        if !events.is_empty() {
            let _ = writeln!(s, "\nEvents of `{w}`:\n```\n{}\n```", events.join("\n"));
        }
    }
    s
}

fn pod_phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "unknown".into())
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// One line per container: name, image, state, restarts.
pub fn container_states(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    let Some(st) = &pod.status else {
        return vec!["no status".into()];
    };
    for cs in st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
    {
        let state = match &cs.state {
            Some(s) if s.waiting.is_some() => {
                let w = s.waiting.as_ref().expect("checked");
                format!(
                    "waiting: {} {}",
                    w.reason.as_deref().unwrap_or(""),
                    w.message.as_deref().unwrap_or("")
                )
            }
            Some(s) if s.terminated.is_some() => {
                let t = s.terminated.as_ref().expect("checked");
                format!(
                    "terminated: exit {} {} {}",
                    t.exit_code,
                    t.reason.as_deref().unwrap_or(""),
                    t.message.as_deref().unwrap_or("")
                )
            }
            Some(s) if s.running.is_some() => "running".to_string(),
            _ => "unknown".to_string(),
        };
        out.push(format!(
            "{}  image={}  ready={}  restarts={}  {}",
            cs.name,
            cs.image,
            cs.ready,
            cs.restart_count,
            state.trim_end()
        ));
    }
    if out.is_empty() {
        out.push("no container statuses yet".into());
    }
    out
}

/// The events about one object, oldest first, as readable lines.
async fn events_of(client: &kube::Client, namespace: &str, name: &str) -> Vec<String> {
    let api: Api<KubeEvent> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let Ok(Ok(list)) = tokio::time::timeout(Duration::from_secs(10), api.list(&lp)).await else {
        return Vec::new();
    };
    let mut items = list.items;
    items.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    items
        .iter()
        .rev()
        .take(15)
        .rev()
        .map(|e| {
            format!(
                "{} {} x{}: {}",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.count.unwrap_or(1),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn workloads_come_from_the_manifest() {
        let manifest = r#"---
# Source: testapp/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: r-orch
---
# Source: testapp/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: r-orch
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: r-scanner
  namespace: other
---
apiVersion: batch/v1
kind: Job
metadata:
  name: r-migrate
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: r-agent
---
"#;
        let w = workloads_from_manifest(manifest, "trader");
        let names: Vec<String> = w
            .iter()
            .map(|w| format!("{:?} {}/{}", w.kind, w.namespace, w.name))
            .collect();
        assert_eq!(
            names,
            [
                "Deployment trader/r-orch",
                "StatefulSet other/r-scanner",
                "DaemonSet trader/r-agent",
                "Job trader/r-migrate"
            ]
        );
        assert!(workloads_from_manifest("", "x").is_empty());
    }

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        from(serde_json::json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "r/x:v2"}]}}},
            "status": status,
        }))
    }

    #[test]
    fn deployment_readiness() {
        let ready = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                               "readyReplicas": 2, "availableReplicas": 2}),
        );
        assert!(matches!(deployment_progress(&ready), Progress::Ready(_)));
        // The controller has not seen the new spec: the old counts mean nothing.
        let stale = deployment(
            4,
            serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                               "readyReplicas": 2, "availableReplicas": 2}),
        );
        assert!(matches!(deployment_progress(&stale), Progress::Waiting(_)));
        // Updated and ready, but an old pod still runs.
        let surge = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2,
                               "readyReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(
            deployment_progress(&surge),
            Progress::Waiting(
                "2/2 updated, 2/2 ready, 2/2 available, 1 old pod(s) terminating".into()
            )
        );
        let unavailable = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                               "readyReplicas": 2, "availableReplicas": 1}),
        );
        assert!(matches!(
            deployment_progress(&unavailable),
            Progress::Waiting(_)
        ));
        let stuck = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "False",
                                "reason": "ProgressDeadlineExceeded",
                                "message": "ReplicaSet \"d-1\" has timed out progressing."}]}),
        );
        let stale = deployment(
            4,
            serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "False",
                                "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert!(
            matches!(deployment_progress(&stale), Progress::Waiting(_)),
            "a deadline of the previous generation is not this one's"
        );
        assert_eq!(
            deployment_progress(&stuck),
            Progress::Failed(
                "ProgressDeadlineExceeded: ReplicaSet \"d-1\" has timed out progressing.".into()
            )
        );
    }

    #[test]
    fn statefulset_needs_the_update_revision_current() {
        let s = |cur: &str| -> StatefulSet {
            from(serde_json::json!({
                "metadata": {"name": "s", "generation": 2},
                "spec": {"replicas": 1, "serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
                         "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
                "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                           "readyReplicas": 1, "availableReplicas": 1,
                           "currentRevision": cur, "updateRevision": "s-2"}
            }))
        };
        assert!(matches!(
            statefulset_progress(&s("s-2")),
            Progress::Ready(_)
        ));
        assert!(matches!(
            statefulset_progress(&s("s-1")),
            Progress::Waiting(_)
        ));
    }

    #[test]
    fn daemonset_and_job() {
        let d: DaemonSet = from(serde_json::json!({
            "metadata": {"name": "d", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                       "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}
        }));
        assert!(matches!(daemonset_progress(&d), Progress::Waiting(_)));
        let j: Job = from(serde_json::json!({
            "metadata": {"name": "j"},
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        }));
        assert!(matches!(job_progress(&j), Progress::Ready(_)));
        let j: Job = from(serde_json::json!({
            "metadata": {"name": "j"},
            "status": {"failed": 6, "conditions": [{"type": "Failed", "status": "True",
                        "reason": "BackoffLimitExceeded"}]}
        }));
        assert_eq!(
            job_progress(&j),
            Progress::Failed("job failed: BackoffLimitExceeded".into())
        );
    }

    fn pod(image: &str, waiting: Option<&str>) -> Pod {
        let state = match waiting {
            Some(r) => serde_json::json!({"waiting": {"reason": r, "message": "detail"}}),
            None => serde_json::json!({"running": {}}),
        };
        from(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b", "x": "1"}},
            "spec": {"containers": [{"name": "c", "image": image}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "c", "image": image, "imageID": "", "ready": false,
                "restartCount": 0, "state": state}]}
        }))
    }

    #[test]
    fn failing_pod_statuses() {
        for r in [
            "ImagePullBackOff",
            "ErrImagePull",
            "CrashLoopBackOff",
            "CreateContainerConfigError",
        ] {
            let f = pod_failure(&pod("r/x:v2", Some(r))).unwrap();
            assert_eq!(f.reason, r);
            assert_eq!(f.to_string(), format!("pod p container c: {r} (detail)"));
        }
        assert!(pod_failure(&pod("r/x:v2", Some("ContainerCreating"))).is_none());
        assert!(pod_failure(&pod("r/x:v2", None)).is_none());
    }

    #[test]
    fn only_pods_of_the_current_revision_count() {
        let seen = seen_deployment(&deployment(1, serde_json::json!({})));
        assert!(seen.shape.current(&pod("r/x:v2", None)));
        // A pod of the previous revision (another image), e.g. a broken one being replaced
        // after a rollback, is not held against the workload.
        assert!(
            !seen
                .shape
                .current(&pod("r/x:broken-pull", Some("ImagePullBackOff")))
        );
        let mut terminating = pod("r/x:v2", None);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!seen.shape.current(&terminating));
    }

    #[test]
    fn label_selectors() {
        let labels: BTreeMap<String, String> =
            [("a".into(), "b".into()), ("t".into(), "x".into())].into();
        let sel: LabelSelector = from(serde_json::json!({"matchLabels": {"a": "b"},
            "matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]},
                                 {"key": "z", "operator": "DoesNotExist"}]}));
        assert!(selects(&sel, &labels));
        let sel: LabelSelector = from(serde_json::json!({"matchLabels": {"a": "c"}}));
        assert!(!selects(&sel, &labels));
        let sel: LabelSelector = from(serde_json::json!({}));
        assert!(
            !selects(&sel, &labels),
            "an empty selector selects nothing here"
        );
    }
}
