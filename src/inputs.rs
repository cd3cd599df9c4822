//! INPUT_* variables or CLI flags, plus the GITHUB_* context → one typed, validated [`Config`].
//! This is the only module that reads the process environment.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use crate::context::RunContext;
use crate::manifest::Yaml;
use crate::secret::Secret;
use crate::version::{self, PolicyError, Source, Trigger};

/// Every environment variable name the program reads, in one place.
pub(crate) mod vars {
    pub(crate) const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
    pub(crate) const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
    pub(crate) const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
    pub(crate) const GITHUB_REF: &str = "GITHUB_REF";
    pub(crate) const GITHUB_SHA: &str = "GITHUB_SHA";
    pub(crate) const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
    pub(crate) const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
    pub(crate) const GITHUB_RUN_ATTEMPT: &str = "GITHUB_RUN_ATTEMPT";
    pub(crate) const GITHUB_ACTOR: &str = "GITHUB_ACTOR";
    pub(crate) const GITHUB_API_URL: &str = "GITHUB_API_URL";
    pub(crate) const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
    pub(crate) const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
    pub(crate) const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
    pub(crate) const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
    /// Log filter for the tracing subscriber (e.g. `debug`, `trader_deploy=trace`).
    pub(crate) const TRADER_DEPLOY_LOG: &str = "TRADER_DEPLOY_LOG";
    /// Prefix of the action inputs: `INPUT_<NAME>`, upper-cased.
    pub(crate) const INPUT_PREFIX: &str = "INPUT_";
}

/// One action input: the single source for action.yml parity, the CLI flags and the README.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub name: &'static str,
    pub(crate) description: &'static str,
    /// The default as documented (the code applies it; action.yml declares no default except
    /// where GitHub must supply it, like the token).
    pub(crate) default: &'static str,
    /// A newline-separated list (repeatable flag on the CLI).
    pub(crate) list: bool,
}

const fn input(
    name: &'static str,
    description: &'static str,
    default: &'static str,
    list: bool,
) -> InputSpec {
    InputSpec {
        name,
        description,
        default,
        list,
    }
}

/// The action's inputs, in the order action.yml and the README list them.
pub const INPUTS: &[InputSpec] = &[
    input(
        "environment",
        "Target environment (dev, staging, prod or any name).",
        "workflow_dispatch input `environment`; a v* tag → prod (prerelease → staging); a push to the default branch → dev",
        false,
    ),
    input(
        "version",
        "Image tag to deploy.",
        "workflow_dispatch input `version`; else the tag name; else sha-<first 8 of the sha>",
        false,
    ),
    input(
        "ref",
        "Git ref the version comes from.",
        "GITHUB_REF",
        false,
    ),
    input(
        "chart",
        "Chart path (or OCI reference).",
        "charts/traderadmin",
        false,
    ),
    input("release", "Helm release name.", "the chart's name", false),
    input("namespace", "Kubernetes namespace.", "trader", false),
    input(
        "values_files",
        "Newline-separated values files, in order.",
        "deploy/values/values-<environment>.yaml when it exists",
        true,
    ),
    input(
        "images",
        "Newline list of helm.key=repository; each key is set to repository:version.",
        "none",
        true,
    ),
    input(
        "set",
        "Newline list of extra key=value helm settings.",
        "none",
        true,
    ),
    input(
        "kubeconfig",
        "Kubeconfig, raw YAML or base64 (pass it from a secret).",
        "the runner's default kubeconfig",
        false,
    ),
    input(
        "github_token",
        "Token for the GitHub API.",
        "the job's token (github.token)",
        false,
    ),
    input(
        "protected_environments",
        "Comma list of environments that need approval and immutable semver tags.",
        "prod,production",
        false,
    ),
    input(
        "require_distinct_approver",
        "Refuse a protected deployment approved only by the actor who triggered the run.",
        "false",
        false,
    ),
    input(
        "environment_url",
        "URL of the deployed environment, shown on the GitHub deployment.",
        "none",
        false,
    ),
    input(
        "mode",
        "deploy, rollback, plan, validate or resolve.",
        "deploy",
        false,
    ),
    input(
        "timeout",
        "Deadline for the whole rollout (e.g. 5m, 90s).",
        "5m",
        false,
    ),
    input(
        "rollback_on_failure",
        "Roll back when the rollout or the smoke tests fail.",
        "true",
        false,
    ),
    input(
        "history_max",
        "Helm history kept (0 = unlimited).",
        "10",
        false,
    ),
    input(
        "statefulset_on_delete",
        "How an updateStrategy OnDelete StatefulSet is handled: report (name the pods still on the old revision, do not wait) or roll (delete them one at a time, highest ordinal first, and wait for each).",
        "report",
        false,
    ),
    input(
        "pending_grace",
        "How old a pending helm record written outside this action must be before it counts as stuck and is rolled back (younger: wait for it).",
        "twice the timeout",
        false,
    ),
    input(
        "smoke_tests",
        "Path to the smoke test spec (YAML; docs/smoke-tests.md).",
        "none",
        false,
    ),
    input(
        "rollback_revision",
        "Target revision of mode rollback.",
        "the last deployed revision before the current one",
        false,
    ),
    input(
        "verify_images",
        "Check that each image tag exists in its registry first.",
        "true",
        false,
    ),
    input(
        "pin_digests",
        "Deploy each image as repository@sha256:… (the digest its registry reports for the tag).",
        "false",
        false,
    ),
    input(
        "registry_username",
        "Username for the image registries (Basic, or for their bearer tokens).",
        "none (anonymous)",
        false,
    ),
    input(
        "registry_password",
        "Password or token for the image registries (a secret: it is masked).",
        "none (anonymous)",
        false,
    ),
    input(
        "notify_webhook",
        "URL that receives a JSON result (a secret: it is masked).",
        "none",
        false,
    ),
    input("helm", "The helm binary to run.", "helm (from PATH)", false),
];

/// Inputs whose values are secrets: masked before anything can log them.
pub(crate) const SECRET_INPUTS: &[&str] = &[
    "github_token",
    "kubeconfig",
    "notify_webhook",
    "registry_password",
];

/// Looks an input up by name.
pub(crate) fn spec(name: &str) -> Option<&'static InputSpec> {
    INPUTS.iter().find(|i| i.name == name)
}

/// A snapshot of the process environment (tests build one from a map instead).
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads the whole process environment once.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    #[cfg(test)]
    pub(crate) fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value; an empty string counts as unset, as GitHub passes unset inputs as "".
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    pub fn in_actions(&self) -> bool {
        self.get(vars::GITHUB_ACTIONS) == Some("true")
    }

    /// The tracing filter, if set.
    pub fn log_filter(&self) -> Option<&str> {
        self.get(vars::TRADER_DEPLOY_LOG)
    }
}

/// The name of the variable that carries an input: `INPUT_` + upper case, spaces to `_`.
pub fn input_var(name: &str) -> String {
    format!(
        "{}{}",
        vars::INPUT_PREFIX,
        name.to_uppercase().replace(' ', "_")
    )
}

/// The raw string inputs, from INPUT_* or the CLI. Records which inputs were read, so a test
/// proves that every declared input is used.
#[derive(Debug, Default)]
pub struct RawInputs {
    values: BTreeMap<&'static str, String>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl RawInputs {
    /// From `INPUT_<NAME>` variables, as a docker action receives them.
    pub fn from_env(env: &Env) -> Self {
        let values = INPUTS
            .iter()
            .filter_map(|i| Some((i.name, env.get(&input_var(i.name))?.to_string())))
            .collect();
        Self {
            values,
            read: RefCell::default(),
        }
    }

    /// From name → value pairs (CLI flags, tests). Unknown names are a programming error.
    pub(crate) fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        let values = pairs
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| {
                let spec = spec(k).unwrap_or_else(|| panic!("unknown input {k:?}"));
                (spec.name, v)
            })
            .collect();
        Self {
            values,
            read: RefCell::default(),
        }
    }

    pub(crate) fn get(&self, name: &'static str) -> Option<&str> {
        debug_assert!(spec(name).is_some(), "unknown input {name:?}");
        self.read.borrow_mut().insert(name);
        self.values.get(name).map(String::as_str)
    }

    /// The names read so far.
    #[cfg(test)]
    pub(crate) fn read_names(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// The raw values of the secret inputs, to be masked before validation can echo anything.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for name in SECRET_INPUTS {
            match (*name, self.values.get(name)) {
                (_, None) => {}
                ("kubeconfig", Some(v)) => match parse_kubeconfig(v) {
                    Ok(k) => out.extend(k.masks()),
                    // Unreadable: its content is unknown, so every line of it is masked.
                    Err(_) => out.extend(secret_fragments(v)),
                },
                (_, Some(v)) => out.extend(secret_fragments(v)),
            }
        }
        out
    }
}

/// A secret as the masks must see it: the whole value, and each line of a multi-line one.
pub(crate) fn secret_fragments(value: &str) -> Vec<String> {
    let mut out = vec![value.trim().to_string()];
    if value.contains('\n') {
        out.extend(
            value
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 8)
                .map(str::to_string),
        );
    }
    out.retain(|s| !s.is_empty());
    out.dedup();
    out
}

/// A bad input: names the input and says what is wrong, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{input}`: {message}")]
pub struct InputError {
    pub(crate) input: &'static str,
    pub(crate) message: String,
}

impl From<PolicyError> for InputError {
    fn from(e: PolicyError) -> Self {
        InputError {
            input: e.input,
            message: e.message,
        }
    }
}

fn bad(input: &'static str, message: impl Into<String>) -> InputError {
    InputError {
        input,
        message: message.into(),
    }
}

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    Deploy,
    Rollback,
    Plan,
    Validate,
    Resolve,
}

impl Mode {
    pub(crate) const ALL: [Mode; 5] = [
        Mode::Deploy,
        Mode::Rollback,
        Mode::Plan,
        Mode::Validate,
        Mode::Resolve,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Deploy => "deploy",
            Mode::Rollback => "rollback",
            Mode::Plan => "plan",
            Mode::Validate => "validate",
            Mode::Resolve => "resolve",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One `images` entry: the helm key and the image it is set to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageSetting {
    /// Helm values key, e.g. `image.pythonOrch`.
    pub key: String,
    /// Repository without tag, e.g. `ghcr.io/acme/python-orch`.
    pub repository: String,
    /// `repository:version`.
    pub reference: String,
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
    pub(crate) release: String,
    pub(crate) namespace: String,
    pub(crate) values_files: Vec<PathBuf>,
    pub(crate) images: Vec<ImageSetting>,
    pub(crate) set: Vec<(String, String)>,
    pub(crate) kubeconfig: Option<Kubeconfig>,
    pub(crate) github_token: Option<Secret>,
    pub(crate) protected: bool,
    /// Refuse approvals given only by the run's actor.
    pub(crate) require_distinct_approver: bool,
    /// The environment's URL for the GitHub deployment (http(s)).
    pub(crate) environment_url: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) rollback_on_failure: bool,
    pub(crate) history_max: u32,
    /// What to do with `updateStrategy: OnDelete` StatefulSets.
    pub(crate) statefulset_on_delete: crate::statefulset::OnDelete,
    /// Age at which a pending helm record that no run of this action holds counts as stuck.
    pub(crate) pending_grace: Duration,
    pub(crate) smoke_tests: Option<PathBuf>,
    /// The smoke spec at `smoke_tests`, validated.
    pub(crate) smoke_spec: Option<crate::smoke::Spec>,
    pub(crate) rollback_revision: Option<u32>,
    pub(crate) verify_images: bool,
    /// Deploy images by digest (`repository@sha256:…`).
    pub(crate) pin_digests: bool,
    /// Registry credentials: both or neither.
    pub(crate) registry_username: Option<String>,
    pub(crate) registry_password: Option<Secret>,
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
        if let Some(k) = &self.kubeconfig {
            out.extend(k.masks());
        }
        if let Some(w) = &self.notify_webhook {
            out.extend(secret_fragments(w.expose()));
        }
        if let Some(p) = &self.registry_password {
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
                format!("{m:?} is not a mode (deploy, rollback, plan, validate, resolve)"),
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
        && mode != Mode::Rollback
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
            Err(_) if mode == Mode::Rollback && raw.get("version").is_none() => {
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
    let chart_dir = if chart.starts_with("oci://") {
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

    let images = match raw.get("images") {
        Some(list) => parse_images(list, &version)?,
        None => Vec::new(),
    };
    let set = match raw.get("set") {
        Some(list) => parse_set(list)?,
        None => Vec::new(),
    };
    let kubeconfig = raw.get("kubeconfig").map(parse_kubeconfig).transpose()?;
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
    let statefulset_on_delete = match raw.get("statefulset_on_delete") {
        None => crate::statefulset::OnDelete::Report,
        Some(s) => crate::statefulset::OnDelete::parse(s).ok_or_else(|| {
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
    let pin_digests = parse_bool("pin_digests", raw.get("pin_digests"), false)?;
    let registry_username = raw.get("registry_username").map(|u| u.trim().to_string());
    let registry_password = raw.get("registry_password").map(|p| Secret::new(p.trim()));
    match (&registry_username, &registry_password) {
        (Some(_), None) => {
            return Err(bad(
                "registry_password",
                "is required with registry_username",
            ));
        }
        (None, Some(_)) => {
            return Err(bad(
                "registry_username",
                "is required with registry_password",
            ));
        }
        (Some(u), _) if u.contains(':') || u.chars().any(char::is_control) => {
            return Err(bad(
                "registry_username",
                format!("{u:?} may not contain ':' or control characters"),
            ));
        }
        _ => {}
    }
    let require_distinct_approver = parse_bool(
        "require_distinct_approver",
        raw.get("require_distinct_approver"),
        false,
    )?;
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
        release,
        namespace: namespace.to_string(),
        values_files,
        images,
        set,
        kubeconfig,
        github_token,
        protected,
        require_distinct_approver,
        environment_url,
        timeout,
        rollback_on_failure,
        history_max,
        statefulset_on_delete,
        pending_grace,
        smoke_tests,
        smoke_spec,
        rollback_revision,
        verify_images,
        pin_digests,
        registry_username,
        registry_password,
        notify_webhook,
        helm,
        workspace,
    })
}

/// Lines of a list input: trimmed, without blanks and `#` comments.
fn list_lines(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn parse_protected(value: Option<&str>) -> Result<Vec<String>, InputError> {
    let Some(value) = value else {
        return Ok(vec!["prod".into(), "production".into()]);
    };
    let mut out = Vec::new();
    for name in value
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        version::check_environment_name("protected_environments", name)?;
        out.push(name.to_string());
    }
    Ok(out)
}

fn check_ref(r: &str) -> Result<(), InputError> {
    let ok = r.starts_with("refs/")
        && r.len() > 5
        && !r.contains("..")
        && !r.ends_with('/')
        && !r
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "ref",
            format!("{r:?} is not a full git ref (e.g. refs/tags/v1.2.0, refs/heads/main)"),
        ))
    }
}

/// The release name when none is given: the chart's `name`, else the chart path's last segment.
fn default_release(chart: &str, chart_dir: Option<&Path>) -> String {
    if let Some(dir) = chart_dir
        && let Ok(text) = std::fs::read_to_string(dir.join("Chart.yaml"))
        && let Ok(doc) = crate::manifest::parse::<Yaml>(&text)
        && let Some(name) = doc.get("name").and_then(|n| n.as_str())
    {
        return name.to_string();
    }
    let last = chart
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(chart);
    last.split(':').next().unwrap_or(last).to_string()
}

fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_release(r: &str) -> Result<(), InputError> {
    let ok = r.len() <= 53 && r.split('.').all(|part| is_dns_label(part, 53));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "release",
            format!(
                "{r:?} is not a valid helm release name (lower-case letters, digits, '-', '.'; at most 53)"
            ),
        ))
    }
}

fn check_namespace(n: &str) -> Result<(), InputError> {
    if is_dns_label(n, 63) {
        Ok(())
    } else {
        Err(bad(
            "namespace",
            format!("{n:?} is not a valid namespace (lower-case letters, digits, '-'; at most 63)"),
        ))
    }
}

fn is_helm_key(k: &str) -> bool {
    !k.is_empty()
        && k.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '[' | ']'))
        })
}

/// Checks an image repository without tag or digest: `[host[:port]/]path`.
fn check_repository(repo: &str) -> Result<(), String> {
    if repo.contains('@') {
        return Err("has a digest; give the repository only".into());
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    let first = parts[0];
    let has_host =
        parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        let (host, port) = match first.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (first, None),
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
        if !host_ok || !port_ok {
            return Err(format!("registry host {first:?} is not host[:port]"));
        }
        parts.remove(0);
    }
    if parts.is_empty() {
        return Err("has no repository path".into());
    }
    for p in &parts {
        if p.contains(':') {
            return Err("has a tag; give the repository only (the tag is `version`)".into());
        }
        let ok = !p.is_empty()
            && p.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "path component {p:?} is not lower-case letters, digits and separators"
            ));
        }
    }
    Ok(())
}

fn parse_images(list: &str, version: &str) -> Result<Vec<ImageSetting>, InputError> {
    let mut out: Vec<ImageSetting> = Vec::new();
    for (n, line) in list_lines(list).enumerate() {
        let Some((key, repo)) = line.split_once('=') else {
            return Err(bad(
                "images",
                format!(
                    "entry {} {line:?} is not helm.key=repository (e.g. image.pythonOrch=ghcr.io/acme/python-orch)",
                    n + 1
                ),
            ));
        };
        let (key, repo) = (key.trim(), repo.trim());
        if !is_helm_key(key) {
            return Err(bad(
                "images",
                format!("entry {} key {key:?} is not a helm values key", n + 1),
            ));
        }
        check_repository(repo).map_err(|why| {
            bad(
                "images",
                format!("entry {} repository {repo:?} {why}", n + 1),
            )
        })?;
        if out.iter().any(|i| i.key == key) {
            return Err(bad("images", format!("key {key:?} is given twice")));
        }
        out.push(ImageSetting {
            key: key.to_string(),
            repository: repo.to_string(),
            reference: format!("{repo}:{version}"),
        });
    }
    Ok(out)
}

fn parse_set(list: &str) -> Result<Vec<(String, String)>, InputError> {
    let mut out = Vec::new();
    for (n, line) in list_lines(list).enumerate() {
        match line.split_once('=') {
            Some((k, v)) if is_helm_key(k.trim()) => {
                out.push((k.trim().to_string(), v.to_string()))
            }
            _ => {
                return Err(bad(
                    "set",
                    format!(
                        "entry {} {line:?} is not key=value (e.g. replicaCount=2)",
                        n + 1
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// A kubeconfig given raw or as base64. The error never shows the value: it is a secret.
fn parse_kubeconfig(value: &str) -> Result<Kubeconfig, InputError> {
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

fn parse_timeout(s: &str) -> Result<Duration, InputError> {
    let range = (
        Duration::from_secs(1),
        Duration::from_secs(6 * 3600),
        "1s to 6h",
    );
    parse_duration_in("timeout", s, range)
}

/// `pending_grace`: 0s (a pending record is stuck at once) to a day.
fn parse_duration(input: &'static str, s: &str) -> Result<Duration, InputError> {
    let range = (Duration::ZERO, Duration::from_secs(24 * 3600), "0s to 24h");
    parse_duration_in(input, s, range)
}

fn parse_duration_in(
    input: &'static str,
    s: &str,
    (min, max, shown): (Duration, Duration, &str),
) -> Result<Duration, InputError> {
    let s = s.trim();
    let parsed = if s.chars().all(|c| c.is_ascii_digit()) {
        s.parse::<u64>().ok().map(Duration::from_secs)
    } else {
        humantime::parse_duration(s).ok()
    };
    match parsed {
        Some(d) if d >= min && d <= max => Ok(d),
        Some(_) => Err(bad(input, format!("{s:?} is out of range ({shown})"))),
        None => Err(bad(
            input,
            format!("{s:?} is not a duration (e.g. 5m, 90s, 1h30m)"),
        )),
    }
}

/// Booleans as GitHub's toolkit reads them (`true`/`True`/`TRUE`, `false`/`False`/`FALSE`).
fn parse_bool(input: &'static str, v: Option<&str>, default: bool) -> Result<bool, InputError> {
    match v.map(str::trim) {
        None => Ok(default),
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(bad(input, format!("{other:?} is not true or false"))),
    }
}

fn parse_webhook(u: &str) -> Result<Secret, InputError> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(Secret::new(u))
        }
        _ => Err(bad(
            "notify_webhook",
            "is not an http(s) URL (value not shown: it is a secret)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> RunContext {
        RunContext::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap()
    }

    fn push_main() -> RunContext {
        let mut c = ctx(&[
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
            ("GITHUB_REPOSITORY", "acme/trader"),
        ]);
        c.default_branch = Some("main".into());
        c
    }

    fn raw(pairs: &[(&str, &str)]) -> RawInputs {
        RawInputs::from_pairs(pairs.iter().map(|(k, v)| (*k, v.to_string())))
    }

    #[test]
    fn a_rollback_needs_no_version_but_a_deploy_does() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("chart")).unwrap();
        std::fs::write(
            ws.path().join("chart/Chart.yaml"),
            "name: app\nversion: 0.1.0\n",
        )
        .unwrap();
        let local = RunContext {
            workspace: ws.path().to_path_buf(),
            ..RunContext::default()
        };
        let pairs = [("chart", "chart"), ("environment", "dev")];
        let rollback = resolve(&raw(&[pairs[0], pairs[1], ("mode", "rollback")]), &local).unwrap();
        assert_eq!(rollback.version, "");
        assert_eq!(rollback.version_source, version::Source::NotNeeded);
        let deploy = resolve(&raw(&[pairs[0], pairs[1], ("mode", "deploy")]), &local).unwrap_err();
        assert_eq!(deploy.input, "version");
        // A version that is given is still checked in a rollback.
        let bad = resolve(
            &raw(&[pairs[0], pairs[1], ("mode", "rollback"), ("version", "a b")]),
            &local,
        );
        assert_eq!(bad.unwrap_err().input, "version");
        // The grace of a pending record defaults to twice the timeout.
        let c = resolve(
            &raw(&[pairs[0], pairs[1], ("mode", "rollback"), ("timeout", "90s")]),
            &local,
        )
        .unwrap();
        assert_eq!(c.pending_grace, Duration::from_secs(180));
    }

    #[test]
    fn registry_credentials_come_in_pairs_and_the_password_is_masked() {
        let base = [
            ("mode", "resolve"),
            ("environment", "dev"),
            ("version", "v1.0.0"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            resolve(&raw(&pairs), &push_main())
        };
        let e = with(&[("registry_username", "bot")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `registry_password`: is required with registry_username"
        );
        let e = with(&[("registry_password", "hunter2-token")]).unwrap_err();
        assert_eq!(e.input, "registry_username");
        assert!(!e.to_string().contains("hunter2"));
        let e = with(&[
            ("registry_username", "a:b"),
            ("registry_password", "pw-123456"),
        ])
        .unwrap_err();
        assert_eq!(e.input, "registry_username");
        let c = with(&[
            ("registry_username", "bot"),
            ("registry_password", "hunter2-token"),
            ("pin_digests", "true"),
        ])
        .unwrap();
        assert_eq!(c.registry_username.as_deref(), Some("bot"));
        assert!(c.pin_digests);
        assert!(c.secrets().contains(&"hunter2-token".to_string()));
        let r = raw(&[("registry_password", "hunter2-token")]);
        assert!(r.secret_values().contains(&"hunter2-token".to_string()));
        assert!(!with(&[]).unwrap().pin_digests);
        assert_eq!(
            with(&[("pin_digests", "yes")]).unwrap_err().input,
            "pin_digests"
        );
    }

    #[test]
    fn a_bad_smoke_spec_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("smoke.yaml"),
            "checks:\n  - name: ready\n    service: ${release}\n    port: http\n    expect: {status: 2000}\n",
        )
        .unwrap();
        let mut ctx = push_main();
        ctx.workspace = dir.path().to_path_buf();
        let r = raw(&[
            ("mode", "resolve"),
            ("environment", "dev"),
            ("version", "v1.0.0"),
            ("smoke_tests", "smoke.yaml"),
        ]);
        let e = resolve(&r, &ctx).unwrap_err();
        assert_eq!(e.input, "smoke_tests");
        assert!(
            e.to_string()
                .contains("check \"ready\": `expect.status` 2000 is not an HTTP status"),
            "{e}"
        );
        std::fs::write(
            dir.path().join("smoke.yaml"),
            "checks:\n  - name: ready\n    service: ${release}\n    port: http\n",
        )
        .unwrap();
        let c = resolve(&r, &ctx).unwrap();
        let spec = c.smoke_spec.unwrap();
        assert_eq!(
            spec.checks[0].target.to_string(),
            "service/traderadmin:http/"
        );
    }

    #[test]
    fn every_input_is_read() {
        let r = raw(&[
            ("mode", "resolve"),
            ("environment", "dev"),
            ("version", "v1.0.0"),
        ]);
        resolve(&r, &push_main()).unwrap();
        let all: BTreeSet<&str> = INPUTS.iter().map(|i| i.name).collect();
        assert_eq!(r.read_names(), all);
    }

    #[test]
    fn empty_strings_are_unset() {
        let env = Env::from_pairs([("INPUT_ENVIRONMENT", ""), ("INPUT_VERSION", "  ")]);
        let r = RawInputs::from_env(&env);
        assert_eq!(r.get("environment"), None);
        assert_eq!(r.get("version"), None);
    }

    #[test]
    fn defaults_on_a_push_to_main() {
        let c = resolve(&raw(&[("mode", "resolve")]), &push_main()).unwrap();
        assert_eq!(c.environment, "dev");
        assert_eq!(c.version, "sha-01234567");
        assert_eq!(c.release, "traderadmin");
        assert_eq!(c.namespace, "trader");
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert_eq!(c.history_max, 10);
        assert!(c.rollback_on_failure && c.verify_images && !c.protected);
    }

    #[test]
    fn images_take_the_version() {
        let c = resolve(
            &raw(&[
                ("mode", "resolve"),
                ("version", "v1.2.0"),
                ("environment", "prod"),
                (
                    "images",
                    "image.pythonOrch=ghcr.io/acme/python-orch\n\n# comment\nimage.goScanner = 127.0.0.1:5000/acme/go-scanner\n",
                ),
            ]),
            &push_main(),
        )
        .unwrap();
        let refs: Vec<_> = c.images.iter().map(|i| i.reference.as_str()).collect();
        assert_eq!(
            refs,
            [
                "ghcr.io/acme/python-orch:v1.2.0",
                "127.0.0.1:5000/acme/go-scanner:v1.2.0"
            ]
        );
        assert!(c.protected);
    }

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
    fn timeouts() {
        assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_timeout("120").unwrap(), Duration::from_secs(120));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("7h").is_err());
        assert!(parse_timeout("5x").is_err());
    }
}
