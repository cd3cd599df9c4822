//! Where the cluster's kubeconfig comes from (the `kubeconfig` input's content, the
//! `kubeconfig_path` file, or the files `KUBECONFIG` names) and the `context` to use, each
//! kubeconfig decoded with every credential inside it found so the log can mask each one:
//! credential keys anywhere, and under each `users[].user` every string but the few known to be
//! public (docs/security.md).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::mounts::{self, Mapped, View};
use super::raw::RawInputs;
use super::{InputError, bad};
use crate::context::RunContext;
use crate::manifest::Yaml;
use crate::secret::{Secret, secret_fragments};

/// The kubeconfig a run connects with.
#[derive(Debug, Clone)]
pub(crate) enum KubeconfigSource {
    /// The `kubeconfig` input's content.
    Inline(Kubeconfig),
    /// Files (the `kubeconfig_path` input, or the `KUBECONFIG` list), merged in order by
    /// kubectl's rules: the first file to set a value wins.
    Files(Vec<(PathBuf, Kubeconfig)>),
    /// None given: inferred as kubectl would (`~/.kube/config`, or in-cluster).
    Default,
}

impl KubeconfigSource {
    /// What the log must never show, from every kubeconfig this source holds.
    pub(crate) fn masks(&self) -> Vec<String> {
        match self {
            KubeconfigSource::Inline(k) => k.masks(),
            KubeconfigSource::Files(files) => files.iter().flat_map(|(_, k)| k.masks()).collect(),
            KubeconfigSource::Default => Vec::new(),
        }
    }

    /// The context names the kubeconfigs define, in order, and the current-context (the first
    /// one set wins, as kubectl merges), when the source is known before connecting.
    fn contexts(&self) -> Option<(Vec<String>, Option<String>)> {
        let docs: Vec<&Kubeconfig> = match self {
            KubeconfigSource::Inline(k) => vec![k],
            KubeconfigSource::Files(files) => files.iter().map(|(_, k)| k).collect(),
            KubeconfigSource::Default => return None,
        };
        let mut names = Vec::new();
        let mut current = None;
        for k in docs {
            let Ok(doc) = crate::manifest::parse::<Yaml>(k.yaml.expose()) else {
                continue;
            };
            if let Some(list) = doc.get("contexts").and_then(|c| c.as_sequence()) {
                for c in list {
                    if let Some(n) = c.get("name").and_then(|n| n.as_str())
                        && !names.iter().any(|x| x == n)
                    {
                        names.push(n.to_string());
                    }
                }
            }
            if current.is_none() {
                current = doc
                    .get("current-context")
                    .and_then(|c| c.as_str())
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
            }
        }
        Some((names, current))
    }
}

/// Finds the run's kubeconfig: the `kubeconfig` input, else `kubeconfig_path`, else (for the
/// modes that reach a cluster) the `KUBECONFIG` files. Inside GitHub's docker action container
/// a host path is mapped onto the mounts, and one the container cannot see is refused with why.
pub(super) fn resolve_kubeconfig(
    raw: &RawInputs,
    ctx: &RunContext,
    needs_cluster: bool,
) -> Result<KubeconfigSource, InputError> {
    let view = view(ctx);
    let source = match (raw.get("kubeconfig"), raw.get("kubeconfig_path")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "kubeconfig_path",
                "give the kubeconfig either as content (`kubeconfig`) or as a file \
                 (`kubeconfig_path`), not both",
            ));
        }
        (Some(content), None) => KubeconfigSource::Inline(parse_kubeconfig(content)?),
        (None, Some(path)) => KubeconfigSource::Files(vec![read_file(
            "kubeconfig_path",
            "",
            path.trim(),
            &view,
            &ctx.workspace,
        )?]),
        (None, None) => match ctx.kubeconfig_env.as_deref() {
            Some(list) if needs_cluster => {
                let mut files = Vec::new();
                for entry in list.split(':').map(str::trim).filter(|e| !e.is_empty()) {
                    files.push(read_file(
                        "kubeconfig",
                        "not given, and the KUBECONFIG file ",
                        entry,
                        &view,
                        &ctx.workspace,
                    )?);
                }
                if files.is_empty() {
                    KubeconfigSource::Default
                } else {
                    KubeconfigSource::Files(files)
                }
            }
            _ => KubeconfigSource::Default,
        },
    };
    Ok(source)
}

/// The `context` input, checked against the contexts the kubeconfig defines when it is known.
pub(super) fn resolve_context(
    raw: &RawInputs,
    source: &KubeconfigSource,
) -> Result<Option<String>, InputError> {
    let Some(context) = raw.get("context").map(str::trim) else {
        return Ok(None);
    };
    if let Some((names, _)) = source.contexts()
        && !names.iter().any(|n| n == context)
    {
        let have = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(bad(
            "context",
            format!("the kubeconfig has no context {context:?} (it has: {have})"),
        ));
    }
    Ok(Some(context.to_string()))
}

/// How this run sees the runner's disk: inside GitHub's docker action container the workspace
/// is `/github/workspace`; its host path is `$RUNNER_WORKSPACE/<repository name>`.
fn view(ctx: &RunContext) -> View {
    if !(ctx.in_actions && ctx.workspace == Path::new(mounts::WORKSPACE)) {
        return View::Host;
    }
    let repo_name = ctx.repository.as_deref().and_then(|r| r.split('/').nth(1));
    View::Container {
        host_workspace: match (&ctx.runner_workspace, repo_name) {
            (Some(parent), Some(name)) => Some(parent.join(name)),
            _ => None,
        },
    }
}

/// Reads one kubeconfig file named by `input` (`what` prefixes the path in messages).
fn read_file(
    input: &'static str,
    what: &str,
    path: &str,
    view: &View,
    workspace: &Path,
) -> Result<(PathBuf, Kubeconfig), InputError> {
    let file = match view.map(path, workspace) {
        Mapped::Outside(p) => {
            return Err(bad(input, format!("{what}{}", mounts::outside_message(&p))));
        }
        Mapped::Visible(p) => p,
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        bad(
            input,
            format!("{what}{path}: failed to read {}: {e}", file.display()),
        )
    })?;
    let k = parse_kubeconfig(&text).map_err(|_| {
        bad(
            input,
            format!(
                "{what}{path}: {} is not a kubeconfig (YAML with `clusters`; content not shown: it is a secret)",
                file.display()
            ),
        )
    })?;
    Ok((file, k))
}

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

    const KC: &str = "apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:6443}\ncontexts:\n- name: one\n  context: {cluster: c, user: u}\n- name: two\n  context: {cluster: c, user: u}\ncurrent-context: one\nusers:\n- name: u\n  user:\n    token: file-token-0123456789\n";

    /// A workspace with `kc.yaml`, seen as GitHub's docker action sees it when `container`.
    fn setup(container: bool) -> (tempfile::TempDir, RunContext) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kc.yaml"), KC).unwrap();
        let ctx = RunContext {
            in_actions: container,
            workspace: dir.path().to_path_buf(),
            repository: Some("acme/trader".into()),
            ..RunContext::default()
        };
        (dir, ctx)
    }

    fn raw(pairs: &[(&'static str, &str)]) -> RawInputs {
        RawInputs::from_pairs(pairs.iter().map(|(k, v)| (*k, v.to_string())))
    }

    fn files(s: &KubeconfigSource) -> Vec<PathBuf> {
        match s {
            KubeconfigSource::Files(f) => f.iter().map(|(p, _)| p.clone()).collect(),
            other => panic!("not files: {other:?}"),
        }
    }

    #[test]
    fn kubeconfig_path_is_read_in_the_workspace_and_its_credentials_masked() {
        let (dir, ctx) = setup(false);
        let src = resolve_kubeconfig(&raw(&[("kubeconfig_path", "kc.yaml")]), &ctx, true).unwrap();
        assert_eq!(files(&src), [dir.path().join("kc.yaml")]);
        assert_eq!(src.masks(), ["file-token-0123456789"]);
        let e =
            resolve_kubeconfig(&raw(&[("kubeconfig_path", "nope.yaml")]), &ctx, true).unwrap_err();
        assert_eq!(e.input, "kubeconfig_path");
        assert!(e.message.contains("nope.yaml") && e.message.contains("failed to read"));
        std::fs::write(dir.path().join("bad.yaml"), "token: leaked-0123456789\n").unwrap();
        let e =
            resolve_kubeconfig(&raw(&[("kubeconfig_path", "bad.yaml")]), &ctx, true).unwrap_err();
        assert!(e.message.contains("is not a kubeconfig"), "{e}");
        assert!(!e.to_string().contains("leaked"), "{e}");
        let e = resolve_kubeconfig(
            &raw(&[("kubeconfig_path", "kc.yaml"), ("kubeconfig", KC)]),
            &ctx,
            true,
        )
        .unwrap_err();
        assert_eq!(e.input, "kubeconfig_path");
    }

    #[test]
    fn kubeconfig_env_is_a_path_list_read_only_by_the_modes_that_reach_a_cluster() {
        let (dir, mut ctx) = setup(false);
        std::fs::write(dir.path().join("b.yaml"), KC).unwrap();
        let list = format!("{}::{}", dir.path().join("kc.yaml").display(), "b.yaml");
        ctx.kubeconfig_env = Some(list);
        let src = resolve_kubeconfig(&raw(&[]), &ctx, true).unwrap();
        assert_eq!(
            files(&src),
            [dir.path().join("kc.yaml"), dir.path().join("b.yaml")]
        );
        assert!(matches!(
            resolve_kubeconfig(&raw(&[]), &ctx, false).unwrap(),
            KubeconfigSource::Default
        ));
        // The input wins over the variable.
        let src = resolve_kubeconfig(&raw(&[("kubeconfig", KC)]), &ctx, true).unwrap();
        assert!(matches!(src, KubeconfigSource::Inline(_)));
        ctx.kubeconfig_env = None;
        assert!(matches!(
            resolve_kubeconfig(&raw(&[]), &ctx, true).unwrap(),
            KubeconfigSource::Default
        ));
    }

    #[test]
    fn in_the_container_host_workspace_paths_map_and_runner_temp_is_refused() {
        // The real mounts cannot be made here: the view is what is tested, with the workspace
        // standing in for /github/workspace by the runner's own rule (a host path under
        // RUNNER_WORKSPACE/<repo> maps to the workspace).
        let ctx = RunContext {
            in_actions: true,
            workspace: "/github/workspace".into(),
            repository: Some("acme/trader".into()),
            runner_workspace: Some("/home/runner/work/trader".into()),
            kubeconfig_env: Some("/home/runner/work/_temp/kubeconfig_1764.yaml".into()),
            ..RunContext::default()
        };
        let e = resolve_kubeconfig(&raw(&[]), &ctx, true).unwrap_err();
        assert_eq!(e.input, "kubeconfig");
        let line = e.to_string();
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with("input `kubeconfig`: not given, and the KUBECONFIG file /home/runner/work/_temp/kubeconfig_1764.yaml is not visible inside the action's container"),
            "{line}"
        );
        let e = resolve_kubeconfig(
            &raw(&[("kubeconfig_path", "/home/runner/work/_temp/kc")]),
            &ctx,
            true,
        )
        .unwrap_err();
        assert_eq!(e.input, "kubeconfig_path");
        assert_eq!(
            view(&ctx),
            View::Container {
                host_workspace: Some("/home/runner/work/trader/trader".into())
            }
        );
        let host = RunContext {
            in_actions: true,
            workspace: "/home/runner/work/trader/trader".into(),
            ..RunContext::default()
        };
        assert_eq!(view(&host), View::Host);
    }

    #[test]
    fn context_must_be_one_the_kubeconfig_has() {
        let (_dir, ctx) = setup(false);
        let src = resolve_kubeconfig(&raw(&[("kubeconfig_path", "kc.yaml")]), &ctx, true).unwrap();
        assert_eq!(
            resolve_context(&raw(&[("context", "two")]), &src).unwrap(),
            Some("two".into())
        );
        assert_eq!(resolve_context(&raw(&[]), &src).unwrap(), None);
        let e = resolve_context(&raw(&[("context", "three")]), &src).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `context`: the kubeconfig has no context \"three\" (it has: one, two)"
        );
        // Unknown until connecting: checked then (kube_client).
        assert_eq!(
            resolve_context(&raw(&[("context", "x")]), &KubeconfigSource::Default).unwrap(),
            Some("x".into())
        );
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
