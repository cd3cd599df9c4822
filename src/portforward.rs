//! Reaching a Service's port through the Kubernetes API: a Ready pod behind the Service's
//! selector, the service port mapped to its targetPort, and a port-forward stream to that pod
//! (what `kubectl port-forward svc/…` does). Never the proxy subresource, never pod IPs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::Selector;
use rand::seq::IndexedRandom as _;

/// A service port as a smoke check names it: by name (`http`) or number (`80`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PortRef {
    Name(String),
    Number(u16),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Name(n) => f.write_str(n),
            PortRef::Number(n) => write!(f, "{n}"),
        }
    }
}

/// A failure to open a port-forward to a service. Messages name the service and namespace.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("failed to read service {service:?} in namespace {namespace:?}: {source}")]
    Service {
        namespace: String,
        service: String,
        #[source]
        source: kube::Error,
    },
    #[error("service {service:?} in namespace {namespace:?} has no port {port} (it has: {known})")]
    NoPort {
        namespace: String,
        service: String,
        port: PortRef,
        known: String,
    },
    #[error(
        "service {service:?} in namespace {namespace:?} has no selector: there are no pods to \
         forward to"
    )]
    NoSelector { namespace: String, service: String },
    #[error("failed to list the pods of service {service:?} in namespace {namespace:?}: {source}")]
    Pods {
        namespace: String,
        service: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "no Ready pod of the current rollout behind service {service:?} in namespace \
         {namespace:?} (selector {selector}; {total} pods)"
    )]
    NoReadyPod {
        namespace: String,
        service: String,
        selector: String,
        total: usize,
    },
    #[error(
        "pod {pod:?} in namespace {namespace:?} has no container port named {name:?} (the \
         targetPort of service {service:?})"
    )]
    NoTargetPort {
        namespace: String,
        service: String,
        pod: String,
        name: String,
    },
    #[error(
        "failed to port-forward to pod {pod:?} port {port} in namespace {namespace:?}: {source}"
    )]
    Forward {
        namespace: String,
        pod: String,
        port: u16,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the port-forward to pod {pod:?} port {port} in namespace {namespace:?} gave no stream"
    )]
    NoStream {
        namespace: String,
        pod: String,
        port: u16,
    },
}

/// An open port-forward: the byte stream to the pod's port, and the forwarder to close.
pub(crate) struct Forwarded {
    pub(crate) stream: tokio::io::DuplexStream,
    /// The pod it reaches.
    pub(crate) pod: String,
    /// The pod's port (the service port's targetPort).
    pub(crate) target_port: u16,
    pub(crate) forwarder: kube::api::Portforwarder,
}

/// Finds the service port a check names.
pub(crate) fn find_port<'a>(ports: &'a [ServicePort], port: &PortRef) -> Option<&'a ServicePort> {
    ports.iter().find(|p| match port {
        PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
        PortRef::Number(n) => p.port == i32::from(*n),
    })
}

/// The pod port a service port leads to: its targetPort (a number, or a container port name
/// looked up in the pod), else the service port itself.
pub(crate) fn target_port(sp: &ServicePort, pod: &Pod) -> Result<u16, String> {
    let as_port = |n: i32| u16::try_from(n).map_err(|_| format!("port {n} is out of range"));
    match &sp.target_port {
        None => as_port(sp.port),
        Some(IntOrString::Int(n)) => as_port(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| as_port(p.container_port))
            .unwrap_or_else(|| Err(name.clone())),
    }
}

/// True when the pod is Running, Ready and not being deleted.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// The controlling owner of an object, of `kind`.
fn controller<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
) -> Option<&'a str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .map(|o| o.name.as_str())
}

/// The pods of the current rollout: a pod owned by a ReplicaSet is kept only when that
/// ReplicaSet has its Deployment's highest `deployment.kubernetes.io/revision`, so a check never
/// hits an old version's pod that is still around just after the rollout. Other pods are kept.
pub(crate) fn current_pods<'a>(pods: &[&'a Pod], replica_sets: &[ReplicaSet]) -> Vec<&'a Pod> {
    let revision = |rs: &ReplicaSet| -> Option<u64> {
        rs.metadata
            .annotations
            .as_ref()?
            .get("deployment.kubernetes.io/revision")?
            .parse()
            .ok()
    };
    // ReplicaSet name → (its Deployment, its revision); Deployment → newest revision.
    let mut by_rs: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    let mut newest: BTreeMap<&str, u64> = BTreeMap::new();
    for rs in replica_sets {
        if let (Some(name), Some(dep), Some(rev)) = (
            rs.metadata.name.as_deref(),
            controller(&rs.metadata, "Deployment"),
            revision(rs),
        ) {
            by_rs.insert(name, (dep, rev));
            let n = newest.entry(dep).or_insert(rev);
            *n = (*n).max(rev);
        }
    }
    pods.iter()
        .copied()
        .filter(
            |p| match controller(&p.metadata, "ReplicaSet").and_then(|rs| by_rs.get(rs)) {
                Some((dep, rev)) => newest.get(dep) == Some(rev),
                None => true,
            },
        )
        .collect()
}

/// Opens a port-forward to a Ready pod behind `service`'s selector, on the pod port that
/// `port` maps to. Each call picks a pod afresh (at random among the Ready ones).
pub(crate) async fn connect_service(
    client: &Client,
    namespace: &str,
    service: &str,
    port: &PortRef,
) -> Result<Forwarded, ForwardError> {
    let svc = Api::<Service>::namespaced(client.clone(), namespace)
        .get(service)
        .await
        .map_err(|source| ForwardError::Service {
            namespace: namespace.into(),
            service: service.into(),
            source,
        })?;
    let spec = svc.spec.unwrap_or_default();
    let ports = spec.ports.unwrap_or_default();
    let sp = find_port(&ports, port)
        .ok_or_else(|| ForwardError::NoPort {
            namespace: namespace.into(),
            service: service.into(),
            port: port.clone(),
            known: ports
                .iter()
                .map(|p| match &p.name {
                    Some(n) => format!("{n} ({})", p.port),
                    None => p.port.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })?
        .clone();
    let selector =
        spec.selector
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ForwardError::NoSelector {
                namespace: namespace.into(),
                service: service.into(),
            })?;
    let selector: Selector = selector.into_iter().collect();
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels_from(&selector))
        .await
        .map_err(|source| ForwardError::Pods {
            namespace: namespace.into(),
            service: service.into(),
            source,
        })?;
    let mut ready: Vec<&Pod> = list.items.iter().filter(|p| is_ready(p)).collect();
    if ready
        .iter()
        .any(|p| controller(&p.metadata, "ReplicaSet").is_some())
    {
        let sets = Api::<ReplicaSet>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels_from(&selector))
            .await
            .map_err(|source| ForwardError::Pods {
                namespace: namespace.into(),
                service: service.into(),
                source,
            })?;
        ready = current_pods(&ready, &sets.items);
    }
    let pod = *ready
        .choose(&mut rand::rng())
        .ok_or_else(|| ForwardError::NoReadyPod {
            namespace: namespace.into(),
            service: service.into(),
            selector: selector.to_string(),
            total: list.items.len(),
        })?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let target = target_port(&sp, pod).map_err(|name| ForwardError::NoTargetPort {
        namespace: namespace.into(),
        service: service.into(),
        pod: pod_name.clone(),
        name,
    })?;
    let mut forwarder = pods
        .portforward(&pod_name, &[target])
        .await
        .map_err(|source| ForwardError::Forward {
            namespace: namespace.into(),
            pod: pod_name.clone(),
            port: target,
            source,
        })?;
    let stream = forwarder
        .take_stream(target)
        .ok_or_else(|| ForwardError::NoStream {
            namespace: namespace.into(),
            pod: pod_name.clone(),
            port: target,
        })?;
    Ok(Forwarded {
        stream,
        pod: pod_name,
        target_port: target,
        forwarder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn service_ports_map_to_target_ports() {
        let ports: Vec<ServicePort> = serde_json::from_value(serde_json::json!([
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9091},
            {"port": 7000}
        ]))
        .unwrap();
        let p = pod(serde_json::json!({
            "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}
        }));
        let http = find_port(&ports, &PortRef::Name("http".into())).unwrap();
        assert_eq!(target_port(http, &p), Ok(8080));
        let by_number = find_port(&ports, &PortRef::Number(80)).unwrap();
        assert_eq!(by_number.name.as_deref(), Some("http"));
        let metrics = find_port(&ports, &PortRef::Name("metrics".into())).unwrap();
        assert_eq!(target_port(metrics, &p), Ok(9091));
        let plain = find_port(&ports, &PortRef::Number(7000)).unwrap();
        assert_eq!(target_port(plain, &p), Ok(7000));
        assert!(find_port(&ports, &PortRef::Name("grpc".into())).is_none());
        let bare = pod(
            serde_json::json!({"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c"}]}}),
        );
        assert_eq!(target_port(http, &bare), Err("http".to_string()));
    }

    #[test]
    fn only_pods_of_the_newest_replica_set_are_targets() {
        let owned = |name: &str, kind: &str, owner: &str| {
            serde_json::json!({"name": name, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": owner, "controller": true}
            ]})
        };
        let rs = |name: &str, dep: &str, rev: &str| -> ReplicaSet {
            let mut meta = owned(name, "Deployment", dep);
            meta["annotations"] = serde_json::json!({"deployment.kubernetes.io/revision": rev});
            serde_json::from_value(serde_json::json!({"metadata": meta})).unwrap()
        };
        let sets = [
            rs("web-1", "web", "1"),
            rs("web-2", "web", "2"),
            rs("api-7", "api", "7"),
        ];
        let pods = [
            pod(serde_json::json!({"metadata": owned("old", "ReplicaSet", "web-1")})),
            pod(serde_json::json!({"metadata": owned("new", "ReplicaSet", "web-2")})),
            pod(serde_json::json!({"metadata": owned("api", "ReplicaSet", "api-7")})),
            pod(serde_json::json!({"metadata": owned("sts-0", "StatefulSet", "db")})),
            pod(serde_json::json!({"metadata": owned("orphan", "ReplicaSet", "gone")})),
            pod(serde_json::json!({"metadata": {"name": "bare"}})),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let names: Vec<_> = current_pods(&refs, &sets)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["new", "api", "sts-0", "orphan", "bare"]);
    }

    #[test]
    fn only_running_ready_live_pods_are_targets() {
        let mk = |phase: &str, ready: &str, deleting: bool| {
            let mut meta = serde_json::json!({"name": "p"});
            if deleting {
                meta["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
            }
            pod(serde_json::json!({
                "metadata": meta,
                "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}
            }))
        };
        assert!(is_ready(&mk("Running", "True", false)));
        assert!(!is_ready(&mk("Running", "False", false)));
        assert!(!is_ready(&mk("Pending", "True", false)));
        assert!(!is_ready(&mk("Running", "True", true)));
        assert!(!is_ready(&pod(
            serde_json::json!({"metadata": {"name": "x"}})
        )));
    }
}
