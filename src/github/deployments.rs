//! GitHub deployments of a run: reuse the one GitHub made for this run's environment (or our own
//! from an earlier attempt) else create one; statuses in_progress → success/failure/error with the
//! run's log URL; older deployments of the environment made inactive.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use std::time::{Duration, Instant};

use super::{GitHub, GitHubError};
use crate::http::{Backoff, Retry};
use crate::outputs::Status;

/// The key of this program's data in a deployment's payload.
pub(crate) const PAYLOAD_KEY: &str = "trader_deploy";
/// GitHub caps a status description at 140 characters.
const DESCRIPTION_MAX: usize = 140;
/// Older deployments looked at when marking them inactive (bounded API calls).
const DEACTIVATE_LOOKBACK: usize = 5;

/// What to record on GitHub for this run.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentRequest {
    pub(crate) environment: String,
    /// The ref to deploy: the commit sha when known, so the deployment names the exact commit.
    pub(crate) git_ref: String,
    pub(crate) sha: Option<String>,
    /// The ref the run came from (`refs/tags/v1.2.0`), kept in the payload.
    pub(crate) source_ref: Option<String>,
    pub(crate) version: String,
    /// A run of mode rollback: it deploys no new version.
    pub(crate) rollback: bool,
    pub(crate) images: BTreeMap<String, String>,
    pub(crate) release: String,
    pub(crate) namespace: String,
    /// For protected environments.
    pub(crate) production: bool,
    /// For ephemeral environments.
    pub(crate) transient: bool,
    pub(crate) run_id: u64,
    pub(crate) run_attempt: u32,
    /// The run's log (RunContext::run_url); GitHub's schema wants a URL here.
    pub(crate) log_url: String,
    pub(crate) environment_url: Option<String>,
    /// GitHub's own deployment of this job, when the approval check found it: reported to
    /// instead of a new one.
    pub(crate) github_deployment: Option<u64>,
}

/// The deployment this run reports to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deployment {
    pub(crate) id: u64,
    /// Created by GitHub for the job, or by an earlier attempt of this run.
    pub(crate) reused: Option<Reuse>,
}

/// Why an existing deployment was reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// GitHub created it for the job's `environment:`.
    CreatedByGitHub,
    /// An earlier attempt of this run created it.
    EarlierAttempt,
    /// A create call answered an error (5xx, lost connection) but had created it.
    CreateAnsweredError,
}

/// The deployment status for an outcome: a success; a rolled-back release is the version's
/// `failure` (the environment is back at the previous revision); a run that failed without a
/// verified good state is an `error`.
pub(crate) fn final_state(status: Status) -> &'static str {
    match status {
        Status::Success => "success",
        Status::RolledBack => "failure",
        Status::Failed => "error",
    }
}

/// The payload stored on a created deployment.
pub(crate) fn payload(req: &DeploymentRequest) -> Value {
    json!({
        PAYLOAD_KEY: {
            "version": req.version,
            "rollback": req.rollback,
            "images": req.images,
            "release": req.release,
            "namespace": req.namespace,
            "ref": req.source_ref,
            "run_id": req.run_id,
            "run_attempt": req.run_attempt,
        }
    })
}

/// The deployment body of a create call.
pub(crate) fn create_body(req: &DeploymentRequest) -> Value {
    json!({
        "ref": req.git_ref,
        "task": "deploy",
        "auto_merge": false,
        "required_contexts": [],
        "payload": payload(req),
        "environment": req.environment,
        "description": truncate(&if req.rollback {
            format!("Roll back {} in {}", req.release, req.environment)
        } else {
            format!("Deploy {} to {}", req.version, req.environment)
        }),
        "transient_environment": req.transient,
        "production_environment": req.production,
    })
}

/// Among listed deployments (same sha and environment, newest first), one an earlier attempt of
/// this run created.
pub(crate) fn own_deployment(list: &Value, run_id: u64) -> Option<u64> {
    list.as_array()?.iter().find_map(|d| {
        let rid = d
            .pointer(&format!("/payload/{PAYLOAD_KEY}/run_id"))?
            .as_u64()?;
        (rid == run_id).then(|| d.get("id")?.as_u64()).flatten()
    })
}

/// Whether a deployment's statuses link to this run (GitHub's own deployment for a job with
/// `environment:` points its statuses at `…/actions/runs/{run_id}/job/{job_id}`).
pub(crate) fn statuses_link_run(statuses: &Value, run_id: u64) -> bool {
    let needle = format!("/actions/runs/{run_id}");
    statuses.as_array().is_some_and(|list| {
        list.iter().any(|s| {
            ["log_url", "target_url"].iter().any(|k| {
                s.get(k).and_then(Value::as_str).is_some_and(|u| {
                    u.find(&needle).is_some_and(|i| {
                        matches!(u[i + needle.len()..].chars().next(), None | Some('/' | '?'))
                    })
                })
            })
        })
    })
}

/// A status body.
pub(crate) fn status_body(
    state: &str,
    description: &str,
    log_url: &str,
    environment_url: Option<&str>,
    environment: &str,
) -> Value {
    let mut b = json!({
        "state": state,
        "log_url": log_url,
        "description": truncate(description),
        "environment": environment,
        "auto_inactive": true,
    });
    if let Some(u) = environment_url.filter(|u| !u.is_empty()) {
        b["environment_url"] = json!(u);
    }
    b
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= DESCRIPTION_MAX {
        return s.to_string();
    }
    let mut t: String = s.chars().take(DESCRIPTION_MAX - 1).collect();
    t.push('…');
    t
}

fn id_of(v: &Value, what: &str) -> Result<u64, GitHubError> {
    v.get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| GitHubError::Decode {
            what: what.to_string(),
            message: "no deployment id in the answer".into(),
        })
}

/// Finds or creates this run's deployment and marks it in_progress.
pub(crate) async fn start(gh: &GitHub, req: &DeploymentRequest) -> Result<Deployment, GitHubError> {
    let env = &req.environment;
    if let Some(id) = req.github_deployment {
        start_status(gh, id, req).await?;
        return Ok(Deployment {
            id,
            reused: Some(Reuse::CreatedByGitHub),
        });
    }
    let mut reused = None;
    let mut id = None;
    // This run's earlier attempt, or GitHub's deployment for the job (same commit).
    let mut query = Vec::new();
    if let Some(sha) = &req.sha {
        query.push(("sha", sha.clone()));
    }
    query.push(("environment", env.clone()));
    query.push(("per_page", "20".to_string()));
    let list = gh
        .get(
            "/deployments",
            &query,
            &format!(
                "list the deployments of {} to {env}",
                req.sha.as_deref().unwrap_or(&req.git_ref)
            ),
            "deployments: read",
        )
        .await?
        .body;
    if let Some(own) = own_deployment(&list, req.run_id) {
        id = Some(own);
        reused = Some(Reuse::EarlierAttempt);
    } else if req.sha.is_some() {
        // GitHub's own deployment for the job: not ours, newest first, a few at most.
        let candidates: Vec<u64> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d.pointer(&format!("/payload/{PAYLOAD_KEY}")).is_none())
            .filter_map(|d| d.get("id").and_then(Value::as_u64))
            .take(3)
            .collect();
        for c in candidates {
            let statuses = gh
                .get(
                    &format!("/deployments/{c}/statuses"),
                    &[("per_page", "10".into())],
                    &format!("list the statuses of deployment {c}"),
                    "deployments: read",
                )
                .await?
                .body;
            if statuses_link_run(&statuses, req.run_id) {
                id = Some(c);
                reused = Some(Reuse::CreatedByGitHub);
                break;
            }
        }
    }
    let id = match id {
        Some(id) => id,
        None => {
            let (created, found) = create(gh, req).await?;
            if found {
                reused = Some(Reuse::CreateAnsweredError);
            }
            created
        }
    };
    start_status(gh, id, req).await?;
    Ok(Deployment { id, reused })
}

/// The `in_progress` status a run starts with.
async fn start_status(gh: &GitHub, id: u64, req: &DeploymentRequest) -> Result<(), GitHubError> {
    set_status(
        gh,
        id,
        req,
        "in_progress",
        &format!(
            "Deploying {} to {} (run attempt {})",
            req.version, req.environment, req.run_attempt
        ),
    )
    .await
}

/// Creates the deployment. A create that failed on GitHub's side (5xx, lost connection) may
/// still have happened, so before trying again this run's deployment is looked for; returns
/// the id and whether it was found that way.
async fn create(gh: &GitHub, req: &DeploymentRequest) -> Result<(u64, bool), GitHubError> {
    let env = &req.environment;
    let what = format!("create a deployment of {} to {env}", req.version);
    // Three creations at most, 1 s then 2 s apart, each after looking for this run's deployment.
    let retry = Retry {
        max_attempts: 3,
        max_total: Duration::from_secs(600),
        base: Duration::from_secs(1),
        backoff: Backoff::Linear,
        cap: Duration::from_secs(10),
    };
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match gh
            .create(
                "/deployments",
                &create_body(req),
                &what,
                "deployments: write",
            )
            .await
        {
            Ok(r) if r.status == 202 => {
                return Err(GitHubError::Status {
                    what,
                    status: 202,
                    message: r
                        .body
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("GitHub merged instead of deploying")
                        .to_string(),
                });
            }
            Ok(r) => return Ok((id_of(&r.body, &what)?, false)),
            Err(e) if e.maybe_done() && attempt < retry.max_attempts => {
                tracing::warn!("{e}; looking for the deployment before trying again");
                let mut query = vec![("environment", env.clone()), ("per_page", "20".to_string())];
                if let Some(sha) = &req.sha {
                    query.push(("sha", sha.clone()));
                }
                let list = gh
                    .get(
                        "/deployments",
                        &query,
                        &format!("list the deployments of {env}"),
                        "deployments: read",
                    )
                    .await?
                    .body;
                if let Some(id) = own_deployment(&list, req.run_id) {
                    return Ok((id, true));
                }
                tokio::time::sleep(retry.next_wait(started, attempt, None).unwrap_or_default())
                    .await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Posts one status on the deployment.
pub(crate) async fn set_status(
    gh: &GitHub,
    id: u64,
    req: &DeploymentRequest,
    state: &str,
    description: &str,
) -> Result<(), GitHubError> {
    gh.post(
        &format!("/deployments/{id}/statuses"),
        &status_body(
            state,
            description,
            &req.log_url,
            req.environment_url.as_deref(),
            &req.environment,
        ),
        &format!("set deployment {id} to {state}"),
        "deployments: write",
    )
    .await?;
    Ok(())
}

/// Posts the final status. After a success, older deployments of a production environment whose
/// latest status is success are made inactive (GitHub's `auto_inactive` only covers
/// non-production ones).
pub(crate) async fn finish(
    gh: &GitHub,
    dep: &Deployment,
    req: &DeploymentRequest,
    status: Status,
    description: &str,
) -> Result<u32, GitHubError> {
    let state = final_state(status);
    set_status(gh, dep.id, req, state, description).await?;
    if state != "success" || !req.production {
        return Ok(0);
    }
    let env = &req.environment;
    let list = gh
        .get(
            "/deployments",
            &[("environment", env.clone()), ("per_page", "10".into())],
            &format!("list the deployments of {env}"),
            "deployments: read",
        )
        .await?
        .body;
    let older: Vec<u64> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d.get("transient_environment").and_then(Value::as_bool) != Some(true))
        .filter_map(|d| d.get("id").and_then(Value::as_u64))
        .filter(|&id| id < dep.id)
        .take(DEACTIVATE_LOOKBACK)
        .collect();
    let mut made_inactive = 0;
    for old in older {
        if latest_state(gh, old).await?.as_deref() == Some("success") {
            set_status(
                gh,
                old,
                req,
                "inactive",
                &format!("Superseded by deployment {} ({})", dep.id, req.version),
            )
            .await?;
            made_inactive += 1;
        }
    }
    Ok(made_inactive)
}

/// The state of a deployment's latest status (none before its first).
async fn latest_state(gh: &GitHub, id: u64) -> Result<Option<String>, GitHubError> {
    let latest = gh
        .get(
            &format!("/deployments/{id}/statuses"),
            &[("per_page", "1".into())],
            &format!("read the latest status of deployment {id}"),
            "deployments: read",
        )
        .await?
        .body;
    Ok(latest
        .pointer("/0/state")
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// mode uninstall: every deployment of the environment whose latest status is not `inactive`
/// is marked `inactive` (GitHub shows a transient environment's as destroyed), the newest 100.
/// Returns their ids.
pub(crate) async fn retire(
    gh: &GitHub,
    environment: &str,
    log_url: &str,
    description: &str,
) -> Result<Vec<u64>, GitHubError> {
    let list = gh
        .get(
            "/deployments",
            &[
                ("environment", environment.to_string()),
                ("per_page", "100".into()),
            ],
            &format!("list the deployments of {environment}"),
            "deployments: read",
        )
        .await?
        .body;
    let ids: Vec<u64> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("id").and_then(Value::as_u64))
        .collect();
    let mut retired = Vec::new();
    for id in ids {
        if latest_state(gh, id).await?.as_deref() == Some("inactive") {
            continue;
        }
        let mut body = status_body("inactive", description, log_url, None, environment);
        body["auto_inactive"] = Value::Bool(false);
        gh.post(
            &format!("/deployments/{id}/statuses"),
            &body,
            &format!("set deployment {id} to inactive"),
            "deployments: write",
        )
        .await?;
        retired.push(id);
    }
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> DeploymentRequest {
        DeploymentRequest {
            environment: "prod".into(),
            git_ref: "ee3b2f7904fd6c989c87d6b5f7ecd382679612f4".into(),
            sha: Some("ee3b2f7904fd6c989c87d6b5f7ecd382679612f4".into()),
            source_ref: Some("refs/tags/v1.1.0".into()),
            version: "v1.1.0".into(),
            rollback: false,
            images: BTreeMap::from([(
                "image.orch".to_string(),
                "ghcr.io/acme/orch:v1.1.0".to_string(),
            )]),
            release: "trader".into(),
            namespace: "trader".into(),
            production: true,
            transient: false,
            run_id: 1001,
            run_attempt: 1,
            log_url: "https://github.com/acme/trader/actions/runs/1001/attempts/1".into(),
            environment_url: None,
            github_deployment: None,
        }
    }

    #[test]
    fn create_body_fields() {
        let b = create_body(&req());
        assert_eq!(b["auto_merge"], json!(false));
        assert_eq!(b["required_contexts"], json!([]));
        assert_eq!(b["production_environment"], json!(true));
        assert_eq!(b["transient_environment"], json!(false));
        assert_eq!(b["environment"], json!("prod"));
        assert_eq!(b["payload"][PAYLOAD_KEY]["version"], json!("v1.1.0"));
        assert_eq!(
            b["payload"][PAYLOAD_KEY]["images"]["image.orch"],
            json!("ghcr.io/acme/orch:v1.1.0")
        );
        assert_eq!(b["payload"][PAYLOAD_KEY]["run_id"], json!(1001));
    }

    #[test]
    fn finds_an_earlier_attempts_deployment() {
        let mut d: Value = serde_json::from_str(include_str!("testdata/deployment.json")).unwrap();
        assert_eq!(own_deployment(&json!([d.clone()]), 1001), None);
        d["payload"] = payload(&req());
        d["id"] = json!(77);
        assert_eq!(own_deployment(&json!([d.clone()]), 1001), Some(77));
        assert_eq!(own_deployment(&json!([d]), 1002), None);
    }

    #[test]
    fn recognises_githubs_deployment_for_the_run() {
        let s = |u: &str| json!([{"state": "queued", "log_url": u, "target_url": u}]);
        assert!(statuses_link_run(
            &s("https://github.com/acme/trader/actions/runs/1001/job/5"),
            1001
        ));
        assert!(statuses_link_run(
            &s("https://github.com/acme/trader/actions/runs/1001"),
            1001
        ));
        assert!(!statuses_link_run(
            &s("https://github.com/acme/trader/actions/runs/10011/job/5"),
            1001
        ));
        assert!(!statuses_link_run(&json!([]), 1001));
    }

    #[test]
    fn status_bodies() {
        let long = "x".repeat(300);
        let b = status_body("success", &long, "https://l", Some("https://e"), "prod");
        assert_eq!(b["description"].as_str().unwrap().chars().count(), 140);
        assert_eq!(b["environment_url"], json!("https://e"));
        let b = status_body("in_progress", "d", "https://l", Some(""), "prod");
        assert!(b.get("environment_url").is_none());
        assert_eq!(final_state(Status::Success), "success");
        assert_eq!(final_state(Status::RolledBack), "failure");
        assert_eq!(final_state(Status::Failed), "error");
    }
}
