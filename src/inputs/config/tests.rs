//! `resolve` on whole sets of inputs: defaults, inference, pairs of inputs, files, every input read.

use super::*;
use crate::env::Env;
use crate::inputs::INPUTS;
use std::collections::BTreeSet;

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
    // The pair is for one host, which must be named (issue #17).
    let e = with(&[
        ("registry_username", "bot"),
        ("registry_password", "hunter2-token"),
    ])
    .unwrap_err();
    assert_eq!(e.input, "registry_host");
    assert!(!e.to_string().contains("hunter2"));
    let c = with(&[
        ("registry_username", "bot"),
        ("registry_password", "hunter2-token"),
        ("registry_host", "ghcr.io"),
        ("pin_digests", "true"),
    ])
    .unwrap();
    assert_eq!(c.registry_credentials.hosts(), ["ghcr.io"]);
    assert_eq!(
        c.registry_credentials.get("ghcr.io").unwrap().username,
        "bot"
    );
    assert!(c.pin_digests);
    assert!(c.secrets().contains(&"hunter2-token".to_string()));
    let r = raw(&[("registry_password", "hunter2-token")]);
    assert!(r.secret_values().contains(&"hunter2-token".to_string()));
    // registry_auth adds other hosts; the same host twice is refused.
    let auth = r#"{"auths": {"quay.io": {"username": "q", "password": "quay-pw-canary"}}}"#;
    let c = with(&[
        ("registry_auth", auth),
        ("registry_username", "bot"),
        ("registry_password", "hunter2-token"),
        ("registry_host", "ghcr.io"),
    ])
    .unwrap();
    assert_eq!(c.registry_credentials.hosts(), ["ghcr.io", "quay.io"]);
    assert!(c.secrets().contains(&"quay-pw-canary".to_string()));
    assert!(
        raw(&[("registry_auth", auth)])
            .secret_values()
            .contains(&"quay-pw-canary".to_string())
    );
    let e = with(&[
        ("registry_auth", auth),
        ("registry_username", "bot"),
        ("registry_password", "hunter2-token"),
        ("registry_host", "QUAY.io"),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `registry_host`: quay.io has credentials in registry_auth too: give them once"
    );
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
fn defaults_on_a_push_to_main() {
    let c = resolve(&raw(&[("mode", "resolve")]), &push_main()).unwrap();
    assert_eq!(c.environment, "dev");
    assert_eq!(c.version, "sha-01234567");
    assert_eq!(c.release, "traderadmin");
    assert_eq!(c.namespace, "trader");
    assert_eq!(c.timeout, Duration::from_secs(300));
    assert_eq!(c.history_max, 10);
    assert_eq!(c.pod_log_lines, 20);
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
fn protected_environments_pin_digests_unless_told_not_to() {
    let with = |env: &str, pin: Option<&str>| {
        let mut pairs = vec![
            ("mode", "resolve"),
            ("version", "v1.2.0"),
            ("environment", env),
        ];
        if let Some(p) = pin {
            pairs.push(("pin_digests", p));
        }
        resolve(&raw(&pairs), &push_main()).unwrap().pin_digests
    };
    // What was approved is what runs: prod deploys by digest by default.
    assert!(with("prod", None));
    assert!(!with("prod", Some("false")));
    assert!(!with("dev", None));
    assert!(with("dev", Some("true")));
}

#[test]
fn pod_log_lines_is_a_bounded_count() {
    let with = |v: &'static str| {
        resolve(
            &raw(&[("mode", "resolve"), ("pod_log_lines", v)]),
            &push_main(),
        )
    };
    assert_eq!(with("0").unwrap().pod_log_lines, 0);
    assert_eq!(with(" 50 ").unwrap().pod_log_lines, 50);
    for bad in ["-1", "all", "1001"] {
        let e = with(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("input `pod_log_lines`: {bad:?} is not a whole number from 0 to 1000")
        );
    }
}

#[test]
fn chart_sources_version_repository_and_credentials() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join("chart")).unwrap();
    std::fs::write(
        ws.path().join("chart/Chart.yaml"),
        "name: app\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        ws.path().join("chart/values.yaml"),
        "image:\n  registry: docker.io\n  repository: bitnami/nginx\n  tag: \"1\"\n  digest: \"\"\n",
    )
    .unwrap();
    let local = RunContext {
        workspace: ws.path().to_path_buf(),
        ..RunContext::default()
    };
    let base = [("environment", "dev"), ("version", "v1.0.0")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        resolve(&raw(&pairs), &local)
    };
    // A directory is deployed as it is: no version.
    let e = with(&[("chart", "chart"), ("chart_version", "1.0.0")]).unwrap_err();
    assert_eq!(e.input, "chart_version");
    // OCI: a version, no tag in the reference.
    let c = with(&[
        ("chart", "oci://ghcr.io/acme/charts/app"),
        ("chart_version", "~1.2"),
    ])
    .unwrap();
    assert_eq!(c.chart_version.as_deref(), Some("~1.2"));
    assert!(c.chart_dir.is_none());
    assert_eq!(c.release, "app");
    let e = with(&[("chart", "oci://ghcr.io/acme/charts/app:1.0.0")]).unwrap_err();
    assert_eq!(e.input, "chart");
    let e = with(&[("chart", "oci://ghcr.io")]).unwrap_err();
    assert_eq!(e.input, "chart");
    let e = with(&[("chart", "oci://ghcr.io/a"), ("chart_version", "1.0; rm")]).unwrap_err();
    assert_eq!(e.input, "chart_version");
    // A repository: an http(s) URL and a chart name.
    let c = with(&[
        ("chart", "traderadmin"),
        ("chart_repository", "https://charts.example.com/stable/"),
        ("chart_version", "1.2.3"),
    ])
    .unwrap();
    assert_eq!(
        c.chart_repository.as_deref(),
        Some("https://charts.example.com/stable")
    );
    let e = with(&[("chart", "a/b"), ("chart_repository", "https://x.example")]).unwrap_err();
    assert_eq!(e.input, "chart");
    let e = with(&[("chart", "a"), ("chart_repository", "ftp://x.example")]).unwrap_err();
    assert_eq!(e.input, "chart_repository");
    // Credentials per host, masked.
    let c = with(&[
        ("chart", "oci://ghcr.io/acme/app"),
        (
            "chart_auth",
            r#"{"auths": {"ghcr.io": {"username": "bot", "password": "chart-canary-91"}}}"#,
        ),
    ])
    .unwrap();
    assert!(c.chart_credentials.get("ghcr.io").is_some());
    assert!(c.secrets().iter().any(|s| s == "chart-canary-91"));
    let e = with(&[("chart", "oci://ghcr.io/a"), ("chart_auth", "nope-canary")]).unwrap_err();
    assert_eq!(e.input, "chart_auth");
    assert!(!e.to_string().contains("nope-canary"));
    // The image map is read from the chart's values.
    let c = with(&[("chart", "chart"), ("images", "image=ghcr.io/acme/x")]).unwrap();
    assert_eq!(
        c.images[0].keys(),
        [
            "image.registry",
            "image.repository",
            "image.tag",
            "image.digest"
        ]
    );
    let e = with(&[("chart", "chart"), ("images", "web.image=ghcr.io/acme/x")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `images`: the chart has no value at key \"web.image\"; image keys found: image"
    );
}
