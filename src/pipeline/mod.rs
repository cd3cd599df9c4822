//! THE sequence of a run, one function per mode that reads as its list of steps; the steps
//! themselves live in the files beside this one. Each step is one group in the log; every mode
//! ends in the same report step.
// A `Failure` carries the outputs a failed run still writes; it is returned once per run.
#![allow(clippy::result_large_err)]

mod chart;
mod cluster;
mod decide;
mod deploy;
mod drain;
mod plan;
mod policy;
mod recover;
mod report;
mod rollback;
mod uninstall;
mod validate;
mod window;

use std::fmt;
use std::time::Instant;

use crate::cancel::Cancel;
use crate::context::RunContext;
use crate::github::session::Session;
use crate::inputs::{Config, Mode};
use crate::outputs::{Outputs, Status};
use crate::resolve;
use crate::runner::Runner;
use crate::summary::Summary;
use crate::timeline::Timeline;

/// Awaits one step and puts it on the run's timeline under `name`, whatever its outcome (steps
/// that run only sometimes, or whose failure rolls back, record themselves).
macro_rules! timed {
    ($run:ident, $name:expr, $step:expr) => {{
        let started = std::time::Instant::now();
        let result = $step.await;
        $run.timeline.step($name, started, result.is_ok());
        result
    }};
}

/// What a failed run is reported under: the annotation's title. The pipeline never branches on
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Title {
    JobSummary,
    ImageVerification,
    /// The GitHub session's own title (an approval refused, a deployment not recorded).
    GitHub(&'static str),
    ClusterConnection,
    ReleaseLock,
    ReleaseRecovery,
    DeployCancelled,
    UpgradeFailed,
    RolloutFailed,
    SmokeTestsFailed,
    DeployFailedRolledBack,
    RollbackFailed,
    PlanFailed,
    ValidationFailed,
    DeployWindow,
    PreflightFailed,
    HookFailed,
    UninstallFailed,
    PolicyDenied,
    ChartFailed,
}

impl Title {
    pub fn as_str(&self) -> &'static str {
        match self {
            Title::JobSummary => "Job summary",
            Title::ImageVerification => "Image verification failed",
            Title::GitHub(t) => t,
            Title::ClusterConnection => "Cluster connection failed",
            Title::ReleaseLock => "Release lock failed",
            Title::ReleaseRecovery => "Release recovery failed",
            Title::DeployCancelled => "Deploy cancelled",
            Title::UpgradeFailed => "Upgrade failed",
            Title::RolloutFailed => "Rollout failed",
            Title::SmokeTestsFailed => "Smoke tests failed",
            Title::DeployFailedRolledBack => "Deploy failed, rolled back",
            Title::RollbackFailed => "Rollback failed",
            Title::PlanFailed => "Plan failed",
            Title::ValidationFailed => "Validation failed",
            Title::DeployWindow => "Outside the deploy window",
            Title::PreflightFailed => "Preflight failed",
            Title::HookFailed => "Hook failed",
            Title::UninstallFailed => "Uninstall failed",
            Title::PolicyDenied => "Policy denied",
            Title::ChartFailed => "Chart not ready",
        }
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run that did not succeed: the message for the annotation and the outputs it still writes.
#[derive(Debug)]
pub struct Failure {
    pub title: Title,
    pub error: anyhow::Error,
    pub outputs: Outputs,
}

fn failure(title: Title, error: anyhow::Error, outputs: &Outputs, status: Status) -> Failure {
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

/// What a deploy or a rollback learns on the way, for the outputs, the summary and the report.
struct Run<'a> {
    config: &'a Config,
    runner: &'a Runner,
    cancel: &'a Cancel,
    summary: Summary,
    outputs: Outputs,
    /// GitHub's side of the run (approval, deployment), once the approve step ran.
    github: Option<Session>,
    /// The report writes the summary table (false: the mode wrote its own summary).
    table: bool,
    started: Instant,
    /// Each step that ran, for the summary's chart.
    timeline: Timeline,
}

impl<'a> Run<'a> {
    fn new(config: &'a Config, runner: &'a Runner, cancel: &'a Cancel) -> Run<'a> {
        let started = Instant::now();
        Run {
            config,
            runner,
            cancel,
            summary: Summary::new(config),
            outputs: resolve::outputs(config),
            github: None,
            table: true,
            started,
            timeline: Timeline::new(started),
        }
    }

    fn fail(&self, title: Title, error: anyhow::Error) -> Failure {
        failure(title, error, &self.outputs, Status::Failed)
    }
}

/// Runs the configured mode to its outcome.
pub async fn run(config: &Config, ctx: &RunContext, runner: &Runner) -> Result<Outputs, Failure> {
    let started = Instant::now();
    // The chart made ready (fetched, dependencies built) before anything touches the cluster.
    let prepared = match config.mode {
        Mode::Deploy | Mode::Plan | Mode::Validate => {
            chart::prepare(config, runner).await.map_err(|e| {
                failure(
                    Title::ChartFailed,
                    e,
                    &resolve::outputs(config),
                    Status::Failed,
                )
            })?
        }
        _ => None,
    };
    let config = prepared.as_ref().map_or(config, |p| &p.config);
    // Only the modes that change the cluster trap SIGTERM/SIGINT (to leave it at a known
    // revision); the others stop at once.
    let never = Cancel::never();
    let mut result = match config.mode {
        Mode::Deploy => deploy(Run::new(config, runner, &Cancel::on_signals()), ctx).await,
        Mode::Rollback => rollback(Run::new(config, runner, &Cancel::on_signals()), ctx).await,
        Mode::Uninstall => uninstall(Run::new(config, runner, &Cancel::on_signals()), ctx).await,
        Mode::Resolve => {
            only_report(
                Run::new(config, runner, &never),
                ctx,
                plan::resolve_only(config, ctx, runner),
            )
            .await
        }
        Mode::Plan => {
            only_report(
                Run::new(config, runner, &never),
                ctx,
                plan::plan(config, ctx, runner).await,
            )
            .await
        }
        Mode::Validate => {
            only_report(
                Run::new(config, runner, &never),
                ctx,
                validate::validate(config, runner).await,
            )
            .await
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match &mut result {
        Ok(o) => o.duration_seconds = secs,
        Err(f) => f.outputs.duration_seconds = secs,
    }
    result
}

/// modes resolve, plan and validate: one step that writes its own summary, then the report.
async fn only_report(
    mut run: Run<'_>,
    ctx: &RunContext,
    step: Result<Outputs, Failure>,
) -> Result<Outputs, Failure> {
    run.table = false;
    let mut result = step.map(|o| run.outputs = o);
    report::report(&mut run, ctx, &mut result).await;
    result.map(|()| run.outputs)
}

/// mode: deploy.
async fn deploy(mut run: Run<'_>, ctx: &RunContext) -> Result<Outputs, Failure> {
    deploy::show_plan(&mut run, ctx);
    let mut result = async {
        window::check(&mut run, ctx)?;
        let images = deploy::verify_images(&mut run).await?;
        policy::check(&mut run, &images).await?;
        deploy::approve(&mut run, ctx).await?;
        let target = timed!(run, "connect", cluster::connect(&run))?;
        let lock = timed!(run, "lock", cluster::lock(&target, &run, ctx))?;
        let result = async {
            let before = timed!(run, "recover", recover::recover(&mut run, &target, &lock))?;
            // The drain steps put their own bars on the timeline, only when they run.
            drain::preflight(&mut run, &target, &before).await?;
            deploy::stop_if_cancelled(&run)?;
            let paused = drain::before_upgrade(&mut run, &target, &before).await?;
            let result = async {
                let release = deploy::upgrade(&mut run, &target, &before, images).await?;
                deploy::watch(&mut run, &target, &release).await?;
                deploy::smoke(&mut run, &target, &release).await
            }
            .await;
            drain::after(&mut run, &target, paused).await;
            result
        }
        .await;
        cluster::unlock(lock, run.runner).await;
        result
    }
    .await;
    report::report(&mut run, ctx, &mut result).await;
    result.map(|()| run.outputs)
}

/// mode: uninstall — the release removed under the same lock and approval, its workloads and
/// pods gone, the environment's GitHub deployments inactive.
async fn uninstall(mut run: Run<'_>, ctx: &RunContext) -> Result<Outputs, Failure> {
    let mut result = async {
        window::check(&mut run, ctx)?;
        deploy::approve(&mut run, ctx).await?;
        let target = cluster::connect(&run).await?;
        let lock = cluster::lock(&target, &run, ctx).await?;
        let result = uninstall::uninstall(&mut run, &target, ctx).await;
        cluster::unlock(lock, run.runner).await;
        result
    }
    .await;
    report::report(&mut run, ctx, &mut result).await;
    result.map(|()| run.outputs)
}

/// mode: rollback — to `rollback_revision` or the previous good revision, verified.
async fn rollback(mut run: Run<'_>, ctx: &RunContext) -> Result<Outputs, Failure> {
    let mut result = async {
        window::check(&mut run, ctx)?;
        deploy::approve(&mut run, ctx).await?;
        let target = timed!(run, "connect", cluster::connect(&run))?;
        let lock = timed!(run, "lock", cluster::lock(&target, &run, ctx))?;
        let result = rollback::roll_back(&mut run, &target).await;
        cluster::unlock(lock, run.runner).await;
        result
    }
    .await;
    report::report(&mut run, ctx, &mut result).await;
    result.map(|()| run.outputs)
}
