//! Tag resolution and deployment policy: which environment and which image tag a run deploys (pure).

use std::fmt;

/// Where a resolved value came from, shown in the plan so a user can see why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    /// The action input (or CLI flag) of the same name.
    Input,
    /// The `workflow_dispatch` event's inputs.
    DispatchInput,
    /// The pushed tag's name.
    Tag,
    /// A push to the default branch.
    DefaultBranch,
    /// The commit sha (`sha-<first 8>`).
    Sha,
    /// None: mode rollback deploys no new image.
    NotNeeded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Input => "input",
            Source::DispatchInput => "workflow_dispatch input",
            Source::Tag => "tag name",
            Source::DefaultBranch => "push to the default branch",
            Source::Sha => "commit sha",
            Source::NotNeeded => "not needed: a rollback deploys no new image",
        })
    }
}

/// What the event tells about the run, reduced to what resolution needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Trigger<'a> {
    /// `GITHUB_EVENT_NAME`: push, workflow_dispatch, …
    pub(crate) event_name: Option<&'a str>,
    /// The full git ref the version comes from (`refs/tags/v1.2.0`, `refs/heads/main`).
    pub(crate) git_ref: Option<&'a str>,
    /// The repository's default branch, from the event payload.
    pub(crate) default_branch: Option<&'a str>,
    /// The commit sha.
    pub(crate) sha: Option<&'a str>,
    /// `inputs.environment` of a workflow_dispatch event.
    pub(crate) dispatch_environment: Option<&'a str>,
    /// `inputs.version` of a workflow_dispatch event.
    pub(crate) dispatch_version: Option<&'a str>,
}

impl Trigger<'_> {
    /// The tag name when the ref is a tag.
    pub(crate) fn tag(&self) -> Option<&str> {
        self.git_ref.and_then(|r| r.strip_prefix("refs/tags/"))
    }

    /// The branch name when the ref is a branch.
    pub(crate) fn branch(&self) -> Option<&str> {
        self.git_ref.and_then(|r| r.strip_prefix("refs/heads/"))
    }
}

/// A resolution or policy refusal. `input` names the input a user changes to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{input}`: {message}")]
pub(crate) struct PolicyError {
    pub(crate) input: &'static str,
    pub(crate) message: String,
}

fn refuse(input: &'static str, message: impl Into<String>) -> PolicyError {
    PolicyError {
        input,
        message: message.into(),
    }
}

/// Parses a release tag as semver, accepting one leading `v` (kept in the tag itself).
pub(crate) fn parse_semver_tag(tag: &str) -> Option<semver::Version> {
    let bare = tag.strip_prefix('v').unwrap_or(tag);
    semver::Version::parse(bare).ok()
}

/// Resolves the image tag: explicit input > workflow_dispatch `version` > tag name > `sha-<8>`.
pub(crate) fn resolve_version(
    explicit: Option<&str>,
    trigger: &Trigger<'_>,
) -> Result<(String, Source), PolicyError> {
    if let Some(v) = explicit {
        check_tag_syntax("version", v)?;
        return Ok((v.to_string(), Source::Input));
    }
    if let Some(v) = trigger.dispatch_version {
        check_tag_syntax("version", v)?;
        return Ok((v.to_string(), Source::DispatchInput));
    }
    if let Some(tag) = trigger.tag() {
        if parse_semver_tag(tag).is_none() {
            return Err(not_a_release_tag(tag));
        }
        check_tag_syntax("ref", tag)?;
        return Ok((tag.to_string(), Source::Tag));
    }
    match trigger.sha {
        Some(sha) if sha.len() >= 8 && sha.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok((format!("sha-{}", &sha[..8]), Source::Sha))
        }
        Some(sha) => Err(refuse(
            "version",
            format!(
                "cannot derive a version from commit sha {sha:?} (not a hex sha); set `version`"
            ),
        )),
        None => Err(refuse(
            "version",
            "no version given and none can be inferred (no tag ref, no commit sha); set `version`",
        )),
    }
}

fn not_a_release_tag(tag: &str) -> PolicyError {
    refuse(
        "ref",
        format!("tag {tag:?} is not a semver release tag (expected vX.Y.Z, e.g. v1.2.0)"),
    )
}

fn check_tag_syntax(input: &'static str, tag: &str) -> Result<(), PolicyError> {
    if crate::names::is_image_tag(tag) {
        Ok(())
    } else {
        Err(refuse(
            input,
            format!(
                "{tag:?} is not a valid image tag (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
            ),
        ))
    }
}

/// Resolves the target environment: explicit input > workflow_dispatch `environment` >
/// a `v*` tag push (prod, or staging for a prerelease) > a push to the default branch (dev).
pub(crate) fn resolve_environment(
    explicit: Option<&str>,
    trigger: &Trigger<'_>,
    protected: &[String],
) -> Result<(String, Source), PolicyError> {
    if let Some(e) = explicit {
        check_environment_name("environment", e)?;
        return Ok((e.to_string(), Source::Input));
    }
    if let Some(e) = trigger.dispatch_environment {
        check_environment_name("environment", e)?;
        return Ok((e.to_string(), Source::DispatchInput));
    }
    if let Some(tag) = trigger.tag()
        && tag.starts_with('v')
    {
        let v = parse_semver_tag(tag).ok_or_else(|| not_a_release_tag(tag))?;
        let env = if v.pre.is_empty() {
            protected.first().map(String::as_str).unwrap_or("prod")
        } else {
            "staging"
        };
        return Ok((env.to_string(), Source::Tag));
    }
    if let (Some(branch), Some(default)) = (trigger.branch(), trigger.default_branch)
        && branch == default
        && trigger.event_name == Some("push")
    {
        return Ok(("dev".to_string(), Source::DefaultBranch));
    }
    let what = match (trigger.event_name, trigger.git_ref) {
        (Some(ev), Some(r)) => format!("a {ev} event on {r}"),
        (Some(ev), None) => format!("a {ev} event"),
        (None, Some(r)) => format!("ref {r}"),
        (None, None) => "this run".to_string(),
    };
    Err(refuse(
        "environment",
        format!(
            "not given and cannot be inferred from {what} (only v* tags, pushes to the default branch and workflow_dispatch inputs infer one); set `environment`"
        ),
    ))
}

/// Checks a GitHub environment name: 1–255 characters, letters, digits, space, `.`, `_`, `-`.
pub(crate) fn check_environment_name(input: &'static str, name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(refuse(
            input,
            format!(
                "{name:?} is not a valid environment name (letters, digits, space, '.', '_', '-'; at most 255)"
            ),
        ))
    }
}

/// Whether an environment is protected (case-insensitive match on the list).
pub(crate) fn is_protected(environment: &str, protected: &[String]) -> bool {
    protected
        .iter()
        .any(|p| p.eq_ignore_ascii_case(environment))
}

/// Protected environments take only immutable semver tags: never `latest`, `dev`, `sha-*`
/// or anything that is not semver.
pub(crate) fn check_policy(
    environment: &str,
    version: &str,
    version_source: Source,
    protected: &[String],
) -> Result<(), PolicyError> {
    if !is_protected(environment, protected) {
        return Ok(());
    }
    let input = match version_source {
        Source::Tag => "ref",
        _ => "version",
    };
    let why = if version == "latest" || version == "dev" {
        Some("is a moving tag")
    } else if version.starts_with("sha-") {
        Some("is a commit build, not a release")
    } else if parse_semver_tag(version).is_none() {
        Some("is not a semver release tag")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(refuse(
            input,
            format!(
                "{version:?} {why}; protected environment {environment:?} takes only immutable semver tags (e.g. v1.2.0)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn prot() -> Vec<String> {
        vec!["prod".into(), "production".into()]
    }

    fn trig<'a>(event: &'a str, git_ref: &'a str) -> Trigger<'a> {
        Trigger {
            event_name: Some(event),
            git_ref: Some(git_ref),
            default_branch: Some("main"),
            sha: Some(SHA),
            ..Trigger::default()
        }
    }

    #[test]
    fn version_precedence() {
        let mut t = trig("workflow_dispatch", "refs/tags/v1.2.0");
        t.dispatch_version = Some("v2.0.0");
        assert_eq!(
            resolve_version(Some("v3.0.0"), &t).unwrap(),
            ("v3.0.0".into(), Source::Input)
        );
        assert_eq!(
            resolve_version(None, &t).unwrap(),
            ("v2.0.0".into(), Source::DispatchInput)
        );
        t.dispatch_version = None;
        assert_eq!(
            resolve_version(None, &t).unwrap(),
            ("v1.2.0".into(), Source::Tag)
        );
        let t = trig("push", "refs/heads/main");
        assert_eq!(
            resolve_version(None, &t).unwrap(),
            ("sha-01234567".into(), Source::Sha)
        );
    }

    #[test]
    fn version_errors_name_the_input() {
        let t = trig("push", "refs/tags/release-1");
        let e = resolve_version(None, &t).unwrap_err();
        assert_eq!(e.input, "ref");
        assert!(e.to_string().contains("not a semver release tag"), "{e}");
        let e = resolve_version(Some("bad tag"), &Trigger::default()).unwrap_err();
        assert_eq!(e.input, "version");
        let e = resolve_version(None, &Trigger::default()).unwrap_err();
        assert_eq!(e.input, "version");
        let t = Trigger {
            sha: Some("xyz"),
            ..Trigger::default()
        };
        assert_eq!(resolve_version(None, &t).unwrap_err().input, "version");
    }

    #[test]
    fn semver_tags() {
        for ok in ["v1.2.0", "1.2.0", "v1.3.0-rc.1", "v0.0.1+build.5"] {
            assert!(parse_semver_tag(ok).is_some(), "{ok}");
        }
        for bad in [
            "v1.2",
            "vv1.2.0",
            "latest",
            "sha-01234567",
            "V1.2.0",
            "v01.2.0",
            "",
        ] {
            assert!(parse_semver_tag(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn environment_inference() {
        let p = prot();
        let r = |t: &Trigger| resolve_environment(None, t, &p);
        assert_eq!(
            r(&trig("push", "refs/tags/v1.2.0")).unwrap(),
            ("prod".into(), Source::Tag)
        );
        assert_eq!(
            r(&trig("push", "refs/tags/v1.3.0-rc.1")).unwrap(),
            ("staging".into(), Source::Tag)
        );
        assert_eq!(
            r(&trig("push", "refs/heads/main")).unwrap(),
            ("dev".into(), Source::DefaultBranch)
        );
        let e = r(&trig("push", "refs/heads/feature")).unwrap_err();
        assert_eq!(e.input, "environment");
        assert!(e.to_string().contains("refs/heads/feature"), "{e}");
        let e = r(&trig("push", "refs/tags/vbad")).unwrap_err();
        assert_eq!(e.input, "ref");
        // A non-v tag infers nothing.
        assert_eq!(
            r(&trig("push", "refs/tags/nightly")).unwrap_err().input,
            "environment"
        );
        // A dispatch on the default branch without an environment input infers nothing.
        let mut t = trig("workflow_dispatch", "refs/heads/main");
        assert_eq!(r(&t).unwrap_err().input, "environment");
        t.dispatch_environment = Some("staging");
        assert_eq!(r(&t).unwrap(), ("staging".into(), Source::DispatchInput));
        assert_eq!(
            resolve_environment(Some("qa"), &t, &p).unwrap(),
            ("qa".into(), Source::Input)
        );
        // A custom protected list: the first name is the release target.
        assert_eq!(
            resolve_environment(None, &trig("push", "refs/tags/v1.0.0"), &["live".into()])
                .unwrap()
                .0,
            "live"
        );
    }

    #[test]
    fn environment_names() {
        for ok in ["dev", "prod", "eu-west_1.a", "Production EU"] {
            assert!(check_environment_name("environment", ok).is_ok(), "{ok}");
        }
        for bad in ["", " dev", "dev ", "a/b", "a\nb", &"x".repeat(256)] {
            assert!(
                check_environment_name("environment", bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn protected_policy() {
        let p = prot();
        let ok = |e: &str, v: &str| check_policy(e, v, Source::Input, &p);
        assert!(ok("prod", "v1.2.0").is_ok());
        assert!(ok("PROD", "1.2.0").is_ok());
        assert!(ok("production", "v1.3.0-rc.1").is_ok());
        for bad in ["latest", "dev", "sha-01234567", "v1.2", "main"] {
            let e = ok("prod", bad).unwrap_err();
            assert_eq!(e.input, "version");
            assert!(e.to_string().contains("immutable semver"), "{e}");
        }
        assert!(ok("dev", "latest").is_ok());
        assert!(ok("staging", "sha-01234567").is_ok());
        assert_eq!(
            check_policy("prod", "sha-01234567", Source::Tag, &p)
                .unwrap_err()
                .input,
            "ref"
        );
    }
}
