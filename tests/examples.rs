//! The shipped examples agree with the action and the chart: every `org/trader-deploy@v1` step
//! in examples/workflows uses only inputs action.yml declares, every workflow asks for no more
//! than the least-privilege permissions, deploys are serialised per environment, and the
//! `images` keys the workflows set are single-string image keys of the example chart.
//! (actionlint runs in tests/lint_files.rs; the chart on a cluster in tests/bed_examples.rs.)

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::tools::actionlint;
use trader_deploy::manifest::Yaml as Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    trader_deploy::manifest::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn action_inputs() -> BTreeSet<String> {
    let action = yaml(&repo().join("action.yml"));
    action["inputs"]
        .as_mapping()
        .expect("action.yml inputs")
        .keys()
        .map(|k| k.as_str().to_string())
        .collect()
}

fn workflows() -> Vec<(String, Value)> {
    let dir = repo().join("examples/workflows");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                yaml(&p),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The `with` mappings of a job's `uses: org/trader-deploy@v1` steps.
fn job_action_steps(job: &Value) -> Vec<Value> {
    job["steps"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|s| s["uses"].as_str() == Some("org/trader-deploy@v1"))
        .map(|s| s["with"].clone())
        .collect()
}

/// Every step `uses: org/trader-deploy@v1` of a workflow: (job name, its `with` mapping).
fn action_steps(wf: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, job) in wf["jobs"].as_mapping().expect("jobs") {
        for with in job_action_steps(job) {
            out.push((name.as_str().to_string(), with));
        }
    }
    out
}

/// The `images` input's lines as (helm key, repository).
fn image_lines(with: &Value) -> Vec<(String, String)> {
    with["images"]
        .as_str()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, r) = l.split_once('=').expect("key=repository");
            (k.to_string(), r.to_string())
        })
        .collect()
}

#[test]
fn workflow_steps_use_only_declared_inputs() {
    let declared = action_inputs();
    let mut steps = 0;
    for (file, wf) in workflows() {
        for (job, with) in action_steps(&wf) {
            steps += 1;
            for key in with.as_mapping().expect("with").keys() {
                let key = key.as_str();
                assert!(
                    declared.contains(key),
                    "{file} job {job}: input {key:?} is not declared in action.yml"
                );
            }
        }
    }
    assert!(
        steps >= 5,
        "expected the action in every example workflow, found {steps} steps"
    );
}

#[test]
fn workflows_ask_for_least_privilege() {
    let allowed = [
        ("contents", "read"),
        ("deployments", "write"),
        ("actions", "read"),
    ];
    for (file, wf) in workflows() {
        let perms = wf["permissions"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{file}: no top-level permissions mapping"));
        for (k, v) in perms {
            let pair = (k.as_str(), v.as_str().unwrap());
            assert!(
                allowed.contains(&pair),
                "{file}: permission {pair:?} is more than needed"
            );
        }
        for (job, j) in wf["jobs"].as_mapping().unwrap() {
            assert!(
                j.get("permissions").is_none(),
                "{file} job {job:?}: job-level permissions widen the workflow's"
            );
        }
    }
}

/// The short environment name of a step: from its last (most specific) values file
/// (`values-<env>.yaml`), else its `environment` input.
fn short_env(with: &Value) -> String {
    if let Some(files) = with["values_files"].as_str() {
        let re = regex::Regex::new(r"values-(.+)\.yaml").unwrap();
        if let Some(c) = re.captures_iter(files).last() {
            return c[1].to_string();
        }
    }
    let env = with["environment"].as_str().unwrap_or("");
    env.replace(
        "${{ inputs.environment == 'prod' && 'production' || inputs.environment }}",
        "${{ inputs.environment }}",
    )
}

#[test]
fn deploys_are_serialised_per_environment() {
    for (file, wf) in workflows() {
        for (job, j) in wf["jobs"].as_mapping().unwrap() {
            for with in job_action_steps(j) {
                if with["mode"].as_str() == Some("validate") {
                    continue;
                }
                let group = j["concurrency"]["group"]
                    .as_str()
                    .or_else(|| wf["concurrency"]["group"].as_str())
                    .unwrap_or_else(|| panic!("{file} job {job:?}: no concurrency group"));
                assert_eq!(
                    group,
                    format!("trader-deploy-{}", short_env(&with)),
                    "{file} job {job:?}: the concurrency group is not the environment's"
                );
            }
        }
    }
}

/// The action checks the approval of, and records the deployment under, its `environment`
/// input: it must be the GitHub environment the job declares.
#[test]
fn action_environment_is_the_jobs_environment() {
    for (file, wf) in workflows() {
        for (job, j) in wf["jobs"].as_mapping().unwrap() {
            for with in job_action_steps(j) {
                if with["mode"].as_str() == Some("validate") {
                    continue;
                }
                let declared = j["environment"]["name"]
                    .as_str()
                    .or_else(|| j["environment"].as_str())
                    .unwrap_or_else(|| panic!("{file} job {job:?}: no environment"));
                assert_eq!(
                    with["environment"].as_str(),
                    Some(declared),
                    "{file} job {job:?}: the action's environment is not the job's"
                );
            }
        }
    }
}

#[test]
fn triggers_cover_the_pipeline() {
    let wfs = workflows();
    let find = |pred: &dyn Fn(&Value) -> bool| wfs.iter().any(|(_, wf)| pred(wf));
    assert!(
        find(
            &|wf| wf["on"]["push"]["branches"][0].as_str() == Some("main")
                && action_steps(wf)
                    .iter()
                    .any(|(_, w)| w["environment"].as_str() == Some("dev"))
        ),
        "no workflow deploys pushes to main to dev"
    );
    assert!(
        find(&|wf| wf["on"]["push"]["tags"][0].as_str() == Some("v*")
            && wf["jobs"].as_mapping().unwrap().values().any(|j| {
                j["environment"]["name"].as_str() == Some("production")
                    && job_action_steps(j).iter().any(|w| {
                        w["values_files"].as_str() == Some("deploy/values/values-prod.yaml")
                    })
            })),
        "no v* tag workflow deploys prod behind the production environment"
    );
    let dispatch_choices = |wf: &Value| {
        wf["on"]["workflow_dispatch"]["inputs"]["environment"]["options"]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
    };
    assert!(
        find(
            &|wf| dispatch_choices(wf).is_some_and(|c| c == ["dev", "staging", "prod"])
                && wf["on"]["workflow_dispatch"]["inputs"]
                    .get("version")
                    .is_some()
                && action_steps(wf)
                    .iter()
                    .any(|(_, w)| w.get("mode").is_none())
        ),
        "no dispatch deploy with an environment choice and a version"
    );
    assert!(
        find(&|wf| dispatch_choices(wf).is_some()
            && action_steps(wf)
                .iter()
                .any(|(_, w)| w["mode"].as_str() == Some("rollback")
                    && w["rollback_revision"].as_str().is_some())),
        "no dispatch rollback"
    );
    assert!(
        find(&|wf| wf["on"].get("pull_request").is_some()
            && action_steps(wf)
                .iter()
                .any(|(_, w)| w["mode"].as_str() == Some("validate"))),
        "no validate-chart on pull requests"
    );
}

#[test]
fn image_keys_are_string_keys_of_the_chart() {
    let values = yaml(&repo().join("examples/charts/traderadmin/values.yaml"));
    let mut seen = 0;
    for (file, wf) in workflows() {
        for (job, with) in action_steps(&wf) {
            for (key, repository) in image_lines(&with) {
                seen += 1;
                let mut v = &values;
                for part in key.split('.') {
                    v = &v[part];
                }
                let default = v.as_str().unwrap_or_else(|| {
                    panic!("{file} job {job}: {key} is not a string key of the chart's values.yaml")
                });
                let default_repo = default.rsplit_once(':').map(|(r, _)| r).unwrap_or(default);
                assert_eq!(default_repo, repository, "{file} job {job}: {key}");
            }
        }
    }
    assert!(seen > 0, "no images input in the example workflows");
}

/// The workflow README.md shows first: valid for actionlint, and only declared inputs.
#[test]
fn readme_workflow_snippet_is_valid() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("## Use it in a workflow")
        .expect("README has `## Use it in a workflow`");
    let rest = &readme[start..];
    let open = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let len = rest[open..].find("```").expect("the block's end");
    let snippet = &rest[open..open + len];

    let wf: Value = trader_deploy::manifest::parse(snippet).expect("the snippet is YAML");
    let declared = action_inputs();
    let steps = action_steps(&wf);
    assert!(!steps.is_empty(), "the snippet does not use the action");
    for (_, with) in steps {
        for key in with.as_mapping().unwrap().keys() {
            let key = key.as_str();
            assert!(
                declared.contains(key),
                "README snippet: input {key:?} is not in action.yml"
            );
        }
    }

    let Some(actionlint) = actionlint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readme.yml");
    std::fs::write(&file, snippet).unwrap();
    let out = std::process::Command::new(&actionlint)
        .arg("-no-color")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint on the README snippet:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
