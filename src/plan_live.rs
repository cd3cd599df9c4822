//! What an upgrade would do to the live objects: each object of the planned manifest applied to
//! the cluster as a server-side dry run (the API server fills in its defaults and keeps what
//! others own), compared with the live object, with the fields the server owns left out
//! (status, managed fields, resource version, generation, uid, creation time); objects of the
//! release that the plan drops; and drift: fields of live objects that someone other than helm
//! and the cluster's controllers set by hand (kubectl scale, annotate, edit). What the deployed
//! revision set and the new chart no longer sets is taken out of the dry run's result, as
//! helm's three-way merge deletes it (the dry run's manager owns nothing to give up).

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use crate::manifest::{self, Yaml};

/// The field manager of the dry runs: owns nothing, so an apply changes only what it sets.
const MANAGER: &str = "trader-deploy-plan";
/// Managers whose updates are the cluster's own work, not drift (the HPA scales through
/// kube-controller-manager).
const CONTROLLERS: &[&str] = &["kube-controller-manager", "kube-scheduler", "kubelet"];
/// Metadata the API server owns.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];

/// A failed look at the live objects.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LiveError {
    #[error("failed to {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("object {index} of the planned manifest has no {field}")]
    Malformed { index: usize, field: &'static str },
}

/// The two sides of the plan's diff, as multi-document YAML, and the drift found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Compared {
    /// The live objects the upgrade touches (or deletes), server-owned fields left out.
    pub(crate) live: String,
    /// What they would be after the upgrade (server-side dry runs), and new objects as planned.
    pub(crate) after: String,
    /// `Kind namespace/name` → the hand edits found on it (`spec.replicas by kubectl`).
    pub(crate) drift: BTreeMap<String, Vec<String>>,
}

/// Compares the `planned` manifest with the live objects; `stored` is the manifest helm
/// recorded for the live release (its objects that the plan drops are deleted by the upgrade).
pub(crate) async fn compare(
    client: &kube::Client,
    planned: &str,
    stored: &str,
    namespace: &str,
) -> Result<Compared, LiveError> {
    let mut kinds: BTreeMap<(String, String), (ApiResource, ApiCapabilities)> = BTreeMap::new();
    let mut out = Compared::default();
    let mut live_docs = Vec::new();
    let mut after_docs = Vec::new();
    let planned_docs = manifest::documents(planned);
    let mut planned_keys = Vec::new();
    // What the deployed revision set, by object.
    let mut before: BTreeMap<String, Value> = BTreeMap::new();
    for (index, doc) in manifest::documents(stored).iter().enumerate() {
        let object = to_json(doc);
        if let Ok(id) = Identity::of(&object, index) {
            before.insert(id.key(namespace), object);
        }
    }
    for (index, doc) in planned_docs.iter().enumerate() {
        let object = to_json(doc);
        let id = Identity::of(&object, index)?;
        let (ar, caps) = resource(client, &mut kinds, &id).await?;
        let ns = (caps.scope == Scope::Namespaced).then(|| id.namespace(namespace));
        planned_keys.push(id.key(namespace));
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let live = api
            .get_opt(&id.name)
            .await
            .map_err(|source| LiveError::Kube {
                what: format!("read {} {}", id.kind, id.name),
                source,
            })?;
        let Some(live) = live else {
            after_docs.push(object);
            continue;
        };
        let live = serde_json::to_value(&live).unwrap_or(Value::Null);
        let drift = hand_edits(&live);
        if !drift.is_empty() {
            out.drift.insert(id.key(namespace), drift);
        }
        let params = PatchParams::apply(MANAGER).force().dry_run();
        let applied = api
            .patch(&id.name, &params, &Patch::Apply(&object))
            .await
            .map_err(|source| LiveError::Kube {
                what: format!("dry-run apply {} {}", id.kind, id.name),
                source,
            })?;
        let mut applied = serde_json::to_value(&applied).unwrap_or(Value::Null);
        if let Some(was) = before.get(&id.key(namespace)) {
            drop_removed(&mut applied, was, &object);
        }
        live_docs.push(without_server_fields(live));
        after_docs.push(without_server_fields(applied));
    }
    // The release's objects the plan no longer renders: the upgrade deletes them.
    for (index, object) in before.values().enumerate() {
        let Ok(id) = Identity::of(object, index) else {
            continue;
        };
        if planned_keys.contains(&id.key(namespace)) {
            continue;
        }
        let Ok((ar, caps)) = resource(client, &mut kinds, &id).await else {
            continue;
        };
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            Api::namespaced_with(client.clone(), id.namespace(namespace), &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        if let Ok(Some(live)) = api.get_opt(&id.name).await {
            live_docs.push(without_server_fields(
                serde_json::to_value(&live).unwrap_or(Value::Null),
            ));
        }
    }
    out.live = stream(&live_docs);
    out.after = stream(&after_docs);
    Ok(out)
}

/// What names an object.
struct Identity {
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
}

impl Identity {
    fn of(v: &Value, index: usize) -> Result<Identity, LiveError> {
        let s = |p: &str, field: &'static str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(LiveError::Malformed { index, field })
        };
        Ok(Identity {
            api_version: s("/apiVersion", "apiVersion")?,
            kind: s("/kind", "kind")?,
            name: s("/metadata/name", "metadata.name")?,
            namespace: v
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    fn namespace<'a>(&'a self, default: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(default)
    }

    /// The key `diff` gives the object: `Kind namespace/name`.
    fn key(&self, default: &str) -> String {
        format!("{} {}/{}", self.kind, self.namespace(default), self.name)
    }

    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }
}

/// The API resource of `id`'s kind, discovered once per kind.
async fn resource(
    client: &kube::Client,
    kinds: &mut BTreeMap<(String, String), (ApiResource, ApiCapabilities)>,
    id: &Identity,
) -> Result<(ApiResource, ApiCapabilities), LiveError> {
    let key = (id.api_version.clone(), id.kind.clone());
    if let Some(found) = kinds.get(&key) {
        return Ok(found.clone());
    }
    let found = discovery::pinned_kind(client, &id.gvk())
        .await
        .map_err(|source| LiveError::Kube {
            what: format!("find the API of {} {}", id.api_version, id.kind),
            source,
        })?;
    kinds.insert(key, found.clone());
    Ok(found)
}

fn to_json(doc: &Yaml) -> Value {
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// Keys that identify an element of a list of objects (containers and env by `name`, volume
/// mounts by `mountPath`, ports by `containerPort`), as Kubernetes merges those lists.
const MERGE_KEYS: &[&str] = &["name", "mountPath", "containerPort"];

/// The merge key of a list element, when it has one.
fn merge_key(v: &Value) -> Option<String> {
    let o = v.as_object()?;
    MERGE_KEYS
        .iter()
        .find_map(|k| o.get(*k))
        .map(|k| k.as_str().map_or(k.to_string(), str::to_string))
}

/// Takes out of `after` what `before` (the deployed revision's object) set and `planned` no
/// longer sets: map keys, and elements of keyed lists; other lists are the chart's as a whole.
pub(crate) fn drop_removed(after: &mut Value, before: &Value, planned: &Value) {
    match (after, before, planned) {
        (Value::Object(after), Value::Object(before), Value::Object(planned)) => {
            for (k, was) in before {
                match planned.get(k) {
                    None => {
                        after.remove(k);
                    }
                    Some(now) => {
                        if let Some(a) = after.get_mut(k) {
                            drop_removed(a, was, now);
                        }
                    }
                }
            }
        }
        (Value::Array(after), Value::Array(before), Value::Array(planned)) => {
            let keyed = |l: &[Value]| l.iter().all(|e| merge_key(e).is_some());
            if before.is_empty() || !keyed(before) || !keyed(planned) {
                return;
            }
            for was in before {
                let key = merge_key(was);
                let now = planned.iter().find(|p| merge_key(p) == key);
                let at = after.iter().position(|a| merge_key(a) == key);
                match (now, at) {
                    (None, Some(i)) => {
                        after.remove(i);
                    }
                    (Some(now), Some(i)) => drop_removed(&mut after[i], was, now),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The object without what the API server owns: status and server-side metadata.
pub(crate) fn without_server_fields(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
    }
    v
}

/// Documents as one YAML stream, for `diff::diff`.
fn stream(docs: &[Value]) -> String {
    docs.iter()
        .filter_map(|d| serde_json::from_value::<Yaml>(d.clone()).ok())
        .map(|y| format!("---\n{}", y.to_text()))
        .collect()
}

/// The fields of a live object that a hand edit set: every `managedFields` entry of an update
/// (not a status write) by a manager other than helm (the one that owns the release-name
/// annotation) and the cluster's controllers, as `spec.replicas by kubectl`.
pub(crate) fn hand_edits(live: &Value) -> Vec<String> {
    let Some(entries) = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let helm = entries.iter().find_map(|e| {
        e.pointer("/fieldsV1/f:metadata/f:annotations/f:meta.helm.sh~1release-name")
            .and(e.get("manager").and_then(Value::as_str))
    });
    let mut out = Vec::new();
    for e in entries {
        let manager = e.get("manager").and_then(Value::as_str).unwrap_or("");
        let update = e.get("operation").and_then(Value::as_str) == Some("Update");
        let status = e.get("subresource").and_then(Value::as_str) == Some("status");
        if !update || status || Some(manager) == helm || CONTROLLERS.contains(&manager) {
            continue;
        }
        let mut paths = Vec::new();
        if let Some(f) = e.get("fieldsV1") {
            field_paths(f, String::new(), &mut paths);
        }
        for p in paths {
            out.push(format!("{p} by {manager}"));
        }
    }
    out
}

/// The leaf paths of a `fieldsV1` set (`f:spec` → `spec`, `k:{"name":"x"}` → `[name=x]`).
fn field_paths(v: &Value, prefix: String, out: &mut Vec<String>) {
    let Some(map) = v.as_object() else {
        return;
    };
    let children: Vec<(&String, &Value)> = map.iter().filter(|(k, _)| *k != ".").collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    for (k, child) in children {
        let part = if let Some(f) = k.strip_prefix("f:") {
            if prefix.is_empty() {
                f.to_string()
            } else {
                format!("{prefix}.{f}")
            }
        } else if let Some(key) = k.strip_prefix("k:") {
            let inner: BTreeMap<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let inner: Vec<String> = inner
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
                .collect();
            format!("{prefix}[{}]", inner.join(","))
        } else if let Some(val) = k.strip_prefix("v:") {
            format!("{prefix}[{val}]")
        } else {
            format!("{prefix}.{k}")
        };
        field_paths(child, part, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn managed() -> Value {
        json!({"metadata": {"name": "orch", "managedFields": [
            {"manager": "kubectl", "operation": "Update", "subresource": "scale",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "helm", "operation": "Update",
             "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:meta.helm.sh/release-name": {}}},
                          "f:spec": {"f:template": {"f:spec": {"f:containers": {
                              "k:{\"name\":\"orch\"}": {".": {}, "f:image": {}}}}}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
             "fieldsV1": {"f:status": {"f:replicas": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl-annotate", "operation": "Update",
             "fieldsV1": {"f:metadata": {"f:annotations": {"f:team": {}}}}},
            {"manager": "kubectl-edit", "operation": "Update",
             "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                 "k:{\"name\":\"orch\"}": {"f:env": {"k:{\"name\":\"X\"}": {".": {}, "f:value": {}}}}}}}}}},
        ]}})
    }

    #[test]
    fn hand_edits_are_what_neither_helm_nor_a_controller_set() {
        assert_eq!(
            hand_edits(&managed()),
            [
                "spec.replicas by kubectl",
                "metadata.annotations.team by kubectl-annotate",
                "spec.template.spec.containers[name=orch].env[name=X].value by kubectl-edit",
            ]
        );
        assert!(hand_edits(&json!({"metadata": {}})).is_empty());
    }

    #[test]
    fn what_the_chart_no_longer_sets_is_removed_as_helm_removes_it() {
        let before = json!({"spec": {"nodeSelector": {"n": "real"}, "replicas": 2,
            "template": {"spec": {"containers": [{"name": "app", "image": "a:1",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
                "tolerations": [{"key": "t", "operator": "Exists"}]}}}});
        let planned = json!({"spec": {"replicas": 2,
            "template": {"spec": {"containers": [{"name": "app", "image": "a:2",
                "env": [{"name": "A", "value": "1"}]}]}}}});
        // The dry run: the live object with the planned fields set, plus what others set.
        let mut after = json!({"spec": {"nodeSelector": {"n": "real"}, "replicas": 5,
            "strategy": {"type": "RollingUpdate"},
            "template": {"spec": {"containers": [{"name": "app", "image": "a:2",
                "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
                "tolerations": [{"key": "t", "operator": "Exists"}]}}}});
        drop_removed(&mut after, &before, &planned);
        assert_eq!(
            after,
            json!({"spec": {"replicas": 5, "strategy": {"type": "RollingUpdate"},
                "template": {"spec": {"containers": [{"name": "app", "image": "a:2",
                    "imagePullPolicy": "IfNotPresent", "env": [{"name": "A", "value": "1"}]}]}}}})
        );
    }

    #[test]
    fn server_fields_are_left_out() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "status": {"x": 1},
            "metadata": {"name": "c", "uid": "u", "resourceVersion": "9", "generation": 3,
                         "creationTimestamp": "t", "managedFields": [], "labels": {"a": "b"}},
            "data": {"k": "v"}});
        assert_eq!(
            without_server_fields(v),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn objects_are_named_as_the_diff_names_them() {
        let v = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                       "metadata": {"name": "m"}});
        let id = Identity::of(&v, 0).unwrap();
        assert_eq!(id.key("trader"), "ServiceMonitor trader/m");
        let gvk = id.gvk();
        assert_eq!(
            (gvk.group.as_str(), gvk.version.as_str()),
            ("monitoring.coreos.com", "v1")
        );
        assert!(matches!(
            Identity::of(&json!({"kind": "X"}), 4),
            Err(LiveError::Malformed {
                index: 4,
                field: "apiVersion"
            })
        ));
    }
}
