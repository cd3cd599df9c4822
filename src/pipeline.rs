//! THE sequence of a run: resolve, verify images, approve, upgrade, watch, smoke-test, roll back,
//! report. Each step is one group in the log.
// A `Failure` carries the outputs a failed run still writes; it is returned once per run.
#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cancel::{Cancel, Deadline};
use crate::context::RunContext;
use crate::github::session::Session;
use crate::helm::{self, Helm, HelmError, UpgradeSpec};
use crate::inputs::{Config, Mode};
use crate::kube_client::Cluster;
use crate::lease::{self, LeaseGuard};
use crate::notify;
use crate::outputs::{Outputs, Status};
use crate::resolve;
use crate::rollout::{self, RolloutError};
use crate::runner::Runner;
use crate::statefulset;
use crate::summary::Summary;

/// How long verification of a rollback gets after a cancellation (the runner kills the job
/// soon after its signal; helm's rollback itself is what leaves the release at a known revision).
const CANCELLED_VERIFY: Duration = Duration::from_secs(20);

/// A run that did not succeed: the message for the annotation and the outputs it still writes.
#[derive(Debug)]
pub struct Failure {
    pub title: &'static str,
    pub error: anyhow::Error,
    pub outputs: Outputs,
}

/// Runs the configured mode to its outcome.
pub async fn run(config: &Config, ctx: &RunContext, runner: &Runner) -> Result<Outputs, Failure> {
    let started = Instant::now();
    let mut result = match config.mode {
        Mode::Resolve => resolve_only(config, ctx, runner),
        Mode::Deploy => deploy(config, ctx, runner, &Cancel::on_signals()).await,
        Mode::Rollback => rollback(config, ctx, runner, &Cancel::on_signals()).await,
        Mode::Plan => plan(config, ctx, runner).await,
        Mode::Validate => validate(config, runner).await,
    };
    let secs = started.elapsed().as_secs_f64();
    match &mut result {
        Ok(o) => o.duration_seconds = secs,
        Err(f) => f.outputs.duration_seconds = secs,
    }
    result
}

fn resolve_only(config: &Config, ctx: &RunContext, runner: &Runner) -> Result<Outputs, Failure> {
    let _group = runner.group("Resolve the plan");
    runner.info(resolve::render_text(config, ctx).trim_end());
    let outputs = resolve::outputs(config);
    runner
        .summary(&resolve::render_markdown(config))
        .map_err(|e| Failure {
            title: "Job summary",
            error: e.into(),
            outputs: outputs.clone(),
        })?;
    Ok(outputs)
}

fn failure(
    title: &'static str,
    error: anyhow::Error,
    outputs: &Outputs,
    status: Status,
) -> Failure {
    Failure {
        title,
        error,
        outputs: Outputs {
            status,
            rolled_back: status == Status::RolledBack,
            ..outputs.clone()
        },
    }
}

/// The cluster and helm, as this run reaches them.
pub struct Target {
    pub cluster: Cluster,
    pub helm: Helm,
}

// ---------------------------------------------------------------------------------------------
// mode: deploy
//
//   resolve → verify_images → approve → connect → lock → recover → upgrade → watch → smoke
//           → (on failure) roll back and verify → report → unlock
// ---------------------------------------------------------------------------------------------

/// What the deploy steps learn on the way, for the outputs and the summary.
struct Deploy<'a> {
    config: &'a Config,
    runner: &'a Runner,
    cancel: &'a Cancel,
    summary: Summary,
    outputs: Outputs,
    /// GitHub's side of the run (approval, deployment), once the approve step ran.
    github: Option<Session>,
    started: Instant,
}

async fn deploy(
    config: &Config,
    ctx: &RunContext,
    runner: &Runner,
    cancel: &Cancel,
) -> Result<Outputs, Failure> {
    let mut d = Deploy {
        config,
        runner,
        cancel,
        summary: Summary::new(config),
        outputs: resolve::outputs(config),
        github: None,
        started: Instant::now(),
    };
    {
        let _g = runner.group("Resolve the plan");
        runner.info(resolve::render_text(config, ctx).trim_end());
    }
    let mut result = deploy_steps(&mut d, ctx).await;
    report(&mut d, ctx, &mut result).await;
    result.map(|()| d.outputs)
}

async fn deploy_steps(d: &mut Deploy<'_>, ctx: &RunContext) -> Result<(), Failure> {
    let images = verify_images(d).await?;
    approve(d, ctx).await?;
    let target = connect(d.config, d.runner)
        .await
        .map_err(|e| failure("Cluster connection failed", e, &d.outputs, Status::Failed))?;
    let lock = lock(&target, d.config, ctx, d.runner, d.cancel)
        .await
        .map_err(|e| failure("Release lock failed", e, &d.outputs, Status::Failed))?;
    let result = deploy_locked(d, &target, &lock, images).await;
    unlock(lock, d.runner).await;
    result
}

async fn deploy_locked(
    d: &mut Deploy<'_>,
    target: &Target,
    lock: &LeaseGuard,
    images: Vec<(String, String)>,
) -> Result<(), Failure> {
    let (config, runner) = (d.config, d.runner);
    let before = recover(target, config, runner, lock, d.cancel)
        .await
        .map_err(|e| failure("Release recovery failed", e, &d.outputs, Status::Failed))?;
    for r in &before.repaired {
        d.summary.rollout(&repaired_line(r));
    }
    let previous = before.deployed;
    d.outputs.previous_revision = previous;
    if let Some(signal) = d.cancel.signal() {
        return Err(failure(
            "Deploy cancelled",
            anyhow::anyhow!(
                "cancelled by {signal} before the upgrade; release {:?} untouched",
                config.release
            ),
            &d.outputs,
            Status::Failed,
        ));
    }

    let spec = upgrade_spec(config, images);
    let started = Instant::now();
    let release = match upgrade(target, &spec, runner, d.cancel).await {
        Ok(r) => r,
        Err(e) => return Err(after_failed_upgrade(d, target, &before, e).await),
    };
    let revision = release.revision;
    d.outputs.revision = Some(revision);
    d.summary.rollout(&format!(
        "helm {} upgraded release `{}` to revision {revision}{}.",
        target.helm.version,
        config.release,
        previous.map_or(String::new(), |p| format!(" (from revision {p})"))
    ));

    if let Err(e) = watch(
        target,
        config,
        runner,
        revision,
        release.manifest,
        Deadline {
            timeout: config.timeout,
            since: started,
        },
        d.cancel,
    )
    .await
    {
        return Err(after_failed_rollout(d, target, previous, e).await);
    }
    d.summary.rollout(&format!(
        "Revision {revision} of release `{}` is ready ({:.1}s after the upgrade started).",
        config.release,
        started.elapsed().as_secs_f64()
    ));

    if let Err(e) = smoke(d, target).await {
        let cancelled = d.cancel.signal().is_some();
        // rollback_on_failure: false leaves the new revision in place for inspection.
        if !config.rollback_on_failure && !cancelled {
            return Err(failure("Smoke tests failed", e, &d.outputs, Status::Failed));
        }
        let title = if cancelled {
            "Deploy cancelled"
        } else {
            "Smoke tests failed"
        };
        return Err(roll_back_after(d, target, previous, title, e).await);
    }
    Ok(())
}

/// Step: check that every image tag exists in its registry (issue 5: registry.rs). Returns the
/// `(helm key, image)` pairs to deploy (digest-pinned when `pin_digests` is on).
async fn verify_images(d: &mut Deploy<'_>) -> Result<Vec<(String, String)>, Failure> {
    let config = d.config;
    let configured: Vec<(String, String)> = config
        .images
        .iter()
        .map(|i| (i.key.clone(), i.reference.clone()))
        .collect();
    if config.images.is_empty() || !(config.verify_images || config.pin_digests) {
        return Ok(configured);
    }
    let _g = d.runner.group("Verify images");
    let verified = crate::registry::verify_config(config, d.runner)
        .await
        .map_err(|e| {
            failure(
                "Image verification failed",
                e.into(),
                &d.outputs,
                Status::Failed,
            )
        })?;
    if verified.is_empty() {
        return Ok(configured);
    }
    for v in &verified {
        d.summary.image_digest(&v.key, &v.digest);
        d.outputs.digests.insert(v.key.clone(), v.digest.clone());
        d.outputs.images.insert(v.key.clone(), v.deploy.clone());
    }
    Ok(verified.into_iter().map(|v| (v.key, v.deploy)).collect())
}

/// Step: approvals for protected environments (fail-closed), and the GitHub deployment
/// in_progress (issue 6: github/). Nothing before this step touches the cluster.
async fn approve(d: &mut Deploy<'_>, ctx: &RunContext) -> Result<(), Failure> {
    let session = Session::start(d.config, ctx, d.runner, &mut d.summary)
        .await
        .map_err(|e| failure(e.title(), e.into(), &d.outputs, Status::Failed))?;
    d.github = Some(session);
    Ok(())
}

/// Step: the kube client and the helm binary (its major version detected, not guessed).
pub async fn connect(config: &Config, runner: &Runner) -> anyhow::Result<Target> {
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
async fn lock(
    target: &Target,
    config: &Config,
    ctx: &RunContext,
    runner: &Runner,
    cancel: &Cancel,
) -> anyhow::Result<LeaseGuard> {
    let _g = runner.group("Lock the release");
    let client = &target.cluster.client;
    lease::ensure_namespace(client, &config.namespace).await?;
    let guard = lease::acquire(
        client,
        runner,
        &config.namespace,
        &config.release,
        &holder_identity(ctx),
        config.timeout,
        cancel,
    )
    .await?;
    Ok(guard)
}

async fn unlock(lock: LeaseGuard, runner: &Runner) {
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

/// The release before this run's upgrade.
#[derive(Debug, Clone, Default)]
struct Before {
    /// The revision deployed (what a failure rolls back to).
    deployed: Option<u32>,
    /// The newest revision, whatever its status (a failed upgrade writes one above it).
    latest: Option<u32>,
    /// StatefulSet pods the recovery deleted (stuck on a revision other than the deployed one).
    repaired: Vec<statefulset::Deleted>,
}

/// The summary's line for a pod a forced rollback deleted.
fn repaired_line(r: &statefulset::Deleted) -> String {
    format!(
        "StatefulSet `{}`: deleted {} so that the controller recreates it from the deployed revision (a StatefulSet never replaces such a pod by itself).",
        r.set, r.stuck
    )
}

/// The StatefulSets of `manifest` get Kubernetes' forced rollback (statefulset::repair): their
/// pods stuck on another revision are deleted, highest ordinal first.
async fn repair_statefulsets(
    target: &Target,
    runner: &Runner,
    manifest: &str,
    namespace: &str,
    deadline: Deadline,
) -> anyhow::Result<Vec<statefulset::Deleted>> {
    let mut by_namespace: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for w in rollout::workloads_from_manifest(manifest, namespace) {
        if w.kind == rollout::Kind::StatefulSet {
            by_namespace.entry(w.namespace).or_default().push(w.name);
        }
    }
    let mut deleted = Vec::new();
    for (ns, sets) in by_namespace {
        let client = &target.cluster.client;
        deleted.extend(statefulset::repair(client, runner, &ns, &sets, deadline).await?);
    }
    Ok(deleted)
}

/// How often a pending record written outside this action is looked at again.
const PENDING_POLL: Duration = Duration::from_secs(2);

/// A pending record that no run of this action holds (someone's own `helm upgrade` may still be
/// running) is waited for until it is `pending_grace` old; a run of this action that was killed
/// is known from its expired lease, taken over by this run, and is not waited for. Returns the
/// history once the record is no longer pending or has aged past the grace period.
async fn wait_out_pending(
    target: &Target,
    config: &Config,
    runner: &Runner,
    mut history: Vec<helm::Revision>,
    cancel: &Cancel,
) -> anyhow::Result<Vec<helm::Revision>> {
    let (release, ns) = (&config.release, &config.namespace);
    let Some(pending) = helm::latest(&history).filter(|r| r.is_pending()).cloned() else {
        return Ok(history);
    };
    let age = helm::age(&pending).unwrap_or_default();
    let grace = config.pending_grace;
    if age >= grace {
        return Ok(history);
    }
    let wait = Deadline::from_now(grace - age);
    runner.info(&format!(
        "Release {release:?} in namespace {ns:?}: revision {} has been {} for {} and no run of trader-deploy holds its lock, so someone may still be running helm on it; waiting up to {} for it to finish (pending_grace {}).",
        pending.revision,
        pending.status,
        humantime::format_duration(Duration::from_secs(age.as_secs())),
        humantime::format_duration(Duration::from_secs(wait.timeout.as_secs())),
        humantime::format_duration(grace),
    ));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PENDING_POLL.min(wait.remaining())) => {}
            signal = cancel.cancelled() => anyhow::bail!(
                "cancelled by {signal} while waiting for revision {} of release {release:?} in namespace {ns:?} to leave {}; release untouched",
                pending.revision, pending.status
            ),
        }
        history = target.helm.history(release, ns).await?;
        match helm::latest(&history) {
            Some(r) if r.is_pending() && r.revision == pending.revision => {}
            _ => {
                runner.info(&format!(
                    "Revision {} of release {release:?} is no longer pending.",
                    pending.revision
                ));
                return Ok(history);
            }
        }
        if wait.passed() {
            runner.info(&format!(
                "Revision {} of release {release:?} is still {} after the grace period of {}: it counts as stuck.",
                pending.revision,
                pending.status,
                humantime::format_duration(grace)
            ));
            return Ok(history);
        }
    }
}

/// Step: bring a release left in pending-install/upgrade/rollback by a killed run back to its
/// last deployed revision. Says what the release was before this run.
async fn recover(
    target: &Target,
    config: &Config,
    runner: &Runner,
    lock: &LeaseGuard,
    cancel: &Cancel,
) -> anyhow::Result<Before> {
    let _g = runner.group("Check the release");
    let (release, ns) = (&config.release, &config.namespace);
    let mut history = target.helm.history(release, ns).await?;
    if lock.took_over_from.is_none() {
        history = wait_out_pending(target, config, runner, history, cancel).await?;
    }
    let Some(latest) = helm::latest(&history) else {
        runner.info(&format!(
            "Release {release:?} does not exist yet in namespace {ns:?}: it will be installed."
        ));
        return Ok(Before::default());
    };
    let deployed = helm::last_deployed(&history).map(|r| r.revision);
    if !latest.is_pending() {
        runner.info(&format!(
            "Release {release:?}: revision {} is {}; last deployed revision: {}.",
            latest.revision,
            latest.status,
            deployed.map_or("none".to_string(), |r| r.to_string())
        ));
        // A StatefulSet left with pods of a bad revision (a rollback before this action could
        // repair it) would block this upgrade forever: repaired first.
        let repaired = match deployed {
            Some(rev) => {
                let manifest = target.helm.get_manifest(release, ns, Some(rev)).await?;
                let deadline = Deadline::from_now(config.timeout);
                repair_statefulsets(target, runner, &manifest, ns, deadline).await?
            }
            None => Vec::new(),
        };
        return Ok(Before {
            deployed,
            latest: Some(latest.revision),
            repaired,
        });
    }
    let good =
        deployed.or_else(|| helm::previous_good(&history, latest.revision).map(|r| r.revision));
    let Some(good) = good else {
        if latest.status == "pending-install" {
            // The release never worked: nothing to go back to, so it is removed and installed
            // afresh by this run.
            runner.warning(
                "Recovering a stuck release",
                &format!(
                    "release {release:?} in namespace {ns:?} is stuck in pending-install at revision {} (a run was killed mid-install) and was never deployed; uninstalling it so this run installs it afresh",
                    latest.revision
                ),
            );
            target.helm.uninstall(release, ns, config.timeout).await?;
            return Ok(Before::default());
        }
        anyhow::bail!(
            "failed to recover release {release:?} in namespace {ns:?}: revision {} is {} and no revision was ever deployed to roll back to; uninstall it (helm uninstall {release} -n {ns}) and deploy again",
            latest.revision,
            latest.status
        );
    };
    runner.warning(
        "Recovering a stuck release",
        &format!(
            "release {release:?} in namespace {ns:?} is stuck in {} at revision {} (a run was killed mid-operation); rolling it back to revision {good}, its last deployed revision",
            latest.status, latest.revision
        ),
    );
    let rolled = roll_back_to(target, config, runner, good, config.timeout)
        .await
        .context(format!(
            "the recovery rollback of release {release:?} to revision {good} did not become ready"
        ))?;
    let now = rolled.revision;
    runner.info(&format!(
        "Recovered release {release:?}: revision {good} is deployed again (as revision {now})."
    ));
    Ok(Before {
        deployed: Some(now),
        latest: Some(now),
        repaired: rolled.repaired,
    })
}

fn upgrade_spec(config: &Config, images: Vec<(String, String)>) -> UpgradeSpec {
    let chart = match &config.chart_dir {
        Some(dir) => dir.display().to_string(),
        None => config.chart.clone(),
    };
    UpgradeSpec {
        release: config.release.clone(),
        namespace: config.namespace.clone(),
        chart,
        values_files: config.values_files.clone(),
        images,
        set: config.set.clone(),
        history_max: config.history_max,
        timeout: config.timeout,
    }
}

/// Step: `helm upgrade --install`.
async fn upgrade(
    target: &Target,
    spec: &UpgradeSpec,
    runner: &Runner,
    cancel: &Cancel,
) -> Result<helm::Release, HelmError> {
    let _g = runner.group(&format!("Upgrade release {:?}", spec.release));
    let shown: Vec<String> = spec
        .images
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    runner.info(&format!(
        "helm upgrade --install {} {} --namespace {} ({})",
        spec.release,
        spec.chart,
        spec.namespace,
        if shown.is_empty() {
            "no images set".to_string()
        } else {
            shown.join(", ")
        }
    ));
    let (release, stderr) = target.helm.upgrade(spec, cancel).await?;
    runner.info(&format!(
        "Release {:?} in namespace {:?}: revision {} {}",
        spec.release, spec.namespace, release.revision, release.status
    ));
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        runner.info(&format!("helm: {line}"));
    }
    Ok(release)
}

/// The revision helm reports as current.
async fn current_revision(target: &Target, config: &Config) -> anyhow::Result<u32> {
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
/// revision) until ready, failing fast.
async fn watch(
    target: &Target,
    config: &Config,
    runner: &Runner,
    revision: u32,
    manifest: Option<String>,
    deadline: Deadline,
    cancel: &Cancel,
) -> Result<(), Box<RolloutError>> {
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

/// Step: the smoke tests (issue 5: smoke.rs).
async fn smoke(d: &mut Deploy<'_>, target: &Target) -> anyhow::Result<()> {
    if d.config.smoke_tests.is_none() && d.config.smoke_spec.is_none() {
        return Ok(());
    }
    let _g = d.runner.group("Smoke tests");
    let cancel = d.cancel;
    let result = tokio::select! {
        r = crate::smoke::run_config(d.config, Some(&target.cluster.client), d.runner) => r,
        signal = cancel.cancelled() => {
            anyhow::bail!("cancelled by {signal} during the smoke tests")
        }
    };
    // Every check's result goes into the summary, passed or failed.
    if let Some(report) = crate::smoke::Report::of(&result) {
        for r in &report.results {
            d.summary
                .smoke(r.name.clone(), r.passed, r.summary_detail());
        }
    }
    result?;
    Ok(())
}

/// The upgrade itself failed (or was cancelled): bring the release back if helm left a bad
/// revision on top.
async fn after_failed_upgrade(
    d: &mut Deploy<'_>,
    target: &Target,
    before: &Before,
    err: HelmError,
) -> Failure {
    let cancelled = err.is_cancelled();
    let title = if cancelled {
        "Deploy cancelled"
    } else {
        "Upgrade failed"
    };
    let history = target
        .helm
        .history(&d.config.release, &d.config.namespace)
        .await
        .unwrap_or_default();
    let Some(written) = helm::latest(&history).filter(|r| Some(r.revision) > before.latest) else {
        // helm failed before writing a revision (a render or validation error): nothing changed.
        d.outputs.revision = before.deployed;
        return failure(title, err.into(), &d.outputs, Status::Failed);
    };
    // A revision helm was stopped in (our deadline) is pending: never left so, whatever
    // rollback_on_failure says.
    if !d.config.rollback_on_failure && !cancelled && !written.is_pending() {
        d.outputs.revision = Some(written.revision);
        return failure(title, err.into(), &d.outputs, Status::Failed);
    }
    roll_back_after(d, target, before.deployed, title, err.into()).await
}

/// The rollout failed: diagnostics into the summary, then roll back.
async fn after_failed_rollout(
    d: &mut Deploy<'_>,
    target: &Target,
    previous: Option<u32>,
    err: Box<RolloutError>,
) -> Failure {
    let cancelled = err.is_cancelled();
    if !cancelled {
        let md = rollout::diagnostics(&target.cluster.client, &err).await;
        d.runner.info(&md);
        d.summary.diagnostics(&md);
    }
    let title = if cancelled {
        "Deploy cancelled"
    } else {
        "Rollout failed"
    };
    if !d.config.rollback_on_failure && !cancelled {
        return failure(title, anyhow::anyhow!("{err}"), &d.outputs, Status::Failed);
    }
    let detected = err.detected;
    d.runner.info(&format!(
        "Failure detected; starting the rollback {:.1}s later.",
        detected.elapsed().as_secs_f64()
    ));
    roll_back_after(d, target, previous, title, anyhow::anyhow!("{err}")).await
}

/// Rolls back to `previous` after `error`, verifies it, and says what happened.
async fn roll_back_after(
    d: &mut Deploy<'_>,
    target: &Target,
    previous: Option<u32>,
    title: &'static str,
    error: anyhow::Error,
) -> Failure {
    let (config, runner) = (d.config, d.runner);
    let Some(good) = previous else {
        return failure(
            title,
            error.context(format!(
                "release {:?} had no deployed revision before this run, so there is nothing to roll back to",
                config.release
            )),
            &d.outputs,
            Status::Failed,
        );
    };
    let verify_for = if d.cancel.signal().is_some() {
        CANCELLED_VERIFY
    } else {
        config.timeout
    };
    match roll_back_to(target, config, runner, good, verify_for).await {
        Ok(RolledBack {
            revision: now,
            repaired,
        }) => {
            for r in &repaired {
                d.summary.rollout(&repaired_line(r));
            }
            d.outputs.revision = Some(now);
            d.summary.rollout(&format!(
                "Rolled back to revision {good} (now revision {now}) and verified ready."
            ));
            failure(
                if title == "Deploy cancelled" { title } else { "Deploy failed, rolled back" },
                error.context(format!(
                    "release {:?} was rolled back to revision {good} (now revision {now}), verified ready",
                    config.release
                )),
                &d.outputs,
                Status::RolledBack,
            )
        }
        Err(rb) => {
            if let Ok(now) = current_revision(target, config).await {
                d.outputs.revision = Some(now);
            }
            failure(
                "Rollback failed",
                anyhow::anyhow!(
                    "{error:#}; then rolling release {:?} back to revision {good} failed too: {rb:#}",
                    config.release
                ),
                &d.outputs,
                Status::Failed,
            )
        }
    }
}

/// A rollback that was verified.
pub struct RolledBack {
    /// The revision the rollback wrote.
    pub revision: u32,
    /// StatefulSet pods deleted so that they come back on the rolled-back revision.
    pub repaired: Vec<statefulset::Deleted>,
}

/// `helm rollback` to `revision`, then Kubernetes' forced rollback of its StatefulSets (their
/// pods left on the bad revision are deleted), then the same watcher verifies it, all within
/// `verify_for`.
pub async fn roll_back_to(
    target: &Target,
    config: &Config,
    runner: &Runner,
    revision: u32,
    verify_for: Duration,
) -> anyhow::Result<RolledBack> {
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
    let deadline = Deadline::from_now(verify_for);
    let now = current_revision(target, config).await?;
    let manifest = target
        .helm
        .get_manifest(&config.release, &config.namespace, Some(now))
        .await?;
    let repaired =
        repair_statefulsets(target, runner, &manifest, &config.namespace, deadline).await?;
    watch(
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
    Ok(RolledBack {
        revision: now,
        repaired,
    })
}

/// Step: the GitHub deployment status (and the outputs it owns), the job summary (written once,
/// here) and the notification.
async fn report(d: &mut Deploy<'_>, ctx: &RunContext, result: &mut Result<(), Failure>) {
    let (outputs, message) = match result {
        Ok(()) => (&mut d.outputs, None),
        Err(f) => (&mut f.outputs, Some(format!("{:#}", f.error))),
    };
    outputs.duration_seconds = d.started.elapsed().as_secs_f64();
    if let Some(github) = &d.github {
        github
            .finish(d.config, d.runner, outputs, message.as_deref())
            .await;
    }
    d.summary.finish(outputs, message.as_deref());
    if let Err(e) = d.summary.write(d.runner) {
        d.runner.warning("Job summary", &e.to_string());
    }
    notify::notify(d.config, ctx, d.runner, outputs, message.as_deref()).await;
}

// ---------------------------------------------------------------------------------------------
// mode: rollback — to rollback_revision or the previous good revision, verified.
// ---------------------------------------------------------------------------------------------

async fn rollback(
    config: &Config,
    ctx: &RunContext,
    runner: &Runner,
    cancel: &Cancel,
) -> Result<Outputs, Failure> {
    let mut outputs = resolve::outputs(config);
    let mut summary = Summary::new(config);
    let result = rollback_steps(config, ctx, runner, cancel, &mut outputs, &mut summary).await;
    let message = result.as_ref().err().map(|f| format!("{:#}", f.error));
    let final_outputs = match &result {
        Ok(o) => o.clone(),
        Err(f) => f.outputs.clone(),
    };
    summary.finish(&final_outputs, message.as_deref());
    if let Err(e) = summary.write(runner) {
        runner.warning("Job summary", &e.to_string());
    }
    result
}

async fn rollback_steps(
    config: &Config,
    ctx: &RunContext,
    runner: &Runner,
    cancel: &Cancel,
    outputs: &mut Outputs,
    summary: &mut Summary,
) -> Result<Outputs, Failure> {
    let target = connect(config, runner)
        .await
        .map_err(|e| failure("Cluster connection failed", e, outputs, Status::Failed))?;
    let lock = lock(&target, config, ctx, runner, cancel)
        .await
        .map_err(|e| failure("Release lock failed", e, outputs, Status::Failed))?;
    let result = async {
        let history = target
            .helm
            .history(&config.release, &config.namespace)
            .await
            .map_err(|e| failure("Rollback failed", e.into(), outputs, Status::Failed))?;
        let current = helm::latest(&history).map(|r| r.revision);
        outputs.previous_revision = helm::last_deployed(&history).map(|r| r.revision);
        let target_rev = match config.rollback_revision {
            Some(r) => {
                let Some(rev) = history.iter().find(|h| h.revision == r) else {
                    return Err(failure(
                        "Rollback failed",
                        anyhow::anyhow!(
                            "input `rollback_revision`: release {:?} in namespace {:?} has no revision {r} (it has {})",
                            config.release,
                            config.namespace,
                            history.iter().map(|h| h.revision.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                        outputs,
                        Status::Failed,
                    ));
                };
                rev.revision
            }
            None => {
                let Some(cur) = current else {
                    return Err(failure(
                        "Rollback failed",
                        anyhow::anyhow!("release {:?} does not exist in namespace {:?}", config.release, config.namespace),
                        outputs,
                        Status::Failed,
                    ));
                };
                // The newest good revision below the deployed one (or below a bad top revision).
                let below = helm::last_deployed(&history).map_or(cur, |r| r.revision);
                match helm::previous_good(&history, below) {
                    Some(r) => r.revision,
                    None => {
                        return Err(failure(
                            "Rollback failed",
                            anyhow::anyhow!(
                                "release {:?} in namespace {:?} has no earlier good revision to roll back to",
                                config.release,
                                config.namespace
                            ),
                            outputs,
                            Status::Failed,
                        ));
                    }
                }
            }
        };
        runner.info(&format!(
            "Emergency rollback of release {:?}: revision {} → revision {target_rev}",
            config.release,
            current.map_or("none".into(), |c| c.to_string())
        ));
        match roll_back_to(&target, config, runner, target_rev, config.timeout).await {
            Ok(RolledBack { revision: now, repaired }) => {
                for r in &repaired {
                    summary.rollout(&repaired_line(r));
                }
                outputs.revision = Some(now);
                outputs.rolled_back = true;
                summary.rollout(&format!("Rolled back to revision {target_rev} (now revision {now}) and verified ready."));
                Ok(outputs.clone())
            }
            Err(e) => {
                if let Ok(now) = current_revision(&target, config).await {
                    outputs.revision = Some(now);
                }
                Err(failure("Rollback failed", e, outputs, Status::Failed))
            }
        }
    }
    .await;
    unlock(lock, runner).await;
    result
}

// ---------------------------------------------------------------------------------------------
// mode: plan — render with the new values and diff against the live release.
// ---------------------------------------------------------------------------------------------

async fn plan(config: &Config, ctx: &RunContext, runner: &Runner) -> Result<Outputs, Failure> {
    let outputs = resolve::outputs(config);
    {
        let _g = runner.group("Resolve the plan");
        runner.info(resolve::render_text(config, ctx).trim_end());
    }
    let fail = |e: anyhow::Error| failure("Plan failed", e, &outputs, Status::Failed);
    let target = connect(config, runner).await.map_err(fail)?;
    let images = config
        .images
        .iter()
        .map(|i| (i.key.clone(), i.reference.clone()))
        .collect();
    let spec = upgrade_spec(config, images);
    let _g = runner.group("Diff against the live release");
    let planned = target
        .helm
        .template(&spec)
        .await
        .map_err(|e| fail(e.into()))?;
    let history = target
        .helm
        .history(&config.release, &config.namespace)
        .await
        .map_err(|e| fail(e.into()))?;
    let live = match helm::last_deployed(&history) {
        Some(r) => {
            runner.info(&format!(
                "Live: revision {} of release {:?}",
                r.revision, config.release
            ));
            target
                .helm
                .get_manifest(&config.release, &config.namespace, Some(r.revision))
                .await
                .map_err(|e| fail(e.into()))?
        }
        None => {
            runner.info(&format!(
                "Release {:?} is not deployed yet: everything is new.",
                config.release
            ));
            String::new()
        }
    };
    let d = crate::diff::diff(&live, &planned, &config.namespace);
    runner.info(crate::diff::render_text(&d).trim_end());
    runner
        .summary(&crate::diff::render_markdown(
            &d,
            &config.release,
            &config.namespace,
        ))
        .map_err(|e| fail(e.into()))?;
    Ok(Outputs {
        previous_revision: helm::last_deployed(&history).map(|r| r.revision),
        revision: helm::last_deployed(&history).map(|r| r.revision),
        ..outputs
    })
}

// ---------------------------------------------------------------------------------------------
// mode: validate — helm lint and template for every environment's values.
// ---------------------------------------------------------------------------------------------

/// The values files validate checks: the given `values_files` (layered, as a deploy uses them),
/// else every deploy/values/values-*.yaml of the workspace (each alone), else the chart's
/// defaults alone.
pub fn validation_sets(config: &Config) -> Vec<Vec<std::path::PathBuf>> {
    let default = config
        .workspace
        .join(format!("deploy/values/values-{}.yaml", config.environment));
    if !config.values_files.is_empty() && config.values_files != [default] {
        return vec![config.values_files.clone()];
    }
    let dir = config.workspace.join("deploy/values");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("values-") && (n.ends_with(".yaml") || n.ends_with(".yml"))
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        vec![Vec::new()]
    } else {
        files.into_iter().map(|f| vec![f]).collect()
    }
}

async fn validate(config: &Config, runner: &Runner) -> Result<Outputs, Failure> {
    let outputs = resolve::outputs(config);
    let fail = |e: anyhow::Error| failure("Validation failed", e, &outputs, Status::Failed);
    // No cluster: lint and template are offline.
    let helm = Helm::detect(&config.helm, None)
        .await
        .map_err(|e| fail(e.into()))?;
    let chart = config
        .chart_dir
        .as_ref()
        .map_or(config.chart.clone(), |d| d.display().to_string());
    let sets = validation_sets(config);
    let mut md = format!(
        "### Chart validation of `{}`\n\n| values | lint | template |\n|---|---|---|\n",
        config.chart
    );
    let mut errors = Vec::new();
    for files in sets {
        let label = if files.is_empty() {
            "(chart defaults)".to_string()
        } else {
            files
                .iter()
                .map(|f| {
                    f.strip_prefix(&config.workspace)
                        .unwrap_or(f)
                        .display()
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _g = runner.group(&format!("Validate with {label}"));
        let lint = helm.lint(&chart, &files).await;
        let spec = UpgradeSpec {
            values_files: files.clone(),
            ..upgrade_spec(
                config,
                config
                    .images
                    .iter()
                    .map(|i| (i.key.clone(), i.reference.clone()))
                    .collect(),
            )
        };
        let template = helm.template(&spec).await;
        let cell = |ok: bool| if ok { "✅" } else { "❌" };
        md.push_str(&format!(
            "| `{label}` | {} | {} |\n",
            cell(lint.is_ok()),
            cell(template.is_ok())
        ));
        match &lint {
            Ok(out) => runner.info(out.trim_end()),
            Err(e) => {
                runner.info(&format!("{e:#}"));
                errors.push(format!("{e:#}"));
            }
        }
        match &template {
            Ok(out) => runner.info(&format!(
                "rendered {} objects",
                crate::diff::objects(out, &config.namespace, None).len()
            )),
            Err(e) => {
                runner.info(&format!("{e:#}"));
                errors.push(format!("{e:#}"));
            }
        }
    }
    runner.summary(&md).map_err(|e| fail(e.into()))?;
    if errors.is_empty() {
        Ok(outputs)
    } else {
        Err(fail(anyhow::anyhow!("{}", errors.join("\n"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{self, RawInputs};

    fn config(ws: &std::path::Path, pairs: &[(&'static str, &str)]) -> Config {
        std::fs::create_dir_all(ws.join("chart")).unwrap();
        std::fs::write(ws.join("chart/Chart.yaml"), "name: app\nversion: 0.1.0\n").unwrap();
        let ctx = RunContext {
            workspace: ws.to_path_buf(),
            ..RunContext::default()
        };
        let mut all: Vec<(&str, String)> = vec![
            ("chart", "chart".into()),
            ("environment", "dev".into()),
            ("version", "v1.0.0".into()),
            ("mode", "validate".into()),
        ];
        all.extend(pairs.iter().map(|(k, v)| (*k, v.to_string())));
        inputs::resolve(&RawInputs::from_pairs(all), &ctx).unwrap()
    }

    #[test]
    fn validate_checks_every_environment_or_the_given_files() {
        let ws = tempfile::tempdir().unwrap();
        let values = ws.path().join("deploy/values");
        // No values files at all: the chart's defaults.
        assert_eq!(
            validation_sets(&config(ws.path(), &[])),
            [Vec::<std::path::PathBuf>::new()]
        );

        std::fs::create_dir_all(&values).unwrap();
        for f in ["values-dev.yaml", "values-prod.yaml", "other.yaml"] {
            std::fs::write(values.join(f), "replicas: 1\n").unwrap();
        }
        // The default values file of the environment: still every environment's file, alone.
        let sets = validation_sets(&config(ws.path(), &[]));
        assert_eq!(
            sets,
            [
                vec![values.join("values-dev.yaml")],
                vec![values.join("values-prod.yaml")]
            ]
        );
        // Given files: checked together, layered as a deploy would use them.
        let given = validation_sets(&config(
            ws.path(),
            &[(
                "values_files",
                "deploy/values/other.yaml\ndeploy/values/values-prod.yaml",
            )],
        ));
        assert_eq!(
            given,
            [vec![
                values.join("other.yaml"),
                values.join("values-prod.yaml")
            ]]
        );
    }
}
