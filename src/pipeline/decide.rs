//! What a failed deploy does to the release, as one pure decision: from the step that failed,
//! what it left on top of the release, a cancellation, `rollback_on_failure`, and whether there
//! is a deployed revision to go back to. And the title each outcome is reported under.

use super::Title;

/// The deploy step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Upgrade,
    Rollout,
    Smoke,
}

/// What the failed step left on top of the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Left {
    /// helm failed before writing a revision (a render or validation error).
    Nothing,
    /// A revision helm was stopped in (the deadline, a signal): pending-*.
    Pending,
    /// A revision that is not ready or failed its smoke tests.
    Revision,
}

/// What happens to the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing was written: the release is as it was.
    Untouched,
    /// `rollback_on_failure: false`: the new revision stays in place for inspection.
    Keep,
    /// Back to the revision deployed before the run, verified.
    RollBack,
    /// A rollback is due, but the release had no deployed revision before this run.
    NothingToRollBackTo,
}

/// The one rule: a pending revision is never left, nor an unverified one after a cancel;
/// otherwise `rollback_on_failure` chooses.
pub(crate) fn decide(
    left: Left,
    cancelled: bool,
    rollback_on_failure: bool,
    has_previous: bool,
) -> Decision {
    match left {
        Left::Nothing => Decision::Untouched,
        _ if !(left == Left::Pending || cancelled || rollback_on_failure) => Decision::Keep,
        _ if !has_previous => Decision::NothingToRollBackTo,
        _ => Decision::RollBack,
    }
}

/// The title of a failure at `stage`, before any rollback.
pub(crate) fn title(stage: Stage, cancelled: bool) -> Title {
    match (stage, cancelled) {
        (_, true) => Title::DeployCancelled,
        (Stage::Upgrade, false) => Title::UpgradeFailed,
        (Stage::Rollout, false) => Title::RolloutFailed,
        (Stage::Smoke, false) => Title::SmokeTestsFailed,
    }
}

/// The title once the rollback after a failure was verified.
pub(crate) fn rolled_back_title(cancelled: bool) -> Title {
    if cancelled {
        Title::DeployCancelled
    } else {
        Title::DeployFailedRolledBack
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    #[test]
    fn the_rollback_decision() {
        // (left, cancelled, rollback_on_failure, has_previous) → decision
        let table = [
            ((Left::Nothing, false, true, true), Untouched),
            ((Left::Nothing, true, true, true), Untouched),
            ((Left::Nothing, false, false, false), Untouched),
            ((Left::Revision, false, true, true), RollBack),
            ((Left::Revision, false, false, true), Keep),
            ((Left::Revision, true, false, true), RollBack),
            ((Left::Revision, false, true, false), NothingToRollBackTo),
            ((Left::Pending, false, false, true), RollBack),
            ((Left::Pending, false, false, false), NothingToRollBackTo),
            ((Left::Pending, true, true, true), RollBack),
        ];
        for ((left, cancelled, rof, prev), want) in table {
            assert_eq!(
                decide(left, cancelled, rof, prev),
                want,
                "{left:?} cancelled={cancelled} rollback_on_failure={rof} previous={prev}"
            );
        }
    }

    #[test]
    fn titles() {
        assert_eq!(title(Stage::Upgrade, false), Title::UpgradeFailed);
        assert_eq!(title(Stage::Rollout, false), Title::RolloutFailed);
        assert_eq!(title(Stage::Smoke, false), Title::SmokeTestsFailed);
        assert_eq!(title(Stage::Smoke, true), Title::DeployCancelled);
        assert_eq!(
            rolled_back_title(false).as_str(),
            "Deploy failed, rolled back"
        );
        assert_eq!(rolled_back_title(true), Title::DeployCancelled);
    }
}
