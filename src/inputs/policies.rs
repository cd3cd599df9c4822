//! The `policies` input: the folder of Rego policies, read and parsed before anything runs, so
//! that a syntax error fails at once with its file and line.

use std::path::Path;

use super::{InputError, bad};
use crate::policy::{Policies, RegoVersion};

pub(super) fn load(
    folder: Option<&str>,
    rego_version: Option<&str>,
    workspace: &Path,
) -> Result<Option<Policies>, InputError> {
    let version = match rego_version.map(str::trim).filter(|v| !v.is_empty()) {
        None => RegoVersion::default(),
        Some(v) => RegoVersion::parse(v).ok_or_else(|| {
            bad(
                "policies_rego_version",
                format!("{v:?} is not a Rego version (v1 or v0)"),
            )
        })?,
    };
    let Some(folder) = folder.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let dir = workspace.join(folder);
    if !dir.is_dir() {
        return Err(bad(
            "policies",
            format!("folder {folder:?} does not exist ({})", dir.display()),
        ));
    }
    Policies::load(&dir, Path::new(folder), version)
        .map(Some)
        .map_err(|e| bad("policies", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_or_a_bad_version_names_the_input() {
        let ws = tempfile::tempdir().unwrap();
        let e = load(Some("policy"), None, ws.path()).unwrap_err();
        assert_eq!(e.input, "policies");
        let e = load(Some("policy"), Some("v2"), ws.path()).unwrap_err();
        assert_eq!(e.input, "policies_rego_version");
        assert!(load(None, None, ws.path()).unwrap().is_none());
    }

    #[test]
    fn a_syntax_error_is_an_input_error_with_file_and_line() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir(ws.path().join("policy")).unwrap();
        std::fs::write(
            ws.path().join("policy/a.rego"),
            "package main\n\ndeny contains msg if {\n  msg := [\n}\n",
        )
        .unwrap();
        let e = load(Some("policy"), None, ws.path()).unwrap_err();
        let line = e.to_string();
        assert!(line.starts_with("input `policies`: "), "{line}");
        assert!(line.contains("policy/a.rego:"), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
}
