//! Steps on the live release around the upgrade (issue #18): the smoke spec's `preflight` checks
//! (e.g. no open orders), retried within their `wait` budget, refuse the deploy with nothing
//! changed when they do not pass; then the `before_upgrade` hook (pause new orders), whose
//! `after` hook (resume) runs whatever the upgrade's outcome, cancellation included, and whose
//! own failure is a warning that hides nothing. Each puts a bar on the timeline when it ran.

use super::cluster::Target;
use super::recover::Before;
use super::{Run, Title};
use crate::smoke::{self, Check, Report};

/// Whether the `after` hook is due (its `before_upgrade` ran).
#[must_use = "the after hook must run: pass this to `after`"]
pub(super) struct Paused {
    after_due: bool,
}

fn record(
    run: &mut Run<'_>,
    section: &str,
    role: &str,
    result: &Result<Report, smoke::SmokeError>,
) {
    let Some(report) = result.as_ref().map_or_else(|e| e.report(), Some) else {
        return;
    };
    for c in &report.results {
        run.summary.section(
            section,
            &format!(
                "- {role} `{}`: {} {}",
                c.name,
                if c.passed { "passed" } else { "**failed**" },
                c.summary_detail()
            ),
        );
    }
}

/// Step: the preflight checks on the live release. No live release (a first install): nothing
/// to check.
pub(super) async fn preflight(
    run: &mut Run<'_>,
    target: &Target,
    before: &Before,
) -> Result<(), super::Failure> {
    let config = run.config;
    let Some(spec) = config
        .smoke_spec
        .as_ref()
        .filter(|s| !s.preflight.is_empty())
    else {
        return Ok(());
    };
    let release = &config.release;
    let (runner, cancel) = (run.runner, run.cancel);
    let _g = runner.group("Preflight checks on the live release");
    if before.deployed.is_none() {
        runner.info(&format!(
            "release {release:?} has no deployed revision: no preflight checks to run"
        ));
        return Ok(());
    }
    let started = std::time::Instant::now();
    let result = tokio::select! {
        r = smoke::preflight(spec, &config.namespace, Some(&target.cluster.client), runner) => r,
        signal = cancel.cancelled() => {
            return Err(run.fail(
                Title::DeployCancelled,
                anyhow::anyhow!("cancelled by {signal} during the preflight checks; release {release:?} untouched"),
            ));
        }
    };
    record(run, "Preflight", "check", &result);
    run.timeline.step("preflight", started, result.is_ok());
    result.map(|_| ()).map_err(|e| {
        run.fail(
            Title::PreflightFailed,
            anyhow::anyhow!(
                "the live release {release:?} did not pass its preflight checks, so it was not \
                 upgraded (nothing changed): {e}"
            ),
        )
    })
}

/// Step: the `before_upgrade` hook. When it fails, its `after` runs at once and the deploy stops
/// before the upgrade.
pub(super) async fn before_upgrade(
    run: &mut Run<'_>,
    target: &Target,
    before: &Before,
) -> Result<Paused, super::Failure> {
    let config = run.config;
    let Some(hooks) = config.smoke_spec.as_ref().and_then(|s| s.hooks.as_ref()) else {
        return Ok(Paused { after_due: false });
    };
    if before.deployed.is_none() {
        run.runner.info(&format!(
            "release {:?} has no deployed revision: no hooks to call",
            config.release
        ));
        return Ok(Paused { after_due: false });
    }
    let started = std::time::Instant::now();
    let result = {
        let _g = run.runner.group("Hook before the upgrade");
        call(run, target, &hooks.before_upgrade).await
    };
    record(run, "Hooks", "before_upgrade", &result);
    run.timeline
        .step("before_upgrade hook", started, result.is_ok());
    match result {
        Ok(_) => Ok(Paused { after_due: true }),
        Err(e) => {
            after(run, target, Paused { after_due: true }).await;
            Err(run.fail(
                Title::HookFailed,
                anyhow::anyhow!(
                    "the before_upgrade hook {:?} failed, so release {:?} was not upgraded: {e}",
                    hooks.before_upgrade.name,
                    config.release
                ),
            ))
        }
    }
}

/// Step: the `after` hook, whatever happened since `before_upgrade`. Not cancellable (its own
/// budget bounds it); a failure is a warning and the deploy's outcome stands.
pub(super) async fn after(run: &mut Run<'_>, target: &Target, paused: Paused) {
    let Some(hooks) = run
        .config
        .smoke_spec
        .as_ref()
        .and_then(|s| s.hooks.as_ref())
    else {
        return;
    };
    if !paused.after_due {
        return;
    }
    let started = std::time::Instant::now();
    let result = {
        let _g = run.runner.group("Hook after the upgrade");
        call(run, target, &hooks.after).await
    };
    record(run, "Hooks", "after", &result);
    run.timeline.step("after hook", started, result.is_ok());
    if let Err(e) = result {
        run.runner.warning(
            "After hook failed",
            &format!(
                "the after hook {:?} failed: {e} (the deploy's own outcome is reported apart)",
                hooks.after.name
            ),
        );
    }
}

async fn call(run: &Run<'_>, target: &Target, check: &Check) -> Result<Report, smoke::SmokeError> {
    smoke::hook(
        check,
        &run.config.namespace,
        Some(&target.cluster.client),
        run.runner,
    )
    .await
}
