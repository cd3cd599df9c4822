//! The `ExecCredential` a plugin prints: its `apiVersion` as the Kubernetes client asked for it
//! (`KUBERNETES_EXEC_INFO`), the expiry as the AWS tools write it, and the two layouts (the AWS
//! CLI's indented JSON, the Go plugins' compact JSON).

use std::time::SystemTime;

use serde::Serialize;

use crate::env::{Env, vars};

const V1: &str = "client.authentication.k8s.io/v1";
const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
const V1ALPHA1: &str = "client.authentication.k8s.io/v1alpha1";

/// The answer's `apiVersion`: the one `KUBERNETES_EXEC_INFO` asks for when it is one a plugin
/// speaks, else v1beta1 (what `aws eks get-token` falls back to; awscli
/// `customizations/eks/get_token.py`, `discover_api_version`). A note for stderr comes with a
/// fallback or the deprecated v1alpha1.
pub(super) fn api_version(env: &Env) -> (&'static str, Option<&'static str>) {
    let Some(raw) = env.get(vars::KUBERNETES_EXEC_INFO) else {
        return (V1BETA1, None);
    };
    let asked = serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| {
            v.get("apiVersion")
                .and_then(|a| a.as_str())
                .map(str::to_string)
        });
    match asked.as_deref() {
        Some(V1) => (V1, None),
        Some(V1BETA1) => (V1BETA1, None),
        Some(V1ALPHA1) => (
            V1ALPHA1,
            Some("the kubeconfig asks for the deprecated client.authentication.k8s.io/v1alpha1"),
        ),
        _ => (
            V1BETA1,
            Some("KUBERNETES_EXEC_INFO names no known apiVersion; answering v1beta1"),
        ),
    }
}

/// `now` plus `minutes`, whole seconds, as the AWS CLI writes it (`%Y-%m-%dT%H:%M:%SZ`, UTC).
pub(super) fn expiry(now: SystemTime, minutes: i64) -> Option<String> {
    let at = jiff::Timestamp::try_from(now)
        .ok()?
        .checked_add(jiff::SignedDuration::from_mins(minutes))
        .ok()?;
    Some(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[derive(Serialize)]
struct ExecCredential<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    spec: serde_json::Map<String, serde_json::Value>,
    status: Status<'a>,
}

#[derive(Serialize)]
struct Status<'a> {
    #[serde(rename = "expirationTimestamp")]
    expiration_timestamp: &'a str,
    token: &'a str,
}

/// How the plugin lays its JSON out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// The AWS CLI's: Python's `json.dump(indent=4)`, a line break, then an empty line.
    AwsCli,
    /// Go's `json.Marshal` and one line break (aws-iam-authenticator).
    Compact,
}

/// The `ExecCredential` document, laid out as the plugin prints it.
pub(super) fn render(api_version: &str, expiration: &str, token: &str, layout: Layout) -> String {
    let doc = ExecCredential {
        kind: "ExecCredential",
        api_version,
        spec: serde_json::Map::new(),
        status: Status {
            expiration_timestamp: expiration,
            token,
        },
    };
    match layout {
        Layout::AwsCli => {
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            doc.serialize(&mut ser).expect("strings serialize");
            let mut s = String::from_utf8(out).expect("serde_json writes UTF-8");
            s.push_str("\n\n");
            s
        }
        Layout::Compact => {
            let mut s = serde_json::to_string(&doc).expect("strings serialize");
            s.push('\n');
            s
        }
    }
}

/// The compact ExecCredential of a bearer token that expires at `expiry` (Unix seconds), in the
/// apiVersion the client asked for (a note on stderr when it asked for none we know).
pub(super) fn bearer_until(
    env: &Env,
    plugin: &'static str,
    expiry: i64,
    token: &str,
) -> Result<String, super::KubeTokenError> {
    let expiration = jiff::Timestamp::from_second(expiry)
        .map_err(|_| super::KubeTokenError::Clock { plugin })?
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (api_version, note) = api_version(env);
    if let Some(note) = note {
        eprintln!("kube-token: {note}");
    }
    Ok(render(api_version, &expiration, token, Layout::Compact))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_api_version_follows_the_clients_exec_info() {
        let env = |v: &str| Env::from_pairs([(vars::KUBERNETES_EXEC_INFO, v)]);
        assert_eq!(api_version(&Env::default()), (V1BETA1, None));
        let v1 = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#;
        assert_eq!(api_version(&env(v1)), (V1, None));
        assert_eq!(api_version(&env("{not json")).0, V1BETA1);
        assert!(api_version(&env("{not json")).1.is_some());
        assert_eq!(
            api_version(&env(r#"{"apiVersion":"client.authentication.k8s.io/v9"}"#)).0,
            V1BETA1
        );
        assert_eq!(
            api_version(&env(
                r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#
            ))
            .0,
            V1ALPHA1
        );
    }

    #[test]
    fn expiry_is_whole_seconds_in_utc() {
        // 2026-03-04T05:06:07.999Z
        let now = UNIX_EPOCH + Duration::from_millis(1_772_600_767_999);
        assert_eq!(expiry(now, 14).as_deref(), Some("2026-03-04T05:20:07Z"));
        assert_eq!(
            expiry(UNIX_EPOCH, 0).as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn layouts() {
        assert_eq!(
            render(
                V1BETA1,
                "2026-03-04T05:20:07Z",
                "k8s-aws-v1.x",
                Layout::AwsCli
            ),
            "{\n    \"kind\": \"ExecCredential\",\n    \"apiVersion\": \
             \"client.authentication.k8s.io/v1beta1\",\n    \"spec\": {},\n    \"status\": {\n        \
             \"expirationTimestamp\": \"2026-03-04T05:20:07Z\",\n        \"token\": \
             \"k8s-aws-v1.x\"\n    }\n}\n\n"
        );
        assert_eq!(
            render(V1, "2026-03-04T05:20:07Z", "t", Layout::Compact),
            "{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1\",\
             \"spec\":{},\"status\":{\"expirationTimestamp\":\"2026-03-04T05:20:07Z\",\"token\":\"t\"}}\n"
        );
    }
}
