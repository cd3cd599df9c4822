//! mode: validate — `helm lint`, `helm template` and the `policies` for every environment's
//! values, without a cluster.

use crate::helm::{Helm, UpgradeSpec};
use crate::inputs::Config;
use crate::outputs::{Outputs, Status};
use crate::resolve;
use crate::runner::Runner;

use super::deploy::upgrade_spec;
use super::{Failure, Title, failure};

/// The values files validate checks: the given `values_files` (layered, as a deploy uses them),
/// else every deploy/values/values-*.yaml of the workspace (each alone), else the chart's
/// defaults alone.
pub(crate) fn validation_sets(config: &Config) -> Vec<Vec<std::path::PathBuf>> {
    let default = config
        .workspace
        .join(format!("deploy/values/values-{}.yaml", config.environment));
    if !config.values_files.is_empty() && config.values_files != [default] {
        return vec![config.values_files.clone()];
    }
    let dir = config.workspace.join("deploy/values");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("values-") && (n.ends_with(".yaml") || n.ends_with(".yml"))
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        vec![Vec::new()]
    } else {
        files.into_iter().map(|f| vec![f]).collect()
    }
}

/// The environment a validation set stands for: `values-<environment>.yaml` when the set is one
/// such file, else the run's environment.
fn set_environment(files: &[std::path::PathBuf], config: &Config) -> String {
    match files {
        [one] => one
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("values-"))
            .and_then(|n| n.strip_suffix(".yaml").or_else(|| n.strip_suffix(".yml")))
            .map_or_else(|| config.environment.clone(), str::to_string),
        _ => config.environment.clone(),
    }
}

pub(super) async fn validate(config: &Config, runner: &Runner) -> Result<Outputs, Failure> {
    let outputs = resolve::outputs(config);
    let fail = |e: anyhow::Error| failure(Title::ValidationFailed, e, &outputs, Status::Failed);
    // No cluster: lint and template are offline.
    let helm = Helm::detect(&config.helm, None)
        .await
        .map_err(|e| fail(e.into()))?;
    let chart = config
        .chart_dir
        .as_ref()
        .map_or(config.chart.clone(), |d| d.display().to_string());
    let sets = validation_sets(config);
    let mut md = if config.policies.is_some() {
        format!(
            "### Chart validation of `{}`\n\n| values | lint | template | policies |\n|---|---|---|---|\n",
            config.chart
        )
    } else {
        format!(
            "### Chart validation of `{}`\n\n| values | lint | template |\n|---|---|---|\n",
            config.chart
        )
    };
    let mut policy_md = String::new();
    let mut errors = Vec::new();
    for files in sets {
        let label = if files.is_empty() {
            "(chart defaults)".to_string()
        } else {
            files
                .iter()
                .map(|f| {
                    f.strip_prefix(&config.workspace)
                        .unwrap_or(f)
                        .display()
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _g = runner.group(&format!("Validate with {label}"));
        let lint = helm.lint(&chart, &files).await;
        let spec = UpgradeSpec {
            values_files: files.clone(),
            ..upgrade_spec(config, super::deploy::image_values(config, &[]))
        };
        let template = helm.template(&spec).await;

        // helm's own output quotes the chart (a `fail` message, a template): untrusted blocks.
        match &lint {
            Ok(out) => runner.untrusted(out),
            Err(e) => {
                runner.untrusted(&format!("{e:#}"));
                errors.push(format!("{e:#}"));
            }
        }
        let mut policy_cell = "";
        match &template {
            Ok(out) => {
                runner.info(&format!(
                    "rendered {} objects",
                    crate::diff::objects(out, &config.namespace, None).len()
                ));
                if let Some(policies) = &config.policies {
                    let environment = set_environment(&files, config);
                    let facts = super::policy::facts(config, &environment, &spec.images);
                    let (pmd, verdict) = super::policy::evaluate(policies, out, &facts, runner);
                    policy_md.push_str(&pmd);
                    policy_md.push('\n');
                    policy_cell = if verdict.is_ok() { "✅" } else { "❌" };
                    if let Err(e) = verdict {
                        errors.push(format!("{e:#}"));
                    }
                }
            }
            Err(e) => {
                runner.untrusted(&format!("{e:#}"));
                errors.push(format!("{e:#}"));
            }
        }
        let cell = |ok: bool| if ok { "✅" } else { "❌" };
        md.push_str(&format!(
            "| `{label}` | {} | {} |{}\n",
            cell(lint.is_ok()),
            cell(template.is_ok()),
            if config.policies.is_some() {
                format!(
                    " {} |",
                    if policy_cell.is_empty() {
                        "–"
                    } else {
                        policy_cell
                    }
                )
            } else {
                String::new()
            }
        ));
    }
    if !policy_md.is_empty() {
        md.push_str(&format!("\n### Policies\n\n{policy_md}"));
    }
    runner.summary(&md).map_err(|e| fail(e.into()))?;
    if errors.is_empty() {
        Ok(outputs)
    } else {
        Err(fail(anyhow::anyhow!("{}", errors.join("\n"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::RunContext;
    use crate::inputs::{self, RawInputs};

    fn config(ws: &std::path::Path, pairs: &[(&'static str, &str)]) -> Config {
        std::fs::create_dir_all(ws.join("chart")).unwrap();
        std::fs::write(ws.join("chart/Chart.yaml"), "name: app\nversion: 0.1.0\n").unwrap();
        let ctx = RunContext {
            workspace: ws.to_path_buf(),
            ..RunContext::default()
        };
        let mut all: Vec<(&str, String)> = vec![
            ("chart", "chart".into()),
            ("environment", "dev".into()),
            ("version", "v1.0.0".into()),
            ("mode", "validate".into()),
        ];
        all.extend(pairs.iter().map(|(k, v)| (*k, v.to_string())));
        inputs::resolve(&RawInputs::from_pairs(all), &ctx).unwrap()
    }

    #[test]
    fn validate_checks_every_environment_or_the_given_files() {
        let ws = tempfile::tempdir().unwrap();
        let values = ws.path().join("deploy/values");
        // No values files at all: the chart's defaults.
        assert_eq!(
            validation_sets(&config(ws.path(), &[])),
            [Vec::<std::path::PathBuf>::new()]
        );

        std::fs::create_dir_all(&values).unwrap();
        for f in ["values-dev.yaml", "values-prod.yaml", "other.yaml"] {
            std::fs::write(values.join(f), "replicas: 1\n").unwrap();
        }
        // The default values file of the environment: still every environment's file, alone.
        let sets = validation_sets(&config(ws.path(), &[]));
        assert_eq!(
            sets,
            [
                vec![values.join("values-dev.yaml")],
                vec![values.join("values-prod.yaml")]
            ]
        );
        // Given files: checked together, layered as a deploy would use them.
        let given = validation_sets(&config(
            ws.path(),
            &[(
                "values_files",
                "deploy/values/other.yaml\ndeploy/values/values-prod.yaml",
            )],
        ));
        assert_eq!(
            given,
            [vec![
                values.join("other.yaml"),
                values.join("values-prod.yaml")
            ]]
        );
    }
}
