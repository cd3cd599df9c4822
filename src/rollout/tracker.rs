//! What the watch knows of the release: every watch's objects, which pods belong to which
//! workload (indexed, so that an event costs the workloads and pods it concerns, not the whole
//! release), each workload's last line, and one look at a workload: ready, failed, or pods to
//! delete.

use std::collections::{BTreeSet, HashMap};
use std::time::{Instant, SystemTime};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher::Event;

use super::error::{Cause, RolloutError};
use super::progress::{
    PodShape, Progress, daemonset_progress, deployment_progress_since, job_progress, pod_failure,
};
use super::statefulset::{self, OnDelete};
use super::workloads::{Kind, Workload};

/// A watched workload object, reduced to what the watcher needs.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    progress: Progress,
    shape: PodShape,
    /// The StatefulSet itself, for the rules that need its pods (blocked, OnDelete roll).
    statefulset: Option<Box<StatefulSet>>,
}

pub(super) fn seen_deployment(d: &Deployment, since: Timestamp) -> Seen {
    let spec = d.spec.as_ref();
    Seen {
        progress: deployment_progress_since(d, Some(since)),
        shape: PodShape::of(
            spec.map(|s| s.selector.clone()),
            spec.map(|s| &s.template),
            None,
        ),
        statefulset: None,
    }
}

pub(super) fn seen_statefulset(s: &StatefulSet, on_delete: OnDelete) -> Seen {
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

pub(super) fn seen_daemonset(d: &DaemonSet) -> Seen {
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

pub(super) fn seen_job(j: &Job) -> Seen {
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

/// One watch's objects by name, rebuilt atomically on a re-list.
pub(super) struct Store<T> {
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
    pub(super) fn apply(&mut self, e: Event<(String, T)>) -> bool {
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

/// What the watch knows of the release: the stores of every watch, each workload's last line.
pub(super) struct Tracker<'a> {
    pub(super) workloads: &'a [Workload],
    /// Workload indexes by (kind, namespace, name) and by namespace.
    pub(super) by_object: HashMap<(Kind, &'a str, &'a str), usize>,
    pub(super) by_namespace: HashMap<&'a str, Vec<usize>>,
    /// Workloads by one `key=value` pair of their pod selector (namespace, pair), so that a pod
    /// event looks only at the workloads that may select it; the others (a selector with
    /// expressions) are looked at for every pod of their namespace.
    pub(super) by_label: HashMap<(String, String), Vec<usize>>,
    pub(super) unindexed: HashMap<&'a str, Vec<usize>>,
    /// Each workload's selector pairs from the manifest (None: only its live selector knows).
    pub(super) pairs: Vec<Option<Vec<(&'a str, &'a str)>>>,
    /// Each workload's pods by name, and each pod's workloads: so that a look at a workload
    /// costs its own pods, not the namespace's.
    pub(super) members: Vec<BTreeSet<String>>,
    pub(super) owners: HashMap<(String, String), Vec<usize>>,
    pub(super) objects: HashMap<Kind, HashMap<String, Store<Seen>>>,
    pub(super) pods: HashMap<String, Store<Pod>>,
    pub(super) lines: Vec<Option<String>>,
    pub(super) ready: Vec<bool>,
}

/// What one look at a workload asks for.
pub(super) enum Verdict {
    Fine,
    Failed(Cause),
    /// Pods to delete: (namespace, name, uid, why for the log).
    Delete(Vec<(String, String, String, String)>),
}

impl<'a> Tracker<'a> {
    pub(super) fn new(workloads: &'a [Workload]) -> Tracker<'a> {
        let mut by_object = HashMap::new();
        let mut by_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_label: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut unindexed: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut pairs = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            let ns = w.namespace.as_str();
            by_object.insert((w.kind, ns, w.name.as_str()), i);
            by_namespace.entry(ns).or_default().push(i);
            let p: Option<Vec<(&str, &str)>> = w.pod_selector.as_deref().map(|sel| {
                sel.split(',')
                    .filter_map(|kv| kv.trim().split_once('='))
                    .collect()
            });
            match p.as_ref().and_then(|p| p.first()) {
                Some(&(k, v)) => by_label
                    .entry((ns.to_string(), format!("{k}={v}")))
                    .or_default()
                    .push(i),
                None => unindexed.entry(ns).or_default().push(i),
            }
            pairs.push(p);
        }
        Tracker {
            workloads,
            by_object,
            by_namespace,
            by_label,
            unindexed,
            pairs,
            members: vec![BTreeSet::new(); workloads.len()],
            owners: HashMap::new(),
            objects: HashMap::new(),
            pods: HashMap::new(),
            lines: vec![None; workloads.len()],
            ready: vec![false; workloads.len()],
        }
    }

    pub(super) fn seen(&self, i: usize) -> Option<&Seen> {
        let w = &self.workloads[i];
        self.objects
            .get(&w.kind)?
            .get(&w.namespace)?
            .items
            .get(&w.name)
    }

    pub(super) fn namespace_pods(&self, namespace: &str) -> impl Iterator<Item = &Pod> {
        self.pods
            .get(namespace)
            .into_iter()
            .flat_map(|s| s.items.values())
    }

    /// The workload's pods of its current revision.
    pub(super) fn current_pods(&self, i: usize) -> Vec<&Pod> {
        let Some(seen) = self.seen(i) else {
            return Vec::new();
        };
        self.own_pods(i)
            .into_iter()
            .filter(|p| seen.shape.current(p))
            .collect()
    }

    /// The pods workload `i` selects (as last seen).
    pub(super) fn own_pods(&self, i: usize) -> Vec<&Pod> {
        let Some(store) = self.pods.get(&self.workloads[i].namespace) else {
            return Vec::new();
        };
        self.members[i]
            .iter()
            .filter_map(|name| store.items.get(name))
            .collect()
    }

    /// Does workload `i` select `pod`? By its manifest selector, else by its live one.
    pub(super) fn selects(&self, i: usize, pod: &Pod) -> bool {
        match &self.pairs[i] {
            Some(pairs) => {
                let labels = pod.metadata.labels.as_ref();
                pairs
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(*k)).map(String::as_str) == Some(*v))
            }
            None => self.seen(i).is_some_and(|s| s.shape.selects(pod)),
        }
    }

    /// The workloads that may select a pod with these labels: by an indexed label pair, and the
    /// unindexed ones of its namespace.
    pub(super) fn candidates(&self, namespace: &str, pod: &Pod) -> Vec<usize> {
        let mut out: Vec<usize> = self.unindexed.get(namespace).cloned().unwrap_or_default();
        for (k, v) in pod.metadata.labels.iter().flatten() {
            if let Some(is) = self
                .by_label
                .get(&(namespace.to_string(), format!("{k}={v}")))
            {
                out.extend(is);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Records which workloads a pod that changed belongs to; returns them.
    pub(super) fn place(&mut self, namespace: &str, pod: &Pod) -> Vec<usize> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now: Vec<usize> = self
            .candidates(namespace, pod)
            .into_iter()
            .filter(|&i| self.selects(i, pod))
            .collect();
        let key = (namespace.to_string(), name.clone());
        for i in self.owners.remove(&key).unwrap_or_default() {
            self.members[i].remove(&name);
        }
        for &i in &now {
            self.members[i].insert(name.clone());
        }
        self.owners.insert(key, now.clone());
        now
    }

    /// A pod gone: out of its workloads; returns them.
    pub(super) fn unplace(&mut self, namespace: &str, name: &str) -> Vec<usize> {
        let owners = self
            .owners
            .remove(&(namespace.to_string(), name.to_string()))
            .unwrap_or_default();
        for &i in &owners {
            self.members[i].remove(name);
        }
        owners
    }

    /// After a re-list of a namespace's pods, or a workload seen for the first time (whose
    /// selector only its live object knows): every pod placed again.
    pub(super) fn place_all(&mut self, namespace: &str) {
        let pods: Vec<Pod> = self.namespace_pods(namespace).cloned().collect();
        for i in self
            .by_namespace
            .get(namespace)
            .cloned()
            .unwrap_or_default()
        {
            self.members[i].clear();
        }
        self.owners.retain(|(ns, _), _| ns != namespace);
        for p in &pods {
            self.place(namespace, p);
        }
    }

    /// Looks at workload `i`: its object changed or its pods were re-listed (`pod` None: all its
    /// pods are checked), or one of its pods changed (`pod`: only that one).
    pub(super) fn check(
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
            let own: Vec<&Pod> = self.own_pods(i);
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

    pub(super) fn all_ready(&self) -> bool {
        self.ready.iter().all(|r| *r)
    }

    /// The error for `cause`, with each workload's last line and its current pods.
    pub(super) fn fail(&self, what: &str, cause: Cause) -> Box<RolloutError> {
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
