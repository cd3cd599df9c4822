//! The only place helm is spawned: version detection, upgrade, history, manifest, rollback,
//! template, lint, status. Arguments are passed as a list (never through a shell); the cluster
//! is given with `--kubeconfig`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::cancel::Cancel;

/// Extra time a helm command gets beyond its own `--timeout` before it is stopped.
const GRACE: Duration = Duration::from_secs(60);
/// Deadline of quick read-only commands (version, history, status, get manifest).
const QUICK: Duration = Duration::from_secs(60);
/// How long helm gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Helm's stderr, shown framed under the message that says what was attempted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Framed(pub String);

impl fmt::Display for Framed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.trim_end();
        if text.is_empty() {
            return f.write_str("  │ (helm wrote nothing to stderr)");
        }
        for (n, line) in text.lines().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  │ {line}")?;
        }
        Ok(())
    }
}

/// A helm command that did not do what was asked. `action` says what was attempted on what,
/// e.g. `upgrade release "traderadmin" in namespace "trader"`.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("failed to {action}: could not run {}", bin.display())]
    Spawn {
        action: String,
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to {action}: helm {status}; its stderr:\n{stderr}")]
    Failed {
        action: String,
        status: String,
        stderr: Framed,
    },
    #[error("failed to {action}: helm did not finish within {}; stopped it", humantime::format_duration(*.deadline))]
    Deadline { action: String, deadline: Duration },
    #[error("failed to {action}: cancelled ({signal}); helm was stopped; its stderr:\n{stderr}")]
    Cancelled {
        action: String,
        signal: &'static str,
        stderr: Framed,
    },
    #[error("failed to {action}: unexpected output from helm ({message}):\n{output}")]
    Output {
        action: String,
        message: String,
        output: Framed,
    },
}

impl HelmError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, HelmError::Cancelled { .. })
    }
}

/// One entry of `helm history -o json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Revision {
    pub revision: u32,
    #[serde(default)]
    pub updated: String,
    pub status: String,
    #[serde(default)]
    pub chart: String,
    #[serde(default)]
    pub app_version: String,
    #[serde(default)]
    pub description: String,
}

impl Revision {
    pub fn is_deployed(&self) -> bool {
        self.status == "deployed"
    }
    pub fn is_pending(&self) -> bool {
        self.status.starts_with("pending-")
    }
}

/// How long ago a revision was last written, from its `updated` time (`None` when helm's time
/// cannot be read).
pub fn age(r: &Revision) -> Option<Duration> {
    let t: k8s_openapi::jiff::Timestamp = r.updated.trim().parse().ok()?;
    let secs = k8s_openapi::jiff::Timestamp::now()
        .duration_since(t)
        .as_secs_f64();
    Some(Duration::from_secs_f64(secs.max(0.0)))
}

/// The release's newest revision.
pub fn latest(history: &[Revision]) -> Option<&Revision> {
    history.iter().max_by_key(|r| r.revision)
}

/// The newest revision whose status is `deployed` (there is at most one in a healthy history,
/// but a killed run can leave others superseded; the newest wins).
pub fn last_deployed(history: &[Revision]) -> Option<&Revision> {
    history
        .iter()
        .filter(|r| r.is_deployed())
        .max_by_key(|r| r.revision)
}

/// The revision to return to when the newest one is bad: the newest good revision before
/// `current`, where good means `deployed` now or `superseded` (it was deployed once and was
/// replaced by an upgrade). Failed, pending and uninstalled revisions are never chosen.
pub fn previous_good(history: &[Revision], current: u32) -> Option<&Revision> {
    history
        .iter()
        .filter(|r| r.revision < current && (r.is_deployed() || r.status == "superseded"))
        .max_by_key(|r| r.revision)
}

/// What `helm upgrade --install` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct UpgradeSpec {
    pub release: String,
    pub namespace: String,
    pub chart: String,
    pub values_files: Vec<PathBuf>,
    /// `(helm key, repository:version)`, each passed with `--set-string`.
    pub images: Vec<(String, String)>,
    /// The `set` input, each passed with `--set`.
    pub set: Vec<(String, String)>,
    pub history_max: u32,
    pub timeout: Duration,
}

/// A helm binary of a known major version, pointed at one cluster.
#[derive(Debug, Clone)]
pub struct Helm {
    bin: PathBuf,
    /// The version as helm reports it, e.g. `v3.22.0`.
    pub version: String,
    pub major: u64,
    kubeconfig: Option<PathBuf>,
}

/// The major version in `helm version --template '{{.Version}}'` output (`v3.22.0` → 3).
pub fn parse_major(version: &str) -> Option<u64> {
    let v = version.trim().trim_start_matches('v');
    semver::Version::parse(v)
        .ok()
        .map(|v| v.major)
        .or_else(|| v.split('.').next()?.parse().ok())
}

fn go_duration(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

fn release_action(verb: &str, release: &str, namespace: &str) -> String {
    format!("{verb} release {release:?} in namespace {namespace:?}")
}

impl Helm {
    /// Runs `helm version` to learn the major version: flags differ between helm 3 and 4.
    pub async fn detect(bin: &Path, kubeconfig: Option<&Path>) -> Result<Helm, HelmError> {
        let mut helm = Helm {
            bin: bin.to_path_buf(),
            version: String::new(),
            major: 0,
            kubeconfig: kubeconfig.map(Path::to_path_buf),
        };
        let action = format!("detect the version of helm ({})", bin.display());
        let out = helm
            .run(
                &action,
                vec![os("version"), os("--template"), os("{{.Version}}")],
                QUICK,
                None,
            )
            .await?;
        let version = out.stdout.trim().to_string();
        let major = parse_major(&version).ok_or_else(|| HelmError::Output {
            action: action.clone(),
            message: "not a version".into(),
            output: Framed(out.stdout.clone()),
        })?;
        if !(3..=4).contains(&major) {
            return Err(HelmError::Output {
                action,
                message: format!("helm {version} is not supported (helm 3 or 4 is)"),
                output: Framed(out.stdout),
            });
        }
        helm.version = version;
        helm.major = major;
        Ok(helm)
    }

    /// The global flags every cluster command gets.
    fn cluster_args(&self, namespace: &str) -> Vec<OsString> {
        let mut args = vec![os("--namespace"), os(namespace)];
        if let Some(k) = &self.kubeconfig {
            args.push(os("--kubeconfig"));
            args.push(k.clone().into_os_string());
        }
        args
    }

    /// Values files, image settings and `set`, shared by upgrade and template.
    fn value_args(spec: &UpgradeSpec) -> Vec<OsString> {
        let mut args = Vec::new();
        for f in &spec.values_files {
            args.push(os("--values"));
            args.push(f.clone().into_os_string());
        }
        for (key, reference) in &spec.images {
            args.push(os("--set-string"));
            args.push(os(format!("{key}={reference}")));
        }
        for (key, value) in &spec.set {
            args.push(os("--set"));
            args.push(os(format!("{key}={value}")));
        }
        args
    }

    /// The arguments of `helm upgrade --install`. No `--wait`/`--atomic` (helm 3) and no
    /// `--wait`/`--rollback-on-failure` (helm 4): this program watches the rollout itself and
    /// rolls back itself. Helm 4 waits for hooks only by default, as helm 3 does.
    pub fn upgrade_args(&self, spec: &UpgradeSpec) -> Vec<OsString> {
        let mut args = vec![
            os("upgrade"),
            os("--install"),
            os(&spec.release),
            os(&spec.chart),
        ];
        args.extend(self.cluster_args(&spec.namespace));
        args.extend([
            // No `--create-namespace`: the lock step has made sure the namespace exists (its
            // lease lives there), and the flag makes helm touch the Namespace object anyway
            // (helm 3 creates it, helm 4 applies it), which a least-privilege Role in the
            // namespace cannot grant.
            //
            // The release is the chart's defaults plus the given values, always: without this,
            // helm silently reuses the previous release's values when none are given (and
            // `plan` would not show what gets deployed).
            os("--reset-values"),
            os("--history-max"),
            os(spec.history_max.to_string()),
            os("--timeout"),
            os(go_duration(spec.timeout)),
            // The release as JSON: its revision and manifest without two more helm calls, so
            // the watch starts sooner.
            os("--output"),
            os("json"),
        ]);
        if self.major >= 4 {
            // Explicitly helm 4's own default, so a changed default cannot make helm wait.
            args.push(os("--wait=hookOnly"));
        }
        args.extend(Self::value_args(spec));
        args
    }

    /// `helm upgrade --install`. On cancellation helm gets SIGTERM (it then marks the revision
    /// failed) and the error says so; the caller brings the release back.
    pub async fn upgrade(
        &self,
        spec: &UpgradeSpec,
        cancel: &Cancel,
    ) -> Result<(Release, String), HelmError> {
        let action = release_action("upgrade", &spec.release, &spec.namespace);
        let out = self
            .run(
                &action,
                self.upgrade_args(spec),
                spec.timeout + GRACE,
                Some(cancel),
            )
            .await?;
        let release = parse_release(&out.stdout).map_err(|message| HelmError::Output {
            action,
            message,
            output: Framed(format!(
                "({} bytes, not shown: a release holds its values, which may be secrets)",
                out.stdout.len()
            )),
        })?;
        Ok((release, out.stderr))
    }

    /// The arguments of `helm rollback` to `revision`, without waiting (the caller verifies).
    pub fn rollback_args(
        &self,
        release: &str,
        namespace: &str,
        revision: u32,
        history_max: u32,
        timeout: Duration,
    ) -> Vec<OsString> {
        let mut args = vec![os("rollback"), os(release), os(revision.to_string())];
        args.extend(self.cluster_args(namespace));
        args.extend([
            os("--history-max"),
            os(history_max.to_string()),
            os("--timeout"),
            os(go_duration(timeout)),
        ]);
        if self.major >= 4 {
            args.push(os("--wait=hookOnly"));
        }
        args
    }

    /// `helm rollback` to `revision`. Not cancellable: it is what makes a cancelled run safe.
    pub async fn rollback(
        &self,
        release: &str,
        namespace: &str,
        revision: u32,
        history_max: u32,
        timeout: Duration,
    ) -> Result<(), HelmError> {
        let action = format!(
            "roll back release {release:?} in namespace {namespace:?} to revision {revision}"
        );
        self.run(
            &action,
            self.rollback_args(release, namespace, revision, history_max, timeout),
            timeout + GRACE,
            None,
        )
        .await?;
        Ok(())
    }

    /// The arguments of `helm uninstall`.
    pub fn uninstall_args(
        &self,
        release: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Vec<OsString> {
        let mut args = vec![os("uninstall"), os(release)];
        args.extend(self.cluster_args(namespace));
        args.extend([os("--timeout"), os(go_duration(timeout))]);
        args
    }

    /// `helm uninstall`: only for a release that never reached `deployed` (a killed install).
    pub async fn uninstall(
        &self,
        release: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Result<(), HelmError> {
        let action = release_action("uninstall", release, namespace);
        self.run(
            &action,
            self.uninstall_args(release, namespace, timeout),
            timeout + GRACE,
            None,
        )
        .await?;
        Ok(())
    }

    /// `helm history -o json`; an empty list when the release does not exist.
    pub async fn history(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Vec<Revision>, HelmError> {
        let action = release_action("read the history of", release, namespace);
        let mut args = vec![os("history"), os(release), os("--output"), os("json")];
        args.extend(self.cluster_args(namespace));
        match self.run(&action, args, QUICK, None).await {
            Ok(out) => parse_history(&out.stdout).map_err(|message| HelmError::Output {
                action,
                message,
                output: Framed(out.stdout),
            }),
            Err(HelmError::Failed { stderr, .. }) if is_not_found(&stderr.0) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `helm get manifest` of the current revision, or of `revision`.
    pub async fn get_manifest(
        &self,
        release: &str,
        namespace: &str,
        revision: Option<u32>,
    ) -> Result<String, HelmError> {
        let action = release_action("read the manifest of", release, namespace);
        let mut args = vec![os("get"), os("manifest"), os(release)];
        if let Some(r) = revision {
            args.push(os("--revision"));
            args.push(os(r.to_string()));
        }
        args.extend(self.cluster_args(namespace));
        Ok(self.run(&action, args, QUICK, None).await?.stdout)
    }

    /// `helm status -o json` → the status string (`deployed`, `pending-upgrade`, …) and the
    /// revision; `None` when the release does not exist.
    pub async fn status(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<(String, u32)>, HelmError> {
        let action = release_action("read the status of", release, namespace);
        let mut args = vec![os("status"), os(release), os("--output"), os("json")];
        args.extend(self.cluster_args(namespace));
        let out = match self.run(&action, args, QUICK, None).await {
            Ok(out) => out,
            Err(HelmError::Failed { stderr, .. }) if is_not_found(&stderr.0) => return Ok(None),
            Err(e) => return Err(e),
        };
        let release = parse_release(&out.stdout).map_err(|message| HelmError::Output {
            action,
            message,
            output: Framed(format!(
                "({} bytes, not shown: a release holds its values, which may be secrets)",
                out.stdout.len()
            )),
        })?;
        Ok(Some((release.status, release.revision)))
    }

    /// `helm template`: the manifest the chart renders with these values.
    pub async fn template(&self, spec: &UpgradeSpec) -> Result<String, HelmError> {
        let action = format!(
            "render chart {:?} for release {:?} in namespace {:?}",
            spec.chart, spec.release, spec.namespace
        );
        let mut args = vec![os("template"), os(&spec.release), os(&spec.chart)];
        args.push(os("--namespace"));
        args.push(os(&spec.namespace));
        args.extend(Self::value_args(spec));
        Ok(self.run(&action, args, QUICK, None).await?.stdout)
    }

    /// `helm lint` of the chart with these values files.
    pub async fn lint(&self, chart: &str, values_files: &[PathBuf]) -> Result<String, HelmError> {
        let files: Vec<String> = values_files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        let action = format!("lint chart {chart:?} with values {files:?}");
        let mut args = vec![os("lint"), os(chart)];
        for f in values_files {
            args.push(os("--values"));
            args.push(f.clone().into_os_string());
        }
        Ok(self.run(&action, args, QUICK, None).await?.stdout)
    }

    /// Runs helm with `args` until it exits, `deadline` passes, or `cancel` fires.
    async fn run(
        &self,
        action: &str,
        args: Vec<OsString>,
        deadline: Duration,
        cancel: Option<&Cancel>,
    ) -> Result<Output, HelmError> {
        tracing::debug!(bin = %self.bin.display(), ?args, "spawning helm");
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at a terminal reaches this program, which decides
            // when helm is stopped.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| HelmError::Spawn {
            action: action.to_string(),
            bin: self.bin.clone(),
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
                    bin: self.bin.clone(),
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

/// Helm 3 and 4 both say `Error: release: not found` for a release that does not exist (other
/// "not found" errors, like a missing kube context, are real failures).
fn is_not_found(stderr: &str) -> bool {
    stderr.contains("release: not found")
}

/// A release as `helm status/upgrade -o json` describe it (its values are never read: they may
/// hold secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub revision: u32,
    pub status: String,
    pub manifest: Option<String>,
}

/// Parses the release JSON of `helm status -o json` / `helm upgrade -o json` (helm 3 and 4).
pub fn parse_release(json: &str) -> Result<Release, String> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).map_err(|e| e.to_string())?;
    let status = v["info"]["status"].as_str();
    let revision = v["version"].as_u64();
    match (status, revision) {
        (Some(s), Some(n)) => Ok(Release {
            revision: n as u32,
            status: s.to_string(),
            manifest: v["manifest"].as_str().map(str::to_string),
        }),
        _ => Err("no info.status or version in the release JSON".into()),
    }
}

/// Parses `helm history -o json` (helm 3 and 4 write the same fields).
pub fn parse_history(json: &str) -> Result<Vec<Revision>, String> {
    let json = json.trim();
    if json.is_empty() || json == "null" {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helm(major: u64) -> Helm {
        Helm {
            bin: "helm".into(),
            version: format!("v{major}.0.0"),
            major,
            kubeconfig: Some("/tmp/x/kubeconfig".into()),
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    fn spec() -> UpgradeSpec {
        UpgradeSpec {
            release: "traderadmin".into(),
            namespace: "trader".into(),
            chart: "/w/charts/traderadmin".into(),
            values_files: vec!["/w/deploy/values/values-prod.yaml".into()],
            images: vec![(
                "image.pythonOrch".into(),
                "ghcr.io/acme/python-orch:v1.2.0".into(),
            )],
            set: vec![("replicas".into(), "3".into())],
            history_max: 10,
            timeout: Duration::from_secs(300),
        }
    }

    #[test]
    fn upgrade_args_helm3() {
        assert_eq!(
            strings(helm(3).upgrade_args(&spec())),
            [
                "upgrade",
                "--install",
                "traderadmin",
                "/w/charts/traderadmin",
                "--namespace",
                "trader",
                "--kubeconfig",
                "/tmp/x/kubeconfig",
                "--reset-values",
                "--history-max",
                "10",
                "--timeout",
                "300s",
                "--output",
                "json",
                "--values",
                "/w/deploy/values/values-prod.yaml",
                "--set-string",
                "image.pythonOrch=ghcr.io/acme/python-orch:v1.2.0",
                "--set",
                "replicas=3",
            ]
        );
    }

    #[test]
    fn helm4_pins_the_hook_only_wait_and_never_atomic() {
        let args = strings(helm(4).upgrade_args(&spec()));
        assert!(args.contains(&"--wait=hookOnly".to_string()));
        for a in &args {
            assert!(
                !a.contains("atomic") && !a.contains("rollback-on-failure"),
                "{a}"
            );
        }
        let h3 = strings(helm(3).upgrade_args(&spec()));
        assert!(!h3.iter().any(|a| a.starts_with("--wait")));
    }

    #[test]
    fn rollback_args() {
        assert_eq!(
            strings(helm(3).rollback_args("r", "ns", 4, 10, Duration::from_secs(90))),
            [
                "rollback",
                "r",
                "4",
                "--namespace",
                "ns",
                "--kubeconfig",
                "/tmp/x/kubeconfig",
                "--history-max",
                "10",
                "--timeout",
                "90s"
            ]
        );
    }

    #[test]
    fn release_json() {
        let r = parse_release(
            r#"{"name":"x","info":{"status":"deployed"},"config":{"password":"p"},
                "manifest":"---\nkind: Deployment\n","version":7,"namespace":"n"}"#,
        )
        .unwrap();
        assert_eq!(r.revision, 7);
        assert_eq!(r.status, "deployed");
        assert_eq!(r.manifest.as_deref(), Some("---\nkind: Deployment\n"));
        assert!(parse_release("{}").is_err());
        assert!(parse_release("Release has been upgraded").is_err());
    }

    #[test]
    fn only_a_missing_release_is_not_found() {
        assert!(is_not_found("Error: release: not found\n"));
        assert!(!is_not_found("Error: context \"prod\" not found\n"));
    }

    #[test]
    fn major_versions() {
        assert_eq!(parse_major("v3.22.0"), Some(3));
        assert_eq!(parse_major("v4.3.1\n"), Some(4));
        assert_eq!(parse_major("v4.0.0-rc.1"), Some(4));
        assert_eq!(parse_major("nonsense"), None);
    }

    const HISTORY: &str = r#"[
      {"revision":1,"updated":"2026-11-22T10:00:00Z","status":"superseded","chart":"testapp-0.1.0","app_version":"1.0","description":"Install complete"},
      {"revision":2,"updated":"2026-11-22T10:05:00Z","status":"superseded","chart":"testapp-0.1.0","app_version":"1.0","description":"Upgrade complete"},
      {"revision":3,"updated":"2026-11-22T10:10:00Z","status":"failed","chart":"testapp-0.1.0","app_version":"1.0","description":"Upgrade failed"},
      {"revision":4,"updated":"2026-11-22T10:15:00Z","status":"deployed","chart":"testapp-0.1.0","app_version":"1.0","description":"Rollback to 2"},
      {"revision":5,"updated":"2026-11-22T10:20:00Z","status":"pending-upgrade","chart":"testapp-0.1.0","app_version":"1.0","description":"Preparing upgrade"}
    ]"#;

    #[test]
    fn revision_age_from_helms_time() {
        let mut r = Revision {
            revision: 2,
            updated: "2020-01-01T10:00:00.123456789+02:00".into(),
            status: "pending-upgrade".into(),
            chart: String::new(),
            app_version: String::new(),
            description: String::new(),
        };
        assert!(age(&r).unwrap() > Duration::from_secs(365 * 24 * 3600));
        r.updated = k8s_openapi::jiff::Timestamp::now().to_string();
        assert!(age(&r).unwrap() < Duration::from_secs(60));
        r.updated = "yesterday".into();
        assert_eq!(age(&r), None);
    }

    #[test]
    fn history_selection() {
        let h = parse_history(HISTORY).unwrap();
        assert_eq!(latest(&h).unwrap().revision, 5);
        assert!(latest(&h).unwrap().is_pending());
        assert_eq!(last_deployed(&h).unwrap().revision, 4);
        // Before 4, the newest good one is 2 (3 failed).
        assert_eq!(previous_good(&h, 4).unwrap().revision, 2);
        assert_eq!(previous_good(&h, 2).unwrap().revision, 1);
        assert!(previous_good(&h, 1).is_none());
        assert!(parse_history("").unwrap().is_empty());
        assert!(parse_history("[]").unwrap().is_empty());
        assert!(parse_history("{").is_err());
    }

    #[test]
    fn stderr_is_framed_under_the_message() {
        let e = HelmError::Failed {
            action: release_action("upgrade", "x", "y"),
            status: "exit status: 1".into(),
            stderr: Framed("Error: UPGRADE FAILED: boom\nmore\n".into()),
        };
        assert_eq!(
            e.to_string(),
            "failed to upgrade release \"x\" in namespace \"y\": helm exit status: 1; its stderr:\n  │ Error: UPGRADE FAILED: boom\n  │ more"
        );
    }
}
