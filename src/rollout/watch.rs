//! The rollout watch: one watch per workload kind and namespace and one pod watch per namespace
//! (their number does not grow with the release), a progress line per change, fail fast on a
//! failing pod of a new revision, the StatefulSet deletions a rollout needs, all by a deadline
//! and stopped by a cancel.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::stream::{BoxStream, StreamExt as _};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};

pub use super::error::{Cause, RolloutError};
use super::statefulset::OnDelete;
use super::tracker::{
    Seen, Tracker, Verdict, seen_daemonset, seen_deployment, seen_job, seen_statefulset,
};
use super::workloads::{Kind, Workload};
use crate::cancel::{Cancel, Deadline};
use crate::runner::Runner;

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
    since: Timestamp,
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
        Kind::Deployment => stream!(Deployment, move |d: &Deployment| seen_deployment(d, since)),
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

/// Watches `workloads` until every one is ready (Ok), or fails fast with the cause, by the
/// `deadline` (counted from the start of the upgrade: the timeout covers the whole rollout).
/// StatefulSets with `updateStrategy: OnDelete` are rolled by deleting their pods when
/// `on_delete` says so. Ok holds each workload with the instant it was first seen ready.
pub async fn watch(
    client: &kube::Client,
    runner: &Runner,
    what: &str,
    workloads: &[Workload],
    deadline: Deadline,
    on_delete: OnDelete,
    cancel: &Cancel,
) -> Result<Vec<(Workload, Instant)>, Box<RolloutError>> {
    let started = Instant::now();
    if workloads.is_empty() {
        runner.info(
            "No Deployments, StatefulSets, DaemonSets or Jobs in the release: nothing to wait for.",
        );
        return Ok(Vec::new());
    }
    // One stream per (kind, namespace) and one pod stream per namespace.
    // The rollout's start as a wall-clock time, against the conditions' update times.
    let since = Timestamp::now()
        .checked_sub(SignedDuration::try_from(deadline.since.elapsed()).unwrap_or_default())
        .unwrap_or_else(|_| Timestamp::now());
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
        .map(|(key, names)| kind_stream(client, &key, names, on_delete, since))
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
    // When each workload was first seen ready.
    let mut ready_at: Vec<Option<Instant>> = vec![None; workloads.len()];

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
            Some(Update::Object((kind, ns), e)) => {
                let single = match &e {
                    Event::Apply((name, _)) | Event::Delete((name, _)) => tracker
                        .by_object
                        .get(&(kind, ns.as_str(), name.as_str()))
                        .copied(),
                    _ => None,
                };
                let first_seen = single.is_some_and(|i| tracker.seen(i).is_none());
                let relisted = tracker
                    .objects
                    .entry(kind)
                    .or_default()
                    .entry(ns.clone())
                    .or_default()
                    .apply(e);
                // A workload whose selector only its live object knows: its pods are placed
                // once it is seen.
                if (first_seen || relisted) && tracker.unindexed.contains_key(ns.as_str()) {
                    tracker.place_all(&ns);
                }
                match (single, relisted) {
                    (Some(i), false) => vec![i],
                    (_, true) => (0..workloads.len())
                        .filter(|&i| workloads[i].kind == kind && workloads[i].namespace == ns)
                        .collect(),
                    (None, false) => Vec::new(),
                }
            }
            Some(Update::Pods(namespace, e)) => {
                let applied = match &*e {
                    Event::Apply((_, p)) => Some(p.clone()),
                    _ => None,
                };
                let gone = match &*e {
                    Event::Delete((name, _)) => Some(name.clone()),
                    _ => None,
                };
                let relisted = tracker.pods.entry(namespace.clone()).or_default().apply(*e);
                if relisted {
                    tracker.place_all(&namespace);
                    tracker
                        .by_namespace
                        .get(namespace.as_str())
                        .cloned()
                        .unwrap_or_default()
                } else if let Some(p) = applied {
                    let owners = tracker.place(&namespace, &p);
                    changed_pod = Some(p);
                    owners
                } else if let Some(name) = gone {
                    // A pod gone: only StatefulSet rules look at what is left.
                    tracker
                        .unplace(&namespace, &name)
                        .into_iter()
                        .filter(|&i| workloads[i].kind == Kind::StatefulSet)
                        .collect()
                } else {
                    Vec::new()
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
                        if let Err(e) =
                            super::repair::delete_pod(client, &namespace, &name, &uid).await
                        {
                            let cause =
                                Cause::Watch(format!("failed to delete pod {name:?} of {w}: {e}"));
                            return Err(tracker.fail(what, cause));
                        }
                    }
                }
            }
            if tracker.ready[i] && ready_at[i].is_none() {
                ready_at[i] = Some(Instant::now());
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
            let now = Instant::now();
            return Ok(workloads
                .iter()
                .cloned()
                .zip(ready_at.into_iter().map(|t| t.unwrap_or(now)))
                .collect());
        }
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
