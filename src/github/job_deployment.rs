//! The deployment GitHub itself creates for the job that runs the action, when that job declares
//! `environment:`: the evidence that this job, in this attempt of the run, passed the
//! environment's protection rules (issue #17, finding 5a). A run's review history alone cannot
//! tell: it has no job and no attempt, so an approval given to another job of the run, or to an
//! earlier attempt, would read the same.
//!
//! What GitHub's API proves, and how it is read here (docs/security.md, "Approval is tied to the
//! job"):
//! - This job: `GET /actions/runs/{id}/attempts/{n}/jobs` lists the attempt's jobs with the runner
//!   each runs on; a runner runs one job at a time, so the `in_progress` job on `RUNNER_NAME` is
//!   this one, and its id is this attempt's (a re-run gives every job a new id).
//! - Its deployment: GitHub points the statuses it writes on the job's deployment at
//!   `…/actions/runs/{run}/job/{job}`. Among them a `waiting` one (written while the review was
//!   pending; the REST API refuses to create that state, so no token can forge it) and, as the
//!   latest of GitHub's, `in_progress` (the job runs; a final state means it ended).

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{GitHub, GitHubError, encode};
use crate::github::deployments::PAYLOAD_KEY;

/// Deployments of the job's commit to the environment looked at, newest first: GitHub's for this
/// job was created when the job was queued, so only runs of the same commit queued later come
/// before it.
const MAX_CANDIDATES: usize = 10;

/// Where to look.
#[derive(Debug, Clone)]
pub(crate) struct JobQuery {
    pub(crate) environment: String,
    pub(crate) run_id: u64,
    pub(crate) attempt: u32,
    /// `RUNNER_NAME`: the runner this job runs on.
    pub(crate) runner_name: Option<String>,
}

/// GitHub's deployment for this job.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct JobDeployment {
    pub(crate) deployment_id: u64,
    pub(crate) job_id: u64,
    pub(crate) job_name: String,
    /// The job's page, `…/actions/runs/{run}/job/{job}`.
    pub(crate) job_url: String,
}

impl JobDeployment {
    /// For the log: `deployment 12 of job "deploy" (…/job/100101)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "GitHub's deployment {} of job \"{}\" ({})",
            self.deployment_id, self.job_name, self.job_url
        )
    }
}

/// This attempt's job on this runner: id, name, head sha.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnJob {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) head_sha: String,
    pub(crate) html_url: String,
    /// When the job was queued and when it started, by GitHub's clock.
    pub(crate) created_at: Option<SystemTime>,
    pub(crate) started_at: Option<SystemTime>,
}

/// Slack around the job's queued..started window for its deployment's `created_at`.
const WINDOW_SLACK: Duration = Duration::from_secs(30);

/// Whether deployment `d` was created while the job waited to start (GitHub creates the job's
/// deployment when the job is queued): deployments of the same commit from other runs fall
/// outside. Without the job's times, any may be.
pub(crate) fn created_for_job(d: &Value, job: &OwnJob) -> bool {
    let (Some(queued), Some(started)) = (job.created_at, job.started_at) else {
        return true;
    };
    let Some(at) = d.get("created_at").and_then(Value::as_str).and_then(time) else {
        return true;
    };
    at + WINDOW_SLACK >= queued && at <= started + WINDOW_SLACK
}

fn time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// This attempt's job that runs on `runner`; else the refusal's detail.
pub(crate) fn own_job(jobs: &Value, runner: &str) -> Result<OwnJob, String> {
    let list = jobs.get("jobs").and_then(Value::as_array);
    let own = list.into_iter().flatten().find(|j| {
        j.get("status").and_then(Value::as_str) == Some("in_progress")
            && j.get("runner_name").and_then(Value::as_str) == Some(runner)
    });
    let own =
        own.ok_or_else(|| format!("no running job of this attempt is on runner \"{runner}\""))?;
    let s = |k: &str| own.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(OwnJob {
        id: own
            .get("id")
            .and_then(Value::as_u64)
            .ok_or("GitHub listed this job without an id")?,
        name: s("name"),
        head_sha: s("head_sha"),
        html_url: s("html_url"),
        created_at: time(&s("created_at")),
        started_at: time(&s("started_at")),
    })
}

/// Whether `url` is `…/actions/runs/{run_id}/job/{job_id}` (a query or fragment may follow).
fn names_job(url: &str, run_id: u64, job_id: u64) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or("");
    path.trim_end_matches('/')
        .ends_with(&format!("/actions/runs/{run_id}/job/{job_id}"))
}

/// Among deployments to the environment (newest first) with their statuses (newest first),
/// GitHub's for the job: the statuses GitHub wrote name the job, one of them is `waiting`, and the
/// latest of them is `in_progress`. Statuses the action itself added (they name the run, not the
/// job) are not GitHub's and do not count.
pub(crate) fn job_deployment(
    candidates: &[(Value, Value)],
    environment: &str,
    run_id: u64,
    job: &OwnJob,
) -> Result<u64, String> {
    let mut ended = None;
    for (d, statuses) in candidates {
        let same_env = d
            .get("environment")
            .and_then(Value::as_str)
            .is_some_and(|e| e.eq_ignore_ascii_case(environment));
        let ours = d.pointer(&format!("/payload/{PAYLOAD_KEY}")).is_some();
        if !same_env || ours {
            continue;
        }
        let github_s: Vec<&str> = statuses
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                ["log_url", "target_url"].iter().any(|k| {
                    s.get(k)
                        .and_then(Value::as_str)
                        .is_some_and(|u| names_job(u, run_id, job.id))
                })
            })
            .filter_map(|s| s.get("state").and_then(Value::as_str))
            .collect();
        let Some(latest) = github_s.first() else {
            continue;
        };
        let id = d.get("id").and_then(Value::as_u64).unwrap_or_default();
        if !github_s.contains(&"waiting") {
            return Err(format!(
                "GitHub's deployment {id} of job \"{}\" never waited for a review",
                job.name
            ));
        }
        if *latest == "in_progress" {
            return Ok(id);
        }
        ended.get_or_insert(format!(
            "GitHub's deployment {id} of job \"{}\" is {latest}, not in_progress",
            job.name
        ));
    }
    Err(ended.unwrap_or_else(|| {
        format!(
            "job \"{}\" (id {}) has no deployment to {environment}",
            job.name, job.id
        )
    }))
}

/// Finds GitHub's deployment for this job. `Ok(Err(detail))` when there is none: the caller
/// refuses with the detail; `Err` when GitHub could not be asked.
pub(crate) async fn find(
    gh: &GitHub,
    q: &JobQuery,
) -> Result<Result<JobDeployment, String>, GitHubError> {
    let Some(runner) = q.runner_name.as_deref().filter(|r| !r.is_empty()) else {
        return Ok(Err(
            "RUNNER_NAME is not set, so the job cannot be told apart from the run's others".into(),
        ));
    };
    let (run_id, attempt) = (q.run_id, q.attempt);
    let jobs = gh
        .get(
            &format!("/actions/runs/{run_id}/attempts/{attempt}/jobs"),
            &[("per_page", "100".into())],
            &format!(
                "list the jobs of run {run_id} attempt {attempt} in {}",
                gh.repository()
            ),
            "actions: read",
        )
        .await?
        .body;
    let job = match own_job(&jobs, runner) {
        Ok(j) => j,
        Err(detail) => return Ok(Err(detail)),
    };
    let env = &q.environment;
    let list = gh
        .get(
            "/deployments",
            &[
                ("environment", env.clone()),
                ("sha", job.head_sha.clone()),
                ("per_page", "30".into()),
            ],
            &format!("list the deployments of {} to {env}", job.head_sha),
            "deployments: read",
        )
        .await?
        .body;
    // Newest first, one at a time: the job's own is usually the newest of its commit.
    let mut candidates = Vec::new();
    let mut found = job_deployment(&[], env, run_id, &job);
    let not_ours = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d.pointer(&format!("/payload/{PAYLOAD_KEY}")).is_none())
        .filter(|d| created_for_job(d, &job))
        .take(MAX_CANDIDATES);
    for d in not_ours {
        let Some(id) = d.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let statuses = gh
            .get(
                &format!("/deployments/{}/statuses", encode(&id.to_string())),
                &[("per_page", "30".into())],
                &format!("list the statuses of deployment {id}"),
                "deployments: read",
            )
            .await?
            .body;
        candidates.push((d.clone(), statuses));
        found = job_deployment(&candidates, env, run_id, &job);
        if found.is_ok() {
            break;
        }
    }
    Ok(found.map(|deployment_id| JobDeployment {
        deployment_id,
        job_id: job.id,
        job_name: job.name.clone(),
        job_url: job.html_url.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jobs() -> Value {
        json!({"total_count": 2, "jobs": [
            {"id": 100601, "name": "gate", "status": "in_progress", "runner_name": "GitHub Actions 2",
             "head_sha": "abc", "html_url": "https://github.com/acme/trader/actions/runs/1006/job/100601"},
            {"id": 100602, "name": "deploy", "status": "in_progress", "runner_name": "GitHub Actions 1",
             "head_sha": "abc", "html_url": "https://github.com/acme/trader/actions/runs/1006/job/100602"},
            {"id": 100603, "name": "old", "status": "completed", "runner_name": "GitHub Actions 3",
             "head_sha": "abc", "html_url": "x"}
        ]})
    }

    fn dep(id: u64, env: &str) -> Value {
        json!({"id": id, "environment": env, "payload": {}})
    }

    fn statuses(job: u64, states: &[&str]) -> Value {
        let url = format!("https://github.com/acme/trader/actions/runs/1006/job/{job}");
        Value::Array(
            states
                .iter()
                .map(|s| json!({"state": s, "log_url": url, "target_url": url}))
                .collect(),
        )
    }

    #[test]
    fn the_job_is_the_running_one_on_this_runner() {
        let j = own_job(&jobs(), "GitHub Actions 1").unwrap();
        assert_eq!((j.id, j.name.as_str()), (100602, "deploy"));
        let e = own_job(&jobs(), "GitHub Actions 3").unwrap_err();
        assert!(
            e.contains("no running job of this attempt is on runner \"GitHub Actions 3\""),
            "{e}"
        );
    }

    #[test]
    fn github_s_deployment_of_this_job_counts() {
        let job = own_job(&jobs(), "GitHub Actions 1").unwrap();
        let c = vec![(
            dep(7, "Prod"),
            statuses(100602, &["in_progress", "waiting", "queued"]),
        )];
        assert_eq!(job_deployment(&c, "prod", 1006, &job), Ok(7));
    }

    #[test]
    fn an_approved_gate_job_does_not_cover_another_job() {
        let job = own_job(&jobs(), "GitHub Actions 1").unwrap();
        let c = vec![(
            dep(7, "prod"),
            statuses(100601, &["in_progress", "waiting", "queued"]),
        )];
        let e = job_deployment(&c, "prod", 1006, &job).unwrap_err();
        assert_eq!(e, "job \"deploy\" (id 100602) has no deployment to prod");
    }

    #[test]
    fn an_ended_or_unreviewed_deployment_does_not_count() {
        let job = own_job(&jobs(), "GitHub Actions 1").unwrap();
        let ended = vec![(
            dep(7, "prod"),
            statuses(100602, &["success", "in_progress", "waiting", "queued"]),
        )];
        let e = job_deployment(&ended, "prod", 1006, &job).unwrap_err();
        assert!(
            e.contains("deployment 7 of job \"deploy\" is success"),
            "{e}"
        );
        let unreviewed = vec![(dep(8, "prod"), statuses(100602, &["in_progress", "queued"]))];
        let e = job_deployment(&unreviewed, "prod", 1006, &job).unwrap_err();
        assert!(e.contains("never waited for a review"), "{e}");
    }

    #[test]
    fn the_action_s_own_statuses_are_not_github_s() {
        let job = own_job(&jobs(), "GitHub Actions 1").unwrap();
        // The action posted success onto GitHub's deployment in an earlier step of the job: its
        // status names the run, not the job, and does not end the job's deployment.
        let mut s = statuses(100602, &["in_progress", "waiting", "queued"]);
        s.as_array_mut().unwrap().insert(
            0,
            json!({"state": "success",
                   "log_url": "https://github.com/acme/trader/actions/runs/1006/attempts/1"}),
        );
        assert_eq!(
            job_deployment(&[(dep(7, "prod"), s)], "prod", 1006, &job),
            Ok(7)
        );
    }

    #[test]
    fn other_environments_and_the_action_s_deployments_are_skipped() {
        let job = own_job(&jobs(), "GitHub Actions 1").unwrap();
        let st = statuses(100602, &["in_progress", "waiting"]);
        let ours =
            json!({"id": 9, "environment": "prod", "payload": {PAYLOAD_KEY: {"run_id": 1006}}});
        let c = vec![(dep(8, "staging"), st.clone()), (ours, st)];
        assert!(job_deployment(&c, "prod", 1006, &job).is_err());
    }

    #[test]
    fn only_deployments_made_while_the_job_was_queued_are_its_own() {
        let mut jobs = jobs();
        jobs["jobs"][1]["created_at"] = json!("2026-11-30T10:00:00Z");
        jobs["jobs"][1]["started_at"] = json!("2026-11-30T10:02:00Z");
        let job = own_job(&jobs, "GitHub Actions 1").unwrap();
        let at = |t: &str| json!({"created_at": t});
        assert!(created_for_job(&at("2026-11-30T10:00:01Z"), &job));
        assert!(
            created_for_job(&at("2026-11-30T09:59:45Z"), &job),
            "clock slack"
        );
        assert!(
            !created_for_job(&at("2026-11-30T09:58:00Z"), &job),
            "an earlier run's"
        );
        assert!(
            !created_for_job(&at("2026-11-30T10:03:00Z"), &job),
            "a later run's"
        );
        // Without the job's times nothing is ruled out.
        let bare = own_job(&super::tests::jobs(), "GitHub Actions 1").unwrap();
        assert!(created_for_job(&at("2020-01-01T00:00:00Z"), &bare));
    }

    #[test]
    fn a_job_url_is_matched_whole() {
        assert!(names_job(
            "https://github.com/a/b/actions/runs/1006/job/100602",
            1006,
            100602
        ));
        assert!(names_job(
            "https://github.com/a/b/actions/runs/1006/job/100602?pr=1",
            1006,
            100602
        ));
        assert!(!names_job(
            "https://github.com/a/b/actions/runs/1006/job/1006021",
            1006,
            100602
        ));
        assert!(!names_job(
            "https://github.com/a/b/actions/runs/11006/job/100602",
            1006,
            100602
        ));
    }
}
