//! STS AssumeRole and AssumeRoleWithWebIdentity (the Query API, version 2011-06-15), the requests
//! `kube-token aws` sends. AssumeRole is
//! signed with SigV4 in its headers, sent through the crate's HTTP stack (`http::client`), its
//! XML answer read for the three credential values. The endpoint is the one the token is signed
//! for, so `AWS_ENDPOINT_URL_STS` points both at a local stand-in in tests.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::aws::{Credentials, Endpoint};
use crate::env::{Env, vars};
use crate::secret::Secret;

/// Form values: everything but the unreserved characters is percent-encoded.
const FORM_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Why a role could not be assumed. Never carries a credential: STS's error `Code` and
/// `Message` name the caller and the role, not secrets.
#[derive(Debug, thiserror::Error)]
pub enum StsError {
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("no web identity token for the role")]
    Oidc(#[from] crate::github::oidc::OidcError),
    #[error("failed to read AWS_WEB_IDENTITY_TOKEN_FILE {path:?}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to sign the AssumeRole request")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("failed to send AssumeRole to {url}: {detail}")]
    Send { url: String, detail: String },
    #[error("STS at {url} refused AssumeRole ({status}): {code}: {message}")]
    Refused {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("STS at {url} answered AssumeRole without credentials")]
    NoCredentials { url: String },
}

/// The form body of AssumeRole.
pub(super) fn body(role_arn: &str, session_name: &str) -> String {
    format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}",
        utf8_percent_encode(role_arn, FORM_ENCODE),
        utf8_percent_encode(session_name, FORM_ENCODE)
    )
}

/// The form body of AssumeRoleWithWebIdentity.
pub(super) fn web_identity_body(role_arn: &str, session_name: &str, token: &str) -> String {
    format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&\
         WebIdentityToken={}",
        utf8_percent_encode(role_arn, FORM_ENCODE),
        utf8_percent_encode(session_name, FORM_ENCODE),
        utf8_percent_encode(token, FORM_ENCODE)
    )
}

/// Assumes `role_arn` with a web identity token (GitHub's OIDC token, or the file
/// `AWS_WEB_IDENTITY_TOKEN_FILE` names): an unsigned request, the token being the proof.
pub(super) async fn assume_role_with_web_identity(
    endpoint: &Endpoint,
    role_arn: &str,
    session_name: &str,
    token: &Secret,
    timeout: Duration,
) -> Result<Credentials, StsError> {
    let url = format!("{}/", endpoint.url);
    let send = |e: reqwest::Error| StsError::Send {
        url: url.clone(),
        detail: crate::http::chain(&e.without_url()),
    };
    let client = crate::http::client(Some(timeout)).map_err(send)?;
    let response = client
        .post(&url)
        .header("content-type", CONTENT_TYPE)
        .body(web_identity_body(role_arn, session_name, token.expose()))
        .send()
        .await
        .map_err(send)?;
    let status = response.status();
    let text = response.text().await.map_err(send)?;
    if !status.is_success() {
        return Err(StsError::Refused {
            url,
            status: status.as_u16(),
            code: element(&text, "Code").unwrap_or_else(|| "unknown".into()),
            message: element(&text, "Message").unwrap_or_default(),
        });
    }
    credentials_of(&text).ok_or(StsError::NoCredentials { url })
}

/// The role `AWS_ROLE_ARN` names, assumed with the web identity token of
/// `AWS_WEB_IDENTITY_TOKEN_FILE`, else GitHub's OIDC token for `sts.amazonaws.com` (what
/// aws-actions/configure-aws-credentials asks for), on a runtime of its own.
pub(super) fn web_identity(
    endpoint: &Endpoint,
    role_arn: &str,
    env: &Env,
    now: SystemTime,
) -> Result<Credentials, StsError> {
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let session = env
        .get(vars::AWS_ROLE_SESSION_NAME)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| format!("trader-deploy-{}", since_epoch.as_secs()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StsError::Runtime)?;
    rt.block_on(async {
        let token = match env.get(vars::AWS_WEB_IDENTITY_TOKEN_FILE) {
            Some(path) => Secret::new(
                std::fs::read_to_string(path.trim())
                    .map_err(|source| StsError::TokenFile {
                        path: path.trim().to_string(),
                        source,
                    })?
                    .trim(),
            ),
            None => {
                let client = crate::http::client(Some(WEB_IDENTITY_TIMEOUT)).map_err(|e| {
                    StsError::Send {
                        url: endpoint.url.clone(),
                        detail: crate::http::chain(&e),
                    }
                })?;
                crate::github::oidc::id_token(&client, env, GITHUB_OIDC_AUDIENCE).await?
            }
        };
        assume_role_with_web_identity(endpoint, role_arn, &session, &token, WEB_IDENTITY_TIMEOUT)
            .await
    })
}

/// The audience aws-actions/configure-aws-credentials asks GitHub's OIDC token for.
const GITHUB_OIDC_AUDIENCE: &str = "sts.amazonaws.com";

/// How long getting GitHub's token and assuming the role may take, each.
const WEB_IDENTITY_TIMEOUT: Duration = Duration::from_secs(20);

/// Assumes `role_arn` with `creds`, signed at `now`; the role's temporary credentials.
pub(super) async fn assume_role(
    endpoint: &Endpoint,
    creds: &Credentials,
    role_arn: &str,
    session_name: &str,
    now: SystemTime,
    timeout: Duration,
) -> Result<Credentials, StsError> {
    let url = format!("{}/", endpoint.url);
    let body = body(role_arn, session_name);
    let identity = creds.to_aws().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&endpoint.signing_region)
        .name("sts")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| StsError::Sign(e.into()))?
        .into();
    let headers = [
        ("host", endpoint.host.as_str()),
        ("content-type", CONTENT_TYPE),
    ];
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| StsError::Sign(e.into()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| StsError::Sign(e.into()))?
        .into_parts();
    let send = |e: reqwest::Error| StsError::Send {
        url: url.clone(),
        detail: crate::http::chain(&e),
    };
    let client = crate::http::client(Some(timeout)).map_err(send)?;
    let mut request = client
        .post(&url)
        .header("content-type", CONTENT_TYPE)
        .body(body.clone());
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(send)?;
    let status = response.status();
    let text = response.text().await.map_err(send)?;
    if !status.is_success() {
        return Err(StsError::Refused {
            url,
            status: status.as_u16(),
            code: element(&text, "Code").unwrap_or_else(|| "unknown".into()),
            message: element(&text, "Message").unwrap_or_default(),
        });
    }
    credentials_of(&text).ok_or(StsError::NoCredentials { url })
}

/// The `Credentials` of an AssumeRole answer.
pub(super) fn credentials_of(xml: &str) -> Option<Credentials> {
    let start = xml.find("<Credentials>")?;
    let end = start + xml[start..].find("</Credentials>")?;
    let block = &xml[start..end];
    Some(Credentials {
        access_key_id: element(block, "AccessKeyId")?,
        secret_access_key: Secret::new(element(block, "SecretAccessKey")?),
        session_token: Some(Secret::new(element(block, "SessionToken")?)),
    })
}

/// The text of the first `<name>…</name>` in `xml`, its five predefined entities and numeric
/// character references decoded.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    let raw = xml[start..start + len].trim();
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let semi = after.find(';')?;
        let entity = &after[..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match entity.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => entity.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_gives_the_roles_credentials() {
        // The shape of STS's documented AssumeRole answer.
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>DevUser123</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/John</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:John</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764&amp;x&#x2B;y&#61;</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <PackedPolicySize>8</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;
        let c = credentials_of(xml).unwrap();
        assert_eq!(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.secret_access_key.expose(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert_eq!(
            c.session_token.unwrap().expose(),
            "AQoDYXdzEPT//////////wEXAMPLEtc764&x+y="
        );
        assert!(credentials_of("<ErrorResponse/>").is_none());
    }

    #[tokio::test]
    async fn a_web_identity_is_exchanged_for_the_roles_credentials() {
        let (url, server) = crate::http::test_server::once(
            200,
            "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
             <SessionToken>st</SessionToken><SecretAccessKey>sk</SecretAccessKey>\
             <AccessKeyId>ASIAWEB</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>\
             </AssumeRoleWithWebIdentityResponse>",
        )
        .await;
        let endpoint = Endpoint {
            host: url.trim_start_matches("http://").to_string(),
            url,
            signing_region: "eu-west-1".into(),
        };
        let c = assume_role_with_web_identity(
            &endpoint,
            "arn:aws:iam::1:role/gh",
            "trader-deploy",
            &Secret::new("eyJ.oidc.tok"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(c.access_key_id, "ASIAWEB");
        let request = server.await.unwrap();
        assert!(!request.contains("authorization:"), "{request}");
        assert!(request.ends_with(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3A\
             role%2Fgh&RoleSessionName=trader-deploy&WebIdentityToken=eyJ.oidc.tok"
        ), "{request}");
    }

    #[test]
    fn the_form_is_encoded_as_botocore_encodes_it() {
        assert_eq!(
            body("arn:aws:iam::111122223333:role/deploy+x", "EKSGetTokenAuth"),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3A\
             role%2Fdeploy%2Bx&RoleSessionName=EKSGetTokenAuth"
        );
    }

    #[tokio::test]
    async fn a_refusal_names_stss_code_and_message() {
        let (url, server) = crate::http::test_server::once(
            403,
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not \
             authorized to perform: sts:AssumeRole</Message></Error></ErrorResponse>",
        )
        .await;
        let endpoint = Endpoint {
            host: url.trim_start_matches("http://").to_string(),
            url,
            signing_region: "eu-west-1".into(),
        };
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("secret-canary-1234"),
            session_token: None,
        };
        let e = assume_role(
            &endpoint,
            &creds,
            "arn:aws:iam::1:role/r",
            "EKSGetTokenAuth",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_600_767),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("(403): AccessDenied: not authorized to perform: sts:AssumeRole"),
            "{e}"
        );
        let request = server.await.unwrap();
        assert!(request.starts_with("POST / HTTP/1.1\r\n"), "{request}");
        assert!(request.contains(
            "Credential=AKIDEXAMPLE/20260304/eu-west-1/sts/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature="
        ));
        assert!(request.ends_with("RoleSessionName=EKSGetTokenAuth"));
        assert!(!request.contains("secret-canary-1234"));
    }
}
