//! The GitHub stand-in: a small stateful server for the REST endpoints trader-deploy calls
//! (repository, environments, run approvals, workflow runs, compare, deployments and their
//! statuses, pull-request comments), loaded from a fixture, with a request log, fault injection and control endpoints
//! under `/_standin/`. Prism sits in front of it and checks every request and response against
//! GitHub's OpenAPI description; see testbed/github/README.md.

use crate::github_comments::{self as comments, Comment};
use crate::github_jobs::{self as jobs, JobFx, Review};
use crate::github_json::{self as gj, Urls, dec, enc, rfc3339};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

// ---------------------------------------------------------------------------------------------
// Fixture format (documented in testbed/github/README.md).

/// The whole fixture file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Free text for the reader.
    #[serde(default)]
    pub comment: Option<String>,
    /// REST root used in the `url` fields and Link headers; overrides `--api-url`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Web root for `html_url` fields.
    #[serde(default = "default_server_url")]
    pub server_url: String,
    pub repository: RepoFx,
    /// login -> user id; logins not listed get a stable derived id.
    #[serde(default)]
    pub users: BTreeMap<String, i64>,
    /// token -> identity and permissions; when absent, any token is accepted with every permission.
    #[serde(default)]
    pub tokens: Option<BTreeMap<String, TokenFx>>,
    #[serde(default)]
    pub commits: Vec<CommitFx>,
    /// branch name -> tip sha.
    #[serde(default)]
    pub branches: BTreeMap<String, String>,
    /// tag name -> sha.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub environments: Vec<EnvFx>,
    #[serde(default)]
    pub runs: Vec<RunFx>,
    /// Deployments that exist before the test starts.
    #[serde(default)]
    pub deployments: Vec<DeploymentFx>,
    /// Edits applied to response bodies (to make the stand-in answer something GitHub's schema forbids).
    #[serde(default)]
    pub response_patches: Vec<PatchFx>,
    /// Numbers of the open pull requests (the issues that can take comments).
    #[serde(default)]
    pub pull_requests: Vec<i64>,
}

fn default_server_url() -> String {
    "https://github.com".into()
}
fn default_owner_type() -> String {
    "Organization".into()
}
fn default_main() -> String {
    "main".into()
}
fn default_true() -> bool {
    true
}
fn default_bot() -> String {
    "github-actions[bot]".into()
}
fn default_deploy() -> String {
    "deploy".into()
}
fn default_production() -> String {
    "production".into()
}
fn default_approved() -> String {
    "approved".into()
}
fn default_one() -> i64 {
    1
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepoFx {
    #[serde(default = "default_repo_id")]
    pub id: i64,
    pub owner: String,
    #[serde(default = "default_owner_type")]
    pub owner_type: String,
    pub name: String,
    #[serde(default = "default_main")]
    pub default_branch: String,
    #[serde(default = "default_true")]
    pub private: bool,
    #[serde(default)]
    pub description: Option<String>,
}
fn default_repo_id() -> i64 {
    700_000_001
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFx {
    /// Who the token acts as (creator of deployments and statuses).
    #[serde(default = "default_bot")]
    pub login: String,
    /// GitHub permission name (`deployments`, `actions`, `contents`, `metadata`) -> `read` | `write` | `none`.
    #[serde(default)]
    pub permissions: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommitFx {
    pub sha: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub parents: Vec<String>,
    #[serde(default)]
    pub author: Option<String>,
    /// RFC 3339; defaults to a fixed time plus the commit's index in minutes.
    #[serde(default)]
    pub date: Option<String>,
    /// Commit status context -> state (`success`, `failure`, `pending`, `error`), for required_contexts.
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFx {
    pub name: String,
    #[serde(default)]
    pub id: Option<i64>,
    /// Logins of required reviewers (a `required_reviewers` rule when non-empty).
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Team slugs of required reviewers.
    #[serde(default)]
    pub reviewer_teams: Vec<String>,
    #[serde(default)]
    pub prevent_self_review: bool,
    /// Minutes; a `wait_timer` rule when set.
    #[serde(default)]
    pub wait_timer: Option<i64>,
    /// Adds a `branch_policy` rule and a deployment_branch_policy.
    #[serde(default)]
    pub branch_policy: Option<BranchPolicyFx>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BranchPolicyFx {
    #[serde(default)]
    pub protected_branches: bool,
    #[serde(default)]
    pub custom_branch_policies: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunFx {
    pub id: i64,
    pub actor: String,
    #[serde(default)]
    pub triggering_actor: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub head_branch: Option<String>,
    /// Defaults to the tip of head_branch (or of the default branch).
    #[serde(default)]
    pub head_sha: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default = "default_one")]
    pub run_number: i64,
    #[serde(default = "default_one")]
    pub run_attempt: i64,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub approvals: Vec<ApprovalFx>,
    /// The run's jobs; one with `environment` gets GitHub's own deployment (github_jobs.rs).
    #[serde(default)]
    pub jobs: Vec<JobFx>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFx {
    pub environments: Vec<String>,
    #[serde(default = "default_approved")]
    pub state: String,
    pub user: String,
    #[serde(default)]
    pub comment: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFx {
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default = "default_deploy")]
    pub task: String,
    #[serde(default = "default_production")]
    pub environment: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub creator: Option<String>,
    #[serde(default)]
    pub transient_environment: bool,
    #[serde(default)]
    pub production_environment: Option<bool>,
    #[serde(default)]
    pub payload: Option<Value>,
    #[serde(default)]
    pub statuses: Vec<StatusFx>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusFx {
    pub state: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub log_url: String,
    #[serde(default)]
    pub environment_url: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PatchFx {
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Exact request path to match.
    pub path: String,
    /// JSON pointer -> new value (a missing last key is inserted).
    pub set: BTreeMap<String, Value>,
}

// ---------------------------------------------------------------------------------------------
// Faults and the request log.

/// A fault injected through POST /_standin/faults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// `bad_gateway` (502), `secondary_rate_limit` (403 + retry-after), `rate_limit` (403, primary,
    /// x-ratelimit-remaining: 0), `status` (any `status` and `body`), `delay` (answers normally after `delay_ms`).
    pub kind: String,
    /// Request path prefix to match (`/` matches everything).
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// How many matching requests get the fault.
    #[serde(default = "default_count")]
    pub count: u32,
    /// For `status`.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Option<Value>,
    /// retry-after seconds for `secondary_rate_limit` (default 1).
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Delay before answering, for any kind.
    #[serde(default)]
    pub delay_ms: Option<u64>,
}
fn default_prefix() -> String {
    "/".into()
}
fn default_count() -> u32 {
    1
}

/// One served request, as GET /_standin/log returns it.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    pub time: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub status: u16,
    pub fault: Option<String>,
    pub duration_ms: u64,
}

// ---------------------------------------------------------------------------------------------
// State.

#[derive(Clone, Debug, Serialize)]
struct Deployment {
    id: i64,
    sha: String,
    git_ref: String,
    task: String,
    payload: Value,
    environment: String,
    original_environment: String,
    description: Option<String>,
    creator: String,
    transient: bool,
    production: bool,
    created_at: String,
    updated_at: String,
    statuses: Vec<DeploymentStatus>,
    /// Created by GitHub Actions for a job with `environment:`: (run id, job name).
    job: Option<(i64, String)>,
}

#[derive(Clone, Debug, Serialize)]
struct DeploymentStatus {
    id: i64,
    state: String,
    description: String,
    environment: String,
    target_url: String,
    log_url: String,
    environment_url: String,
    creator: String,
    created_at: String,
}

/// One repository: its fixture, its deployments and its pull requests' comments.
struct Repo {
    fixture: Fixture,
    urls: Urls,
    deployments: Vec<Deployment>,
    comments: Vec<Comment>,
}

/// Ids GitHub hands out across repositories.
#[derive(Default)]
struct Ids {
    deployment: i64,
    status: i64,
    comment: i64,
}

impl Ids {
    fn deployment(&mut self) -> i64 {
        self.deployment += 1;
        self.deployment
    }
    fn status(&mut self) -> i64 {
        self.status += 1;
        self.status
    }
    fn comment(&mut self) -> i64 {
        self.comment += 1;
        self.comment
    }
}

/// The whole server state.
struct Inner {
    api_url: String,
    /// Lower-case `owner/name` -> repository.
    repos: BTreeMap<String, Repo>,
    /// Key of the repository of the fixture loaded by file, reset or POST /_standin/fixture.
    base: String,
    ids: Ids,
    log: Vec<LogEntry>,
    seq: u64,
    faults: VecDeque<Fault>,
}

fn repo_key(owner: &str, name: &str) -> String {
    format!("{owner}/{name}").to_ascii_lowercase()
}

impl Inner {
    fn new(fixture: Fixture, api_url: &str) -> anyhow::Result<Self> {
        let mut ids = Ids::default();
        let repo = Repo::new(fixture, api_url, &mut ids)?;
        let base = repo_key(
            &repo.fixture.repository.owner,
            &repo.fixture.repository.name,
        );
        Ok(Inner {
            api_url: api_url.to_string(),
            repos: BTreeMap::from([(base.clone(), repo)]),
            base,
            ids,
            log: vec![],
            seq: 0,
            faults: VecDeque::new(),
        })
    }

    /// Adds (or replaces) a repository from a fixture; the others are untouched.
    fn add_repo(&mut self, fixture: Fixture) -> anyhow::Result<String> {
        let repo = Repo::new(fixture, &self.api_url, &mut self.ids)?;
        let key = repo_key(
            &repo.fixture.repository.owner,
            &repo.fixture.repository.name,
        );
        self.repos.insert(key.clone(), repo);
        Ok(key)
    }

    /// Answers one GitHub request: authentication, routing, permissions, then the repository.
    fn serve(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Reply {
        let routed = route(method, path);
        let key = routed
            .as_ref()
            .map(|(o, r, _)| repo_key(o, r))
            .filter(|k| self.repos.contains_key(k));
        // The tokens of the repository asked for, else of the base fixture.
        let tokens = self.repos[key.as_ref().unwrap_or(&self.base)]
            .fixture
            .tokens
            .clone();
        // Authentication first, like GitHub.
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, tok) = v.trim().split_once(' ')?;
                (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
                    .then(|| tok.trim().to_string())
            });
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Reply::json(
                401,
                gj::basic_error("Requires authentication", DOC_ROOT, 401),
            );
        };
        let identity = match &tokens {
            None => None,
            Some(map) => match map.get(&token) {
                Some(t) => Some(t.clone()),
                None => return Reply::json(401, gj::basic_error("Bad credentials", DOC_ROOT, 401)),
            },
        };
        let Some((_, _, op)) = routed else {
            return not_found(DOC_ROOT);
        };
        let Some(key) = key else {
            return not_found(op.doc());
        };
        if let Some(id) = &identity {
            let (perm, need) = op.permission();
            let granted = |p: &str| {
                id.permissions
                    .get(p)
                    .map(String::as_str)
                    .unwrap_or(if p == "metadata" { "read" } else { "none" })
            };
            // A pull request's comments are its issue's: either permission will do, as on GitHub.
            let have = match perm {
                "pull_requests" => level(granted(perm)).max(level(granted("issues"))),
                _ => level(granted(perm)),
            };
            if have < level(need) {
                return Reply::json(
                    403,
                    gj::basic_error("Resource not accessible by integration", op.doc(), 403),
                );
            }
        }
        let actor = identity.map(|i| i.login).unwrap_or_else(default_bot);
        let Inner { repos, ids, .. } = self;
        let repo = repos.get_mut(&key).expect("key checked above");
        let mut reply = repo.serve(op, query, body, &actor, ids);
        repo.apply_patches(method.as_str(), path, &mut reply);
        reply
    }

    fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let idx = self.faults.iter().position(|f| {
            path.starts_with(&f.path_prefix)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let f = &mut self.faults[idx];
        f.count -= 1;
        let out = f.clone();
        if f.count == 0 {
            self.faults.remove(idx);
        }
        Some(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &Bytes,
        status: u16,
        fault: Option<String>,
        started: Instant,
    ) {
        self.seq += 1;
        let mut hs = BTreeMap::new();
        for (k, v) in headers {
            // Authorization is kept as is: tokens here are fixture values, not secrets.
            hs.insert(
                k.as_str().to_string(),
                v.to_str().unwrap_or("<binary>").to_string(),
            );
        }
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        };
        self.log.push(LogEntry {
            seq: self.seq,
            time: rfc3339_millis(SystemTime::now()),
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: hs,
            body,
            status,
            fault,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }

    fn all_deployments(&self) -> Value {
        self.repos
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!({"deployments": r.deployments, "comments": r.comments}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// Server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The fixture file POST /_standin/reset reloads.
    pub fixture_path: PathBuf,
    /// REST root for `url` fields when the fixture sets none.
    pub api_url: String,
}

/// Shared server state.
#[derive(Clone)]
pub struct App {
    cfg: Config,
    inner: Arc<Mutex<Inner>>,
}

/// Reads and parses a fixture file.
pub fn load_fixture(path: &std::path::Path) -> anyhow::Result<Fixture> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading fixture {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("parsing fixture {}: {e}", path.display()))
}

impl App {
    /// Loads the fixture and builds the state.
    pub fn new(cfg: Config) -> anyhow::Result<Self> {
        let fixture = load_fixture(&cfg.fixture_path)?;
        let inner = Inner::new(fixture, &cfg.api_url)?;
        Ok(Self {
            cfg,
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The axum router: control endpoints under `/_standin/`, everything else is GitHub.
pub fn router(app: App) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// A reply before it becomes an HTTP response.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![],
            body: Some(body),
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

fn into_response(r: Reply) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body = match r.body {
        Some(v) => {
            builder = builder.header("content-type", "application/json; charset=utf-8");
            Body::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        None => Body::empty(),
    };
    builder = builder.header("x-github-media-type", "github.v3; format=json");
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    if path == "/_standin" || path.starts_with("/_standin/") {
        return into_response(control(&app, &method, &path, &query, &body));
    }
    let started = Instant::now();
    let fault = {
        let mut inner = app.lock();
        inner.take_fault(method.as_str(), &path)
    };
    if let Some(ms) = fault.as_ref().and_then(|f| f.delay_ms) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut inner = app.lock();
    let reply = match fault.as_ref().filter(|f| f.kind != "delay") {
        Some(f) => fault_reply(f),
        None => inner.serve(&method, &path, &query, &headers, &body),
    };
    inner.record(
        &method,
        &path,
        &query,
        &headers,
        &body,
        reply.status,
        fault.map(|f| f.kind),
        started,
    );
    drop(inner);
    into_response(reply)
}

fn fault_reply(f: &Fault) -> Reply {
    match f.kind.as_str() {
        "bad_gateway" => Reply::json(502, f.body.clone().unwrap_or_else(|| json!({"message": "Server Error"}))),
        "secondary_rate_limit" => Reply::json(
            403,
            f.body.clone().unwrap_or_else(|| {
                gj::basic_error(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000:0000:00000000.",
                    "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                    403,
                )
            }),
        )
        .header("retry-after", f.retry_after.unwrap_or(1).to_string()),
        "rate_limit" => {
            let reset = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
                + f.retry_after.unwrap_or(1);
            Reply::json(
                403,
                f.body.clone().unwrap_or_else(|| {
                    gj::basic_error(
                        "API rate limit exceeded for installation ID 1.",
                        "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
                        403,
                    )
                }),
            )
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-used", "5000")
            .header("x-ratelimit-reset", reset.to_string())
            .header("x-ratelimit-resource", "core")
        }
        _ => Reply::json(f.status.unwrap_or(500), f.body.clone().unwrap_or_else(|| json!({"message": "Server Error"}))),
    }
}

const FAULT_KINDS: &[&str] = &[
    "bad_gateway",
    "secondary_rate_limit",
    "rate_limit",
    "status",
    "delay",
];

fn control(app: &App, method: &Method, path: &str, query: &str, body: &Bytes) -> Reply {
    let q = parse_query(query);
    match (method.as_str(), path) {
        ("GET", "/_standin/health") => Reply::json(200, json!({"ok": true})),
        ("GET", "/_standin/log") => {
            let since: u64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            let prefix = q.get("path_prefix").map(String::as_str).unwrap_or("");
            let inner = app.lock();
            let entries: Vec<&LogEntry> = inner
                .log
                .iter()
                .filter(|e| e.seq > since && e.path.starts_with(prefix))
                .collect();
            Reply::json(200, serde_json::to_value(entries).unwrap_or_default())
        }
        ("DELETE", "/_standin/log") => {
            app.lock().log.clear();
            Reply::json(200, json!({"ok": true}))
        }
        ("GET", "/_standin/state") => {
            let inner = app.lock();
            Reply::json(
                200,
                json!({"repos": inner.all_deployments(), "faults": inner.faults}),
            )
        }
        ("POST", "/_standin/reset") => match load_fixture(&app.cfg.fixture_path)
            .and_then(|f| Inner::new(f, &app.cfg.api_url))
        {
            Ok(new) => {
                *app.lock() = new;
                Reply::json(
                    200,
                    json!({"ok": true, "fixture": app.cfg.fixture_path.display().to_string()}),
                )
            }
            Err(e) => Reply::json(500, json!({"error": e.to_string()})),
        },
        ("POST", "/_standin/fixture") => {
            match serde_json::from_slice::<Fixture>(body)
                .map_err(anyhow::Error::from)
                .and_then(|f| Inner::new(f, &app.cfg.api_url))
            {
                Ok(new) => {
                    *app.lock() = new;
                    Reply::json(200, json!({"ok": true}))
                }
                Err(e) => Reply::json(400, json!({"error": e.to_string()})),
            }
        }
        ("POST", "/_standin/repos") => {
            let parsed = serde_json::from_slice::<Fixture>(body).map_err(anyhow::Error::from);
            match parsed.and_then(|f| app.lock().add_repo(f)) {
                Ok(key) => Reply::json(200, json!({"ok": true, "repo": key})),
                Err(e) => Reply::json(400, json!({"error": e.to_string()})),
            }
        }
        ("POST", "/_standin/jobs/finish") => {
            // {"repository": "owner/name" (default: the base fixture's), "run_id", "job", "conclusion"}
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let (Some(run_id), Some(job)) = (v["run_id"].as_i64(), v["job"].as_str()) else {
                return Reply::json(400, json!({"error": "run_id and job are required"}));
            };
            let conclusion = v["conclusion"].as_str().unwrap_or("success");
            let mut inner = app.lock();
            let inner = &mut *inner;
            let key = v["repository"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| inner.base.clone());
            let Some(repo) = inner.repos.get_mut(&key) else {
                return Reply::json(404, json!({"error": format!("no repository {key}")}));
            };
            match repo.finish_job(run_id, job, conclusion, &mut inner.ids) {
                Some(done) => Reply::json(200, done),
                None => Reply::json(
                    404,
                    json!({"error": format!("run {run_id} of {key} has no job {job}")}),
                ),
            }
        }
        ("GET", "/_standin/faults") => Reply::json(
            200,
            serde_json::to_value(&app.lock().faults).unwrap_or_default(),
        ),
        ("DELETE", "/_standin/faults") => {
            // With ?path_prefix=P only the faults whose own prefix starts with P.
            let prefix = q.get("path_prefix").map(String::as_str).unwrap_or("");
            let mut inner = app.lock();
            let before = inner.faults.len();
            inner.faults.retain(|f| !f.path_prefix.starts_with(prefix));
            Reply::json(
                200,
                json!({"ok": true, "removed": before - inner.faults.len()}),
            )
        }
        ("POST", "/_standin/faults") => {
            // One fault object or an array of them.
            let parsed: Result<Vec<Fault>, _> = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Array(a)) => a.into_iter().map(serde_json::from_value).collect(),
                Ok(v) => serde_json::from_value(v).map(|f| vec![f]),
                Err(e) => Err(e),
            };
            match parsed {
                Ok(faults) => {
                    if let Some(bad) = faults
                        .iter()
                        .find(|f| !FAULT_KINDS.contains(&f.kind.as_str()))
                    {
                        return Reply::json(
                            400,
                            json!({"error": format!("unknown fault kind {:?}; known: {FAULT_KINDS:?}", bad.kind)}),
                        );
                    }
                    let mut inner = app.lock();
                    let n = faults.len();
                    inner
                        .faults
                        .extend(faults.into_iter().filter(|f| f.count > 0));
                    Reply::json(
                        200,
                        json!({"ok": true, "added": n, "pending": inner.faults.len()}),
                    )
                }
                Err(e) => Reply::json(400, json!({"error": e.to_string()})),
            }
        }
        _ => Reply::json(
            404,
            json!({"error": "unknown control endpoint", "endpoints": [
            "GET /_standin/health", "GET /_standin/log?since=SEQ&path_prefix=P", "DELETE /_standin/log", "GET /_standin/state",
            "POST /_standin/reset", "POST /_standin/fixture", "POST /_standin/repos", "POST /_standin/jobs/finish", "GET|POST /_standin/faults", "DELETE /_standin/faults?path_prefix=P"]}),
        ),
    }
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k, true), dec(v, true)),
            None => (dec(p, true), String::new()),
        })
        .collect()
}

/// Which GitHub operation a request is, with the permission it needs.
enum Op {
    GetRepo,
    GetEnvironment(String),
    GetRun(i64),
    GetApprovals(i64),
    ListJobs(i64, i64),
    Compare(String),
    ListDeployments,
    CreateDeployment,
    GetDeployment(i64),
    ListStatuses(i64),
    CreateStatus(i64),
    ListComments(i64),
    CreateComment(i64),
    UpdateComment(i64),
}

impl Op {
    fn permission(&self) -> (&'static str, &'static str) {
        match self {
            Op::GetRepo => ("metadata", "read"),
            Op::GetEnvironment(_) | Op::GetRun(_) | Op::GetApprovals(_) | Op::ListJobs(..) => {
                ("actions", "read")
            }
            Op::Compare(_) => ("contents", "read"),
            Op::ListDeployments | Op::GetDeployment(_) | Op::ListStatuses(_) => {
                ("deployments", "read")
            }
            Op::CreateDeployment | Op::CreateStatus(_) => ("deployments", "write"),
            Op::ListComments(_) => ("pull_requests", "read"),
            Op::CreateComment(_) | Op::UpdateComment(_) => ("pull_requests", "write"),
        }
    }
    fn doc(&self) -> &'static str {
        match self {
            Op::GetRepo => "https://docs.github.com/rest/repos/repos#get-a-repository",
            Op::GetEnvironment(_) => {
                "https://docs.github.com/rest/deployments/environments#get-an-environment"
            }
            Op::GetRun(_) => {
                "https://docs.github.com/rest/actions/workflow-runs#get-a-workflow-run"
            }
            Op::GetApprovals(_) => {
                "https://docs.github.com/rest/actions/workflow-runs#get-the-review-history-for-a-workflow-run"
            }
            Op::ListJobs(..) => {
                "https://docs.github.com/rest/actions/workflow-jobs#list-jobs-for-a-workflow-run-attempt"
            }
            Op::Compare(_) => "https://docs.github.com/rest/commits/commits#compare-two-commits",
            Op::ListDeployments => {
                "https://docs.github.com/rest/deployments/deployments#list-deployments"
            }
            Op::CreateDeployment => {
                "https://docs.github.com/rest/deployments/deployments#create-a-deployment"
            }
            Op::GetDeployment(_) => {
                "https://docs.github.com/rest/deployments/deployments#get-a-deployment"
            }
            Op::ListStatuses(_) => {
                "https://docs.github.com/rest/deployments/statuses#list-deployment-statuses"
            }
            Op::CreateStatus(_) => {
                "https://docs.github.com/rest/deployments/statuses#create-a-deployment-status"
            }
            Op::ListComments(_) => {
                "https://docs.github.com/rest/issues/comments#list-issue-comments"
            }
            Op::CreateComment(_) => {
                "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
            }
            Op::UpdateComment(_) => {
                "https://docs.github.com/rest/issues/comments#update-an-issue-comment"
            }
        }
    }
}

const DOC_ROOT: &str = "https://docs.github.com/rest";

fn not_found(doc: &str) -> Reply {
    Reply::json(404, gj::basic_error("Not Found", doc, 404))
}

/// Splits `/repos/{owner}/{repo}/...` into owner, repo and the operation.
fn route(method: &Method, path: &str) -> Option<(String, String, Op)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs.len() < 3 || segs[0] != "repos" || segs.iter().take(3).any(|s| s.is_empty()) {
        return None;
    }
    let owner = dec(segs[1], false);
    let repo = dec(segs[2], false);
    let rest = &segs[3..];
    let id = |s: &str| s.parse::<i64>().ok();
    let get = method == Method::GET;
    let post = method == Method::POST;
    let patch = method == Method::PATCH;
    let op = match rest {
        [] if get => Op::GetRepo,
        ["environments", name] if get => Op::GetEnvironment(dec(name, false)),
        ["actions", "runs", r] if get => Op::GetRun(id(r)?),
        ["actions", "runs", r, "approvals"] if get => Op::GetApprovals(id(r)?),
        ["actions", "runs", r, "attempts", n, "jobs"] if get => Op::ListJobs(id(r)?, id(n)?),
        ["compare", more @ ..] if get && !more.is_empty() => {
            Op::Compare(dec(&more.join("/"), false))
        }
        ["deployments"] if get => Op::ListDeployments,
        ["deployments"] if post => Op::CreateDeployment,
        ["deployments", d] if get => Op::GetDeployment(id(d)?),
        ["deployments", d, "statuses"] if get => Op::ListStatuses(id(d)?),
        ["deployments", d, "statuses"] if post => Op::CreateStatus(id(d)?),
        ["issues", "comments", c] if patch => Op::UpdateComment(id(c)?),
        ["issues", n, "comments"] if get => Op::ListComments(id(n)?),
        ["issues", n, "comments"] if post => Op::CreateComment(id(n)?),
        _ => return None,
    };
    Some((owner, repo, op))
}

fn level(s: &str) -> u8 {
    match s {
        "write" | "admin" => 2,
        "read" => 1,
        _ => 0,
    }
}

impl Repo {
    fn new(fixture: Fixture, api_url: &str, ids: &mut Ids) -> anyhow::Result<Self> {
        let urls = Urls {
            api: fixture
                .api_url
                .clone()
                .unwrap_or_else(|| api_url.to_string())
                .trim_end_matches('/')
                .to_string(),
            web: fixture.server_url.trim_end_matches('/').to_string(),
        };
        let mut inner = Repo {
            fixture,
            urls,
            deployments: vec![],
            comments: vec![],
        };
        inner.check()?;
        let seeds = inner.fixture.deployments.clone();
        for (i, d) in seeds.iter().enumerate() {
            let sha = match &d.sha {
                Some(s) => s.clone(),
                None => inner.resolve(&d.git_ref).ok_or_else(|| {
                    anyhow::anyhow!("fixture deployment {i}: no ref found for {}", d.git_ref)
                })?,
            };
            let at = gj::rfc3339_secs(gj::FIXTURE_EPOCH + 3_600 + i as i64 * 60);
            let creator = d.creator.clone().unwrap_or_else(default_bot);
            let id = ids.deployment();
            let mut dep = Deployment {
                id,
                sha,
                git_ref: d.git_ref.clone(),
                task: d.task.clone(),
                payload: d.payload.clone().unwrap_or_else(|| json!({})),
                environment: d.environment.clone(),
                original_environment: d.environment.clone(),
                description: d.description.clone(),
                creator: creator.clone(),
                transient: d.transient_environment,
                production: d
                    .production_environment
                    .unwrap_or(d.environment == "production"),
                created_at: at.clone(),
                updated_at: at.clone(),
                statuses: vec![],
                job: None,
            };
            for s in &d.statuses {
                let sid = ids.status();
                dep.statuses.push(DeploymentStatus {
                    id: sid,
                    state: s.state.clone(),
                    description: s.description.clone(),
                    environment: d.environment.clone(),
                    target_url: s.log_url.clone(),
                    log_url: s.log_url.clone(),
                    environment_url: s.environment_url.clone(),
                    creator: creator.clone(),
                    created_at: at.clone(),
                });
            }
            inner.deployments.push(dep);
        }
        inner.job_deployments(ids);
        Ok(inner)
    }

    /// The run's head commit and branch, as `run_json` shows them.
    fn run_head(&self, r: &RunFx) -> (String, String) {
        let branch = r
            .head_branch
            .clone()
            .unwrap_or_else(|| self.fixture.repository.default_branch.clone());
        let sha = r
            .head_sha
            .clone()
            .or_else(|| self.resolve(&branch))
            .unwrap_or_else(|| "0".repeat(40));
        (sha, branch)
    }

    fn run_created(r: &RunFx) -> i64 {
        gj::FIXTURE_EPOCH + 86_400 + (r.id % 1_000) * 60
    }

    /// The review of `environment` in run `r` (github_jobs::Review).
    fn review(&self, r: &RunFx, environment: &str) -> Review {
        let required = self
            .env_fx(environment)
            .is_some_and(|(_, e)| !e.reviewers.is_empty() || !e.reviewer_teams.is_empty());
        let history: Vec<(Vec<String>, String)> = r
            .approvals
            .iter()
            .map(|a| (a.environments.clone(), a.state.clone()))
            .collect();
        Review::of(required, &history, environment)
    }

    /// GitHub's own deployment for every job of the fixture's runs that declares `environment:`,
    /// with the statuses GitHub would have written by now.
    fn job_deployments(&mut self, ids: &mut Ids) {
        let runs = self.fixture.runs.clone();
        let web = self.repo_web();
        for r in &runs {
            let (sha, branch) = self.run_head(r);
            let creator = r
                .triggering_actor
                .clone()
                .unwrap_or_else(|| r.actor.clone());
            for (pos, job) in r.jobs.iter().enumerate() {
                let Some(environment) = job.environment.clone() else {
                    continue;
                };
                let review = self.review(r, &environment);
                let (status, conclusion) = jobs::job_state(job, review);
                let at = gj::rfc3339_secs(Self::run_created(r) + 1);
                let log_url = jobs::job_log_url(&web, r.id, jobs::job_id(r.id, pos, job));
                let mut dep = Deployment {
                    id: ids.deployment(),
                    sha: sha.clone(),
                    git_ref: branch.clone(),
                    task: "deploy".into(),
                    payload: json!({}),
                    environment: environment.clone(),
                    original_environment: environment.clone(),
                    description: None,
                    creator: creator.clone(),
                    transient: false,
                    production: environment == "production",
                    created_at: at.clone(),
                    updated_at: at.clone(),
                    statuses: vec![],
                    job: Some((r.id, job.name.clone())),
                };
                for state in jobs::deployment_states(review, &status, conclusion.as_deref()) {
                    dep.statuses
                        .push(self.job_status(&dep, ids, state, &log_url, job, &at));
                }
                self.deployments.push(dep);
            }
        }
    }

    /// One status GitHub writes on a job's deployment.
    fn job_status(
        &self,
        dep: &Deployment,
        ids: &mut Ids,
        state: &str,
        log_url: &str,
        job: &JobFx,
        at: &str,
    ) -> DeploymentStatus {
        DeploymentStatus {
            id: ids.status(),
            state: state.into(),
            description: String::new(),
            environment: dep.environment.clone(),
            target_url: log_url.into(),
            log_url: log_url.into(),
            environment_url: job.url.clone().unwrap_or_default(),
            creator: dep.creator.clone(),
            created_at: at.into(),
        }
    }

    /// The job of run `run_id` named `name` ends: its status and conclusion in the fixture, and
    /// GitHub's final status on its deployment. `None` when there is no such job.
    fn finish_job(
        &mut self,
        run_id: i64,
        name: &str,
        conclusion: &str,
        ids: &mut Ids,
    ) -> Option<Value> {
        let r = self.fixture.runs.iter_mut().find(|r| r.id == run_id)?;
        let job = r.jobs.iter_mut().find(|j| j.name == name)?;
        job.status = "completed".into();
        job.conclusion = Some(conclusion.into());
        let job = job.clone();
        let Some(idx) = self.deployments.iter().position(|d| {
            d.job
                .as_ref()
                .is_some_and(|(id, n)| *id == run_id && n == name)
        }) else {
            return Some(json!({"job": name, "deployment": null}));
        };
        let state = jobs::final_state(Some(conclusion));
        let dep = self.deployments[idx].clone();
        let log_url = dep
            .statuses
            .last()
            .map(|s| s.log_url.clone())
            .unwrap_or_default();
        let now = rfc3339(SystemTime::now());
        let status = self.job_status(&dep, ids, state, &log_url, &job, &now);
        let d = &mut self.deployments[idx];
        d.statuses.push(status);
        d.updated_at = now;
        Some(json!({"job": name, "deployment": d.id, "state": state}))
    }

    /// `GET /actions/runs/{run_id}/attempts/{attempt}/jobs`: the jobs of that attempt.
    fn list_jobs(
        &self,
        run_id: i64,
        attempt: i64,
        q: &BTreeMap<String, String>,
        doc: &str,
    ) -> Reply {
        let Some(r) = self.fixture.runs.iter().find(|r| r.id == run_id) else {
            return not_found(doc);
        };
        if attempt < 1 || attempt > r.run_attempt {
            return not_found(doc);
        }
        let (sha, branch) = self.run_head(r);
        let name = r.name.clone().unwrap_or_else(|| "release".into());
        let info = jobs::RunInfo {
            run_id,
            attempt,
            head_sha: &sha,
            head_branch: &branch,
            workflow_name: &name,
            created: Self::run_created(r),
        };
        let (api, web) = (self.repo_api(), self.repo_web());
        let items: Vec<Value> = r
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.attempt.unwrap_or(r.run_attempt) == attempt)
            .map(|(pos, j)| {
                let review = match &j.environment {
                    Some(e) => self.review(r, e),
                    None => Review::NotRequired,
                };
                let state = jobs::job_state(j, review);
                jobs::job_json(&api, &web, &info, jobs::job_id(run_id, pos, j), j, &state)
            })
            .collect();
        let total = items.len();
        let mut reply = self.page(
            items,
            q,
            &format!("{api}/actions/runs/{run_id}/attempts/{attempt}/jobs"),
        );
        reply.body = Some(json!({"total_count": total, "jobs": reply.body.take()}));
        reply
    }

    /// Fixture consistency: every sha named must be a known commit.
    fn check(&self) -> anyhow::Result<()> {
        let known: HashSet<&str> = self
            .fixture
            .commits
            .iter()
            .map(|c| c.sha.as_str())
            .collect();
        for c in &self.fixture.commits {
            for p in &c.parents {
                anyhow::ensure!(
                    known.contains(p.as_str()),
                    "commit {}: unknown parent {p}",
                    c.sha
                );
            }
        }
        for (name, sha) in self.fixture.branches.iter().chain(self.fixture.tags.iter()) {
            anyhow::ensure!(
                known.contains(sha.as_str()),
                "ref {name}: unknown commit {sha}"
            );
        }
        for r in &self.fixture.runs {
            if let Some(s) = &r.head_sha {
                anyhow::ensure!(
                    known.contains(s.as_str()),
                    "run {}: unknown head_sha {s}",
                    r.id
                );
            }
        }
        Ok(())
    }

    fn apply_patches(&self, method: &str, path: &str, reply: &mut Reply) {
        let Some(body) = reply.body.as_mut() else {
            return;
        };
        for p in &self.fixture.response_patches {
            if p.path != path
                || p.method
                    .as_deref()
                    .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                continue;
            }
            for (ptr, val) in &p.set {
                set_pointer(body, ptr, val.clone());
            }
        }
    }

    fn user_id(&self, login: &str) -> i64 {
        self.fixture
            .users
            .get(login)
            .copied()
            .unwrap_or_else(|| gj::derived_user_id(login))
    }

    fn user(&self, login: &str) -> Value {
        gj::user(&self.urls, login, self.user_id(login), gj::user_kind(login))
    }

    fn repo_info(&self) -> gj::RepoInfo<'_> {
        let r = &self.fixture.repository;
        gj::RepoInfo {
            id: r.id,
            owner: &r.owner,
            owner_id: self.user_id(&r.owner),
            owner_type: &r.owner_type,
            name: &r.name,
            private: r.private,
            description: r.description.as_deref(),
            default_branch: &r.default_branch,
        }
    }

    fn repo_api(&self) -> String {
        self.urls.repo_api(
            &self.fixture.repository.owner,
            &self.fixture.repository.name,
        )
    }

    fn repo_web(&self) -> String {
        self.urls.repo_web(
            &self.fixture.repository.owner,
            &self.fixture.repository.name,
        )
    }

    /// Resolves a branch, tag, `refs/...` name, full sha or unique sha prefix (7+) to a commit sha.
    fn resolve(&self, r: &str) -> Option<String> {
        let f = &self.fixture;
        let name = r
            .strip_prefix("refs/heads/")
            .or_else(|| r.strip_prefix("refs/tags/"))
            .unwrap_or(r);
        if let Some(s) = f.branches.get(name).or_else(|| f.tags.get(name)) {
            return Some(s.clone());
        }
        if r.len() >= 7 && r.chars().all(|c| c.is_ascii_hexdigit()) {
            let lower = r.to_ascii_lowercase();
            let hits: Vec<&CommitFx> = f
                .commits
                .iter()
                .filter(|c| c.sha.starts_with(&lower))
                .collect();
            if hits.len() == 1 {
                return Some(hits[0].sha.clone());
            }
        }
        None
    }

    fn commit(&self, sha: &str) -> Option<(usize, &CommitFx)> {
        self.fixture
            .commits
            .iter()
            .enumerate()
            .find(|(_, c)| c.sha == sha)
    }

    /// The sha and all its ancestors.
    fn ancestors(&self, sha: &str) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut todo = vec![sha.to_string()];
        while let Some(s) = todo.pop() {
            if !seen.insert(s.clone()) {
                continue;
            }
            if let Some((_, c)) = self.commit(&s) {
                todo.extend(c.parents.iter().cloned());
            }
        }
        seen
    }

    fn commit_date(&self, idx: usize, c: &CommitFx) -> String {
        c.date
            .clone()
            .unwrap_or_else(|| gj::rfc3339_secs(gj::FIXTURE_EPOCH + 60 * idx as i64))
    }

    fn commit_json(&self, sha: &str) -> Value {
        let api = self.repo_api();
        let web = self.repo_web();
        let (idx, c) = match self.commit(sha) {
            Some(x) => x,
            None => return Value::Null,
        };
        let author = c.author.clone().unwrap_or_else(|| "alice".into());
        let date = self.commit_date(idx, c);
        let git_user = gj::git_user(&author, self.user_id(&author), &date);
        let tree = gj::tree_of(sha);
        json!({
            "url": format!("{api}/commits/{sha}"),
            "sha": sha,
            "node_id": format!("C_kwDO{sha}"),
            "html_url": format!("{web}/commit/{sha}"),
            "comments_url": format!("{api}/commits/{sha}/comments"),
            "commit": {
                "url": format!("{api}/git/commits/{sha}"),
                "author": git_user,
                "committer": git_user,
                "message": c.message,
                "comment_count": 0,
                "tree": {"sha": tree, "url": format!("{api}/git/trees/{tree}")}
            },
            "author": self.user(&author),
            "committer": self.user(&author),
            "parents": c.parents.iter().map(|p| json!({
                "sha": p, "url": format!("{api}/commits/{p}"), "html_url": format!("{web}/commit/{p}")
            })).collect::<Vec<_>>()
        })
    }

    fn env_fx(&self, name: &str) -> Option<(usize, &EnvFx)> {
        self.fixture
            .environments
            .iter()
            .enumerate()
            .find(|(_, e)| e.name.eq_ignore_ascii_case(name))
    }

    /// The environment fields shared by GET environment and the approvals list.
    fn env_head(&self, idx: usize, name: &str, id: Option<i64>) -> serde_json::Map<String, Value> {
        let id = id.unwrap_or(900_000_000 + idx as i64);
        let at = gj::rfc3339_secs(gj::FIXTURE_EPOCH);
        let v = json!({
            "id": id,
            "node_id": format!("EN_kwDO{id:08}"),
            "name": name,
            "url": format!("{}/environments/{}", self.repo_api(), enc(name)),
            "html_url": format!("{}/deployments/activity_log?environments_filter={}", self.repo_web(), enc(name)),
            "created_at": at,
            "updated_at": at,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn env_json(&self, idx: usize, e: &EnvFx) -> Value {
        let mut m = self.env_head(idx, &e.name, e.id);
        let base = 3_000_000 + 10 * idx as i64;
        let mut rules = vec![];
        if let Some(w) = e.wait_timer {
            rules.push(json!({"id": base + 1, "node_id": format!("GA_kwDO{:08}", base + 1), "type": "wait_timer", "wait_timer": w}));
        }
        if !e.reviewers.is_empty() || !e.reviewer_teams.is_empty() {
            let mut reviewers: Vec<Value> = e
                .reviewers
                .iter()
                .map(|l| json!({"type": "User", "reviewer": self.user(l)}))
                .collect();
            for (i, t) in e.reviewer_teams.iter().enumerate() {
                reviewers
                    .push(json!({"type": "Team", "reviewer": self.team(t, 5_000_000 + i as i64)}));
            }
            rules.push(json!({
                "id": base + 2, "node_id": format!("GA_kwDO{:08}", base + 2), "type": "required_reviewers",
                "prevent_self_review": e.prevent_self_review, "reviewers": reviewers
            }));
        }
        if e.branch_policy.is_some() {
            rules.push(json!({"id": base + 3, "node_id": format!("GA_kwDO{:08}", base + 3), "type": "branch_policy"}));
        }
        m.insert("protection_rules".into(), Value::Array(rules));
        m.insert(
            "deployment_branch_policy".into(),
            match &e.branch_policy {
                Some(b) => json!({"protected_branches": b.protected_branches, "custom_branch_policies": b.custom_branch_policies}),
                None => Value::Null,
            },
        );
        Value::Object(m)
    }

    fn team(&self, slug: &str, id: i64) -> Value {
        let org = &self.fixture.repository.owner;
        let api = format!(
            "{}/organizations/{}/team/{id}",
            self.urls.api,
            self.user_id(org)
        );
        json!({
            "id": id, "node_id": format!("T_kwDO{id:08}"), "name": slug, "slug": slug, "description": null,
            "privacy": "closed", "notification_setting": "notifications_enabled", "permission": "pull",
            "url": api, "html_url": format!("{}/orgs/{}/teams/{}", self.urls.web, enc(org), enc(slug)),
            "members_url": format!("{api}/members{{/member}}"), "repositories_url": format!("{api}/repos"),
            "parent": null
        })
    }

    fn run_json(&self, r: &RunFx) -> Value {
        let api = self.repo_api();
        let web = self.repo_web();
        let id = r.id;
        let (sha, branch) = self.run_head(r);
        let created = gj::rfc3339_secs(Self::run_created(r));
        let repo = Value::Object(gj::repo_minimal(&self.urls, &self.repo_info()));
        let head_commit = match self.commit(&sha) {
            Some((idx, c)) => {
                let author = c.author.clone().unwrap_or_else(|| "alice".into());
                let gu = gj::git_user(&author, self.user_id(&author), "");
                let who = json!({"name": gu["name"], "email": gu["email"]});
                json!({
                    "id": sha, "tree_id": gj::tree_of(&sha), "message": c.message,
                    "timestamp": self.commit_date(idx, c), "author": who, "committer": who
                })
            }
            None => Value::Null,
        };
        let workflow_id = 161_335;
        let name = r.name.clone().unwrap_or_else(|| "release".into());
        json!({
            "id": id,
            "name": name,
            "node_id": format!("WFR_kwLO{id:08}"),
            "head_branch": branch,
            "head_sha": sha,
            "path": r.path.clone().unwrap_or_else(|| ".github/workflows/release.yml".into()),
            "display_title": name,
            "run_number": r.run_number,
            "run_attempt": r.run_attempt,
            "event": r.event.clone().unwrap_or_else(|| "workflow_dispatch".into()),
            "status": r.status.clone().unwrap_or_else(|| "in_progress".into()),
            "conclusion": r.conclusion,
            "workflow_id": workflow_id,
            "check_suite_id": 20_000_000 + id,
            "check_suite_node_id": format!("CS_kwDO{id:08}"),
            "url": format!("{api}/actions/runs/{id}"),
            "html_url": format!("{web}/actions/runs/{id}"),
            "pull_requests": [],
            "created_at": created,
            "updated_at": created,
            "run_started_at": created,
            "actor": self.user(&r.actor),
            "triggering_actor": self.user(r.triggering_actor.as_deref().unwrap_or(&r.actor)),
            "jobs_url": format!("{api}/actions/runs/{id}/jobs"),
            "logs_url": format!("{api}/actions/runs/{id}/logs"),
            "check_suite_url": format!("{api}/check-suites/{}", 20_000_000 + id),
            "artifacts_url": format!("{api}/actions/runs/{id}/artifacts"),
            "cancel_url": format!("{api}/actions/runs/{id}/cancel"),
            "rerun_url": format!("{api}/actions/runs/{id}/rerun"),
            "previous_attempt_url": null,
            "workflow_url": format!("{api}/actions/workflows/{workflow_id}"),
            "head_commit": head_commit,
            "repository": repo,
            "head_repository": repo
        })
    }

    fn deployment_json(&self, d: &Deployment) -> Value {
        let api = self.repo_api();
        json!({
            "url": format!("{api}/deployments/{}", d.id),
            "id": d.id,
            "node_id": format!("DE_kwDO{:08}", d.id),
            "sha": d.sha,
            "ref": d.git_ref,
            "task": d.task,
            "payload": d.payload,
            "original_environment": d.original_environment,
            "environment": d.environment,
            "description": d.description,
            "creator": self.user(&d.creator),
            "created_at": d.created_at,
            "updated_at": d.updated_at,
            "statuses_url": format!("{api}/deployments/{}/statuses", d.id),
            "repository_url": api,
            "transient_environment": d.transient,
            "production_environment": d.production,
            "performed_via_github_app": self.via(d)
        })
    }

    /// `performed_via_github_app`: the GitHub Actions app for a job's deployment, else null.
    fn via(&self, d: &Deployment) -> Value {
        match d.job {
            Some(_) => jobs::actions_app(&self.urls),
            None => Value::Null,
        }
    }

    fn status_json(&self, d: &Deployment, s: &DeploymentStatus) -> Value {
        let api = self.repo_api();
        let mut v = json!({
            "url": format!("{api}/deployments/{}/statuses/{}", d.id, s.id),
            "id": s.id,
            "node_id": format!("DES_kwDO{:08}", s.id),
            "state": s.state,
            "creator": self.user(&s.creator),
            "description": s.description,
            "environment": s.environment,
            // GitHub answers "" when neither target_url nor log_url was given; the spec says
            // format uri, so Prism flags that: the action must always send log_url.
            "target_url": s.target_url,
            "created_at": s.created_at,
            "updated_at": s.created_at,
            "deployment_url": format!("{api}/deployments/{}", d.id),
            "repository_url": api,
            "performed_via_github_app": self.via(d)
        });
        // Optional in the spec: left out when empty rather than "" (GitHub sends "").
        if !s.environment_url.is_empty() {
            v["environment_url"] = json!(s.environment_url);
        }
        if !s.log_url.is_empty() {
            v["log_url"] = json!(s.log_url);
        }
        v
    }

    /// Answers one GitHub request.
    /// Answers one authenticated, permitted request for this repository.
    fn serve(&mut self, op: Op, query: &str, body: &Bytes, actor: &str, ids: &mut Ids) -> Reply {
        let q = parse_query(query);
        let doc = op.doc();
        match op {
            Op::GetRepo => Reply::json(200, gj::repo_full(&self.urls, &self.repo_info())),
            Op::GetEnvironment(name) => match self.env_fx(&name) {
                Some((idx, e)) => Reply::json(200, self.env_json(idx, e)),
                None => not_found(doc),
            },
            Op::GetRun(id) => match self.fixture.runs.iter().find(|r| r.id == id) {
                Some(r) => Reply::json(200, self.run_json(r)),
                None => not_found(doc),
            },
            Op::GetApprovals(id) => match self.fixture.runs.iter().find(|r| r.id == id) {
                Some(run) => {
                    let list: Vec<Value> = run
                        .approvals
                        .iter()
                        .map(|a| {
                            let envs: Vec<Value> = a
                                .environments
                                .iter()
                                .map(|n| match self.env_fx(n) {
                                    Some((idx, e)) => Value::Object(self.env_head(idx, &e.name, e.id)),
                                    None => Value::Object(self.env_head(999, n, None)),
                                })
                                .collect();
                            json!({"environments": envs, "state": a.state, "user": self.user(&a.user), "comment": a.comment})
                        })
                        .collect();
                    Reply::json(200, Value::Array(list))
                }
                None => not_found(doc),
            },
            Op::ListJobs(run, attempt) => self.list_jobs(run, attempt, &q, doc),
            Op::Compare(basehead) => self.compare(&basehead, doc),
            Op::ListDeployments => {
                let mut list: Vec<&Deployment> = self
                    .deployments
                    .iter()
                    .filter(|d| q.get("sha").is_none_or(|v| v.is_empty() || *v == d.sha))
                    .filter(|d| q.get("ref").is_none_or(|v| v.is_empty() || *v == d.git_ref))
                    .filter(|d| q.get("task").is_none_or(|v| v.is_empty() || *v == d.task))
                    .filter(|d| {
                        q.get("environment")
                            .is_none_or(|v| v.is_empty() || *v == d.environment)
                    })
                    .collect();
                list.sort_by_key(|d| std::cmp::Reverse(d.id));
                let items: Vec<Value> = list.iter().map(|d| self.deployment_json(d)).collect();
                self.page(items, &q, &format!("{}/deployments", self.repo_api()))
            }
            Op::GetDeployment(id) => match self.deployments.iter().find(|d| d.id == id) {
                Some(d) => Reply::json(200, self.deployment_json(d)),
                None => not_found(doc),
            },
            Op::ListStatuses(id) => match self.deployments.iter().find(|d| d.id == id) {
                Some(d) => {
                    let items: Vec<Value> = d
                        .statuses
                        .iter()
                        .rev()
                        .map(|s| self.status_json(d, s))
                        .collect();
                    self.page(
                        items,
                        &q,
                        &format!("{}/deployments/{id}/statuses", self.repo_api()),
                    )
                }
                None => not_found(doc),
            },
            Op::CreateDeployment => self.create_deployment(body, actor, doc, ids),
            Op::CreateStatus(id) => self.create_status(id, body, actor, doc, ids),
            Op::ListComments(n) if self.fixture.pull_requests.contains(&n) => {
                let items: Vec<Value> = self
                    .comments
                    .iter()
                    .filter(|c| c.issue == n)
                    .map(|c| self.comment_json(c))
                    .collect();
                self.page(
                    items,
                    &q,
                    &format!("{}/issues/{n}/comments", self.repo_api()),
                )
            }
            Op::CreateComment(n) if self.fixture.pull_requests.contains(&n) => {
                let text = match comments::body_of(body, doc) {
                    Ok(t) => t,
                    Err((status, v)) => return Reply::json(status, v),
                };
                let now = rfc3339(SystemTime::now());
                let c = Comment {
                    id: ids.comment(),
                    issue: n,
                    body: text,
                    user: actor.to_string(),
                    created_at: now.clone(),
                    updated_at: now,
                };
                let v = self.comment_json(&c);
                let location = v["url"].as_str().unwrap_or_default().to_string();
                self.comments.push(c);
                Reply::json(201, v).header("location", location)
            }
            Op::UpdateComment(id) => {
                let text = match comments::body_of(body, doc) {
                    Ok(t) => t,
                    Err((status, v)) => return Reply::json(status, v),
                };
                let Some(i) = self.comments.iter().position(|c| c.id == id) else {
                    return not_found(doc);
                };
                self.comments[i].body = text;
                self.comments[i].updated_at = rfc3339(SystemTime::now());
                Reply::json(200, self.comment_json(&self.comments[i]))
            }
            Op::ListComments(_) | Op::CreateComment(_) => not_found(doc),
        }
    }

    fn comment_json(&self, c: &Comment) -> Value {
        comments::to_json(c, &self.repo_api(), &self.repo_web(), self.user(&c.user))
    }

    /// One page of a list, with GitHub's Link header.
    fn page(&self, items: Vec<Value>, q: &BTreeMap<String, String>, base: &str) -> Reply {
        let per_page = q
            .get("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page = q
            .get("page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let last = items.len().div_ceil(per_page).max(1);
        let slice: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        let mut reply = Reply::json(200, Value::Array(slice));
        let mut keep: Vec<String> = q
            .iter()
            .filter(|(k, _)| *k != "page" && *k != "per_page")
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        keep.push(format!("per_page={per_page}"));
        let link =
            |p: usize, rel: &str| format!("<{base}?{}&page={p}>; rel=\"{rel}\"", keep.join("&"));
        let mut links = vec![];
        if page > 1 {
            links.push(link(page - 1, "prev"));
            links.push(link(1, "first"));
        }
        if page < last {
            links.push(link(page + 1, "next"));
            links.push(link(last, "last"));
        }
        if !links.is_empty() {
            reply = reply.header("link", links.join(", "));
        }
        reply
    }

    fn compare(&self, basehead: &str, doc: &str) -> Reply {
        let (base, head) = match basehead
            .split_once("...")
            .or_else(|| basehead.split_once(".."))
        {
            Some(x) => x,
            None => return not_found(doc),
        };
        let (Some(b), Some(h)) = (self.resolve(base), self.resolve(head)) else {
            return not_found(doc);
        };
        let anc_b = self.ancestors(&b);
        let anc_h = self.ancestors(&h);
        let depth = |s: &String| self.ancestors(s).len();
        let mut ahead: Vec<&String> = anc_h.iter().filter(|s| !anc_b.contains(*s)).collect();
        let behind = anc_b.iter().filter(|s| !anc_h.contains(*s)).count();
        ahead.sort_by_key(|s| (depth(s), self.commit(s).map(|(i, _)| i)));
        let merge_base = anc_b
            .intersection(&anc_h)
            .max_by_key(|s| (depth(s), self.commit(s).map(|(i, _)| i)));
        let Some(merge_base) = merge_base else {
            return not_found(doc);
        };
        let status = match (ahead.len(), behind) {
            (0, 0) => "identical",
            (_, 0) => "ahead",
            (0, _) => "behind",
            _ => "diverged",
        };
        let api = self.repo_api();
        let web = self.repo_web();
        let bh = format!("{}...{}", enc(base), enc(head));
        Reply::json(
            200,
            json!({
                "url": format!("{api}/compare/{bh}"),
                "html_url": format!("{web}/compare/{bh}"),
                "permalink_url": format!("{web}/compare/{}:{b}...{}:{h}", enc(&self.fixture.repository.owner), enc(&self.fixture.repository.owner)),
                "diff_url": format!("{web}/compare/{bh}.diff"),
                "patch_url": format!("{web}/compare/{bh}.patch"),
                "base_commit": self.commit_json(&b),
                "merge_base_commit": self.commit_json(merge_base),
                "status": status,
                "ahead_by": ahead.len(),
                "behind_by": behind,
                "total_commits": ahead.len(),
                "commits": ahead.iter().map(|s| self.commit_json(s)).collect::<Vec<_>>(),
                "files": []
            }),
        )
    }

    fn create_deployment(&mut self, body: &Bytes, actor: &str, doc: &str, ids: &mut Ids) -> Reply {
        let v: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Reply::json(400, gj::basic_error("Problems parsing JSON", doc, 400)),
        };
        let Some(git_ref) = v.get("ref").and_then(Value::as_str).map(str::to_string) else {
            return Reply::json(
                422,
                gj::validation_error("Invalid request.\n\n\"ref\" wasn't supplied.", doc, vec![]),
            );
        };
        let Some(sha) = self.resolve(&git_ref) else {
            return Reply::json(
                422,
                gj::validation_error(&format!("No ref found for: {git_ref}"), doc, vec![]),
            );
        };
        let default_branch = self.fixture.repository.default_branch.clone();
        let auto_merge = v.get("auto_merge").and_then(Value::as_bool).unwrap_or(true);
        if auto_merge && git_ref != default_branch && self.fixture.branches.contains_key(&git_ref) {
            let main_tip = self
                .fixture
                .branches
                .get(&default_branch)
                .cloned()
                .unwrap_or_default();
            if !main_tip.is_empty() && !self.ancestors(&sha).contains(&main_tip) {
                // GitHub merges the default branch into the ref and creates no deployment.
                return Reply::json(
                    202,
                    json!({"message": format!("Auto-merged {default_branch} into {git_ref} on deployment.")}),
                );
            }
        }
        let contexts = self
            .commit(&sha)
            .map(|(_, c)| c.statuses.clone())
            .unwrap_or_default();
        let required: Vec<String> = match v.get("required_contexts").and_then(Value::as_array) {
            Some(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            None => contexts.keys().cloned().collect(),
        };
        if required
            .iter()
            .any(|c| contexts.get(c).map(String::as_str) != Some("success"))
        {
            return Reply::json(
                409,
                gj::basic_error(
                    &format!("Conflict: Commit status checks failed for {git_ref}."),
                    doc,
                    409,
                ),
            );
        }
        let environment = v
            .get("environment")
            .and_then(Value::as_str)
            .unwrap_or("production")
            .to_string();
        let now = rfc3339(SystemTime::now());
        let id = ids.deployment();
        let d = Deployment {
            id,
            sha,
            git_ref,
            task: v
                .get("task")
                .and_then(Value::as_str)
                .unwrap_or("deploy")
                .to_string(),
            payload: match v.get("payload") {
                None | Some(Value::Null) => json!({}),
                Some(Value::String(s)) if s.is_empty() => json!({}),
                // GitHub parses a string payload as JSON when it can.
                Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
                Some(p) => p.clone(),
            },
            environment: environment.clone(),
            original_environment: environment.clone(),
            description: Some(
                v.get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            creator: actor.to_string(),
            transient: v
                .get("transient_environment")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            production: v
                .get("production_environment")
                .and_then(Value::as_bool)
                .unwrap_or(environment == "production"),
            created_at: now.clone(),
            updated_at: now,
            statuses: vec![],
            job: None,
        };
        let out = self.deployment_json(&d);
        self.deployments.push(d);
        Reply::json(201, out)
    }

    fn create_status(
        &mut self,
        id: i64,
        body: &Bytes,
        actor: &str,
        doc: &str,
        ids: &mut Ids,
    ) -> Reply {
        let Some(idx) = self.deployments.iter().position(|d| d.id == id) else {
            return not_found(doc);
        };
        let v: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Reply::json(400, gj::basic_error("Problems parsing JSON", doc, 400)),
        };
        const STATES: &[&str] = &[
            "error",
            "failure",
            "inactive",
            "in_progress",
            "queued",
            "pending",
            "success",
        ];
        let state = v.get("state").and_then(Value::as_str).unwrap_or("");
        if !STATES.contains(&state) {
            return Reply::json(
                422,
                gj::validation_error(
                    "Validation Failed",
                    doc,
                    vec![
                        json!({"resource": "DeploymentStatus", "field": "state", "code": "invalid"}),
                    ],
                ),
            );
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let log_url = if s("log_url").is_empty() {
            s("target_url")
        } else {
            s("log_url")
        };
        let dep = &self.deployments[idx];
        let environment = match s("environment") {
            e if !e.is_empty() => e,
            _ => dep
                .statuses
                .last()
                .map(|x| x.environment.clone())
                .unwrap_or_else(|| dep.environment.clone()),
        };
        let now = rfc3339(SystemTime::now());
        let status = DeploymentStatus {
            id: ids.status(),
            state: state.to_string(),
            description: s("description"),
            environment: environment.clone(),
            target_url: log_url.clone(),
            log_url,
            environment_url: s("environment_url"),
            creator: actor.to_string(),
            created_at: now.clone(),
        };
        let auto_inactive = v
            .get("auto_inactive")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        // GitHub: a success status adds `inactive` to every prior non-transient, non-production
        // deployment in the same environment whose latest status is success.
        if state == "success" && auto_inactive {
            let others: Vec<usize> = self
                .deployments
                .iter()
                .enumerate()
                .filter(|(i, d)| {
                    *i != idx
                        && d.id < id
                        && !d.transient
                        && !d.production
                        && d.environment == environment
                        && d.statuses.last().is_some_and(|s| s.state == "success")
                })
                .map(|(i, _)| i)
                .collect();
            for i in others {
                let sid = ids.status();
                let d = &mut self.deployments[i];
                let prev = d
                    .statuses
                    .last()
                    .cloned()
                    .expect("filtered on a last status");
                d.statuses.push(DeploymentStatus {
                    id: sid,
                    state: "inactive".into(),
                    description: String::new(),
                    creator: actor.to_string(),
                    created_at: now.clone(),
                    ..prev
                });
                d.updated_at = now.clone();
            }
        }
        let dep = &mut self.deployments[idx];
        dep.statuses.push(status.clone());
        dep.updated_at = now;
        let dep = self.deployments[idx].clone();
        let location = format!(
            "{}/deployments/{id}/statuses/{}",
            self.repo_api(),
            status.id
        );
        Reply::json(201, self.status_json(&dep, &status)).header("location", location)
    }
}

/// Sets the value at a JSON pointer, inserting a missing last object key.
fn set_pointer(root: &mut Value, ptr: &str, val: Value) {
    if let Some(slot) = root.pointer_mut(ptr) {
        *slot = val;
        return;
    }
    if let Some((parent, key)) = ptr.rsplit_once('/') {
        let key = key.replace("~1", "/").replace("~0", "~");
        if let Some(Value::Object(m)) = root.pointer_mut(parent) {
            m.insert(key, val);
        }
    }
}

/// RFC 3339 with milliseconds, for the log.
fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let base = gj::rfc3339_secs(d.as_secs() as i64);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), d.subsec_millis())
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(app: App, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "[github_standin] listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_fixture() -> Fixture {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/github/default.json");
        load_fixture(&path).expect("the default fixture loads")
    }

    #[test]
    fn the_default_fixture_resolves_refs_and_compares() {
        let inner = Inner::new(default_fixture(), "http://127.0.0.1:45010").unwrap();
        let repo = &inner.repos["acme/trader"];
        let c3 = "ee3b2f7904fd6c989c87d6b5f7ecd382679612f4";
        assert_eq!(repo.resolve("main").as_deref(), Some(c3));
        assert_eq!(repo.resolve("refs/tags/v1.1.0").as_deref(), Some(c3));
        assert_eq!(repo.resolve("ee3b2f7").as_deref(), Some(c3));
        assert_eq!(repo.resolve("v9"), None);
        let r = repo.compare("main...v1.2.0-rc.1", DOC_ROOT);
        let b = r.body.unwrap();
        assert_eq!(
            (
                b["status"].as_str(),
                b["ahead_by"].as_u64(),
                b["behind_by"].as_u64()
            ),
            (Some("diverged"), Some(1), Some(1))
        );
    }

    #[test]
    fn fixture_errors_are_caught() {
        let mut f = default_fixture();
        f.commits[1].parents = vec!["0".repeat(40)];
        assert!(Inner::new(f, "http://x").is_err());
        let typo = serde_json::from_str::<Fixture>(
            r#"{"repository": {"owner": "a", "name": "b"}, "enviroments": []}"#,
        );
        assert!(typo.is_err(), "unknown keys are errors");
    }

    #[test]
    fn faults_are_used_up_in_order() {
        let mut inner = Inner::new(default_fixture(), "http://x").unwrap();
        let fault = |prefix: &str, count| Fault {
            kind: "bad_gateway".into(),
            path_prefix: prefix.into(),
            method: Some("POST".into()),
            count,
            status: None,
            body: None,
            retry_after: None,
            delay_ms: None,
        };
        inner
            .faults
            .push_back(fault("/repos/acme/trader/deployments", 2));
        assert!(
            inner
                .take_fault("GET", "/repos/acme/trader/deployments")
                .is_none()
        );
        assert!(
            inner
                .take_fault("POST", "/repos/acme/trader/deployments")
                .is_some()
        );
        assert!(
            inner
                .take_fault("post", "/repos/acme/trader/deployments/1/statuses")
                .is_some()
        );
        assert!(
            inner
                .take_fault("POST", "/repos/acme/trader/deployments")
                .is_none()
        );
    }
}
