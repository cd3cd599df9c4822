//! A chart's dependencies (Chart.yaml `dependencies:`): which are declared, whether the chart
//! vendors them (`charts/<name>/` or `charts/<name>-<version>.tgz`), the repositories helm must
//! know to build them, and the copy of a chart into the run's own directory, so that
//! `helm dependency build` never writes into the workspace.

use std::path::{Path, PathBuf};

use crate::manifest::Yaml;

/// One declared dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    /// `https://…`, `oci://…`, `file://…`, `@alias` or empty (vendored only).
    pub repository: String,
}

/// The dependencies Chart.yaml in `dir` declares.
pub fn declared(dir: &Path) -> Result<Vec<Dependency>, String> {
    let path = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let doc: Yaml = crate::manifest::parse(&text)
        .map_err(|e| format!("{} is not YAML: {e}", path.display()))?;
    let mut out = Vec::new();
    for d in doc["dependencies"].as_sequence().into_iter().flatten() {
        let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
        out.push(Dependency {
            name: s("name"),
            version: s("version"),
            repository: s("repository"),
        });
    }
    Ok(out)
}

/// The dependencies of the chart in `dir` it does not vendor under `charts/`.
pub fn missing(dir: &Path, deps: &[Dependency]) -> Vec<Dependency> {
    let charts = dir.join("charts");
    let entries: Vec<String> = std::fs::read_dir(&charts)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    deps.iter()
        .filter(|d| {
            !entries.iter().any(|e| {
                (e == &d.name && charts.join(e).join("Chart.yaml").is_file())
                    || (e.starts_with(&format!("{}-", d.name)) && e.ends_with(".tgz"))
            })
        })
        .cloned()
        .collect()
}

/// The classic (http/https) repositories of `deps`, each once, as helm must know them.
pub fn http_repositories(deps: &[Dependency]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in deps {
        let url = d.repository.trim_end_matches('/').to_string();
        if (url.starts_with("https://") || url.starts_with("http://")) && !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

/// The OCI hosts of `deps`.
pub fn oci_hosts(deps: &[Dependency]) -> Vec<String> {
    deps.iter()
        .filter_map(|d| d.repository.strip_prefix("oci://"))
        .filter_map(|r| r.split('/').next())
        .map(str::to_string)
        .collect()
}

/// In the Chart.yaml of a copy at `copy` of the chart at `original`: every relative
/// `file://` dependency made absolute, so that it still names the original's neighbour.
pub fn anchor_file_dependencies(
    original: &Path,
    copy: &Path,
    deps: &[Dependency],
) -> std::io::Result<()> {
    let path = copy.join("Chart.yaml");
    let mut text = std::fs::read_to_string(&path)?;
    let mut changed = false;
    for d in deps {
        if let Some(rel) = d.repository.strip_prefix("file://")
            && !rel.starts_with('/')
        {
            let abs = original.join(rel);
            text = text.replace(&d.repository, &format!("file://{}", abs.display()));
            changed = true;
        }
    }
    if changed {
        std::fs::write(&path, text)?;
    }
    Ok(())
}

/// Copies the chart in `from` to `to` (files and directories; symlinks as the files they point
/// to, as helm reads them).
pub fn copy_chart(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let src: PathBuf = e.path();
        let dst = to.join(e.file_name());
        if std::fs::metadata(&src)?.is_dir() {
            copy_chart(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_dependencies_are_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: redis\n  version: 1.0.0\n  repository: oci://127.0.0.1:45000/charts\n- name: common\n  version: 2.x\n  repository: https://charts.example.com/\n- name: local\n  version: 0.1.0\n  repository: https://charts.example.com\n",
        )
        .unwrap();
        let deps = declared(dir.path()).unwrap();
        assert_eq!(deps.len(), 3);
        assert_eq!(missing(dir.path(), &deps).len(), 3);
        std::fs::create_dir_all(dir.path().join("charts/local")).unwrap();
        std::fs::write(dir.path().join("charts/local/Chart.yaml"), "name: local\n").unwrap();
        std::fs::write(dir.path().join("charts/redis-1.0.0.tgz"), "x").unwrap();
        let m = missing(dir.path(), &deps);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "common");
        assert_eq!(http_repositories(&deps), ["https://charts.example.com"]);
        assert_eq!(oci_hosts(&deps), ["127.0.0.1:45000"]);

        let copy = tempfile::tempdir().unwrap();
        copy_chart(dir.path(), &copy.path().join("app")).unwrap();
        assert!(copy.path().join("app/charts/local/Chart.yaml").is_file());
        assert!(copy.path().join("app/charts/redis-1.0.0.tgz").is_file());
    }

    #[test]
    fn a_copy_s_relative_file_dependencies_point_at_the_original_s_neighbours() {
        let ws = tempfile::tempdir().unwrap();
        let app = ws.path().join("charts/app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join("Chart.yaml"),
            "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: common\n  version: 0.1.0\n  repository: file://../common\n- name: abs\n  version: 0.1.0\n  repository: file:///opt/abs\n",
        )
        .unwrap();
        let copy = tempfile::tempdir().unwrap();
        let to = copy.path().join("app");
        copy_chart(&app, &to).unwrap();
        let deps = declared(&app).unwrap();
        anchor_file_dependencies(&app, &to, &deps).unwrap();
        let moved = declared(&to).unwrap();
        assert_eq!(
            moved[0].repository,
            format!("file://{}", app.join("../common").display())
        );
        assert_eq!(moved[1].repository, "file:///opt/abs");
        // The original is untouched.
        assert_eq!(declared(&app).unwrap(), deps);
    }

    #[test]
    fn a_chart_without_dependencies_declares_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Chart.yaml"), "apiVersion: v2\nname: a\n").unwrap();
        assert!(declared(dir.path()).unwrap().is_empty());
    }
}
