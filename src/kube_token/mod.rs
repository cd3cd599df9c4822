//! `trader-deploy kube-token <plugin command line>`: answers a kubeconfig's exec credential
//! plugin natively, so that the image needs no cloud CLI (issue #15). Which plugin command lines
//! are supported, the command line → plugin, and the one error type; each cloud in its module.

mod aws;
mod aws_args;
mod azure;
mod exec_credential;
mod gcp;
mod oauth;
mod sts;

pub use azure::AzureError;
pub use gcp::GcpError;
pub use oauth::OAuthError;

use std::path::Path;
use std::time::SystemTime;

use crate::env::Env;

/// The plugin command lines `kube-token` answers, as a kubeconfig writes them.
pub const SUPPORTED: &[&str] = &[
    "aws eks get-token",
    "aws-iam-authenticator token",
    "gke-gcloud-auth-plugin",
    "kubelogin get-token --login spn|workloadidentity",
];

/// A supported exec credential plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// `aws eks get-token`
    AwsEksGetToken,
    /// `aws-iam-authenticator token`
    AwsIamAuthenticator,
    /// `gke-gcloud-auth-plugin`
    GkeGcloudAuthPlugin,
    /// `kubelogin get-token` with `--login spn` or `--login workloadidentity`
    Kubelogin,
}

impl Plugin {
    /// The plugin's command line as users know it.
    pub fn as_str(self) -> &'static str {
        match self {
            Plugin::AwsEksGetToken => SUPPORTED[0],
            Plugin::AwsIamAuthenticator => SUPPORTED[1],
            Plugin::GkeGcloudAuthPlugin => SUPPORTED[2],
            Plugin::Kubelogin => "kubelogin get-token",
        }
    }

    /// What to check when the cluster refuses the token made for this plugin.
    pub fn refused_hint(self) -> &'static str {
        match self {
            Plugin::AwsEksGetToken | Plugin::AwsIamAuthenticator => {
                "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and that \
                 their IAM principal has an access entry in the cluster"
            }
            Plugin::GkeGcloudAuthPlugin => {
                "check GOOGLE_APPLICATION_CREDENTIALS (or the gcp_* inputs), and that the \
                 service account has a role in the cluster (IAM or RBAC)"
            }
            Plugin::Kubelogin => {
                "check the Azure client id, tenant and secret or federated credential, and that \
                 the application has a role in the cluster (Azure RBAC or a Kubernetes binding)"
            }
        }
    }
}

/// Which supported plugin `command args…` runs, by the command's file name
/// (`/usr/local/bin/aws` is `aws`) and its subcommand words, wherever options put them.
pub fn recognise(command: &str, args: &[String]) -> Option<Plugin> {
    match Path::new(command).file_name()?.to_str()? {
        "aws" => {
            let (words, _) = aws_args::split_cli(args).ok()?;
            (words == ["eks", "get-token"]).then_some(Plugin::AwsEksGetToken)
        }
        "aws-iam-authenticator" => (args.first().map(String::as_str) == Some("token"))
            .then_some(Plugin::AwsIamAuthenticator),
        "gke-gcloud-auth-plugin" => Some(Plugin::GkeGcloudAuthPlugin),
        "kubelogin" => azure::login_of(args).map(|_| Plugin::Kubelogin),
        _ => None,
    }
}

/// The one line an unsupported exec command fails with: the command, what is supported, and the
/// alternative.
pub fn unsupported_line(command_line: &str) -> String {
    format!(
        "the exec credential plugin `{command_line}` is not supported (supported: {}); give a \
         kubeconfig with a token instead (e.g. from `kubectl create token`)",
        SUPPORTED
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Why `kube-token` printed no credential. No variant carries a credential or a token.
#[derive(Debug, thiserror::Error)]
pub enum KubeTokenError {
    #[error(
        "kube-token: give the plugin's command line, e.g. `kube-token aws eks get-token --cluster-name prod`"
    )]
    NoCommand,
    #[error("kube-token: an argument is not valid UTF-8")]
    NotUtf8,
    #[error("kube-token: {}", unsupported_line(.0))]
    Unsupported(String),
    #[error("kube-token `{plugin}`: {message}")]
    Usage {
        plugin: &'static str,
        message: String,
    },
    #[error(
        "kube-token `{plugin}`: no AWS credentials: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN with temporary ones), e.g. with \
         aws-actions/configure-aws-credentials, or give the `aws_role_arn` input"
    )]
    NoAwsCredentials { plugin: &'static str },
    #[error("kube-token `{plugin}`: failed to sign the STS request for {what}")]
    Sign {
        plugin: &'static str,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("kube-token `{plugin}`: the clock is outside what a token can carry")]
    Clock { plugin: &'static str },
    #[error("kube-token `{plugin}`: {source}")]
    Gcp {
        plugin: &'static str,
        #[source]
        source: gcp::GcpError,
    },
    #[error("kube-token `{plugin}`: {source}")]
    Azure {
        plugin: &'static str,
        #[source]
        source: azure::AzureError,
    },
    #[error("kube-token `{plugin}`: failed to assume the role {role_arn:?}")]
    AssumeRole {
        plugin: &'static str,
        role_arn: String,
        #[source]
        source: sts::StsError,
    },
}

/// Runs `kube-token <args…>`: the `ExecCredential` the plugin `args` names would print, as text
/// for stdout, signed at `now`.
pub fn run(
    args: &[std::ffi::OsString],
    env: &Env,
    now: SystemTime,
) -> Result<String, KubeTokenError> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.clone().into_string().map_err(|_| KubeTokenError::NotUtf8))
        .collect::<Result<_, _>>()?;
    let (command, rest) = args.split_first().ok_or(KubeTokenError::NoCommand)?;
    match recognise(command, rest) {
        Some(Plugin::GkeGcloudAuthPlugin) => gcp::run(env, now),
        Some(Plugin::Kubelogin) => azure::run(rest, env, now),
        Some(plugin) => aws::run(plugin, rest, env, now),
        None => Err(KubeTokenError::Unsupported(args.join(" "))),
    }
}

/// `trader-deploy kube-token …` as a process: the `ExecCredential` on stdout for the Kubernetes
/// client that ran it (this is its protocol, not the runner's), or one line on stderr and exit
/// code 1. Nothing here prints a credential anywhere else.
pub fn main(args: &[std::ffi::OsString], env: &Env) -> std::process::ExitCode {
    use std::io::Write as _;
    match run(args, env, SystemTime::now()) {
        Ok(answer) => {
            let mut out = std::io::stdout().lock();
            if out
                .write_all(answer.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", crate::http::chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn plugins_are_recognised_by_file_name_and_words() {
        let eks = s(&["eks", "get-token", "--cluster-name", "prod"]);
        assert_eq!(recognise("aws", &eks), Some(Plugin::AwsEksGetToken));
        assert_eq!(
            recognise("/usr/local/bin/aws", &eks),
            Some(Plugin::AwsEksGetToken)
        );
        let global_first = s(&[
            "--region",
            "eu-west-1",
            "eks",
            "get-token",
            "--cluster-name",
            "p",
        ]);
        assert_eq!(
            recognise("aws", &global_first),
            Some(Plugin::AwsEksGetToken)
        );
        assert_eq!(recognise("aws", &s(&["eks", "describe-cluster"])), None);
        assert_eq!(recognise("aws", &s(&["sts", "get-token"])), None);
        assert_eq!(recognise("awsx", &eks), None);
        assert_eq!(
            recognise("aws-iam-authenticator", &s(&["token", "-i", "prod"])),
            Some(Plugin::AwsIamAuthenticator)
        );
        assert_eq!(
            recognise("aws-iam-authenticator", &s(&["verify", "-i", "prod"])),
            None
        );
        assert_eq!(
            recognise("/usr/lib/google-cloud-sdk/bin/gke-gcloud-auth-plugin", &[]),
            Some(Plugin::GkeGcloudAuthPlugin)
        );
        assert_eq!(
            recognise(
                "kubelogin",
                &s(&["get-token", "--login", "spn", "--server-id", "x"])
            ),
            Some(Plugin::Kubelogin)
        );
        assert_eq!(
            recognise("kubelogin", &s(&["get-token", "--login", "devicecode"])),
            None
        );
    }

    #[test]
    fn an_unsupported_plugin_is_one_line_naming_it_the_supported_and_the_alternative() {
        let e = run(
            &[
                "kubelogin".into(),
                "get-token".into(),
                "--login".into(),
                "devicecode".into(),
            ],
            &Env::default(),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap_err();
        let line = e.to_string();
        assert_eq!(
            line,
            "kube-token: the exec credential plugin `kubelogin get-token --login devicecode` is \
             not supported (supported: `aws eks get-token`, `aws-iam-authenticator token`, \
             `gke-gcloud-auth-plugin`, `kubelogin get-token --login spn|workloadidentity`); give \
             a kubeconfig with a token instead (e.g. from `kubectl create token`)"
        );
        assert!(!line.contains('\n'));
        assert!(matches!(
            run(&[], &Env::default(), SystemTime::UNIX_EPOCH),
            Err(KubeTokenError::NoCommand)
        ));
    }
}
