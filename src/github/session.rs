//! GitHub's part of one deploy: before the cluster is touched, the approval of a protected
//! environment (fail-closed) and the deployment in_progress; at the end, its final status, the
//! outputs deployment_id / environment_url and the count of API calls.

use super::approval::{self, Approval, ApprovalError, ApprovalRequest, Refusal};
use super::deployments::{self, Deployment, DeploymentRequest, Reuse};
use super::provenance::TagRelease;
use super::{GitHub, GitHubError, RetryPolicy};
use crate::context::RunContext;
use crate::inputs::Config;
use crate::outputs::{Outputs, Status};
use crate::runner::Runner;
use crate::summary::Summary;

/// Why the run stops before the cluster.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    #[error(transparent)]
    Deployment(GitHubError),
}

impl SessionError {
    /// The annotation's title.
    pub(crate) fn title(&self) -> &'static str {
        match self {
            SessionError::Approval(ApprovalError::Refused(_)) => "Deployment refused",
            SessionError::Approval(ApprovalError::GitHub(_)) => "Approval check failed",
            SessionError::Deployment(_) => "GitHub deployment failed",
        }
    }
}

/// GitHub state of a run between its start and its end.
#[derive(Debug, Default)]
pub(crate) struct Session {
    gh: Option<GitHub>,
    pub(crate) approval: Option<Approval>,
    request: Option<DeploymentRequest>,
    pub(crate) deployment: Option<Deployment>,
}

/// Ephemeral environments (review apps) get `transient_environment`: `pr-…`, `preview-…`,
/// `review-…` (or `/` instead of `-`).
pub(crate) fn is_transient(environment: &str) -> bool {
    let e = environment.to_ascii_lowercase();
    ["pr", "preview", "review"].iter().any(|p| {
        e.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('/'))
    })
}

/// The ref deployed and its commit. GITHUB_SHA is that commit only when the ref is the run's
/// own; a `ref` input naming another ref leaves the commit to GitHub to resolve.
fn source(config: &Config, ctx: &RunContext) -> (Option<String>, Option<String>) {
    let git_ref = config.git_ref.clone().or_else(|| ctx.git_ref.clone());
    let sha = match (&git_ref, &ctx.git_ref) {
        (Some(a), Some(b)) if a != b => None,
        _ => ctx.sha.clone(),
    };
    (git_ref, sha)
}

/// The tag a protected deploy releases: its version, whatever event started the run (a
/// `workflow_dispatch` from any branch may name any tag), checked to be a tag whose commit is on
/// the default branch. The run's own commit stands for it only when the run is that tag's push.
/// A rollback deploys no new version: nothing to check.
fn released_tag(
    config: &Config,
    git_ref: Option<&str>,
    sha: Option<&str>,
    ctx: &RunContext,
) -> Option<TagRelease> {
    if config.mode != crate::inputs::Mode::Deploy || config.version.is_empty() {
        return None;
    }
    let own_push = git_ref == Some(format!("refs/tags/{}", config.version).as_str());
    Some(TagRelease {
        tag: config.version.clone(),
        sha: if own_push {
            sha.map(str::to_string)
        } else {
            None
        },
        default_branch: ctx.default_branch.clone(),
    })
}

/// The ref a deployment names: the exact commit when known, else the short ref.
fn deployment_ref(git_ref: Option<&str>, sha: Option<&str>) -> Option<String> {
    if let Some(sha) = sha {
        return Some(sha.to_string());
    }
    let r = git_ref?;
    Some(
        r.strip_prefix("refs/heads/")
            .or_else(|| r.strip_prefix("refs/tags/"))
            .unwrap_or(r)
            .to_string(),
    )
}

impl Session {
    /// Approval (protected environments) then the deployment, in_progress. Nothing here touches
    /// the cluster; any error stops the run before it does.
    pub(crate) async fn start(
        config: &Config,
        ctx: &RunContext,
        runner: &Runner,
        summary: &mut Summary,
        force_distinct_approver: bool,
    ) -> Result<Session, SessionError> {
        summary.run_url = ctx.run_url();
        let gh = match (&config.github_token, &ctx.repository) {
            (Some(token), Some(repo)) => Some(
                GitHub::new(
                    &ctx.api_url,
                    token.clone(),
                    repo,
                    RetryPolicy::default(),
                    runner.redactor(),
                )
                .map_err(SessionError::Deployment)?,
            ),
            _ => None,
        };
        let mut session = Session {
            gh,
            ..Session::default()
        };
        let env = &config.environment;
        let (git_ref, sha) = source(config, ctx);
        if config.protected {
            let _g = runner.group(&format!("Check the approval for {env}"));
            let gh = session.gh.as_ref().ok_or_else(|| {
                ApprovalError::from(if config.github_token.is_none() {
                    Refusal::NoToken {
                        environment: env.clone(),
                    }
                } else {
                    Refusal::NoRun {
                        environment: env.clone(),
                    }
                })
            })?;
            let req = ApprovalRequest {
                environment: env.clone(),
                run_id: ctx.run_id,
                attempt: ctx.run_attempt,
                runner_name: ctx.runner_name.clone(),
                actor: ctx.actor.clone(),
                require_distinct_approver: config.require_distinct_approver
                    || force_distinct_approver,
                tag: released_tag(config, git_ref.as_deref(), sha.as_deref(), ctx),
            };
            let approval = approval::check(gh, &req).await?;
            runner.info(&format!(
                "{env} requires a review by {}; run {} approved by {}",
                approval.reviewers.join(", "),
                ctx.run_id.unwrap_or_default(),
                approval.describe()
            ));
            if let Some(j) = &approval.job {
                runner.info(&format!("{} passed {env}'s review", j.describe()));
            }
            if let Some(t) = &approval.tag_check {
                runner.info(t);
            }
            summary.approvals(approval.describe());
            session.approval = Some(approval);
        }

        let (Some(gh), Some(run_id), Some(log_url), Some(deploy_ref)) = (
            session.gh.as_ref(),
            ctx.run_id,
            ctx.run_url(),
            deployment_ref(git_ref.as_deref(), sha.as_deref()),
        ) else {
            runner.info(
                "No GitHub deployment recorded: not a GitHub Actions run with a token \
                 (GITHUB_REPOSITORY, GITHUB_RUN_ID and github_token are needed)",
            );
            return Ok(session);
        };
        let _g = runner.group(&format!("Record the GitHub deployment to {env}"));
        let request = DeploymentRequest {
            environment: env.clone(),
            git_ref: deploy_ref,
            sha: sha.clone(),
            source_ref: git_ref.clone(),
            version: config.version.clone(),
            rollback: config.mode == crate::inputs::Mode::Rollback,
            images: config
                .images
                .iter()
                .map(|i| (i.key.clone(), i.reference.clone()))
                .collect(),
            release: config.release.clone(),
            namespace: config.namespace.clone(),
            production: config.protected,
            transient: is_transient(env),
            run_id,
            run_attempt: ctx.run_attempt,
            log_url,
            environment_url: config.environment_url.clone(),
            github_deployment: session
                .approval
                .as_ref()
                .and_then(|a| a.job.as_ref())
                .map(|j| j.deployment_id),
        };
        let dep = deployments::start(gh, &request)
            .await
            .map_err(SessionError::Deployment)?;
        let how = match dep.reused {
            None => "created".to_string(),
            Some(Reuse::CreatedByGitHub) => "GitHub's deployment for this job".to_string(),
            Some(Reuse::EarlierAttempt) => "from an earlier attempt of this run".to_string(),
            Some(Reuse::CreateAnsweredError) => {
                "created although the create call answered an error".to_string()
            }
        };
        let what = if request.rollback {
            format!("a rollback of {}", config.release)
        } else {
            config.version.clone()
        };
        runner.info(&format!(
            "GitHub deployment {} ({how}) of {what} to {env}: in_progress",
            dep.id
        ));
        summary.deployment = Some(match &ctx.repository {
            Some(repo) => format!(
                "[{}]({}/{repo}/deployments/{}) ({how})",
                dep.id,
                ctx.server_url,
                super::encode(env)
            ),
            None => format!("{} ({how})", dep.id),
        });
        session.request = Some(request);
        session.deployment = Some(dep);
        Ok(session)
    }

    /// The final status, the outputs it owns, and the API call count. A GitHub failure here is a
    /// warning: the cluster's outcome stands.
    pub(crate) async fn finish(
        &self,
        config: &Config,
        runner: &Runner,
        outputs: &mut Outputs,
        error: Option<&str>,
    ) {
        if outputs.environment_url.is_none() {
            outputs.environment_url = config.environment_url.clone();
        }
        let (Some(gh), Some(dep), Some(req)) = (&self.gh, &self.deployment, &self.request) else {
            self.report_calls(runner);
            return;
        };
        outputs.deployment_id = Some(dep.id);
        let _g = runner.group("Report the GitHub deployment status");
        let rev = |r: Option<u32>| r.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
        let description = match outputs.status {
            Status::Success if req.rollback => {
                format!("Rolled back to revision {}", rev(outputs.revision))
            }
            Status::Success => format!(
                "Deployed {} (revision {})",
                outputs.version,
                rev(outputs.revision)
            ),
            Status::RolledBack => format!(
                "{} failed; rolled back to revision {}",
                outputs.version,
                rev(outputs.revision)
            ),
            Status::Failed => format!(
                "Deploying {} failed: {}",
                outputs.version,
                error
                    .and_then(|e| e.lines().next())
                    .unwrap_or("see the run log")
            ),
        };
        match deployments::finish(gh, dep, req, outputs.status, &description).await {
            Ok(inactive) => {
                runner.info(&format!(
                    "GitHub deployment {}: {}{}",
                    dep.id,
                    deployments::final_state(outputs.status),
                    if inactive > 0 {
                        format!(
                            "; {inactive} older deployment(s) of {} made inactive",
                            req.environment
                        )
                    } else {
                        String::new()
                    }
                ));
            }
            Err(e) => runner.warning("GitHub deployment status", &e.to_string()),
        }
        self.report_calls(runner);
    }

    fn report_calls(&self, runner: &Runner) {
        if let Some(gh) = &self.gh {
            runner.info(&format!(
                "GitHub API calls: {} ({} retries)",
                gh.calls(),
                gh.retries()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_refs() {
        assert_eq!(
            deployment_ref(Some("refs/tags/v1.2.0"), Some("062c90ff")),
            Some("062c90ff".into())
        );
        assert_eq!(
            deployment_ref(Some("refs/tags/v1.2.0"), None),
            Some("v1.2.0".into())
        );
        assert_eq!(
            deployment_ref(Some("refs/heads/main"), None),
            Some("main".into())
        );
        assert_eq!(deployment_ref(None, None), None);
    }

    #[test]
    fn transient_environments() {
        assert!(is_transient("pr-123"));
        assert!(is_transient("preview/feature-x"));
        assert!(is_transient("Review-7"));
        assert!(!is_transient("prod"));
        assert!(!is_transient("production"));
        assert!(!is_transient("preview"));
    }
}
