//! Image references as the distribution API needs them: `[host[:port]/]path` and a tag split
//! into registry host and repository name (Docker Hub's short names expanded), the manifest URL,
//! and the reference pinned to a digest.

use super::RegistryError;
use crate::names::{is_image_tag, split_registry_host};

/// Docker Hub's registry host, where short names (`acme/x`, `x`) live.
pub(crate) const DOCKER_HUB: &str = "registry-1.docker.io";

/// An image reference split the way the distribution API needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `repository:tag` as the user wrote it (the name in every message).
    pub(crate) reference: String,
    /// The repository as written, without tag (what a pinned reference keeps).
    pub(crate) repository: String,
    /// Registry host[:port] (Docker Hub short names → registry-1.docker.io).
    pub(crate) registry: String,
    /// Repository name inside the registry (`acme/x`; Docker Hub `x` → `library/x`).
    pub(crate) name: String,
    pub(crate) tag: String,
}

impl ImageRef {
    /// Parses a repository (as in the `images` input) and a tag.
    pub fn parse(repository: &str, tag: &str) -> Result<ImageRef, RegistryError> {
        let reference = format!("{repository}:{tag}");
        let bad = |message: &str| RegistryError::BadReference {
            reference: reference.clone(),
            message: message.to_string(),
        };
        if repository.is_empty() || repository.contains('@') || repository.contains("//") {
            return Err(bad("expected [host[:port]/]path without a digest"));
        }
        if !is_image_tag(tag) {
            return Err(bad(
                "the tag is not a valid OCI tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})",
            ));
        }
        let (registry, name) = match split_registry_host(repository) {
            Some((first, rest)) => {
                let host = match first {
                    "docker.io" | "index.docker.io" => DOCKER_HUB,
                    h => h,
                };
                let name = if host == DOCKER_HUB && !rest.contains('/') {
                    format!("library/{rest}")
                } else {
                    rest.to_string()
                };
                (host.to_string(), name)
            }
            None if repository.contains('/') => (DOCKER_HUB.to_string(), repository.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{repository}")),
        };
        if name.is_empty() || name.split('/').any(str::is_empty) {
            return Err(bad("the repository path is empty"));
        }
        Ok(ImageRef {
            reference,
            repository: repository.to_string(),
            registry,
            name,
            tag: tag.to_string(),
        })
    }

    /// `http` for a loopback registry (a local test registry), `https` for every other one.
    pub(crate) fn scheme(&self) -> &'static str {
        if is_loopback(&self.registry) {
            "http"
        } else {
            "https"
        }
    }

    /// The manifest URL: `<scheme>://<registry>/v2/<name>/manifests/<tag>`.
    pub(crate) fn manifest_url(&self) -> String {
        format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme(),
            self.registry,
            self.name,
            self.tag
        )
    }

    /// The reference pinned to a digest: `repository@sha256:…`.
    pub(crate) fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository)
    }
}

/// True for `localhost`, `127.x.y.z` and `[::1]`, with or without a port.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_registry_and_name() {
        let r = ImageRef::parse("ghcr.io/acme/python-orch", "v1.2.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str(), r.tag.as_str()),
            ("ghcr.io", "acme/python-orch", "v1.2.0")
        );
        assert_eq!(
            r.manifest_url(),
            "https://ghcr.io/v2/acme/python-orch/manifests/v1.2.0"
        );
        assert_eq!(r.reference, "ghcr.io/acme/python-orch:v1.2.0");
        assert_eq!(
            r.pinned("sha256:abc"),
            "ghcr.io/acme/python-orch@sha256:abc"
        );

        let r = ImageRef::parse("acme/x", "v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            (DOCKER_HUB, "acme/x")
        );
        let r = ImageRef::parse("nginx", "1.27").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            (DOCKER_HUB, "library/nginx")
        );
        assert_eq!(
            r.manifest_url(),
            "https://registry-1.docker.io/v2/library/nginx/manifests/1.27"
        );
        let r = ImageRef::parse("docker.io/nginx", "1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            (DOCKER_HUB, "library/nginx")
        );
        let r = ImageRef::parse("index.docker.io/acme/y", "1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            (DOCKER_HUB, "acme/y")
        );
        assert_eq!(r.repository, "index.docker.io/acme/y");

        let r = ImageRef::parse("127.0.0.1:45000/acme/go-scanner", "sha-0123abcd").unwrap();
        assert_eq!(r.registry, "127.0.0.1:45000");
        assert_eq!(
            r.manifest_url(),
            "http://127.0.0.1:45000/v2/acme/go-scanner/manifests/sha-0123abcd"
        );
        let r = ImageRef::parse("localhost/a/b/c", "x").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str()),
            ("localhost", "a/b/c")
        );
        assert_eq!(r.scheme(), "http");
        let r = ImageRef::parse("my.registry:5000/a", "x").unwrap();
        assert_eq!(r.scheme(), "https");
    }

    #[test]
    fn bad_references_are_refused_with_the_reference() {
        for (repo, tag) in [
            ("", "v1"),
            ("ghcr.io/a@sha256:00", "v1"),
            ("ghcr.io/a", ""),
            ("ghcr.io/a", "-v1"),
            ("ghcr.io/a", "v1/2"),
            ("ghcr.io//a", "v1"),
            ("ghcr.io/", "v1"),
        ] {
            let e = ImageRef::parse(repo, tag).unwrap_err();
            assert!(
                e.to_string().contains(&format!("{repo}:{tag}")),
                "{e} should name {repo}:{tag}"
            );
        }
    }

    #[test]
    fn only_loopback_registries_get_plain_http() {
        for h in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "localhost.evil.com",
            "ghcr.io",
            "127.0.0.1.nip.io",
            "0.0.0.0",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
