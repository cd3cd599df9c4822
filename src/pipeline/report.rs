//! The step every mode ends in: the GitHub deployment's final status (where the mode recorded
//! one), the job summary table with the run's timeline (where the mode did not write its own),
//! and the notification.

use crate::context::RunContext;
use crate::notify;

use super::{Failure, Run};

/// Step: report the run's outcome.
pub(super) async fn report(run: &mut Run<'_>, ctx: &RunContext, result: &mut Result<(), Failure>) {
    let Run {
        config,
        runner,
        summary,
        outputs,
        github,
        table,
        started,
        timeline,
        ..
    } = run;
    let (outputs, message) = match result {
        Ok(()) => (outputs, None),
        Err(f) => (&mut f.outputs, Some(format!("{:#}", f.error))),
    };
    outputs.duration_seconds = started.elapsed().as_secs_f64();
    if let Some(github) = github {
        github
            .finish(config, runner, outputs, message.as_deref())
            .await;
    }
    if *table {
        summary.finish(outputs, message.as_deref());
        let title = format!(
            "{} {} to {}",
            config.mode.as_str(),
            summary.version,
            summary.environment
        );
        if let Some(chart) = timeline.mermaid(&title) {
            summary.section("Timeline", &chart);
        }
        if let Err(e) = summary.write(runner) {
            runner.warning("Job summary", &e.to_string());
        }
    }
    notify::notify(config, ctx, runner, outputs, message.as_deref()).await;
}
