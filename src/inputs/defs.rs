//! The action's inputs as declared: one table that action.yml, the CLI flags and the README are
//! checked against, the inputs that hold secrets, and the modes the `mode` input takes.

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
        "Chart path, OCI reference (oci://host/path/name), or the chart's name in chart_repository.",
        "charts/traderadmin",
        false,
    ),
    input(
        "chart_version",
        "Version (or semver range) of an OCI or repository chart.",
        "the latest",
        false,
    ),
    input(
        "chart_repository",
        "URL of a classic chart repository (one with an index.yaml) that holds the chart named by chart.",
        "none",
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
        "set_string",
        "Newline list of key=value settings passed with --set-string (values stay strings).",
        "none",
        true,
    ),
    input(
        "values",
        "Inline YAML values, applied after the values files.",
        "none",
        false,
    ),
    input(
        "secret_values",
        "Inline YAML values that are secret: masked whole and scalar by scalar, written 0600, applied after values.",
        "none",
        false,
    ),
    input(
        "kubeconfig",
        "Kubeconfig content, raw YAML or base64 (pass it from a secret).",
        "kubeconfig_path, else the files KUBECONFIG names (under the workspace in a workflow)",
        false,
    ),
    input(
        "kubeconfig_path",
        "Kubeconfig file written by an earlier step, relative to the workspace or an absolute path under it.",
        "none",
        false,
    ),
    input(
        "context",
        "Kubeconfig context to use instead of its current-context.",
        "the kubeconfig's current-context",
        false,
    ),
    input(
        "aws_role_arn",
        "IAM role for an EKS kubeconfig to assume with GitHub's OIDC token (needs `permissions: id-token: write`), instead of keys from a setup step.",
        "none",
        false,
    ),
    input(
        "gcp_workload_identity_provider",
        "Workload identity provider (projects/N/locations/global/workloadIdentityPools/P/providers/R) for a GKE kubeconfig to sign in with GitHub's OIDC token (needs `permissions: id-token: write`), instead of a setup step.",
        "none",
        false,
    ),
    input(
        "gcp_service_account",
        "Service account the GKE sign-in impersonates, with gcp_workload_identity_provider.",
        "none: the pool's own identity",
        false,
    ),
    input(
        "azure_client_id",
        "Entra ID application for an AKS kubeconfig (kubelogin --login workloadidentity) to sign in as with GitHub's OIDC token (needs `permissions: id-token: write`), with azure_tenant_id.",
        "AZURE_CLIENT_ID",
        false,
    ),
    input(
        "azure_tenant_id",
        "Entra ID tenant of azure_client_id.",
        "AZURE_TENANT_ID",
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
        "deploy_window",
        "When this environment may be deployed: YAML with calendar (an ISO MIC such as XNYS, or 24/7), margin (30m), windows (Sat 00:00-24:00), timezone, rollback (anytime or window).",
        "deploy/policy.yaml's deploy_windows.<environment> when present; else none",
        false,
    ),
    input(
        "window_override",
        "Deploy outside the deploy window (loud; a protected environment then needs an approver other than the run's actor).",
        "false",
        false,
    ),
    input(
        "policies",
        "Folder of Rego policies in conftest's convention (package main; deny, violation and warn rules; data files alongside), checked on the rendered release in plan, validate and before a deploy touches the cluster.",
        "none",
        false,
    ),
    input(
        "policies_rego_version",
        "Rego syntax of the policies: v1 (OPA 1.x, `deny contains msg if`) or v0 (OPA 0.x, `deny[msg] {`), as conftest's --rego-version.",
        "v1",
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
        "deploy, rollback, plan, validate, resolve or uninstall.",
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
        "pod_log_lines",
        "Last log lines of each failing container shown in a failed rollout's diagnostics (0 = none: an app's log may hold what the job log should not).",
        "20",
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
        "only_if_version",
        "Mode rollback only when the release's deployed revision runs this version; then back to the newest good revision running another one (a multi-region release's undo: a region that never changed or was already rolled back is left alone).",
        "none: roll back whatever runs",
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
        "true for protected environments, else false",
        false,
    ),
    input(
        "registry_auth",
        "Registry credentials per host, as docker's config.json holds them: {\"auths\": {\"ghcr.io\": {\"auth\": \"<base64 of user:password>\"}}}, raw or base64 (a secret: it is masked). Each goes only to its own host and to a token service on that host (Docker Hub: auth.docker.io).",
        "none (anonymous)",
        false,
    ),
    input(
        "registry_username",
        "Username for the one registry registry_host names (shorthand for registry_auth).",
        "none (anonymous)",
        false,
    ),
    input(
        "registry_password",
        "Password or token for the registry registry_host names (a secret: it is masked).",
        "none (anonymous)",
        false,
    ),
    input(
        "registry_host",
        "The registry host (e.g. ghcr.io) registry_username/registry_password are for; required with them.",
        "none",
        false,
    ),
    input(
        "chart_auth",
        "Chart registry and repository credentials per host, in registry_auth's form: {\"auths\": {\"ghcr.io\": {\"auth\": \"<base64 of user:password>\"}}}, raw or base64 (a secret: it is masked). They reach helm only through private config files of the run, for the chart and its dependencies.",
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
    "chart_auth",
    "github_token",
    "kubeconfig",
    "notify_webhook",
    "registry_auth",
    "registry_password",
    "secret_values",
];

/// Looks an input up by name.
pub(crate) fn spec(name: &str) -> Option<&'static InputSpec> {
    INPUTS.iter().find(|i| i.name == name)
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
    Uninstall,
}

impl Mode {
    pub(crate) const ALL: [Mode; 6] = [
        Mode::Deploy,
        Mode::Rollback,
        Mode::Plan,
        Mode::Validate,
        Mode::Resolve,
        Mode::Uninstall,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Deploy => "deploy",
            Mode::Rollback => "rollback",
            Mode::Plan => "plan",
            Mode::Validate => "validate",
            Mode::Resolve => "resolve",
            Mode::Uninstall => "uninstall",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}
