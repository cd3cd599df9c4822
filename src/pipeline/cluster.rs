//! The steps that touch the cluster, shared by the modes: connect, lock and unlock, watch a
//! revision, and a verified rollback with its StatefulSet repair.

use std::time::{Duration, Instant};

use crate::cancel::{Cancel, Deadline};
use crate::context::RunContext;
use crate::helm::Helm;
use crate::inputs::Config;
use crate::kube_client::Cluster;
use crate::lease::{self, LeaseGuard};
use crate::rollout::{self, RolloutError, repair};
use crate::runner::Runner;
use crate::timeline::Timeline;

use super::{Failure, Run, Title};

/// The cluster and helm, as this run reaches them.
pub(crate) struct Target {
    pub(crate) cluster: Cluster,
    pub(crate) helm: Helm,
}

// ---------------------------------------------------------------------------------------------
// mode: deploy
//

/// Step: the kube client and the helm binary (its major version detected, not guessed).
pub(super) async fn connect(run: &Run<'_>) -> Result<Target, Failure> {
    connect_to(run.config, run.runner)
        .await
        .map_err(|e| run.fail(Title::ClusterConnection, e))
}

pub(super) async fn connect_to(config: &Config, runner: &Runner) -> anyhow::Result<Target> {
    let _g = runner.group("Connect to the cluster");
    let cluster = Cluster::connect(config).await?;
    let helm = Helm::detect(&config.helm, cluster.kubeconfig_path()).await?;
    runner.info(&format!(
        "helm {} (major version {}) at {}",
        helm.version,
        helm.major,
        config.helm.display()
    ));
    Ok(Target { cluster, helm })
}

/// The lease holder's identity: this run and process.
fn holder_identity(ctx: &RunContext) -> String {
    let run = match (&ctx.repository, ctx.run_id) {
        (Some(repo), Some(id)) => format!("{repo} run {id} attempt {}", ctx.run_attempt),
        _ => "local run".to_string(),
    };
    format!(
        "{run}, pid {} #{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Step: take the release's lease (creating the namespace it lives in), so that two runs on one
/// release never interleave.
pub(super) async fn lock(
    target: &Target,
    run: &Run<'_>,
    ctx: &RunContext,
) -> Result<LeaseGuard, Failure> {
    let (config, runner) = (run.config, run.runner);
    let _g = runner.group("Lock the release");
    let client = &target.cluster.client;
    let taken = async {
        lease::ensure_namespace(client, &config.namespace).await?;
        lease::acquire(
            client,
            runner,
            &config.namespace,
            &config.release,
            &holder_identity(ctx),
            config.timeout,
            run.cancel,
        )
        .await
    }
    .await;
    taken.map_err(|e| run.fail(Title::ReleaseLock, e.into()))
}

/// Step: give the lease back (it expires by itself if this fails).
pub(super) async fn unlock(lock: LeaseGuard, runner: &Runner) {
    let message = match tokio::time::timeout(Duration::from_secs(15), lock.release()).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "failed to release the lease within 15s".to_string(),
    };
    runner.warning(
        "Release lock",
        &format!(
            "{message} (it expires by itself in {}s)",
            lease::LEASE_SECONDS
        ),
    );
}

/// The revision helm reports as current.
pub(super) async fn current_revision(target: &Target, config: &Config) -> anyhow::Result<u32> {
    match target
        .helm
        .status(&config.release, &config.namespace)
        .await?
    {
        Some((_, revision)) => Ok(revision),
        None => anyhow::bail!(
            "release {:?} in namespace {:?} has no revision after the upgrade",
            config.release,
            config.namespace
        ),
    }
}

/// Step: watch revision `revision`'s workloads (from `manifest`, else helm's record of the
/// revision) until ready, failing fast; each workload with the instant it was first ready.
pub(super) async fn watch(
    target: &Target,
    config: &Config,
    runner: &Runner,
    revision: u32,
    manifest: Option<String>,
    deadline: Deadline,
    cancel: &Cancel,
) -> Result<Vec<(rollout::Workload, Instant)>, Box<RolloutError>> {
    let _g = runner.group(&format!("Watch the rollout of revision {revision}"));
    let what = format!(
        "the rollout of revision {revision} of release {:?} in namespace {:?}",
        config.release, config.namespace
    );
    let manifest = match manifest {
        Some(m) => Ok(m),
        None => {
            target
                .helm
                .get_manifest(&config.release, &config.namespace, Some(revision))
                .await
        }
    }
    .map_err(|e| {
        Box::new(RolloutError {
            what: what.clone(),
            cause: rollout::Cause::Watch(format!("{e:#}")),
            detected_at: std::time::SystemTime::now(),
            detected: Instant::now(),
            last_progress: Vec::new(),
            pods: Vec::new(),
        })
    })?;
    let workloads = rollout::workloads_from_manifest(&manifest, &config.namespace);
    let names: Vec<String> = workloads.iter().map(|w| w.to_string()).collect();
    runner.info(&format!(
        "Waiting up to {} for {}",
        humantime::format_duration(Duration::from_secs(deadline.remaining().as_secs())),
        if names.is_empty() {
            "nothing".into()
        } else {
            names.join(", ")
        }
    ));
    rollout::watch(
        &target.cluster.client,
        runner,
        &what,
        &workloads,
        deadline,
        config.statefulset_on_delete,
        cancel,
    )
    .await
}

/// The summary's line for a pod a forced rollback deleted.
pub(super) fn repaired_line(r: &repair::Deleted) -> String {
    format!(
        "StatefulSet `{}`: deleted {} so that the controller recreates it from the deployed revision (a StatefulSet never replaces such a pod by itself).",
        r.set, r.stuck
    )
}

/// The StatefulSets of `manifest` get Kubernetes' forced rollback (rollout::repair): their
/// pods stuck on another revision are deleted, highest ordinal first.
pub(super) async fn repair_statefulsets(
    target: &Target,
    runner: &Runner,
    manifest: &str,
    namespace: &str,
    deadline: Deadline,
) -> anyhow::Result<Vec<repair::Deleted>> {
    let mut by_namespace: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for w in rollout::workloads_from_manifest(manifest, namespace) {
        if w.kind == rollout::Kind::StatefulSet {
            by_namespace.entry(w.namespace).or_default().push(w.name);
        }
    }
    let mut deleted = Vec::new();
    for (ns, sets) in by_namespace {
        let client = &target.cluster.client;
        deleted.extend(repair::repair(client, runner, &ns, &sets, deadline).await?);
    }
    Ok(deleted)
}

impl RolledBack {
    /// The summary's lines for it: each pod the repair deleted, then the rollback.
    pub(super) fn record(&self, summary: &mut crate::summary::Summary, to: u32) {
        for r in &self.repaired {
            summary.rollout(&repaired_line(r));
        }
        summary.rollout(&format!(
            "Rolled back to revision {to} (now revision {}) and verified ready.",
            self.revision
        ));
    }
}

/// A rollback that was verified.
pub(super) struct RolledBack {
    /// The revision the rollback wrote.
    pub(super) revision: u32,
    /// StatefulSet pods deleted so that they come back on the rolled-back revision.
    pub(super) repaired: Vec<repair::Deleted>,
}

/// `helm rollback` to `revision`, then Kubernetes' forced rollback of its StatefulSets (their
/// pods left on the bad revision are deleted), then the same watcher verifies it, all within
/// `verify_for`. Both parts go on `timeline` when there is one.
pub(super) async fn roll_back_to(
    target: &Target,
    config: &Config,
    runner: &Runner,
    revision: u32,
    verify_for: Duration,
    mut timeline: Option<&mut Timeline>,
) -> anyhow::Result<RolledBack> {
    let started = Instant::now();
    let rolled = helm_rollback(target, config, runner, revision).await;
    if let Some(t) = timeline.as_deref_mut() {
        t.step(&format!("rollback to {revision}"), started, rolled.is_ok());
    }
    rolled?;
    let started = Instant::now();
    let verified = verify_rollback(target, config, runner, revision, verify_for).await;
    if let Some(t) = timeline {
        if let Ok((_, ready)) = &verified {
            for (w, at) in ready {
                t.add("verify rollback", &w.to_string(), started, *at, true);
            }
        }
        t.step("verify rollback", started, verified.is_ok());
    }
    verified.map(|(rolled, _)| rolled)
}

/// `helm rollback` to `revision`.
async fn helm_rollback(
    target: &Target,
    config: &Config,
    runner: &Runner,
    revision: u32,
) -> anyhow::Result<()> {
    {
        let _g = runner.group(&format!("Roll back to revision {revision}"));
        runner.info(&format!(
            "Rolling back release {:?} in namespace {:?} to revision {revision}",
            config.release, config.namespace
        ));
        target
            .helm
            .rollback(
                &config.release,
                &config.namespace,
                revision,
                config.history_max,
                config.timeout,
            )
            .await?;
    }
    Ok(())
}

/// The rolled-back revision's StatefulSets repaired and its workloads watched until ready.
async fn verify_rollback(
    target: &Target,
    config: &Config,
    runner: &Runner,
    revision: u32,
    verify_for: Duration,
) -> anyhow::Result<(RolledBack, Vec<(rollout::Workload, Instant)>)> {
    let deadline = Deadline::from_now(verify_for);
    let now = current_revision(target, config).await?;
    let manifest = target
        .helm
        .get_manifest(&config.release, &config.namespace, Some(now))
        .await?;
    let repaired =
        repair_statefulsets(target, runner, &manifest, &config.namespace, deadline).await?;
    let ready = watch(
        target,
        config,
        runner,
        now,
        Some(manifest),
        deadline,
        &Cancel::never(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    runner.info(&format!(
        "Rollback verified: revision {now} (= revision {revision}) is ready."
    ));
    Ok((
        RolledBack {
            revision: now,
            repaired,
        },
        ready,
    ))
}
