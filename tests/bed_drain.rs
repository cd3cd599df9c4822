//! A live trading system drained before it is touched (issue #18), through the action on the bed:
//! the smoke spec's `preflight` checks ask the live release for its open orders (kwok sends them
//! to the fake app, whose `open_orders` a test sets as a bot finishing its orders would), and the
//! `hooks` pause new orders before the upgrade and resume after it, whatever the outcome. The
//! fake app logs every request in order, across the old and the new version's pods.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cli_run::{
    action_command, action_run, deploy_flags, helm_history, run_action, run_with_sigterm_on,
    workspace,
};
use common::{Bed, create_namespace, delete_namespace};
use serde_json::{Value, json};

/// Preflight within `wait`, the pause/resume pair, and a smoke check with `smoke_timeout`.
fn spec(wait: &str, smoke_timeout: &str) -> String {
    format!(
        r#"
checks:
  - {{name: ready, service: "${{release}}-orch", port: http, path: /ready, expect: {{status: 200}}, timeout: {smoke_timeout}, interval: 500ms}}
preflight:
  wait: {wait}
  checks:
    - name: no-open-orders
      service: "${{release}}-orch"
      port: http
      path: /api/v1/orders/open
      expect: {{status: 200, json: {{/count: 0}}}}
      interval: 500ms
hooks:
  before_upgrade: {{name: pause, service: "${{release}}-orch", port: http, method: POST, path: /admin/pause-new-orders, expect: {{status: 200}}, retries: 5, interval: 1s}}
  after: {{name: resume, service: "${{release}}-orch", port: http, method: POST, path: /admin/resume, expect: {{status: 200}}, retries: 10, interval: 1s}}
"#
    )
}

async fn set_open_orders(bed: &Bed, ns: &str, version: &str, n: u32) {
    let r = reqwest::Client::new()
        .post(format!("{}/control", bed.app_url))
        .json(&json!({"version": version, "namespace": ns, "open_orders": n}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// The fake app's drain-related requests in `ns`, in order: (path, version, status).
async fn drain_requests(bed: &Bed, ns: &str) -> Vec<(String, String, u16)> {
    let v: Value = reqwest::get(format!("{}/requests?namespace={ns}", bed.app_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| {
            let p = r["path"].as_str().unwrap_or("");
            p.starts_with("/admin/") || p == "/api/v1/orders/open"
        })
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["version"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().unwrap_or(0) as u16,
            )
        })
        .collect()
}

/// The paths of the pause and resume calls that were answered 200, in order.
fn hooks_called(reqs: &[(String, String, u16)]) -> Vec<&str> {
    reqs.iter()
        .filter(|(p, _, s)| p.starts_with("/admin/") && *s == 200)
        .map(|(p, _, _)| p.as_str())
        .collect()
}

#[tokio::test]
async fn a_deploy_waits_for_open_orders_then_pauses_upgrades_and_resumes() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "drain-wait").await;
    let (ws, chart) = workspace(&spec("90s", "30s"));
    // A first install: nothing live to drain.
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.1.0"));
    assert!(first.success, "{}", first.all());
    assert!(
        first
            .stdout
            .contains("has no deployed revision: no preflight checks to run"),
        "{}",
        first.stdout
    );
    assert!(drain_requests(&bed, &ns).await.is_empty());

    // The live version holds two open orders; the upgrade must wait for them.
    set_open_orders(&bed, &ns, "v1.1.0", 2).await;
    let mut cmd = action_command(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the preflight has seen the orders twice, the bot finishes them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = drain_requests(&bed, &ns)
            .await
            .iter()
            .filter(|(p, _, _)| p == "/api/v1/orders/open")
            .count();
        if seen >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the preflight never asked for open orders"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before_upgrade = helm_history(&bed, &ns);
    assert_eq!(
        before_upgrade,
        [(1, "deployed".to_string())],
        "nothing touched while waiting"
    );
    set_open_orders(&bed, &ns, "v1.1.0", 0).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let run = action_run(out);
    assert!(run.success, "{}", run.all());
    assert!(
        run.stdout
            .contains("preflight check \"no-open-orders\" attempt 1 failed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("## Preflight") || run.stdout.contains("### Preflight"),
        "{}",
        run.stdout
    );
    let reqs = drain_requests(&bed, &ns).await;
    // Every open-orders request went to the live version, then the pause (to it), then the
    // resume (to the new version).
    let first_pause = reqs
        .iter()
        .position(|(p, _, _)| p == "/admin/pause-new-orders")
        .unwrap();
    assert!(
        reqs[..first_pause]
            .iter()
            .all(|(p, v, _)| p == "/api/v1/orders/open" && v == "v1.1.0"),
        "{reqs:?}"
    );
    assert_eq!(
        hooks_called(&reqs),
        ["/admin/pause-new-orders", "/admin/resume"],
        "{reqs:?}"
    );
    let resume = reqs.iter().rfind(|(p, _, _)| p == "/admin/resume").unwrap();
    assert_eq!(resume.1, "v1.2.0", "{reqs:?}");
    assert_eq!(
        helm_history(&bed, &ns).last().unwrap(),
        &(2, "deployed".to_string())
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn open_orders_that_never_drain_refuse_the_deploy_untouched() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "drain-refuse").await;
    let (ws, chart) = workspace(&spec("4s", "30s"));
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.1.0"));
    assert!(first.success, "{}", first.all());
    set_open_orders(&bed, &ns, "v1.1.0", 3).await;
    let run = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(!run.success, "{}", run.all());
    assert_eq!(run.outputs["status"], "failed", "{}", run.all());
    let all = run.all();
    assert!(
        all.contains("the live release \"app\" did not pass its preflight checks, so it was not upgraded (nothing changed): 1 of 1 preflight checks failed"),
        "{all}"
    );
    assert!(
        all.contains("/count"),
        "the failure says what it got: {all}"
    );
    assert_eq!(helm_history(&bed, &ns), [(1, "deployed".to_string())]);
    assert!(
        hooks_called(&drain_requests(&bed, &ns).await).is_empty(),
        "no pause without a drain"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn resume_follows_a_rolled_back_deploy() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "drain-rb").await;
    let (ws, chart) = workspace(&spec("30s", "30s"));
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(first.success, "{}", first.all());
    std::fs::write(ws.path().join("smoke.yaml"), spec("30s", "6s")).unwrap();
    // unready-app: Ready in Kubernetes, its /ready 503: the smoke check fails, the deploy rolls back.
    let run = run_action(
        &bed,
        ws.path(),
        &deploy_flags(&bed, &chart, &ns, "unready-app"),
    );
    assert_eq!(run.outputs["status"], "rolled_back", "{}", run.all());
    let reqs = drain_requests(&bed, &ns).await;
    assert_eq!(
        hooks_called(&reqs),
        ["/admin/pause-new-orders", "/admin/resume"],
        "{reqs:?}"
    );
    assert_eq!(
        helm_history(&bed, &ns).last().unwrap(),
        &(3, "deployed".to_string())
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn resume_follows_a_cancelled_deploy() {
    let bed = Bed::load();
    let client = bed.client().await;
    let ns = create_namespace(&client, "drain-term").await;
    let (ws, chart) = workspace(&spec("30s", "120s"));
    let first = run_action(&bed, ws.path(), &deploy_flags(&bed, &chart, &ns, "v1.2.0"));
    assert!(first.success, "{}", first.all());
    // SIGTERM (the runner's cancel) once the smoke check has failed once: after the pause.
    let (signalled, run) = run_with_sigterm_on(
        &mut action_command(
            &bed,
            ws.path(),
            &deploy_flags(&bed, &chart, &ns, "unready-app"),
        ),
        "smoke check \"ready\" attempt 1 failed",
    );
    assert!(signalled, "never saw the smoke failure:\n{}", run.all());
    assert!(run.all().contains("cancelled by SIGTERM"), "{}", run.all());
    let reqs = drain_requests(&bed, &ns).await;
    assert_eq!(
        hooks_called(&reqs),
        ["/admin/pause-new-orders", "/admin/resume"],
        "{reqs:?}"
    );
    delete_namespace(&client, &ns).await;
}
