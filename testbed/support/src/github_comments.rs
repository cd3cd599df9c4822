//! The stand-in's pull-request comments (GitHub's issue comments, which is what a comment on a
//! pull request is): their state, the `{"body": …}` a create or an update sends, and GitHub's
//! `issue-comment` JSON shape. Routing, authentication and permissions are github.rs's.

use serde::Serialize;
use serde_json::{Value, json};

/// One comment on an issue (a pull request) of a repository.
#[derive(Clone, Debug, Serialize)]
pub struct Comment {
    pub id: i64,
    /// The issue (pull request) number.
    pub issue: i64,
    pub body: String,
    /// Login of the token that wrote it.
    pub user: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The `body` of a create or update request, or GitHub's answer to a bad one (status, JSON).
pub fn body_of(bytes: &[u8], doc: &str) -> Result<String, (u16, Value)> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| {
        (
            400,
            crate::github_json::basic_error("Problems parsing JSON", doc, 400),
        )
    })?;
    match v.get("body") {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err((
            422,
            crate::github_json::validation_error(
                "Invalid request.\n\n\"body\" wasn't supplied.",
                doc,
                vec![],
            ),
        )),
    }
}

/// GitHub's `issue-comment` object. `repo_api`/`repo_web` are the repository's REST and web
/// roots; `user` its author's simple-user JSON.
pub fn to_json(c: &Comment, repo_api: &str, repo_web: &str, user: Value) -> Value {
    json!({
        "id": c.id,
        "node_id": format!("IC_kwDOstandin{}", c.id),
        "url": format!("{repo_api}/issues/comments/{}", c.id),
        "html_url": format!("{repo_web}/pull/{}#issuecomment-{}", c.issue, c.id),
        "issue_url": format!("{repo_api}/issues/{}", c.issue),
        "body": c.body,
        "user": user,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "author_association": "NONE",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_must_be_a_string() {
        assert_eq!(body_of(br#"{"body":"hi"}"#, "d").unwrap(), "hi");
        assert_eq!(body_of(br#"{"body":1}"#, "d").unwrap_err().0, 422);
        assert_eq!(body_of(b"{}", "d").unwrap_err().0, 422);
        assert_eq!(body_of(b"nope", "d").unwrap_err().0, 400);
    }
}
