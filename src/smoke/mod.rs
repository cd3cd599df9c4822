//! Smoke tests after the upgrade: a YAML spec of HTTP checks (`spec`), each against a URL or a
//! Service port reached by a port-forward through the Kubernetes API (`transport`), with retries
//! inside a time budget and a rule for cutover blips, N consecutive successes (`retry`), each
//! response held against its expectations (`expect`); the results as a report (`report`).
//! Smoke takes a validated [`Spec`] and the namespace, nothing of the run's configuration.

mod expect;
mod report;
mod retry;
mod spec;
mod transport;
mod vars;

use std::fmt::Write as _;
use std::path::PathBuf;

use report::attempts;
pub(crate) use report::{CheckResult, Report};
pub(crate) use spec::{Check, Spec};
pub(crate) use vars::Vars;

use crate::runner::Runner;
use expect::evaluate;
use retry::{Clock, TokioClock, retry};
use spec::Target;
use transport::Transport;

/// A failure of the smoke tests: a bad spec, or checks that did not pass.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmokeError {
    #[error("failed to read the smoke test spec {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("smoke test spec {}: {message}", .path.display())]
    Spec { path: PathBuf, message: String },
    #[error("failed to build the smoke tests' HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("smoke tests need a Kubernetes client for check {check:?} (service {service:?})")]
    NoCluster { check: String, service: String },
    #[error("{}", failed_message(.what, .failed, .total))]
    Failed {
        /// `smoke` or `preflight`.
        what: &'static str,
        /// The results of the failing checks.
        failed: Vec<CheckResult>,
        total: usize,
        /// The whole report (for the summary).
        report: Report,
    },
}

impl SmokeError {
    /// The whole report of checks that ran and failed; none for a spec or client error.
    pub(crate) fn report(&self) -> Option<&Report> {
        match self {
            SmokeError::Failed { report, .. } => Some(report),
            _ => None,
        }
    }
}

fn failed_message(what: &str, failed: &[CheckResult], total: &usize) -> String {
    let mut s = format!("{} of {total} {what} checks failed:", failed.len());
    for r in failed {
        let _ = write!(
            s,
            "\n  - check {:?} ({}): {} ({})",
            r.name,
            r.target,
            r.detail,
            attempts(r.attempts, r.elapsed)
        );
    }
    s
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs every check (concurrently) and returns the report; a failing check is in the report,
/// not an error here. `what` names them in the log (`smoke`, `preflight`, `hook`).
pub(crate) async fn run_checks(
    checks: &[Check],
    what: &str,
    transport: &Transport,
    clock: &dyn Clock,
    runner: &Runner,
) -> Report {
    let futures = checks.iter().map(|check| async move {
        let log = |attempt: u32, why: &str| {
            runner.info(&format!(
                "{what} check {:?} attempt {attempt} failed: {why}",
                check.name
            ));
        };
        let outcome = retry(&check.policy, clock, &log, |timeout| async move {
            let resp = transport.send(check, timeout).await?;
            evaluate(&check.expect, &resp)
        })
        .await;
        runner.info(&format!(
            "{what} check {:?} ({}): {} after {}: {}",
            check.name,
            check.describe(),
            if outcome.passed { "passed" } else { "FAILED" },
            attempts(outcome.attempts, outcome.elapsed),
            outcome.detail
        ));
        CheckResult {
            name: check.name.clone(),
            target: check.describe(),
            passed: outcome.passed,
            attempts: outcome.attempts,
            elapsed: outcome.elapsed,
            detail: outcome.detail,
        }
    });
    Report {
        results: futures::future::join_all(futures).await,
    }
}

/// The pipeline's step: runs `spec` when one is configured (none → `Ok(None)`), and fails
/// naming each failing check with what it got against what it expected.
pub(crate) async fn run_step(
    spec: Option<&Spec>,
    namespace: &str,
    kube: Option<&kube::Client>,
    runner: &Runner,
) -> Result<Option<Report>, SmokeError> {
    match spec {
        Some(spec) => run(spec, namespace, kube, runner).await.map(Some),
        None => Ok(None),
    }
}

/// Runs a loaded spec's checks against `namespace`; `Failed` (with the whole report) when a
/// check fails.
pub(crate) async fn run(
    spec: &Spec,
    namespace: &str,
    kube: Option<&kube::Client>,
    runner: &Runner,
) -> Result<Report, SmokeError> {
    run_list(&spec.checks, "smoke", namespace, kube, runner).await
}

/// The preflight checks on the live release (each retried within `preflight.wait`); `Failed`
/// when one has not passed by then.
pub(crate) async fn preflight(
    spec: &Spec,
    namespace: &str,
    kube: Option<&kube::Client>,
    runner: &Runner,
) -> Result<Report, SmokeError> {
    run_list(&spec.preflight, "preflight", namespace, kube, runner).await
}

/// One hook's request; `Failed` when its answer is not what it expects.
pub(crate) async fn hook(
    check: &Check,
    namespace: &str,
    kube: Option<&kube::Client>,
    runner: &Runner,
) -> Result<Report, SmokeError> {
    run_list(std::slice::from_ref(check), "hook", namespace, kube, runner).await
}

async fn run_list(
    checks: &[Check],
    what: &'static str,
    namespace: &str,
    kube: Option<&kube::Client>,
    runner: &Runner,
) -> Result<Report, SmokeError> {
    if kube.is_none()
        && let Some(c) = checks
            .iter()
            .find(|c| matches!(c.target, Target::Service { .. }))
    {
        return Err(SmokeError::NoCluster {
            check: c.name.clone(),
            service: c.target.to_string(),
        });
    }
    let transport = Transport::new(kube.cloned(), namespace)?;
    let clock = TokioClock::default();
    let report = run_checks(checks, what, &transport, &clock, runner).await;
    if report.passed() {
        Ok(report)
    } else {
        Err(SmokeError::Failed {
            what,
            failed: report
                .results
                .iter()
                .filter(|r| !r.passed)
                .cloned()
                .collect(),
            total: report.results.len(),
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failures_name_the_check() {
        let report = Report {
            results: vec![
                CheckResult {
                    name: "healthz".into(),
                    target: "GET service/x:http/health".into(),
                    passed: true,
                    attempts: 1,
                    elapsed: Duration::from_millis(120),
                    detail: "status 200".into(),
                },
                CheckResult {
                    name: "ready".into(),
                    target: "GET service/x:http/ready".into(),
                    passed: false,
                    attempts: 7,
                    elapsed: Duration::from_secs(12),
                    detail: "got status 503 (body \"a|b\"), expected 2xx".into(),
                },
            ],
        };
        let e = SmokeError::Failed {
            what: "smoke",
            failed: vec![report.results[1].clone()],
            total: 2,
            report,
        };
        assert_eq!(
            e.to_string(),
            "1 of 2 smoke checks failed:\n  - check \"ready\" (GET service/x:http/ready): got status 503 (body \"a|b\"), expected 2xx (7 attempts in 12.0s)"
        );
    }
}
