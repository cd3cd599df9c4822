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

/// What `only_if_version` decides for a release.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Undo {
    /// The deployed revision does not run the version: nothing to undo.
    LeaveAlone(String),
    /// Back to this revision, the newest good one running another version.
    To(u32),
}

/// With `only_if_version`: roll back only when the deployed revision runs `version`, and then to
/// the newest good revision below it that runs another one (a re-run finds the release on that
/// other version and leaves it alone; a region whose upgrade never happened, or that the
/// action already rolled back, runs the old version too). A deployed revision whose version the
/// history cannot tell is refused rather than guessed.
pub(super) fn undo(
    history: &[Revision],
    version: &str,
    release: &str,
    namespace: &str,
) -> anyhow::Result<Undo> {
    let Some(deployed) = helm::last_deployed(history) else {
        return Ok(Undo::LeaveAlone(format!(
            "release {release:?} in namespace {namespace:?} has no deployed revision"
        )));
    };
    let runs = helm::version_of(history, deployed.revision);
    match runs.as_deref() {
        Some(v) if v == version => {}
        Some(other) => {
            return Ok(Undo::LeaveAlone(format!(
                "release {release:?} in namespace {namespace:?} runs {other} (revision {}), not {version}",
                deployed.revision
            )));
        }
        None => anyhow::bail!(
            "input `only_if_version`: cannot tell which version revision {} of release {release:?} in namespace {namespace:?} runs (its description is {:?}, not one this action writes): not rolled back",
            deployed.revision,
            deployed.description
        ),
    }
    let mut below = deployed.revision;
    while let Some(r) = helm::previous_good(history, below) {
        if helm::version_of(history, r.revision).as_deref() != Some(version) {
            return Ok(Undo::To(r.revision));
        }
        below = r.revision;
    }
    anyhow::bail!(
        "release {release:?} in namespace {namespace:?} runs {version} (revision {}) and no earlier good revision runs another version",
        deployed.revision
    )
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
    let to = match &config.only_if_version {
        None => target_revision(&history, config.rollback_revision, release, ns),
        Some(version) => match undo(&history, version, release, ns) {
            Ok(Undo::To(r)) => Ok(r),
            Ok(Undo::LeaveAlone(why)) => {
                runner.info(&format!("Nothing to roll back: {why}"));
                run.summary.rollout(&format!("Not rolled back: {why}."));
                run.outputs.revision = run.outputs.previous_revision;
                return Ok(());
            }
            Err(e) => Err(e),
        },
    }
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

    fn described(revision: u32, status: &str, description: &str) -> Revision {
        Revision {
            description: description.into(),
            ..rev(revision, status)
        }
    }

    #[test]
    fn only_if_version_undoes_only_that_version_and_never_further() {
        let up = |v: &str| helm::version_description(v);
        // Upgraded to v2 by this workflow: back to v1's revision.
        let h = [
            described(1, "superseded", &up("v1")),
            described(2, "deployed", &up("v2")),
        ];
        assert_eq!(undo(&h, "v2", "r", "n").unwrap(), Undo::To(1));
        // The re-run after that rollback (revision 3 = "Rollback to 1" runs v1): left alone.
        let after = [
            described(1, "superseded", &up("v1")),
            described(2, "superseded", &up("v2")),
            described(3, "deployed", "Rollback to 1"),
        ];
        assert!(
            matches!(undo(&after, "v2", "r", "n").unwrap(), Undo::LeaveAlone(w) if w.contains("runs v1 (revision 3), not v2"))
        );
        // Its upgrade failed and the action rolled it back: left alone too.
        let rolled = [
            described(1, "superseded", &up("v1")),
            described(2, "failed", &up("v2")),
            described(3, "deployed", "Rollback to 1"),
        ];
        assert!(matches!(
            undo(&rolled, "v2", "r", "n").unwrap(),
            Undo::LeaveAlone(_)
        ));
        // v2 deployed twice (a re-run of the deploy): back past both to v1.
        let twice = [
            described(1, "superseded", &up("v1")),
            described(2, "superseded", &up("v2")),
            described(3, "failed", &up("v3")),
            described(4, "deployed", &up("v2")),
        ];
        assert_eq!(undo(&twice, "v2", "r", "n").unwrap(), Undo::To(1));
        // A rollback target reached through another rollback keeps its version.
        let chain = [
            described(1, "superseded", &up("v1")),
            described(2, "superseded", &up("v0")),
            described(3, "superseded", "Rollback to 1"),
            described(4, "deployed", &up("v2")),
        ];
        assert_eq!(undo(&chain, "v2", "r", "n").unwrap(), Undo::To(3));
        assert_eq!(helm::version_of(&chain, 3).as_deref(), Some("v1"));
        // Nothing older than v2: refused, not uninstalled.
        let first = [described(1, "deployed", &up("v2"))];
        assert!(undo(&first, "v2", "r", "n").is_err());
        // A revision another tool made: refused, not guessed.
        let other = [described(1, "deployed", "Upgrade complete")];
        let e = undo(&other, "v2", "r", "n").unwrap_err().to_string();
        assert!(e.starts_with("input `only_if_version`: cannot tell"), "{e}");
        // No release at all: nothing to undo.
        assert!(matches!(
            undo(&[], "v2", "r", "n").unwrap(),
            Undo::LeaveAlone(_)
        ));
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
