//! Step: the chart made ready before anything touches the cluster. An OCI or repository chart is
//! fetched (at `chart_version`, with `chart_auth`) into the run's own directory; a chart whose
//! Chart.yaml dependencies are not vendored gets `helm dependency build` in a copy (the
//! workspace is never written); then the image shapes are read from the chart as it will be
//! deployed. Each in its own log group; helm sees only the run's private configuration.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};

use crate::chart::deps;
use crate::chart::source::{Access, Remote, Repository, plain_http};
use crate::helm::{Helm, HelmError};
use crate::inputs::Config;
use crate::runner::Runner;

/// A configuration whose chart is a directory of the run, and what keeps that directory.
pub(super) struct Prepared {
    pub(super) config: Config,
    _access: Access,
}

/// The chart to fetch, if it is not a directory.
fn remote(config: &Config) -> Option<Remote> {
    if let Some(url) = &config.chart_repository {
        return Some(Remote::Repository {
            url: url.clone(),
            name: config.chart.clone(),
        });
    }
    config
        .chart
        .starts_with("oci://")
        .then(|| Remote::Oci(config.chart.clone()))
}

/// The repository the fetched chart comes from, by the name helm knows it under.
const CHART_REPO: &str = "td-chart";

/// Makes the chart ready; `None` when it already is (a directory with everything vendored).
pub(super) async fn prepare(config: &Config, runner: &Runner) -> anyhow::Result<Option<Prepared>> {
    let remote = remote(config);
    let missing = match (&remote, &config.chart_dir) {
        (None, Some(dir)) => deps::missing(dir, &deps::declared(dir).map_err(|e| anyhow!(e))?),
        _ => Vec::new(),
    };
    if remote.is_none() && missing.is_empty() {
        return Ok(None);
    }
    let helm = Helm::detect(&config.helm, None).await?;
    let mut repositories = Vec::new();
    if let Some(Remote::Repository { url, .. }) = &remote {
        repositories.push(Repository {
            name: CHART_REPO.into(),
            url: url.clone(),
        });
    }
    let access = Access::new(&config.chart_credentials, &repositories)
        .context("failed to write the run's helm configuration")?;
    let dir = match &remote {
        Some(r) => fetch(config, &helm, &access, r, runner).await?,
        None => config.chart_dir.clone().unwrap_or_default(),
    };
    let dir = build_dependencies(config, &helm, &access, &dir, repositories, runner).await?;
    let mut prepared = config.clone();
    let files: Vec<&Path> = config
        .values_files
        .iter()
        .chain(config.inline_values.iter().flat_map(|v| v.files.iter()))
        .map(PathBuf::as_path)
        .collect();
    crate::inputs::image_shapes(&mut prepared.images, &dir, &files)?;
    prepared.chart_dir = Some(dir);
    Ok(Some(Prepared {
        config: prepared,
        _access: access,
    }))
}

/// True when helm's error says the host wanted (other) credentials.
fn refused(e: &HelmError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    [
        "401",
        "403",
        "unauthorized",
        "forbidden",
        "denied",
        "authentication required",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// `helm pull` of the chart into the run's directory; returns the chart's directory.
async fn fetch(
    config: &Config,
    helm: &Helm,
    access: &Access,
    remote: &Remote,
    runner: &Runner,
) -> anyhow::Result<PathBuf> {
    let _g = runner.group("Fetch the chart");
    let version = config.chart_version.as_deref();
    let what = remote.describe(version);
    let host = remote.host();
    runner.info(&format!("Fetching {what} from {host}"));
    let args = access.args();
    let dest = access.work_dir().join("fetched");
    let result = async {
        let chart = match remote {
            Remote::Repository { name, .. } => {
                helm.repo_update(&args).await?;
                format!("{CHART_REPO}/{name}")
            }
            Remote::Oci(r) => r.clone(),
        };
        let plain = matches!(remote, Remote::Oci(_)) && plain_http(&host);
        helm.pull(&chart, version, &dest, &args, plain).await
    }
    .await;
    if let Err(e) = result {
        if refused(&e) {
            let has = config.chart_credentials.get(&host).is_some();
            return Err(anyhow!(
                "failed to fetch {what}: {host} refused access{}",
                if has {
                    format!(" with the credentials for {host} in chart_auth")
                } else {
                    format!(" (no credentials for {host} given: add them to chart_auth)")
                }
            ));
        }
        return Err(anyhow!(e).context(format!("failed to fetch {what} from {host}")));
    }
    let dir = std::fs::read_dir(&dest)
        .ok()
        .and_then(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.is_dir())
        })
        .ok_or_else(|| anyhow!("helm fetched {what} but left no chart directory"))?;
    runner.info(&format!("Fetched {what}"));
    Ok(dir)
}

/// `helm dependency build` when Chart.yaml declares dependencies the chart does not vendor, in
/// a copy under the run's directory unless the chart already is there (fetched).
async fn build_dependencies(
    config: &Config,
    helm: &Helm,
    access: &Access,
    dir: &Path,
    mut repositories: Vec<Repository>,
    runner: &Runner,
) -> anyhow::Result<PathBuf> {
    let declared = deps::declared(dir).map_err(|e| anyhow!(e))?;
    let missing = deps::missing(dir, &declared);
    if missing.is_empty() {
        return Ok(dir.to_path_buf());
    }
    let _g = runner.group("Build chart dependencies");
    let names: Vec<String> = missing
        .iter()
        .map(|d| format!("{} {} ({})", d.name, d.version, d.repository))
        .collect();
    runner.info(&format!("helm dependency build: {}", names.join(", ")));
    let dir = if dir.starts_with(access.work_dir()) {
        dir.to_path_buf()
    } else {
        let name = dir.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let copy = access.work_dir().join("chart").join(name);
        deps::copy_chart(dir, &copy)
            .and_then(|()| deps::anchor_file_dependencies(dir, &copy, &declared))
            .with_context(|| {
                format!(
                    "failed to copy chart {} to {}",
                    dir.display(),
                    copy.display()
                )
            })?;
        copy
    };
    for (n, url) in deps::http_repositories(&declared).into_iter().enumerate() {
        repositories.push(Repository {
            name: format!("td-dep-{n}"),
            url,
        });
    }
    access
        .set_repositories(&config.chart_credentials, &repositories)
        .context("failed to write the run's helm repositories")?;
    let oci = deps::oci_hosts(&declared);
    let plain = oci.iter().any(|h| plain_http(h));
    match helm.dependency_build(&dir, &access.args(), plain).await {
        Ok(out) => {
            runner.untrusted(&out);
            Ok(dir)
        }
        Err(e) => {
            let hosts: Vec<String> = repositories
                .iter()
                .filter_map(|r| crate::chart::source::url_host(&r.url))
                .chain(oci)
                .collect();
            let hint = if refused(&e) {
                format!(
                    " (a repository refused access: credentials for {} go in chart_auth)",
                    hosts.join(", ")
                )
            } else {
                String::new()
            };
            Err(anyhow!(e).context(format!(
                "failed to build the dependencies of chart {:?}: {}{hint}",
                config.chart,
                names.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str) -> HelmError {
        HelmError::Failed {
            action: "fetch chart".into(),
            status: "exit status: 1".into(),
            stderr: crate::helm::Framed(stderr.into()),
        }
    }

    #[test]
    fn a_refusal_is_told_from_other_failures() {
        for s in [
            "Error: failed to authorize: failed to fetch anonymous token: unexpected status from GET request to http://127.0.0.1:1/token: 401 Unauthorized",
            "Error: looks like \"http://127.0.0.1:1\" is not a valid chart repository or cannot be reached: failed to fetch http://127.0.0.1:1/index.yaml : 401 Unauthorized",
            "Error: GET \"https://ghcr.io/v2/acme/x/manifests/1.0.0\": response status code 403: denied: denied",
        ] {
            assert!(refused(&failed(s)), "{s}");
        }
        for s in [
            "Error: chart \"web\" version \"9.9.9\" not found in oci://127.0.0.1:1/charts",
            "Error: dial tcp 127.0.0.1:1: connect: connection refused",
        ] {
            assert!(!refused(&failed(s)), "{s}");
        }
    }
}
