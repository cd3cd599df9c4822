//! modes resolve and plan: the resolved plan, and the chart rendered with the new values and
//! diffed object by object against the live release.

use crate::context::RunContext;
use crate::helm;
use crate::inputs::Config;
use crate::outputs::{Outputs, Status};
use crate::resolve;
use crate::runner::Runner;

use super::deploy::upgrade_spec;
use super::{Failure, Title, failure};

pub(super) fn resolve_only(
    config: &Config,
    ctx: &RunContext,
    runner: &Runner,
) -> Result<Outputs, Failure> {
    let _group = runner.group("Resolve the plan");
    runner.info(resolve::render_text(config, ctx).trim_end());
    let outputs = resolve::outputs(config);
    runner
        .summary(&resolve::render_markdown(config, ctx))
        .map_err(|e| Failure {
            title: Title::JobSummary,
            error: e.into(),
            outputs: outputs.clone(),
        })?;
    Ok(outputs)
}

pub(super) async fn plan(
    config: &Config,
    ctx: &RunContext,
    runner: &Runner,
) -> Result<Outputs, Failure> {
    let outputs = resolve::outputs(config);
    {
        let _g = runner.group("Resolve the plan");
        runner.info(resolve::render_text(config, ctx).trim_end());
    }
    let fail = |e: anyhow::Error| failure(Title::PlanFailed, e, &outputs, Status::Failed);
    let target = super::cluster::connect_to(config, runner)
        .await
        .map_err(fail)?;
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
    // The diff quotes the live and rendered objects: an untrusted block.
    runner.untrusted(&crate::diff::render_text(&d));
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
