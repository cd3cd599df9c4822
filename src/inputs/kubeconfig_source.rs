//! Where the run's kubeconfig comes from (the `kubeconfig` input's content, the
//! `kubeconfig_path` file, or the files `KUBECONFIG` names, mapped onto a docker action's mounts)
//! and the `context` to use, checked against it.

use std::path::{Path, PathBuf};

use super::kubeconfig::{Kubeconfig, parse_kubeconfig};
use super::mounts::{self, Mapped, View};
use super::raw::RawInputs;
use super::{InputError, bad};
use crate::context::RunContext;
use crate::manifest::Yaml;

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

    /// The kubeconfig documents, in merge order (none for `Default`: read when connecting).
    pub(super) fn documents(&self) -> Vec<Yaml> {
        let docs: Vec<&Kubeconfig> = match self {
            KubeconfigSource::Inline(k) => vec![k],
            KubeconfigSource::Files(files) => files.iter().map(|(_, k)| k).collect(),
            KubeconfigSource::Default => Vec::new(),
        };
        docs.into_iter()
            .filter_map(|k| crate::manifest::parse::<Yaml>(k.yaml.expose()).ok())
            .collect()
    }

    /// The context names the kubeconfigs define, in order, and the current-context (the first
    /// one set wins, as kubectl merges), when the source is known before connecting.
    fn contexts(&self) -> Option<(Vec<String>, Option<String>)> {
        if matches!(self, KubeconfigSource::Default) {
            return None;
        }
        let mut names = Vec::new();
        let mut current = None;
        for doc in self.documents() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
