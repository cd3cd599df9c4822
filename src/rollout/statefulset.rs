//! StatefulSet rules that a generic rollout watch does not know, as pure functions: which pods a
//! forced rollback must delete, which pod blocks an OrderedReady controller, when partitioned and
//! OnDelete StatefulSets are done, and which pod an OnDelete roll deletes next.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

use super::progress::{Progress, pod_failure, selects};

/// The label the StatefulSet controller puts on each pod: the revision the pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What the action does with an `updateStrategy: OnDelete` StatefulSet (`statefulset_on_delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDelete {
    /// Say which pods still run the old revision and do not wait for them (the default: the
    /// chart's author chose to update those pods by hand).
    #[default]
    Report,
    /// Delete the pods one at a time, highest ordinal first, each after the one above it is
    /// ready on the new revision; done when all are.
    Roll,
}

impl OnDelete {
    pub fn parse(s: &str) -> Option<OnDelete> {
        match s.trim() {
            "report" => Some(OnDelete::Report),
            "roll" => Some(OnDelete::Roll),
            _ => None,
        }
    }
}

/// The update strategy of a StatefulSet, as the controller applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `RollingUpdate`: pods at ordinals `>= partition` are updated (0 when not set).
    Rolling {
        partition: i32,
    },
    OnDelete,
}

pub fn strategy(s: &StatefulSet) -> Strategy {
    let us = s.spec.as_ref().and_then(|sp| sp.update_strategy.as_ref());
    match us.and_then(|u| u.type_.as_deref()) {
        Some("OnDelete") => Strategy::OnDelete,
        _ => Strategy::Rolling {
            partition: us
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0)
                .max(0),
        },
    }
}

/// `OrderedReady` (the default) makes the controller wait for every pod to be Ready before it
/// touches the next, so one pod of a bad revision blocks it forever.
pub fn ordered_ready(s: &StatefulSet) -> bool {
    s.spec
        .as_ref()
        .and_then(|sp| sp.pod_management_policy.as_deref())
        .is_none_or(|p| p == "OrderedReady")
}

/// The pod's ordinal: the number after the StatefulSet's name (`db-2` → 2).
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

pub(super) fn observed(s: &StatefulSet) -> bool {
    match (
        s.metadata.generation,
        s.status.as_ref().and_then(|st| st.observed_generation),
    ) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// The revision the controller now updates pods to, once it has seen the current spec.
pub fn update_revision(s: &StatefulSet) -> Option<&str> {
    if !observed(s) {
        return None;
    }
    s.status.as_ref()?.update_revision.as_deref()
}

pub fn pod_revision(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The set's own live pods (its selector, its name's ordinals, not terminating), by ordinal.
pub fn own_pods<'a>(
    s: &StatefulSet,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<(i32, &'a Pod)> {
    let name = s.metadata.name.as_deref().unwrap_or_default();
    let Some(sel) = s.spec.as_ref().map(|sp| &sp.selector) else {
        return Vec::new();
    };
    let empty = BTreeMap::new();
    let mut out: Vec<(i32, &Pod)> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| selects(sel, p.metadata.labels.as_ref().unwrap_or(&empty)))
        .filter_map(|p| Some((ordinal(name, p.metadata.name.as_deref()?)?, p)))
        .collect();
    out.sort_by_key(|(o, _)| *o);
    out
}

/// A pod that a forced rollback deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    pub pod: String,
    pub uid: Option<String>,
    /// The revision the pod runs.
    pub revision: String,
    /// Why it is not Ready (a container's waiting reason, else its phase).
    pub why: String,
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pod {} (revision {}, not Ready: {})",
            self.pod, self.revision, self.why
        )
    }
}

impl Stuck {
    fn of(p: &Pod) -> Stuck {
        Stuck {
            pod: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone(),
            revision: pod_revision(p).unwrap_or_default().to_string(),
            why: why_not_ready(p),
        }
    }
}

fn why_not_ready(p: &Pod) -> String {
    if let Some(f) = pod_failure(p) {
        return f.reason;
    }
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "no status".into())
}

/// The pods Kubernetes' "forced rollback" must delete: on a revision other than the update
/// revision and not Ready. The controller replaces them with the update revision only once they
/// are gone. Highest ordinal first, as the controller itself goes. Empty until the controller
/// has seen the current spec.
pub fn stuck_pods<'a>(s: &StatefulSet, pods: impl IntoIterator<Item = &'a Pod>) -> Vec<Stuck> {
    let Some(update) = update_revision(s) else {
        return Vec::new();
    };
    let mut out: Vec<Stuck> = own_pods(s, pods)
        .into_iter()
        .filter(|(_, p)| pod_revision(p).is_some_and(|r| r != update) && !pod_ready(p))
        .map(|(_, p)| Stuck::of(p))
        .collect();
    out.reverse();
    out
}

/// A StatefulSet that will never finish by itself: under `OrderedReady` a pod of another
/// revision that is failing (not just slow) blocks the controller for good.
pub fn blocked_by(s: &StatefulSet, pods: &[&Pod]) -> Option<Stuck> {
    if !ordered_ready(s) || strategy(s) == Strategy::OnDelete {
        return None;
    }
    let update = update_revision(s)?;
    own_pods(s, pods.iter().copied())
        .into_iter()
        .rev()
        .find(|(_, p)| pod_revision(p).is_some_and(|r| r != update) && pod_failure(p).is_some())
        .map(|(_, p)| Stuck::of(p))
}

/// The next pod an OnDelete roll deletes: the highest ordinal still on an old revision, once
/// every pod above it is on the update revision and Ready (one at a time, as the controller
/// rolls). `None` while one is being replaced, or when all are updated.
pub fn next_on_delete<'a>(
    s: &StatefulSet,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<String> {
    let update = update_revision(s)?;
    let replicas = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
    let own = own_pods(s, pods);
    for ordinal in (0..replicas).rev() {
        let Some((_, p)) = own.iter().find(|(o, _)| *o == ordinal) else {
            return None; // being recreated
        };
        if pod_revision(p) != Some(update) {
            return p.metadata.name.clone();
        }
        if !pod_ready(p) {
            return None; // the one above is not ready yet
        }
    }
    None
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Where a StatefulSet stands. A partitioned one is done when the pods at or above the partition
/// are updated and all are ready; an OnDelete one with `OnDelete::Report` when its pods are ready
/// (those on the old revision are named, not waited for).
pub fn progress(s: &StatefulSet, on_delete: OnDelete) -> Progress {
    let desired = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
    let Some(st) = &s.status else {
        return Progress::Waiting("no status yet".into());
    };
    if !observed(s) {
        return Progress::Waiting("waiting for the controller to observe the new spec".into());
    }
    let (updated, ready, available) = (
        n(st.updated_replicas),
        n(st.ready_replicas),
        n(st.available_replicas),
    );
    let line = format!(
        "{updated}/{desired} updated, {ready}/{desired} ready, {available}/{desired} available"
    );
    let all_ready = ready == desired && available == desired && st.replicas == desired;
    match strategy(s) {
        Strategy::OnDelete if on_delete == OnDelete::Report => {
            if !all_ready {
                return Progress::Waiting(line);
            }
            if updated < desired {
                return Progress::Ready(format!(
                    "{line}; updateStrategy OnDelete: {} pod(s) keep the old revision until deleted (statefulset_on_delete: roll lets the action do it)",
                    desired - updated
                ));
            }
            Progress::Ready(line)
        }
        Strategy::OnDelete => {
            if updated == desired && all_ready {
                Progress::Ready(line)
            } else {
                Progress::Waiting(format!("{line}, rolling pods on delete"))
            }
        }
        Strategy::Rolling { partition } if partition > 0 => {
            let want = (desired - partition).max(0);
            if updated >= want && all_ready {
                Progress::Ready(format!("{line} (partition {partition}: {want} to update)"))
            } else {
                Progress::Waiting(format!("{line} (partition {partition}: {want} to update)"))
            }
        }
        Strategy::Rolling { .. } => {
            if updated == desired && all_ready {
                match (&st.current_revision, &st.update_revision) {
                    (Some(c), Some(u)) if c != u => {
                        Progress::Waiting(format!("{line}, revision {u} not yet current"))
                    }
                    _ => Progress::Ready(line),
                }
            } else if st.replicas > updated && updated == desired {
                Progress::Waiting(format!(
                    "{line}, {} old pod(s) terminating",
                    st.replicas - updated
                ))
            } else {
                Progress::Waiting(line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(v: serde_json::Value) -> StatefulSet {
        serde_json::from_value(v).unwrap()
    }

    fn set(policy: &str, strategy: serde_json::Value, status: serde_json::Value) -> StatefulSet {
        sts(serde_json::json!({
            "metadata": {"name": "db", "generation": 3},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "podManagementPolicy": policy,
                "updateStrategy": strategy,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}
            },
            "status": status,
        }))
    }

    fn pod(name: &str, rev: &str, ready: bool, waiting: Option<&str>) -> Pod {
        let state = match waiting {
            Some(r) => serde_json::json!({"waiting": {"reason": r}}),
            None => serde_json::json!({"running": {}}),
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"),
                         "labels": {"app": "db", REVISION_LABEL: rev}},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready,
                                       "restartCount": 0, "state": state}]
            }
        }))
        .unwrap()
    }

    fn rolled_back() -> StatefulSet {
        set(
            "OrderedReady",
            serde_json::json!({"type": "RollingUpdate"}),
            serde_json::json!({"replicas": 3, "observedGeneration": 3, "readyReplicas": 2,
                               "currentRevision": "db-good", "updateRevision": "db-good",
                               "updatedReplicas": 2}),
        )
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal("db", "db-0"), Some(0));
        assert_eq!(ordinal("db", "db-12"), Some(12));
        assert_eq!(ordinal("db", "dbx-1"), None);
        assert_eq!(ordinal("db", "db-cache-1"), None);
    }

    #[test]
    fn a_forced_rollback_deletes_the_bad_revisions_pods_that_are_not_ready() {
        let pods = [
            pod("db-0", "db-good", true, None),
            pod("db-1", "db-bad", false, Some("CrashLoopBackOff")),
            pod("db-2", "db-bad", false, Some("ImagePullBackOff")),
            // Another set's pod with a matching label but no ordinal of "db".
            pod("other-2", "db-bad", false, Some("ImagePullBackOff")),
        ];
        let stuck = stuck_pods(&rolled_back(), &pods);
        let names: Vec<&str> = stuck.iter().map(|s| s.pod.as_str()).collect();
        assert_eq!(names, ["db-2", "db-1"], "highest ordinal first");
        assert_eq!(stuck[0].why, "ImagePullBackOff");
        assert_eq!(stuck[0].revision, "db-bad");
        assert_eq!(stuck[0].uid.as_deref(), Some("uid-db-2"));
    }

    #[test]
    fn ready_pods_and_pods_of_the_update_revision_are_left_alone() {
        let pods = [
            pod("db-0", "db-old", true, None), // old but Ready (a partition keeps it)
            pod("db-1", "db-good", false, None), // starting on the right revision
            pod("db-2", "db-good", true, None),
        ];
        assert!(stuck_pods(&rolled_back(), &pods).is_empty());
    }

    #[test]
    fn nothing_is_judged_before_the_controller_saw_the_spec() {
        let mut s = rolled_back();
        s.status.as_mut().unwrap().observed_generation = Some(2);
        let pods = [pod("db-2", "db-bad", false, Some("ImagePullBackOff"))];
        assert!(stuck_pods(&s, &pods).is_empty());
        assert!(blocked_by(&s, &pods.iter().collect::<Vec<_>>()).is_none());
    }

    #[test]
    fn an_ordered_set_blocked_by_a_failing_pod_of_another_revision_never_progresses() {
        let s = set(
            "OrderedReady",
            serde_json::json!({"type": "RollingUpdate"}),
            serde_json::json!({"replicas": 3, "observedGeneration": 3,
                               "currentRevision": "db-a", "updateRevision": "db-new"}),
        );
        let failing = pod("db-2", "db-bad", false, Some("ImagePullBackOff"));
        let slow = pod("db-2", "db-bad", false, None);
        assert_eq!(blocked_by(&s, &[&failing]).unwrap().pod, "db-2");
        assert!(blocked_by(&s, &[&slow]).is_none(), "slow is not blocked");
        let parallel = set(
            "Parallel",
            serde_json::json!({"type": "RollingUpdate"}),
            serde_json::json!({"replicas": 3, "observedGeneration": 3, "updateRevision": "db-new"}),
        );
        assert!(blocked_by(&parallel, &[&failing]).is_none());
    }

    #[test]
    fn on_delete_rolls_one_pod_at_a_time_from_the_top() {
        let s = set(
            "OrderedReady",
            serde_json::json!({"type": "OnDelete"}),
            serde_json::json!({"replicas": 3, "observedGeneration": 3, "updateRevision": "db-new"}),
        );
        let old = [
            pod("db-0", "db-old", true, None),
            pod("db-1", "db-old", true, None),
            pod("db-2", "db-old", true, None),
        ];
        assert_eq!(next_on_delete(&s, &old).as_deref(), Some("db-2"));
        // db-2 is being recreated: wait.
        assert_eq!(next_on_delete(&s, &old[..2]), None);
        // db-2 is back on the new revision but not ready: wait.
        let starting = [
            old[0].clone(),
            old[1].clone(),
            pod("db-2", "db-new", false, None),
        ];
        assert_eq!(next_on_delete(&s, &starting), None);
        let next = [
            old[0].clone(),
            old[1].clone(),
            pod("db-2", "db-new", true, None),
        ];
        assert_eq!(next_on_delete(&s, &next).as_deref(), Some("db-1"));
        let done = [
            pod("db-0", "db-new", true, None),
            pod("db-1", "db-new", true, None),
            pod("db-2", "db-new", true, None),
        ];
        assert_eq!(next_on_delete(&s, &done), None);
    }

    #[test]
    fn progress_of_partitioned_and_on_delete_sets() {
        let ready_all = |updated: i32| {
            serde_json::json!({"replicas": 3, "observedGeneration": 3, "readyReplicas": 3,
                               "availableReplicas": 3, "updatedReplicas": updated,
                               "currentRevision": "db-old", "updateRevision": "db-new"})
        };
        let partitioned = |updated| {
            set(
                "OrderedReady",
                serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
                ready_all(updated),
            )
        };
        assert!(matches!(
            progress(&partitioned(0), OnDelete::Report),
            Progress::Waiting(_)
        ));
        let p = progress(&partitioned(1), OnDelete::Report);
        assert!(
            matches!(&p, Progress::Ready(m) if m.contains("partition 2")),
            "{p:?}"
        );

        let on_delete = |updated| {
            set(
                "OrderedReady",
                serde_json::json!({"type": "OnDelete"}),
                ready_all(updated),
            )
        };
        let p = progress(&on_delete(0), OnDelete::Report);
        assert!(
            matches!(&p, Progress::Ready(m) if m.contains("3 pod(s) keep the old revision")),
            "{p:?}"
        );
        assert!(matches!(
            progress(&on_delete(2), OnDelete::Roll),
            Progress::Waiting(_)
        ));
        assert!(matches!(
            progress(&on_delete(3), OnDelete::Roll),
            Progress::Ready(_)
        ));

        // A plain rolling update waits for the update revision to become current.
        let rolling = set(
            "OrderedReady",
            serde_json::json!({"type": "RollingUpdate"}),
            ready_all(3),
        );
        assert!(
            matches!(progress(&rolling, OnDelete::Report), Progress::Waiting(m) if m.contains("not yet current"))
        );
    }
}
