//! helm, the real binary: version detection and every command the action runs (upgrade,
//! history, manifest, rollback, uninstall, status, template, lint), with their arguments built
//! here and the cluster given with `--kubeconfig`. `spawn.rs` is where helm is started.

mod error;
mod fetch;
mod release;
mod spawn;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cancel::Cancel;

pub use error::{Framed, HelmError};
pub use release::{
    Release, Revision, age, last_deployed, latest, parse_history, parse_release, previous_good,
    version_description, version_of,
};
pub use spawn::Output;
pub(crate) use spawn::helm_env;

/// Extra time a helm command gets beyond its own `--timeout` before it is stopped.
const GRACE: Duration = Duration::from_secs(60);
/// Deadline of quick read-only commands (version, history, status, get manifest).
const QUICK: Duration = Duration::from_secs(60);
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
    /// The `set_string` input, each passed with `--set-string`.
    pub set_string: Vec<(String, String)>,
    pub history_max: u32,
    pub timeout: Duration,
    /// The version deployed, recorded as the revision's description
    /// ([`release::version_description`]): what `only_if_version` reads back.
    pub version: String,
}

/// A helm binary of a known major version, pointed at one cluster.
#[derive(Debug, Clone)]
pub struct Helm {
    bin: PathBuf,
    /// The version as helm reports it, e.g. `v3.22.0`.
    pub version: String,
    pub major: u64,
    kubeconfig: Option<PathBuf>,
    /// The environment helm runs with (`spawn::helm_env`).
    env: Vec<(OsString, OsString)>,
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
            env: spawn::helm_env(std::env::vars_os(), kubeconfig.is_some()),
        };
        let action = format!("detect the version of helm ({})", bin.display());
        let out = spawn::run(
            &helm.bin,
            &action,
            vec![os("version"), os("--template"), os("{{.Version}}")],
            &helm.env,
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
        for (key, value) in &spec.set_string {
            args.push(os("--set-string"));
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
            os("--description"),
            os(release::version_description(&spec.version)),
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
        let out = spawn::run(
            &self.bin,
            &action,
            self.upgrade_args(spec),
            &self.env,
            spec.timeout + GRACE,
            Some(cancel),
        )
        .await?;
        let release = release_of(action, &out.stdout)?;
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
        spawn::run(
            &self.bin,
            &action,
            self.rollback_args(release, namespace, revision, history_max, timeout),
            &self.env,
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

    /// `helm uninstall`: a release that never reached `deployed` (a killed install), and mode
    /// uninstall.
    pub async fn uninstall(
        &self,
        release: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Result<(), HelmError> {
        let action = release_action("uninstall", release, namespace);
        spawn::run(
            &self.bin,
            &action,
            self.uninstall_args(release, namespace, timeout),
            &self.env,
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
        match spawn::run(&self.bin, &action, args, &self.env, QUICK, None).await {
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
        Ok(spawn::run(&self.bin, &action, args, &self.env, QUICK, None)
            .await?
            .stdout)
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
        let out = match spawn::run(&self.bin, &action, args, &self.env, QUICK, None).await {
            Ok(out) => out,
            Err(HelmError::Failed { stderr, .. }) if is_not_found(&stderr.0) => return Ok(None),
            Err(e) => return Err(e),
        };
        let release = release_of(action, &out.stdout)?;
        Ok(Some((release.status, release.revision)))
    }

    /// `helm upgrade --install --dry-run=server`: the manifest helm would apply, rendered against
    /// the cluster (its API versions in `.Capabilities`, `lookup` answered from the live
    /// objects), hooks left out as `helm get manifest` leaves them out. Nothing is stored.
    pub async fn dry_run(&self, spec: &UpgradeSpec) -> Result<String, HelmError> {
        let action = format!(
            "render release {:?} in namespace {:?} against the cluster (helm upgrade --dry-run=server)",
            spec.release, spec.namespace
        );
        let mut args = self.upgrade_args(spec);
        args.push(os("--dry-run=server"));
        let out = spawn::run(&self.bin, &action, args, &self.env, QUICK, None).await?;
        let release = release_of(action.clone(), &out.stdout)?;
        release.manifest.ok_or_else(|| HelmError::Output {
            action,
            message: "the dry run's release has no manifest".into(),
            output: Framed(String::new()),
        })
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
        Ok(spawn::run(&self.bin, &action, args, &self.env, QUICK, None)
            .await?
            .stdout)
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
        Ok(spawn::run(&self.bin, &action, args, &self.env, QUICK, None)
            .await?
            .stdout)
    }
}

/// The release JSON helm printed; when it cannot be read, the error says so without showing it.
fn release_of(action: String, stdout: &str) -> Result<Release, HelmError> {
    parse_release(stdout).map_err(|message| HelmError::Output {
        action,
        message,
        output: Framed(format!(
            "({} bytes, not shown: a release holds its values, which may be secrets)",
            stdout.len()
        )),
    })
}

/// Helm 3 and 4 both say `Error: release: not found` for a release that does not exist (other
/// "not found" errors, like a missing kube context, are real failures).
fn is_not_found(stderr: &str) -> bool {
    stderr.contains("release: not found")
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
            env: Vec::new(),
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
            set_string: vec![],
            history_max: 10,
            timeout: Duration::from_secs(300),
            version: "v1.2.0".into(),
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
                "--description",
                "trader-deploy: version v1.2.0",
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
}
