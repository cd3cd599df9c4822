//! Step of mode uninstall: `helm uninstall` of the release (under the run's lock), then a wait,
//! within `timeout`, until its workloads and their pods are gone; a release that is not there is
//! nothing to do. The environment's GitHub deployments are then marked inactive.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::cluster::Target;
use super::{Run, Title};
use crate::context::RunContext;
use crate::rollout::{Kind, Workload, workloads_from_manifest};

/// What still stands of the release: `Deployment/x`, `3 pods of Deployment/x`.
async fn remaining(
    client: &kube::Client,
    workloads: &[Workload],
) -> Result<Vec<String>, kube::Error> {
    let mut left = Vec::new();
    for w in workloads {
        let ns = &w.namespace;
        let exists = match w.kind {
            Kind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
                .get_opt(&w.name)
                .await?
                .is_some(),
            Kind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get_opt(&w.name)
                .await?
                .is_some(),
            Kind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), ns)
                .get_opt(&w.name)
                .await?
                .is_some(),
            Kind::Job => Api::<Job>::namespaced(client.clone(), ns)
                .get_opt(&w.name)
                .await?
                .is_some(),
        };
        if exists {
            left.push(w.to_string());
        }
        if let Some(sel) = &w.pod_selector {
            let pods = Api::<Pod>::namespaced(client.clone(), ns)
                .list(&ListParams::default().labels(sel))
                .await?;
            if !pods.items.is_empty() {
                left.push(format!("{} pod(s) of {w}", pods.items.len()));
            }
        }
    }
    Ok(left)
}

/// The step.
pub(super) async fn uninstall(
    run: &mut Run<'_>,
    target: &Target,
    ctx: &RunContext,
) -> Result<(), super::Failure> {
    let config = run.config;
    let (release, ns) = (&config.release, &config.namespace);
    let runner = run.runner;
    let started = Instant::now();
    {
        let _g = runner.group(&format!("Uninstall release {release:?} from {ns}"));
        let history = target
            .helm
            .history(release, ns)
            .await
            .map_err(|e| run.fail(Title::UninstallFailed, e.into()))?;
        if history.is_empty() {
            runner.info(&format!(
                "release {release:?} is not installed in namespace {ns:?}: nothing to uninstall"
            ));
            run.summary.section(
                "Uninstall",
                &format!("Release `{release}` was not installed."),
            );
        } else {
            let manifest = target
                .helm
                .get_manifest(release, ns, None)
                .await
                .unwrap_or_default();
            let workloads = workloads_from_manifest(&manifest, ns);
            target
                .helm
                .uninstall(release, ns, config.timeout)
                .await
                .map_err(|e| run.fail(Title::UninstallFailed, e.into()))?;
            let deadline = started + config.timeout;
            let client = &target.cluster.client;
            loop {
                let left = remaining(client, &workloads).await.map_err(|e| {
                    run.fail(
                        Title::UninstallFailed,
                        anyhow::anyhow!(
                            "failed to check what is left of release {release:?} in {ns:?}: {e}"
                        ),
                    )
                })?;
                if left.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(run.fail(
                        Title::UninstallFailed,
                        anyhow::anyhow!(
                            "release {release:?} was uninstalled, but after {} these are still in {ns:?}: {}",
                            humantime::format_duration(config.timeout),
                            left.join(", ")
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let gone: Vec<String> = workloads.iter().map(Workload::to_string).collect();
            runner.info(&format!(
                "release {release:?} uninstalled; its workloads and pods are gone ({}) in {:.1}s",
                if gone.is_empty() {
                    "none".into()
                } else {
                    gone.join(", ")
                },
                started.elapsed().as_secs_f64()
            ));
            run.summary.section(
                "Uninstall",
                &format!(
                    "Release `{release}` uninstalled; gone: {}.",
                    if gone.is_empty() {
                        "no workloads".into()
                    } else {
                        gone.join(", ")
                    }
                ),
            );
        }
    }
    if let Some(session) = &run.github {
        let ids = session
            .retire(config, ctx, runner)
            .await
            .map_err(|e| run.fail(Title::UninstallFailed, e.into()))?;
        run.summary.section(
            "Uninstall",
            &format!(
                "GitHub deployments of `{}` marked inactive: {}.",
                config.environment,
                ids.len()
            ),
        );
    }
    Ok(())
}
