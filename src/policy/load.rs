//! A policy directory read as conftest reads `--policy DIR --data DIR`: every `.rego` file, and
//! every `.json`/`.yaml`/`.yml` file as data at the path of its folder.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::PolicyError;

/// The files of a policy directory, sorted: policies and data documents.
#[derive(Debug, Default)]
pub(super) struct Files {
    /// (path as shown, source)
    pub policies: Vec<(String, String)>,
    /// The data documents merged into one object (a file in a sub-folder `a/b/` lands under
    /// `a.b`, as OPA's loader roots it).
    pub data: Map<String, Value>,
}

/// Reads `dir`; `shown` is how paths appear in messages (relative to the workspace).
pub(super) fn read(dir: &Path, shown: &Path) -> Result<Files, PolicyError> {
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    let mut files = Files::default();
    for path in paths {
        let relative = path.strip_prefix(dir).unwrap_or(&path);
        let display = shown.join(relative).display().to_string();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "rego" | "json" | "yaml" | "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
            path: display.clone(),
            source,
        })?;
        if ext == "rego" {
            files.policies.push((display, text));
            continue;
        }
        let value: Value = if ext == "json" {
            serde_json::from_str(&text).map_err(|e| PolicyError::Data {
                file: display.clone(),
                message: e.to_string(),
            })?
        } else {
            crate::manifest::parse(&text).map_err(|e| PolicyError::Data {
                file: display.clone(),
                message: e.to_string(),
            })?
        };
        let folders: Vec<String> = relative
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        merge_at(&mut files.data, &folders, value).map_err(|message| PolicyError::Data {
            file: display.clone(),
            message,
        })?;
    }
    if files.policies.is_empty() {
        return Err(PolicyError::Empty(shown.display().to_string()));
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PolicyError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PolicyError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| PolicyError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        let path = entry.path();
        // Hidden files and folders (.git, editors' files) are not policies.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Merges `value` into `data` under the key path `at`: objects merge member by member; any
/// other clash is an error, as in OPA's store.
pub(super) fn merge_at(
    data: &mut Map<String, Value>,
    at: &[String],
    value: Value,
) -> Result<(), String> {
    let mut target = data;
    for key in at {
        let slot = target
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        target = match slot {
            Value::Object(o) => o,
            _ => return Err(format!("data at {key:?} is not an object")),
        };
    }
    match value {
        Value::Object(o) => merge(target, o, at),
        _ if at.is_empty() => {
            Err("a data file at the top of the policy folder must hold an object".into())
        }
        other => {
            // A non-object file in a folder replaces nothing: OPA roots it at the folder itself,
            // which then must not be shared.
            if target.is_empty() {
                Err(format!(
                    "data in folder {} is {other}, not an object",
                    at.join("/")
                ))
            } else {
                Err(format!(
                    "data at {:?} conflicts with other data",
                    at.join("/")
                ))
            }
        }
    }
}

fn merge(
    target: &mut Map<String, Value>,
    from: Map<String, Value>,
    at: &[String],
) -> Result<(), String> {
    for (k, v) in from {
        match (target.get_mut(&k), v) {
            (None, v) => {
                target.insert(k, v);
            }
            (Some(Value::Object(t)), Value::Object(f)) => {
                let mut here = at.to_vec();
                here.push(k.clone());
                merge(t, f, &here)?;
            }
            (Some(_), _) => {
                let mut here = at.to_vec();
                here.push(k);
                return Err(format!("data at {:?} is defined twice", here.join(".")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_files_merge_at_their_folder() {
        let mut data = Map::new();
        merge_at(&mut data, &[], json!({"ports": {"live": 7496}})).unwrap();
        merge_at(&mut data, &[], json!({"ports": {"paper": 7497}})).unwrap();
        merge_at(&mut data, &["limits".into()], json!({"cpu": "2"})).unwrap();
        assert_eq!(
            Value::Object(data.clone()),
            json!({"ports": {"live": 7496, "paper": 7497}, "limits": {"cpu": "2"}})
        );
        let err = merge_at(&mut data, &[], json!({"ports": {"live": 1}})).unwrap_err();
        assert!(err.contains("ports.live"), "{err}");
        assert!(merge_at(&mut data, &[], json!([1])).is_err());
    }

    #[test]
    fn a_folder_without_policies_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.json"), "{}").unwrap();
        let err = read(dir.path(), Path::new("policies")).unwrap_err();
        assert!(err.to_string().contains("no .rego"), "{err}");
    }
}
