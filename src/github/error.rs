//! What a failed GitHub call says: the error type, naming what was attempted and the
//! permission a token lacks, and GitHub's own error message.

use std::time::Duration;

use serde_json::Value;

/// A failed GitHub API call. Every variant says what was being attempted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitHubError {
    #[error(
        "failed to {what}: the token lacks the `{permission}` permission (GitHub answered {status}: \
         {message}); grant it in the workflow: `permissions: {{ {permission} }}`"
    )]
    Permission {
        what: String,
        permission: &'static str,
        status: u16,
        message: String,
    },
    #[error(
        "failed to {what}: the token was rejected (GitHub answered 401: {message}); check the `github_token` input"
    )]
    Unauthorized { what: String, message: String },
    #[error("failed to {what}: GitHub answered {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error(
        "failed to {what}: gave up after {attempts} attempt(s) in {:.1}s; last answer: {last}",
        elapsed.as_secs_f64()
    )]
    Exhausted {
        what: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    // The reqwest error is in the message, not a `source`, so `{:#}` prints it once.
    #[error("failed to {what}: {message}")]
    Transport { what: String, message: String },
    #[error("failed to {what}: the answer is not the JSON GitHub documents: {message}")]
    Decode { what: String, message: String },
    #[error("failed to build the GitHub client for {api_url}: {message}")]
    Setup { api_url: String, message: String },
}

impl GitHubError {
    /// The HTTP status GitHub answered, when the call got one.
    /// GitHub may have acted although the call failed (a 5xx, a lost connection).
    pub(crate) fn maybe_done(&self) -> bool {
        match self {
            GitHubError::Status { status, .. } => *status >= 500,
            GitHubError::Transport { .. } | GitHubError::Exhausted { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            GitHubError::Permission { status, .. } | GitHubError::Status { status, .. } => {
                Some(*status)
            }
            GitHubError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

/// GitHub's error `message` (plus its first error detail), else the start of the body.
pub(super) fn error_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let detail = v
                .pointer("/errors/0/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    v.pointer("/errors/0")
                        .filter(|e| e.is_object())
                        .map(|e| e.to_string())
                });
            match (msg.is_empty(), detail) {
                (false, Some(d)) => format!("{msg} ({d})"),
                (false, None) => msg,
                (true, _) => truncate(text, 200),
            }
        }
        Err(_) => truncate(text.trim(), 200),
    }
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(
                r#"{"message":"Validation Failed","errors":[{"resource":"DeploymentStatus","field":"state","code":"invalid"}]}"#
            ),
            r#"Validation Failed ({"code":"invalid","field":"state","resource":"DeploymentStatus"})"#
        );
        assert_eq!(error_message(r#"{"message":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
