//! modes resolve and plan: the resolved plan, and the chart rendered with the new values and
//! diffed object by object against the live release; on a pull request, the plan as a comment.

use crate::context::RunContext;
use crate::github::comment;
use crate::helm;
use crate::inputs::Config;
use crate::outputs::{Outputs, Status};
use crate::plan_live;
use crate::plan_report;
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
    let images = planned_images(config, runner).await.map_err(fail)?;
    let target = super::cluster::connect_to(config, runner)
        .await
        .map_err(fail)?;
    let pairs = images.iter().flat_map(|i| i.values.clone()).collect();
    let spec = upgrade_spec(config, pairs);
    let _g = runner.group("Diff against the live release");
    // Rendered against the cluster: its API versions and `lookup` (the live HPA-chosen replica
    // count, a CRD's presence) are what the deploy will see.
    let planned = target
        .helm
        .dry_run(&spec)
        .await
        .map_err(|e| fail(e.into()))?;
    // The policies see what the deploy would apply: the server-side render.
    let mut policy_markdown = String::new();
    if let Some(policies) = &config.policies {
        let _p = runner.group(&format!("Check policies in {}", policies.shown));
        let facts = super::policy::facts(config, &config.environment, &spec.images);
        let (md, verdict) = super::policy::evaluate(policies, &planned, &facts, runner);
        if let Err(e) = verdict {
            if !md.is_empty() {
                runner.summary(&format!("### Policies\n\n{md}")).ok();
            }
            return Err(failure(Title::PolicyDenied, e, &outputs, Status::Failed));
        }
        policy_markdown = md;
    }
    let history = target
        .helm
        .history(&config.release, &config.namespace)
        .await
        .map_err(|e| fail(e.into()))?;
    let live_revision = helm::last_deployed(&history).map(|r| r.revision);
    let stored = match live_revision {
        Some(r) => {
            runner.info(&format!(
                "Live: revision {r} of release {:?}",
                config.release
            ));
            target
                .helm
                .get_manifest(&config.release, &config.namespace, Some(r))
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
    let compared = plan_live::compare(&target.cluster.client, &planned, &stored, &config.namespace)
        .await
        .map_err(|e| fail(e.into()))?;
    let mut d = crate::diff::diff(&compared.live, &compared.after, &config.namespace);
    d.drift = compared.drift.into_iter().collect();
    // The diff quotes the live and rendered objects: an untrusted block.
    runner.untrusted(&crate::diff::render_text(&d));
    let resolved = plan_report::Resolved {
        environment: config.environment.clone(),
        version: config.version.clone(),
        release: config.release.clone(),
        namespace: config.namespace.clone(),
        images,
        protected: config.protected,
        window: window(config, ctx),
        live_revision,
        run_url: ctx.run_url(),
    };
    let mut full = plan_report::markdown(&resolved, &d, usize::MAX);
    if !policy_markdown.is_empty() {
        full.push_str(&format!("\n### Policies\n\n{policy_markdown}"));
    }
    runner.summary(&full).map_err(|e| fail(e.into()))?;
    let path = write_markdown(config, ctx, &runner.redact(&full)).map_err(fail)?;
    runner.info(&format!(
        "{}; the plan as markdown: {path}",
        plan_report::headline(&d, &config.environment)
    ));
    drop(_g);
    comment(config, ctx, runner, &resolved, &d).await;
    Ok(Outputs {
        previous_revision: live_revision,
        revision: live_revision,
        plan_changes: Some(plan_report::changes(&d)),
        plan_markdown_path: Some(path),
        ..outputs
    })
}

/// The environment's deploy window, and whether a deploy now would be inside it.
fn window(config: &Config, ctx: &RunContext) -> Option<String> {
    let policy = config.deploy_window.as_ref()?;
    let at = ctx.now.unwrap_or_else(jiff::Timestamp::now);
    Some(match policy.verdict(at) {
        Ok(v) if v.allowed => format!("{}: open at {at} ({})", policy.describe(), v.reason),
        Ok(v) => format!(
            "{}: closed at {at} ({}); next allowed: {}",
            policy.describe(),
            v.reason,
            v.next.unwrap_or_default()
        ),
        Err(e) => format!("{}: cannot tell ({e})", policy.describe()),
    })
}

/// The images the plan deploys: verified and pinned by digest when the deploy would be, so the
/// diff shows the reference the deploy would set.
async fn planned_images(
    config: &Config,
    runner: &Runner,
) -> anyhow::Result<Vec<plan_report::PlannedImage>> {
    let configured = || {
        config
            .images
            .iter()
            .map(|i| plan_report::PlannedImage {
                key: i.key.clone(),
                reference: i.reference.clone(),
                digest: None,
                values: i.values(None),
            })
            .collect()
    };
    if config.images.is_empty() || !(config.verify_images || config.pin_digests) {
        return Ok(configured());
    }
    let _g = runner.group("Verify images");
    let verified = crate::registry::verify_images(
        &config.images,
        &config.version,
        config.pin_digests,
        config.registry_credentials.clone(),
        runner,
    )
    .await?;
    if verified.is_empty() {
        return Ok(configured());
    }
    Ok(config
        .images
        .iter()
        .zip(verified)
        .map(|(i, v)| plan_report::PlannedImage {
            values: i.values(config.pin_digests.then_some(v.digest.as_str())),
            key: v.key,
            reference: v.deploy,
            digest: Some(v.digest),
        })
        .collect())
}

/// Writes the plan's markdown under the workspace; returns its path relative to the workspace
/// (what a later step, which starts there, can open; the container's own path of the
/// workspace means nothing on the runner).
fn write_markdown(config: &Config, ctx: &RunContext, markdown: &str) -> anyhow::Result<String> {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let relative = format!(
        ".trader-deploy/plan-{}-{}.md",
        safe(&config.release),
        safe(&config.environment)
    );
    let path = ctx.workspace.join(&relative);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().expect("a file under a directory"))?;
        std::fs::write(&path, markdown)
    };
    write().map_err(|e| {
        anyhow::anyhow!(
            "failed to write the plan's markdown to {}: {e}",
            path.display()
        )
    })?;
    Ok(relative)
}

/// On a pull request, the plan as one comment, created once and updated by later runs. Without
/// a token, a repository or the permission, one line says so; the summary has the plan anyway.
async fn comment(
    config: &Config,
    ctx: &RunContext,
    runner: &Runner,
    resolved: &plan_report::Resolved,
    d: &crate::diff::ManifestDiff,
) {
    let Some(number) = comment::pull_request_number(ctx.event_name.as_deref(), &ctx.event) else {
        return;
    };
    let _g = runner.group(&format!("Comment the plan on pull request #{number}"));
    let (Some(token), Some(repository)) = (&config.github_token, &ctx.repository) else {
        runner.warning(
            "Plan comment",
            &format!(
                "the plan is not commented on pull request #{number}: no github_token or GITHUB_REPOSITORY; the job summary has it"
            ),
        );
        return;
    };
    let marker = comment::marker(&config.release, &config.namespace, &config.environment);
    let limit = comment::BODY_MAX - marker.len() - 1_000;
    let body = format!("{marker}\n{}", plan_report::markdown(resolved, d, limit));
    let posted = comment::comment_plan(
        &ctx.api_url,
        token.clone(),
        repository,
        runner.redactor(),
        number,
        &marker,
        &body,
    )
    .await;
    match posted {
        Ok(p) => runner.info(&format!(
            "{} the plan comment {} on pull request #{number}",
            if p.created { "Created" } else { "Updated" },
            p.html_url.unwrap_or_else(|| p.id.to_string())
        )),
        Err(e) => runner.warning(
            "Plan comment",
            &format!(
                "the plan is not commented on pull request #{number}: {e}; the job summary has it"
            ),
        ),
    }
}
