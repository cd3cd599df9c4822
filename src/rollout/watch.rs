//! The rollout watch: one watch per workload kind and namespace and one pod watch per namespace
//! (their number does not grow with the release), a progress line per change, fail fast on a
//! failing pod of a new revision, the StatefulSet deletions a rollout needs, all by a deadline
//! and stopped by a cancel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use futures::stream::{BoxStream, StreamExt as _};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};

use super::progress::{
    PodFailure, PodShape, Progress, daemonset_progress, deployment_progress, job_progress,
    pod_failure,
};
use super::statefulset::{self, OnDelete};
use super::workloads::{Kind, Workload};
use crate::cancel::{Cancel, Deadline};
use crate::runner::Runner;

/// A watched workload object, reduced to what the watcher needs.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    progress: Progress,
    shape: PodShape,
    /// The StatefulSet itself, for the rules that need its pods (blocked, OnDelete roll).
    statefulset: Option<Box<StatefulSet>>,
}

fn seen_deployment(d: &Deployment) -> Seen {
    let spec = d.spec.as_ref();
    Seen {
        progress: deployment_progress(d),
        shape: PodShape::of(
            spec.map(|s| s.selector.clone()),
            spec.map(|s| &s.template),
            None,
        ),
        statefulset: None,
    }
}

fn seen_statefulset(s: &StatefulSet, on_delete: OnDelete) -> Seen {
    let spec = s.spec.as_ref();
    Seen {
        progress: statefulset::progress(s, on_delete),
        shape: PodShape::of(
            spec.map(|s| s.selector.clone()),
            spec.map(|s| &s.template),
            s.status.as_ref().and_then(|st| st.update_revision.clone()),
        ),
        statefulset: Some(Box::new(s.clone())),
    }
}

fn seen_daemonset(d: &DaemonSet) -> Seen {
    let spec = d.spec.as_ref();
    Seen {
        progress: daemonset_progress(d),
        shape: PodShape::of(
            spec.map(|s| s.selector.clone()),
            spec.map(|s| &s.template),
            None,
        ),
        statefulset: None,
    }
}

fn seen_job(j: &Job) -> Seen {
    let spec = j.spec.as_ref();
    Seen {
        progress: job_progress(j),
        shape: PodShape::of(
            spec.and_then(|s| s.selector.clone()),
            spec.map(|s| &s.template),
            None,
        ),
        statefulset: None,
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

/// One watch's objects by name, rebuilt atomically on a re-list.
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
    /// Applies one event; true when the whole store was replaced (a re-list).
    fn apply(&mut self, e: Event<(String, T)>) -> bool {
        match e {
            Event::Apply((k, t)) => {
                self.items.insert(k, t);
            }
            Event::Delete((k, _)) => {
                self.items.remove(&k);
            }
            Event::Init => self.pending = Some(HashMap::new()),
            Event::InitApply((k, t)) => {
                self.pending.get_or_insert_with(HashMap::new).insert(k, t);
            }
            Event::InitDone => {
                if let Some(p) = self.pending.take() {
                    self.items = p;
                }
                return true;
            }
        }
        false
    }
}

/// A watch stream's key: a workload kind in a namespace.
type KindKey = (Kind, String);

enum Update {
    Object(KindKey, Event<(String, Seen)>),
    Pods(String, Box<Event<(String, Pod)>>),
    Error(String),
}

fn name_of<K: kube::Resource>(k: &K) -> String {
    k.meta().name.clone().unwrap_or_default()
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

/// The objects of one kind in one namespace; only `names` are kept (a single name is watched
/// by a field selector, several by the namespace with the names matched here).
fn kind_stream(
    client: &kube::Client,
    key: &KindKey,
    names: BTreeSet<String>,
    on_delete: OnDelete,
) -> BoxStream<'static, Update> {
    let (kind, namespace) = key;
    let cfg = match names.iter().next() {
        Some(only) if names.len() == 1 => {
            watcher::Config::default().fields(&format!("metadata.name={only}"))
        }
        _ => watcher::Config::default(),
    };
    let key = key.clone();
    macro_rules! stream {
        ($ty:ty, $f:expr) => {{
            let api: Api<$ty> = Api::namespaced(client.clone(), namespace);
            let f = $f;
            watcher::watcher(api, cfg)
                .default_backoff()
                .filter_map(move |r| {
                    let out = match r {
                        Ok(Event::Apply(o) | Event::InitApply(o) | Event::Delete(o))
                            if !names.contains(&name_of(&o)) =>
                        {
                            None
                        }
                        Ok(e) => Some(Update::Object(
                            key.clone(),
                            map_event(e, |o| (name_of(o), f(o))),
                        )),
                        Err(e) => Some(Update::Error(e.to_string())),
                    };
                    std::future::ready(out)
                })
                .boxed()
        }};
    }
    match kind {
        Kind::Deployment => stream!(Deployment, seen_deployment),
        Kind::StatefulSet => stream!(StatefulSet, move |s: &StatefulSet| seen_statefulset(
            s, on_delete
        )),
        Kind::DaemonSet => stream!(DaemonSet, seen_daemonset),
        Kind::Job => stream!(Job, seen_job),
    }
}

/// The label pairs every pod selector in `selectors` requires: narrows one pod watch to the
/// release's pods when the workloads share labels (e.g. `app.kubernetes.io/instance`);
/// `None` (the whole namespace) when they share none or one has no plain selector.
pub(crate) fn shared_labels<'a>(
    selectors: impl IntoIterator<Item = Option<&'a str>>,
) -> Option<String> {
    let mut shared: Option<BTreeSet<&str>> = None;
    for s in selectors {
        let pairs: BTreeSet<&str> = s?
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        shared = Some(match shared {
            None => pairs,
            Some(prev) => prev.intersection(&pairs).copied().collect(),
        });
    }
    let shared = shared?;
    (!shared.is_empty()).then(|| shared.into_iter().collect::<Vec<_>>().join(","))
}

fn pod_stream(
    client: &kube::Client,
    namespace: &str,
    labels: Option<String>,
) -> BoxStream<'static, Update> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let cfg = match &labels {
        Some(s) => watcher::Config::default().labels(s),
        None => watcher::Config::default(),
    };
    let namespace = namespace.to_string();
    watcher::watcher(api, cfg)
        .default_backoff()
        .map(move |r| match r {
            Ok(e) => Update::Pods(
                namespace.clone(),
                Box::new(map_event(e, |p| (name_of(p), p.clone()))),
            ),
            Err(e) => Update::Error(e.to_string()),
        })
        .boxed()
}

/// What the watch knows of the release: the stores of every watch, each workload's last line.
struct Tracker<'a> {
    workloads: &'a [Workload],
    /// Workload indexes by (kind, namespace, name) and by namespace.
    by_object: HashMap<(Kind, &'a str, &'a str), usize>,
    by_namespace: HashMap<&'a str, Vec<usize>>,
    objects: HashMap<KindKey, Store<Seen>>,
    pods: HashMap<String, Store<Pod>>,
    lines: Vec<Option<String>>,
    ready: Vec<bool>,
}

/// What one look at a workload asks for.
enum Verdict {
    Fine,
    Failed(Cause),
    /// Pods to delete: (namespace, name, uid, why for the log).
    Delete(Vec<(String, String, String, String)>),
}

impl<'a> Tracker<'a> {
    fn new(workloads: &'a [Workload]) -> Tracker<'a> {
        let mut by_object = HashMap::new();
        let mut by_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, w) in workloads.iter().enumerate() {
            by_object.insert((w.kind, w.namespace.as_str(), w.name.as_str()), i);
            by_namespace
                .entry(w.namespace.as_str())
                .or_default()
                .push(i);
        }
        Tracker {
            workloads,
            by_object,
            by_namespace,
            objects: HashMap::new(),
            pods: HashMap::new(),
            lines: vec![None; workloads.len()],
            ready: vec![false; workloads.len()],
        }
    }

    fn seen(&self, i: usize) -> Option<&Seen> {
        let w = &self.workloads[i];
        self.objects
            .get(&(w.kind, w.namespace.clone()))?
            .items
            .get(&w.name)
    }

    fn namespace_pods(&self, namespace: &str) -> impl Iterator<Item = &Pod> {
        self.pods
            .get(namespace)
            .into_iter()
            .flat_map(|s| s.items.values())
    }

    /// The workload's pods of its current revision.
    fn current_pods(&self, i: usize) -> Vec<&Pod> {
        let Some(seen) = self.seen(i) else {
            return Vec::new();
        };
        self.namespace_pods(&self.workloads[i].namespace)
            .filter(|p| seen.shape.current(p))
            .collect()
    }

    /// Looks at workload `i`: its object changed or its pods were re-listed (`pod` None: all its
    /// pods are checked), or one of its pods changed (`pod`: only that one).
    fn check(
        &mut self,
        i: usize,
        pod: Option<&Pod>,
        on_delete: OnDelete,
        deleted: &BTreeSet<String>,
    ) -> Verdict {
        let w = &self.workloads[i];
        let Some(seen) = self.seen(i) else {
            self.ready[i] = false;
            return Verdict::Fine;
        };
        let failing = match pod {
            Some(p) => seen.shape.current(p).then(|| pod_failure(p)).flatten(),
            None => self.current_pods(i).into_iter().find_map(pod_failure),
        };
        if let Some(p) = failing {
            return Verdict::Failed(Cause::Pod(p));
        }
        let (line, ready) = match &seen.progress {
            Progress::Failed(m) => {
                return Verdict::Failed(Cause::Workload {
                    workload: w.clone(),
                    message: m.clone(),
                });
            }
            Progress::Waiting(m) => (m.clone(), false),
            Progress::Ready(m) => (format!("{m} ✓"), true),
        };
        let mut delete = Vec::new();
        if let (Some(sts), false) = (&seen.statefulset, ready) {
            let own: Vec<&Pod> = self.namespace_pods(&w.namespace).collect();
            // A failing pod of another revision blocks an OrderedReady controller for good; it
            // serves nothing, so it is deleted and comes back on the update revision (whose
            // failure, if any, fails the rollout).
            if let Some(stuck) = statefulset::blocked_by(sts, &own) {
                let uid = stuck.uid.clone().unwrap_or_default();
                if !deleted.contains(&uid) {
                    let why = format!(
                        "deleting {stuck}: a failing pod of another revision blocks the StatefulSet's controller under podManagementPolicy OrderedReady; it is recreated from the update revision"
                    );
                    delete.push((w.namespace.clone(), stuck.pod.clone(), uid, why));
                }
            }
            if on_delete == OnDelete::Roll
                && statefulset::strategy(sts) == statefulset::Strategy::OnDelete
                && let Some(name) = statefulset::next_on_delete(sts, own.iter().copied())
            {
                let uid = own
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| p.metadata.uid.clone())
                    .unwrap_or_default();
                if !deleted.contains(&uid) {
                    let why = format!(
                        "deleting pod {name} so that it is recreated from the new revision (updateStrategy OnDelete, statefulset_on_delete: roll)"
                    );
                    delete.push((w.namespace.clone(), name, uid, why));
                }
            }
        }
        self.ready[i] = ready;
        self.lines[i] = Some(line);
        if delete.is_empty() {
            Verdict::Fine
        } else {
            Verdict::Delete(delete)
        }
    }

    /// The workloads one pod may concern: those of its namespace whose selector selects it.
    fn owners_of(&self, namespace: &str, pod: &Pod) -> Vec<usize> {
        self.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| {
                self.seen(i)
                    .is_some_and(|s| s.shape.selects(pod) || s.statefulset.is_some())
            })
            .collect()
    }

    fn all_ready(&self) -> bool {
        self.ready.iter().all(|r| *r)
    }

    /// The error for `cause`, with each workload's last line and its current pods.
    fn fail(&self, what: &str, cause: Cause) -> Box<RolloutError> {
        let mut pods = Vec::new();
        for i in 0..self.workloads.len() {
            pods.extend(self.current_pods(i).into_iter().cloned());
        }
        Box::new(RolloutError {
            what: what.to_string(),
            cause,
            detected_at: SystemTime::now(),
            detected: Instant::now(),
            last_progress: self
                .workloads
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let line = self.lines[i].clone().unwrap_or_else(|| "not seen".into());
                    (w.clone(), line)
                })
                .collect(),
            pods,
        })
    }
}

/// Watches `workloads` until every one is ready (Ok), or fails fast with the cause, by the
/// `deadline` (counted from the start of the upgrade: the timeout covers the whole rollout).
/// StatefulSets with `updateStrategy: OnDelete` are rolled by deleting their pods when
/// `on_delete` says so.
pub async fn watch(
    client: &kube::Client,
    runner: &Runner,
    what: &str,
    workloads: &[Workload],
    deadline: Deadline,
    on_delete: OnDelete,
    cancel: &Cancel,
) -> Result<(), Box<RolloutError>> {
    let started = Instant::now();
    if workloads.is_empty() {
        runner.info(
            "No Deployments, StatefulSets, DaemonSets or Jobs in the release: nothing to wait for.",
        );
        return Ok(());
    }
    // One stream per (kind, namespace) and one pod stream per namespace.
    let mut names: BTreeMap<KindKey, BTreeSet<String>> = BTreeMap::new();
    let mut selectors: BTreeMap<&str, Vec<Option<&str>>> = BTreeMap::new();
    for w in workloads {
        names
            .entry((w.kind, w.namespace.clone()))
            .or_default()
            .insert(w.name.clone());
        selectors
            .entry(w.namespace.as_str())
            .or_default()
            .push(w.pod_selector.as_deref());
    }
    let mut streams: Vec<BoxStream<'static, Update>> = names
        .into_iter()
        .map(|(key, names)| kind_stream(client, &key, names, on_delete))
        .collect();
    for (namespace, sels) in selectors {
        streams.push(pod_stream(client, namespace, shared_labels(sels)));
    }
    tracing::debug!(
        "watching the rollout with {} watch connections",
        streams.len()
    );
    let mut updates = futures::stream::select_all(streams);
    let mut tracker = Tracker::new(workloads);
    let mut last_error = String::new();
    // The pods (by uid) this watch deleted, so that each is deleted once.
    let mut deleted: BTreeSet<String> = BTreeSet::new();

    loop {
        let update = tokio::select! {
            u = updates.next() => u,
            _ = deadline.sleep() => {
                let trouble = (!last_error.is_empty()).then(|| last_error.clone());
                return Err(tracker.fail(what, Cause::Deadline(deadline.timeout, trouble)));
            }
            s = cancel.cancelled() => {
                return Err(tracker.fail(what, Cause::Cancelled(s)));
            }
        };
        // The workloads this update may have changed, and the pod that changed, if one did.
        let mut changed_pod: Option<Pod> = None;
        let touched: Vec<usize> = match update {
            None => {
                let cause = Cause::Watch(format!("the watch streams ended ({last_error})"));
                return Err(tracker.fail(what, cause));
            }
            Some(Update::Error(e)) => {
                tracing::debug!("watch error (retried): {e}");
                last_error = e;
                continue;
            }
            Some(Update::Object(key, e)) => {
                let single = match &e {
                    Event::Apply((name, _)) | Event::Delete((name, _)) => tracker
                        .by_object
                        .get(&(key.0, key.1.as_str(), name.as_str()))
                        .copied(),
                    _ => None,
                };
                let relisted = tracker.objects.entry(key.clone()).or_default().apply(e);
                match (single, relisted) {
                    (Some(i), false) => vec![i],
                    (_, true) => (0..workloads.len())
                        .filter(|&i| workloads[i].kind == key.0 && workloads[i].namespace == key.1)
                        .collect(),
                    (None, false) => Vec::new(),
                }
            }
            Some(Update::Pods(namespace, e)) => {
                let pod = match &*e {
                    Event::Apply((_, p)) => Some(p.clone()),
                    _ => None,
                };
                let deletion = matches!(&*e, Event::Delete(_));
                let relisted = tracker.pods.entry(namespace.clone()).or_default().apply(*e);
                match (pod, relisted) {
                    (Some(p), false) => {
                        let owners = tracker.owners_of(&namespace, &p);
                        changed_pod = Some(p);
                        owners
                    }
                    // A pod gone: only StatefulSet rules look at what is left.
                    (None, false) if deletion => tracker
                        .by_namespace
                        .get(namespace.as_str())
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|&i| workloads[i].kind == Kind::StatefulSet)
                        .collect(),
                    (_, true) => tracker
                        .by_namespace
                        .get(namespace.as_str())
                        .cloned()
                        .unwrap_or_default(),
                    (None, false) => Vec::new(),
                }
            }
        };

        for i in touched {
            let w = &workloads[i];
            let before = tracker.lines[i].clone();
            match tracker.check(i, changed_pod.as_ref(), on_delete, &deleted) {
                Verdict::Fine => {}
                Verdict::Failed(cause) => {
                    let line = match &cause {
                        Cause::Workload { message, .. } => message.clone(),
                        other => other.to_string(),
                    };
                    runner.info(&format!("  {w}: {line}"));
                    return Err(tracker.fail(what, cause));
                }
                Verdict::Delete(pods) => {
                    for (namespace, name, uid, why) in pods {
                        deleted.insert(uid.clone());
                        runner.info(&format!("  {w}: {why}"));
                        if let Err(e) = delete_pod(client, &namespace, &name, &uid).await {
                            let cause =
                                Cause::Watch(format!("failed to delete pod {name:?} of {w}: {e}"));
                            return Err(tracker.fail(what, cause));
                        }
                    }
                }
            }
            if let Some(line) = &tracker.lines[i]
                && before.as_ref() != Some(line)
            {
                runner.info(&format!(
                    "  [{:>4.1}s] {w}: {line}",
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        if tracker.all_ready() {
            return Ok(());
        }
    }
}

/// Deletes one pod, only if it is still the one seen (its uid).
async fn delete_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let dp = kube::api::DeleteParams {
        preconditions: (!uid.is_empty()).then(|| kube::api::Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..kube::api::DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pod_watch_narrowed_to_the_labels_every_workload_shares() {
        let instance = "app.kubernetes.io/instance=r";
        let orch = format!("{instance},app.kubernetes.io/component=orch");
        let scanner = format!("app.kubernetes.io/component=scanner,{instance}");
        assert_eq!(
            shared_labels([Some(orch.as_str()), Some(scanner.as_str())]).as_deref(),
            Some(instance)
        );
        assert_eq!(
            shared_labels([Some("app=a"), Some("app=b")]),
            None,
            "nothing shared: the namespace"
        );
        assert_eq!(
            shared_labels([Some(orch.as_str()), None]),
            None,
            "a selector with expressions: the namespace"
        );
        assert_eq!(shared_labels([Some("a=1,b=2")]).as_deref(), Some("a=1,b=2"));
    }
}
