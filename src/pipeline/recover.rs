//! The recovery step before an upgrade: a release left pending by a killed run is rolled back
//! (a pending record nobody of ours holds is first waited for, up to `pending_grace`), and the
//! deployed revision's StatefulSets are repaired.

use std::time::Duration;

use anyhow::Context as _;

use crate::cancel::{Cancel, Deadline};
use crate::helm;
use crate::inputs::Config;
use crate::lease::LeaseGuard;
use crate::rollout::repair;
use crate::runner::Runner;

use super::cluster::{self, Target};
use super::{Failure, Run, Title};

/// The release before this run's upgrade.
#[derive(Debug, Clone, Default)]
pub(super) struct Before {
    /// The revision deployed (what a failure rolls back to).
    pub(super) deployed: Option<u32>,
    /// The newest revision, whatever its status (a failed upgrade writes one above it).
    pub(super) latest: Option<u32>,
    /// StatefulSet pods the recovery deleted (stuck on a revision other than the deployed one).
    pub(super) repaired: Vec<repair::Deleted>,
}

/// Step: bring the release to a known deployed revision before the upgrade; says what it was.
pub(super) async fn recover(
    run: &mut Run<'_>,
    target: &Target,
    lock: &LeaseGuard,
) -> Result<Before, Failure> {
    let before = recover_release(target, run.config, run.runner, lock, run.cancel)
        .await
        .map_err(|e| run.fail(Title::ReleaseRecovery, e))?;
    for r in &before.repaired {
        run.summary.rollout(&cluster::repaired_line(r));
    }
    run.outputs.previous_revision = before.deployed;
    Ok(before)
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
async fn recover_release(
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
                cluster::repair_statefulsets(target, runner, &manifest, ns, deadline).await?
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
    let rolled = cluster::roll_back_to(target, config, runner, good, config.timeout, None)
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
