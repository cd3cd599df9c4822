//! The process environment: every variable name the crate reads, in one place, and the one
//! snapshot of the environment taken at start-up (tests build one from pairs instead).

use std::collections::BTreeMap;

/// Every environment variable name the program reads.
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
    /// A pinned clock for the deploy window (RFC 3339), for demos and tests: the window is
    /// decided as if it were that instant.
    pub(crate) const TRADER_DEPLOY_NOW: &str = "TRADER_DEPLOY_NOW";
    /// The runner this job runs on: tells the job apart from the run's others (one job at a time
    /// per runner).
    pub(crate) const RUNNER_NAME: &str = "RUNNER_NAME";
    /// The runner's directory for this repository (the workspace's parent), on the host.
    pub(crate) const RUNNER_WORKSPACE: &str = "RUNNER_WORKSPACE";
    /// Kubeconfig files, a path list, as kubectl and helm read it.
    pub(crate) const KUBECONFIG: &str = "KUBECONFIG";
    /// Log filter for the tracing subscriber (e.g. `debug`, `trader_deploy=trace`).
    pub(crate) const TRADER_DEPLOY_LOG: &str = "TRADER_DEPLOY_LOG";
    /// Prefix of the action inputs: `INPUT_<NAME>`, upper-cased.
    pub(crate) const INPUT_PREFIX: &str = "INPUT_";

    // `kube-token` (src/kube_token/): what the exec credential plugins it stands in for read.
    /// AWS credentials, as GitHub workflows (aws-actions/configure-aws-credentials) set them.
    pub(crate) const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub(crate) const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    pub(crate) const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
    /// The region when `--region` is not given: AWS CLI v2 reads `AWS_REGION` first, v1 only
    /// `AWS_DEFAULT_REGION`.
    pub(crate) const AWS_REGION: &str = "AWS_REGION";
    pub(crate) const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
    /// `legacy`: the regions STS once served globally sign for us-east-1 at sts.amazonaws.com.
    pub(crate) const AWS_STS_REGIONAL_ENDPOINTS: &str = "AWS_STS_REGIONAL_ENDPOINTS";
    /// Endpoint overrides (the SDKs' service-specific endpoint setting): STS's, then all services'.
    pub(crate) const AWS_ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
    pub(crate) const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    /// GKE (`gke-gcloud-auth-plugin`): Application Default Credentials, a service-account key or
    /// an `external_account` (workload identity federation) file, as google-github-actions/auth
    /// writes it.
    pub(crate) const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
    /// AKS (`kubelogin get-token`): the application, its tenant and its secret or federated
    /// token, as azure/login and Azure's SDKs read them; kubelogin's own names for `spn`.
    pub(crate) const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
    pub(crate) const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
    pub(crate) const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
    pub(crate) const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
    pub(crate) const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
    pub(crate) const AAD_SERVICE_PRINCIPAL_CLIENT_ID: &str = "AAD_SERVICE_PRINCIPAL_CLIENT_ID";
    pub(crate) const AAD_SERVICE_PRINCIPAL_CLIENT_SECRET: &str =
        "AAD_SERVICE_PRINCIPAL_CLIENT_SECRET";
    /// kubelogin's `--use-azurerm-env-vars` names (Terraform's azurerm provider's).
    pub(crate) const ARM_CLIENT_ID: &str = "ARM_CLIENT_ID";
    pub(crate) const ARM_CLIENT_SECRET: &str = "ARM_CLIENT_SECRET";
    pub(crate) const ARM_TENANT_ID: &str = "ARM_TENANT_ID";
    /// The action's `gcp_workload_identity_provider` and `gcp_service_account` inputs, as the
    /// rewritten kubeconfig's exec entry hands them to `kube-token`.
    pub(crate) const TRADER_DEPLOY_GCP_WORKLOAD_IDENTITY_PROVIDER: &str =
        "TRADER_DEPLOY_GCP_WORKLOAD_IDENTITY_PROVIDER";
    pub(crate) const TRADER_DEPLOY_GCP_SERVICE_ACCOUNT: &str = "TRADER_DEPLOY_GCP_SERVICE_ACCOUNT";
    /// GitHub's OIDC token service for the job (present with `permissions: id-token: write`).
    pub(crate) const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
    pub(crate) const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
    /// Extra CA certificates (a PEM bundle) the clouds' token endpoints may be signed by: a
    /// proxy's, or a test's.
    pub(crate) const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
    /// A role to assume with a web identity when no key is given (the SDKs' names; the action's
    /// `aws_role_arn` input sets AWS_ROLE_ARN in the exec entry): GitHub's OIDC token, or the
    /// token in AWS_WEB_IDENTITY_TOKEN_FILE.
    pub(crate) const AWS_ROLE_ARN: &str = "AWS_ROLE_ARN";
    pub(crate) const AWS_WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
    pub(crate) const AWS_ROLE_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";
    /// What the Kubernetes client tells an exec plugin (its `apiVersion` picks the answer's).
    pub(crate) const KUBERNETES_EXEC_INFO: &str = "KUBERNETES_EXEC_INFO";

    /// What helm gets of this process's environment (issue #17, finding 6): only these, never
    /// the `INPUT_*` (the token, kubeconfig and registry password) nor `GITHUB_*`. helm needs a
    /// PATH (exec credential plugins are found on it), a HOME (its default config, cache and
    /// data directories, and the cloud CLIs' own config), a TMPDIR, the proxy and CA settings
    /// its HTTP client honours.
    pub(crate) const HELM_PASSED: &[&str] = &[
        "PATH",
        "HOME",
        "TMPDIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        // Where helm keeps its files (base directories, and helm's own overrides of them). Not
        // HELM_KUBE*, HELM_NAMESPACE or HELM_DRIVER: they would point helm at another cluster,
        // namespace or release storage than the one this program watches.
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "HELM_CACHE_HOME",
        "HELM_CONFIG_HOME",
        "HELM_DATA_HOME",
        "HELM_PLUGINS",
        "HELM_REGISTRY_CONFIG",
        "HELM_REPOSITORY_CACHE",
        "HELM_REPOSITORY_CONFIG",
        // A kubeconfig's exec credential plugin runs as helm's child with helm's environment;
        // these are what the usual ones read (aws eks get-token, gke-gcloud-auth-plugin,
        // kubelogin, and GitHub's OIDC token request for federated sign-in), and what this
        // binary's `kube-token` reads in their place (the `AWS_*` prefix below, issue #15). The
        // same plugin, run by this program's kube client, sees them too.
        "GOOGLE_APPLICATION_CREDENTIALS",
        "USE_GKE_GCLOUD_AUTH_PLUGIN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ];
    /// Prefixes of the exec credential plugins' own settings, passed to helm as a whole.
    pub(crate) const HELM_PASSED_PREFIXES: &[&str] = &["AWS_", "AZURE_", "AAD_", "CLOUDSDK_"];
    /// Passed to helm only when it is not given `--kubeconfig` (the runner's own cluster: the
    /// kubeconfig file it names, or the in-cluster config of a runner in a pod).
    pub(crate) const HELM_DEFAULT_CLUSTER: &[&str] = &[
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
    ];
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

    /// The cloud credentials in this environment that `kube-token` signs with (the AWS secret
    /// key and session token, the Azure client secret, GitHub's OIDC request token): masked
    /// like the secret inputs, as a step's log could echo them.
    pub fn cloud_secrets(&self) -> Vec<String> {
        [
            vars::AWS_SECRET_ACCESS_KEY,
            vars::AWS_SESSION_TOKEN,
            vars::AZURE_CLIENT_SECRET,
            vars::AAD_SERVICE_PRINCIPAL_CLIENT_SECRET,
            vars::ARM_CLIENT_SECRET,
            vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN,
        ]
        .iter()
        .filter_map(|n| self.get(n))
        .map(|v| v.trim().to_string())
        .collect()
    }

    /// The tracing filter, if set.
    pub fn log_filter(&self) -> Option<&str> {
        self.get(vars::TRADER_DEPLOY_LOG)
    }
}
