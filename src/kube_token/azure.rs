//! AKS's token as `kubelogin get-token --login spn|workloadidentity` gets it: the Microsoft
//! identity platform's client credentials grant (OAuth 2.0, v2.0 endpoint
//! `{authority}/{tenant}/oauth2/v2.0/token`) for `<server-id>/.default`, the application proving
//! itself with its client secret (`spn`) or with a federated token as client assertion
//! (`workloadidentity`: `AZURE_FEDERATED_TOKEN_FILE`, or GitHub's OIDC token for
//! `api://AzureADTokenExchange` when the job has one). kubelogin's flags first, then the
//! environment it and Azure's SDKs read. The request is MSAL's (the library azure-identity and
//! kubelogin sign in with; the tests drive azure-identity against the same stand-in).

use std::time::SystemTime;

use super::oauth::{self, FORM, OAuthError};
use super::{KubeTokenError, Plugin};
use crate::env::{Env, vars};
use crate::secret::Secret;

/// The audience GitHub's OIDC token is asked for, as Entra ID's federated credentials expect.
pub(super) const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the application proves itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Login {
    Spn,
    WorkloadIdentity,
}

/// What `kubelogin get-token …` asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Args {
    pub(super) login: Option<String>,
    pub(super) server_id: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) tenant_id: Option<String>,
    pub(super) environment: Option<String>,
    pub(super) authority_host: Option<String>,
    pub(super) federated_token_file: Option<String>,
    pub(super) azurerm_env: bool,
}

/// kubelogin's flags that take a value, and the ones that do not.
const VALUED: &[&str] = &[
    "--login",
    "-l",
    "--server-id",
    "--client-id",
    "--client-secret",
    "--tenant-id",
    "-t",
    "--environment",
    "-e",
    "--authority-host",
    "--federated-token-file",
    "--token-cache-dir",
    "--timeout",
];
const BOOLEAN: &[&str] = &[
    "--use-azurerm-env-vars",
    "--legacy",
    "--disable-instance-discovery",
];

/// Reads `get-token …` (the arguments after `kubelogin`).
pub(super) fn parse(args: &[String]) -> Result<Args, String> {
    let mut out = Args::default();
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("get-token") {
        return Err("expected `kubelogin get-token …`".into());
    }
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if BOOLEAN.contains(&flag) {
            if flag == "--use-azurerm-env-vars" {
                out.azurerm_env = inline.as_deref() != Some("false");
            }
            continue;
        }
        if !VALUED.contains(&flag) {
            return Err(format!("the flag {flag:?} is not one kube-token reads"));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone(),
        };
        let slot = match flag {
            "--login" | "-l" => &mut out.login,
            "--server-id" => &mut out.server_id,
            "--client-id" => &mut out.client_id,
            "--client-secret" => &mut out.client_secret,
            "--tenant-id" | "-t" => &mut out.tenant_id,
            "--environment" | "-e" => &mut out.environment,
            "--authority-host" => &mut out.authority_host,
            "--federated-token-file" => &mut out.federated_token_file,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(out)
}

/// The login `args` asks for, when kube-token answers it.
pub(super) fn login_of(args: &[String]) -> Option<Login> {
    match parse(args).ok()?.login?.as_str() {
        "spn" => Some(Login::Spn),
        "workloadidentity" => Some(Login::WorkloadIdentity),
        _ => None,
    }
}

/// The authority host: `--authority-host`, `AZURE_AUTHORITY_HOST`, else the cloud's
/// (`--environment`, kubelogin's names), always with one trailing `/`.
pub(super) fn authority(args: &Args, env: &Env) -> Result<String, String> {
    let host = match args
        .authority_host
        .clone()
        .or_else(|| env.get(vars::AZURE_AUTHORITY_HOST).map(str::to_string))
    {
        Some(h) => h.trim().to_string(),
        None => match args
            .environment
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("azurepubliccloud") => "https://login.microsoftonline.com/".into(),
            Some("azurechinacloud") => "https://login.chinacloudapi.cn/".into(),
            Some("azureusgovernmentcloud") => "https://login.microsoftonline.us/".into(),
            Some(_) => {
                return Err(format!(
                    "the environment {:?} is not one kube-token knows (AzurePublicCloud, \
                     AzureChinaCloud, AzureUSGovernmentCloud); give --authority-host",
                    args.environment.as_deref().unwrap_or_default()
                ));
            }
        },
    };
    if !host.starts_with("https://") {
        return Err(format!("the authority host {host:?} is not an https URL"));
    }
    Ok(format!("{}/", host.trim_end_matches('/')))
}

/// The token endpoint of `tenant` at `authority`.
pub(super) fn token_url(authority: &str, tenant: &str) -> String {
    format!("{authority}{tenant}/oauth2/v2.0/token")
}

/// Why no AKS token was made. Never carries a secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    #[error("{0}")]
    Missing(String),
    #[error("failed to read the federated token file {path:?}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Oidc(#[from] crate::github::oidc::OidcError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

/// The first of `sources` that is set.
fn first(sources: &[Option<&str>]) -> Option<String> {
    sources
        .iter()
        .flatten()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

/// The form of the client credentials grant, in MSAL's order.
pub(super) fn grant_form(client_id: &str, scope: &str, proof: &Proof) -> String {
    match proof {
        Proof::Secret(secret) => oauth::form(&[
            ("client_id", client_id),
            ("grant_type", "client_credentials"),
            ("client_secret", secret.expose()),
            ("scope", scope),
        ]),
        Proof::Assertion(assertion) => oauth::form(&[
            ("client_id", client_id),
            ("grant_type", "client_credentials"),
            ("client_assertion", assertion.expose()),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("scope", scope),
        ]),
    }
}

/// What the application proves itself with.
pub(super) enum Proof {
    Secret(Secret),
    Assertion(Secret),
}

/// Answers `kubelogin get-token --login spn|workloadidentity …`.
pub(super) fn run(args: &[String], env: &Env, now: SystemTime) -> Result<String, KubeTokenError> {
    let plugin = Plugin::Kubelogin.as_str();
    let usage = |message: String| KubeTokenError::Usage { plugin, message };
    let fail = |source: AzureError| KubeTokenError::Azure { plugin, source };
    let a = parse(args).map_err(usage)?;
    let login =
        login_of(args).ok_or_else(|| usage("give --login spn or workloadidentity".into()))?;
    let server_id = a.server_id.clone().ok_or_else(|| {
        usage("give --server-id (AKS: 6dae42f8-4368-4678-94ff-3960e28e3630)".into())
    })?;
    let authority = authority(&a, env).map_err(usage)?;
    let (id_vars, secret_vars, tenant_vars): (&[&str], &[&str], &[&str]) = if a.azurerm_env {
        (
            &[vars::ARM_CLIENT_ID],
            &[vars::ARM_CLIENT_SECRET],
            &[vars::ARM_TENANT_ID],
        )
    } else {
        (
            &[vars::AAD_SERVICE_PRINCIPAL_CLIENT_ID, vars::AZURE_CLIENT_ID],
            &[
                vars::AAD_SERVICE_PRINCIPAL_CLIENT_SECRET,
                vars::AZURE_CLIENT_SECRET,
            ],
            &[vars::AZURE_TENANT_ID],
        )
    };
    let from = |flag: &Option<String>, names: &[&str]| {
        let mut sources = vec![flag.as_deref()];
        sources.extend(names.iter().map(|n| env.get(n)));
        first(&sources)
    };
    let missing = |what: &str, flag: &str, names: &[&str]| {
        fail(AzureError::Missing(format!(
            "no {what}: give {flag} or set {}",
            names.join(" or ")
        )))
    };
    let client_id =
        from(&a.client_id, id_vars).ok_or_else(|| missing("client id", "--client-id", id_vars))?;
    let tenant = from(&a.tenant_id, tenant_vars)
        .ok_or_else(|| missing("tenant id", "--tenant-id", tenant_vars))?;
    let scope = format!("{}/.default", server_id.trim().trim_end_matches('/'));
    let url = token_url(&authority, &tenant);
    let secs = jiff::Timestamp::try_from(now)
        .map_err(|_| KubeTokenError::Clock { plugin })?
        .as_second();
    let secret = from(&a.client_secret, secret_vars);
    let token = oauth::block_on(async {
        let client = oauth::client(env)?;
        let proof = match (login, secret) {
            (Login::Spn, Some(secret)) => Proof::Secret(Secret::new(secret)),
            (Login::Spn, None) => {
                return Ok(Err(missing(
                    "client secret",
                    "--client-secret",
                    secret_vars,
                )));
            }
            (Login::WorkloadIdentity, _) => match federated_token(&client, &a, env).await {
                Ok(t) => Proof::Assertion(t),
                Err(e) => return Ok(Err(fail(e))),
            },
        };
        let what = "the client credentials grant";
        let request = client
            .post(&url)
            .header("content-type", FORM)
            .body(grant_form(&client_id, &scope, &proof));
        let text = oauth::exchange(what, &url, request).await?;
        Ok(Ok(oauth::token_of(what, &url, &text)?))
    })
    .map_err(|e| fail(e.into()))??;
    super::exec_credential::bearer_until(
        env,
        plugin,
        secs + token.expires_in,
        token.access_token.expose(),
    )
}

/// The federated token: `--federated-token-file` or `AZURE_FEDERATED_TOKEN_FILE` (read anew each
/// time: the platform rotates it), else GitHub's OIDC token for Entra ID.
async fn federated_token(
    client: &reqwest::Client,
    a: &Args,
    env: &Env,
) -> Result<Secret, AzureError> {
    let file = first(&[
        a.federated_token_file.as_deref(),
        env.get(vars::AZURE_FEDERATED_TOKEN_FILE),
    ]);
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|source| AzureError::TokenFile {
                path: path.clone(),
                source,
            })?;
            let t = text.trim();
            if t.is_empty() {
                return Err(AzureError::Missing(format!(
                    "the federated token file {path:?} is empty"
                )));
            }
            Ok(Secret::new(t))
        }
        None if crate::github::oidc::available(env) => {
            Ok(crate::github::oidc::id_token(client, env, FEDERATED_AUDIENCE).await?)
        }
        None => Err(AzureError::Missing(
            "no federated token: set AZURE_FEDERATED_TOKEN_FILE, or give the job \
             `permissions: id-token: write` for GitHub's OIDC token"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kubelogins_flags_are_read() {
        let a = parse(&s(&[
            "get-token",
            "--environment",
            "AzurePublicCloud",
            "--server-id",
            "6dae42f8-4368-4678-94ff-3960e28e3630",
            "--client-id=c1",
            "-t",
            "t1",
            "--login",
            "workloadidentity",
            "--use-azurerm-env-vars",
        ]))
        .unwrap();
        assert_eq!(a.login.as_deref(), Some("workloadidentity"));
        assert_eq!(a.client_id.as_deref(), Some("c1"));
        assert_eq!(a.tenant_id.as_deref(), Some("t1"));
        assert!(a.azurerm_env);
        assert_eq!(login_of(&s(&["get-token", "-l", "spn"])), Some(Login::Spn));
        assert_eq!(login_of(&s(&["get-token", "--login", "devicecode"])), None);
        assert_eq!(login_of(&s(&["get-token"])), None);
        assert_eq!(login_of(&s(&["convert-kubeconfig", "-l", "spn"])), None);
        assert!(parse(&s(&["get-token", "--pop-enabled"])).is_err());
        assert!(parse(&s(&["get-token", "--server-id"])).is_err());
    }

    #[test]
    fn the_authority_follows_flag_env_and_cloud() {
        let none = Env::default();
        let mut a = Args::default();
        assert_eq!(
            authority(&a, &none).unwrap(),
            "https://login.microsoftonline.com/"
        );
        a.environment = Some("AzureChinaCloud".into());
        assert_eq!(
            authority(&a, &none).unwrap(),
            "https://login.chinacloudapi.cn/"
        );
        let env = Env::from_pairs([(vars::AZURE_AUTHORITY_HOST, "https://127.0.0.1:9443")]);
        assert_eq!(authority(&a, &env).unwrap(), "https://127.0.0.1:9443/");
        a.authority_host = Some("http://plain".into());
        assert!(
            authority(&a, &env)
                .unwrap_err()
                .contains("not an https URL")
        );
        assert_eq!(
            token_url("https://login.microsoftonline.com/", "t1"),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
    }

    #[test]
    fn the_grant_is_msals() {
        assert_eq!(
            grant_form(
                "c1",
                "6dae42f8-4368-4678-94ff-3960e28e3630/.default",
                &Proof::Secret(Secret::new("s~e/c"))
            ),
            "client_id=c1&grant_type=client_credentials&client_secret=s%7Ee%2Fc&scope=\
             6dae42f8-4368-4678-94ff-3960e28e3630%2F.default"
        );
    }

    #[test]
    fn missing_settings_are_one_line_naming_them() {
        let args = s(&[
            "get-token",
            "--login",
            "spn",
            "--server-id",
            "srv",
            "--tenant-id",
            "t",
        ]);
        let e = run(&args, &Env::default(), SystemTime::UNIX_EPOCH)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "kube-token `kubelogin get-token`: no client id: give --client-id or set \
             AAD_SERVICE_PRINCIPAL_CLIENT_ID or AZURE_CLIENT_ID"
        );
        let env = Env::from_pairs([(vars::AZURE_CLIENT_ID, "c")]);
        let e = run(&args, &env, SystemTime::UNIX_EPOCH)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(
                "no client secret: give --client-secret or set \
             AAD_SERVICE_PRINCIPAL_CLIENT_SECRET or AZURE_CLIENT_SECRET"
            ),
            "{e}"
        );
        let wi = s(&[
            "get-token",
            "--login",
            "workloadidentity",
            "--server-id",
            "srv",
        ]);
        let env = Env::from_pairs([(vars::AZURE_CLIENT_ID, "c"), (vars::AZURE_TENANT_ID, "t")]);
        let e = run(&wi, &env, SystemTime::UNIX_EPOCH)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no federated token: set AZURE_FEDERATED_TOKEN_FILE"),
            "{e}"
        );
    }
}
