//! The GitHub run context: GITHUB_* variables and the event payload at GITHUB_EVENT_PATH.

use std::path::PathBuf;

use crate::env::{Env, vars};

/// What GitHub tells a step about its run. Every field is optional outside Actions.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub in_actions: bool,
    pub(crate) event_name: Option<String>,
    /// The event payload (an empty object when there is none).
    pub(crate) event: serde_json::Value,
    pub(crate) git_ref: Option<String>,
    pub(crate) sha: Option<String>,
    /// `owner/name`.
    pub(crate) repository: Option<String>,
    pub(crate) default_branch: Option<String>,
    pub(crate) run_id: Option<u64>,
    pub(crate) run_attempt: u32,
    /// `RUNNER_NAME`.
    pub(crate) runner_name: Option<String>,
    /// `TRADER_DEPLOY_NOW`: the instant the deploy window is decided at (default: now).
    pub(crate) now: Option<jiff::Timestamp>,
    pub(crate) actor: Option<String>,
    pub(crate) api_url: String,
    pub(crate) server_url: String,
    pub(crate) workspace: PathBuf,
    pub output_path: Option<PathBuf>,
    pub summary_path: Option<PathBuf>,
    /// `RUNNER_WORKSPACE`: the parent of the workspace on the runner's disk.
    pub(crate) runner_workspace: Option<PathBuf>,
    /// `KUBECONFIG`, as the step received it (a path list).
    pub(crate) kubeconfig_env: Option<String>,
}

/// The context could not be read: a variable or the event file is malformed.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("failed to read the event payload {path}: {error}")]
    EventRead {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("failed to parse the event payload {path}: {error}")]
    EventParse {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{var} is {value:?}, not a {what}")]
    Var {
        var: &'static str,
        value: String,
        what: &'static str,
    },
}

impl RunContext {
    pub fn from_env(env: &Env) -> Result<Self, ContextError> {
        let event = match env.get(vars::GITHUB_EVENT_PATH) {
            None => serde_json::Value::Object(Default::default()),
            Some(p) => {
                let path = PathBuf::from(p);
                let text =
                    std::fs::read_to_string(&path).map_err(|error| ContextError::EventRead {
                        path: path.clone(),
                        error,
                    })?;
                serde_json::from_str(&text)
                    .map_err(|error| ContextError::EventParse { path, error })?
            }
        };
        let number = |var: &'static str| -> Result<Option<u64>, ContextError> {
            env.get(var)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| ContextError::Var {
                        var,
                        value: v.to_string(),
                        what: "number",
                    })
                })
                .transpose()
        };
        let run_id = number(vars::GITHUB_RUN_ID)?;
        let now = env
            .get(vars::TRADER_DEPLOY_NOW)
            .map(|v| {
                v.trim()
                    .parse::<jiff::Timestamp>()
                    .map_err(|_| ContextError::Var {
                        var: vars::TRADER_DEPLOY_NOW,
                        value: v.to_string(),
                        what: "RFC 3339 instant",
                    })
            })
            .transpose()?;
        let run_attempt = number(vars::GITHUB_RUN_ATTEMPT)?.unwrap_or(1).max(1) as u32;
        let repository = env.get(vars::GITHUB_REPOSITORY).map(str::to_string);
        if let Some(r) = &repository
            && r.split('/').filter(|p| !p.is_empty()).count() != 2
        {
            return Err(ContextError::Var {
                var: vars::GITHUB_REPOSITORY,
                value: r.clone(),
                what: "owner/name",
            });
        }
        let default_branch = event
            .pointer("/repository/default_branch")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let workspace = env
            .get(vars::GITHUB_WORKSPACE)
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."));
        let string = |var| env.get(var).map(str::to_string);
        Ok(RunContext {
            in_actions: env.in_actions(),
            event_name: string(vars::GITHUB_EVENT_NAME),
            git_ref: string(vars::GITHUB_REF),
            sha: string(vars::GITHUB_SHA),
            repository,
            default_branch,
            run_id,
            run_attempt,
            runner_name: string(vars::RUNNER_NAME),
            now,
            actor: string(vars::GITHUB_ACTOR),
            api_url: string(vars::GITHUB_API_URL)
                .unwrap_or_else(|| "https://api.github.com".into())
                .trim_end_matches('/')
                .to_string(),
            server_url: string(vars::GITHUB_SERVER_URL)
                .unwrap_or_else(|| "https://github.com".into())
                .trim_end_matches('/')
                .to_string(),
            workspace,
            output_path: env.get(vars::GITHUB_OUTPUT).map(PathBuf::from),
            summary_path: env.get(vars::GITHUB_STEP_SUMMARY).map(PathBuf::from),
            runner_workspace: env.get(vars::RUNNER_WORKSPACE).map(PathBuf::from),
            kubeconfig_env: string(vars::KUBECONFIG),
            event,
        })
    }

    /// A `workflow_dispatch` input, when this run is one and the input is not empty.
    pub(crate) fn dispatch_input(&self, name: &str) -> Option<&str> {
        if self.event_name.as_deref() != Some("workflow_dispatch") {
            return None;
        }
        self.event
            .get("inputs")?
            .get(name)?
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The URL of this run's log, for deployment statuses and the summary.
    pub(crate) fn run_url(&self) -> Option<String> {
        let repo = self.repository.as_ref()?;
        let id = self.run_id?;
        Some(format!(
            "{}/{repo}/actions/runs/{id}/attempts/{}",
            self.server_url, self.run_attempt
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_event_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(
            &path,
            r#"{"inputs":{"environment":"staging","version":""},"repository":{"default_branch":"main"}}"#,
        )
        .unwrap();
        let env = Env::from_pairs([
            ("GITHUB_EVENT_NAME", "workflow_dispatch"),
            ("GITHUB_EVENT_PATH", path.to_str().unwrap()),
            ("GITHUB_REPOSITORY", "acme/trader"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
        ]);
        let c = RunContext::from_env(&env).unwrap();
        assert_eq!(c.dispatch_input("environment"), Some("staging"));
        assert_eq!(c.dispatch_input("version"), None);
        assert_eq!(c.default_branch.as_deref(), Some("main"));
        assert_eq!(c.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(
            c.run_url().unwrap(),
            "https://github.com/acme/trader/actions/runs/42/attempts/2"
        );
    }

    #[test]
    fn bad_variables_are_named() {
        let e = RunContext::from_env(&Env::from_pairs([("GITHUB_RUN_ID", "x")])).unwrap_err();
        assert_eq!(e.to_string(), "GITHUB_RUN_ID is \"x\", not a number");
        let e = RunContext::from_env(&Env::from_pairs([(
            "GITHUB_EVENT_PATH",
            "/nonexistent/e.json",
        )]))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to read the event payload /nonexistent/e.json")
        );
    }
}
