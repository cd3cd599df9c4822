//! One input's text → its typed value: lists, refs, release and namespace names, `images` and
//! `set` entries, durations, booleans, URLs. Each error names its input.

use std::path::Path;
use std::time::Duration;

use super::{InputError, bad};
use crate::manifest::Yaml;
use crate::names::{is_dns_label, split_registry_host};
use crate::secret::Secret;
use crate::version;

/// One `images` entry: the helm key and the image it is set to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageSetting {
    /// Helm values key, e.g. `image.pythonOrch`.
    pub key: String,
    /// Repository without tag, e.g. `ghcr.io/acme/python-orch`.
    pub repository: String,
    /// `repository:version`.
    pub reference: String,
}

/// Lines of a list input: trimmed, without blanks and `#` comments.
pub(super) fn list_lines(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

pub(super) fn parse_protected(value: Option<&str>) -> Result<Vec<String>, InputError> {
    let Some(value) = value else {
        return Ok(vec!["prod".into(), "production".into()]);
    };
    let mut out = Vec::new();
    for name in value
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        version::check_environment_name("protected_environments", name)?;
        out.push(name.to_string());
    }
    Ok(out)
}

pub(super) fn check_ref(r: &str) -> Result<(), InputError> {
    let ok = r.starts_with("refs/")
        && r.len() > 5
        && !r.contains("..")
        && !r.ends_with('/')
        && !r
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "ref",
            format!("{r:?} is not a full git ref (e.g. refs/tags/v1.2.0, refs/heads/main)"),
        ))
    }
}

/// The release name when none is given: the chart's `name`, else the chart path's last segment.
pub(super) fn default_release(chart: &str, chart_dir: Option<&Path>) -> String {
    if let Some(dir) = chart_dir
        && let Ok(text) = std::fs::read_to_string(dir.join("Chart.yaml"))
        && let Ok(doc) = crate::manifest::parse::<Yaml>(&text)
        && let Some(name) = doc.get("name").and_then(|n| n.as_str())
    {
        return name.to_string();
    }
    let last = chart
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(chart);
    last.split(':').next().unwrap_or(last).to_string()
}

pub(super) fn check_release(r: &str) -> Result<(), InputError> {
    let ok = r.len() <= 53 && r.split('.').all(|part| is_dns_label(part, 53));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "release",
            format!(
                "{r:?} is not a valid helm release name (lower-case letters, digits, '-', '.'; at most 53)"
            ),
        ))
    }
}

pub(super) fn check_namespace(n: &str) -> Result<(), InputError> {
    if is_dns_label(n, 63) {
        Ok(())
    } else {
        Err(bad(
            "namespace",
            format!("{n:?} is not a valid namespace (lower-case letters, digits, '-'; at most 63)"),
        ))
    }
}

fn is_helm_key(k: &str) -> bool {
    !k.is_empty()
        && k.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '[' | ']'))
        })
}

/// Checks an image repository without tag or digest: `[host[:port]/]path`.
fn check_repository(repo: &str) -> Result<(), String> {
    if repo.contains('@') {
        return Err("has a digest; give the repository only".into());
    }
    let path = match split_registry_host(repo) {
        Some((first, path)) => {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
            if !host_ok || !port_ok {
                return Err(format!("registry host {first:?} is not host[:port]"));
            }
            path
        }
        None => repo,
    };
    for p in path.split('/') {
        if p.contains(':') {
            return Err("has a tag; give the repository only (the tag is `version`)".into());
        }
        let ok = !p.is_empty()
            && p.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "path component {p:?} is not lower-case letters, digits and separators"
            ));
        }
    }
    Ok(())
}

pub(super) fn parse_images(list: &str, version: &str) -> Result<Vec<ImageSetting>, InputError> {
    let mut out: Vec<ImageSetting> = Vec::new();
    for (n, line) in list_lines(list).enumerate() {
        let Some((key, repo)) = line.split_once('=') else {
            return Err(bad(
                "images",
                format!(
                    "entry {} {line:?} is not helm.key=repository (e.g. image.pythonOrch=ghcr.io/acme/python-orch)",
                    n + 1
                ),
            ));
        };
        let (key, repo) = (key.trim(), repo.trim());
        if !is_helm_key(key) {
            return Err(bad(
                "images",
                format!("entry {} key {key:?} is not a helm values key", n + 1),
            ));
        }
        check_repository(repo).map_err(|why| {
            bad(
                "images",
                format!("entry {} repository {repo:?} {why}", n + 1),
            )
        })?;
        if out.iter().any(|i| i.key == key) {
            return Err(bad("images", format!("key {key:?} is given twice")));
        }
        out.push(ImageSetting {
            key: key.to_string(),
            repository: repo.to_string(),
            reference: format!("{repo}:{version}"),
        });
    }
    Ok(out)
}

pub(super) fn parse_set(list: &str) -> Result<Vec<(String, String)>, InputError> {
    let mut out = Vec::new();
    for (n, line) in list_lines(list).enumerate() {
        match line.split_once('=') {
            Some((k, v)) if is_helm_key(k.trim()) => {
                out.push((k.trim().to_string(), v.to_string()))
            }
            _ => {
                return Err(bad(
                    "set",
                    format!(
                        "entry {} {line:?} is not key=value (e.g. replicaCount=2)",
                        n + 1
                    ),
                ));
            }
        }
    }
    Ok(out)
}

pub(super) fn parse_timeout(s: &str) -> Result<Duration, InputError> {
    let range = (
        Duration::from_secs(1),
        Duration::from_secs(6 * 3600),
        "1s to 6h",
    );
    parse_duration_in("timeout", s, range)
}

/// `pending_grace`: 0s (a pending record is stuck at once) to a day.
pub(super) fn parse_duration(input: &'static str, s: &str) -> Result<Duration, InputError> {
    let range = (Duration::ZERO, Duration::from_secs(24 * 3600), "0s to 24h");
    parse_duration_in(input, s, range)
}

fn parse_duration_in(
    input: &'static str,
    s: &str,
    (min, max, shown): (Duration, Duration, &str),
) -> Result<Duration, InputError> {
    let s = s.trim();
    let parsed = if s.chars().all(|c| c.is_ascii_digit()) {
        s.parse::<u64>().ok().map(Duration::from_secs)
    } else {
        humantime::parse_duration(s).ok()
    };
    match parsed {
        Some(d) if d >= min && d <= max => Ok(d),
        Some(_) => Err(bad(input, format!("{s:?} is out of range ({shown})"))),
        None => Err(bad(
            input,
            format!("{s:?} is not a duration (e.g. 5m, 90s, 1h30m)"),
        )),
    }
}

/// Booleans as GitHub's toolkit reads them (`true`/`True`/`TRUE`, `false`/`False`/`FALSE`).
pub(super) fn parse_bool(
    input: &'static str,
    v: Option<&str>,
    default: bool,
) -> Result<bool, InputError> {
    match v.map(str::trim) {
        None => Ok(default),
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(bad(input, format!("{other:?} is not true or false"))),
    }
}

pub(super) fn parse_webhook(u: &str) -> Result<Secret, InputError> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(Secret::new(u))
        }
        _ => Err(bad(
            "notify_webhook",
            "is not an http(s) URL (value not shown: it is a secret)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_timeout("120").unwrap(), Duration::from_secs(120));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("7h").is_err());
        assert!(parse_timeout("5x").is_err());
    }
}
