//! The stand-in's model of a workflow job that declares `environment:`: what GitHub does with the
//! job's deployment (created when the job is queued, `waiting` while the environment's review is
//! pending, `in_progress` once the job starts, GitHub's own final status when it ends) and the
//! job as `GET /actions/runs/{id}/attempts/{n}/jobs` shows it.
//!
//! Sources: GitHub's docs ("Deployments and environments": a job that references an environment
//! gets a deployment; it does not start until the protection rules pass; `environment.url` is the
//! `environment_url` of every status GitHub writes), the `job` and `deployment-status` schemas of
//! the OpenAPI description, and recorded payloads (a `waiting` deployment status of a job held for
//! review, octokit/webhooks.net#52; the `queued → in_progress → success` statuses of a job without
//! rules, with `payload: {}` and no description).

use crate::github_json::{self as gj, Urls};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One job of a run, in the fixture.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobFx {
    /// The job's name (its key, or `name:`).
    pub name: String,
    /// Defaults to `run id × 100 + position + 1`.
    #[serde(default)]
    pub id: Option<i64>,
    /// `environment:` of the job; a job without one gets no deployment.
    #[serde(default)]
    pub environment: Option<String>,
    /// `environment.url` of the job.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default = "default_runner")]
    pub runner_name: String,
    /// The attempt of the run this job belongs to (default: the run's `run_attempt`).
    #[serde(default)]
    pub attempt: Option<i64>,
    /// `queued`, `in_progress` (default) or `completed`: what the job did, its review apart.
    #[serde(default = "default_in_progress")]
    pub status: String,
    /// With `completed`: success, failure, cancelled, …
    #[serde(default)]
    pub conclusion: Option<String>,
}

fn default_runner() -> String {
    "GitHub Actions 1".into()
}

fn default_in_progress() -> String {
    "in_progress".into()
}

/// The review of the job's environment in its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// The environment has no required reviewers (or the job no environment).
    NotRequired,
    Pending,
    Approved,
    Rejected,
}

impl Review {
    /// From the run's review history: the latest entry naming the environment decides.
    pub fn of(required: bool, history: &[(Vec<String>, String)], environment: &str) -> Review {
        if !required {
            return Review::NotRequired;
        }
        let last = history
            .iter()
            .rev()
            .find(|(envs, _)| envs.iter().any(|e| e.eq_ignore_ascii_case(environment)));
        match last.map(|(_, s)| s.as_str()) {
            Some("approved") => Review::Approved,
            Some("rejected") => Review::Rejected,
            _ => Review::Pending,
        }
    }
}

/// The job's `status` and `conclusion` as GitHub shows them: a job held for review is `waiting`
/// whatever the fixture says it did, a rejected one failed without running.
pub fn job_state(job: &JobFx, review: Review) -> (String, Option<String>) {
    match review {
        Review::Pending => ("waiting".into(), None),
        Review::Rejected => ("completed".into(), Some("failure".into())),
        Review::NotRequired | Review::Approved => (job.status.clone(), job.conclusion.clone()),
    }
}

/// GitHub's final deployment state for a job's conclusion.
pub fn final_state(conclusion: Option<&str>) -> &'static str {
    match conclusion {
        Some("success") => "success",
        Some("failure") | Some("timed_out") => "failure",
        // Neither documented nor recorded: cancelled and the rest end as `error` here; the action
        // never relies on a final state.
        _ => "error",
    }
}

/// The states GitHub writes on the job's deployment, oldest first.
pub fn deployment_states(
    review: Review,
    status: &str,
    conclusion: Option<&str>,
) -> Vec<&'static str> {
    let mut states = vec!["queued"];
    if review != Review::NotRequired {
        states.push("waiting");
    }
    match (review, status) {
        (Review::Pending, _) => {}
        (Review::Rejected, _) => states.push("failure"),
        (_, "queued") => {}
        (_, "in_progress") => states.push("in_progress"),
        (_, _) => {
            states.push("in_progress");
            states.push(final_state(conclusion));
        }
    }
    states
}

/// The job's id: the fixture's, else derived from the run's id and its position.
pub fn job_id(run_id: i64, position: usize, job: &JobFx) -> i64 {
    job.id.unwrap_or(run_id * 100 + position as i64 + 1)
}

/// `{web}/{owner}/{repo}/actions/runs/{run}/job/{job}`: the `log_url` and `target_url` GitHub
/// writes on the statuses of the job's deployment (its "View logs" link).
pub fn job_log_url(repo_web: &str, run_id: i64, job_id: i64) -> String {
    format!("{repo_web}/actions/runs/{run_id}/job/{job_id}")
}

/// What a job's JSON needs from its run.
pub struct RunInfo<'a> {
    pub run_id: i64,
    pub attempt: i64,
    pub head_sha: &'a str,
    pub head_branch: &'a str,
    pub workflow_name: &'a str,
    /// Seconds since the epoch when the run was created.
    pub created: i64,
}

/// One element of `jobs` in `GET /actions/runs/{id}/attempts/{n}/jobs` (schema `job`).
pub fn job_json(
    repo_api: &str,
    repo_web: &str,
    run: &RunInfo,
    id: i64,
    job: &JobFx,
    state: &(String, Option<String>),
) -> Value {
    let (status, conclusion) = state;
    let started = gj::rfc3339_secs(run.created + 5);
    let waiting = status == "waiting" || status == "queued";
    let completed = status == "completed";
    json!({
        "id": id,
        "run_id": run.run_id,
        "run_url": format!("{repo_api}/actions/runs/{}", run.run_id),
        "run_attempt": run.attempt,
        "node_id": format!("CR_kwDO{id:08}"),
        "head_sha": run.head_sha,
        "url": format!("{repo_api}/actions/jobs/{id}"),
        "html_url": format!("{repo_web}/actions/runs/{}/job/{id}", run.run_id),
        "status": status,
        "conclusion": conclusion,
        "created_at": gj::rfc3339_secs(run.created),
        "started_at": started,
        "completed_at": if completed { Value::from(gj::rfc3339_secs(run.created + 65)) } else { Value::Null },
        "name": job.name,
        "steps": [],
        "check_run_url": format!("{repo_api}/check-runs/{id}"),
        "labels": ["ubuntu-latest"],
        "runner_id": if waiting { Value::Null } else { Value::from(1) },
        "runner_name": if waiting { Value::Null } else { Value::from(job.runner_name.clone()) },
        "runner_group_id": if waiting { Value::Null } else { Value::from(0) },
        "runner_group_name": if waiting { Value::Null } else { Value::from("GitHub Actions") },
        "workflow_name": run.workflow_name,
        "head_branch": run.head_branch
    })
}

/// `performed_via_github_app` of what GitHub Actions writes: the GitHub Actions app.
pub fn actions_app(urls: &Urls) -> Value {
    let owner = gj::user(urls, "github", 9_919, "Organization");
    json!({
        "id": 15_368,
        "slug": "github-actions",
        "node_id": "MDM6QXBwMTUzNjg=",
        "owner": owner,
        "name": "GitHub Actions",
        "description": "Automate your workflow from idea to production",
        "external_url": "https://help.github.com/en/actions",
        "html_url": format!("{}/apps/github-actions", urls.web),
        "created_at": "2018-07-30T09:30:17Z",
        "updated_at": "2024-04-10T20:33:16Z",
        "permissions": {"actions": "write", "checks": "write", "contents": "write",
                        "deployments": "write", "metadata": "read", "statuses": "write"},
        "events": ["check_run", "check_suite", "deployment", "deployment_status", "workflow_job"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &str, conclusion: Option<&str>) -> JobFx {
        JobFx {
            name: "deploy".into(),
            id: None,
            environment: Some("prod".into()),
            url: None,
            runner_name: default_runner(),
            attempt: None,
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
        }
    }

    #[test]
    fn a_review_holds_the_job_and_its_deployment() {
        let history = vec![(vec!["staging".to_string()], "approved".to_string())];
        let r = Review::of(true, &history, "prod");
        assert_eq!(r, Review::Pending);
        assert_eq!(job_state(&job("in_progress", None), r).0, "waiting");
        assert_eq!(
            deployment_states(r, "in_progress", None),
            ["queued", "waiting"]
        );
    }

    #[test]
    fn an_approved_job_runs_and_ends_with_github_s_status() {
        let history = vec![(vec!["PROD".to_string()], "approved".to_string())];
        let r = Review::of(true, &history, "prod");
        assert_eq!(r, Review::Approved);
        assert_eq!(
            deployment_states(r, "in_progress", None),
            ["queued", "waiting", "in_progress"]
        );
        assert_eq!(
            deployment_states(r, "completed", Some("success")),
            ["queued", "waiting", "in_progress", "success"]
        );
    }

    #[test]
    fn without_rules_there_is_no_waiting() {
        let r = Review::of(false, &[], "dev");
        assert_eq!(
            deployment_states(r, "in_progress", None),
            ["queued", "in_progress"]
        );
    }

    #[test]
    fn a_rejected_job_fails_without_running() {
        let history = vec![(vec!["prod".to_string()], "rejected".to_string())];
        let r = Review::of(true, &history, "prod");
        assert_eq!(
            job_state(&job("in_progress", None), r),
            ("completed".into(), Some("failure".into()))
        );
        assert_eq!(
            deployment_states(r, "in_progress", None),
            ["queued", "waiting", "failure"]
        );
    }
}
