//! The action's outputs: their names (the contract with action.yml) and the values of one run.

use std::collections::BTreeMap;

use crate::runner::{Runner, RunnerError};

/// One declared output.
#[derive(Debug, Clone, Copy)]
pub struct OutputSpec {
    pub name: &'static str,
    pub description: &'static str,
}

const fn output(name: &'static str, description: &'static str) -> OutputSpec {
    OutputSpec { name, description }
}

/// Every output, in the order action.yml and the README list them.
pub const OUTPUTS: &[OutputSpec] = &[
    output("environment", "The environment deployed to."),
    output("version", "The image tag deployed."),
    output(
        "images",
        "JSON object: helm key → full image reference deployed.",
    ),
    output(
        "digests",
        "JSON object: helm key → manifest digest (sha256:…) the registry reported.",
    ),
    output("revision", "The helm revision now deployed."),
    output(
        "previous_revision",
        "The helm revision deployed before this run.",
    ),
    output("status", "success, failed or rolled_back."),
    output("rolled_back", "true when the run rolled the release back."),
    output("deployment_id", "The GitHub deployment id."),
    output("environment_url", "The environment's URL, when known."),
    output("duration_seconds", "Wall time of the run, in seconds."),
    output(
        "plan_changes",
        "mode plan: how many objects the deploy would change, add or remove (0: none).",
    ),
    output(
        "plan_markdown_path",
        "mode plan: the plan as markdown (what the pull-request comment shows), a file relative to the workspace.",
    ),
];

/// The outcome of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Success,
    /// The run failed and the release is not known to be back at a good revision.
    Failed,
    /// The new revision failed and the release was rolled back to the last good one.
    RolledBack,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failed => "failed",
            Status::RolledBack => "rolled_back",
        }
    }
}

/// The values of every output for one run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outputs {
    pub environment: String,
    pub version: String,
    pub images: BTreeMap<String, String>,
    pub digests: BTreeMap<String, String>,
    pub revision: Option<u32>,
    pub previous_revision: Option<u32>,
    pub status: Status,
    pub rolled_back: bool,
    pub deployment_id: Option<u64>,
    pub environment_url: Option<String>,
    pub duration_seconds: f64,
    /// mode plan: objects changed, added or removed.
    pub plan_changes: Option<usize>,
    /// mode plan: the plan's markdown file, relative to the workspace.
    pub plan_markdown_path: Option<String>,
    /// The deploy window was overridden (`window_override`): not an output, said loudly in the
    /// summary and the notification.
    pub window_overridden: bool,
}

impl Outputs {
    /// Every output as `(name, value)`, in the order of [`OUTPUTS`].
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        vec![
            ("environment", self.environment.clone()),
            ("version", self.version.clone()),
            (
                "images",
                serde_json::to_string(&self.images).unwrap_or_else(|_| "{}".into()),
            ),
            (
                "digests",
                serde_json::to_string(&self.digests).unwrap_or_else(|_| "{}".into()),
            ),
            ("revision", opt(self.revision.map(|r| r.to_string()))),
            (
                "previous_revision",
                opt(self.previous_revision.map(|r| r.to_string())),
            ),
            ("status", self.status.as_str().to_string()),
            ("rolled_back", self.rolled_back.to_string()),
            (
                "deployment_id",
                opt(self.deployment_id.map(|d| d.to_string())),
            ),
            ("environment_url", opt(self.environment_url.clone())),
            ("duration_seconds", format!("{:.1}", self.duration_seconds)),
            (
                "plan_changes",
                opt(self.plan_changes.map(|n| n.to_string())),
            ),
            ("plan_markdown_path", opt(self.plan_markdown_path.clone())),
        ]
    }

    /// Writes every output through the runner.
    pub fn write(&self, runner: &Runner) -> Result<(), RunnerError> {
        for (name, value) in self.pairs() {
            runner.set_output(name, &value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_follow_the_declared_outputs() {
        let names: Vec<_> = Outputs::default()
            .pairs()
            .into_iter()
            .map(|p| p.0)
            .collect();
        let declared: Vec<_> = OUTPUTS.iter().map(|o| o.name).collect();
        assert_eq!(names, declared);
    }
}
