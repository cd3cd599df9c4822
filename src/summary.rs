//! The job summary: a builder every step adds to (images and digests, approvals, smoke results,
//! rollout and diagnostics sections), rendered as one markdown table plus sections and written
//! once through `Runner::summary` at the end of the run.

use std::time::Duration;

use crate::inputs::Config;
use crate::outputs::{Outputs, Status};
use crate::runner::{Runner, RunnerError};

/// One deployed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRow {
    pub(crate) key: String,
    pub(crate) reference: String,
    pub(crate) digest: Option<String>,
    /// The chart's fields it sets when the chart takes the image as a map (empty: one string).
    pub(crate) fields: Vec<String>,
}

/// One smoke test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SmokeRow {
    pub(crate) name: String,
    pub(crate) passed: bool,
    pub(crate) detail: String,
}

/// The job summary of one run, built up by the steps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) mode: String,
    pub(crate) environment: String,
    pub(crate) version: String,
    pub(crate) protected: bool,
    pub(crate) release: String,
    pub(crate) namespace: String,
    pub(crate) images: Vec<ImageRow>,
    pub(crate) revision: Option<u32>,
    pub(crate) previous_revision: Option<u32>,
    pub(crate) duration: Option<Duration>,
    /// e.g. `alice ("Ship it")`; None when no approval was needed.
    pub(crate) approvals: Option<String>,
    pub(crate) smoke: Vec<SmokeRow>,
    pub(crate) outcome: Option<Status>,
    pub(crate) error: Option<String>,
    pub(crate) deployment: Option<String>,
    pub(crate) environment_url: Option<String>,
    pub(crate) run_url: Option<String>,
    /// Titled markdown sections, in the order first added (Rollout, Diagnostics, …).
    sections: Vec<(String, String)>,
}

impl Summary {
    /// A summary of the configured run, with the images it deploys.
    pub(crate) fn new(config: &Config) -> Self {
        Summary {
            mode: config.mode.as_str().to_string(),
            environment: config.environment.clone(),
            version: config.version.clone(),
            protected: config.protected,
            release: config.release.clone(),
            namespace: config.namespace.clone(),
            images: config
                .images
                .iter()
                .map(|i| ImageRow {
                    key: i.key.clone(),
                    reference: i.reference.clone(),
                    digest: None,
                    fields: match i.shape {
                        crate::chart::Shape::Reference => Vec::new(),
                        crate::chart::Shape::Fields { .. } => i.keys(),
                    },
                })
                .collect(),
            ..Summary::default()
        }
    }

    /// Records an image's digest, by helm key or by full reference.
    pub(crate) fn image_digest(&mut self, key_or_reference: &str, digest: &str) {
        match self
            .images
            .iter_mut()
            .find(|i| i.key == key_or_reference || i.reference == key_or_reference)
        {
            Some(i) => i.digest = Some(digest.to_string()),
            None => self.images.push(ImageRow {
                key: String::new(),
                reference: key_or_reference.to_string(),
                digest: Some(digest.to_string()),
                fields: Vec::new(),
            }),
        }
    }

    /// Who approved the deployment.
    pub(crate) fn approvals(&mut self, text: impl Into<String>) {
        self.approvals = Some(text.into());
    }

    /// One smoke test's result.
    pub(crate) fn smoke(
        &mut self,
        name: impl Into<String>,
        passed: bool,
        detail: impl Into<String>,
    ) {
        self.smoke.push(SmokeRow {
            name: name.into(),
            passed,
            detail: detail.into(),
        });
    }

    /// Appends markdown to a titled section (created on first use).
    pub(crate) fn section(&mut self, title: &str, markdown: &str) {
        let markdown = markdown.trim_end();
        match self.sections.iter_mut().find(|(t, _)| t == title) {
            Some((_, body)) => {
                body.push('\n');
                body.push_str(markdown);
            }
            None => self
                .sections
                .push((title.to_string(), markdown.to_string())),
        }
    }

    /// The rollout section (what helm did, how the pods came up).
    pub(crate) fn rollout(&mut self, markdown: &str) {
        self.section("Rollout", markdown);
    }

    /// The diagnostics section (events, pod states, logs of a failure).
    pub(crate) fn diagnostics(&mut self, markdown: &str) {
        self.section("Diagnostics", markdown);
    }

    /// Takes the final values from the outputs (revision, duration, outcome, …).
    pub(crate) fn finish(&mut self, outputs: &Outputs, error: Option<&str>) {
        self.revision = outputs.revision.or(self.revision);
        self.previous_revision = outputs.previous_revision.or(self.previous_revision);
        self.duration = Some(Duration::from_secs_f64(outputs.duration_seconds.max(0.0)));
        self.outcome = Some(outputs.status);
        self.error = error.map(str::to_string);
        if let Some(u) = &outputs.environment_url {
            self.environment_url = Some(u.clone());
        }
        if !outputs.environment.is_empty() {
            self.environment = outputs.environment.clone();
        }
        if !outputs.version.is_empty() {
            self.version = outputs.version.clone();
        }
    }

    /// The markdown.
    pub(crate) fn render(&self) -> String {
        let mut md = String::new();
        let icon = match self.outcome {
            Some(Status::Success) => "✅",
            Some(Status::RolledBack) => "↩️",
            Some(Status::Failed) => "❌",
            None => "⏳",
        };
        md.push_str(&format!(
            "## {icon} trader-deploy {}: {} → {}\n\n",
            self.mode,
            cell(&self.version),
            cell(&self.environment)
        ));
        md.push_str("| | |\n|---|---|\n");
        let mut row = |k: &str, v: String| md.push_str(&format!("| {k} | {v} |\n"));
        let env = match (&self.environment_url, self.protected) {
            (Some(u), p) => format!(
                "[{}]({u}){}",
                cell(&self.environment),
                if p { " (protected)" } else { "" }
            ),
            (None, true) => format!("{} (protected)", cell(&self.environment)),
            (None, false) => cell(&self.environment),
        };
        row("Environment", env);
        row("Version", format!("`{}`", cell(&self.version)));
        if !self.release.is_empty() {
            row(
                "Release",
                format!("`{}` in `{}`", cell(&self.release), cell(&self.namespace)),
            );
        }
        let images = if self.images.is_empty() {
            "–".to_string()
        } else {
            self.images
                .iter()
                .map(|i| {
                    let key = if i.key.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", cell(&i.key))
                    };
                    let fields = if i.fields.is_empty() {
                        String::new()
                    } else {
                        format!(" → {}", cell(&i.fields.join(", ")))
                    };
                    match &i.digest {
                        Some(d) => {
                            format!("{key}`{}` (`{}`){fields}", cell(&i.reference), cell(d))
                        }
                        None => format!("{key}`{}`{fields}", cell(&i.reference)),
                    }
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        row("Images", images);
        let rev = |r: Option<u32>| r.map(|r| r.to_string()).unwrap_or_else(|| "–".into());
        row("Revision", rev(self.revision));
        row("Previous revision", rev(self.previous_revision));
        row(
            "Duration",
            self.duration
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .unwrap_or_else(|| "–".into()),
        );
        row(
            "Approvals",
            match &self.approvals {
                Some(a) => cell(a),
                None if self.protected => "none".into(),
                None => "not required".into(),
            },
        );
        let smoke = if self.smoke.is_empty() {
            "–".to_string()
        } else {
            let passed = self.smoke.iter().filter(|s| s.passed).count();
            format!("{passed}/{} passed", self.smoke.len())
        };
        row("Smoke tests", smoke);
        if let Some(d) = &self.deployment {
            row("GitHub deployment", cell(d));
        }
        let outcome = match self.outcome {
            Some(s) => format!("**{}**", s.as_str()),
            None => "unknown".into(),
        };
        row(
            "Outcome",
            match &self.error {
                Some(e) => format!("{outcome}: {}", cell(e)),
                None => outcome,
            },
        );
        if let Some(u) = &self.run_url {
            row("Run", format!("[log]({u})"));
        }
        if !self.smoke.is_empty() {
            md.push_str("\n### Smoke tests\n\n| test | result | detail |\n|---|---|---|\n");
            for s in &self.smoke {
                md.push_str(&format!(
                    "| {} | {} | {} |\n",
                    cell(&s.name),
                    if s.passed { "✅ passed" } else { "❌ failed" },
                    cell(&s.detail)
                ));
            }
        }
        for (title, body) in &self.sections {
            md.push_str(&format!("\n### {title}\n\n{body}\n"));
        }
        md
    }

    /// Writes the summary once, at the end of the run.
    pub(crate) fn write(&self, runner: &Runner) -> Result<(), RunnerError> {
        runner.summary(&self.render())
    }
}

/// A table cell: no pipes or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::Outputs;

    fn summary() -> Summary {
        Summary {
            mode: "deploy".into(),
            environment: "prod".into(),
            version: "v1.2.0".into(),
            protected: true,
            release: "traderadmin".into(),
            namespace: "trader".into(),
            images: vec![ImageRow {
                key: "image.pythonOrch".into(),
                reference: "ghcr.io/acme/python-orch:v1.2.0".into(),
                digest: None,
                fields: vec![],
            }],
            ..Summary::default()
        }
    }

    #[test]
    fn renders_the_table_and_sections() {
        let mut s = summary();
        s.image_digest("image.pythonOrch", "sha256:abc");
        s.approvals("alice (\"Ship it\")");
        s.smoke("health", true, "200 in 12 ms");
        s.smoke("orders | fills", false, "500\nInternal");
        s.rollout("- deployment/orch: 3/3 ready");
        s.diagnostics("pod orch-1: CrashLoopBackOff");
        s.rollout("- statefulset/md: 1/1 ready");
        s.deployment = Some("#12 (created)".into());
        s.run_url = Some("https://github.com/acme/trader/actions/runs/1/attempts/1".into());
        s.finish(
            &Outputs {
                environment: "prod".into(),
                version: "v1.2.0".into(),
                revision: Some(5),
                previous_revision: Some(4),
                status: Status::RolledBack,
                rolled_back: true,
                duration_seconds: 42.25,
                environment_url: Some("https://prod.example".into()),
                ..Outputs::default()
            },
            Some("smoke test orders failed"),
        );
        let md = s.render();
        let expected = "## ↩️ trader-deploy deploy: v1.2.0 → prod\n\n| | |\n|---|---|\n\
            | Environment | [prod](https://prod.example) (protected) |\n\
            | Version | `v1.2.0` |\n\
            | Release | `traderadmin` in `trader` |\n\
            | Images | image.pythonOrch: `ghcr.io/acme/python-orch:v1.2.0` (`sha256:abc`) |\n\
            | Revision | 5 |\n\
            | Previous revision | 4 |\n\
            | Duration | 42.2s |\n\
            | Approvals | alice (\"Ship it\") |\n\
            | Smoke tests | 1/2 passed |\n\
            | GitHub deployment | #12 (created) |\n\
            | Outcome | **rolled_back**: smoke test orders failed |\n\
            | Run | [log](https://github.com/acme/trader/actions/runs/1/attempts/1) |\n\
            \n### Smoke tests\n\n| test | result | detail |\n|---|---|---|\n\
            | health | ✅ passed | 200 in 12 ms |\n\
            | orders \\| fills | ❌ failed | 500<br>Internal |\n\
            \n### Rollout\n\n- deployment/orch: 3/3 ready\n- statefulset/md: 1/1 ready\n\
            \n### Diagnostics\n\npod orch-1: CrashLoopBackOff\n";
        assert_eq!(md, expected);
    }

    #[test]
    fn minimal_run() {
        let mut s = summary();
        s.protected = false;
        s.images.clear();
        s.finish(&Outputs::default(), None);
        let md = s.render();
        assert!(md.starts_with("## ✅ trader-deploy deploy: v1.2.0 → prod\n"));
        assert!(md.contains("| Approvals | not required |\n"));
        assert!(md.contains("| Images | – |\n"));
        assert!(md.contains("| Revision | – |\n"));
        assert!(md.contains("| Outcome | **success** |\n"));
        assert!(!md.contains("###"));
    }

    #[test]
    fn digest_of_an_unknown_image_adds_a_row() {
        let mut s = summary();
        s.image_digest("127.0.0.1:5000/x:v1", "sha256:1");
        assert_eq!(s.images.len(), 2);
        assert_eq!(s.images[1].digest.as_deref(), Some("sha256:1"));
    }

    #[test]
    fn written_through_the_runner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        let r = Runner::with_sink(
            true,
            None,
            Some(path.clone()),
            std::sync::Arc::new(std::sync::Mutex::new(Vec::new())),
        );
        r.mask("hunter2-secret");
        let mut s = summary();
        s.diagnostics("token hunter2-secret leaked");
        s.write(&r).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("token *** leaked"));
    }
}
