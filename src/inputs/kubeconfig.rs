//! The `kubeconfig` input: a kubeconfig given raw or as base64, decoded, with every credential
//! inside it found so the log can mask each one.

use base64::Engine as _;

use super::{InputError, bad};
use crate::manifest::Yaml;
use crate::secret::{Secret, secret_fragments};

/// A kubeconfig from the `kubeconfig` input, decoded, with every credential it holds.
#[derive(Debug, Clone)]
pub(crate) struct Kubeconfig {
    pub(crate) yaml: Secret,
    /// The input as given, when it was base64.
    pub(crate) encoded: Option<Secret>,
    /// Credentials found inside (tokens, keys, passwords), for masking.
    pub(crate) credentials: Vec<Secret>,
}

impl Kubeconfig {
    /// What the log must never show: the base64 form and every credential inside. The YAML's
    /// structure (`apiVersion: v1`, server URLs) is not secret, and masking its lines would
    /// blank those strings out of every log line.
    pub(crate) fn masks(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = &self.encoded {
            out.extend(secret_fragments(e.expose()));
        }
        for c in &self.credentials {
            out.extend(secret_fragments(c.expose()));
        }
        out
    }
}

/// A kubeconfig given raw or as base64. The error never shows the value: it is a secret.
pub(super) fn parse_kubeconfig(value: &str) -> Result<Kubeconfig, InputError> {
    let as_yaml = |text: &str| -> Option<Yaml> {
        let doc: Yaml = crate::manifest::parse(text).ok()?;
        doc.get("clusters")?;
        Some(doc)
    };
    let (text, doc, encoded) = match as_yaml(value) {
        Some(doc) => (value.to_string(), doc, None),
        None => {
            let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|t| Some((t, as_yaml(t)?))) {
                Some((t, doc)) => (t.to_string(), doc, Some(Secret::new(value.trim()))),
                None => {
                    return Err(bad(
                        "kubeconfig",
                        "is neither a kubeconfig (YAML with `clusters`) nor base64 of one (value not shown: it is a secret)",
                    ));
                }
            }
        }
    };
    let mut credentials = Vec::new();
    collect_credentials(&doc, &mut credentials);
    Ok(Kubeconfig {
        yaml: Secret::new(text),
        encoded,
        credentials: credentials.into_iter().map(Secret::new).collect(),
    })
}

/// Collects the values of credential-bearing keys anywhere in a kubeconfig document.
fn collect_credentials(v: &Yaml, out: &mut Vec<String>) {
    const KEYS: &[&str] = &[
        "token",
        "password",
        "client-key-data",
        "client-certificate-data",
        "id-token",
        "refresh-token",
        "access-token",
        "client-secret",
    ];
    match v {
        Yaml::Mapping(m) => {
            for (k, val) in m {
                if let Some(s) = val.as_str()
                    && KEYS.contains(&k.as_str())
                    && !s.is_empty()
                {
                    out.push(s.to_string());
                    if k.ends_with("-data")
                        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s)
                        && let Ok(pem) = String::from_utf8(bytes)
                    {
                        out.extend(
                            pem.lines()
                                .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                                .map(str::to_string),
                        );
                    }
                }
                collect_credentials(val, out);
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|x| collect_credentials(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::RawInputs;

    #[test]
    fn kubeconfig_raw_and_base64_and_credentials() {
        let yaml = "apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:6443}\nusers:\n- name: u\n  user:\n    token: s3cr3t-token-value\n";
        let k = parse_kubeconfig(yaml).unwrap();
        assert_eq!(k.yaml.expose(), yaml);
        assert_eq!(k.credentials[0].expose(), "s3cr3t-token-value");
        let b64 = base64::engine::general_purpose::STANDARD.encode(yaml);
        let k = parse_kubeconfig(&b64).unwrap();
        assert_eq!(k.yaml.expose(), yaml);
        assert_eq!(k.masks(), [b64.clone(), "s3cr3t-token-value".to_string()]);
        // Structure lines are not secrets.
        let raw = RawInputs::from_pairs([("kubeconfig", yaml.to_string())]);
        assert_eq!(raw.secret_values(), ["s3cr3t-token-value"]);
        let raw = RawInputs::from_pairs([("kubeconfig", "garbage\nsecret-line-1234".to_string())]);
        assert!(
            raw.secret_values()
                .contains(&"secret-line-1234".to_string())
        );
        let e = parse_kubeconfig("not: [a kubeconfig").unwrap_err();
        assert_eq!(e.input, "kubeconfig");
        assert!(!e.to_string().contains("not: [a"));
    }

    use proptest::prelude::*;

    /// Kubeconfig-shaped YAML: clusters, and users whose credentials sit at any depth and under
    /// any of the credential keys (token, exec env, auth-provider config, client certs).
    fn kubeconfig_shape() -> impl Strategy<Value = (String, Vec<String>)> {
        let user = prop_oneof![
            "[A-Za-z0-9]{12,24}".prop_map(|t| (format!("    token: {t}\n"), vec![t])),
            ("[a-z]{3,8}", "[A-Za-z0-9]{12,24}").prop_map(|(u, p)| (
                format!("    username: {u}\n    password: {p}\n"),
                vec![p]
            )),
            "[A-Za-z0-9]{12,24}".prop_map(|t| (
                format!("    auth-provider:\n      name: oidc\n      config:\n        id-token: {t}\n        refresh-token: r{t}\n"),
                vec![t.clone(), format!("r{t}")]
            )),
            Just((
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n      interactiveMode: Never\n".to_string(),
                vec![]
            )),
        ];
        prop::collection::vec(user, 0..4).prop_map(|users| {
            let mut yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:6443}\nusers:\n".to_string();
            let mut secrets = Vec::new();
            for (i, (u, s)) in users.into_iter().enumerate() {
                yaml.push_str(&format!("- name: u{i}\n  user:\n{u}"));
                secrets.extend(s);
            }
            (yaml, secrets)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text: no panic, and an error never shows the value.
        #[test]
        fn never_panics_nor_shows_the_value(text in "\\PC{0,120}") {
            if let Err(e) = parse_kubeconfig(&text) {
                prop_assert_eq!(e.input, "kubeconfig");
                prop_assert!(e.message.ends_with("(value not shown: it is a secret)"));
            }
        }

        /// Every shape reads back raw and as base64, the same YAML, every credential masked.
        #[test]
        fn shapes_round_trip((yaml, secrets) in kubeconfig_shape()) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&yaml);
            for given in [yaml.clone(), b64.clone(), format!("{b64}\n")] {
                let k = parse_kubeconfig(&given).unwrap();
                prop_assert_eq!(k.yaml.expose(), yaml.as_str());
                let masks = k.masks();
                for s in &secrets {
                    prop_assert!(masks.contains(s), "{} not masked", s);
                }
            }
        }
    }
}
