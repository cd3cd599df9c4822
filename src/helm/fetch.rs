//! The helm commands that fetch charts, run before anything touches the cluster: `helm repo
//! update` (the indexes of the run's own repositories), `helm pull` (an OCI or repository chart,
//! unpacked into the run's directory) and `helm dependency build`. Each takes the run's private
//! configuration flags (`chart::source::Access::args`).

use std::ffi::OsString;
use std::path::Path;

use super::{Helm, HelmError, QUICK, os, spawn};

/// How long fetching gets (a registry or repository that does not answer fails the run).
const FETCH: std::time::Duration = std::time::Duration::from_secs(120);

impl Helm {
    /// `helm repo update`: downloads the index of every repository in the run's repositories.yaml.
    pub async fn repo_update(&self, access: &[OsString]) -> Result<(), HelmError> {
        let mut args = vec![os("repo"), os("update")];
        args.extend(access.iter().cloned());
        spawn::run(
            &self.bin,
            "update the chart repositories' indexes (helm repo update)",
            args,
            &self.env,
            FETCH,
            None,
        )
        .await?;
        Ok(())
    }

    /// `helm pull <chart> --untar` into `dest`.
    pub async fn pull(
        &self,
        chart: &str,
        version: Option<&str>,
        dest: &Path,
        access: &[OsString],
        plain_http: bool,
    ) -> Result<(), HelmError> {
        let mut args = vec![
            os("pull"),
            os(chart),
            os("--untar"),
            os("--untardir"),
            dest.as_os_str().to_owned(),
        ];
        if let Some(v) = version {
            args.push(os("--version"));
            args.push(os(v));
        }
        if plain_http {
            args.push(os("--plain-http"));
        }
        args.extend(access.iter().cloned());
        let action = format!(
            "fetch chart {chart:?}{}",
            version
                .map(|v| format!(" version {v:?}"))
                .unwrap_or_default()
        );
        spawn::run(&self.bin, &action, args, &self.env, FETCH, None).await?;
        Ok(())
    }

    /// `helm dependency build` of the chart in `dir` (its `charts/` filled from Chart.yaml).
    pub async fn dependency_build(
        &self,
        dir: &Path,
        access: &[OsString],
        plain_http: bool,
    ) -> Result<String, HelmError> {
        let mut args = vec![os("dependency"), os("build"), dir.as_os_str().to_owned()];
        if plain_http {
            args.push(os("--plain-http"));
        }
        args.extend(access.iter().cloned());
        let action = format!("build the dependencies of chart {}", dir.display());
        Ok(
            spawn::run(&self.bin, &action, args, &self.env, FETCH + QUICK, None)
                .await?
                .stdout,
        )
    }
}
