//! `mode: plan` as a reviewer meets it, on the bed: on a `pull_request` event the plan is one
//! comment on the pull request, created by the first run and updated by the next (through the
//! GitHub stand-in behind Prism, which checks every request and answer against GitHub's OpenAPI
//! description), with the `plan_changes` and `plan_markdown_path` outputs; no secret reaches
//! the comment; a token without the permission gets one warning and the summary still has the
//! plan. And the plan tells the truth: with the traderadmin chart on a cluster serving the
//! ServiceMonitor CRD, an unchanged release plans to zero changes (helm 3 and 4), the HPA's
//! replica count is no change, hand edits are drift, a new version changes exactly the two
//! Deployments. Needs a running bed with the GitHub stand-in (`make testbed-up`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::case::{Case, Finished, Running, assert_success};
use serde_json::{Value, json};

/// A secret input's value (`registry_password`) and a chart Secret's value: neither may reach
/// GitHub, the summary or the plan file.
const CANARY_INPUT: &str = "canary-input-7f3a9c";
const CANARY_SECRET: &str = "canary-secret-2b8e41";
const PR: u64 = 7;

/// GitHub's own `pull_request` webhook payload (@octokit/webhooks-examples), made about PR 7.
fn pull_request_event(dir: &Path) -> Option<std::path::PathBuf> {
    let path = common::tools::require(
        "@octokit/webhooks-examples (npm)",
        common::tools::cache()
            .join("npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"),
    )?;
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut event = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "pull_request")
        .flat_map(|e| e["examples"].as_array().unwrap().iter())
        .find(|x| x["action"] == "opened" || x["action"] == "synchronize")
        .cloned()
        .expect("a pull_request example");
    event["number"] = json!(PR);
    event["pull_request"]["number"] = json!(PR);
    let file = dir.join("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    Some(file)
}

/// The plan of `tag` run as a `pull_request` workflow of `repo` with `token`.
fn plan_on_pr(
    case: &Case,
    repo: &common::StandinRepo,
    event: &Path,
    token: &str,
    tag: &str,
) -> Finished {
    let set = format!("image.tag={tag}\nscanner.image.tag={tag}\ndbPassword={CANARY_SECRET}");
    let mut cmd = case.action(
        tag,
        &[
            ("mode", "plan"),
            ("set", &set),
            ("github_token", token),
            ("registry_host", "127.0.0.1:1"),
            ("registry_username", "bot"),
            ("registry_password", CANARY_INPUT),
        ],
    );
    cmd.env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", event)
        .env("GITHUB_REPOSITORY", &repo.full)
        .env("GITHUB_API_URL", &repo.api)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_RUN_ID", "1001")
        .env("GITHUB_RUN_ATTEMPT", "1");
    Running::start(cmd, case.ws.path()).wait()
}

/// The comments the stand-in holds for `repo`.
async fn comments(repo: &common::StandinRepo) -> Vec<Value> {
    let state = repo.control("GET", "/_standin/state", None).await;
    state["repos"][repo.full.to_ascii_lowercase()]["comments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `METHOD path-after-repo -> status` of each comment call.
async fn comment_calls(repo: &common::StandinRepo) -> Vec<String> {
    let prefix = format!("/repos/{}", repo.full);
    repo.log()
        .await
        .iter()
        .filter(|e| e["path"].as_str().unwrap().contains("/issues/"))
        .map(|e| {
            format!(
                "{} {} -> {}",
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap().strip_prefix(&prefix).unwrap(),
                e["status"]
            )
        })
        .collect()
}

fn assert_no_canary(what: &str, text: &str) {
    assert!(
        !text.contains(CANARY_INPUT) && !text.contains(CANARY_SECRET),
        "a secret reached {what}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_is_one_comment_on_the_pull_request_created_then_updated() {
    let case = Case::new("plan-pr", 3).await;
    let bed = &case.bed;
    let (Some(api), Some(standin)) = (bed.github_api_url.clone(), bed.github_standin_url.clone())
    else {
        panic!("the bed has no GitHub stand-in (TD_BED_GITHUB=0?)");
    };
    let repo = common::StandinRepo::add(api, standin, "td-plan-pr", |_| {}).await;
    let Some(event) = pull_request_event(case.ws.path()) else {
        return;
    };
    let set = "image.tag=v1.0.0\nscanner.image.tag=v1.0.0\ndbPassword=old-password";
    assert_success(&case.run("v1.0.0", &[("set", set)]));

    // First run: the comment is created.
    let first = plan_on_pr(&case, &repo, &event, "ghs_bed_pr", "v1.2.0");
    assert_eq!(first.code, Some(0), "{}", first.log());
    // The orch Deployment, the scanner StatefulSet (image and version annotation) and the Secret.
    assert_eq!(first.out("plan_changes"), "3");
    let rel = first.out("plan_markdown_path");
    assert!(!rel.starts_with('/'), "relative to the workspace: {rel}");
    let file = std::fs::read_to_string(case.ws.path().join(rel)).expect("the plan's markdown");
    assert!(
        file.starts_with("### trader-deploy plan: 3 changed, 0 added, 0 removed in dev\n"),
        "{file}"
    );
    assert!(
        first.log().contains("Created the plan comment"),
        "{}",
        first.log()
    );
    assert_eq!(
        comment_calls(&repo).await,
        [
            format!("GET /issues/{PR}/comments -> 200"),
            format!("POST /issues/{PR}/comments -> 201"),
        ]
    );
    let posted = comments(&repo).await;
    assert_eq!(posted.len(), 1, "{posted:?}");
    let body = posted[0]["body"].as_str().unwrap();
    assert!(
        body.starts_with(&format!(
            "<!-- trader-deploy plan: release={} namespace={} environment=dev -->\n\
             ### trader-deploy plan: 3 changed, 0 added, 0 removed in dev\n",
            case.release, case.ns
        )),
        "{body}"
    );
    // Folded per object, with the change itself inside.
    let orch = format!(
        "<summary>changed <code>Deployment {}/{}-orch</code></summary>",
        case.ns, case.release
    );
    assert!(body.contains(&orch), "{body}");
    assert!(
        body.contains("+        image: 127.0.0.1:45000/acme/python-orch:v1.2.0"),
        "{body}"
    );
    assert!(body.contains("| Version | `v1.2.0` |"), "{body}");
    assert!(body.contains("| Approval | not needed |"), "{body}");
    assert!(body.contains("password: (redacted"), "{body}");
    for (what, text) in [
        ("the comment", body),
        ("the plan file", &file),
        ("the summary", &first.summary),
    ] {
        assert_no_canary(what, text);
    }

    // Second run (another push to the pull request): the same comment is updated.
    let second = plan_on_pr(&case, &repo, &event, "ghs_bed_pr", "v1.1.0");
    assert_eq!(second.code, Some(0), "{}", second.log());
    assert!(
        second.log().contains("Updated the plan comment"),
        "{}",
        second.log()
    );
    let id = posted[0]["id"].as_i64().unwrap();
    assert_eq!(
        comment_calls(&repo).await[2..],
        [
            format!("GET /issues/{PR}/comments -> 200"),
            format!("PATCH /issues/comments/{id} -> 200"),
        ]
    );
    let now = comments(&repo).await;
    assert_eq!(now.len(), 1, "never a second comment: {now:?}");
    let body = now[0]["body"].as_str().unwrap();
    assert!(body.contains("| Version | `v1.1.0` |"), "{body}");
    assert_no_canary("the updated comment", body);
    // What went to GitHub at all: no request body carried a secret.
    for e in repo.log().await {
        assert_no_canary("a GitHub request", &e["body"].to_string());
    }

    // Nothing was deployed by either plan.
    assert_eq!(case.history().len(), 1);
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_permission_one_line_says_so_and_the_summary_keeps_the_plan() {
    let case = Case::new("plan-noperm", 3).await;
    let bed = &case.bed;
    let (Some(api), Some(standin)) = (bed.github_api_url.clone(), bed.github_standin_url.clone())
    else {
        panic!("the bed has no GitHub stand-in (TD_BED_GITHUB=0?)");
    };
    let repo = common::StandinRepo::add(api, standin, "td-plan-noperm", |_| {}).await;
    let Some(event) = pull_request_event(case.ws.path()) else {
        return;
    };
    assert_success(&case.run("v1.0.0", &[]));
    let f = plan_on_pr(&case, &repo, &event, "ghs_bed_readonly", "v1.2.0");
    assert_eq!(f.code, Some(0), "{}", f.log());
    let warnings: Vec<&str> = f
        .lines
        .iter()
        .map(|l| l.1.as_str())
        .filter(|l| l.starts_with("::warning title=Plan comment::"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", f.log());
    assert!(
        warnings[0].contains("pull-requests: write"),
        "names the permission: {}",
        warnings[0]
    );
    assert!(
        f.summary.contains("### trader-deploy plan: "),
        "{}",
        f.summary
    );
    assert_eq!(
        comment_calls(&repo).await,
        [format!("GET /issues/{PR}/comments -> 403")]
    );
    assert!(comments(&repo).await.is_empty());
    case.done().await;
}

// ---------------------------------------------------------------------------------------------
// The truthful plan: the traderadmin chart with prod's values (HPAs, ServiceMonitor) on a
// cluster that serves the ServiceMonitor CRD.

/// Serves monitoring.coreos.com/v1 ServiceMonitor (idempotent: applied, then awaited until
/// Established). Left in place: tests running beside this one may plan against it too.
async fn install_servicemonitor_crd(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    let path = common::repo_root().join("tests/fixtures/crds/servicemonitor.yaml");
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "servicemonitors.monitoring.coreos.com";
    api.patch(
        name,
        &PatchParams::apply("trader-deploy-tests"),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    common::wait_for(
        "the ServiceMonitor CRD Established",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let c = api.get(name).await.map_err(|e| e.to_string())?;
                let ok = c
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                if ok { Ok(()) } else { Err("not yet".into()) }
            }
        },
    )
    .await;
}

/// A workspace with the traderadmin chart and prod's values as `preprod`'s (an environment
/// that is not protected, so the bed needs no approval).
struct Traderadmin {
    bed: common::Bed,
    client: kube::Client,
    ws: tempfile::TempDir,
    ns: String,
    major: u8,
}

impl Traderadmin {
    async fn new(major: u8) -> Traderadmin {
        let bed = common::Bed::load();
        let client = bed.client().await;
        install_servicemonitor_crd(&client).await;
        let ns = common::create_namespace(&client, &format!("plan-truth-h{major}")).await;
        let ws = tempfile::tempdir().unwrap();
        let root = common::repo_root();
        common::case::copy_dir(
            &root.join("examples/charts/traderadmin"),
            &ws.path().join("chart"),
        );
        std::fs::create_dir_all(ws.path().join("deploy/values")).unwrap();
        std::fs::copy(
            root.join("deploy/values/values-prod.yaml"),
            ws.path().join("deploy/values/values-preprod.yaml"),
        )
        .unwrap();
        Traderadmin {
            bed,
            client,
            ws,
            ns,
            major,
        }
    }

    fn run(&self, version: &str, mode: &str) -> Finished {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
        for (k, _) in std::env::vars() {
            if k.starts_with("INPUT_") || k.starts_with("GITHUB_") || k == "KUBECONFIG" {
                cmd.env_remove(k);
            }
        }
        let images = "image.pythonOrch=127.0.0.1:45000/acme/python-orch\n\
                      image.goScanner=127.0.0.1:45000/acme/go-scanner";
        let kubeconfig = std::fs::read_to_string(&self.bed.kubeconfig).unwrap();
        let helm = self.bed.helm_path(self.major).display().to_string();
        for (k, v) in [
            ("chart", "chart"),
            ("namespace", self.ns.as_str()),
            ("environment", "preprod"),
            ("version", version),
            ("images", images),
            ("verify_images", "false"),
            ("mode", mode),
            ("kubeconfig", &kubeconfig),
            ("timeout", "150s"),
            ("helm", &helm),
        ] {
            cmd.env(format!("INPUT_{}", k.to_uppercase()), v);
        }
        let home = self.ws.path().join("helm");
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", self.ws.path())
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"));
        Running::start(cmd, self.ws.path()).wait()
    }

    fn plan(&self, version: &str) -> Finished {
        let f = self.run(version, "plan");
        assert_eq!(f.code, Some(0), "{}", f.log());
        f
    }

    fn kubectl(&self, args: &[&str]) {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.bed.kubeconfig)
            .args(["-n", &self.ns])
            .args(args);
        let out = common::run_with_deadline(&mut cmd, Duration::from_secs(30));
        assert!(out.status.success(), "kubectl {args:?}: {out:?}");
    }

    async fn replicas(&self, name: &str) -> i32 {
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(self.client.clone(), &self.ns);
        api.get(name).await.unwrap().spec.unwrap().replicas.unwrap()
    }
}

/// The removed (`-`) and added (`+`) lines of a plan summary's diffs, headers left out.
fn diff_lines(summary: &str) -> Vec<&str> {
    summary
        .split("```diff\n")
        .skip(1)
        .flat_map(|block| block.split("```").next().unwrap().lines())
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("---")
                && !l.starts_with("+++")
        })
        .collect()
}

/// The changed objects a plan's summary names (`changed <code>KEY</code>`).
fn changed_objects(summary: &str) -> Vec<String> {
    summary
        .split("<summary>changed <code>")
        .skip(1)
        .map(|s| s.split("</code>").next().unwrap().to_string())
        .collect()
}

async fn truthful_plan(major: u8) {
    let t = Traderadmin::new(major).await;
    let (orch, scanner) = ("traderadmin-python-orch", "traderadmin-go-scanner");
    assert_success(&t.run("v1.0.0", "deploy"));
    let monitors = kube::Api::<kube::api::DynamicObject>::namespaced_with(
        t.client.clone(),
        &t.ns,
        &kube::api::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "monitoring.coreos.com",
            "v1",
            "ServiceMonitor",
        )),
    );
    assert_eq!(
        monitors
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        1,
        "the deploy made the ServiceMonitor (the cluster serves its CRD)"
    );

    // Unchanged: zero changes (the ServiceMonitor is not "removed", defaults are no change).
    let same = t.plan("v1.0.0");
    assert_eq!(same.out("plan_changes"), "0", "{}", same.summary);
    assert!(
        same.summary
            .contains("0 changed, 0 added, 0 removed in preprod\n"),
        "{}",
        same.summary
    );
    assert!(same.summary.contains("No changes"), "{}", same.summary);

    // The HPA's replica count: the real HPA controller brings a count above maxReplicas (4)
    // back to 4; the chart keeps what the HPA chose, so that is no change (and no drift: the
    // HPA is the cluster's own controller).
    t.kubectl(&["scale", &format!("deployment/{orch}"), "--replicas=9"]);
    common::wait_for(
        "the HPA to scale orch to 4",
        Duration::from_secs(90),
        || async {
            match t.replicas(orch).await {
                4 => Ok(()),
                n => Err(format!("{n} replicas")),
            }
        },
    )
    .await;
    let hpa = t.plan("v1.0.0");
    assert_eq!(hpa.out("plan_changes"), "0", "{}", hpa.summary);
    assert!(!hpa.summary.contains("Drift"), "{}", hpa.summary);

    // Hand edits: a scale within the HPA's range and an annotation are drift; neither is
    // something the deploy changes.
    t.kubectl(&["scale", &format!("deployment/{scanner}"), "--replicas=3"]);
    t.kubectl(&["annotate", &format!("deployment/{orch}"), "team=risk"]);
    let drift = t.plan("v1.0.0");
    assert_eq!(drift.out("plan_changes"), "0", "{}", drift.summary);
    assert!(
        drift.summary.contains("; 2 objects edited by hand\n"),
        "{}",
        drift.summary
    );
    assert!(
        drift.summary.contains(&format!(
            "- `Deployment {}/{scanner}`: spec.replicas by kubectl\n",
            t.ns
        )),
        "{}",
        drift.summary
    );
    assert!(
        drift.summary.contains(&format!(
            "- `Deployment {}/{orch}`: metadata.annotations.team by kubectl-annotate\n",
            t.ns
        )),
        "{}",
        drift.summary
    );

    // A new version: exactly the two Deployments change, and only in their image and version.
    let new = t.plan("v1.1.0");
    assert_eq!(new.out("plan_changes"), "2", "{}", new.summary);
    let mut changed = changed_objects(&new.summary);
    changed.sort();
    assert_eq!(
        changed,
        [
            format!("Deployment {}/{scanner}", t.ns),
            format!("Deployment {}/{orch}", t.ns)
        ]
    );
    for line in diff_lines(&new.summary) {
        assert!(
            line.contains("v1.0.0") || line.contains("v1.1.0"),
            "only the version changes: {line}\n{}",
            new.summary
        );
    }
    common::delete_namespace(&t.client, &t.ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_tells_the_truth_helm3() {
    truthful_plan(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_tells_the_truth_helm4() {
    truthful_plan(4).await;
}

/// What the deployed revision set and the new values no longer set shows as removed (helm's
/// three-way merge deletes it), although the dry run's own field manager owns nothing to give
/// up: the test chart's `realNode` placement (nodeSelector, tolerations) dropped.
async fn a_field_the_chart_drops_is_a_change(major: u8) {
    let case = Case::new("plan-drop", major).await;
    let chart = case.ws.path().join("chart");
    let mut helm = case.bed.helm(major);
    helm.args(["upgrade", "--install", &case.release])
        .arg(&chart)
        .args(["-n", &case.ns, "--set", "realNode=true"]);
    case.bed.run(&mut helm, Duration::from_secs(60));
    let f = case.run("v1.0.0", &[("mode", "plan")]);
    assert_eq!(f.code, Some(0), "{}", f.log());
    assert_eq!(f.out("plan_changes"), "2", "{}", f.summary);
    let removed: Vec<&str> = diff_lines(&f.summary)
        .into_iter()
        .filter(|l| l.starts_with('-'))
        .collect();
    for field in ["nodeSelector:", "tolerations:"] {
        assert_eq!(
            removed
                .iter()
                .filter(|l| l.trim_start_matches('-').trim() == field)
                .count(),
            2,
            "{field} removed from the Deployment and the StatefulSet: {removed:?}\n{}",
            f.summary
        );
    }
    assert!(
        removed.iter().all(|l| !l.contains("image")),
        "nothing else changes: {removed:?}"
    );
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_the_chart_drops_is_a_change_helm3() {
    a_field_the_chart_drops_is_a_change(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_the_chart_drops_is_a_change_helm4() {
    a_field_the_chart_drops_is_a_change(4).await;
}
