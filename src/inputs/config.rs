//! The validated configuration of one run: every input resolved against the run context
//! (inferred environment and version, the version policy, defaults, files that must exist).

use std::path::PathBuf;
use std::time::Duration;

use super::defs::Mode;
use super::kubeconfig_exec::check_exec_plugin;
use super::kubeconfig_source::{KubeconfigSource, resolve_context, resolve_kubeconfig};
use super::parse::*;
use super::raw::RawInputs;
use super::registry_auth::{parse_registry_auth, parse_registry_pair};
use super::{InputError, bad};
use crate::context::RunContext;
use crate::secret::{Secret, secret_fragments};
use crate::version::{self, Source, Trigger};

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) mode: Mode,
    pub(crate) environment: String,
    pub(crate) environment_source: Source,
    pub(crate) version: String,
    pub(crate) version_source: Source,
    pub(crate) git_ref: Option<String>,
    pub(crate) chart: String,
    /// The chart as a local directory, when it is one.
    pub(crate) chart_dir: Option<PathBuf>,
    /// `chart_version`: the version of an OCI or repository chart.
    pub(crate) chart_version: Option<String>,
    /// `chart_repository`: the classic repository that holds the chart named `chart`.
    pub(crate) chart_repository: Option<String>,
    /// `chart_auth`: credentials per chart registry or repository host.
    pub(crate) chart_credentials: crate::registry::HostCredentials,
    pub(crate) release: String,
    pub(crate) namespace: String,
    pub(crate) values_files: Vec<PathBuf>,
    pub(crate) images: Vec<ImageSetting>,
    pub(crate) set: Vec<(String, String)>,
    pub(crate) kubeconfig: KubeconfigSource,
    /// The kubeconfig context to use (`context`), instead of its current-context.
    pub(crate) kube_context: Option<String>,
    /// What the cloud sign-in inputs add to the environment of the kubeconfig's `kube-token`
    /// exec entries (src/inputs/cloud.rs).
    pub(crate) kube_token_env: Vec<(&'static str, String)>,
    pub(crate) github_token: Option<Secret>,
    pub(crate) protected: bool,
    /// Refuse approvals given only by the run's actor.
    pub(crate) require_distinct_approver: bool,
    /// `set_string`: passed with `--set-string`, after the images.
    pub(crate) set_string: Vec<(String, String)>,
    /// `values` and `secret_values`, written to private files, after the values files.
    pub(crate) inline_values: Option<super::values::InlineValues>,
    /// When the environment may be deployed (input `deploy_window` or deploy/policy.yaml).
    pub(crate) deploy_window: Option<crate::window::policy::Policy>,
    pub(crate) window_override: bool,
    /// `protected_environments`: which environments need approval (validate checks each).
    pub(crate) protected_environments: Vec<String>,
    /// The Rego policies checked on the rendered release (`policies`).
    pub(crate) policies: Option<crate::policy::Policies>,
    /// The environment's URL for the GitHub deployment (http(s)).
    pub(crate) environment_url: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) rollback_on_failure: bool,
    pub(crate) history_max: u32,
    /// Log lines per failing container in the diagnostics (0 = none).
    pub(crate) pod_log_lines: u32,
    /// What to do with `updateStrategy: OnDelete` StatefulSets.
    pub(crate) statefulset_on_delete: crate::rollout::statefulset::OnDelete,
    /// Age at which a pending helm record that no run of this action holds counts as stuck.
    pub(crate) pending_grace: Duration,
    pub(crate) smoke_tests: Option<PathBuf>,
    /// The smoke spec at `smoke_tests`, validated.
    pub(crate) smoke_spec: Option<crate::smoke::Spec>,
    pub(crate) rollback_revision: Option<u32>,
    /// Mode rollback only when the deployed revision runs this version.
    pub(crate) only_if_version: Option<String>,
    pub(crate) verify_images: bool,
    /// Deploy images by digest (`repository@sha256:…`).
    pub(crate) pin_digests: bool,
    /// Registry credentials per host (`registry_auth`, and the `registry_username`/
    /// `registry_password` pair for `registry_host`).
    pub(crate) registry_credentials: crate::registry::HostCredentials,
    pub(crate) notify_webhook: Option<Secret>,
    pub(crate) helm: PathBuf,
    /// Where relative paths are resolved (GITHUB_WORKSPACE, else the working directory).
    pub(crate) workspace: PathBuf,
}

impl Config {
    /// Every secret this configuration holds, for the runner to mask.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = &self.github_token {
            out.extend(secret_fragments(t.expose()));
        }
        out.extend(self.kubeconfig.masks());
        if let Some(w) = &self.notify_webhook {
            out.extend(secret_fragments(w.expose()));
        }
        for p in self
            .registry_credentials
            .passwords()
            .chain(self.chart_credentials.passwords())
        {
            out.extend(secret_fragments(p.expose()));
        }
        out
    }
}

/// Builds the configuration from raw inputs and the run context.
pub fn resolve(raw: &RawInputs, ctx: &RunContext) -> Result<Config, InputError> {
    let mode = match raw.get("mode") {
        None => Mode::Deploy,
        Some(m) => Mode::parse(m.trim()).ok_or_else(|| {
            bad(
                "mode",
                format!(
                    "{m:?} is not a mode (deploy, rollback, plan, validate, resolve, uninstall)"
                ),
            )
        })?,
    };
    let protected_environments = parse_protected(raw.get("protected_environments"))?;

    let git_ref = raw
        .get("ref")
        .map(|r| r.trim().to_string())
        .or_else(|| ctx.git_ref.clone());
    if let Some(r) = &git_ref {
        check_ref(r)?;
    }
    if ctx.event_name.as_deref() == Some("push")
        && ctx.event.get("deleted").and_then(|d| d.as_bool()) == Some(true)
        && !matches!(mode, Mode::Rollback | Mode::Uninstall)
    {
        return Err(bad(
            "ref",
            format!(
                "this push deletes {}: there is nothing to deploy",
                git_ref.as_deref().unwrap_or("the ref")
            ),
        ));
    }
    let trigger = Trigger {
        event_name: ctx.event_name.as_deref(),
        git_ref: git_ref.as_deref(),
        default_branch: ctx.default_branch.as_deref(),
        sha: ctx.sha.as_deref(),
        dispatch_environment: ctx.dispatch_input("environment"),
        dispatch_version: ctx.dispatch_input("version"),
    };
    let (environment, environment_source) = version::resolve_environment(
        raw.get("environment").map(str::trim),
        &trigger,
        &protected_environments,
    )?;
    // A rollback deploys no new image: with no version given and none to infer, it needs none.
    let (version, version_source) =
        match version::resolve_version(raw.get("version").map(str::trim), &trigger) {
            Err(_)
                if matches!(mode, Mode::Rollback | Mode::Uninstall)
                    && raw.get("version").is_none() =>
            {
                (String::new(), version::Source::NotNeeded)
            }
            r => r?,
        };
    let protected = version::is_protected(&environment, &protected_environments);
    if matches!(mode, Mode::Deploy | Mode::Plan | Mode::Resolve) {
        version::check_policy(
            &environment,
            &version,
            version_source,
            &protected_environments,
        )?;
    }

    let workspace = ctx.workspace.clone();
    let chart = raw
        .get("chart")
        .map(str::trim)
        .unwrap_or("charts/traderadmin")
        .to_string();
    let chart_repository = raw
        .get("chart_repository")
        .map(|u| parse_chart_repository(u.trim(), &chart))
        .transpose()?;
    let chart_dir = if chart.starts_with("oci://") {
        check_oci_chart(&chart)?;
        None
    } else if chart_repository.is_some() {
        None
    } else {
        let dir = workspace.join(&chart);
        if !dir.join("Chart.yaml").is_file() && mode != Mode::Resolve {
            return Err(bad(
                "chart",
                format!(
                    "{chart:?} is not a chart directory (no Chart.yaml in {})",
                    dir.display()
                ),
            ));
        }
        Some(dir)
    };
    let chart_version = raw
        .get("chart_version")
        .map(|v| parse_chart_version(v.trim(), chart_dir.is_some()))
        .transpose()?;
    let chart_credentials = match raw.get("chart_auth") {
        Some(text) => super::registry_auth::parse_host_auth("chart_auth", text)?,
        None => Default::default(),
    };
    let release = match raw.get("release").map(str::trim) {
        Some(r) => r.to_string(),
        None => default_release(&chart, chart_dir.as_deref()),
    };
    check_release(&release)?;
    let namespace = raw.get("namespace").map(str::trim).unwrap_or("trader");
    check_namespace(namespace)?;

    let values_files = match raw.get("values_files") {
        Some(list) => {
            let mut files = Vec::new();
            for line in list_lines(list) {
                let path = workspace.join(line);
                if !path.is_file() {
                    return Err(bad(
                        "values_files",
                        format!("file {line:?} does not exist ({})", path.display()),
                    ));
                }
                files.push(path);
            }
            files
        }
        None => {
            let default = workspace.join(format!("deploy/values/values-{environment}.yaml"));
            if default.is_file() {
                vec![default]
            } else {
                Vec::new()
            }
        }
    };

    let mut images = match raw.get("images") {
        Some(list) => parse_images(list, &version)?,
        None => Vec::new(),
    };
    let set = match raw.get("set") {
        Some(list) => parse_set(list)?,
        None => Vec::new(),
    };
    check_set_keeps_images(&set, &images)?;
    let set_string = match raw.get("set_string") {
        Some(list) => super::parse::parse_settings("set_string", list)?,
        None => Vec::new(),
    };
    super::parse::check_keeps_images("set_string", &set_string, &images)?;
    let inline_values = super::values::inline_values(raw.get("values"), raw.get("secret_values"))?;
    if let Some(dir) = chart_dir
        .as_deref()
        .filter(|d| d.join("Chart.yaml").is_file())
    {
        let files: Vec<&std::path::Path> = values_files
            .iter()
            .chain(inline_values.iter().flat_map(|v| v.files.iter()))
            .map(PathBuf::as_path)
            .collect();
        image_shapes(&mut images, dir, &files)?;
    }
    let reaches_cluster = matches!(
        mode,
        Mode::Deploy | Mode::Rollback | Mode::Plan | Mode::Uninstall
    );
    let kubeconfig = resolve_kubeconfig(raw, ctx, reaches_cluster)?;
    let kube_context = resolve_context(raw, &kubeconfig)?;
    let kube_token_env = super::cloud::exec_env(raw)?;
    if reaches_cluster {
        let input = if raw.get("kubeconfig_path").is_some() {
            "kubeconfig_path"
        } else {
            "kubeconfig"
        };
        check_exec_plugin(&kubeconfig, kube_context.as_deref(), input)?;
    }
    let github_token = raw.get("github_token").map(|t| Secret::new(t.trim()));
    let timeout = parse_timeout(raw.get("timeout").unwrap_or("5m"))?;
    let rollback_on_failure =
        parse_bool("rollback_on_failure", raw.get("rollback_on_failure"), true)?;
    let history_max = match raw.get("history_max") {
        None => 10,
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if n <= 1000 => n,
            _ => {
                return Err(bad(
                    "history_max",
                    format!("{s:?} is not a whole number from 0 to 1000"),
                ));
            }
        },
    };
    let pod_log_lines = match raw.get("pod_log_lines") {
        None => 20,
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if n <= 1000 => n,
            _ => {
                return Err(bad(
                    "pod_log_lines",
                    format!("{s:?} is not a whole number from 0 to 1000"),
                ));
            }
        },
    };
    let statefulset_on_delete = match raw.get("statefulset_on_delete") {
        None => crate::rollout::statefulset::OnDelete::Report,
        Some(s) => crate::rollout::statefulset::OnDelete::parse(s).ok_or_else(|| {
            bad(
                "statefulset_on_delete",
                format!("{s:?} is not one of report, roll"),
            )
        })?,
    };
    let pending_grace = match raw.get("pending_grace") {
        None => timeout * 2,
        Some(s) => parse_duration("pending_grace", s)?,
    };
    let smoke_tests = match raw.get("smoke_tests").map(str::trim) {
        None => None,
        Some(p) => {
            let path = workspace.join(p);
            if !path.is_file() {
                return Err(bad(
                    "smoke_tests",
                    format!("file {p:?} does not exist ({})", path.display()),
                ));
            }
            Some(path)
        }
    };
    // The spec is validated now, so a bad one fails before anything touches the cluster.
    let smoke_spec = match &smoke_tests {
        None => None,
        Some(path) => {
            let vars = crate::smoke::Vars {
                release: release.clone(),
                namespace: namespace.to_string(),
                version: version.clone(),
                environment: environment.clone(),
            };
            Some(
                crate::smoke::Spec::load(path, &vars)
                    .map_err(|e| bad("smoke_tests", e.to_string()))?,
            )
        }
    };
    let rollback_revision = match raw.get("rollback_revision").map(str::trim) {
        None => None,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(bad(
                    "rollback_revision",
                    format!("{s:?} is not a revision number (1 or more)"),
                ));
            }
        },
    };
    let verify_images = parse_bool("verify_images", raw.get("verify_images"), true)?;
    // What was approved is what runs: protected environments deploy by digest unless told not to.
    let pin_digests = parse_bool("pin_digests", raw.get("pin_digests"), protected)?;
    let registry_credentials = registry_credentials(raw)?;
    let require_distinct_approver = parse_bool(
        "require_distinct_approver",
        raw.get("require_distinct_approver"),
        false,
    )?;
    let deploy_window =
        super::window::deploy_window(raw.get("deploy_window"), &workspace, &environment)?;
    let window_override = parse_bool("window_override", raw.get("window_override"), false)?;
    let policies = super::policies::load(
        raw.get("policies"),
        raw.get("policies_rego_version"),
        &workspace,
    )?;
    let only_if_version = match raw.get("only_if_version").map(str::trim) {
        None => None,
        Some(v) if !matches!(mode, Mode::Rollback) => {
            return Err(bad(
                "only_if_version",
                format!("{v:?} is for mode rollback, not {}", mode.as_str()),
            ));
        }
        Some(v) => Some(v.to_string()),
    };
    let environment_url = raw
        .get("environment_url")
        .map(|u| match reqwest::Url::parse(u.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(u.trim().to_string())
            }
            _ => Err(bad(
                "environment_url",
                format!("{:?} is not an http(s) URL", u.trim()),
            )),
        })
        .transpose()?;
    let notify_webhook = raw
        .get("notify_webhook")
        .map(|u| parse_webhook(u.trim()))
        .transpose()?;
    let helm = PathBuf::from(raw.get("helm").map(str::trim).unwrap_or("helm"));

    Ok(Config {
        mode,
        environment,
        environment_source,
        version,
        version_source,
        git_ref,
        chart,
        chart_dir,
        chart_version,
        chart_repository,
        chart_credentials,
        release,
        namespace: namespace.to_string(),
        values_files,
        images,
        set,
        kubeconfig,
        kube_context,
        kube_token_env,
        github_token,
        protected,
        require_distinct_approver,
        deploy_window,
        window_override,
        protected_environments,
        policies,
        set_string,
        inline_values,
        environment_url,
        timeout,
        rollback_on_failure,
        history_max,
        pod_log_lines,
        statefulset_on_delete,
        pending_grace,
        smoke_tests,
        smoke_spec,
        rollback_revision,
        only_if_version,
        verify_images,
        pin_digests,
        registry_credentials,
        notify_webhook,
        helm,
        workspace,
    })
}

/// `chart_repository`: an http(s) URL, with `chart` then a chart name.
fn parse_chart_repository(url: &str, chart: &str) -> Result<String, InputError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(bad(
                "chart_repository",
                format!("{url:?} is not an http(s) URL of a chart repository"),
            ));
        }
    }
    let name_ok = !chart.is_empty()
        && chart
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(bad(
            "chart",
            format!("{chart:?} is not a chart name, as chart_repository needs (e.g. traderadmin)"),
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `oci://host[:port]/path/name`, without a tag (the version is `chart_version`).
fn check_oci_chart(chart: &str) -> Result<(), InputError> {
    let rest = &chart["oci://".len()..];
    let ok = crate::names::split_registry_host(rest).is_some_and(|(_, path)| {
        !path.is_empty()
            && path.split('/').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            })
    });
    if ok {
        Ok(())
    } else {
        Err(bad(
            "chart",
            format!("{chart:?} is not oci://host/path/name (the version goes in chart_version)"),
        ))
    }
}

/// `chart_version`: a version or semver range helm reads, for OCI and repository charts only.
fn parse_chart_version(v: &str, local: bool) -> Result<String, InputError> {
    if local {
        return Err(bad(
            "chart_version",
            "applies to OCI and repository charts; a chart directory is deployed as it is",
        ));
    }
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '.' | '-' | '+' | '~' | '^' | '<' | '>' | '=' | '*' | ',' | ' ' | '|'
                )
        });
    if ok {
        Ok(v.to_string())
    } else {
        Err(bad(
            "chart_version",
            format!("{v:?} is not a chart version or semver range (e.g. 1.2.3, ~1.2)"),
        ))
    }
}

/// Reads how the chart takes each image (one string, or a map of fields) from its values as
/// helm merges them; a key the chart does not have is refused.
pub(crate) fn image_shapes(
    images: &mut [ImageSetting],
    chart_dir: &std::path::Path,
    files: &[&std::path::Path],
) -> Result<(), InputError> {
    if images.is_empty() {
        return Ok(());
    }
    let values = crate::chart::values::merged_from_dir(chart_dir, files)
        .map_err(|e| bad("values_files", e))?;
    for i in images {
        i.shape = crate::chart::shape::shape_at(&values, &i.key).map_err(|e| bad("images", e))?;
    }
    Ok(())
}

/// `registry_auth` plus the `registry_username`/`registry_password` pair for `registry_host`.
fn registry_credentials(raw: &RawInputs) -> Result<crate::registry::HostCredentials, InputError> {
    let mut creds = match raw.get("registry_auth") {
        Some(text) => parse_registry_auth(text)?,
        None => Default::default(),
    };
    let pair = parse_registry_pair(
        raw.get("registry_username"),
        raw.get("registry_password"),
        raw.get("registry_host"),
    )?;
    if let Some((host, c)) = pair
        && creds.insert(&host, c).is_some()
    {
        return Err(bad(
            "registry_host",
            format!("{host} has credentials in registry_auth too: give them once"),
        ));
    }
    Ok(creds)
}

#[cfg(test)]
mod tests;
