//! The kubeconfig itself: given raw or as base64, decoded, with every credential inside it found
//! so the log can mask each one: credential keys anywhere, and under each `users[].user` every
//! string but the few known to be public (docs/security.md).

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
    for user in doc
        .get("users")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|u| u.get("user"))
    {
        collect_user_strings(user, &mut credentials);
    }
    credentials.sort();
    credentials.dedup();
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

/// Keys under `users[].user` whose values are not secrets: file paths, identities, the exec
/// plugin's command and settings, an env entry's or auth provider's `name`. Everything else
/// there (exec `env` values, auth-provider config, extensions, keys this list does not know) is
/// masked: a credential plugin's settings are where secrets hide.
const PUBLIC_USER_KEYS: &[&str] = &[
    "client-certificate",
    "client-key",
    "tokenFile",
    "username",
    "as",
    "as-uid",
    "as-groups",
    "command",
    "apiVersion",
    "installHint",
    "interactiveMode",
    "provideClusterInfo",
    "name",
    "idp-issuer-url",
    "idp-certificate-authority",
];

/// Every unknown string (and number) under one `users[].user`, for masking.
fn collect_user_strings(v: &Yaml, out: &mut Vec<String>) {
    match v {
        Yaml::Mapping(m) => {
            for (k, val) in m {
                if k == "args" {
                    exec_arg_secrets(val, out);
                } else if !PUBLIC_USER_KEYS.contains(&k.as_str()) {
                    collect_user_strings(val, out);
                }
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|x| collect_user_strings(x, out)),
        Yaml::String(s) if !s.trim().is_empty() => out.push(s.clone()),
        Yaml::Int(n) => out.push(n.to_string()),
        Yaml::UInt(n) => out.push(n.to_string()),
        _ => {}
    }
}

/// The exec plugin's arguments are mostly public words (`eks get-token --cluster-name prod`)
/// that masking would blank out of every log line; what a secret-named flag carries is masked:
/// `--token=VALUE`, `--client-secret VALUE` (a flag naming a token, secret, password, key or
/// credential).
fn exec_arg_secrets(args: &Yaml, out: &mut Vec<String>) {
    let secret_flag = |flag: &str| {
        let f = flag.trim_start_matches('-').to_ascii_lowercase();
        f.len() < flag.len()
            && ["token", "secret", "password", "passwd", "key", "credential"]
                .iter()
                .any(|w| f.contains(w))
    };
    let mut value_of_secret_flag = false;
    for a in args
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
    {
        if value_of_secret_flag && !a.starts_with('-') && !a.is_empty() {
            out.push(a.to_string());
        }
        value_of_secret_flag = false;
        match a.split_once('=') {
            Some((flag, value)) if secret_flag(flag) => {
                if !value.is_empty() {
                    out.push(value.to_string());
                }
            }
            Some(_) => {}
            None => value_of_secret_flag = secret_flag(a),
        }
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

    #[test]
    fn exec_env_values_and_unknown_user_strings_are_credentials() {
        let yaml = r#"apiVersion: v1
clusters:
- name: prod
  cluster: {server: "https://k8s.example:6443"}
users:
- name: deployer
  user:
    client-key: /etc/keys/deployer.key
    username: deployer-bot
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
      args: [eks, get-token, --cluster-name, prod, --token=argtoken-1234, --client-secret, argsecret-5678]
      env:
      - name: AWS_SECRET_ACCESS_KEY
        value: envsecret-abcd
      - name: VAULT_PIN
        value: 98765432
      installHint: install aws
      provideClusterInfo: false
    auth-provider:
      name: oidc
      config:
        idp-issuer-url: https://idp.example
        custom-thing: unknownsecret-efgh
"#;
        let k = parse_kubeconfig(yaml).unwrap();
        let masks = k.masks();
        for secret in [
            "envsecret-abcd",
            "98765432",
            "argtoken-1234",
            "argsecret-5678",
            "unknownsecret-efgh",
        ] {
            assert!(
                masks.contains(&secret.to_string()),
                "{secret} not masked: {masks:?}"
            );
        }
        for public in [
            "deployer",
            "deployer-bot",
            "/etc/keys/deployer.key",
            "aws",
            "eks",
            "get-token",
            "prod",
            "AWS_SECRET_ACCESS_KEY",
            "oidc",
            "https://idp.example",
            "https://k8s.example:6443",
            "client.authentication.k8s.io/v1",
            "install aws",
        ] {
            assert!(
                !masks.contains(&public.to_string()),
                "{public} masked: {masks:?}"
            );
        }
        let raw = RawInputs::from_pairs([("kubeconfig", yaml.to_string())]);
        assert!(raw.secret_values().contains(&"envsecret-abcd".to_string()));
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
