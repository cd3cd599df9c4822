//! End-to-end tests of the action's GitHub steps: the real binary, run as a docker action would be
//! (INPUT_*, GITHUB_*, a real webhook payload), talks to the bed's GitHub stand-in through the Prism
//! validator. Approval refusals, deployments and their statuses, re-runs and retries are asserted
//! from the stand-in's request log.
//!
//! Each test adds its own repository to the stand-in (POST /_standin/repos, default fixture with a
//! unique name) and reads only that repository's log entries, so the tests run in parallel and
//! alongside other users of the stand-in. Needs testbed/github/up.sh (or testbed/up.sh) and the
//! bed env file (TD_BED_ENV, default target/testbed/env); the cluster-side assertions also need
//! the cluster part of the bed (KUBECONFIG in the env file).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

const FULL: &str = "ghs_bed_full";
const MAIN_TIP: &str = "ee3b2f7904fd6c989c87d6b5f7ecd382679612f4";
const RC_SHA: &str = "062c90ffefec078056c06f04523bec100933fe16";

fn env_file() -> PathBuf {
    std::env::var_os("TD_BED_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("target/testbed/env"))
}

fn bed_vars() -> BTreeMap<String, String> {
    let path = env_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the bed is not up: cannot read {} ({e}); run testbed/up.sh (or testbed/github/up.sh \
             with its output in a file named by TD_BED_ENV)",
            path.display()
        )
    });
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(|c| c == '"' || c == '\'').to_string(),
            )
        })
        .collect()
}

/// One repository of our own in the stand-in.
type Repo = common::StandinRepo;

/// Adds a repository from the bed's GitHub variables (this suite needs no cluster for them).
async fn add_repo(prefix: &str, edit: impl FnOnce(&mut Value)) -> Repo {
    let vars = bed_vars();
    let get = |k: &str| {
        vars.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{} has no {k}", env_file().display()))
    };
    Repo::add(
        get("GITHUB_API_URL"),
        get("TD_GITHUB_STANDIN_URL"),
        prefix,
        edit,
    )
    .await
}

/// What this suite asks of its repositories beyond the shared client.
trait RepoExt {
    async fn fault(&self, fault: Value, rest: &str);
    async fn deployments(&self) -> Vec<Value>;
}

impl RepoExt for Repo {
    /// A fault on a path of this repository (`rest` after `/repos/acme/<name>`).
    async fn fault(&self, mut fault: Value, rest: &str) {
        fault["path_prefix"] = json!(format!("/repos/{}{rest}", self.full));
        self.control("POST", "/_standin/faults", Some(fault)).await;
    }

    /// The stand-in's deployments of this repository.
    async fn deployments(&self) -> Vec<Value> {
        let state = self.control("GET", "/_standin/state", None).await;
        let list = state
            .get("repos")
            .and_then(|r| r.get(&self.full))
            .and_then(|r| r.get("deployments"))
            .or_else(|| state.get("deployments"))
            .cloned()
            .unwrap_or(Value::Null);
        list.as_array().cloned().unwrap_or_default()
    }
}

/// `METHOD path-after-repo` of each log entry, with the answer's status.
fn calls(log: &[Value], full: &str) -> Vec<String> {
    let prefix = format!("/repos/{full}");
    log.iter()
        .map(|e| {
            let path = e["path"].as_str().unwrap();
            let q = e["query"].as_str().unwrap_or("");
            format!(
                "{} {}{}{} -> {}",
                e["method"].as_str().unwrap(),
                path.strip_prefix(&prefix).unwrap_or(path),
                if q.is_empty() { "" } else { "?" },
                q,
                e["status"]
            )
        })
        .collect()
}

/// The states posted as deployment statuses, in order.
fn posted_states(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/statuses"))
        .map(|e| e["body"]["state"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn creates(log: &[Value]) -> usize {
    log.iter()
        .filter(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/deployments"))
        .count()
}

/// A call sequence with the approval's job check (issue #17, 5a: the attempt's jobs, the
/// commit's deployments to the environment, the statuses of GitHub's deployment of the job)
/// folded into one `(job check)` line, so that sequences stay readable whatever the ids.
fn job_check(seq: Vec<String>) -> Vec<String> {
    let mut out = vec![];
    let mut calls = seq.into_iter().peekable();
    while let Some(c) = calls.next() {
        if !(c.contains("/attempts/") && c.contains("/jobs?")) {
            out.push(c);
            continue;
        }
        out.push("(job check)".to_string());
        calls.next_if(|c| c.starts_with("GET /deployments?environment="));
        while calls
            .next_if(|c| {
                c.starts_with("GET /deployments/") && c.ends_with("/statuses?per_page=30 -> 200")
            })
            .is_some()
        {}
    }
    out
}

/// GitHub's own deployment of run `run`'s job (the fixture's, github_jobs.rs).
async fn github_s_job_deployment(repo: &Repo, run: u64) -> u64 {
    let url = format!("/actions/runs/{run}/job/{run}01");
    repo.deployments()
        .await
        .iter()
        .find(|d| {
            d["statuses"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["log_url"].as_str().unwrap_or("").ends_with(&url))
            })
        })
        .and_then(|d| d["id"].as_u64())
        .unwrap_or_else(|| panic!("no GitHub deployment of run {run}'s job"))
}

/// A real webhook payload from @octokit/webhooks-examples.
fn example_payload(event: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let home = std::env::var_os("TRADER_DEPLOY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/trader-deploy")
        });
    let path = home.join("npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json");
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run testbed/install-deps.sh)", path.display())),
    )
    .unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == event)
        .flat_map(|e| e["examples"].as_array().unwrap().iter())
        .find(|x| pick(x))
        .cloned()
        .unwrap_or_else(|| panic!("no {event} example matches"))
}

/// One run of the action.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

impl Run {
    fn output(&self, name: &str) -> &str {
        self.outputs.get(name).map(String::as_str).unwrap_or("")
    }
}

/// How to run the action.
struct Action {
    vars: BTreeMap<String, String>,
    dir: tempfile::TempDir,
}

impl Action {
    /// A workflow_dispatch run of `repo` deploying v1.1.0 (main's tip) to prod as run 1001.
    fn new(repo: &Repo) -> Action {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Action {
            vars: BTreeMap::new(),
            dir,
        };
        let payload = example_payload("workflow_dispatch", |x| {
            x["repository"]["default_branch"] == "main"
        });
        a.event("workflow_dispatch", payload);
        let ws = a.dir.path().to_str().unwrap().to_string();
        for (k, v) in [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", repo.full.as_str()),
            ("GITHUB_API_URL", repo.api.as_str()),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_RUN_ID", "1001"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_ACTOR", "carol"),
            ("GITHUB_JOB", "deploy"),
            // The runner run 1001's job "deploy" (with `environment: prod`) runs on, in the fixture.
            ("RUNNER_NAME", "GitHub Actions 1"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_SHA", MAIN_TIP),
            ("GITHUB_WORKSPACE", ws.as_str()),
            ("INPUT_ENVIRONMENT", "prod"),
            ("INPUT_VERSION", "v1.1.0"),
            ("INPUT_GITHUB_TOKEN", FULL),
            (
                "INPUT_IMAGES",
                "image.repository=127.0.0.1:45000/acme/testapp",
            ),
            ("INPUT_VERIFY_IMAGES", "false"),
            // These tests are about GitHub; prod's default digest pinning needs the registry.
            ("INPUT_PIN_DIGESTS", "false"),
            ("INPUT_NAMESPACE", "td-github-no-such-ns"),
            ("INPUT_TIMEOUT", "60s"),
        ] {
            a.vars.insert(k.into(), v.into());
        }
        a.vars.insert(
            "INPUT_CHART".into(),
            common::testapp_chart().to_str().unwrap().into(),
        );
        a
    }

    fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.insert(k.into(), v.into());
        self
    }

    fn event(&mut self, name: &str, payload: Value) {
        let path = self.dir.path().join("event.json");
        std::fs::write(&path, payload.to_string()).unwrap();
        self.vars.insert("GITHUB_EVENT_NAME".into(), name.into());
        self.vars
            .insert("GITHUB_EVENT_PATH".into(), path.to_str().unwrap().into());
    }

    /// Runs the binary (60 s deadline) with only these variables, PATH, and HOME = its temp dir.
    fn run(&self) -> Run {
        let out_path = self.dir.path().join("output");
        let sum_path = self.dir.path().join("summary");
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&sum_path);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
        cmd.env_clear()
            .envs(&self.vars)
            .env("GITHUB_OUTPUT", &out_path)
            .env("GITHUB_STEP_SUMMARY", &sum_path)
            // A HOME of its own: a run without `kubeconfig` must not find the user's cluster.
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path());
        if let Some(v) = std::env::var_os("PATH") {
            cmd.env("PATH", v);
        }
        let out = common::run_with_deadline(&mut cmd, Duration::from_secs(60));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if !stderr.trim().is_empty() {
            eprintln!("--- stderr ---\n{stderr}");
        }
        eprintln!("--- stdout ---\n{stdout}");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr,
            outputs: parse_outputs(&out_path),
            summary: std::fs::read_to_string(&sum_path).unwrap_or_default(),
        }
    }
}

fn parse_outputs(path: &Path) -> BTreeMap<String, String> {
    common::parse_outputs(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The single error annotation of a run.
fn error_annotation(run: &Run) -> String {
    run.stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no ::error annotation in:\n{}", run.stdout))
        .to_string()
}

/// A refused run: exit 1, one "Deployment refused" annotation containing `expect`, no deployment
/// created or touched on GitHub, no cluster group started, the outputs say failed.
async fn assert_refused(repo: &Repo, run: &Run, expect: &str) {
    assert_eq!(run.code, 1, "{}", run.stdout);
    let err = error_annotation(run);
    assert!(
        err.starts_with(
            "::error title=Deployment refused::deployment to protected environment refused: "
        ),
        "{err}"
    );
    assert!(err.contains(expect), "expected {expect:?} in {err}");
    assert!(!err.contains(FULL), "the token leaked: {err}");
    let log = repo.log().await;
    assert!(
        log.iter().all(|e| e["method"] == "GET"),
        "a refused run changed GitHub: {:#?}",
        calls(&log, &repo.full)
    );
    // Nothing after the approval group: no GitHub deployment, no cluster step (a deploy
    // window, when there is one, is checked before the approval).
    let groups: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::group::"))
        .filter(|g| !g.starts_with("Check the deploy window of "))
        .collect();
    assert_eq!(groups.len(), 2, "groups: {groups:?}");
    assert_eq!(groups[0], "Resolve the plan");
    assert!(
        groups[1].starts_with("Check the approval for "),
        "{groups:?}"
    );
    assert_eq!(run.output("status"), "failed");
    assert_eq!(run.output("deployment_id"), "");
    assert!(run.summary.contains("**failed**"), "{}", run.summary);
    // The token shows only in the mask command that hides it.
    assert!(
        run.stdout
            .lines()
            .filter(|l| l.contains(FULL))
            .all(|l| l == format!("::add-mask::{FULL}")),
        "the token leaked"
    );
}

#[tokio::test]
async fn prod_without_reviewers_is_refused_before_any_cluster_change() {
    let repo = add_repo("td-norev", |_| {}).await;
    let cluster = Cluster::new("gh-norev").await;
    // Inputs that deploy for real (see the control below), to an environment without reviewers.
    let run = cluster
        .deploy(Action::new(&repo), "prod-noreviewers", "v1.1.0")
        .var("INPUT_PROTECTED_ENVIRONMENTS", "prod-noreviewers")
        .run();
    assert_refused(
        &repo,
        &run,
        "environment prod-noreviewers has no required reviewers: add a required reviewers rule",
    )
    .await;
    assert_eq!(
        calls(&repo.log().await, &repo.full),
        vec!["GET /environments/prod-noreviewers -> 200"]
    );
    assert_eq!(cluster.helm_releases().await, 0, "helm stored a release");

    // Control: the same inputs to the approved `prod` do change the cluster.
    let run = cluster.deploy(Action::new(&repo), "prod", "v1.1.0").run();
    assert_eq!(run.output("status"), "success", "{}", run.stdout);
    assert_eq!(cluster.helm_releases().await, 1);
    cluster.done().await;
}

#[tokio::test]
async fn an_unknown_environment_is_refused() {
    let repo = add_repo("td-noenv", |_| {}).await;
    let run = Action::new(&repo)
        .var("INPUT_ENVIRONMENT", "prod-eu")
        .var("INPUT_PROTECTED_ENVIRONMENTS", "prod-eu")
        .run();
    assert_refused(
        &repo,
        &run,
        &format!("environment prod-eu does not exist in {}", repo.full),
    )
    .await;
}

#[tokio::test]
async fn a_protected_deploy_without_a_token_is_refused() {
    let repo = add_repo("td-notoken", |_| {}).await;
    // GitHub passes an unset input as "".
    let run = Action::new(&repo).var("INPUT_GITHUB_TOKEN", "").run();
    assert_refused(
        &repo,
        &run,
        "no GitHub token to check the approval of environment prod: pass `github_token`",
    )
    .await;
    assert!(repo.log().await.is_empty());
}

#[tokio::test]
async fn a_run_without_approval_is_refused() {
    let repo = add_repo("td-noappr", |_| {}).await;
    let (hook, received) = webhook_receiver();
    let run = Action::new(&repo)
        .var("GITHUB_RUN_ID", "1002")
        .var("INPUT_NOTIFY_WEBHOOK", &hook)
        .run();
    assert_refused(
        &repo,
        &run,
        "run 1002 has no approval for environment prod: declare `environment: prod`",
    )
    .await;
    // The summary's timeline, as Mermaid reads it: the plan resolved, then the approval refused.
    common::mermaid::assert_timeline(&run.summary, &["resolve", "approve"], &["approve"]);
    // The refusal is an outcome too: one `failed` document.
    let body: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["deployment_id"], Value::Null);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            ":x: *{}*: deploying `v1.1.0` to *prod* failed: deployment to protected environment \
             refused: run 1002 has no approval",
            repo.full
        )),
        "{text}"
    );
    assert_eq!(
        calls(&repo.log().await, &repo.full),
        vec![
            "GET /environments/prod -> 200",
            "GET /actions/runs/1002/approvals -> 200"
        ]
    );

    // Approved for staging only: not an approval for prod.
    let run = Action::new(&repo).var("GITHUB_RUN_ID", "1005").run();
    assert_refused(&repo, &run, "run 1005 has no approval for environment prod").await;

    // Rejected: the refusal names who rejected it and why.
    let run = Action::new(&repo).var("GITHUB_RUN_ID", "1004").run();
    assert_refused(
        &repo,
        &run,
        "run 1004 has no approval for environment prod (rejected by alice (\"Not during market hours\"))",
    )
    .await;
}

/// Issue #17, finding 5a: the run's approval is not enough; this job must be the one GitHub held
/// for the review. Run 1006's approval went to its job "gate" (`environment: prod`, on runner
/// "GitHub Actions 2"); the job "deploy" on "GitHub Actions 1" declares no environment.
#[tokio::test]
async fn an_approval_of_another_job_of_the_run_is_refused() {
    let repo = add_repo("td-gatejob", |_| {}).await;
    let run = Action::new(&repo).var("GITHUB_RUN_ID", "1006").run();
    assert_refused(
        &repo,
        &run,
        "this job has no deployment to prod that GitHub created when it passed the environment's \
         review (job \"deploy\" (id 100602) has no deployment to prod): declare `environment: prod` \
         on the job that runs trader-deploy",
    )
    .await;
    assert_eq!(creates(&repo.log().await), 0);
    // On the gate job's own runner the check passes: that job did wait for the review.
    let gate = add_repo("td-gatejob2", |_| {}).await;
    let run = Action::new(&gate)
        .var("GITHUB_RUN_ID", "1006")
        .var("RUNNER_NAME", "GitHub Actions 2")
        .run();
    assert!(
        run.stdout.contains("GitHub's deployment") && run.stdout.contains("passed prod's review"),
        "{}",
        run.stdout
    );
    // Outside a runner's job (no RUNNER_NAME) the job cannot be told apart: refused.
    let bare = add_repo("td-gatejob3", |_| {}).await;
    let mut a = Action::new(&bare);
    a.vars.remove("RUNNER_NAME");
    assert_refused(&bare, &a.run(), "(RUNNER_NAME is not set,").await;
}

/// GitHub's deployment of the job must still be running: once GitHub has written the job's final
/// status, the job is over and a later use of its approval is refused.
#[tokio::test]
async fn a_job_that_github_ended_is_refused() {
    let repo = add_repo("td-jobended", |_| {}).await;
    repo.control(
        "POST",
        "/_standin/jobs/finish",
        Some(json!({"repository": repo.full, "run_id": 1001, "job": "deploy", "conclusion": "success"})),
    )
    .await;
    let run = Action::new(&repo).run();
    assert_refused(
        &repo,
        &run,
        "(no running job of this attempt is on runner \"GitHub Actions 1\")",
    )
    .await;
    assert_eq!(
        calls(&repo.log().await, &repo.full),
        vec![
            "GET /environments/prod -> 200",
            "GET /actions/runs/1001/approvals -> 200",
            "GET /actions/runs/1001/attempts/1/jobs?per_page=100 -> 200"
        ]
    );
}

#[tokio::test]
async fn self_approval_is_refused_when_configured() {
    let repo = add_repo("td-self", |_| {}).await;
    let run = Action::new(&repo)
        .var("GITHUB_RUN_ID", "1003")
        .var("GITHUB_ACTOR", "bob")
        .var("INPUT_REQUIRE_DISTINCT_APPROVER", "true")
        .run();
    assert_refused(
        &repo,
        &run,
        "run 1003 was approved for environment prod only by bob, who started or re-ran it, and \
         `require_distinct_approver` is on",
    )
    .await;

    // Off (the default): bob's approval of his own run passes the check.
    let run = Action::new(&repo)
        .var("GITHUB_RUN_ID", "1003")
        .var("GITHUB_ACTOR", "bob")
        .run();
    assert!(
        run.stdout
            .contains("run 1003 approved by bob (\"Approving my own run\")"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("passed prod's review"),
        "{}",
        run.stdout
    );
    assert_eq!(creates(&repo.log().await), 0);
}

#[tokio::test]
async fn self_approval_by_whoever_reran_the_run_is_refused_too() {
    // carol started run 1010; alice re-ran it and approved her own re-run.
    let repo = add_repo("td-rerun-self", |fx| {
        fx["runs"].as_array_mut().unwrap().push(json!({
            "id": 1010, "actor": "carol", "triggering_actor": "alice", "run_attempt": 2,
            "head_branch": "main", "head_sha": MAIN_TIP,
            "approvals": [{"environments": ["prod"], "state": "approved", "user": "alice", "comment": "rerun"}]
        }));
    })
    .await;
    let run = Action::new(&repo)
        .var("GITHUB_RUN_ID", "1010")
        .var("GITHUB_RUN_ATTEMPT", "2")
        .var("GITHUB_ACTOR", "carol")
        .var("INPUT_REQUIRE_DISTINCT_APPROVER", "true")
        .run();
    assert_refused(
        &repo,
        &run,
        "run 1010 was approved for environment prod only by alice, who started or re-ran it",
    )
    .await;
    assert_eq!(
        calls(&repo.log().await, &repo.full),
        vec![
            "GET /environments/prod -> 200",
            "GET /actions/runs/1010/approvals -> 200",
            "GET /actions/runs/1010 -> 200",
        ]
    );
}

#[tokio::test]
async fn prevent_self_review_on_the_environment_is_enforced_too() {
    let repo = add_repo("td-psr", |fx| {
        for e in fx["environments"].as_array_mut().unwrap() {
            if e["name"] == "prod" {
                e["prevent_self_review"] = json!(true);
            }
        }
    })
    .await;
    let run = Action::new(&repo)
        .var("GITHUB_RUN_ID", "1003")
        .var("GITHUB_ACTOR", "bob")
        .run();
    assert_refused(&repo, &run, "only by bob, who started or re-ran it").await;
}

/// A tag push payload from the examples, pointed at this fixture's tag and default branch.
fn tag_push(tag: &str, sha: &str) -> Value {
    let mut p = example_payload("push", |x| {
        x["ref"]
            .as_str()
            .is_some_and(|r| r.starts_with("refs/tags/"))
            && x["after"].as_str().is_some_and(|a| !a.starts_with("0000"))
    });
    p["ref"] = json!(format!("refs/tags/{tag}"));
    p["after"] = json!(sha);
    p["repository"]["default_branch"] = json!("main");
    p["repository"]["master_branch"] = json!("main");
    p
}

/// Whatever event started the run, a protected deploy's version must be a tag on main: a
/// dispatch from a branch cannot release a tag that is not there, nor one that does not exist.
#[tokio::test]
async fn a_dispatch_from_a_branch_is_held_to_the_tag_rule_too() {
    let repo = add_repo("td-dispatch", |_| {}).await;
    let branch = |a: Action| {
        a.var("GITHUB_REF", "refs/heads/feature/risk-limits")
            .var("GITHUB_REF_NAME", "feature/risk-limits")
            .var("GITHUB_SHA", RC_SHA)
    };
    let run = branch(Action::new(&repo))
        .var("INPUT_VERSION", "v1.2.0-rc.1")
        .run();
    assert_refused(
        &repo,
        &run,
        "tag v1.2.0-rc.1 is not on the default branch main (compare: diverged, 1 commit(s) not on \
         main)",
    )
    .await;
    let run = branch(Action::new(&repo))
        .var("INPUT_VERSION", "v9.9.9")
        .run();
    assert_refused(
        &repo,
        &run,
        &format!(
            "version v9.9.9 is not a tag of {}: prod takes only a version that names a git tag \
             whose commit is on the default branch",
            repo.full
        ),
    )
    .await;
    let seq = calls(&repo.log().await, &repo.full);
    assert_eq!(
        seq.iter()
            .filter(|c| c.starts_with("GET /compare/"))
            .collect::<Vec<_>>(),
        [
            "GET /compare/main...v1.2.0-rc.1?per_page=1 -> 200",
            "GET /compare/main...v9.9.9?per_page=1 -> 404"
        ]
    );
}

/// mode rollback on a protected environment needs the same approval as a deploy.
#[tokio::test]
async fn a_rollback_or_uninstall_of_prod_without_approval_is_refused() {
    // mode uninstall needs the same approval as a rollback (issue #16).
    for mode in ["rollback", "uninstall"] {
        let repo = add_repo(&format!("td-{mode}-noappr"), |_| {}).await;
        let run = Action::new(&repo)
            .var("GITHUB_RUN_ID", "1002")
            .var("INPUT_MODE", mode)
            .var("INPUT_VERSION", "")
            .run();
        assert_eq!(run.code, 1, "{}", run.stdout);
        let err = error_annotation(&run);
        assert!(
            err.starts_with(
                "::error title=Deployment refused::deployment to protected environment refused: \
                 run 1002 has no approval for environment prod"
            ),
            "{mode}: {err}"
        );
        // Nothing after the approval: no GitHub deployment, no cluster step.
        let groups: Vec<&str> = run
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("::group::"))
            .collect();
        assert_eq!(groups, ["Check the approval for prod"], "{mode}");
        assert!(repo.log().await.iter().all(|e| e["method"] == "GET"));
    }
}

#[tokio::test]
async fn a_tag_not_on_the_default_branch_is_refused() {
    let repo = add_repo("td-tag", |_| {}).await;
    let mut action = Action::new(&repo)
        .var("GITHUB_REF", "refs/tags/v1.2.0-rc.1")
        .var("GITHUB_REF_NAME", "v1.2.0-rc.1")
        .var("GITHUB_SHA", RC_SHA)
        .var("INPUT_VERSION", "")
        .var("INPUT_ENVIRONMENT", "prod");
    action.event("push", tag_push("v1.2.0-rc.1", RC_SHA));
    let run = action.run();
    assert_refused(
        &repo,
        &run,
        "tag v1.2.0-rc.1 (062c90ff) is not on the default branch main (compare: diverged, 1 \
         commit(s) not on main)",
    )
    .await;
    assert_eq!(
        job_check(calls(&repo.log().await, &repo.full)),
        vec![
            "GET /environments/prod -> 200",
            "GET /actions/runs/1001/approvals -> 200",
            "(job check)",
            format!("GET /compare/main...{RC_SHA}?per_page=1 -> 200").as_str(),
        ]
    );

    // v1.1.0 is main's tip: the check passes and the deployment is recorded.
    let repo = add_repo("td-tagok", |_| {}).await;
    let mut action = Action::new(&repo)
        .var("GITHUB_REF", "refs/tags/v1.1.0")
        .var("GITHUB_REF_NAME", "v1.1.0")
        .var("INPUT_VERSION", "")
        .var("INPUT_ENVIRONMENT", "");
    action.event("push", tag_push("v1.1.0", MAIN_TIP));
    let run = action.run();
    assert!(
        run.stdout
            .contains(&format!("tag v1.1.0 ({}) is on main", &MAIN_TIP[..8])),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("environment"), "prod");
    // Recorded on GitHub's own deployment of the job, which the job check found.
    let id = github_s_job_deployment(&repo, 1001).await;
    assert_eq!(run.output("deployment_id"), id.to_string());
    assert_eq!(creates(&repo.log().await), 0);
}

#[tokio::test]
async fn a_ref_input_naming_another_tag_is_checked_by_that_tag() {
    // A dispatch on main (GITHUB_SHA = main's tip) asked to release the rc tag, which is not on
    // main: the run's own commit must not stand in for the tag's.
    let repo = add_repo("td-refin", |_| {}).await;
    let run = Action::new(&repo)
        .var("INPUT_REF", "refs/tags/v1.2.0-rc.1")
        .var("INPUT_VERSION", "v1.2.0-rc.1")
        .run();
    assert_refused(
        &repo,
        &run,
        "tag v1.2.0-rc.1 is not on the default branch main (compare: diverged",
    )
    .await;
    let seq = calls(&repo.log().await, &repo.full);
    assert_eq!(
        seq.last().unwrap(),
        "GET /compare/main...v1.2.0-rc.1?per_page=1 -> 200"
    );
}

/// Approved, but the run has no cluster (no kubeconfig): the deployment is recorded, then ends
/// in `error`, with the approval and the links in place.
#[tokio::test]
async fn an_approved_prod_deploy_that_cannot_reach_a_cluster_ends_in_error() {
    let repo = add_repo("td-ok", |_| {}).await;
    let run = Action::new(&repo)
        .var("INPUT_ENVIRONMENT_URL", "https://trader.example/prod")
        .run();
    let log = repo.log().await;
    let seq = calls(&log, &repo.full);
    eprintln!("GitHub API calls of this deploy ({}):", seq.len());
    for c in &seq {
        eprintln!("  {c}");
    }
    assert!(
        run.stdout
            .contains("run 1001 approved by alice (\"Ship it\")"),
        "{}",
        run.stdout
    );
    let id = run.output("deployment_id").to_string();
    assert!(!id.is_empty(), "no deployment_id output");
    // The job's own deployment, which the job check found, is the one reported to: no new one.
    let github_s = github_s_job_deployment(&repo, 1001).await;
    assert_eq!(id, github_s.to_string());
    assert_eq!(
        &job_check(seq.clone())[..5],
        &[
            "GET /environments/prod -> 200".to_string(),
            "GET /actions/runs/1001/approvals -> 200".to_string(),
            "(job check)".to_string(),
            // A dispatch, not a tag push: the version's tag is checked on main all the same.
            "GET /compare/main...v1.1.0?per_page=1 -> 200".to_string(),
            format!("POST /deployments/{id}/statuses -> 201"),
        ]
    );
    assert_eq!(creates(&log), 0);
    // Every status links the run's log and the environment.
    let statuses: Vec<&Value> = log
        .iter()
        .filter(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/statuses"))
        .collect();
    assert!(statuses.len() >= 2);
    for s in &statuses {
        assert_eq!(
            s["body"]["log_url"],
            "https://github.com/".to_string() + &repo.full + "/actions/runs/1001/attempts/1"
        );
        assert_eq!(s["body"]["environment_url"], "https://trader.example/prod");
        assert!(
            s["body"]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert!(
            s["path"]
                .as_str()
                .unwrap()
                .contains(&format!("/deployments/{id}/")),
            "status on another deployment: {}",
            s["path"]
        );
    }
    assert_eq!(run.output("environment_url"), "https://trader.example/prod");
    // The sequence for the run's outcome.
    assert_eq!(run.output("status"), "failed");
    assert!(
        error_annotation(&run).starts_with("::error title=Cluster connection failed::"),
        "{}",
        run.stdout
    );
    assert_eq!(posted_states(&log), ["in_progress", "error"]);
    // The count the action reports is the count the stand-in served.
    assert!(
        run.stdout
            .contains(&format!("GitHub API calls: {} (0 retries)", log.len())),
        "{}",
        run.stdout
    );
    println!("GitHub API calls per deploy: {}", log.len());
    assert!(
        run.summary.contains("| Approvals | alice (\"Ship it\") |"),
        "{}",
        run.summary
    );
    assert!(
        run.summary.contains(&format!(
            "| GitHub deployment | [{id}](https://github.com/{}/deployments/prod) (GitHub's deployment for this job) |",
            repo.full
        )),
        "{}",
        run.summary
    );
}

#[tokio::test]
async fn a_rerun_makes_no_duplicate_deployment() {
    // dev: a protected environment reports to GitHub's own deployment of the job instead.
    let repo = add_repo("td-rerun", |_| {}).await;
    let first = Action::new(&repo).var("INPUT_ENVIRONMENT", "dev").run();
    let id = first.output("deployment_id").to_string();
    assert!(!id.is_empty(), "{}", first.stdout);
    let second = Action::new(&repo)
        .var("INPUT_ENVIRONMENT", "dev")
        .var("GITHUB_RUN_ATTEMPT", "2")
        .run();
    assert_eq!(second.output("deployment_id"), id);
    assert!(
        second
            .stdout
            .contains("from an earlier attempt of this run")
    );
    let log = repo.log().await;
    assert_eq!(creates(&log), 1, "{:#?}", calls(&log, &repo.full));
    let dev = repo.deployments().await;
    assert_eq!(dev.iter().filter(|d| d["environment"] == "dev").count(), 1);
    // The second attempt's statuses point at its own log.
    let last = log
        .iter()
        .rev()
        .find(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/statuses"))
        .unwrap();
    assert!(
        last["body"]["log_url"]
            .as_str()
            .unwrap()
            .ends_with("/actions/runs/1001/attempts/2")
    );
}

#[tokio::test]
async fn githubs_own_deployment_for_the_job_is_reused() {
    let repo = add_repo("td-reuse", |fx| {
        let name = fx["repository"]["name"].as_str().unwrap().to_string();
        // dev, unprotected: found by looking (a protected environment's comes from the job check).
        fx["deployments"] = json!([
            // An older deployment of another run: not reused.
            {"ref": "main", "sha": MAIN_TIP, "environment": "dev", "creator": "github-actions[bot]",
             "statuses": [{"state": "success", "log_url": format!("https://github.com/acme/{name}/actions/runs/990/job/1")}]},
            // What GitHub creates for a job with `environment: dev` in run 1001.
            {"ref": "main", "sha": MAIN_TIP, "environment": "dev", "creator": "github-actions[bot]",
             "statuses": [{"state": "queued", "log_url": format!("https://github.com/acme/{name}/actions/runs/1001/job/7")}]}
        ]);
    })
    .await;
    let seeded: Vec<u64> = repo
        .deployments()
        .await
        .iter()
        .filter(|d| d["environment"] == "dev")
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(seeded.len(), 2);
    let run = Action::new(&repo).var("INPUT_ENVIRONMENT", "dev").run();
    assert_eq!(run.output("deployment_id"), seeded[1].to_string());
    assert!(run.stdout.contains("GitHub's deployment for this job"));
    let log = repo.log().await;
    assert_eq!(creates(&log), 0, "{:#?}", calls(&log, &repo.full));
}

#[tokio::test]
async fn a_502_then_success_is_retried() {
    let repo = add_repo("td-502", |_| {}).await;
    repo.fault(
        json!({"kind": "bad_gateway", "count": 1}),
        "/actions/runs/1001/approvals",
    )
    .await;
    // Prod reports to GitHub's deployment of the job: its first status meets the limit.
    repo.fault(
        json!({"kind": "secondary_rate_limit", "count": 1, "retry_after": 1, "method": "POST"}),
        "/deployments/",
    )
    .await;
    let run = Action::new(&repo).run();
    let log = repo.log().await;
    let seq = calls(&log, &repo.full);
    assert_eq!(
        &seq[..3],
        &[
            "GET /environments/prod -> 200",
            "GET /actions/runs/1001/approvals -> 502",
            "GET /actions/runs/1001/approvals -> 200",
        ],
        "{seq:#?}"
    );
    let id = github_s_job_deployment(&repo, 1001).await;
    let posts: Vec<&String> = seq
        .iter()
        .filter(|c| c.starts_with("POST /deployments/"))
        .take(2)
        .collect();
    assert_eq!(
        posts,
        [
            &format!("POST /deployments/{id}/statuses -> 403"),
            &format!("POST /deployments/{id}/statuses -> 201")
        ]
    );
    assert_eq!(creates(&log), 0);
    assert!(
        run.stdout
            .contains(&format!("GitHub API calls: {} (2 retries)", log.len())),
        "{}",
        run.stdout
    );
    assert!(!run.output("deployment_id").is_empty());
}

#[tokio::test]
async fn a_502_on_create_looks_for_the_deployment_before_creating_again() {
    // dev: the action creates its deployment there (prod reports to GitHub's own).
    let repo = add_repo("td-502c", |_| {}).await;
    repo.fault(
        json!({"kind": "bad_gateway", "count": 1, "method": "POST"}),
        "/deployments",
    )
    .await;
    let run = Action::new(&repo).var("INPUT_ENVIRONMENT", "dev").run();
    let log = repo.log().await;
    let seq = calls(&log, &repo.full);
    assert_eq!(
        &seq[..4],
        &[
            format!("GET /deployments?sha={MAIN_TIP}&environment=dev&per_page=20 -> 200"),
            "POST /deployments -> 502".to_string(),
            format!("GET /deployments?environment=dev&per_page=20&sha={MAIN_TIP} -> 200"),
            "POST /deployments -> 201".to_string(),
        ],
        "{seq:#?}"
    );
    let dev = repo.deployments().await;
    assert_eq!(dev.iter().filter(|d| d["environment"] == "dev").count(), 1);
    assert!(!run.output("deployment_id").is_empty());
}

#[tokio::test]
async fn a_primary_rate_limit_waits_for_its_reset() {
    let repo = add_repo("td-rl", |_| {}).await;
    repo.fault(
        json!({"kind": "rate_limit", "count": 1, "retry_after": 1}),
        "/environments/prod",
    )
    .await;
    let started = std::time::Instant::now();
    let run = Action::new(&repo).run();
    let seq = calls(&repo.log().await, &repo.full);
    assert_eq!(
        &seq[..2],
        &[
            "GET /environments/prod -> 403",
            "GET /environments/prod -> 200"
        ],
        "{seq:#?}"
    );
    assert!(
        run.stdout.contains("run 1001 approved by alice"),
        "{}",
        run.stdout
    );
    // Not a timing assertion on the action: only that it did wait for x-ratelimit-reset.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_wait_beyond_the_retry_budget_fails_at_once_and_says_so() {
    let repo = add_repo("td-rl-long", |_| {}).await;
    repo.fault(
        json!({"kind": "secondary_rate_limit", "count": 1, "retry_after": 3600}),
        "/environments/prod",
    )
    .await;
    let run = Action::new(&repo).run();
    assert_eq!(run.code, 1);
    let err = error_annotation(&run);
    assert!(
        err.contains("gave up after 1 attempt(s)")
            && err.contains("asked to wait 3600s, beyond the retry budget"),
        "{err}"
    );
    assert_eq!(repo.log().await.len(), 1);
}

#[tokio::test]
async fn retries_are_bounded() {
    let repo = add_repo("td-5xx", |_| {}).await;
    repo.fault(
        json!({"kind": "bad_gateway", "count": 20}),
        "/environments/prod",
    )
    .await;
    let run = Action::new(&repo).run();
    assert_eq!(run.code, 1);
    let err = error_annotation(&run);
    assert!(
        err.starts_with("::error title=Approval check failed::"),
        "{err}"
    );
    assert!(err.contains("gave up after 5 attempt(s)"), "{err}");
    assert_eq!(repo.log().await.len(), 5);
    // Clear what is left of the fault.
    repo.control("DELETE", "/_standin/faults", None).await;
}

#[tokio::test]
async fn a_token_without_a_permission_gets_an_error_naming_it() {
    let repo = add_repo("td-perm", |_| {}).await;
    let run = Action::new(&repo)
        .var("INPUT_GITHUB_TOKEN", "ghs_bed_noactions")
        .run();
    assert_eq!(run.code, 1);
    let err = error_annotation(&run);
    assert!(
        err.contains("the token lacks the `actions: read` permission"),
        "{err}"
    );
    assert!(!err.contains("ghs_bed_noactions"));

    let run = Action::new(&repo)
        .var("INPUT_GITHUB_TOKEN", "ghs_bed_readonly")
        .run();
    assert_eq!(run.code, 1);
    let err = error_annotation(&run);
    assert!(
        err.starts_with("::error title=GitHub deployment failed::"),
        "{err}"
    );
    assert!(
        err.contains("the token lacks the `deployments: write` permission"),
        "{err}"
    );
}

#[tokio::test]
async fn dev_needs_no_approval_but_gets_a_deployment() {
    let repo = add_repo("td-dev", |_| {}).await;
    let run = Action::new(&repo)
        .var("INPUT_ENVIRONMENT", "pr-42")
        .var("INPUT_VERSION", "sha-ee3b2f79")
        .var("GITHUB_RUN_ID", "1002")
        .run();
    let log = repo.log().await;
    let seq = calls(&log, &repo.full);
    assert!(
        !seq.iter()
            .any(|c| c.contains("/approvals") || c.contains("/environments/")),
        "{seq:#?}"
    );
    let create = log
        .iter()
        .find(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/deployments"))
        .unwrap_or_else(|| panic!("no deployment created: {seq:#?}\n{}", run.stdout));
    assert_eq!(create["body"]["transient_environment"], true);
    assert_eq!(create["body"]["production_environment"], false);
}

// ---------------------------------------------------------------------------------------------
// Real deploys on the bed's cluster: the status sequence of each outcome.

/// A release of our own on the bed's cluster.
struct Cluster {
    bed: common::Bed,
    client: kube::Client,
    ns: String,
}

impl Cluster {
    async fn new(prefix: &str) -> Cluster {
        let bed = common::Bed::load();
        let client = bed.client().await;
        let ns = common::create_namespace(&client, prefix).await;
        Cluster { bed, client, ns }
    }

    /// `action` set up to deploy the test chart with both images at `tag` (helm 3).
    fn deploy(&self, action: Action, environment: &str, tag: &str) -> Action {
        let home = action.dir.path().join("helm");
        let kubeconfig = std::fs::read_to_string(&self.bed.kubeconfig).unwrap();
        action
            .var("INPUT_ENVIRONMENT", environment)
            .var("INPUT_VERSION", tag)
            .var("INPUT_IMAGES", "")
            .var(
                "INPUT_SET",
                &format!("image.tag={tag}\nscanner.image.tag={tag}"),
            )
            .var("INPUT_NAMESPACE", &self.ns)
            .var("INPUT_RELEASE", "app")
            .var("INPUT_KUBECONFIG", &kubeconfig)
            .var("INPUT_HELM", self.bed.helm3.to_str().unwrap())
            .var("INPUT_TIMEOUT", "120s")
            .var("HELM_CONFIG_HOME", home.join("config").to_str().unwrap())
            .var("HELM_CACHE_HOME", home.join("cache").to_str().unwrap())
            .var("HELM_DATA_HOME", home.join("data").to_str().unwrap())
    }

    /// Helm release revisions stored in the namespace (helm's `owner=helm` secrets).
    async fn helm_releases(&self) -> usize {
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(self.client.clone(), &self.ns);
        secrets
            .list(&kube::api::ListParams::default().labels("owner=helm"))
            .await
            .unwrap_or_else(|e| panic!("list secrets in {}: {e}", self.ns))
            .items
            .len()
    }

    async fn done(self) {
        common::delete_namespace(&self.client, &self.ns).await;
    }
}

/// The statuses a run posted (from `since` on), as (deployment id, state, description).
fn statuses_since(log: &[Value], since: u64) -> Vec<(u64, String, String)> {
    log.iter()
        .filter(|e| e["seq"].as_u64().unwrap() > since)
        .filter(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/statuses"))
        .map(|e| {
            let path = e["path"].as_str().unwrap();
            let id = path.rsplit('/').nth(1).unwrap().parse().unwrap();
            (
                id,
                e["body"]["state"].as_str().unwrap().to_string(),
                e["body"]["description"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn last_seq(log: &[Value]) -> u64 {
    log.iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn status_sequences_for_success_and_rolled_back() {
    let repo = add_repo("td-seq", |_| {}).await;
    let cluster = Cluster::new("gh-seq").await;

    let good = cluster
        .deploy(Action::new(&repo), "staging", "v1.0.0")
        .run();
    assert_eq!(good.output("status"), "success", "{}", good.stdout);
    let id = good.output("deployment_id").to_string();
    let log = repo.log().await;
    let states = statuses_since(&log, 0);
    assert_eq!(
        states
            .iter()
            .map(|(d, s, _)| (d.to_string(), s.as_str()))
            .collect::<Vec<_>>(),
        [(id.clone(), "in_progress"), (id.clone(), "success")]
    );
    assert_eq!(states[1].2, "Deployed v1.0.0 (revision 1)");
    println!(
        "GitHub API calls per deploy (staging, success): {}",
        log.len()
    );

    // Another run deploys a crash-looping tag: rolled back, a `failure` status.
    let since = last_seq(&log);
    let bad = cluster
        .deploy(Action::new(&repo), "staging", "crashloop")
        .var("GITHUB_RUN_ID", "1002")
        .run();
    assert_eq!(bad.output("status"), "rolled_back", "{}", bad.stdout);
    let bad_id = bad.output("deployment_id").to_string();
    assert_ne!(bad_id, id, "another run gets its own deployment");
    let log = repo.log().await;
    let states = statuses_since(&log, since);
    assert_eq!(
        states
            .iter()
            .map(|(d, s, _)| (d.to_string(), s.as_str()))
            .collect::<Vec<_>>(),
        [(bad_id.clone(), "in_progress"), (bad_id, "failure")]
    );
    assert!(
        states[1]
            .2
            .starts_with("crashloop failed; rolled back to revision"),
        "{}",
        states[1].2
    );
    assert!(bad.summary.contains("**rolled_back**"), "{}", bad.summary);
    cluster.done().await;
}

#[tokio::test]
async fn status_sequence_for_failed() {
    let repo = add_repo("td-fail", |_| {}).await;
    let cluster = Cluster::new("gh-fail").await;
    let run = cluster
        .deploy(Action::new(&repo), "staging", "crashloop")
        .var("INPUT_ROLLBACK_ON_FAILURE", "false")
        .run();
    assert_eq!(run.output("status"), "failed", "{}", run.stdout);
    let id = run.output("deployment_id").to_string();
    let states = statuses_since(&repo.log().await, 0);
    assert_eq!(
        states
            .iter()
            .map(|(d, s, _)| (d.to_string(), s.as_str()))
            .collect::<Vec<_>>(),
        [(id.clone(), "in_progress"), (id, "error")]
    );
    assert!(
        states[1].2.starts_with("Deploying crashloop failed: "),
        "{}",
        states[1].2
    );
    assert!(states[1].2.chars().count() <= 140);
    cluster.done().await;
}

/// mode rollback ends in the same report step as a deploy: a GitHub deployment with its
/// in_progress and success statuses, and the notification.
#[tokio::test]
async fn a_rollback_run_records_a_deployment_and_notifies() {
    let repo = add_repo("td-rb", |_| {}).await;
    let cluster = Cluster::new("gh-rb").await;
    for (tag, run_id) in [("v1.0.0", "2001"), ("v1.1.0", "2002")] {
        let r = cluster
            .deploy(Action::new(&repo), "staging", tag)
            .var("GITHUB_RUN_ID", run_id)
            .run();
        assert_eq!(r.output("status"), "success", "{}", r.stdout);
    }
    let since = last_seq(&repo.log().await);
    let (hook, received) = webhook_receiver();
    let run = cluster
        .deploy(Action::new(&repo), "staging", "v1.1.0")
        .var("INPUT_MODE", "rollback")
        .var("INPUT_VERSION", "")
        .var("INPUT_NOTIFY_WEBHOOK", &hook)
        .var("GITHUB_RUN_ID", "2003")
        .run();
    assert_eq!(run.output("status"), "success", "{}", run.stdout);
    assert_eq!(run.output("rolled_back"), "true");
    assert_eq!(run.output("revision"), "3");
    let id = run.output("deployment_id").to_string();
    assert!(
        !id.is_empty(),
        "a GitHub deployment is recorded: {}",
        run.stdout
    );
    let log = repo.log().await;
    let create = log
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > since)
        .find(|e| e["method"] == "POST" && e["path"].as_str().unwrap().ends_with("/deployments"))
        .expect("a deployment created by the rollback run");
    assert_eq!(create["body"]["description"], "Roll back app in staging");
    let states = statuses_since(&log, since);
    assert_eq!(
        states
            .iter()
            .map(|(d, s, _)| (d.to_string(), s.as_str()))
            .collect::<Vec<_>>(),
        [(id.clone(), "in_progress"), (id, "success")]
    );
    assert_eq!(states[1].2, "Rolled back to revision 3");
    let body: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["rolled_back"], true, "{body}");
    assert_eq!(body["revision"], 3, "{body}");
    assert!(
        run.summary.contains("Rolled back to revision 1"),
        "{}",
        run.summary
    );
    cluster.done().await;
}

/// A one-shot webhook receiver on 127.0.0.1 (a thread): the URL, and the body it got.
fn webhook_receiver() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/T0/B0/secret", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = s.read(&mut chunk).unwrap_or(0);
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                    return body.to_string();
                }
            }
            if n == 0 {
                return text;
            }
        }
    });
    (url, h)
}

#[tokio::test]
async fn an_approved_prod_deploy_succeeds_marks_the_older_one_inactive_and_notifies() {
    let repo = add_repo("td-prod", |fx| {
        let name = fx["repository"]["name"].as_str().unwrap().to_string();
        fx["deployments"] = json!([
            {"ref": "v1.0.0", "environment": "prod", "production_environment": true,
             "payload": {"trader_deploy": {"version": "v1.0.0", "run_id": 900}},
             "statuses": [{"state": "success", "log_url": format!("https://github.com/acme/{name}/actions/runs/900/attempts/1")}]}
        ]);
    })
    .await;
    let old_id = repo.deployments().await[0]["id"].as_u64().unwrap();
    let cluster = Cluster::new("gh-prod").await;
    let (hook, received) = webhook_receiver();
    let run = cluster
        .deploy(Action::new(&repo), "prod", "v1.1.0")
        .var("INPUT_ENVIRONMENT_URL", "https://trader.example/prod")
        .var("INPUT_NOTIFY_WEBHOOK", &hook)
        .run();
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.output("status"), "success");
    let id: u64 = run.output("deployment_id").parse().unwrap();
    assert_eq!(run.output("environment_url"), "https://trader.example/prod");

    let log = repo.log().await;
    let seq = calls(&log, &repo.full);
    println!(
        "GitHub API calls per deploy (prod, approved, success): {}",
        log.len()
    );
    for c in &seq {
        println!("  {c}");
    }
    let states: Vec<(u64, String)> = statuses_since(&log, 0)
        .into_iter()
        .map(|(d, s, _)| (d, s))
        .collect();
    assert_eq!(
        states,
        [
            (id, "in_progress".to_string()),
            (id, "success".to_string()),
            (old_id, "inactive".to_string())
        ]
    );
    assert!(
        run.stdout
            .contains(&format!("GitHub API calls: {} (0 retries)", log.len())),
        "{}",
        run.stdout
    );
    // The summary: one table with what happened.
    for row in [
        "| Environment | [prod](https://trader.example/prod) (protected) |",
        "| Version | `v1.1.0` |",
        "| Revision | 1 |",
        "| Approvals | alice (\"Ship it\") |",
        "| Outcome | **success** |",
    ] {
        assert!(
            run.summary.contains(row),
            "{row} missing in:\n{}",
            run.summary
        );
    }
    // The notification: one JSON document with a Slack-compatible text.
    let body: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["deployment_id"], id);
    assert!(
        body["text"].as_str().unwrap().starts_with(&format!(
            ":white_check_mark: *{}*: deployed `v1.1.0` to *prod* (revision 1, the first) in ",
            repo.full
        )),
        "{}",
        body["text"]
    );
    // The webhook URL (a secret) shows only in the mask command that hides it.
    assert!(
        run.stdout
            .lines()
            .filter(|l| l.contains("/hooks/T0/B0/secret"))
            .all(|l| l.starts_with("::add-mask::")),
        "the webhook URL leaked"
    );
    cluster.done().await;
}

/// Issue #17, finding 2: an approver's comment forging workflow commands is shown, but on the
/// raw stdout the runner (tests/common/commands.rs) reads no command but the action's own.
#[tokio::test]
async fn an_approval_comment_forging_commands_stays_text() {
    let repo = add_repo("td-forge", |fx| {
        let run = fx["runs"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["id"] == 1001)
            .expect("the fixture's run 1001");
        run["approvals"][0]["comment"] = json!(
            "Ship it\n::error::forged-by-approver\n##[set-output name=x;]forged-by-approver\n\
             ::stop-commands::forged-by-approver"
        );
    })
    .await;
    let run = Action::new(&repo).run();
    assert!(
        run.stdout.contains("approved by alice") && run.stdout.contains("forged-by-approver"),
        "{}",
        run.stdout
    );
    common::commands::assert_only_own_commands(&run.stdout, "forged");
    common::commands::assert_only_own_commands(&run.stderr, "forged");
}

/// Issue #17, finding 3: a secret (here the registry password, also given to the chart and
/// echoed by the app's status page) ends up in the run's error. It leaves in no outbound
/// channel: not the webhook body, no request body the GitHub stand-in received (deployment
/// payload, every status), not stdout (but for the mask command), stderr, outputs or summary.
#[tokio::test]
async fn a_secret_in_the_error_leaves_in_no_outbound_channel() {
    const CANARY: &str = "canary-Zq81-5ecret";
    let repo = add_repo("td-canary", |_| {}).await;
    let cluster = Cluster::new("gh-canary").await;
    // The "app" status page the smoke test reads: it leaks its configured password.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let status_url = format!("http://{}/status", l.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = format!("degraded; db password={CANARY}");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let (hook, received) = webhook_receiver();
    let action = cluster.deploy(Action::new(&repo), "staging", "v1.0.0");
    std::fs::write(
        action.dir.path().join("smoke.yaml"),
        format!(
            "defaults: {{timeout: 2s, interval: 500ms, request_timeout: 2s}}\n\
             checks:\n  - name: status\n    url: {status_url}\n    \
             expect: {{body_contains: [healthy]}}\n"
        ),
    )
    .unwrap();
    let run = action
        .var("INPUT_SMOKE_TESTS", "smoke.yaml")
        .var("INPUT_REGISTRY_USERNAME", "bot")
        .var("INPUT_REGISTRY_PASSWORD", CANARY)
        .var("INPUT_REGISTRY_HOST", "registry.example")
        .var(
            "INPUT_SET",
            &format!("image.tag=v1.0.0\nscanner.image.tag=v1.0.0\ndbPassword={CANARY}"),
        )
        .var("INPUT_NOTIFY_WEBHOOK", &hook)
        .run();
    assert_eq!(run.output("status"), "failed", "{}", run.stdout);
    // The error did carry the secret: the action redacted it.
    assert!(
        run.stdout.contains("db password=***"),
        "the smoke failure quotes the body: {}",
        run.stdout
    );
    let body = received.join().unwrap();
    assert!(!body.contains(CANARY), "the webhook body leaked it: {body}");
    let webhook: Value = serde_json::from_str(&body).unwrap();
    assert!(
        webhook["error"]
            .as_str()
            .unwrap()
            .contains("db password=***"),
        "{webhook}"
    );
    let log = repo.log().await;
    let statuses = log
        .iter()
        .filter(|e| e["path"].as_str().unwrap().ends_with("/statuses"))
        .count();
    assert!(statuses >= 2, "{:#?}", calls(&log, &repo.full));
    for e in &log {
        assert!(
            !e.to_string().contains(CANARY),
            "GitHub got it: {} {}: {}",
            e["method"],
            e["path"],
            e["body"]
        );
    }
    assert!(
        log.iter()
            .filter(|e| e["path"].as_str().unwrap().ends_with("/statuses"))
            .any(|e| e["body"]["state"] == "error"),
        "an error status"
    );
    assert!(
        run.stdout
            .lines()
            .filter(|l| l.contains(CANARY))
            .all(|l| l == format!("::add-mask::{CANARY}")),
        "stdout leaked it: {}",
        run.stdout
    );
    assert!(!run.stderr.contains(CANARY), "{}", run.stderr);
    assert!(!run.summary.contains(CANARY), "{}", run.summary);
    assert!(
        run.outputs.values().all(|v| !v.contains(CANARY)),
        "{:?}",
        run.outputs
    );
    cluster.done().await;
}

// ---------------------------------------------------------------------------------------------
// Deploy windows (issue #18): decided before GitHub or the cluster, at a pinned instant.

/// 10:00 New York on Monday 2026-11-30: XNYS is open.
const MARKET_OPEN: &str = "2026-11-30T15:00:00Z";

fn in_market_hours(repo: &Repo) -> Action {
    Action::new(repo)
        .var("INPUT_DEPLOY_WINDOW", "{calendar: XNYS, margin: 30m}")
        .var("TRADER_DEPLOY_NOW", MARKET_OPEN)
}

#[tokio::test]
async fn a_deploy_in_market_hours_is_refused_before_anything() {
    let repo = add_repo("td-window", |_| {}).await;
    let run = in_market_hours(&repo).run();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        error_annotation(&run),
        "::error title=Outside the deploy window::prod is deployed only while XNYS is closed, 30m \
         from any open or close, and at 2026-11-30T15:00:00Z XNYS is open (session of 2026-11-30, \
         09:30-16:00 America/New_York); next allowed: 2026-11-30T21:30:00Z (2026-11-30 16:30 \
         America/New_York) (for an emergency, window_override: true)"
    );
    assert_eq!(run.output("status"), "failed");
    assert!(repo.log().await.is_empty(), "GitHub was asked");
    // The summary's timeline, as Mermaid reads it: refused at the window, nothing after it.
    common::mermaid::assert_timeline(&run.summary, &["resolve", "window"], &["window"]);
    // After the close and its margin the same deploy passes the window (then GitHub's checks).
    let later = in_market_hours(&repo)
        .var("TRADER_DEPLOY_NOW", "2026-11-30T21:31:00Z")
        .run();
    assert!(
        later
            .stdout
            .contains("prod may be deployed at 2026-11-30T21:31:00Z"),
        "{}",
        later.stdout
    );
    // A rollback may run at any time by default.
    let rb = in_market_hours(&repo)
        .var("INPUT_MODE", "rollback")
        .var("INPUT_VERSION", "")
        .run();
    assert!(
        rb.stdout.contains("A rollback of prod may run at any time"),
        "{}",
        rb.stdout
    );
    // mode resolve shows the verdict.
    let plan = in_market_hours(&repo).var("INPUT_MODE", "resolve").run();
    assert!(
        plan.stdout.contains(
            "deploy window while XNYS is closed, 30m from any open or close: refused at \
             2026-11-30T15:00:00Z"
        ),
        "{}",
        plan.stdout
    );
}

/// An override is loud, and on a protected environment needs an approver other than the actor.
#[tokio::test]
async fn a_window_override_is_loud_and_needs_another_approver() {
    let repo = add_repo("td-override", |_| {}).await;
    // Run 1003 was approved for prod by bob, who started it: not enough for an override.
    let run = in_market_hours(&repo)
        .var("INPUT_WINDOW_OVERRIDE", "true")
        .var("GITHUB_RUN_ID", "1003")
        .var("GITHUB_ACTOR", "bob")
        .run();
    assert_refused(
        &repo,
        &run,
        "run 1003 was approved for environment prod only by bob, who started or re-ran it",
    )
    .await;
    // Run 1001, approved by alice for carol's run: the override goes through, said everywhere.
    let (hook, received) = webhook_receiver();
    let run = in_market_hours(&repo)
        .var("INPUT_WINDOW_OVERRIDE", "true")
        .var("INPUT_NOTIFY_WEBHOOK", &hook)
        .run();
    assert!(
        run.stdout.contains(
            "::warning title=Deploy window overridden::window_override: deploying prod at \
             2026-11-30T15:00:00Z although XNYS is open"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("run 1001 approved by alice"),
        "{}",
        run.stdout
    );
    assert!(run.summary.contains("**Overridden.**"), "{}", run.summary);
    let body: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    assert_eq!(body["window_override"], true, "{body}");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("outside its deploy window (window_override)"),
        "{body}"
    );
}
