//! Where a chart comes from and how helm reaches it: a directory, an OCI reference, or a chart in
//! a classic repository; and the private helm configuration of a run (`Access`): a registry
//! config (docker's config.json with the `chart_auth` credentials of each registry host), a
//! repository config (repositories.yaml, each repository with its host's credentials) and a
//! repository cache, all in a 0700 temporary directory, files 0600. helm gets them with
//! `--registry-config`, `--repository-config` and `--repository-cache`, never the user's own.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::registry::{HostCredentials, registry_host};

/// A chart to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// `oci://host/path/name`.
    Oci(String),
    /// The chart `name` in the classic repository at `url`.
    Repository { url: String, name: String },
}

impl Remote {
    /// The host helm fetches it from (`host[:port]`).
    pub fn host(&self) -> String {
        match self {
            Remote::Oci(r) => r["oci://".len()..]
                .split('/')
                .next()
                .unwrap_or("")
                .to_string(),
            Remote::Repository { url, .. } => url_host(url).unwrap_or_default(),
        }
    }

    /// How the run and its messages name it.
    pub fn describe(&self, version: Option<&str>) -> String {
        let v = version.map(|v| format!(" version {v}")).unwrap_or_default();
        match self {
            Remote::Oci(r) => format!("chart {r}{v}"),
            Remote::Repository { url, name } => format!("chart {name}{v} from repository {url}"),
        }
    }
}

/// `host[:port]` of an http(s) URL.
pub fn url_host(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// True for an OCI host helm must reach over plain HTTP: loopback only (a local registry), as
/// image verification treats registries.
pub fn plain_http(host: &str) -> bool {
    crate::registry::is_loopback(host)
}

/// One classic repository in the run's repositories.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub name: String,
    pub url: String,
}

/// The run's private helm configuration; removed when dropped.
#[derive(Debug)]
pub struct Access {
    dir: tempfile::TempDir,
    registry_config: PathBuf,
    repository_config: PathBuf,
    repository_cache: PathBuf,
}

impl Access {
    /// Writes the registry config for `credentials` and a repositories.yaml of `repositories`
    /// (each with the credentials of its host, if any).
    pub fn new(
        credentials: &HostCredentials,
        repositories: &[Repository],
    ) -> std::io::Result<Access> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix("trader-deploy-helm-")
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let registry_config = dir.path().join("registry-config.json");
        write_private(&registry_config, &registry_config_json(credentials))?;
        let repository_config = dir.path().join("repositories.yaml");
        write_private(
            &repository_config,
            &repositories_yaml(credentials, repositories),
        )?;
        let repository_cache = dir.path().join("repository-cache");
        std::fs::create_dir(&repository_cache)?;
        Ok(Access {
            dir,
            registry_config,
            repository_config,
            repository_cache,
        })
    }

    /// Rewrites the repositories.yaml with `repositories` (e.g. once a fetched chart's
    /// dependencies are known).
    pub fn set_repositories(
        &self,
        credentials: &HostCredentials,
        repositories: &[Repository],
    ) -> std::io::Result<()> {
        std::fs::remove_file(&self.repository_config)?;
        write_private(
            &self.repository_config,
            &repositories_yaml(credentials, repositories),
        )
    }

    /// The flags every helm command of the run gets.
    pub fn args(&self) -> Vec<OsString> {
        vec![
            "--registry-config".into(),
            self.registry_config.clone().into_os_string(),
            "--repository-config".into(),
            self.repository_config.clone().into_os_string(),
            "--repository-cache".into(),
            self.repository_cache.clone().into_os_string(),
        ]
    }

    /// A directory of the run for fetched and copied charts.
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// docker's config.json, as helm's registry client reads it.
fn registry_config_json(credentials: &HostCredentials) -> String {
    let mut auths = serde_json::Map::new();
    for host in credentials.hosts() {
        if let Some(c) = credentials.get(host) {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                c.username,
                c.password.expose()
            ));
            auths.insert(host.to_string(), serde_json::json!({ "auth": auth }));
        }
    }
    serde_json::json!({ "auths": auths }).to_string()
}

/// helm's repositories.yaml. Credentials go only to their own host (`pass_credentials_all`
/// false: helm then keeps them from chart URLs on other hosts).
fn repositories_yaml(credentials: &HostCredentials, repositories: &[Repository]) -> String {
    let mut entries = Vec::new();
    for r in repositories {
        let creds = url_host(&r.url)
            .and_then(|h| registry_host(&h))
            .and_then(|h| credentials.get(&h));
        let mut e = serde_json::json!({
            "name": r.name,
            "url": r.url,
            "pass_credentials_all": false,
            "insecure_skip_tls_verify": false,
        });
        if let Some(c) = creds {
            e["username"] = c.username.clone().into();
            e["password"] = c.password.expose().into();
        }
        entries.push(e);
    }
    // JSON is YAML: helm reads it as its repositories.yaml.
    serde_json::json!({
        "apiVersion": "",
        "generated": "0001-01-01T00:00:00Z",
        "repositories": entries,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Credentials;
    use crate::secret::Secret;

    fn creds() -> HostCredentials {
        let mut c = HostCredentials::default();
        c.insert(
            "charts.example.com",
            Credentials {
                username: "u".into(),
                password: Secret::new("p@ss"),
            },
        );
        c.insert(
            "127.0.0.1:5000",
            Credentials {
                username: "x".into(),
                password: Secret::new("y"),
            },
        );
        c
    }

    #[test]
    fn the_files_are_private_and_hold_each_host_s_credentials_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let a = Access::new(
            &creds(),
            &[
                Repository {
                    name: "td-0".into(),
                    url: "https://charts.example.com/stable".into(),
                },
                Repository {
                    name: "td-1".into(),
                    url: "https://other.example.com".into(),
                },
            ],
        )
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(a.work_dir()), 0o700);
        assert_eq!(mode(&a.registry_config), 0o600);
        assert_eq!(mode(&a.repository_config), 0o600);
        let reg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&a.registry_config).unwrap()).unwrap();
        assert_eq!(reg["auths"]["127.0.0.1:5000"]["auth"], "eDp5");
        assert_eq!(reg["auths"]["charts.example.com"]["auth"], "dTpwQHNz");
        let repos: crate::manifest::Yaml =
            crate::manifest::parse(&std::fs::read_to_string(&a.repository_config).unwrap())
                .unwrap();
        let list = repos["repositories"].as_sequence().unwrap();
        assert_eq!(list[0]["username"].as_str(), Some("u"));
        assert_eq!(list[0]["password"].as_str(), Some("p@ss"));
        assert_eq!(list[1].get("username"), None);
        assert_eq!(list[1]["pass_credentials_all"].as_bool(), Some(false));
        let args: Vec<String> = a
            .args()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(args[0], "--registry-config");
        assert_eq!(args[2], "--repository-config");
        assert_eq!(args[4], "--repository-cache");
        let dir = a.work_dir().to_path_buf();
        drop(a);
        assert!(!dir.exists());
    }

    #[test]
    fn remotes_name_their_host() {
        assert_eq!(
            Remote::Oci("oci://127.0.0.1:45000/charts/app".into()).host(),
            "127.0.0.1:45000"
        );
        let r = Remote::Repository {
            url: "https://charts.example.com/stable".into(),
            name: "app".into(),
        };
        assert_eq!(r.host(), "charts.example.com");
        assert_eq!(
            r.describe(Some("1.2.3")),
            "chart app version 1.2.3 from repository https://charts.example.com/stable"
        );
        assert!(plain_http("127.0.0.1:45000") && !plain_http("ghcr.io"));
    }
}
