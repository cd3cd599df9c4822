//! The `deploy_window` input, or the environment's entry in deploy/policy.yaml: read and
//! validated before anything runs, one line naming the input or the file when it is wrong.

use std::path::Path;

use super::{InputError, bad};
use crate::window::policy::{self, Policy};

/// The policy file in the workspace that may hold `deploy_windows.<environment>`.
pub(crate) const POLICY_FILE: &str = "deploy/policy.yaml";

/// The deploy window of `environment`: the input when given, else the policy file's entry.
pub(super) fn deploy_window(
    input: Option<&str>,
    workspace: &Path,
    environment: &str,
) -> Result<Option<Policy>, InputError> {
    if let Some(yaml) = input.filter(|s| !s.trim().is_empty()) {
        return policy::parse(yaml, "deploy_window")
            .map(Some)
            .map_err(|e| bad("deploy_window", e));
    }
    let path = workspace.join(POLICY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(bad(
                "deploy_window",
                format!("failed to read {POLICY_FILE}: {e}"),
            ));
        }
    };
    policy::parse_for_environment(&text, environment, POLICY_FILE)
        .map_err(|e| bad("deploy_window", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("deploy")).unwrap();
        std::fs::write(
            dir.path().join(POLICY_FILE),
            "deploy_windows:\n  prod: {calendar: XLON}\n",
        )
        .unwrap();
        let from_file = deploy_window(None, dir.path(), "prod").unwrap().unwrap();
        assert!(from_file.describe().contains("XLON"));
        let from_input = deploy_window(Some("{calendar: XNYS}"), dir.path(), "prod")
            .unwrap()
            .unwrap();
        assert!(from_input.describe().contains("XNYS"));
        assert!(deploy_window(None, dir.path(), "dev").unwrap().is_none());
        assert!(
            deploy_window(None, Path::new("/nonexistent"), "prod")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn errors_name_the_input_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = deploy_window(Some("{calendar: XXXX}"), dir.path(), "prod").unwrap_err();
        assert!(e.to_string().contains("deploy_window"), "{e}");
        std::fs::create_dir_all(dir.path().join("deploy")).unwrap();
        std::fs::write(
            dir.path().join(POLICY_FILE),
            "deploy_windows:\n  prod: {margin: 1h}\n",
        )
        .unwrap();
        let e = deploy_window(None, dir.path(), "prod").unwrap_err();
        assert!(
            e.to_string()
                .contains("deploy/policy.yaml (deploy_windows.prod): give a `calendar`"),
            "{e}"
        );
    }
}
