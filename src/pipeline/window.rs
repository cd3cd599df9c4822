//! Step: the deploy window (issue #18). Outside it a deploy is refused before anything touches
//! the registry, GitHub or the cluster, naming the calendar, the session and the next allowed
//! instant; `window_override` lets it through, loudly (an annotation, the summary, the
//! notification) and, on a protected environment, only with an approver other than the actor.

use jiff::Timestamp;

use super::{Run, Title};
use crate::context::RunContext;
use crate::inputs::Mode;

/// Checks the window (a step on the timeline when the environment has one); an override is
/// recorded in the outputs (`window_overridden`).
pub(super) fn check(run: &mut Run<'_>, ctx: &RunContext) -> Result<(), super::Failure> {
    if run.config.deploy_window.is_none() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let checked = check_window(run, ctx);
    run.timeline.step("window", started, checked.is_ok());
    checked
}

fn check_window(run: &mut Run<'_>, ctx: &RunContext) -> Result<(), super::Failure> {
    let config = run.config;
    let Some(policy) = &config.deploy_window else {
        return Ok(());
    };
    let env = &config.environment;
    let _g = run
        .runner
        .group(&format!("Check the deploy window of {env}"));
    if config.mode == Mode::Rollback && policy.rollback_anytime {
        run.runner.info(&format!(
            "A rollback of {env} may run at any time (the window's `rollback: anytime`)"
        ));
        return Ok(());
    }
    let at = ctx.now.unwrap_or_else(Timestamp::now);
    let verdict = policy.verdict(at).map_err(|e| {
        run.fail(
            Title::DeployWindow,
            anyhow::anyhow!("failed to check the deploy window of {env}: {e}"),
        )
    })?;
    let rule = policy.describe();
    if verdict.allowed {
        run.runner.info(&format!(
            "{env} may be deployed at {at} ({rule}): {}",
            verdict.reason
        ));
        run.summary.section(
            "Deploy window",
            &format!("Allowed at {at}: {}.", verdict.reason),
        );
        return Ok(());
    }
    let next = verdict.next.clone().unwrap_or_default();
    if !config.window_override {
        return Err(run.fail(
            Title::DeployWindow,
            anyhow::anyhow!(
                "{env} is deployed only {rule}, and at {at} {}; next allowed: {next} (for an \
                 emergency, window_override: true)",
                verdict.reason
            ),
        ));
    }
    let line = format!(
        "window_override: deploying {env} at {at} although {} ({rule}; next allowed: {next})",
        verdict.reason
    );
    run.runner.warning("Deploy window overridden", &line);
    run.summary
        .section("Deploy window", &format!("**Overridden.** {line}."));
    run.outputs.window_overridden = true;
    Ok(())
}
