//! StatefulSets on the bed, with helm 3 and helm 4: a broken release rolled back with its
//! StatefulSet's pods brought back (Kubernetes' forced rollback), a StatefulSet-only failure
//! caught at once, OnDelete and partitioned StatefulSets tracked to done, and pending helm
//! records written outside the action waited for rather than rolled back under a person.
//! Needs a running bed (`make testbed-up`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::case::{Case, Finished, Running, assert_success, wait_for_status};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

/// The scanner StatefulSet's name in the test chart.
fn scanner(case: &Case) -> String {
    format!("{}-scanner", case.release)
}

/// `set` for the orch Deployment's tag, the scanner StatefulSet's tag, and chart `extra` lines.
fn set(orch: &str, scanner: &str, extra: &[&str]) -> String {
    let mut lines = vec![
        format!("image.tag={orch}"),
        format!("scanner.image.tag={scanner}"),
        "scanner.replicas=2".to_string(),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    lines.join("\n")
}

/// (pod name, image tag, Ready) of the scanner's pods, by name.
async fn scanner_pods(case: &Case) -> Vec<(String, String, bool)> {
    let api: Api<Pod> = Api::namespaced(case.client.clone(), &case.ns);
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/component=scanner",
        case.release
    ));
    let mut out: Vec<(String, String, bool)> = api
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let image = p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap();
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let tag = image.rsplit(':').next().unwrap().to_string();
            (p.metadata.name.unwrap(), tag, ready)
        })
        .collect();
    out.sort();
    out
}

/// Asserts every scanner pod runs `tag` and is Ready, and the StatefulSet says so too.
async fn assert_scanner_on(case: &Case, tag: &str) {
    let pods = scanner_pods(case).await;
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(
        pods.iter().all(|(_, t, ready)| t == tag && *ready),
        "every scanner pod on {tag} and Ready: {pods:?}"
    );
    let api: Api<StatefulSet> = Api::namespaced(case.client.clone(), &case.ns);
    let s = api.get(&scanner(case)).await.unwrap();
    let st = s.status.unwrap();
    assert_eq!(st.ready_replicas, Some(2), "{st:?}");
    assert_eq!(st.current_revision, st.update_revision, "{st:?}");
}

fn assert_rolled_back(f: &Finished) {
    assert_eq!(f.code, Some(1), "{}", f.log());
    assert_eq!(f.out("status"), "rolled_back", "{}", f.log());
    let log = f.log();
    assert!(log.contains("Rollback verified"), "{log}");
    assert!(
        !log.contains("not ready within the timeout"),
        "caught and repaired, not timed out: {log}"
    );
}

/// The sequence: good, then a tag whose image cannot be pulled in both the Deployment
/// and the StatefulSet (rolled back, the StatefulSet's broken pod deleted and recreated on the
/// old image), then a good tag deploys, then `mode: rollback` returns to the first.
async fn broken_release_restores_the_statefulset(major: u8) {
    let case = Case::new("sts-forced", major).await;
    let good = set("v1.0.0", "v1.0.0", &[]);
    assert_success(&case.run("v1.0.0", &[("set", &good)]));
    assert_scanner_on(&case, "v1.0.0").await;

    let broken = set("broken-pull", "broken-pull", &[]);
    let f = case.run("broken-pull", &[("set", &broken)]);
    assert_rolled_back(&f);
    let pod = format!("{}-1", scanner(&case));
    let log = f.log();
    assert!(
        log.contains(&format!("deleting pod {pod} (revision")),
        "the broken pod is deleted: {log}"
    );
    assert!(
        f.summary.contains(&format!("deleted pod {pod}")),
        "{}",
        f.summary
    );
    eprintln!(
        "MEASURED helm{major} broken Deployment+StatefulSet: rolled back and verified in {}s",
        f.out("duration_seconds")
    );
    assert_scanner_on(&case, "v1.0.0").await;

    let next = set("v1.1.0", "v1.1.0", &[]);
    let f = case.run("v1.1.0", &[("set", &next)]);
    assert_success(&f);
    assert_scanner_on(&case, "v1.1.0").await;
    assert_eq!(case.ready_orch_tag().await, "v1.1.0");

    // mode rollback from the command line: no version, no commit.
    let mut cli = Command::new(env!("CARGO_BIN_EXE_trader-deploy"));
    cli.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", case.ws.path().join("helm"))
        .env("TMPDIR", case.tmp())
        .current_dir(case.ws.path())
        .args(["rollback", "--chart", "chart", "--release", &case.release])
        .args([
            "--namespace",
            &case.ns,
            "--environment",
            "dev",
            "--timeout",
            "120s",
        ])
        .arg("--kubeconfig")
        .arg(std::fs::read_to_string(&case.bed.kubeconfig).unwrap())
        .arg("--helm")
        .arg(case.bed.helm_path(major))
        .stdin(Stdio::null());
    let out = common::run_with_deadline(&mut cli, Duration::from_secs(180));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Rollback verified"), "{text}");
    assert_scanner_on(&case, "v1.0.0").await;
    assert_eq!(case.ready_orch_tag().await, "v1.0.0");
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_release_restores_the_statefulset_helm3() {
    broken_release_restores_the_statefulset(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_release_restores_the_statefulset_helm4() {
    broken_release_restores_the_statefulset(4).await;
}

/// Only the StatefulSet's image changes, to a failing one: caught from its pod, rolled back, the
/// pod replaced.
async fn statefulset_only_failure(major: u8, tag: &str, reason: &str) {
    let case = Case::new(&format!("sts-only-{tag}"), major).await;
    assert_success(&case.run("v1.0.0", &[("set", &set("v1.0.0", "v1.0.0", &[]))]));
    let f = case.run(tag, &[("set", &set("v1.0.0", tag, &[]))]);
    assert_rolled_back(&f);
    let log = f.log();
    // An unpullable image is caught at ErrImagePull or at ImagePullBackOff, whichever the
    // watch sees first.
    let seen =
        log.contains(reason) || (reason == "ImagePullBackOff" && log.contains("ErrImagePull"));
    assert!(
        log.contains(&format!("StatefulSet/{}", scanner(&case))) && seen,
        "the StatefulSet's failing pod is the cause: {log}"
    );
    assert!(
        log.contains(&format!("deleting pod {}-1", scanner(&case))),
        "{log}"
    );
    eprintln!(
        "MEASURED helm{major} StatefulSet-only {tag}: rolled back and verified in {}s",
        f.out("duration_seconds")
    );
    assert_scanner_on(&case, "v1.0.0").await;
    assert_eq!(case.status().0, "deployed");
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statefulset_only_broken_pull_helm3() {
    statefulset_only_failure(3, "broken-pull", "ImagePullBackOff").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statefulset_only_broken_pull_helm4() {
    statefulset_only_failure(4, "broken-pull", "ImagePullBackOff").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statefulset_only_crashloop_helm3() {
    statefulset_only_failure(3, "crashloop", "CrashLoopBackOff").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statefulset_only_crashloop_helm4() {
    statefulset_only_failure(4, "crashloop", "CrashLoopBackOff").await;
}

/// OnDelete: by default the action reports the pods left on the old revision and does not wait;
/// with `statefulset_on_delete: roll` it deletes them from the top and waits for each.
async fn on_delete_statefulsets(major: u8) {
    let case = Case::new("sts-ondelete", major).await;
    let on_delete = ["scanner.updateStrategy=OnDelete"];
    assert_success(&case.run("v1.0.0", &[("set", &set("v1.0.0", "v1.0.0", &on_delete))]));

    let f = case.run("v1.1.0", &[("set", &set("v1.1.0", "v1.1.0", &on_delete))]);
    assert_success(&f);
    assert!(
        f.log().contains("2 pod(s) keep the old revision"),
        "{}",
        f.log()
    );
    let pods = scanner_pods(&case).await;
    assert!(
        pods.iter().all(|(_, t, _)| t == "v1.0.0"),
        "untouched: {pods:?}"
    );

    let f = case.run(
        "v1.2.0",
        &[
            ("set", &set("v1.2.0", "v1.2.0", &on_delete)),
            ("statefulset_on_delete", "roll"),
        ],
    );
    assert_success(&f);
    let first = f.line_at(&format!("deleting pod {}-1", scanner(&case)));
    let second = f.line_at(&format!("deleting pod {}-0", scanner(&case)));
    assert!(
        matches!((first, second), (Some(a), Some(b)) if a < b),
        "highest ordinal first: {}",
        f.log()
    );
    let pods = scanner_pods(&case).await;
    assert!(
        pods.iter().all(|(_, t, ready)| t == "v1.2.0" && *ready),
        "{pods:?}"
    );
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_delete_statefulsets_helm3() {
    on_delete_statefulsets(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_delete_statefulsets_helm4() {
    on_delete_statefulsets(4).await;
}

/// A partition: done when the pods at or above it are updated and all are ready.
async fn partitioned_statefulset(major: u8) {
    let case = Case::new("sts-partition", major).await;
    let part = ["scanner.partition=1"];
    assert_success(&case.run("v1.0.0", &[("set", &set("v1.0.0", "v1.0.0", &part))]));
    let f = case.run("v1.1.0", &[("set", &set("v1.1.0", "v1.1.0", &part))]);
    assert_success(&f);
    assert!(f.log().contains("partition 1"), "{}", f.log());
    let pods = scanner_pods(&case).await;
    let tags: Vec<(&str, &str)> = pods
        .iter()
        .map(|(n, t, _)| (n.as_str(), t.as_str()))
        .collect();
    let (p0, p1) = (
        format!("{}-0", scanner(&case)),
        format!("{}-1", scanner(&case)),
    );
    assert_eq!(tags, [(p0.as_str(), "v1.0.0"), (p1.as_str(), "v1.1.0")]);
    assert!(pods.iter().all(|(_, _, ready)| *ready), "{pods:?}");
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_statefulset_helm3() {
    partitioned_statefulset(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_statefulset_helm4() {
    partitioned_statefulset(4).await;
}

/// A person's `helm upgrade` still running (no lease of the action) is waited for, not rolled
/// back: the action deploys after it ends, leaving its record as helm wrote it.
async fn a_running_manual_upgrade_is_waited_for(major: u8) {
    let case = Case::new("pending-manual", major).await;
    assert_success(&case.run("v1.0.0", &[]));
    let mut helm = case.bed.helm(case.major);
    helm.args(["upgrade", &case.release])
        .arg(case.ws.path().join("chart"))
        .args([
            "-n",
            &case.ns,
            "--set",
            "slowHook=true",
            "--set",
            "image.tag=v1.1.0",
        ])
        .args(["--timeout", "20s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = helm.spawn().unwrap();
    wait_for_status(&case, "pending-upgrade").await;

    let f = case.run("v1.2.0", &[]);
    let _ = child.wait();
    assert_success(&f);
    let log = f.log();
    assert!(
        log.contains("no run of trader-deploy holds its lock"),
        "{log}"
    );
    assert!(log.contains("is no longer pending"), "{log}");
    assert!(!log.contains("Recovering a stuck release"), "{log}");
    // 1 deployed, 2 failed by helm itself (its hook timed out), 3 = this deploy.
    let history = case.history();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(history[1].1, "failed", "{history:?}");
    assert_eq!(history[2], (3, "deployed".to_string()));
    assert_eq!(case.ready_orch_tag().await, "v1.2.0");
    case.done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_manual_upgrade_is_waited_for_helm3() {
    a_running_manual_upgrade_is_waited_for(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_manual_upgrade_is_waited_for_helm4() {
    a_running_manual_upgrade_is_waited_for(4).await;
}

/// A run of the action killed mid-upgrade (SIGKILL, with its helm): the next run takes over
/// its expired lease and recovers the pending record at once, without the grace period.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_is_recovered_without_waiting_the_grace() {
    let case = Case::new("pending-killed", 3).await;
    assert_success(&case.run("v1.0.0", &[]));
    let running = Running::start(
        case.action("v1.1.0", &[("set", "image.tag=v1.1.0\nslowHook=true")]),
        case.ws.path(),
    );
    wait_for_status(&case, "pending-upgrade").await;
    // The action and its helm child die without a chance to clean up.
    let pid = running.pid();
    let _ = Command::new("pkill")
        .args(["-KILL", "-P", &pid.to_string()])
        .status();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = running.wait();
    assert_eq!(case.status().0, "pending-upgrade");

    let f = case.run("v1.2.0", &[("pending_grace", "1h")]);
    assert_success(&f);
    let log = f.log();
    assert!(log.contains("Took over the expired lease"), "{log}");
    assert!(
        log.contains("is stuck in pending-upgrade at revision 2"),
        "{log}"
    );
    assert!(
        !log.contains("waiting up to"),
        "no grace for a killed run: {log}"
    );
    assert_eq!(case.ready_orch_tag().await, "v1.2.0");
    case.done().await;
}
