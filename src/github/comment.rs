//! The plan's pull-request comment: one per release, namespace and environment, found again by
//! a hidden marker line, created on the first run and updated (never duplicated) on later ones.

use serde_json::{Value, json};

use super::{GitHub, GitHubError, RetryPolicy};
use crate::redact::Redactor;
use crate::secret::Secret;

/// The permission the comment needs (GitHub's workflow syntax, for the error).
pub(crate) const PERMISSION: &str = "pull-requests: write";
/// Comments read per page, and pages read at most, looking for the marker (bounded calls).
const PER_PAGE: usize = 100;
const MAX_PAGES: usize = 10;
/// GitHub refuses a comment body over 65536 characters.
pub(crate) const BODY_MAX: usize = 65_536;

/// The hidden first line that marks this plan's comment on a pull request.
pub(crate) fn marker(release: &str, namespace: &str, environment: &str) -> String {
    // `--` cannot appear inside an HTML comment: names are DNS labels, environments are not.
    let clean = |s: &str| s.replace("--", "- -").replace('>', " ");
    format!(
        "<!-- trader-deploy plan: release={} namespace={} environment={} -->",
        clean(release),
        clean(namespace),
        clean(environment)
    )
}

/// What was done on the pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Posted {
    pub(crate) id: u64,
    pub(crate) html_url: Option<String>,
    /// False: an earlier run's comment was updated.
    pub(crate) created: bool,
}

/// The id of the first comment in `page` (a list of issue comments) whose body starts with
/// `marker`.
pub(crate) fn find(page: &Value, marker: &str) -> Option<u64> {
    page.as_array()?
        .iter()
        .find(|c| {
            c.get("body")
                .and_then(Value::as_str)
                .is_some_and(|b| b.trim_start().starts_with(marker))
        })?
        .get("id")?
        .as_u64()
}

/// Creates or updates the comment on pull request `number` whose body starts with `marker`;
/// `body` must start with it.
pub(crate) async fn upsert(
    gh: &GitHub,
    number: u64,
    marker: &str,
    body: &str,
) -> Result<Posted, GitHubError> {
    debug_assert!(body.starts_with(marker));
    let list = format!("/issues/{number}/comments");
    let what = format!("read the comments of pull request #{number}");
    let mut existing = None;
    for page in 1..=MAX_PAGES {
        let query = [
            ("per_page", PER_PAGE.to_string()),
            ("page", page.to_string()),
        ];
        let r = gh.get(&list, &query, &what, PERMISSION).await?;
        existing = find(&r.body, marker);
        let n = r.body.as_array().map_or(0, Vec::len);
        if existing.is_some() || n < PER_PAGE {
            break;
        }
    }
    let payload = json!({ "body": body });
    let (answer, created) = match existing {
        Some(id) => {
            let what = format!("update the plan comment {id} on pull request #{number}");
            let path = format!("/issues/comments/{id}");
            (gh.patch(&path, &payload, &what, PERMISSION).await?, false)
        }
        None => {
            let what = format!("comment the plan on pull request #{number}");
            (gh.create(&list, &payload, &what, PERMISSION).await?, true)
        }
    };
    let id = answer
        .body
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| GitHubError::Decode {
            what: format!("comment the plan on pull request #{number}"),
            message: "no comment id in the answer".into(),
        })?;
    Ok(Posted {
        id,
        html_url: answer
            .body
            .get("html_url")
            .and_then(Value::as_str)
            .map(str::to_string),
        created,
    })
}

/// [`upsert`] through a client of its own for `repository` at `api_url` (every body it sends is
/// redacted by `redactor`).
pub(crate) async fn comment_plan(
    api_url: &str,
    token: Secret,
    repository: &str,
    redactor: Redactor,
    number: u64,
    marker: &str,
    body: &str,
) -> Result<Posted, GitHubError> {
    let gh = GitHub::new(api_url, token, repository, RetryPolicy::default(), redactor)?;
    upsert(&gh, number, marker, body).await
}

/// The pull request a `pull_request` (or `pull_request_target`) event is about.
pub(crate) fn pull_request_number(event_name: Option<&str>, event: &Value) -> Option<u64> {
    if !matches!(event_name, Some("pull_request" | "pull_request_target")) {
        return None;
    }
    event
        .pointer("/pull_request/number")
        .or_else(|| event.get("number"))
        .and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_finds_only_this_plans_comment() {
        let m = marker("traderadmin", "trader", "prod");
        assert_eq!(
            m,
            "<!-- trader-deploy plan: release=traderadmin namespace=trader environment=prod -->"
        );
        let other = marker("traderadmin", "trader", "staging");
        let page = json!([
            {"id": 1, "body": "LGTM"},
            {"id": 2, "body": format!("{other}\nstaging plan")},
            {"id": 3, "body": format!("{m}\nprod plan")},
            {"id": 4, "body": format!("{m}\na later copy")},
        ]);
        assert_eq!(find(&page, &m), Some(3));
        assert_eq!(find(&page, &marker("x", "trader", "prod")), None);
        assert_eq!(find(&json!({"message": "Not Found"}), &m), None);
        // An environment name cannot close the HTML comment early.
        assert!(!marker("r", "n", "a-->b").contains("-->b"));
    }

    #[test]
    fn only_pull_request_events_have_a_number() {
        let e = json!({"number": 7, "pull_request": {"number": 7}});
        assert_eq!(pull_request_number(Some("pull_request"), &e), Some(7));
        assert_eq!(
            pull_request_number(Some("pull_request_target"), &e),
            Some(7)
        );
        assert_eq!(pull_request_number(Some("push"), &e), None);
        assert_eq!(pull_request_number(None, &e), None);
        assert_eq!(pull_request_number(Some("pull_request"), &json!({})), None);
    }
}
