//! The spec parser's tests: the shipped example, schema parity, compilation and its errors.

use super::testing::{parse, vars};
use super::*;
use crate::smoke::retry::DEFAULT_REQUEST_TIMEOUT;

#[test]
fn the_example_spec_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/smoke-tests.yaml");
    let spec = Spec::load(&path, &vars()).unwrap();
    let names: Vec<_> = spec.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["healthz", "ready", "metrics", "api-status"]);
    assert_eq!(spec.preflight[0].name, "no-open-orders");
    assert_eq!(spec.preflight[0].policy.timeout, Duration::from_secs(600));
    let hooks = spec.hooks.as_ref().expect("the example pauses and resumes");
    assert_eq!(
        (hooks.before_upgrade.describe(), hooks.after.describe()),
        (
            "POST service/traderadmin:http/admin/pause-new-orders".to_string(),
            "POST service/traderadmin:http/admin/resume".to_string()
        )
    );
    let metrics = &spec.checks[2];
    assert_eq!(metrics.expect.metrics, ["http_requests_total"]);
    assert_eq!(
        metrics.target,
        Target::Service {
            service: "traderadmin".into(),
            port: PortRef::Name("http".into()),
            path: "/metrics".into()
        }
    );
    let api = &spec.checks[3];
    assert!(
        api.expect
            .json
            .contains(&("/version".into(), serde_json::json!("v1.2.0")))
    );
}

/// Every property the JSON Schema declares is accepted by the parser, and the parser accepts
/// nothing the schema does not declare (`deny_unknown_fields` + the list below).
#[test]
fn the_schema_and_the_parser_agree() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/smoke-tests.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let props = |v: &serde_json::Value| -> BTreeSet<String> {
        v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let defs = &schema["$defs"];
    let sample = |name: &str| -> serde_json::Value {
        match name {
            "name" => "a".into(),
            "url" => "http://127.0.0.1:1/x".into(),
            "service" => "svc".into(),
            "port" => 80.into(),
            "path" => "/p".into(),
            "method" => "POST".into(),
            "headers" => serde_json::json!({"X-A": "b"}),
            "body" => "b".into(),
            "expect" => serde_json::json!({
                "status": [200], "body_contains": "x", "body_matches": "x",
                "json": {"/a": 1}, "metrics": ["m"]
            }),
            "timeout" => "10s".into(),
            "interval" => "1s".into(),
            "request_timeout" => "1s".into(),
            "successes" => 1.into(),
            "retries" => 3.into(),
            other => panic!("the schema declares {other:?}: give it a sample here"),
        }
    };
    let check_props = props(&defs["check"]);
    let expect_props = props(&defs["check"]["properties"]["expect"]);
    let default_props = props(&schema["properties"]["defaults"]);
    assert_eq!(
        props(&schema),
        BTreeSet::from([
            "checks".into(),
            "defaults".into(),
            "hooks".into(),
            "preflight".into()
        ])
    );
    assert_eq!(
        props(&schema["properties"]["preflight"]),
        BTreeSet::from(["checks".into(), "wait".into()])
    );
    assert_eq!(
        props(&schema["properties"]["hooks"]),
        BTreeSet::from(["after".into(), "before_upgrade".into()])
    );
    assert_eq!(
        expect_props,
        ["body_contains", "body_matches", "json", "metrics", "status"]
            .map(String::from)
            .into()
    );
    // Each check property (url alone, service with the rest) parses.
    let mut with_service = serde_json::Map::new();
    for p in check_props.iter().filter(|p| *p != "url") {
        with_service.insert(p.clone(), sample(p));
    }
    let mut defaults = serde_json::Map::new();
    for p in &default_props {
        defaults.insert(p.clone(), sample(p));
    }
    let doc = serde_json::json!({
        "defaults": defaults,
        "checks": [with_service, {"name": "b", "url": sample("url")}],
        "preflight": {"wait": "20s", "checks": [{"name": "c", "url": sample("url")}]},
        "hooks": {
            "before_upgrade": {"name": "d", "url": sample("url"), "method": "POST"},
            "after": {"name": "e", "url": sample("url"), "method": "POST"}
        }
    });
    parse(&serde_json::to_string(&doc).unwrap()).unwrap();
    // And an undeclared one is refused, at each level.
    for doc in [
        serde_json::json!({"checks": [{"name": "a", "url": "http://x/", "extra": 1}]}),
        serde_json::json!({"checks": [{"name": "a", "url": "http://x/", "expect": {"extra": 1}}]}),
        serde_json::json!({"defaults": {"extra": 1}, "checks": [{"name": "a", "url": "http://x/"}]}),
        serde_json::json!({"extra": 1, "checks": [{"name": "a", "url": "http://x/"}]}),
        serde_json::json!({"preflight": {"extra": 1, "checks": [{"name": "a", "url": "http://x/"}]}}),
        serde_json::json!({"hooks": {"extra": 1}}),
    ] {
        let e = parse(&doc.to_string()).unwrap_err();
        assert!(e.contains("unknown field `extra`"), "{e}");
    }
}

#[test]
fn a_full_check_compiles_with_defaults_and_variables() {
    let spec = parse(
        r#"
defaults:
  service: ${release}-orch
  port: http
  timeout: 30s
  interval: 500ms
  headers: {X-Env: "${environment}", Accept: text/plain}
checks:
  - name: post
    method: post
    path: /api/v1/orders?dry_run=1
    headers: {Accept: application/json}
    body: '{"ns":"${namespace}","cost":"$$5"}'
    expect:
      status: [200, 201]
      body_contains: ok
      body_matches: '"id":\s*\d+'
      json: {/status: ok, /count: 2, "": {status: ok, count: 2}}
    successes: 3
    retries: 9
  - name: external
    url: https://example.com/${version}/health
    request_timeout: 2s
"#,
    )
    .unwrap();
    let c = &spec.checks[0];
    assert_eq!(c.method, http::Method::POST);
    assert_eq!(
        c.target,
        Target::Service {
            service: "traderadmin-orch".into(),
            port: PortRef::Name("http".into()),
            path: "/api/v1/orders?dry_run=1".into()
        }
    );
    assert_eq!(c.body.as_deref(), Some(r#"{"ns":"trader","cost":"$5"}"#));
    let mut h = c.headers.clone();
    h.sort();
    assert_eq!(
        h,
        [
            ("Accept".to_string(), "application/json".to_string()),
            ("X-Env".to_string(), "prod".to_string())
        ]
    );
    assert_eq!(c.expect.status, [200, 201]);
    assert_eq!(c.expect.body_contains, ["ok"]);
    assert_eq!(
        c.policy,
        Policy {
            timeout: Duration::from_secs(30),
            interval: Duration::from_millis(500),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            successes: 3,
            max_attempts: Some(10)
        }
    );
    let e = &spec.checks[1];
    assert_eq!(
        e.target,
        Target::Url("https://example.com/v1.2.0/health".into())
    );
    assert_eq!(e.policy.request_timeout, Duration::from_secs(2));
    assert_eq!(e.describe(), "GET https://example.com/v1.2.0/health");
}

#[test]
fn bad_specs_say_which_check_and_what() {
    let cases: &[(&str, &str)] = &[
        ("checks: []", "`checks` is empty"),
        ("checks: [{name: a, servce: x}]", "unknown field `servce`"),
        (
            "checks: [{name: a}]",
            "check \"a\": needs `url` or `service`",
        ),
        ("checks: [{name: a, service: x}]", "needs `port`"),
        (
            "checks: [{name: a, service: x, url: 'http://x'}]",
            "not both",
        ),
        ("checks: [{name: a, url: 'ftp://x'}]", "not an http(s) URL"),
        (
            "checks: [{name: a, url: 'http://x', path: /y}]",
            "put them in `url`",
        ),
        (
            "checks: [{name: a, service: X_Y, port: 80}]",
            "not a service name",
        ),
        (
            "checks: [{name: a, service: x, port: 0}]",
            "0 is not a port",
        ),
        (
            "checks: [{name: a, service: x, port: 'h t'}]",
            "neither a number nor a port name",
        ),
        (
            "checks: [{name: a, service: x, port: 80, path: health}]",
            "must start with '/'",
        ),
        (
            "checks: [{name: a, service: x, port: 80, method: FETCH}]",
            "not an HTTP method",
        ),
        (
            "checks: [{name: a, service: x, port: 80, body: x}]",
            "GET request takes no `body`",
        ),
        (
            "checks: [{name: a, service: x, port: 80, expect: {status: 999}}]",
            "999 is not an HTTP status",
        ),
        (
            "checks: [{name: a, service: x, port: 80, expect: {body_matches: '('}}]",
            "is not a regex",
        ),
        (
            "checks: [{name: a, service: x, port: 80, expect: {json: {status: ok}}}]",
            "is not a JSON pointer",
        ),
        (
            "checks: [{name: a, service: x, port: 80, expect: {metrics: [1abc]}}]",
            "not a Prometheus metric name",
        ),
        (
            "checks: [{name: a, service: x, port: 80, method: HEAD, expect: {body_contains: x}}]",
            "HEAD request has no body",
        ),
        (
            "checks: [{name: a, service: x, port: 80, timeout: 5x}]",
            "`timeout` \"5x\" is not a duration",
        ),
        (
            "checks: [{name: a, service: x, port: 80, interval: 2m}]",
            "`interval` is longer than `timeout`",
        ),
        (
            "checks: [{name: a, service: x, port: 80, interval: 0s}]",
            "`interval` must be at least 100ms",
        ),
        (
            "checks: [{name: a, service: x, port: 80, timeout: 2s, request_timeout: 3s}]",
            "`request_timeout` must be from 100ms to `timeout`",
        ),
        (
            "checks: [{name: a, service: x, port: 80, successes: 0}]",
            "`successes` must be from 1 to 100",
        ),
        (
            "checks: [{name: a, service: x, port: 80, successes: 3, retries: 1}]",
            "fewer attempts",
        ),
        (
            "checks: [{name: a, service: '${nope}', port: 80}]",
            "unknown variable ${nope}",
        ),
        (
            "checks: [{name: a, service: x, port: 80}, {name: a, service: y, port: 80}]",
            "check \"a\": the name is used twice",
        ),
        (
            "checks: [{name: 'a b', service: x, port: 80}]",
            "must be 1-63 letters",
        ),
        (
            "checks: [{name: a, service: x, port: 80, headers: {'bad header': x}}]",
            "header name \"bad header\" is not valid",
        ),
        (
            "defaults: {timeout: 0s}\nchecks: [{name: a, service: x, port: 80}]",
            "defaults: `timeout` must be from 1s to 1h",
        ),
        (
            "checks: [{name: a, service: x, port: 80, expect: {status: [200, x]}}]",
            "smoke.yaml",
        ),
    ];
    for (text, want) in cases {
        let e = parse(text).unwrap_err();
        assert!(e.contains(want), "{text}\n  gave: {e}\n  wanted: {want}");
        assert!(e.starts_with("smoke test spec smoke.yaml: "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

#[test]
fn inherited_interval_and_request_timeout_shrink_to_a_short_budget() {
    let spec = parse(
        "defaults: {request_timeout: 5s}\nchecks: [{name: a, service: x, port: 80, timeout: 1s}]",
    )
    .unwrap();
    let p = spec.checks[0].policy;
    assert_eq!(p.timeout, Duration::from_secs(1));
    assert_eq!(p.request_timeout, Duration::from_secs(1));
    assert_eq!(p.interval, Duration::from_secs(1));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// YAML-ish text built from the spec's own words, so that the parser gets past the YAML
    /// reader into its own checks more often than random bytes would.
    fn spec_like() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            Just("checks:".to_string()),
            Just("  - name: ".to_string()),
            Just("    url: ".to_string()),
            Just("    service: ".to_string()),
            Just("    port: ".to_string()),
            Just("    path: ".to_string()),
            Just("    expect: ".to_string()),
            Just("{status: ".to_string()),
            Just("defaults:".to_string()),
            Just("  policy: {attempts: ".to_string()),
            Just("${release}".to_string()),
            Just("${nope}".to_string()),
            Just("http://127.0.0.1:1/x".to_string()),
            Just("\n".to_string()),
            "[ -~]{0,8}",
        ];
        prop::collection::vec(word, 0..24).prop_map(|w| w.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text: no panic; an error is one line that names the spec file.
        #[test]
        fn never_panics(text in prop_oneof![spec_like(), "\\PC{0,200}"]) {
            if let Err(e) = Spec::parse(&text, Path::new("smoke.yaml"), &vars()) {
                let e = e.to_string();
                prop_assert!(e.starts_with("smoke test spec smoke.yaml: "), "{}", e);
                prop_assert!(!e.contains('\n'), "{}", e);
            }
        }

        /// A URL check with any status reads back with that status, or is refused naming it.
        #[test]
        fn status_round_trips(status in 0u32..1200) {
            let text = format!(
                "checks:\n  - name: c\n    url: http://127.0.0.1:1/x\n    expect: {{status: {status}}}\n"
            );
            match Spec::parse(&text, Path::new("s.yaml"), &vars()) {
                Ok(spec) => {
                    prop_assert!((100..=599).contains(&status));
                    prop_assert_eq!(&spec.checks[0].expect.status, &vec![status as u16]);
                }
                Err(e) => {
                    prop_assert!(!(100..=599).contains(&status), "{}", e);
                    prop_assert!(e.to_string().contains(&status.to_string()), "{}", e);
                }
            }
        }
    }
}

#[test]
fn preflight_and_hooks_compile_with_their_budgets() {
    let spec = parse(
        r#"
defaults: {service: app, port: http, timeout: 30s, interval: 1s, successes: 2}
checks:
  - {name: ready, path: /ready}
preflight:
  wait: 10m
  checks:
    - name: no-open-orders
      path: /api/v1/orders/open
      expect: {status: 200, json: {/count: 0}}
hooks:
  before_upgrade: {name: pause, method: POST, path: /admin/pause-new-orders}
  after: {name: resume, method: POST, path: /admin/resume}
"#,
    )
    .unwrap();
    let pre = &spec.preflight[0];
    assert_eq!(
        pre.policy.timeout,
        Duration::from_secs(600),
        "wait is the budget"
    );
    assert_eq!(pre.policy.successes, 2);
    let hooks = spec.hooks.unwrap();
    assert_eq!(hooks.before_upgrade.method, http::Method::POST);
    assert_eq!(
        (
            hooks.after.policy.max_attempts,
            hooks.after.policy.successes
        ),
        (Some(1), 1),
        "a hook is one attempt unless it asks for retries"
    );
}

#[test]
fn preflight_and_hooks_errors_name_the_section() {
    let e = parse("preflight: {checks: []}").unwrap_err();
    assert!(e.contains("`preflight.checks` is empty"), "{e}");
    let e = parse("hooks: {before_upgrade: {name: p, url: 'http://x/'}}").unwrap_err();
    assert!(e.contains("go together"), "{e}");
    let e = parse("preflight: {wait: soon, checks: [{name: a, url: 'http://x/'}]}").unwrap_err();
    assert!(
        e.contains("`preflight.wait` \"soon\" is not a duration"),
        "{e}"
    );
    let e = parse(
        "checks: [{name: a, url: 'http://x/'}]\npreflight: {checks: [{name: a, url: 'http://x/'}]}",
    )
    .unwrap_err();
    assert!(
        e.contains("preflight check \"a\": the name is used twice"),
        "{e}"
    );
    // A spec of hooks alone is a spec.
    parse("hooks: {before_upgrade: {name: p, url: 'http://x/', method: POST}, after: {name: r, url: 'http://x/', method: POST}}").unwrap();
}
