//! Values from the workflow: `values` (inline YAML) and `secret_values` (inline YAML, always
//! masked: the whole text, its lines and every scalar in it), each checked to be a mapping and
//! written 0600 into a private 0700 temporary directory that lives as long as the run, to be
//! passed to helm after the values files.

use std::path::PathBuf;
use std::sync::Arc;

use super::{InputError, bad};
use crate::manifest::Yaml;
use crate::secret::secret_fragments;

/// Scalars shorter than this are not masked on their own (`true`, `1`, `prod` would hide text
/// everywhere); the lines that hold them are.
const MIN_MASKED_SCALAR: usize = 6;

/// The inline values files of a run, in the order helm gets them.
#[derive(Debug, Clone)]
pub(crate) struct InlineValues {
    /// Removed when the last clone is dropped.
    _dir: Arc<tempfile::TempDir>,
    pub(crate) files: Vec<PathBuf>,
}

fn scalars(v: &Yaml, out: &mut Vec<String>) {
    if let Some(map) = v.as_mapping() {
        for x in map.values() {
            scalars(x, out);
        }
    } else if let Some(seq) = v.as_sequence() {
        for x in seq {
            scalars(x, out);
        }
    } else {
        let text = v.to_text();
        let text = text.trim().trim_matches(|c| c == '"' || c == '\'');
        if text.len() >= MIN_MASKED_SCALAR {
            out.push(text.to_string());
        }
    }
}

/// What to mask of a `secret_values` text: the whole, its lines, every scalar it holds.
pub(crate) fn secret_values_masks(text: &str) -> Vec<String> {
    let mut out = secret_fragments(text);
    if let Ok(v) = crate::manifest::parse::<Yaml>(text) {
        scalars(&v, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

fn mapping(input: &'static str, text: &str, secret: bool) -> Result<(), InputError> {
    match crate::manifest::parse::<Yaml>(text) {
        Ok(v) if v.as_mapping().is_some() => Ok(()),
        Ok(_) => Err(bad(
            input,
            "is not a YAML mapping (key: value lines, as in a values file)",
        )),
        // A secret's parse error could quote it: only the position is said.
        Err(e) if secret => Err(bad(
            input,
            format!(
                "is not valid YAML ({})",
                e.to_string()
                    .lines()
                    .find(|l| l.contains("line"))
                    .map(|l| l.split(':').next().unwrap_or(""))
                    .unwrap_or("somewhere")
                    .trim()
            ),
        )),
        Err(e) => Err(bad(
            input,
            format!(
                "is not valid YAML: {}",
                e.to_string().lines().next().unwrap_or("")
            ),
        )),
    }
}

/// Checks and writes `values` and `secret_values`; `None` when neither is given.
pub(super) fn inline_values(
    values: Option<&str>,
    secret_values: Option<&str>,
) -> Result<Option<InlineValues>, InputError> {
    let given: Vec<(&'static str, &str, bool)> = [
        ("values", values, false),
        ("secret_values", secret_values, true),
    ]
    .into_iter()
    .filter_map(|(n, v, s)| v.filter(|t| !t.trim().is_empty()).map(|t| (n, t, s)))
    .collect();
    if given.is_empty() {
        return Ok(None);
    }
    for (name, text, secret) in &given {
        mapping(name, text, *secret)?;
    }
    let dir = tempfile::Builder::new()
        .prefix("trader-deploy-values-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|e| {
            bad(
                "values",
                format!("failed to create a private directory: {e}"),
            )
        })?;
    let mut files = Vec::new();
    for (name, text, _) in given {
        let path = dir.path().join(format!("{name}.yaml"));
        write_private(&path, text).map_err(|e| {
            bad(
                name,
                format!("failed to write it to {}: {e}", path.display()),
            )
        })?;
        files.push(path);
    }
    Ok(Some(InlineValues {
        _dir: Arc::new(dir),
        files,
    }))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn both_are_written_private_in_order() {
        let v = inline_values(
            Some("replicas: 2"),
            Some("config:\n  apiKey: canary-sv-9f3e"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(v.files.len(), 2);
        assert!(v.files[0].ends_with("values.yaml") && v.files[1].ends_with("secret_values.yaml"));
        let mode = std::fs::metadata(&v.files[1]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(v.files[1].parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let path = v.files[1].clone();
        drop(v);
        assert!(!path.exists(), "removed with the run");
        assert!(inline_values(Some("  "), None).unwrap().is_none());
    }

    #[test]
    fn only_mappings_and_secrets_are_not_quoted() {
        let e = inline_values(Some("- a\n- b"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("input `values`") && e.contains("is not a YAML mapping"),
            "{e}"
        );
        let e = inline_values(None, Some("apiKey: [canary-unclosed-77"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("input `secret_values`: is not valid YAML"),
            "{e}"
        );
        assert!(!e.contains("canary-unclosed-77"), "{e}");
    }

    #[test]
    fn every_scalar_of_secret_values_is_masked() {
        let m = secret_values_masks(
            "config:\n  apiKey: canary-sv-9f3e\n  port: 7496\n  on: true\n  list: [abcdefgh]",
        );
        for s in ["canary-sv-9f3e", "abcdefgh", "apiKey: canary-sv-9f3e"] {
            assert!(m.contains(&s.to_string()), "{s} in {m:?}");
        }
        assert!(!m.contains(&"true".to_string()) && !m.contains(&"7496".to_string()));
    }
}
