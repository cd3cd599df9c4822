//! Smoke tests after the upgrade: a YAML spec of HTTP checks (docs/smoke-tests.md, JSON Schema
//! in schema/smoke-tests.schema.json), each against a URL or a Service port reached by a
//! port-forward through the Kubernetes API, with retries inside a time budget and a rule for
//! cutover blips (N consecutive successes); the results as a job-summary table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use http_body_util::BodyExt as _;
use serde::Deserialize;

use crate::inputs::Config;
use crate::portforward::{self, PortRef};
use crate::runner::Runner;

/// Largest response body read (the rest is a failure: smoke endpoints answer small bodies).
const MAX_BODY: usize = 4 << 20;
/// How much of a body a failure message quotes.
const QUOTE: usize = 160;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time a retry gets for its request (or `request_timeout` when that is shorter):
/// no attempt starts that the budget would cut short.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);
/// How a request that timed out is reported.
const NO_ANSWER: &str = "no answer within";

/// A failure of the smoke tests: a bad spec, or checks that did not pass.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmokeError {
    #[error("failed to read the smoke test spec {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("smoke test spec {}: {message}", .path.display())]
    Spec { path: PathBuf, message: String },
    #[error("failed to build the smoke tests' HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("smoke tests need a Kubernetes client for check {check:?} (service {service:?})")]
    NoCluster { check: String, service: String },
    #[error("{}", failed_message(.failed, .total))]
    Failed {
        /// The results of the failing checks.
        failed: Vec<CheckResult>,
        total: usize,
        /// The whole report (for the summary).
        report: Report,
    },
}

fn failed_message(failed: &[CheckResult], total: &usize) -> String {
    let mut s = format!("{} of {total} smoke checks failed:", failed.len());
    for r in failed {
        let _ = write!(
            s,
            "\n  - check {:?} ({}): {} ({} attempt{} in {:.1}s)",
            r.name,
            r.target,
            r.detail,
            r.attempts,
            if r.attempts == 1 { "" } else { "s" },
            r.elapsed.as_secs_f64()
        );
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The spec as written.

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
enum PortValue {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    timeout: Option<String>,
    interval: Option<String>,
    request_timeout: Option<String>,
    successes: Option<u32>,
    retries: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsFile {
    service: Option<String>,
    port: Option<PortValue>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(flatten)]
    policy: PolicyFile,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    status: Option<OneOrMany<u16>>,
    body_contains: Option<OneOrMany<String>>,
    body_matches: Option<String>,
    #[serde(default)]
    json: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    metrics: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    name: String,
    url: Option<String>,
    service: Option<String>,
    port: Option<PortValue>,
    path: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    #[serde(default)]
    expect: ExpectFile,
    #[serde(flatten)]
    policy: PolicyFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    #[serde(default)]
    defaults: DefaultsFile,
    checks: Vec<CheckFile>,
}

// ---------------------------------------------------------------------------------------------
// The spec as run: validated, variables substituted.

/// The values `${name}` stands for in a spec.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars {
    pub(crate) release: String,
    pub(crate) namespace: String,
    pub(crate) version: String,
    pub(crate) environment: String,
}

impl Vars {
    pub(crate) fn from_config(config: &Config) -> Vars {
        Vars {
            release: config.release.clone(),
            namespace: config.namespace.clone(),
            version: config.version.clone(),
            environment: config.environment.clone(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "release" => Some(&self.release),
            "namespace" => Some(&self.namespace),
            "version" => Some(&self.version),
            "environment" => Some(&self.environment),
            _ => None,
        }
    }

    /// Replaces `${release}`, `${namespace}`, `${version}`, `${environment}`; `$$` is a `$`.
    pub(crate) fn substitute(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
                let name = &r[..end];
                let value = self.get(name).ok_or_else(|| {
                    format!(
                        "unknown variable ${{{name}}} in {text:?} (known: release, namespace, \
                         version, environment)"
                    )
                })?;
                out.push_str(value);
                rest = &r[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Retries of one check: attempts every `interval` until `successes` consecutive successes, at
/// most `max_attempts`, within the `timeout` budget; each request within `request_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) successes: u32,
    pub(crate) max_attempts: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            successes: 1,
            max_attempts: None,
        }
    }
}

/// Where a check sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Url(String),
    Service {
        service: String,
        port: PortRef,
        path: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Url(u) => f.write_str(u),
            Target::Service {
                service,
                port,
                path,
            } => write!(f, "service/{service}:{port}{path}"),
        }
    }
}

/// What a response must satisfy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expect {
    /// Accepted status codes; empty = any 2xx.
    pub(crate) status: Vec<u16>,
    pub(crate) body_contains: Vec<String>,
    pub(crate) body_matches: Option<regex::Regex>,
    /// JSON pointer → expected value.
    pub(crate) json: Vec<(String, serde_json::Value)>,
    /// Prometheus metric names that must be present.
    pub(crate) metrics: Vec<String>,
}

/// One validated check.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) target: Target,
    pub(crate) method: http::Method,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<String>,
    pub(crate) expect: Expect,
    pub(crate) policy: Policy,
}

impl CheckResult {
    /// The request, the outcome and the attempts in one line, for the summary table.
    pub(crate) fn summary_detail(&self) -> String {
        format!(
            "{}: {} ({} attempt{} in {:.1}s)",
            self.target,
            self.detail,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64()
        )
    }
}

impl Check {
    /// `GET service/x:http/ready`, for messages and the summary.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

/// A validated smoke spec.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) checks: Vec<Check>,
}

impl Spec {
    /// Reads and validates a spec file, substituting `vars`.
    pub(crate) fn load(path: &Path, vars: &Vars) -> Result<Spec, SmokeError> {
        let text = std::fs::read_to_string(path).map_err(|source| SmokeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Spec::parse(&text, path, vars)
    }

    /// Parses and validates spec text (`path` is for messages).
    pub(crate) fn parse(text: &str, path: &Path, vars: &Vars) -> Result<Spec, SmokeError> {
        let err = |message: String| SmokeError::Spec {
            path: path.to_path_buf(),
            message,
        };
        let file: SpecFile = crate::manifest::parse(text).map_err(|e| err(one_line(&e)))?;
        if file.checks.is_empty() {
            return Err(err("`checks` is empty".into()));
        }
        let defaults_policy = policy(&file.defaults.policy, Policy::default())
            .map_err(|m| err(format!("defaults: {m}")))?;
        let mut names = BTreeSet::new();
        let mut checks = Vec::new();
        for (n, c) in file.checks.iter().enumerate() {
            let label = if c.name.is_empty() {
                format!("check {}", n + 1)
            } else {
                format!("check {:?}", c.name)
            };
            let check = compile(c, &file.defaults, defaults_policy, vars)
                .map_err(|m| err(format!("{label}: {m}")))?;
            if !names.insert(check.name.clone()) {
                return Err(err(format!("{label}: the name is used twice")));
            }
            checks.push(check);
        }
        Ok(Spec { checks })
    }
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn duration(field: &str, v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v.trim())
        .map_err(|_| format!("`{field}` {v:?} is not a duration (e.g. 2s, 500ms, 1m)"))
}

fn policy(p: &PolicyFile, base: Policy) -> Result<Policy, String> {
    let mut out = base;
    if let Some(t) = &p.timeout {
        out.timeout = duration("timeout", t)?;
    }
    if let Some(t) = &p.interval {
        out.interval = duration("interval", t)?;
    }
    if let Some(t) = &p.request_timeout {
        out.request_timeout = duration("request_timeout", t)?;
    }
    if let Some(s) = p.successes {
        out.successes = s;
    }
    if let Some(r) = p.retries {
        out.max_attempts = Some(r.saturating_add(1));
    }
    if out.timeout < Duration::from_secs(1) || out.timeout > Duration::from_secs(3600) {
        return Err("`timeout` must be from 1s to 1h".into());
    }
    // Inherited values shrink to a shorter budget; values set here must fit in it.
    if p.interval.is_none() {
        out.interval = out.interval.min(out.timeout);
    }
    if p.request_timeout.is_none() {
        out.request_timeout = out.request_timeout.min(out.timeout);
    }
    if out.interval > out.timeout {
        return Err("`interval` is longer than `timeout`".into());
    }
    if out.interval < Duration::from_millis(100) {
        return Err("`interval` must be at least 100ms".into());
    }
    if out.request_timeout < Duration::from_millis(100) || out.request_timeout > out.timeout {
        return Err("`request_timeout` must be from 100ms to `timeout`".into());
    }
    if !(1..=100).contains(&out.successes) {
        return Err("`successes` must be from 1 to 100".into());
    }
    if out.max_attempts.is_some_and(|m| m < out.successes) {
        return Err("`retries` leaves fewer attempts than `successes` needs".into());
    }
    Ok(out)
}

fn port_ref(p: &PortValue, vars: &Vars) -> Result<PortRef, String> {
    match p {
        PortValue::Number(0) => Err("`port` 0 is not a port".into()),
        PortValue::Number(n) => Ok(PortRef::Number(*n)),
        PortValue::Name(s) => {
            let s = vars.substitute(s)?;
            if let Ok(n) = s.parse::<u16>() {
                return port_ref(&PortValue::Number(n), vars);
            }
            if crate::names::is_port_name(&s) {
                Ok(PortRef::Name(s))
            } else {
                Err(format!("`port` {s:?} is neither a number nor a port name"))
            }
        }
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn compile(c: &CheckFile, d: &DefaultsFile, base: Policy, vars: &Vars) -> Result<Check, String> {
    let name = c.name.trim().to_string();
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        return Err(format!(
            "`name` {:?} must be 1-63 letters, digits, '-', '_' or '.'",
            c.name
        ));
    }
    let method = c
        .method
        .as_deref()
        .unwrap_or("GET")
        .trim()
        .to_ascii_uppercase();
    let method = match method.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
            http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?
        }
        other => {
            return Err(format!(
                "`method` {other:?} is not an HTTP method this supports"
            ));
        }
    };
    let target = match (&c.url, &c.service) {
        (Some(_), Some(_)) => return Err("give `url` or `service`, not both".into()),
        (Some(u), None) => {
            if c.path.is_some() || c.port.is_some() {
                return Err("`path` and `port` go with `service`; put them in `url`".into());
            }
            let u = vars.substitute(u)?;
            match reqwest::Url::parse(&u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Target::Url(u)
                }
                _ => return Err(format!("`url` {u:?} is not an http(s) URL")),
            }
        }
        (None, service) => {
            let Some(service) = service.as_ref().or(d.service.as_ref()) else {
                return Err("needs `url` or `service` (or `defaults.service`)".into());
            };
            let service = vars.substitute(service)?;
            if !crate::names::is_dns_label(&service, 63) {
                return Err(format!("`service` {service:?} is not a service name"));
            }
            let Some(port) = c.port.as_ref().or(d.port.as_ref()) else {
                return Err("needs `port` (or `defaults.port`) with `service`".into());
            };
            let port = port_ref(port, vars)?;
            let path = vars.substitute(c.path.as_deref().unwrap_or("/"))?;
            if !path.starts_with('/')
                || path.chars().any(|ch| ch.is_whitespace() || ch.is_control())
            {
                return Err(format!(
                    "`path` {path:?} must start with '/' and have no spaces"
                ));
            }
            http::uri::PathAndQuery::try_from(path.as_str())
                .map_err(|e| format!("`path` {path:?} is not a valid path: {e}"))?;
            Target::Service {
                service,
                port,
                path,
            }
        }
    };
    let mut headers = Vec::new();
    for (k, v) in d
        .headers
        .iter()
        .filter(|(k, _)| !c.headers.contains_key(*k))
        .chain(&c.headers)
    {
        let v = vars.substitute(v)?;
        http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("header name {k:?} is not valid"))?;
        http::HeaderValue::from_str(&v)
            .map_err(|_| format!("header {k:?} has an invalid value"))?;
        headers.push((k.clone(), v));
    }
    let body = c.body.as_deref().map(|b| vars.substitute(b)).transpose()?;
    if body.is_some() && matches!(method, http::Method::GET | http::Method::HEAD) {
        return Err(format!("a {method} request takes no `body`"));
    }

    let e = &c.expect;
    let status = e
        .status
        .clone()
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    if let Some(s) = status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(format!("`expect.status` {s} is not an HTTP status"));
    }
    let body_contains = e
        .body_contains
        .clone()
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .map(|s| vars.substitute(s))
        .collect::<Result<Vec<_>, _>>()?;
    let body_matches = e
        .body_matches
        .as_deref()
        .map(|r| {
            regex::Regex::new(r).map_err(|err| {
                format!(
                    "`expect.body_matches` {r:?} is not a regex: {}",
                    one_line(&err)
                )
            })
        })
        .transpose()?;
    let mut json = Vec::new();
    for (pointer, value) in &e.json {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(format!(
                "`expect.json` key {pointer:?} is not a JSON pointer (it starts with '/', e.g. /status)"
            ));
        }
        json.push((pointer.clone(), substitute_json(value, vars)?));
    }
    for m in &e.metrics {
        if !is_metric_name(m) {
            return Err(format!(
                "`expect.metrics` {m:?} is not a Prometheus metric name"
            ));
        }
    }
    let has_body_expectations = !body_contains.is_empty()
        || body_matches.is_some()
        || !json.is_empty()
        || !e.metrics.is_empty();
    if method == http::Method::HEAD && has_body_expectations {
        return Err("a HEAD request has no body to expect anything of".into());
    }
    let policy = policy(&c.policy, base)?;
    Ok(Check {
        name,
        target,
        method,
        headers,
        body,
        expect: Expect {
            status,
            body_contains,
            body_matches,
            json,
            metrics: e.metrics.clone(),
        },
        policy,
    })
}

fn substitute_json(v: &serde_json::Value, vars: &Vars) -> Result<serde_json::Value, String> {
    Ok(match v {
        serde_json::Value::String(s) => serde_json::Value::String(vars.substitute(s)?),
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|x| substitute_json(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), substitute_json(x, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Expectations.

/// A response as the expectations see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
}

fn quote(body: &str) -> String {
    let t = body.trim();
    if t.chars().count() <= QUOTE {
        format!("{t:?}")
    } else {
        let cut: String = t.chars().take(QUOTE).collect();
        format!("{cut:?}…")
    }
}

fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            x == y || x.as_f64().is_some_and(|x| y.as_f64() == Some(x))
        }
        (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// True when the Prometheus text exposition has a sample named `name` (or declares its TYPE).
pub(crate) fn has_metric(text: &str, name: &str) -> bool {
    text.lines().map(str::trim).any(|line| {
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            words.next() == Some("TYPE") && words.next() == Some(name)
        } else {
            let sample = line
                .split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or("");
            !sample.is_empty() && sample == name
        }
    })
}

/// Checks a response against the expectations: `Ok(summary)` or `Err("got …, expected …")`.
pub(crate) fn evaluate(expect: &Expect, resp: &HttpResponse) -> Result<String, String> {
    let status_ok = if expect.status.is_empty() {
        (200..300).contains(&resp.status)
    } else {
        expect.status.contains(&resp.status)
    };
    if !status_ok {
        let wanted = if expect.status.is_empty() {
            "2xx".to_string()
        } else {
            expect
                .status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        return Err(format!(
            "got status {} (body {}), expected {wanted}",
            resp.status,
            quote(&resp.body)
        ));
    }
    for needle in &expect.body_contains {
        if !resp.body.contains(needle.as_str()) {
            return Err(format!(
                "got body {}, expected it to contain {needle:?}",
                quote(&resp.body)
            ));
        }
    }
    if let Some(re) = &expect.body_matches
        && !re.is_match(&resp.body)
    {
        return Err(format!(
            "got body {}, expected it to match /{}/",
            quote(&resp.body),
            re.as_str()
        ));
    }
    if !expect.json.is_empty() {
        let doc: serde_json::Value = serde_json::from_str(&resp.body).map_err(|e| {
            format!(
                "got body {} that is not JSON ({e}), expected JSON",
                quote(&resp.body)
            )
        })?;
        for (pointer, want) in &expect.json {
            match doc.pointer(pointer) {
                None => {
                    return Err(format!(
                        "got JSON without {pointer} ({}), expected {pointer} = {want}",
                        quote(&doc.to_string())
                    ));
                }
                Some(got) if !json_equal(got, want) => {
                    return Err(format!(
                        "got {pointer} = {got}, expected {pointer} = {want}"
                    ));
                }
                Some(_) => {}
            }
        }
    }
    for m in &expect.metrics {
        if !has_metric(&resp.body, m) {
            let names: BTreeSet<&str> = resp
                .body
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split(|c: char| c == '{' || c.is_whitespace()).next())
                .filter(|n| !n.is_empty())
                .collect();
            let names: Vec<&str> = names.into_iter().take(10).collect();
            return Err(format!(
                "got metrics [{}], expected metric {m} to be present",
                names.join(", ")
            ));
        }
    }
    Ok(format!("status {}", resp.status))
}

// ---------------------------------------------------------------------------------------------
// Retries and the cutover-blip rule.

/// Time as the retry loop sees it (a fake in tests).
pub(crate) trait Clock: Send + Sync {
    /// Time since an arbitrary fixed start.
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The real clock (tokio's).
pub(crate) struct TokioClock(tokio::time::Instant);

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock(tokio::time::Instant::now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// How one check's attempts ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) passed: bool,
    pub(crate) attempts: u32,
    pub(crate) elapsed: Duration,
    /// The last success's summary when passed; else what went wrong.
    pub(crate) detail: String,
}

/// Runs `probe` under `policy`: passes after `successes` consecutive successes; a failure resets
/// the streak; gives up when the attempts or the time budget run out. `probe` gets the timeout
/// for its request; `log` hears about each failed attempt.
pub(crate) async fn retry<F, Fut>(
    policy: &Policy,
    clock: &dyn Clock,
    log: &(dyn Fn(u32, &str) + Send + Sync),
    mut probe: F,
) -> Outcome
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let start = clock.now();
    let mut streak = 0u32;
    let mut attempts = 0u32;
    let mut last_failure: Option<String> = None;
    // The last failure that was an answer, so a final timeout does not hide a 503.
    let mut answered_failure: Option<String> = None;
    loop {
        attempts += 1;
        let remaining = policy.timeout.saturating_sub(clock.now() - start);
        let request_timeout = policy
            .request_timeout
            .min(remaining.max(Duration::from_millis(100)));
        match probe(request_timeout).await {
            Ok(summary) => {
                streak += 1;
                if streak >= policy.successes {
                    let detail = if attempts > streak {
                        format!(
                            "{summary}; passed after {} failed attempt{}",
                            attempts - streak,
                            if attempts - streak == 1 { "" } else { "s" }
                        )
                    } else {
                        summary
                    };
                    return Outcome {
                        passed: true,
                        attempts,
                        elapsed: clock.now() - start,
                        detail,
                    };
                }
            }
            Err(why) => {
                streak = 0;
                log(attempts, &why);
                if !why.starts_with(NO_ANSWER) {
                    answered_failure = Some(why.clone());
                }
                last_failure = Some(why);
            }
        }
        let out_of_attempts = policy.max_attempts.is_some_and(|m| attempts >= m);
        // Another attempt only when it still gets a fair slice of the budget after the pause.
        let slice = policy.request_timeout.min(MIN_ATTEMPT);
        let out_of_time = clock.now() - start + policy.interval + slice > policy.timeout;
        if out_of_attempts || out_of_time {
            let mut detail = last_failure.unwrap_or_else(|| "no failure".into());
            if detail.starts_with(NO_ANSWER)
                && let Some(earlier) = answered_failure
            {
                detail = format!("{detail} (earlier: {earlier})");
            }
            if streak > 0 {
                detail = format!(
                    "{streak} of {} consecutive successes before the {} ran out; last failure: {detail}",
                    policy.successes,
                    if out_of_attempts {
                        "retries"
                    } else {
                        "time budget"
                    }
                );
            }
            return Outcome {
                passed: false,
                attempts,
                elapsed: clock.now() - start,
                detail,
            };
        }
        clock.sleep(policy.interval).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Transport.

/// Sends checks' requests: URLs directly, services through port-forwards.
pub(crate) struct Transport {
    http: reqwest::Client,
    kube: Option<kube::Client>,
    namespace: String,
}

impl Transport {
    pub(crate) fn new(
        kube: Option<kube::Client>,
        namespace: &str,
    ) -> Result<Transport, SmokeError> {
        // Each request is bounded by its check's own timeout (`send`).
        let http = crate::http::client(None).map_err(SmokeError::Client)?;
        Ok(Transport {
            http,
            kube,
            namespace: namespace.to_string(),
        })
    }

    /// One request of `check`, within `timeout`.
    pub(crate) async fn send(
        &self,
        check: &Check,
        timeout: Duration,
    ) -> Result<HttpResponse, String> {
        let fut = async {
            match &check.target {
                Target::Url(url) => self.send_url(check, url).await,
                Target::Service {
                    service,
                    port,
                    path,
                } => self.send_service(check, service, port, path).await,
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{NO_ANSWER} {}",
                    humantime::format_duration(timeout)
                ))
            })
    }

    async fn send_url(&self, check: &Check, url: &str) -> Result<HttpResponse, String> {
        let mut req = self.http.request(check.method.clone(), url);
        for (k, v) in &check.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &check.body {
            req = req.body(b.clone());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request failed: {}", one_line(&e.without_url())))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("reading the body failed: {}", one_line(&e.without_url())))?;
        if bytes.len() > MAX_BODY {
            return Err(format!("the body is over {MAX_BODY} bytes"));
        }
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    async fn send_service(
        &self,
        check: &Check,
        service: &str,
        port: &PortRef,
        path: &str,
    ) -> Result<HttpResponse, String> {
        let client = self
            .kube
            .as_ref()
            .ok_or_else(|| "no Kubernetes client to port-forward with".to_string())?;
        let fwd = portforward::connect_service(client, &self.namespace, service, port)
            .await
            .map_err(|e| e.to_string())?;
        let pod = fwd.pod.clone();
        let target_port = fwd.target_port;
        let result = exchange_over(fwd, check, service, &self.namespace, path).await;
        result.map_err(|e| format!("{e} (pod {pod}, port {target_port})"))
    }
}

/// One HTTP/1.1 exchange over a port-forward stream.
async fn exchange_over(
    fwd: portforward::Forwarded,
    check: &Check,
    service: &str,
    namespace: &str,
    path: &str,
) -> Result<HttpResponse, String> {
    let portforward::Forwarded {
        stream, forwarder, ..
    } = fwd;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake over the port-forward failed: {e}"))?;
    let conn_task = tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(check.method.clone())
        .uri(path)
        .header(http::header::HOST, format!("{service}.{namespace}.svc"))
        .header(
            http::header::USER_AGENT,
            concat!("trader-deploy-smoke/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in &check.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let body = check.body.clone().unwrap_or_default();
    let req = req
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .map_err(|e| format!("building the request failed: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request over the port-forward failed: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
            .to_bytes();
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
    .await;
    drop(sender);
    conn_task.abort();
    let _ = conn_task.await;
    forwarder.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), forwarder.join()).await;
    result
}

// ---------------------------------------------------------------------------------------------
// Running a spec.

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckResult {
    pub(crate) name: String,
    /// `GET service/x:http/ready`.
    pub(crate) target: String,
    pub(crate) passed: bool,
    pub(crate) attempts: u32,
    pub(crate) elapsed: Duration,
    pub(crate) detail: String,
}

/// Every check's result, in spec order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) results: Vec<CheckResult>,
}

impl Report {
    pub(crate) fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// The report a run produced, whether it passed (`Ok`) or failed (`Failed`).
    pub(crate) fn of(result: &Result<Option<Report>, SmokeError>) -> Option<&Report> {
        match result {
            Ok(r) => r.as_ref(),
            Err(SmokeError::Failed { report, .. }) => Some(report),
            Err(_) => None,
        }
    }
}

/// Runs every check (concurrently) and returns the report; a failing check is in the report,
/// not an error here.
pub(crate) async fn run_spec(
    spec: &Spec,
    transport: &Transport,
    clock: &dyn Clock,
    runner: &Runner,
) -> Report {
    let futures = spec.checks.iter().map(|check| async move {
        let log = |attempt: u32, why: &str| {
            runner.info(&format!(
                "smoke check {:?} attempt {attempt} failed: {why}",
                check.name
            ));
        };
        let outcome = retry(&check.policy, clock, &log, |timeout| async move {
            let resp = transport.send(check, timeout).await?;
            evaluate(&check.expect, &resp)
        })
        .await;
        runner.info(&format!(
            "smoke check {:?} ({}): {} after {} attempt{} in {:.1}s: {}",
            check.name,
            check.describe(),
            if outcome.passed { "passed" } else { "FAILED" },
            outcome.attempts,
            if outcome.attempts == 1 { "" } else { "s" },
            outcome.elapsed.as_secs_f64(),
            outcome.detail
        ));
        CheckResult {
            name: check.name.clone(),
            target: check.describe(),
            passed: outcome.passed,
            attempts: outcome.attempts,
            elapsed: outcome.elapsed,
            detail: outcome.detail,
        }
    });
    Report {
        results: futures::future::join_all(futures).await,
    }
}

/// The pipeline's step: runs the configured spec (none configured → `Ok(None)`), and fails
/// naming each failing check with what it got against what it expected.
pub(crate) async fn run_config(
    config: &Config,
    kube: Option<&kube::Client>,
    runner: &Runner,
) -> Result<Option<Report>, SmokeError> {
    let spec = match (&config.smoke_spec, &config.smoke_tests) {
        (Some(spec), _) => spec.clone(),
        (None, Some(path)) => Spec::load(path, &Vars::from_config(config))?,
        (None, None) => return Ok(None),
    };
    let report = run(&spec, &config.namespace, kube, runner).await?;
    Ok(Some(report))
}

/// Runs a loaded spec against `namespace`; `Failed` (with the whole report) when a check fails.
pub(crate) async fn run(
    spec: &Spec,
    namespace: &str,
    kube: Option<&kube::Client>,
    runner: &Runner,
) -> Result<Report, SmokeError> {
    if kube.is_none()
        && let Some(c) = spec
            .checks
            .iter()
            .find(|c| matches!(c.target, Target::Service { .. }))
    {
        return Err(SmokeError::NoCluster {
            check: c.name.clone(),
            service: c.target.to_string(),
        });
    }
    let transport = Transport::new(kube.cloned(), namespace)?;
    let clock = TokioClock::default();
    let report = run_spec(spec, &transport, &clock, runner).await;
    if report.passed() {
        Ok(report)
    } else {
        Err(SmokeError::Failed {
            failed: report
                .results
                .iter()
                .filter(|r| !r.passed)
                .cloned()
                .collect(),
            total: report.results.len(),
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn vars() -> Vars {
        Vars {
            release: "traderadmin".into(),
            namespace: "trader".into(),
            version: "v1.2.0".into(),
            environment: "prod".into(),
        }
    }

    fn parse(text: &str) -> Result<Spec, String> {
        Spec::parse(text, Path::new("smoke.yaml"), &vars()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_example_spec_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/smoke-tests.yaml");
        let spec = Spec::load(&path, &vars()).unwrap();
        let names: Vec<_> = spec.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["healthz", "ready", "metrics", "api-status"]);
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
            BTreeSet::from(["checks".into(), "defaults".into()])
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
            "checks": [with_service, {"name": "b", "url": sample("url")}]
        });
        parse(&serde_json::to_string(&doc).unwrap()).unwrap();
        // And an undeclared one is refused, at each level.
        for doc in [
            serde_json::json!({"checks": [{"name": "a", "url": "http://x/", "extra": 1}]}),
            serde_json::json!({"checks": [{"name": "a", "url": "http://x/", "expect": {"extra": 1}}]}),
            serde_json::json!({"defaults": {"extra": 1}, "checks": [{"name": "a", "url": "http://x/"}]}),
            serde_json::json!({"extra": 1, "checks": [{"name": "a", "url": "http://x/"}]}),
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

    fn expect(yaml: &str) -> Expect {
        let spec = parse(&format!(
            "checks: [{{name: a, service: x, port: 80, expect: {yaml}}}]"
        ))
        .unwrap();
        spec.checks[0].expect.clone()
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            body: body.into(),
        }
    }

    #[test]
    fn status_expectations() {
        let any2xx = expect("{}");
        assert_eq!(evaluate(&any2xx, &resp(204, "")), Ok("status 204".into()));
        assert_eq!(
            evaluate(&any2xx, &resp(503, "not ready")).unwrap_err(),
            "got status 503 (body \"not ready\"), expected 2xx"
        );
        let listed = expect("{status: [200, 301]}");
        assert!(evaluate(&listed, &resp(301, "")).is_ok());
        assert_eq!(
            evaluate(&listed, &resp(500, "")).unwrap_err(),
            "got status 500 (body \"\"), expected 200 or 301"
        );
        let long = "x".repeat(500);
        let e = evaluate(&any2xx, &resp(500, &long)).unwrap_err();
        assert!(e.len() < 250 && e.contains('…'), "{e}");
    }

    #[test]
    fn body_expectations() {
        let e = expect("{body_contains: [ok, ready]}");
        assert!(evaluate(&e, &resp(200, "ok and ready")).is_ok());
        assert_eq!(
            evaluate(&e, &resp(200, "ok")).unwrap_err(),
            "got body \"ok\", expected it to contain \"ready\""
        );
        let e = expect(r#"{body_matches: '^v\d+\.\d+'}"#);
        assert!(evaluate(&e, &resp(200, "v1.2 up")).is_ok());
        assert_eq!(
            evaluate(&e, &resp(200, "down")).unwrap_err(),
            r#"got body "down", expected it to match /^v\d+\.\d+/"#
        );
    }

    #[test]
    fn json_pointer_expectations() {
        let e = expect("{json: {/status: ok, /version: '${version}', /replicas: 2, /ready: true}}");
        let good = r#"{"status":"ok","version":"v1.2.0","replicas":2.0,"ready":true}"#;
        assert!(evaluate(&e, &resp(200, good)).is_ok());
        let bad = r#"{"status":"degraded","version":"v1.2.0","replicas":2,"ready":true}"#;
        assert_eq!(
            evaluate(&e, &resp(200, bad)).unwrap_err(),
            r#"got /status = "degraded", expected /status = "ok""#
        );
        let missing = r#"{"status":"ok","replicas":2,"ready":true}"#;
        assert!(
            evaluate(&e, &resp(200, missing))
                .unwrap_err()
                .starts_with("got JSON without /version")
        );
        assert!(
            evaluate(&e, &resp(200, "<html>"))
                .unwrap_err()
                .contains("that is not JSON")
        );
    }

    #[test]
    fn metric_expectations() {
        let text = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{path=\"/\",code=\"200\"} 3\nprocess_up 1\n# TYPE latency_seconds histogram\nlatency_seconds_bucket{le=\"1\"} 1\n";
        assert!(has_metric(text, "http_requests_total"));
        assert!(has_metric(text, "process_up"));
        assert!(has_metric(text, "latency_seconds"));
        assert!(has_metric(text, "latency_seconds_bucket"));
        assert!(!has_metric(text, "http_requests"));
        assert!(!has_metric(text, "Requests."));
        let e = expect("{metrics: [http_requests_total, orders_total]}");
        assert_eq!(
            evaluate(&e, &resp(200, text)).unwrap_err(),
            "got metrics [http_requests_total, latency_seconds_bucket, process_up], expected metric orders_total to be present"
        );
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

    #[test]
    fn variables() {
        let v = vars();
        assert_eq!(
            v.substitute("${release}-${namespace}").unwrap(),
            "traderadmin-trader"
        );
        assert_eq!(v.substitute("$$ $x ${version}").unwrap(), "$ $x v1.2.0");
        assert!(v.substitute("${release").unwrap_err().contains("unclosed"));
    }

    /// A clock that only moves when slept on, or when a probe says a request took time.
    #[derive(Default)]
    struct FakeClock(Mutex<Duration>);

    impl FakeClock {
        fn advance(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            *self.0.lock().unwrap()
        }
        fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            self.advance(d);
            Box::pin(async {})
        }
    }

    fn policy(timeout: u64, interval: u64, successes: u32, max_attempts: Option<u32>) -> Policy {
        Policy {
            timeout: Duration::from_secs(timeout),
            interval: Duration::from_secs(interval),
            request_timeout: Duration::from_secs(1),
            successes,
            max_attempts,
        }
    }

    /// Runs `retry` with a scripted sequence of probe results (true = success), each taking 100ms.
    fn script(p: Policy, results: &[bool]) -> (Outcome, Vec<String>) {
        let clock = FakeClock::default();
        let logged = Mutex::new(Vec::new());
        let log = |n: u32, why: &str| logged.lock().unwrap().push(format!("{n}: {why}"));
        let mut i = 0usize;
        let outcome = futures::executor::block_on(retry(&p, &clock, &log, |_| {
            let ok = results.get(i).copied().unwrap_or(false);
            i += 1;
            clock.advance(Duration::from_millis(100));
            async move {
                if ok {
                    Ok("status 200".to_string())
                } else {
                    Err(format!("got status 503, expected 200 (#{i})"))
                }
            }
        }));
        (outcome, logged.into_inner().unwrap())
    }

    #[test]
    fn first_success_passes_at_once() {
        let (o, log) = script(policy(60, 2, 1, None), &[true]);
        assert!(o.passed);
        assert_eq!((o.attempts, o.detail.as_str()), (1, "status 200"));
        assert!(log.is_empty());
    }

    #[test]
    fn a_transient_503_then_200_passes() {
        let (o, log) = script(policy(60, 2, 1, None), &[false, true]);
        assert!(o.passed);
        assert_eq!(o.attempts, 2);
        assert_eq!(o.detail, "status 200; passed after 1 failed attempt");
        assert_eq!(log, ["1: got status 503, expected 200 (#1)"]);
        assert_eq!(o.elapsed, Duration::from_millis(2200));
    }

    #[test]
    fn consecutive_successes_rule_resets_on_a_failure() {
        // success, blip, then three in a row: passes on attempt 5.
        let (o, _) = script(policy(60, 1, 3, None), &[true, false, true, true, true]);
        assert!(o.passed);
        assert_eq!(o.attempts, 5);
        // Alternating never gets three in a row: fails when the retries run out.
        let (o, _) = script(
            policy(60, 1, 3, Some(6)),
            &[true, true, false, true, true, false],
        );
        assert!(!o.passed);
        assert_eq!(o.attempts, 6);
        assert_eq!(o.detail, "got status 503, expected 200 (#6)");
        let (o, _) = script(
            policy(60, 1, 3, Some(5)),
            &[false, false, false, true, true],
        );
        assert!(!o.passed);
        assert_eq!(
            o.detail,
            "2 of 3 consecutive successes before the retries ran out; last failure: got status 503, expected 200 (#3)"
        );
    }

    #[test]
    fn the_time_budget_ends_the_attempts() {
        // 10 s budget, 2 s interval, 100 ms per request: attempts at 0, 2.1, 4.2, 6.3, 8.4 s.
        let (o, log) = script(policy(10, 2, 1, None), &[false; 20]);
        assert!(!o.passed);
        assert_eq!(o.attempts, 5);
        assert_eq!(log.len(), 5);
        assert!(o.elapsed <= Duration::from_secs(10), "{:?}", o.elapsed);
        // A success just before the end still counts.
        let mut r = vec![false; 4];
        r.push(true);
        let (o, _) = script(policy(10, 2, 1, None), &r);
        assert!(o.passed && o.attempts == 5);
    }

    #[test]
    fn a_last_attempt_gets_a_fair_slice_and_an_earlier_different_failure_is_kept() {
        // 6 s budget, 500 ms pauses, 1 s requests that each take 100 ms: no attempt starts with
        // less than 1 s left.
        let clock = FakeClock::default();
        let starts = Mutex::new(Vec::new());
        let p = Policy {
            timeout: Duration::from_secs(6),
            interval: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            successes: 1,
            max_attempts: None,
        };
        let log = |_: u32, _: &str| {};
        let n = Mutex::new(0);
        let o = futures::executor::block_on(retry(&p, &clock, &log, |t| {
            starts.lock().unwrap().push((clock.now(), t));
            clock.advance(Duration::from_millis(100));
            let mut n = n.lock().unwrap();
            *n += 1;
            let why = if *n < 8 {
                "got status 503, expected 200".to_string()
            } else {
                "no answer within 1s".to_string()
            };
            async move { Err::<String, _>(why) }
        }));
        let starts = starts.into_inner().unwrap();
        assert!(
            starts
                .iter()
                .all(|(at, t)| *t == Duration::from_secs(1) && *at + *t <= p.timeout),
            "{starts:?}"
        );
        assert_eq!(o.attempts, 9);
        assert_eq!(
            o.detail,
            "no answer within 1s (earlier: got status 503, expected 200)"
        );
    }

    #[test]
    fn retries_cap_the_attempts() {
        let (o, _) = script(policy(60, 1, 1, Some(3)), &[false; 10]);
        assert!(!o.passed);
        assert_eq!(o.attempts, 3);
    }

    #[test]
    fn the_request_timeout_shrinks_to_the_remaining_budget() {
        let clock = FakeClock::default();
        let seen = Mutex::new(Vec::new());
        let p = Policy {
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            successes: 1,
            max_attempts: None,
        };
        let log = |_: u32, _: &str| {};
        let o = futures::executor::block_on(retry(&p, &clock, &log, |t| {
            seen.lock().unwrap().push(t);
            clock.advance(t);
            async { Err::<String, _>("timeout".to_string()) }
        }));
        assert!(!o.passed);
        assert_eq!(
            seen.into_inner().unwrap(),
            [Duration::from_secs(3), Duration::from_secs(1)]
        );
    }

    #[test]
    fn failures_name_the_check() {
        let report = Report {
            results: vec![
                CheckResult {
                    name: "healthz".into(),
                    target: "GET service/x:http/health".into(),
                    passed: true,
                    attempts: 1,
                    elapsed: Duration::from_millis(120),
                    detail: "status 200".into(),
                },
                CheckResult {
                    name: "ready".into(),
                    target: "GET service/x:http/ready".into(),
                    passed: false,
                    attempts: 7,
                    elapsed: Duration::from_secs(12),
                    detail: "got status 503 (body \"a|b\"), expected 2xx".into(),
                },
            ],
        };
        let e = SmokeError::Failed {
            failed: vec![report.results[1].clone()],
            total: 2,
            report,
        };
        assert_eq!(
            e.to_string(),
            "1 of 2 smoke checks failed:\n  - check \"ready\" (GET service/x:http/ready): got status 503 (body \"a|b\"), expected 2xx (7 attempts in 12.0s)"
        );
    }
}
