//! The `policies` input through the action on the bed: a deploy that a policy denies is refused
//! before anything touches the cluster (the release keeps its revision and its image), warnings
//! reach the log and the summary, plan refuses on the server-side render, validate checks each
//! environment's values, and a policy with a syntax error fails with its file and line.

mod common;

use common::case::{Case, assert_success};

/// A policy folder in the workspace: v1.1.0 of the orchestrator is recalled; a warning names
/// the environment (from data.trader_deploy) on every Deployment.
fn write_policies(case: &Case) {
    let dir = case.ws.path().join("policy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("recall.rego"),
        r#"package main

import rego.v1

deny_recalled contains msg if {
	input.kind == "Deployment"
	some c in input.spec.template.spec.containers
	some tag in data.recalled
	endswith(c.image, sprintf(":%s", [tag]))
	msg := sprintf("container %q runs recalled %s", [c.name, c.image])
}

warn_environment contains msg if {
	input.kind == "Deployment"
	msg := sprintf("deploying %s to %s", [data.trader_deploy.version, data.trader_deploy.environment])
}
"#,
    )
    .unwrap();
    std::fs::write(dir.join("recalled.yaml"), "recalled: [v1.1.0]\n").unwrap();
}

fn image(case: &Case) -> String {
    let v = case.helm_json(&["get", "values", "--all"]);
    v["image"]["tag"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn a_denied_deploy_is_refused_before_the_cluster_and_warnings_are_reported() {
    let case = Case::new("policies", 3).await;
    write_policies(&case);
    let policies = [("policies", "policy")];

    let ok = case.run("v1.0.0", &policies);
    assert_success(&ok);
    assert!(
        ok.log().contains("Policy warning") && ok.log().contains("deploying v1.0.0 to dev"),
        "{}",
        ok.log()
    );
    assert!(
        ok.summary
            .contains("Policies in `policy` for `dev`: 0 deny, 1 warn"),
        "{}",
        ok.summary
    );
    let history = case.history();

    let refused = case.run("v1.1.0", &policies);
    assert_eq!(refused.code, Some(1), "{}", refused.log());
    let log = refused.log();
    assert!(
        log.contains(
            "the policies in policy deny release \"app-h3\" in environment \"dev\": Deployment/app-h3-orch: container \"orch\" runs recalled"
        ),
        "{log}"
    );
    assert!(refused.summary.contains("❌ deny"), "{}", refused.summary);
    // Nothing touched the cluster: no revision, no lock left behind, the old image runs.
    assert!(!log.contains("helm upgrade --install"), "{log}");
    assert_eq!(case.history(), history);
    assert_eq!(image(&case), "v1.0.0");

    // plan renders against the cluster and refuses the same way.
    let plan = case.run("v1.1.0", &[("policies", "policy"), ("mode", "plan")]);
    assert_eq!(plan.code, Some(1), "{}", plan.log());
    assert!(plan.log().contains("runs recalled"), "{}", plan.log());
    assert_eq!(case.history(), history);
}

#[tokio::test]
async fn validate_checks_each_environment_and_a_syntax_error_names_file_and_line() {
    let case = Case::new("policies-validate", 3).await;
    write_policies(&case);
    // Per environment: prod's values set the recalled tag.
    let values = case.ws.path().join("deploy/values");
    std::fs::create_dir_all(&values).unwrap();
    std::fs::write(values.join("values-dev.yaml"), "image: {tag: v1.0.0}\n").unwrap();
    std::fs::write(values.join("values-prod.yaml"), "image: {tag: v1.1.0}\n").unwrap();
    let f = case.run(
        "v1.0.0",
        &[("policies", "policy"), ("mode", "validate"), ("set", "")],
    );
    assert_eq!(f.code, Some(1), "{}", f.log());
    assert!(
        f.summary
            .contains("| `deploy/values/values-dev.yaml` | ✅ | ✅ | ✅ |"),
        "{}",
        f.summary
    );
    assert!(
        f.summary
            .contains("| `deploy/values/values-prod.yaml` | ✅ | ✅ | ❌ |"),
        "{}",
        f.summary
    );
    assert!(f.log().contains("in environment \"prod\""), "{}", f.log());

    std::fs::write(
        case.ws.path().join("policy/broken.rego"),
        "package main\n\nimport rego.v1\n\ndeny contains msg if {\n\tmsg := sprintf(\"%s\", [input.kind]\n}\n",
    )
    .unwrap();
    let f = case.run("v1.0.0", &[("policies", "policy")]);
    assert_eq!(f.code, Some(1), "{}", f.log());
    let line = f
        .lines
        .iter()
        .map(|(_, l)| l.as_str())
        .find(|l| l.contains("input `policies`"))
        .unwrap_or_else(|| panic!("no input error: {}", f.log()));
    assert!(line.contains("policy/broken.rego:"), "{line}");
    assert!(!f.log().contains("helm upgrade --install"), "{}", f.log());
}
