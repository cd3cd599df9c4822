//! `mode: plan`'s diff: the live objects against what the upgrade would make of them, object by
//! object, with Secret data redacted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::manifest::{self, Yaml as Value};

/// One object of a manifest: `Kind namespace/name` → its YAML (redacted).
pub(crate) type Objects = BTreeMap<String, String>;

/// The difference between two manifests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ManifestDiff {
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
    /// Object key and its unified diff.
    pub(crate) changed: Vec<(String, String)>,
    pub(crate) unchanged: usize,
    /// Object key and the fields edited by hand on the live object (not by helm or the
    /// cluster's controllers).
    pub(crate) drift: Vec<(String, Vec<String>)>,
}

impl ManifestDiff {
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn key_of(doc: &Value, default_namespace: &str) -> Option<String> {
    let kind = doc.get("kind")?.as_str()?;
    let meta = doc.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_namespace);
    Some(format!("{kind} {ns}/{name}"))
}

/// Splits a multi-document manifest into objects. Secret values become `(redacted)`; a value
/// that differs from `previous`'s same key becomes `(redacted, changed)`, so a diff still shows
/// that a secret changed without showing it.
pub(crate) fn objects(manifest: &str, default_namespace: &str, previous: Option<&str>) -> Objects {
    let previous_secrets = previous.map(|p| secret_values(p, default_namespace));
    let mut out = Objects::new();
    for mut v in manifest::documents(manifest) {
        let Some(key) = key_of(&v, default_namespace) else {
            continue;
        };
        if v.get("kind").and_then(Value::as_str) == Some("Secret") {
            let before = previous_secrets.as_ref().and_then(|p| p.get(&key));
            redact_secret(&mut v, before);
        }
        let text = v.to_text();
        out.insert(key, text);
    }
    out
}

/// Every Secret's `data`/`stringData` values, by object key then `field.name`.
fn secret_values(
    manifest: &str,
    default_namespace: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for v in manifest::documents(manifest) {
        if v.get("kind").and_then(Value::as_str) != Some("Secret") {
            continue;
        }
        let Some(key) = key_of(&v, default_namespace) else {
            continue;
        };
        let mut values = BTreeMap::new();
        for field in ["data", "stringData"] {
            if let Some(Value::Mapping(m)) = v.get(field) {
                for (k, val) in m {
                    let val = val.to_text();
                    values.insert(format!("{field}.{k}"), val);
                }
            }
        }
        out.insert(key, values);
    }
    out
}

fn redact_secret(v: &mut Value, before: Option<&BTreeMap<String, String>>) {
    for field in ["data", "stringData"] {
        let Some(Value::Mapping(m)) = v.get_mut(field) else {
            continue;
        };
        for (k, val) in m.iter_mut() {
            let name = format!("{field}.{k}");
            let changed = match before {
                None => false,
                Some(b) => b.get(&name) != Some(&val.to_text()),
            };
            *val = Value::String(if changed {
                "(redacted, changed)".into()
            } else {
                "(redacted)".into()
            });
        }
    }
}

/// Diffs the live manifest against the planned one.
pub(crate) fn diff(live: &str, planned: &str, default_namespace: &str) -> ManifestDiff {
    let old = objects(live, default_namespace, None);
    let new = objects(planned, default_namespace, Some(live));
    let mut d = ManifestDiff::default();
    for (k, new_text) in &new {
        match old.get(k) {
            None => d.added.push(k.clone()),
            Some(old_text) if old_text == new_text => d.unchanged += 1,
            Some(old_text) => {
                let text = similar::TextDiff::from_lines(old_text, new_text)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("live {k}"), &format!("planned {k}"))
                    .to_string();
                d.changed.push((k.clone(), text));
            }
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            d.removed.push(k.clone());
        }
    }
    d
}

/// The diff as plain text for the log.
pub(crate) fn render_text(d: &ManifestDiff) -> String {
    let mut s = String::new();
    for (k, fields) in &d.drift {
        let _ = writeln!(s, "drift: {k} edited by hand: {}", fields.join(", "));
    }
    if d.is_empty() {
        let _ = writeln!(
            s,
            "No changes: what would be applied matches the live objects ({} objects).",
            d.unchanged
        );
        return s;
    }
    let _ = writeln!(
        s,
        "{} changed, {} added, {} removed, {} unchanged",
        d.changed.len(),
        d.added.len(),
        d.removed.len(),
        d.unchanged
    );
    for k in &d.added {
        let _ = writeln!(s, "+ {k} (new)");
    }
    for k in &d.removed {
        let _ = writeln!(s, "- {k} (removed)");
    }
    for (_, text) in &d.changed {
        s.push_str(text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = r#"---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-orch
spec:
  template:
    spec:
      containers:
      - name: orch
        image: "reg/acme/python-orch:v1.0.0"
---
apiVersion: v1
kind: Secret
metadata:
  name: app-creds
data:
  password: aHVudGVyMg==
  user: YWRtaW4=
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: old
"#;

    const PLANNED: &str = r#"---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-orch
spec:
  template:
    spec:
      containers:
      - name: orch
        image: "reg/acme/python-orch:v1.2.0"
---
apiVersion: v1
kind: Secret
metadata:
  name: app-creds
data:
  password: c2VjcmV0Mw==
  user: YWRtaW4=
---
apiVersion: v1
kind: Service
metadata:
  name: app-orch
"#;

    #[test]
    fn diff_shows_the_image_change_and_hides_secret_values() {
        let d = diff(LIVE, PLANNED, "trader");
        assert_eq!(d.added, ["Service trader/app-orch"]);
        assert_eq!(d.removed, ["ConfigMap trader/old"]);
        let keys: Vec<&str> = d.changed.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            keys,
            ["Deployment trader/app-orch", "Secret trader/app-creds"]
        );
        let dep = &d.changed[0].1;
        assert!(
            dep.contains("-        image: reg/acme/python-orch:v1.0.0"),
            "{dep}"
        );
        assert!(
            dep.contains("+        image: reg/acme/python-orch:v1.2.0"),
            "{dep}"
        );
        let secret = &d.changed[1].1;
        assert!(
            secret.contains("+  password: (redacted, changed)"),
            "{secret}"
        );
        assert!(!secret.contains("aHVudGVyMg") && !secret.contains("c2VjcmV0Mw"));
        let all = render_text(&d);
        assert!(
            !all.contains("aHVudGVyMg") && !all.contains("c2VjcmV0Mw") && !all.contains("YWRtaW4")
        );
    }

    #[test]
    fn identical_manifests_have_no_diff() {
        let d = diff(LIVE, LIVE, "trader");
        assert!(d.is_empty());
        assert_eq!(d.unchanged, 3);
        assert!(render_text(&d).starts_with("No changes"));
        let drifted = ManifestDiff {
            drift: vec![(
                "Deployment t/a".into(),
                vec!["spec.replicas by kubectl".into()],
            )],
            ..d
        };
        assert!(render_text(&drifted).starts_with(
            "drift: Deployment t/a edited by hand: spec.replicas by kubectl\nNo changes"
        ));
    }
}
