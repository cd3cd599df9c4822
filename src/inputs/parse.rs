//! One input's text → its typed value: lists, refs, release and namespace names, `images` and
//! `set` entries, durations, booleans, URLs. Each error names its input.

use std::path::Path;
use std::time::Duration;

use super::{InputError, bad, strvals};
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
    /// The version (the tag).
    pub tag: String,
    /// How the chart takes it (a string or a map of fields), read from its values.
    pub shape: crate::chart::Shape,
}

impl ImageSetting {
    /// The `--set-string` pairs of this image, pinned to `digest` when one is given.
    pub fn values(&self, digest: Option<&str>) -> Vec<(String, String)> {
        self.shape
            .values(&self.key, &self.repository, &self.tag, digest)
    }

    /// The keys it sets, shown by the plan and the summary (`image.repository, image.tag`).
    pub fn keys(&self) -> Vec<String> {
        self.shape.keys(&self.key)
    }
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
            tag: version.to_string(),
            shape: Default::default(),
        });
    }
    Ok(out)
}

pub(super) fn parse_set(list: &str) -> Result<Vec<(String, String)>, InputError> {
    parse_settings("set", list)
}

/// `set` or `set_string`: newline-separated `key=value` entries.
pub(super) fn parse_settings(
    input: &'static str,
    list: &str,
) -> Result<Vec<(String, String)>, InputError> {
    let mut out = Vec::new();
    for (n, line) in list_lines(list).enumerate() {
        match line.split_once('=') {
            Some((k, v)) if is_helm_key(k.trim()) => {
                out.push((k.trim().to_string(), v.to_string()))
            }
            _ => {
                return Err(bad(
                    input,
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

/// Refuses a `set` entry that sets a key `images` resolved, a parent map of it or a key inside
/// it: `set` reaches helm as `--set`, so it could replace the verified image (issue #17). The
/// entry is read as helm reads it, so `a=x,image.tag=evil` is caught by its second key.
pub(super) fn check_set_keeps_images(
    set: &[(String, String)],
    images: &[ImageSetting],
) -> Result<(), InputError> {
    check_keeps_images("set", set, images)
}

/// The same rule for `set` and `set_string` (`--set-string` splits entries as `--set` does).
pub(super) fn check_keeps_images(
    input: &'static str,
    set: &[(String, String)],
    images: &[ImageSetting],
) -> Result<(), InputError> {
    let image_paths: Vec<_> = images
        .iter()
        .map(|i| (i, strvals::key_path(&i.key)))
        .collect();
    for (n, (key, value)) in set.iter().enumerate() {
        let entry = format!("{key}={value}");
        let paths = strvals::set_paths(&entry).map_err(|why| {
            bad(
                input,
                format!(
                    "entry {} {entry:?} is not what helm --set reads: {why}",
                    n + 1
                ),
            )
        })?;
        for p in &paths {
            if let Some((image, _)) = image_paths.iter().find(|(_, ip)| p.overlaps(ip)) {
                return Err(bad(
                    input,
                    format!(
                        "entry {} sets {:?}, which would override {:?} from `images` ({}, the \
                         image that is verified and deployed); set images through `images` only",
                        n + 1,
                        p.to_string(),
                        image.key,
                        image.reference
                    ),
                ));
            }
        }
    }
    Ok(())
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

    #[test]
    fn set_may_not_override_an_image() {
        let images = parse_images(
            "image.tag=ghcr.io/acme/x\nscanner.image.ref=ghcr.io/acme/y",
            "v1.2.0",
        )
        .unwrap();
        let check = |set: &str| check_set_keeps_images(&parse_set(set).unwrap(), &images);
        let e = check("replicas=2\na=x,image.tag=evil").unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `set`: entry 2 sets \"image.tag\", which would override \"image.tag\" from \
             `images` (ghcr.io/acme/x:v1.2.0, the image that is verified and deployed); set \
             images through `images` only"
        );
        // A parent map, a key inside, and the second image too.
        assert!(
            check("image={}")
                .unwrap_err()
                .message
                .contains("sets \"image\"")
        );
        assert!(check("image.tag.x=1").is_err());
        assert!(check("scanner=null").is_err());
        assert!(check("scanner.image.ref[0]=x").is_err());
        // Neighbours, escaped dots and escaped commas are not the image.
        assert!(check("image.repository=x\nscanner.replicas=2").is_ok());
        assert!(check("a=1,image\\.tag=x").is_ok());
        assert!(check("a=x\\,image.tag=evil").is_ok());
        assert!(check("note=image.tag").is_ok());
        // What helm would refuse is refused first, naming the entry.
        let e = check("a[x]=1").unwrap_err();
        assert_eq!(e.input, "set");
        assert!(e.message.contains("entry 1 \"a[x]=1\""), "{e}");
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text: no panic, and an error names its input and is one line.
        #[test]
        fn list_parsers_never_panic(text in "\\PC{0,60}(\n\\PC{0,30}){0,3}") {
            for (input, r) in [
                ("images", parse_images(&text, "v1").map(|_| ())),
                ("set", parse_set(&text).map(|_| ())),
                ("timeout", parse_timeout(&text).map(|_| ())),
                ("pending_grace", parse_duration("pending_grace", &text).map(|_| ())),
                ("ref", check_ref(&text)),
                ("release", check_release(&text)),
                ("namespace", check_namespace(&text)),
                ("protected_environments", parse_protected(Some(&text)).map(|_| ())),
            ] {
                if let Err(e) = r {
                    prop_assert_eq!(e.input, input);
                    prop_assert!(!e.to_string().contains('\n'), "{}", e);
                }
            }
        }

        /// A well-formed `images` list reads back as written, each key set to repository:version.
        #[test]
        fn images_round_trip(
            entries in prop::collection::btree_map(
                "[a-z][a-zA-Z0-9_]{0,6}(\\.[a-z][a-zA-Z0-9_]{0,6}){0,2}",
                "([a-z0-9]{1,6}\\.[a-z]{2,4}(:[0-9]{1,4})?/)?[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,2}",
                1..5,
            ),
            version in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}",
        ) {
            let list: String = entries.iter().map(|(k, r)| format!("  {k} = {r}\n")).collect();
            let parsed = parse_images(&list, &version).unwrap();
            prop_assert_eq!(parsed.len(), entries.len());
            for (p, (k, r)) in parsed.iter().zip(&entries) {
                prop_assert_eq!(&p.key, k);
                prop_assert_eq!(&p.repository, r);
                prop_assert_eq!(&p.reference, &format!("{r}:{version}"));
            }
        }

        /// Whole seconds, and humantime's units, read back as the same duration.
        #[test]
        fn durations_round_trip(secs in 1u64..=6 * 3600) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse_timeout(&secs.to_string()).unwrap(), d);
            prop_assert_eq!(parse_timeout(&humantime::format_duration(d).to_string()).unwrap(), d);
            let over = Duration::from_secs(24 * 3600 + secs);
            let e = parse_duration("pending_grace", &humantime::format_duration(over).to_string());
            prop_assert!(e.unwrap_err().message.contains("out of range (0s to 24h)"));
        }

        /// Any `set` key=value line whose key is a helm key reads back as that pair.
        #[test]
        fn set_round_trips(key in "[a-zA-Z_][a-zA-Z0-9_-]{0,6}(\\.[a-zA-Z0-9_]{1,6}){0,2}",
                           value in "[!-~]{0,20}") {
            let parsed = parse_set(&format!("{key}={value}")).unwrap();
            prop_assert_eq!(parsed, vec![(key, value)]);
        }
    }
}
