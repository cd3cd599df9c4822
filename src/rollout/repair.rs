//! Kubernetes' forced rollback of a release's StatefulSets: their pods stuck on a bad revision
//! deleted one at a time, highest ordinal first, each awaited until it is gone; and the one way
//! the crate deletes a pod (only the instance that was seen, by uid).

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};

use super::statefulset::{Stuck, observed, stuck_pods, update_revision};
use crate::cancel::Deadline;
use crate::runner::Runner;

/// How often the deletion of one pod is checked.
const POLL: Duration = Duration::from_millis(250);

/// A failure to delete or list the pods of a StatefulSet.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("failed to {action} of StatefulSet {set:?} in namespace {namespace:?}")]
    Kube {
        action: &'static str,
        set: String,
        namespace: String,
        source: kube::Error,
    },
    #[error(
        "failed to replace pod {pod:?} of StatefulSet {set:?} in namespace {namespace:?}: it was still there at the deadline"
    )]
    Deadline {
        pod: String,
        set: String,
        namespace: String,
    },
}

/// One pod deleted by a repair, with the reason, for the log and the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub set: String,
    pub stuck: Stuck,
}

impl fmt::Display for Deleted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatefulSet/{}: deleted {}", self.set, self.stuck)
    }
}

/// Kubernetes' forced rollback for the named StatefulSets: waits (up to `deadline`) for the
/// controller to see each one's current spec, then deletes its stuck pods one at a time, highest
/// ordinal first, each awaited until it is gone, so the controller recreates them from the
/// update revision. Returns what it deleted.
pub async fn repair(
    client: &kube::Client,
    runner: &Runner,
    namespace: &str,
    sets: &[String],
    deadline: Deadline,
) -> Result<Vec<Deleted>, RepairError> {
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut deleted = Vec::new();
    for set in sets {
        let err = |action| {
            let (set, namespace) = (set.clone(), namespace.to_string());
            move |source| RepairError::Kube {
                action,
                set,
                namespace,
                source,
            }
        };
        // The controller must have seen the spec (a rollback just reverted it) before its
        // update revision says which pods are stuck.
        let s = loop {
            let s = sts_api.get_opt(set).await.map_err(err("read"))?;
            match s {
                None => break None,
                Some(s) if observed(&s) || deadline.passed() => break Some(s),
                Some(_) => tokio::time::sleep(POLL).await,
            }
        };
        let Some(s) = s else { continue };
        // matchLabels narrow the list; own_pods applies the whole selector.
        let selector = s
            .spec
            .as_ref()
            .and_then(|sp| sp.selector.match_labels.as_ref())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let pods = pod_api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(err("list the pods"))?;
        for stuck in stuck_pods(&s, &pods.items) {
            runner.info(&format!(
                "StatefulSet/{set}: deleting {stuck}: a StatefulSet does not replace a pod of another revision that is not Ready (Kubernetes' forced rollback); the controller recreates it from revision {}",
                update_revision(&s).unwrap_or("?")
            ));
            let uid = stuck.uid.clone().unwrap_or_default();
            delete_pod(client, namespace, &stuck.pod, &uid)
                .await
                .map_err(err("delete a pod"))?;
            loop {
                let p = pod_api
                    .get_opt(&stuck.pod)
                    .await
                    .map_err(err("read a pod"))?;
                if p.is_none_or(|p| p.metadata.uid != stuck.uid) {
                    break;
                }
                if deadline.passed() {
                    return Err(RepairError::Deadline {
                        pod: stuck.pod.clone(),
                        set: set.clone(),
                        namespace: namespace.to_string(),
                    });
                }
                tokio::time::sleep(POLL).await;
            }
            deleted.push(Deleted {
                set: set.clone(),
                stuck,
            });
        }
    }
    Ok(deleted)
}

/// Deletes one pod, only if it is still the one seen (its uid).
pub(super) async fn delete_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        preconditions: (!uid.is_empty()).then(|| Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
