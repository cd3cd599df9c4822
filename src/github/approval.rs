//! Approval of protected environments, fail-closed: the environment has required reviewers, this
//! run was approved for it (by someone other than its actor, when asked), GitHub's own deployment
//! of this very job passed the environment's review (`job_deployment`), and the version's tag is
//! on the default branch (`provenance`). Each refusal says what is missing and how to fix it.

use serde_json::Value;

use super::job_deployment::{self, JobDeployment, JobQuery};
use super::provenance::{self, TagRelease};
use super::{GitHub, GitHubError, encode};

/// What the check needs to know about the run.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalRequest {
    pub(crate) environment: String,
    pub(crate) run_id: Option<u64>,
    /// GITHUB_RUN_ATTEMPT.
    pub(crate) attempt: u32,
    /// RUNNER_NAME: tells this job apart from the run's others.
    pub(crate) runner_name: Option<String>,
    /// Who triggered the run (GITHUB_ACTOR).
    pub(crate) actor: Option<String>,
    pub(crate) require_distinct_approver: bool,
    /// A protected deploy's version: its tag must be on the default branch (`provenance`).
    pub(crate) tag: Option<TagRelease>,
}

/// One approval of this run for the environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Approver {
    pub(crate) login: String,
    pub(crate) comment: String,
}

/// A granted approval: who may approve, who did, and the tag check's result.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Approval {
    pub(crate) environment: String,
    /// Required reviewers (logins, `team:slug` for teams).
    pub(crate) reviewers: Vec<String>,
    pub(crate) approvers: Vec<Approver>,
    /// GitHub's deployment of this job, which waited for the review.
    pub(crate) job: Option<JobDeployment>,
    /// e.g. "tag v1.1.0 (ee3b2f79) is on main".
    pub(crate) tag_check: Option<String>,
}

impl Approval {
    /// One line for the log and the summary: `alice ("Ship it")`.
    pub(crate) fn describe(&self) -> String {
        self.approvers
            .iter()
            .map(|a| {
                if a.comment.trim().is_empty() {
                    a.login.clone()
                } else {
                    format!("{} (\"{}\")", a.login, a.comment.trim())
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a protected environment's deployment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error(
        "environment {environment} does not exist in {repository}: create it under Settings → \
         Environments with a required reviewers rule, and declare `environment: {environment}` on \
         the deploying job"
    )]
    NoEnvironment {
        environment: String,
        repository: String,
    },
    #[error(
        "environment {environment} has no required reviewers: add a required reviewers rule under \
         Settings → Environments → {environment} (or remove {environment} from \
         `protected_environments` if it needs no approval)"
    )]
    NoReviewers { environment: String },
    #[error(
        "approval of environment {environment} can only be checked inside a GitHub Actions run \
         (GITHUB_REPOSITORY or GITHUB_RUN_ID is not set): deploy to a protected environment from a workflow job that \
         declares `environment: {environment}`"
    )]
    NoRun { environment: String },
    #[error(
        "run {run_id} has no approval for environment {environment}{rejected}: declare \
         `environment: {environment}` on the deploying job so GitHub asks a required reviewer, \
         and have one approve the run"
    )]
    NotApproved {
        environment: String,
        run_id: u64,
        /// ", rejected by alice (\"…\")" when someone rejected it.
        rejected: String,
    },
    #[error(
        "run {run_id} was approved for environment {environment} only by {approver}, who started or \
         re-ran it, and `require_distinct_approver` is on: ask another required reviewer to approve \
         (or turn on \"Prevent self-review\" for {environment} so GitHub enforces it)"
    )]
    SelfApproved {
        environment: String,
        run_id: u64,
        approver: String,
    },
    #[error(
        "this job has no deployment to {environment} that GitHub created when it passed the \
         environment's review ({detail}): declare `environment: {environment}` on the job that runs \
         trader-deploy (an approval of another job of run {run_id}, or of an earlier attempt, does \
         not count)"
    )]
    NoJobDeployment {
        environment: String,
        run_id: u64,
        detail: String,
    },
    #[error(
        "tag {tag}{sha} is not on the default branch {default_branch} (compare: {compare}): \
         release to {environment} only from a tag on {default_branch}; merge the commit first and \
         tag the merge"
    )]
    TagNotOnDefaultBranch {
        environment: String,
        tag: String,
        sha: String,
        default_branch: String,
        /// e.g. "diverged, 1 commit(s) not on main".
        compare: String,
    },
    #[error(
        "version {tag} is not a tag of {repository}: {environment} takes only a version that \
         names a git tag whose commit is on the default branch (push the tag first)"
    )]
    NotATag {
        environment: String,
        tag: String,
        repository: String,
    },
    #[error(
        "no GitHub token to check the approval of environment {environment}: pass `github_token` \
         (the default `${{{{ github.token }}}}` works, with `permissions: {{ actions: read, \
         deployments: write }}`)"
    )]
    NoToken { environment: String },
}

/// The approval check failed: refused, or GitHub could not be asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApprovalError {
    // Not a `source`: the message already holds it, and `{:#}` would print it twice.
    #[error("deployment to protected environment refused: {0}")]
    Refused(Refusal),
    #[error(transparent)]
    GitHub(#[from] GitHubError),
}

impl From<Refusal> for ApprovalError {
    fn from(r: Refusal) -> Self {
        ApprovalError::Refused(r)
    }
}

/// The required reviewers of an environment (GET environment's body); a refusal when it has none.
pub(crate) fn required_reviewers(
    environment: &str,
    env: &Value,
) -> Result<(Vec<String>, bool), Refusal> {
    let rules = env
        .get("protection_rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut reviewers = Vec::new();
    let mut prevent_self_review = false;
    let mut has_rule = false;
    for rule in rules
        .iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("required_reviewers"))
    {
        prevent_self_review |= rule
            .get("prevent_self_review")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        for r in rule
            .get("reviewers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let who = r.get("reviewer").unwrap_or(&Value::Null);
            match r.get("type").and_then(Value::as_str) {
                Some("Team") => {
                    if let Some(slug) = who.get("slug").and_then(Value::as_str) {
                        reviewers.push(format!("team:{slug}"));
                    }
                }
                _ => {
                    if let Some(login) = who.get("login").and_then(Value::as_str) {
                        reviewers.push(login.to_string());
                    }
                }
            }
        }
        has_rule = true;
    }
    if !has_rule || reviewers.is_empty() {
        return Err(Refusal::NoReviewers {
            environment: environment.to_string(),
        });
    }
    Ok((reviewers, prevent_self_review))
}

/// The approvals of this run for the environment (the run approvals body), fail-closed. With
/// `require_distinct`, approvals by the run's `actors` (who started or re-ran it) do not count.
pub(crate) fn approvers(
    environment: &str,
    run_id: u64,
    actors: &[String],
    require_distinct: bool,
    body: &Value,
) -> Result<Vec<Approver>, Refusal> {
    let for_env = |a: &&Value| {
        a.get("environments")
            .and_then(Value::as_array)
            .is_some_and(|envs| {
                envs.iter().any(|e| {
                    e.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(environment))
                })
            })
    };
    let entries: Vec<&Value> = body
        .as_array()
        .map(|a| a.iter().filter(for_env).collect())
        .unwrap_or_default();
    let person = |a: &Value| Approver {
        login: a
            .pointer("/user/login")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        comment: a
            .get("comment")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    };
    fn state(a: &Value) -> &str {
        a.get("state").and_then(Value::as_str).unwrap_or("")
    }
    let approved: Vec<Approver> = entries
        .iter()
        .filter(|a| state(a) == "approved")
        .map(|a| person(a))
        .filter(|p| !p.login.is_empty())
        .collect();
    if approved.is_empty() {
        let rejected = entries
            .iter()
            .filter(|a| state(a) == "rejected")
            .map(|a| {
                let p = person(a);
                if p.comment.is_empty() {
                    p.login
                } else {
                    format!("{} (\"{}\")", p.login, p.comment)
                }
            })
            .collect::<Vec<_>>();
        return Err(Refusal::NotApproved {
            environment: environment.to_string(),
            run_id,
            rejected: if rejected.is_empty() {
                String::new()
            } else {
                format!(" (rejected by {})", rejected.join(", "))
            },
        });
    }
    if require_distinct {
        let is_actor = |a: &Approver| actors.iter().any(|x| x.eq_ignore_ascii_case(&a.login));
        let others: Vec<Approver> = approved.iter().filter(|a| !is_actor(a)).cloned().collect();
        if others.is_empty() {
            let mut selves: Vec<String> = approved.iter().map(|a| a.login.clone()).collect();
            selves.dedup();
            return Err(Refusal::SelfApproved {
                environment: environment.to_string(),
                run_id,
                approver: selves.join(", "),
            });
        }
        return Ok(others);
    }
    Ok(approved)
}

/// Runs the whole check against GitHub. Any doubt refuses.
pub(crate) async fn check(gh: &GitHub, req: &ApprovalRequest) -> Result<Approval, ApprovalError> {
    let env_name = &req.environment;
    let env = match gh
        .get(
            &format!("/environments/{}", encode(env_name)),
            &[],
            &format!("read environment {env_name} of {}", gh.repository()),
            "actions: read",
        )
        .await
    {
        Ok(r) => r.body,
        Err(e) if e.status() == Some(404) => {
            return Err(Refusal::NoEnvironment {
                environment: env_name.clone(),
                repository: gh.repository(),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let (reviewers, prevent_self_review) = required_reviewers(env_name, &env)?;
    let run_id = req.run_id.ok_or_else(|| Refusal::NoRun {
        environment: env_name.clone(),
    })?;
    let body = gh
        .get(
            &format!("/actions/runs/{run_id}/approvals"),
            &[],
            &format!("read the approvals of run {run_id} in {}", gh.repository()),
            "actions: read",
        )
        .await?
        .body;
    let require_distinct = req.require_distinct_approver || prevent_self_review;
    let mut actors: Vec<String> = req.actor.iter().cloned().collect();
    if require_distinct {
        // Who started the run and who re-ran it, from GitHub rather than the environment.
        let run = gh
            .get(
                &format!("/actions/runs/{run_id}"),
                &[],
                &format!("read run {run_id} in {}", gh.repository()),
                "actions: read",
            )
            .await?
            .body;
        for who in ["/actor/login", "/triggering_actor/login"] {
            if let Some(login) = run.pointer(who).and_then(Value::as_str) {
                actors.push(login.to_string());
            }
        }
    }
    let approvers = approvers(env_name, run_id, &actors, require_distinct, &body)?;
    let query = JobQuery {
        environment: env_name.clone(),
        run_id,
        attempt: req.attempt,
        runner_name: req.runner_name.clone(),
    };
    let job =
        job_deployment::find(gh, &query)
            .await?
            .map_err(|detail| Refusal::NoJobDeployment {
                environment: env_name.clone(),
                run_id,
                detail,
            })?;
    let tag_check = match &req.tag {
        None => None,
        Some(release) => Some(provenance::check_tag(gh, env_name, release).await?),
    };
    Ok(Approval {
        environment: env_name.clone(),
        reviewers,
        approvers,
        job: Some(job),
        tag_check,
    })
}

#[cfg(test)]
mod tests {
    //! Bodies recorded from the examples of GitHub's OpenAPI description (@octokit/openapi
    //! 23.0.2, components/examples), in testdata/.
    use super::*;
    use serde_json::json;

    fn example(name: &str) -> Value {
        let text = match name {
            "environment" => include_str!("testdata/environment.json"),
            "approvals" => include_str!("testdata/environment-approvals-items.json"),
            _ => unreachable!(),
        };
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn reviewers_from_the_spec_example() {
        let (r, prevent) = required_reviewers("staging", &example("environment")).unwrap();
        assert_eq!(r, vec!["octocat", "team:justice-league"]);
        assert!(!prevent);
    }

    #[test]
    fn no_reviewer_rule_is_refused() {
        let mut env = example("environment");
        env["protection_rules"]
            .as_array_mut()
            .unwrap()
            .retain(|r| r["type"] != "required_reviewers");
        let e = required_reviewers("prod", &env).unwrap_err();
        assert_eq!(
            e,
            Refusal::NoReviewers {
                environment: "prod".into()
            }
        );
        assert!(e.to_string().contains("add a required reviewers rule"));
        // An environment without any rules (GitHub omits the key).
        assert!(required_reviewers("prod", &json!({"name": "prod"})).is_err());
        // A rule with an empty reviewer list grants nothing.
        let empty = json!({"protection_rules": [{"type": "required_reviewers", "reviewers": []}]});
        assert!(required_reviewers("prod", &empty).is_err());
    }

    #[test]
    fn approval_from_the_spec_example() {
        let a = approvers("staging", 7, &["carol".into()], true, &example("approvals")).unwrap();
        assert_eq!(
            a,
            vec![Approver {
                login: "octocat".into(),
                comment: "Ship it!".into()
            }]
        );
        // Environment names compare case-insensitively, like GitHub's.
        assert!(approvers("Staging", 7, &[], false, &example("approvals")).is_ok());
    }

    #[test]
    fn approval_for_another_environment_is_not_one() {
        let e = approvers("prod", 7, &[], false, &example("approvals")).unwrap_err();
        assert!(matches!(e, Refusal::NotApproved { run_id: 7, .. }));
        assert!(
            e.to_string()
                .starts_with("run 7 has no approval for environment prod:")
        );
        assert!(approvers("prod", 7, &[], false, &json!([])).is_err());
        assert!(approvers("prod", 7, &[], false, &json!({"message": "x"})).is_err());
    }

    #[test]
    fn rejection_is_named() {
        let mut body = example("approvals");
        body[0]["state"] = json!("rejected");
        body[0]["comment"] = json!("Not during market hours");
        let e = approvers("staging", 9, &[], false, &body).unwrap_err();
        assert!(
            e.to_string()
                .contains("(rejected by octocat (\"Not during market hours\"))"),
            "{e}"
        );
    }

    #[test]
    fn self_approval() {
        let body = example("approvals");
        // Allowed unless asked otherwise.
        assert!(approvers("staging", 7, &["octocat".into()], false, &body).is_ok());
        let e = approvers("staging", 7, &["OctoCat".into()], true, &body).unwrap_err();
        assert!(matches!(e, Refusal::SelfApproved { .. }));
        assert!(e.to_string().contains("ask another required reviewer"));
        // A second, distinct approver satisfies it.
        let mut two = body.clone();
        let mut other = body[0].clone();
        other["user"]["login"] = json!("alice");
        two.as_array_mut().unwrap().push(other);
        let a = approvers(
            "staging",
            7,
            &["someone".into(), "octocat".into()],
            true,
            &two,
        )
        .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].login, "alice");
    }

    #[test]
    fn describe_lists_approvers() {
        let a = Approval {
            approvers: vec![
                Approver {
                    login: "alice".into(),
                    comment: "Ship it".into(),
                },
                Approver {
                    login: "bob".into(),
                    comment: String::new(),
                },
            ],
            ..Approval::default()
        };
        assert_eq!(a.describe(), "alice (\"Ship it\"), bob");
    }
}
