//! The shape of an image value in a chart, read from its merged values at the `images` key: one
//! reference string (`image: repo:tag`), or a map that `images` fills field by field
//! (`repository` + `tag`, `registry` + `repository` + `tag`, and `digest` where it exists), and
//! the `--set-string` pairs each shape gets. A key the chart does not have is refused with the
//! image keys the chart does have.

use crate::inputs::strvals::{KeyPath, Segment, key_path};
use crate::manifest::Yaml;
use crate::names::split_registry_host;

/// How `images` sets one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// One string: `repository:tag`, or `repository@sha256:…` when pinned.
    #[default]
    Reference,
    /// A map with `repository` and `tag`, plus `registry` and `digest` when the chart has them.
    Fields { registry: bool, digest: bool },
}

/// Where the registry host goes when a chart has a `registry` field and the repository names
/// none (Docker Hub's short names).
const DOCKER_HUB: &str = "docker.io";

impl Shape {
    /// The `--set-string` pairs for `key` set to `repository` at `tag`; `digest` when pinning.
    /// A map with a `digest` field gets the digest there (and the tag stays, as Bitnami's charts
    /// read it); a map without one gets `<tag>@sha256:…`, which container runtimes resolve by
    /// digest.
    pub fn values(
        &self,
        key: &str,
        repository: &str,
        tag: &str,
        digest: Option<&str>,
    ) -> Vec<(String, String)> {
        match *self {
            Shape::Reference => vec![(
                key.to_string(),
                match digest {
                    Some(d) => format!("{repository}@{d}"),
                    None => format!("{repository}:{tag}"),
                },
            )],
            Shape::Fields {
                registry,
                digest: has_digest,
            } => {
                let field = |f: &str| format!("{key}.{f}");
                let mut out = Vec::new();
                if registry {
                    let (host, path) =
                        split_registry_host(repository).unwrap_or((DOCKER_HUB, repository));
                    out.push((field("registry"), host.to_string()));
                    out.push((field("repository"), path.to_string()));
                } else {
                    out.push((field("repository"), repository.to_string()));
                }
                match (digest, has_digest) {
                    (Some(d), true) => {
                        out.push((field("tag"), tag.to_string()));
                        out.push((field("digest"), d.to_string()));
                    }
                    (Some(d), false) => out.push((field("tag"), format!("{tag}@{d}"))),
                    // Not pinned: a digest from the chart or a values file would win over the
                    // tag, so it is cleared.
                    (None, true) => {
                        out.push((field("tag"), tag.to_string()));
                        out.push((field("digest"), String::new()));
                    }
                    (None, false) => out.push((field("tag"), tag.to_string())),
                }
                out
            }
        }
    }

    /// The keys this shape sets under `key`, for the plan and the summary.
    pub fn keys(&self, key: &str) -> Vec<String> {
        self.values(key, "r", "t", Some("d"))
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }
}

/// The shape of the value at `key` in the chart's merged `values`, or the one-line reason it has
/// none.
pub fn shape_at(values: &Yaml, key: &str) -> Result<Shape, String> {
    let path = key_path(key);
    let found = lookup(values, &path);
    match found {
        Some(Yaml::String(_)) => Ok(Shape::Reference),
        Some(Yaml::Mapping(m)) => {
            let fields: Vec<&str> = m.keys().map(String::as_str).collect();
            if !m.contains_key("repository") || !m.contains_key("tag") {
                return Err(format!(
                    "key {key:?} is a map without `repository` and `tag` in the chart's values \
                     (it has {}); image keys found: {}",
                    if fields.is_empty() {
                        "no fields".to_string()
                    } else {
                        fields.join(", ")
                    },
                    found_keys(values)
                ));
            }
            Ok(Shape::Fields {
                registry: m.contains_key("registry"),
                digest: m.contains_key("digest"),
            })
        }
        None | Some(Yaml::Null) => Err(format!(
            "the chart has no value at key {key:?}; image keys found: {}",
            found_keys(values)
        )),
        Some(_) => Err(format!(
            "key {key:?} is neither an image string nor a repository/tag map in the chart's \
             values; image keys found: {}",
            found_keys(values)
        )),
    }
}

fn lookup<'a>(values: &'a Yaml, path: &KeyPath) -> Option<&'a Yaml> {
    let mut at = values;
    for s in &path.0 {
        at = match (s, at) {
            (Segment::Name(n), Yaml::Mapping(m)) => m.get(n)?,
            (Segment::Index(i), Yaml::Sequence(v)) => v.get(*i)?,
            _ => return None,
        };
    }
    Some(at)
}

fn found_keys(values: &Yaml) -> String {
    let keys = image_keys(values);
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

/// The chart's image keys: maps with `repository` and `tag`, and reference-like strings (with a
/// `/` or `:`) under a key whose name, or whose parent's, says image.
pub fn image_keys(values: &Yaml) -> Vec<String> {
    let mut out = Vec::new();
    walk(values, &mut Vec::new(), &mut out);
    out
}

fn walk(v: &Yaml, path: &mut Vec<String>, out: &mut Vec<String>) {
    let Yaml::Mapping(m) = v else { return };
    if !path.is_empty() && m.contains_key("repository") && m.contains_key("tag") {
        out.push(path.join("."));
        return;
    }
    for (k, child) in m {
        path.push(k.clone());
        match child {
            Yaml::String(s) if (s.contains('/') || s.contains(':')) && says_image(path) => {
                out.push(path.join("."))
            }
            Yaml::Mapping(_) => walk(child, path, out),
            _ => {}
        }
        path.pop();
    }
}

fn says_image(path: &[String]) -> bool {
    path.iter()
        .rev()
        .take(2)
        .any(|k| k.to_ascii_lowercase().contains("image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(text: &str) -> Yaml {
        crate::manifest::parse(text).unwrap()
    }

    /// `helm create`'s values (helm 3.22 and 4.3 write the same image map).
    const HELM_CREATE: &str = "replicaCount: 1\nimage:\n  repository: nginx\n  pullPolicy: IfNotPresent\n  tag: \"\"\nimagePullSecrets: []\nservice:\n  port: 80\n";
    /// Bitnami's shape.
    const BITNAMI: &str = "image:\n  registry: docker.io\n  repository: bitnami/nginx\n  tag: 1.25.3\n  digest: \"\"\n  pullPolicy: IfNotPresent\nmetrics:\n  image:\n    registry: docker.io\n    repository: bitnami/exporter\n    tag: 1.0.0\n";
    const TRADER: &str = "image:\n  pythonOrch: ghcr.io/acme/python-orch:v1.2.0\n  goScanner: ghcr.io/acme/go-scanner:v1.2.0\n  pullPolicy: IfNotPresent\n";

    fn pairs(p: &[(String, String)]) -> Vec<String> {
        p.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn a_string_keeps_today_s_meaning() {
        let s = shape_at(&y(TRADER), "image.pythonOrch").unwrap();
        assert_eq!(s, Shape::Reference);
        assert_eq!(
            pairs(&s.values("image.pythonOrch", "ghcr.io/acme/x", "v1", None)),
            ["image.pythonOrch=ghcr.io/acme/x:v1"]
        );
        assert_eq!(
            pairs(&s.values(
                "image.pythonOrch",
                "ghcr.io/acme/x",
                "v1",
                Some("sha256:ab")
            )),
            ["image.pythonOrch=ghcr.io/acme/x@sha256:ab"]
        );
    }

    #[test]
    fn helm_create_s_map_gets_repository_and_tag() {
        let s = shape_at(&y(HELM_CREATE), "image").unwrap();
        assert_eq!(
            s,
            Shape::Fields {
                registry: false,
                digest: false
            }
        );
        assert_eq!(
            pairs(&s.values("image", "127.0.0.1:45000/acme/x", "v1.2.0", None)),
            [
                "image.repository=127.0.0.1:45000/acme/x",
                "image.tag=v1.2.0"
            ]
        );
        // Pinned without a digest field: the tag carries the digest.
        assert_eq!(
            pairs(&s.values("image", "ghcr.io/acme/x", "v1.2.0", Some("sha256:ab"))),
            [
                "image.repository=ghcr.io/acme/x",
                "image.tag=v1.2.0@sha256:ab"
            ]
        );
        assert_eq!(s.keys("image"), ["image.repository", "image.tag"]);
    }

    #[test]
    fn bitnami_s_map_gets_registry_repository_tag_and_digest() {
        let v = y(BITNAMI);
        let s = shape_at(&v, "image").unwrap();
        assert_eq!(
            s,
            Shape::Fields {
                registry: true,
                digest: true
            }
        );
        assert_eq!(
            pairs(&s.values("image", "127.0.0.1:45000/acme/x", "v1", Some("sha256:ab"))),
            [
                "image.registry=127.0.0.1:45000",
                "image.repository=acme/x",
                "image.tag=v1",
                "image.digest=sha256:ab"
            ]
        );
        // Not pinned: a digest from the values would win over the tag, so it is cleared.
        assert_eq!(
            pairs(&s.values("image", "bitnami/nginx", "1.26", None)),
            [
                "image.registry=docker.io",
                "image.repository=bitnami/nginx",
                "image.tag=1.26",
                "image.digest="
            ]
        );
        // A map without `digest` but with `registry`.
        let m = shape_at(&v, "metrics.image").unwrap();
        assert_eq!(
            pairs(&m.values("metrics.image", "ghcr.io/a/b", "v2", Some("sha256:cd"))),
            [
                "metrics.image.registry=ghcr.io",
                "metrics.image.repository=a/b",
                "metrics.image.tag=v2@sha256:cd"
            ]
        );
    }

    #[test]
    fn a_key_the_chart_lacks_is_refused_with_the_image_keys_it_has() {
        let e = shape_at(&y(BITNAMI), "image.pythonOrch").unwrap_err();
        assert_eq!(
            e,
            "the chart has no value at key \"image.pythonOrch\"; image keys found: image, metrics.image"
        );
        let e = shape_at(&y(TRADER), "images.orch").unwrap_err();
        assert!(
            e.ends_with("image keys found: image.pythonOrch, image.goScanner"),
            "{e}"
        );
        let e = shape_at(&y("replicas: 1\n"), "image").unwrap_err();
        assert!(e.ends_with("image keys found: none"), "{e}");
        let e = shape_at(&y(HELM_CREATE), "service").unwrap_err();
        assert!(
            e.contains("without `repository` and `tag`") && e.contains("port"),
            "{e}"
        );
        let e = shape_at(&y(HELM_CREATE), "replicaCount").unwrap_err();
        assert!(e.contains("neither an image string"), "{e}");
        assert!(shape_at(&y("image: null\n"), "image").is_err());
    }

    #[test]
    fn list_indexes_are_followed() {
        let v = y("sidecars:\n- image: ghcr.io/a/b:v1\n");
        assert_eq!(shape_at(&v, "sidecars[0].image").unwrap(), Shape::Reference);
        assert!(shape_at(&v, "sidecars[1].image").is_err());
    }
}
