//! The smoke spec: the YAML file as written (docs/smoke-tests.md, JSON Schema in
//! schema/smoke-tests.schema.json) and the checks it compiles to, validated, with the variables
//! substituted and each check's retry policy resolved against the defaults: the checks after the
//! upgrade, the `preflight` checks on the live release before it (retried within `wait`), and the
//! paired `hooks` around it (`before_upgrade`, and `after`, which runs whatever the outcome).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::expect::Expect;
use super::retry::Policy;
use super::vars::{Vars, substitute_json};
use super::{SmokeError, one_line};
use crate::names::{is_dns_label, is_port_name};
use crate::portforward::PortRef;

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
struct PreflightFile {
    /// The budget within which every preflight check must pass (retried until then).
    wait: Option<String>,
    #[serde(default)]
    checks: Vec<CheckFile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HooksFile {
    before_upgrade: Option<CheckFile>,
    after: Option<CheckFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    #[serde(default)]
    defaults: DefaultsFile,
    #[serde(default)]
    checks: Vec<CheckFile>,
    preflight: Option<PreflightFile>,
    #[serde(default)]
    hooks: HooksFile,
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

impl Check {
    /// `GET service/x:http/ready`, for messages and the summary.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

/// A validated smoke spec.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// After the upgrade.
    pub(crate) checks: Vec<Check>,
    /// On the live release before the upgrade, each retried within `preflight.wait`.
    pub(crate) preflight: Vec<Check>,
    /// The paired hooks: both or neither.
    pub(crate) hooks: Option<Hooks>,
}

/// `before_upgrade` (e.g. pause new orders) and `after` (resume), one attempt each unless the
/// hook says `retries`.
#[derive(Debug, Clone)]
pub(crate) struct Hooks {
    pub(crate) before_upgrade: Check,
    pub(crate) after: Check,
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
        let hooks_given = file.hooks.before_upgrade.is_some() || file.hooks.after.is_some();
        if file.checks.is_empty() && file.preflight.is_none() && !hooks_given {
            return Err(err("`checks` is empty".into()));
        }
        let defaults_policy = policy(&file.defaults.policy, Policy::default())
            .map_err(|m| err(format!("defaults: {m}")))?;
        let mut names = BTreeSet::new();
        let mut compile_all = |list: &[CheckFile], section: &str, base: Policy| {
            let mut out = Vec::new();
            for (n, c) in list.iter().enumerate() {
                let label = if c.name.is_empty() {
                    format!("{section} {}", n + 1)
                } else {
                    format!("{section} {:?}", c.name)
                };
                let check = compile(c, &file.defaults, base, vars)
                    .map_err(|m| err(format!("{label}: {m}")))?;
                if !names.insert(check.name.clone()) {
                    return Err(err(format!("{label}: the name is used twice")));
                }
                out.push(check);
            }
            Ok(out)
        };
        let checks = compile_all(&file.checks, "check", defaults_policy)?;
        let preflight = match &file.preflight {
            None => Vec::new(),
            Some(p) => {
                if p.checks.is_empty() {
                    return Err(err("`preflight.checks` is empty".into()));
                }
                let mut base = defaults_policy;
                if let Some(w) = &p.wait {
                    base.timeout = duration("preflight.wait", w).map_err(err)?;
                    base = policy(&PolicyFile::default(), base)
                        .map_err(|m| err(format!("preflight.wait: {m}")))?;
                }
                compile_all(&p.checks, "preflight check", base)?
            }
        };
        let hooks = match (&file.hooks.before_upgrade, &file.hooks.after) {
            (None, None) => None,
            (Some(b), Some(a)) => {
                // One attempt each unless the hook asks for retries: a pause is not repeated
                // blindly.
                let base = Policy {
                    max_attempts: Some(1),
                    successes: 1,
                    ..defaults_policy
                };
                let mut both = compile_all(&[b.clone(), a.clone()], "hook", base)?;
                let after = both.pop().expect("two hooks");
                let before_upgrade = both.pop().expect("two hooks");
                Some(Hooks {
                    before_upgrade,
                    after,
                })
            }
            _ => {
                return Err(err(
                    "`hooks.before_upgrade` and `hooks.after` go together (a pause needs its \
                     resume)"
                        .into(),
                ));
            }
        };
        Ok(Spec {
            checks,
            preflight,
            hooks,
        })
    }
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
            if is_port_name(&s) {
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
            if !is_dns_label(&service, 63) {
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

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn vars() -> Vars {
        Vars {
            release: "traderadmin".into(),
            namespace: "trader".into(),
            version: "v1.2.0".into(),
            environment: "prod".into(),
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Spec, String> {
        Spec::parse(text, Path::new("smoke.yaml"), &vars()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
