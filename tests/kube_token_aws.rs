//! `trader-deploy kube-token aws eks get-token …` against the AWS CLI itself (issue #15): both run
//! at the same frozen instant under libfaketime (the glibc build of the action: libfaketime
//! reaches dynamically linked programs only) and must print the same ExecCredential byte for
//! byte, for several regions and partitions, with and without a session token, and with
//! `--role-arn`'s credentials assumed from a local STS stand-in that checks each AssumeRole's
//! SigV4 signature as STS would. aws-iam-authenticator's own verifier (built from its Go module,
//! whose clock libfaketime cannot reach) takes both plugins' tokens up to its STS call.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;

use common::tools::{aws_cli, libfaketime};

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// A session token with the characters that need encoding in a URL.
const SESSION: &str = "IQoJb3JpZ2luX2VjEHUaCXVzLWVhc3QtMSJHMEUCIQD+/x==";

/// Two instants: a plain one, and the last second of a year (the expiry crosses into the next).
const INSTANTS: &[(&str, u64)] = &[
    ("2026-03-04 05:06:07", 1_772_600_767),
    ("2026-12-31 23:59:59", 1_798_761_599),
];

fn tools() -> Option<(PathBuf, PathBuf)> {
    Some((aws_cli()?, libfaketime()?))
}

/// One program run at the frozen instant `faketime` (UTC), with only `env` (plus the basics).
fn frozen(
    program: &[&str],
    args: &[&str],
    env: &[(&str, &str)],
    faketime: &str,
    lib: &Path,
) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(program[0]);
    cmd.args(&program[1..])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("TZ", "UTC")
        .env("LD_PRELOAD", lib)
        .env("FAKETIME", faketime)
        // The wall clock frozen, the monotonic one left running (timeouts still expire).
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        // The AWS CLI would otherwise ask the EC2 metadata service on its own.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn action() -> [&'static str; 2] {
    [env!("CARGO_BIN_EXE_trader-deploy"), "kube-token"]
}

/// The URL a token carries.
fn url_of(answer: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(answer).unwrap();
    let token = doc["status"]["token"].as_str().unwrap();
    let b64 = token.strip_prefix("k8s-aws-v1.").unwrap();
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn expiry_of(answer: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(answer).unwrap();
    doc["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `at` + 14 minutes as `%Y-%m-%dT%H:%M:%SZ`.
fn expected_expiry(at: u64) -> String {
    jiff::Timestamp::from_second(at as i64 + 14 * 60)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A region flag, extra environment, and the STS host the token's URL must name.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn the_same_exec_credential_as_aws_eks_get_token_at_a_frozen_instant() {
    let Some((aws, lib)) = tools() else { return };
    let aws = aws.to_str().unwrap();
    let cases: &[Case] = &[
        (
            &["--region", "us-east-1"],
            &[],
            "sts.us-east-1.amazonaws.com",
        ),
        (
            &["--region", "eu-west-1"],
            &[],
            "sts.eu-west-1.amazonaws.com",
        ),
        (
            &["--region", "ap-southeast-2"],
            &[],
            "sts.ap-southeast-2.amazonaws.com",
        ),
        (
            &["--region", "cn-north-1"],
            &[],
            "sts.cn-north-1.amazonaws.com.cn",
        ),
        (
            &["--region", "us-gov-west-1"],
            &[],
            "sts.us-gov-west-1.amazonaws.com",
        ),
        (&[], &[], "sts.amazonaws.com"),
        (
            &[],
            &[("AWS_DEFAULT_REGION", "sa-east-1")],
            "sts.sa-east-1.amazonaws.com",
        ),
        (
            &["--region", "eu-west-1"],
            &[("AWS_STS_REGIONAL_ENDPOINTS", "legacy")],
            "sts.amazonaws.com",
        ),
        (
            &["--region", "eu-central-1"],
            &[(
                "KUBERNETES_EXEC_INFO",
                r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
            )],
            "sts.eu-central-1.amazonaws.com",
        ),
    ];
    // Every case with and without a session token at the first instant; the first two at the
    // second instant too, and by --cluster-id (each run of the AWS CLI takes about a second).
    let mut runs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        for session in [None, Some(SESSION)] {
            runs.push((case, INSTANTS[0], session, "--cluster-name"));
            if i < 2 {
                runs.push((case, INSTANTS[1], session, "--cluster-id"));
            }
        }
    }
    let mut compared = 0;
    for ((region, extra, host), (faketime, at), session, cluster_flag) in runs {
        let mut args = vec!["eks", "get-token", cluster_flag, "prod-a1b2"];
        args.extend(region.iter());
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ];
        env.extend(extra.iter().copied());
        if let Some(s) = session {
            env.push(("AWS_SESSION_TOKEN", s));
        }
        let what = format!("{args:?} {env:?} at {faketime}");
        let (ok, theirs, err) = frozen(&[aws], &args, &env, faketime, &lib);
        assert!(ok, "aws {what}: {err}");
        let mut ours_cmd = action().to_vec();
        ours_cmd.push("aws");
        let (ok, ours, err) = frozen(&ours_cmd, &args, &env, faketime, &lib);
        assert!(ok, "kube-token {what}: {err}");
        assert_eq!(ours, theirs, "{what}");
        // Both really ran at the frozen instant, on the expected endpoint.
        assert_eq!(expiry_of(&ours), expected_expiry(at), "{what}");
        let url = url_of(&ours);
        assert!(
            url.starts_with(&format!("https://{host}/?Action=GetCallerIdentity&")),
            "{what}: {url}"
        );
        assert_eq!(
            url.contains("X-Amz-Security-Token="),
            session.is_some(),
            "{url}"
        );
        compared += 1;
    }
    assert_eq!(compared, cases.len() * 2 + 4);
}

/// One request the STS stand-in received, and what it made of it.
#[derive(Debug, Clone)]
struct Seen {
    body: String,
    verdict: Result<(), String>,
}

/// A local STS that answers AssumeRole as STS does, after checking the request as STS would:
/// the form (Action, Version, RoleArn, RoleSessionName), the SigV4 signature recomputed with the
/// caller's credentials, the credential scope and the date (the frozen instant). A request that
/// fails a check gets STS's `SignatureDoesNotMatch`/`InvalidParameterValue` error.
struct StsStandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/eks-deployer";
const ROLE_KEY_ID: &str = "ASIAROLEEXAMPLE00001";
const ROLE_SECRET: &str = "roleSecret/With+Chars=0123456789abcdefEXAMPLE";
const ROLE_SESSION: &str = "FwoGZXIvYXdzEAsaDRoleSession/+TokenEXAMPLE==";

impl StsStandIn {
    fn start(caller_session: Option<&'static str>, region: &'static str, at: u64) -> StsStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let host = url.trim_start_matches("http://").to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (k, v) = line.split_once(':').unwrap();
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let body = String::from_utf8(body).unwrap();
                let verdict = check(
                    &request_line,
                    &headers,
                    &body,
                    &host,
                    caller_session,
                    region,
                    at,
                );
                let (status, reply) = match &verdict {
                    Ok(()) => (200, assume_role_answer()),
                    Err(why) => (403, sts_error("SignatureDoesNotMatch", why)),
                };
                record.lock().unwrap().push(Seen {
                    body: body.clone(),
                    verdict,
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        StsStandIn { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn assume_role_answer() -> String {
    format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:EKSGetTokenAuth</AssumedRoleId>
      <Arn>arn:aws:sts::111122223333:assumed-role/eks-deployer/EKSGetTokenAuth</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{ROLE_KEY_ID}</AccessKeyId>
      <SecretAccessKey>{ROLE_SECRET}</SecretAccessKey>
      <SessionToken>{ROLE_SESSION}</SessionToken>
      <Expiration>2030-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>
"#
    )
}

fn sts_error(code: &str, message: &str) -> String {
    let message = message.replace('&', "&amp;").replace('<', "&lt;");
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender\
         </Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>x</RequestId>\
         </ErrorResponse>"
    )
}

/// STS's checks of one AssumeRole request.
fn check(
    request_line: &str,
    headers: &[(String, String)],
    body: &str,
    host: &str,
    caller_session: Option<&str>,
    region: &str,
    at: u64,
) -> Result<(), String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !request_line.starts_with("POST / HTTP/1.1") {
        return Err(format!("not a POST to /: {request_line:?}"));
    }
    let form: Vec<(String, String)> = body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let decode = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .to_string()
            };
            (decode(k), decode(v))
        })
        .collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for (k, want) in [
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", ROLE_ARN),
        ("RoleSessionName", "EKSGetTokenAuth"),
    ] {
        if field(k) != Some(want) {
            return Err(format!("{k} is {:?}, not {want:?}", field(k)));
        }
    }
    let auth = header("authorization").ok_or("no Authorization")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let part = |name: &str| {
        rest.split(", ")
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_string()
    };
    let date = jiff::Timestamp::from_second(at as i64)
        .unwrap()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let scope = format!("{KEY_ID}/{}/{region}/sts/aws4_request", &date[..8]);
    if part("Credential") != scope {
        return Err(format!(
            "credential scope {:?}, not {scope:?}",
            part("Credential")
        ));
    }
    if header("x-amz-date") != Some(date.as_str()) {
        return Err(format!("x-amz-date {:?}, not {date}", header("x-amz-date")));
    }
    if header("x-amz-security-token") != caller_session {
        return Err("the caller's session token is not the one given".into());
    }
    if header("host") != Some(host) {
        return Err(format!("host {:?}", header("host")));
    }
    // The signature, recomputed over the headers the caller says it signed.
    let signed: Vec<&str> = part("SignedHeaders").leak().split(';').collect();
    let mut to_sign = Vec::new();
    for name in &signed {
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue; // the signer adds these two itself, from the time and the identity
        }
        to_sign.push((
            *name,
            header(name).ok_or(format!("signed header {name} missing"))?,
        ));
    }
    let creds = aws_credential_types::Credentials::new(
        KEY_ID,
        SECRET,
        caller_session.map(str::to_string),
        None,
        "test",
    );
    let identity = creds.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(UNIX_EPOCH + Duration::from_secs(at))
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("http://{host}/");
    let req = aws_sigv4::http_request::SignableRequest::new(
        "POST",
        &url,
        to_sign.into_iter(),
        aws_sigv4::http_request::SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, signature) = aws_sigv4::http_request::sign(req, &params)
        .unwrap()
        .into_parts();
    let ours = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
        .unwrap();
    if !ours.contains(&format!("SignedHeaders={}", signed.join(";"))) {
        return Err(format!(
            "signed headers {signed:?} are not STS's set ({ours})"
        ));
    }
    if part("Signature") != signature {
        return Err("the request signature we calculated does not match".into());
    }
    Ok(())
}

#[test]
fn role_arn_signs_with_the_credentials_sts_gave_as_the_aws_cli_does() {
    let Some((aws, lib)) = tools() else { return };
    let aws = aws.to_str().unwrap();
    let (faketime, at) = INSTANTS[0];
    for (region, session) in [("eu-west-1", None), ("us-east-2", Some(SESSION))] {
        let sts = StsStandIn::start(session, region, at);
        let args = [
            "eks",
            "get-token",
            "--cluster-name",
            "prod",
            "--region",
            region,
            "--role-arn",
            ROLE_ARN,
        ];
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_ENDPOINT_URL_STS", sts.url.as_str()),
        ];
        if let Some(s) = session {
            env.push(("AWS_SESSION_TOKEN", s));
        }
        let (ok, theirs, err) = frozen(&[aws], &args, &env, faketime, &lib);
        assert!(ok, "aws: {err}\n{:?}", sts.seen());
        let mut ours_cmd = action().to_vec();
        ours_cmd.push("aws");
        let (ok, ours, err) = frozen(&ours_cmd, &args, &env, faketime, &lib);
        assert!(ok, "kube-token: {err}\n{:?}", sts.seen());
        assert_eq!(ours, theirs);
        let seen = sts.seen();
        assert_eq!(seen.len(), 2, "one AssumeRole each: {seen:?}");
        assert!(seen.iter().all(|s| s.verdict.is_ok()), "{seen:?}");
        assert_eq!(
            seen[0].body.split('&').count(),
            seen[1].body.split('&').count()
        );
        // The token is signed with the role's credentials, at the stand-in's address.
        let url = url_of(&ours);
        assert!(
            url.starts_with(&format!("{}/?Action=GetCallerIdentity&", sts.url)),
            "{url}"
        );
        assert!(
            url.contains(&format!("X-Amz-Credential={ROLE_KEY_ID}%2F")),
            "{url}"
        );
        let token_param = format!(
            "X-Amz-Security-Token={}",
            percent_encoding::utf8_percent_encode(ROLE_SESSION, percent_encoding::NON_ALPHANUMERIC)
        );
        assert!(url.contains(&token_param), "{url}");
        assert_eq!(expiry_of(&ours), expected_expiry(at));
    }
}

#[test]
fn a_refused_assume_role_is_one_line_without_the_secret() {
    let Some((_, lib)) = tools() else { return };
    let (faketime, at) = INSTANTS[0];
    let sts = StsStandIn::start(None, "eu-west-1", at);
    let wrong = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY00";
    let mut cmd = action().to_vec();
    cmd.push("aws");
    let (ok, out, err) = frozen(
        &cmd,
        &[
            "eks",
            "get-token",
            "--cluster-name",
            "prod",
            "--region",
            "eu-west-1",
            "--role-arn",
            ROLE_ARN,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", wrong),
            ("AWS_ENDPOINT_URL_STS", sts.url.as_str()),
        ],
        faketime,
        &lib,
    );
    assert!(!ok);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "kube-token `aws eks get-token`: failed to assume the role \"{ROLE_ARN}\": STS at {}/ \
             refused AssumeRole (403): SignatureDoesNotMatch: the request signature we \
             calculated does not match",
            sts.url
        )),
        "{err}"
    );
    assert!(!err.contains(wrong));
    assert_eq!(sts.seen().len(), 1);
    assert!(sts.seen()[0].verdict.is_err());
}

/// The frozen instants are what `jiff` says they are (the cases above rely on both tables).
#[test]
fn the_instants_agree() {
    for (text, at) in INSTANTS {
        let parsed: jiff::Timestamp = format!("{}Z", text.replace(' ', "T")).parse().unwrap();
        assert_eq!(parsed.as_second() as u64, *at);
    }
}

/// A proxy that takes one CONNECT at a time, records its target and refuses it: where
/// aws-iam-authenticator's verifier would reach STS, it stops here, on loopback.
fn refusing_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
            record.lock().unwrap().push(line.trim_end().to_string());
            let _ = stream.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (url, seen)
}

/// How far aws-iam-authenticator's verifier got with `token`: its JSON verdict.
fn verify(
    verifier: &Path,
    proxy: &str,
    cluster: &str,
    partition: &str,
    region: &str,
    token: &str,
) -> serde_json::Value {
    let mut child = Command::new(verifier)
        .args([cluster, partition, region])
        .env_clear()
        .env("HTTPS_PROXY", proxy)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn token_of(answer: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(answer).unwrap();
    doc["status"]["token"].as_str().unwrap().to_string()
}

/// aws-iam-authenticator's own verifier (the code its server runs on each token) accepts the
/// tokens of both `kube-token aws eks get-token` and `kube-token aws-iam-authenticator token` up
/// to the point where it calls STS, at the STS host of the token's partition and region; it
/// refuses one sent to another partition's verifier, and one minted 20 minutes ago.
#[test]
fn aws_iam_authenticators_verifier_takes_the_tokens_up_to_sts() {
    let Some(verifier) = common::tools::eks_token_verifier() else {
        return;
    };
    let (proxy, seen) = refusing_proxy();
    let cases: &[(Option<&str>, &str, &str)] = &[
        (Some("eu-west-1"), "aws", "sts.eu-west-1.amazonaws.com"),
        (Some("us-east-1"), "aws", "sts.us-east-1.amazonaws.com"),
        (
            Some("ap-southeast-2"),
            "aws",
            "sts.ap-southeast-2.amazonaws.com",
        ),
        (
            Some("cn-north-1"),
            "aws-cn",
            "sts.cn-north-1.amazonaws.com.cn",
        ),
        (
            Some("us-gov-west-1"),
            "aws-us-gov",
            "sts.us-gov-west-1.amazonaws.com",
        ),
        (None, "aws", "sts.amazonaws.com"),
    ];
    let mut checked = 0;
    for (region, partition, host) in cases {
        for session in [None, Some(SESSION)] {
            for plugin in [
                &["aws", "eks", "get-token", "--cluster-name", "prod"][..],
                &["aws-iam-authenticator", "token", "-i", "prod"][..],
            ] {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
                cmd.arg("kube-token").args(plugin).env_clear();
                if let Some(r) = region {
                    cmd.args(["--region", r]);
                }
                cmd.env("AWS_ACCESS_KEY_ID", KEY_ID)
                    .env("AWS_SECRET_ACCESS_KEY", SECRET);
                if let Some(s) = session {
                    cmd.env("AWS_SESSION_TOKEN", s);
                }
                let out = cmd.output().unwrap();
                assert!(out.status.success(), "{plugin:?}: {out:?}");
                let token = token_of(&String::from_utf8(out.stdout).unwrap());
                let before = seen.lock().unwrap().len();
                let verdict = verify(
                    &verifier,
                    &proxy,
                    "prod",
                    partition,
                    region.unwrap_or("us-east-1"),
                    &token,
                );
                assert_eq!(verdict["stage"], "sts", "{plugin:?} {region:?}: {verdict}");
                let seen = seen.lock().unwrap();
                assert_eq!(
                    seen[before..],
                    [format!("CONNECT {host}:443 HTTP/1.1")],
                    "{plugin:?} {region:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, cases.len() * 4);

    // The verifier refuses: a token for another partition's hosts, and one 20 minutes old.
    let mint = |faketime: Option<(&Path, &str)>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
        cmd.args([
            "kube-token",
            "aws",
            "eks",
            "get-token",
            "--cluster-name",
            "prod",
        ])
        .args(["--region", "eu-west-1"])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
        if let Some((lib, at)) = faketime {
            cmd.env("LD_PRELOAD", lib).env("FAKETIME", at);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        token_of(&String::from_utf8(out.stdout).unwrap())
    };
    let before = seen.lock().unwrap().len();
    let v = verify(
        &verifier,
        &proxy,
        "prod",
        "aws-cn",
        "cn-north-1",
        &mint(None),
    );
    assert_eq!(v["stage"], "format", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("unexpected hostname"),
        "{v}"
    );
    if let Some(lib) = libfaketime() {
        let v = verify(
            &verifier,
            &proxy,
            "prod",
            "aws",
            "eu-west-1",
            &mint(Some((&lib, "-20m"))),
        );
        assert_eq!(v["stage"], "format", "{v}");
        assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "a refused token reached STS"
    );
}
