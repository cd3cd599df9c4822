//! Where a workload stands, as pure functions of the objects (like kube-runtime's wait
//! conditions): progress of each kind, failing pod statuses, label selectors, and which pods
//! count as a workload's current revision.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;

use super::statefulset::{self, OnDelete};

/// Container waiting reasons that fail a rollout at once.
pub const FAILING_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

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
    deployment_progress_since(d, None)
}

/// A Deployment's progress, where a `ProgressDeadlineExceeded` last updated before `since` (the
/// start of the rollout being watched) is stale: after a rollback from a timed-out rollout the
/// controller keeps the old condition until the rolled-back ReplicaSet makes progress.
pub fn deployment_progress_since(d: &Deployment, since: Option<Timestamp>) -> Progress {
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
            && !matches!((since, &c.last_update_time), (Some(s), Some(t)) if t.0 < s)
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

/// A StatefulSet's progress with the default OnDelete handling (see `statefulset::progress`).
pub fn statefulset_progress(s: &StatefulSet) -> Progress {
    statefulset::progress(s, OnDelete::Report)
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
pub(crate) struct PodShape {
    pub(crate) selector: Option<LabelSelector>,
    /// The images of the pod template (a pod of an older revision has other images).
    pub(crate) images: BTreeSet<String>,
    /// StatefulSet: the `controller-revision-hash` of the update revision.
    pub(crate) revision_hash: Option<String>,
}

/// Every image a pod spec runs (init containers too).
fn spec_images(spec: Option<&PodSpec>) -> BTreeSet<String> {
    spec.iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .filter_map(|c| c.image.clone())
        .collect()
}

pub(crate) fn template_images(t: Option<&PodTemplateSpec>) -> BTreeSet<String> {
    spec_images(t.and_then(|t| t.spec.as_ref()))
}

fn pod_images(pod: &Pod) -> BTreeSet<String> {
    spec_images(pod.spec.as_ref())
}

impl PodShape {
    pub(crate) fn of(
        selector: Option<LabelSelector>,
        template: Option<&PodTemplateSpec>,
        revision_hash: Option<String>,
    ) -> PodShape {
        PodShape {
            selector,
            images: template_images(template),
            revision_hash,
        }
    }

    /// Is `pod` one of this workload's pods at its current revision (not terminating)?
    /// Does the workload's selector select this pod?
    pub(crate) fn selects(&self, pod: &Pod) -> bool {
        let empty = BTreeMap::new();
        self.selector
            .as_ref()
            .is_some_and(|sel| selects(sel, pod.metadata.labels.as_ref().unwrap_or(&empty)))
    }

    pub(crate) fn current(&self, pod: &Pod) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
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
    fn a_deadline_exceeded_before_the_watched_rollout_is_stale() {
        let d = deployment(
            2,
            serde_json::json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "False",
                    "reason": "ProgressDeadlineExceeded", "lastUpdateTime": "2026-11-30T10:00:00Z",
                    "message": "ReplicaSet \"x-old\" has timed out progressing."}]}),
        );
        let at = |t: &str| Some(t.parse::<Timestamp>().unwrap());
        assert!(matches!(
            deployment_progress_since(&d, at("2026-11-30T10:00:05Z")),
            Progress::Waiting(_)
        ));
        assert!(matches!(
            deployment_progress_since(&d, at("2026-11-30T09:59:00Z")),
            Progress::Failed(_)
        ));
        assert!(matches!(deployment_progress(&d), Progress::Failed(_)));
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
        let d = deployment(1, serde_json::json!({}));
        let spec = d.spec.as_ref().unwrap();
        let shape = PodShape::of(Some(spec.selector.clone()), Some(&spec.template), None);
        assert!(shape.current(&pod("r/x:v2", None)));
        // A pod of the previous revision (another image), e.g. a broken one being replaced
        // after a rollback, is not held against the workload.
        assert!(!shape.current(&pod("r/x:broken-pull", Some("ImagePullBackOff"))));
        let mut terminating = pod("r/x:v2", None);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!shape.current(&terminating));
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
