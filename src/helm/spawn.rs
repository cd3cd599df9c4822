//! The only place helm is spawned: a command with its arguments as a list (never through a
//! shell) and an environment cleared down to an allow-list (`helm_env`: never the `INPUT_*`
//! secrets), run until it exits, its deadline passes, or the run is cancelled (helm then gets
//! SIGTERM, so that it marks an interrupted release failed, and is killed if it lingers).

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use super::{Framed, HelmError};
use crate::cancel::Cancel;
use crate::env::vars;

/// helm's environment: of `parent` (this process's), only what [`vars::HELM_PASSED`] and
/// [`vars::HELM_PASSED_PREFIXES`] name, plus [`vars::HELM_DEFAULT_CLUSTER`] when helm is not
/// given `--kubeconfig`. Sorted by name.
pub(crate) fn helm_env(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
    kubeconfig_given: bool,
) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(k, _)| {
            let Some(k) = k.to_str() else {
                return false;
            };
            vars::HELM_PASSED.contains(&k)
                || vars::HELM_PASSED_PREFIXES.iter().any(|p| k.starts_with(p))
                || (!kubeconfig_given && vars::HELM_DEFAULT_CLUSTER.contains(&k))
        })
        .collect();
    out.sort();
    out
}

/// How long helm gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs helm with `args` until it exits, `deadline` passes, or `cancel` fires.
pub(super) async fn run(
    bin: &Path,
    action: &str,
    args: Vec<OsString>,
    env: &[(OsString, OsString)],
    deadline: Duration,
    cancel: Option<&Cancel>,
) -> Result<Output, HelmError> {
    tracing::debug!(bin = %bin.display(), ?args, "spawning helm");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(&args)
        // Nothing of this process's environment but the allow-list (`helm_env`).
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at a terminal reaches this program, which decides
        // when helm is stopped.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| HelmError::Spawn {
        action: action.to_string(),
        bin: bin.to_path_buf(),
        source,
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_out = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(mut o) = stdout {
            let _ = o.read_to_string(&mut s).await;
        }
        s
    });
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s).await;
        }
        s
    });
    let collect = |h: tokio::task::JoinHandle<String>| async move {
        tokio::time::timeout(STOP_GRACE, h)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };

    let never = Cancel::never();
    let cancel = cancel.unwrap_or(&never);
    let outcome = tokio::select! {
        status = child.wait() => Ok(status),
        _ = tokio::time::sleep(deadline) => Err(None),
        signal = cancel.cancelled() => Err(Some(signal)),
    };
    match outcome {
        Ok(status) => {
            let status = status.map_err(|source| HelmError::Spawn {
                action: action.to_string(),
                bin: bin.to_path_buf(),
                source,
            })?;
            let (out, err) = (collect(read_out).await, collect(read_err).await);
            if status.success() {
                Ok(Output {
                    stdout: out,
                    stderr: err,
                })
            } else {
                Err(HelmError::Failed {
                    action: action.to_string(),
                    status: status.to_string(),
                    stderr: Framed(err),
                })
            }
        }
        Err(signal) => {
            // Ask helm to stop (it marks an interrupted release failed), then make sure.
            if let Some(pid) = child.id() {
                terminate(pid);
            }
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            let err = collect(read_err).await;
            read_out.abort();
            match signal {
                Some(signal) => Err(HelmError::Cancelled {
                    action: action.to_string(),
                    signal,
                    stderr: Framed(err),
                }),
                None => Err(HelmError::Deadline {
                    action: action.to_string(),
                    deadline,
                }),
            }
        }
    }
}

/// What a successful helm command wrote.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    /// Warnings (deprecated APIs, kubeconfig permissions, …).
    pub stderr: String,
}

/// Sends SIGTERM to one process (helm), by its id.
fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid this program spawned and has not yet reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)], kubeconfig_given: bool) -> Vec<String> {
        helm_env(
            pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            kubeconfig_given,
        )
        .into_iter()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect()
    }

    #[test]
    fn helm_gets_the_allow_list_only() {
        let parent = [
            ("INPUT_GITHUB_TOKEN", "ghs_canary"),
            ("INPUT_KUBECONFIG", "apiVersion: v1"),
            ("INPUT_REGISTRY_PASSWORD", "pw"),
            ("GITHUB_TOKEN", "ghs_canary"),
            ("GITHUB_WORKSPACE", "/github/workspace"),
            ("RUNNER_TEMP", "/tmp/r"),
            ("PATH", "/usr/bin"),
            ("HOME", "/github/home"),
            ("TMPDIR", "/tmp"),
            ("https_proxy", "http://proxy:3128"),
            ("NO_PROXY", "localhost"),
            ("SSL_CERT_FILE", "/etc/ca.pem"),
            ("HELM_CACHE_HOME", "/c"),
            ("HELM_KUBETOKEN", "elsewhere-token"),
            ("HELM_KUBEAPISERVER", "https://elsewhere"),
            ("HELM_DRIVER", "configmap"),
            ("HELM_NAMESPACE", "other"),
            ("XDG_CONFIG_HOME", "/x"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AZURE_CLIENT_ID", "id"),
            ("AAD_SERVICE_PRINCIPAL_CLIENT_ID", "id"),
            ("CLOUDSDK_CORE_PROJECT", "p"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/k.json"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://t"),
            ("KUBECONFIG", "/home/runner/.kube/config"),
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("TRADER_DEPLOY_LOG", "debug"),
        ];
        let given = env(&parent, true);
        assert_eq!(
            given,
            [
                "AAD_SERVICE_PRINCIPAL_CLIENT_ID=id",
                "ACTIONS_ID_TOKEN_REQUEST_URL=https://t",
                "AWS_REGION=eu-west-1",
                "AWS_ROLE_ARN=arn:aws:iam::1:role/r",
                "AZURE_CLIENT_ID=id",
                "CLOUDSDK_CORE_PROJECT=p",
                "GOOGLE_APPLICATION_CREDENTIALS=/k.json",
                "HELM_CACHE_HOME=/c",
                "HOME=/github/home",
                "NO_PROXY=localhost",
                "PATH=/usr/bin",
                "SSL_CERT_FILE=/etc/ca.pem",
                "TMPDIR=/tmp",
                "XDG_CONFIG_HOME=/x",
                "https_proxy=http://proxy:3128",
            ]
        );
        // Without --kubeconfig helm finds the runner's cluster as this program's client does.
        let default = env(&parent, false);
        assert_eq!(default.len(), given.len() + 2);
        assert!(default.contains(&"KUBECONFIG=/home/runner/.kube/config".to_string()));
        assert!(default.contains(&"KUBERNETES_SERVICE_HOST=10.0.0.1".to_string()));
        for e in given.iter().chain(&default) {
            assert!(
                !e.starts_with("INPUT_") && !e.starts_with("GITHUB_") && !e.contains("canary"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_name_that_is_not_unicode_is_not_passed() {
        use std::os::unix::ffi::OsStringExt as _;
        let odd = OsString::from_vec(vec![b'P', b'A', 0xff]);
        let out = helm_env([(odd, OsString::from("x"))], true);
        assert!(out.is_empty());
    }
}
