//! The one redaction point: the secret values this run knows (masked inputs, kubeconfig
//! credentials) and the redaction every outbound text passes through: the log and its
//! annotations, the job summary, the step outputs, the webhook body and every GitHub request body.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The secrets of this run, shared by everything that sends text out (cloning shares the set).
#[derive(Clone, Default)]
pub struct Redactor {
    masks: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(***)")
    }
}

/// Credentials minted during the run, in any text: an EKS token, a presigned URL's signature or
/// security token, a Google access token (`ya29.`), a JWT (Entra ID's tokens, GitHub's OIDC
/// token, an assertion: `eyJ` is `{"` in base64url) (the part before the value is kept: `$1`).
fn minted() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"(k8s-aws-v1\.|X-Amz-(?:Signature|Security-Token|Credential)=|ya29\.)[A-Za-z0-9_%+/=.-]+|eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
        )
        .expect("a valid pattern")
    })
}

/// Secrets shorter than this are not masked (GitHub's runner ignores them too; they would
/// blank out ordinary words).
const MIN_LEN: usize = 4;

impl Redactor {
    /// Remembers a secret; true when it is new (and long enough to be one).
    pub(crate) fn add(&self, secret: &str) -> bool {
        let secret = secret.trim();
        if secret.len() < MIN_LEN {
            return false;
        }
        let mut masks = self.masks.lock().unwrap_or_else(|e| e.into_inner());
        if masks.iter().any(|m| m == secret) {
            return false;
        }
        masks.push(secret.to_string());
        // Longest first, so a secret containing another is replaced whole.
        masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
        true
    }

    /// `text` with every known secret replaced by `***`, and every credential no one could
    /// register beforehand: the short-lived tokens `kube-token` mints for helm and the watch
    /// (`k8s-aws-v1.…`) and a presigned URL's signature and security token.
    pub(crate) fn text(&self, text: &str) -> String {
        let masks = self.masks.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for m in masks.iter() {
            if out.contains(m.as_str()) {
                out = out.replace(m.as_str(), "***");
            }
        }
        if ["k8s-aws-v1.", "X-Amz-", "ya29.", "eyJ"]
            .iter()
            .any(|m| out.contains(m))
        {
            out = minted().replace_all(&out, "${1}***").into_owned();
        }
        out
    }

    /// A JSON document with every string in it (object keys included) redacted.
    pub(crate) fn json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (self.text(k), self.json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_and_json_lose_every_secret() {
        let r = Redactor::default();
        assert!(r.add("canary-0123"));
        assert!(!r.add("canary-0123"), "known already");
        assert!(!r.add("abc"), "too short to be a secret");
        assert!(r.add("canary-0123-longer"));
        assert_eq!(r.text("a canary-0123-longer b canary-0123"), "a *** b ***");
        let doc = json!({
            "error": "helm: password canary-0123 rejected",
            "n": 3,
            "list": ["x", {"canary-0123": "canary-0123-longer"}],
        });
        let out = r.json(&doc);
        assert!(!out.to_string().contains("canary"), "{out}");
        assert_eq!(out["error"], "helm: password *** rejected");
        assert_eq!(out["n"], 3);
        assert_eq!(out["list"][1]["***"], "***");
    }

    #[test]
    fn minted_tokens_and_presigned_urls_are_redacted_unregistered() {
        let r = Redactor::default();
        assert_eq!(
            r.text("Authorization: Bearer k8s-aws-v1.aHR0cHM6Ly9zdHMu_-x and more"),
            "Authorization: Bearer k8s-aws-v1.*** and more"
        );
        assert_eq!(
            r.text("https://sts.amazonaws.com/?X-Amz-Credential=AKID%2F2026&X-Amz-Security-Token=Fwo%2B%3D&X-Amz-Signature=ab12"),
            "https://sts.amazonaws.com/?X-Amz-Credential=***&X-Amz-Security-Token=***&X-Amz-Signature=***"
        );
        assert_eq!(r.text("no token here"), "no token here");
        assert_eq!(
            r.text("token ya29.standin.eyJzdWIi.abc_-x, jwt eyJhbGciOi.eyJhdWQiOi.sig-_1 end"),
            "token ya29.***, jwt *** end"
        );
        assert_eq!(r.text("eyJ alone"), "eyJ alone");
    }

    #[test]
    fn clones_share_the_set() {
        let r = Redactor::default();
        let later = r.clone();
        r.add("secret-value");
        assert_eq!(later.text("x secret-value"), "x ***");
    }
}
