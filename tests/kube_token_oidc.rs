//! The `aws_role_arn` input's path (issue #15): with no AWS keys, `kube-token aws eks get-token`
//! asks GitHub's OIDC service for a token for `sts.amazonaws.com` (with the job's request token)
//! and assumes AWS_ROLE_ARN with it (STS AssumeRoleWithWebIdentity, unsigned), both at the local
//! stand-in (tests/common/cloud_routes.rs checks each request as GitHub and STS document them);
//! the EKS token is then signed with the role's credentials. A role the token may not assume is
//! refused in one line naming it. (The signing itself is proved byte for byte against the AWS
//! CLI in tests/kube_token_aws.rs.)

mod common;

use std::process::Command;

use base64::Engine as _;

use common::cloud_routes::Config;
use common::cloud_standin::Standin;

const ROLE: &str = "arn:aws:iam::111122223333:role/github-deployer";
const REQUEST_TOKEN: &str = "gh-request-token-aws-5150";

fn standin() -> Standin {
    Standin::start(
        Config {
            key: b"aws-oidc-test-key".to_vec(),
            aws_role_arn: ROLE.into(),
            aws_role_credentials: (
                "ASIAWEBIDENTITY00001".into(),
                "webSecret/Example+Key0123456789abcdefgh".into(),
                "FwoGZXIvYXdzEWebIdentity/+Session==".into(),
            ),
            oidc_request_token: REQUEST_TOKEN.into(),
            oidc_subject: "repo:acme/trader:environment:production".into(),
            ..Default::default()
        },
        None,
    )
}

fn kube_token(s: &Standin, role: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trader-deploy"))
        .args([
            "kube-token",
            "aws",
            "eks",
            "get-token",
            "--cluster-name",
            "prod",
        ])
        .args(["--region", "eu-west-1"])
        .env_clear()
        .env("AWS_ROLE_ARN", role)
        .env("AWS_ENDPOINT_URL_STS", &s.url)
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("{}/_github/oidc?api-version=2.0", s.url),
        )
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
        .output()
        .unwrap()
}

#[test]
fn the_role_is_assumed_with_githubs_oidc_token_and_signs_the_eks_token() {
    let s = standin();
    let out = kube_token(&s, ROLE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = s.requests();
    let paths: Vec<(&str, &str, u16)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        paths,
        [("GET", "/_github/oidc", 200), ("POST", "/", 200)],
        "{seen:#?}"
    );
    assert_eq!(seen[0].query, "api-version=2.0&audience=sts.amazonaws.com");
    let form = seen[1].form();
    assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(form["RoleArn"], ROLE);
    assert!(form["RoleSessionName"].starts_with("trader-deploy-"));
    // The EKS token is the role's: its key in the scope, its session token in the URL.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = v["status"]["token"].as_str().unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.strip_prefix("k8s-aws-v1.").unwrap())
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    assert!(
        url.contains("X-Amz-Credential=ASIAWEBIDENTITY00001%2F"),
        "{url}"
    );
    assert!(url.contains("%2Feu-west-1%2Fsts%2Faws4_request"), "{url}");
    assert!(
        url.contains("X-Amz-Security-Token=FwoGZXIvYXdzEWebIdentity%2F%2BSession%3D%3D"),
        "{url}"
    );
}

#[test]
fn a_role_the_token_may_not_assume_is_one_line() {
    let s = standin();
    let other = "arn:aws:iam::111122223333:role/someone-else";
    let out = kube_token(&s, other);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("failed to assume the role \"{other}\""))
            && err
                .contains("AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        "{err}"
    );
    assert!(
        !err.contains(REQUEST_TOKEN) && !err.contains("eyJ"),
        "{err}"
    );
}
