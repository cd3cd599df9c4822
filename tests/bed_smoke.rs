//! Smoke tests through the action, on the bed: checks reach the release's Service through
//! port-forwards via the Kubernetes API (kwok sends them to the fake app, which answers per
//! deployed version). A healthy version passes; a version whose /ready fails is rolled back; a
//! transient 503 then 200 passes. Needs a running bed (`make testbed-up`).

mod common;

use common::cli_run::{
    action_command, app_requests, deploy_flags, helm_history, orch_image, run_action,
    run_with_sigterm_on, set_spec, workspace,
};
use common::{Bed, create_namespace, delete_namespace, smoke_spec};

#[tokio::test]
async fn a_healthy_version_passes_every_check() {
    healthy_version_passes(3).await;
}

#[tokio::test]
async fn a_healthy_version_passes_every_check_with_helm4() {
    healthy_version_passes(4).await;
}

async fn healthy_version_passes(helm_major: u8) {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, &format!("smoke-ok-h{helm_major}")).await;
    let (ws, chart) = workspace(&smoke_spec("20s"));
    let mut flags = deploy_flags(&bed, &chart, &ns, "v1.2.0");
    flags.push(("helm", bed.helm_path(helm_major).display().to_string()));
    let run = run_action(&bed, ws.path(), &flags);
    assert!(run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "success");
    for check in ["healthz", "ready", "metrics", "api-status"] {
        assert!(
            run.stdout.contains(&format!(
                "smoke check {check:?} (GET service/app-orch:http/"
            )),
            "{}",
            run.stdout
        );
    }
    // The summary table has every check, passed.
    assert_eq!(
        run.stdout.matches("| ✅ passed |").count(),
        4,
        "{}",
        run.stdout
    );
    // The requests really reached the app through the port-forward, each check twice in a row.
    let served = app_requests(&bed, &ns).await;
    for path in ["/health", "/ready", "/metrics", "/api/v1/status"] {
        let n = served
            .iter()
            .filter(|(p, s)| p == path && *s == 200)
            .count();
        assert!(n >= 2, "{path} served {n} times: {served:?}");
    }
    assert_eq!(helm_history(&bed, &ns), [(1, "deployed".to_string())]);
    delete_namespace(&client, &ns).await;
}

/// The error line names check "ready" and its request, then what it got against what it
/// expected: the 503 itself, or (when the very last attempt timed out under load) the 503 as
/// the earlier answer.
fn failure_names_ready_and_503(all: &str) -> bool {
    all.lines().any(|l| {
        l.contains("check \"ready\" (GET service/app-orch:http/ready): ")
            && l.contains("got status 503 (body \"not ready\"), expected 200")
    })
}

#[tokio::test]
async fn a_version_whose_ready_fails_is_rolled_back() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "smoke-unready").await;
    // The healthy first deploy gets the full budget (the fake app may still be routing the new
    // version on a loaded machine); the failing one a short budget, so the test stays quick.
    let (ws, chart) = workspace(&smoke_spec("20s"));
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(first.success, "{}", first.all());
    set_spec(&ws, &smoke_spec("6s"));

    // Tag unready-app: Ready in Kubernetes, but the app's /ready answers 503.
    let run = run_action(
        &bed,
        ws.path(),
        &deploy_flags(&bed, &chart, &ns, "unready-app"),
    );
    assert!(!run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "rolled_back", "{}", run.all());
    assert_eq!(run.outputs["rolled_back"], "true");
    let all = run.all();
    assert!(
        all.contains("1 of 4 smoke checks failed"),
        "the failure names the count: {all}"
    );
    assert!(
        failure_names_ready_and_503(&all),
        "the failure names the check, what it got and what it expected: {all}"
    );
    assert!(run.stdout.contains("| ❌ failed |"), "{}", run.stdout);
    // Back at the good version: a third revision (the rollback) is deployed, with v1.2.0.
    let history = helm_history(&bed, &ns);
    assert_eq!(
        history.last().unwrap(),
        &(3, "deployed".to_string()),
        "{history:?}"
    );
    assert_eq!(
        orch_image(&bed, &ns).await,
        format!("{}/acme/python-orch:v1.2.0", bed.registry)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_transient_503_then_200_passes() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "smoke-blip").await;
    let spec = r#"
checks:
  - name: ready
    service: ${release}-orch
    port: http
    path: /ready
    expect: {status: 200}
    timeout: 20s
    interval: 300ms
    successes: 2
"#;
    let (ws, chart) = workspace(spec);
    // The next 3 app requests of this version in this namespace answer 503: a cutover blip.
    let resp = reqwest::Client::new()
        .post(format!("{}/control", bed.app_url))
        .json(&serde_json::json!({"version": "v1.1.0", "namespace": ns, "fail_next": 3}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let run = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.1.0"));
    assert!(run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "success");
    assert!(
        run.stdout
            .contains("smoke check \"ready\" attempt 1 failed: got status 503"),
        "{}",
        run.stdout
    );
    // At least the three blips failed (a pod the fake app had not routed yet would add one).
    let passed_after = run
        .stdout
        .split("; passed after ")
        .nth(1)
        .and_then(|rest| rest.split_once(" failed attempt"))
        .and_then(|(n, _)| n.parse::<u32>().ok());
    assert!(
        passed_after.is_some_and(|n| n >= 3),
        "{passed_after:?}: {}",
        run.stdout
    );
    let served: Vec<u16> = app_requests(&bed, &ns)
        .await
        .into_iter()
        .filter(|(p, _)| p == "/ready")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(served, [503, 503, 503, 200, 200], "{served:?}");
    assert_eq!(helm_history(&bed, &ns), [(1, "deployed".to_string())]);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn without_rollback_on_failure_a_failing_check_leaves_the_new_revision() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "smoke-keep").await;
    let spec = r#"
checks:
  - name: ready
    service: ${release}-orch
    port: http
    path: /ready
    expect: {status: 200}
    timeout: 3s
    interval: 500ms
"#;
    // As above: a full budget for the healthy first deploy, the short one for the failing one.
    let (ws, chart) = workspace(&spec.replace("timeout: 3s", "timeout: 30s"));
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(first.success, "{}", first.all());
    set_spec(&ws, spec);
    let mut flags = deploy_flags(&bed, &chart, &ns, "unready-app");
    flags.push(("rollback-on-failure", "false".into()));
    let run = run_action(&bed, ws.path(), &flags);
    assert!(!run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "failed", "{}", run.all());
    assert_eq!(run.outputs["rolled_back"], "false");
    assert!(failure_names_ready_and_503(&run.all()), "{}", run.all());
    let history = helm_history(&bed, &ns);
    assert_eq!(
        history.last().unwrap(),
        &(2, "deployed".to_string()),
        "{history:?}"
    );
    assert_eq!(
        orch_image(&bed, &ns).await,
        format!("{}/acme/python-orch:unready-app", bed.registry)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn sigterm_during_the_smoke_tests_rolls_back() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "smoke-term").await;
    // A long budget: only the signal ends this check early.
    let spec = r#"
checks:
  - name: ready
    service: ${release}-orch
    port: http
    path: /ready
    expect: {status: 200}
    timeout: 120s
    interval: 500ms
"#;
    let (ws, chart) = workspace(spec);
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(first.success, "{}", first.all());

    // Once the first smoke attempt has failed, SIGTERM (as the runner does on cancel).
    let (signalled, run) = run_with_sigterm_on(
        &mut action_command(
            &bed,
            ws.path(),
            &deploy_flags(&bed, &chart, &ns, "unready-app"),
        ),
        "smoke check \"ready\" attempt 1 failed",
    );
    assert!(
        signalled,
        "never saw the first smoke failure:\n{}",
        run.all()
    );
    assert!(!run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "rolled_back", "{}", run.all());
    assert!(
        run.all()
            .contains("cancelled by SIGTERM during the smoke tests"),
        "{}",
        run.all()
    );
    let history = helm_history(&bed, &ns);
    assert_eq!(
        history.last().unwrap(),
        &(3, "deployed".to_string()),
        "{history:?}"
    );
    assert_eq!(
        orch_image(&bed, &ns).await,
        format!("{}/acme/python-orch:v1.2.0", bed.registry)
    );
    delete_namespace(&client, &ns).await;
}
