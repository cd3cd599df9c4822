//! The steps of a deploy: the plan shown, images verified, approval and the GitHub deployment,
//! `helm upgrade`, the rollout watched, smoke tests; and on a failure, what `decide` says (roll
//! back and verify, keep, or leave untouched).

use std::time::{Duration, Instant};

use crate::cancel::Deadline;
use crate::context::RunContext;
use crate::github::session::Session;
use crate::helm::{self, HelmError, UpgradeSpec};
use crate::inputs::Config;
use crate::outputs::Status;
use crate::resolve;
use crate::rollout::{self, RolloutError};

use super::cluster::{self, Target};
use super::decide::{self, Decision, Left, Stage};
use super::recover::Before;
use super::{Failure, Run, Title, failure};

/// How long verification of a rollback gets after a cancellation (the runner kills the job
/// soon after its signal; helm's rollback itself is what leaves the release at a known revision).
const CANCELLED_VERIFY: Duration = Duration::from_secs(20);

/// The plan, first in the log.
pub(super) fn show_plan(run: &mut Run<'_>, ctx: &RunContext) {
    let started = Instant::now();
    {
        let _g = run.runner.group("Resolve the plan");
        run.runner
            .info(resolve::render_text(run.config, ctx).trim_end());
    }
    run.timeline.step("resolve", started, true);
}

/// The `--set-string` pairs of every image, each in its chart's shape: pinned to the verified
/// digest when `pin_digests` is on and it was verified.
pub(super) fn image_values(
    config: &Config,
    verified: &[crate::registry::VerifiedImage],
) -> Vec<(String, String)> {
    config
        .images
        .iter()
        .flat_map(|i| {
            let digest = verified
                .iter()
                .find(|v| v.key == i.key)
                .filter(|_| config.pin_digests)
                .map(|v| v.digest.as_str());
            i.values(digest)
        })
        .collect()
}

/// Step: check that every image tag exists in its registry. Returns the `--set-string` pairs
/// to deploy (digest-pinned when `pin_digests` is on).
pub(super) async fn verify_images(run: &mut Run<'_>) -> Result<Vec<(String, String)>, Failure> {
    let config = run.config;
    if config.images.is_empty() || !(config.verify_images || config.pin_digests) {
        return Ok(image_values(config, &[]));
    }
    let started = Instant::now();
    let _g = run.runner.group("Verify images");
    let verified = crate::registry::verify_images(
        &config.images,
        &config.version,
        config.pin_digests,
        config.registry_credentials.clone(),
        run.runner,
    )
    .await;
    run.timeline
        .step("verify images", started, verified.is_ok());
    let verified = verified.map_err(|e| run.fail(Title::ImageVerification, e.into()))?;
    for v in &verified {
        run.summary.image_digest(&v.key, &v.digest);
        run.outputs.digests.insert(v.key.clone(), v.digest.clone());
        run.outputs.images.insert(v.key.clone(), v.deploy.clone());
    }
    Ok(image_values(config, &verified))
}

/// Step: approvals for protected environments (fail-closed), and the GitHub deployment
/// in_progress. Nothing before this step touches the cluster.
pub(super) async fn approve(run: &mut Run<'_>, ctx: &RunContext) -> Result<(), Failure> {
    // An overridden deploy window needs an approver other than the run's actor.
    let distinct = run.outputs.window_overridden;
    let started = Instant::now();
    let session = Session::start(run.config, ctx, run.runner, &mut run.summary, distinct).await;
    run.timeline.step("approve", started, session.is_ok());
    let session = session.map_err(|e| run.fail(Title::GitHub(e.title()), e.into()))?;
    run.github = Some(session);
    Ok(())
}

/// A signal before the upgrade leaves the release untouched.
pub(super) fn stop_if_cancelled(run: &Run<'_>) -> Result<(), Failure> {
    match run.cancel.signal() {
        None => Ok(()),
        Some(signal) => Err(run.fail(
            Title::DeployCancelled,
            anyhow::anyhow!(
                "cancelled by {signal} before the upgrade; release {:?} untouched",
                run.config.release
            ),
        )),
    }
}

/// What the upgrade wrote, for the steps after it.
pub(super) struct Upgraded {
    release: helm::Release,
    /// When the upgrade started: the rollout's deadline counts from here.
    started: Instant,
    /// The revision deployed before it (what a failure rolls back to).
    previous: Option<u32>,
}

pub(super) fn upgrade_spec(config: &Config, images: Vec<(String, String)>) -> UpgradeSpec {
    let chart = match &config.chart_dir {
        Some(dir) => dir.display().to_string(),
        None => config.chart.clone(),
    };
    UpgradeSpec {
        release: config.release.clone(),
        namespace: config.namespace.clone(),
        chart,
        // The inline `values` and `secret_values` come after the files, as their files.
        values_files: config
            .values_files
            .iter()
            .chain(config.inline_values.iter().flat_map(|v| v.files.iter()))
            .cloned()
            .collect(),
        images,
        set: config.set.clone(),
        set_string: config.set_string.clone(),
        history_max: config.history_max,
        timeout: config.timeout,
        version: config.version.clone(),
    }
}

/// Step: `helm upgrade --install`; on failure, the release is brought back if helm left a bad
/// revision on top.
pub(super) async fn upgrade(
    run: &mut Run<'_>,
    target: &Target,
    before: &Before,
    images: Vec<(String, String)>,
) -> Result<Upgraded, Failure> {
    let (config, runner) = (run.config, run.runner);
    let spec = upgrade_spec(config, images);
    let started = Instant::now();
    let upgraded = {
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
        target.helm.upgrade(&spec, run.cancel).await
    };
    run.timeline.step("upgrade", started, upgraded.is_ok());
    let (release, stderr) = match upgraded {
        Ok(r) => r,
        Err(e) => return Err(after_failed_upgrade(run, target, before, e).await),
    };
    runner.info(&format!(
        "Release {:?} in namespace {:?}: revision {} {}",
        spec.release, spec.namespace, release.revision, release.status
    ));
    if !stderr.trim().is_empty() {
        runner.info("helm wrote to stderr:");
        runner.untrusted(&stderr);
    }
    let revision = release.revision;
    run.outputs.revision = Some(revision);
    run.summary.rollout(&format!(
        "helm {} upgraded release `{}` to revision {revision}{}.",
        target.helm.version,
        config.release,
        before
            .deployed
            .map_or(String::new(), |p| format!(" (from revision {p})"))
    ));
    Ok(Upgraded {
        release,
        started,
        previous: before.deployed,
    })
}

/// Step: watch the new revision's workloads until ready, failing fast.
pub(super) async fn watch(
    run: &mut Run<'_>,
    target: &Target,
    up: &Upgraded,
) -> Result<(), Failure> {
    let (config, revision) = (run.config, up.release.revision);
    let deadline = Deadline {
        timeout: config.timeout,
        since: up.started,
    };
    let manifest = up.release.manifest.clone();
    let started = Instant::now();
    let watched = cluster::watch(
        target, config, run.runner, revision, manifest, deadline, run.cancel,
    )
    .await;
    if let Ok(ready) = &watched {
        for (w, at) in ready {
            run.timeline
                .add("watch", &w.to_string(), started, *at, true);
        }
    }
    run.timeline.step("watch", started, watched.is_ok());
    if let Err(e) = watched {
        return Err(after_failed_rollout(run, target, up.previous, e).await);
    }
    run.summary.rollout(&format!(
        "Revision {revision} of release `{}` is ready ({:.1}s after the upgrade started).",
        config.release,
        up.started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Step: the smoke tests (docs/smoke-tests.md); every check's result goes into the summary.
pub(super) async fn smoke(
    run: &mut Run<'_>,
    target: &Target,
    up: &Upgraded,
) -> Result<(), Failure> {
    let config = run.config;
    if config.smoke_tests.is_none() && config.smoke_spec.is_none() {
        return Ok(());
    }
    let (runner, cancel) = (run.runner, run.cancel);
    let started = Instant::now();
    let result = {
        let _g = runner.group("Smoke tests");
        tokio::select! {
            r = crate::smoke::run_step(
                config.smoke_spec.as_ref(),
                &config.namespace,
                Some(&target.cluster.client),
                runner,
            ) => {
                if let Some(report) = crate::smoke::Report::of(&r) {
                    for c in &report.results {
                        run.summary.smoke(c.name.clone(), c.passed, c.summary_detail());
                    }
                }
                r.map(|_| ()).map_err(anyhow::Error::from)
            }
            signal = cancel.cancelled() => {
                Err(anyhow::anyhow!("cancelled by {signal} during the smoke tests"))
            }
        }
    };
    run.timeline.step("smoke", started, result.is_ok());
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            Err(after_failure(run, target, Stage::Smoke, Left::Revision, up.previous, e).await)
        }
    }
}

/// The upgrade itself failed (or was cancelled): what it left on top decides.
async fn after_failed_upgrade(
    run: &mut Run<'_>,
    target: &Target,
    before: &Before,
    err: HelmError,
) -> Failure {
    let history = target
        .helm
        .history(&run.config.release, &run.config.namespace)
        .await
        .unwrap_or_default();
    let written = helm::latest(&history).filter(|r| Some(r.revision) > before.latest);
    let left = match written {
        None => Left::Nothing,
        Some(r) if r.is_pending() => Left::Pending,
        Some(_) => Left::Revision,
    };
    run.outputs.revision = written.map(|r| r.revision).or(before.deployed);
    after_failure(
        run,
        target,
        Stage::Upgrade,
        left,
        before.deployed,
        err.into(),
    )
    .await
}

/// The rollout failed: diagnostics into the summary, then what `decide` says.
async fn after_failed_rollout(
    run: &mut Run<'_>,
    target: &Target,
    previous: Option<u32>,
    err: Box<RolloutError>,
) -> Failure {
    if !err.is_cancelled() {
        let md = rollout::diagnostics(&target.cluster.client, &err, run.config.pod_log_lines).await;
        // Pod logs, termination messages and events: text the pods and the cluster wrote.
        run.runner.untrusted(&md);
        run.summary.diagnostics(&md);
    }
    let detected = err.detected;
    let error = anyhow::anyhow!("{err}");
    if decide::decide(
        Left::Revision,
        run.cancel.signal().is_some(),
        run.config.rollback_on_failure,
        previous.is_some(),
    ) == Decision::RollBack
    {
        run.runner.info(&format!(
            "Failure detected; starting the rollback {:.1}s later.",
            detected.elapsed().as_secs_f64()
        ));
    }
    after_failure(run, target, Stage::Rollout, Left::Revision, previous, error).await
}

/// A failed step: keep, leave, or roll back to `previous` and verify, as `decide` says.
async fn after_failure(
    run: &mut Run<'_>,
    target: &Target,
    stage: Stage,
    left: Left,
    previous: Option<u32>,
    error: anyhow::Error,
) -> Failure {
    let config = run.config;
    let cancelled = run.cancel.signal().is_some();
    let title = decide::title(stage, cancelled);
    let good = match decide::decide(
        left,
        cancelled,
        config.rollback_on_failure,
        previous.is_some(),
    ) {
        Decision::Untouched | Decision::Keep => return run.fail(title, error),
        Decision::NothingToRollBackTo => {
            return run.fail(
                title,
                error.context(format!(
                    "release {:?} had no deployed revision before this run, so there is nothing to roll back to",
                    config.release
                )),
            );
        }
        Decision::RollBack => previous.expect("decide checked it"),
    };
    let verify_for = if cancelled {
        CANCELLED_VERIFY
    } else {
        config.timeout
    };
    let timeline = Some(&mut run.timeline);
    match cluster::roll_back_to(target, config, run.runner, good, verify_for, timeline).await {
        Ok(rolled) => {
            rolled.record(&mut run.summary, good);
            let now = rolled.revision;
            run.outputs.revision = Some(now);
            failure(
                decide::rolled_back_title(cancelled),
                error.context(format!(
                    "release {:?} was rolled back to revision {good} (now revision {now}), verified ready",
                    config.release
                )),
                &run.outputs,
                Status::RolledBack,
            )
        }
        Err(rb) => {
            if let Ok(now) = cluster::current_revision(target, config).await {
                run.outputs.revision = Some(now);
            }
            run.fail(
                Title::RollbackFailed,
                anyhow::anyhow!(
                    "{error:#}; then rolling release {:?} back to revision {good} failed too: {rb:#}",
                    config.release
                ),
            )
        }
    }
}
