//! The EKS token as `aws eks get-token` and `aws-iam-authenticator token` make it: `k8s-aws-v1.`
//! and the base64url (unpadded) of an STS GetCallerIdentity URL presigned with SigV4 for 60
//! seconds, the cluster in the signed header `x-k8s-aws-id`, valid 14 minutes on the client's
//! side (awscli `customizations/eks/get_token.py`). The credentials from the environment, where
//! STS is for a region (botocore's endpoint rules), and the presigning; the command lines are
//! read in `aws_args`.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::aws_args::{parse_eks_get_token, parse_iam_authenticator};
use super::exec_credential::{self, Layout};
use super::sts;
use super::{KubeTokenError, Plugin};
use crate::env::{Env, vars};
use crate::secret::Secret;

/// The presigned URL's own lifetime (`URL_TIMEOUT`).
const URL_EXPIRES: Duration = Duration::from_secs(60);
/// How long the client may use the token (`TOKEN_EXPIRATION_MINS`: STS honours a presigned
/// GetCallerIdentity for 15 minutes).
const TOKEN_MINUTES: i64 = 14;
const TOKEN_PREFIX: &str = "k8s-aws-v1.";
const CLUSTER_HEADER: &str = "x-k8s-aws-id";
/// The session name `aws eks get-token --role-arn` assumes the role under.
const EKS_SESSION_NAME: &str = "EKSGetTokenAuth";
/// How long assuming a role may take.
const ASSUME_ROLE_TIMEOUT: Duration = Duration::from_secs(20);

/// What URIs may carry unencoded: RFC 3986's unreserved characters (botocore's `quote(safe='-_.~')`).
const URI_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// AWS credentials: the key pair and, for temporary ones, the session token.
#[derive(Clone)]
pub(super) struct Credentials {
    pub(super) access_key_id: String,
    pub(super) secret_access_key: Secret,
    pub(super) session_token: Option<Secret>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.access_key_id)
    }
}

impl Credentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub(super) fn from_env(env: &Env) -> Option<Credentials> {
        Some(Credentials {
            access_key_id: env.get(vars::AWS_ACCESS_KEY_ID)?.trim().to_string(),
            secret_access_key: Secret::new(env.get(vars::AWS_SECRET_ACCESS_KEY)?.trim()),
            session_token: env
                .get(vars::AWS_SESSION_TOKEN)
                .map(|t| Secret::new(t.trim())),
        })
    }

    /// The credentials as the signer takes them.
    pub(super) fn to_aws(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "environment",
        )
    }
}

/// Where STS answers for a region, and the region the request is signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// `https://sts.eu-west-1.amazonaws.com` (an override as given, without a trailing `/`).
    pub(super) url: String,
    /// The `host` header: the URL's host, and its port when it is not the scheme's default.
    pub(super) host: String,
    pub(super) signing_region: String,
}

/// The regions a `legacy` STS setting sends to the global endpoint (botocore's STS endpoint
/// rule set, `UseGlobalEndpoint`).
const LEGACY_GLOBAL_REGIONS: &[&str] = &[
    "ap-northeast-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "aws-global",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// The DNS suffix of a region's partition (botocore `data/partitions.json`); the `aws`
/// partition's for a region no pattern matches, as botocore does.
fn dns_suffix(region: &str) -> &'static str {
    let parts: Vec<&str> = region.split('-').collect();
    let tail_is_number = parts
        .last()
        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
    let shape = |prefix: &[&str]| {
        tail_is_number && parts.len() == prefix.len() + 2 && parts.starts_with(prefix)
    };
    if shape(&["cn"]) {
        "amazonaws.com.cn"
    } else if shape(&["eusc", "de"]) {
        "amazonaws.eu"
    } else if shape(&["us", "iso"]) {
        "c2s.ic.gov"
    } else if shape(&["us", "isob"]) {
        "sc2s.sgov.gov"
    } else if shape(&["eu", "isoe"]) {
        "cloud.adc-e.uk"
    } else if shape(&["us", "isof"]) {
        "csp.hci.ic.gov"
    } else {
        "amazonaws.com"
    }
}

/// Where STS is: an override (`AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`); no region (or
/// `aws-global`, or a `legacy` region under `AWS_STS_REGIONAL_ENDPOINTS=legacy`) the global
/// `sts.amazonaws.com` signed for us-east-1; else `sts.<region>.<partition's suffix>`.
pub(super) fn sts_endpoint(region: Option<&str>, env: &Env) -> Endpoint {
    let legacy = env
        .get(vars::AWS_STS_REGIONAL_ENDPOINTS)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("legacy"));
    let global = |signing_region: &str| Endpoint {
        url: "https://sts.amazonaws.com".into(),
        host: "sts.amazonaws.com".into(),
        signing_region: signing_region.into(),
    };
    let endpoint = match region {
        None | Some("aws-global") => global("us-east-1"),
        Some(r) if legacy && LEGACY_GLOBAL_REGIONS.contains(&r) => global("us-east-1"),
        Some(r) => {
            let host = format!("sts.{r}.{}", dns_suffix(r));
            Endpoint {
                url: format!("https://{host}"),
                host,
                signing_region: r.into(),
            }
        }
    };
    match env
        .get(vars::AWS_ENDPOINT_URL_STS)
        .or_else(|| env.get(vars::AWS_ENDPOINT_URL))
    {
        Some(url) => {
            let url = url.trim().trim_end_matches('/').to_string();
            let authority = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let authority = authority.split('/').next().unwrap_or(authority);
            let host = match authority.rsplit_once(':') {
                Some((h, "443")) if url.starts_with("https://") => h.to_string(),
                Some((h, "80")) if url.starts_with("http://") => h.to_string(),
                _ => authority.to_string(),
            };
            Endpoint {
                url,
                host,
                signing_region: region.unwrap_or("us-east-1").to_string(),
            }
        }
        None => endpoint,
    }
}

/// The GetCallerIdentity URL presigned for `cluster` at `now`, its query in botocore's order
/// (the request's own, the signing parameters, the security token, the signature last).
pub(super) fn presigned_url(
    endpoint: &Endpoint,
    creds: &Credentials,
    cluster: &str,
    now: SystemTime,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let identity = creds.to_aws().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&endpoint.signing_region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()?
        .into();
    let base = format!(
        "{}/?Action=GetCallerIdentity&Version=2011-06-15",
        endpoint.url
    );
    let headers = [("host", endpoint.host.as_str()), (CLUSTER_HEADER, cluster)];
    let request =
        SignableRequest::new("GET", &base, headers.into_iter(), SignableBody::Bytes(b""))?;
    let (instructions, _) = sign(request, &params)?.into_parts();
    let mut query: Vec<(&str, Cow<'_, str>)> = instructions.params().to_vec();
    query.sort_by_key(|(k, _)| match *k {
        "X-Amz-Security-Token" => 1,
        "X-Amz-Signature" => 2,
        _ => 0,
    });
    let mut url = base;
    for (k, v) in query {
        url.push('&');
        url.push_str(k);
        url.push('=');
        url.extend(utf8_percent_encode(&v, URI_ENCODE));
    }
    Ok(url)
}

/// The bearer token for a presigned URL.
pub(super) fn token(presigned_url: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned_url)
    )
}

/// Answers `plugin` with the command line's arguments (after the command).
pub(super) fn run(
    plugin: Plugin,
    args: &[String],
    env: &Env,
    now: SystemTime,
) -> Result<String, KubeTokenError> {
    let name = plugin.as_str();
    let usage = |message: String| KubeTokenError::Usage {
        plugin: name,
        message,
    };
    let (request, layout, session_name) = match plugin {
        Plugin::AwsEksGetToken => (
            parse_eks_get_token(args).map_err(usage)?,
            Layout::AwsCli,
            EKS_SESSION_NAME.to_string(),
        ),
        Plugin::GkeGcloudAuthPlugin | Plugin::Kubelogin => {
            unreachable!("kube_token::run sends only the AWS plugins here")
        }
        Plugin::AwsIamAuthenticator => {
            let since_epoch = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            (
                parse_iam_authenticator(args).map_err(usage)?,
                Layout::Compact,
                format!("aws-iam-authenticator-{}", since_epoch.as_nanos()),
            )
        }
    };
    let region = request.region.clone().or_else(|| {
        env.get(vars::AWS_REGION)
            .or_else(|| env.get(vars::AWS_DEFAULT_REGION))
            .map(|r| r.trim().to_string())
    });
    let endpoint = sts_endpoint(region.as_deref(), env);
    let mut creds =
        match (Credentials::from_env(env), env.get(vars::AWS_ROLE_ARN)) {
            (Some(c), _) => c,
            (None, Some(role_arn)) => sts::web_identity(&endpoint, role_arn.trim(), env, now)
                .map_err(|source| KubeTokenError::AssumeRole {
                    plugin: name,
                    role_arn: role_arn.trim().to_string(),
                    source,
                })?,
            (None, None) => return Err(KubeTokenError::NoAwsCredentials { plugin: name }),
        };
    if let Some(role_arn) = &request.role_arn {
        creds = assume_role(&endpoint, &creds, role_arn, &session_name, now).map_err(|source| {
            KubeTokenError::AssumeRole {
                plugin: name,
                role_arn: role_arn.clone(),
                source,
            }
        })?;
    }
    let url = presigned_url(&endpoint, &creds, &request.cluster, now).map_err(|source| {
        KubeTokenError::Sign {
            plugin: name,
            what: format!("cluster {:?}", request.cluster),
            source,
        }
    })?;
    let expiration = exec_credential::expiry(now, TOKEN_MINUTES)
        .ok_or(KubeTokenError::Clock { plugin: name })?;
    let (api_version, note) = exec_credential::api_version(env);
    if let Some(note) = note {
        eprintln!("kube-token: {note}");
    }
    Ok(exec_credential::render(
        api_version,
        &expiration,
        &token(&url),
        layout,
    ))
}

/// AssumeRole through STS on a runtime of its own (this is a short-lived process of its own).
fn assume_role(
    endpoint: &Endpoint,
    creds: &Credentials,
    role_arn: &str,
    session_name: &str,
    now: SystemTime,
) -> Result<Credentials, sts::StsError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(sts::StsError::Runtime)?;
    rt.block_on(sts::assume_role(
        endpoint,
        creds,
        role_arn,
        session_name,
        now,
        ASSUME_ROLE_TIMEOUT,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::aws_args::TokenRequest;
    use super::*;
    use std::time::UNIX_EPOCH;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// 2026-03-04T05:06:07Z
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_772_600_767)
    }

    fn example_creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    #[test]
    fn eks_get_token_command_lines() {
        let r = parse_eks_get_token(&s(&[
            "--region",
            "eu-west-1",
            "eks",
            "get-token",
            "--cluster-name",
            "prod",
            "--output",
            "json",
        ]))
        .unwrap();
        assert_eq!(r.cluster, "prod");
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        let r = parse_eks_get_token(&s(&[
            "eks",
            "get-token",
            "--cluster-id=abc-123",
            "--role-arn",
            "arn:aws:iam::111122223333:role/deploy",
        ]))
        .unwrap();
        assert_eq!(r.cluster, "abc-123");
        assert_eq!(
            r.role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/deploy")
        );
        for (args, says) in [
            (
                &["eks", "get-token"][..],
                "give --cluster-name or --cluster-id",
            ),
            (
                &[
                    "eks",
                    "get-token",
                    "--cluster-name",
                    "a",
                    "--cluster-id",
                    "b",
                ],
                "cannot be given together",
            ),
            (
                &["eks", "get-token", "--cluster-name", "a", "--profile", "p"],
                "~/.aws/config",
            ),
            (
                &[
                    "eks",
                    "get-token",
                    "--cluster-name",
                    "a",
                    "--output",
                    "text",
                ],
                "`--output text`",
            ),
            (&["eks", "get-token", "--cluster-name"], "needs a value"),
        ] {
            let e = parse_eks_get_token(&s(args)).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn iam_authenticator_command_lines() {
        let r = parse_iam_authenticator(&s(&[
            "token",
            "-i",
            "prod",
            "-r",
            "arn:r",
            "--region=us-west-2",
        ]))
        .unwrap();
        assert_eq!(
            r,
            TokenRequest {
                cluster: "prod".into(),
                region: Some("us-west-2".into()),
                role_arn: Some("arn:r".into())
            }
        );
        assert_eq!(
            parse_iam_authenticator(&s(&["token", "--cluster-id=x"]))
                .unwrap()
                .cluster,
            "x"
        );
        assert!(
            parse_iam_authenticator(&s(&["token"]))
                .unwrap_err()
                .contains("-i")
        );
        assert!(
            parse_iam_authenticator(&s(&["token", "-i", "x", "--token-only"]))
                .unwrap_err()
                .contains("`--token-only` is not supported")
        );
    }

    #[test]
    fn sts_endpoints_follow_botocores_rules() {
        let none = Env::default();
        let ep = |r: Option<&str>, env: &Env| {
            let e = sts_endpoint(r, env);
            (e.url, e.host, e.signing_region)
        };
        let t = |u: &str, h: &str, r: &str| (u.to_string(), h.to_string(), r.to_string());
        assert_eq!(
            ep(None, &none),
            t(
                "https://sts.amazonaws.com",
                "sts.amazonaws.com",
                "us-east-1"
            )
        );
        assert_eq!(
            ep(Some("us-east-1"), &none),
            t(
                "https://sts.us-east-1.amazonaws.com",
                "sts.us-east-1.amazonaws.com",
                "us-east-1"
            )
        );
        assert_eq!(
            ep(Some("cn-north-1"), &none).1,
            "sts.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            ep(Some("us-gov-west-1"), &none).1,
            "sts.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            ep(Some("us-iso-east-1"), &none).1,
            "sts.us-iso-east-1.c2s.ic.gov"
        );
        assert_eq!(
            ep(Some("eusc-de-east-1"), &none).1,
            "sts.eusc-de-east-1.amazonaws.eu"
        );
        let legacy = Env::from_pairs([(vars::AWS_STS_REGIONAL_ENDPOINTS, "legacy")]);
        assert_eq!(
            ep(Some("eu-west-1"), &legacy),
            t(
                "https://sts.amazonaws.com",
                "sts.amazonaws.com",
                "us-east-1"
            )
        );
        assert_eq!(
            ep(Some("af-south-1"), &legacy).1,
            "sts.af-south-1.amazonaws.com"
        );
        let over = Env::from_pairs([(vars::AWS_ENDPOINT_URL_STS, "http://127.0.0.1:4566/")]);
        assert_eq!(
            ep(Some("eu-west-1"), &over),
            t("http://127.0.0.1:4566", "127.0.0.1:4566", "eu-west-1")
        );
        let over = Env::from_pairs([(vars::AWS_ENDPOINT_URL, "https://sts.example:443")]);
        assert_eq!(ep(Some("eu-west-1"), &over).1, "sts.example");
    }

    /// The URL `aws eks get-token --cluster-name prod --region us-west-2` printed at
    /// 2026-03-04T05:06:07Z with these credentials (awscli 1.46.2 under libfaketime): the
    /// comparison against the CLI itself is tests/kube_token_aws.rs.
    #[test]
    fn presigned_urls_are_botocores() {
        let ep = sts_endpoint(Some("us-west-2"), &Env::default());
        let url = presigned_url(
            &ep,
            &example_creds(Some("FwoGZXIvYXdzEBYaDH+/=abc")),
            "prod",
            now(),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&\
             X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260304%2F\
             us-west-2%2Fsts%2Faws4_request&X-Amz-Date=20260304T050607Z&X-Amz-Expires=60&\
             X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=FwoGZXIvYXdzEBYaDH%2B%2F\
             %3Dabc&X-Amz-Signature=608fe263e53934beac794b8b08ad7dabb7f7b37d72f5de768ba58bae24c4be1d"
        );
        let t = token(&url);
        assert!(t.starts_with("k8s-aws-v1.aHR0cHM6Ly9zdHMu"));
        assert!(!t.contains('=') && !t.contains('+') && !t.contains('/'));
    }

    #[test]
    fn without_credentials_the_line_says_where_they_come_from() {
        let e = run(
            Plugin::AwsEksGetToken,
            &s(&["eks", "get-token", "--cluster-name", "prod"]),
            &Env::default(),
            now(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    }
}
