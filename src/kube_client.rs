//! The cluster connection: the run's kubeconfig (input content, or files merged as kubectl
//! merges them) at its chosen context, written 0600 into a private temporary directory (removed
//! when the run ends) for helm, and a kube client built from the same kubeconfig, its exec
//! credential plugins given the environment helm gets, not this process's. An exec plugin that
//! `kube-token` answers (`aws eks get-token`, …) is replaced by this binary's `kube-token`, so
//! helm and the watch both get fresh tokens with no cloud CLI in the image.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::inputs::{Config, KubeconfigSource};

/// A failure to set up the connection to the cluster.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KubeClientError {
    #[error("failed to write the kubeconfig into a temporary directory")]
    Write(#[source] std::io::Error),
    #[error("failed to parse the kubeconfig (its content is not shown: it is a secret)")]
    Parse(#[source] kube::config::KubeconfigError),
    #[error("failed to load the kubeconfig")]
    Load(#[source] kube::config::KubeconfigError),
    #[error(
        "failed to find a kubeconfig: give its content in the `kubeconfig` input, a file in \
         `kubeconfig_path`, or set KUBECONFIG (in a workflow, to a file under $GITHUB_WORKSPACE: \
         a container action cannot see the runner's ~/.kube/config)"
    )]
    Infer(#[source] kube::config::InferConfigError),
    #[error("input `context`: the kubeconfig has no context {context:?} (it has: {have})")]
    UnknownContext { context: String, have: String },
    #[error("failed to write the merged kubeconfig")]
    Serialize(#[source] serde_json::Error),
    #[error("failed to create a Kubernetes client")]
    Client(#[source] kube::Error),
    #[error("failed to find this program's own path, which the kubeconfig's exec plugin runs")]
    OwnPath(#[source] std::io::Error),
    #[error(
        "the cluster refused the token `trader-deploy kube-token` made for the kubeconfig's \
         `{plugin}` (401 Unauthorized): {hint}"
    )]
    TokenRefused {
        plugin: &'static str,
        hint: &'static str,
    },
    #[error(
        "`trader-deploy kube-token` could not make a token for the kubeconfig's `{plugin}`: {why}"
    )]
    TokenFailed { plugin: &'static str, why: String },
}

/// How long the first request with a `kube-token` credential may take.
const TOKEN_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The cluster as this run reaches it: the kube client, and the kubeconfig file helm is given.
pub struct Cluster {
    pub(crate) client: kube::Client,
    /// The kubeconfig file for `helm --kubeconfig`; `None` when helm finds its own default.
    kubeconfig_path: Option<PathBuf>,
    /// Owns the private directory; dropping it removes the kubeconfig.
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Connects with the run's kubeconfig (the `kubeconfig` input, `kubeconfig_path` or the
    /// `KUBECONFIG` files) at the `context` input's context, or infers one as kubectl would.
    /// helm gets the same kubeconfig as one private file whose current-context is that context.
    pub(crate) async fn connect(config: &Config) -> Result<Cluster, KubeClientError> {
        let context = config.kube_context.as_deref();
        let (kubeconfig, text) = match (&config.kubeconfig, context) {
            // As given, byte for byte, when nothing needs changing.
            (KubeconfigSource::Inline(kc), None) => (
                Kubeconfig::from_yaml(kc.yaml.expose()).map_err(KubeClientError::Parse)?,
                Some(kc.yaml.expose().to_string()),
            ),
            (KubeconfigSource::Inline(kc), Some(_)) => (
                Kubeconfig::from_yaml(kc.yaml.expose()).map_err(KubeClientError::Parse)?,
                None,
            ),
            (KubeconfigSource::Files(files), _) => {
                let mut merged = Kubeconfig::default();
                for (path, _) in files {
                    let next = Kubeconfig::read_from(path).map_err(KubeClientError::Load)?;
                    merged = merged.merge(next).map_err(KubeClientError::Load)?;
                }
                (merged, None)
            }
            (KubeconfigSource::Default, Some(_)) => {
                (Kubeconfig::read().map_err(KubeClientError::Load)?, None)
            }
            (KubeconfigSource::Default, None) => {
                // kubectl's default kubeconfig, its exec plugins denied what helm is denied; with
                // none to read (or one that does not load), kube's own inference (in-cluster).
                let custom = match Kubeconfig::read() {
                    Ok(mut kc) => {
                        deny_exec_plugins_our_env(&mut kc, false);
                        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                            .await
                            .ok()
                    }
                    Err(_) => None,
                };
                let cfg = match custom {
                    Some(cfg) => cfg,
                    None => kube::Config::infer()
                        .await
                        .map_err(KubeClientError::Infer)?,
                };
                let client = kube::Client::try_from(cfg).map_err(KubeClientError::Client)?;
                return Ok(Cluster {
                    client,
                    kubeconfig_path: None,
                    _dir: None,
                });
            }
        };
        let mut kubeconfig = select_context(kubeconfig, context)?;
        let answered = answered_exec_plugins(&kubeconfig).next().and_then(|exec| {
            crate::kube_token::recognise(
                exec.command.as_deref().unwrap_or_default(),
                exec.args.as_deref().unwrap_or_default(),
            )
        });
        let rewritten = if answered.is_some() {
            let exe = own_path().map_err(KubeClientError::OwnPath)?;
            answer_exec_plugins_with(&mut kubeconfig, &exe, &config.kube_token_env)
        } else {
            false
        };
        let text = match text {
            Some(t) if !rewritten => t,
            // JSON is YAML, and kube's types keep every field they read.
            _ => serde_json::to_string(&kubeconfig).map_err(KubeClientError::Serialize)?,
        };
        let (dir, path) = write_private(&text).map_err(KubeClientError::Write)?;
        // After helm's copy is written: `drop_env` is for this program's client only.
        let mut kubeconfig = kubeconfig;
        deny_exec_plugins_our_env(&mut kubeconfig, true);
        let cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(KubeClientError::Load)?;
        let client = kube::Client::try_from(cfg).map_err(|e| match answered {
            Some(plugin) => token_failed(plugin.as_str(), e),
            None => KubeClientError::Client(e),
        })?;
        if let Some(plugin) = answered {
            probe_token(&client, plugin).await?;
        }
        Ok(Cluster {
            client,
            kubeconfig_path: Some(path),
            _dir: Some(dir),
        })
    }

    /// The kubeconfig file to pass to helm, if any.
    pub(crate) fn kubeconfig_path(&self) -> Option<&Path> {
        self.kubeconfig_path.as_deref()
    }
}

/// One harmless request (GET /version) with the `kube-token` credential, so that a refused or
/// unmade token is reported as what it is rather than by the first step that needed the cluster.
/// Other failures (the network, a timeout) are left to the steps that need the cluster.
async fn probe_token(
    client: &kube::Client,
    plugin: crate::kube_token::Plugin,
) -> Result<(), KubeClientError> {
    match tokio::time::timeout(TOKEN_PROBE_TIMEOUT, client.apiserver_version()).await {
        Ok(Err(kube::Error::Api(status))) if status.code == 401 => {
            Err(KubeClientError::TokenRefused {
                plugin: plugin.as_str(),
                hint: plugin.refused_hint(),
            })
        }
        Ok(Err(e @ kube::Error::Auth(_))) => Err(token_failed(plugin.as_str(), e)),
        _ => Ok(()),
    }
}

/// A client error while `kube-token` runs as its exec plugin: what `kube-token` said (its one
/// stderr line, which never holds a credential) rather than kube's whole command line; any
/// other error as it is.
fn token_failed(plugin: &'static str, e: kube::Error) -> KubeClientError {
    match e {
        kube::Error::Auth(kube::client::AuthError::AuthExecRun { out, .. }) => {
            let said = String::from_utf8_lossy(&out.stderr);
            let why = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
                .unwrap_or_else(|| format!("it exited with {}", out.status));
            KubeClientError::TokenFailed { plugin, why }
        }
        other => KubeClientError::Client(other),
    }
}

/// Makes `context` the kubeconfig's current-context, when it names one it has.
fn select_context(
    mut kubeconfig: Kubeconfig,
    context: Option<&str>,
) -> Result<Kubeconfig, KubeClientError> {
    if let Some(name) = context {
        if !kubeconfig.contexts.iter().any(|c| c.name == name) {
            let have: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(KubeClientError::UnknownContext {
                context: name.to_string(),
                have: if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                },
            });
        }
        kubeconfig.current_context = Some(name.to_string());
    }
    Ok(kubeconfig)
}

/// Where the action's image puts this binary (Dockerfile).
const IMAGE_PATH: &str = "/usr/local/bin/trader-deploy";

/// This binary's path, for the exec entries that run its `kube-token`: the running executable,
/// else the image's path when it is there (a container without /proc).
fn own_path() -> std::io::Result<PathBuf> {
    std::env::current_exe().or_else(|e| {
        let image = Path::new(IMAGE_PATH);
        if image.is_file() {
            Ok(image.to_path_buf())
        } else {
            Err(e)
        }
    })
}

/// The exec entries of the kubeconfig's users that `kube-token` answers.
fn answered_exec_plugins(
    kubeconfig: &Kubeconfig,
) -> impl Iterator<Item = &kube::config::ExecConfig> {
    kubeconfig
        .auth_infos
        .iter()
        .filter_map(|named| named.auth_info.as_ref()?.exec.as_ref())
        .filter(|exec| {
            let command = exec.command.as_deref().unwrap_or_default();
            let args = exec.args.as_deref().unwrap_or_default();
            crate::kube_token::recognise(command, args).is_some()
        })
}

/// Points every exec plugin `kube-token` answers at `<exe> kube-token <command> <args…>`, its
/// `env`, `apiVersion` and the rest kept: helm (client-go) and this program's client (kube-rs)
/// run it through the standard exec machinery, for a fresh token whenever the last one expires.
/// Any other exec plugin was refused with the inputs (`inputs::kubeconfig_exec`) when its user
/// is the one the run connects as. True when an entry changed.
fn answer_exec_plugins_with(
    kubeconfig: &mut Kubeconfig,
    exe: &Path,
    extra_env: &[(&'static str, String)],
) -> bool {
    let mut changed = false;
    for named in &mut kubeconfig.auth_infos {
        let Some(exec) = named.auth_info.as_mut().and_then(|a| a.exec.as_mut()) else {
            continue;
        };
        let command = exec.command.clone().unwrap_or_default();
        let args = exec.args.clone().unwrap_or_default();
        if crate::kube_token::recognise(&command, &args).is_none() {
            continue;
        }
        let mut new_args = vec![crate::cli::KUBE_TOKEN.to_string(), command];
        new_args.extend(args);
        exec.command = Some(exe.to_string_lossy().into_owned());
        exec.args = Some(new_args);
        // kube-token never asks anything; `Never` also has the clients capture its stderr, the
        // one line that says why no token was made (gcloud and kubelogin kubeconfigs say
        // `IfAvailable`, under which it would go to the terminal the run does not have).
        exec.interactive_mode = Some(kube::config::ExecInteractiveMode::Never);
        // The cloud sign-in inputs, over the entry's own variables of the same name.
        let env = exec.env.get_or_insert_with(Vec::new);
        for (name, value) in extra_env {
            env.retain(|e| e.get("name").map(String::as_str) != Some(*name));
            env.push(
                [
                    ("name".to_string(), name.to_string()),
                    ("value".to_string(), value.clone()),
                ]
                .into_iter()
                .collect(),
            );
        }
        changed = true;
    }
    changed
}

/// An exec credential plugin this program's client runs gets what helm gets of the environment
/// and nothing more (`helm::helm_env`; issue #17): every other variable of this process, the
/// `INPUT_*` secrets among them, is dropped from its environment.
fn deny_exec_plugins_our_env(kubeconfig: &mut Kubeconfig, kubeconfig_given: bool) {
    let drop = exec_drop_env(std::env::vars_os(), kubeconfig_given);
    for named in &mut kubeconfig.auth_infos {
        if let Some(exec) = named.auth_info.as_mut().and_then(|a| a.exec.as_mut()) {
            exec.drop_env = Some(drop.clone());
        }
    }
}

/// The names of `parent` that `helm::helm_env` does not pass on.
fn exec_drop_env(
    parent: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    kubeconfig_given: bool,
) -> Vec<String> {
    let parent: Vec<_> = parent.into_iter().collect();
    let kept: std::collections::BTreeSet<_> =
        crate::helm::helm_env(parent.iter().cloned(), kubeconfig_given)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
    parent
        .into_iter()
        .filter(|(k, _)| !kept.contains(k))
        .filter_map(|(k, _)| k.into_string().ok())
        .collect()
}

/// Writes `yaml` to `<private temp dir>/kubeconfig`, the directory 0700 and the file 0600.
fn write_private(yaml: &str) -> std::io::Result<(tempfile::TempDir, PathBuf)> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let dir = tempfile::Builder::new()
        .prefix("trader-deploy-")
        .tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    let path = dir.path().join("kubeconfig");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(yaml.as_bytes())?;
    f.sync_all()?;
    Ok((dir, path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn kubeconfig_file_is_private_and_removed_on_drop() {
        let (dir, path) = super::write_private("apiVersion: v1\nclusters: []\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "apiVersion: v1\nclusters: []\n"
        );
        let root = dir.path().to_path_buf();
        drop(dir);
        assert!(!root.exists());
    }

    #[test]
    fn supported_exec_plugins_run_this_binarys_kube_token_with_their_env() {
        let mut kc = kube::config::Kubeconfig::from_yaml(
            r#"apiVersion: v1
clusters: []
users:
- name: eks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [--region, eu-west-1, eks, get-token, --cluster-name, prod]
      env:
      - {name: AWS_PROFILE_HINT, value: x}
      interactiveMode: Never
- name: authenticator
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: /usr/bin/aws-iam-authenticator
      args: [token, -i, prod]
- name: gke
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: gke-gcloud-auth-plugin
      interactiveMode: IfAvailable
- name: other
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubelogin
      args: [get-token, --login, devicecode]
- name: t
  user: {token: x}
"#,
        )
        .unwrap();
        let exe = std::path::Path::new("/usr/local/bin/trader-deploy");
        let inputs = [("AZURE_CLIENT_ID", "c1".to_string())];
        assert!(super::answer_exec_plugins_with(&mut kc, exe, &inputs));
        let exec = |i: usize| {
            kc.auth_infos[i]
                .auth_info
                .as_ref()
                .unwrap()
                .exec
                .clone()
                .unwrap()
        };
        let eks = exec(0);
        assert_eq!(eks.command.as_deref(), Some("/usr/local/bin/trader-deploy"));
        assert_eq!(
            eks.args.unwrap(),
            [
                "kube-token",
                "aws",
                "--region",
                "eu-west-1",
                "eks",
                "get-token",
                "--cluster-name",
                "prod"
            ]
        );
        let env = eks.env.unwrap();
        assert_eq!(env[0]["value"], "x");
        assert_eq!(
            (env[1]["name"].as_str(), env[1]["value"].as_str()),
            ("AZURE_CLIENT_ID", "c1")
        );
        assert_eq!(
            eks.api_version.as_deref(),
            Some("client.authentication.k8s.io/v1beta1")
        );
        assert_eq!(
            exec(1).args.unwrap(),
            [
                "kube-token",
                "/usr/bin/aws-iam-authenticator",
                "token",
                "-i",
                "prod"
            ]
        );
        assert_eq!(
            exec(2).args.unwrap(),
            ["kube-token", "gke-gcloud-auth-plugin"]
        );
        // Not answered: left as it is (refused with the inputs when the run connects as it).
        assert_eq!(exec(3).command.as_deref(), Some("kubelogin"));
        assert_eq!(exec(3).args.unwrap()[2], "devicecode");
        // Once pointed at kube-token, nothing more to do.
        assert!(super::answered_exec_plugins(&kc).next().is_none());
        assert!(!super::answer_exec_plugins_with(&mut kc, exe, &inputs));
    }

    #[test]
    fn exec_plugins_lose_what_helm_does_not_get() {
        use std::ffi::OsString;
        let env = |pairs: &[(&str, &str)]| -> Vec<(OsString, OsString)> {
            pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect()
        };
        let parent = env(&[
            ("INPUT_KUBECONFIG", "x"),
            ("INPUT_GITHUB_TOKEN", "t"),
            ("GITHUB_TOKEN", "t"),
            ("PATH", "/bin"),
            ("AWS_ROLE_ARN", "r"),
            ("KUBECONFIG", "/k"),
        ]);
        let mut dropped = super::exec_drop_env(parent.clone(), true);
        dropped.sort();
        assert_eq!(
            dropped,
            [
                "GITHUB_TOKEN",
                "INPUT_GITHUB_TOKEN",
                "INPUT_KUBECONFIG",
                "KUBECONFIG"
            ]
        );
        assert!(!super::exec_drop_env(parent, false).contains(&"KUBECONFIG".to_string()));

        let mut kc = kube::config::Kubeconfig::from_yaml(
            "apiVersion: v1\nclusters: []\nusers:\n- name: e\n  user:\n    exec:\n      \
             apiVersion: client.authentication.k8s.io/v1\n      command: plugin\n      \
             interactiveMode: Never\n- name: t\n  user: {token: x}\n",
        )
        .unwrap();
        super::deny_exec_plugins_our_env(&mut kc, true);
        let exec = kc.auth_infos[0].auth_info.as_ref().unwrap().exec.as_ref();
        assert!(exec.unwrap().drop_env.is_some());
        assert!(kc.auth_infos[1].auth_info.as_ref().unwrap().exec.is_none());
    }
}
