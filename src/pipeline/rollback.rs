//! mode: rollback — the release back to `rollback_revision`, or to the newest good revision
//! before the deployed one; StatefulSets repaired and verified like a deploy's rollback.

use crate::helm::{self, Revision};

use super::cluster::{self, Target};
use super::{Failure, Run, Title};

/// Which revision a rollback goes to: `wanted` if the history has it, else the newest good
/// revision (`deployed` or `superseded`) below the deployed one (or below a bad top revision).
pub(super) fn target_revision(
    history: &[Revision],
    wanted: Option<u32>,
    release: &str,
    namespace: &str,
) -> anyhow::Result<u32> {
    if let Some(r) = wanted {
        return match history.iter().find(|h| h.revision == r) {
            Some(rev) => Ok(rev.revision),
            None => anyhow::bail!(
                "input `rollback_revision`: release {release:?} in namespace {namespace:?} has no revision {r} (it has {})",
                history
                    .iter()
                    .map(|h| h.revision.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }
    let Some(current) = helm::latest(history).map(|r| r.revision) else {
        anyhow::bail!("release {release:?} does not exist in namespace {namespace:?}");
    };
    let below = helm::last_deployed(history).map_or(current, |r| r.revision);
    match helm::previous_good(history, below) {
        Some(r) => Ok(r.revision),
        None => anyhow::bail!(
            "release {release:?} in namespace {namespace:?} has no earlier good revision to roll back to"
        ),
    }
}

/// Step: roll back and verify.
pub(super) async fn roll_back(run: &mut Run<'_>, target: &Target) -> Result<(), Failure> {
    let (config, runner) = (run.config, run.runner);
    let (release, ns) = (&config.release, &config.namespace);
    let history = target
        .helm
        .history(release, ns)
        .await
        .map_err(|e| run.fail(Title::RollbackFailed, e.into()))?;
    let current = helm::latest(&history).map(|r| r.revision);
    run.outputs.previous_revision = helm::last_deployed(&history).map(|r| r.revision);
    let to = target_revision(&history, config.rollback_revision, release, ns)
        .map_err(|e| run.fail(Title::RollbackFailed, e))?;
    runner.info(&format!(
        "Emergency rollback of release {release:?}: revision {} → revision {to}",
        current.map_or("none".into(), |c| c.to_string())
    ));
    let timeline = Some(&mut run.timeline);
    match cluster::roll_back_to(target, config, runner, to, config.timeout, timeline).await {
        Ok(rolled) => {
            rolled.record(&mut run.summary, to);
            run.outputs.revision = Some(rolled.revision);
            run.outputs.rolled_back = true;
            Ok(())
        }
        Err(e) => {
            if let Ok(now) = cluster::current_revision(target, config).await {
                run.outputs.revision = Some(now);
            }
            Err(run.fail(Title::RollbackFailed, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(revision: u32, status: &str) -> Revision {
        Revision {
            revision,
            updated: String::new(),
            status: status.into(),
            chart: String::new(),
            app_version: String::new(),
            description: String::new(),
        }
    }

    #[test]
    fn which_revision_a_rollback_goes_to() {
        let h = [
            rev(1, "superseded"),
            rev(2, "failed"),
            rev(3, "superseded"),
            rev(4, "deployed"),
        ];
        assert_eq!(target_revision(&h, None, "r", "n").unwrap(), 3);
        assert_eq!(target_revision(&h, Some(1), "r", "n").unwrap(), 1);
        let e = target_revision(&h, Some(42), "r", "n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no revision 42 (it has 1, 2, 3, 4)"), "{e}");
        // A failed top revision: back to the deployed one's predecessor.
        let bad_top = [rev(1, "superseded"), rev(2, "deployed"), rev(3, "failed")];
        assert_eq!(target_revision(&bad_top, None, "r", "n").unwrap(), 1);
        let only = [rev(1, "deployed")];
        assert!(target_revision(&only, None, "r", "n").is_err());
        assert!(
            target_revision(&[], None, "r", "n")
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }
}
