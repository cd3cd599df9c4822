//! Step: the `policies` checked on the rendered release — before a deploy touches the cluster
//! (helm renders offline), in plan (the server-side render) and in validate (per environment).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::helm::Helm;
use crate::inputs::Config;
use crate::policy::{Policies, RunFacts, Verdicts};
use crate::runner::Runner;

use super::deploy::upgrade_spec;
use super::{Failure, Run, Title};

/// What the policies know of a run to `environment` deploying `images` (helm key → reference).
pub(super) fn facts(config: &Config, environment: &str, images: &[(String, String)]) -> RunFacts {
    RunFacts {
        environment: environment.to_string(),
        protected: crate::version::is_protected(environment, &config.protected_environments),
        release: config.release.clone(),
        namespace: config.namespace.clone(),
        version: config.version.clone(),
        images: images.iter().cloned().collect::<BTreeMap<_, _>>(),
    }
}

/// Evaluates `manifest` and reports the verdicts: warnings as warning annotations, everything
/// in the log (the messages quote rendered values: an untrusted block). Returns the summary's
/// markdown and, when a rule denies, the refusal.
pub(super) fn evaluate(
    policies: &Policies,
    manifest: &str,
    facts: &RunFacts,
    runner: &Runner,
) -> (String, Result<(), anyhow::Error>) {
    let verdicts = match policies.evaluate(manifest, facts) {
        Ok(v) => v,
        Err(e) => {
            let e = anyhow::Error::new(e);
            return (String::new(), Err(e));
        }
    };
    let denies = verdicts.deny_lines();
    let warns = verdicts.warn_lines();
    runner.info(&format!(
        "{} policy file(s) in {} on {} object(s) for environment {:?}: {} deny, {} warn",
        policies.files,
        policies.shown,
        verdicts.objects.len(),
        facts.environment,
        denies.len(),
        warns.len()
    ));
    if !denies.is_empty() || !warns.is_empty() {
        let listed: Vec<String> = denies
            .iter()
            .map(|d| format!("deny: {d}"))
            .chain(warns.iter().map(|w| format!("warn: {w}")))
            .collect();
        runner.untrusted(&listed.join("\n"));
    }
    for w in &warns {
        runner.warning("Policy warning", w);
    }
    let markdown = markdown(&verdicts, policies, &facts.environment);
    if denies.is_empty() {
        return (markdown, Ok(()));
    }
    let error = anyhow::anyhow!(
        "the policies in {} deny release {:?} in environment {:?}: {}",
        policies.shown,
        facts.release,
        facts.environment,
        denies.join("; ")
    );
    (markdown, Err(error))
}

/// The verdicts as a summary section: one row per deny and per warn.
fn markdown(verdicts: &Verdicts, policies: &Policies, environment: &str) -> String {
    let denies = verdicts.deny_lines();
    let warns = verdicts.warn_lines();
    let mut md = format!(
        "Policies in `{}` for `{environment}`: {} deny, {} warn on {} objects.\n",
        policies.shown,
        denies.len(),
        warns.len(),
        verdicts.objects.len()
    );
    if denies.is_empty() && warns.is_empty() {
        return md;
    }
    md.push_str("\n| verdict | object: message |\n|---|---|\n");
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for d in &denies {
        md.push_str(&format!("| ❌ deny | {} |\n", cell(d)));
    }
    for w in &warns {
        md.push_str(&format!("| ⚠️ warn | {} |\n", cell(w)));
    }
    md
}

/// Step (deploy): render the release offline with the images to deploy and check it; a deny
/// refuses before approval, the lock or anything on the cluster.
pub(super) async fn check(run: &mut Run<'_>, images: &[(String, String)]) -> Result<(), Failure> {
    let config = run.config;
    let Some(policies) = &config.policies else {
        return Ok(());
    };
    let started = Instant::now();
    let _g = run
        .runner
        .group(&format!("Check policies in {}", policies.shown));
    let rendered = async {
        let helm = Helm::detect(&config.helm, None).await?;
        let spec = upgrade_spec(config, images.to_vec());
        anyhow::Ok(helm.template(&spec).await?)
    }
    .await;
    let manifest = match rendered {
        Ok(m) => m,
        Err(e) => {
            run.timeline.step("policies", started, false);
            return Err(run.fail(
                Title::PolicyDenied,
                e.context(format!(
                    "failed to render release {:?} for the policies",
                    config.release
                )),
            ));
        }
    };
    let facts = facts(config, &config.environment, images);
    let (markdown, verdict) = evaluate(policies, &manifest, &facts, run.runner);
    run.timeline.step("policies", started, verdict.is_ok());
    if !markdown.is_empty() {
        run.summary.section("Policies", &markdown);
    }
    verdict.map_err(|e| run.fail(Title::PolicyDenied, e))
}
