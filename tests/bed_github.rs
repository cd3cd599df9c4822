//! End-to-end tests of the bed's GitHub part: requests go through Prism (GITHUB_API_URL), which
//! checks them and the stand-in's answers against GitHub's OpenAPI description; the stand-in's
//! control endpoints (TD_GITHUB_STANDIN_URL) load fixtures, inject faults and show its request log.
//!
//! Needs testbed/github/up.sh (alone or through testbed/up.sh) and the bed env file
//! (TD_BED_ENV, default target/testbed/env). The tests share one stand-in, so they take a lock
//! and reset it before and after each test.

use futures::FutureExt;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const FULL: &str = "ghs_bed_full";
const READONLY: &str = "ghs_bed_readonly";
const REPO: &str = "/repos/acme/trader";
const C2: &str = "1c55d51fd5b5cafe63c2352ae31b9e769fd63c83";
const C3: &str = "ee3b2f7904fd6c989c87d6b5f7ecd382679612f4";

/// The two URLs of the GitHub part, from the bed env file.
struct Gh {
    api: String,
    standin: String,
    http: Client,
}

fn env_file() -> PathBuf {
    std::env::var_os("TD_BED_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed/env"))
}

fn read_env() -> BTreeMap<String, String> {
    let path = env_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the bed is not up: cannot read {} ({e}); run testbed/up.sh, or testbed/github/up.sh \
             with its output in a file named by TD_BED_ENV",
            path.display()
        )
    });
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '"' || c == '\'').to_string(),
            )
        })
        .collect()
}

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a test body with the stand-in to itself, reset before and after (also when the body panics).
async fn with_github<F, Fut>(body: F)
where
    F: FnOnce(Gh) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _guard = LOCK.lock().await;
    let env = read_env();
    let get = |k: &str| {
        env.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{} has no {k}", env_file().display()))
    };
    let gh = Gh {
        api: get("GITHUB_API_URL"),
        standin: get("TD_GITHUB_STANDIN_URL"),
        http: Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("reqwest client"),
    };
    let reset = |gh: &Gh| {
        let (http, url) = (gh.http.clone(), format!("{}/_standin/reset", gh.standin));
        async move {
            let r = http.post(url).send().await.expect("stand-in reset");
            assert!(r.status().is_success(), "reset answered {}", r.status());
        }
    };
    reset(&gh).await;
    let (http, api, standin) = (gh.http.clone(), gh.api.clone(), gh.standin.clone());
    let outcome = std::panic::AssertUnwindSafe(body(gh)).catch_unwind().await;
    reset(&Gh { api, standin, http }).await;
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

/// A response read whole.
#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Gh {
    /// A GitHub API call through Prism, as the action makes it.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "trader-deploy-bed-tests")
            .header("x-github-api-version", "2022-11-28");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, Some(FULL), None).await
    }

    async fn get_owned(&self, path: String) -> Resp {
        self.get(&path).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(FULL), Some(body)).await
    }

    /// A control call straight to the stand-in.
    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.standin));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status();
        let v: Value = r.json().await.expect("control answers JSON");
        assert!(status.is_success(), "{path} answered {status}: {v}");
        v
    }

    async fn log(&self) -> Vec<Value> {
        match self.control(Method::GET, "/_standin/log", None).await {
            Value::Array(a) => a,
            other => panic!("log is not an array: {other}"),
        }
    }

    async fn create_deployment(&self, git_ref: &str, environment: &str) -> i64 {
        let r = self
            .post(
                &format!("{REPO}/deployments"),
                json!({"ref": git_ref, "environment": environment, "auto_merge": false,
                       "required_contexts": [], "payload": {"chart": "trader"},
                       "description": format!("deploy {git_ref}")}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create deployment: {}",
            r.body
        );
        r.body["id"].as_i64().expect("deployment id")
    }
}

fn default_fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github/default.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("default fixture"))
        .expect("fixture JSON")
}

/// Prism's error for a response that breaks the spec: 500, problem type VIOLATIONS.
fn assert_violation(r: &Resp, location_field: &str) {
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "expected Prism's violation, got {}",
        r.body
    );
    assert!(
        r.body["type"]
            .as_str()
            .unwrap_or("")
            .ends_with("#VIOLATIONS"),
        "expected a VIOLATIONS problem: {}",
        r.body
    );
    let hit = r.body["validation"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| {
            v["location"].as_array().is_some_and(|l| {
                l.first() == Some(&json!("response")) && l.iter().any(|x| x == location_field)
            })
        });
    assert!(hit, "no response violation at {location_field}: {}", r.body);
}

#[tokio::test]
async fn deployment_and_statuses_pass_prism_and_show_in_the_log() {
    with_github(|gh| async move {
        let id = gh.create_deployment("v1.1.0", "prod").await;
        let statuses = format!("{REPO}/deployments/{id}/statuses");
        let log_url = "https://github.com/acme/trader/actions/runs/1001";
        for (state, desc) in [
            ("in_progress", "helm upgrade"),
            ("success", "deployed v1.1.0"),
        ] {
            let r = gh
                .post(
                    &statuses,
                    json!({"state": state, "log_url": log_url, "description": desc,
                           "environment_url": "https://trader.example.com"}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{state}: {}", r.body);
            assert_eq!(r.body["state"], state);
            assert_eq!(
                r.body["target_url"], log_url,
                "log_url also sets target_url"
            );
            assert!(
                r.header("location")
                    .is_some_and(|l| l.ends_with(&format!("/statuses/{}", r.body["id"])))
            );
        }

        let d = gh.get(&format!("{REPO}/deployments/{id}")).await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.body);
        assert_eq!(d.body["sha"], C3, "v1.1.0 resolves to c3");
        assert_eq!(d.body["environment"], "prod");
        assert_eq!(d.body["creator"]["login"], "github-actions[bot]");

        let list = gh.get(&statuses).await;
        assert_eq!(list.status, StatusCode::OK);
        let states: Vec<&str> = list
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["success", "in_progress"], "newest first");

        let mine = gh
            .get(&format!("{REPO}/deployments?environment=prod&sha={C3}"))
            .await;
        assert_eq!(mine.status, StatusCode::OK);
        // Besides the fixture runs' jobs' own deployments (GitHub Actions made those).
        let ids: Vec<i64> = mine
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["performed_via_github_app"].is_null())
            .map(|d| d["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [id]);
        let none = gh.get(&format!("{REPO}/deployments?environment=dev")).await;
        assert_eq!(none.body, json!([]));

        let log = gh.log().await;
        let posts: Vec<&Value> = log.iter().filter(|e| e["method"] == "POST").collect();
        assert_eq!(
            posts.len(),
            3,
            "one deployment and two statuses reached the stand-in: {log:?}"
        );
        assert_eq!(posts[0]["path"], format!("{REPO}/deployments"));
        assert_eq!(posts[0]["status"], 201);
        assert_eq!(posts[0]["body"]["ref"], "v1.1.0");
        assert_eq!(posts[1]["path"], statuses);
        assert_eq!(posts[2]["body"]["state"], "success");
        assert_eq!(
            posts[2]["headers"]["authorization"],
            format!("Bearer {FULL}")
        );
        assert!(
            log.iter()
                .all(|e| e["time"].as_str().is_some_and(|t| t.ends_with('Z')))
        );
        let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "log in order: {seqs:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn prism_rejects_an_unknown_status_state_before_the_stand_in_sees_it() {
    with_github(|gh| async move {
        let id = gh.create_deployment("main", "dev").await;
        let before = gh.log().await.len();
        let r = gh
            .post(
                &format!("{REPO}/deployments/{id}/statuses"),
                json!({"state": "exploded"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["type"]
                .as_str()
                .unwrap_or("")
                .ends_with("#UNPROCESSABLE_ENTITY"),
            "{}",
            r.body
        );
        assert_eq!(
            r.body["validation"][0]["location"],
            json!(["body", "state"]),
            "{}",
            r.body
        );
        assert_eq!(
            gh.log().await.len(),
            before,
            "the stand-in never saw the invalid request"
        );

        // Prism also checks the request's shape: a deployment without `ref`.
        let r = gh
            .post(
                &format!("{REPO}/deployments"),
                json!({"environment": "dev"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(gh.log().await.len(), before);
        // And an endpoint outside the cut spec does not get through.
        let r = gh.get(&format!("{REPO}/branches")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert!(
            r.body["type"]
                .as_str()
                .unwrap_or("")
                .ends_with("#NO_PATH_MATCHED_ERROR"),
            "{}",
            r.body
        );
    })
    .await;
}

#[tokio::test]
async fn prism_catches_stand_in_responses_that_break_the_schema() {
    with_github(|gh| async move {
        let mut fx = default_fixture();
        fx["response_patches"] = json!([
            {"method": "GET", "path": format!("{REPO}/environments/prod"), "set": {"/created_at": "yesterday"}},
            {"method": "GET", "path": format!("{REPO}/actions/runs/1001/approvals"), "set": {"/0/state": "maybe"}}
        ]);
        gh.control(Method::POST, "/_standin/fixture", Some(fx)).await;

        let r = gh.get(&format!("{REPO}/environments/prod")).await;
        assert_violation(&r, "created_at");
        let r = gh.get(&format!("{REPO}/actions/runs/1001/approvals")).await;
        assert_violation(&r, "state");
        // The unpatched object still passes.
        assert_eq!(gh.get(&format!("{REPO}/environments/staging")).await.status, StatusCode::OK);
        let log = gh.log().await;
        assert!(
            log.iter().any(|e| e["path"] == format!("{REPO}/environments/prod") && e["status"] == 200),
            "the stand-in answered 200 and Prism turned it into a violation: {log:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_status_without_log_url_is_a_violation_like_on_github() {
    // GitHub answers target_url "" when neither target_url nor log_url is given; the spec says
    // format uri. The stand-in does what GitHub does, so Prism flags it: the action must send log_url.
    with_github(|gh| async move {
        let id = gh.create_deployment("main", "dev").await;
        let r = gh
            .post(
                &format!("{REPO}/deployments/{id}/statuses"),
                json!({"state": "queued"}),
            )
            .await;
        assert_violation(&r, "target_url");
    })
    .await;
}

#[tokio::test]
async fn faults_give_502_and_secondary_rate_limit_then_success() {
    with_github(|gh| async move {
        gh.control(
            Method::POST,
            "/_standin/faults",
            Some(json!([
                {"kind": "bad_gateway", "method": "POST", "path_prefix": format!("{REPO}/deployments"), "count": 1},
                {"kind": "secondary_rate_limit", "path_prefix": format!("{REPO}/environments/"), "count": 2, "retry_after": 1}
            ])),
        )
        .await;
        let body = json!({"ref": "main", "environment": "dev", "auto_merge": false, "required_contexts": []});
        let first = gh.post(&format!("{REPO}/deployments"), body.clone()).await;
        assert_eq!(first.status, StatusCode::BAD_GATEWAY, "{}", first.body);
        assert!(
            first.header("sl-violations").is_some_and(|v| v.contains("Warning")),
            "Prism passes an undeclared error status as a warning: {:?}",
            first.headers
        );
        let second = gh.post(&format!("{REPO}/deployments"), body).await;
        assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);

        for _ in 0..2 {
            let r = gh.get(&format!("{REPO}/environments/prod")).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
            assert_eq!(r.header("retry-after"), Some("1"));
            assert!(r.body["message"].as_str().unwrap().starts_with("You have exceeded a secondary rate limit"));
        }
        assert_eq!(gh.get(&format!("{REPO}/environments/prod")).await.status, StatusCode::OK);
        assert_eq!(gh.control(Method::GET, "/_standin/faults", None).await, json!([]), "faults used up");

        let faults: Vec<Value> = gh.log().await.into_iter().map(|e| e["fault"].clone()).collect();
        assert_eq!(
            faults,
            [json!("bad_gateway"), Value::Null, json!("secondary_rate_limit"), json!("secondary_rate_limit"), Value::Null]
        );
    })
    .await;
}

#[tokio::test]
async fn approvals_and_runs_come_from_the_fixture() {
    with_github(|gh| async move {
        let r = gh.get(&format!("{REPO}/actions/runs/1001/approvals")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let a = r.body.as_array().expect("array");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["state"], "approved");
        assert_eq!(a[0]["user"]["login"], "alice");
        assert_eq!(a[0]["environments"][0]["name"], "prod");

        let none = gh.get(&format!("{REPO}/actions/runs/1002/approvals")).await;
        assert_eq!(none.body, json!([]));

        let run = gh.get(&format!("{REPO}/actions/runs/1003")).await;
        assert_eq!(run.status, StatusCode::OK, "{}", run.body);
        assert_eq!(run.body["actor"]["login"], "bob");
        assert_eq!(
            run.body["html_url"],
            "https://github.com/acme/trader/actions/runs/1003"
        );
        let own = gh.get(&format!("{REPO}/actions/runs/1003/approvals")).await;
        assert_eq!(
            own.body[0]["user"]["login"], "bob",
            "run 1003 is approved by its own actor"
        );
        assert_eq!(
            gh.get(&format!("{REPO}/actions/runs/4242")).await.status,
            StatusCode::NOT_FOUND
        );

        let env = gh.get(&format!("{REPO}/environments/prod")).await;
        let rules = env.body["protection_rules"].as_array().expect("rules");
        let reviewers: Vec<&str> = rules
            .iter()
            .filter(|r| r["type"] == "required_reviewers")
            .flat_map(|r| r["reviewers"].as_array().unwrap())
            .map(|r| r["reviewer"]["login"].as_str().unwrap())
            .collect();
        assert_eq!(reviewers, ["alice", "bob"]);
        let dev = gh.get(&format!("{REPO}/environments/dev")).await;
        assert_eq!(dev.body["protection_rules"], json!([]));

        let repo = gh.get(REPO).await;
        assert_eq!(repo.status, StatusCode::OK, "{}", repo.body);
        assert_eq!(repo.body["default_branch"], "main");
    })
    .await;
}

#[tokio::test]
async fn compare_and_deployment_rules_follow_the_commit_graph() {
    with_github(|gh| async move {
        let cmp = |bh: String| gh.get_owned(format!("{REPO}/compare/{bh}"));
        let r = cmp("main...v1.2.0-rc.1".into()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            (
                r.body["status"].as_str(),
                r.body["ahead_by"].as_i64(),
                r.body["behind_by"].as_i64()
            ),
            (Some("diverged"), Some(1), Some(1))
        );
        assert_eq!(r.body["merge_base_commit"]["sha"], C2);
        let r = cmp("v1.0.0...main".into()).await;
        assert_eq!(
            (r.body["status"].as_str(), r.body["ahead_by"].as_i64()),
            (Some("ahead"), Some(1))
        );
        let r = cmp(format!("main...{}", &C2[..7])).await;
        assert_eq!(
            r.body["status"], "behind",
            "a short sha on main is behind main"
        );
        assert_eq!(
            cmp("main...v1.1.0".into()).await.body["status"],
            "identical"
        );
        assert_eq!(
            cmp("main...nope".into()).await.status,
            StatusCode::NOT_FOUND
        );

        // A ref that does not exist, and one whose commit status checks fail.
        let r = gh
            .post(
                &format!("{REPO}/deployments"),
                json!({"ref": "v9.9.9", "auto_merge": false}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.body["message"], "No ref found for: v9.9.9");
        let r = gh
            .post(
                &format!("{REPO}/deployments"),
                json!({"ref": "hotfix/bad", "auto_merge": false}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    })
    .await;
}

#[tokio::test]
async fn tokens_without_permission_get_githubs_errors() {
    with_github(|gh| async move {
        let body = json!({"ref": "main", "environment": "dev", "auto_merge": false, "required_contexts": []});
        let r = gh
            .call(Method::POST, &format!("{REPO}/deployments"), Some(READONLY), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["message"], "Resource not accessible by integration");
        let r = gh.call(Method::GET, &format!("{REPO}/deployments"), Some(READONLY), None).await;
        assert_eq!(r.status, StatusCode::OK, "read is enough to list");
        let r = gh.call(Method::GET, REPO, Some("ghs_unknown"), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["message"], "Bad credentials");
        let r = gh.call(Method::GET, REPO, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = gh.call(Method::GET, "/repos/acme/other", Some(FULL), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn a_success_status_marks_older_deployments_inactive() {
    with_github(|gh| async move {
        let log_url = "https://github.com/acme/trader/actions/runs/1001";
        let old = gh.create_deployment("v1.0.0", "dev").await;
        let new = gh.create_deployment("v1.1.0", "dev").await;
        assert!(new > old, "ids increase");
        let st = |id: i64| format!("{REPO}/deployments/{id}/statuses");
        let r = gh
            .post(&st(old), json!({"state": "success", "log_url": log_url}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = gh
            .post(&st(new), json!({"state": "success", "log_url": log_url}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let old_states = gh.get(&st(old)).await;
        assert_eq!(old_states.status, StatusCode::OK, "{}", old_states.body);
        assert_eq!(
            old_states.body[0]["state"], "inactive",
            "{}",
            old_states.body
        );
        // auto_inactive: false leaves the older one alone.
        let newest = gh.create_deployment("main", "dev").await;
        let r = gh
            .post(
                &st(newest),
                json!({"state": "success", "log_url": log_url, "auto_inactive": false}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(gh.get(&st(new)).await.body[0]["state"], "success");
    })
    .await;
}

#[tokio::test]
async fn an_added_repository_has_its_own_state() {
    with_github(|gh| async move {
        let mut fx = default_fixture();
        fx["repository"]["name"] = json!("trader-iso");
        fx["tokens"] = Value::Null;
        let added = gh.control(Method::POST, "/_standin/repos", Some(fx)).await;
        assert_eq!(added["repo"], "acme/trader-iso");
        let iso = "/repos/acme/trader-iso";

        let base_id = gh.create_deployment("main", "dev").await;
        let r = gh
            .call(
                Method::POST,
                &format!("{iso}/deployments"),
                Some("any-token-works-here"),
                Some(json!({"ref": "main", "environment": "dev", "auto_merge": false, "required_contexts": []})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert!(r.body["id"].as_i64().unwrap() > base_id, "ids are global, like GitHub's");
        assert!(r.body["url"].as_str().unwrap().contains("/repos/acme/trader-iso/"));

        let base = gh.get(&format!("{REPO}/deployments?environment=dev")).await;
        assert_eq!(base.body.as_array().unwrap().len(), 1, "{}", base.body);
        let mine = gh.get(&format!("{iso}/deployments?environment=dev")).await;
        assert_eq!(mine.body.as_array().unwrap().len(), 1, "{}", mine.body);
        assert_eq!(gh.get(iso).await.body["full_name"], "acme/trader-iso");

        // Reset drops added repositories.
        gh.control(Method::POST, "/_standin/reset", None).await;
        assert_eq!(gh.get(iso).await.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn lists_paginate_and_primary_limits_and_delays_pass_prism() {
    with_github(|gh| async move {
        // dev: no fixture job deploys there.
        for _ in 0..3 {
            gh.create_deployment("main", "dev").await;
        }
        let p2 = gh
            .get(&format!(
                "{REPO}/deployments?environment=dev&per_page=2&page=2"
            ))
            .await;
        assert_eq!(p2.status, StatusCode::OK, "{}", p2.body);
        assert_eq!(p2.body.as_array().unwrap().len(), 1);
        let link = p2.header("link").expect("Link header");
        assert!(
            link.contains("rel=\"prev\"") && !link.contains("rel=\"next\""),
            "{link}"
        );
        assert!(
            link.starts_with(&format!("<{}{REPO}/deployments?", gh.api)),
            "links point at Prism: {link}"
        );

        gh.control(
            Method::POST,
            "/_standin/faults",
            Some(json!([
                {"kind": "rate_limit", "path_prefix": format!("{REPO}/actions/"), "retry_after": 2},
                {"kind": "delay", "delay_ms": 400, "path_prefix": REPO, "method": "GET"}
            ])),
        )
        .await;
        let r = gh.get(&format!("{REPO}/actions/runs/1001")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        assert!(
            r.header("x-ratelimit-reset")
                .is_some_and(|v| v.parse::<u64>().is_ok())
        );
        let t = std::time::Instant::now();
        let r = gh.get(REPO).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "delayed {:?}",
            t.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn faults_and_the_log_can_be_scoped_to_one_repository() {
    with_github(|gh| async move {
        let other = "/repos/acme/trader-other";
        gh.control(
            Method::POST,
            "/_standin/faults",
            Some(json!([
                {"kind": "bad_gateway", "path_prefix": format!("{REPO}/deployments"), "count": 5},
                {"kind": "bad_gateway", "path_prefix": format!("{other}/deployments"), "count": 5}
            ])),
        )
        .await;
        let q = format!("/_standin/faults?path_prefix={other}");
        let removed = gh.control(Method::DELETE, &q, None).await;
        assert_eq!(removed["removed"], 1);
        let left = gh.control(Method::GET, "/_standin/faults", None).await;
        assert_eq!(
            left[0]["path_prefix"],
            format!("{REPO}/deployments"),
            "{left}"
        );

        gh.get(REPO).await;
        gh.get(&format!("{REPO}/environments/dev")).await;
        let q = format!("/_standin/log?path_prefix={REPO}/environments/");
        let log = gh.control(Method::GET, &q, None).await;
        assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    })
    .await;
}

/// A job that declares `environment:` gets GitHub's own deployment (github_jobs.rs): `waiting`
/// while the review is pending, `in_progress` once approved and running, GitHub's final status at
/// the job's end; the jobs of an attempt name their runner. All through Prism, with the
/// description's one amendment (`waiting` in a listed status); a client still cannot create a
/// `waiting` status.
#[tokio::test]
async fn jobs_with_an_environment_get_github_s_own_deployment() {
    with_github(|gh| async move {
        let jobs = gh
            .get(&format!("{REPO}/actions/runs/1001/attempts/1/jobs"))
            .await;
        assert_eq!(jobs.status, StatusCode::OK, "{}", jobs.body);
        assert_eq!(jobs.body["total_count"], 1);
        let job = &jobs.body["jobs"][0];
        assert_eq!(
            (
                &job["id"],
                &job["name"],
                &job["status"],
                &job["runner_name"]
            ),
            (
                &json!(100101),
                &json!("deploy"),
                &json!("in_progress"),
                &json!("GitHub Actions 1")
            )
        );
        let held = gh
            .get(&format!("{REPO}/actions/runs/1002/attempts/1/jobs"))
            .await;
        assert_eq!(held.body["jobs"][0]["status"], "waiting", "{}", held.body);
        assert_eq!(held.body["jobs"][0]["runner_name"], Value::Null);
        let no_attempt = gh
            .get(&format!("{REPO}/actions/runs/1001/attempts/2/jobs"))
            .await;
        assert_eq!(no_attempt.status, StatusCode::NOT_FOUND);

        // GitHub's deployments to prod, by the job their statuses point at.
        let list = gh
            .get(&format!("{REPO}/deployments?environment=prod&per_page=100"))
            .await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        let mut by_job = BTreeMap::new();
        for d in list.body.as_array().expect("array") {
            let id = d["id"].as_i64().unwrap();
            let st = gh
                .get_owned(format!("{REPO}/deployments/{id}/statuses"))
                .await;
            assert_eq!(st.status, StatusCode::OK, "statuses of {id}: {}", st.body);
            let url = st.body[0]["log_url"].as_str().unwrap_or("").to_string();
            let states: Vec<String> = st
                .body
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["state"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                d["performed_via_github_app"]["slug"], "github-actions",
                "{d}"
            );
            assert_eq!((&d["task"], &d["payload"]), (&json!("deploy"), &json!({})));
            by_job.insert(url, (d["creator"]["login"].clone(), states));
        }
        let job_url =
            |run: u64| format!("https://github.com/acme/trader/actions/runs/{run}/job/{run}01");
        assert_eq!(
            by_job[&job_url(1001)],
            (
                json!("carol"),
                vec!["in_progress".to_string(), "waiting".into(), "queued".into()]
            )
        );
        assert_eq!(by_job[&job_url(1002)].1, ["waiting", "queued"]);
        assert_eq!(by_job[&job_url(1003)].0, "bob");
        assert_eq!(by_job[&job_url(1004)].1, ["failure", "waiting", "queued"]);
        // Run 1006: the gate job has the environment, the deploy job none.
        assert!(by_job.contains_key(&job_url(1006)));
        assert!(
            !by_job.contains_key("https://github.com/acme/trader/actions/runs/1006/job/100602")
        );

        // The job ends: GitHub writes its final status.
        let done = gh
            .control(
                Method::POST,
                "/_standin/jobs/finish",
                Some(json!({"run_id": 1001, "job": "deploy", "conclusion": "success"})),
            )
            .await;
        assert_eq!(done["state"], "success", "{done}");
        let id = done["deployment"].as_i64().unwrap();
        let st = gh
            .get_owned(format!("{REPO}/deployments/{id}/statuses"))
            .await;
        assert_eq!(st.body[0]["state"], "success", "{}", st.body);
        let jobs = gh
            .get(&format!("{REPO}/actions/runs/1001/attempts/1/jobs"))
            .await;
        assert_eq!(
            (
                &jobs.body["jobs"][0]["status"],
                &jobs.body["jobs"][0]["conclusion"]
            ),
            (&json!("completed"), &json!("success"))
        );

        // Nobody can write `waiting`: the request schema keeps GitHub's enum.
        let forged = gh
            .post(
                &format!("{REPO}/deployments/{id}/statuses"),
                json!({"state": "waiting", "log_url": job_url(1001)}),
            )
            .await;
        assert_eq!(
            forged.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            forged.body
        );
    })
    .await;
}
